//! The lessons' `rpc` and `reply` actions send what real oslo.messaging sends. A Python helper
//! (tests/python/capture_oslo_calls.py, run from the virtualenv `.ci/run` makes at .venv)
//! captures a plain call, a call with a call-monitor timeout and a server's keep-alive and
//! answer from real oslo.messaging on RabbitMQ; the same messages made by a lesson are
//! compared with them key by key: the keys and their order, each value's JSON type, the
//! `_timeout`, the AMQP properties and the expiration.

mod common;

use common::python::{repo, venv_python};

use std::path::Path;
use std::process::Command;

use lapin::message::BasicGetMessage;
use rabbitscope::lesson::{self, LessonRun, Target};
use serde_json::Value;

/// What real oslo.messaging sent, as the helper prints it.
fn captured() -> Value {
    let output = Command::new(venv_python())
        .arg("capture_oslo_calls.py")
        .arg(common::rabbitmq_url())
        .current_dir(repo().join("tests/python"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run capture_oslo_calls.py");
    assert!(
        output.status.success(),
        "capture_oslo_calls.py failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the helper prints JSON")
}

/// A JSON object's keys in the order they were written, with their values.
fn ordered(text: &str) -> Vec<(String, Value)> {
    struct Pairs;
    impl<'de> serde::de::Visitor<'de> for Pairs {
        type Value = Vec<(String, Value)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut pairs = Vec::new();
            while let Some(pair) = map.next_entry()? {
                pairs.push(pair);
            }
            Ok(pairs)
        }
    }
    use serde::Deserializer;
    serde_json::Deserializer::from_str(text)
        .deserialize_map(Pairs)
        .unwrap_or_else(|e| panic!("not a JSON object ({e}): {text}"))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The envelope's keys, then the inner message's keys with the type of each value.
fn shape(body: &str) -> (Vec<String>, Vec<(String, &'static str)>) {
    let outer = ordered(body);
    let keys = outer.iter().map(|(k, _)| k.clone()).collect();
    let inner = outer
        .iter()
        .find(|(k, _)| k == "oslo.message")
        .and_then(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no oslo.message text in {body}"));
    let inner = ordered(inner)
        .iter()
        .map(|(k, v)| (k.clone(), kind(v)))
        .collect();
    (keys, inner)
}

fn inner(body: &str) -> Value {
    let outer: Value = serde_json::from_str(body).unwrap();
    serde_json::from_str(outer["oslo.message"].as_str().unwrap()).unwrap()
}

/// Compares a message the lesson sent with one oslo.messaging sent.
fn assert_same_wire(what: &str, ours: &BasicGetMessage, theirs: &Value) {
    let body = String::from_utf8(ours.delivery.data.clone()).unwrap();
    let their_body = theirs["body"].as_str().unwrap();
    assert_eq!(
        shape(&body),
        shape(their_body),
        "{what}: keys and types\n{body}\n{their_body}"
    );
    let props = &ours.delivery.properties;
    let expected = &theirs["properties"];
    let text = |v: Option<&lapin::types::ShortString>| v.map(|s| s.to_string());
    assert_eq!(
        text(props.expiration().as_ref()).as_deref(),
        expected["expiration"].as_str(),
        "{what}: expiration"
    );
    assert_eq!(
        text(props.content_type().as_ref()).as_deref(),
        expected["content_type"].as_str(),
        "{what}"
    );
    assert_eq!(
        text(props.content_encoding().as_ref()).as_deref(),
        expected["content_encoding"].as_str(),
        "{what}"
    );
    assert_eq!(
        props.delivery_mode().map(u64::from),
        expected["delivery_mode"].as_u64(),
        "{what}"
    );
    assert_eq!(
        props.priority().map(u64::from),
        expected["priority"].as_u64(),
        "{what}"
    );
}

const LESSON: &str = r#"
id: fx-oslo-wire
order: 1
title: { en: oslo wire, zh: oslo 线上格式 }
setup:
  queues:
    - { name: fx-oslo.requests }
    - { name: fx-oslo.replies }
steps:
  - say: { en: A plain call., zh: 普通调用。 }
    do:
      - rpc:
          routing_key: fx-oslo.requests
          method: select_destinations
          version: "4.5"
          call: true
          reply_queue: fx-oslo.replies
          timeout: 5
          args: { spec_obj: { think: 0 }, instance_uuids: [abc] }
          context: { request_id: req-6d1c, user_id: u1, project_id: p1 }
  - say: { en: A monitored call., zh: 带监控的调用。 }
    do:
      - rpc:
          routing_key: fx-oslo.requests
          method: select_destinations
          version: "4.5"
          call: true
          reply_queue: fx-oslo.replies
          timeout: 1800
          call_monitor_timeout: 60
          args: { spec_obj: { think: 0 }, instance_uuids: [abc] }
          context: { request_id: req-6d1c, user_id: u1, project_id: p1 }
  - say: { en: The server works and answers., zh: 服务器先工作，再作答。 }
    do:
      - consume: { queue: fx-oslo.requests, consumer: scheduler }
      - rpc:
          routing_key: fx-oslo.requests
          method: select_destinations
          version: "4.5"
          call: true
          reply_queue: fx-oslo.replies
          timeout: 1800
          call_monitor_timeout: 60
          args: { spec_obj: { think: 0 }, instance_uuids: [abc] }
      - reply: { consumer: scheduler, ending: false }
      - reply: { consumer: scheduler, result: [[{ service_host: node1 }]] }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rpc_action_sends_what_oslo_messaging_sends() {
    let oslo = captured();
    assert_eq!(
        inner(oslo["plain"]["body"].as_str().unwrap())["_timeout"],
        Value::Null
    );
    assert_eq!(
        inner(oslo["monitored"]["body"].as_str().unwrap())["_timeout"],
        60
    );

    let wire = lesson::load_str(LESSON, Path::new("oslo-wire.yaml")).unwrap();
    let mut run = LessonRun::start(wire, Target::Embedded).await.unwrap();
    for step in 0..2 {
        let report = run.run_step(step).await.unwrap();
        assert_eq!(report.routed, ["fx-oslo.requests"]);
    }
    let conn = common::client::connect(run.amqp_url()).await;
    let ch = common::client::channel(&conn).await;
    let plain = common::client::get(&ch, "fx-oslo.requests")
        .await
        .expect("the plain call");
    let monitored = common::client::get(&ch, "fx-oslo.requests")
        .await
        .expect("the monitored call");
    assert_same_wire("plain call", &plain, &oslo["plain"]);
    assert_same_wire("monitored call", &monitored, &oslo["monitored"]);
    let ours = inner(&String::from_utf8_lossy(&monitored.delivery.data));
    assert_eq!(ours["_timeout"], 60);
    assert_eq!(ours["_reply_q"], "fx-oslo.replies");

    // The server's keep-alive, then its answer, as oslo.messaging's server sends them.
    let report = run.run_step(2).await.unwrap();
    assert!(report.ok(), "{:?}", report.failures().collect::<Vec<_>>());
    let theirs = oslo["replies"].as_array().unwrap();
    assert_eq!(
        theirs.len(),
        2,
        "one keep-alive while the method works 1.5 s of a 2 s monitor"
    );
    for (i, their) in theirs.iter().enumerate() {
        let reply = common::client::get(&ch, "fx-oslo.replies")
            .await
            .expect("a reply");
        let body = String::from_utf8(reply.delivery.data.clone()).unwrap();
        let their = their.as_str().unwrap();
        assert_eq!(shape(&body), shape(their), "reply {i}\n{body}\n{their}");
        assert_eq!(inner(&body)["ending"], inner(their)["ending"], "reply {i}");
        assert_eq!(inner(&body)["result"], inner(their)["result"], "reply {i}");
    }
    let _ = conn.close(200, "OK".into()).await;
    run.close().await;
}
