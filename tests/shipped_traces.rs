//! The traces shipped under assets/traces/ load with the trace reader and hold an instance boot
//! as Nova's RPC clients send it (made by assets/traces/record_boot.py; see its README).

use std::path::{Path, PathBuf};

use rabbitscope::events::EventKind;
use rabbitscope::openstack::{self, Oslo};
use rabbitscope::trace;

mod common;
use common::shape::{shape, without_uuids};

/// One oslo.messaging request as a reader of the trace sees it.
#[derive(Debug, PartialEq)]
struct Request {
    kind: &'static str,
    exchange: String,
    routing_key: String,
    method: String,
    version: Option<String>,
    namespace: Option<String>,
}

fn shipped() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/traces");
    let mut traces: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    traces.sort();
    traces
}

/// The requests and the number of replies a trace holds, in the order they were published.
fn requests(path: &Path) -> (Vec<Request>, usize) {
    let trace = trace::read(path).unwrap_or_else(|e| panic!("{e}"));
    assert!(!trace.truncated, "{}: cut short", path.display());
    let mut requests = Vec::new();
    let mut replies = 0;
    for event in &trace.events {
        let EventKind::Published {
            exchange,
            routing_key,
            body_size,
            body_preview,
            ..
        } = &event.kind
        else {
            continue;
        };
        assert_eq!(
            *body_size,
            body_preview.len(),
            "{}: a body was cut",
            path.display()
        );
        match openstack::decode(body_preview) {
            Some(Oslo::Request(request)) => requests.push(Request {
                kind: request.kind(),
                exchange: exchange.to_string(),
                routing_key: routing_key.to_string(),
                method: request.method,
                version: request.version,
                namespace: request.namespace,
            }),
            Some(Oslo::Reply(_)) => replies += 1,
            None => panic!("{}: a message that is not oslo.messaging's", path.display()),
        }
    }
    (requests, replies)
}

fn request(kind: &'static str, exchange: &str, key: &str, method: &str, version: &str) -> Request {
    Request {
        kind,
        exchange: exchange.into(),
        routing_key: key.into(),
        method: method.into(),
        version: Some(version.into()),
        namespace: None,
    }
}

#[test]
fn every_shipped_trace_holds_an_instance_boot() {
    let traces = shipped();
    assert!(!traces.is_empty(), "no trace under assets/traces/");
    for path in traces {
        let (requests, replies) = requests(&path);
        let boot = [
            Request {
                namespace: Some("compute_task".into()),
                ..request(
                    "cast",
                    "nova",
                    "conductor",
                    "schedule_and_build_instances",
                    "1.17",
                )
            },
            request("call", "nova", "scheduler", "select_destinations", "4.5"),
            request(
                "cast",
                "nova",
                "compute.compute-1",
                "build_and_run_instance",
                "6.0",
            ),
            request("call", "nova", "conductor", "object_action", "3.0"),
            request(
                "cast",
                "scheduler_fanout",
                "",
                "update_instance_info",
                "4.2",
            ),
            request(
                "cast",
                "nova",
                "compute-alt.compute-1",
                "external_instance_event",
                "6.0",
            ),
            request("call", "nova", "conductor", "object_action", "3.0"),
        ];
        assert_eq!(requests, boot, "{}", path.display());
        // Each call was answered.
        assert_eq!(replies, 3, "{}", path.display());
    }
}

/// Played in the view, every reply of a shipped boot reads as delivered to its caller's reply
/// queue: none is listed as dropped, though the recorder, which learnt of a reply queue only
/// after its first reply, wrote that reply's route down as empty.
#[test]
fn in_the_view_no_reply_of_a_boot_is_dropped() {
    use rabbitscope::broker::Snapshot;
    use rabbitscope::ui::action::Action;
    use rabbitscope::ui::app::{App, ViewOptions};
    use std::sync::Arc;
    for path in shipped() {
        let trace = trace::read(&path).unwrap();
        let vhost = trace.header.vhost.clone();
        let mut app = App::new("127.0.0.1:5673", &vhost, ViewOptions::default());
        app.update(Action::Topology(Snapshot::clone(&trace.header.snapshot)));
        for event in &trace.events {
            app.update(Action::BrokerEvent(Arc::new(event.clone())));
        }
        let replies: Vec<_> = app
            .model
            .log
            .iter()
            .filter(|e| e.oslo.as_deref().is_some_and(|o| o.starts_with("reply")))
            .map(|e| (e.fate.clone(), e.queues.clone()))
            .collect();
        assert_eq!(replies.len(), 3, "{}", path.display());
        for (fate, queues) in &replies {
            assert_eq!(
                *fate,
                rabbitscope::events::PublishFate::Routed,
                "{}",
                path.display()
            );
            assert_eq!(queues.len(), 1, "{}", path.display());
            assert!(queues[0].starts_with("reply_"), "{}", path.display());
        }
        // The graph draws the default exchange's edge to each reply queue.
        let mut drawn: Vec<&str> = app
            .model
            .traffic
            .default_routes
            .iter()
            .map(|(q, _)| &**q)
            .collect();
        drawn.dedup();
        assert_eq!(drawn.len(), 2, "{}: {drawn:?}", path.display());
    }
}

/// The python of a venv with nova installed (assets/traces/requirements.txt), for recording a
/// boot afresh.
const NOVA_PYTHON: &str = "RABBITSCOPE_NOVA_PYTHON";

/// A boot recorded now, with the classic settings, on an embedded broker of its own
/// (`record.sh classic ... embedded`), has the shape of the shipped `nova-boot-classic.yaml`:
/// the same requests (methods, versions, namespaces, exchanges, routing keys), as many replies,
/// the same exchanges, queues (with their arguments) and bindings, and the same deliveries;
/// uuids in names, ids and times aside. Needs a python with nova: set RABBITSCOPE_NOVA_PYTHON.
#[test]
fn a_fresh_boot_has_the_shape_of_the_shipped_one() {
    let Some(python) = std::env::var_os(NOVA_PYTHON).filter(|p| !p.is_empty()) else {
        eprintln!(
            "skipped: {NOVA_PYTHON} is not set. Point it at a python with nova installed \
             (python3.11 -m venv DIR && DIR/bin/pip install -r assets/traces/requirements.txt) \
             to record a boot and compare it with the shipped trace"
        );
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/traces");
    let fresh = std::env::temp_dir().join(format!("{}.yaml", common::unique("nova-boot")));
    let output = std::process::Command::new("sh")
        .arg(dir.join("record.sh"))
        .arg("classic")
        .arg(&python)
        .arg(common::process::BIN)
        .arg("embedded")
        .arg(&fresh)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "record.sh failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let shipped = dir.join("nova-boot-classic.yaml");
    let normalized = |path: &Path| {
        let (requests, replies) = requests(path);
        let requests: Vec<Request> = requests
            .into_iter()
            .map(|r| Request {
                routing_key: without_uuids(&r.routing_key),
                ..r
            })
            .collect();
        let trace = trace::read(path).unwrap();
        let mut shape = shape(&trace, without_uuids);
        // Deliveries in any order (the services run side by side); a request's route, but
        // not a reply's: the RabbitMQ recorder learnt of a reply queue only after its first
        // reply, and wrote that reply's route down as empty.
        shape.traffic.sort();
        shape.traffic.retain(|t| !t.starts_with("publish \"\""));
        (requests, replies, shape)
    };
    let (requests, replies, fresh_shape) = normalized(&fresh);
    let (shipped_requests, shipped_replies, shipped_shape) = normalized(&shipped);
    let _ = std::fs::remove_file(&fresh);
    assert_eq!(requests, shipped_requests);
    assert_eq!(replies, shipped_replies);
    assert_eq!(fresh_shape.exchanges, shipped_shape.exchanges);
    assert_eq!(fresh_shape.queues, shipped_shape.queues);
    assert_eq!(fresh_shape.bindings, shipped_shape.bindings);
    assert_eq!(fresh_shape.traffic, shipped_shape.traffic);
    assert!(fresh_shape
        .queues
        .iter()
        .any(|q| q.starts_with("reply_<uuid>")));
}
