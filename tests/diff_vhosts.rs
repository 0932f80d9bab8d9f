//! Users, vhosts and definitions files, against RabbitMQ and the embedded broker alike.
//!
//! RabbitMQ is set up through its management API (port 15672), the embedded broker through its
//! configuration (`--vhost`, `--definitions` do the same from the command line).
mod common;

use std::sync::Arc;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use rabbitscope::amqp::Server;
use rabbitscope::broker::{Broker, BrokerConfig};
use serde_json::Value;

use common::client::{
    bind, bind_exchange, channel, connect, declare_queue, passive_queue, publish_and_wait,
};

/// One request to RabbitMQ's management API; returns (status, JSON body or Null).
async fn management(method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    common::management_json(method, path, body).await
}

fn vhost_path(vhost: &str) -> String {
    vhost.replace('/', "%2F")
}

async fn rabbitmq_add_vhost(vhost: &str) {
    let (status, _) = management("PUT", &format!("/api/vhosts/{}", vhost_path(vhost)), None).await;
    assert!(status == 201 || status == 204, "create vhost: {status}");
    let perms = serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"});
    let (status, _) = management(
        "PUT",
        &format!("/api/permissions/{}/guest", vhost_path(vhost)),
        Some(perms),
    )
    .await;
    assert!(status == 201 || status == 204, "set permissions: {status}");
}

async fn rabbitmq_delete_vhost(vhost: &str) {
    management(
        "DELETE",
        &format!("/api/vhosts/{}", vhost_path(vhost)),
        None,
    )
    .await;
}

fn url_with_vhost(base: &str, vhost: &str) -> String {
    let root = base.rsplit_once('/').unwrap().0;
    format!("{root}/{}", vhost_path(vhost))
}

fn error_text(e: &lapin::Error) -> String {
    let text = format!("{e:?}");
    for (name, code) in [
        ("ACCESSREFUSED", "403"),
        ("NOTALLOWED", "530"),
        ("NOTFOUND", "404"),
    ] {
        if text.contains(name) {
            return code.to_string();
        }
    }
    format!("other error: {text}")
}

/// Queues live in their vhost; another vhost cannot see them; unknown vhosts are refused.
async fn vhost_scenario(base: String, vhost: String) -> Vec<String> {
    let mut t = Vec::new();
    let conn = connect(&url_with_vhost(&base, &vhost)).await;
    let ch = channel(&conn).await;
    declare_queue(&ch, "homework").await;
    publish_and_wait(&ch, "", "homework", b"essay").await;
    let again = passive_queue(&ch, "homework").await.unwrap();
    t.push(format!(
        "in its vhost: {} message(s)",
        again.message_count()
    ));

    let root = connect(&url_with_vhost(&base, "/")).await;
    let root_ch = root.create_channel().await.unwrap();
    let seen = passive_queue(&root_ch, "homework").await;
    t.push(format!(
        "from '/': {}",
        seen.map(|_| "visible".to_string())
            .unwrap_or_else(|e| error_text(&e))
    ));

    let unknown = Connection::connect(
        &url_with_vhost(&base, "no-such-vhost"),
        ConnectionProperties::default(),
    )
    .await;
    t.push(format!(
        "unknown vhost: {}",
        unknown
            .map(|_| "connected".to_string())
            .unwrap_or_else(|e| error_text(&e))
    ));

    let wrong = base.replace("guest:guest", "guest:wrong");
    let refused = Connection::connect(&wrong, ConnectionProperties::default()).await;
    t.push(format!(
        "wrong password: {}",
        refused
            .map(|_| "connected".to_string())
            .unwrap_or_else(|e| error_text(&e))
    ));
    let _ = ch.queue_delete("homework".into(), Default::default()).await;
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vhosts_keep_topology_apart_and_unknown_ones_are_refused() {
    let vhost = common::unique("classroom");
    rabbitmq_add_vhost(&vhost).await;
    let reference = vhost_scenario(common::rabbitmq_url(), vhost.clone()).await;
    rabbitmq_delete_vhost(&vhost).await;

    let (url, _broker) =
        common::start_embedded_with(BrokerConfig::default().with_vhost(&vhost)).await;
    let embedded = vhost_scenario(url, vhost).await;
    assert_eq!(embedded, reference, "embedded (left) vs RabbitMQ (right)");
    assert_eq!(
        reference,
        [
            "in its vhost: 1 message(s)",
            "from '/': 404",
            "unknown vhost: 530",
            "wrong password: 403"
        ]
    );
}

/// The topology of one vhost as sorted lines, from RabbitMQ's management API.
async fn rabbitmq_topology(vhost: &str) -> Vec<String> {
    let v = vhost_path(vhost);
    let mut lines = Vec::new();
    let (_, exchanges) = management("GET", &format!("/api/exchanges/{v}"), None).await;
    for x in exchanges.as_array().unwrap() {
        lines.push(format!(
            "exchange {:?} {} durable={} auto_delete={} internal={}",
            x["name"].as_str().unwrap(),
            x["type"].as_str().unwrap(),
            x["durable"],
            x["auto_delete"],
            x["internal"]
        ));
    }
    let (_, queues) = management("GET", &format!("/api/queues/{v}"), None).await;
    for q in queues.as_array().unwrap() {
        let mut args: Vec<String> = q["arguments"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str().map(str::to_string).unwrap_or(v.to_string())
                )
            })
            .collect();
        args.sort();
        lines.push(format!(
            "queue {} durable={} auto_delete={} args={args:?}",
            q["name"].as_str().unwrap(),
            q["durable"],
            q["auto_delete"]
        ));
    }
    let (_, bindings) = management("GET", &format!("/api/bindings/{v}"), None).await;
    for b in bindings.as_array().unwrap() {
        if b["source"] == "" {
            continue; // the default exchange's implicit bindings
        }
        lines.push(format!(
            "binding {} -> {} {} {:?}",
            b["source"].as_str().unwrap(),
            b["destination_type"].as_str().unwrap(),
            b["destination"].as_str().unwrap(),
            b["routing_key"].as_str().unwrap()
        ));
    }
    lines.sort();
    lines
}

fn embedded_topology(broker: &Arc<Broker>, vhost: &str) -> Vec<String> {
    let snapshot = broker.snapshot();
    let v = snapshot.vhost(vhost).expect("vhost loaded");
    let mut lines = Vec::new();
    for x in &v.exchanges {
        lines.push(format!(
            "exchange {:?} {} durable={} auto_delete={} internal={}",
            x.name, x.kind, x.durable, x.auto_delete, x.internal
        ));
    }
    for q in &v.queues {
        let mut args: Vec<String> = q
            .arguments
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        args.sort();
        lines.push(format!(
            "queue {} durable={} auto_delete={} args={args:?}",
            q.name, q.durable, q.auto_delete
        ));
    }
    for b in &v.bindings {
        lines.push(format!(
            "binding {} -> {} {} {:?}",
            b.source,
            if b.destination_is_exchange {
                "exchange"
            } else {
                "queue"
            },
            b.destination,
            b.routing_key
        ));
    }
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_exported_from_rabbitmq_load_into_the_embedded_broker() {
    let vhost = common::unique("nova");
    rabbitmq_add_vhost(&vhost).await;
    // Build an oslo.messaging-like topology on RabbitMQ.
    let conn = connect(&url_with_vhost(&common::rabbitmq_url(), &vhost)).await;
    let ch = conn.create_channel().await.unwrap();
    let declare_x = |name: &'static str, kind: lapin::ExchangeKind, auto_delete: bool| {
        let ch = ch.clone();
        async move {
            ch.exchange_declare(
                name.into(),
                kind,
                lapin::options::ExchangeDeclareOptions {
                    auto_delete,
                    durable: !auto_delete,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
        }
    };
    declare_x("nova", lapin::ExchangeKind::Topic, false).await;
    declare_x("compute_fanout", lapin::ExchangeKind::Fanout, true).await;
    declare_x("audit", lapin::ExchangeKind::Headers, false).await;
    let mut ttl = FieldTable::default();
    ttl.insert(
        "x-expires".into(),
        lapin::types::AMQPValue::LongInt(1_800_000),
    );
    for (queue, args) in [
        ("compute", FieldTable::default()),
        ("compute.node1", FieldTable::default()),
        ("compute_fanout_ab12", ttl),
    ] {
        ch.queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .unwrap();
    }
    for (queue, exchange, key) in [
        ("compute", "nova", "compute"),
        ("compute.node1", "nova", "compute.node1"),
        ("compute_fanout_ab12", "compute_fanout", "compute"),
    ] {
        bind(&ch, queue, exchange, key).await;
    }
    bind_exchange(&ch, "audit", "nova", "#").await;
    let expected = rabbitmq_topology(&vhost).await;

    // Export everything, as `rabbitmqctl export_definitions` or the management UI would.
    let (status, definitions) = management("GET", "/api/definitions", None).await;
    assert_eq!(status, 200);
    conn.close(200, "done".into()).await.unwrap();
    rabbitmq_delete_vhost(&vhost).await;
    let path = std::env::temp_dir().join(format!("{vhost}.json"));
    std::fs::write(&path, definitions.to_string()).unwrap();

    let definitions = rabbitscope::definitions::read_file(&path).expect("definitions parse");
    let _ = std::fs::remove_file(&path);
    let config = definitions.configure(BrokerConfig::default()).unwrap();
    let broker = Broker::new(config);
    definitions.declare(&broker).expect("definitions declare");
    assert_eq!(embedded_topology(&broker, &vhost), expected);
    assert!(
        expected
            .iter()
            .any(|l| l.starts_with("binding nova -> exchange audit")),
        "{expected:#?}"
    );

    // guest's password came as RabbitMQ's salted hash and still works; the vhost is usable.
    let server = Server::bind(broker.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.run());
    let url = format!("amqp://guest:guest@{addr}/{}", vhost_path(&vhost));
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("guest logs in with the hashed password");
    let ch = channel(&conn).await;
    publish_and_wait(&ch, "nova", "compute.node1", b"{}").await;
    let q = passive_queue(&ch, "compute.node1").await.unwrap();
    assert_eq!(q.message_count(), 1);
}

#[test]
fn guest_is_refused_from_anywhere_but_loopback() {
    let broker = Broker::new(BrokerConfig::default());
    assert!(broker.authenticate("guest", "guest", true).is_ok());
    let refused = broker.authenticate("guest", "guest", false).unwrap_err();
    assert_eq!(refused.code, 403);
}
