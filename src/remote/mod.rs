//! A live RabbitMQ as a source: its management HTTP API for the topology, its firehose
//! (`amq.rabbitmq.trace`) for what each message did, and reconnecting when either goes away.
//!
//! - [`management`]: the management API client (reqwest, with `rabbitmq_http_client`'s
//!   types), every answer bounded in size.
//! - [`answers`]: the API's answers, decoded as every release since 3.8 shapes them.
//! - [`snapshot`](mod@snapshot): the API's answers as a [`crate::broker::Snapshot`] (with the vhost's client
//!   connections and consumers), and successive snapshots as topology and client events.
//! - [`firehose`]: trace messages as `Published` / `Delivered` events on the connection and
//!   channel the trace names; a connection's id is [`connection_id`] of its name, in events
//!   and snapshots alike.
//! - [`source`]: [`RemoteSource`], polling and tracing in the background.
//! - [`render`]: a snapshot as an indented listing, Graphviz dot or RabbitMQ definitions JSON.
//! - [`health`]: what `doctor` reads, as a [`crate::doctor::Broker`].
//!
//! Imports: the broker's snapshot and event types, [`crate::topology`], [`crate::source`] and
//! `doctor`'s model.
//! Never the view, the lessons or the command line.

pub mod answers;
pub mod consumers;
pub mod firehose;
pub mod health;
pub mod management;
pub mod render;
pub mod routing;
pub mod snapshot;
pub mod source;

pub use firehose::{Firehose, FirehoseKeys};
pub use management::{Management, ManagementError};

/// Why a RabbitMQ could not be watched: a URL that cannot be used, the firehose failing, or
/// the management API (whose own error names its URL and what went wrong).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// The AMQP URL does not parse; `url` has its password masked.
    #[error("cannot read the broker URL {url}: {message}")]
    BrokerUrl { url: String, message: String },
    /// A management URL that is not http or https; `url` has its password masked.
    #[error("the management URL {0} should start with http:// or https://")]
    ManagementUrl(String),
    /// Subscribing to the firehose failed at `step` (an AMQP method, or "connect").
    #[error("firehose: {step}: {message}")]
    FirehoseSetup { step: &'static str, message: String },
    /// The firehose's connection or channel went away.
    #[error("firehose: {0}")]
    FirehoseLost(String),
    /// The broker cancelled the firehose's consumer.
    #[error("firehose: the consumer was cancelled")]
    FirehoseCancelled,
    #[error(transparent)]
    Management(#[from] ManagementError),
}
pub use snapshot::{diff, snapshot};
pub use source::{RemoteOptions, RemoteSource};

/// The id events and snapshots give a RabbitMQ connection, made from its name
/// (`127.0.0.1:53122 -> 127.0.0.1:5672`, which the management API lists and the firehose's
/// `connection` header repeats): the same name always gets the same id, so a traced publish
/// names the connection the snapshot lists. FNV-1a, kept below 2^53 so that readers of the
/// JSON snapshot that hold numbers as doubles (jq, JavaScript) read it exactly; never 0.
pub fn connection_id(name: &str) -> crate::events::ConnectionId {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash & ((1 << 53) - 1)).max(1)
}

/// The `connection_name` of the firehose reader's connection.
pub const FIREHOSE_CONNECTION: &str = "rabbitscope firehose";
/// The `connection_name` of the event exchange reader's connection.
pub const TOPOLOGY_EVENTS_CONNECTION: &str = "rabbitscope topology events";

/// Whether a client's `connection_name` is one of the connections rabbitscope watches
/// through (this program's or another copy's): left out of the picture, like its queues.
pub fn is_own_connection(connection_name: &str) -> bool {
    [FIREHOSE_CONNECTION, TOPOLOGY_EVENTS_CONNECTION].contains(&connection_name)
}

/// The URL with its password replaced by `****`, for anything a user or a log may see.
pub fn mask_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_string();
    };
    format!(
        "{}{}:****{}",
        &url[..rest_start],
        &userinfo[..colon],
        &rest[at..]
    )
}

/// Where a RabbitMQ is: its AMQP URL and its management API, with the same credentials.
#[derive(Clone)]
pub struct Endpoint {
    pub amqp_url: String,
    /// `http[s]://host:port`, without credentials.
    pub management_url: String,
    pub username: String,
    password: String,
    /// The vhost the AMQP URL names (tracing is switched on there).
    pub vhost: String,
    /// The most bytes one management API answer may have ([`DEFAULT_MAX_RESPONSE`] unless
    /// set); a larger one is an error rather than memory without end.
    pub max_response: usize,
}

/// The default limit on one management API answer. The largest, the bindings of a vhost (not
/// paged), takes some 200 bytes a binding with names of 20 characters: about 300,000 of them.
pub const DEFAULT_MAX_RESPONSE: usize = 64 << 20;

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("amqp_url", &mask_url(&self.amqp_url))
            .field("management_url", &self.management_url)
            .field("username", &self.username)
            .field("vhost", &self.vhost)
            .finish()
    }
}

/// The management listener's usual port.
pub const MANAGEMENT_PORT: u16 = 15672;

impl Endpoint {
    /// From an AMQP URL; the management API is on the same host, port 15672, https when the
    /// AMQP URL is amqps, unless `management` names it.
    pub fn new(amqp_url: &str, management: Option<&str>) -> Result<Endpoint, RemoteError> {
        let uri: lapin::uri::AMQPUri =
            amqp_url
                .parse()
                .map_err(|message: String| RemoteError::BrokerUrl {
                    url: mask_url(amqp_url),
                    message,
                })?;
        let management_url = match management {
            Some(m) => {
                if !(m.starts_with("http://") || m.starts_with("https://")) {
                    return Err(RemoteError::ManagementUrl(mask_url(m)));
                }
                strip_credentials(m.trim_end_matches('/'))
            }
            None => {
                let host = &uri.authority.host;
                let host = if host.contains(':') && !host.starts_with('[') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                let scheme = match uri.scheme {
                    lapin::uri::AMQPScheme::AMQPS => "https",
                    lapin::uri::AMQPScheme::AMQP => "http",
                };
                format!("{scheme}://{host}:{MANAGEMENT_PORT}")
            }
        };
        Ok(Endpoint {
            amqp_url: amqp_url.to_string(),
            management_url,
            username: uri.authority.userinfo.username.clone(),
            password: uri.authority.userinfo.password.clone(),
            vhost: uri.vhost.clone(),
            max_response: DEFAULT_MAX_RESPONSE,
        })
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// The AMQP URL as it may be shown.
    pub fn masked_url(&self) -> String {
        mask_url(&self.amqp_url)
    }
}

/// Whether the AMQP server at the URL is rabbitscope's embedded broker (its connection.start
/// names the product): it has no management API, and the management port on the same host may
/// well belong to some other broker. Asked over TLS for amqps URLs, trusting what the clients
/// trust. False when it cannot be told in two seconds.
pub async fn is_embedded_broker(amqp_url: &str) -> bool {
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    let Ok(uri) = amqp_url.parse::<lapin::uri::AMQPUri>() else {
        return false;
    };
    async fn names_us(mut stream: impl AsyncRead + AsyncWrite + Unpin) -> Option<bool> {
        stream.write_all(b"AMQP\0\0\x09\x01").await.ok()?;
        let mut start = vec![0; 4096];
        let n = stream.read(&mut start).await.ok()?;
        let start = &start[..n];
        Some(start.windows(11).any(|w| w == b"rabbitscope"))
    }
    let host = uri.authority.host.clone();
    let ask = async {
        let stream = tokio::net::TcpStream::connect((host.as_str(), uri.authority.port))
            .await
            .ok()?;
        match uri.scheme {
            lapin::uri::AMQPScheme::AMQP => names_us(stream).await,
            lapin::uri::AMQPScheme::AMQPS => {
                let name =
                    tokio_rustls::rustls::pki_types::ServerName::try_from(host.clone()).ok()?;
                let tls = crate::tls::client_connector()
                    .connect(name, stream)
                    .await
                    .ok()?;
                names_us(tls).await
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(2), ask)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// `scheme://user:pass@host` -> `scheme://host`: credentials come from the AMQP URL.
fn strip_credentials(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_url("amqp://guest:guest@host:5672/%2f"),
            "amqp://guest:****@host:5672/%2f"
        );
        assert_eq!(
            mask_url("amqps://bob:p@ss:w0rd@rabbit/vh"),
            "amqps://bob:****@rabbit/vh"
        );
        assert_eq!(mask_url("amqp://host:5672"), "amqp://host:5672");
        assert_eq!(mask_url("amqp://bob@host"), "amqp://bob@host");
        assert_eq!(mask_url("not a url"), "not a url");
    }

    #[test]
    fn connection_ids_follow_the_name() {
        let name = "127.0.0.1:53122 -> 127.0.0.1:5672";
        assert_eq!(connection_id(name), connection_id(name));
        assert_ne!(
            connection_id(name),
            connection_id("127.0.0.1:53123 -> 127.0.0.1:5672")
        );
        assert!(connection_id(name) < 1 << 53);
        assert_ne!(connection_id(""), 0);
    }

    #[test]
    fn the_management_api_follows_the_amqp_url() {
        let e = Endpoint::new("amqps://bob:secret@rabbit.local:5671/prod", None).unwrap();
        assert_eq!(e.management_url, "https://rabbit.local:15672");
        assert_eq!(e.username, "bob");
        assert_eq!(e.password(), "secret");
        assert_eq!(e.vhost, "prod");
        assert!(!format!("{e:?}").contains("secret"));
        let e = Endpoint::new(
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            Some("http://x:y@127.0.0.1:15999/"),
        )
        .unwrap();
        assert_eq!(e.management_url, "http://127.0.0.1:15999");
        assert_eq!(e.vhost, "/");
    }
}
