//! The broker event stream: the one hallway every screen is drawn from.
//!
//! The embedded broker emits an [`Event`] for every change of topology and every step of a
//! message's life. The stream is a bounded broadcast ring: the broker never waits for a reader,
//! and a reader that falls behind is told how many events it missed ([`Received::Missed`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// How many events a reader may fall behind before it starts missing them.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// Identifies a client connection within one broker.
pub type ConnectionId = u64;

/// A name (vhost, exchange, queue, routing key, consumer tag) as events carry it: shared with
/// the broker's own copy, so emitting an event copies no text.
pub type Name = Arc<str>;

/// One thing that happened in the broker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened (wall clock).
    pub at: SystemTime,
    pub vhost: Name,
    /// The connection that caused it, if a client did.
    pub connection: Option<ConnectionId>,
    pub channel: Option<u16>,
    pub kind: EventKind,
}

/// A binding as events describe it: source exchange, destination, key and arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingInfo {
    pub source: Name,
    pub destination: Name,
    /// `true` when the destination is an exchange (exchange-to-exchange binding).
    pub destination_is_exchange: bool,
    pub routing_key: Name,
    /// Binding arguments rendered as `key=value` pairs (headers exchanges match on these).
    #[serde(with = "crate::argument_map")]
    pub arguments: Vec<(String, String)>,
}

impl BindingInfo {
    /// A binding from an exchange to a queue, without arguments.
    pub fn to_queue(source: &str, queue: &str, routing_key: &str) -> BindingInfo {
        BindingInfo {
            source: source.into(),
            destination: queue.into(),
            destination_is_exchange: false,
            routing_key: routing_key.into(),
            arguments: Vec::new(),
        }
    }
}

/// Who a client says it is, from the client properties of its `connection.start-ok`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// `connection_name`: oslo.messaging sends `<program>:<pid>:<uuid>`
    /// (`nova-conductor:4242:2c6f…`), pika and lapin whatever the program set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_name: Option<String>,
    /// `product`: the client library (`pika`, `py-amqp`, `lapin`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
}

impl ClientInfo {
    /// The name a person knows the client by: its `connection_name`, shortened to the
    /// program for oslo.messaging's `<program>:<pid>:<uuid>`; else the client library and
    /// the client's port (`pika :53122`); else the client's address.
    pub fn label(&self, peer: &str) -> String {
        if let Some(name) = self.connection_name.as_deref().filter(|n| !n.is_empty()) {
            return oslo_program(name).unwrap_or(name).to_string();
        }
        let port = peer.rsplit_once(':').map(|(_, port)| port);
        match (self.product.as_deref().filter(|p| !p.is_empty()), port) {
            (Some(product), Some(port)) => format!("{product} :{port}"),
            (Some(product), None) => product.to_string(),
            (None, _) => peer.to_string(),
        }
    }
}

/// The program of an oslo.messaging connection name, `<program>:<pid>:<uuid>`: three parts,
/// the middle one a process id.
fn oslo_program(name: &str) -> Option<&str> {
    let mut parts = name.splitn(3, ':');
    let (program, pid, rest) = (parts.next()?, parts.next()?, parts.next()?);
    let is_pid = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    (is_pid && !program.is_empty() && !rest.is_empty()).then_some(program)
}

/// What became of a published message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PublishFate {
    /// Reached at least one queue.
    Routed,
    /// Unroutable and mandatory: sent back to the publisher with basic.return.
    Returned,
    /// Unroutable: silently dropped.
    Dropped,
    /// Refused by a full queue (x-overflow reject-publish): the publisher gets a nack.
    Rejected,
}

/// Why a message left a queue without being consumed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeadLetterReason {
    Rejected,
    Expired,
    Maxlen,
    /// A quorum queue gave the message back more times than its `x-delivery-limit`.
    DeliveryLimit,
}

impl DeadLetterReason {
    fn maxlen() -> Self {
        DeadLetterReason::Maxlen
    }

    /// The reason as RabbitMQ writes it in `x-death`.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeadLetterReason::Rejected => "rejected",
            DeadLetterReason::Expired => "expired",
            DeadLetterReason::Maxlen => "maxlen",
            DeadLetterReason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// The kinds of event. Names follow AMQP's words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum EventKind {
    ConnectionOpened {
        peer: String,
        user: Name,
        /// Who the client says it is (absent from older trace files).
        #[serde(default)]
        client: ClientInfo,
    },
    ConnectionClosed {
        reason: String,
    },
    ChannelOpened,
    ChannelClosed {
        reason: String,
    },
    ExchangeDeclared {
        name: Name,
        kind: Name,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        #[serde(with = "crate::argument_map")]
        arguments: Vec<(String, String)>,
    },
    ExchangeDeleted {
        name: Name,
    },
    QueueDeclared {
        name: Name,
        /// Absent in traces recorded before types were: classic.
        #[serde(default)]
        queue_type: crate::topology::QueueType,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        #[serde(with = "crate::argument_map")]
        arguments: Vec<(String, String)>,
    },
    QueueDeleted {
        name: Name,
    },
    QueuePurged {
        name: Name,
        messages: u32,
    },
    BindingCreated(Arc<BindingInfo>),
    BindingDeleted(Arc<BindingInfo>),
    ConsumerCreated {
        queue: Name,
        consumer_tag: Name,
        no_ack: bool,
    },
    ConsumerCancelled {
        queue: Name,
        consumer_tag: Name,
    },
    Published {
        /// Broker-wide message id, so later events can refer to this message.
        message_id: u64,
        exchange: Name,
        routing_key: Name,
        body_size: usize,
        /// The body, whole up to [`BODY_KEPT`] bytes and cut there beyond (see [`kept_body`]);
        /// `body_size` tells whether it was cut. Written as text when it is UTF-8 and as a
        /// list of byte values when not, since YAML traces have no bytes.
        #[serde(with = "preview")]
        body_preview: Bytes,
        headers: Vec<(String, String)>,
        properties: Arc<[(String, String)]>,
        /// Every binding that matched, along the whole exchange-to-exchange path.
        matched: Vec<Arc<BindingInfo>>,
        /// The queues the message reached (each at most once).
        queues: Vec<Name>,
        /// Set when the message went to the alternate exchange of the one it was published to.
        alternate_exchange: Option<Name>,
        fate: PublishFate,
    },
    Delivered {
        message_id: u64,
        queue: Name,
        consumer_tag: Option<Name>,
        delivery_tag: u64,
        redelivered: bool,
        /// From a stream: the message's offset there (traces written before have none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        /// From a quorum queue: the `x-delivery-count` it went out with (traces written
        /// before have none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delivery_count: Option<u32>,
    },
    Acked {
        message_id: u64,
        queue: Name,
        delivery_tag: u64,
    },
    Nacked {
        message_id: u64,
        queue: Name,
        delivery_tag: u64,
        requeue: bool,
    },
    Rejected {
        message_id: u64,
        queue: Name,
        delivery_tag: u64,
        requeue: bool,
    },
    Requeued {
        message_id: u64,
        queue: Name,
    },
    Expired {
        message_id: u64,
        queue: Name,
    },
    DeadLettered {
        message_id: u64,
        queue: Name,
        reason: DeadLetterReason,
        exchange: Name,
        routing_key: Name,
    },
    /// A message left a queue, with no dead-letter exchange to go to: the queue was full
    /// (x-overflow drop-head), or a quorum queue's `x-delivery-limit` was passed.
    Dropped {
        message_id: u64,
        queue: Name,
        /// `Maxlen` or `DeliveryLimit`; traces written before it was recorded were `Maxlen`.
        #[serde(default = "DeadLetterReason::maxlen")]
        reason: DeadLetterReason,
    },
    /// A resource alarm went on: publishing connections are blocked until it goes off. The
    /// alarm is the node's, so the event's vhost is empty.
    AlarmOn {
        resource: AlarmResource,
    },
    /// A resource alarm went off.
    AlarmOff {
        resource: AlarmResource,
    },
}

/// The resources whose alarms block publishers, as RabbitMQ names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlarmResource {
    Memory,
    Disk,
}

impl AlarmResource {
    pub fn as_str(&self) -> &'static str {
        match self {
            AlarmResource::Memory => "memory",
            AlarmResource::Disk => "disk",
        }
    }
}

/// A body preview: text, or byte values when it is not UTF-8.
mod preview {
    use bytes::Bytes;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(body: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(body) {
            Ok(text) => serializer.serialize_str(text),
            Err(_) => serializer.collect_seq(body.iter()),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("text or a list of byte values")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Bytes, E> {
                Ok(Bytes::copy_from_slice(text.as_bytes()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Bytes, A::Error> {
                let mut bytes = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    bytes.push(b);
                }
                Ok(Bytes::from(bytes))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// How many body bytes a `Published` event keeps. 64 KiB holds Nova's largest RPC messages
/// whole (`build_and_run_instance` with its request spec, filter properties and instance
/// object runs to tens of KB), so they can be decoded. What all events hold together is
/// bounded by [`BODY_BUDGET`].
pub const BODY_KEPT: usize = 64 * 1024;

/// At most this many body bytes are held by events at once. The ring has 65,536 slots, so a
/// stalled reader (a terminal stopped with Ctrl-S, say) could otherwise pin 65,536 x 64 KiB =
/// 4 GiB that no memory alarm counts. Past the budget, events keep [`BODY_KEPT_SHORT`] bytes.
pub const BODY_BUDGET: usize = 128 * 1024 * 1024;

/// What an event keeps of a body while the budget is spent.
pub const BODY_KEPT_SHORT: usize = 256;

/// Body bytes held by events now (shared with queues or not): each kept body gives its share
/// back when the last event holding it is dropped.
static BODY_BYTES_HELD: AtomicUsize = AtomicUsize::new(0);

/// A kept body that counts itself in [`BODY_BYTES_HELD`] for as long as it lives.
struct CountedBody(Bytes);

impl AsRef<[u8]> for CountedBody {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for CountedBody {
    fn drop(&mut self) {
        BODY_BYTES_HELD.fetch_sub(self.0.len(), Ordering::Relaxed);
    }
}

/// The body a `Published` event carries: up to [`BODY_KEPT`] bytes of it (the message's own
/// `Bytes` when it fits, so nothing is copied; else a copy of the cut, since a slice would keep
/// the whole large body alive as long as the event lives). While events hold more than
/// [`BODY_BUDGET`] bytes, only a [`BODY_KEPT_SHORT`]-byte copy.
pub fn kept_body(body: &Bytes) -> Bytes {
    if body.len() <= BODY_KEPT_SHORT {
        return body.clone();
    }
    let kept = body.len().min(BODY_KEPT);
    if BODY_BYTES_HELD.fetch_add(kept, Ordering::Relaxed) + kept > BODY_BUDGET {
        BODY_BYTES_HELD.fetch_sub(kept, Ordering::Relaxed);
        return Bytes::copy_from_slice(&body[..BODY_KEPT_SHORT]);
    }
    let share = if body.len() <= BODY_KEPT {
        body.clone()
    } else {
        Bytes::copy_from_slice(&body[..BODY_KEPT])
    };
    Bytes::from_owner(CountedBody(share))
}

/// Body bytes events hold now, for tests and the inspector.
pub fn body_bytes_held() -> usize {
    BODY_BYTES_HELD.load(Ordering::Relaxed)
}

/// The sending side, owned by the broker.
#[derive(Clone, Debug)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        EventBus { sender }
    }

    /// True when somebody listens; the broker skips building events otherwise.
    pub fn has_readers(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Sends without ever waiting: with no reader the event is simply gone.
    pub fn emit(&self, event: Event) {
        let _ = self.sender.send(Arc::new(event));
    }

    pub fn subscribe(&self) -> EventReader {
        EventReader {
            receiver: self.sender.subscribe(),
        }
    }
}

/// What a reader gets from the stream.
#[derive(Debug)]
pub enum Received {
    Event(Arc<Event>),
    /// The reader fell behind and this many events were overwritten before it read them.
    Missed(u64),
    /// The broker is gone.
    Closed,
}

/// The reading side: one per screen, recorder or test.
pub struct EventReader {
    receiver: broadcast::Receiver<Arc<Event>>,
}

impl EventReader {
    pub async fn recv(&mut self) -> Received {
        match self.receiver.recv().await {
            Ok(event) => Received::Event(event),
            Err(broadcast::error::RecvError::Lagged(n)) => Received::Missed(n),
            Err(broadcast::error::RecvError::Closed) => Received::Closed,
        }
    }

    /// Non-blocking read, for a UI that drains the stream once per frame.
    pub fn try_recv(&mut self) -> Option<Received> {
        match self.receiver.try_recv() {
            Ok(event) => Some(Received::Event(event)),
            Err(broadcast::error::TryRecvError::Lagged(n)) => Some(Received::Missed(n)),
            Err(broadcast::error::TryRecvError::Closed) => Some(Received::Closed),
            Err(broadcast::error::TryRecvError::Empty) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> Event {
        Event {
            at: SystemTime::UNIX_EPOCH,
            vhost: "/".into(),
            connection: None,
            channel: None,
            kind: EventKind::Expired {
                message_id: n,
                queue: "q".into(),
            },
        }
    }

    #[test]
    fn lagging_reader_learns_how_many_it_missed() {
        let bus = EventBus::new(4);
        let mut reader = bus.subscribe();
        for n in 0..10 {
            bus.emit(event(n));
        }
        match reader.try_recv() {
            Some(Received::Missed(n)) => assert_eq!(n, 6),
            other => panic!("expected Missed, got {other:?}"),
        }
        match reader.try_recv() {
            Some(Received::Event(e)) => assert_eq!(*e, event(6)),
            other => panic!("expected the oldest kept event, got {other:?}"),
        }
    }

    #[test]
    fn small_bodies_are_shared_and_large_ones_cut_into_a_copy() {
        let small = Bytes::from(vec![7u8; 1000]);
        let kept = kept_body(&small);
        assert_eq!(kept.as_ptr(), small.as_ptr(), "a body that fits is shared");
        let large = Bytes::from(vec![7u8; BODY_KEPT + 1]);
        let kept = kept_body(&large);
        assert_eq!(kept.len(), BODY_KEPT);
        assert_ne!(
            kept.as_ptr(),
            large.as_ptr(),
            "the cut must not pin the large body"
        );
    }

    #[test]
    fn events_hold_no_more_body_bytes_than_the_budget() {
        let body = Bytes::from(vec![7u8; BODY_KEPT]);
        let mut held = Vec::new();
        while body_bytes_held() + BODY_KEPT <= BODY_BUDGET {
            held.push(kept_body(&body));
        }
        let over = kept_body(&body);
        assert_eq!(
            over.len(),
            BODY_KEPT_SHORT,
            "past the budget only a short copy"
        );
        assert!(body_bytes_held() <= BODY_BUDGET);
        drop(held);
        assert_eq!(
            kept_body(&body).len(),
            BODY_KEPT,
            "the budget comes back with the events"
        );
    }

    #[test]
    fn emitting_without_readers_never_blocks() {
        let bus = EventBus::new(2);
        assert!(!bus.has_readers());
        for n in 0..1000 {
            bus.emit(event(n));
        }
    }
}

#[cfg(test)]
mod client_label_tests {
    use super::ClientInfo;

    fn client(name: Option<&str>, product: Option<&str>) -> ClientInfo {
        ClientInfo {
            connection_name: name.map(str::to_string),
            product: product.map(str::to_string),
        }
    }

    #[test]
    fn oslo_connections_are_named_by_their_program() {
        let c = client(
            Some("nova-conductor:4242:2c6f1e0a-8d3b-4f5e-9a7c-1b2d3e4f5a6b"),
            Some("py-amqp"),
        );
        assert_eq!(c.label("10.0.0.5:53122"), "nova-conductor");
    }

    #[test]
    fn other_names_are_kept_whole() {
        assert_eq!(
            client(Some("billing worker"), None).label("h:1"),
            "billing worker"
        );
        // Not a pid in the middle: not oslo's shape.
        assert_eq!(client(Some("a:b:c"), None).label("h:1"), "a:b:c");
        assert_eq!(client(Some("x:42"), None).label("h:1"), "x:42");
    }

    #[test]
    fn without_a_name_the_library_and_port() {
        assert_eq!(
            client(None, Some("pika")).label("127.0.0.1:53122"),
            "pika :53122"
        );
        assert_eq!(
            client(Some(""), None).label("127.0.0.1:53122"),
            "127.0.0.1:53122"
        );
    }
}
