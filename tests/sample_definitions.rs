//! assets/definitions/openstack-control-plane.json: the embedded broker loads it, RabbitMQ 3.10
//! (127.0.0.1:5672, management on 15672) imports it into a vhost, and `doctor` names the
//! queues RabbitMQ 4.3 would refuse.

use std::collections::BTreeSet;
use std::path::PathBuf;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::Value;

use rabbitscope::trace;

mod common;
use common::client::connect;
use common::management_json;
use common::process::{rabbitscope, spawn_broker};
use common::unique;
use common::vhost::TestVhost;

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("assets/definitions/openstack-control-plane.json")
}

fn file() -> Value {
    serde_json::from_slice(&std::fs::read(sample()).unwrap()).unwrap()
}

/// `k=v, ...` sorted, from a JSON object of arguments.
fn json_arguments(arguments: &Value) -> String {
    let mut pairs: Vec<String> = (arguments.as_object().into_iter().flatten())
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    pairs.sort();
    pairs.join(", ")
}

fn pairs(arguments: &[(String, String)]) -> String {
    let mut pairs: Vec<String> = arguments.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    pairs.join(", ")
}

/// The objects of a definitions file or a management API listing, in one form: queues as
/// `name durable auto_delete [arguments]`, exchanges as `name type durable auto_delete`,
/// bindings as `source -> destination key`. The default and `amq.*` exchanges, and the
/// default exchange's bindings, are every vhost's and left out.
#[derive(Debug, PartialEq)]
struct Objects {
    queues: BTreeSet<String>,
    exchanges: BTreeSet<String>,
    bindings: BTreeSet<String>,
}

fn objects(queues: &Value, exchanges: &Value, bindings: &Value) -> Objects {
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    Objects {
        queues: list(queues)
            .iter()
            .map(|q| {
                format!(
                    "{} {} {} [{}]",
                    s(&q["name"]),
                    q["durable"],
                    q["auto_delete"],
                    json_arguments(&q["arguments"])
                )
            })
            .collect(),
        exchanges: list(exchanges)
            .iter()
            .filter(|e| !s(&e["name"]).is_empty() && !s(&e["name"]).starts_with("amq."))
            .map(|e| {
                format!(
                    "{} {} {} {}",
                    s(&e["name"]),
                    s(&e["type"]),
                    e["durable"],
                    e["auto_delete"]
                )
            })
            .collect(),
        bindings: list(bindings)
            .iter()
            .filter(|b| !s(&b["source"]).is_empty())
            .map(|b| {
                format!(
                    "{} -> {} {}",
                    s(&b["source"]),
                    s(&b["destination"]),
                    s(&b["routing_key"])
                )
            })
            .collect(),
    }
}

fn of_the_file() -> Objects {
    let file = file();
    let objects = objects(&file["queues"], &file["exchanges"], &file["bindings"]);
    // What the README promises, so an emptied file cannot pass.
    for queue in [
        "conductor false false []",
        "conductor.controller-1 false false []",
        "scheduler.controller-1 false false []",
        "compute.compute-1 false false []",
        "compute.compute-2 false false []",
        "compute-alt.compute-2 false false []",
        "notifications.info false false []",
    ] {
        assert!(objects.queues.contains(queue), "{queue}");
    }
    let fanout_queues = objects.queues.iter().filter(|q| q.contains("_fanout_"));
    assert!(fanout_queues
        .clone()
        .all(|q| q.ends_with("[x-expires=1800000]")));
    assert_eq!(fanout_queues.count(), 6);
    assert!(objects.exchanges.contains("nova topic false false"));
    assert!(objects
        .exchanges
        .contains("compute_fanout fanout false true"));
    assert!(objects
        .bindings
        .contains("nova -> notifications.info notifications.info"));
    objects
}

/// `rabbitscope broker --definitions` loads it: its objects are the broker's (read from the
/// snapshot a --record writes first), and its user may use its vhost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_loads_the_sample() {
    let expected = of_the_file();
    let path = std::env::temp_dir().join(format!("{}.yaml", unique("sample-definitions")));
    let broker = spawn_broker(
        rabbitscope()
            .args([
                "broker",
                "--transient",
                "--listen",
                "127.0.0.1:0",
                "--definitions",
            ])
            .arg(sample())
            .arg("--record")
            .arg(&path)
            .args(["--record-vhost", "openstack"]),
    );
    let header = trace::read(&path).unwrap().header;
    let _ = std::fs::remove_file(&path);
    let v = header.snapshot.vhost("openstack").expect("the vhost");
    let as_json = |value: Vec<Value>| Value::Array(value);
    let loaded = objects(
        &Value::Null,
        &as_json(
            v.exchanges
                .iter()
                .map(|e| {
                    serde_json::json!({"name": e.name, "type": e.kind, "durable": e.durable,
                        "auto_delete": e.auto_delete})
                })
                .collect(),
        ),
        &as_json(
            v.bindings
                .iter()
                .map(|b| {
                    serde_json::json!({"source": &*b.source, "destination": &*b.destination,
                        "routing_key": &*b.routing_key})
                })
                .collect(),
        ),
    );
    // The snapshot shows arguments as text: compare them that way.
    let shown: BTreeSet<String> = v
        .queues
        .iter()
        .map(|q| {
            format!(
                "{} {} {} [{}]",
                q.name,
                q.durable,
                q.auto_delete,
                pairs(&q.arguments)
            )
        })
        .collect();
    assert_eq!(shown, expected.queues);
    assert_eq!(loaded.exchanges, expected.exchanges);
    assert_eq!(loaded.bindings, expected.bindings);

    let address = broker.field("address=");
    let client = connect(&format!("amqp://openstack:openstack@{address}/openstack")).await;
    let channel = client.create_channel().await.unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let queue = channel
        .queue_declare("conductor".into(), passive, FieldTable::default())
        .await
        .expect("the file's user reaches its queues");
    assert_eq!(queue.message_count(), 0);
    let _ = client.close(200, "done".into()).await;
    let mut child = broker.child;
    // SAFETY: kill only sends a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert!(child.wait().unwrap().success());
}

/// RabbitMQ 3.10 imports it into a vhost given in the path: every exchange, queue and
/// binding lands in that vhost whatever the file's objects name, and the file's users,
/// vhosts and permissions are left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_imports_the_sample_into_a_vhost() {
    let expected = of_the_file();
    let vhost = TestVhost::new("sample-definitions").await;
    let exists = |path: String| async move { management_json("GET", &path, None).await.0 };
    let user_before = exists("/api/users/openstack".into()).await;
    let vhost_before = exists("/api/vhosts/openstack".into()).await;
    let (status, answer) = management_json(
        "POST",
        &format!("/api/definitions/{}", vhost.name),
        Some(file()),
    )
    .await;
    assert!(
        status == 201 || status == 204,
        "RabbitMQ refused the file: {status} {answer}"
    );
    let get = |what: &str| {
        let path = format!("/api/{what}/{}", vhost.name);
        async move { management_json("GET", &path, None).await.1 }
    };
    let imported = objects(
        &get("queues").await,
        &get("exchanges").await,
        &get("bindings").await,
    );
    assert_eq!(imported, expected);
    assert_eq!(exists("/api/users/openstack".into()).await, user_before);
    assert_eq!(exists("/api/vhosts/openstack".into()).await, vhost_before);
}

/// `doctor --definitions` names every queue of the sample as one RabbitMQ 4.3 refuses: they
/// are oslo.messaging's defaults, neither durable nor exclusive.
#[test]
fn doctor_names_the_transient_queues_of_the_sample() {
    let output = rabbitscope()
        .args(["doctor", "--format", "json", "--definitions"])
        .arg(sample())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let finding = (report["findings"].as_array().into_iter().flatten())
        .find(|f| f["check"] == "transient-nonexclusive-queues")
        .unwrap_or_else(|| panic!("no 4.3 finding in {report:#}"));
    assert!(
        finding["why"].as_str().unwrap().contains("RabbitMQ 4.3"),
        "{finding:#}"
    );
    let named: BTreeSet<String> = serde_json::from_value(finding["objects"].clone()).unwrap();
    let queues: BTreeSet<String> = (file()["queues"].as_array().unwrap().iter())
        .map(|q| q["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(named, queues);
}
