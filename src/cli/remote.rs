//! What every command on a running RabbitMQ shares (`watch`, `snapshot`, `tap`, `record`,
//! `lessons check --broker`): trusting its certificate, bounding the management API's answers,
//! and the checks made before anything is turned on.
//!
//! It imports the library's remote and tls modules, never the view or the embedded broker.

use std::path::PathBuf;

use std::future::Future;

use color_eyre::eyre::{eyre, Result};

use rabbitscope::remote::management::ErrorKind;
use rabbitscope::remote::{firehose, Endpoint, Management};

use super::runtime::{runtime, Threads};

/// Trust for amqps (and https) URLs beyond the system's certificates.
#[derive(clap::Args)]
pub struct TrustArgs {
    /// Also trust the CA certificates in FILE (PEM): for a broker with a self-signed
    /// certificate. SSL_CERT_FILE replaces the system's certificates for amqps.
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
}

impl TrustArgs {
    pub fn apply(&self) -> Result<()> {
        if let Some(path) = &self.ca_cert {
            rabbitscope::tls::trust_ca_file(path)?;
        }
        Ok(())
    }
}

/// How large one answer of the management API may be.
#[derive(clap::Args, Clone, Copy)]
pub struct ResponseLimitArgs {
    /// Refuse a management API answer larger than this many MiB (a listing of a very large
    /// broker may need more).
    #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    max_response_mib: u64,
}

impl ResponseLimitArgs {
    fn apply(&self, endpoint: &mut Endpoint) {
        endpoint.max_response = usize::try_from(self.max_response_mib << 20).unwrap_or(usize::MAX);
    }
}

/// The endpoint of an AMQP URL (and its management API), with the answer size bound.
pub fn endpoint(url: &str, management: Option<&str>, limit: ResponseLimitArgs) -> Result<Endpoint> {
    let mut endpoint = Endpoint::new(url, management)?;
    limit.apply(&mut endpoint);
    Ok(endpoint)
}

/// Runs a command that reads the firehose (`tap`, `record`; its CA trusted already): headers of
/// any depth read, tracing turned off again on a panic, and the command on a thread with a deep
/// stack (the headers nest as deeply as a publisher likes) and a runtime of its own.
pub fn on_firehose<F>(command: impl FnOnce() -> F + Send + 'static) -> Result<()>
where
    F: Future<Output = Result<()>>,
{
    firehose::allow_deep_headers();
    firehose::turn_off_on_panic();
    firehose::on_deep_stack(move || runtime(Threads::Plain)?.block_on(command()))
}

/// Where a RabbitMQ's management API is and how far to trust it, for the commands that read
/// the firehose beside it.
#[derive(clap::Args)]
pub struct ManagementArgs {
    /// Its management API (default: same host, port 15672, https for amqps URLs).
    #[arg(long, value_name = "URL")]
    management: Option<String>,
    #[command(flatten)]
    limit: ResponseLimitArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
}

impl ManagementArgs {
    /// The endpoint of an AMQP URL, checked before anything is turned on: not the embedded
    /// broker, and a vhost the management API knows.
    pub async fn checked_endpoint(&self, url: &str) -> Result<Endpoint> {
        let endpoint = endpoint(url, self.management.as_deref(), self.limit)?;
        refuse_embedded(&endpoint).await?;
        check_vhost(&endpoint).await?;
        Ok(endpoint)
    }
}

/// What remote mode needs, said when the management API cannot be reached.
pub const MANAGEMENT_NEEDED: &str = "this needs RabbitMQ's management plugin (rabbitmq-plugins \
    enable rabbitmq_management; --management URL if it is not on port 15672); rabbitscope's \
    embedded broker has no management API";

/// Asks the management API for the URL's vhost before anything is turned on, so a wrong
/// password, an unknown vhost or no API at all is one clear error rather than trouble later.
pub async fn check_vhost(endpoint: &Endpoint) -> Result<()> {
    let api = Management::new(endpoint)?;
    let vhost = &endpoint.vhost;
    match api.vhost(vhost).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind == ErrorKind::NotFound => match api.vhost_names().await {
            Ok(names) => {
                let mut known: Vec<String> =
                    names.iter().take(10).map(|n| format!("'{n}'")).collect();
                if names.len() > 10 {
                    known.push(format!("and {} more", names.len() - 10));
                }
                Err(eyre!(
                    "there is no vhost '{vhost}' at {} (the URL's path names the vhost; this \
                     user may see {})",
                    api.url(),
                    known.join(", ")
                ))
            }
            Err(_) => Err(eyre!("{e}\n{MANAGEMENT_NEEDED}")),
        },
        Err(e) if e.kind == ErrorKind::Unreachable => Err(eyre!("{e}\n{MANAGEMENT_NEEDED}")),
        Err(e) => Err(e.into()),
    }
}

/// Remote mode reads a management API; rabbitscope's own broker has none, and the one on its
/// host's port 15672 (if any) is another broker's.
pub async fn refuse_embedded(endpoint: &Endpoint) -> Result<()> {
    if rabbitscope::remote::is_embedded_broker(&endpoint.amqp_url).await {
        return Err(eyre!(
            "{} is rabbitscope's embedded broker, which has no management API; this command \
             needs a RabbitMQ with the management plugin (for the embedded broker, run \
             `rabbitscope` without a command)",
            endpoint.masked_url()
        ));
    }
    Ok(())
}
