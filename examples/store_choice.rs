//! How fast two stores keep persistent messages, measured the way the broker uses a store:
//! publishers' messages arrive in group commits, each commit must be on disk before its
//! confirms go out, and each message is removed again when its consumer acks it.
//!
//! - `log`: the broker's own store (`rabbitscope::broker::store`): an append-only log with a
//!   CRC per record, one writer thread, one `fdatasync` per group commit.
//! - `redb`: the redb embedded database, one write transaction (durability Immediate) per
//!   group commit, holding that commit's messages and the removal of the previous commit's.
//!
//! ```text
//! cargo run --release --example store_choice [-- --messages N --batch N --runs N]
//! ```
//!
//! Prints each store's median messages per second. The data lives under the system temp
//! directory (on this machine the same disk as the work tree) and is removed afterwards.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use amq_protocol::protocol::BasicProperties;
use bytes::Bytes;
use rabbitscope::broker::journal::StoreOp;
use rabbitscope::broker::store::Store;
use rabbitscope::broker::Message;

struct Options {
    messages: u64,
    batch: u64,
    runs: usize,
}

fn options() -> Options {
    let mut options = Options {
        messages: 50_000,
        batch: 128,
        runs: 3,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse().ok());
        match (pair[0].as_str(), value) {
            ("--messages", Some(v)) => options.messages = v,
            ("--batch", Some(v)) => options.batch = v,
            ("--runs", Some(v)) => options.runs = v as usize,
            _ => panic!("usage: store_choice [--messages N] [--batch N] [--runs N]"),
        }
    }
    options
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rabbitscope-store-choice-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn message(body: &Bytes) -> Arc<Message> {
    Arc::new(Message {
        id: 0,
        exchange: "".into(),
        routing_key: "bench".into(),
        properties: BasicProperties::default().with_delivery_mode(2),
        body: body.clone(),
    })
}

/// The broker's store: each message its own submission (as from many publishers), a wait for
/// the commit's last ticket (the confirms), then the removals (the acks).
fn log_run(dir: &Path, o: &Options, body: &Bytes) -> f64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (store, _) = Store::open(dir).unwrap();
    let mut durable = store.durable();
    let (vhost, queue): (Arc<str>, Arc<str>) = ("/".into(), "bench".into());
    store.submit(vec![StoreOp::QueueDeclared {
        vhost: vhost.clone(),
        name: queue.clone(),
        auto_delete: false,
        arguments: Default::default(),
    }]);
    let started = Instant::now();
    let mut seq = 0;
    while seq < o.messages {
        let first = seq;
        let mut ticket = 0;
        for _ in 0..o.batch.min(o.messages - seq) {
            ticket = store.submit(vec![StoreOp::Enqueued {
                vhost: vhost.clone(),
                queue: queue.clone(),
                seq,
                message: message(body),
            }]);
            seq += 1;
        }
        runtime
            .block_on(durable.wait_for(|t| *t >= ticket))
            .unwrap();
        for s in first..seq {
            store.submit(vec![StoreOp::Removed {
                vhost: vhost.clone(),
                queue: queue.clone(),
                seq: s,
            }]);
        }
    }
    store.reload().unwrap();
    o.messages as f64 / started.elapsed().as_secs_f64()
}

const MESSAGES: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("messages");

/// redb: one durable transaction per group commit, with the previous commit's removals in it.
fn redb_run(dir: &Path, o: &Options, body: &Bytes) -> f64 {
    let db = redb::Database::create(dir.join("bench.redb")).unwrap();
    let started = Instant::now();
    let mut seq = 0;
    let mut previous = 0..0;
    while seq < o.messages {
        let first = seq;
        let tx = db.begin_write().unwrap();
        {
            let mut table = tx.open_table(MESSAGES).unwrap();
            for s in previous.clone() {
                table.remove(s).unwrap();
            }
            for _ in 0..o.batch.min(o.messages - seq) {
                table.insert(seq, body.as_ref()).unwrap();
                seq += 1;
            }
        }
        tx.commit().unwrap();
        previous = first..seq;
    }
    o.messages as f64 / started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let o = options();
    let body = Bytes::from(vec![b'x'; 1024]);
    println!(
        "{} messages of 1 KiB, group commits of {}, median of {} runs",
        o.messages, o.batch, o.runs
    );
    let mut log = Vec::new();
    let mut redb = Vec::new();
    for _ in 0..o.runs {
        let dir = scratch("log");
        log.push(log_run(&dir, &o, &body));
        std::fs::remove_dir_all(&dir).unwrap();
        let dir = scratch("redb");
        redb.push(redb_run(&dir, &o, &body));
        std::fs::remove_dir_all(&dir).unwrap();
    }
    println!("log   {:>9.0} msg/s", median(log));
    println!("redb  {:>9.0} msg/s", median(redb));
}
