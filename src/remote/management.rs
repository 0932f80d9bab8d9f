//! RabbitMQ's management HTTP API over one reqwest client, with `rabbitmq_http_client`'s types
//! for requests and our own tolerant ones for answers ([`super::answers`]). Every answer is read here, a chunk at a time, and refused past
//! [`Endpoint::max_response`] bytes: a server that sends a never-ending body costs that much
//! memory and no more. Redirects are followed only to the same scheme, host and port; one to
//! anywhere else (which would also carry the password there) is refused and named.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rabbitmq_http_client::requests::VirtualHostParams;
use rabbitmq_http_client::responses;

use super::answers;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Endpoint;

/// Items per page when listing queues and exchanges: a broker with 10,000 queues answers in
/// pieces rather than in one slow, large response.
pub const PAGE_SIZE: usize = 500;
/// How many pages of a listing are asked for at once.
const PAGES_AT_ONCE: usize = 8;

/// Why the management API did not answer as hoped. Its text names the API's URL (never a
/// password) and says what went wrong in a few words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("management API at {url}: {detail}")]
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
    /// An answer larger than [`Endpoint::max_response`].
    TooLarge,
    Other,
}

/// The management API of one RabbitMQ.
#[derive(Clone)]
pub struct Management {
    http: reqwest::Client,
    endpoint: Endpoint,
    /// What `/api/whoami` said of the user, asked once: `watch` reads the topology every
    /// few seconds, and a user's tags do not change that often.
    sees_every_client: Arc<tokio::sync::OnceCell<bool>>,
}

/// How many redirects within the API's own address are followed.
const MAX_REDIRECTS: usize = 5;

impl Management {
    pub fn new(endpoint: &Endpoint) -> Result<Management, ManagementError> {
        let cannot = |e: reqwest::Error| ManagementError {
            url: endpoint.management_url.clone(),
            kind: ErrorKind::Other,
            detail: format!("cannot set up an HTTP client: {e}"),
        };
        let origin = reqwest::Url::parse(&endpoint.management_url).ok();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            let to = attempt.url();
            let same_place = origin.as_ref().is_some_and(|o| {
                o.scheme() == to.scheme()
                    && o.host_str() == to.host_str()
                    && o.port_or_known_default() == to.port_or_known_default()
            });
            if !same_place {
                let mut shown = to.clone();
                let _ = shown.set_password(None);
                let _ = shown.set_username("");
                let text = format!("redirected to {shown}, another address: not followed");
                attempt.error(text)
            } else if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else {
                attempt.follow()
            }
        });
        let mut http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .redirect(redirects);
        // --ca-cert covers the management API too: a self-signed broker signs both.
        if let Some(pem) = crate::tls::extra_roots() {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(cannot)?;
            http = http.tls_certs_merge(certs);
        }
        let http = http.build().map_err(cannot)?;
        Ok(Management {
            http,
            endpoint: endpoint.clone(),
            sees_every_client: Arc::default(),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `http[s]://host:port` of the API.
    pub fn url(&self) -> &str {
        &self.endpoint.management_url
    }

    fn fail(&self, kind: ErrorKind, detail: String) -> ManagementError {
        ManagementError {
            url: self.url().to_string(),
            kind,
            detail,
        }
    }

    pub async fn vhost_names(&self) -> Result<Vec<String>, ManagementError> {
        let vhosts: Vec<answers::Vhost> = self.get("/api/vhosts").await?;
        Ok(vhosts.into_iter().map(|v| v.name).collect())
    }

    /// One vhost: its description, tags, default queue type and whether tracing is on.
    pub async fn vhost(&self, vhost: &str) -> Result<answers::Vhost, ManagementError> {
        self.get(&format!("/api/vhosts/{}", segment(vhost))).await
    }

    /// Every queue of the vhost with the columns a snapshot uses (with thousands of queues
    /// the full statistics would be most of the answer).
    pub async fn queues(&self, vhost: &str) -> Result<Vec<answers::Queue>, ManagementError> {
        self.listed_queues(vhost, "").await
    }

    /// Every queue of the vhost with what `doctor` reads beside the snapshot's columns: the
    /// policy in force.
    pub async fn queues_in_depth(
        &self,
        vhost: &str,
    ) -> Result<Vec<answers::Queue>, ManagementError> {
        self.listed_queues(vhost, ",policy").await
    }

    /// Every queue of the vhost as [`Management::queues`] lists them, but without their
    /// statistics (`disable_stats`): their messages are still counted
    /// (`enable_queue_totals`), their consumers are not. A node answers this from its own
    /// tables, where the statistics of a cluster's queues are gathered from every node: 0.8 to
    /// 1.0 s against 1.8 to 4.2 s for 10,000 queues on three nodes (BENCHMARKS.md section 4,
    /// cluster). Without statistics RabbitMQ lists neither a stream's members nor its
    /// messages, so streams are then read one by one with theirs.
    pub async fn queues_without_stats(
        &self,
        vhost: &str,
    ) -> Result<Vec<answers::Queue>, ManagementError> {
        use futures_util::{StreamExt, TryStreamExt};
        let path = format!(
            "/api/queues/{}?disable_stats=true&enable_queue_totals=true&columns={QUEUE_COLUMNS}",
            segment(vhost)
        );
        let listed: Vec<answers::Lenient<answers::Queue>> = self.listing(&path).await?;
        let mut queues: Vec<answers::Queue> = listed.into_iter().map(|q| q.0).collect();
        let streams: Vec<usize> = (0..queues.len())
            .filter(|&i| queues[i].kind.as_deref() == Some("stream"))
            .collect();
        let read: Vec<(usize, Option<answers::Queue>)> = futures_util::stream::iter(streams)
            .map(|i| {
                let name = &queues[i].name;
                async move { Ok::<_, ManagementError>((i, self.queue(vhost, name).await?)) }
            })
            .buffer_unordered(PAGES_AT_ONCE)
            .try_collect()
            .await?;
        for (i, stream) in read {
            if let Some(stream) = stream {
                queues[i] = stream;
            }
        }
        for q in &mut queues {
            // With statistics, a quorum queue's node is its leader's.
            if q.node.is_none() {
                q.node.clone_from(&q.leader);
            }
        }
        Ok(queues)
    }

    /// One queue with its statistics; none if it is gone.
    pub async fn queue(
        &self,
        vhost: &str,
        name: &str,
    ) -> Result<Option<answers::Queue>, ManagementError> {
        let path = format!(
            "/api/queues/{}/{}?columns={QUEUE_COLUMNS},consumers",
            segment(vhost),
            segment(name)
        );
        let queue: Option<answers::Lenient<answers::Queue>> = self.get_found(&path).await?;
        Ok(queue.map(|q| q.0))
    }

    async fn listed_queues(
        &self,
        vhost: &str,
        more: &str,
    ) -> Result<Vec<answers::Queue>, ManagementError> {
        let path = format!(
            "/api/queues/{}?columns={QUEUE_COLUMNS},consumers{more}",
            segment(vhost)
        );
        let listed: Vec<answers::Lenient<answers::Queue>> = self.listing(&path).await?;
        Ok(listed.into_iter().map(|q| q.0).collect())
    }

    /// What each member of a quorum queue says of its log; none before RabbitMQ 3.13, which
    /// has no such request, or when the queue is gone.
    pub async fn quorum_status(
        &self,
        vhost: &str,
        name: &str,
    ) -> Result<Option<Vec<answers::QuorumMember>>, ManagementError> {
        let path = format!(
            "/api/queues/quorum/{}/{}/status",
            segment(vhost),
            segment(name)
        );
        self.get_found(&path).await
    }

    /// The members far behind their leader in each of the vhost's `replicated` quorum queues
    /// that has any (RabbitMQ 3.13 and later): asked of one queue first, and of the others, 8
    /// at a time, only if the API knows the request. A member's lag is worth a look, not a
    /// failed read: what cannot be read is left out.
    pub async fn members_behind(
        &self,
        vhost: &str,
        replicated: &[&str],
    ) -> HashMap<String, BTreeMap<String, u64>> {
        use futures_util::StreamExt;
        let Some((first, rest)) = replicated.split_first() else {
            return HashMap::new();
        };
        let Ok(Some(told)) = self.quorum_status(vhost, first).await else {
            return HashMap::new();
        };
        // The requests made up front: a spawned watch cannot hold a stream whose closure
        // borrows its items.
        let asks: Vec<_> = (rest.iter())
            .map(|name| async move {
                let told = self.quorum_status(vhost, name).await.ok().flatten();
                (name.to_string(), told)
            })
            .collect();
        let others: Vec<(String, Option<Vec<answers::QuorumMember>>)> =
            futures_util::stream::iter(asks)
                .buffer_unordered(8)
                .collect()
                .await;
        std::iter::once((first.to_string(), Some(told)))
            .chain(others)
            .filter_map(|(name, members)| {
                let behind = answers::members_behind(&members?);
                (!behind.is_empty()).then_some((name, behind))
            })
            .collect()
    }

    /// Whether the API shows this user every client's connections and consumers: only a user
    /// with the `monitoring` or `administrator` tag is; others see their own.
    pub async fn sees_every_client(&self) -> Result<bool, ManagementError> {
        let ask = || async {
            let me: answers::Whoami = self.get("/api/whoami").await?;
            Ok::<_, ManagementError>(
                me.tags
                    .iter()
                    .any(|t| t == "monitoring" || t == "administrator"),
            )
        };
        self.sees_every_client.get_or_try_init(ask).await.copied()
    }

    /// Every exchange of the vhost with its message counters.
    pub async fn exchange_stats(
        &self,
        vhost: &str,
    ) -> Result<Vec<answers::ExchangeStats>, ManagementError> {
        self.listing(&format!(
            "/api/exchanges/{}?columns=name,type,arguments,message_stats",
            segment(vhost)
        ))
        .await
    }

    /// The vhost's message counters (returned and dropped unroutable messages among them).
    pub async fn vhost_stats(&self, vhost: &str) -> Result<answers::VhostStats, ManagementError> {
        self.get(&format!(
            "/api/vhosts/{}?columns=message_stats",
            segment(vhost)
        ))
        .await
    }

    pub async fn policies(&self, vhost: &str) -> Result<Vec<answers::Policy>, ManagementError> {
        self.get(&format!("/api/policies/{}", segment(vhost))).await
    }

    /// The vhost's channels, with their global prefetch.
    pub async fn channels(&self, vhost: &str) -> Result<Vec<answers::Channel>, ManagementError> {
        let listing: Listing<answers::Channel> = self
            .get(&format!(
                "/api/vhosts/{}/channels?columns=name,global_prefetch_count,connection_details",
                segment(vhost)
            ))
            .await?;
        Ok(listing.into_items())
    }

    /// The cluster's nodes (takes the `monitoring` tag).
    pub async fn nodes(&self) -> Result<Vec<answers::Node>, ManagementError> {
        self.get(
            "/api/nodes?columns=name,running,mem_alarm,disk_free_alarm,mem_used,mem_limit,\
             disk_free,disk_free_limit,partitions",
        )
        .await
    }

    /// The management API of each other running node of the cluster, by node name, from the
    /// listeners the answering node lists; or why it cannot be reached. A node listening on
    /// every address is reached by the host it is named after (`rabbit@HOST`); each is asked
    /// which node it is, and one that answers as another (a proxy, a port not forwarded) is
    /// not taken for it.
    pub async fn other_nodes(
        &self,
    ) -> Result<Vec<(String, Result<Management, String>)>, ManagementError> {
        let overview: answers::Overview = self.get("/api/overview?columns=node,listeners").await?;
        let mut others = Vec::new();
        for listener in &overview.listeners {
            let scheme = match listener.protocol.as_str() {
                "http" | "https" => listener.protocol.as_str(),
                _ => continue,
            };
            if listener.node == overview.node {
                continue;
            }
            let host = match listener.ip_address.as_str() {
                "" | "::" | "0.0.0.0" => listener.node.split('@').nth(1).unwrap_or("localhost"),
                address => address,
            };
            let Ok(mut url) = reqwest::Url::parse(&self.endpoint.management_url) else {
                continue;
            };
            let host = match host.parse::<std::net::Ipv6Addr>() {
                Ok(_) => format!("[{host}]"),
                Err(_) => host.to_string(),
            };
            if url.set_scheme(scheme).is_err()
                || url.set_host(Some(&host)).is_err()
                || url.set_port(Some(listener.port)).is_err()
            {
                continue;
            }
            let endpoint = Endpoint {
                management_url: url.as_str().trim_end_matches('/').to_string(),
                ..self.endpoint.clone()
            };
            let node = match Management::new(&endpoint) {
                Ok(node) => node,
                Err(e) => {
                    others.push((listener.node.clone(), Err(e.to_string())));
                    continue;
                }
            };
            let answers_as = async {
                let told: answers::Overview = node.get("/api/overview?columns=node").await?;
                Ok::<_, ManagementError>(told.node)
            };
            let reached = match answers_as.await {
                Ok(name) if name == listener.node => Ok(node),
                Ok(name) => Err(format!("{} answers as {name}", node.url())),
                Err(e) => Err(e.to_string()),
            };
            // A node may listen on http and https: one that answers is enough.
            match others.iter_mut().find(|(n, _)| *n == listener.node) {
                Some((_, told)) if told.is_err() && reached.is_ok() => *told = reached,
                Some(_) => {}
                None => others.push((listener.node.clone(), reached)),
            }
        }
        // A node without the management plugin cannot be asked at all.
        for listener in &overview.listeners {
            let name = &listener.node;
            if *name != overview.node && !others.iter().any(|(n, _)| n == name) {
                others.push((name.clone(), Err("it has no management listener".into())));
            }
        }
        Ok(others)
    }

    /// The RabbitMQ release the node answering runs (`3.10.8`, `4.0.5`).
    pub async fn rabbitmq_version(&self) -> Result<Option<String>, ManagementError> {
        let overview: answers::Overview =
            self.get("/api/overview?columns=rabbitmq_version").await?;
        Ok(overview.rabbitmq_version)
    }

    /// Whether a queue exists (asking does not count as using it, unlike a passive declare).
    pub async fn queue_exists(&self, vhost: &str, queue: &str) -> Result<bool, ManagementError> {
        let path = format!("/api/queues/{}/{}", segment(vhost), segment(queue));
        let found: Option<serde::de::IgnoredAny> = self.get_found(&path).await?;
        Ok(found.is_some())
    }

    /// Every binding of the vhost (the API does not page them: the largest answer it gives).
    pub async fn bindings(&self, vhost: &str) -> Result<Vec<answers::Binding>, ManagementError> {
        self.get(&format!("/api/bindings/{}", segment(vhost))).await
    }

    /// Every exchange of the vhost as the API's JSON objects (with `internal`).
    pub async fn exchanges(&self, vhost: &str) -> Result<Vec<Value>, ManagementError> {
        self.listing(&format!(
            "/api/exchanges/{}?columns=name,type,durable,auto_delete,internal,arguments",
            segment(vhost)
        ))
        .await
    }

    /// A listing (`path` has a query already) in one answer, or page by page when one answer
    /// would be larger than `--max-response-mib` allows. One answer first: RabbitMQ goes over
    /// the whole listing for each page it answers, so the 20 pages of 10,000 queues cost it
    /// about twice what one answer does, which is what a read on a busy cluster waits for
    /// (BENCHMARKS.md section 4, cluster).
    async fn listing<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, ManagementError> {
        match self.get::<Listing<T>>(path).await {
            Ok(listing) => Ok(listing.into_items()),
            Err(e) if e.kind == ErrorKind::TooLarge => self.paged(path).await,
            Err(e) => Err(e),
        }
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
    async fn page<T: DeserializeOwned>(
        &self,
        path: &str,
        page: u64,
    ) -> Result<(Vec<T>, u64), ManagementError> {
        #[derive(serde::Deserialize)]
        struct Page<T> {
            #[serde(default = "Vec::new")]
            items: Vec<T>,
            #[serde(default)]
            page_count: u64,
        }
        let answer: Page<T> = self
            .get(&format!("{path}&page={page}&page_size={PAGE_SIZE}"))
            .await?;
        Ok((answer.items, answer.page_count))
    }

    /// The vhost's client connections. Not paged (RabbitMQ 3.10 ignores paging here); only
    /// the columns a snapshot uses, the statistics being most of each. A user without the
    /// `monitoring` (or `administrator`) tag is shown only its own connections and consumers.
    pub async fn connections(
        &self,
        vhost: &str,
    ) -> Result<Vec<answers::Connection>, ManagementError> {
        let listing: Listing<answers::Connection> = self
            .get(&format!(
                "/api/vhosts/{}/connections?columns=name,user,peer_host,peer_port,\
                 client_properties,user_provided_name,node",
                segment(vhost)
            ))
            .await?;
        Ok(listing.into_items())
    }

    /// The vhost's consumers. Read with our own lenient type: the crate's wants a
    /// `consumer_timeout` that RabbitMQ 3.10 does not list. The API learns of a consumer with
    /// its channel's statistics, some seconds after basic.consume.
    pub async fn consumers(&self, vhost: &str) -> Result<Vec<answers::Consumer>, ManagementError> {
        // Top-level columns only: how far back nested ones are understood is not known.
        let listing: Listing<answers::Consumer> = self
            .get(&format!(
                "/api/consumers/{}?columns=consumer_tag,queue,channel_details,ack_required,\
                 prefetch_count",
                segment(vhost)
            ))
            .await?;
        Ok(listing.into_items())
    }

    /// Whether tracing (the firehose) is on for the vhost.
    pub async fn tracing(&self, vhost: &str) -> Result<bool, ManagementError> {
        Ok(self.vhost(vhost).await?.tracing)
    }

    /// Turns tracing on or off, keeping the vhost's description, tags and default queue type
    /// (a PUT without them would clear them). Tags go as one comma-separated text: 3.8 reads
    /// only that, later releases read it as well as a list.
    pub async fn set_tracing(&self, vhost: &str, on: bool) -> Result<(), ManagementError> {
        let current = self.vhost(vhost).await?;
        let mut body = serde_json::json!({
            "tags": current.tags.join(","),
            "tracing": on,
        });
        if let Some(description) = &current.description {
            body["description"] = description.as_str().into();
        }
        if let Some(kind) = &current.default_queue_type {
            body["default_queue_type"] = kind.as_str().into();
        }
        self.put(&format!("/api/vhosts/{}", segment(vhost)), &body)
            .await
    }

    /// Who may use the vhost: (user, configure, write, read) patterns.
    pub async fn permissions(
        &self,
        vhost: &str,
    ) -> Result<Vec<responses::Permissions>, ManagementError> {
        self.get(&format!("/api/vhosts/{}/permissions", segment(vhost)))
            .await
    }

    pub async fn create_vhost(&self, vhost: &str) -> Result<(), ManagementError> {
        self.put(
            &format!("/api/vhosts/{}", segment(vhost)),
            &VirtualHostParams::named(vhost),
        )
        .await
    }

    /// Lets `user` configure, write and read everything in `vhost`.
    pub async fn grant_all(&self, vhost: &str, user: &str) -> Result<(), ManagementError> {
        self.put(
            &format!("/api/permissions/{}/{}", segment(vhost), segment(user)),
            &rabbitmq_http_client::requests::Permissions {
                user,
                vhost,
                configure: ".*",
                read: ".*",
                write: ".*",
            },
        )
        .await
    }

    /// Deletes the vhost and everything in it; one already gone is no error.
    pub async fn delete_vhost(&self, vhost: &str) -> Result<(), ManagementError> {
        let path = format!("/api/vhosts/{}", segment(vhost));
        match self.send(Method::DELETE, &path, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// GET `path`, its JSON answer decoded straight into `T` (no JSON tree in between).
    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ManagementError> {
        let body = self.send(Method::GET, path, None).await?;
        serde_json::from_slice(&body).map_err(|e| {
            self.fail(
                ErrorKind::Other,
                format!("unexpected answer to {}: {e}", path_only(path)),
            )
        })
    }

    /// [`Management::get`], with a 404 as none.
    async fn get_found<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<T>, ManagementError> {
        match self.get(path).await {
            Ok(found) => Ok(Some(found)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn put(&self, path: &str, body: &impl serde::Serialize) -> Result<(), ManagementError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| self.fail(ErrorKind::Other, format!("cannot write a request: {e}")))?;
        self.send(Method::PUT, path, Some(body)).await.map(drop)
    }

    /// One request; a success's body (at most [`Endpoint::max_response`] bytes), or the
    /// error the status or the transport means.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, ManagementError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url()))
            .basic_auth(&self.endpoint.username, Some(self.endpoint.password()));
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request.send().await.map_err(|e| {
            let (kind, detail) = describe_request(&e);
            self.fail(kind, detail)
        })?;
        let status = response.status();
        if !status.is_success() {
            // RabbitMQ's reason is a short JSON object; a long body is not worth reading.
            let body = self.read_body(response, ERROR_BODY_LIMIT).await.ok();
            let reason = body
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_string));
            let (kind, detail) = describe_status(status, reason.as_deref());
            return Err(self.fail(kind, detail));
        }
        self.read_body(response, self.endpoint.max_response).await
    }

    /// The body a chunk at a time, refused as soon as it passes `limit` bytes: an endless
    /// answer holds at most `limit` bytes before it is dropped. With its length announced the
    /// body goes straight into a buffer of that size; without (chunked), the chunks are kept
    /// as they came and joined once at the end, so a growing buffer never holds two copies.
    async fn read_body(
        &self,
        mut response: reqwest::Response,
        limit: usize,
    ) -> Result<Vec<u8>, ManagementError> {
        let too_large = || {
            self.fail(
                ErrorKind::TooLarge,
                format!(
                    "answered with more than {} (the limit for one answer; raise it with \
                     --max-response-mib for a very large broker)",
                    size(limit)
                ),
            )
        };
        let announced = response.content_length();
        if announced.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let mut body = Vec::with_capacity(announced.unwrap_or(0) as usize);
        let mut chunks = Vec::new();
        let mut read = 0;
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            let (kind, detail) = describe_request(&e);
            self.fail(kind, detail)
        })? {
            read += chunk.len();
            if read > limit {
                return Err(too_large());
            }
            if announced.is_some() {
                body.extend_from_slice(&chunk);
            } else {
                chunks.push(chunk);
            }
        }
        if announced.is_none() {
            body = chunks.concat();
        }
        Ok(body)
    }
}

/// The columns of a queue a snapshot uses, its consumers apart.
const QUEUE_COLUMNS: &str = "name,vhost,type,durable,auto_delete,exclusive,arguments,messages,\
                             messages_unacknowledged,node,leader,members,online,state";

/// A listing as a whole list, or as one page of it (what a release that pages it may send).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Listing<T> {
    All(Vec<T>),
    Page { items: Vec<T> },
}

impl<T> Listing<T> {
    fn into_items(self) -> Vec<T> {
        match self {
            Listing::All(items) | Listing::Page { items } => items,
        }
    }
}

/// How much of an error answer is read for RabbitMQ's reason.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// `1 MiB`, `64 MiB`, or bytes when less.
fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// The path of a request without its query, for messages.
fn path_only(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
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

/// `reason` is RabbitMQ's own word, when it gave one ("Login failed", "Not administrator
/// user"): a 401 is also what a user without the needed tag gets.
fn describe_status(status: StatusCode, reason: Option<&str>) -> (ErrorKind, String) {
    match (status.as_u16(), reason) {
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
        (300..=399, _) => (
            ErrorKind::Other,
            format!("answered HTTP {status} without a usable redirect"),
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
    if e.is_redirect() {
        // The policy's own words: where it pointed, and that it was not followed.
        let why = e.source().map_or_else(|| without_url(e), |s| s.to_string());
        return (ErrorKind::Other, why);
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
