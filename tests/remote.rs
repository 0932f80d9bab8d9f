//! Remote mode against the RabbitMQ on this machine (127.0.0.1:5672, management on 15672,
//! guest/guest). Each test works in a vhost of its own, made through the management API and
//! deleted at the end, so tests running side by side (and lesson checks on `/`) never see each
//! other's objects or tracing.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeBindOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

use rabbitscope::broker::{Broker, BrokerConfig, Snapshot};
use rabbitscope::events::{Event, EventKind, PublishFate, Received};
use rabbitscope::remote::{Endpoint, Management, RemoteOptions, RemoteSource};
use rabbitscope::source::Source;

mod common;
use common::process::{rabbitscope, spawn_broker};
use common::pty;
use common::vhost::TestVhost;

async fn exchange(ch: &Channel, name: &str, kind: ExchangeKind, opts: ExchangeDeclareOptions) {
    ch.exchange_declare(name.into(), kind, opts, FieldTable::default())
        .await
        .unwrap();
}

async fn queue(ch: &Channel, name: &str, opts: QueueDeclareOptions, args: FieldTable) {
    ch.queue_declare(name.into(), opts, args).await.unwrap();
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        args,
    )
    .await
    .unwrap();
}

fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// A topology with every kind of object: durable, auto-delete and internal exchanges, queue
/// arguments, the three queue types, an exchange-to-exchange binding and a headers binding
/// with arguments.
async fn declare_sample(ch: &Channel) {
    exchange(
        ch,
        "orders",
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
    )
    .await;
    exchange(
        ch,
        "fan",
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
    )
    .await;
    exchange(
        ch,
        "inside",
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            internal: true,
            durable: true,
            ..Default::default()
        },
    )
    .await;
    exchange(ch, "docs", ExchangeKind::Headers, Default::default()).await;
    queue(
        ch,
        "eu",
        durable(),
        table(&[
            ("x-message-ttl", AMQPValue::LongInt(60000)),
            (
                "x-dead-letter-exchange",
                AMQPValue::LongString(LongString::from("fan")),
            ),
        ]),
    )
    .await;
    queue(
        ch,
        "temp",
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await;
    queue(ch, "pdf", durable(), FieldTable::default()).await;
    for (name, kind) in [("billing", "quorum"), ("audit", "stream")] {
        let kind = AMQPValue::LongString(LongString::from(kind));
        queue(ch, name, durable(), table(&[("x-queue-type", kind)])).await;
    }
    bind(ch, "eu", "orders", "eu.#", FieldTable::default()).await;
    bind(ch, "temp", "fan", "", FieldTable::default()).await;
    bind(
        ch,
        "pdf",
        "docs",
        "",
        table(&[
            ("x-match", AMQPValue::LongString(LongString::from("all"))),
            ("format", AMQPValue::LongString(LongString::from("pdf"))),
        ]),
    )
    .await;
    ch.exchange_bind(
        "fan".into(),
        "orders".into(),
        "#".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = rabbitscope().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `rabbitmqctl list_... -p VHOST columns` as rows of tab-separated fields.
fn rabbitmqctl(what: &str, vhost: &str, columns: &[&str]) -> BTreeSet<Vec<String>> {
    let out = Command::new("rabbitmqctl")
        .args([what, "-p", vhost, "--quiet", "--no-table-headers"])
        .args(columns)
        .output()
        .unwrap();
    assert!(out.status.success(), "rabbitmqctl {what} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_agrees_with_rabbitmqctl() {
    let vhost = TestVhost::new("snap").await;
    let (connection, ch) = vhost.channel().await;
    declare_sample(&ch).await;

    let (ok, json, err) = run(&[
        "snapshot",
        &vhost.url(),
        "--vhost",
        &vhost.name,
        "--format",
        "json",
    ]);
    assert!(ok, "{err}");
    let snapshot: serde_json::Value = serde_json::from_str(&json).unwrap();
    let v = &snapshot["vhosts"][0];
    assert_eq!(v["name"], vhost.name.as_str());
    let field = |x: &serde_json::Value, name: &str| match &x[name] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };

    let exchanges: BTreeSet<Vec<String>> = v["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            ["name", "kind", "durable", "auto_delete", "internal"]
                .iter()
                .map(|f| field(x, f))
                .collect()
        })
        .collect();
    let listed = rabbitmqctl(
        "list_exchanges",
        &vhost.name,
        &["name", "type", "durable", "auto_delete", "internal"],
    );
    assert_eq!(exchanges, listed);

    let queues: BTreeSet<Vec<String>> = v["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            ["name", "queue_type", "durable", "auto_delete"]
                .iter()
                .map(|f| field(q, f))
                .collect()
        })
        .collect();
    let listed = rabbitmqctl(
        "list_queues",
        &vhost.name,
        &["name", "type", "durable", "auto_delete"],
    );
    assert_eq!(queues, listed);
    let eu = v["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "eu")
        .unwrap();
    // Arguments are a map, as RabbitMQ's own API and definitions write them.
    assert_eq!(eu["arguments"]["x-message-ttl"], "60000", "{eu}");

    let bindings: BTreeSet<Vec<String>> = v["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let kind = if b["destination_is_exchange"] == true {
                "exchange"
            } else {
                "queue"
            };
            vec![
                field(b, "source"),
                field(b, "destination"),
                kind.to_string(),
                field(b, "routing_key"),
            ]
        })
        .collect();
    // rabbitmqctl also lists the default exchange's implicit bindings; a snapshot does not.
    let listed: BTreeSet<Vec<String>> = rabbitmqctl(
        "list_bindings",
        &vhost.name,
        &[
            "source_name",
            "destination_name",
            "destination_kind",
            "routing_key",
        ],
    )
    .into_iter()
    .filter(|row| !row[0].is_empty())
    .collect();
    assert_eq!(bindings, listed);
    assert_eq!(bindings.len(), 4);

    let (ok, dot, err) = run(&[
        "snapshot",
        &vhost.url(),
        "--vhost",
        &vhost.name,
        "--format",
        "dot",
    ]);
    assert!(ok, "{err}");
    assert!(dot.starts_with("digraph"));
    assert!(dot.contains("/queue/eu\" [shape=cylinder"));
    assert!(dot.contains("/exchange/orders\" [shape=box"));
    assert!(dot.contains("[label=\"eu.#\"]"));
    let (ok, yaml, err) = run(&[
        "snapshot",
        &vhost.url(),
        "--vhost",
        &vhost.name,
        "--format",
        "yaml",
    ]);
    assert!(ok, "{err}");
    assert!(yaml.contains("name: eu"), "{yaml}");
    connection.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn definitions_load_into_the_embedded_broker() {
    let vhost = TestVhost::new("defs").await;
    let (connection, ch) = vhost.channel().await;
    declare_sample(&ch).await;
    // An exclusive queue dies with its connection: definitions leave it out.
    queue(
        &ch,
        "mine",
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await;

    let (ok, text, err) = run(&[
        "snapshot",
        &vhost.url(),
        "--vhost",
        &vhost.name,
        "--format",
        "definitions",
    ]);
    assert!(ok, "{err}");
    let file = std::env::temp_dir().join(format!("{}.json", vhost.name));
    std::fs::write(&file, &text).unwrap();
    let defs = rabbitscope::definitions::read_file(&file).unwrap();

    // And through the real binary: guest opens the vhost and finds the queue, bound.
    let mut broker_process = spawn_broker(
        rabbitscope()
            .args(["broker", "--transient", "--listen", "127.0.0.1:0"])
            .arg("--definitions")
            .arg(&file),
    );
    let address = broker_process.field("address=");
    let local_url = format!("amqp://guest:guest@{address}/{}", vhost.name);
    let local = Connection::connect(&local_url, ConnectionProperties::default())
        .await
        .expect("the embedded broker answers once it announced its address");
    let local_ch = local.create_channel().await.unwrap();
    local_ch
        .queue_declare(
            "eu".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    local.close(200, "OK".into()).await.unwrap();
    // SAFETY: kill only sends a signal to our own child.
    unsafe { libc::kill(broker_process.child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(broker_process.child.wait().unwrap().success());
    std::fs::remove_file(&file).unwrap();
    let config = defs.configure(BrokerConfig::default()).unwrap();
    let guest = config.users.iter().find(|u| u.name == "guest").unwrap();
    assert!(
        guest.permission(&vhost.name).is_some(),
        "guest may not use the loaded vhost"
    );
    let broker = Broker::new(config);
    defs.declare(&broker).unwrap();

    let remote = rabbitscope::remote::snapshot(&vhost.management)
        .await
        .unwrap();
    let remote = remote.vhost(&vhost.name).unwrap();
    let local = broker.snapshot();
    let local = local.vhost(&vhost.name).expect("the vhost was created");
    let own = |name: &str| !name.is_empty() && !name.starts_with("amq.");
    let exchanges = |v: &rabbitscope::broker::VhostSnapshot| {
        v.exchanges
            .iter()
            .filter(|x| own(&x.name))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(exchanges(local), exchanges(remote));
    assert_eq!(exchanges(local).len(), 4);
    let queues = |v: &rabbitscope::broker::VhostSnapshot| {
        v.queues
            .iter()
            .filter(|q| !q.exclusive)
            .map(|q| {
                (
                    q.name.clone(),
                    q.queue_type,
                    q.durable,
                    q.auto_delete,
                    q.arguments.clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(queues(local), queues(remote));
    assert_eq!(queues(local).len(), 5);
    let mut remote_bindings = remote.bindings.clone();
    remote_bindings.retain(|b| b.destination.as_ref() != "mine");
    assert_eq!(local.bindings, remote_bindings);
    connection.close(200, "OK".into()).await.unwrap();
}

/// Reads events until one `wanted` returns something for, or the time is up.
async fn wait_for<T>(
    reader: &mut rabbitscope::events::EventReader,
    within: Duration,
    mut wanted: impl FnMut(&EventKind) -> Option<T>,
) -> Option<T> {
    wait_for_event(reader, within, |e| wanted(&e.kind)).await
}

/// [`wait_for`] with the whole event: its connection and channel too.
async fn wait_for_event<T>(
    reader: &mut rabbitscope::events::EventReader,
    within: Duration,
    mut wanted: impl FnMut(&Event) -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, reader.recv()).await {
            Err(_) => return None,
            Ok(Received::Event(e)) => {
                if let Some(found) = wanted(&e) {
                    return Some(found);
                }
            }
            Ok(Received::Missed(_)) => {}
            Ok(Received::Closed) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_source_sees_another_clients_declarations() {
    let vhost = TestVhost::new("watch").await;
    let interval = Duration::from_millis(500);
    let source = RemoteSource::start(
        vhost.endpoint(),
        RemoteOptions {
            interval,
            trace: false,
        },
    )
    .unwrap();
    assert!(source.refreshed(1, Duration::from_secs(10)).await);
    assert!(source.trouble().is_none(), "{:?}", source.trouble());
    let mut events = source.subscribe();

    let (connection, ch) = vhost.channel().await;
    exchange(&ch, "news", ExchangeKind::Fanout, Default::default()).await;
    queue(&ch, "reader", durable(), FieldTable::default()).await;
    bind(&ch, "reader", "news", "", FieldTable::default()).await;
    let declared_at = Instant::now();
    let mut seen = BTreeSet::new();
    let found = wait_for(&mut events, Duration::from_secs(10), |kind| {
        match kind {
            EventKind::ExchangeDeclared { name, .. } if &**name == "news" => {
                seen.insert("exchange");
            }
            EventKind::QueueDeclared { name, .. } if &**name == "reader" => {
                seen.insert("queue");
            }
            EventKind::BindingCreated(b) if &*b.source == "news" => {
                seen.insert("binding");
            }
            _ => {}
        }
        (seen.len() == 3).then_some(())
    })
    .await;
    assert!(found.is_some(), "saw only {seen:?}");
    // One refresh, plus the time a refresh takes.
    assert!(declared_at.elapsed() < interval * 2 + Duration::from_secs(2));
    let snapshot: Snapshot = source.snapshot();
    let v = snapshot.vhost(&vhost.name).unwrap();
    assert!(v.queues.iter().any(|q| q.name == "reader"));

    ch.queue_delete("reader".into(), Default::default())
        .await
        .unwrap();
    let gone = wait_for(&mut events, Duration::from_secs(10), |kind| {
        matches!(kind, EventKind::QueueDeleted { name } if &**name == "reader").then_some(())
    })
    .await;
    assert!(gone.is_some());
    connection.close(200, "OK".into()).await.unwrap();
    source.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_firehose_reports_the_queues_a_message_reached() {
    let vhost = TestVhost::new("trace").await;
    let (connection, ch) = vhost.channel().await;
    exchange(&ch, "routes", ExchangeKind::Topic, Default::default()).await;
    for (q, key) in [("q1", "a.*"), ("q2", "*.b"), ("q3", "c.#")] {
        queue(&ch, q, durable(), FieldTable::default()).await;
        bind(&ch, q, "routes", key, FieldTable::default()).await;
    }
    assert!(!vhost.management.tracing(&vhost.name).await.unwrap());
    let source = traced_source(&vhost);
    let mut events = source.subscribe();
    // The firehose is bound some time after start: publish until one shows.
    let mut published = None;
    for _ in 0..40 {
        ch.basic_publish(
            "routes".into(),
            "a.b".into(),
            BasicPublishOptions::default(),
            b"hello",
            BasicProperties::default(),
        )
        .await
        .unwrap();
        published = wait_for(&mut events, Duration::from_millis(300), |kind| match kind {
            EventKind::Published {
                exchange,
                routing_key,
                queues,
                fate,
                body_preview,
                ..
            } if &**exchange == "routes" && &**routing_key == "a.b" => Some((
                queues
                    .iter()
                    .map(|q| q.to_string())
                    .collect::<BTreeSet<_>>(),
                fate.clone(),
                body_preview.clone(),
            )),
            _ => None,
        })
        .await;
        if published.is_some() {
            break;
        }
    }
    let (queues, fate, body) = published.expect("no Published event from the firehose");
    assert_eq!(queues, BTreeSet::from(["q1".to_string(), "q2".to_string()]));
    assert_eq!(fate, PublishFate::Routed);
    assert_eq!(&body[..], b"hello");
    assert!(source.turned_tracing_on());
    assert!(vhost.management.tracing(&vhost.name).await.unwrap());

    ch.basic_publish(
        "routes".into(),
        "x.y".into(),
        BasicPublishOptions::default(),
        b"lost",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let dropped = wait_for(&mut events, Duration::from_secs(5), |kind| match kind {
        EventKind::Published {
            routing_key, fate, ..
        } if &**routing_key == "x.y" => Some(fate.clone()),
        _ => None,
    })
    .await;
    assert_eq!(dropped, Some(PublishFate::Dropped));

    // A get is a delivery too.
    let got = ch
        .basic_get(
            "q1".into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap();
    assert!(got.is_some());
    let delivered = wait_for(&mut events, Duration::from_secs(5), |kind| match kind {
        EventKind::Delivered { queue, .. } if &**queue == "q1" => Some(()),
        _ => None,
    })
    .await;
    assert!(delivered.is_some());

    source.close().await;
    assert!(
        !vhost.management.tracing(&vhost.name).await.unwrap(),
        "tracing was left on"
    );
    connection.close(200, "OK".into()).await.unwrap();
}

/// Starts `rabbitscope tap`, publishes until it prints `lines` lines, and returns them.
async fn tap(vhost: &TestVhost, extra: &[&str], publish: &[(&str, &str)]) -> Vec<String> {
    tap_as(vhost, extra, publish, None, b"m").await
}

/// [`tap`], publishing `body` on a connection with this `connection_name`, if any.
async fn tap_as(
    vhost: &TestVhost,
    extra: &[&str],
    publish: &[(&str, &str)],
    connection_name: Option<&str>,
    body: &[u8],
) -> Vec<String> {
    let mut child = rabbitscope()
        .args(["tap", &vhost.url()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = lines_tx.send(line.unwrap());
        }
    });
    let (connection, ch) = match connection_name {
        None => vhost.channel().await,
        Some(name) => {
            let properties = ConnectionProperties::default().with_connection_name(name.into());
            let connection = Connection::connect(&vhost.url(), properties).await.unwrap();
            let channel = connection.create_channel().await.unwrap();
            (connection, channel)
        }
    };
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success(), "tap failed");
            break;
        }
        for (exchange, key) in publish {
            ch.basic_publish(
                (*exchange).into(),
                (*key).into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default(),
            )
            .await
            .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    reader.join().unwrap();
    while let Ok(line) = lines_rx.try_recv() {
        lines.push(line);
    }
    connection.close(200, "OK".into()).await.unwrap();
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn tap_prints_each_route_and_turns_tracing_off() {
    let vhost = TestVhost::new("tap").await;
    let (connection, ch) = vhost.channel().await;
    exchange(&ch, "routes", ExchangeKind::Topic, Default::default()).await;
    for (q, key) in [("q1", "a.*"), ("q2", "*.b"), ("q3", "c.#")] {
        queue(&ch, q, durable(), FieldTable::default()).await;
        bind(&ch, q, "routes", key, FieldTable::default()).await;
    }
    connection.close(200, "OK".into()).await.unwrap();

    let lines = tap(
        &vhost,
        &["--count", "2", "--filter", "^routes "],
        &[("routes", "zzz"), ("amq.direct", "a.b"), ("routes", "a.b")],
    )
    .await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    let line = regex::Regex::new(r"^\d\d:\d\d:\d\d\.\d{3} routes (\S+) (.*)$").unwrap();
    for l in &lines {
        let c = line.captures(l).unwrap_or_else(|| panic!("odd line {l:?}"));
        match &c[1] {
            "zzz" => assert_eq!(&c[2], "unroutable"),
            "a.b" => assert!(&c[2] == "-> q1, q2" || &c[2] == "-> q2, q1", "{l:?}"),
            other => panic!("unexpected key {other}"),
        }
    }
    assert!(
        !vhost.management.tracing(&vhost.name).await.unwrap(),
        "tracing was left on"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tap_says_why_a_message_was_unroutable() {
    let vhost = TestVhost::new("tapwhy").await;
    let (connection, ch) = vhost.channel().await;
    exchange(&ch, "nova", ExchangeKind::Topic, Default::default()).await;
    for host in ["compute.node1", "compute.node2"] {
        queue(&ch, host, durable(), FieldTable::default()).await;
        bind(&ch, host, "nova", host, FieldTable::default()).await;
    }
    connection.close(200, "OK".into()).await.unwrap();

    let lines = tap(
        &vhost,
        &["--count", "1", "--why", "--filter", "compute.node3"],
        &[("nova", "compute.node1"), ("nova", "compute.node3")],
    )
    .await;
    assert!(
        lines[0].ends_with(" nova compute.node3 unroutable"),
        "{lines:?}"
    );
    assert_eq!(
        lines[1..],
        [
            "  no binding pattern of 'nova' (2 bindings) matches 'compute.node3'",
            "    'compute.node1' -> compute.node1: word 2 is 'node3', the pattern wants 'node1'",
            "    'compute.node2' -> compute.node2: word 2 is 'node3', the pattern wants 'node2'",
            "  whether it was published mandatory is not known (RabbitMQ's trace does not say)",
        ]
    );
}

/// An oslo.messaging message's line says who published it, by its connection's
/// `connection_name`, and what it says; another message's line is as before.
#[tokio::test(flavor = "multi_thread")]
async fn tap_names_the_publishing_service_and_the_method() {
    let vhost = TestVhost::new("taposlo").await;
    let (connection, ch) = vhost.channel().await;
    exchange(&ch, "nova", ExchangeKind::Topic, Default::default()).await;
    queue(&ch, "conductor", durable(), FieldTable::default()).await;
    bind(&ch, "conductor", "nova", "conductor", FieldTable::default()).await;
    connection.close(200, "OK".into()).await.unwrap();
    let cast = include_bytes!("fixtures/oslo/cast.json");
    let name = "nova-api:13593:1ca4c61a-6a92-478b-9c07-be2a30443aa8";
    // tap learns connections from the management API, which may list a new one a moment
    // later: the casts published meanwhile are named from then on.
    let lines = tap_as(
        &vhost,
        &["--count", "40"],
        &[("nova", "conductor")],
        Some(name),
        cast,
    )
    .await;
    let named = " nova conductor -> conductor  nova-api: cast schedule_and_build_instances 1.17";
    assert!(lines.iter().any(|l| l.ends_with(named)), "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| l.ends_with(named) || l.ends_with(" cast schedule_and_build_instances 1.17")),
        "{lines:?}"
    );
    let plain = tap(&vhost, &["--count", "1"], &[("nova", "conductor")]).await;
    assert!(
        plain[0].ends_with(" nova conductor -> conductor"),
        "{plain:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tap_turns_tracing_off_on_sigint() {
    let vhost = TestVhost::new("tapint").await;
    let mut child = rabbitscope()
        .args(["tap", &vhost.url()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !vhost.management.tracing(&vhost.name).await.unwrap() {
        assert!(Instant::now() < deadline, "tap never turned tracing on");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // SAFETY: kill only sends a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(!vhost.management.tracing(&vhost.name).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn trouble_is_told_without_the_password() {
    let secret = "s3cr3t-Wrong";
    let wrong = Endpoint::new(&format!("amqp://guest:{secret}@127.0.0.1:5672/%2f"), None).unwrap();
    let source = RemoteSource::start(
        wrong,
        RemoteOptions {
            interval: Duration::from_millis(200),
            trace: true,
        },
    )
    .unwrap();
    let started = Instant::now();
    let _ = source.snapshot();
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "snapshot() waited"
    );
    let trouble = wait_trouble(&source, |t| t.contains("401")).await;
    assert!(
        trouble.contains("management API at http://127.0.0.1:15672"),
        "{trouble}"
    );
    assert!(trouble.contains("retrying in"), "{trouble}");
    assert!(!trouble.contains(secret), "{trouble}");
    source.close().await;

    let unreachable = Endpoint::new(
        &format!("amqp://guest:{secret}@127.0.0.1:1/%2f"),
        Some("http://127.0.0.1:1"),
    )
    .unwrap();
    let source = RemoteSource::start(
        unreachable,
        RemoteOptions {
            interval: Duration::from_millis(200),
            trace: true,
        },
    )
    .unwrap();
    let trouble = wait_trouble(&source, |t| t.contains("connection refused")).await;
    assert!(
        trouble.contains("management API at http://127.0.0.1:1: connection refused; retrying in"),
        "{trouble}"
    );
    assert!(!trouble.contains(secret), "{trouble}");
    assert!(!trouble.contains('\n'), "{trouble}");
    source.close().await;

    let (ok, _, err) = run(&[
        "snapshot",
        &format!("amqp://guest:{secret}@127.0.0.1:5672/%2f"),
    ]);
    assert!(!ok);
    assert!(err.contains("401"), "{err}");
    assert!(!err.contains(secret), "{err}");
}

async fn wait_trouble(source: &RemoteSource, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(t) = source.trouble() {
            if wanted(&t) {
                return t;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no such trouble: {:?}",
            source.trouble()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A TCP forwarder that can be cut (listener and every connection gone, as when a broker
/// restarts) and restored on the same port.
struct Proxy {
    port: u16,
    target: u16,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Proxy {
            port,
            target,
            tasks: Default::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let tasks = self.tasks.clone();
        let target = self.target;
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let forward = tokio::spawn(async move {
                    if let Ok(mut server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(forward);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    async fn restore(&self) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(([127, 0, 0, 1], self.port).into()).unwrap();
        self.serve(socket.listen(128).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn watching_recovers_when_the_broker_comes_back() {
    let vhost = TestVhost::new("restart").await;
    let management = Proxy::start(15672).await;
    let amqp = Proxy::start(5672).await;
    let endpoint = Endpoint::new(
        &format!("amqp://guest:guest@127.0.0.1:{}/{}", amqp.port, vhost.name),
        Some(&format!("http://127.0.0.1:{}", management.port)),
    )
    .unwrap();
    let source = RemoteSource::start(
        endpoint,
        RemoteOptions {
            interval: Duration::from_millis(300),
            trace: true,
        },
    )
    .unwrap();
    let mut events = source.subscribe();
    let (connection, ch) = vhost.channel().await;
    queue(&ch, "seen", durable(), FieldTable::default()).await;

    // Publishes to the default exchange until the firehose reports one.
    async fn traced(ch: &Channel, events: &mut rabbitscope::events::EventReader) -> bool {
        for _ in 0..60 {
            ch.basic_publish(
                "".into(),
                "seen".into(),
                BasicPublishOptions::default(),
                b"x",
                BasicProperties::default(),
            )
            .await
            .unwrap();
            let found = wait_for(events, Duration::from_millis(300), |kind| {
                matches!(kind, EventKind::Published { routing_key, .. } if &**routing_key == "seen")
                    .then_some(())
            })
            .await;
            if found.is_some() {
                return true;
            }
        }
        false
    }
    assert!(traced(&ch, &mut events).await, "no trace before the cut");

    management.cut();
    amqp.cut();
    let trouble = wait_trouble(&source, |t| t.contains("connection refused")).await;
    assert!(trouble.contains("retrying in"), "{trouble}");

    management.restore().await;
    amqp.restore().await;
    let deadline = Instant::now() + Duration::from_secs(40);
    while source.trouble().is_some() {
        assert!(
            Instant::now() < deadline,
            "still in trouble: {:?}",
            source.trouble()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    queue(&ch, "after", durable(), FieldTable::default()).await;
    let declared = wait_for(&mut events, Duration::from_secs(10), |kind| {
        matches!(kind, EventKind::QueueDeclared { name, .. } if &**name == "after").then_some(())
    })
    .await;
    assert!(declared.is_some(), "no topology after recovery");
    assert!(
        traced(&ch, &mut events).await,
        "the firehose did not come back"
    );

    source.close().await;
    assert!(!vhost.management.tracing(&vhost.name).await.unwrap());
    connection.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_embedded_broker_is_told_apart() {
    let broker = Broker::new(BrokerConfig::default());
    let server = rabbitscope::amqp::Server::bind(broker, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let port = server.local_addr().port();
    tokio::spawn(server.run());
    let (ok, _, err) = run(&[
        "snapshot",
        &format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
    ]);
    assert!(!ok);
    assert!(
        err.contains("embedded broker, which has no management API"),
        "{err}"
    );
    assert!(err.contains("guest:****@"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn queues_come_in_pages_when_one_answer_would_pass_the_limit() {
    // Exactly two pages (asking for a third would be an error from the API), each queue with
    // an argument of 1 KiB: about 0.6 MiB a page, 1.3 MiB in all, past a limit of 1 MiB.
    let count = 2 * rabbitscope::remote::management::PAGE_SIZE;
    let vhost = TestVhost::new("pages").await;
    let (connection, ch) = vhost.channel().await;
    let note = table(&[("note", AMQPValue::LongString("n".repeat(1024).into()))]);
    for i in 0..count {
        ch.queue_declare(
            format!("q{i:05}").as_str().into(),
            QueueDeclareOptions::default(),
            note.clone(),
        )
        .await
        .unwrap();
    }
    let mut endpoint = vhost.endpoint();
    endpoint.max_response = 1 << 20;
    // The vhost's queues alone: the test's limit is not meant for the rest of the broker.
    let management = Management::new(&endpoint).unwrap();
    let queues = management.queues(&vhost.name).await.unwrap();
    assert_eq!(queues.len(), count);
    assert_eq!(queues[count - 1].name, format!("q{:05}", count - 1));

    // Each page is held to the limit too: with 512 KiB, the first page is too large.
    endpoint.max_response = 512 << 10;
    let error = Management::new(&endpoint)
        .unwrap()
        .queues(&vhost.name)
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(
        error.kind,
        rabbitscope::remote::management::ErrorKind::TooLarge,
        "{error}"
    );
    connection.close(200, "OK".into()).await.unwrap();
}

/// What a snapshot says of each queue: name, messages, consumers, node, leader, members.
type QueueFacts = BTreeSet<(
    String,
    usize,
    usize,
    Option<String>,
    Option<String>,
    Vec<String>,
)>;

async fn queue_facts(management: &rabbitscope::remote::Management, vhost: &str) -> QueueFacts {
    let snapshot = rabbitscope::remote::snapshot::one_vhost(
        management,
        vhost,
        rabbitscope::remote::snapshot::Lag::Ask,
    )
    .await
    .unwrap();
    (snapshot.vhosts[0].queues.iter())
        .map(|q| {
            let q = q.clone();
            (
                q.name,
                q.ready + q.unacked,
                q.consumers,
                q.node,
                q.leader,
                q.members,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn queues_read_without_statistics_say_what_rabbitmq_says() {
    // An administrator's snapshot reads the queues without their statistics and counts
    // consumers from the consumers listing; a user with the `management` tag alone is listed
    // only its own consumers, so its snapshot reads the statistics. Both must say what
    // rabbitmqctl says, and name the same nodes.
    let vhost = TestVhost::new("nostats").await;
    let (connection, ch) = vhost.channel().await;
    let kind = |k: &str| table(&[("x-queue-type", AMQPValue::LongString(k.into()))]);
    queue(&ch, "busy", durable(), FieldTable::default()).await;
    queue(&ch, "idle", durable(), FieldTable::default()).await;
    queue(&ch, "orders.quorum", durable(), kind("quorum")).await;
    queue(&ch, "fanout.stream", durable(), kind("stream")).await;
    for (queue, count) in [("idle", 3), ("orders.quorum", 4), ("fanout.stream", 5)] {
        for _ in 0..count {
            ch.basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                b"m",
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
    }
    // Kept: a lapin consumer dropped is cancelled.
    let mut consumers = Vec::new();
    for tag in ["one", "two"] {
        let consumer = ch
            .basic_consume(
                "busy".into(),
                tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        consumers.push(consumer);
    }
    let user = common::unique("viewer");
    let ctl = |args: &[&str]| {
        let ok = Command::new("rabbitmqctl")
            .args(args)
            .output()
            .unwrap()
            .status;
        assert!(ok.success(), "rabbitmqctl {args:?}");
    };
    ctl(&["add_user", &user, "viewer-pass"]);
    ctl(&["set_user_tags", &user, "management"]);
    ctl(&[
        "set_permissions",
        "-p",
        &vhost.name,
        &user,
        ".*",
        ".*",
        ".*",
    ]);
    let viewer_url = format!("amqp://{user}:viewer-pass@127.0.0.1:5672/{}", vhost.name);
    let viewer = Management::new(&Endpoint::new(&viewer_url, None).unwrap()).unwrap();
    assert!(vhost.management.sees_every_client().await.unwrap());
    assert!(!viewer.sees_every_client().await.unwrap());

    let counts = |facts: &QueueFacts| -> BTreeSet<(String, usize, usize)> {
        facts.iter().map(|f| (f.0.clone(), f.1, f.2)).collect()
    };
    // The API and rabbitmqctl learn of consumers and messages a few seconds late.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (by_admin, by_viewer, told) = loop {
        let told: BTreeSet<(String, usize, usize)> = rabbitmqctl(
            "list_queues",
            &vhost.name,
            &["name", "messages", "consumers"],
        )
        .into_iter()
        .map(|row| {
            (
                row[0].clone(),
                row[1].parse().unwrap(),
                row[2].parse().unwrap(),
            )
        })
        .collect();
        let by_admin = queue_facts(&vhost.management, &vhost.name).await;
        let by_viewer = queue_facts(&viewer, &vhost.name).await;
        let settled = told.iter().any(|t| t.0 == "busy" && t.2 == 2)
            && told.iter().any(|t| t.0 == "orders.quorum" && t.1 == 4);
        if settled && counts(&by_admin) == told && by_admin == by_viewer
            || Instant::now() > deadline
        {
            break (by_admin, by_viewer, told);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    ctl(&["delete_user", &user]);
    assert_eq!(counts(&by_admin), told);
    assert_eq!(by_admin, by_viewer);
    let stream = by_admin.iter().find(|f| f.0 == "fanout.stream").unwrap();
    assert!(!stream.5.is_empty(), "a stream's members: {stream:?}");
    let quorum = by_admin.iter().find(|f| f.0 == "orders.quorum").unwrap();
    assert!(
        quorum.3.is_some() && quorum.3 == quorum.4,
        "leader's node: {quorum:?}"
    );
    connection.close(200, "OK".into()).await.unwrap();
}

/// `rabbitscope watch --trace` in a pseudo-terminal: the view shows the vhost's topology and a
/// message's route, the password never, and tracing is off again after `q`.
#[tokio::test(flavor = "multi_thread")]
async fn the_view_watches_a_live_rabbitmq() {
    let vhost = TestVhost::new("view").await;
    let (connection, ch) = vhost.channel().await;
    exchange(&ch, "classroom", ExchangeKind::Topic, Default::default()).await;
    queue(&ch, "homework", durable(), FieldTable::default()).await;
    bind(
        &ch,
        "homework",
        "classroom",
        "essay.*",
        FieldTable::default(),
    )
    .await;

    let mut view = pty::spawn(
        &["watch", &vhost.url(), "--trace", "--interval", "0.5"],
        45,
        160,
        |_| {},
    );
    let screen = || view.screen.text();
    let wait = |needles: &[&str]| view.screen.wait_for(needles, Duration::from_secs(20));
    let text = wait(&["guest:****@"]);
    assert!(!text.contains("guest:guest"), "{text}");
    // The view opens on the URL's vhost.
    wait(&[&format!("vhost {} ", vhost.name)]);
    wait(&["classroom [topic]", "homework", "essay.*"]);

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        ch.basic_publish(
            "classroom".into(),
            "essay.rabbitmq".into(),
            BasicPublishOptions::default(),
            b"due friday",
            BasicProperties::default(),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let text = screen();
        if text.contains("essay.rabbitmq  -> homework") {
            break;
        }
        assert!(Instant::now() < deadline, "no route shown:\n{text}");
    }
    view.press(b"q");
    view.wait_exit(Duration::from_secs(15), "the view did not quit");
    let output = view.screen.written();
    assert!(
        output.contains("slows the broker"),
        "no warning about tracing"
    );
    assert!(!output.contains("guest:guest"));
    assert!(!vhost.management.tracing(&vhost.name).await.unwrap());
    connection.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_event_exchange_brings_changes_before_the_next_poll() {
    let vhost = TestVhost::new("events").await;
    let root = rabbitscope::remote::snapshot::vhost_snapshot(&vhost.management, "/")
        .await
        .unwrap();
    if !root
        .exchanges
        .iter()
        .any(|x| x.name == "amq.rabbitmq.event")
    {
        common::missing("rabbitmq_event_exchange is not enabled");
        return;
    }
    let source = RemoteSource::start(
        vhost.endpoint(),
        RemoteOptions {
            interval: Duration::from_secs(60),
            trace: false,
        },
    )
    .unwrap();
    assert!(source.refreshed(1, Duration::from_secs(10)).await);
    let mut events = source.subscribe();
    let (connection, ch) = vhost.channel().await;
    // The listener binds its queue shortly after start: declare until a change shows.
    let mut seen = None;
    for i in 0..20 {
        let name = format!("early-{i}");
        queue(&ch, &name, durable(), FieldTable::default()).await;
        seen = wait_for(
            &mut events,
            Duration::from_millis(1500),
            |kind| match kind {
                EventKind::QueueDeclared { name, .. } if name.starts_with("early-") => Some(()),
                _ => None,
            },
        )
        .await;
        if seen.is_some() {
            break;
        }
    }
    assert!(seen.is_some(), "no change seen long before the 60 s poll");
    connection.close(200, "OK".into()).await.unwrap();
    source.close().await;
}

/// Publishes to `queue` through the default exchange until the firehose reports it: tracing
/// is switched on and the firehose bound some time after a source starts.
async fn until_traced(ch: &Channel, events: &mut rabbitscope::events::EventReader, queue: &str) {
    for _ in 0..60 {
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            b"probe",
            BasicProperties::default(),
        )
        .await
        .unwrap();
        let found = wait_for(events, Duration::from_millis(300), |kind| {
            matches!(kind, EventKind::Published { routing_key, .. } if &**routing_key == queue)
                .then_some(())
        })
        .await;
        if found.is_some() {
            return;
        }
    }
    panic!("the firehose never reported a publish");
}

/// A watch of the test vhost with the firehose on, refreshed every half second.
fn traced_source(vhost: &TestVhost) -> RemoteSource {
    RemoteSource::start(
        vhost.endpoint(),
        RemoteOptions {
            interval: Duration::from_millis(500),
            trace: true,
        },
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn firehose_deliveries_name_their_consumer() {
    let vhost = TestVhost::new("consumer-tag").await;
    let source = traced_source(&vhost);
    let mut events = source.subscribe();
    let (connection, ch) = vhost.channel().await;
    queue(&ch, "probe", durable(), FieldTable::default()).await;
    queue(&ch, "work", durable(), FieldTable::default()).await;
    until_traced(&ch, &mut events, "probe").await;

    // A get first: no consumer, so no tag.
    ch.basic_publish(
        "".into(),
        "work".into(),
        BasicPublishOptions::default(),
        b"got",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let got = ch
        .basic_get(
            "work".into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap();
    assert!(got.is_some());
    let delivered = wait_for(&mut events, Duration::from_secs(5), |kind| match kind {
        EventKind::Delivered {
            queue,
            consumer_tag,
            ..
        } if &**queue == "work" => Some(consumer_tag.clone()),
        _ => None,
    })
    .await;
    assert_eq!(delivered, Some(None), "a basic.get has no consumer tag");

    // A consumer on a channel opened now, delivered to at once.
    let consuming = connection.create_channel().await.unwrap();
    let mut consumer = consuming
        .basic_consume(
            "work".into(),
            "t-1".into(),
            lapin::options::BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    ch.basic_publish(
        "".into(),
        "work".into(),
        BasicPublishOptions::default(),
        b"consumed",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    use futures_util::StreamExt;
    let delivery = tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .expect("no delivery")
        .unwrap()
        .unwrap();
    assert_eq!(&delivery.data[..], b"consumed");
    let delivered = wait_for(&mut events, Duration::from_secs(5), |kind| match kind {
        EventKind::Delivered {
            queue,
            consumer_tag,
            delivery_tag,
            redelivered,
            ..
        } if &**queue == "work" => Some((consumer_tag.clone(), *delivery_tag, *redelivered)),
        _ => None,
    })
    .await;
    // RabbitMQ's trace has no delivery tag: 0, which no real delivery has.
    assert_eq!(delivered, Some((Some("t-1".into()), 0, false)));

    source.close().await;
    connection.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn firehose_matched_follows_exchange_to_exchange_bindings() {
    let vhost = TestVhost::new("e2e-matched").await;
    let (connection, ch) = vhost.channel().await;
    exchange(&ch, "A", ExchangeKind::Topic, Default::default()).await;
    exchange(&ch, "B", ExchangeKind::Fanout, Default::default()).await;
    ch.exchange_bind(
        "B".into(),
        "A".into(),
        "k.*".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    queue(&ch, "Q", durable(), FieldTable::default()).await;
    bind(&ch, "Q", "B", "", FieldTable::default()).await;
    queue(&ch, "probe", durable(), FieldTable::default()).await;
    let source = traced_source(&vhost);
    let mut events = source.subscribe();
    assert!(source.refreshed(1, Duration::from_secs(10)).await);
    until_traced(&ch, &mut events, "probe").await;

    ch.basic_publish(
        "A".into(),
        "k.x".into(),
        BasicPublishOptions::default(),
        b"through",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let published = wait_for(&mut events, Duration::from_secs(5), |kind| match kind {
        EventKind::Published {
            exchange,
            matched,
            queues,
            ..
        } if &**exchange == "A" => Some((matched.clone(), queues.clone())),
        _ => None,
    })
    .await;
    let (matched, queues) = published.expect("no Published event for A");
    let mut paths: Vec<(String, String, bool, String)> = matched
        .iter()
        .map(|b| {
            (
                b.source.to_string(),
                b.destination.to_string(),
                b.destination_is_exchange,
                b.routing_key.to_string(),
            )
        })
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            ("A".into(), "B".into(), true, "k.*".into()),
            ("B".into(), "Q".into(), false, "".into()),
        ]
    );
    assert_eq!(queues, ["Q".into()] as [rabbitscope::events::Name; 1]);

    source.close().await;
    connection.close(200, "OK".into()).await.unwrap();
}

/// Names holding escape sequences (a window title, an OSC 52 clipboard write, a screen clear
/// by ESC and by the C1 CSI) are shown as escapes by `tap` and `snapshot --format dot`; JSON and
/// YAML keep them escaped in their own way and read back to the very names.
#[tokio::test(flavor = "multi_thread")]
async fn names_with_escape_sequences_never_reach_the_terminal_raw() {
    const TITLE: &str = "x\u{1b}]0;owned\u{7}";
    const CLIPBOARD: &str = "q\u{1b}]52;c;cHduZWQ=\u{7}";
    const CLEAR: &str = "k\u{9b}2J\u{1b}[2J";
    let raw = |text: &str| text.chars().any(|c| c.is_control() && c != '\n');
    let vhost = TestVhost::new("escapes").await;
    let (connection, ch) = vhost.channel().await;
    exchange(&ch, TITLE, ExchangeKind::Direct, Default::default()).await;
    queue(&ch, CLIPBOARD, durable(), FieldTable::default()).await;
    bind(&ch, CLIPBOARD, TITLE, CLEAR, FieldTable::default()).await;
    connection.close(200, "OK".into()).await.unwrap();

    let lines = tap(&vhost, &["--count", "1"], &[(TITLE, CLEAR)]).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(!raw(&lines[0]), "raw control characters in {:?}", lines[0]);
    assert!(
        lines[0].ends_with(
            " x\\u{1b}]0;owned\\u{7} k\\u{9b}2J\\u{1b}[2J -> q\\u{1b}]52;c;cHduZWQ=\\u{7}"
        ),
        "{:?}",
        lines[0]
    );

    let (ok, dot, err) = run(&[
        "snapshot",
        &vhost.url(),
        "--vhost",
        &vhost.name,
        "--format",
        "dot",
    ]);
    assert!(ok, "{err}");
    assert!(!raw(&dot), "raw control characters in {dot:?}");
    assert!(dot.contains(r"q\\u{1b}]52;c;cHduZWQ=\\u{7}"), "{dot}");
    let (ok, text, err) = run(&[
        "snapshot",
        &vhost.url(),
        "--vhost",
        &vhost.name,
        "--format",
        "text",
    ]);
    assert!(ok, "{err}");
    assert!(!raw(&text), "raw control characters in {text:?}");
    assert!(
        // However many messages tap's publishes left there.
        text.contains(r"    q\u{1b}]52;c;cHduZWQ=\u{7}: ") && text.contains(" ready, "),
        "{text}"
    );
    for format in ["json", "yaml"] {
        let (ok, text, err) = run(&[
            "snapshot",
            &vhost.url(),
            "--vhost",
            &vhost.name,
            "--format",
            format,
        ]);
        assert!(ok, "{err}");
        assert!(
            !raw(&text),
            "raw control characters in the {format}: {text:?}"
        );
        let snapshot: Snapshot = if format == "json" {
            serde_json::from_str(&text).unwrap()
        } else {
            serde_yaml::from_str(&text).unwrap()
        };
        let v = &snapshot.vhosts[0];
        assert!(v.exchanges.iter().any(|x| x.name == TITLE), "{format}");
        assert!(v.queues.iter().any(|q| q.name == CLIPBOARD), "{format}");
        assert!(
            v.bindings.iter().any(|b| &*b.routing_key == CLEAR),
            "{format}"
        );
    }
}

/// `watch` shows the vhost of its URL and nothing else, and not the queues it declares to
/// watch with (the firehose's here), which RabbitMQ does list.
#[tokio::test(flavor = "multi_thread")]
async fn watching_shows_only_its_vhost_without_its_own_queues() {
    let vhost = TestVhost::new("own-plumbing").await;
    let other = TestVhost::new("other").await;
    let (connection, ch) = vhost.channel().await;
    queue(&ch, "orders", durable(), FieldTable::default()).await;
    let source = traced_source(&vhost);
    // The firehose's queue is there once tracing is on and it has subscribed.
    let deadline = Instant::now() + Duration::from_secs(20);
    let firehose_queue = loop {
        let listed = rabbitmqctl("list_queues", &vhost.name, &["name"]);
        if let Some(q) = listed
            .iter()
            .find(|q| q[0].starts_with("rabbitscope.firehose."))
        {
            break q[0].clone();
        }
        assert!(Instant::now() < deadline, "no firehose queue: {listed:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // A refresh after the queue existed.
    let seen = source.refreshes();
    assert!(source.refreshed(seen + 1, Duration::from_secs(10)).await);
    let snapshot = source.snapshot();
    let names: Vec<&str> = snapshot.vhosts.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, [vhost.name.as_str()], "only the watched vhost");
    assert!(snapshot.vhost(&other.name).is_none());
    let v = &snapshot.vhosts[0];
    let queues: Vec<&str> = v.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(queues, ["orders"], "{firehose_queue} is the watcher's own");
    assert!(v.bindings.iter().all(|b| *b.destination != *firehose_queue));
    connection.close(200, "OK".into()).await.unwrap();
    source.close().await;
}

/// A client named the way oslo.messaging names its connections consumes one queue and
/// publishes to an exchange: the watch lists the connection by its program and the consumer
/// on it, and the firehose's publish and delivery name that same connection, on the
/// channels they used; `snapshot` prints the consumer under its queue by the client's name.
#[tokio::test(flavor = "multi_thread")]
async fn the_watch_names_the_clients_that_publish_and_consume() {
    use futures_util::StreamExt;
    use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
    let vhost = TestVhost::new("clients").await;
    let source = traced_source(&vhost);
    let mut events = source.subscribe();
    let name = format!("nova-conductor:4242:{}", common::unique("uuid"));
    let properties = ConnectionProperties::default().with_connection_name(name.clone().into());
    let client = Connection::connect(&vhost.url(), properties).await.unwrap();
    let publishing = client.create_channel().await.unwrap();
    let consuming = client.create_channel().await.unwrap();
    exchange(
        &publishing,
        "nova",
        ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
    )
    .await;
    queue(&publishing, "probe", durable(), FieldTable::default()).await;
    queue(&publishing, "conductor", durable(), FieldTable::default()).await;
    bind(
        &publishing,
        "conductor",
        "nova",
        "conductor",
        FieldTable::default(),
    )
    .await;
    consuming
        .basic_qos(3, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = consuming
        .basic_consume(
            "conductor".into(),
            "conductor-1".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    // The management API learns of connections and consumers with their statistics.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (id, listed) = loop {
        let snapshot = source.snapshot();
        let v = snapshot.vhost(&vhost.name).cloned().unwrap_or_default();
        let ours = v.connections.iter().find(|c| c.label() == "nova-conductor");
        if let (Some(ours), false) = (ours, v.consumers.is_empty()) {
            break (ours.id, v);
        }
        assert!(Instant::now() < deadline, "never listed: {v:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ours = listed.connections.iter().find(|c| c.id == id).unwrap();
    assert_eq!(ours.client.connection_name.as_deref(), Some(name.as_str()));
    assert_eq!(ours.user, "guest");
    assert!(ours.peer.starts_with("127.0.0.1:"), "{ours:?}");
    assert!(
        ours.name.starts_with(&format!("{} -> ", ours.peer)),
        "{ours:?}"
    );
    // The source's own connections (firehose, event exchange) are not in the picture.
    assert!(
        listed
            .connections
            .iter()
            .all(|c| !c.label().contains("rabbitscope")),
        "{:?}",
        listed.connections
    );
    let expected = rabbitscope::broker::ConsumerSnapshot {
        queue: "conductor".into(),
        tag: "conductor-1".into(),
        connection: id,
        channel: consuming.id(),
        ack: true,
        prefetch: 3,
    };
    assert_eq!(listed.consumers, [expected]);
    // ... and were told as events, for a recording to replay.
    let opened = wait_for_event(&mut events, Duration::from_secs(5), |e| match &e.kind {
        EventKind::ConnectionOpened { client, .. } if e.connection == Some(id) => {
            Some(client.label("?"))
        }
        _ => None,
    })
    .await;
    assert_eq!(opened.as_deref(), Some("nova-conductor"));

    until_traced(&publishing, &mut events, "probe").await;
    publishing
        .basic_publish(
            "nova".into(),
            "conductor".into(),
            BasicPublishOptions::default(),
            b"build_and_run_instance",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .expect("no delivery")
        .unwrap()
        .unwrap();
    delivery.ack(BasicAckOptions::default()).await.unwrap();
    let published = wait_for_event(&mut events, Duration::from_secs(5), |e| match &e.kind {
        EventKind::Published { exchange, .. } if &**exchange == "nova" => {
            Some((e.connection, e.channel))
        }
        _ => None,
    })
    .await;
    assert_eq!(published, Some((Some(id), Some(publishing.id()))));
    let delivered = wait_for_event(&mut events, Duration::from_secs(5), |e| match &e.kind {
        EventKind::Delivered {
            queue,
            consumer_tag,
            ..
        } if &**queue == "conductor" => Some((e.connection, e.channel, consumer_tag.clone())),
        _ => None,
    })
    .await;
    assert_eq!(
        delivered,
        Some((Some(id), Some(consuming.id()), Some("conductor-1".into())))
    );

    let snapshot = |format: &str| {
        let (ok, out, err) = run(&[
            "snapshot",
            &vhost.url(),
            "--vhost",
            &vhost.name,
            "--format",
            format,
        ]);
        assert!(ok, "{err}");
        out
    };
    let text = snapshot("text");
    let line = format!(
        "      consumer conductor-1 by nova-conductor (channel {}, manual ack, prefetch 3)",
        consuming.id()
    );
    assert!(text.lines().any(|l| l == line), "{text}");
    let dot = snapshot("dot");
    assert!(
        dot.contains(&format!(
            "/connection/{id}\" [shape=oval, label=\"nova-conductor\"]"
        )),
        "{dot}"
    );
    let json: Snapshot = serde_json::from_str(&snapshot("json")).unwrap();
    assert_eq!(json.vhosts[0].consumers, listed.consumers);
    assert!(json.vhosts[0].connections.iter().any(|c| c.id == id));

    source.close().await;
    client.close(200, "OK".into()).await.unwrap();
}
