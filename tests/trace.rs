//! Trace files: reading and writing them, replaying them as a source, and recording a real
//! RabbitMQ (127.0.0.1:5672, management on 15672, guest/guest) in a vhost of each test's own.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use lapin::options::{BasicPublishOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

use rabbitscope::broker::{ExchangeSnapshot, QueueSnapshot, Snapshot, VhostSnapshot};
use rabbitscope::events::{AlarmResource, BindingInfo, Event, EventKind, PublishFate, Received};
use rabbitscope::remote::{Endpoint, Management, RemoteOptions, RemoteSource};
use rabbitscope::source::{Playback, Source};
use rabbitscope::trace::{self, Header, Limits, ReplaySource, TraceWriter};

mod common;
use common::process::rabbitscope;
use common::pty;
use common::unique;
use common::vhost::TestVhost;

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{}-{name}", unique("trace")))
}

/// A hand-written trace: a direct exchange and a queue, then a second queue declared and
/// bound, a message routed to both, and the first queue deleted.
const HAND_WRITTEN: &str = r#"# a trace written by hand
---
format: 1
source: amqp://guest:****@127.0.0.1:5672/shop
vhost: shop
recorded_at: 2026-11-26T02:30:00Z
snapshot:
  vhosts:
  - name: shop
    exchanges:
    - {name: orders, kind: direct, durable: true, auto_delete: false, internal: false, arguments: []}
    queues:
    - {name: billing, durable: true, exclusive: false, auto_delete: false, arguments: [], ready: 3, unacked: 0, consumers: 1}
    bindings:
    - {source: orders, destination: billing, destination_is_exchange: false, routing_key: new, arguments: []}
...
---
at: 2026-11-26T02:30:00.100Z
vhost: shop
kind: !QueueDeclared
  name: shipping
  durable: false
  exclusive: false
  auto_delete: false
  arguments: []
...
---
at: 2026-11-26T02:30:00.150Z
vhost: shop
kind: !BindingCreated
  source: orders
  destination: shipping
  destination_is_exchange: false
  routing_key: new
  arguments: []
...
---
at: 2026-11-26T02:30:00.200Z
vhost: shop
connection: 7
channel: 1
kind: !Published
  message_id: 1
  exchange: orders
  routing_key: new
  body_size: 5
  body_preview: [104, 101, 108, 108, 111]
  headers: []
  properties: []
  matched:
  - {source: orders, destination: billing, destination_is_exchange: false, routing_key: new, arguments: []}
  - {source: orders, destination: shipping, destination_is_exchange: false, routing_key: new, arguments: []}
  queues: [billing, shipping]
  alternate_exchange: null
  fate: Routed
...
---
at: 2026-11-26T02:30:00.250Z
vhost: shop
kind: !QueueDeleted
  name: billing
...
"#;

fn expected_after_hand_written() -> Snapshot {
    Snapshot {
        vhosts: vec![VhostSnapshot {
            name: "shop".into(),
            exchanges: vec![ExchangeSnapshot {
                durable: true,
                ..ExchangeSnapshot::new("orders", "direct")
            }],
            queues: vec![QueueSnapshot::new("shipping")],
            bindings: vec![BindingInfo::to_queue("orders", "shipping", "new")],
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn a_hand_written_trace_reads() {
    let trace = trace::parse(HAND_WRITTEN, Path::new("shop.yaml")).unwrap();
    assert!(!trace.truncated);
    assert_eq!(trace.header.vhost, "shop");
    assert_eq!(trace.header.snapshot.vhosts[0].queues[0].ready, 3);
    assert_eq!(trace.events.len(), 4);
    assert_eq!(trace.events[2].connection, Some(7));
    match &trace.events[2].kind {
        EventKind::Published {
            queues,
            body_preview,
            ..
        } => {
            assert_eq!(queues.len(), 2);
            assert_eq!(&body_preview[..], b"hello");
        }
        other => panic!("expected Published, got {other:?}"),
    }
}

#[tokio::test]
async fn a_hand_written_trace_replays_to_the_expected_topology() {
    let trace = trace::parse(HAND_WRITTEN, Path::new("shop.yaml")).unwrap();
    let recorded = trace.events.clone();
    let started = Instant::now();
    let source = ReplaySource::start(trace, 2.0);
    assert_eq!(source.vhost(), "shop");
    // Nothing goes out before somebody listens.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(source.played(), 0);
    let mut reader = source.subscribe();
    let mut seen = Vec::new();
    while seen.len() < recorded.len() {
        match tokio::time::timeout(Duration::from_secs(5), reader.recv()).await {
            Ok(Received::Event(e)) => seen.push(Event::clone(&e)),
            other => panic!("replay stopped early: {other:?}"),
        }
    }
    assert_eq!(seen, recorded);
    // 150 ms of recorded time at twice the speed.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(70), "too fast: {took:?}");
    assert!(source.finished());
    let mut expected = expected_after_hand_written();
    // The consumer count of the deleted queue went with it; the message routed to both
    // queues waits in the one left.
    expected.vhosts[0].queues[0].consumers = 0;
    expected.vhosts[0].queues[0].ready = 1;
    assert_eq!(source.snapshot(), expected);
}

#[tokio::test]
async fn a_paused_replay_steps_one_event_at_a_time() {
    let trace = trace::parse(HAND_WRITTEN, Path::new("shop.yaml")).unwrap();
    let source = ReplaySource::start(trace, 1.0);
    source.set_paused(true);
    let mut reader = source.subscribe();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        reader.try_recv().is_none(),
        "a paused replay let an event out"
    );
    for n in 1..=2 {
        source.step_forward();
        match tokio::time::timeout(Duration::from_secs(2), reader.recv()).await {
            Ok(Received::Event(_)) => {}
            other => panic!("step {n}: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(source.played(), n);
    }
    let queues: Vec<String> = source.snapshot().vhosts[0]
        .queues
        .iter()
        .map(|q| q.name.clone())
        .collect();
    assert_eq!(queues, ["billing", "shipping"]);
    // The view's resume (space) lets the rest go.
    source.follow_view(false, 1.0);
    tokio::time::timeout(Duration::from_secs(3), async {
        while !source.finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the replay did not resume");
}

/// Waits (three seconds at most) until the replay has played exactly `n` events.
async fn wait_played(source: &ReplaySource, n: usize) {
    tokio::time::timeout(Duration::from_secs(3), async {
        while source.played() != n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("played never became {n}"))
}

/// Step back takes the last event back: the topology loses what it did, the view is handed
/// the events before it, and stepping forward plays it again. At the end, back still works.
#[tokio::test]
async fn stepping_back_undoes_the_last_event() {
    let trace = trace::parse(HAND_WRITTEN, Path::new("shop.yaml")).unwrap();
    let recorded = trace.events.clone();
    let source = ReplaySource::start(trace, 50.0);
    let mut reader = source.subscribe();
    tokio::time::timeout(Duration::from_secs(5), async {
        while !source.finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the replay finished");
    while reader.try_recv().is_some() {}
    // The last event deleted `billing`; stepping back brings it back.
    source.step_back();
    wait_played(&source, 3).await;
    let names = |s: &ReplaySource| -> Vec<String> {
        s.snapshot().vhosts[0]
            .queues
            .iter()
            .map(|q| q.name.clone())
            .collect()
    };
    assert_eq!(names(&source), ["billing", "shipping"]);
    let history = source.take_rewind().expect("a rewind for the view");
    let history: Vec<Event> = history.iter().map(|e| Event::clone(e)).collect();
    assert_eq!(history, recorded[..3]);
    assert!(source.take_rewind().is_none(), "handed over once");
    // Two more back: before the publish and before the binding; paused, nothing goes out.
    source.step_back();
    source.step_back();
    wait_played(&source, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(source.played(), 1, "a step back pauses the replay");
    let to_shipping = |s: &ReplaySource| {
        s.snapshot().vhosts[0]
            .bindings
            .iter()
            .any(|b| &*b.destination == "shipping")
    };
    assert!(!to_shipping(&source), "the binding was taken back");
    // Forward again replays the binding, the very event that was taken back.
    source.step_forward();
    wait_played(&source, 2).await;
    match tokio::time::timeout(Duration::from_secs(2), reader.recv()).await {
        Ok(Received::Event(e)) => assert_eq!(*e, recorded[1]),
        other => panic!("expected the binding again, got {other:?}"),
    }
    assert!(to_shipping(&source));
}

/// The first line of the view's screen.
fn status_line(app: &mut rabbitscope::ui::app::App) -> String {
    let buffer = rabbitscope::ui::render_to_buffer(app, 160, 45);
    (0..160).map(|x| buffer[(x, 0)].symbol()).collect()
}

/// At the last event the source says it is finished and the status line says so; a step back
/// takes the mark away.
#[tokio::test]
async fn the_end_of_a_replay_is_marked() {
    use rabbitscope::ui::action::Action;
    use rabbitscope::ui::app::{App, ViewOptions};
    let trace = trace::parse(HAND_WRITTEN, Path::new("shop.yaml")).unwrap();
    let total = trace.events.len();
    let replay = ReplaySource::start(trace, 1.0).from_file(Path::new("shop.yaml"));
    replay.set_paused(true);
    let source: &dyn Source = &replay;
    let playback = source.playback().expect("a replay plays back");
    let mut reader = source.subscribe();
    let mut app = App::watching(source.kind(), "shop", ViewOptions::default());
    app.update(Action::Topology(source.snapshot()));
    // What the view's loop does each frame.
    let frame = |app: &mut App, reader: &mut rabbitscope::events::EventReader| {
        while let Some(Received::Event(e)) = reader.try_recv() {
            app.update(Action::BrokerEvent(e));
        }
        app.update(Action::PlaybackEnded(playback.finished()));
    };
    frame(&mut app, &mut reader);
    assert!(!playback.finished());
    let line = status_line(&mut app);
    assert!(!line.contains("END OF TRACE"), "{line}");
    // The status line names the trace, not an AMQP address.
    assert!(
        line.contains(" broker replay of shop.yaml (amqp://"),
        "{line}"
    );
    // Steps asked for before the replay starts (once somebody subscribed) are not counted.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for n in 1..=total {
        assert!(!playback.finished());
        playback.step_forward();
        tokio::time::timeout(Duration::from_secs(3), async {
            while replay.played() < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("a step did not play");
    }
    assert!(playback.finished());
    frame(&mut app, &mut reader);
    let line = status_line(&mut app);
    assert!(line.contains("END OF TRACE  , back one event"), "{line}");
    playback.step_back();
    tokio::time::timeout(Duration::from_secs(3), async {
        while playback.finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("a step back leaves the end");
    frame(&mut app, &mut reader);
    assert!(!status_line(&mut app).contains("END OF TRACE"));
}

#[test]
fn broken_trace_files_say_where() {
    let path = Path::new("broken.yaml");
    // A wrong value in the third event document.
    let broken = HAND_WRITTEN.replace("  message_id: 1\n", "  message_id: one\n");
    let e = trace::parse(&broken, path).unwrap_err();
    let line = broken
        .lines()
        .position(|l| l.contains("message_id: one"))
        .unwrap()
        + 1;
    assert_eq!(e.location, Some((line, 15)), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("broken.yaml:{line}:15: ")),
        "{e}"
    );

    // A bad time in the header.
    let broken = HAND_WRITTEN.replace("recorded_at: 2026-11-26T02:30:00Z", "recorded_at: soon");
    let e = trace::parse(&broken, path).unwrap_err();
    assert_eq!(e.location, Some((6, 14)), "{e}");
    assert!(e.to_string().starts_with("broken.yaml:6:14: "), "{e}");

    // Text outside any document.
    let e = trace::parse("format: 1\n", path).unwrap_err();
    assert_eq!(
        e.to_string(),
        "broken.yaml:1:1: text outside a document: each document starts with a line '---'"
    );

    // Not a trace at all.
    let e = trace::parse("# nothing\n", path).unwrap_err();
    assert_eq!(e.location, Some((1, 1)));

    // A format from the future.
    let e = trace::parse(&HAND_WRITTEN.replace("format: 1", "format: 9"), path).unwrap_err();
    assert!(
        e.to_string().starts_with("broken.yaml:3:1: trace format 9"),
        "{e}"
    );

    // A file that is not there.
    let e = trace::read(Path::new("/nonexistent/trace.yaml")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/trace.yaml: cannot read it"),
        "{e}"
    );
}

#[test]
fn written_traces_read_back_and_a_cut_short_one_up_to_its_last_whole_event() {
    let trace = trace::parse(HAND_WRITTEN, Path::new("shop.yaml")).unwrap();
    let path = temp_path("written.yaml");
    let mut writer = TraceWriter::create(&path, &trace.header).unwrap();
    for e in &trace.events {
        writer.write(e).unwrap();
    }
    assert_eq!(writer.finish().unwrap(), 4);
    let text = std::fs::read_to_string(&path).unwrap();
    let back = trace::read(&path).unwrap();
    assert_eq!(back, trace);
    // A crash in the middle of the last event: the three before it are whole.
    let cut = &text[..text.len() - 20];
    let partial = trace::parse(cut, &path).unwrap();
    assert!(partial.truncated);
    assert_eq!(partial.events, trace.events[..3]);
    let _ = std::fs::remove_file(&path);
}

/// The text `rabbitscope record` writes for one event: `---`, the event, `...`.
fn event_document(header: &Header, event: &Event) -> String {
    let scratch = temp_path("one-event.yaml");
    let mut writer = TraceWriter::create(&scratch, header).unwrap();
    writer.write(event).unwrap();
    writer.finish().unwrap();
    let text = std::fs::read_to_string(&scratch).unwrap();
    let _ = std::fs::remove_file(&scratch);
    let header_end = text.find("\n...\n").unwrap() + 5;
    text[header_end..].to_string()
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file.flush().unwrap();
}

/// Reads events into `seen` until it has `upto`.
async fn receive(
    reader: &mut rabbitscope::events::EventReader,
    seen: &mut Vec<Event>,
    upto: usize,
) -> Vec<Event> {
    while seen.len() < upto {
        match tokio::time::timeout(Duration::from_secs(5), reader.recv()).await {
            Ok(Received::Event(e)) => seen.push(Event::clone(&e)),
            other => panic!("after {} events: {other:?}", seen.len()),
        }
    }
    seen.clone()
}

/// A replay following its file plays what is there, then each event appended, in order; a
/// document written in pieces goes out once whole, and never as an error.
#[tokio::test]
async fn a_followed_trace_plays_events_appended_to_it() {
    let header = trace::parse(HAND_WRITTEN, Path::new("shop.yaml"))
        .unwrap()
        .header;
    let events: Vec<Event> = (1..=5)
        .map(|n| Event {
            at: SystemTime::now(),
            vhost: "shop".into(),
            connection: None,
            channel: None,
            kind: EventKind::QueueDeclared {
                name: format!("q{n}").into(),
                queue_type: Default::default(),
                durable: false,
                exclusive: false,
                auto_delete: false,
                arguments: vec![],
            },
        })
        .collect();
    let documents: Vec<String> = events.iter().map(|e| event_document(&header, e)).collect();
    let path = temp_path("followed.yaml");
    let mut writer = TraceWriter::create(&path, &header).unwrap();
    writer.write(&events[0]).unwrap();
    writer.write(&events[1]).unwrap();
    writer.finish().unwrap();
    // The third is half-written when the replay starts.
    let (first_half, second_half) = documents[2].split_at(documents[2].len() / 2);
    append(&path, first_half);

    let source = ReplaySource::follow(&path, 1000.0).unwrap();
    assert_eq!(source.total(), 2);
    let mut reader = source.subscribe();
    let mut seen: Vec<Event> = Vec::new();
    assert_eq!(receive(&mut reader, &mut seen, 2).await, events[..2]);
    // Caught up and following: not finished, nothing more until the third is whole.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(reader.try_recv().is_none());
    assert!(!source.finished());
    assert!(source.trouble().is_none());
    append(&path, second_half);
    assert_eq!(receive(&mut reader, &mut seen, 3).await, events[..3]);
    // The fourth in two writes, the cut inside a line; the fifth in one, right after.
    let (a, b) = documents[3].split_at(documents[3].len() - 7);
    append(&path, a);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(reader.try_recv().is_none(), "half a document went out");
    append(&path, b);
    append(&path, &documents[4]);
    assert_eq!(receive(&mut reader, &mut seen, 5).await, events);
    assert_eq!(source.total(), 5);
    let queues: Vec<String> = source.snapshot().vhosts[0]
        .queues
        .iter()
        .map(|q| q.name.clone())
        .collect();
    assert_eq!(queues, ["billing", "q1", "q2", "q3", "q4", "q5"]);
    assert!(source.trouble().is_none());
    assert!(!source.finished(), "a followed file may still grow");
    let _ = std::fs::remove_file(&path);
}

/// Publishes until the recorder has written `wanted` Published events (the firehose is bound
/// some time after start).
async fn declare_and_publish(vhost: &TestVhost) -> Connection {
    let connection = Connection::connect(&vhost.url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    for q in ["audit", "billing"] {
        channel
            .queue_declare(
                q.into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                q.into(),
                "amq.topic".into(),
                "order.#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }
    connection
}

async fn publish(connection: &Connection, key: &str) {
    let channel = connection.create_channel().await.unwrap();
    channel
        .basic_publish(
            "amq.topic".into(),
            key.into(),
            BasicPublishOptions::default(),
            key.as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let _ = channel.close(200, "done".into()).await;
}

fn published(events: &[Event]) -> Vec<(String, Vec<String>)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Published {
                routing_key,
                queues,
                fate: PublishFate::Routed,
                ..
            } => Some((
                routing_key.to_string(),
                queues.iter().map(|q| q.to_string()).collect(),
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_real_traffic_reads_back_the_same_events() {
    let vhost = TestVhost::new("record").await;
    let connection = declare_and_publish(&vhost).await;
    let endpoint = Endpoint::new(&vhost.url(), None).unwrap();
    let options = RemoteOptions {
        trace: true,
        interval: Duration::from_millis(500),
    };
    let source = Arc::new(RemoteSource::start(endpoint, options).unwrap());
    assert!(source.refreshed(1, Duration::from_secs(10)).await);
    let reader = source.subscribe();
    let header = Header {
        format: trace::FORMAT_VERSION,
        source: source.endpoint().masked_url(),
        vhost: vhost.name.clone(),
        recorded_at: SystemTime::now(),
        snapshot: source.snapshot(),
    };
    let path = temp_path("real.yaml");
    let mut writer = TraceWriter::create(&path, &header).unwrap();
    // Copy what the recorder writes, to compare with the file.
    let mut copy = source.subscribe();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let recording = tokio::spawn(async move {
        let recorded = trace::record(reader, &mut writer, Limits::default(), async {
            let _ = stop_rx.await;
        })
        .await
        .unwrap();
        writer.finish().unwrap();
        recorded
    });
    // Until the firehose shows the first one, publish a warm-up message; then three more.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut live = Vec::new();
    'warm: loop {
        assert!(Instant::now() < deadline, "the firehose never reported");
        publish(&connection, "order.warmup").await;
        let wait = Instant::now() + Duration::from_millis(500);
        while let Ok(Received::Event(e)) =
            tokio::time::timeout(wait.saturating_duration_since(Instant::now()), copy.recv()).await
        {
            live.push(Event::clone(&e));
            if !published(&live).is_empty() {
                break 'warm;
            }
        }
    }
    for key in ["order.created", "order.paid", "order.shipped"] {
        publish(&connection, key).await;
    }
    while published(&live).len() < 4 || !live_has_all(&live) {
        match tokio::time::timeout(Duration::from_secs(10), copy.recv()).await {
            Ok(Received::Event(e)) => live.push(Event::clone(&e)),
            other => panic!("events stopped coming: {other:?}"),
        }
    }
    // What came so far is on disk once the recorder has caught up: stop it and read the file.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_tx.send(()).unwrap();
    let recorded = recording.await.unwrap();
    while let Some(Received::Event(e)) = copy.try_recv() {
        live.push(Event::clone(&e));
    }
    let back = trace::read(&path).unwrap();
    assert!(!back.truncated);
    assert_eq!(back.header, header);
    assert_eq!(recorded.events as usize, back.events.len());
    assert_eq!(back.events, live);
    let routed = published(&back.events);
    let both = vec!["audit".to_string(), "billing".to_string()];
    let keys: Vec<&str> = routed.iter().map(|(k, _)| k.as_str()).collect();
    let tail = &keys[keys.len() - 3..];
    assert_eq!(tail, ["order.created", "order.paid", "order.shipped"]);
    for (key, queues) in &routed {
        let mut queues = queues.clone();
        queues.sort();
        assert_eq!(queues, both, "{key}");
    }
    // The header's topology is the vhost's: both queues and their bindings.
    let shown = back.header.snapshot.vhost(&vhost.name).unwrap();
    let names: Vec<&str> = shown.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["audit", "billing"]);
    let _ = connection.close(200, "done".into()).await;
    match Arc::try_unwrap(source) {
        Ok(source) => source.close().await,
        Err(_) => panic!("the source is still shared"),
    }
    let _ = std::fs::remove_file(&path);

    fn live_has_all(live: &[Event]) -> bool {
        let keys: Vec<String> = published(live).into_iter().map(|(k, _)| k).collect();
        ["order.created", "order.paid", "order.shipped"]
            .iter()
            .all(|k| keys.iter().any(|seen| seen == k))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_command_stops_after_count_and_writes_a_whole_trace() {
    let vhost = TestVhost::new("record-cli").await;
    let connection = declare_and_publish(&vhost).await;
    let path = temp_path("cli.yaml");
    let mut child = rabbitscope()
        .args(["record", &vhost.url(), "-o"])
        .arg(&path)
        .args(["--count", "3", "--duration", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Publish until the recorder has had its three events and exits.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("record did not stop after --count 3");
        }
        publish(&connection, "order.created").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.trim().starts_with("3 events written to "),
        "{stdout}\n{stderr}"
    );
    assert!(stderr.contains("guest:****@"), "{stderr}");
    let back = trace::read(&path).unwrap();
    assert!(!back.truncated);
    assert_eq!(back.events.len(), 3);
    assert_eq!(back.header.vhost, vhost.name);
    assert_eq!(
        back.header.source,
        format!("amqp://guest:****@127.0.0.1:5672/{}", vhost.name)
    );
    // Tracing went off again.
    let management = Management::new(&Endpoint::new(&vhost.url(), None).unwrap()).unwrap();
    assert!(!management.tracing(&vhost.name).await.unwrap());
    let _ = connection.close(200, "done".into()).await;
    let _ = std::fs::remove_file(&path);
}

/// With the management API answering but AMQP out of reach, `record` says why nothing is
/// recorded (and that it retries) rather than wait in silence, and stops whole at --duration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_command_tells_why_the_firehose_is_out_of_reach() {
    let vhost = TestVhost::new("record-unreachable").await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/{}", vhost.name);
    let path = temp_path("unreachable.yaml");
    let written = path.clone();
    let output = tokio::task::spawn_blocking(move || {
        rabbitscope()
            .args([
                "record",
                &url,
                "--management",
                "http://127.0.0.1:15672",
                "-o",
            ])
            .arg(&path)
            .args(["--duration", "4"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // Topology changes in other vhosts may be recorded too, but no message.
    assert!(stdout.contains(" written to "), "{stdout}");
    assert!(
        stderr.contains("firehose: connect") && stderr.contains("retrying in"),
        "{stderr}"
    );
    assert!(!stderr.contains("guest:guest"), "{stderr}");
    assert!(!vhost.management.tracing(&vhost.name).await.unwrap());
    let _ = std::fs::remove_file(&written);
}

/// The real binary replaying the hand-written trace in a 120x40 pseudo-terminal: the queue a
/// replayed event declares shows, and `q` quits cleanly.
#[test]
fn the_replay_command_shows_the_trace_in_the_view() {
    let path = temp_path("view.yaml");
    std::fs::write(&path, HAND_WRITTEN).unwrap();
    let mut view = pty::spawn(
        &["replay", path.to_str().unwrap(), "--speed", "0.5"],
        40,
        120,
        |_| {},
    );
    view.screen.wait_for(
        &["replay of", "orders", "billing", "shipping"],
        Duration::from_secs(20),
    );
    view.press(b"q");
    let status = view.wait_exit(Duration::from_secs(30), "the view did not quit on q");
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_file(&path);
}

/// An event nested 100,000 lists deep is refused at once, naming its place in the file
/// (serde_yaml alone took most of a minute over it).
#[test]
fn a_deeply_nested_trace_is_refused_with_its_place() {
    let path = temp_path("nested.yaml");
    let depth = 100_000;
    let header = HAND_WRITTEN.split("\n...\n").next().unwrap();
    let header_lines = header.lines().count();
    let text = format!(
        "{header}\n...\n---\nat: {}{}\n...\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    std::fs::write(&path, text).unwrap();
    let output = rabbitscope()
        .arg("replay")
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    // The event's first line comes after the header, its `...` and `---`. The event's mapping
    // is the first level and column 5 holds the first `[`: the 128th `[` is the 129th level.
    let place = format!(
        "nested.yaml:{}:132: expected at most 128 lists and mappings",
        header_lines + 3
    );
    assert!(stderr.contains(&place), "{place} not in {stderr}");
}

/// Queue depths in a replay follow the events: the embedded broker's events, recorded while
/// clients publish, consume with and without acks, nack, let messages expire and overflow a
/// length limit, replay to the very depths the broker ends with.
#[tokio::test(flavor = "multi_thread")]
async fn a_replay_keeps_queue_depths_as_the_events_say() {
    use futures_util::StreamExt;
    use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
    use lapin::types::AMQPValue;
    let (url, broker) = common::start_embedded().await;
    // Where it listens matters only to a status line, which this test does not draw.
    let embedded = rabbitscope::source::Embedded::new(broker.clone(), "127.0.0.1:5672");
    let start = embedded.snapshot();
    let mut reader = embedded.subscribe();

    let connection = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = connection.create_channel().await.unwrap();
    let mut limited = FieldTable::default();
    limited.insert("x-max-length".into(), AMQPValue::LongInt(2));
    let mut expiring = FieldTable::default();
    expiring.insert("x-message-ttl".into(), AMQPValue::LongInt(100));
    for (name, arguments) in [
        ("work", FieldTable::default()),
        ("firehose", FieldTable::default()),
        ("limited", limited),
        ("expiring", expiring),
        ("idle", FieldTable::default()),
    ] {
        ch.queue_declare(name.into(), QueueDeclareOptions::default(), arguments)
            .await
            .unwrap();
    }
    let publish = |queue: &'static str, n: usize| {
        let ch = ch.clone();
        async move {
            for _ in 0..n {
                ch.basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    b"m",
                    BasicProperties::default(),
                )
                .await
                .unwrap();
            }
        }
    };
    publish("work", 8).await;
    publish("firehose", 5).await;
    publish("limited", 5).await;
    publish("expiring", 3).await;
    publish("idle", 4).await;

    // Acknowledging consumer, three at a time: one acked, one nacked back, one dropped.
    let worker = connection.create_channel().await.unwrap();
    worker
        .basic_qos(3, BasicQosOptions::default())
        .await
        .unwrap();
    let mut deliveries = worker
        .basic_consume(
            "work".into(),
            "worker".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    for n in 0..3 {
        let d = deliveries.next().await.unwrap().unwrap();
        if n == 0 {
            d.ack(BasicAckOptions::default()).await.unwrap();
        } else {
            // The first back to the queue, the second dropped.
            let requeue = n == 1;
            let options = BasicNackOptions {
                requeue,
                ..Default::default()
            };
            d.nack(options).await.unwrap();
        }
    }
    // A consumer without acks drains its queue.
    let reader_ch = connection.create_channel().await.unwrap();
    let mut drained = reader_ch
        .basic_consume(
            "firehose".into(),
            "drain".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    for _ in 0..5 {
        drained.next().await.unwrap().unwrap();
    }
    // The TTL passes; the broker expires the messages.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let end = broker.snapshot();

    let mut events = Vec::new();
    while let Some(received) = reader.try_recv() {
        match received {
            Received::Event(e) => events.push(Event::clone(&e)),
            other => panic!("{other:?}"),
        }
    }
    let header = Header {
        format: trace::FORMAT_VERSION,
        source: "embedded".into(),
        vhost: "/".into(),
        recorded_at: SystemTime::now(),
        snapshot: start,
    };
    let replay = ReplaySource::start(
        trace::Trace {
            header,
            events,
            truncated: false,
        },
        1000.0,
    );
    let _listening = replay.subscribe();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !replay.finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the replay did not finish");
    let depths = |s: &Snapshot| -> Vec<(String, usize, usize)> {
        s.vhost("/")
            .unwrap()
            .queues
            .iter()
            .map(|q| (q.name.clone(), q.ready, q.unacked))
            .collect()
    };
    let expected = depths(&end);
    // The scenario left every kind of count behind, so the comparison says something.
    assert!(
        expected.iter().any(|(_, _, unacked)| *unacked > 0),
        "{expected:?}"
    );
    assert!(expected
        .iter()
        .any(|(n, ready, _)| n == "limited" && *ready == 2));
    assert!(expected
        .iter()
        .any(|(n, ready, _)| n == "expiring" && *ready == 0));
    assert_eq!(depths(&replay.snapshot()), expected);
    connection.close(200, "OK".into()).await.unwrap();
}

#[test]
fn alarm_events_are_written_and_read_back() {
    let trace = trace::parse(HAND_WRITTEN, Path::new("shop.yaml")).unwrap();
    let alarm = |kind| Event {
        at: SystemTime::UNIX_EPOCH + Duration::from_secs(7),
        vhost: "".into(),
        connection: None,
        channel: None,
        kind,
    };
    let events = [
        alarm(EventKind::AlarmOn {
            resource: AlarmResource::Disk,
        }),
        alarm(EventKind::AlarmOff {
            resource: AlarmResource::Disk,
        }),
    ];
    let path = temp_path("alarms.yaml");
    let mut writer = TraceWriter::create(&path, &trace.header).unwrap();
    for e in &events {
        writer.write(e).unwrap();
    }
    writer.finish().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("AlarmOn"), "{text}");
    assert_eq!(trace::read(&path).unwrap().events, events);
    let _ = std::fs::remove_file(&path);
}

/// A trace of clients coming and going: a connection and its consumer in the header, then
/// one connection with its client's name, one written before traces said who the client
/// is, their consumers, a channel closed and a consumer cancelled, a connection closed.
const CLIENTS: &str = r#"---
format: 1
source: amqp://guest:****@127.0.0.1:5672/nova
vhost: nova
recorded_at: 2026-11-26T02:30:00Z
snapshot:
  vhosts:
  - name: nova
    exchanges: []
    queues:
    - {name: conductor, durable: false, exclusive: false, auto_delete: false, arguments: [], ready: 0, unacked: 0, consumers: 1}
    bindings: []
    connections:
    - id: 11
      name: 10.0.0.9:40000 -> 10.0.0.2:5672
      peer: 10.0.0.9:40000
      user: nova
      client: {connection_name: "nova-scheduler:77:0b6a", product: py-amqp}
    consumers:
    - {queue: conductor, tag: s-1, connection: 11, channel: 1, ack: true, prefetch: 5}
...
---
at: 2026-11-26T02:30:00.100Z
vhost: nova
connection: 7
kind: !ConnectionOpened
  peer: 10.0.0.5:53122
  user: nova
  client: {connection_name: "nova-conductor:4242:2c6f1e0a", product: py-amqp}
...
---
at: 2026-11-26T02:30:00.200Z
vhost: nova
connection: 7
channel: 1
kind: !ConsumerCreated
  queue: conductor
  consumer_tag: c-1
  no_ack: false
...
---
at: 2026-11-26T02:30:00.300Z
vhost: nova
connection: 8
kind: !ConnectionOpened
  peer: 127.0.0.1:5000
  user: guest
...
---
at: 2026-11-26T02:30:00.400Z
vhost: nova
connection: 8
channel: 1
kind: !ConsumerCreated
  queue: conductor
  consumer_tag: c-1
  no_ack: true
...
---
at: 2026-11-26T02:30:00.500Z
vhost: nova
connection: 8
channel: 1
kind: !ChannelClosed
  reason: closed by the client
...
---
at: 2026-11-26T02:30:00.600Z
vhost: nova
connection: 7
channel: 1
kind: !ConsumerCancelled
  queue: conductor
  consumer_tag: c-1
...
---
at: 2026-11-26T02:30:00.700Z
vhost: nova
connection: 11
kind: !ConnectionClosed
  reason: closed by the client
...
"#;

/// Connection labels, and consumers as `tag@connection/channel` (`ack` when manual).
fn clients(snapshot: &Snapshot) -> (Vec<String>, Vec<String>) {
    let v = snapshot.vhost("nova").unwrap();
    let connections = v
        .connections
        .iter()
        .map(|c| format!("{} {}", c.id, c.label()))
        .collect();
    let consumers = v
        .consumers
        .iter()
        .map(|c| {
            let ack = if c.ack { " ack" } else { "" };
            format!("{}:{}@{}/{}{ack}", c.queue, c.tag, c.connection, c.channel)
        })
        .collect();
    (connections, consumers)
}

#[test]
fn a_replay_lists_the_connections_and_consumers_at_its_position() {
    let trace = trace::parse(CLIENTS, Path::new("clients.yaml")).unwrap();
    let mut snapshot = trace.header.snapshot.clone();
    let mut seen = vec![clients(&snapshot)];
    for event in &trace.events {
        trace::apply(&mut snapshot, event);
        seen.push(clients(&snapshot));
    }
    let scheduler = "11 nova-scheduler";
    let s1 = "conductor:s-1@11/1 ack";
    let expected: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec![scheduler], vec![s1]),
        (vec![scheduler, "7 nova-conductor"], vec![s1]),
        (
            vec![scheduler, "7 nova-conductor"],
            vec!["conductor:c-1@7/1 ack", s1],
        ),
        // An older trace's ConnectionOpened says nothing of the client: its address.
        (
            vec![scheduler, "7 nova-conductor", "8 127.0.0.1:5000"],
            vec!["conductor:c-1@7/1 ack", s1],
        ),
        // The same tag on another channel is another consumer.
        (
            vec![scheduler, "7 nova-conductor", "8 127.0.0.1:5000"],
            vec!["conductor:c-1@7/1 ack", "conductor:c-1@8/1", s1],
        ),
        // Closing its channel takes that consumer away, and only that one.
        (
            vec![scheduler, "7 nova-conductor", "8 127.0.0.1:5000"],
            vec!["conductor:c-1@7/1 ack", s1],
        ),
        (
            vec![scheduler, "7 nova-conductor", "8 127.0.0.1:5000"],
            vec![s1],
        ),
        // A closed connection goes with its consumers.
        (vec!["7 nova-conductor", "8 127.0.0.1:5000"], vec![]),
    ];
    let expected: Vec<(Vec<String>, Vec<String>)> = expected
        .into_iter()
        .map(|(c, k)| {
            let owned = |v: Vec<&str>| v.into_iter().map(str::to_string).collect();
            (owned(c), owned(k))
        })
        .collect();
    assert_eq!(seen, expected);
}

/// Stepping back in a replay brings back the consumer the last event cancelled.
#[tokio::test]
async fn stepping_back_brings_back_a_cancelled_consumer() {
    let mut trace = trace::parse(CLIENTS, Path::new("clients.yaml")).unwrap();
    trace.events.truncate(6);
    let source = ReplaySource::start(trace, 100.0);
    let _reader = source.subscribe();
    wait_played(&source, 6).await;
    assert_eq!(clients(&source.snapshot()).1, ["conductor:s-1@11/1 ack"]);
    source.step_back();
    wait_played(&source, 5).await;
    assert_eq!(
        clients(&source.snapshot()).1,
        ["conductor:c-1@7/1 ack", "conductor:s-1@11/1 ack"]
    );
}

/// `record` on a RabbitMQ while a client named the way oslo.messaging names its connections
/// connects, consumes and publishes; the replayed trace lists that client and its consumer,
/// and the recorded publish and delivery name the same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_clients_replay_lists_it_and_its_consumer() {
    use futures_util::StreamExt;
    use lapin::options::BasicConsumeOptions;
    let vhost = TestVhost::new("record-clients").await;
    let path = temp_path("clients.yaml");
    let mut child = rabbitscope()
        .args(["record", &vhost.url(), "-o"])
        .arg(&path)
        .args(["--duration", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The header is written once the recorder has its first picture.
    let deadline = Instant::now() + Duration::from_secs(20);
    while trace::read(&path).is_err() {
        assert!(Instant::now() < deadline, "record wrote no header");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let name = format!("nova-conductor:4242:{}", unique("uuid"));
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let client = Connection::connect(&vhost.url(), properties).await.unwrap();
    let channel = client.create_channel().await.unwrap();
    channel
        .queue_declare(
            "conductor".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let consuming = client.create_channel().await.unwrap();
    let mut consumer = consuming
        .basic_consume(
            "conductor".into(),
            "conductor-1".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    // Publish until the trace holds the consumer (the management API lists it with its
    // statistics, seconds later) and a delivery to it (the firehose starts a moment after
    // the header).
    let deadline = Instant::now() + Duration::from_secs(40);
    let back = loop {
        assert!(Instant::now() < deadline, "the trace never held both");
        channel
            .basic_publish(
                "".into(),
                "conductor".into(),
                BasicPublishOptions::default(),
                b"build_and_run_instance",
                BasicProperties::default(),
            )
            .await
            .unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(1), consumer.next()).await;
        let back = trace::read(&path).unwrap();
        let has = |wanted: fn(&EventKind) -> bool| back.events.iter().any(|e| wanted(&e.kind));
        // The API's consumer and connection listings are refreshed apart: a consumer can be
        // listed a poll before its connection, or before its channel's details (then on no
        // connection, and on its own the next poll).
        let consumer_placed = back.events.iter().any(|e| {
            matches!(e.kind, EventKind::ConsumerCreated { .. })
                && e.connection.is_some_and(|c| c != 0)
        });
        if consumer_placed
            && has(|k| matches!(k, EventKind::ConnectionOpened { .. }))
            && has(|k| matches!(k, EventKind::Delivered { .. }))
        {
            break back;
        }
    };
    // SAFETY: kill only sends a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert!(child.wait().unwrap().success());

    let replayed = common::replayed_to_end(back.clone()).await;
    let v = replayed.vhost(&vhost.name).unwrap();
    let ours = v
        .connections
        .iter()
        .find(|c| c.label() == "nova-conductor")
        .unwrap_or_else(|| panic!("not listed: {:?}", v.connections));
    let consumers: Vec<(&str, &str, u64, u16, bool)> = v
        .consumers
        .iter()
        .map(|c| {
            (
                c.queue.as_str(),
                c.tag.as_str(),
                c.connection,
                c.channel,
                c.ack,
            )
        })
        .collect();
    assert_eq!(
        consumers,
        [("conductor", "conductor-1", ours.id, consuming.id(), false)]
    );
    let on = |wanted: fn(&EventKind) -> bool| {
        back.events
            .iter()
            .filter(|e| wanted(&e.kind))
            .map(|e| (e.connection, e.channel))
            .last()
    };
    assert_eq!(
        on(|k| matches!(k, EventKind::Published { .. })),
        Some((Some(ours.id), Some(channel.id())))
    );
    assert_eq!(
        on(|k| matches!(k, EventKind::Delivered { .. })),
        Some((Some(ours.id), Some(consuming.id())))
    );
    let _ = client.close(200, "done".into()).await;
    let _ = std::fs::remove_file(&path);
}
