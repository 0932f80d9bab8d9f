//! Messages: published once, shared by every queue they reach.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use amq_protocol::protocol::BasicProperties;
use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString};
use bytes::Bytes;

use crate::events::DeadLetterReason;

/// A published message. The body is shared (`Bytes`), never copied per queue.
#[derive(Clone, Debug)]
pub struct Message {
    /// Broker-wide id, used by events to follow one message.
    pub id: u64,
    pub exchange: Arc<str>,
    pub routing_key: Arc<str>,
    /// Shared with the messages before it on the same channel when they carry the same
    /// properties, as most publishers' messages do: a queue of a million messages then holds
    /// one copy instead of a million (the struct alone is about 300 bytes).
    pub properties: Arc<BasicProperties>,
    pub body: Bytes,
}

impl Message {
    /// The per-message TTL from the `expiration` property, if it is a valid number of ms.
    pub fn expiration(&self) -> Option<Duration> {
        let text = self.properties.expiration().as_ref()?;
        text.as_str().parse::<u64>().ok().map(Duration::from_millis)
    }

    pub fn headers(&self) -> Option<&FieldTable> {
        self.properties.headers().as_ref()
    }
}

/// A message sitting in one queue.
#[derive(Clone, Debug)]
pub struct QueuedMessage {
    /// Order of arrival in this broker; requeued messages go back to their place by it.
    pub seq: u64,
    pub message: Arc<Message>,
    pub expires_at: Option<Instant>,
    pub redelivered: bool,
    /// How many times a client gave it back (quorum queues count; classic queues leave 0).
    pub delivery_count: u32,
    /// Kept by the store (persistent, in a durable queue): leaving the queue is recorded.
    pub stored: bool,
}

/// The message as a quorum queue hands it out: with an `x-delivery-count` header (a long, 0
/// on the first delivery) replacing any the publisher set. The stored message keeps its own
/// headers, so a dead-lettered copy has none, as on RabbitMQ.
pub fn with_delivery_count(original: &Message, count: u32) -> Message {
    let mut headers = original.headers().cloned().unwrap_or_default();
    headers.insert(
        "x-delivery-count".into(),
        AMQPValue::LongLongInt(count.into()),
    );
    Message {
        properties: Arc::new(BasicProperties::clone(&original.properties).with_headers(headers)),
        ..original.clone()
    }
}

/// Builds the message a queue dead-letters: the `x-death` history updated as RabbitMQ does
/// (one entry per queue and reason, most recent first, with a count), the `x-first-death-*`
/// headers set once, and the `expiration` property moved into the entry.
pub fn dead_lettered(
    original: &Message,
    id: u64,
    queue: &str,
    reason: &DeadLetterReason,
    new_exchange: &str,
    new_routing_key: &str,
) -> Message {
    let mut headers = original.headers().cloned().unwrap_or_default();
    let reason_text = reason.as_str();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);

    let mut history: Vec<AMQPValue> = match headers.inner().get("x-death") {
        Some(AMQPValue::FieldArray(a)) => a.as_slice().to_vec(),
        _ => Vec::new(),
    };
    let same = |entry: &AMQPValue| match entry {
        AMQPValue::FieldTable(t) => {
            text_of(t.inner().get("queue")) == Some(queue.to_string())
                && text_of(t.inner().get("reason")) == Some(reason_text.to_string())
        }
        _ => false,
    };
    let previous_count = history
        .iter()
        .position(same)
        .map(|i| match history.remove(i) {
            AMQPValue::FieldTable(t) => match t.inner().get("count") {
                Some(AMQPValue::LongLongInt(n)) => *n,
                _ => 1,
            },
            _ => 1,
        })
        .unwrap_or(0);

    let mut entry = FieldTable::default();
    entry.insert("count".into(), AMQPValue::LongLongInt(previous_count + 1));
    entry.insert("reason".into(), long_string(reason_text));
    entry.insert("queue".into(), long_string(queue));
    entry.insert("time".into(), AMQPValue::Timestamp(now));
    entry.insert("exchange".into(), long_string(&original.exchange));
    let keys: FieldArray = vec![long_string(&original.routing_key)].into();
    entry.insert("routing-keys".into(), AMQPValue::FieldArray(keys));
    if let Some(expiration) = original.properties.expiration() {
        entry.insert(
            "original-expiration".into(),
            long_string(expiration.as_str()),
        );
    }
    history.insert(0, AMQPValue::FieldTable(entry));
    headers.insert("x-death".into(), AMQPValue::FieldArray(history.into()));

    if !headers.contains_key("x-first-death-reason") {
        headers.insert("x-first-death-reason".into(), long_string(reason_text));
        headers.insert("x-first-death-queue".into(), long_string(queue));
        headers.insert(
            "x-first-death-exchange".into(),
            long_string(&original.exchange),
        );
    }

    let mut properties = BasicProperties::clone(&original.properties).with_headers(headers);
    if properties.expiration().is_some() {
        // The generated setters cannot clear a field; rebuild without `expiration`.
        properties = without_expiration(&properties);
    }
    Message {
        id,
        exchange: new_exchange.into(),
        routing_key: new_routing_key.into(),
        properties: Arc::new(properties),
        body: original.body.clone(),
    }
}

fn without_expiration(p: &BasicProperties) -> BasicProperties {
    let mut out = BasicProperties::default();
    macro_rules! copy {
        ($($get:ident => $set:ident),*) => {
            $(if let Some(v) = p.$get() { out = out.$set(v.clone()); })*
        };
    }
    copy!(content_type => with_content_type, content_encoding => with_content_encoding,
        headers => with_headers, delivery_mode => with_delivery_mode, priority => with_priority,
        correlation_id => with_correlation_id, reply_to => with_reply_to,
        message_id => with_message_id, timestamp => with_timestamp, kind => with_type,
        user_id => with_user_id, app_id => with_app_id, cluster_id => with_cluster_id);
    out
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

fn text_of(v: Option<&AMQPValue>) -> Option<String> {
    match v? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// The `x-death` entries of a message's headers, most recent first.
fn deaths(message: &Message) -> &[AMQPValue] {
    match message.headers().and_then(|h| h.inner().get("x-death")) {
        Some(AMQPValue::FieldArray(deaths)) => deaths.as_slice(),
        _ => &[],
    }
}

/// A long-string field of an `x-death` entry; RabbitMQ reads no other string type there.
fn long_field<'a>(entry: &'a FieldTable, name: &str) -> Option<&'a [u8]> {
    match entry.inner().get(name) {
        Some(AMQPValue::LongString(s)) => Some(s.as_bytes()),
        _ => None,
    }
}

/// The queues a message died in, most recent first, as a dead-letter cycle is logged.
pub fn death_queues(message: &Message) -> Vec<Arc<str>> {
    deaths(message)
        .iter()
        .filter_map(|entry| match entry {
            AMQPValue::FieldTable(t) => long_field(t, "queue"),
            _ => None,
        })
        .map(|queue| Arc::from(String::from_utf8_lossy(queue).as_ref()))
        .collect()
}

/// RabbitMQ's rule for a dead-lettered `message` about to reach `queue`: it is a cycle when
/// `x-death` shows the message died in `queue` before and neither that death nor any since
/// was `rejected`: no client took part, so it would go round for ever. An entry that is not
/// a table was put there by a client, so it breaks the cycle too.
pub fn is_cycle(queue: &str, message: &Message) -> bool {
    let mut automatic = true;
    for entry in deaths(message) {
        let AMQPValue::FieldTable(entry) = entry else {
            automatic = false;
            continue;
        };
        automatic &= long_field(entry, "reason") != Some(b"rejected".as_slice());
        if long_field(entry, "queue") == Some(queue.as_bytes()) {
            return automatic;
        }
    }
    false
}
