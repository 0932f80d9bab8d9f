//! RabbitMQ's firehose: with tracing on for a vhost, the broker copies every publish
//! (`publish.<exchange>`) and every delivery (`deliver.<queue>`) to `amq.rabbitmq.trace`, with
//! headers saying where it went. Here those copies become `Published` / `Delivered` events.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, Consumer};

use super::management::{Management, ManagementError};
use super::routing::RoutingModel;
use super::RemoteError;
use crate::broker::exchange::value_text;
use crate::broker::Snapshot;
use crate::events::{Event, EventKind, Name, PublishFate};

/// Which trace messages to receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirehoseKeys {
    /// `publish.#`: what each publish reached.
    Publish,
    /// `publish.#` and `deliver.#`: consumers' deliveries too.
    PublishAndDeliver,
}

/// One trace message, read.
#[derive(Clone, Debug, PartialEq)]
pub enum Trace {
    Published {
        exchange: String,
        routing_key: String,
        /// The queues it reached (for the default exchange: the name it was sent to, whether
        /// or not such a queue exists).
        queues: Vec<String>,
        /// The publishing connection as the broker names it.
        connection: String,
        channel: Option<u16>,
        properties: Vec<(String, String)>,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    /// RabbitMQ's `deliver.<queue>` trace has the consuming connection and channel, the
    /// message's exchange, routing keys and properties, and `redelivered`; it has neither the
    /// consumer tag nor the delivery tag (see [`super::consumers`] for the first).
    Delivered {
        queue: String,
        exchange: String,
        routing_key: String,
        redelivered: bool,
        /// The consuming connection as the broker names it.
        connection: String,
        channel: Option<u16>,
        body: Bytes,
    },
}

impl Trace {
    /// The connection that published or was delivered to, as the broker names it.
    pub fn connection(&self) -> &str {
        match self {
            Trace::Published { connection, .. } | Trace::Delivered { connection, .. } => connection,
        }
    }
}

/// Tracing switched on for one vhost through the management API, remembered so it is switched
/// off again only if it was off before. Tracing is each node's own setting, and a node traces
/// only the messages published through it: on a cluster it is switched on every node, each
/// through its own management API.
pub struct Tracing {
    management: Management,
    vhost: String,
    turned_on: bool,
    /// The cluster's other nodes, by name, each with its own tracing.
    others: Vec<(String, Tracing)>,
    /// Nodes whose tracing could not be switched on, each with why: the messages published
    /// through them are not seen.
    untraced: Vec<String>,
}

impl Tracing {
    pub fn new(management: Management, vhost: &str) -> Tracing {
        Tracing {
            management,
            vhost: vhost.to_string(),
            turned_on: false,
            others: Vec::new(),
            untraced: Vec::new(),
        }
    }

    /// Turns tracing on where it is off, on every running node (again after a node restarts,
    /// which forgets it). Only the node asked first must answer; the others that cannot are
    /// [`Tracing::untraced`].
    pub async fn ensure_on(&mut self) -> Result<(), ManagementError> {
        self.ensure_on_here().await?;
        self.untraced.clear();
        let others = match self.management.other_nodes().await {
            Ok(others) => others,
            Err(e) => {
                self.untraced
                    .push(format!("the cluster's other nodes were not listed: {e}"));
                return Ok(());
            }
        };
        for (name, reached) in others {
            let management = match reached {
                Ok(management) => management,
                Err(why) => {
                    self.untraced.push(format!("{name}: {why}"));
                    continue;
                }
            };
            let at = match self.others.iter().position(|(n, _)| *n == name) {
                Some(at) => at,
                None => {
                    let tracing = Tracing::new(management, &self.vhost);
                    self.others.push((name.clone(), tracing));
                    self.others.len() - 1
                }
            };
            if let Err(e) = self.others[at].1.ensure_on_here().await {
                self.untraced.push(format!("{name}: {e}"));
            }
        }
        Ok(())
    }

    /// Turns tracing on for the node this management API belongs to.
    async fn ensure_on_here(&mut self) -> Result<(), ManagementError> {
        if !self.management.tracing(&self.vhost).await? {
            // Held before it is on: a panic or signal in between still turns it off.
            hold(self.management.endpoint(), &self.vhost);
            if let Err(e) = self.management.set_tracing(&self.vhost, true).await {
                let_go(self.management.endpoint(), &self.vhost);
                return Err(e);
            }
            self.turned_on = true;
        }
        Ok(())
    }

    /// Nodes whose messages are not traced, and why; empty on one node, or when every node
    /// traces.
    pub fn untraced(&self) -> &[String] {
        &self.untraced
    }

    /// True when this turned tracing on for the node asked first and has not turned it off
    /// yet (for the others: [`Tracing::others_turned_on`]).
    pub fn turned_on(&self) -> bool {
        self.turned_on
    }

    /// The management APIs of the other nodes this turned tracing on for: what to turn off
    /// when this cannot be released itself.
    pub fn others_turned_on(&self) -> Vec<super::Endpoint> {
        (self.others.iter())
            .filter(|(_, t)| t.turned_on)
            .map(|(_, t)| t.management.endpoint().clone())
            .collect()
    }

    /// Records that tracing was turned on by this program (elsewhere), so `release` turns it off.
    pub fn mark_turned_on(&mut self) {
        self.turned_on = true;
    }

    /// Turns tracing off again where this turned it on; the first failure is returned after
    /// every node was tried.
    pub async fn release(&mut self) -> Result<(), ManagementError> {
        let mut result = Ok(());
        for (_, other) in &mut self.others {
            if let Err(e) = other.release_here().await {
                result = result.and(Err(e));
            }
        }
        self.release_here().await.and(result)
    }

    async fn release_here(&mut self) -> Result<(), ManagementError> {
        if self.turned_on {
            self.management.set_tracing(&self.vhost, false).await?;
            self.turned_on = false;
            let_go(self.management.endpoint(), &self.vhost);
        }
        Ok(())
    }

    /// [`Tracing::release`] from code that cannot wait (a `Drop`): on a thread of its own with
    /// a small runtime, waited for at most a few seconds a node.
    pub fn release_blocking(&mut self) {
        for (_, other) in &mut self.others {
            other.release_blocking();
        }
        if !self.turned_on {
            return;
        }
        self.turned_on = false;
        turn_off_blocking(self.management.endpoint().clone(), self.vhost.clone());
    }
}

/// Tracing this program turned on and has not turned off yet, by management API and vhost:
/// what a panic turns off on its way out.
static HELD: std::sync::Mutex<Vec<(super::Endpoint, String)>> = std::sync::Mutex::new(Vec::new());

fn held() -> std::sync::MutexGuard<'static, Vec<(super::Endpoint, String)>> {
    HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn same(a: &super::Endpoint, b: &super::Endpoint) -> bool {
    a.management_url == b.management_url && a.username == b.username
}

/// Notes that this program is turning tracing on for `vhost`.
pub fn hold(endpoint: &super::Endpoint, vhost: &str) {
    let mut held = held();
    if !held.iter().any(|(e, v)| same(e, endpoint) && v == vhost) {
        held.push((endpoint.clone(), vhost.to_string()));
    }
}

/// Whether this program is turning or has turned tracing on for `vhost` (and not off yet).
pub fn holds(endpoint: &super::Endpoint, vhost: &str) -> bool {
    held().iter().any(|(e, v)| same(e, endpoint) && v == vhost)
}

/// Notes that tracing for `vhost` is off again (or no longer ours to turn off).
pub fn let_go(endpoint: &super::Endpoint, vhost: &str) {
    held().retain(|(e, v)| !(same(e, endpoint) && v == vhost));
}

/// Turns off every tracing this program turned on, waiting for the answers (a few seconds at
/// most each): for a panic's last moment.
pub fn turn_off_all_blocking() {
    let all = std::mem::take(&mut *held());
    for (endpoint, vhost) in all {
        turn_off_blocking(endpoint, vhost);
    }
}

/// Makes every panic turn tracing off (where this program turned it on) before it goes on as
/// it would have. A panic may leave the program running (one in a background task) or end it;
/// either way tracing left on would slow the broker for everyone.
pub fn turn_off_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        turn_off_all_blocking();
        previous(info);
    }));
}

/// Turns tracing off on a thread of its own with a small runtime, and waits for it.
pub fn turn_off_blocking(endpoint: super::Endpoint, vhost: String) {
    let done = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            // A client of its own: the other one's connections belong to another runtime.
            if let Ok(management) = Management::new(&endpoint) {
                match management.set_tracing(&vhost, false).await {
                    Ok(()) => let_go(&endpoint, &vhost),
                    Err(e) => tracing::warn!(error = %e, "could not turn tracing off again"),
                }
            }
        });
    });
    let _ = done.join();
}

/// Stack for every thread of a program that reads a firehose. RabbitMQ passes on message
/// headers nested as deep as a content-header frame holds (131,072 bytes by default: about
/// 18,700 tables or 26,200 arrays), and lapin parses them with amq-protocol on a thread of its
/// own, recursively; cloning and dropping the parsed value recurse as deep. In a debug build
/// that takes about 10 KB of stack per table and 9 KB per array, 231 MB at the deepest (see
/// `benches/header_stack.rs`); release builds take less. This leaves more than twice that.
/// Only touched pages cost memory.
pub const DEEP_HEADER_STACK: usize = 512 << 20;

/// Gives every thread started from now on [`DEEP_HEADER_STACK`] (lapin's I/O thread has no
/// setting of its own, so through `RUST_MIN_STACK`, which the standard library reads when the
/// first thread starts); a larger figure already set is kept. Call it before any thread starts.
pub fn allow_deep_headers() {
    let set = std::env::var("RUST_MIN_STACK")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    if set.is_none_or(|bytes| bytes < DEEP_HEADER_STACK) {
        std::env::set_var("RUST_MIN_STACK", DEEP_HEADER_STACK.to_string());
    }
}

/// Runs `work` on a thread with [`DEEP_HEADER_STACK`] (the main thread's stack is the
/// system's, usually 8 MiB) and waits for it.
pub fn on_deep_stack<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(DEEP_HEADER_STACK)
        .spawn(work)
        .expect("a thread starts")
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// An exclusive, auto-delete, server-named queue bound to `amq.rabbitmq.trace`, consumed on a
/// connection of its own.
pub struct Firehose {
    connection: Connection,
    consumer: Consumer,
}

impl Firehose {
    /// Subscribes; tracing must be on for the vhost (see [`Tracing`]) or nothing arrives.
    pub async fn open(amqp_url: &str, keys: FirehoseKeys) -> Result<Firehose, RemoteError> {
        let failed = |step: &'static str, e: lapin::Error| RemoteError::FirehoseSetup {
            step,
            message: e.to_string(),
        };
        let properties =
            ConnectionProperties::default().with_connection_name(super::FIREHOSE_CONNECTION.into());
        let connection = crate::tls::connect(amqp_url, properties)
            .await
            .map_err(|e| failed("connect", e))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| failed("channel.open", e))?;
        let queue = private_queue(&channel, "firehose")
            .await
            .map_err(|e| failed("queue.declare", e))?;
        let patterns: &[&str] = match keys {
            FirehoseKeys::Publish => &["publish.#"],
            FirehoseKeys::PublishAndDeliver => &["publish.#", "deliver.#"],
        };
        for pattern in patterns {
            channel
                .queue_bind(
                    queue.name().clone(),
                    "amq.rabbitmq.trace".into(),
                    (*pattern).into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| failed("queue.bind to amq.rabbitmq.trace", e))?;
        }
        let consumer = consume_unacked(&channel, &queue, "rabbitscope-firehose")
            .await
            .map_err(|e| failed("basic.consume", e))?;
        Ok(Firehose {
            connection,
            consumer,
        })
    }

    /// The next trace message; an error when the connection is gone.
    pub async fn next(&mut self) -> Result<Trace, RemoteError> {
        loop {
            let delivery = match self.consumer.next().await {
                None => return Err(RemoteError::FirehoseCancelled),
                Some(Err(e)) => return Err(RemoteError::FirehoseLost(e.to_string())),
                Some(Ok(delivery)) => delivery,
            };
            if let Some(trace) = read(&delivery) {
                return Ok(trace);
            }
        }
    }

    pub async fn close(self) {
        let _ = self.connection.close(200, "OK".into()).await;
    }
}

/// A trace message's headers and body as a [`Trace`]; `None` for other routing keys.
pub fn read(delivery: &Delivery) -> Option<Trace> {
    let key = delivery.routing_key.as_str();
    // Borrowed, not cloned: cloning a table is recursive, and these can nest thousands deep.
    let no_headers = FieldTable::default();
    let headers = delivery
        .properties
        .headers()
        .as_ref()
        .unwrap_or(&no_headers);
    let headers = headers.inner();
    let text = |name: &str| headers.get(name).map(value_text).unwrap_or_default();
    let list = |name: &str| match headers.get(name) {
        Some(AMQPValue::FieldArray(items)) => {
            items.as_slice().iter().map(value_text).collect::<Vec<_>>()
        }
        _ => Vec::new(),
    };
    let channel = headers
        .get("channel")
        .and_then(|v| value_text(v).parse::<u16>().ok());
    let routing_key = list("routing_keys").into_iter().next().unwrap_or_default();
    let body = Bytes::copy_from_slice(&delivery.data);
    if key.starts_with("publish.") {
        let (properties, message_headers) = match headers.get("properties") {
            Some(AMQPValue::FieldTable(table)) => split_properties(table),
            _ => (Vec::new(), Vec::new()),
        };
        Some(Trace::Published {
            exchange: text("exchange_name"),
            routing_key,
            queues: list("routed_queues"),
            connection: text("connection"),
            channel,
            properties,
            headers: message_headers,
            body,
        })
    } else {
        let queue = key.strip_prefix("deliver.")?;
        let redelivered = matches!(
            headers.get("redelivered"),
            Some(v) if matches!(value_text(v).as_str(), "1" | "true")
        );
        Some(Trace::Delivered {
            queue: queue.to_string(),
            exchange: text("exchange_name"),
            routing_key,
            redelivered,
            connection: text("connection"),
            channel,
            body,
        })
    }
}

/// `name=value` pairs, as events carry properties and headers.
type Pairs = Vec<(String, String)>;

/// The trace's `properties` table: the message's headers apart, the rest as `name=value`.
fn split_properties(table: &FieldTable) -> (Pairs, Pairs) {
    let mut properties = Vec::new();
    let mut headers = Vec::new();
    for (k, v) in table {
        match (k.as_str(), v) {
            ("headers", AMQPValue::FieldTable(h)) => {
                headers.extend(h.into_iter().map(|(k, v)| (k.to_string(), value_text(v))));
            }
            _ => properties.push((k.to_string(), value_text(v))),
        }
    }
    (properties, headers)
}

/// Gives each traced publish an id and finds it again when it is delivered (by exchange,
/// routing key and body: the trace carries no id of its own).
#[derive(Default)]
pub struct MessageIds {
    next: u64,
    recent: VecDeque<((String, String, u64), u64)>,
}

/// How many publishes are remembered for matching deliveries.
const REMEMBERED: usize = 4096;

impl MessageIds {
    fn published(&mut self, exchange: &str, routing_key: &str, body: &[u8]) -> u64 {
        self.next += 1;
        if self.recent.len() == REMEMBERED {
            self.recent.pop_front();
        }
        self.recent.push_back((
            (exchange.to_string(), routing_key.to_string(), hash(body)),
            self.next,
        ));
        self.next
    }

    fn delivered(&mut self, exchange: &str, routing_key: &str, body: &[u8]) -> u64 {
        let wanted = (exchange.to_string(), routing_key.to_string(), hash(body));
        match self.recent.iter().rev().find(|(k, _)| *k == wanted) {
            Some((_, id)) => *id,
            None => {
                self.next += 1;
                self.next
            }
        }
    }
}

fn hash(body: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    h.finish()
}

/// Turns traces into the events the embedded broker would have emitted. The snapshot
/// supplies what a trace does not say: which bindings matched (see [`RoutingModel`]), and
/// whether a queue named through the default exchange exists.
#[derive(Default)]
pub struct TraceEvents {
    ids: MessageIds,
    routing: RoutingModel,
}

impl TraceEvents {
    /// `consumer_tag`: the delivering consumer, when it is known (the trace does not say).
    pub fn event(
        &mut self,
        trace: &Trace,
        vhost: &str,
        snapshot: &Arc<Snapshot>,
        consumer_tag: Option<&str>,
    ) -> Event {
        let known = snapshot.vhost(vhost);
        let (channel, kind) = match trace {
            Trace::Published {
                exchange,
                routing_key,
                queues,
                channel,
                properties,
                headers,
                body,
                ..
            } => {
                let queues: Vec<Name> = queues
                    .iter()
                    .filter(|q| {
                        !exchange.is_empty()
                            || known.is_none_or(|v| v.queues.iter().any(|k| &k.name == *q))
                    })
                    .map(|q| Name::from(q.as_str()))
                    .collect();
                let routed =
                    self.routing
                        .route(snapshot, vhost, exchange, routing_key, headers, &queues);
                let fate = if queues.is_empty() {
                    PublishFate::Dropped
                } else {
                    PublishFate::Routed
                };
                (
                    *channel,
                    EventKind::Published {
                        message_id: self.ids.published(exchange, routing_key, body),
                        exchange: exchange.as_str().into(),
                        routing_key: routing_key.as_str().into(),
                        body_size: body.len(),
                        body_preview: crate::events::kept_body(body),
                        headers: headers.clone(),
                        properties: properties.clone().into(),
                        matched: routed.matched,
                        queues,
                        alternate_exchange: routed.alternate_exchange,
                        fate,
                    },
                )
            }
            Trace::Delivered {
                queue,
                exchange,
                routing_key,
                redelivered,
                channel,
                body,
                ..
            } => (
                *channel,
                EventKind::Delivered {
                    message_id: self.ids.delivered(exchange, routing_key, body),
                    queue: queue.as_str().into(),
                    consumer_tag: consumer_tag.map(Name::from),
                    // Not in the trace, and not derivable: a channel's tags count every
                    // delivery since it opened, traced or not. 0 is never a real tag.
                    delivery_tag: 0,
                    redelivered: *redelivered,
                    offset: None,
                    delivery_count: None,
                },
            ),
        };
        // The id the snapshot gives the connection of that name.
        let connection = Some(trace.connection())
            .filter(|name| !name.is_empty())
            .map(super::connection_id);
        Event {
            at: SystemTime::now(),
            vhost: vhost.into(),
            connection,
            channel,
            kind,
        }
    }
}

/// `HH:MM:SS.mmm exchange routing.key -> q1, q2` (or `unroutable`), local time; control
/// characters in the names are shown as escapes.
pub fn tap_line(at: SystemTime, exchange: &str, routing_key: &str, queues: &[String]) -> String {
    use crate::terminal::printable;
    let exchange = if exchange.is_empty() {
        "(AMQP default)".into()
    } else {
        printable(exchange)
    };
    let routing_key = printable(routing_key);
    let target = if queues.is_empty() {
        "unroutable".to_string()
    } else {
        let names: Vec<_> = queues.iter().map(|q| printable(q)).collect();
        format!("-> {}", names.join(", "))
    };
    format!("{} {exchange} {routing_key} {target}", clock(at))
}

fn clock(at: SystemTime) -> String {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since.as_secs() as libc::time_t;
    // SAFETY: localtime_r writes only into the tm we hand it.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&seconds, &mut tm).is_null() {
            None
        } else {
            Some(tm)
        }
    };
    let (h, m, s) = match tm {
        Some(tm) => (tm.tm_hour as u64, tm.tm_min as u64, tm.tm_sec as u64),
        None => {
            let day = since.as_secs() % 86_400;
            (day / 3600, day / 60 % 60, day % 60)
        }
    };
    format!("{h:02}:{m:02}:{s:02}.{:03}", since.subsec_millis())
}

/// The queues this program declared for its own use (the firehose's, the event exchange's):
/// the picture leaves them out, as they are how it watches, not what it watches.
static OWN_QUEUES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Whether `name` is one of this program's own queues.
pub fn is_own_queue(name: &str) -> bool {
    OWN_QUEUES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .any(|own| own == name)
}

/// Consumes what `queue` gets, without acks: a private queue's messages are only looked at.
pub(crate) async fn consume_unacked(
    channel: &lapin::Channel,
    queue: &lapin::Queue,
    tag: &str,
) -> lapin::Result<Consumer> {
    let options = BasicConsumeOptions {
        no_ack: true,
        ..BasicConsumeOptions::default()
    };
    let name = queue.name().clone();
    channel
        .basic_consume(name, tag.into(), options, FieldTable::default())
        .await
}

/// An exclusive, auto-delete queue named `rabbitscope.<role>.<random>`: the name says whose it
/// is to anyone else looking at the broker (another rabbitscope among them), and this
/// program leaves it out of its own picture.
pub(crate) async fn private_queue(
    channel: &lapin::Channel,
    role: &str,
) -> lapin::Result<lapin::Queue> {
    let name = format!("rabbitscope.{role}.{:016x}", rand::random::<u64>());
    {
        let mut own = OWN_QUEUES.lock().unwrap_or_else(|p| p.into_inner());
        // A long-running watch reconnects now and then; old names need not pile up.
        if own.len() > 1000 {
            own.drain(..500);
        }
        own.push(name.clone());
    }
    channel
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_lines_name_the_queues_or_say_unroutable() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_234);
        let line = tap_line(at, "orders", "eu.new", &["a".into(), "b".into()]);
        assert!(line.ends_with(" orders eu.new -> a, b"), "{line}");
        assert_eq!(line.find(' '), Some(12));
        assert!(line[..12].ends_with(".234"));
        assert!(tap_line(at, "", "nowhere", &[]).ends_with("(AMQP default) nowhere unroutable"));
    }

    #[test]
    fn deliveries_find_their_publish() {
        let mut ids = MessageIds::default();
        let a = ids.published("x", "k", b"one");
        let b = ids.published("x", "k", b"two");
        assert_ne!(a, b);
        assert_eq!(ids.delivered("x", "k", b"one"), a);
        assert_eq!(ids.delivered("x", "k", b"two"), b);
    }
}
