//! Streams (`x-queue-type: stream`), checked against RabbitMQ 3.10 and the embedded broker
//! alike: the arguments a stream takes and the words it refuses others with, consumers that
//! each read every message from their own `x-stream-offset`, the methods a stream refuses, and
//! retention dropping whole old segments. Then, on the embedded broker alone: a restart keeps
//! the messages with their offsets, and events and inspection show the offsets.
//!
//! RabbitMQ cuts a stream into chunks and segments its own way (see `src/broker/stream.rs`),
//! so where that shows (`last`, retention) the scenarios record only what holds on both.
mod common;

use std::time::Duration;

use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
    QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection};

use common::client::*;

/// How long a consumer waits for one more delivery before it has seen them all.
const QUIET: Duration = Duration::from_millis(800);

fn stream() -> (&'static str, AMQPValue) {
    ("x-queue-type", text("stream"))
}

async fn try_declare_stream(
    ch: &Channel,
    name: &str,
    args: &[(&str, AMQPValue)],
) -> lapin::Result<lapin::Queue> {
    try_declare_typed(ch, name, "stream", args).await
}

/// A new stream named after `what`, with `args` besides its type; its name.
async fn new_stream(ch: &Channel, what: &str, args: &[(&str, AMQPValue)]) -> String {
    new_typed(ch, what, "stream", args).await
}

/// Publishes `bodies` one at a time, each confirmed before the next (so RabbitMQ writes each
/// in a chunk of its own).
async fn publish_each(ch: &Channel, queue: &str, bodies: impl IntoIterator<Item = String>) {
    for b in bodies {
        assert_eq!(send(ch, queue, &b).await, "ack");
    }
}

/// The `x-stream-offset` header of a delivery as `value:type`.
fn offset_header(d: &lapin::message::Delivery) -> String {
    let headers = d.properties.headers().as_ref();
    match headers.and_then(|h| h.inner().get("x-stream-offset")) {
        Some(AMQPValue::LongLongInt(n)) => format!("{n}:long"),
        Some(other) => format!("{other:?}"),
        None => "none".to_string(),
    }
}

/// A consumer on its own connection, with prefetch `prefetch` and consume arguments `args`.
struct Reader {
    conn: Connection,
    _channel: Channel,
    consumer: lapin::Consumer,
}

async fn reader(url: &str, queue: &str, prefetch: u16, args: FieldTable) -> Reader {
    let conn = connect(url).await;
    let ch = conn.create_channel().await.expect("channel.open");
    ch.basic_qos(prefetch, BasicQosOptions { global: false })
        .await
        .expect("basic.qos");
    let consumer = ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            args,
        )
        .await
        .expect("basic.consume");
    Reader {
        conn,
        _channel: ch,
        consumer,
    }
}

impl Reader {
    /// What arrives until nothing more does, each acked: `body@offset`, plus whether any was
    /// redelivered.
    async fn read(&mut self) -> Vec<String> {
        let mut got = Vec::new();
        while let Ok(d) = next(&mut self.consumer, QUIET).await {
            assert!(!d.redelivered, "a stream never redelivers");
            got.push(format!("{}@{}", body(&d), offset_header(&d)));
            d.ack(BasicAckOptions::default()).await.expect("ack");
        }
        got
    }

    async fn close(self) {
        let _ = self.conn.close(200, "OK".into()).await;
    }
}

/// Everything a reader starting at `offset` gets.
async fn read_from(url: &str, queue: &str, offset: Option<AMQPValue>) -> Vec<String> {
    let args = offset.map_or_else(FieldTable::default, |o| table(&[("x-stream-offset", o)]));
    let mut r = reader(url, queue, 100, args).await;
    let got = r.read().await;
    r.close().await;
    got
}

/// The outcome of one step on a fresh connection: "ok", or the error and whether it closed
/// the channel or the whole connection.
async fn on_fresh_connection<F, Fut, T>(url: &str, step: F) -> String
where
    F: FnOnce(Channel) -> Fut,
    Fut: std::future::Future<Output = lapin::Result<T>>,
{
    let conn = connect(url).await;
    let ch = conn.create_channel().await.expect("channel.open");
    let mut errors = events(&conn);
    let r = step(ch.clone()).await;
    let answer = match r {
        Ok(_) => {
            // An error may follow the method's own answer (a nack is not answered).
            match tokio::time::timeout(Duration::from_millis(500), next_error(&mut errors)).await {
                Ok(e) if e != "no error" => e,
                _ => "ok".to_string(),
            }
        }
        Err(e) => code(&e),
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let closed = if !conn.status().connected() {
        "connection closed"
    } else if !ch.status().connected() {
        "channel closed"
    } else {
        "open"
    };
    let _ = conn.close(200, "OK".into()).await;
    format!("{answer}; {closed}")
}

// ---------------------------------------------------------------------------------------------
// Declaring
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_takes_its_own_arguments_and_refuses_the_others() {
    let t = common::differential(|url| async move {
        let int = |n: i32| AMQPValue::LongInt(n);
        let cases: Vec<(&str, Vec<(&str, AMQPValue)>)> = vec![
            ("x-message-ttl", vec![("x-message-ttl", int(1000))]),
            ("x-max-length", vec![("x-max-length", int(10))]),
            (
                "x-dead-letter-exchange",
                vec![("x-dead-letter-exchange", text("dlx"))],
            ),
            ("x-overflow", vec![("x-overflow", text("drop-head"))]),
            ("x-max-priority", vec![("x-max-priority", int(5))]),
            ("x-expires", vec![("x-expires", int(10_000))]),
            (
                "x-single-active-consumer",
                vec![("x-single-active-consumer", AMQPValue::Boolean(true))],
            ),
            ("x-delivery-limit", vec![("x-delivery-limit", int(3))]),
            ("x-queue-mode", vec![("x-queue-mode", text("lazy"))]),
            ("x-max-age 1800s", vec![("x-max-age", text("1800s"))]),
            ("x-max-age 7D", vec![("x-max-age", text("7D"))]),
            ("x-max-age 1Y", vec![("x-max-age", text("1Y"))]),
            ("x-max-age 10m", vec![("x-max-age", text("10m"))]),
            ("x-max-age 10", vec![("x-max-age", text("10"))]),
            ("x-max-age 0s", vec![("x-max-age", text("0s"))]),
            ("x-max-age 1x", vec![("x-max-age", text("1x"))]),
            ("x-max-age abc", vec![("x-max-age", text("abc"))]),
            ("x-max-age as a number", vec![("x-max-age", int(5))]),
            ("x-max-length-bytes 0", vec![("x-max-length-bytes", int(0))]),
            (
                "x-max-length-bytes -1",
                vec![("x-max-length-bytes", int(-1))],
            ),
            (
                "x-max-length-bytes text",
                vec![("x-max-length-bytes", text("abc"))],
            ),
            (
                "segment size 1000",
                vec![("x-stream-max-segment-size-bytes", int(1000))],
            ),
            (
                "segment size -1",
                vec![("x-stream-max-segment-size-bytes", int(-1))],
            ),
            (
                "segment size too big",
                vec![(
                    "x-stream-max-segment-size-bytes",
                    AMQPValue::LongLongInt(3_000_000_001),
                )],
            ),
            (
                "initial cluster size 0",
                vec![("x-initial-cluster-size", int(0))],
            ),
            (
                "leader locator foo",
                vec![("x-queue-leader-locator", text("foo"))],
            ),
            (
                "leader locator client-local",
                vec![("x-queue-leader-locator", text("client-local"))],
            ),
            // Values are read before unsupported arguments are refused, and in RabbitMQ's
            // order, whatever the table's.
            (
                "bad max-age and a ttl",
                vec![("x-max-age", text("1x")), ("x-message-ttl", int(1))],
            ),
            (
                "bad max-age and bad max-length-bytes",
                vec![("x-max-age", text("1x")), ("x-max-length-bytes", int(-1))],
            ),
            (
                "too big a segment and a ttl",
                vec![
                    (
                        "x-stream-max-segment-size-bytes",
                        AMQPValue::LongLongInt(3_000_000_001),
                    ),
                    ("x-message-ttl", int(1)),
                ],
            ),
            ("an unknown argument", vec![("x-unknown", int(1))]),
        ];
        let mut t = Vec::new();
        for (label, args) in cases {
            let name = common::unique("declare-s");
            let answer = on_fresh_connection(&url, |ch| {
                let name = name.clone();
                async move {
                    let q = try_declare_stream(&ch, &name, &args).await?;
                    Ok((q.message_count(), q.consumer_count()))
                }
            })
            .await;
            t.push(format!("{label}: {answer}"));
            let conn = connect(&url).await;
            cleanup(&conn, &[&name], &[]).await;
        }
        // Properties are checked after the arguments; a transient stream is refused.
        let name = common::unique("declare-s");
        let answer = on_fresh_connection(&url, |ch| {
            let name = name.clone();
            async move {
                let options = QueueDeclareOptions {
                    durable: false,
                    ..DURABLE
                };
                ch.queue_declare(name.as_str().into(), options, table(&[stream()]))
                    .await
            }
        })
        .await;
        t.push(format!("non-durable: {answer}"));
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "x-message-ttl: 406 PRECONDITION-FAILED",
            "x-max-age 1800s: ok; open",
            "x-max-age abc: 541 INTERNAL-ERROR (INTERNAL_ERROR); connection closed",
            "segment size too big: 406 PRECONDITION-FAILED (PRECONDITION_FAILED - Exceeded max value for x-stream-max-segment-size-bytes); channel closed",
            "an unknown argument: ok; open",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_redeclared_only_as_it_is() {
    let t = common::differential(|url| async move {
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = new_stream(&ch, "redeclare-s", &[("x-max-age", text("1h"))]).await;
        publish_each(&ch, &q, (0..3).map(|i| format!("m{i}"))).await;
        let mut t = Vec::new();
        let attempts: Vec<(&str, Vec<(&str, AMQPValue)>)> = vec![
            ("same", vec![("x-max-age", text("1h"))]),
            ("another max-age", vec![("x-max-age", text("2h"))]),
            ("no max-age", vec![]),
            (
                "with max-length-bytes",
                vec![("x-max-age", text("1h")), ("x-max-length-bytes", int(1000))],
            ),
        ];
        for (label, args) in attempts {
            let answer = on_fresh_connection(&url, |ch| {
                let q = q.clone();
                async move {
                    let declared = try_declare_stream(&ch, &q, &args).await?;
                    Ok(format!(
                        "messages={} consumers={}",
                        declared.message_count(),
                        declared.consumer_count()
                    ))
                }
            })
            .await;
            t.push(format!("{label}: {answer}"));
        }
        // declare-ok counts the messages held, and no consumers even while one reads.
        // RabbitMQ takes the count from statistics it gathers every few seconds.
        let mut r = reader(&url, &q, 10, table(&[("x-stream-offset", text("first"))])).await;
        assert_eq!(r.read().await.len(), 3);
        t.push(format!("while read: {}", counted(&conn, &q, 3).await));
        r.close().await;
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "same: ok; open",
            "no max-age: 406 PRECONDITION-FAILED (PRECONDITION_FAILED - inequivalent arg 'x-max-age' for queue '<name>' in vhost '/': received none but current is the value '1h' of type 'longstr'); channel closed",
            "while read: ok messages=3 consumers=0",
        ],
    );
}

/// What a passive declare reports once it counts `messages` (or after ten seconds).
async fn counted(conn: &Connection, queue: &str, messages: u32) -> String {
    let wanted = format!("ok messages={messages} ");
    let mut answer = inspect_queue(conn, queue).await;
    for _ in 0..40 {
        if answer.starts_with(&wanted) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        answer = inspect_queue(conn, queue).await;
    }
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_deleted_whatever_it_holds_and_whoever_reads_it() {
    let t = common::differential(|url| async move {
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = new_stream(&ch, "delete-s", &[]).await;
        publish_each(&ch, &q, ["m0".to_string()]).await;
        let mut r = reader(&url, &q, 5, table(&[("x-stream-offset", text("first"))])).await;
        assert_eq!(r.read().await, ["m0@0:long"]);
        let options = QueueDeleteOptions {
            if_unused: true,
            if_empty: true,
            nowait: false,
        };
        let deleted = ch.queue_delete(q.as_str().into(), options).await;
        let t = vec![
            format!("delete if unused and empty: {deleted:?}"),
            format!("then: {}", inspect_queue(&conn, &q).await),
        ];
        r.close().await;
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    assert_eq!(
        t,
        [
            "delete if unused and empty: Ok(0)",
            "then: 404 NOT-FOUND (NOT_FOUND - no queue '<name>' in vhost '/')"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_consumer_reads_every_message_from_its_own_offset() {
    let t = common::differential(|url| async move {
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = new_stream(&ch, "read-s", &[]).await;
        publish_each(&ch, &q, (0..5).map(|i| format!("m{i}"))).await;
        let mut t = Vec::new();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let starts: Vec<(&str, Option<AMQPValue>)> = vec![
            ("first", Some(text("first"))),
            ("first again", Some(text("first"))),
            ("next", Some(text("next"))),
            ("none given", None),
            ("2 as a long", Some(AMQPValue::LongLongInt(2))),
            ("3 as a short", Some(AMQPValue::ShortInt(3))),
            ("4 as an int", Some(AMQPValue::LongInt(4))),
            ("-1", Some(AMQPValue::LongLongInt(-1))),
            ("99", Some(AMQPValue::LongLongInt(99))),
            ("an hour ago", Some(AMQPValue::Timestamp(now - 3600))),
            ("in an hour", Some(AMQPValue::Timestamp(now + 3600))),
            ("10m", Some(text("10m"))),
        ];
        for (label, offset) in starts {
            let got = read_from(&url, &q, offset).await;
            t.push(format!("{label}: {}", got.join(" ")));
        }
        // `last` starts at the last chunk: the newest message, maybe some before it.
        let got = read_from(&url, &q, Some(text("last"))).await;
        let expected: Vec<String> = (0..5).map(|i| format!("m{i}@{i}:long")).collect();
        t.push(format!(
            "last: ends with the newest, in order: {}",
            !got.is_empty() && expected.ends_with(&got)
        ));

        // Two consumers reading live: each gets what arrives, and nothing is taken away.
        let mut a = reader(&url, &q, 10, table(&[("x-stream-offset", text("next"))])).await;
        let mut b = reader(&url, &q, 10, table(&[("x-stream-offset", text("next"))])).await;
        publish_each(&ch, &q, ["m5".to_string(), "m6".to_string()]).await;
        t.push(format!("live a: {}", a.read().await.join(" ")));
        t.push(format!("live b: {}", b.read().await.join(" ")));
        a.close().await;
        b.close().await;
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    let all = "m0@0:long m1@1:long m2@2:long m3@3:long m4@4:long";
    assert_has(
        &t,
        &[
            &format!("first: {all}"),
            &format!("first again: {all}"),
            "next: ",
            "none given: ",
            "2 as a long: m2@2:long m3@3:long m4@4:long",
            "3 as a short: m3@3:long m4@4:long",
            &format!("an hour ago: {all}"),
            "last: ends with the newest, in order: true",
            "live a: m5@5:long m6@6:long",
            "live b: m5@5:long m6@6:long",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_bounds_a_stream_consumer_and_acks_give_credit_back() {
    let t = common::differential(|url| async move {
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = new_stream(&ch, "credit-s", &[]).await;
        publish_each(&ch, &q, (0..5).map(|i| format!("m{i}"))).await;
        let mut t = Vec::new();
        let mut r = reader(&url, &q, 2, table(&[("x-stream-offset", text("first"))])).await;
        let mut held = Vec::new();
        while let Ok(d) = next(&mut r.consumer, QUIET).await {
            held.push(d);
        }
        t.push(format!(
            "before any ack: {}",
            held.iter().map(body).collect::<Vec<_>>().join(" ")
        ));
        held[1]
            .ack(BasicAckOptions { multiple: true })
            .await
            .expect("ack");
        t.push(format!("after acking both: {}", r.read().await.join(" ")));
        r.close().await;
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "before any ack: m0 m1",
            "after acking both: m2@2:long m3@3:long m4@4:long",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_stream_refuses() {
    let t = common::differential(|url| async move {
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = new_stream(&ch, "refuse-s", &[]).await;
        publish_each(&ch, &q, ["m0".to_string()]).await;
        let mut t = Vec::new();
        let consume = |prefetch: Option<(u16, bool)>, no_ack: bool, args: FieldTable| {
            let q = q.clone();
            move |ch: Channel| async move {
                if let Some((n, global)) = prefetch {
                    ch.basic_qos(n, BasicQosOptions { global }).await?;
                }
                let options = BasicConsumeOptions {
                    no_ack,
                    ..BasicConsumeOptions::default()
                };
                ch.basic_consume(q.as_str().into(), "".into(), options, args)
                    .await
            }
        };
        let none = FieldTable::default;
        let offset = |v: AMQPValue| table(&[("x-stream-offset", v)]);
        let cases = [
            ("no qos", consume(None, false, none())),
            ("global qos only", consume(Some((5, true)), false, none())),
            ("no-ack", consume(Some((5, false)), true, none())),
            (
                "x-priority",
                consume(Some((5, false)), false, table(&[("x-priority", int(3))])),
            ),
            (
                "offset 1x",
                consume(Some((5, false)), false, offset(text("1x"))),
            ),
            (
                "offset abc",
                consume(Some((5, false)), false, offset(text("abc"))),
            ),
            (
                "offset true",
                consume(Some((5, false)), false, offset(AMQPValue::Boolean(true))),
            ),
        ];
        for (label, step) in cases {
            t.push(format!(
                "consume with {label}: {}",
                on_fresh_connection(&url, step).await
            ));
        }
        let global_then_consumer = on_fresh_connection(&url, |ch: Channel| {
            let q = q.clone();
            async move {
                ch.basic_qos(5, BasicQosOptions { global: false }).await?;
                ch.basic_qos(5, BasicQosOptions { global: true }).await?;
                ch.basic_consume(q.as_str().into(), "".into(), Default::default(), none())
                    .await
            }
        })
        .await;
        t.push(format!("consume with both qos: {global_then_consumer}"));
        let get = on_fresh_connection(&url, |ch: Channel| {
            let q = q.clone();
            async move { ch.basic_get(q.as_str().into(), Default::default()).await }
        })
        .await;
        t.push(format!("basic.get: {get}"));
        let purge = on_fresh_connection(&url, |ch: Channel| {
            let q = q.clone();
            async move {
                ch.queue_purge(q.as_str().into(), QueuePurgeOptions::default())
                    .await
            }
        })
        .await;
        t.push(format!("queue.purge: {purge}"));
        for how in ["nack requeue", "nack", "reject requeue", "reject"] {
            let answer = on_fresh_connection(&url, |ch: Channel| {
                let q = q.clone();
                async move {
                    ch.basic_qos(5, BasicQosOptions { global: false }).await?;
                    let args = table(&[("x-stream-offset", text("first"))]);
                    let mut c = ch
                        .basic_consume(q.as_str().into(), "".into(), Default::default(), args)
                        .await?;
                    let d = next(&mut c, Duration::from_secs(5)).await.expect("m0");
                    let requeue = how.ends_with("requeue");
                    if how.starts_with("nack") {
                        let options = BasicNackOptions {
                            multiple: false,
                            requeue,
                        };
                        ch.basic_nack(d.delivery_tag, options).await
                    } else {
                        let options = BasicRejectOptions { requeue };
                        ch.basic_reject(d.delivery_tag, options).await
                    }
                }
            })
            .await;
            t.push(format!("{how}: {answer}"));
        }
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    let not_set = "406 PRECONDITION-FAILED (PRECONDITION_FAILED - consumer prefetch count is not set for 'queue '<name>' in vhost '/''); channel closed";
    assert_has(
        &t,
        &[
            &format!("consume with no qos: {not_set}"),
            &format!("consume with global qos only: {not_set}"),
            "consume with no-ack: 540 NOT-IMPLEMENTED (NOT_IMPLEMENTED - automatic acknowledgement not supported by stream queues queue '<name>' in vhost '/'); connection closed",
            "basic.get: 540 NOT-IMPLEMENTED (NOT_IMPLEMENTED - basic.get not supported by stream queues queue '<name>' in vhost '/'); connection closed",
            "nack requeue: 540 NOT-IMPLEMENTED (NOT_IMPLEMENTED - basic.nack and basic.reject not supported by stream queues queue '<name>' in vhost '/'); connection closed",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Retention
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_the_oldest_whole_segments() {
    let t = common::differential(|url| async move {
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = new_stream(
            &ch,
            "retention-s",
            &[
                ("x-stream-max-segment-size-bytes", int(1000)),
                ("x-max-length-bytes", int(2000)),
            ],
        )
        .await;
        let body = |i: usize| format!("{i:03}{}", "x".repeat(97));
        publish_each(&ch, &q, (0..100).map(body)).await;
        let args = table(&[("x-stream-offset", text("first"))]);
        let mut r = reader(&url, &q, 200, args).await;
        let mut numbers = Vec::new();
        while let Ok(d) = next(&mut r.consumer, QUIET).await {
            numbers.push(body_number(&d));
            d.ack(BasicAckOptions::default()).await.expect("ack");
        }
        r.close().await;
        let mut t = Vec::new();
        t.push(format!(
            "the oldest are gone: {}",
            numbers.first().is_some_and(|&n| n > 0)
        ));
        t.push(format!(
            "the newest is kept: {}",
            numbers.last() == Some(&99)
        ));
        t.push(format!(
            "what is kept follows on: {}",
            numbers.windows(2).all(|w| w[1] == w[0] + 1)
        ));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    assert_eq!(
        t,
        [
            "the oldest are gone: true",
            "the newest is kept: true",
            "what is kept follows on: true"
        ]
    );
}

/// The number a retention body starts with.
fn body_number(d: &lapin::message::Delivery) -> usize {
    body(d)[..3].parse().expect("numbered body")
}

// ---------------------------------------------------------------------------------------------
// The embedded broker alone: restart, events, inspection
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_a_streams_messages_and_offsets() {
    use rabbitscope::broker::BrokerConfig;
    let dir = std::env::temp_dir().join(common::unique("stream-store"));
    let config = BrokerConfig {
        data_dir: Some(dir.clone()),
        ..BrokerConfig::default()
    };
    let (url, broker) = common::start_embedded_with(config).await;
    let conn = connect(&url).await;
    let ch = channel(&conn).await;
    let q = new_stream(
        &ch,
        "restart-s",
        &[
            ("x-stream-max-segment-size-bytes", int(300)),
            ("x-max-length-bytes", int(600)),
        ],
    )
    .await;
    // Transient messages too: a stream keeps everything it is sent.
    publish_each(&ch, &q, (0..20).map(|i| format!("m{i}"))).await;
    let before = read_from(&url, &q, Some(text("first"))).await;
    let kept = broker.stream_snapshot("/", &q).expect("a stream");
    assert!(
        kept.first_offset > 0,
        "retention dropped the oldest: {kept:?}"
    );
    assert_eq!(kept.next_offset, 20);

    let restarting = broker.clone();
    tokio::task::spawn_blocking(move || restarting.restart())
        .await
        .unwrap()
        .unwrap();
    let after = read_from(&url, &q, Some(text("first"))).await;
    assert_eq!(after, before, "the same messages at the same offsets");
    let again = broker.stream_snapshot("/", &q).expect("a stream");
    assert_eq!(
        (again.first_offset, again.next_offset, again.messages),
        (kept.first_offset, kept.next_offset, kept.messages)
    );
    // Appending goes on from there.
    let conn = connect(&url).await;
    let ch = channel(&conn).await;
    publish_each(&ch, &q, ["m20".to_string()]).await;
    assert_eq!(
        read_from(&url, &q, Some(AMQPValue::LongLongInt(20))).await,
        ["m20@20:long"]
    );
    cleanup(&conn, &[&q], &[]).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_inspection_show_each_consumers_offset() {
    use rabbitscope::events::{EventKind, Received};
    let (url, broker) = common::start_embedded().await;
    let conn = connect(&url).await;
    let ch = channel(&conn).await;
    let q = new_stream(&ch, "inspect-s", &[("x-max-age", text("1h"))]).await;
    publish_each(&ch, &q, (0..4).map(|i| format!("m{i}"))).await;
    let mut events = broker.subscribe();
    let mut from_first = reader(&url, &q, 10, table(&[("x-stream-offset", text("first"))])).await;
    let mut from_two = reader(&url, &q, 10, table(&[("x-stream-offset", int(2))])).await;
    assert_eq!(from_first.read().await.len(), 4);
    assert_eq!(from_two.read().await.len(), 2);

    let mut offsets = Vec::new();
    while let Some(Received::Event(event)) = events.try_recv() {
        if let EventKind::Delivered { queue, offset, .. } = &event.kind {
            if **queue == *q {
                offsets.push(offset.expect("a stream delivery has its offset"));
            }
        }
    }
    offsets.sort();
    assert_eq!(offsets, [0, 1, 2, 2, 3, 3]);

    let view = broker.stream_snapshot("/", &q).expect("a stream");
    assert_eq!(
        (view.first_offset, view.next_offset, view.messages),
        (0, 4, 4)
    );
    assert_eq!(view.max_age, Some(Duration::from_secs(3600)));
    assert!(view.bytes >= 8 && view.segments == 1);
    let mut positions: Vec<u64> = view.consumers.iter().map(|(_, next)| *next).collect();
    positions.sort();
    assert_eq!(positions, [4, 4], "both read to the end");
    assert!(broker.stream_snapshot("/", "no such stream").is_none());
    from_first.close().await;
    from_two.close().await;
    cleanup(&conn, &[&q], &[]).await;
}

/// What the view is handed: the snapshot of a stream carries its log and where each consumer
/// reads next, keyed as the snapshot lists its consumers; reading leaves every message counted
/// ready and none unacked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_carries_each_consumers_offset() {
    let (url, broker) = common::start_embedded().await;
    let conn = connect(&url).await;
    let ch = channel(&conn).await;
    let q = new_stream(&ch, "snapshot-s", &[("x-max-length-bytes", int(1_000_000))]).await;
    publish_each(&ch, &q, (0..5).map(|i| format!("m{i}"))).await;
    // From `first` with a prefetch of 3 and no acks: it holds offsets 0 to 2.
    let mut first = reader(&url, &q, 3, table(&[("x-stream-offset", text("first"))])).await;
    for _ in 0..3 {
        next(&mut first.consumer, QUIET).await.expect("a delivery");
    }
    assert!(
        next(&mut first.consumer, QUIET).await.is_err(),
        "prefetch 3"
    );
    // From `next`: nothing yet, it waits at offset 5.
    let mut after = reader(&url, &q, 10, table(&[("x-stream-offset", text("next"))])).await;
    assert!(after.read().await.is_empty());

    let snapshot = broker.snapshot();
    let vhost = snapshot.vhost("/").expect("vhost /");
    let queue = vhost
        .queues
        .iter()
        .find(|s| s.name == q)
        .expect("the stream");
    assert_eq!((queue.ready, queue.unacked, queue.consumers), (5, 0, 2));
    let log = queue.stream.as_ref().expect("a stream's log");
    assert_eq!((log.first_offset, log.next_offset, log.segments), (0, 5, 1));
    assert_eq!(log.max_length_bytes, Some(1_000_000));
    assert!(log.bytes >= 10);
    let offset_of = |r: &Reader| {
        let c = (vhost.consumers.iter())
            .find(|c| c.queue == q && c.tag == r.consumer.tag().as_str())
            .expect("listed as a consumer");
        log.reader(&c.tag, c.connection)
    };
    assert_eq!(offset_of(&first), Some(3));
    assert_eq!(offset_of(&after), Some(5));
    first.close().await;
    after.close().await;
    cleanup(&conn, &[&q], &[]).await;
}
