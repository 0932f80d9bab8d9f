//! A lapin client for tests that run against RabbitMQ and the embedded broker: connecting,
//! declaring, publishing, reading back, and writing down what the broker answered in a form two
//! brokers can be compared by (short codes, reply texts without the generated names).
#![allow(dead_code)]

use std::pin::Pin;
use std::time::Duration;

use futures_lite::stream::{Stream, StreamExt};
use lapin::message::{BasicGetMessage, Delivery};
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeBindOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::protocol::AMQPErrorKind;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer, Event,
    ExchangeKind, Queue,
};

// ---------------------------------------------------------------------------------------------
// Connections and channels
// ---------------------------------------------------------------------------------------------

pub async fn connect(url: &str) -> Connection {
    Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("connect")
}

/// A channel in publisher-confirm mode, so a confirmed publish has been routed before we look.
pub async fn channel(conn: &Connection) -> Channel {
    let ch = conn.create_channel().await.expect("channel.open");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    ch
}

/// A synchronous round trip on `ch`: everything sent on it before has been processed.
pub async fn sync(ch: &Channel) {
    ch.exchange_declare(
        "amq.direct".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            passive: true,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("passive declare of amq.direct");
}

/// Deletes what a scenario declared, on a fresh channel, ignoring errors.
pub async fn cleanup(conn: &Connection, queues: &[&str], exchanges: &[&str]) {
    let ch = conn.create_channel().await.expect("channel.open");
    for q in queues {
        let _ = ch
            .queue_delete((*q).into(), QueueDeleteOptions::default())
            .await;
    }
    for x in exchanges {
        let _ = ch
            .exchange_delete((*x).into(), ExchangeDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "OK".into()).await;
}

// ---------------------------------------------------------------------------------------------
// What the broker answered
// ---------------------------------------------------------------------------------------------

/// "406 PRECONDITION-FAILED (reply text)" for an AMQP error, a marker for anything else.
pub fn code(err: &lapin::Error) -> String {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => {
            let name = match e.kind() {
                AMQPErrorKind::Soft(s) => s.to_string(),
                AMQPErrorKind::Hard(h) => h.to_string(),
            };
            format!(
                "{} {} ({})",
                e.get_id(),
                name,
                scrub(e.get_message().as_str())
            )
        }
        other => format!("client error {other:?}"),
    }
}

/// A reply text without the scenario's generated names (each becomes `<name>`). RabbitMQ cuts
/// reply texts at 255 bytes, where the cut falls depends on the name lengths, so long texts are
/// kept only up to a fixed length.
fn scrub(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("rs-test.") {
        out.push_str(&rest[..i]);
        out.push_str("<name>");
        let tail = &rest[i..];
        rest = &tail[tail.find('\'').unwrap_or(tail.len())..];
    }
    out.push_str(rest);
    if text.len() >= 250 {
        out = out.chars().take(100).collect::<String>() + "...";
    }
    out
}

/// "ok", or the error's [`code`].
pub fn outcome<T>(r: &lapin::Result<T>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(e) => code(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Field tables
// ---------------------------------------------------------------------------------------------

pub fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), v.clone());
    }
    t
}

pub fn text(v: &str) -> AMQPValue {
    AMQPValue::LongString(v.into())
}

pub fn int(v: i32) -> AMQPValue {
    AMQPValue::LongInt(v)
}

// ---------------------------------------------------------------------------------------------
// Declaring and binding
// ---------------------------------------------------------------------------------------------

/// queue.declare; the answer has the queue's name and counts.
pub async fn declare_queue(ch: &Channel, name: &str) -> Queue {
    declare_queue_with(ch, name, FieldTable::default()).await
}

pub async fn declare_queue_with(ch: &Channel, name: &str, args: FieldTable) -> Queue {
    ch.queue_declare(name.into(), QueueDeclareOptions::default(), args)
        .await
        .expect("queue.declare")
}

/// Quorum queues and streams must be durable.
pub const DURABLE: QueueDeclareOptions = QueueDeclareOptions {
    passive: false,
    durable: true,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

/// queue.declare of a durable queue of `queue_type` (`x-queue-type`), with `args` besides.
pub async fn try_declare_typed(
    ch: &Channel,
    name: &str,
    queue_type: &str,
    args: &[(&str, AMQPValue)],
) -> lapin::Result<Queue> {
    let mut all = vec![("x-queue-type", text(queue_type))];
    all.extend(args.iter().cloned());
    ch.queue_declare(name.into(), DURABLE, table(&all)).await
}

/// A new durable queue of `queue_type` named after `what`, with `args` besides its type; its
/// name.
pub async fn new_typed(
    ch: &Channel,
    what: &str,
    queue_type: &str,
    args: &[(&str, AMQPValue)],
) -> String {
    let name = super::unique(what);
    try_declare_typed(ch, &name, queue_type, args)
        .await
        .unwrap_or_else(|e| panic!("{queue_type} queue.declare: {}", code(&e)));
    name
}

/// A queue only this connection may use, deleted when the connection closes.
pub async fn declare_exclusive_queue(ch: &Channel, name: &str) -> Queue {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            exclusive: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("queue.declare exclusive")
}

/// Passive queue.declare: the queue's counts, or the error (which closes the channel).
pub async fn passive_queue(ch: &Channel, name: &str) -> lapin::Result<Queue> {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
}

/// Passive queue.declare on a throwaway channel: "ok messages=N consumers=M" or the error code.
pub async fn inspect_queue(conn: &Connection, name: &str) -> String {
    let ch = conn.create_channel().await.expect("channel.open");
    match passive_queue(&ch, name).await {
        Ok(q) => {
            let _ = ch.close(200, "OK".into()).await;
            format!(
                "ok messages={} consumers={}",
                q.message_count(),
                q.consumer_count()
            )
        }
        Err(e) => code(&e),
    }
}

pub async fn declare_exchange(ch: &Channel, name: &str, kind: ExchangeKind) {
    try_declare_exchange(
        ch,
        name,
        kind,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.declare");
}

/// exchange.declare with options and arguments; the caller decides what an error means.
pub async fn try_declare_exchange(
    ch: &Channel,
    name: &str,
    kind: ExchangeKind,
    options: ExchangeDeclareOptions,
    args: FieldTable,
) -> lapin::Result<()> {
    ch.exchange_declare(name.into(), kind, options, args).await
}

pub async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.bind");
}

pub async fn unbind(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    ch.queue_unbind(
        queue.into(),
        exchange.into(),
        key.into(),
        FieldTable::default(),
    )
    .await
    .expect("queue.unbind");
}

pub async fn bind_exchange(ch: &Channel, destination: &str, source: &str, key: &str) {
    ch.exchange_bind(
        destination.into(),
        source.into(),
        key.into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.bind");
}

// ---------------------------------------------------------------------------------------------
// Publishing
// ---------------------------------------------------------------------------------------------

/// Publishes and describes what came back: "ack", "nack", "returned CODE TEXT then ack" for a
/// returned mandatory message, "sent" on a channel not in confirm mode, or the error code.
pub async fn publish_with(
    ch: &Channel,
    exchange: &str,
    key: &str,
    body: &str,
    properties: BasicProperties,
    mandatory: bool,
) -> String {
    let options = BasicPublishOptions {
        mandatory,
        ..BasicPublishOptions::default()
    };
    let confirm = match ch
        .basic_publish(
            exchange.into(),
            key.into(),
            options,
            body.as_bytes(),
            properties,
        )
        .await
    {
        Ok(confirm) => confirm,
        Err(e) => return code(&e),
    };
    match confirm.await {
        Ok(Confirmation::Ack(None)) => "ack".to_string(),
        Ok(Confirmation::Ack(Some(m))) => {
            format!("returned {} {} then ack", m.reply_code, m.reply_text)
        }
        Ok(Confirmation::Nack(None)) => "nack".to_string(),
        Ok(Confirmation::Nack(Some(m))) => {
            format!("returned {} {} then nack", m.reply_code, m.reply_text)
        }
        Ok(Confirmation::NotRequested) => "sent".to_string(),
        Err(e) => code(&e),
    }
}

pub async fn publish(ch: &Channel, exchange: &str, key: &str, body: &str) -> String {
    publish_with(ch, exchange, key, body, BasicProperties::default(), false).await
}

/// Publishes to a queue through the default exchange.
pub async fn send(ch: &Channel, queue: &str, body: &str) -> String {
    publish(ch, "", queue, body).await
}

/// Publishes and waits for the confirm (on a channel not in confirm mode, for the send); panics
/// on an error, whatever the broker confirms.
pub async fn publish_and_wait(
    ch: &Channel,
    exchange: &str,
    key: &str,
    body: &[u8],
) -> Confirmation {
    ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        body,
        BasicProperties::default(),
    )
    .await
    .expect("basic.publish")
    .await
    .expect("publisher confirm")
}

// ---------------------------------------------------------------------------------------------
// Getting and consuming
// ---------------------------------------------------------------------------------------------

pub fn body(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.data).into_owned()
}

/// basic.get with manual ack; None on get-empty.
pub async fn get(ch: &Channel, queue: &str) -> Option<BasicGetMessage> {
    ch.basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await
        .expect("basic.get")
}

/// Takes every message off a queue (no-ack), in order.
pub async fn take_all(ch: &Channel, queue: &str) -> Vec<Delivery> {
    let mut taken = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        taken.push(m.delivery);
    }
    taken
}

/// Takes every message off a queue (no-ack) and returns the bodies in order.
pub async fn drain(ch: &Channel, queue: &str) -> Vec<String> {
    take_all(ch, queue).await.iter().map(body).collect()
}

pub async fn consume(ch: &Channel, queue: &str, tag: &str, no_ack: bool) -> Consumer {
    ch.basic_consume(
        queue.into(),
        tag.into(),
        BasicConsumeOptions {
            no_ack,
            ..BasicConsumeOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("basic.consume")
}

/// The next delivery, or what ended the wait: "stream ended", "error ...", "nothing".
pub async fn next(consumer: &mut Consumer, wait: Duration) -> Result<Delivery, String> {
    match tokio::time::timeout(wait, consumer.next()).await {
        Ok(Some(Ok(d))) => Ok(d),
        Ok(Some(Err(e))) => Err(format!("error {}", code(&e))),
        Ok(None) => Err("stream ended".to_string()),
        Err(_) => Err("nothing".to_string()),
    }
}

/// Collects deliveries until none arrives for `quiet`.
pub async fn collect(consumer: &mut Consumer, quiet: Duration) -> Vec<Delivery> {
    let mut got = Vec::new();
    while let Ok(d) = next(consumer, quiet).await {
        got.push(d);
    }
    got
}

// ---------------------------------------------------------------------------------------------
// Errors the server reports on a connection
// ---------------------------------------------------------------------------------------------

pub type Events = Pin<Box<dyn Stream<Item = Event> + Send>>;

/// Errors reported on `conn` from now on (every channel error, including those an awaited call
/// already returned), so create it right before the step whose error is wanted.
pub fn events(conn: &Connection) -> Events {
    Box::pin(conn.events_listener())
}

/// The next channel or connection error the server reports on this connection.
pub async fn next_error(events: &mut Events) -> String {
    let wait = async {
        while let Some(event) = events.next().await {
            if let Event::Error(e) = event {
                return code(&e);
            }
        }
        "events ended".to_string()
    };
    tokio::time::timeout(Duration::from_secs(2), wait)
        .await
        .unwrap_or_else(|_| "no error".to_string())
}

// ---------------------------------------------------------------------------------------------
// Transcripts
// ---------------------------------------------------------------------------------------------

/// The transcript, visible with `--nocapture` or when a test fails.
pub fn show(t: &[String]) {
    for line in t {
        eprintln!("  {line}");
    }
}

/// `line` is in the transcript, either exactly or followed by a reply text in parentheses.
pub fn has(t: &[String], line: &str) -> bool {
    let with_text = format!("{line} (");
    t.iter().any(|l| l == line || l.starts_with(&with_text))
}

/// Every one of `lines` is in the transcript (see [`has`]).
pub fn assert_has(t: &[String], lines: &[&str]) {
    for line in lines {
        assert!(has(t, line), "missing {line:?} in {t:#?}");
    }
}
