//! Delivery behaviour (get, consume, acks, confirms, transactions), checked against RabbitMQ and
//! the embedded broker alike.
//!
//! Every scenario records what it observes (by short labels, never by the generated names) and
//! asserts the outcome it expects, so two brokers that both do nothing cannot agree by accident.
mod common;

use std::pin::Pin;
use std::time::Duration;

use futures_lite::stream::{Stream, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::protocol::AMQPErrorKind;
use lapin::types::FieldTable;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer, Event,
    ExchangeKind,
};

// ---------------------------------------------------------------------------------------------
// Small client helpers
// ---------------------------------------------------------------------------------------------

async fn connect(url: &str) -> Connection {
    Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("connect")
}

/// A channel in publisher-confirm mode, so a confirmed publish has been routed before we look.
async fn channel(conn: &Connection) -> Channel {
    let ch = conn.create_channel().await.expect("channel.open");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    ch
}

/// "406 PRECONDITION-FAILED (reply text)" for an AMQP error, a marker for anything else.
fn code(err: &lapin::Error) -> String {
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

fn outcome<T>(r: &lapin::Result<T>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(e) => code(e),
    }
}

async fn declare_queue(ch: &Channel, name: &str) {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.declare");
}

/// Publishes on a confirm-mode channel and describes what came back.
async fn publish_with(
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
        Ok(Confirmation::NotRequested) => "sent".to_string(),
        Ok(other) => format!("{other:?}"),
        Err(e) => code(&e),
    }
}

/// Publishes to a queue through the default exchange.
async fn send(ch: &Channel, queue: &str, body: &str) -> String {
    publish_with(ch, "", queue, body, BasicProperties::default(), false).await
}

fn body(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.data).into_owned()
}

/// Body, delivery tag and redelivered flag of a delivery.
fn describe(d: &Delivery) -> String {
    format!(
        "{} tag={} redelivered={}",
        body(d),
        d.delivery_tag,
        d.redelivered
    )
}

/// basic.get with manual ack; None on get-empty.
async fn get(ch: &Channel, queue: &str) -> Option<lapin::message::BasicGetMessage> {
    ch.basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await
        .expect("basic.get")
}

/// Takes every message off a queue (no-ack) and describes each.
async fn drain(ch: &Channel, queue: &str) -> Vec<String> {
    let mut seen = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        seen.push(format!(
            "{} redelivered={}",
            body(&m.delivery),
            m.delivery.redelivered
        ));
    }
    seen
}

/// Passive queue.declare on a throwaway channel: "ok messages=N consumers=M" or the error code.
async fn inspect_queue(conn: &Connection, name: &str) -> String {
    let ch = conn.create_channel().await.expect("channel.open");
    let r = ch
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    match r {
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

/// A synchronous round trip on `ch`: everything sent on it before has been processed.
async fn sync(ch: &Channel) {
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

async fn consume(ch: &Channel, queue: &str, tag: &str, no_ack: bool) -> Consumer {
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
async fn next(consumer: &mut Consumer, wait: Duration) -> Result<Delivery, String> {
    match tokio::time::timeout(wait, consumer.next()).await {
        Ok(Some(Ok(d))) => Ok(d),
        Ok(Some(Err(e))) => Err(format!("error {}", code(&e))),
        Ok(None) => Err("stream ended".to_string()),
        Err(_) => Err("nothing".to_string()),
    }
}

/// Collects deliveries until none arrives for `quiet`.
async fn collect(consumer: &mut Consumer, quiet: Duration) -> Vec<Delivery> {
    let mut got = Vec::new();
    while let Ok(d) = next(consumer, quiet).await {
        got.push(d);
    }
    got
}

type Events = Pin<Box<dyn Stream<Item = Event> + Send>>;

/// Errors reported on `conn` from now on (every channel error, including those an awaited call
/// already returned), so create it right before the step whose error is wanted.
fn events(conn: &Connection) -> Events {
    Box::pin(conn.events_listener())
}

/// The next channel or connection error the server reports on this connection.
async fn next_error(events: &mut Events) -> String {
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

/// Deletes what a scenario declared, on a fresh channel, ignoring errors.
async fn cleanup(conn: &Connection, queues: &[&str], exchanges: &[&str]) {
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

/// The transcript, visible with `--nocapture` or when a test fails.
fn show(t: &[String]) {
    for line in t {
        eprintln!("  {line}");
    }
}

/// `line` is in the transcript, either exactly or followed by a reply text in parentheses.
fn has(t: &[String], line: &str) -> bool {
    let with_text = format!("{line} (");
    t.iter().any(|l| l == line || l.starts_with(&with_text))
}

const SETTLE: Duration = Duration::from_millis(150);

// ---------------------------------------------------------------------------------------------
// basic.get
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_get_on_empty_queue_is_get_empty() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("get-empty-q");
        declare_queue(&ch, &q).await;
        let r = ch
            .basic_get(q.as_str().into(), BasicGetOptions::default())
            .await;
        t.push(format!(
            "get on empty queue: {:?}",
            r.map(|m| m.is_none()).map_err(|e| code(&e))
        ));
        let missing = common::unique("get-missing-q");
        let r = ch
            .basic_get(missing.as_str().into(), BasicGetOptions::default())
            .await;
        t.push(format!("get on a missing queue: {}", outcome(&r)));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    show(&t);
    assert!(has(&t, "get on empty queue: Ok(true)"), "{t:#?}");
    assert!(has(&t, "get on a missing queue: 404 NOT-FOUND"), "{t:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_get_reports_remaining_message_count() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("get-count-q");
        declare_queue(&ch, &q).await;
        for b in ["m1", "m2", "m3"] {
            send(&ch, &q, b).await;
        }
        while let Some(m) = get(&ch, &q).await {
            t.push(format!(
                "{} message_count={} exchange={:?} key-is-queue={}",
                describe(&m.delivery),
                m.message_count,
                m.delivery.exchange.as_str(),
                m.delivery.routing_key.as_str() == q
            ));
        }
        t.push(format!("unacked: {}", inspect_queue(&conn, &q).await));
        ch.basic_ack(3, BasicAckOptions { multiple: true })
            .await
            .expect("ack");
        t.push(format!("after ack: {}", inspect_queue(&conn, &q).await));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    show(&t);
    assert!(
        has(
            &t,
            r#"m1 tag=1 redelivered=false message_count=2 exchange="" key-is-queue=true"#
        ),
        "{t:#?}"
    );
    assert!(
        has(
            &t,
            r#"m3 tag=3 redelivered=false message_count=0 exchange="" key-is-queue=true"#
        ),
        "{t:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Redelivery and requeueing
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_flag_after_nack_requeue_and_channel_close() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("redelivered-q");
        declare_queue(&ch, &q).await;
        send(&ch, &q, "m1").await;
        let m = get(&ch, &q).await.expect("m1");
        t.push(format!("first get: {}", describe(&m.delivery)));
        m.delivery
            .nack(BasicNackOptions {
                requeue: true,
                multiple: false,
            })
            .await
            .expect("nack");
        let m = get(&ch, &q).await.expect("m1 again");
        t.push(format!("after nack requeue: {}", describe(&m.delivery)));
        m.delivery
            .reject(BasicRejectOptions { requeue: true })
            .await
            .expect("reject");
        // A consumer on another channel holds it unacked, then its channel closes.
        let cch = channel(&conn).await;
        let mut consumer = consume(&cch, &q, "c", false).await;
        let d = next(&mut consumer, Duration::from_secs(2))
            .await
            .expect("delivery");
        t.push(format!("consumer got: {}", describe(&d)));
        cch.close(200, "OK".into()).await.expect("channel.close");
        t.push(format!(
            "after channel close: {}",
            inspect_queue(&conn, &q).await
        ));
        let m = get(&ch, &q).await.expect("m1 once more");
        t.push(format!("after channel close: {}", describe(&m.delivery)));
        m.delivery
            .ack(BasicAckOptions::default())
            .await
            .expect("ack");
        // A fresh message is not redelivered.
        send(&ch, &q, "m2").await;
        let m = get(&ch, &q).await.expect("m2");
        t.push(format!("fresh message: {}", describe(&m.delivery)));
        drop(consumer);
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    show(&t);
    assert!(has(&t, "first get: m1 tag=1 redelivered=false"), "{t:#?}");
    assert!(
        has(&t, "after nack requeue: m1 tag=2 redelivered=true"),
        "{t:#?}"
    );
    assert!(has(&t, "consumer got: m1 tag=1 redelivered=true"), "{t:#?}");
    assert!(
        has(&t, "after channel close: m1 tag=3 redelivered=true"),
        "{t:#?}"
    );
    assert!(
        has(&t, "fresh message: m2 tag=4 redelivered=false"),
        "{t:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeued_messages_keep_their_order() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("requeue-order-q");
        declare_queue(&ch, &q).await;
        for b in ["m1", "m2", "m3", "m4", "m5"] {
            send(&ch, &q, b).await;
        }
        let gch = channel(&conn).await;
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(get(&gch, &q).await.expect("message"));
        }
        // Requeue m2 alone: it goes back in front of m4, not behind m5.
        held[1]
            .delivery
            .reject(BasicRejectOptions { requeue: true })
            .await
            .expect("reject m2");
        sync(&gch).await;
        t.push(format!(
            "after requeueing m2: {}",
            inspect_queue(&conn, &q).await
        ));
        let m = get(&ch, &q).await.expect("head");
        t.push(format!(
            "head after requeueing m2: {}",
            describe(&m.delivery)
        ));
        m.delivery
            .nack(BasicNackOptions {
                requeue: true,
                multiple: false,
            })
            .await
            .expect("nack");
        // Closing the channel requeues m1 and m3 into their places.
        gch.close(200, "OK".into()).await.expect("channel.close");
        t.push(format!("after close: {:?}", drain(&ch, &q).await));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    show(&t);
    assert!(
        has(&t, "head after requeueing m2: m2 tag=1 redelivered=true"),
        "{t:#?}"
    );
    assert!(
        has(
            &t,
            r#"after close: ["m1 redelivered=true", "m2 redelivered=true", "m3 redelivered=true", "m4 redelivered=false", "m5 redelivered=false"]"#
        ),
        "{t:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Consumers: prefetch, round-robin, cancel
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_limits_unacked_deliveries_per_consumer() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("prefetch-q");
        declare_queue(&ch, &q).await;
        let cch = channel(&conn).await;
        cch.basic_qos(2, BasicQosOptions { global: false })
            .await
            .expect("qos");
        let mut c1 = consume(&cch, &q, "c1", false).await;
        let mut c2 = consume(&cch, &q, "c2", false).await;
        for b in ["m1", "m2", "m3", "m4", "m5", "m6"] {
            send(&ch, &q, b).await;
        }
        let got1 = collect(&mut c1, SETTLE).await;
        let got2 = collect(&mut c2, SETTLE).await;
        let bodies = |ds: &[Delivery]| ds.iter().map(body).collect::<Vec<_>>();
        t.push(format!("c1 holds {:?}", bodies(&got1)));
        t.push(format!("c2 holds {:?}", bodies(&got2)));
        t.push(format!("queue: {}", inspect_queue(&conn, &q).await));
        got1[0].ack(BasicAckOptions::default()).await.expect("ack");
        let more = collect(&mut c1, SETTLE).await;
        t.push(format!("c1 after one ack got {:?}", bodies(&more)));
        t.push(format!(
            "c2 meanwhile got {:?}",
            bodies(&collect(&mut c2, Duration::from_millis(50)).await)
        ));
        t.push(format!("queue: {}", inspect_queue(&conn, &q).await));
        drop((c1, c2));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    show(&t);
    assert!(has(&t, r#"c1 holds ["m1", "m3"]"#), "{t:#?}");
    assert!(has(&t, r#"c2 holds ["m2", "m4"]"#), "{t:#?}");
    assert!(has(&t, r#"c1 after one ack got ["m5"]"#), "{t:#?}");
    assert!(has(&t, "queue: ok messages=1 consumers=2"), "{t:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_global_limits_the_whole_channel() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("prefetch-global-q");
        declare_queue(&ch, &q).await;
        let cch = channel(&conn).await;
        cch.basic_qos(3, BasicQosOptions { global: true })
            .await
            .expect("qos global");
        let mut c1 = consume(&cch, &q, "c1", false).await;
        let mut c2 = consume(&cch, &q, "c2", false).await;
        for b in ["m1", "m2", "m3", "m4", "m5", "m6"] {
            send(&ch, &q, b).await;
        }
        let got1 = collect(&mut c1, SETTLE).await;
        let got2 = collect(&mut c2, SETTLE).await;
        t.push(format!(
            "held in total: {} (c1 {}, c2 {})",
            got1.len() + got2.len(),
            got1.len(),
            got2.len()
        ));
        t.push(format!("queue: {}", inspect_queue(&conn, &q).await));
        drop((c1, c2));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    show(&t);
    assert!(has(&t, "queue: ok messages=3 consumers=2"), "{t:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_on_one_queue_take_turns() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("round-robin-q");
        declare_queue(&ch, &q).await;
        let ch1 = channel(&conn).await;
        let ch2 = channel(&conn).await;
        let mut c1 = consume(&ch1, &q, "c1", true).await;
        let mut c2 = consume(&ch2, &q, "c2", true).await;
        for i in 1..=6 {
            send(&ch, &q, &format!("m{i}")).await;
        }
        let b1: Vec<String> = collect(&mut c1, SETTLE).await.iter().map(body).collect();
        let b2: Vec<String> = collect(&mut c2, SETTLE).await.iter().map(body).collect();
        t.push(format!("c1 got {b1:?}"));
        t.push(format!("c2 got {b2:?}"));
        drop((c1, c2));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    show(&t);
    assert!(has(&t, r#"c1 got ["m1", "m3", "m5"]"#), "{t:#?}");
    assert!(has(&t, r#"c2 got ["m2", "m4", "m6"]"#), "{t:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_cancel_stops_deliveries() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("cancel-q");
        declare_queue(&ch, &q).await;
        let cch = channel(&conn).await;
        let mut c = consume(&cch, &q, "c", false).await;
        send(&ch, &q, "m1").await;
        let d = next(&mut c, Duration::from_secs(2)).await.expect("m1");
        t.push(format!("consumer got {}", describe(&d)));
        cch.basic_cancel("c".into(), BasicCancelOptions::default())
            .await
            .expect("cancel");
        t.push(format!("after cancel: {}", inspect_queue(&conn, &q).await));
        send(&ch, &q, "m2").await;
        t.push(format!(
            "consumer stream after cancel: {:?}",
            next(&mut c, SETTLE).await.map(|d| describe(&d))
        ));
        // The unacked delivery of a cancelled consumer can still be acked.
        let r = cch
            .basic_ack(d.delivery_tag, BasicAckOptions::default())
            .await;
        t.push(format!("ack after cancel: {}", outcome(&r)));
        t.push(format!("queue holds {:?}", drain(&ch, &q).await));
        t.push(format!(
            "consumer channel open: {}",
            cch.status().connected()
        ));
        let r = cch
            .basic_cancel("never-existed".into(), BasicCancelOptions::default())
            .await;
        t.push(format!("cancel an unknown tag: {}", outcome(&r)));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    show(&t);
    assert!(has(&t, "consumer got m1 tag=1 redelivered=false"), "{t:#?}");
    assert!(has(&t, "after cancel: ok messages=0 consumers=0"), "{t:#?}");
    assert!(has(&t, r#"queue holds ["m2 redelivered=false"]"#), "{t:#?}");
    assert!(has(&t, "consumer channel open: true"), "{t:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_queue_cancels_its_consumers() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("delete-cancels-q");
        declare_queue(&ch, &q).await;
        let cch = channel(&conn).await;
        let mut c = consume(&cch, &q, "c", true).await;
        send(&ch, &q, "m1").await;
        t.push(format!(
            "consumer got {:?}",
            next(&mut c, Duration::from_secs(2)).await.map(|d| body(&d))
        ));
        let r = ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
        t.push(format!("delete: {:?}", r.map_err(|e| code(&e))));
        t.push(format!(
            "consumer stream: {:?}",
            next(&mut c, Duration::from_secs(2)).await.map(|d| body(&d))
        ));
        t.push(format!(
            "consumer channel open: {}",
            cch.status().connected()
        ));
        // The server forgot the consumer: cancelling it now is a no-op.
        let r = cch
            .basic_cancel("c".into(), BasicCancelOptions::default())
            .await;
        t.push(format!("cancel after server cancel: {}", outcome(&r)));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    show(&t);
    assert!(has(&t, r#"consumer got Ok("m1")"#), "{t:#?}");
    assert!(has(&t, "delete: Ok(0)"), "{t:#?}");
    assert!(has(&t, r#"consumer stream: Err("stream ended")"#), "{t:#?}");
    assert!(has(&t, "consumer channel open: true"), "{t:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_consumer_refuses_other_consumers() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q1 = common::unique("excl-consumer-q1");
        let q2 = common::unique("excl-consumer-q2");
        declare_queue(&ch, &q1).await;
        declare_queue(&ch, &q2).await;
        let exclusive = BasicConsumeOptions {
            exclusive: true,
            ..BasicConsumeOptions::default()
        };
        let c1 = ch
            .basic_consume(
                q1.as_str().into(),
                "x1".into(),
                exclusive,
                FieldTable::default(),
            )
            .await
            .expect("exclusive consume");
        let other = channel(&conn).await;
        let r = other
            .basic_consume(
                q1.as_str().into(),
                "second".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await;
        t.push(format!(
            "second consumer on exclusively consumed queue: {}",
            outcome(&r)
        ));
        let same = ch
            .basic_consume(
                q1.as_str().into(),
                "same-channel".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await;
        t.push(format!(
            "second consumer on the same channel: {}",
            outcome(&same)
        ));
        // The other way round: an exclusive consumer where one already exists.
        let ch2 = channel(&conn).await;
        let c2 = consume(&ch2, &q2, "plain", false).await;
        let ch3 = channel(&conn).await;
        let r = ch3
            .basic_consume(
                q2.as_str().into(),
                "x2".into(),
                exclusive,
                FieldTable::default(),
            )
            .await;
        t.push(format!(
            "exclusive consumer on a consumed queue: {}",
            outcome(&r)
        ));
        t.push(format!("q1: {}", inspect_queue(&conn, &q1).await));
        drop((c1, c2, same));
        cleanup(&conn, &[&q1, &q2], &[]).await;
        t
    })
    .await;
    show(&t);
    assert!(
        has(
            &t,
            "second consumer on exclusively consumed queue: 403 ACCESS-REFUSED"
        ),
        "{t:#?}"
    );
    assert!(
        has(
            &t,
            "exclusive consumer on a consumed queue: 403 ACCESS-REFUSED"
        ),
        "{t:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Acknowledgements
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_of_unknown_delivery_tag_closes_the_channel() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("ack-unknown-q");
        declare_queue(&ch, &q).await;
        send(&ch, &q, "m1").await;
        let m = get(&ch, &q).await.expect("m1");
        t.push(format!("got {}", describe(&m.delivery)));
        let mut errors = events(&conn);
        let r = ch.basic_ack(42, BasicAckOptions::default()).await;
        t.push(format!("ack of tag 42 sent: {}", outcome(&r)));
        t.push(format!("channel error: {}", next_error(&mut errors).await));
        t.push(format!("channel open: {}", ch.status().connected()));
        // The message held by the closed channel went back to the queue.
        let ch = channel(&conn).await;
        t.push(format!("queue holds {:?}", drain(&ch, &q).await));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    show(&t);
    assert!(has(&t, "channel error: 406 PRECONDITION-FAILED"), "{t:#?}");
    assert!(has(&t, "channel open: false"), "{t:#?}");
    assert!(has(&t, r#"queue holds ["m1 redelivered=true"]"#), "{t:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_ack_closes_the_channel() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let mut errors = events(&conn);
        let ch = channel(&conn).await;
        let q = common::unique("double-ack-q");
        declare_queue(&ch, &q).await;
        send(&ch, &q, "m1").await;
        send(&ch, &q, "m2").await;
        let m = get(&ch, &q).await.expect("m1");
        ch.basic_ack(m.delivery.delivery_tag, BasicAckOptions::default())
            .await
            .expect("first ack");
        ch.basic_ack(m.delivery.delivery_tag, BasicAckOptions::default())
            .await
            .expect("second ack sent");
        t.push(format!(
            "after acking tag 1 twice: {}",
            next_error(&mut errors).await
        ));
        t.push(format!("channel open: {}", ch.status().connected()));
        let ch = channel(&conn).await;
        t.push(format!("queue holds {:?}", drain(&ch, &q).await));
        // Acking a no-ack delivery is just as unknown.
        send(&ch, &q, "m3").await;
        let m = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("get")
            .expect("m3");
        ch.basic_ack(m.delivery.delivery_tag, BasicAckOptions::default())
            .await
            .expect("ack sent");
        t.push(format!(
            "after acking a no-ack delivery: {}",
            next_error(&mut errors).await
        ));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    show(&t);
    assert!(
        has(&t, "after acking tag 1 twice: 406 PRECONDITION-FAILED"),
        "{t:#?}"
    );
    assert!(has(&t, r#"queue holds ["m2 redelivered=false"]"#), "{t:#?}");
    assert!(
        has(
            &t,
            "after acking a no-ack delivery: 406 PRECONDITION-FAILED"
        ),
        "{t:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_multiple_settles_everything_up_to_the_tag() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("ack-multiple-q");
        declare_queue(&ch, &q).await;
        for b in ["m1", "m2", "m3", "m4", "m5"] {
            send(&ch, &q, b).await;
        }
        let gch = channel(&conn).await;
        for _ in 0..5 {
            get(&gch, &q).await.expect("message");
        }
        gch.basic_ack(3, BasicAckOptions { multiple: true })
            .await
            .expect("ack multiple");
        // Tag 4 stays unacked; tag 5 is acked on its own.
        let r = gch.basic_ack(5, BasicAckOptions { multiple: false }).await;
        t.push(format!("ack 5: {}", outcome(&r)));
        gch.close(200, "OK".into()).await.expect("channel.close");
        t.push(format!("requeued on close: {:?}", drain(&ch, &q).await));
        // Tag 0 with multiple: everything outstanding.
        for b in ["n1", "n2", "n3"] {
            send(&ch, &q, b).await;
        }
        let gch = channel(&conn).await;
        for _ in 0..3 {
            get(&gch, &q).await.expect("message");
        }
        gch.basic_ack(0, BasicAckOptions { multiple: true })
            .await
            .expect("ack 0 multiple");
        gch.close(200, "OK".into()).await.expect("channel.close");
        t.push(format!(
            "requeued after ack 0 multiple: {:?}",
            drain(&ch, &q).await
        ));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    show(&t);
    assert!(
        has(&t, r#"requeued on close: ["m4 redelivered=true"]"#),
        "{t:#?}"
    );
    assert!(has(&t, "requeued after ack 0 multiple: []"), "{t:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_discards_or_requeues_one_message() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("reject-q");
        declare_queue(&ch, &q).await;
        for b in ["m1", "m2", "m3"] {
            send(&ch, &q, b).await;
        }
        let m1 = get(&ch, &q).await.expect("m1");
        let m2 = get(&ch, &q).await.expect("m2");
        ch.basic_reject(
            m1.delivery.delivery_tag,
            BasicRejectOptions { requeue: false },
        )
        .await
        .expect("reject m1");
        ch.basic_reject(
            m2.delivery.delivery_tag,
            BasicRejectOptions { requeue: true },
        )
        .await
        .expect("reject m2");
        sync(&ch).await;
        t.push(format!("after rejects: {}", inspect_queue(&conn, &q).await));
        t.push(format!("queue holds {:?}", drain(&ch, &q).await));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    show(&t);
    assert!(
        has(&t, "after rejects: ok messages=2 consumers=0"),
        "{t:#?}"
    );
    assert!(
        has(
            &t,
            r#"queue holds ["m2 redelivered=true", "m3 redelivered=false"]"#
        ),
        "{t:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_multiple_requeues_or_discards_up_to_the_tag() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("nack-multiple-q");
        declare_queue(&ch, &q).await;
        for b in ["m1", "m2", "m3", "m4"] {
            send(&ch, &q, b).await;
        }
        let cch = channel(&conn).await;
        let mut c = consume(&cch, &q, "c", false).await;
        let got = collect(&mut c, SETTLE).await;
        t.push(format!(
            "consumer got {:?}",
            got.iter().map(describe).collect::<Vec<_>>()
        ));
        cch.basic_cancel("c".into(), BasicCancelOptions::default())
            .await
            .expect("cancel");
        cch.basic_nack(
            2,
            BasicNackOptions {
                multiple: true,
                requeue: false,
            },
        )
        .await
        .expect("nack 2 multiple, discard");
        cch.basic_nack(
            4,
            BasicNackOptions {
                multiple: true,
                requeue: true,
            },
        )
        .await
        .expect("nack 4 multiple, requeue");
        sync(&cch).await;
        t.push(format!("queue: {}", inspect_queue(&conn, &q).await));
        t.push(format!("queue holds {:?}", drain(&ch, &q).await));
        t.push(format!(
            "consumer channel open: {}",
            cch.status().connected()
        ));
        drop(c);
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    show(&t);
    assert!(has(&t, "queue: ok messages=2 consumers=0"), "{t:#?}");
    assert!(
        has(
            &t,
            r#"queue holds ["m3 redelivered=true", "m4 redelivered=true"]"#
        ),
        "{t:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Publishing: confirms, routing once, transactions
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_confirms_count_from_one() {
    // lapin matches each basic.ack to its own publish counter starting at 1; a broker numbering
    // differently would leave these confirms unresolved or fail the channel.
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let setup = channel(&conn).await;
        let q = common::unique("confirms-q");
        declare_queue(&setup, &q).await;
        let ch = conn.create_channel().await.expect("channel.open");
        // Publishes before confirm.select are not numbered.
        for b in ["before-1", "before-2"] {
            t.push(format!("{b}: {}", send(&ch, &q, b).await));
        }
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        let mut pending = Vec::new();
        for i in 1..=5 {
            let confirm = ch
                .basic_publish(
                    "".into(),
                    q.as_str().into(),
                    BasicPublishOptions::default(),
                    format!("c{i}").as_bytes(),
                    BasicProperties::default(),
                )
                .await
                .expect("publish");
            pending.push(confirm);
        }
        for (i, confirm) in pending.into_iter().enumerate() {
            let c = tokio::time::timeout(Duration::from_secs(2), confirm).await;
            t.push(format!(
                "confirm {}: {}",
                i + 1,
                match c {
                    Ok(Ok(c)) => format!("{c:?}"),
                    Ok(Err(e)) => code(&e),
                    Err(_) => "unresolved".to_string(),
                }
            ));
        }
        let r = ch.confirm_select(ConfirmSelectOptions::default()).await;
        t.push(format!("confirm.select again: {}", outcome(&r)));
        t.push(format!("after: {}", inspect_queue(&conn, &q).await));
        // Publishing to a missing exchange fails the confirm with the channel error.
        let missing = common::unique("confirms-missing-x");
        let mut errors = events(&conn);
        let r = publish_with(
            &ch,
            &missing,
            "k",
            "lost",
            BasicProperties::default(),
            false,
        )
        .await;
        t.push(format!("publish to a missing exchange: {r}"));
        t.push(format!("reported: {}", next_error(&mut errors).await));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    show(&t);
    assert!(has(&t, "confirm 1: Ack(None)"), "{t:#?}");
    assert!(has(&t, "confirm 5: Ack(None)"), "{t:#?}");
    assert!(has(&t, "after: ok messages=7 consumers=0"), "{t:#?}");
    assert!(
        has(&t, "publish to a missing exchange: 404 NOT-FOUND"),
        "{t:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_reaches_a_queue_once_despite_several_matching_bindings() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let x = common::unique("once-x");
        let q = common::unique("once-q");
        let other = common::unique("once-other-q");
        ch.exchange_declare(
            x.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("exchange.declare");
        declare_queue(&ch, &q).await;
        declare_queue(&ch, &other).await;
        for pattern in ["a.*", "#", "a.b", "*.b"] {
            ch.queue_bind(
                q.as_str().into(),
                x.as_str().into(),
                pattern.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
        }
        ch.queue_bind(
            other.as_str().into(),
            x.as_str().into(),
            "a.b".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
        publish_with(&ch, &x, "a.b", "m1", BasicProperties::default(), false).await;
        publish_with(&ch, &x, "z", "m2", BasicProperties::default(), false).await;
        t.push(format!("q got {:?}", drain(&ch, &q).await));
        t.push(format!("other got {:?}", drain(&ch, &other).await));
        cleanup(&conn, &[&q, &other], &[&x]).await;
        t
    })
    .await;
    show(&t);
    assert!(
        has(
            &t,
            r#"q got ["m1 redelivered=false", "m2 redelivered=false"]"#
        ),
        "{t:#?}"
    );
    assert!(has(&t, r#"other got ["m1 redelivered=false"]"#), "{t:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_reply_to_round_trip() {
    let t =
        common::differential(|url| async move {
            let mut t = Vec::new();
            let conn = connect(&url).await;
            let server = channel(&conn).await;
            let requests = common::unique("rpc-requests");
            declare_queue(&server, &requests).await;
            // Client: consume the pseudo-queue (no-ack), then publish on the same channel.
            let client = channel(&conn).await;
            let mut replies = consume(&client, "amq.rabbitmq.reply-to", "", true).await;
            let props = BasicProperties::default()
                .with_reply_to("amq.rabbitmq.reply-to".into())
                .with_correlation_id("req-1".into());
            let p = publish_with(&client, "", &requests, "request", props, false).await;
            t.push(format!("request published: {p}"));
            let req = get(&server, &requests).await.expect("request");
            let reply_to = req
                .delivery
                .properties
                .reply_to()
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default();
            t.push(format!(
                "server sees reply_to with prefix amq.rabbitmq.reply-to.: {}",
                reply_to.starts_with("amq.rabbitmq.reply-to.")
                    && reply_to.len() > "amq.rabbitmq.reply-to.".len()
            ));
            req.delivery
                .ack(BasicAckOptions::default())
                .await
                .expect("ack");
            // Published as mandatory: RabbitMQ 3.10 delivers the reply and also returns it with
            // 312 NO_ROUTE (the pseudo-queue is not a real queue for routing).
            let props = BasicProperties::default().with_correlation_id("req-1".into());
            let p = publish_with(&server, "", &reply_to, "response", props, true).await;
            t.push(format!("reply published: {p}"));
            match next(&mut replies, Duration::from_secs(2)).await {
                Ok(d) => t.push(format!(
                "client got {} correlation={:?} exchange={:?} key-is-reply-to={} redelivered={}",
                body(&d),
                d.properties.correlation_id().as_ref().map(|s| s.to_string()),
                d.exchange.as_str(),
                d.routing_key.as_str() == reply_to,
                d.redelivered
            )),
                Err(e) => t.push(format!("client got nothing: {e}")),
            }
            t.push(format!(
                "passive declare of the pseudo-queue: {}",
                inspect_queue(&conn, "amq.rabbitmq.reply-to").await
            ));
            // A reply_to of amq.rabbitmq.reply-to without consuming it first is refused.
            let lone = channel(&conn).await;
            let mut errors = events(&conn);
            let props = BasicProperties::default().with_reply_to("amq.rabbitmq.reply-to".into());
            let p = publish_with(&lone, "", &requests, "orphan", props, false).await;
            t.push(format!("request without a reply consumer: {p}"));
            t.push(format!("reported: {}", next_error(&mut errors).await));
            t.push(format!(
                "requests left {:?}",
                drain(&server, &requests).await
            ));
            drop(replies);
            cleanup(&conn, &[&requests], &[]).await;
            t
        })
        .await;
    show(&t);
    assert!(
        has(
            &t,
            "server sees reply_to with prefix amq.rabbitmq.reply-to.: true"
        ),
        "{t:#?}"
    );
    assert!(
        has(
            &t,
            r#"client got response correlation=Some("req-1") exchange="" key-is-reply-to=true redelivered=false"#
        ),
        "{t:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_commit_or_roll_back_publishes_and_acks() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("tx-q");
        declare_queue(&ch, &q).await;
        let tx = conn.create_channel().await.expect("channel.open");
        let r = tx.tx_commit().await;
        t.push(format!("commit without select: {}", outcome(&r)));
        let tx = conn.create_channel().await.expect("channel.open");
        tx.tx_select().await.expect("tx.select");
        t.push(format!("publish m1 in tx: {}", send(&tx, &q, "m1").await));
        // A synchronous round trip on the tx channel: the publish has been received.
        tx.basic_qos(0, BasicQosOptions::default())
            .await
            .expect("qos");
        t.push(format!("before commit: {}", inspect_queue(&conn, &q).await));
        tx.tx_commit().await.expect("commit");
        t.push(format!("after commit: {}", inspect_queue(&conn, &q).await));
        send(&tx, &q, "m2").await;
        tx.tx_rollback().await.expect("rollback");
        t.push(format!(
            "after rollback: {}",
            inspect_queue(&conn, &q).await
        ));
        // Acks are transactional too.
        let m = get(&tx, &q).await.expect("m1");
        t.push(format!("got in tx: {}", describe(&m.delivery)));
        tx.basic_ack(m.delivery.delivery_tag, BasicAckOptions::default())
            .await
            .expect("ack");
        tx.tx_rollback().await.expect("rollback ack");
        t.push(format!(
            "after rolled-back ack: {}",
            inspect_queue(&conn, &q).await
        ));
        tx.basic_ack(m.delivery.delivery_tag, BasicAckOptions::default())
            .await
            .expect("ack again");
        tx.tx_commit().await.expect("commit ack");
        let r = tx.confirm_select(ConfirmSelectOptions::default()).await;
        t.push(format!("confirm.select on a tx channel: {}", outcome(&r)));
        t.push(format!(
            "after commit of ack and channel error: {}",
            inspect_queue(&conn, &q).await
        ));
        t.push(format!("queue holds {:?}", drain(&ch, &q).await));
        let r = ch.tx_select().await;
        t.push(format!("tx.select on a confirm channel: {}", outcome(&r)));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    show(&t);
    assert!(
        has(&t, "before commit: ok messages=0 consumers=0"),
        "{t:#?}"
    );
    assert!(has(&t, "after commit: ok messages=1 consumers=0"), "{t:#?}");
    assert!(
        has(&t, "after rollback: ok messages=1 consumers=0"),
        "{t:#?}"
    );
    assert!(has(&t, "queue holds []"), "{t:#?}");
}

/// With x-priority, the higher-priority consumer gets messages while it has room; the lower one
/// gets them only when the higher one is full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_priorities_prefer_the_higher_consumer_while_it_has_room() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("priority-consumers-q");
        declare_queue(&ch, &q).await;
        let mut consumers = Vec::new();
        for (label, priority) in [("low", 1), ("high", 10)] {
            let c = conn.create_channel().await.expect("channel.open");
            c.basic_qos(1, BasicQosOptions::default())
                .await
                .expect("qos");
            let mut args = FieldTable::default();
            args.insert(
                "x-priority".into(),
                lapin::types::AMQPValue::LongInt(priority),
            );
            let consumer = c
                .basic_consume(
                    q.as_str().into(),
                    label.into(),
                    BasicConsumeOptions::default(),
                    args,
                )
                .await
                .expect("consume");
            consumers.push((label, consumer));
        }
        for n in 1..=3 {
            publish_with(
                &ch,
                "",
                &q,
                &format!("m{n}"),
                BasicProperties::default(),
                false,
            )
            .await;
        }
        let mut held = Vec::new();
        for (label, consumer) in consumers.iter_mut() {
            match next(consumer, Duration::from_millis(500)).await {
                Ok(d) => {
                    t.push(format!("{label} got {}", body(&d)));
                    held.push((*label, d));
                }
                Err(e) => t.push(format!("{label}: {e}")),
            }
        }
        // The high consumer acks: the waiting message goes to it, not to the full low one.
        let (_, high) = held
            .iter()
            .find(|(l, _)| *l == "high")
            .expect("high got one");
        high.ack(BasicAckOptions::default()).await.expect("ack");
        for (label, consumer) in consumers.iter_mut() {
            match next(consumer, Duration::from_millis(500)).await {
                Ok(d) => t.push(format!("then {label} got {}", body(&d))),
                Err(e) => t.push(format!("then {label}: {e}")),
            }
        }
        drop(consumers);
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    show(&t);
    assert!(has(&t, "high got m1"), "{t:#?}");
    assert!(has(&t, "low got m2"), "{t:#?}");
    assert!(has(&t, "then high got m3"), "{t:#?}");
}
