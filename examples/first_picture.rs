//! How long `watch`'s first picture of a vhost takes, against a read that also asks each
//! replicated quorum queue how far behind its members are (what `snapshot` does, and `watch`
//! from its second read on): the same library calls, runs alternating.
//!
//! ```text
//! cargo run --release --example first_picture -- \
//!     amqp://guest:guest@127.0.0.1:5672/%2f http://127.0.0.1:15672 scale10k 5
//! ```

use std::time::Instant;

use rabbitscope::remote::snapshot::{one_vhost, Lag};
use rabbitscope::remote::{Endpoint, Management};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, management, vhost, runs] = &args[..] else {
        eprintln!("usage: first_picture AMQP_URL MANAGEMENT_URL VHOST RUNS");
        std::process::exit(2);
    };
    let runs: usize = runs.parse().expect("RUNS is a number");
    let endpoint = Endpoint::new(url, Some(management)).expect("a usable URL");
    for run in 1..=runs {
        for lag in [Lag::Skip, Lag::Ask] {
            // A client of its own each time, as a new `watch` or `snapshot` has.
            let api = Management::new(&endpoint).expect("a management client");
            let started = Instant::now();
            let picture = one_vhost(&api, vhost, lag).await.expect("a picture");
            let behind = (picture.vhosts.iter())
                .flat_map(|v| &v.queues)
                .filter(|q| !q.behind.is_empty())
                .count();
            println!(
                "run {run}, lag {lag:?}: {:.2} s ({} queues, {behind} with members behind)",
                started.elapsed().as_secs_f64(),
                picture.vhosts.iter().map(|v| v.queues.len()).sum::<usize>()
            );
        }
    }
}
