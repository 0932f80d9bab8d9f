//! `rabbitscope broker`: the embedded broker alone, headless, until a stop signal; its log
//! goes to stderr.
//!
//! It imports the library's broker, amqp and definitions modules (through `embedded.rs`);
//! never the view.

use std::net::SocketAddr;
use std::path::PathBuf;

use color_eyre::eyre::{Result, WrapErr};

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
    Ok(())
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
