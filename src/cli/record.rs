//! `rabbitscope record`: a RabbitMQ's events written to a trace file, until --count,
//! --duration or a stop signal.
//!
//! Topology changes come from the management API, messages from the firehose; tracing goes off
//! again on every way out if this turned it on, and the file is whole whenever it stops. It
//! imports the library's remote and trace modules; never the view.

use std::path::PathBuf;
use std::time::Duration;

use color_eyre::eyre::{eyre, Result, WrapErr};

use rabbitscope::remote::{RemoteOptions, RemoteSource};
use rabbitscope::source::Source;
use rabbitscope::terminal::printable;
use rabbitscope::trace::{self, Header, Limits, TraceWriter};

use super::remote::{on_firehose, ManagementArgs};
use super::runtime::shutdown_signal;

#[derive(clap::Args)]
pub struct RecordArgs {
    /// The RabbitMQ, as an AMQP URL: amqp://user:pass@host:5672/vhost.
    source: String,
    /// The trace file to write.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Stop after this many events.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    #[command(flatten)]
    remote: ManagementArgs,
}

/// `rabbitscope record`, on a thread with a deep stack (the firehose's headers may nest
/// deeply).
pub fn run(args: RecordArgs) -> Result<()> {
    args.remote.trust.apply()?;
    on_firehose(move || record(args))
}

async fn record(args: RecordArgs) -> Result<()> {
    let duration = match args.duration {
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(_) => return Err(eyre!("--duration must be a positive number of seconds")),
        None => None,
    };
    let endpoint = args.remote.checked_endpoint(&args.source).await?;
    // Handlers go in first: a SIGINT from now on still closes the file and turns tracing off.
    let stop = shutdown_signal()?;
    let masked = endpoint.masked_url();
    let vhost = endpoint.vhost.clone();
    let options = RemoteOptions {
        trace: true,
        ..RemoteOptions::default()
    };
    let source = RemoteSource::start(endpoint, options)?;
    let result = async {
        if !source.refreshed(1, Duration::from_secs(10)).await {
            let why = source.trouble().unwrap_or_else(|| "no answer".into());
            // It stops here rather than retry, whatever the trouble says.
            let why = why
                .split("; retrying")
                .next()
                .unwrap_or_default()
                .to_string();
            return Err(eyre!("cannot read the topology of {masked}: {why}"));
        }
        // Subscribed before the snapshot is taken: nothing falls between the two.
        let reader = source.subscribe();
        let header = Header {
            format: trace::FORMAT_VERSION,
            source: masked.clone(),
            vhost,
            recorded_at: std::time::SystemTime::now(),
            snapshot: source.snapshot(),
        };
        let mut writer = TraceWriter::create(&args.output, &header)
            .wrap_err_with(|| format!("cannot write {}", args.output.display()))?;
        eprintln!(
            "recording {masked} to {} (Ctrl-C stops)",
            args.output.display()
        );
        let limits = Limits {
            count: args.count,
            duration,
        };
        // The firehose retries on its own; while it cannot, say why rather than record
        // nothing in silence.
        let tell_trouble = async {
            let mut told = None;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let trouble = source.trouble();
                if trouble != told {
                    match &trouble {
                        Some(why) => eprintln!("{}", printable(why)),
                        None => eprintln!("{masked} answers again"),
                    }
                    told = trouble;
                }
            }
        };
        let recorded = tokio::select! {
            recorded = trace::record(reader, &mut writer, limits, stop) => recorded,
            never = tell_trouble => never,
        };
        let events = writer.finish();
        let recorded = recorded.wrap_err_with(|| format!("writing {}", args.output.display()))?;
        events.wrap_err_with(|| format!("writing {}", args.output.display()))?;
        Ok(recorded)
    }
    .await;
    source.close().await;
    let recorded = result?;
    let missed = if recorded.missed > 0 {
        format!(" ({} missed: the recorder fell behind)", recorded.missed)
    } else {
        String::new()
    };
    let noun = if recorded.events == 1 {
        "event"
    } else {
        "events"
    };
    println!(
        "{} {noun} written to {}{missed}",
        recorded.events,
        args.output.display()
    );
    Ok(())
}
