//! `rabbitscope snapshot`: a RabbitMQ's topology printed once, in one of several formats.
//!
//! It imports the library's remote module (and `broker::Snapshot`, the shape it prints); never
//! the view.

use color_eyre::eyre::{eyre, Result};

use rabbitscope::broker::Snapshot;
use rabbitscope::remote::management::ErrorKind;
use rabbitscope::remote::{snapshot, Management};
use rabbitscope::terminal::printable;

use super::remote::{endpoint, refuse_embedded, ResponseLimitArgs, TrustArgs, MANAGEMENT_NEEDED};
use super::runtime::{runtime, Threads};

#[derive(Clone, Copy, clap::ValueEnum)]
enum SnapshotFormat {
    Json,
    Yaml,
    /// Graphviz.
    Dot,
    /// An indented listing: each queue with its depths and its consumers by client.
    Text,
    /// RabbitMQ definitions JSON (loadable with `rabbitscope broker --definitions FILE`).
    Definitions,
}

#[derive(clap::Args)]
pub struct SnapshotArgs {
    /// The RabbitMQ, as an AMQP URL: amqp://user:pass@host:5672/vhost.
    source: String,
    #[arg(long, value_enum, default_value = "json")]
    format: SnapshotFormat,
    /// Its management API (default: same host, port 15672, https for amqps URLs).
    #[arg(long, value_name = "URL")]
    management: Option<String>,
    /// Only this vhost (default: every vhost the user may see).
    #[arg(long, value_name = "NAME")]
    vhost: Option<String>,
    #[command(flatten)]
    limit: ResponseLimitArgs,
    #[command(flatten)]
    trust: TrustArgs,
}

/// `rabbitscope snapshot`: the topology on stdout.
pub fn run(args: SnapshotArgs) -> Result<()> {
    args.trust.apply()?;
    runtime(Threads::Plain)?.block_on(print_snapshot(args))
}

async fn print_snapshot(args: SnapshotArgs) -> Result<()> {
    let (api, snapshot) = remote_snapshot(
        &args.source,
        args.management.as_deref(),
        args.vhost.as_deref(),
        args.limit,
    )
    .await?;
    let text = match args.format {
        SnapshotFormat::Json => {
            rabbitscope::terminal::json(serde_json::to_string_pretty(&snapshot)?) + "\n"
        }
        SnapshotFormat::Yaml => serde_yaml::to_string(&snapshot)?,
        SnapshotFormat::Dot => rabbitscope::remote::render::dot(&snapshot),
        SnapshotFormat::Text => rabbitscope::remote::render::text(&snapshot),
        SnapshotFormat::Definitions => {
            // Who may use each vhost, so a broker loading the file lets them in (reading
            // permissions takes an administrator; without, the file has none).
            let mut permissions = Vec::new();
            for v in &snapshot.vhosts {
                match api.permissions(&v.name).await {
                    Ok(p) => permissions.extend(p),
                    Err(e) => eprintln!(
                        "permissions of vhost '{}' left out: {}",
                        printable(&v.name),
                        printable(&e.to_string())
                    ),
                }
            }
            let definitions = rabbitscope::remote::render::definitions(&snapshot, &permissions);
            rabbitscope::terminal::json(serde_json::to_string_pretty(&definitions)?) + "\n"
        }
    };
    print!("{text}");
    Ok(())
}

/// The management API's picture (of one vhost, or of all), or a clear word on why there is none.
async fn remote_snapshot(
    url: &str,
    management: Option<&str>,
    vhost: Option<&str>,
    limit: ResponseLimitArgs,
) -> Result<(Management, Snapshot)> {
    let endpoint = endpoint(url, management, limit)?;
    refuse_embedded(&endpoint).await?;
    let api = Management::new(&endpoint)?;
    let read = match vhost {
        Some(name) => snapshot::one_vhost(&api, name, snapshot::Lag::Ask).await,
        None => snapshot(&api).await,
    };
    match read {
        Ok(snapshot) => Ok((api, snapshot)),
        Err(e) if e.kind == ErrorKind::NotFound && vhost.is_some() => {
            // The API answered for the vhosts list before; a 404 here is the vhost.
            match api.vhost_names().await {
                Ok(names) if !names.iter().any(|n| Some(n.as_str()) == vhost) => Err(eyre!(
                    "there is no vhost '{}' at {}",
                    vhost.unwrap_or_default(),
                    api.url()
                )),
                _ => Err(e.into()),
            }
        }
        Err(e) if matches!(e.kind, ErrorKind::Unreachable | ErrorKind::NotFound) => {
            Err(eyre!("{e}\n{MANAGEMENT_NEEDED}"))
        }
        Err(e) => Err(e.into()),
    }
}
