//! The embedded broker behaving as a RabbitMQ release (`--behave-as`) and RabbitMQ's
//! deprecated features switched (`--permit`, `--deny`), seen by a real client (lapin).
//!
//! RabbitMQ 3.10 on this machine cannot show 4.x, so the expected texts are RabbitMQ's own,
//! read from rabbitmq-server: `generate_warnings1/3` in
//! deps/rabbit/src/rabbit_deprecated_features.erl (v4.3.5) for the 541 texts, rabbit_channel.erl
//! for global qos, rabbit_quorum_queue.erl and rabbit_fifo.erl for delivery limits.

mod common;

use std::time::Duration;

use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::Channel;

use common::client::*;
use rabbitscope::broker::{Behaviour, BrokerConfig, DeprecatedFeature, Release};

/// An embedded broker behaving as `behaviour`; its URL.
async fn broker(behaviour: Behaviour) -> String {
    let config = BrokerConfig {
        behaviour,
        ..BrokerConfig::default()
    };
    common::start_embedded_with(config).await.0
}

fn release(name: &str) -> Behaviour {
    Behaviour::of(name.parse::<Release>().unwrap())
}

/// The reply code and full text of a refusal.
fn refusal(err: &lapin::Error) -> (u16, String) {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => (e.get_id(), e.get_message().to_string()),
        other => panic!("not a refusal: {other:?}"),
    }
}

/// RabbitMQ's reply text cut at 255 bytes, as a short string carries it.
fn as_sent(text: &str) -> String {
    text.chars().take(255).collect()
}

const DENIED_ON_4_3: &str = "INTERNAL_ERROR - Feature `transient_nonexcl_queues` is deprecated.\n\
By default, this feature is not permitted anymore.\n\
The feature will be removed from a future major RabbitMQ version, regardless of the \
configuration; actual version to be determined.\n\
To continue using this feature when it is not permitted by default, set the following \
parameter in your configuration:\n    \"deprecated_features.permit.transient_nonexcl_queues = true\"";

async fn declare(
    ch: &Channel,
    name: &str,
    durable: bool,
    exclusive: bool,
    args: FieldTable,
) -> lapin::Result<lapin::Queue> {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            durable,
            exclusive,
            ..QueueDeclareOptions::default()
        },
        args,
    )
    .await
}

#[tokio::test]
async fn on_4_3_a_transient_non_exclusive_queue_closes_the_connection_with_541() {
    let url = broker(release("4.3")).await;
    let conn = connect(&url).await;
    let ch = channel(&conn).await;
    // Durable queues and exclusive ones are what 4.3 still takes.
    declare(&ch, "kept", true, false, FieldTable::default())
        .await
        .expect("durable");
    declare(&ch, "mine", false, true, FieldTable::default())
        .await
        .expect("exclusive");
    let err = declare(&ch, "reply_1", false, false, FieldTable::default())
        .await
        .unwrap_err();
    assert_eq!(refusal(&err), (541, as_sent(DENIED_ON_4_3)));
    assert!(!conn.status().connected(), "541 closes the connection");

    // The check comes before a quorum queue's own: 541, not 406 'non-durable'.
    let conn = connect(&url).await;
    let ch = channel(&conn).await;
    let quorum = table(&[("x-queue-type", text("quorum"))]);
    let err = declare(&ch, "q", false, false, quorum).await.unwrap_err();
    assert_eq!(refusal(&err).0, 541);
}

#[tokio::test]
async fn permitting_transient_nonexcl_queues_on_4_3_lets_them_be_declared() {
    let behaviour = release("4.3")
        .permit(DeprecatedFeature::TransientNonexclQueues, true)
        .unwrap();
    let url = broker(behaviour).await;
    let conn = connect(&url).await;
    let ch = channel(&conn).await;
    declare(&ch, "reply_1", false, false, FieldTable::default())
        .await
        .expect("permitted");
}

#[tokio::test]
async fn denying_a_feature_on_a_release_that_permits_it_gives_rabbitmq_s_other_text() {
    // A transient, non-exclusive queue declared on a broker of its own.
    let declare_transient = |behaviour| async move {
        let url = broker(behaviour).await;
        let conn = connect(&url).await;
        declare(
            &channel(&conn).await,
            "t",
            false,
            false,
            FieldTable::default(),
        )
        .await
    };
    declare_transient(release("4.2"))
        .await
        .expect("4.2 permits transient non-exclusive queues");

    let denied = release("3.13")
        .permit(DeprecatedFeature::TransientNonexclQueues, false)
        .unwrap();
    let err = declare_transient(denied).await.unwrap_err();
    let expected = "INTERNAL_ERROR - Feature `transient_nonexcl_queues` is deprecated.\n\
        Its use is not permitted per the configuration (overriding the default, which is \
        permitted):\n    \"deprecated_features.permit.transient_nonexcl_queues = false\"\n";
    let (code, text) = refusal(&err);
    assert_eq!(code, 541);
    assert!(text.starts_with(expected), "{text}");
}

#[tokio::test]
async fn on_4_3_x_queue_master_locator_is_refused_on_a_classic_queue() {
    let locator = || table(&[("x-queue-master-locator", text("client-local"))]);
    let url = broker(release("4.2")).await;
    let conn = connect(&url).await;
    declare(&channel(&conn).await, "l", true, false, locator())
        .await
        .expect("4.2 permits queue_master_locator");

    let url = broker(release("4.3")).await;
    let conn = connect(&url).await;
    let err = declare(&channel(&conn).await, "l", true, false, locator())
        .await
        .unwrap_err();
    let (code, text) = refusal(&err);
    assert_eq!(code, 541);
    assert!(
        text.starts_with(
            "INTERNAL_ERROR - Feature `queue_master_locator` is deprecated.\n\
             By default, this feature is not permitted anymore.\n"
        ),
        "{text}"
    );
}

/// How many of three ready messages two consumers on one channel get under basic.qos(1,
/// global), and whether a quorum queue then takes a consumer.
async fn under_global_qos(url: &str) -> (usize, String) {
    let conn = connect(url).await;
    let ch = channel(&conn).await;
    declare(&ch, "work", true, false, FieldTable::default())
        .await
        .unwrap();
    for body in ["a", "b", "c"] {
        send(&ch, "work", body).await;
    }
    ch.basic_qos(1, BasicQosOptions { global: true })
        .await
        .expect("basic.qos global");
    let mut one = consume(&ch, "work", "one", false).await;
    let mut two = consume(&ch, "work", "two", false).await;
    let quiet = Duration::from_millis(300);
    let got = collect(&mut one, quiet).await.len() + collect(&mut two, quiet).await.len();
    let quorum = table(&[("x-queue-type", text("quorum"))]);
    declare(&ch, "qq", true, false, quorum).await.unwrap();
    let consumed = ch
        .basic_consume(
            "qq".into(),
            "three".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await;
    (got, outcome(&consumed))
}

#[tokio::test]
async fn on_4_3_global_qos_counts_as_per_consumer() {
    let (got, quorum) = under_global_qos(&broker(release("4.2")).await).await;
    assert_eq!(got, 1, "4.2: one message for the whole channel");
    assert!(quorum.starts_with("540 "), "{quorum}");

    let (got, quorum) = under_global_qos(&broker(release("4.3")).await).await;
    assert_eq!(got, 2, "4.3: one message per consumer");
    assert_eq!(quorum, "ok");
}

/// Declares a quorum queue with `args`, puts one message in, and nacks it with requeue up to
/// `returns` times; how many returns it took until the message was gone (None: never), and
/// its `x-delivery-count` on the last delivery.
async fn returns_until_gone(
    url: &str,
    args: &[(&str, AMQPValue)],
    returns: u32,
) -> (Option<u32>, i64) {
    let conn = connect(url).await;
    let ch = channel(&conn).await;
    let mut all = vec![("x-queue-type", text("quorum"))];
    all.extend(args.iter().cloned());
    declare(&ch, "retry", true, false, table(&all))
        .await
        .unwrap();
    send(&ch, "retry", "m").await;
    let mut count = 0;
    for n in 0..=returns {
        let Some(m) = get(&ch, "retry").await else {
            return (Some(n), count);
        };
        count = match m
            .delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-delivery-count").cloned())
        {
            Some(AMQPValue::LongLongInt(n)) => n,
            other => panic!("x-delivery-count: {other:?}"),
        };
        ch.basic_nack(
            m.delivery.delivery_tag,
            lapin::options::BasicNackOptions {
                multiple: false,
                requeue: true,
            },
        )
        .await
        .unwrap();
    }
    (None, count)
}

#[tokio::test]
async fn from_4_0_quorum_queues_drop_a_message_returned_more_than_20_times() {
    let (gone, _) = returns_until_gone(&broker(release("3.13")).await, &[], 25).await;
    assert_eq!(gone, None, "3.13 has no default limit");
    let (gone, _) = returns_until_gone(&broker(release("4.0")).await, &[], 25).await;
    assert_eq!(gone, Some(21), "gone once returned a 21st time");
    let unlimited = [("x-delivery-limit", int(-1))];
    let (gone, _) = returns_until_gone(&broker(release("4.0")).await, &unlimited, 25).await;
    assert_eq!(gone, None, "-1: no limit");
}

#[tokio::test]
async fn on_4_3_a_client_s_requeue_is_not_counted() {
    let limit = [("x-delivery-limit", int(1))];
    let (gone, count) = returns_until_gone(&broker(release("4.2")).await, &limit, 5).await;
    assert_eq!((gone, count), (Some(2), 1));
    let (gone, count) = returns_until_gone(&broker(release("4.3")).await, &limit, 5).await;
    assert_eq!((gone, count), (None, 0));
}

/// 4.3 stopped reading a classic queue's `x-queue-mode` (rabbit_amqqueue.erl has no
/// `check_queue_mode/2` from v4.3.0): any value is taken, where 4.2 refuses an unknown one.
/// A quorum queue still refuses the argument.
#[tokio::test]
async fn on_4_3_x_queue_mode_is_no_longer_read_on_a_classic_queue() {
    let mode = || table(&[("x-queue-mode", text("bogus"))]);
    let url = broker(release("4.2")).await;
    let conn = connect(&url).await;
    let err = declare(&channel(&conn).await, "m", true, false, mode())
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&err),
        (
            406,
            "PRECONDITION_FAILED - invalid arg 'x-queue-mode' for queue 'm' in vhost '/': \
             \"unsupported queue mode 'bogus'\""
                .to_string()
        )
    );

    let url = broker(release("4.3")).await;
    let conn = connect(&url).await;
    let ch = channel(&conn).await;
    declare(&ch, "m", true, false, mode())
        .await
        .expect("4.3 takes it");
    let quorum = table(&[
        ("x-queue-type", text("quorum")),
        ("x-queue-mode", text("lazy")),
    ]);
    let err = declare(&ch, "qm", true, false, quorum).await.unwrap_err();
    assert_eq!(
        refusal(&err),
        (
            406,
            "PRECONDITION_FAILED - invalid arg 'x-queue-mode' for queue 'qm' in vhost '/' of \
             queue type rabbit_quorum_queue"
                .to_string()
        )
    );
}

/// What the broker reports of a quorum queue's delivery limit is the limit it applies: from
/// 4.0 the default 20 a queue's arguments do not show and `-1` for none; before 4.0 no default,
/// and `-1` a limit every return passes (RabbitMQ 3.10 drops such a message at its first
/// return).
#[tokio::test]
async fn the_snapshot_tells_the_delivery_limit_in_force() {
    use rabbitscope::topology::DeliveryLimit;
    let quorum = |limit: Option<i32>| {
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        if let Some(n) = limit {
            args.insert("x-delivery-limit".into(), AMQPValue::LongInt(n));
        }
        args
    };
    for (behaviour, plain, endless) in [
        (
            release("4.2"),
            DeliveryLimit::Limit(20),
            DeliveryLimit::Unlimited,
        ),
        (
            release("3.13"),
            DeliveryLimit::Unlimited,
            DeliveryLimit::Limit(-1),
        ),
    ] {
        let config = BrokerConfig {
            behaviour,
            ..BrokerConfig::default()
        };
        let (url, broker) = common::start_embedded_with(config).await;
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        declare(&ch, "plain", true, false, quorum(None))
            .await
            .unwrap();
        declare(&ch, "five", true, false, quorum(Some(5)))
            .await
            .unwrap();
        declare(&ch, "endless", true, false, quorum(Some(-1)))
            .await
            .unwrap();
        let snapshot = broker.snapshot();
        let limit = |name: &str| {
            snapshot
                .vhost("/")
                .unwrap()
                .queues
                .iter()
                .find(|q| q.name == name)
                .unwrap()
                .delivery_limit
        };
        assert_eq!(limit("plain"), plain);
        assert_eq!(limit("five"), DeliveryLimit::Limit(5));
        assert_eq!(limit("endless"), endless);
    }
}
