//! `rabbitscope doctor` on RabbitMQ: each finding staged in a vhost of the test's own, then the
//! real binary run on it (JSON report and exit code checked); a clean vhost gives no finding.
//! The cluster's troubles (a node down, an alarm, a quorum queue without its majority) cannot
//! be staged on the one node every test shares: tests/cluster.rs stages them on a cluster of
//! its own, and here they come from a management API serving RabbitMQ 3.10's answers with
//! those changes (tests/fixtures/management). A definitions file is examined with no broker
//! at all.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::client::{self, int, table, text, DURABLE};
use common::doctor::Report;
use common::vhost::TestVhost;
use lapin::options::{BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use serde_json::Value;

async fn doctor(args: &[&str]) -> Report {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || common::doctor::doctor(&args))
        .await
        .unwrap()
}

/// Runs doctor on the vhost until `ready` holds of its report (the management API counts
/// messages and channels some seconds late), at most 30 s; the last report.
async fn doctor_until(vhost: &TestVhost, ready: impl Fn(&Report) -> bool) -> Report {
    let started = Instant::now();
    loop {
        let report = doctor(&[&vhost.url()]).await;
        if ready(&report) || started.elapsed() > Duration::from_secs(30) {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
}

fn rabbitmqctl(args: &[&str]) {
    let out = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const TRANSIENT: QueueDeclareOptions = QueueDeclareOptions {
    passive: false,
    durable: false,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_clean_vhost_has_no_findings() {
    let vhost = TestVhost::new("doctor-clean").await;
    let (_connection, ch) = vhost.channel().await;
    client::declare_exchange(&ch, "nova", ExchangeKind::Topic).await;
    ch.queue_declare("compute".into(), DURABLE, FieldTable::default())
        .await
        .unwrap();
    client::bind(&ch, "compute", "nova", "compute").await;
    // Kept: a dropped lapin consumer is cancelled.
    let reader = vhost.channel().await;
    let _consumer = client::consume(&reader.1, "compute", "server", true).await;
    client::publish(&ch, "nova", "compute", "routed").await;
    // Wait until the API has counted the routed message and the consumer, so a finding they
    // would cause has had its chance to show.
    let started = Instant::now();
    loop {
        let api = &vhost.management;
        let stats = api.exchange_stats(&vhost.name).await.unwrap();
        let routed = (stats.iter().find(|x| x.name == "nova"))
            .is_some_and(|x| x.message_stats.contains_key("publish_out"));
        let queues = api.queues(&vhost.name).await.unwrap();
        let read = queues.iter().all(|q| q.consumers == 1 && q.messages == 0);
        if routed && read {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{queues:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let report = doctor(&[&vhost.url()]).await;
    assert_eq!(report.checks(), Vec::<String>::new(), "{}", report.stderr);
    assert_eq!(report.code, 0);
    assert_eq!(report.json["counts"]["warning"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn oslo_defaults_are_queues_rabbitmq_4_3_refuses() {
    let vhost = TestVhost::new("doctor-transient").await;
    let (connection, ch) = vhost.channel().await;
    for name in ["conductor", "reply_5c3e0b2a"] {
        ch.queue_declare(name.into(), TRANSIENT, FieldTable::default())
            .await
            .unwrap();
    }
    client::declare_exclusive_queue(&ch, "mine").await;
    let report = doctor(&[&vhost.url()]).await;
    assert_eq!(report.code, 1, "{}", report.stderr);
    let mut transient = report.objects("transient-nonexclusive-queues");
    transient.sort();
    assert_eq!(transient, ["conductor", "reply_5c3e0b2a"]);
    let fix = report.finding("transient-nonexclusive-queues")["fix"].to_string();
    assert!(fix.contains("deprecated_features.permit.transient_nonexcl_queues"));
    assert!(fix.contains("rabbit_quorum_queue"));
    // Critical only: a warning does not fail the run.
    let lenient = doctor(&[&vhost.url(), "--fail-on", "critical"]).await;
    assert_eq!(lenient.code, 0);
    drop(connection);
}

#[tokio::test(flavor = "multi_thread")]
async fn mirroring_and_lazy_queues_are_named() {
    let vhost = TestVhost::new("doctor-ha").await;
    rabbitmqctl(&[
        "set_policy",
        "-p",
        &vhost.name,
        "ha-nova",
        "^compute",
        r#"{"ha-mode":"all","queue-mode":"lazy"}"#,
        "--apply-to",
        "queues",
    ]);
    let (_connection, ch) = vhost.channel().await;
    ch.queue_declare(
        "compute".into(),
        DURABLE,
        table(&[("x-ha-policy", text("all")), ("x-queue-mode", text("lazy"))]),
    )
    .await
    .unwrap();
    let report = doctor_until(&vhost, |r| {
        r.findings().iter().any(|f| {
            f["seen"]
                .as_str()
                .unwrap_or("")
                .contains("in force on 1 classic queue")
        })
    })
    .await;
    assert_eq!(report.code, 1);
    assert_eq!(report.objects("mirroring-policies"), ["ha-nova"]);
    assert!(report
        .seen("mirroring-policies")
        .contains("in force on 1 classic queue"));
    assert_eq!(report.objects("x-ha-policy-queues"), ["compute"]);
    assert_eq!(report.objects("x-queue-mode-queues"), ["compute"]);
    assert_eq!(report.objects("queue-mode-policies"), ["ha-nova"]);
    assert_eq!(report.finding("queue-mode-policies")["level"], "info");
}

#[tokio::test(flavor = "multi_thread")]
async fn global_qos_is_named() {
    let vhost = TestVhost::new("doctor-qos").await;
    let (_connection, ch) = vhost.channel().await;
    ch.queue_declare("compute".into(), DURABLE, FieldTable::default())
        .await
        .unwrap();
    ch.basic_qos(10, BasicQosOptions { global: true })
        .await
        .unwrap();
    let _consumer = client::consume(&ch, "compute", "server", false).await;
    let report = doctor_until(&vhost, |r| r.checks().iter().any(|c| c == "global-qos")).await;
    let channels = report.objects("global-qos");
    assert_eq!(channels.len(), 1, "{:#}", report.json);
    assert!(channels[0].ends_with("(1)"), "{channels:?}");
    assert_eq!(report.code, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn unroutable_messages_are_explained_by_the_bindings() {
    let vhost = TestVhost::new("doctor-unroutable").await;
    let (connection, _) = vhost.channel().await;
    let ch = client::channel(&connection).await;
    client::declare_exchange(&ch, "nova", ExchangeKind::Topic).await;
    for node in ["compute.node1", "compute.node2"] {
        ch.queue_declare(node.into(), DURABLE, FieldTable::default())
            .await
            .unwrap();
        client::bind(&ch, node, "nova", node).await;
    }
    let routed = client::publish(&ch, "nova", "compute.node1", "cast").await;
    assert_eq!(routed, "ack");
    for _ in 0..3 {
        assert_eq!(
            client::publish(&ch, "nova", "compute.node3", "cast").await,
            "ack"
        );
    }
    let returned = client::publish_with(
        &ch,
        "nova",
        "compute.node3",
        "reply",
        BasicProperties::default(),
        true,
    )
    .await;
    assert_eq!(returned, "returned 312 NO_ROUTE then ack");
    let report = doctor_until(&vhost, |r| {
        r.checks().iter().any(|c| c == "unroutable-messages")
            && r.seen("unroutable-messages").contains("came back")
            && r.seen("unroutable-messages").contains("passed 1 on")
    })
    .await;
    assert_eq!(report.code, 1);
    assert_eq!(report.objects("unroutable-messages"), ["nova"]);
    let seen = report.seen("unroutable-messages");
    assert!(
        seen.starts_with("1 message published mandatory came back unroutable; 'nova' (topic) took 5 messages and passed 1 on: at least 4 reached no queue; its bindings' keys are 'compute.node1' and 'compute.node2'"),
        "{seen}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn queues_nobody_reads() {
    let vhost = TestVhost::new("doctor-idle").await;
    let (connection, _) = vhost.channel().await;
    let ch = client::channel(&connection).await;
    for name in [
        "notifications.info",
        "orders",
        "reply_9f1d",
        "compute.node1",
    ] {
        let args = if name == "compute.node1" {
            table(&[("x-expires", int(1_800_000))])
        } else {
            FieldTable::default()
        };
        ch.queue_declare(name.into(), DURABLE, args).await.unwrap();
    }
    for _ in 0..3 {
        client::send(&ch, "notifications.info", "event").await;
    }
    client::send(&ch, "orders", "order").await;
    let report = doctor_until(&vhost, |r| {
        r.checks().iter().any(|c| c == "queues-without-consumers")
            && r.checks().iter().any(|c| c == "notifications-nobody-reads")
    })
    .await;
    assert_eq!(report.code, 1);
    assert_eq!(
        report.checks(),
        [
            "notifications-nobody-reads",
            "queues-without-consumers",
            "orphaned-reply-queues",
            "server-queues-expiring"
        ]
    );
    assert_eq!(
        report.objects("notifications-nobody-reads"),
        ["notifications.info"]
    );
    assert!(report
        .seen("notifications-nobody-reads")
        .contains("holding 3 messages"));
    assert_eq!(report.objects("queues-without-consumers"), ["orders"]);
    assert_eq!(report.objects("orphaned-reply-queues"), ["reply_9f1d"]);
    assert_eq!(report.objects("server-queues-expiring"), ["compute.node1"]);
    assert!(report
        .seen("server-queues-expiring")
        .contains("'compute.node1' (x-expires 1800 s)"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_topic_half_migrated_to_quorum_and_its_poison_messages() {
    let vhost = TestVhost::new("doctor-quorum").await;
    let (_connection, ch) = vhost.channel().await;
    client::try_declare_typed(&ch, "compute", "quorum", &[])
        .await
        .unwrap();
    client::try_declare_typed(
        &ch,
        "compute.node1",
        "quorum",
        &[("x-delivery-limit", int(5))],
    )
    .await
    .unwrap();
    ch.queue_declare("compute.node2".into(), DURABLE, FieldTable::default())
        .await
        .unwrap();
    let report = doctor(&[&vhost.url()]).await;
    assert_eq!(report.code, 1, "{}", report.stderr);
    assert_eq!(
        report.checks(),
        [
            "mixed-queue-types",
            "poison-messages-dropped",
            "poison-messages-dropped-on-4"
        ]
    );
    assert_eq!(
        report.objects("mixed-queue-types"),
        ["compute", "compute.node1", "compute.node2"]
    );
    assert_eq!(report.objects("poison-messages-dropped"), ["compute.node1"]);
    assert_eq!(report.objects("poison-messages-dropped-on-4"), ["compute"]);
    // A dead-letter exchange keeps what the limit rejects: no longer dropped.
    rabbitmqctl(&[
        "set_policy",
        "-p",
        &vhost.name,
        "dlx",
        "^compute",
        r#"{"dead-letter-exchange":"dlx"}"#,
        "--apply-to",
        "queues",
    ]);
    let report = doctor_until(&vhost, |r| {
        !r.checks().iter().any(|c| c.starts_with("poison"))
    })
    .await;
    assert_eq!(report.checks(), ["mixed-queue-types"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_broker_is_one_line_and_exit_2() {
    let report = doctor(&[
        "amqp://guest:guest@127.0.0.1:1/%2f",
        "--management",
        "http://127.0.0.1:1",
    ])
    .await;
    assert_eq!(report.code, 2);
    assert_eq!(report.json, Value::Null);
    assert_eq!(report.stderr.lines().count(), 1, "{}", report.stderr);
    assert!(
        report
            .stderr
            .starts_with("error: cannot reach RabbitMQ's management API at http://127.0.0.1:1: connection refused"),
        "{}",
        report.stderr
    );
}

/// What a file of oslo.messaging's default queues, an ha-mode policy and a `compute` topic
/// half on quorum queues (one with a delivery limit) gives.
const OSLO_DEFAULTS_HALF_MIGRATED: &[&str] = &[
    "transient-nonexclusive-queues",
    "mirroring-policies",
    "mixed-queue-types",
    "poison-messages-dropped",
];

fn definitions(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(common::unique(name) + ".json");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_definitions_file_is_examined_before_deploy() {
    let risky = definitions(
        "doctor-definitions",
        r#"{
          "vhosts": [{"name": "nova"}],
          "policies": [{"vhost": "nova", "name": "ha-all", "pattern": ".*",
                        "apply-to": "queues", "definition": {"ha-mode": "all"}, "priority": 0}],
          "queues": [
            {"name": "compute", "vhost": "nova", "durable": false, "auto_delete": false,
             "arguments": {}},
            {"name": "compute.node1", "vhost": "nova", "durable": true, "auto_delete": false,
             "arguments": {"x-queue-type": "quorum", "x-delivery-limit": 10}}
          ]
        }"#,
    );
    let report = doctor(&["--definitions", risky.to_str().unwrap()]).await;
    assert_eq!(report.code, 1, "{}", report.stderr);
    assert_eq!(report.checks(), OSLO_DEFAULTS_HALF_MIGRATED);
    assert_eq!(report.objects("transient-nonexclusive-queues"), ["compute"]);
    assert!(report
        .seen("mirroring-policies")
        .contains("in force on 1 classic queue"));
    let clean = definitions(
        "doctor-definitions-clean",
        r#"{"queues": [{"name": "compute", "vhost": "nova", "durable": true,
                        "arguments": {"x-queue-type": "quorum", "x-delivery-limit": 10,
                                      "x-dead-letter-exchange": "dlx"}}]}"#,
    );
    let report = doctor(&["--definitions", clean.to_str().unwrap()]).await;
    assert_eq!(report.checks(), Vec::<String>::new());
    assert_eq!(report.code, 0);
    let missing = doctor(&["--definitions", "/nonexistent/definitions.json"]).await;
    assert_eq!(missing.code, 2);
    let _ = std::fs::remove_file(risky);
    let _ = std::fs::remove_file(clean);
}

#[tokio::test]
async fn an_export_of_one_vhost_is_examined() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/doctor/nova-vhost-definitions-3.10.json");
    let report = doctor(&["--definitions", path.to_str().unwrap()]).await;
    assert_eq!(report.code, 1, "{}", report.stderr);
    // Its `compute` is a quorum queue without a limit besides.
    let expected = [
        OSLO_DEFAULTS_HALF_MIGRATED,
        &["poison-messages-dropped-on-4"],
    ]
    .concat();
    assert_eq!(report.checks(), expected);
    // 3.10 names the vhost on the policies alone: the queues are taken to be its.
    assert_eq!(report.finding("mirroring-policies")["vhost"], "nova-demo");
    assert!(report
        .seen("mirroring-policies")
        .contains("in force on 5 classic queues"));
}

/// A management API answering as a three-node RabbitMQ 3.10 cluster with a node stopped and
/// another under a memory alarm (tests/fixtures/management); its address.
fn troubled_cluster() -> String {
    use std::io::{Read, Write};
    let fixture = |name: &str| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/management")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let empty_page = r#"{"items":[],"page":1,"page_count":1}"#.to_string();
    let answers: Vec<(&str, String)> = vec![
        ("/api/nodes", fixture("nodes-3.10-cluster.json")),
        ("/api/queues/%2F", fixture("queues-doctor-3.10.json")),
        ("/api/policies/%2F", fixture("policies-3.10.json")),
        (
            "/api/queues/quorum/%2F/compute.node1/status",
            fixture("quorum-status-3.13.json"),
        ),
        ("/api/exchanges/%2F", empty_page),
        ("/api/bindings/%2F", "[]".into()),
        ("/api/vhosts/%2F/channels", "[]".into()),
        ("/api/vhosts/%2F/connections", "[]".into()),
        (
            "/api/vhosts/%2F",
            r#"{"name":"/","tracing":false,"message_stats":{"publish":0}}"#.into(),
        ),
    ];
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head);
            let target = head.split_whitespace().nth(1).unwrap_or("");
            let path = target.split('?').next().unwrap_or("");
            let answer = match answers.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                ),
                None => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_string(),
            };
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_troubled_cluster_is_critical() {
    let api = troubled_cluster();
    let url = "amqp://guest:guest@127.0.0.1:1/%2f";
    let report = doctor(&[url, "--management", &api]).await;
    assert_eq!(report.code, 1, "{}", report.stderr);
    assert_eq!(
        report.checks(),
        [
            "nodes-down",
            "queues-down",
            "memory-alarm",
            "quorum-lost",
            "quorum-members-offline",
            "quorum-members-behind"
        ]
    );
    assert!(report
        .findings()
        .iter()
        .all(|f| f["level"] == "critical"
            || f["check"].as_str().unwrap().starts_with("quorum-members")));
    assert_eq!(report.objects("nodes-down"), ["rabbit@node3"]);
    assert!(report.finding("nodes-down").get("vhost").is_none());
    assert_eq!(report.objects("queues-down"), ["billing"]);
    assert_eq!(report.objects("memory-alarm"), ["rabbit@node2"]);
    assert_eq!(report.objects("quorum-lost"), ["conductor"]);
    assert_eq!(report.objects("quorum-members-offline"), ["compute.node1"]);
    // RabbitMQ 3.13's status of the queue's members: one far behind, one not answering.
    assert_eq!(report.objects("quorum-members-behind"), ["compute.node1"]);
    let behind = report.finding("quorum-members-behind");
    let seen = behind["seen"].as_str().unwrap();
    assert!(
        seen.contains("'rabbit@node2' 59427 entries behind"),
        "{seen}"
    );
    assert!(!seen.contains("node3"), "{seen}");
    // Critical findings fail even the most lenient run that can fail.
    let report = doctor(&[url, "--management", &api, "--fail-on", "critical"]).await;
    assert_eq!(report.code, 1);
    let report = doctor(&[url, "--management", &api, "--fail-on", "never"]).await;
    assert_eq!(report.code, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_policy_and_consumers_worked_out_without_statistics_are_rabbitmqs() {
    // An administrator's doctor reads the queues without their statistics, works out each
    // queue's policy from the policies and counts consumers from the consumers listing: the
    // same as RabbitMQ's own `policy` and `consumers` columns, priorities and all.
    let vhost = TestVhost::new("doctor-policy").await;
    let set_policy = |name: &str, pattern: &str, priority: &str| {
        rabbitmqctl(&[
            "set_policy",
            "-p",
            &vhost.name,
            "--priority",
            priority,
            "--apply-to",
            "queues",
            name,
            pattern,
            r#"{"message-ttl": 60000}"#,
        ]);
    };
    set_policy("orders-all", "^orders", "1");
    set_policy("orders-q", r"^orders\.q", "5");
    set_policy("audit", "audit$", "2");
    let (connection, ch) = vhost.channel().await;
    let quorum = table(&[("x-queue-type", text("quorum"))]);
    for (name, arguments) in [
        ("orders.q1", FieldTable::default()),
        ("orders.q2", quorum.clone()),
        ("orders.x", FieldTable::default()),
        ("orders.audit", FieldTable::default()),
        ("other", quorum),
    ] {
        ch.queue_declare(name.into(), DURABLE, arguments)
            .await
            .unwrap();
    }
    for (queue, tag) in [("orders.x", "a"), ("orders.x", "b"), ("other", "c")] {
        ch.basic_consume(
            queue.into(),
            tag.into(),
            lapin::options::BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    let api = &vhost.management;
    assert!(api.sees_every_client().await.unwrap());
    type Facts = Vec<(String, Option<String>, u64)>;
    let started = Instant::now();
    let (worked_out, told): (Facts, Facts) = loop {
        let (broker, _) = rabbitscope::remote::health::read(api, &vhost.name)
            .await
            .unwrap();
        let mut worked_out: Facts = (broker.queues.into_iter())
            .map(|q| (q.name, q.policy, q.consumers.unwrap_or_default()))
            .collect();
        worked_out.sort();
        let mut told: Facts = (api.queues_in_depth(&vhost.name).await.unwrap().into_iter())
            .map(|q| (q.name, q.policy, q.consumers))
            .collect();
        told.sort();
        // The API learns of consumers some seconds late, from both sources.
        if worked_out == told && told.iter().any(|q| q.2 == 2)
            || started.elapsed() > Duration::from_secs(30)
        {
            break (worked_out, told);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(worked_out, told);
    let policy = |name: &str| told.iter().find(|q| q.0 == name).unwrap().1.clone();
    assert_eq!(policy("orders.q1").as_deref(), Some("orders-q"));
    assert_eq!(policy("orders.audit").as_deref(), Some("audit"));
    assert_eq!(policy("other"), None);
    connection.close(200, "OK".into()).await.unwrap();
}
