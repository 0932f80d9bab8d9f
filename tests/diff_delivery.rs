//! Delivery behaviour (get, consume, acks, confirms, transactions), checked against RabbitMQ and
//! the embedded broker alike.
//!
//! Every scenario records what it observes (by short labels, never by the generated names) and
//! asserts the outcome it expects, so two brokers that both do nothing cannot agree by accident.
mod common;

use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, ExchangeKind};

use common::client::*;

/// Body, delivery tag and redelivered flag of a delivery.
fn describe(d: &Delivery) -> String {
    format!(
        "{} tag={} redelivered={}",
        body(d),
        d.delivery_tag,
        d.redelivered
    )
}

/// Takes every message off a queue (no-ack) and describes each with its redelivered flag.
async fn drain_flagged(ch: &Channel, queue: &str) -> Vec<String> {
    take_all(ch, queue)
        .await
        .iter()
        .map(|d| format!("{} redelivered={}", body(d), d.redelivered))
        .collect()
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
    assert_has(
        &t,
        &[
            "get on empty queue: Ok(true)",
            "get on a missing queue: 404 NOT-FOUND",
        ],
    );
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
    assert_has(
        &t,
        &[
            r#"m1 tag=1 redelivered=false message_count=2 exchange="" key-is-queue=true"#,
            r#"m3 tag=3 redelivered=false message_count=0 exchange="" key-is-queue=true"#,
        ],
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
    assert_has(
        &t,
        &[
            "first get: m1 tag=1 redelivered=false",
            "after nack requeue: m1 tag=2 redelivered=true",
            "consumer got: m1 tag=1 redelivered=true",
            "after channel close: m1 tag=3 redelivered=true",
            "fresh message: m2 tag=4 redelivered=false",
        ],
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
        t.push(format!("after close: {:?}", drain_flagged(&ch, &q).await));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "head after requeueing m2: m2 tag=1 redelivered=true",
            r#"after close: ["m1 redelivered=true", "m2 redelivered=true", "m3 redelivered=true", "m4 redelivered=false", "m5 redelivered=false"]"#,
        ],
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
    assert_has(
        &t,
        &[
            r#"c1 holds ["m1", "m3"]"#,
            r#"c2 holds ["m2", "m4"]"#,
            r#"c1 after one ack got ["m5"]"#,
            "queue: ok messages=1 consumers=2",
        ],
    );
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
    assert_has(&t, &["queue: ok messages=3 consumers=2"]);
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
    assert_has(
        &t,
        &[
            r#"c1 got ["m1", "m3", "m5"]"#,
            r#"c2 got ["m2", "m4", "m6"]"#,
        ],
    );
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
        t.push(format!("queue holds {:?}", drain_flagged(&ch, &q).await));
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
    assert_has(
        &t,
        &[
            "consumer got m1 tag=1 redelivered=false",
            "after cancel: ok messages=0 consumers=0",
            r#"queue holds ["m2 redelivered=false"]"#,
            "consumer channel open: true",
        ],
    );
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
    assert_has(
        &t,
        &[
            r#"consumer got Ok("m1")"#,
            "delete: Ok(0)",
            r#"consumer stream: Err("stream ended")"#,
            "consumer channel open: true",
        ],
    );
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
    assert_has(
        &t,
        &[
            "second consumer on exclusively consumed queue: 403 ACCESS-REFUSED",
            "exclusive consumer on a consumed queue: 403 ACCESS-REFUSED",
        ],
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
        t.push(format!("queue holds {:?}", drain_flagged(&ch, &q).await));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "channel error: 406 PRECONDITION-FAILED",
            "channel open: false",
            r#"queue holds ["m1 redelivered=true"]"#,
        ],
    );
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
        t.push(format!("queue holds {:?}", drain_flagged(&ch, &q).await));
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
    assert_has(
        &t,
        &[
            "after acking tag 1 twice: 406 PRECONDITION-FAILED",
            r#"queue holds ["m2 redelivered=false"]"#,
            "after acking a no-ack delivery: 406 PRECONDITION-FAILED",
        ],
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
        t.push(format!(
            "requeued on close: {:?}",
            drain_flagged(&ch, &q).await
        ));
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
            drain_flagged(&ch, &q).await
        ));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            r#"requeued on close: ["m4 redelivered=true"]"#,
            "requeued after ack 0 multiple: []",
        ],
    );
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
        t.push(format!("queue holds {:?}", drain_flagged(&ch, &q).await));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "after rejects: ok messages=2 consumers=0",
            r#"queue holds ["m2 redelivered=true", "m3 redelivered=false"]"#,
        ],
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
        t.push(format!("queue holds {:?}", drain_flagged(&ch, &q).await));
        t.push(format!(
            "consumer channel open: {}",
            cch.status().connected()
        ));
        drop(c);
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "queue: ok messages=2 consumers=0",
            r#"queue holds ["m3 redelivered=true", "m4 redelivered=true"]"#,
        ],
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
        let r = publish(&ch, &missing, "k", "lost").await;
        t.push(format!("publish to a missing exchange: {r}"));
        t.push(format!("reported: {}", next_error(&mut errors).await));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "confirm 1: Ack(None)",
            "confirm 5: Ack(None)",
            "after: ok messages=7 consumers=0",
            "publish to a missing exchange: 404 NOT-FOUND",
        ],
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
        declare_exchange(&ch, &x, ExchangeKind::Topic).await;
        declare_queue(&ch, &q).await;
        declare_queue(&ch, &other).await;
        for pattern in ["a.*", "#", "a.b", "*.b"] {
            bind(&ch, &q, &x, pattern).await;
        }
        bind(&ch, &other, &x, "a.b").await;
        publish(&ch, &x, "a.b", "m1").await;
        publish(&ch, &x, "z", "m2").await;
        t.push(format!("q got {:?}", drain_flagged(&ch, &q).await));
        t.push(format!("other got {:?}", drain_flagged(&ch, &other).await));
        cleanup(&conn, &[&q, &other], &[&x]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            r#"q got ["m1 redelivered=false", "m2 redelivered=false"]"#,
            r#"other got ["m1 redelivered=false"]"#,
        ],
    );
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
                drain_flagged(&server, &requests).await
            ));
            drop(replies);
            cleanup(&conn, &[&requests], &[]).await;
            t
        })
        .await;
    assert_has(
        &t,
        &[
            "server sees reply_to with prefix amq.rabbitmq.reply-to.: true",
            r#"client got response correlation=Some("req-1") exchange="" key-is-reply-to=true redelivered=false"#,
        ],
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
        t.push(format!("queue holds {:?}", drain_flagged(&ch, &q).await));
        let r = ch.tx_select().await;
        t.push(format!("tx.select on a confirm channel: {}", outcome(&r)));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "before commit: ok messages=0 consumers=0",
            "after commit: ok messages=1 consumers=0",
            "after rollback: ok messages=1 consumers=0",
            "queue holds []",
        ],
    );
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
            let args = table(&[("x-priority", int(priority))]);
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
            send(&ch, &q, &format!("m{n}")).await;
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
    assert_has(&t, &["high got m1", "low got m2", "then high got m3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_over_max_length_drops_from_the_head() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("requeue-trim-q");
        declare_queue_with(&ch, &q, table(&[("x-max-length", int(2))])).await;
        for b in ["m1", "m2"] {
            send(&ch, &q, b).await;
        }
        get(&ch, &q).await;
        get(&ch, &q).await;
        for b in ["m3", "m4"] {
            send(&ch, &q, b).await;
        }
        ch.basic_nack(
            0,
            BasicNackOptions {
                multiple: true,
                requeue: true,
            },
        )
        .await
        .expect("nack");
        tokio::time::sleep(SETTLE).await;
        t.push(format!("after requeue: {:?}", drain(&ch, &q).await));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    assert_has(&t, &[r#"after requeue: ["m3", "m4"]"#]);
}
