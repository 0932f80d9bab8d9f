//! `rabbitscope watch`: the live view on a running RabbitMQ, read through its management API
//! (and, with `--trace`, its firehose).
//!
//! As with the embedded broker, the view has the main thread and the polling and firehose
//! tasks run on the lower-priority broker runtime. It imports the library's remote module and
//! the view; never the embedded broker.

use std::sync::Arc;

use color_eyre::eyre::{eyre, Result};

use rabbitscope::lesson::Lang;
use rabbitscope::remote::{firehose, RemoteOptions, RemoteSource};
use rabbitscope::terminal::printable;

use super::remote::{check_vhost, endpoint, refuse_embedded, ResponseLimitArgs, TrustArgs};
use super::runtime::{runtime, shutdown_signal, Threads};
use super::view::DisplayArgs;

#[derive(clap::Args)]
pub struct WatchArgs {
    /// The RabbitMQ, as an AMQP URL: amqp://user:pass@host:5672/vhost.
    url: String,
    /// Its management API (default: same host, port 15672, https for amqps URLs).
    #[arg(long, value_name = "URL")]
    management: Option<String>,
    /// Seconds between reads of the topology.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    interval: f64,
    /// Show each message's route, from the firehose. Turns tracing on for the vhost while
    /// watching, which slows the broker.
    #[arg(long)]
    trace: bool,
    #[command(flatten)]
    display: DisplayArgs,
    #[command(flatten)]
    limit: ResponseLimitArgs,
    #[command(flatten)]
    trust: TrustArgs,
}

/// `rabbitscope watch`; tracing goes off again (if this turned it on) before it returns.
pub fn run(args: WatchArgs, lang: Lang) -> Result<()> {
    args.trust.apply()?;
    firehose::allow_deep_headers();
    firehose::turn_off_on_panic();
    if !(args.interval.is_finite() && args.interval > 0.0) {
        return Err(eyre!("--interval must be a positive number of seconds"));
    }
    let endpoint = endpoint(&args.url, args.management.as_deref(), args.limit)?;
    let options = RemoteOptions {
        interval: std::time::Duration::from_secs_f64(args.interval),
        trace: args.trace,
    };
    if args.trace {
        eprintln!(
            "warning: --trace turns on tracing for vhost '{}' while watching; every message is \
             copied to amq.rabbitmq.trace, which slows the broker",
            printable(&endpoint.vhost)
        );
    }
    let broker_runtime = runtime(Threads::Broker)?;
    broker_runtime.block_on(refuse_embedded(&endpoint))?;
    broker_runtime.block_on(check_vhost(&endpoint))?;
    // Handlers go in before tracing may be turned on: a signal while the view is not up yet
    // still turns it off (the view listens for the same signals itself).
    let stop = {
        let _inside = broker_runtime.enter();
        shutdown_signal()?
    };
    let source = {
        let _inside = broker_runtime.enter();
        Arc::new(RemoteSource::start(endpoint, options)?)
    };
    // The view opens on a first picture if one comes soon; if not, on trouble and an empty one.
    let stopped = broker_runtime.block_on(async {
        tokio::select! {
            _ = stop => true,
            _ = source.refreshed(1, std::time::Duration::from_secs(5)) => false,
        }
    });
    if stopped {
        if let Ok(source) = Arc::try_unwrap(source) {
            broker_runtime.block_on(source.close());
        }
        return Ok(());
    }
    let result = runtime(Threads::View)?.block_on(rabbitscope::ui::run(
        source.clone(),
        args.display.view_options(lang),
        rabbitscope::ui::LessonSetup::default(),
    ));
    // Tracing goes off again (if this turned it on) before the process ends.
    if let Ok(source) = Arc::try_unwrap(source) {
        broker_runtime.block_on(source.close());
    }
    result
}
