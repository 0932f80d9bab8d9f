//! The embedded broker as the command line starts it, for the view and for `broker`: where it
//! keeps what outlives it ([`StoreArgs`]), where it listens ([`TlsArgs`], [`bind`]), and how it
//! is opened.
//!
//! Shared by `view.rs` and `broker.rs`; it imports the library's broker, amqp, definitions and
//! tls modules, never the view.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use color_eyre::eyre::{eyre, Result};

use rabbitscope::amqp::Server;
use rabbitscope::broker::{Behaviour, Broker, BrokerConfig, DeprecatedFeature, Release};

/// Where the embedded broker keeps what outlives it, what it may hold, and the release it
/// behaves as (the view and `broker`).
#[derive(clap::Args, Clone)]
pub struct StoreArgs {
    /// Keep durable exchanges, queues, bindings, persistent messages, users and vhosts here
    /// (default: $XDG_DATA_HOME/rabbitscope/broker-PORT, else
    /// ~/.local/share/rabbitscope/broker-PORT).
    #[arg(long, global = true, value_name = "DIR", conflicts_with = "transient")]
    data_dir: Option<PathBuf>,
    /// Keep nothing on disk: everything is gone when the broker stops.
    #[arg(long, global = true)]
    transient: bool,
    /// Block publishing connections (connection.blocked) while what the broker holds for its
    /// clients (messages queued or not yet acked, bodies arriving, frames not yet written) takes
    /// more than this many MiB (default: 40% of this machine's memory, like RabbitMQ's high
    /// watermark).
    #[arg(long, global = true, value_name = "MIB")]
    memory_limit: Option<u64>,
    /// Block publishing connections while the data directory's filesystem has less than this
    /// free: bytes, or with a unit such as 50MB, 1GB, 512MiB (default: 50MB, RabbitMQ's
    /// disk_free_limit).
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size)]
    disk_free_limit: Option<u64>,
    #[command(flatten)]
    release: ReleaseArgs,
}

/// The RabbitMQ release the embedded broker behaves as, and RabbitMQ's switches for its
/// deprecated features (`deprecated_features.permit.FEATURE` in rabbitmq.conf).
#[derive(clap::Args, Clone)]
pub struct ReleaseArgs {
    /// Behave as this RabbitMQ release: 3.13, 4.0, 4.1, 4.2 or 4.3 (4.0.5 means 4.0). 4.3 denies
    /// deprecated features, such as the non-durable non-exclusive queues oslo.messaging declares
    /// by default [default: 4.2]
    #[arg(long, global = true, value_name = "RELEASE")]
    behave_as: Option<Release>,
    /// Permit a deprecated feature the release denies, as RabbitMQ's
    /// `deprecated_features.permit.FEATURE = true` does: transient_nonexcl_queues, global_qos or
    /// queue_master_locator (repeatable).
    #[arg(long = "permit", global = true, value_name = "FEATURE")]
    permit: Vec<DeprecatedFeature>,
    /// Deny a deprecated feature the release permits, as
    /// `deprecated_features.permit.FEATURE = false` does (repeatable).
    #[arg(long = "deny", global = true, value_name = "FEATURE")]
    deny: Vec<DeprecatedFeature>,
}

impl ReleaseArgs {
    /// The release with the switches applied; a feature both permitted and denied, or unknown
    /// to the release, is refused.
    pub fn behaviour(&self) -> Result<Behaviour> {
        if let Some(both) = self.permit.iter().find(|f| self.deny.contains(f)) {
            return Err(eyre!("--permit {both} and --deny {both}: choose one"));
        }
        let mut behaviour = Behaviour::of(self.behave_as.unwrap_or(Release::DEFAULT));
        let switches = self.permit.iter().map(|f| (*f, true));
        for (feature, permitted) in switches.chain(self.deny.iter().map(|f| (*f, false))) {
            behaviour = behaviour.permit(feature, permitted).map_err(|e| eyre!(e))?;
        }
        Ok(behaviour)
    }
}

/// A size as RabbitMQ's configuration writes it: `50000000`, `50MB`, `1GB`, `512MiB`.
fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 50MB"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit {other:?}: use B, kB, MB, GB, KiB, MiB or GiB"
            ))
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// RabbitMQ's default memory high watermark: 40% of the machine's memory (1 GiB when it cannot
/// be read).
fn default_memory_limit() -> usize {
    let total_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<usize>().ok())
        });
    total_kib.map_or(1 << 30, |kib| kib * 1024 / 10 * 4)
}

impl StoreArgs {
    /// The data directory for a broker listening on `listen`, None when transient. One per
    /// port by default, so two brokers never share one.
    fn dir(&self, listen: SocketAddr) -> Result<Option<PathBuf>> {
        if self.transient {
            return Ok(None);
        }
        if let Some(dir) = &self.data_dir {
            return Ok(Some(dir.clone()));
        }
        let base = std::env::var_os("XDG_DATA_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .ok_or_else(|| {
                eyre!("no data directory: set HOME, or pass --data-dir or --transient")
            })?;
        Ok(Some(
            base.join("rabbitscope")
                .join(format!("broker-{}", listen.port())),
        ))
    }

    /// A broker configuration with the data directory's users and vhosts, plus `extra` (the
    /// command line's); what is new is kept there too.
    pub fn config(
        &self,
        listen: SocketAddr,
        extra: impl FnOnce(BrokerConfig) -> Result<BrokerConfig>,
    ) -> Result<BrokerConfig> {
        let behaviour = self.release.behaviour()?;
        let dir = self.dir(listen)?;
        let mut config = BrokerConfig::default();
        if let Some(dir) = &dir {
            if let Some(kept) = rabbitscope::definitions::load_kept(dir)? {
                config = kept.configure(config)?;
            }
        }
        config = extra(config)?;
        if let Some(dir) = &dir {
            // On a full disk the broker still starts, with what it kept before (and the disk
            // alarm on): only what this command line added is not kept.
            let kept =
                rabbitscope::definitions::keep(&config, dir).map_err(color_eyre::Report::from);
            if let Err(error) = kept {
                if !is_disk_full(&error) {
                    return Err(error);
                }
                tracing::warn!(dir = %dir.display(), "the data directory's disk is full: this start's users and vhosts are not kept");
            }
        }
        config.data_dir = dir;
        config.memory_limit = Some(match self.memory_limit {
            Some(mib) => mib as usize * 1024 * 1024,
            None => default_memory_limit(),
        });
        config.behaviour = behaviour;
        config.disk_free_limit = Some(
            self.disk_free_limit
                .unwrap_or(rabbitscope::broker::limits::DEFAULT_DISK_FREE_LIMIT),
        );
        Ok(config)
    }
}

/// Whether an error comes from a disk with no room left.
fn is_disk_full(error: &color_eyre::Report) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            .is_some_and(|code| code == libc::ENOSPC || code == libc::EDQUOT)
    })
}

/// The embedded broker's amqps listener, beside the plain one.
#[derive(clap::Args, Clone)]
pub struct TlsArgs {
    /// Serve amqps too, with this certificate (PEM; the chain, server certificate first).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Where amqps listens (RabbitMQ's is 5671; ours is one above the plain 5673).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:5674",
        requires = "tls_cert"
    )]
    tls_listen: SocketAddr,
}

/// A broker on an address other hosts can reach says so: anyone who can reach it may try to
/// log in (guest is still refused from other hosts, as RabbitMQ does).
pub fn exposure_warning(address: SocketAddr) -> Option<String> {
    (!address.ip().to_canonical().is_loopback()).then(|| {
        format!(
            "listening on {address}, not only on loopback: other hosts can connect (guest only \
             from this machine)"
        )
    })
}

/// The plain listener, and the amqps one when a certificate is given. The certificate is read
/// first, so a bad file is reported before anything listens.
pub async fn bind(broker: Arc<Broker>, listen: SocketAddr, tls: TlsArgs) -> Result<Server> {
    let tls_config = match (&tls.tls_cert, &tls.tls_key) {
        (Some(cert), Some(key)) => Some(rabbitscope::tls::server_config(cert, key)?),
        _ => None,
    };
    let mut server = Server::bind(broker, listen)
        .await
        .map_err(|e| eyre!("cannot listen on {listen}: {e}"))?;
    if let Some(config) = tls_config {
        let address = tls.tls_listen;
        server
            .listen_tls(address, config)
            .await
            .map_err(|e| eyre!("cannot listen for amqps on {address}: {e}"))?;
    }
    Ok(server)
}

/// Opens the broker, naming its data directory when that fails.
pub fn open_broker(config: BrokerConfig) -> Result<Arc<Broker>> {
    let dir = config.data_dir.clone();
    Broker::open(config).map_err(|e| match dir {
        Some(dir) => eyre!("cannot open the data directory {}: {e}", dir.display()),
        None => eyre!("cannot start the broker: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::{exposure_warning, parse_size, StoreArgs};
    use clap::Parser;

    /// Just the store's options, parsed as the command line would.
    #[derive(Parser)]
    struct Store {
        #[command(flatten)]
        store: StoreArgs,
    }

    fn store(args: &[&str]) -> StoreArgs {
        Store::try_parse_from(std::iter::once("rabbitscope").chain(args.iter().copied()))
            .unwrap()
            .store
    }

    #[test]
    fn the_data_directory_is_the_one_given_or_none_when_transient() {
        let listen = "127.0.0.1:5673".parse().unwrap();
        assert_eq!(store(&["--transient"]).dir(listen).unwrap(), None);
        assert_eq!(
            store(&["--data-dir", "/tmp/kept"]).dir(listen).unwrap(),
            Some("/tmp/kept".into())
        );
        assert!(Store::try_parse_from(["rabbitscope", "--transient", "--data-dir", "x"]).is_err());
    }

    #[test]
    fn only_an_address_beyond_loopback_is_warned_about() {
        for quiet in ["127.0.0.1:5673", "[::1]:5673", "[::ffff:127.0.0.1]:5673"] {
            assert_eq!(exposure_warning(quiet.parse().unwrap()), None, "{quiet}");
        }
        for exposed in ["0.0.0.0:5673", "[::]:5673", "192.0.2.7:5673"] {
            let warning = exposure_warning(exposed.parse().unwrap());
            assert!(
                warning.is_some_and(|w| w.contains("other hosts can connect")),
                "{exposed}"
            );
        }
    }

    #[test]
    fn sizes_read_as_rabbitmq_writes_them() {
        assert_eq!(parse_size("50000000"), Ok(50_000_000));
        assert_eq!(parse_size("50MB"), Ok(50_000_000));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("50 furlongs").is_err());
        assert!(parse_size("MB").is_err());
        assert!(parse_size("99999999999GB").is_err());
    }
}
