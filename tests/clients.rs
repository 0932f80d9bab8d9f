//! The embedded broker names its clients: a connection's `connection_name` and `product` from
//! `connection.start-ok` reach `broker.snapshot()` and the `ConnectionOpened` event; consumers
//! are listed with their channel, ack mode and prefetch; publishes and deliveries carry the
//! connection and channel they happened on. The name of a connection is checked against what
//! RabbitMQ's management API calls the same kind of connection.
mod common;

use std::time::Duration;

use lapin::options::{BasicConsumeOptions, BasicGetOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use rabbitscope::broker::{Broker, ConnectionSnapshot, VhostSnapshot};
use rabbitscope::events::{Event, EventKind, EventReader, Received};

use common::client::{channel, declare_queue, send};

const CONDUCTOR: &str = "nova-conductor:4242:2c6f1e0a-8d3b-4f5e-9a7c-1b2d3e4f5a6b";

/// A lapin connection that says who it is, as oslo.messaging's does.
async fn connect_as(url: &str, name: &str, product: &str) -> Connection {
    // lapin puts its own product in unless both product and version are given.
    let properties = ConnectionProperties::default()
        .with_connection_name(name.into())
        .with_client_property("product".into(), product.into())
        .with_client_property("version".into(), "1.0".into());
    Connection::connect(url, properties).await.expect("connect")
}

fn vhost(broker: &Broker) -> VhostSnapshot {
    broker.snapshot().vhost("/").expect("vhost /").clone()
}

fn connection_named<'a>(v: &'a VhostSnapshot, label: &str) -> &'a ConnectionSnapshot {
    v.connections
        .iter()
        .find(|c| c.label() == label)
        .unwrap_or_else(|| panic!("no connection labelled {label} in {:#?}", v.connections))
}

/// Reads events until `pred` matches one, failing after two seconds.
async fn wait_for(reader: &mut EventReader, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match tokio::time::timeout_at(deadline, reader.recv()).await {
            Ok(Received::Event(e)) if pred(&e) => return (*e).clone(),
            Ok(Received::Event(_)) => {}
            Ok(other) => panic!("waiting for {what}: {other:?}"),
            Err(_) => panic!("no event for {what} within 2 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oslo_named_client_and_its_consumer_are_in_the_snapshot() {
    let (url, broker) = common::start_embedded().await;
    let mut events = broker.subscribe();
    let conductor = connect_as(&url, CONDUCTOR, "py-amqp").await;
    let opened = wait_for(&mut events, "connection opened", |e| {
        matches!(e.kind, EventKind::ConnectionOpened { .. })
    })
    .await;
    let EventKind::ConnectionOpened { client, user, peer } = &opened.kind else {
        unreachable!()
    };
    assert_eq!(client.connection_name.as_deref(), Some(CONDUCTOR));
    assert_eq!(client.product.as_deref(), Some("py-amqp"));
    assert_eq!(&**user, "guest");
    assert!(peer.starts_with("127.0.0.1:"), "{peer}");

    let ch = conductor.create_channel().await.unwrap();
    ch.basic_qos(10, BasicQosOptions::default()).await.unwrap();
    declare_queue(&ch, "conductor").await;
    // Kept: lapin cancels a consumer that is dropped.
    let _worker = ch
        .basic_consume(
            "conductor".into(),
            "conductor-worker".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    // A second client consumes without acks and without a limit.
    let api = connect_as(
        &url,
        "nova-api:77:0e5d2f6a-1b2c-4d3e-8f90-a1b2c3d4e5f6",
        "py-amqp",
    )
    .await;
    let api_ch = api.create_channel().await.unwrap();
    let _tap = api_ch
        .basic_consume(
            "conductor".into(),
            "api-tap".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();

    let v = vhost(&broker);
    let snap = connection_named(&v, "nova-conductor");
    assert_eq!(snap.id, opened.connection.unwrap());
    assert_eq!(snap.client.connection_name.as_deref(), Some(CONDUCTOR));
    assert_eq!(snap.user, "guest");
    assert_eq!(snap.peer, *peer);
    // RabbitMQ's way: the client's address, then the broker's.
    let port = url.rsplit_once(':').unwrap().1.trim_end_matches("/%2f");
    assert_eq!(snap.name, format!("{peer} -> 127.0.0.1:{port}"));
    let api_snap = connection_named(&v, "nova-api");
    let ids: Vec<u64> = v.connections.iter().map(|c| c.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted by id: {ids:?}");

    let consumers: Vec<(&str, &str, u64, u16, bool, u16)> = v
        .consumers
        .iter()
        .map(|c| {
            let (q, t) = (c.queue.as_str(), c.tag.as_str());
            (q, t, c.connection, c.channel, c.ack, c.prefetch)
        })
        .collect();
    assert_eq!(
        consumers,
        [
            ("conductor", "api-tap", api_snap.id, api_ch.id(), false, 0),
            ("conductor", "conductor-worker", snap.id, ch.id(), true, 10),
        ]
    );

    // Gone from the snapshot once closed.
    conductor.close(200, "OK".into()).await.unwrap();
    let closed = |v: &VhostSnapshot| v.connections.iter().all(|c| c.label() != "nova-conductor");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while !closed(&vhost(&broker)) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let v = vhost(&broker);
    assert!(closed(&v), "{:#?}", v.connections);
    assert_eq!(v.consumers.len(), 1, "{:#?}", v.consumers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_prefetch_counts_for_consumers_of_the_channel() {
    let (url, broker) = common::start_embedded().await;
    let conn = connect_as(&url, "worker", "lapin").await;
    let ch = conn.create_channel().await.unwrap();
    declare_queue(&ch, "jobs").await;
    ch.basic_qos(3, BasicQosOptions { global: true })
        .await
        .unwrap();
    let _consumer = ch
        .basic_consume(
            "jobs".into(),
            "w".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let v = vhost(&broker);
    assert_eq!(v.consumers.len(), 1);
    assert_eq!((v.consumers[0].ack, v.consumers[0].prefetch), (true, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_programs_own_connections_are_named_rabbitscope() {
    let (_url, broker) = common::start_embedded().await;
    let (id, _inbox) = broker.open_internal_connection("/", "definitions").unwrap();
    let v = vhost(&broker);
    let c = connection_named(&v, "rabbitscope definitions");
    assert_eq!(c.id, id);
    assert_eq!(c.name, "rabbitscope definitions");
    assert_eq!(c.client.product.as_deref(), Some("rabbitscope"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_and_deliveries_carry_their_connection_and_channel() {
    let (url, broker) = common::start_embedded().await;
    let producer = connect_as(&url, "nova-api:1:0e5d2f6a-1b2c-4d3e-8f90-a1b2c3d4e5f6", "x").await;
    let consumer = connect_as(&url, CONDUCTOR, "x").await;
    let v = vhost(&broker);
    let producer_id = connection_named(&v, "nova-api").id;
    let consumer_id = connection_named(&v, "nova-conductor").id;

    // A publisher channel that is not the first, so channel numbers are told apart.
    let _spare = producer.create_channel().await.unwrap();
    let pub_ch = channel(&producer).await;
    let _spare = consumer.create_channel().await.unwrap();
    let _spare2 = consumer.create_channel().await.unwrap();
    let cons_ch = consumer.create_channel().await.unwrap();
    let get_ch = consumer.create_channel().await.unwrap();
    declare_queue(&cons_ch, "conductor").await;
    declare_queue(&cons_ch, "polled").await;
    let mut events = broker.subscribe();

    let mut deliveries = cons_ch
        .basic_consume(
            "conductor".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    send(&pub_ch, "conductor", "to the consumer").await;
    let published = wait_for(&mut events, "published", |e| {
        matches!(e.kind, EventKind::Published { .. })
    })
    .await;
    assert_eq!(
        (published.connection, published.channel),
        (Some(producer_id), Some(pub_ch.id()))
    );
    let delivered = wait_for(&mut events, "delivered", |e| {
        matches!(e.kind, EventKind::Delivered { .. })
    })
    .await;
    assert_eq!(
        (delivered.connection, delivered.channel),
        (Some(consumer_id), Some(cons_ch.id()))
    );
    use futures_lite::StreamExt;
    tokio::time::timeout(Duration::from_secs(2), deliveries.next())
        .await
        .expect("a delivery")
        .expect("stream open")
        .expect("no error");

    send(&pub_ch, "polled", "to basic.get").await;
    let got = get_ch
        .basic_get("polled".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap();
    assert!(got.is_some());
    let delivered = wait_for(
        &mut events,
        "delivered by basic.get",
        |e| matches!(&e.kind, EventKind::Delivered { queue, .. } if &**queue == "polled"),
    )
    .await;
    assert_eq!(
        (delivered.connection, delivered.channel),
        (Some(consumer_id), Some(get_ch.id()))
    );
}

/// RabbitMQ names the connection of a lapin client `client address -> broker address`, and
/// shows the client's `connection_name` as `user_provided_name`: the embedded broker's snapshot
/// says the same of the same client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_names_read_as_rabbitmqs() {
    let name = format!(
        "nova-scheduler:{}:{}",
        std::process::id(),
        common::unique("n")
    );
    let conn = connect_as(&common::rabbitmq_url(), &name, "lapin").await;
    let found = {
        let mut found = None;
        for _ in 0..50 {
            // The management API lists a connection after its stats first come in.
            let (status, response) = common::management("GET", "/api/connections", "");
            let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
            assert_eq!(status, 200, "{response}");
            let all: serde_json::Value = serde_json::from_str(body).unwrap();
            found = all.as_array().unwrap().iter().find_map(|c| {
                (c["user_provided_name"] == name.as_str()).then(|| {
                    let peer = format!("{}:{}", c["peer_host"].as_str()?, c["peer_port"]);
                    Some((c["name"].as_str()?.to_string(), peer))
                })?
            });
            if found.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        found.expect("RabbitMQ lists the connection")
    };
    conn.close(200, "OK".into()).await.unwrap();
    let (rabbit_name, rabbit_peer) = found;
    assert_eq!(rabbit_name, format!("{rabbit_peer} -> 127.0.0.1:5672"));

    let (url, broker) = common::start_embedded().await;
    let _conn = connect_as(&url, &name, "lapin").await;
    let v = vhost(&broker);
    let c = connection_named(&v, "nova-scheduler");
    let port = url.rsplit_once(':').unwrap().1.trim_end_matches("/%2f");
    assert_eq!(c.name, format!("{} -> 127.0.0.1:{port}", c.peer));
    assert_eq!(c.client.connection_name.as_deref(), Some(name.as_str()));
}
