//! The broker event stream, as a screen sees it: a real lapin client works against the embedded
//! broker and the events must tell what happened (which bindings matched, which queues were
//! reached, deliveries, acks, dead-letters), with connection and channel.
mod common;

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicPublishOptions, BasicRejectOptions};
use lapin::{BasicProperties, ExchangeKind};
use rabbitscope::events::{EventKind, EventReader, PublishFate, Received};

use common::client::{
    bind, channel, connect, consume, declare_exchange, declare_queue, declare_queue_with,
    passive_queue, publish_and_wait, table, text,
};

/// Reads events until `pred` matches one, failing after two seconds.
async fn wait_for(
    reader: &mut EventReader,
    what: &str,
    pred: impl Fn(&EventKind) -> bool,
) -> rabbitscope::events::Event {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match tokio::time::timeout_at(deadline, reader.recv()).await {
            Ok(Received::Event(e)) if pred(&e.kind) => return (*e).clone(),
            Ok(Received::Event(_)) => {}
            Ok(other) => panic!("waiting for {what}: {other:?}"),
            Err(_) => panic!("no event for {what} within 2 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_message_is_followed_from_exchange_to_consumer() {
    let (url, broker) = common::start_embedded().await;
    let mut events = broker.subscribe();
    let conn = connect(&url).await;
    let ch = channel(&conn).await;
    declare_exchange(&ch, "animals", ExchangeKind::Topic).await;
    for (queue, key) in [
        ("Q1", "*.orange.*"),
        ("Q2", "*.*.rabbit"),
        ("Q2", "lazy.#"),
        ("Q3", "quick.#"),
    ] {
        declare_queue(&ch, queue).await;
        bind(&ch, queue, "animals", key).await;
    }
    let declared = wait_for(
        &mut events,
        "exchange declared",
        |k| matches!(k, EventKind::ExchangeDeclared { name, .. } if &**name == "animals"),
    )
    .await;
    assert!(declared.connection.is_some() && declared.channel == Some(1));
    wait_for(
        &mut events,
        "binding",
        |k| matches!(k, EventKind::BindingCreated(b) if &*b.routing_key == "lazy.#"),
    )
    .await;

    publish_and_wait(&ch, "animals", "lazy.orange.rabbit", b"hop").await;
    let published = wait_for(&mut events, "publish", |k| {
        matches!(k, EventKind::Published { .. })
    })
    .await;
    let EventKind::Published {
        message_id,
        exchange,
        routing_key,
        queues,
        matched,
        fate,
        body_preview,
        ..
    } = published.kind
    else {
        unreachable!()
    };
    assert_eq!(
        (&*exchange, &*routing_key),
        ("animals", "lazy.orange.rabbit")
    );
    assert_eq!(fate, PublishFate::Routed);
    assert_eq!(&body_preview[..], b"hop");
    let mut reached: Vec<String> = queues.iter().map(|q| q.to_string()).collect();
    reached.sort();
    // Q2 has two matching bindings but gets the message once; Q3 does not match.
    assert_eq!(reached, ["Q1", "Q2"]);
    let mut keys: Vec<String> = matched
        .iter()
        .map(|b| format!("{}->{}", b.routing_key, b.destination))
        .collect();
    keys.sort();
    assert_eq!(keys, ["*.*.rabbit->Q2", "*.orange.*->Q1", "lazy.#->Q2"]);

    let mut consumer = consume(&ch, "Q1", "watcher", false).await;
    let delivery = consumer.next().await.unwrap().unwrap();
    let delivered = wait_for(&mut events, "delivery", |k| {
        matches!(k, EventKind::Delivered { .. })
    })
    .await;
    assert_eq!(
        delivered.kind,
        EventKind::Delivered {
            message_id,
            queue: "Q1".into(),
            consumer_tag: Some("watcher".into()),
            delivery_tag: delivery.delivery_tag,
            redelivered: false,
            offset: None,
            delivery_count: None,
        }
    );
    delivery.ack(BasicAckOptions::default()).await.unwrap();
    let acked = wait_for(&mut events, "ack", |k| matches!(k, EventKind::Acked { .. })).await;
    assert_eq!(
        acked.kind,
        EventKind::Acked {
            message_id,
            queue: "Q1".into(),
            delivery_tag: delivery.delivery_tag
        }
    );

    publish_and_wait(&ch, "animals", "slow.brown.fox", b"x").await;
    let dropped = wait_for(&mut events, "unroutable publish", |k| {
        matches!(k, EventKind::Published { .. })
    })
    .await;
    assert!(
        matches!(dropped.kind, EventKind::Published { fate: PublishFate::Dropped, ref queues, .. } if queues.is_empty())
    );
    conn.close(200, "bye".into()).await.unwrap();
    wait_for(&mut events, "connection closed", |k| {
        matches!(k, EventKind::ConnectionClosed { .. })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_messages_show_as_dead_lettered() {
    let (url, broker) = common::start_embedded().await;
    let mut events = broker.subscribe();
    let conn = connect(&url).await;
    let ch = conn.create_channel().await.unwrap();
    declare_exchange(&ch, "dlx", ExchangeKind::Fanout).await;
    declare_queue(&ch, "graveyard").await;
    bind(&ch, "graveyard", "dlx", "").await;
    declare_queue_with(
        &ch,
        "work",
        table(&[("x-dead-letter-exchange", text("dlx"))]),
    )
    .await;
    publish_and_wait(&ch, "", "work", b"bad job").await;
    let mut consumer = consume(&ch, "work", "", false).await;
    let delivery = consumer.next().await.unwrap().unwrap();
    delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    let dead = wait_for(&mut events, "dead-letter", |k| {
        matches!(k, EventKind::DeadLettered { .. })
    })
    .await;
    let EventKind::DeadLettered {
        queue,
        reason,
        exchange,
        routing_key,
        ..
    } = dead.kind
    else {
        unreachable!()
    };
    assert_eq!(
        (&*queue, &*exchange, &*routing_key),
        ("work", "dlx", "work")
    );
    assert_eq!(reason.as_str(), "rejected");
    let republished = wait_for(
        &mut events,
        "dead-lettered message routed",
        |k| matches!(k, EventKind::Published { exchange, .. } if &**exchange == "dlx"),
    )
    .await;
    assert!(
        matches!(republished.kind, EventKind::Published { ref queues, .. } if queues.len() == 1 && &*queues[0] == "graveyard")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_falls_behind_is_told_how_much_it_missed() {
    let config = rabbitscope::broker::BrokerConfig {
        event_capacity: 16,
        ..Default::default()
    };
    let (url, broker) = common::start_embedded_with(config).await;
    let mut events = broker.subscribe();
    let conn = connect(&url).await;
    let ch = channel(&conn).await;
    declare_queue(&ch, "q").await;
    for _ in 0..100 {
        ch.basic_publish(
            "".into(),
            "q".into(),
            BasicPublishOptions::default(),
            b"m",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    ch.wait_for_confirms().await.unwrap();
    // The broker kept going (all 100 confirmed) although nobody read; the reader learns the gap.
    let mut missed = 0;
    let mut seen = 0;
    while let Some(r) = events.try_recv() {
        match r {
            Received::Missed(n) => missed += n,
            Received::Event(_) => seen += 1,
            Received::Closed => break,
        }
    }
    assert!(missed > 0, "expected missed events");
    assert!(seen <= 16);
    let declared = passive_queue(&ch, "q").await.unwrap();
    assert_eq!(declared.message_count(), 100);
}

/// Messages in a row share their properties inside the broker; each `Published` event still
/// carries its own message's properties, whether they repeat the last message's or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_published_event_carries_its_own_messages_properties() {
    let (url, broker) = common::start_embedded().await;
    let mut events = broker.subscribe();
    let conn = connect(&url).await;
    let ch = channel(&conn).await;
    declare_queue(&ch, "props").await;
    let json = || BasicProperties::default().with_content_type("application/json".into());
    let sent = [
        json(),
        json(),
        json().with_delivery_mode(2),
        BasicProperties::default(),
        json(),
    ];
    for properties in sent.iter().cloned() {
        ch.basic_publish(
            "".into(),
            "props".into(),
            BasicPublishOptions::default(),
            b"m",
            properties,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < sent.len() {
        let event = wait_for(&mut events, "a published message", |k| {
            matches!(k, EventKind::Published { .. })
        })
        .await;
        let EventKind::Published { properties, .. } = event.kind else {
            unreachable!()
        };
        seen.push(properties.to_vec());
    }
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    let json_only = vec![pair("content_type", "application/json")];
    assert_eq!(
        seen,
        [
            json_only.clone(),
            json_only.clone(),
            vec![
                pair("content_type", "application/json"),
                pair("delivery_mode", "2")
            ],
            vec![],
            json_only,
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_come_whole_up_to_the_cap_and_cut_there_beyond() {
    use rabbitscope::events::BODY_KEPT;
    let (url, broker) = common::start_embedded().await;
    let mut events = broker.subscribe();
    let conn = connect(&url).await;
    let ch = channel(&conn).await;
    declare_queue(&ch, "bodies").await;
    // A Nova-sized body (a few KB, far past the old 256-byte preview), then one past the cap.
    let nova_sized: Vec<u8> = (0..6_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let oversized = vec![b'x'; BODY_KEPT + 10_000];
    for body in [&nova_sized, &oversized] {
        publish_and_wait(&ch, "", "bodies", body).await;
        let published = wait_for(&mut events, "publish", |k| {
            matches!(k, EventKind::Published { .. })
        })
        .await;
        let EventKind::Published {
            body_size,
            body_preview,
            ..
        } = published.kind
        else {
            unreachable!()
        };
        assert_eq!(body_size, body.len());
        let kept = body.len().min(BODY_KEPT);
        assert_eq!(&body_preview[..], &body[..kept]);
    }
}
