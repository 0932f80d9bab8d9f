//! `rabbitscope broker --record`: the embedded broker writes what it routes as a trace, and the
//! trace has the shape `rabbitscope record` gives the same scenario on RabbitMQ
//! (127.0.0.1:5672, management on 15672, guest/guest, in a vhost of the test's own).

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use lapin::options::BasicAckOptions;
use lapin::{BasicProperties, ExchangeKind};

use rabbitscope::events::EventKind;
use rabbitscope::trace::{self, Trace};

mod common;
use common::client::{
    bind, channel, connect, consume, declare_exchange, declare_queue, declare_queue_with, int,
    next, publish, publish_with, table,
};
use common::process::{rabbitscope, spawn_broker};
use common::shape::{shape, Shape};
use common::unique;
use common::vhost::TestVhost;

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{}-{name}", unique("broker-record")))
}

/// The trace as far as it is written (None before its header is).
fn written(path: &Path) -> Option<Trace> {
    trace::read(path).ok()
}

/// Waits until the trace at `path` satisfies `done` and returns it.
async fn wait_for(path: &Path, what: &str, done: impl Fn(&Shape) -> bool) -> Trace {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let trace = written(path);
        let shape = trace.as_ref().map(|t| shape(t, str::to_string));
        if let (Some(trace), Some(shape)) = (trace, &shape) {
            if done(shape) {
                return trace;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the trace never held {what}: {shape:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const QUEUES: [&str; 2] = [
    "orders classic false false false [x-message-ttl=60000]",
    "reply_shape classic false false false [x-expires=1800000]",
];

/// Declares, binds, publishes (one message routed, one dropped), consumes and acks, and makes
/// a call answered on a reply queue, on `url` while `path` records it. Each step waits for the
/// one before, so the order of publishes and deliveries is the same on both brokers; the
/// publishes wait until the recorder knows the queues (RabbitMQ's learns them by polling).
async fn scenario(url: &str, path: &Path) {
    let conn = connect(url).await;
    let ch = channel(&conn).await;
    declare_exchange(&ch, "shop", ExchangeKind::Topic).await;
    declare_queue_with(&ch, "orders", table(&[("x-message-ttl", int(60_000))])).await;
    declare_queue_with(&ch, "reply_shape", table(&[("x-expires", int(1_800_000))])).await;
    bind(&ch, "orders", "shop", "order.*").await;
    wait_for(path, "the declarations", |s| {
        QUEUES.iter().all(|q| s.queues.contains(*q)) && !s.bindings.is_empty()
    })
    .await;

    // RabbitMQ's firehose is read a moment after the recorder starts: probe until it is.
    let deadline = Instant::now() + Duration::from_secs(40);
    while !written(path).is_some_and(|t| shape(&t, str::to_string).traffic.contains(&PROBE.into()))
    {
        assert!(Instant::now() < deadline, "no probe was ever recorded");
        assert_eq!(publish(&ch, "", "warm-up", "probe").await, "ack");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let worker = conn.create_channel().await.unwrap();
    let mut requests = consume(&worker, "orders", "worker", false).await;
    let caller = conn.create_channel().await.unwrap();
    let mut replies = consume(&caller, "reply_shape", "caller", true).await;

    assert_eq!(
        publish(&ch, "shop", "order.created", "created").await,
        "ack"
    );
    let created = next(&mut requests, Duration::from_secs(5)).await.unwrap();
    created.ack(BasicAckOptions::default()).await.unwrap();
    assert_eq!(publish(&ch, "shop", "nothing.here", "lost").await, "ack");

    let call = BasicProperties::default().with_reply_to("reply_shape".into());
    let sent = publish_with(&ch, "shop", "order.call", "call", call, false).await;
    assert_eq!(sent, "ack");
    let request = next(&mut requests, Duration::from_secs(5)).await.unwrap();
    let reply_to = request.properties.reply_to().clone().unwrap().to_string();
    request.ack(BasicAckOptions::default()).await.unwrap();
    assert_eq!(publish(&ch, "", &reply_to, "answer").await, "ack");
    let answer = next(&mut replies, Duration::from_secs(5)).await.unwrap();
    assert_eq!(&*answer.data, b"answer");
    let _ = conn.close(200, "done".into()).await;
}

/// What the probes sent until the recorder saw one are recorded as.
const PROBE: &str = "publish \"\" warm-up -> [] dropped";

/// The shape of a trace of [`scenario`], without its probes.
fn scenario_shape(trace: &Trace) -> Shape {
    let mut shape = shape(trace, str::to_string);
    shape.traffic.retain(|t| t != PROBE);
    shape
}

/// What a user reading either trace expects.
const TRAFFIC: [&str; 7] = [
    "publish \"shop\" order.created -> [orders] routed",
    "deliver orders",
    "publish \"shop\" nothing.here -> [] dropped",
    "publish \"shop\" order.call -> [orders] routed",
    "deliver orders",
    "publish \"\" reply_shape -> [reply_shape] routed",
    "deliver reply_shape",
];

/// A recorder that is stopped when the test ends, passed or not.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Stops a recorder with SIGINT, as a user's Ctrl-C does, and waits for it to exit.
fn interrupt(mut running: Running) {
    let mut child = running.0.take().unwrap();
    // SAFETY: kill only sends a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

async fn recorded_from_the_embedded_broker(vhost: &str) -> Trace {
    let path = temp_path("embedded.yaml");
    let broker = spawn_broker(
        rabbitscope()
            .args(["broker", "--transient", "--listen", "127.0.0.1:0"])
            .args(["--vhost", vhost, "--record"])
            .arg(&path)
            .args(["--record-vhost", vhost]),
    );
    let address = broker.field("address=");
    let running = Running(Some(broker.child));
    // The header is written before the address is announced.
    let header = written(&path).expect("a header once the broker listens");
    assert!(header.events.is_empty(), "{:?}", header.events);
    scenario(&format!("amqp://guest:guest@{address}/{vhost}"), &path).await;
    // Another vhost's traffic is not the recording's.
    let other = connect(&format!("amqp://guest:guest@{address}/%2f")).await;
    let ch = channel(&other).await;
    declare_queue(&ch, "elsewhere").await;
    assert_eq!(publish(&ch, "", "elsewhere", "not recorded").await, "ack");
    let _ = other.close(200, "done".into()).await;
    let lines = broker.lines;
    interrupt(running);
    // Read to the end: the pipe closes when the broker has exited.
    let said: Vec<String> = lines.iter().collect();
    assert!(
        said.iter().any(|l| l.contains("trace written")),
        "the broker said {said:#?}"
    );
    let trace = trace::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    trace
}

async fn recorded_from_rabbitmq(vhost: &TestVhost) -> Trace {
    let path = temp_path("rabbitmq.yaml");
    let running = Running(Some(
        rabbitscope()
            .args(["record", &vhost.url(), "-o"])
            .arg(&path)
            .args(["--duration", "120"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    scenario(&vhost.url(), &path).await;
    // The firehose is read a moment after the messages went.
    wait_for(&path, "every publish and delivery", |s| {
        s.traffic.iter().filter(|t| *t != PROBE).count() >= TRAFFIC.len()
    })
    .await;
    interrupt(running);
    let trace = trace::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    trace
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_records_a_trace_shaped_as_rabbitmqs() {
    let vhost = TestVhost::new("broker-record").await;
    let embedded = recorded_from_the_embedded_broker(&vhost.name).await;

    assert!(!embedded.truncated);
    assert_eq!(embedded.header.vhost, vhost.name);
    assert!(
        embedded
            .header
            .source
            .starts_with("embedded broker amqp://127.0.0.1:"),
        "{}",
        embedded.header.source
    );
    assert!(embedded.events.iter().all(|e| *e.vhost == *vhost.name));
    let ours = scenario_shape(&embedded);
    assert_eq!(ours.traffic, TRAFFIC);
    for queue in QUEUES {
        assert!(ours.queues.contains(queue), "{queue} in {:?}", ours.queues);
    }
    assert!(ours.exchanges.contains("shop topic false false false []"));
    assert!(ours.bindings.contains("shop -> orders order.* []"));
    let kinds =
        |wanted: fn(&EventKind) -> bool| embedded.events.iter().filter(|e| wanted(&e.kind)).count();
    // What only the embedded broker can tell: acks and the clients themselves.
    assert_eq!(kinds(|k| matches!(k, EventKind::Acked { .. })), 2);
    assert_eq!(kinds(|k| matches!(k, EventKind::ConsumerCreated { .. })), 2);
    assert_eq!(
        kinds(|k| matches!(k, EventKind::ConnectionOpened { .. })),
        1
    );
    assert_eq!(
        kinds(|k| matches!(k, EventKind::ConnectionClosed { .. })),
        1
    );

    // A replay reads it: played to its end, the topology is the one recorded.
    let replayed = common::replayed_to_end(embedded.clone()).await;
    let mut queues: Vec<String> = replayed
        .vhost(&vhost.name)
        .unwrap()
        .queues
        .iter()
        .map(|q| q.name.clone())
        .collect();
    queues.sort();
    assert_eq!(queues, ["orders", "reply_shape"]);

    let reference = recorded_from_rabbitmq(&vhost).await;
    let theirs = scenario_shape(&reference);
    assert_eq!(ours, theirs, "embedded (left) and RabbitMQ (right) traces");
}

#[test]
fn record_vhost_must_exist() {
    let path = temp_path("no-vhost.yaml");
    let output = rabbitscope()
        .args([
            "broker",
            "--transient",
            "--listen",
            "127.0.0.1:0",
            "--record",
        ])
        .arg(&path)
        .args(["--record-vhost", "nowhere"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("--record-vhost nowhere: the broker has no such vhost"),
        "{stderr}"
    );
    assert!(!path.exists(), "no trace is begun");
}

/// What `record_vhost` writes: the events of its vhost and the node's alarms, in order,
/// including those already on the stream when it is told to stop.
#[tokio::test]
async fn one_vhost_is_recorded_up_to_the_stop() {
    use rabbitscope::events::{AlarmResource, Event, EventBus};
    use std::time::SystemTime;
    let event = |vhost: &str, kind: EventKind| Event {
        at: SystemTime::now(),
        vhost: vhost.into(),
        connection: None,
        channel: None,
        kind,
    };
    let expired = |n| EventKind::Expired {
        message_id: n,
        queue: "q".into(),
    };
    let bus = EventBus::new(16);
    let reader = bus.subscribe();
    bus.emit(event("nova", expired(1)));
    bus.emit(event("/", expired(2)));
    bus.emit(event(
        "",
        EventKind::AlarmOn {
            resource: AlarmResource::Memory,
        },
    ));
    bus.emit(event("nova", expired(3)));
    let path = temp_path("one-vhost.yaml");
    let header = trace::Header {
        format: trace::FORMAT_VERSION,
        source: "test".into(),
        vhost: "nova".into(),
        recorded_at: SystemTime::now(),
        snapshot: Default::default(),
    };
    let mut writer = trace::TraceWriter::create(&path, &header).unwrap();
    // Stopped before it starts: all it writes is what was already sent.
    let recorded = trace::record_vhost(reader, &mut writer, "nova", std::future::ready(()))
        .await
        .unwrap();
    writer.finish().unwrap();
    assert_eq!(recorded.events, 3);
    let back = trace::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let seen: Vec<(String, EventKind)> = back
        .events
        .into_iter()
        .map(|e| (e.vhost.to_string(), e.kind))
        .collect();
    assert_eq!(
        seen,
        [
            ("nova".to_string(), expired(1)),
            (
                String::new(),
                EventKind::AlarmOn {
                    resource: AlarmResource::Memory
                }
            ),
            ("nova".to_string(), expired(3)),
        ]
    );
}
