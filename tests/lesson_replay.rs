//! A message a lesson's `replay` sent, as the student sees it: the log names the oslo.messaging
//! method, and the inspector decodes the envelope and Nova's objects, as for any message Nova
//! sends.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::screen::screen;
use rabbitscope::events::{EventKind, Received};
use rabbitscope::lesson::{self, LessonRun, Target};
use rabbitscope::ui::action::Action;
use rabbitscope::ui::app::{App, ViewOptions};

/// The fixture's first two steps on the embedded broker (the recorded topology, then the
/// recorded `schedule_and_build_instances` cast replayed), shown in a view of that broker.
/// Times and ports are set to fixed ones so the screen is the same on every run.
async fn view_of_the_replayed_cast() -> App {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = lesson::load_file(&root.join("tests/lessons/ok/04-replay.yaml")).unwrap();
    let mut run = LessonRun::start(fixture, Target::Embedded).await.unwrap();
    let broker = run.broker().unwrap().clone();
    let mut events = broker.subscribe();
    for step in 0..2 {
        let report = run.run_step(step).await.unwrap();
        assert!(report.ok(), "{:?}", report.failures().collect::<Vec<_>>());
    }
    let mut snapshot = broker.snapshot();
    let mut app = App::new("127.0.0.1:5673", "/", ViewOptions::default());
    for vhost in &mut snapshot.vhosts {
        for (i, c) in vhost.connections.iter_mut().enumerate() {
            c.peer = format!("127.0.0.1:{}", 40001 + i);
            c.name = format!("{} -> 127.0.0.1:5673", c.peer);
        }
    }
    app.update(Action::Topology(snapshot));
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(3600 * 10);
    while let Some(received) = events.try_recv() {
        let Received::Event(event) = received else {
            continue;
        };
        if let EventKind::Published { routing_key, .. } = &event.kind {
            if routing_key.starts_with(lesson::runner::PROBE_PREFIX) {
                continue;
            }
        }
        let mut event = (*event).clone();
        event.at = at;
        app.update(Action::BrokerEvent(Arc::new(event)));
    }
    run.close().await;
    app
}

#[tokio::test]
async fn a_replayed_message_is_decoded_in_the_inspector_160x45() {
    let mut app = view_of_the_replayed_cast().await;
    app.update(Action::FocusNext); // the log, the replayed cast selected
    app.update(Action::Inspect);
    let text = screen(&mut app, 160, 45);
    assert!(
        text.contains("cast schedule_and_build_instances 1.17 -> conductor (nova-conductor)"),
        "{text}"
    );
    app.update(Action::FocusNext); // the inspector
    app.update(Action::Down);
    app.update(Action::ScrollInspector(34));
    let text = screen(&mut app, 160, 45);
    assert!(
        text.contains("method     schedule_and_build_instances"),
        "{text}"
    );
    assert!(text.contains("BuildRequest 1.3"), "{text}");
    assert!(!text.contains("nova_object"), "{text}");
    insta::assert_snapshot!(text);
}

/// What a replay takes from the classic trace: its ten publishes in order with the connection
/// names the recording learnt, the queues each reached (a reply's delivery counts where the
/// recorder wrote no route), and the topology its services declared, arguments typed as the
/// declares sent them.
#[test]
fn a_replay_reads_publishes_routes_and_topology_from_a_trace() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = lesson::replay::find(&root.join("lessons/13-nova-boot.yaml"), "nova-boot-classic")
        .expect("found beside the lessons");
    let recording = lesson::replay::read(&path).unwrap();
    let numbers: Vec<u32> = recording.publishes.iter().map(|p| p.number).collect();
    assert_eq!(numbers, (1..=10).collect::<Vec<_>>());
    let first = &recording.publishes[0];
    assert_eq!(
        (first.exchange.as_str(), first.routing_key.as_str()),
        ("nova", "conductor")
    );
    assert!(first
        .publisher
        .as_deref()
        .is_some_and(|n| n.starts_with("nova-api:13593:")));
    assert_eq!(first.reached, ["conductor"]);
    // The conductor's connection was never named in the recording.
    assert_eq!(recording.publishes[1].publisher, None);
    // The first answer to compute-1: written with no route, delivered from its reply queue.
    assert_eq!(
        recording.publishes[5].reached,
        ["reply_3d609330315442c6b361814c6b23ac58"]
    );
    let selected: Vec<u32> = recording.select(2, 3).iter().map(|p| p.number).collect();
    assert_eq!(selected, [2, 3]);
    assert_eq!(recording.exchanges.len(), 5);
    assert_eq!(recording.queues.len(), 14);
    assert_eq!(recording.bindings.len(), 12);
    let reply = recording
        .queues
        .iter()
        .find(|q| q.name == "reply_b2f51edff4974f64825a8f5f8321e70f")
        .unwrap();
    assert_eq!(
        reply.arguments.get("x-expires"),
        Some(&serde_yaml::Value::Number(1_800_000.into()))
    );
    let stream = lesson::replay::read(&path.with_file_name("nova-boot-2026.yaml")).unwrap();
    let fanout = stream
        .queues
        .iter()
        .find(|q| q.name == "scheduler_fanout")
        .unwrap();
    assert!(fanout.durable);
    assert_eq!(
        fanout.arguments.get("x-max-age"),
        Some(&serde_yaml::Value::String("1800s".into()))
    );
}
