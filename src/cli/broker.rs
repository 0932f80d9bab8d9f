//! `rabbitscope broker`: the embedded broker alone, headless, until a stop signal; its log
//! goes to stderr.
//!
//! With `--record FILE` it also writes what it routes in one vhost as a trace, the format
//! `record` writes from a RabbitMQ and `replay` reads.
//!
//! It imports the library's broker, amqp, definitions and trace modules (through
//! `embedded.rs`); never the view.

use std::net::SocketAddr;
use std::path::PathBuf;

use color_eyre::eyre::{eyre, Result, WrapErr};

use rabbitscope::broker::Broker;
use rabbitscope::trace::{self, Header, TraceWriter};

use super::embedded::{bind, exposure_warning, open_broker, StoreArgs, TlsArgs};
use super::runtime::{runtime, shutdown_signal, Threads};

#[derive(clap::Args)]
pub struct BrokerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5673")]
    listen: SocketAddr,
    #[command(flatten)]
    tls: TlsArgs,
    /// Add a vhost (repeatable); `/` always exists. Guest may do everything there.
    #[arg(long = "vhost", value_name = "NAME")]
    vhosts: Vec<String>,
    /// Load a RabbitMQ definitions JSON file (users, vhosts, permissions, topic permissions,
    /// exchanges, queues, bindings) at start. Permissions are enforced as RabbitMQ does.
    #[arg(long, value_name = "FILE")]
    definitions: Option<PathBuf>,
    /// Write the events of one vhost (declarations, publishes with their routes, deliveries,
    /// acks) to this trace file until the broker stops, as `rabbitscope record` does for a
    /// RabbitMQ; `rabbitscope replay FILE` plays it back.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// The vhost --record writes (it must exist at start: add it with --vhost) [default: /].
    #[arg(long, value_name = "NAME", requires = "record")]
    record_vhost: Option<String>,
}

/// `rabbitscope broker`. Logs go to stderr in this headless mode only; they would scribble
/// over the view.
pub fn run(args: BrokerArgs, store: &StoreArgs) -> Result<()> {
    let (stderr, _flush_on_exit) = stderr_log_writer();
    tracing_subscriber::fmt()
        .with_writer(stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    runtime(Threads::Server)?.block_on(serve(args, store))
}

async fn serve(args: BrokerArgs, store: &StoreArgs) -> Result<()> {
    let definitions = match &args.definitions {
        Some(path) => Some(
            rabbitscope::definitions::read_file(path)
                .wrap_err_with(|| format!("loading definitions from {}", path.display()))?,
        ),
        None => None,
    };
    let config = store.config(args.listen, |mut config| {
        for vhost in &args.vhosts {
            config = config.with_vhost(vhost);
        }
        match &definitions {
            Some(defs) => Ok(defs.configure(config)?),
            None => Ok(config),
        }
    })?;
    let broker = open_broker(config)?;
    if let Some(defs) = &definitions {
        defs.declare(&broker)?;
    }
    // Read before any client can connect: the snapshot and the events then neither miss nor
    // repeat anything.
    let recording = match &args.record {
        Some(path) => Some(Recording::prepare(
            &broker,
            path.clone(),
            args.record_vhost.as_deref().unwrap_or("/"),
        )?),
        None => None,
    };
    let server = bind(broker, args.listen, args.tls).await?;
    // Handlers go in before the address is announced, so a signal right after it is caught.
    let stop = shutdown_signal()?;
    let addresses = std::iter::once(server.local_addr()).chain(server.tls_local_addr());
    for address in addresses {
        if let Some(warning) = exposure_warning(address) {
            tracing::warn!(%address, "{warning}");
        }
    }
    tracing::info!("{}", server.broker().behaviour().summary());
    let data_dir = server.broker().data_dir().map(|d| d.display().to_string());
    let address = server.local_addr();
    // The header is on disk before the address is announced.
    let recorder = match recording {
        Some(recording) => Some(recording.start(address)?),
        None => None,
    };
    // The plain address goes last: scripts read it up to the end of the line.
    match (data_dir, server.tls_local_addr()) {
        (Some(dir), Some(amqps)) => {
            tracing::info!(data_dir = %dir, amqps_address = %amqps, address = %address, "broker listening")
        }
        (Some(dir), None) => {
            tracing::info!(data_dir = %dir, address = %address, "broker listening")
        }
        (None, Some(amqps)) => {
            tracing::info!(amqps_address = %amqps, address = %address, "broker listening (transient: nothing kept on disk)")
        }
        (None, None) => {
            tracing::info!(address = %address, "broker listening (transient: nothing kept on disk)")
        }
    }
    server.run_until(stop).await;
    tracing::info!("broker stopped");
    if let Some(recorder) = recorder {
        recorder.finish().await?;
    }
    Ok(())
}

/// `--record`: what is read before the broker listens.
struct Recording {
    path: PathBuf,
    vhost: String,
    reader: rabbitscope::events::EventReader,
    snapshot: rabbitscope::broker::Snapshot,
}

/// A recording under way, on a task of its own.
struct Recorder {
    path: PathBuf,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<(trace::Recorded, u64)>>,
}

impl Recording {
    fn prepare(broker: &Broker, path: PathBuf, vhost: &str) -> Result<Recording> {
        // Subscribed before the snapshot is taken: nothing falls between the two.
        let reader = broker.subscribe();
        let mut snapshot = broker.snapshot();
        snapshot.vhosts.retain(|v| v.name == vhost);
        if snapshot.vhosts.is_empty() {
            return Err(eyre!(
                "--record-vhost {vhost}: the broker has no such vhost (add it with --vhost {vhost})"
            ));
        }
        Ok(Recording {
            path,
            vhost: vhost.to_string(),
            reader,
            snapshot,
        })
    }

    /// Writes the header and records from there on.
    fn start(self, address: SocketAddr) -> Result<Recorder> {
        let Recording {
            path,
            vhost,
            reader,
            snapshot,
        } = self;
        let header = Header {
            format: trace::FORMAT_VERSION,
            source: format!("embedded broker amqp://{address}"),
            vhost: vhost.clone(),
            recorded_at: std::time::SystemTime::now(),
            snapshot,
        };
        let mut writer = TraceWriter::create(&path, &header)
            .wrap_err_with(|| format!("cannot write {}", path.display()))?;
        tracing::info!(file = %path.display(), vhost = %vhost, "recording");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            let recorded = trace::record_vhost(reader, &mut writer, &vhost, stopped).await?;
            Ok((recorded, writer.finish()?))
        });
        Ok(Recorder { path, stop, task })
    }
}

impl Recorder {
    /// Stops it once the broker has stopped, and says what the file holds.
    async fn finish(self) -> Result<()> {
        let _ = self.stop.send(());
        let written = self.task.await.wrap_err("the recorder failed")?;
        let (recorded, events) =
            written.wrap_err_with(|| format!("writing {}", self.path.display()))?;
        if recorded.missed > 0 {
            tracing::warn!(
                missed = recorded.missed,
                "the recorder fell behind: events are missing from the trace"
            );
        }
        tracing::info!(file = %self.path.display(), events, "trace written");
        Ok(())
    }
}

/// Log lines that may wait for stderr before new ones are dropped.
const LOG_LINES_BUFFERED: usize = 1024;

/// A stderr writer that never blocks the broker: lines wait in a bounded buffer written by a
/// thread of its own and are dropped when it is full (a pipe nobody reads must not stop the
/// broker, which logs while holding its state lock). Once lines are dropped, a line saying how
/// many follows when the buffer has room again. The guard flushes what waits when dropped.
fn stderr_log_writer() -> (
    tracing_appender::non_blocking::NonBlocking,
    tracing_appender::non_blocking::WorkerGuard,
) {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_LINES_BUFFERED)
        .lossy(true)
        .thread_name("rabbitscope-log")
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    std::thread::Builder::new()
        .name("rabbitscope-log-drops".into())
        .spawn(move || {
            let (mut reported, mut last) = (0, 0);
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                let now = dropped.dropped_lines();
                // Said only once a second passed without a drop: the buffer drained.
                if now > reported && now == last {
                    tracing::warn!(
                        dropped = now - reported,
                        "log lines dropped: stderr was not read fast enough"
                    );
                    reported = now;
                }
                last = now;
            }
        })
        .ok();
    (writer, guard)
}
