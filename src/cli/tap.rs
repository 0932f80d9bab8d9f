//! `rabbitscope tap`: one line per message published on a RabbitMQ, read from its firehose.
//!
//! Tracing is on for the URL's vhost while it runs and off again on every way out, if this
//! turned it on. An oslo.messaging message's line ends with who published it and what it
//! says (`nova-api: cast schedule_and_build_instances 1.17`, `reply to select_destinations`),
//! the publisher's service read from its connection's `connection_name`. It imports the
//! library's remote module and the OpenStack lens; never the view.

use std::collections::BTreeMap;

use color_eyre::eyre::{eyre, Result};

use rabbitscope::broker::exchange::{explain_in, mandatory_words};
use rabbitscope::broker::VhostSnapshot;
use rabbitscope::openstack::lens::{Calls, Lens};
use rabbitscope::remote::firehose::{tap_line, Trace, Tracing};
use rabbitscope::remote::{snapshot, Endpoint, Firehose, FirehoseKeys, Management};
use rabbitscope::terminal::printable;

use super::remote::{on_firehose, ManagementArgs};
use super::runtime::shutdown_signal;

#[derive(clap::Args)]
pub struct TapArgs {
    /// The RabbitMQ, as an AMQP URL: amqp://user:pass@host:5672/vhost.
    source: String,
    /// Stop after this many lines.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Print only lines (without the time) this regular expression matches.
    #[arg(long, value_name = "REGEX")]
    filter: Option<regex::Regex>,
    /// Under each unroutable message, say why: the exchange's bindings nearest its routing
    /// key, on lines indented by two spaces.
    #[arg(long)]
    why: bool,
    #[command(flatten)]
    remote: ManagementArgs,
}

/// `rabbitscope tap`: one line per publish until --count lines, SIGINT or SIGTERM. The
/// firehose's headers may nest deeply, so it runs on a thread with a deep stack.
pub fn run(args: TapArgs) -> Result<()> {
    args.remote.trust.apply()?;
    on_firehose(move || tap(args))
}

async fn tap(args: TapArgs) -> Result<()> {
    let endpoint = args.remote.checked_endpoint(&args.source).await?;
    let api = Management::new(&endpoint)?;
    // Handlers go in first: a SIGINT from now on still turns tracing off.
    let stop = shutdown_signal()?;
    let mut tracing = Tracing::new(api.clone(), &endpoint.vhost);
    tracing.ensure_on().await?;
    for node in tracing.untraced() {
        eprintln!(
            "not traced on {}: messages published there are not shown",
            printable(node)
        );
    }
    let result = tap_lines(&args, &endpoint, &api, stop).await;
    if let Err(e) = tracing.release().await {
        eprintln!(
            "could not turn tracing off again: {}",
            printable(&e.to_string())
        );
    }
    result
}

/// Prints the lines until --count, or `stop`.
async fn tap_lines(
    args: &TapArgs,
    endpoint: &Endpoint,
    api: &Management,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let mut firehose = Firehose::open(&endpoint.amqp_url, FirehoseKeys::Publish)
        .await
        .map_err(|e| eyre!("{e} ({})", endpoint.masked_url()))?;
    tokio::pin!(stop);
    let mut printed = 0;
    // The default exchange's trace names the queue it was sent to, existing or not.
    let mut known = BTreeMap::new();
    let mut picture = Picture::default();
    let mut calls = Calls::default();
    let result = loop {
        if args.count.is_some_and(|n| printed >= n) {
            break Ok(());
        }
        let trace = tokio::select! {
            _ = &mut stop => break Ok(()),
            trace = firehose.next() => trace,
        };
        let (exchange, routing_key, mut queues, headers, connection, body) = match trace {
            Ok(Trace::Published {
                exchange,
                routing_key,
                queues,
                headers,
                connection,
                body,
                ..
            }) => (exchange, routing_key, queues, headers, connection, body),
            Ok(_) => continue,
            Err(e) => break Err(eyre!("{e}")),
        };
        if exchange.is_empty() {
            let mut existing = Vec::new();
            for queue in queues {
                let exists = match known.get(&queue) {
                    Some(exists) => Some(*exists),
                    None => match api.queue_exists(&endpoint.vhost, &queue).await {
                        Ok(exists) => {
                            known.insert(queue.clone(), exists);
                            Some(exists)
                        }
                        // Unknown, not "exists": marked `?`, said on stderr, asked again next
                        // time.
                        Err(e) => {
                            eprintln!(
                                "warning: could not ask whether queue {} exists ({}): it is \
                                 marked ?",
                                printable(&queue),
                                printable(&e.to_string())
                            );
                            None
                        }
                    },
                };
                match exists {
                    Some(true) => existing.push(queue),
                    Some(false) => {}
                    None => existing.push(format!("{queue}?")),
                }
            }
            queues = existing;
        }
        let mut line = tap_line(
            std::time::SystemTime::now(),
            &exchange,
            &routing_key,
            &queues,
        );
        // Only oslo.messaging's messages send tap to the management API for their publisher.
        if let Some(said) = calls.read(&body) {
            line.push_str("  ");
            if let Some(who) = picture.publisher(api, &endpoint.vhost, &connection).await {
                line.push_str(&format!("{}: ", printable(&who)));
            }
            line.push_str(&printable(&said.headline));
        }
        // The time is left out of what the filter sees.
        let shown = line.split_once(' ').map_or(line.as_str(), |(_, rest)| rest);
        if args.filter.as_ref().is_some_and(|f| !f.is_match(shown)) {
            continue;
        }
        println!("{line}");
        if args.why && queues.is_empty() {
            if let Some(vhost) = picture.read(api, &endpoint.vhost).await {
                let why = explain_in(vhost, &exchange, &routing_key, &headers);
                for reason in why.lines() {
                    println!("  {}", printable(&reason));
                }
                println!("  {}", mandatory_words(None));
            }
        }
        printed += 1;
    };
    firehose.close().await;
    result
}

/// The vhost's topology for `--why` and for publishers' services, read again when older than
/// [`Picture::FRESH`].
#[derive(Default)]
struct Picture {
    read_at: Option<std::time::Instant>,
    vhost: Option<VhostSnapshot>,
    /// Whose its connections are, learnt from it.
    lens: Lens,
}

impl Picture {
    /// A binding made a moment ago is in it; a burst of unroutable messages reads it once.
    const FRESH: std::time::Duration = std::time::Duration::from_secs(2);

    async fn read(&mut self, api: &Management, vhost: &str) -> Option<&VhostSnapshot> {
        if self.read_at.is_none_or(|at| at.elapsed() > Self::FRESH) {
            self.read_at = Some(std::time::Instant::now());
            match snapshot::vhost_snapshot(api, vhost).await {
                Ok(read) => {
                    self.lens = lens_of(&read);
                    self.vhost = Some(read);
                }
                Err(e) => eprintln!(
                    "warning: could not read the bindings to say why: {}",
                    printable(&e.to_string())
                ),
            }
        }
        self.vhost.as_ref()
    }

    /// The service (and host, where known) of the connection the broker names `connection`:
    /// `nova-compute@compute-1`; none for a connection not oslo.messaging's or not listed.
    async fn publisher(
        &mut self,
        api: &Management,
        vhost: &str,
        connection: &str,
    ) -> Option<String> {
        let listed = self.read(api, vhost).await?;
        let id = listed.connections.iter().find(|c| c.name == connection)?.id;
        self.lens.connection_whose(id).label()
    }
}

/// The lens over one snapshot: connections first, then who consumes what.
fn lens_of(vhost: &VhostSnapshot) -> Lens {
    let mut lens = Lens::new();
    for c in &vhost.connections {
        lens.connection(c.id, c.client.connection_name.as_deref());
    }
    for c in &vhost.consumers {
        lens.consumes(c.connection, &c.queue);
    }
    lens
}
