//! Quorum queues, checked against RabbitMQ 3.10 and the embedded broker alike: redeliveries
//! counted in `x-delivery-count`, `x-delivery-limit` dropping or dead-lettering a message,
//! global basic.qos refused for quorum consumers, and the arguments a quorum queue takes.
//!
//! Every scenario records what it observes (by short labels, never by the generated names) and
//! asserts the outcome it expects, so two brokers that both do nothing cannot agree by accident.
mod common;

use std::time::Duration;

use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicGetOptions, BasicNackOptions, BasicQosOptions,
    BasicRecoverOptions, BasicRejectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};

use common::client::*;

/// Time for a broker to finish what an asynchronous method (nack, close) started.
const SETTLE: Duration = Duration::from_millis(300);

fn quorum() -> (&'static str, AMQPValue) {
    ("x-queue-type", text("quorum"))
}

/// A new durable quorum queue named after `what`, with `args` besides its type; its name.
async fn new_quorum(ch: &Channel, what: &str, args: &[(&str, AMQPValue)]) -> String {
    new_typed(ch, what, "quorum", args).await
}

async fn try_declare_quorum(
    ch: &Channel,
    name: &str,
    args: &[(&str, AMQPValue)],
) -> lapin::Result<lapin::Queue> {
    try_declare_typed(ch, name, "quorum", args).await
}

/// A field value with its AMQP type, timestamps left out (they differ from run to run).
fn value(v: &AMQPValue) -> String {
    match v {
        AMQPValue::Timestamp(_) => "timestamp".to_string(),
        AMQPValue::LongString(s) => format!("{:?}", String::from_utf8_lossy(s.as_bytes())),
        AMQPValue::FieldArray(a) => {
            let items: Vec<String> = a.as_slice().iter().map(value).collect();
            format!("[{}]", items.join(", "))
        }
        AMQPValue::FieldTable(t) => fields(t),
        other => format!("{other:?}"),
    }
}

/// A table as `{key=value, ...}` in key order, generated names scrubbed.
fn fields(t: &FieldTable) -> String {
    let mut entries: Vec<String> = t
        .inner()
        .iter()
        .map(|(k, v)| format!("{k}={}", value(v)))
        .collect();
    entries.sort();
    let text = format!("{{{}}}", entries.join(", "));
    scrub_names(&text)
}

/// Generated names (`rs-test.<what>.<pid>.<nanos>.<n>`) become `<what>`.
fn scrub_names(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("rs-test.") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + "rs-test.".len()..];
        let what_end = tail.find('.').unwrap_or(tail.len());
        out.push('<');
        out.push_str(&tail[..what_end]);
        out.push('>');
        let end = tail.find('"').unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// A delivery's body, redelivered flag and headers.
fn described(d: &lapin::message::Delivery) -> String {
    let headers = d
        .properties
        .headers()
        .as_ref()
        .map_or("none".to_string(), fields);
    format!(
        "{} redelivered={} headers={headers}",
        body(d),
        d.redelivered
    )
}

/// basic.get (manual ack) described, or "empty".
async fn get_described(ch: &Channel, queue: &str) -> (String, Option<u64>) {
    match get(ch, queue).await {
        Some(m) => (described(&m.delivery), Some(m.delivery.delivery_tag)),
        None => ("empty".to_string(), None),
    }
}

async fn nack_requeue(ch: &Channel, tag: u64) {
    ch.basic_nack(
        tag,
        BasicNackOptions {
            multiple: false,
            requeue: true,
        },
    )
    .await
    .expect("basic.nack");
}

/// A fanout exchange to dead-letter to and a classic queue bound to it: (exchange, queue).
async fn dead_letter_target(ch: &Channel, what: &str) -> (String, String) {
    let dlx = common::unique(&format!("{what}-dlx"));
    let dead = common::unique(&format!("{what}-dead-q"));
    declare_exchange(ch, &dlx, ExchangeKind::Fanout).await;
    declare_queue(ch, &dead).await;
    bind(ch, &dead, &dlx, "").await;
    (dlx, dead)
}

// ---------------------------------------------------------------------------------------------
// x-delivery-count
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_count_rises_with_each_return() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = new_quorum(&ch, "count-q", &[]).await;
        send(&ch, &q, "m1").await;

        // basic.get, then nack and reject with requeue.
        let (d, tag) = get_described(&ch, &q).await;
        t.push(format!("first get: {d}"));
        nack_requeue(&ch, tag.unwrap()).await;
        let (d, tag) = get_described(&ch, &q).await;
        t.push(format!("after nack: {d}"));
        ch.basic_reject(tag.unwrap(), BasicRejectOptions { requeue: true })
            .await
            .expect("basic.reject");
        let (d, tag) = get_described(&ch, &q).await;
        t.push(format!("after reject: {d}"));
        nack_requeue(&ch, tag.unwrap()).await;

        // A consumer sees the count too.
        let cch = channel(&conn).await;
        let mut consumer = consume(&cch, &q, "counting", false).await;
        let d = next(&mut consumer, Duration::from_secs(2)).await.unwrap();
        t.push(format!("consumed: {}", described(&d)));
        cch.basic_nack(
            d.delivery_tag,
            BasicNackOptions {
                multiple: false,
                requeue: true,
            },
        )
        .await
        .expect("nack");
        let d = next(&mut consumer, Duration::from_secs(2)).await.unwrap();
        t.push(format!("consumed again: {}", described(&d)));
        cch.basic_cancel("counting".into(), BasicCancelOptions::default())
            .await
            .expect("cancel");
        // Unacked when its channel closes.
        cch.close(200, "OK".into()).await.expect("channel.close");
        tokio::time::sleep(SETTLE).await;
        let (d, tag) = get_described(&ch, &q).await;
        t.push(format!("after channel close: {d}"));
        nack_requeue(&ch, tag.unwrap()).await;

        // Unacked when its connection closes.
        let other = connect(&url).await;
        let och = channel(&other).await;
        let (d, _) = get_described(&och, &q).await;
        t.push(format!("on another connection: {d}"));
        other
            .close(200, "OK".into())
            .await
            .expect("connection.close");
        tokio::time::sleep(SETTLE).await;
        let (d, _) = get_described(&ch, &q).await;
        t.push(format!("after connection close: {d}"));

        // basic.recover gives back every unacked delivery of the channel.
        ch.basic_recover(BasicRecoverOptions { requeue: true })
            .await
            .expect("basic.recover");
        tokio::time::sleep(SETTLE).await;
        let (d, tag) = get_described(&ch, &q).await;
        t.push(format!("after recover: {d}"));
        ch.basic_ack(tag.unwrap(), BasicAckOptions::default())
            .await
            .expect("ack");

        // A count the publisher set is replaced.
        let props = BasicProperties::default()
            .with_headers(table(&[("x-delivery-count", int(7)), ("a", int(1))]));
        publish_with(&ch, "", &q, "m2", props, false).await;
        let (d, tag) = get_described(&ch, &q).await;
        t.push(format!("publisher's count: {d}"));
        ch.basic_ack(tag.unwrap(), BasicAckOptions::default())
            .await
            .expect("ack");

        // A classic queue counts nothing.
        let c = common::unique("count-classic-q");
        declare_queue(&ch, &c).await;
        send(&ch, &c, "c1").await;
        let (_, tag) = get_described(&ch, &c).await;
        nack_requeue(&ch, tag.unwrap()).await;
        let (d, _) = get_described(&ch, &c).await;
        t.push(format!("classic after nack: {d}"));
        cleanup(&conn, &[&q, &c], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "first get: m1 redelivered=false headers={x-delivery-count=LongLongInt(0)}",
            "after nack: m1 redelivered=true headers={x-delivery-count=LongLongInt(1)}",
            "after reject: m1 redelivered=true headers={x-delivery-count=LongLongInt(2)}",
            "consumed: m1 redelivered=true headers={x-delivery-count=LongLongInt(3)}",
            "consumed again: m1 redelivered=true headers={x-delivery-count=LongLongInt(4)}",
            "after channel close: m1 redelivered=true headers={x-delivery-count=LongLongInt(5)}",
            "on another connection: m1 redelivered=true headers={x-delivery-count=LongLongInt(6)}",
            "after connection close: m1 redelivered=true headers={x-delivery-count=LongLongInt(7)}",
            "after recover: m1 redelivered=true headers={x-delivery-count=LongLongInt(8)}",
            "publisher's count: m2 redelivered=false headers={a=LongInt(1), x-delivery-count=LongLongInt(0)}",
            "classic after nack: c1 redelivered=true headers=none",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// x-delivery-limit
// ---------------------------------------------------------------------------------------------

/// Gets and nacks (requeue) until the queue is empty; each delivery described.
async fn return_until_gone(ch: &Channel, queue: &str, t: &mut Vec<String>, label: &str) {
    for i in 0..5 {
        let (d, tag) = get_described(ch, queue).await;
        t.push(format!("{label} get {i}: {d}"));
        let Some(tag) = tag else {
            return;
        };
        nack_requeue(ch, tag).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_limit_drops_a_message_returned_more_often() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let two = new_quorum(&ch, "limit-two-q", &[("x-delivery-limit", int(2))]).await;
        send(&ch, &two, "m").await;
        return_until_gone(&ch, &two, &mut t, "limit 2").await;
        let zero = new_quorum(&ch, "limit-zero-q", &[("x-delivery-limit", int(0))]).await;
        send(&ch, &zero, "m").await;
        return_until_gone(&ch, &zero, &mut t, "limit 0").await;
        cleanup(&conn, &[&two, &zero], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "limit 2 get 2: m redelivered=true headers={x-delivery-count=LongLongInt(2)}",
            "limit 2 get 3: empty",
            "limit 0 get 0: m redelivered=false headers={x-delivery-count=LongLongInt(0)}",
            "limit 0 get 1: empty",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_limit_dead_letters_with_reason_delivery_limit() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let (dlx, dead) = dead_letter_target(&ch, "limit").await;

        // Through a fanout, with the publisher's headers and expiration.
        let q = new_quorum(
            &ch,
            "limit-dl-q",
            &[
                ("x-delivery-limit", int(1)),
                ("x-dead-letter-exchange", text(&dlx)),
            ],
        )
        .await;
        let props = BasicProperties::default()
            .with_headers(table(&[("h", int(1))]))
            .with_expiration("60000".into());
        publish_with(&ch, "", &q, "y", props, false).await;
        return_until_gone(&ch, &q, &mut t, "limit 1").await;
        tokio::time::sleep(SETTLE).await;
        let (d, tag) = get_described(&ch, &dead).await;
        t.push(format!("dead-lettered: {d}"));
        if let Some(tag) = tag {
            ch.basic_ack(tag, BasicAckOptions::default()).await.unwrap();
        }

        // Through the default exchange with a routing key, returned by a channel close.
        let k = new_quorum(
            &ch,
            "limit-key-q",
            &[
                ("x-delivery-limit", int(0)),
                ("x-dead-letter-exchange", text("")),
                ("x-dead-letter-routing-key", text(&dead)),
            ],
        )
        .await;
        send(&ch, &k, "z").await;
        let gch = channel(&conn).await;
        get_described(&gch, &k).await;
        gch.close(200, "OK".into()).await.expect("channel.close");
        tokio::time::sleep(SETTLE).await;
        t.push(format!("left behind: {}", get_described(&ch, &k).await.0));
        let (d, tag) = get_described(&ch, &dead).await;
        t.push(format!("dead-lettered on close: {d}"));
        if let Some(tag) = tag {
            ch.basic_ack(tag, BasicAckOptions::default()).await.unwrap();
        }

        // A nack without requeue is `rejected`, as on a classic queue.
        send(&ch, &k, "v").await;
        let (_, tag) = get_described(&ch, &k).await;
        ch.basic_nack(
            tag.unwrap(),
            BasicNackOptions {
                multiple: false,
                requeue: false,
            },
        )
        .await
        .unwrap();
        tokio::time::sleep(SETTLE).await;
        t.push(format!("rejected: {}", get_described(&ch, &dead).await.0));
        cleanup(&conn, &[&q, &k, &dead], &[&dlx]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "limit 1 get 1: y redelivered=true headers={h=LongInt(1), x-delivery-count=LongLongInt(1)}",
            "limit 1 get 2: empty",
            r#"dead-lettered: y redelivered=false headers={h=LongInt(1), x-death=[{count=LongLongInt(1), exchange="", original-expiration="60000", queue="<limit-dl-q>", reason="delivery_limit", routing-keys=["<limit-dl-q>"], time=timestamp}], x-first-death-exchange="", x-first-death-queue="<limit-dl-q>", x-first-death-reason="delivery_limit"}"#,
            "left behind: empty",
            r#"dead-lettered on close: z redelivered=false headers={x-death=[{count=LongLongInt(1), exchange="", queue="<limit-key-q>", reason="delivery_limit", routing-keys=["<limit-key-q>"], time=timestamp}], x-first-death-exchange="", x-first-death-queue="<limit-key-q>", x-first-death-reason="delivery_limit"}"#,
            r#"rejected: v redelivered=false headers={x-death=[{count=LongLongInt(1), exchange="", queue="<limit-key-q>", reason="rejected", routing-keys=["<limit-key-q>"], time=timestamp}], x-first-death-exchange="", x-first-death-queue="<limit-key-q>", x-first-death-reason="rejected"}"#,
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Global basic.qos
// ---------------------------------------------------------------------------------------------

async fn qos(ch: &Channel, prefetch: u16, global: bool) {
    ch.basic_qos(prefetch, BasicQosOptions { global })
        .await
        .expect("basic.qos");
}

/// basic.consume on a fresh connection after the given qos calls: "ok" or the error.
async fn consume_after(url: &str, queue: &str, qos_calls: &[(u16, bool)]) -> String {
    let conn: Connection = connect(url).await;
    let ch = conn.create_channel().await.expect("channel.open");
    for (prefetch, global) in qos_calls {
        qos(&ch, *prefetch, *global).await;
    }
    let mut errors = events(&conn);
    let r = ch
        .basic_consume(
            queue.into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await;
    let answer = match r {
        Ok(_) => {
            sync(&ch).await;
            "ok".to_string()
        }
        Err(e) => format!("{} then {}", code(&e), next_error(&mut errors).await),
    };
    let answer = format!("{answer}; connection open: {}", conn.status().connected());
    let _ = conn.close(200, "OK".into()).await;
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_qos_is_refused_for_a_quorum_consumer() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = new_quorum(&ch, "global-q", &[]).await;
        send(&ch, &q, "m").await;
        let cases: &[(&str, &[(u16, bool)])] = &[
            ("global 5", &[(5, true)]),
            ("global 0", &[(0, true)]),
            ("global 5 then per-consumer 5", &[(5, true), (5, false)]),
            ("per-consumer 5", &[(5, false)]),
        ];
        for (label, calls) in cases {
            t.push(format!("{label}: {}", consume_after(&url, &q, calls).await));
        }
        // basic.get is no consumer; qos after consume is not checked.
        let gch = conn.create_channel().await.unwrap();
        qos(&gch, 5, true).await;
        let r = gch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await;
        t.push(format!("get under global qos: {}", outcome(&r)));
        send(&ch, &q, "m").await;
        let lch = conn.create_channel().await.unwrap();
        let mut consumer = consume(&lch, &q, "late", false).await;
        qos(&lch, 5, true).await;
        let d = next(&mut consumer, Duration::from_secs(2)).await;
        t.push(format!("global qos after consume: delivered={}", d.is_ok()));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "global 5: 540 NOT-IMPLEMENTED (NOT_IMPLEMENTED - queue '<name>' in vhost '/' does not support global qos) then 540 NOT-IMPLEMENTED (NOT_IMPLEMENTED - queue '<name>' in vhost '/' does not support global qos); connection open: false",
            "global 0: ok; connection open: true",
            "global 5 then per-consumer 5: ok; connection open: true",
            "per-consumer 5: ok; connection open: true",
            "get under global qos: ok",
            "global qos after consume: delivered=true",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_consumer_qos_lifts_the_channel_limit() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("lift-q");
        declare_queue(&ch, &q).await;
        for b in ["m1", "m2", "m3"] {
            send(&ch, &q, b).await;
        }
        let cch = conn.create_channel().await.unwrap();
        qos(&cch, 1, true).await;
        qos(&cch, 0, false).await;
        let mut consumer = consume(&cch, &q, "lifted", false).await;
        let got = collect(&mut consumer, Duration::from_millis(500)).await;
        t.push(format!(
            "global 1 then per-consumer 0: {} delivered",
            got.len()
        ));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    assert_has(&t, &["global 1 then per-consumer 0: 3 delivered"]);
}

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

/// Declares a durable queue with `args` and deletes it again: "ok" or the refusal, after which
/// `ch` is replaced by a fresh channel.
async fn declare_and_remove(conn: &Connection, ch: &mut Channel, args: FieldTable) -> String {
    let q = common::unique("args-q");
    let r = ch.queue_declare(q.as_str().into(), DURABLE, args).await;
    if r.is_ok() {
        let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
    } else {
        *ch = channel(conn).await;
    }
    outcome(&r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_arguments_taken_and_refused() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let mut ch = channel(&conn).await;
        let long = AMQPValue::LongLongInt;
        let cases: Vec<(&str, Vec<(&str, AMQPValue)>)> = vec![
            (
                "group size 3",
                vec![("x-quorum-initial-group-size", int(3))],
            ),
            (
                "group size 0",
                vec![("x-quorum-initial-group-size", int(0))],
            ),
            (
                "group size -1",
                vec![("x-quorum-initial-group-size", int(-1))],
            ),
            (
                "group size string",
                vec![("x-quorum-initial-group-size", text("3"))],
            ),
            ("delivery limit -1", vec![("x-delivery-limit", int(-1))]),
            (
                "delivery limit string",
                vec![("x-delivery-limit", text("abc"))],
            ),
            ("max-priority", vec![("x-max-priority", int(5))]),
            ("max-priority 500", vec![("x-max-priority", int(500))]),
            ("queue-mode lazy", vec![("x-queue-mode", text("lazy"))]),
            ("queue-mode bogus", vec![("x-queue-mode", text("bogus"))]),
            (
                "master locator",
                vec![("x-queue-master-locator", text("client-local"))],
            ),
            ("max-age", vec![("x-max-age", text("1D"))]),
            ("cluster size", vec![("x-initial-cluster-size", int(3))]),
            ("in-memory length", vec![("x-max-in-memory-length", int(3))]),
            (
                "single active consumer",
                vec![("x-single-active-consumer", AMQPValue::Boolean(true))],
            ),
            (
                "overflow reject-publish-dlx",
                vec![("x-overflow", text("reject-publish-dlx"))],
            ),
            (
                "overflow drop-head",
                vec![("x-overflow", text("drop-head"))],
            ),
            (
                "overflow reject-publish",
                vec![("x-overflow", text("reject-publish"))],
            ),
            ("overflow bogus", vec![("x-overflow", text("bogus"))]),
            ("message-ttl", vec![("x-message-ttl", int(1000))]),
            ("expires", vec![("x-expires", int(10000))]),
            ("max-length", vec![("x-max-length", int(10))]),
            ("max-length-bytes", vec![("x-max-length-bytes", long(1000))]),
            (
                "expires 0 before max-priority",
                vec![("x-expires", int(0)), ("x-max-priority", int(5))],
            ),
            (
                "max-priority before queue-mode",
                vec![("x-max-priority", int(5)), ("x-queue-mode", text("lazy"))],
            ),
            ("unknown argument", vec![("x-foo", int(1))]),
        ];
        for (label, args) in cases {
            let mut all = vec![quorum()];
            all.extend(args);
            let answer = declare_and_remove(&conn, &mut ch, table(&all)).await;
            t.push(format!("{label}: {answer}"));
        }
        // Classic queues refuse the quorum queue's own arguments.
        let classic: Vec<(&str, (&str, AMQPValue))> = vec![
            ("classic delivery limit", ("x-delivery-limit", int(3))),
            (
                "classic group size",
                ("x-quorum-initial-group-size", int(3)),
            ),
            (
                "classic leader locator",
                ("x-queue-leader-locator", text("balanced")),
            ),
            ("classic max-age", ("x-max-age", text("1D"))),
            (
                "classic in-memory length",
                ("x-max-in-memory-length", int(3)),
            ),
            ("classic cluster size", ("x-initial-cluster-size", int(3))),
        ];
        for (label, arg) in classic {
            let answer = declare_and_remove(&conn, &mut ch, table(&[arg])).await;
            t.push(format!("{label}: {answer}"));
        }
        let _ = conn.close(200, "OK".into()).await;
        t
    })
    .await;
    let refused = |arg: &str, kind: &str| {
        format!("406 PRECONDITION-FAILED (PRECONDITION_FAILED - invalid arg '{arg}' for queue '<name>' in vhost '/' of queue type {kind})")
    };
    assert_has(
        &t,
        &[
            "group size 3: ok",
            "group size 0: 406 PRECONDITION-FAILED (PRECONDITION_FAILED - invalid arg 'x-quorum-initial-group-size' for queue '<name>' in vhost '/': {value_zero,0})",
            "group size -1: 406 PRECONDITION-FAILED (PRECONDITION_FAILED - invalid arg 'x-quorum-initial-group-size' for queue '<name>' in vhost '/': {value_negative,-1})",
            r#"group size string: 406 PRECONDITION-FAILED (PRECONDITION_FAILED - invalid arg 'x-quorum-initial-group-size' for queue '<name>' in vhost '/': "expected integer, got longstr")"#,
            "delivery limit -1: ok",
            "delivery limit string: ok",
            &format!("max-priority: {}", refused("x-max-priority", "rabbit_quorum_queue")),
            &format!("max-priority 500: {}", refused("x-max-priority", "rabbit_quorum_queue")),
            &format!("queue-mode lazy: {}", refused("x-queue-mode", "rabbit_quorum_queue")),
            &format!("queue-mode bogus: {}", refused("x-queue-mode", "rabbit_quorum_queue")),
            &format!("master locator: {}", refused("x-queue-master-locator", "rabbit_quorum_queue")),
            &format!("max-age: {}", refused("x-max-age", "rabbit_quorum_queue")),
            &format!(
                "cluster size: {}",
                refused("x-initial-cluster-size", "rabbit_quorum_queue")
            ),
            "in-memory length: ok",
            "single active consumer: ok",
            "overflow reject-publish-dlx: ok",
            "overflow drop-head: ok",
            "overflow reject-publish: ok",
            "overflow bogus: 406 PRECONDITION-FAILED (PRECONDITION_FAILED - invalid arg 'x-overflow' for queue '<name>' in vhost '/': invalid_overflow)",
            "message-ttl: ok",
            "expires: ok",
            "max-length: ok",
            "max-length-bytes: ok",
            "expires 0 before max-priority: 406 PRECONDITION-FAILED (PRECONDITION_FAILED - invalid arg 'x-expires' for queue '<name>' in vhost '/': {value_zero,0})",
            &format!("max-priority before queue-mode: {}", refused("x-max-priority", "rabbit_quorum_queue")),
            "unknown argument: ok",
            &format!("classic delivery limit: {}", refused("x-delivery-limit", "rabbit_classic_queue")),
            &format!("classic group size: {}", refused("x-quorum-initial-group-size", "rabbit_classic_queue")),
            &format!("classic leader locator: {}", refused("x-queue-leader-locator", "rabbit_classic_queue")),
            &format!(
                "classic in-memory length: {}",
                refused("x-max-in-memory-length", "rabbit_classic_queue")
            ),
            &format!(
                "classic cluster size: {}",
                refused("x-initial-cluster-size", "rabbit_classic_queue")
            ),
            &format!("classic max-age: {}", refused("x-max-age", "rabbit_classic_queue")),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_arguments_must_match_on_redeclare() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let mut ch = channel(&conn).await;
        let q = new_quorum(
            &ch,
            "redeclare-q",
            &[
                ("x-quorum-initial-group-size", int(3)),
                ("x-delivery-limit", int(2)),
            ],
        )
        .await;
        let group = |n: i32| ("x-quorum-initial-group-size", int(n));
        let limit = |n: i32| ("x-delivery-limit", int(n));
        let cases: Vec<(&str, Vec<(&str, AMQPValue)>)> = vec![
            ("same", vec![group(3), limit(2)]),
            ("other group size", vec![group(5), limit(2)]),
            ("no group size", vec![limit(2)]),
            ("other limit", vec![group(3), limit(3)]),
            ("no limit", vec![group(3)]),
        ];
        for (label, args) in cases {
            let r = try_declare_quorum(&ch, &q, &args).await;
            t.push(format!("{label}: {}", outcome(&r)));
            if r.is_err() {
                ch = channel(&conn).await;
            }
        }
        let bare = new_quorum(&ch, "redeclare-bare-q", &[]).await;
        let r = try_declare_quorum(&ch, &bare, &[group(3)]).await;
        t.push(format!("group size added: {}", outcome(&r)));
        cleanup(&conn, &[&q, &bare], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "same: ok",
            "other group size: 406 PRECONDITION-FAILED (PRECONDITION_FAILED - inequivalent arg 'x-quorum-initial-group-size' for queue '<name>' in vhost '/': received '5' but current is '3')",
            "no group size: 406 PRECONDITION-FAILED (PRECONDITION_FAILED - inequivalent arg 'x-quorum-initial-group-size' for queue '<name>' in vhost '/': received none but current is the value '3' of type 'signedint')",
            "other limit: 406 PRECONDITION-FAILED (PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue '<name>' in vhost '/': received '3' but current is '2')",
            "no limit: 406 PRECONDITION-FAILED (PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue '<name>' in vhost '/': received none but current is the value '2' of type 'signedint')",
            "group size added: 406 PRECONDITION-FAILED (PRECONDITION_FAILED - inequivalent arg 'x-quorum-initial-group-size' for queue '<name>' in vhost '/': received the value '3' of type 'signedint' but current is none)",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Length limits, overflow and TTL
// ---------------------------------------------------------------------------------------------

/// Queue arguments by name.
type Arguments<'a> = Vec<(&'a str, AMQPValue)>;

/// Publishes each body to `queue` and lists the confirms: "ack" or "nack".
async fn publish_all(ch: &Channel, queue: &str, bodies: &[&str]) -> Vec<String> {
    let mut answers = Vec::new();
    for b in bodies {
        answers.push(send(ch, queue, b).await);
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_overflow_modes() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let (dlx, dead) = dead_letter_target(&ch, "overflow").await;
        let mut queues = vec![dead.clone()];
        let dead_lettered = |overflow: Option<&str>, limit: (&'static str, i32)| {
            let mut args = vec![
                ("x-dead-letter-exchange", text(&dlx)),
                (limit.0, int(limit.1)),
            ];
            if let Some(o) = overflow {
                args.push(("x-overflow", text(o)));
            }
            args
        };
        let cases: Vec<(&str, Arguments, Vec<&str>)> = vec![
            (
                "default",
                dead_lettered(None, ("x-max-length", 2)),
                vec!["1", "2", "3"],
            ),
            (
                "drop-head",
                dead_lettered(Some("drop-head"), ("x-max-length", 2)),
                vec!["1", "2", "3"],
            ),
            (
                "reject-publish",
                dead_lettered(Some("reject-publish"), ("x-max-length", 2)),
                vec!["1", "2", "3", "4", "5"],
            ),
            (
                "reject-publish-dlx",
                dead_lettered(Some("reject-publish-dlx"), ("x-max-length", 2)),
                vec!["1", "2", "3", "4", "5"],
            ),
            (
                "bytes drop-head",
                dead_lettered(None, ("x-max-length-bytes", 3)),
                vec!["aa", "bb", "cc"],
            ),
            (
                "bytes reject-publish",
                dead_lettered(Some("reject-publish"), ("x-max-length-bytes", 3)),
                vec!["aa", "bb", "cc"],
            ),
            (
                "length 0 reject-publish",
                dead_lettered(Some("reject-publish"), ("x-max-length", 0)),
                vec!["a", "b"],
            ),
        ];
        for (label, args, bodies) in cases {
            let q = new_quorum(&ch, "overflow-q", &args).await;
            let confirms = publish_all(&ch, &q, &bodies).await;
            tokio::time::sleep(SETTLE).await;
            t.push(format!(
                "{label}: {confirms:?} kept {:?} dead-lettered {:?}",
                drain(&ch, &q).await,
                drain(&ch, &dead).await
            ));
            queues.push(q);
        }

        // Once over its limit, a reject-publish quorum queue refuses publishes until it is back
        // to 80% of its limit, whether messages leave by get or purge.
        let q = new_quorum(
            &ch,
            "overflow-block-q",
            &[
                ("x-max-length", int(5)),
                ("x-overflow", text("reject-publish")),
            ],
        )
        .await;
        let bodies = ["0", "1", "2", "3", "4", "5", "6"];
        t.push(format!(
            "fill to 5: {:?}",
            publish_all(&ch, &q, &bodies).await
        ));
        get_described(&ch, &q).await;
        t.push(format!("5 ready: {:?}", publish_all(&ch, &q, &["a"]).await));
        get_described(&ch, &q).await;
        t.push(format!("4 ready: {:?}", publish_all(&ch, &q, &["b"]).await));
        get_described(&ch, &q).await;
        let more = ["c", "d", "e"];
        t.push(format!("4 ready: {:?}", publish_all(&ch, &q, &more).await));
        ch.basic_nack(
            0,
            BasicNackOptions {
                multiple: true,
                requeue: true,
            },
        )
        .await
        .unwrap();
        tokio::time::sleep(SETTLE).await;
        t.push(format!(
            "after requeue: {} then {:?}",
            inspect_queue(&conn, &q).await,
            publish_all(&ch, &q, &["f"]).await
        ));
        ch.queue_purge(q.as_str().into(), Default::default())
            .await
            .unwrap();
        t.push(format!(
            "after purge: {:?}",
            publish_all(&ch, &q, &["g"]).await
        ));
        queues.push(q);
        let names: Vec<&str> = queues.iter().map(String::as_str).collect();
        cleanup(&conn, &names, &[&dlx]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            r#"default: ["ack", "ack", "ack"] kept ["2", "3"] dead-lettered ["1"]"#,
            r#"drop-head: ["ack", "ack", "ack"] kept ["2", "3"] dead-lettered ["1"]"#,
            r#"reject-publish: ["ack", "ack", "ack", "nack", "nack"] kept ["1", "2", "3"] dead-lettered []"#,
            r#"reject-publish-dlx: ["ack", "ack", "ack", "ack", "ack"] kept ["4", "5"] dead-lettered ["1", "2", "3"]"#,
            r#"bytes drop-head: ["ack", "ack", "ack"] kept ["cc"] dead-lettered ["aa", "bb"]"#,
            r#"bytes reject-publish: ["ack", "ack", "nack"] kept ["aa", "bb"] dead-lettered []"#,
            r#"length 0 reject-publish: ["ack", "nack"] kept ["a"] dead-lettered []"#,
            r#"fill to 5: ["ack", "ack", "ack", "ack", "ack", "ack", "nack"]"#,
            r#"5 ready: ["nack"]"#,
            r#"4 ready: ["ack"]"#,
            r#"4 ready: ["ack", "ack", "nack"]"#,
            r#"after requeue: ok messages=9 consumers=0 then ["nack"]"#,
            r#"after purge: ["ack"]"#,
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_message_ttl_dead_letters_as_expired() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let (dlx, dead) = dead_letter_target(&ch, "ttl").await;
        let q = new_quorum(
            &ch,
            "ttl-q",
            &[
                ("x-message-ttl", int(100)),
                ("x-dead-letter-exchange", text(&dlx)),
            ],
        )
        .await;
        let short = BasicProperties::default().with_expiration("50".into());
        send(&ch, &q, "a").await;
        publish_with(&ch, "", &q, "b", short.clone(), false).await;
        let p = new_quorum(
            &ch,
            "ttl-per-message-q",
            &[("x-dead-letter-exchange", text(&dlx))],
        )
        .await;
        publish_with(&ch, "", &p, "c", short, false).await;
        send(&ch, &p, "d").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        t.push(format!("queue ttl kept {:?}", drain(&ch, &q).await));
        t.push(format!("per-message ttl kept {:?}", drain(&ch, &p).await));
        // Sorted: which queue's message expires first is a matter of milliseconds.
        let mut reasons: Vec<String> = take_all(&ch, &dead)
            .await
            .iter()
            .map(|d| {
                let reason = d
                    .properties
                    .headers()
                    .as_ref()
                    .and_then(|h| h.inner().get("x-first-death-reason").map(value));
                format!("{} {}", body(d), reason.unwrap_or_default())
            })
            .collect();
        reasons.sort();
        t.push(format!("dead-lettered {reasons:?}"));
        cleanup(&conn, &[&q, &p, &dead], &[&dlx]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "queue ttl kept []",
            r#"per-message ttl kept ["d"]"#,
            r#"dead-lettered ["a \"expired\"", "b \"expired\"", "c \"expired\""]"#,
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Where a message given back goes
// ---------------------------------------------------------------------------------------------

/// A fresh quorum queue holding `bodies`, with `args` besides its type.
async fn filled_quorum(
    ch: &Channel,
    what: &str,
    args: &[(&str, AMQPValue)],
    bodies: &[&str],
) -> String {
    let q = new_quorum(ch, what, args).await;
    publish_all(ch, &q, bodies).await;
    q
}

/// basic.get `n` times (manual ack); the delivery tags.
async fn get_tags(ch: &Channel, queue: &str, n: usize) -> Vec<u64> {
    let mut tags = Vec::new();
    for _ in 0..n {
        tags.push(
            get(ch, queue)
                .await
                .expect("a message")
                .delivery
                .delivery_tag,
        );
    }
    tags
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_queues_put_returned_messages_back_as_3_10_does() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let four = ["1", "2", "3", "4"];
        let mut queues = Vec::new();

        let q = filled_quorum(&ch, "back-nack-q", &[], &four).await;
        let tags = get_tags(&ch, &q, 2).await;
        nack_requeue(&ch, tags[1]).await;
        nack_requeue(&ch, tags[0]).await;
        tokio::time::sleep(SETTLE).await;
        t.push(format!("nack 2 then 1: {:?}", drain(&ch, &q).await));
        queues.push(q);

        let q = filled_quorum(&ch, "back-multiple-q", &[], &four).await;
        get_tags(&ch, &q, 2).await;
        ch.basic_nack(
            0,
            BasicNackOptions {
                multiple: true,
                requeue: true,
            },
        )
        .await
        .unwrap();
        tokio::time::sleep(SETTLE).await;
        t.push(format!("nack multiple: {:?}", drain(&ch, &q).await));
        queues.push(q);

        let q = filled_quorum(&ch, "back-reject-q", &[], &four).await;
        let tags = get_tags(&ch, &q, 1).await;
        ch.basic_reject(tags[0], BasicRejectOptions { requeue: true })
            .await
            .unwrap();
        tokio::time::sleep(SETTLE).await;
        t.push(format!("reject: {:?}", drain(&ch, &q).await));
        queues.push(q);

        let q = filled_quorum(&ch, "back-recover-q", &[], &four).await;
        let rch = channel(&conn).await;
        get_tags(&rch, &q, 2).await;
        rch.basic_recover(BasicRecoverOptions { requeue: true })
            .await
            .unwrap();
        tokio::time::sleep(SETTLE).await;
        t.push(format!("recover: {:?}", drain(&ch, &q).await));
        queues.push(q);

        let q = filled_quorum(&ch, "front-close-q", &[], &four).await;
        let cch = channel(&conn).await;
        get_tags(&cch, &q, 2).await;
        cch.close(200, "OK".into()).await.unwrap();
        tokio::time::sleep(SETTLE).await;
        t.push(format!("channel close: {:?}", drain(&ch, &q).await));
        queues.push(q);

        // Drop-head applies to messages given back too.
        let limited = [("x-max-length", int(2))];
        let q = filled_quorum(&ch, "trim-q", &limited, &["1", "2"]).await;
        get_tags(&ch, &q, 1).await;
        send(&ch, &q, "3").await;
        ch.basic_nack(
            0,
            BasicNackOptions {
                multiple: true,
                requeue: true,
            },
        )
        .await
        .unwrap();
        tokio::time::sleep(SETTLE).await;
        t.push(format!(
            "one back over the limit: {:?}",
            drain(&ch, &q).await
        ));
        queues.push(q);

        let q = filled_quorum(&ch, "trim-two-q", &limited, &["1", "2"]).await;
        get_tags(&ch, &q, 2).await;
        publish_all(&ch, &q, &["3", "4"]).await;
        ch.basic_nack(
            0,
            BasicNackOptions {
                multiple: true,
                requeue: true,
            },
        )
        .await
        .unwrap();
        tokio::time::sleep(SETTLE).await;
        t.push(format!(
            "two back over the limit: {:?}",
            drain(&ch, &q).await
        ));
        queues.push(q);

        let names: Vec<&str> = queues.iter().map(String::as_str).collect();
        cleanup(&conn, &names, &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            r#"nack 2 then 1: ["3", "4", "2", "1"]"#,
            r#"nack multiple: ["3", "4", "1", "2"]"#,
            r#"reject: ["2", "3", "4", "1"]"#,
            r#"recover: ["3", "4", "1", "2"]"#,
            r#"channel close: ["1", "2", "3", "4"]"#,
            r#"one back over the limit: ["3", "1"]"#,
            r#"two back over the limit: ["1", "2"]"#,
        ],
    );
}
