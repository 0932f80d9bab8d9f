//! Queue behaviour, checked against RabbitMQ and the embedded broker alike.
//!
//! Every scenario records what it observes (by short labels, never by the generated names) and
//! asserts the outcome it expects, so two brokers that both do nothing cannot agree by accident.
mod common;

use std::time::{Duration, Instant};

use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicQosOptions,
    BasicRejectOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
    QueuePurgeOptions,
};
use lapin::types::{AMQPValue, DecimalValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};

use common::client::*;

/// Polls a queue until it is gone (404) or `within` has passed; returns the last observation.
async fn gone_within(conn: &Connection, name: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let seen = inspect_queue(conn, name).await;
        if seen.starts_with("404") || Instant::now() >= deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// basic.get, polling until a message turns up or `within` has passed. Dead-lettering happens
/// after the reject or expiry that causes it, so the message may not be there at once.
async fn get_within(
    ch: &Channel,
    queue: &str,
    no_ack: bool,
    within: Duration,
) -> Option<lapin::message::BasicGetMessage> {
    let deadline = Instant::now() + within;
    loop {
        let m = ch
            .basic_get(queue.into(), BasicGetOptions { no_ack })
            .await
            .expect("basic.get");
        if m.is_some() || Instant::now() >= deadline {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const DEAD_LETTER_WAIT: Duration = Duration::from_secs(1);

/// A fanout exchange `dlx` with the queue `dlq` bound to it, for a queue to dead-letter into.
async fn declare_dead_letter_target(ch: &Channel, dlx: &str, dlq: &str) {
    declare_exchange(ch, dlx, ExchangeKind::Fanout).await;
    declare_queue(ch, dlq).await;
    bind(ch, dlq, dlx, "").await;
}

/// Maps the generated names of a scenario back to its short labels for the transcript.
struct Labels(Vec<(String, String)>);

impl Labels {
    fn new(pairs: &[(&str, &str)]) -> Self {
        Labels(
            pairs
                .iter()
                .map(|(name, label)| (name.to_string(), label.to_string()))
                .collect(),
        )
    }

    fn of(&self, s: &str) -> String {
        if s.is_empty() {
            return "(default)".to_string();
        }
        match self.0.iter().find(|(name, _)| name == s) {
            Some((_, label)) => label.clone(),
            None if s.starts_with("rs-test.") => "(unlabelled test name)".to_string(),
            None => s.to_string(),
        }
    }

    /// A field value with its AMQP type, strings mapped to labels, timestamps elided.
    fn value(&self, v: &AMQPValue) -> String {
        match v {
            AMQPValue::LongString(s) => format!("{:?}", self.of(&s.to_string())),
            AMQPValue::ShortString(s) => format!("short {:?}", self.of(s.as_str())),
            AMQPValue::FieldArray(a) => {
                let items: Vec<String> = a.as_slice().iter().map(|v| self.value(v)).collect();
                format!("[{}]", items.join(", "))
            }
            AMQPValue::FieldTable(t) => self.table(t),
            AMQPValue::Timestamp(_) => "timestamp".to_string(),
            other => format!("{other:?}"),
        }
    }

    fn table(&self, t: &FieldTable) -> String {
        let items: Vec<String> = t
            .inner()
            .iter()
            .map(|(k, v)| format!("{}: {}", k, self.value(v)))
            .collect();
        format!("{{{}}}", items.join(", "))
    }

    /// The headers of a delivery, one line per header.
    fn headers(&self, props: &BasicProperties) -> Vec<String> {
        match props.headers() {
            None => vec!["no headers".to_string()],
            Some(h) => h
                .inner()
                .iter()
                .map(|(k, v)| format!("{k} = {}", self.value(v)))
                .collect(),
        }
    }
}

fn death_reason(props: &BasicProperties) -> Option<String> {
    let headers = props.headers().as_ref()?;
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(first) = deaths.as_slice().first()? else {
        return None;
    };
    match first.inner().get("reason")? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Naming and ownership
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_named_queue_is_remembered_by_the_channel() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let x = common::unique("srvnamed-x");
        declare_exchange(&ch, &x, ExchangeKind::Direct).await;
        let q = declare_exclusive_queue(&ch, "").await;
        let name = q.name().to_string();
        t.push(format!(
            "name starts with amq.gen-: {}",
            name.starts_with("amq.gen-")
        ));
        t.push(format!("name length: {}", name.len()));
        t.push(format!(
            "bind \"\": {}",
            outcome(
                &ch.queue_bind(
                    "".into(),
                    x.as_str().into(),
                    "k".into(),
                    QueueBindOptions::default(),
                    FieldTable::default()
                )
                .await
            )
        ));
        publish_with(&ch, &x, "k", "m1", BasicProperties::default(), false).await;
        publish_with(&ch, &x, "k", "m2", BasicProperties::default(), false).await;
        let purged = ch
            .queue_purge("".into(), QueuePurgeOptions::default())
            .await;
        t.push(format!("purge \"\": {:?}", purged.map_err(|e| code(&e))));
        publish_with(&ch, &x, "k", "m3", BasicProperties::default(), false).await;
        let mut consumer = consume(&ch, "", "", true).await;
        let d = next(&mut consumer, Duration::from_secs(2)).await.ok();
        t.push(format!("consumer on \"\" got {:?}", d.map(|d| body(&d))));
        // A channel that never declared a queue has nothing to remember.
        let other = channel(&conn).await;
        let r = other
            .queue_bind(
                "".into(),
                x.as_str().into(),
                "k".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await;
        t.push(format!("bind \"\" on a fresh channel: {}", outcome(&r)));
        drop(consumer);
        cleanup(&conn, &[&name], &[&x]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "name starts with amq.gen-: true",
            "bind \"\": ok",
            "purge \"\": Ok(2)",
            "consumer on \"\" got Some(\"m3\")",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_queue_is_locked_to_its_connection() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let owner = connect(&url).await;
        let other = connect(&url).await;
        let q = common::unique("exclusive-q");
        let x = common::unique("exclusive-x");
        let och = channel(&owner).await;
        declare_exclusive_queue(&och, &q).await;
        declare_exchange(&och, &x, ExchangeKind::Fanout).await;
        t.push(format!(
            "owner passive declare: {}",
            inspect_queue(&owner, &q).await
        ));
        t.push(format!(
            "other passive declare: {}",
            inspect_queue(&other, &q).await
        ));
        let ch = channel(&other).await;
        let r = ch
            .basic_consume(
                q.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await;
        t.push(format!("other consume: {}", outcome(&r)));
        let ch = channel(&other).await;
        let r = ch
            .basic_get(q.as_str().into(), BasicGetOptions::default())
            .await;
        t.push(format!("other get: {}", outcome(&r)));
        let ch = channel(&other).await;
        let r = ch
            .queue_bind(
                q.as_str().into(),
                x.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await;
        t.push(format!("other bind: {}", outcome(&r)));
        let ch = channel(&other).await;
        let r = ch
            .queue_purge(q.as_str().into(), QueuePurgeOptions::default())
            .await;
        t.push(format!("other purge: {}", outcome(&r)));
        let ch = channel(&other).await;
        let r = ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
        t.push(format!("other delete: {}", outcome(&r)));
        let ch = channel(&other).await;
        let r = ch
            .queue_declare(
                q.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await;
        t.push(format!("other redeclare non-exclusive: {}", outcome(&r)));
        // Publishing to someone else's exclusive queue is allowed.
        let ch = channel(&other).await;
        t.push(format!(
            "other publish: {}",
            send(&ch, &q, "from-other").await
        ));
        t.push(format!("owner got {:?}", drain(&och, &q).await));
        let _ = other.close(200, "OK".into()).await;
        cleanup(&owner, &[&q], &[&x]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "owner passive declare: ok messages=0 consumers=0",
            "other passive declare: 405 RESOURCE-LOCKED",
            "other consume: 405 RESOURCE-LOCKED",
            "other get: 405 RESOURCE-LOCKED",
            r#"owner got ["from-other"]"#,
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_queue_is_deleted_when_its_connection_closes() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let owner = connect(&url).await;
        let watcher = connect(&url).await;
        let q = common::unique("exclusive-close-q");
        let och = channel(&owner).await;
        declare_exclusive_queue(&och, &q).await;
        send(&och, &q, "m").await;
        t.push(format!("owner sees: {}", inspect_queue(&owner, &q).await));
        // Closing just the channel keeps the queue; closing the connection removes it.
        och.close(200, "OK".into()).await.expect("channel.close");
        t.push(format!(
            "after channel close: {}",
            inspect_queue(&owner, &q).await
        ));
        owner
            .close(200, "OK".into())
            .await
            .expect("connection.close");
        t.push(format!(
            "after connection close: {}",
            gone_within(&watcher, &q, Duration::from_millis(1000)).await
        ));
        cleanup(&watcher, &[&q], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "owner sees: ok messages=1 consumers=0",
            "after channel close: ok messages=1 consumers=0",
            "after connection close: 404 NOT-FOUND",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_delete_queue_goes_with_its_last_consumer() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("autodel-q");
        let q2 = common::unique("autodel-q2");
        let ad = QueueDeclareOptions {
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        ch.queue_declare(q.as_str().into(), ad, FieldTable::default())
            .await
            .expect("declare auto-delete");
        t.push(format!(
            "before any consumer: {}",
            inspect_queue(&conn, &q).await
        ));
        let c1 = consume(&ch, &q, "c1", false).await;
        let c2 = consume(&ch, &q, "c2", false).await;
        t.push(format!(
            "with two consumers: {}",
            inspect_queue(&conn, &q).await
        ));
        ch.basic_cancel("c1".into(), BasicCancelOptions::default())
            .await
            .expect("cancel c1");
        t.push(format!(
            "after first cancel: {}",
            inspect_queue(&conn, &q).await
        ));
        ch.basic_cancel("c2".into(), BasicCancelOptions::default())
            .await
            .expect("cancel c2");
        t.push(format!(
            "after last cancel: {}",
            gone_within(&conn, &q, Duration::from_millis(1000)).await
        ));
        drop((c1, c2));
        // A consumer that goes away with its channel counts as cancelled too.
        ch.queue_declare(q2.as_str().into(), ad, FieldTable::default())
            .await
            .expect("declare auto-delete 2");
        let ch2 = channel(&conn).await;
        let c3 = consume(&ch2, &q2, "c3", false).await;
        t.push(format!(
            "second queue with consumer: {}",
            inspect_queue(&conn, &q2).await
        ));
        ch2.close(200, "OK".into()).await.expect("channel.close");
        t.push(format!(
            "second queue after consumer channel closed: {}",
            gone_within(&conn, &q2, Duration::from_millis(1000)).await
        ));
        drop(c3);
        cleanup(&conn, &[&q, &q2], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "before any consumer: ok messages=0 consumers=0",
            "after first cancel: ok messages=0 consumers=1",
            "after last cancel: 404 NOT-FOUND",
            "second queue after consumer channel closed: 404 NOT-FOUND",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Declare, delete, purge
// ---------------------------------------------------------------------------------------------

/// A classic queue is classic whether its declare says `x-queue-type: classic` or names no
/// type: a redeclare may add or leave out the word. Another type is never equivalent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classic_queue_is_classic_with_or_without_its_type_named() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let classic = || table(&[("x-queue-type", text("classic"))]);
        let quorum = || table(&[("x-queue-type", text("quorum"))]);
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        let untyped = common::unique("untyped-q");
        let typed = common::unique("typed-q");
        let transient = common::unique("transient-q");
        let quorum_q = common::unique("quorum-q");
        let ch = channel(&conn).await;
        for (q, options, args) in [
            (&untyped, durable, FieldTable::default()),
            (&typed, durable, classic()),
            (
                &transient,
                QueueDeclareOptions::default(),
                FieldTable::default(),
            ),
            (&quorum_q, durable, quorum()),
        ] {
            ch.queue_declare(q.as_str().into(), options, args)
                .await
                .expect("declared");
        }
        let cases: Vec<(&str, &String, QueueDeclareOptions, FieldTable)> = vec![
            ("untyped, then classic", &untyped, durable, classic()),
            (
                "typed, then untyped",
                &typed,
                durable,
                FieldTable::default(),
            ),
            (
                "transient untyped, then classic",
                &transient,
                QueueDeclareOptions::default(),
                classic(),
            ),
            ("untyped, then quorum", &untyped, durable, quorum()),
            ("typed, then quorum", &typed, durable, quorum()),
            (
                "quorum, then untyped",
                &quorum_q,
                durable,
                FieldTable::default(),
            ),
            ("quorum, then classic", &quorum_q, durable, classic()),
        ];
        for (label, q, options, args) in cases {
            let ch = channel(&conn).await;
            let r = ch.queue_declare(q.as_str().into(), options, args).await;
            t.push(format!("{label}: {}", outcome(&r)));
        }
        cleanup(&conn, &[&untyped, &typed, &transient, &quorum_q], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "untyped, then classic: ok",
            "typed, then untyped: ok",
            "transient untyped, then classic: ok",
            "untyped, then quorum: 406 PRECONDITION-FAILED (PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '<name>' in vhost '/': received the value 'quorum' of type 'longstr' but current is none)",
            "typed, then quorum: 406 PRECONDITION-FAILED (PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '<name>' in vhost '/': received 'quorum' but current is 'classic')",
            "quorum, then untyped: 406 PRECONDITION-FAILED (PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '<name>' in vhost '/': received none but current is the value 'quorum' of type 'longstr')",
            "quorum, then classic: 406 PRECONDITION-FAILED (PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '<name>' in vhost '/': received 'classic' but current is 'quorum')",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_redeclare_must_be_equivalent() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let q = common::unique("redeclare-q");
        let ttl = |v: i32| table(&[("x-message-ttl", int(v))]);
        let ch = channel(&conn).await;
        declare_queue_with(&ch, &q, ttl(1000)).await;
        let cases: Vec<(&str, QueueDeclareOptions, FieldTable)> = vec![
            ("same arguments", QueueDeclareOptions::default(), ttl(1000)),
            ("other ttl", QueueDeclareOptions::default(), ttl(2000)),
            (
                "no arguments",
                QueueDeclareOptions::default(),
                FieldTable::default(),
            ),
            (
                "same ttl as a 64-bit int",
                QueueDeclareOptions::default(),
                table(&[("x-message-ttl", AMQPValue::LongLongInt(1000))]),
            ),
            (
                "extra x-max-length",
                QueueDeclareOptions::default(),
                table(&[("x-message-ttl", int(1000)), ("x-max-length", int(5))]),
            ),
            (
                "extra non-x argument",
                QueueDeclareOptions::default(),
                table(&[("x-message-ttl", int(1000)), ("note", text("hi"))]),
            ),
            (
                "durable",
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                ttl(1000),
            ),
            (
                "auto-delete",
                QueueDeclareOptions {
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                ttl(1000),
            ),
            (
                "passive with other arguments",
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                ttl(5),
            ),
        ];
        for (label, options, args) in cases {
            let ch = channel(&conn).await;
            let r = ch.queue_declare(q.as_str().into(), options, args).await;
            t.push(format!("{label}: {}", outcome(&r)));
        }
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "same arguments: ok",
            "other ttl: 406 PRECONDITION-FAILED",
            "durable: 406 PRECONDITION-FAILED",
            "passive with other arguments: ok",
        ],
    );
}

/// Each refused or accepted queue.declare, then an ordinary declare on a fresh channel to show
/// the connection carries on. The texts are RabbitMQ's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_declare_refuses_arguments_as_rabbitmq_does() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let plain = QueueDeclareOptions::default();
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        let with = |options: QueueDeclareOptions, exclusive: bool, auto_delete: bool| {
            QueueDeclareOptions {
                exclusive,
                auto_delete,
                ..options
            }
        };
        let long = AMQPValue::LongLongInt;
        let quorum = || ("x-queue-type", text("quorum"));
        let stream = || ("x-queue-type", text("stream"));
        let cases: Vec<(&str, QueueDeclareOptions, FieldTable)> = vec![
            (
                "type bogus",
                durable,
                table(&[("x-queue-type", text("bogus"))]),
            ),
            (
                "type not a string",
                durable,
                table(&[("x-queue-type", int(5))]),
            ),
            (
                "type classic",
                plain,
                table(&[("x-queue-type", text("classic"))]),
            ),
            ("quorum durable", durable, table(&[quorum()])),
            ("quorum non-durable", plain, table(&[quorum()])),
            (
                "quorum exclusive",
                with(durable, true, false),
                table(&[quorum()]),
            ),
            (
                "quorum auto-delete",
                with(durable, false, true),
                table(&[quorum()]),
            ),
            (
                "quorum non-durable exclusive",
                with(plain, true, false),
                table(&[quorum()]),
            ),
            (
                "quorum exclusive auto-delete",
                with(durable, true, true),
                table(&[quorum()]),
            ),
            (
                "quorum non-durable with a bad ttl",
                plain,
                table(&[quorum(), ("x-message-ttl", int(-1))]),
            ),
            ("stream durable", durable, table(&[stream()])),
            ("stream non-durable", plain, table(&[stream()])),
            (
                "stream exclusive",
                with(durable, true, false),
                table(&[stream()]),
            ),
            (
                "stream auto-delete",
                with(durable, false, true),
                table(&[stream()]),
            ),
            (
                "bogus type with a bad ttl",
                plain,
                table(&[("x-message-ttl", int(-1)), ("x-queue-type", text("bogus"))]),
            ),
            (
                "ttl 2^40",
                plain,
                table(&[("x-message-ttl", long(1 << 40))]),
            ),
            (
                "ttl ten years",
                plain,
                table(&[("x-message-ttl", long(315_360_000_000))]),
            ),
            (
                "ttl ten years + 1",
                plain,
                table(&[("x-message-ttl", long(315_360_000_001))]),
            ),
            ("ttl negative", plain, table(&[("x-message-ttl", int(-1))])),
            ("ttl string", plain, table(&[("x-message-ttl", text("5"))])),
            (
                "ttl decimal",
                plain,
                table(&[(
                    "x-message-ttl",
                    AMQPValue::DecimalValue(DecimalValue {
                        scale: 1,
                        value: 15,
                    }),
                )]),
            ),
            (
                "ttl bool",
                plain,
                table(&[("x-message-ttl", AMQPValue::Boolean(true))]),
            ),
            ("expires 0", plain, table(&[("x-expires", int(0))])),
            ("expires negative", plain, table(&[("x-expires", int(-1))])),
            ("expires string", plain, table(&[("x-expires", text("5"))])),
            (
                "expires 2^40",
                plain,
                table(&[("x-expires", long(1 << 40))]),
            ),
            (
                "max-length negative",
                plain,
                table(&[("x-max-length", int(-1))]),
            ),
            (
                "max-length string",
                plain,
                table(&[("x-max-length", text("5"))]),
            ),
            (
                "max-length 2^40",
                plain,
                table(&[("x-max-length", long(1 << 40))]),
            ),
            (
                "max-length-bytes negative",
                plain,
                table(&[("x-max-length-bytes", int(-1))]),
            ),
            (
                "max-length-bytes string",
                plain,
                table(&[("x-max-length-bytes", text("5"))]),
            ),
            (
                "max-priority 300",
                plain,
                table(&[("x-max-priority", int(300))]),
            ),
            (
                "max-priority 256",
                plain,
                table(&[("x-max-priority", int(256))]),
            ),
            (
                "max-priority 255",
                plain,
                table(&[("x-max-priority", int(255))]),
            ),
            (
                "max-priority negative",
                plain,
                table(&[("x-max-priority", int(-1))]),
            ),
            (
                "max-priority string",
                plain,
                table(&[("x-max-priority", text("5"))]),
            ),
            (
                "overflow bogus",
                plain,
                table(&[("x-overflow", text("bogus"))]),
            ),
            (
                "overflow not a string",
                plain,
                table(&[("x-overflow", int(5))]),
            ),
            (
                "queue mode bogus",
                plain,
                table(&[("x-queue-mode", text("bogus"))]),
            ),
            (
                "queue mode lazy",
                plain,
                table(&[("x-queue-mode", text("lazy"))]),
            ),
            (
                "dead-letter exchange not a string",
                plain,
                table(&[("x-dead-letter-exchange", int(5))]),
            ),
            (
                "dead-letter routing key not a string",
                plain,
                table(&[
                    ("x-dead-letter-exchange", text("")),
                    ("x-dead-letter-routing-key", int(5)),
                ]),
            ),
            (
                "dead-letter routing key without exchange",
                plain,
                table(&[("x-dead-letter-routing-key", text("k"))]),
            ),
            (
                "expires and ttl both negative",
                plain,
                table(&[("x-message-ttl", int(-1)), ("x-expires", int(-1))]),
            ),
            (
                "priority too high and overflow bogus",
                plain,
                table(&[("x-overflow", text("x")), ("x-max-priority", int(300))]),
            ),
        ];
        let mut created = Vec::new();
        for (label, options, args) in cases {
            let q = common::unique("qargs");
            let ch = channel(&conn).await;
            let r = ch.queue_declare(q.as_str().into(), options, args).await;
            t.push(format!("{label}: {}", outcome(&r)));
            if r.is_ok() {
                created.push(q);
            }
            let after = common::unique("qargs-after");
            let ch = channel(&conn).await;
            let r = ch
                .queue_declare(
                    after.as_str().into(),
                    QueueDeclareOptions::default(),
                    FieldTable::default(),
                )
                .await;
            t.push(format!("  then a plain declare: {}", outcome(&r)));
            created.push(after);
        }
        let names: Vec<&str> = created.iter().map(String::as_str).collect();
        cleanup(&conn, &names, &[]).await;
        t
    })
    .await;
    let invalid = |arg: &str, why: &str| {
        format!("406 PRECONDITION-FAILED (PRECONDITION_FAILED - invalid arg '{arg}' for queue '<name>' in vhost '/': {why})")
    };
    let property = |p: &str| {
        format!("406 PRECONDITION-FAILED (PRECONDITION_FAILED - invalid property '{p}' for queue '<name>' in vhost '/')")
    };
    assert_has(
        &t,
        &[
            &format!(
                "type bogus: {}",
                invalid("x-queue-type", "\"unsupported queue type 'bogus'\"")
            ),
            "quorum durable: ok",
            "stream durable: ok",
            &format!("quorum non-durable: {}", property("non-durable")),
            &format!("quorum exclusive: {}", property("exclusive-owner")),
            &format!("stream auto-delete: {}", property("auto-delete")),
            &format!(
                "ttl 2^40: {}",
                invalid("x-message-ttl", "{value_too_large,1099511627776}")
            ),
            &format!(
                "max-priority 300: {}",
                invalid("x-max-priority", "{max_value_exceeded,300}")
            ),
            &format!("expires 0: {}", invalid("x-expires", "{value_zero,0}")),
            &format!(
                "ttl string: {}",
                invalid("x-message-ttl", "\"expected integer, got longstr\"")
            ),
            &format!(
                "overflow bogus: {}",
                invalid("x-overflow", "invalid_overflow")
            ),
            "max-priority 255: ok",
        ],
    );
    assert!(
        t.iter()
            .filter(|l| l.starts_with("  then"))
            .all(|l| l.ends_with(": ok")),
        "a refused declare must close only its channel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_delete_if_empty_and_if_unused() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let q = common::unique("ifempty-q");
        let ch = channel(&conn).await;
        declare_queue(&ch, &q).await;
        send(&ch, &q, "m1").await;
        send(&ch, &q, "m2").await;
        let if_empty = QueueDeleteOptions {
            if_empty: true,
            ..QueueDeleteOptions::default()
        };
        let if_unused = QueueDeleteOptions {
            if_unused: true,
            ..QueueDeleteOptions::default()
        };
        let r = ch.queue_delete(q.as_str().into(), if_empty).await;
        t.push(format!("if-empty with 2 messages: {}", outcome(&r)));
        let ch = channel(&conn).await;
        let r = ch.queue_delete(q.as_str().into(), if_unused).await;
        t.push(format!(
            "if-unused without consumers: {:?}",
            r.map_err(|e| code(&e))
        ));
        t.push(format!(
            "after if-unused delete: {}",
            inspect_queue(&conn, &q).await
        ));
        declare_queue(&ch, &q).await;
        let consumer = consume(&ch, &q, "c", false).await;
        let other = channel(&conn).await;
        let r = other.queue_delete(q.as_str().into(), if_unused).await;
        t.push(format!("if-unused with a consumer: {}", outcome(&r)));
        let other = channel(&conn).await;
        let r = other.queue_delete(q.as_str().into(), if_empty).await;
        t.push(format!(
            "if-empty with a consumer and no messages: {:?}",
            r.map_err(|e| code(&e))
        ));
        drop(consumer);
        let missing = common::unique("ifempty-missing");
        let r = other
            .queue_delete(missing.as_str().into(), QueueDeleteOptions::default())
            .await;
        t.push(format!(
            "delete a missing queue: {:?}",
            r.map_err(|e| code(&e))
        ));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "if-empty with 2 messages: 406 PRECONDITION-FAILED",
            "if-unused without consumers: Ok(2)",
            "if-unused with a consumer: 406 PRECONDITION-FAILED",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_purge_returns_the_ready_count() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let q = common::unique("purge-q");
        let ch = channel(&conn).await;
        declare_queue(&ch, &q).await;
        for body in ["m1", "m2", "m3", "m4"] {
            send(&ch, &q, body).await;
        }
        // One message is out unacked: purge leaves it alone.
        let held = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .expect("get")
            .expect("a message");
        let r = ch
            .queue_purge(q.as_str().into(), QueuePurgeOptions::default())
            .await;
        t.push(format!(
            "purge with one unacked: {:?}",
            r.map_err(|e| code(&e))
        ));
        let r = ch
            .queue_purge(q.as_str().into(), QueuePurgeOptions::default())
            .await;
        t.push(format!("purge again: {:?}", r.map_err(|e| code(&e))));
        held.delivery
            .nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await
            .expect("nack");
        sync(&ch).await;
        t.push(format!("after requeue: {}", inspect_queue(&conn, &q).await));
        t.push(format!("left {:?}", drain(&ch, &q).await));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "purge with one unacked: Ok(3)",
            "purge again: Ok(0)",
            r#"left ["m1"]"#,
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declare_ok_reports_ready_messages_and_consumers() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let q = common::unique("counts-q");
        let ch = channel(&conn).await;
        let d = declare_queue(&ch, &q).await;
        t.push(format!(
            "fresh: messages={} consumers={}",
            d.message_count(),
            d.consumer_count()
        ));
        for body in ["m1", "m2", "m3"] {
            send(&ch, &q, body).await;
        }
        let d = declare_queue(&ch, &q).await;
        t.push(format!(
            "after 3 publishes: messages={} consumers={}",
            d.message_count(),
            d.consumer_count()
        ));
        let cch = channel(&conn).await;
        cch.basic_qos(1, BasicQosOptions::default())
            .await
            .expect("qos");
        let mut consumer = consume(&cch, &q, "c", false).await;
        let first = next(&mut consumer, Duration::from_secs(2))
            .await
            .expect("a delivery");
        t.push(format!("consumer holds {}", body(&first)));
        t.push(format!(
            "with one unacked: {}",
            inspect_queue(&conn, &q).await
        ));
        first.ack(Default::default()).await.expect("ack");
        let second = next(&mut consumer, Duration::from_secs(2))
            .await
            .expect("a delivery");
        t.push(format!("consumer holds {}", body(&second)));
        t.push(format!("after one ack: {}", inspect_queue(&conn, &q).await));
        cch.close(200, "OK".into()).await.expect("channel.close");
        t.push(format!(
            "after consumer channel closed: {}",
            inspect_queue(&conn, &q).await
        ));
        drop(consumer);
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "fresh: messages=0 consumers=0",
            "after 3 publishes: messages=3 consumers=0",
            "with one unacked: ok messages=2 consumers=1",
            "after one ack: ok messages=1 consumers=1",
            "after consumer channel closed: ok messages=2 consumers=0",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_ttl_expires_and_dead_letters_as_expired() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("ttl-q");
        let dlx = common::unique("ttl-dlx");
        let dlq = common::unique("ttl-dlq");
        let labels = Labels::new(&[(&q, "q"), (&dlx, "dlx"), (&dlq, "dlq")]);
        declare_dead_letter_target(&ch, &dlx, &dlq).await;
        declare_queue_with(
            &ch,
            &q,
            table(&[
                ("x-message-ttl", int(150)),
                ("x-dead-letter-exchange", text(&dlx)),
            ]),
        )
        .await;
        send(&ch, &q, "early").await;
        t.push(format!("right away: {}", inspect_queue(&conn, &q).await));
        tokio::time::sleep(Duration::from_millis(400)).await;
        send(&ch, &q, "late").await;
        t.push(format!("after the ttl: {}", inspect_queue(&conn, &q).await));
        t.push(format!("q got {:?}", drain(&ch, &q).await));
        match get_within(&ch, &dlq, true, DEAD_LETTER_WAIT).await {
            Some(m) => {
                t.push(format!("dlq got {}", body(&m.delivery)));
                t.push(format!(
                    "dead-lettered via exchange {} key {:?}",
                    labels.of(m.delivery.exchange.as_str()),
                    labels.of(m.delivery.routing_key.as_str())
                ));
                t.push(format!(
                    "expiration property: {:?}",
                    m.delivery.properties.expiration()
                ));
                t.extend(labels.headers(&m.delivery.properties));
            }
            None => t.push("dlq empty".to_string()),
        }
        cleanup(&conn, &[&q, &dlq], &[&dlx]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "right away: ok messages=1 consumers=0",
            r#"q got ["late"]"#,
            "dlq got early",
            r#"x-first-death-reason = "expired""#,
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_message_expiration() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("expiration-q");
        let q_head = common::unique("expiration-head-q");
        declare_queue(&ch, &q).await;
        declare_queue(&ch, &q_head).await;
        let exp = |ms: &str| BasicProperties::default().with_expiration(ms.into());
        for (body, props) in [
            ("short", exp("100")),
            ("long", exp("60000")),
            ("none", BasicProperties::default()),
            ("zero", exp("0")),
        ] {
            t.push(format!(
                "publish {body}: {}",
                publish_with(&ch, "", &q, body, props, false).await
            ));
        }
        // An expired message behind a live one is only dropped once it reaches the head.
        publish_with(&ch, "", &q_head, "head-long", exp("60000"), false).await;
        publish_with(&ch, "", &q_head, "behind-short", exp("100"), false).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        t.push(format!("q after 300ms: {}", inspect_queue(&conn, &q).await));
        t.push(format!(
            "q_head after 300ms: {}",
            inspect_queue(&conn, &q_head).await
        ));
        let m = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("get")
            .expect("message");
        t.push(format!(
            "first live message {} keeps expiration {:?}",
            body(&m.delivery),
            m.delivery
                .properties
                .expiration()
                .as_ref()
                .map(|s| s.to_string())
        ));
        t.push(format!("q rest {:?}", drain(&ch, &q).await));
        t.push(format!("q_head got {:?}", drain(&ch, &q_head).await));
        let r = publish_with(&ch, "", &q, "bad", exp("soon"), false).await;
        t.push(format!("publish with expiration \"soon\": {r}"));
        let ch = channel(&conn).await;
        let r = publish_with(&ch, "", &q, "negative", exp("-5"), false).await;
        t.push(format!("publish with expiration \"-5\": {r}"));
        cleanup(&conn, &[&q, &q_head], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            r#"first live message long keeps expiration Some("60000")"#,
            r#"q rest ["none"]"#,
            r#"q_head got ["head-long"]"#,
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_expires_when_unused() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let idle = common::unique("expires-idle");
        let busy = common::unique("expires-busy");
        let args = table(&[("x-expires", int(200))]);
        declare_queue_with(&ch, &idle, args.clone()).await;
        declare_queue_with(&ch, &busy, args).await;
        let consumer = consume(&ch, &busy, "c", false).await;
        t.push(format!(
            "idle right away: {}",
            inspect_queue(&conn, &idle).await
        ));
        tokio::time::sleep(Duration::from_millis(450)).await;
        t.push(format!(
            "idle after 450ms: {}",
            gone_within(&conn, &idle, Duration::from_millis(600)).await
        ));
        t.push(format!(
            "busy (has a consumer) after 450ms: {}",
            inspect_queue(&conn, &busy).await
        ));
        drop(consumer);
        cleanup(&conn, &[&idle, &busy], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "idle right away: ok messages=0 consumers=0",
            "idle after 450ms: 404 NOT-FOUND",
            "busy (has a consumer) after 450ms: ok messages=0 consumers=1",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Length limits
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_length_drop_head_drops_the_oldest() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("maxlen-q");
        declare_queue_with(&ch, &q, table(&[("x-max-length", int(2))])).await;
        for body in ["m1", "m2", "m3", "m4"] {
            t.push(format!("publish {body}: {}", send(&ch, &q, body).await));
        }
        t.push(format!("queue: {}", inspect_queue(&conn, &q).await));
        t.push(format!("q got {:?}", drain(&ch, &q).await));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &["queue: ok messages=2 consumers=0", r#"q got ["m3", "m4"]"#],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_length_reject_publish_nacks_the_publisher() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("rejectpub-q");
        let dlx = common::unique("rejectpub-dlx");
        let dlq = common::unique("rejectpub-dlq");
        declare_dead_letter_target(&ch, &dlx, &dlq).await;
        declare_queue_with(
            &ch,
            &q,
            table(&[
                ("x-max-length", int(2)),
                ("x-overflow", text("reject-publish")),
                ("x-dead-letter-exchange", text(&dlx)),
            ]),
        )
        .await;
        for body in ["m1", "m2", "m3", "m4"] {
            t.push(format!("publish {body}: {}", send(&ch, &q, body).await));
        }
        t.push(format!("q got {:?}", drain(&ch, &q).await));
        t.push(format!(
            "publish after draining: {}",
            send(&ch, &q, "m5").await
        ));
        t.push(format!("q got {:?}", drain(&ch, &q).await));
        tokio::time::sleep(Duration::from_millis(100)).await;
        t.push(format!("dlq got {:?}", drain(&ch, &dlq).await));
        cleanup(&conn, &[&q, &dlq], &[&dlx]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "publish m2: ack",
            "publish m3: nack",
            r#"q got ["m1", "m2"]"#,
            r#"q got ["m5"]"#,
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_length_dead_letters_dropped_heads_as_maxlen() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("maxlen-dlx-q");
        let dlx = common::unique("maxlen-dlx");
        let dlq = common::unique("maxlen-dlq");
        let labels = Labels::new(&[(&q, "q"), (&dlx, "dlx"), (&dlq, "dlq")]);
        declare_dead_letter_target(&ch, &dlx, &dlq).await;
        declare_queue_with(
            &ch,
            &q,
            table(&[
                ("x-max-length", int(1)),
                ("x-dead-letter-exchange", text(&dlx)),
            ]),
        )
        .await;
        send(&ch, &q, "first").await;
        send(&ch, &q, "second").await;
        t.push(format!("q got {:?}", drain(&ch, &q).await));
        match get_within(&ch, &dlq, true, DEAD_LETTER_WAIT).await {
            Some(m) => {
                t.push(format!("dlq got {}", body(&m.delivery)));
                t.push(format!(
                    "dead-lettered via exchange {} key {:?}",
                    labels.of(m.delivery.exchange.as_str()),
                    labels.of(m.delivery.routing_key.as_str())
                ));
                t.extend(labels.headers(&m.delivery.properties));
            }
            None => t.push("dlq empty".to_string()),
        }
        cleanup(&conn, &[&q, &dlq], &[&dlx]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            r#"q got ["second"]"#,
            "dlq got first",
            r#"x-first-death-reason = "maxlen""#,
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_length_bytes_counts_body_bytes() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("maxbytes-q");
        let q_reject = common::unique("maxbytes-reject-q");
        declare_queue_with(&ch, &q, table(&[("x-max-length-bytes", int(10))])).await;
        declare_queue_with(
            &ch,
            &q_reject,
            table(&[
                ("x-max-length-bytes", int(10)),
                ("x-overflow", text("reject-publish")),
            ]),
        )
        .await;
        // Headers and properties do not count, only the body.
        let props = BasicProperties::default().with_headers(table(&[(
            "padding",
            text("a long header value that is not counted"),
        )]));
        for body in ["aaaaa", "bbbbb", "ccccc", "dddddddddddd", "e"] {
            t.push(format!(
                "publish {body} to drop-head: {}",
                publish_with(&ch, "", &q, body, props.clone(), false).await
            ));
            t.push(format!(
                "publish {body} to reject-publish: {}",
                publish_with(&ch, "", &q_reject, body, props.clone(), false).await
            ));
        }
        t.push(format!("drop-head q got {:?}", drain(&ch, &q).await));
        t.push(format!(
            "reject-publish q got {:?}",
            drain(&ch, &q_reject).await
        ));
        cleanup(&conn, &[&q, &q_reject], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "publish ccccc to reject-publish: nack",
            r#"reject-publish q got ["aaaaa", "bbbbb"]"#,
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Dead-lettering
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_and_nack_dead_letter_with_routing_key_and_x_death() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let x = common::unique("dl-x");
        let q = common::unique("dl-q");
        let dlx = common::unique("dl-dlx");
        let dlq = common::unique("dl-dlq");
        let labels = Labels::new(&[(&x, "x"), (&q, "q"), (&dlx, "dlx"), (&dlq, "dlq")]);
        declare_exchange(&ch, &x, ExchangeKind::Topic).await;
        declare_exchange(&ch, &dlx, ExchangeKind::Direct).await;
        declare_queue(&ch, &dlq).await;
        bind(&ch, &dlq, &dlx, "dead").await;
        declare_queue_with(
            &ch,
            &q,
            table(&[
                ("x-dead-letter-exchange", text(&dlx)),
                ("x-dead-letter-routing-key", text("dead")),
            ]),
        )
        .await;
        bind(&ch, &q, &x, "orig.#").await;
        let props = BasicProperties::default()
            .with_headers(table(&[("app", text("kept"))]))
            .with_message_id("mid".into())
            .with_expiration("60000".into());
        for body in ["to-reject", "to-nack", "to-requeue"] {
            publish_with(&ch, &x, "orig.key", body, props.clone(), false).await;
        }
        let m = get(&ch, &q).await.expect("a message");
        m.delivery
            .reject(BasicRejectOptions { requeue: false })
            .await
            .expect("reject");
        let m = get(&ch, &q).await.expect("a message");
        m.delivery
            .nack(BasicNackOptions {
                requeue: false,
                multiple: false,
            })
            .await
            .expect("nack");
        // Requeueing is not dead-lettering.
        let m = get(&ch, &q).await.expect("a message");
        m.delivery
            .reject(BasicRejectOptions { requeue: true })
            .await
            .expect("reject requeue");
        t.push(format!("q still has {:?}", drain(&ch, &q).await));
        while let Some(m) = get_within(&ch, &dlq, true, Duration::from_millis(300)).await {
            t.push(format!(
                "dlq got {} via exchange {} key {:?} message_id={:?} expiration={:?}",
                body(&m.delivery),
                labels.of(m.delivery.exchange.as_str()),
                labels.of(m.delivery.routing_key.as_str()),
                m.delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|s| s.to_string()),
                m.delivery
                    .properties
                    .expiration()
                    .as_ref()
                    .map(|s| s.to_string()),
            ));
            t.extend(labels.headers(&m.delivery.properties));
        }
        cleanup(&conn, &[&q, &dlq], &[&x, &dlx]).await;
        t
    })
    .await;
    assert_has(&t, &[r#"q still has ["to-requeue"]"#]);
    assert!(
        t.iter()
            .any(|l| l.starts_with(r#"dlq got to-reject via exchange dlx key "dead""#)),
        "{t:#?}"
    );
    assert!(
        t.iter()
            .any(|l| l.starts_with(r#"dlq got to-nack via exchange dlx key "dead""#)),
        "{t:#?}"
    );
    assert_has(
        &t,
        &[
            r#"x-first-death-reason = "rejected""#,
            r#"x-first-death-queue = "q""#,
            r#"x-first-death-exchange = "x""#,
            r#"app = "kept""#,
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_death_counts_repeated_dead_lettering() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("cycle-q");
        let dlq = common::unique("cycle-dlq");
        let labels = Labels::new(&[(&q, "q"), (&dlq, "dlq")]);
        // q dead-letters to dlq and dlq back to q, both through the default exchange.
        declare_queue_with(
            &ch,
            &q,
            table(&[
                ("x-dead-letter-exchange", text("")),
                ("x-dead-letter-routing-key", text(&dlq)),
            ]),
        )
        .await;
        declare_queue_with(
            &ch,
            &dlq,
            table(&[
                ("x-dead-letter-exchange", text("")),
                ("x-dead-letter-routing-key", text(&q)),
            ]),
        )
        .await;
        send(&ch, &q, "bouncer").await;
        let mut hops = Vec::new();
        for (from, label) in [(&q, "q"), (&dlq, "dlq"), (&q, "q")] {
            let m = get_within(&ch, from, false, DEAD_LETTER_WAIT)
                .await
                .expect("message");
            hops.push(format!(
                "reject from {label} (x-death reason on arrival: {:?})",
                death_reason(&m.delivery.properties)
            ));
            m.delivery
                .reject(BasicRejectOptions { requeue: false })
                .await
                .expect("reject");
        }
        t.extend(hops);
        let m = get_within(&ch, &dlq, true, DEAD_LETTER_WAIT)
            .await
            .expect("message after three rejections");
        t.push(format!("finally in dlq: {}", body(&m.delivery)));
        t.extend(labels.headers(&m.delivery.properties));
        cleanup(&conn, &[&q, &dlq], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &["finally in dlq: bouncer", r#"x-first-death-queue = "q""#],
    );
    assert!(
        t.iter()
            .any(|l| l.starts_with("x-death = ") && l.contains("LongLongInt(2)")),
        "{t:#?}"
    );
}

/// Two queues with TTL 0 that dead-letter into each other, each also copying to a catch queue
/// through a fanout dead-letter exchange: the message goes d1 -> d2 and is dropped on its way
/// back to d1 (it already expired there, and no client rejected it since), and both brokers
/// stay up. A queue where a client rejects it breaks the cycle: r -> d3 -> r goes round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_cycle_without_a_reject_ends() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let [d1, d2, x1, x2, c1, c2] =
            ["d1", "d2", "x1", "x2", "c1", "c2"].map(|l| common::unique(&format!("dlcycle-{l}")));
        let labels = Labels::new(&[
            (&d1, "d1"),
            (&d2, "d2"),
            (&x1, "x1"),
            (&x2, "x2"),
            (&c1, "c1"),
            (&c2, "c2"),
        ]);
        for (x, q, c) in [(&x1, &d2, &c1), (&x2, &d1, &c2)] {
            declare_exchange(&ch, x, ExchangeKind::Fanout).await;
            declare_queue(&ch, c).await;
            bind(&ch, c, x, "").await;
            declare_queue_with(
                &ch,
                q,
                table(&[
                    ("x-message-ttl", int(0)),
                    (
                        "x-dead-letter-exchange",
                        text(if x == &x1 { &x2 } else { &x1 }),
                    ),
                ]),
            )
            .await;
            bind(&ch, q, x, "").await;
        }
        send(&ch, &d1, "round").await;
        // d1 expires it into x1 (d2, c1); d2 into x2 (d1: the cycle, and c2).
        for (c, label) in [(&c1, "c1"), (&c2, "c2")] {
            match get_within(&ch, c, true, DEAD_LETTER_WAIT).await {
                Some(m) => {
                    t.push(format!("{label} got {}", body(&m.delivery)));
                    t.extend(
                        labels
                            .headers(&m.delivery.properties)
                            .into_iter()
                            .map(|h| format!("  {h}")),
                    );
                }
                None => t.push(format!("{label} empty")),
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        for (q, label) in [(&d1, "d1"), (&d2, "d2"), (&c1, "c1"), (&c2, "c2")] {
            t.push(format!("{label}: {}", inspect_queue(&conn, q).await));
        }

        // A reject in the loop: r -> d3 (TTL 0) -> r, twice round.
        let r = common::unique("dlcycle-r");
        let d3 = common::unique("dlcycle-d3");
        let labels = Labels::new(&[(&r, "r"), (&d3, "d3")]);
        let dead_letter_to = |q: &str| {
            vec![
                ("x-dead-letter-exchange", text("")),
                ("x-dead-letter-routing-key", text(q)),
            ]
        };
        declare_queue_with(&ch, &r, table(&dead_letter_to(&d3))).await;
        let mut d3_args = dead_letter_to(&r);
        d3_args.push(("x-message-ttl", int(0)));
        declare_queue_with(&ch, &d3, table(&d3_args)).await;
        send(&ch, &r, "bounced").await;
        for round in 1..=3 {
            let Some(m) = get_within(&ch, &r, false, DEAD_LETTER_WAIT).await else {
                t.push(format!("round {round}: r empty"));
                break;
            };
            t.push(format!("round {round}: r got {}", body(&m.delivery)));
            t.extend(
                labels
                    .headers(&m.delivery.properties)
                    .into_iter()
                    .filter(|h| h.starts_with("x-death"))
                    .map(|h| format!("  {h}")),
            );
            m.delivery
                .reject(BasicRejectOptions { requeue: false })
                .await
                .expect("reject");
        }
        cleanup(&conn, &[&d1, &d2, &c1, &c2, &r, &d3], &[&x1, &x2]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "c1 got round",
            "c2 got round",
            "d1: ok messages=0 consumers=0",
            "d2: ok messages=0 consumers=0",
            "c1: ok messages=0 consumers=0",
            "c2: ok messages=0 consumers=0",
            "round 3: r got bounced",
        ],
    );
}

/// Five queues with TTL 0 all dead-letter into one fanout exchange bound to all of them and to
/// a catch queue: every message copies itself to each queue it has not died in yet, so one
/// publish makes one copy per path through the queues (1 + 4 + 12 + 24 + 24 = 65), and then
/// it ends. Both brokers count the same copies with the same histories.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_dead_lettering_ends_after_every_path() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let x = common::unique("dlfan-x");
        let catch = common::unique("dlfan-catch");
        let queues: Vec<String> = (0..5)
            .map(|i| common::unique(&format!("dlfan-q{i}")))
            .collect();
        declare_exchange(&ch, &x, ExchangeKind::Fanout).await;
        declare_queue(&ch, &catch).await;
        bind(&ch, &catch, &x, "").await;
        for q in &queues {
            declare_queue_with(
                &ch,
                q,
                table(&[
                    ("x-message-ttl", int(0)),
                    ("x-dead-letter-exchange", text(&x)),
                ]),
            )
            .await;
            bind(&ch, q, &x, "").await;
        }
        send(&ch, &queues[0], "spread").await;
        // Wait until the count stops moving.
        let mut count = String::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = inspect_queue(&conn, &catch).await;
            if now == count || Instant::now() > deadline {
                break;
            }
            count = now;
        }
        t.push(format!("catch: {count}"));
        // How many copies died in how many queues.
        let mut by_deaths = std::collections::BTreeMap::new();
        for d in take_all(&ch, &catch).await {
            let deaths = match d
                .properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get("x-death").cloned())
            {
                Some(AMQPValue::FieldArray(a)) => a.as_slice().len(),
                _ => 0,
            };
            *by_deaths.entry(deaths).or_insert(0) += 1;
        }
        t.push(format!("copies by queues died in: {by_deaths:?}"));
        for (i, q) in queues.iter().enumerate() {
            t.push(format!("q{i}: {}", inspect_queue(&conn, q).await));
        }
        let names: Vec<&str> = queues.iter().map(|q| q.as_str()).collect();
        cleanup(&conn, &[names.as_slice(), &[&catch]].concat(), &[&x]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "catch: ok messages=65 consumers=0",
            "copies by queues died in: {1: 1, 2: 4, 3: 12, 4: 24, 5: 24}",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Priorities
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_priority_queue_delivers_highest_first() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("priority-q");
        let plain = common::unique("priority-plain-q");
        declare_queue_with(&ch, &q, table(&[("x-max-priority", int(5))])).await;
        declare_queue(&ch, &plain).await;
        let sends: [(&str, Option<u8>); 7] = [
            ("p1", Some(1)),
            ("none-a", None),
            ("p5", Some(5)),
            ("p3", Some(3)),
            ("p9", Some(9)),
            ("p0", Some(0)),
            ("p3b", Some(3)),
        ];
        for (body, priority) in sends {
            let mut props = BasicProperties::default();
            if let Some(p) = priority {
                props = props.with_priority(p);
            }
            publish_with(&ch, "", &q, body, props.clone(), false).await;
            publish_with(&ch, "", &plain, body, props, false).await;
        }
        let order: Vec<String> = take_all(&ch, &q)
            .await
            .iter()
            .map(|d| format!("{}(priority {:?})", body(d), d.properties.priority()))
            .collect();
        t.push(format!("priority queue order {order:?}"));
        t.push(format!("plain queue order {:?}", drain(&ch, &plain).await));
        cleanup(&conn, &[&q, &plain], &[]).await;
        t
    })
    .await;
    assert!(
        t.iter().any(|l| l.starts_with(r#"priority queue order ["p5(priority Some(5))", "p9(priority Some(9))", "p3(priority Some(3))", "p3b"#)),
        "{t:#?}"
    );
    assert_has(
        &t,
        &[r#"plain queue order ["p1", "none-a", "p5", "p3", "p9", "p0", "p3b"]"#],
    );
}
