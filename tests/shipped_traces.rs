//! The traces shipped under assets/traces/ load with the trace reader and hold an instance boot
//! as Nova's RPC clients send it (made by assets/traces/record_boot.py; see its README), and
//! the one recorded with Nova's notifier on also holds the notifications Nova sends on the way.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use rabbitscope::events::{EventKind, PublishFate};
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

/// One notification oslo.messaging's notifier published, as a reader of the trace sees it.
#[derive(Debug, PartialEq)]
struct Notification {
    exchange: String,
    routing_key: String,
    event_type: String,
    publisher_id: String,
    /// The queues the publish reached, and whether it was routed.
    queues: Vec<String>,
    fate: PublishFate,
}

/// The boot as a trace holds it, in publish order.
struct Boot {
    requests: Vec<Request>,
    replies: usize,
    notifications: Vec<Notification>,
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

/// The requests, the number of replies and the notifications a trace holds, in the order they
/// were published.
fn boot(path: &Path) -> Boot {
    let trace = trace::read(path).unwrap_or_else(|e| panic!("{e}"));
    assert!(!trace.truncated, "{}: cut short", path.display());
    let mut requests = Vec::new();
    let mut replies = 0;
    let mut notifications = Vec::new();
    for event in &trace.events {
        let EventKind::Published {
            exchange,
            routing_key,
            body_size,
            body_preview,
            queues,
            fate,
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
            Some(Oslo::Notification(n)) => notifications.push(Notification {
                exchange: exchange.to_string(),
                routing_key: routing_key.to_string(),
                event_type: n.event_type,
                publisher_id: n.publisher_id.unwrap_or_default(),
                queues: queues.iter().map(|q| q.to_string()).collect(),
                fate: fate.clone(),
            }),
            None => panic!("{}: a message that is not oslo.messaging's", path.display()),
        }
    }
    Boot {
        requests,
        replies,
        notifications,
    }
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
        let Boot {
            requests, replies, ..
        } = boot(&path);
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

/// What Nova 34 sends with `[oslo_messaging_notifications] driver = messagingv2` and
/// `[notifications] notification_format = both` while it boots an instance: each event once on
/// the legacy `notifications` topic and once on `versioned_notifications`.
fn notifications_of_a_boot() -> Vec<Notification> {
    let sent = |legacy: bool, event_type: &str, publisher_id: &str| {
        let topic = if legacy {
            "notifications.info"
        } else {
            "versioned_notifications.info"
        };
        Notification {
            exchange: "nova".into(),
            routing_key: topic.into(),
            event_type: event_type.into(),
            publisher_id: publisher_id.into(),
            // oslo's notifier declares the queue named by the routing key, so none is lost.
            queues: vec![topic.into()],
            fate: PublishFate::Routed,
        }
    };
    let scheduler = ("scheduler.controller-1", "nova-scheduler:controller-1");
    let compute = ("compute.compute-1", "nova-compute:compute-1");
    let mut expected = Vec::new();
    for (legacy_event, event, (legacy_publisher, publisher)) in [
        (
            "scheduler.select_destinations.start",
            "scheduler.select_destinations.start",
            scheduler,
        ),
        (
            "scheduler.select_destinations.end",
            "scheduler.select_destinations.end",
            scheduler,
        ),
        (
            "compute.instance.create.start",
            "instance.create.start",
            compute,
        ),
        (
            "compute.instance.create.end",
            "instance.create.end",
            compute,
        ),
    ] {
        expected.push(sent(true, legacy_event, legacy_publisher));
        expected.push(sent(false, event, publisher));
    }
    expected
}

/// Only the boot recorded with Nova's notifier on holds notifications, and it holds those Nova
/// sends while it boots, each routed to the queue its notifier declared.
#[test]
fn the_notifications_trace_holds_the_boot_s_notifications() {
    for path in shipped() {
        let notifications = boot(&path).notifications;
        if path.ends_with("nova-boot-notifications.yaml") {
            assert_eq!(notifications, notifications_of_a_boot());
        } else {
            assert_eq!(notifications, [], "{}", path.display());
        }
    }
    let trace = trace::read(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/traces/nova-boot-notifications.yaml"),
    )
    .unwrap();
    let declared: Vec<String> = trace
        .events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::QueueDeclared { name, .. } if name.contains("notifications") => {
                Some(name.to_string())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        declared,
        ["notifications.info", "versioned_notifications.info"]
    );
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
    fresh_boot_has_the_shape_of_the_shipped_one("classic");
}

/// The same with Nova's notifier on (`record.sh notifications ... embedded`), against the
/// shipped `nova-boot-notifications.yaml`: the notifications too, and the queues they fill.
#[test]
fn a_fresh_boot_with_notifications_has_the_shape_of_the_shipped_one() {
    fresh_boot_has_the_shape_of_the_shipped_one("notifications");
}

/// The same on the settings upstream recommends in 2026 (`record.sh 2026 ... embedded`),
/// against the shipped `nova-boot-2026.yaml`: quorum queues, streams, queue-manager names.
#[test]
fn a_fresh_2026_boot_has_the_shape_of_the_shipped_one() {
    fresh_boot_has_the_shape_of_the_shipped_one("2026");
}

/// A name with its uuids blanked, and the host in a queue-manager reply queue's name
/// (`reply_<host>:<process>:<n>`, the recording machine's hostname).
fn without_ids(name: &str) -> String {
    static HOST: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"^reply_[^:<>]+:").unwrap());
    HOST.replace(&without_uuids(name), "reply_<host>:")
        .into_owned()
}

fn fresh_boot_has_the_shape_of_the_shipped_one(settings: &str) {
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
        .arg(settings)
        .arg(&python)
        .arg(common::process::BIN)
        .arg("embedded")
        .arg(&fresh)
        // oslo.messaging's queue manager reads its process group leader's /proc entry: make
        // the recording lead its own group, whoever started the tests.
        .process_group(0)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "record.sh failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let shipped = dir.join(format!("nova-boot-{settings}.yaml"));
    let normalized = |path: &Path| {
        let Boot {
            requests,
            replies,
            notifications,
        } = boot(path);
        let requests: Vec<Request> = requests
            .into_iter()
            .map(|r| Request {
                routing_key: without_uuids(&r.routing_key),
                ..r
            })
            .collect();
        let trace = trace::read(path).unwrap();
        let mut shape = shape(&trace, without_ids);
        // Deliveries in any order (the services run side by side); a request's route, but
        // not a reply's: the RabbitMQ recorder learnt of a reply queue only after its first
        // reply, and wrote that reply's route down as empty.
        shape.traffic.sort();
        shape.traffic.retain(|t| !t.starts_with("publish \"\""));
        (requests, replies, notifications, shape)
    };
    let (requests, replies, notifications, fresh_shape) = normalized(&fresh);
    let (shipped_requests, shipped_replies, shipped_notifications, shipped_shape) =
        normalized(&shipped);
    let _ = std::fs::remove_file(&fresh);
    assert_eq!(requests, shipped_requests);
    assert_eq!(replies, shipped_replies);
    assert_eq!(notifications, shipped_notifications);
    assert_eq!(fresh_shape.exchanges, shipped_shape.exchanges);
    assert_eq!(fresh_shape.queues, shipped_shape.queues);
    assert_eq!(fresh_shape.bindings, shipped_shape.bindings);
    assert_eq!(fresh_shape.traffic, shipped_shape.traffic);
    // The reply queues are there: named by a uuid on oslo's defaults (blanked above), by the
    // queue manager (`reply_<host>:<process>:<n>`) on the 2026 settings.
    let reply = if settings == "2026" {
        "reply_<host>:nova-compute:1"
    } else {
        "reply_<uuid>"
    };
    assert!(fresh_shape.queues.iter().any(|q| q.starts_with(reply)));
}
