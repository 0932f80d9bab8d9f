//! RabbitMQ's management HTTP API, through `rabbitmq_http_client`. Two answers that crate's
//! types leave out are read as plain JSON over the same HTTP client: an exchange's `internal`
//! flag and a vhost's `tracing` flag.

use std::sync::Arc;
use std::time::Duration;

use rabbitmq_http_client::api::{Client, HttpClientError};
use rabbitmq_http_client::requests::VirtualHostParams;
use rabbitmq_http_client::responses;
use serde_json::Value;

use super::Endpoint;

/// Items per page when listing queues and exchanges: a broker with 10,000 queues answers in
/// pieces rather than in one slow, large response.
pub const PAGE_SIZE: usize = 500;
/// How many pages of a listing are asked for at once.
const PAGES_AT_ONCE: usize = 8;

/// Why the management API did not answer as hoped. Its text names the API's URL (never a
/// password) and says what went wrong in a few words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagementError {
    pub url: String,
    pub kind: ErrorKind,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Nothing listens, the host is unknown, or it does not answer.
    Unreachable,
    /// 401: wrong user name or password.
    Unauthorized,
    /// 404: no such object (or no management plugin behind that port).
    NotFound,
    Other,
}

impl std::fmt::Display for ManagementError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "management API at {}: {}", self.url, self.detail)
    }
}

impl std::error::Error for ManagementError {}

/// The management API of one RabbitMQ.
#[derive(Clone)]
pub struct Management {
    api: Arc<Client<String, String, String>>,
    http: reqwest::Client,
    endpoint: Endpoint,
}

impl Management {
    pub fn new(endpoint: &Endpoint) -> Result<Management, ManagementError> {
        let cannot = |e: reqwest::Error| ManagementError {
            url: endpoint.management_url.clone(),
            kind: ErrorKind::Other,
            detail: format!("cannot set up an HTTP client: {e}"),
        };
        let mut http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20));
        // --ca-cert covers the management API too: a self-signed broker signs both.
        if let Some(pem) = crate::tls::extra_roots() {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(cannot)?;
            http = http.tls_certs_merge(certs);
        }
        let http = http.build().map_err(cannot)?;
        let api = Arc::new(Client::from_http_client(
            http.clone(),
            format!("{}/api", endpoint.management_url),
            endpoint.username.clone(),
            endpoint.password().to_string(),
        ));
        Ok(Management {
            api,
            http,
            endpoint: endpoint.clone(),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `http[s]://host:port` of the API.
    pub fn url(&self) -> &str {
        &self.endpoint.management_url
    }

    fn error(&self, e: HttpClientError) -> ManagementError {
        let (kind, detail) = describe(&e);
        ManagementError {
            url: self.url().to_string(),
            kind,
            detail,
        }
    }

    pub async fn vhost_names(&self) -> Result<Vec<String>, ManagementError> {
        let vhosts = self.api.list_vhosts().await.map_err(|e| self.error(e))?;
        Ok(vhosts.into_iter().map(|v| v.name).collect())
    }

    /// Every queue of the vhost, a page at a time.
    pub async fn queues(&self, vhost: &str) -> Result<Vec<responses::QueueInfo>, ManagementError> {
        // Only the columns a snapshot uses: with thousands of queues the full statistics are
        // most of the answer.
        self.paged(&format!(
            "/api/queues/{}?columns=name,vhost,type,durable,auto_delete,exclusive,arguments,\
             messages,messages_unacknowledged,consumers",
            segment(vhost)
        ))
        .await
    }

    /// Whether a queue exists (asking does not count as using it, unlike a passive declare).
    pub async fn queue_exists(&self, vhost: &str, queue: &str) -> Result<bool, ManagementError> {
        match self.api.get_queue_info(vhost, queue).await {
            Ok(_) => Ok(true),
            Err(HttpClientError::NotFound) => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    pub async fn bindings(
        &self,
        vhost: &str,
    ) -> Result<Vec<responses::BindingInfo>, ManagementError> {
        self.api
            .list_bindings_in(vhost)
            .await
            .map_err(|e| self.error(e))
    }

    /// Every exchange of the vhost as the API's JSON objects (with `internal`), a page at a time.
    pub async fn exchanges(&self, vhost: &str) -> Result<Vec<Value>, ManagementError> {
        self.paged(&format!(
            "/api/exchanges/{}?columns=name,type,durable,auto_delete,internal,arguments",
            segment(vhost)
        ))
        .await
    }

    /// A listing (`path` has a query already) read page by page. The first page says how many
    /// there are; the rest are asked for a few at a time, since RabbitMQ answers each page in
    /// time that grows with the whole listing (20 pages of 10,000 queues: 3.5 s one after
    /// another, 2.0 s several at a time). Asking past the last page is an error, so an exact
    /// multiple of the page size must not lead to one more request.
    async fn paged<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Vec<T>, ManagementError> {
        use futures_util::{StreamExt, TryStreamExt};
        let (mut all, pages) = self.page(path, 1).await?;
        let rest: Vec<Vec<T>> = futures_util::stream::iter(2..=pages)
            .map(|page| async move { self.page(path, page).await.map(|(items, _)| items) })
            .buffered(PAGES_AT_ONCE)
            .try_collect()
            .await?;
        all.extend(rest.into_iter().flatten());
        Ok(all)
    }

    /// One page of a listing, and how many pages the listing has.
    async fn page<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        page: u64,
    ) -> Result<(Vec<T>, u64), ManagementError> {
        let answer = self
            .get_json(&format!("{path}&page={page}&page_size={PAGE_SIZE}"))
            .await?;
        let items = answer.get("items").cloned().unwrap_or(Value::Array(vec![]));
        let items: Vec<T> = serde_json::from_value(items).map_err(|e| ManagementError {
            url: self.url().to_string(),
            kind: ErrorKind::Other,
            detail: format!("unexpected answer to a listing: {e}"),
        })?;
        let pages = answer
            .get("page_count")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Ok((items, pages))
    }

    /// The vhost's consumers as (channel name, queue, consumer tag); the channel name is
    /// `<connection name> (<channel number>)`. Read as plain JSON: the crate's type wants a
    /// `consumer_timeout` that RabbitMQ 3.10 does not list. The API learns of a consumer with
    /// its statistics, some seconds after basic.consume.
    pub async fn consumers(
        &self,
        vhost: &str,
    ) -> Result<Vec<(String, String, String)>, ManagementError> {
        let answer = self
            .get_json(&format!("/api/consumers/{}", segment(vhost)))
            .await?;
        let text = |v: &Value, path: &[&str]| {
            path.iter()
                .try_fold(v, |v, key| v.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Ok(answer
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(|c| {
                        Some((
                            text(c, &["channel_details", "name"])?,
                            text(c, &["queue", "name"])?,
                            text(c, &["consumer_tag"])?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Whether tracing (the firehose) is on for the vhost.
    pub async fn tracing(&self, vhost: &str) -> Result<bool, ManagementError> {
        let answer = self
            .get_json(&format!("/api/vhosts/{}", segment(vhost)))
            .await?;
        Ok(answer.get("tracing").and_then(Value::as_bool) == Some(true))
    }

    /// Turns tracing on or off, keeping the vhost's description, tags and default queue type
    /// (a PUT without them would clear them).
    pub async fn set_tracing(&self, vhost: &str, on: bool) -> Result<(), ManagementError> {
        let current = self.api.get_vhost(vhost).await.map_err(|e| self.error(e))?;
        let tags: Option<Vec<&str>> = current
            .tags
            .as_ref()
            .map(|t| t.iter().map(String::as_str).collect());
        let mut params = VirtualHostParams::named(vhost);
        params.description = current.description.as_deref();
        params.tags = tags;
        params.default_queue_type = current
            .default_queue_type
            .as_deref()
            .filter(|kind| *kind != "undefined")
            .map(rabbitmq_http_client::commons::QueueType::from);
        params.tracing = on;
        self.api
            .update_vhost(&params)
            .await
            .map_err(|e| self.error(e))
    }

    /// Who may use the vhost: (user, configure, write, read) patterns.
    pub async fn permissions(
        &self,
        vhost: &str,
    ) -> Result<Vec<responses::Permissions>, ManagementError> {
        self.api
            .list_permissions_in(vhost)
            .await
            .map_err(|e| self.error(e))
    }

    pub async fn create_vhost(&self, vhost: &str) -> Result<(), ManagementError> {
        self.api
            .create_vhost(&VirtualHostParams::named(vhost))
            .await
            .map_err(|e| self.error(e))
    }

    /// Lets `user` configure, write and read everything in `vhost`.
    pub async fn grant_all(&self, vhost: &str, user: &str) -> Result<(), ManagementError> {
        self.api
            .grant_permissions(&rabbitmq_http_client::requests::Permissions {
                user,
                vhost,
                configure: ".*",
                read: ".*",
                write: ".*",
            })
            .await
            .map_err(|e| self.error(e))
    }

    pub async fn delete_vhost(&self, vhost: &str) -> Result<(), ManagementError> {
        self.api
            .delete_vhost(vhost, true)
            .await
            .map_err(|e| self.error(e))
    }

    async fn get_json(&self, path: &str) -> Result<Value, ManagementError> {
        let fail = |kind, detail| ManagementError {
            url: self.url().to_string(),
            kind,
            detail,
        };
        let response = self
            .http
            .get(format!("{}{path}", self.url()))
            .basic_auth(&self.endpoint.username, Some(self.endpoint.password()))
            .send()
            .await
            .map_err(|e| {
                let (kind, detail) = describe_request(&e);
                fail(kind, detail)
            })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let reason = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_string));
            let (kind, detail) = describe_status(status.as_u16(), reason.as_deref());
            return Err(fail(kind, detail));
        }
        let text = response.text().await.map_err(|e| {
            let (kind, detail) = describe_request(&e);
            fail(kind, detail)
        })?;
        serde_json::from_str(&text).map_err(|e| {
            fail(
                ErrorKind::Other,
                format!("answered something not JSON: {e}"),
            )
        })
    }
}

/// A name as one percent-encoded path segment.
fn segment(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn describe(e: &HttpClientError) -> (ErrorKind, String) {
    match e {
        HttpClientError::ClientErrorResponse {
            status_code,
            error_details,
            ..
        }
        | HttpClientError::ServerErrorResponse {
            status_code,
            error_details,
            ..
        } => describe_status(
            status_code.as_u16(),
            error_details.as_ref().and_then(|d| d.reason()),
        ),
        HttpClientError::NotFound => describe_status(404, None),
        HttpClientError::RequestError { error, .. } => describe_request(error),
        other => (ErrorKind::Other, other.to_string()),
    }
}

/// `reason` is RabbitMQ's own word, when it gave one ("Login failed", "Not administrator
/// user"): a 401 is also what a user without the needed tag gets.
fn describe_status(status: u16, reason: Option<&str>) -> (ErrorKind, String) {
    match (status, reason) {
        (401, Some(reason)) if reason != "Login failed" => (
            ErrorKind::Unauthorized,
            format!("401 Unauthorized: {reason}"),
        ),
        (401, _) => (
            ErrorKind::Unauthorized,
            "401 Unauthorized: wrong user name or password".to_string(),
        ),
        (403, _) => (
            ErrorKind::Other,
            "403 Forbidden: the user lacks the management tag or permissions".to_string(),
        ),
        (404, _) => (
            ErrorKind::NotFound,
            "404 Not Found (no such vhost, or no management plugin there)".to_string(),
        ),
        (other, _) => (ErrorKind::Other, format!("answered HTTP {other}")),
    }
}

/// A failed request in a few words: the innermost cause is the telling one ("connection
/// refused"), reqwest's own text repeats the URL.
fn describe_request(e: &reqwest::Error) -> (ErrorKind, String) {
    use std::error::Error;
    if e.is_timeout() {
        return (ErrorKind::Unreachable, "no answer in time".to_string());
    }
    let mut source: Option<&dyn Error> = e.source();
    while let Some(s) = source {
        if s.to_string().contains("InvalidContentType") {
            // rustls reading a plain HTTP answer.
            return (
                ErrorKind::Unreachable,
                "TLS handshake failed: that port seems to speak plain http".to_string(),
            );
        }
        source = s.source();
    }
    let mut source: Option<&dyn Error> = e.source();
    let mut innermost = None;
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            let text = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                std::io::ErrorKind::ConnectionReset => "connection reset".to_string(),
                std::io::ErrorKind::TimedOut => "no answer in time".to_string(),
                _ => io.to_string(),
            };
            return (ErrorKind::Unreachable, text);
        }
        innermost = Some(s.to_string());
        source = s.source();
    }
    let kind = if e.is_connect() {
        ErrorKind::Unreachable
    } else {
        ErrorKind::Other
    };
    let text = innermost.unwrap_or_else(|| without_url(e));
    (kind, text)
}

fn without_url(e: &reqwest::Error) -> String {
    let text = e.to_string();
    match e.url() {
        Some(url) => text.replace(url.as_str(), ""),
        None => text,
    }
}
