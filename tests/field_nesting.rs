//! Field tables nested deep: RabbitMQ takes thousands of levels; the embedded broker takes
//! [`MAX_FIELD_DEPTH`] and refuses deeper tables by closing only the connection that sent
//! them (501, as for a table it cannot decode), rather than overflowing a stack and aborting.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use amq_protocol::frame::{gen_frame, parse_frame, AMQPFrame, ProtocolVersion};
use amq_protocol::protocol::{channel, connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString};
use lapin::options::QueueDeclareOptions;
use lapin::BasicProperties;
use rabbitscope::amqp::nesting::MAX_FIELD_DEPTH;
use rabbitscope::amqp::Server;
use rabbitscope::broker::{Broker, BrokerConfig};
use rabbitscope::events::{EventKind, Received};
use rabbitscope::ui::action::Action;
use rabbitscope::ui::app::{App, ViewOptions};

use common::client::*;
use common::process::{spawn_broker, BrokerChild};

/// The smallest stack any thread of the program runs on: tokio's workers and std threads
/// both default to 2 MiB (the main thread has 8).
const SMALLEST_STACK: usize = 2 * 1024 * 1024;

/// A value `levels` deep in all (the table holding it is level 1), alternating arrays and
/// tables, built from the bottom up.
fn nested(levels: usize) -> FieldTable {
    let mut value = AMQPValue::LongString("bottom".into());
    for level in (2..=levels).rev() {
        value = if level % 2 == 0 {
            AMQPValue::FieldArray(FieldArray::from(vec![
                AMQPValue::LongInt(level as i32),
                value,
            ]))
        } else {
            let mut t = FieldTable::default();
            t.insert("deeper".into(), value);
            AMQPValue::FieldTable(t)
        };
    }
    let mut top = FieldTable::default();
    top.insert("x-nested".into(), value);
    top
}

/// How deep a table nests, found without recursion.
fn depth_of(table: &FieldTable) -> usize {
    let mut deepest = 1;
    let mut open: Vec<(&AMQPValue, usize)> = table.inner().values().map(|v| (v, 2)).collect();
    while let Some((value, level)) = open.pop() {
        match value {
            AMQPValue::FieldTable(t) => {
                deepest = deepest.max(level);
                open.extend(t.inner().values().map(|v| (v, level + 1)));
            }
            AMQPValue::FieldArray(a) => {
                deepest = deepest.max(level);
                open.extend(a.as_slice().iter().map(|v| (v, level + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// The deepest value the broker accepts, as queue arguments and as message headers, through
/// everything that handles it: decoding, declaring, storing (durable queue, persistent
/// message), routing through a headers exchange, the published event, delivery to a consumer,
/// the view drawing the events, and a restart reading it all back from the store. All on one
/// thread with the smallest stack the program uses, so a path that recursed too deep would
/// overflow here and abort the test.
#[test]
fn the_deepest_accepted_value_travels_everywhere_on_the_smallest_stack() {
    let dir = std::env::temp_dir().join(common::unique("nesting-store"));
    let worker = std::thread::Builder::new()
        .stack_size(SMALLEST_STACK)
        .spawn({
            let dir = dir.clone();
            move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(travel(dir))
            }
        })
        .unwrap();
    let seen = worker.join().expect("the worker thread survived");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        seen,
        [
            format!("declared with arguments {MAX_FIELD_DEPTH} deep"),
            format!("delivered with headers {MAX_FIELD_DEPTH} deep"),
            "published event with the headers".to_string(),
            "view drawn".to_string(),
            format!("after restart: 1 message, headers {MAX_FIELD_DEPTH} deep"),
        ]
    );
}

async fn travel(dir: std::path::PathBuf) -> Vec<String> {
    let mut seen = Vec::new();
    let broker = Broker::open(BrokerConfig {
        data_dir: Some(dir),
        ..BrokerConfig::default()
    })
    .expect("open the store");
    let mut events = broker.subscribe();
    let server = Server::bind(broker.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = format!("amqp://guest:guest@{}/%2f", server.local_addr());
    tokio::spawn(server.run());

    let deepest = nested(MAX_FIELD_DEPTH);
    assert_eq!(depth_of(&deepest), MAX_FIELD_DEPTH);
    let conn = connect(&url).await;
    let ch = channel(&conn).await;
    let q = ch
        .queue_declare(
            "deep".into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            deepest.clone(),
        )
        .await
        .expect("queue.declare with deep arguments");
    seen.push(format!(
        "declared with arguments {} deep",
        depth_of(&deepest)
    ));
    declare_exchange(&ch, "deep-headers", lapin::ExchangeKind::Headers).await;
    bind(&ch, q.name().as_str(), "deep-headers", "").await;
    let sent = publish_with(
        &ch,
        "deep-headers",
        "",
        "deep body",
        BasicProperties::default()
            .with_delivery_mode(2)
            .with_headers(deepest.clone()),
        false,
    )
    .await;
    assert_eq!(sent, "ack");

    let mut consumer = consume(&ch, "deep", "deep-consumer", false).await;
    let delivery = next(&mut consumer, Duration::from_secs(5))
        .await
        .expect("a delivery");
    let headers = delivery.properties.headers().clone().expect("headers");
    assert_eq!(headers, deepest);
    seen.push(format!(
        "delivered with headers {} deep",
        depth_of(&headers)
    ));

    // The events the view would draw, up to the delivery.
    let mut app = App::new(&url, "/", ViewOptions::default());
    app.update(Action::Topology(broker.snapshot()));
    loop {
        let Received::Event(event) = events.recv().await else {
            panic!("events ended early");
        };
        if let EventKind::Published { headers, .. } = &event.kind {
            if !headers.is_empty() {
                assert!(headers
                    .iter()
                    .any(|(k, v)| k == "x-nested" && v.contains("bottom")));
                seen.push("published event with the headers".to_string());
            }
        }
        let delivered = matches!(event.kind, EventKind::Delivered { .. });
        app.update(Action::BrokerEvent(event));
        if delivered {
            break;
        }
    }
    for size in [(120, 40), (200, 60)] {
        rabbitscope::ui::render_to_buffer(&mut app, size.0, size.1);
    }
    seen.push("view drawn".to_string());
    conn.close(200, "bye".into()).await.unwrap();
    drop(consumer);

    // Read everything back from the store.
    broker.restart().expect("restart from the store");
    let conn = connect(&url).await;
    let ch = channel(&conn).await;
    let m = get(&ch, "deep").await.expect("the stored message");
    let headers = m.delivery.properties.headers().clone().expect("headers");
    assert_eq!(headers, deepest);
    let count = passive_queue(&ch, "deep").await.unwrap().message_count() + 1;
    seen.push(format!(
        "after restart: {count} message, headers {} deep",
        depth_of(&headers)
    ));
    conn.close(200, "bye".into()).await.unwrap();
    seen
}

/// RabbitMQ takes the deepest accepted value too, and gives it back unchanged: within the
/// limit nothing differs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deepest_accepted_headers_come_back_unchanged_from_both_brokers() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("deep-q");
        declare_queue(&ch, &q).await;
        let deepest = nested(MAX_FIELD_DEPTH);
        let sent = publish_with(
            &ch,
            "",
            &q,
            "deep",
            BasicProperties::default().with_headers(deepest.clone()),
            false,
        )
        .await;
        t.push(format!("publish: {sent}"));
        let m = get(&ch, &q).await.expect("message");
        let back = m.delivery.properties.headers().clone().unwrap_or_default();
        t.push(format!(
            "headers {} deep, unchanged: {}",
            depth_of(&back),
            back == deepest
        ));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    common::client::assert_has(
        &t,
        &[
            "publish: ack",
            &format!("headers {MAX_FIELD_DEPTH} deep, unchanged: true"),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Against the real binary
// ---------------------------------------------------------------------------------------------

fn encode(frame: &AMQPFrame) -> Vec<u8> {
    gen_frame(frame)(Vec::<u8>::new().into())
        .expect("encode frame")
        .into_inner()
        .0
}

fn method(channel: u16, class: AMQPClass) -> Vec<u8> {
    encode(&AMQPFrame::Method(channel, class))
}

/// A field table `levels` deep, encoded by hand from the inside out (encoding it with
/// amq-protocol would recurse as deep as the attack).
fn deep_table_bytes(levels: usize) -> Vec<u8> {
    // The innermost table is empty; each round wraps it in one more.
    let mut inner: Vec<u8> = Vec::new();
    for _ in 1..levels {
        // { "a": F <inner> }
        let mut table = vec![1, b'a', b'F'];
        table.extend_from_slice(&(inner.len() as u32).to_be_bytes());
        table.extend_from_slice(&inner);
        inner = table;
    }
    let mut out = (inner.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&inner);
    out
}

/// A blocking raw AMQP client: enough to open a channel and send frames built by hand.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn open(address: &str) -> Raw {
        let stream = TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut raw = Raw {
            stream,
            buf: Vec::new(),
        };
        raw.send(&encode(&AMQPFrame::ProtocolHeader(
            ProtocolVersion::amqp_0_9_1(),
        )));
        raw.expect("connection.start");
        raw.send(&method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: FieldTable::default(),
                mechanism: "PLAIN".into(),
                response: LongString::from(b"\0guest\0guest".to_vec()),
                locale: "en_US".into(),
            })),
        ));
        raw.expect("connection.tune");
        raw.send(&method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: 16,
                frame_max: 131_072,
                heartbeat: 0,
            })),
        ));
        raw.send(&method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: "/".into(),
            })),
        ));
        raw.expect("connection.open-ok");
        raw.send(&method(
            1,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        ));
        raw.expect("channel.open-ok");
        raw
    }

    fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// The next frame; None when the server closed the socket.
    fn next(&mut self) -> Option<AMQPFrame> {
        loop {
            if let Ok((rest, frame)) = parse_frame(&self.buf[..]) {
                let used = self.buf.len() - rest.len();
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    fn expect(&mut self, what: &str) {
        self.next()
            .unwrap_or_else(|| panic!("closed while waiting for {what}"));
    }

    /// What the server answered: "close CODE TEXT (class, method)" or "closed".
    fn answer(&mut self) -> String {
        match self.next() {
            Some(AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Close(c)))) => {
                format!(
                    "close {} {} ({}, {})",
                    c.reply_code, c.reply_text, c.class_id, c.method_id
                )
            }
            Some(other) => format!("unexpected {other:?}"),
            None => "closed".to_string(),
        }
    }
}

/// A broker process that a failing test does not leave behind.
struct KillOnDrop(BrokerChild);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.child.kill();
        let _ = self.0.child.wait();
    }
}

/// queue.declare (channel 1) with `arguments` already encoded.
fn queue_declare_with(name: &str, arguments: &[u8]) -> Vec<u8> {
    let mut payload = vec![0, 50, 0, 10, 0, 0, name.len() as u8];
    payload.extend_from_slice(name.as_bytes());
    payload.push(0); // passive, durable, exclusive, auto-delete, no-wait: all off
    payload.extend_from_slice(arguments);
    frame(1, 1, &payload)
}

fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.push(0xCE);
    out
}

/// basic.publish to the default exchange, and a content header whose `headers` property is
/// `headers` (already encoded).
fn publish_with_headers(queue: &str, headers: &[u8]) -> Vec<u8> {
    let mut publish = vec![0, 60, 0, 40, 0, 0, 0, queue.len() as u8];
    publish.extend_from_slice(queue.as_bytes());
    publish.push(0);
    let mut header = vec![0, 60, 0, 0];
    header.extend_from_slice(&4u64.to_be_bytes());
    header.extend_from_slice(&(1u16 << 13).to_be_bytes());
    header.extend_from_slice(headers);
    let mut out = frame(1, 1, &publish);
    out.extend(frame(2, 1, &header));
    out.extend(frame(3, 1, b"deep"));
    out
}

/// Queue arguments and message headers nested 2,500 and 5,000 levels deep (the first aborted
/// the broker before): each closes only its own connection with 501, while another client
/// goes on declaring, publishing and getting, and the broker still ends cleanly on SIGTERM.
#[test]
fn too_deep_tables_close_only_their_connection() {
    let broker = spawn_broker(
        Command::new(env!("CARGO_BIN_EXE_rabbitscope"))
            .args(["broker", "--transient", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null()),
    );
    let mut broker = KillOnDrop(broker);
    let address = broker.0.field("address=");
    let url = format!("amqp://guest:guest@{address}/%2f");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (bystander, ch) = runtime.block_on(async {
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        declare_queue(&ch, "bystander").await;
        (conn, ch)
    });

    let mut answers = Vec::new();
    for levels in [MAX_FIELD_DEPTH + 1, 2_500, 5_000] {
        let table = deep_table_bytes(levels);
        let mut raw = Raw::open(&address);
        raw.send(&queue_declare_with("deep-args", &table));
        answers.push(format!("arguments {levels} deep: {}", raw.answer()));
        let mut raw = Raw::open(&address);
        raw.send(&publish_with_headers("bystander", &table));
        answers.push(format!("headers {levels} deep: {}", raw.answer()));
        // The other client is served meanwhile.
        let got = runtime.block_on(async {
            assert_eq!(send(&ch, "bystander", "still here").await, "ack");
            get(&ch, "bystander").await.map(|m| body(&m.delivery))
        });
        answers.push(format!("bystander got {got:?}"));
    }
    // The limit itself is accepted.
    let mut raw = Raw::open(&address);
    raw.send(&queue_declare_with(
        "deep-args",
        &deep_table_bytes(MAX_FIELD_DEPTH),
    ));
    answers.push(format!(
        "arguments {MAX_FIELD_DEPTH} deep: {}",
        match raw.next() {
            Some(AMQPFrame::Method(1, AMQPClass::Queue(_))) => "declare-ok".to_string(),
            other => format!("{other:?}"),
        }
    ));
    let too_deep = format!(
        "close 501 FRAME_ERROR - cannot decode: field tables nested deeper than {MAX_FIELD_DEPTH} levels"
    );
    let mut expected = Vec::new();
    for levels in [MAX_FIELD_DEPTH + 1, 2_500, 5_000] {
        expected.push(format!("arguments {levels} deep: {too_deep} (50, 10)"));
        expected.push(format!("headers {levels} deep: {too_deep} (0, 0)"));
        expected.push("bystander got Some(\"still here\")".to_string());
    }
    expected.push(format!("arguments {MAX_FIELD_DEPTH} deep: declare-ok"));
    assert_eq!(answers, expected);

    runtime.block_on(async { bystander.close(200, "bye".into()).await.unwrap() });
    let pid = broker.0.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = broker.0.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "the broker ends cleanly on SIGTERM");
}
