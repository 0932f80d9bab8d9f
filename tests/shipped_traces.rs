//! The traces shipped under assets/traces/ load with the trace reader and hold an instance boot
//! as Nova's RPC clients send it (made by assets/traces/record_boot.py; see its README).

use std::path::{Path, PathBuf};

use rabbitscope::events::EventKind;
use rabbitscope::openstack::{self, Oslo};
use rabbitscope::trace;

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
