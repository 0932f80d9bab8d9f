//! How a broker answers bad input on the wire, checked against RabbitMQ 3.10.
//!
//! Each test drives one or more raw AMQP 0-9-1 connections (a tiny client over a tokio TcpStream,
//! framing done with `amq-protocol`) into a protocol violation and writes down what came back:
//! the frames the server sent (for `connection.close` / `channel.close`: code, reply text and the
//! offending class/method ids), raw bytes where the answer is not a frame (a protocol header), and
//! when the socket was closed. After a `connection.close` from the server the client first waits
//! [`CLOSE_GRACE`] without answering, so the transcript shows whether the server drops the socket
//! on its own (RabbitMQ does so 3 s after a fatal frame error or a failed login) or waits for
//! `connection.close-ok`. Every test ends by checking that a separate, well-behaved connection
//! still works on the same broker.
mod common;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use amq_protocol::frame::{gen_frame, parse_frame, AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{basic, channel, connection, queue, AMQPClass, BasicProperties};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::{differential, unique};

/// Longest wait for any single read.
const READ: Duration = Duration::from_secs(5);
/// How long to wait after a server `connection.close` before answering with `close-ok`.
/// RabbitMQ drops the socket 3 s after a fatal frame error; for other errors it waits for close-ok.
const CLOSE_GRACE: Duration = Duration::from_secs(4);
/// How long "the server says nothing" is watched for.
const QUIET: Duration = Duration::from_millis(1500);

// ---------------------------------------------------------------------------------------------
// A tiny raw client
// ---------------------------------------------------------------------------------------------

/// What one read produced.
#[allow(clippy::large_enum_variant)]
enum Event {
    Frame(AMQPFrame),
    /// The peer closed (FIN or reset).
    Closed,
    Timeout,
    /// Bytes that do not parse as a frame.
    Garbage(Vec<u8>),
}

/// `host:port` and vhost from `amqp://user:pass@HOST:PORT/VHOST`.
fn address(url: &str) -> (String, String) {
    let rest = url.strip_prefix("amqp://").expect("amqp:// url");
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let (hostport, vhost) = rest.split_once('/').unwrap_or((rest, ""));
    (hostport.to_string(), percent_decode(vhost))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).expect("percent escape"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn encode(frame: &AMQPFrame) -> Vec<u8> {
    let (buf, _) = gen_frame(frame)(Vec::<u8>::new().into())
        .expect("encode frame")
        .into_inner();
    buf
}

/// A frame built by hand: type, channel, payload, frame-end octet.
fn raw_frame(kind: u8, channel: u16, payload: &[u8], end: u8) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&channel.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v.push(end);
    v
}

/// A method frame built by hand from class id, method id and already-encoded arguments.
fn raw_method(channel: u16, class: u16, method: u16, args: &[u8]) -> Vec<u8> {
    let mut payload = class.to_be_bytes().to_vec();
    payload.extend_from_slice(&method.to_be_bytes());
    payload.extend_from_slice(args);
    raw_frame(1, channel, &payload, 0xCE)
}

fn method(channel: u16, class: AMQPClass) -> Vec<u8> {
    encode(&AMQPFrame::Method(channel, class))
}

fn channel_open(ch: u16) -> Vec<u8> {
    method(
        ch,
        AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    )
}

fn channel_close(ch: u16) -> Vec<u8> {
    method(
        ch,
        AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        })),
    )
}

fn channel_close_ok(ch: u16) -> Vec<u8> {
    method(
        ch,
        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
    )
}

fn queue_declare(ch: u16, name: &str, passive: bool, exclusive: bool) -> Vec<u8> {
    method(
        ch,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: name.into(),
            passive,
            durable: false,
            exclusive,
            auto_delete: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    )
}

fn publish(ch: u16, routing_key: &str) -> Vec<u8> {
    method(
        ch,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: routing_key.into(),
            mandatory: false,
            immediate: false,
        })),
    )
}

fn content_header(ch: u16, class_id: u16, body_size: u64) -> Vec<u8> {
    encode(&AMQPFrame::Header(
        ch,
        AMQPContentHeader {
            class_id,
            body_size,
            properties: BasicProperties::default(),
        },
    ))
}

fn body(ch: u16, data: &[u8]) -> Vec<u8> {
    raw_frame(3, ch, data, 0xCE)
}

fn get(ch: u16, queue: &str) -> Vec<u8> {
    method(
        ch,
        AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
            queue: queue.into(),
            no_ack: true,
        })),
    )
}

fn method_name(class: u16, method: u16) -> String {
    let name = match (class, method) {
        (10, 10) => "connection.start",
        (10, 11) => "connection.start-ok",
        (10, 20) => "connection.secure",
        (10, 30) => "connection.tune",
        (10, 41) => "connection.open-ok",
        (10, 50) => "connection.close",
        (10, 51) => "connection.close-ok",
        (10, 60) => "connection.blocked",
        (10, 61) => "connection.unblocked",
        (20, 11) => "channel.open-ok",
        (20, 20) => "channel.flow",
        (20, 21) => "channel.flow-ok",
        (20, 40) => "channel.close",
        (20, 41) => "channel.close-ok",
        (50, 11) => "queue.declare-ok",
        (50, 41) => "queue.delete-ok",
        (60, 50) => "basic.return",
        (60, 60) => "basic.deliver",
        (60, 71) => "basic.get-ok",
        (60, 72) => "basic.get-empty",
        _ => return format!("method {class}.{method}"),
    };
    name.to_string()
}

fn describe_method(m: &AMQPClass) -> String {
    match m {
        AMQPClass::Connection(connection::AMQPMethod::Close(c)) => format!(
            "connection.close {} {:?} class={} method={}",
            c.reply_code,
            c.reply_text.as_str(),
            c.class_id,
            c.method_id
        ),
        AMQPClass::Channel(channel::AMQPMethod::Close(c)) => format!(
            "channel.close {} {:?} class={} method={}",
            c.reply_code,
            c.reply_text.as_str(),
            c.class_id,
            c.method_id
        ),
        AMQPClass::Connection(connection::AMQPMethod::Start(s)) => format!(
            "connection.start version {}-{} mechanisms={:?} locales={:?}",
            s.version_major,
            s.version_minor,
            String::from_utf8_lossy(s.mechanisms.as_bytes()),
            String::from_utf8_lossy(s.locales.as_bytes()),
        ),
        AMQPClass::Basic(basic::AMQPMethod::GetOk(g)) => format!(
            "basic.get-ok routing_key={:?} message_count={}",
            g.routing_key.as_str(),
            g.message_count
        ),
        other => method_name(other.get_amqp_class_id(), other.get_amqp_method_id()),
    }
}

fn describe(frame: &AMQPFrame) -> String {
    match frame {
        AMQPFrame::ProtocolHeader(v) => {
            format!("protocol header {}-{}-{}", v.major, v.minor, v.revision)
        }
        AMQPFrame::Method(ch, m) => format!("ch{ch} {}", describe_method(m)),
        AMQPFrame::Header(ch, h) => format!(
            "ch{ch} content header class={} body_size={}",
            h.class_id, h.body_size
        ),
        AMQPFrame::Body(ch, b) => format!("ch{ch} content body {} bytes", b.len()),
        AMQPFrame::Heartbeat => "heartbeat".to_string(),
        AMQPFrame::InvalidHeartbeat(ch) => format!("ch{ch} heartbeat"),
    }
}

fn is_connection_close(frame: &AMQPFrame) -> bool {
    matches!(
        frame,
        AMQPFrame::Method(_, AMQPClass::Connection(connection::AMQPMethod::Close(_)))
    )
}

/// How the client logs in.
#[derive(Clone)]
struct Login {
    mechanism: String,
    response: Vec<u8>,
    vhost: Option<String>,
    /// Announce the `authentication_failure_close` capability in client-properties.
    auth_failure_close: bool,
    /// Values for tune-ok; `None` takes the server's proposal.
    channel_max: Option<u16>,
    frame_max: Option<u32>,
    heartbeat: u16,
}

impl Default for Login {
    fn default() -> Self {
        Login {
            mechanism: "PLAIN".into(),
            response: b"\0guest\0guest".to_vec(),
            vhost: None,
            auth_failure_close: true,
            channel_max: None,
            frame_max: None,
            heartbeat: 0,
        }
    }
}

/// The AMQPLAIN response: a field table without its length prefix.
fn amqplain_response(login: &str, password: &str) -> Vec<u8> {
    let mut table = FieldTable::default();
    table.insert("LOGIN".into(), AMQPValue::LongString(login.into()));
    table.insert("PASSWORD".into(), AMQPValue::LongString(password.into()));
    let (buf, _) = amq_protocol::types::generation::gen_field_table(&table)(Vec::new().into())
        .expect("encode table")
        .into_inner();
    buf[4..].to_vec()
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    vhost: String,
    /// frame_max agreed in tune-ok (0 before the handshake).
    frame_max: u32,
}

impl Client {
    async fn connect(url: &str) -> Client {
        let (hostport, vhost) = address(url);
        let stream = tokio::time::timeout(READ, TcpStream::connect(&hostport))
            .await
            .expect("connect timed out")
            .expect("connect");
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
            vhost,
            frame_max: 0,
        }
    }

    /// Writes bytes; a failed write (the server already gone) is ignored, the reads tell.
    async fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    async fn next(&mut self, wait: Duration) -> Event {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if !self.buf.is_empty() {
                match parse_frame(self.buf.as_slice()) {
                    Ok((rest, frame)) => {
                        let used = self.buf.len() - rest.len();
                        self.buf.drain(..used);
                        return Event::Frame(frame);
                    }
                    Err(e) if e.is_incomplete() => {}
                    Err(_) => return Event::Garbage(std::mem::take(&mut self.buf)),
                }
            }
            let mut chunk = vec![0u8; 65536];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Event::Timeout,
                Ok(Ok(0)) | Ok(Err(_)) => return Event::Closed,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Everything the server sends until it closes the socket (or `wait` passes).
    async fn read_raw_until_closed(&mut self, wait: Duration) -> (Vec<u8>, bool) {
        let deadline = tokio::time::Instant::now() + wait;
        let mut got = std::mem::take(&mut self.buf);
        let mut chunk = vec![0u8; 65536];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return (got, false),
                Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
                Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Runs the handshake. `Ok` once connection.open-ok arrives; otherwise `Err` with the
    /// transcript of how the server refused.
    async fn handshake_with(&mut self, login: &Login) -> Result<(), Vec<String>> {
        self.send(&encode(&AMQPFrame::ProtocolHeader(
            amq_protocol::frame::ProtocolVersion::amqp_0_9_1(),
        )))
        .await;
        match self.next(READ).await {
            Event::Frame(AMQPFrame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Start(_)),
            )) => {}
            other => panic!("expected connection.start, got {}", event_text(&other)),
        }
        let mut properties = FieldTable::default();
        properties.insert(
            "product".into(),
            AMQPValue::LongString("rabbitscope bad-input test".into()),
        );
        if login.auth_failure_close {
            let mut caps = FieldTable::default();
            caps.insert(
                "authentication_failure_close".into(),
                AMQPValue::Boolean(true),
            );
            properties.insert("capabilities".into(), AMQPValue::FieldTable(caps));
        }
        self.send(&method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: properties,
                mechanism: login.mechanism.as_str().into(),
                response: LongString::from(login.response.clone()),
                locale: "en_US".into(),
            })),
        ))
        .await;
        let tune = match self.next(READ).await {
            Event::Frame(AMQPFrame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Tune(t)),
            )) => t,
            other => return Err(self.finish_with(other).await),
        };
        let frame_max = login.frame_max.unwrap_or(tune.frame_max);
        self.frame_max = frame_max;
        self.send(&method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: login.channel_max.unwrap_or(tune.channel_max),
                frame_max,
                heartbeat: login.heartbeat,
            })),
        ))
        .await;
        let vhost = login.vhost.clone().unwrap_or_else(|| self.vhost.clone());
        self.send(&method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: vhost.as_str().into(),
            })),
        ))
        .await;
        match self.next(READ).await {
            Event::Frame(AMQPFrame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)),
            )) => Ok(()),
            other => Err(self.finish_with(other).await),
        }
    }

    async fn handshake(&mut self) {
        if let Err(t) = self.handshake_with(&Login::default()).await {
            panic!("handshake refused: {t:?}");
        }
    }

    /// Logs in and opens a session; panics unless it works.
    async fn open(url: &str) -> Client {
        let mut c = Client::connect(url).await;
        c.handshake().await;
        c
    }

    /// Sends bytes and returns a description of the next frame (or of the lack of one).
    async fn call(&mut self, bytes: &[u8]) -> String {
        self.send(bytes).await;
        let ev = self.next(READ).await;
        event_text(&ev)
    }

    /// Watches for `QUIET`: a line for each frame, or that nothing came.
    async fn quiet(&mut self) -> Vec<String> {
        let mut t = Vec::new();
        loop {
            match self.next(QUIET).await {
                Event::Timeout => {
                    if t.is_empty() {
                        t.push("nothing within 1.5 s".to_string());
                    }
                    return t;
                }
                Event::Frame(f) => t.push(describe(&f)),
                other => {
                    t.push(event_text(&other));
                    return t;
                }
            }
        }
    }

    /// Reads until the server closes the socket or goes quiet for [`READ`]; see the module doc
    /// for how a server `connection.close` is handled.
    async fn finish(&mut self) -> Vec<String> {
        let ev = self.next(READ).await;
        self.finish_with(ev).await
    }

    async fn finish_with(&mut self, mut ev: Event) -> Vec<String> {
        let mut t = Vec::new();
        loop {
            match ev {
                Event::Frame(f) if is_connection_close(&f) => {
                    t.push(describe(&f));
                    match self.next(CLOSE_GRACE).await {
                        Event::Closed => t.push("socket closed before close-ok".to_string()),
                        Event::Timeout => {
                            t.push("socket open 4 s after connection.close".to_string());
                            self.send(&method(
                                0,
                                AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                                    connection::CloseOk {},
                                )),
                            ))
                            .await;
                            match self.next(READ).await {
                                Event::Closed => t.push("socket closed after close-ok".to_string()),
                                other => t.push(format!("after close-ok: {}", event_text(&other))),
                            }
                        }
                        other => t.push(format!("after connection.close: {}", event_text(&other))),
                    }
                    return t;
                }
                Event::Frame(f) => {
                    t.push(describe(&f));
                    ev = self.next(READ).await;
                }
                Event::Closed => {
                    t.push("socket closed".to_string());
                    return t;
                }
                other => {
                    t.push(event_text(&other));
                    return t;
                }
            }
        }
    }
}

fn event_text(ev: &Event) -> String {
    match ev {
        Event::Frame(f) => describe(f),
        Event::Closed => "socket closed".to_string(),
        Event::Timeout => "no frame within 5 s".to_string(),
        Event::Garbage(b) => format!("unparsable bytes {}", b.escape_ascii()),
    }
}

/// A separate, well-behaved connection: declare a queue, publish, get it back, close.
async fn healthy(url: &str) -> Vec<String> {
    let q = unique("bad-input.healthy");
    let mut c = Client::open(url).await;
    let mut t = vec![c.call(&channel_open(1)).await];
    t.push(c.call(&queue_declare(1, &q, false, true)).await);
    c.send(&publish(1, &q)).await;
    c.send(&content_header(1, 60, 4)).await;
    c.send(&body(1, b"ping")).await;
    t.push(c.call(&get(1, &q)).await);
    match c.next(READ).await {
        Event::Frame(AMQPFrame::Header(1, h)) => assert_eq!(h.body_size, 4),
        other => panic!("expected content header, got {}", event_text(&other)),
    }
    match c.next(READ).await {
        Event::Frame(AMQPFrame::Body(1, b)) => assert_eq!(b, b"ping"),
        other => panic!("expected body, got {}", event_text(&other)),
    }
    t.push(
        c.call(&method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: 200,
                reply_text: "done".into(),
                class_id: 0,
                method_id: 0,
            })),
        ))
        .await,
    );
    let t: Vec<String> = t.into_iter().map(|l| format!("healthy: {l}")).collect();
    let expected = [
        "healthy: ch1 channel.open-ok",
        "healthy: ch1 queue.declare-ok",
        "healthy: ch1 basic.get-ok routing_key=\"QUEUE\" message_count=0",
        "healthy: ch0 connection.close-ok",
    ];
    let shown: Vec<String> = t.iter().map(|l| l.replace(&q, "QUEUE")).collect();
    assert_eq!(shown, expected, "a well-behaved connection must still work");
    shown
}

type Case = Pin<Box<dyn Future<Output = Vec<String>> + Send>>;

/// Runs independent sub-cases at the same time (each on its own connection) and joins their
/// transcripts in the order given, each line prefixed with the case's label.
async fn join_cases(list: Vec<(&'static str, Case)>) -> Vec<String> {
    let handles: Vec<_> = list
        .into_iter()
        .map(|(label, fut)| (label, tokio::spawn(fut)))
        .collect();
    let mut t = Vec::new();
    for (label, h) in handles {
        for line in h.await.expect("case panicked") {
            t.push(format!("{label}: {line}"));
        }
    }
    t
}

/// Against RabbitMQ and then the embedded broker: runs the sub-cases `list` makes for the
/// broker's URL (see [`join_cases`]), then checks that a well-behaved connection still works.
async fn differential_cases<F>(list: F) -> Vec<String>
where
    F: Fn(String) -> Vec<(&'static str, Case)>,
{
    differential(|url| {
        let list = list(url.clone());
        async move {
            let mut t = join_cases(list).await;
            t.extend(healthy(&url).await);
            t
        }
    })
    .await
}

/// A sub-case written as an async block over its own copy of the broker's URL.
fn case<F, Fut>(url: &str, f: F) -> Case
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Vec<String>> + Send + 'static,
{
    Box::pin(f(url.to_string()))
}

/// Opens a session, opens the given channels, sends `bytes`, and records the rest.
fn after_open(url: &str, channels: &'static [u16], bytes: Vec<u8>) -> Case {
    case(url, |url| async move {
        let mut c = Client::open(&url).await;
        for &ch in channels {
            let got = c.call(&channel_open(ch)).await;
            assert_eq!(got, format!("ch{ch} channel.open-ok"));
        }
        c.send(&bytes).await;
        c.finish().await
    })
}

/// Sends bytes on a fresh socket with no protocol header first; records the raw answer.
fn raw_exchange(url: &str, bytes: &'static [u8]) -> Case {
    case(url, |url| async move {
        let mut c = Client::connect(&url).await;
        c.send(bytes).await;
        let (got, closed) = c.read_raw_until_closed(READ).await;
        vec![
            format!("received {}", got.escape_ascii()),
            if closed {
                "socket closed".to_string()
            } else {
                "socket open after 5 s".to_string()
            },
        ]
    })
}

fn lines(expected: &[&str]) -> Vec<String> {
    expected.iter().map(|s| s.to_string()).collect()
}

fn with_healthy(mut expected: Vec<String>) -> Vec<String> {
    expected.extend(lines(&[
        "healthy: ch1 channel.open-ok",
        "healthy: ch1 queue.declare-ok",
        "healthy: ch1 basic.get-ok routing_key=\"QUEUE\" message_count=0",
        "healthy: ch0 connection.close-ok",
    ]));
    expected
}

// ---------------------------------------------------------------------------------------------
// Before the handshake
// ---------------------------------------------------------------------------------------------

/// Sends each of `inputs` on a fresh socket where the protocol header belongs: every one must be
/// answered with the 0-9-1 protocol header and a closed socket.
async fn answered_with_0_9_1_header_and_closed(inputs: &'static [(&'static str, &'static [u8])]) {
    let t = differential_cases(|url| {
        inputs
            .iter()
            .map(|&(label, bytes)| (label, raw_exchange(&url, bytes)))
            .collect()
    })
    .await;
    let mut expected = Vec::new();
    for (label, _) in inputs {
        expected.push(format!("{label}: received AMQP\\x00\\x00\\t\\x01"));
        expected.push(format!("{label}: socket closed"));
    }
    assert_eq!(t, with_healthy(expected));
}

#[tokio::test]
async fn wrong_protocol_header_is_answered_with_0_9_1_and_closed() {
    answered_with_0_9_1_header_and_closed(&[
        ("AMQP 0-9-2", b"AMQP\x00\x00\x09\x02"),
        ("AMQP 0-9-0", b"AMQP\x00\x00\x09\x00"),
        ("AMQP 0-8-0", b"AMQP\x00\x00\x08\x00"),
        ("AMQP 1.0", b"AMQP\x00\x01\x00\x00"),
        ("AMQP 1.0 SASL", b"AMQP\x03\x01\x00\x00"),
        ("HTTP/1.1", b"HTTP/1.1"),
        ("HTTP request", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ])
    .await;
}

/// RabbitMQ takes the legacy 0-9 header (`AMQP 1 1 0 9`) as 0-9-1 and starts a session that
/// announces version 0-9.
#[tokio::test]
async fn legacy_0_9_protocol_header_starts_a_0_9_session() {
    let t = differential_cases(|url| {
        let start = case(&url, |url| async move {
            let mut c = Client::connect(&url).await;
            c.send(b"AMQP\x01\x01\x00\x09").await;
            let first = c.next(READ).await;
            vec![event_text(&first)]
        });
        vec![("AMQP 1-1-0-9", start)]
    })
    .await;
    assert_eq!(
        t,
        with_healthy(lines(&[
            "AMQP 1-1-0-9: ch0 connection.start version 0-9 mechanisms=\"PLAIN AMQPLAIN\" locales=\"en_US\"",
        ]))
    );
}

#[tokio::test]
async fn frame_or_garbage_before_protocol_header() {
    answered_with_0_9_1_header_and_closed(&[
        (
            "method frame",
            b"\x01\x00\x00\x00\x00\x00\x05\x00\x14\x00\x0a\x00\xce",
        ),
        ("heartbeat frame", b"\x08\x00\x00\x00\x00\x00\x00\xce"),
        ("zero bytes", b"\x00\x00\x00\x00\x00\x00\x00\x00"),
        ("0xff bytes", b"\xff\xff\xff\xff\xff\xff\xff\xff"),
    ])
    .await;
}

// ---------------------------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------------------------

/// frame_max is the negotiated one (8192 here, below the server's 131072). RabbitMQ rejects a
/// frame whose payload is larger than frame_max (so up to frame_max payload bytes pass, even
/// though the limit it reports is frame_max - 8), and checks it from the frame header alone.
#[tokio::test]
async fn frame_larger_than_frame_max_is_a_frame_error() {
    let t = differential_cases(|url| {
        let small = Login {
            frame_max: Some(8192),
            ..Login::default()
        };
        let oversized_body = {
            let small = small.clone();
            case(&url, |url| async move {
                let mut c = Client::connect(&url).await;
                c.handshake_with(&small).await.expect("handshake");
                assert_eq!(c.call(&channel_open(1)).await, "ch1 channel.open-ok");
                c.send(&publish(1, "nowhere")).await;
                c.send(&content_header(1, 60, 10_000)).await;
                c.send(&body(1, &vec![b'x'; c.frame_max as usize + 1]))
                    .await;
                c.finish().await
            })
        };
        let oversized_method = {
            let small = small.clone();
            case(&url, |url| async move {
                let mut c = Client::connect(&url).await;
                c.handshake_with(&small).await.expect("handshake");
                // channel.open with an 8200-byte tail: payload 8205 bytes.
                let mut args = vec![0u8];
                args.extend(vec![b'x'; 8200]);
                c.send(&raw_method(1, 20, 10, &args)).await;
                c.finish().await
            })
        };
        // Payload of exactly frame_max bytes is accepted: the message arrives.
        let at_limit = {
            let small = small.clone();
            case(&url, |url| async move {
                let q = unique("bad-input.frame-max");
                let mut c = Client::connect(&url).await;
                c.handshake_with(&small).await.expect("handshake");
                let n = c.frame_max as usize;
                let mut t = vec![c.call(&channel_open(1)).await];
                t.push(c.call(&queue_declare(1, &q, false, true)).await);
                c.send(&publish(1, &q)).await;
                c.send(&content_header(1, 60, n as u64)).await;
                c.send(&body(1, &vec![b'x'; n])).await;
                t.push(c.call(&get(1, &q)).await.replace(&q, "QUEUE"));
                // The header, then the body split into frames of at most frame_max - 8 bytes.
                for _ in 0..3 {
                    t.push(event_text(&c.next(READ).await));
                }
                t
            })
        };
        vec![
            ("body frame 8193 bytes", oversized_body),
            ("method frame 8205 bytes", oversized_method),
            ("body frame 8192 bytes", at_limit),
        ]
    })
    .await;
    assert_eq!(
        t,
        with_healthy(lines(&[
            "body frame 8193 bytes: ch0 connection.close 501 \"FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,8193,8184}\" class=0 method=0",
            "body frame 8193 bytes: socket closed before close-ok",
            "method frame 8205 bytes: ch0 connection.close 501 \"FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,8205,8184}\" class=0 method=0",
            "method frame 8205 bytes: socket closed before close-ok",
            "body frame 8192 bytes: ch1 channel.open-ok",
            "body frame 8192 bytes: ch1 queue.declare-ok",
            "body frame 8192 bytes: ch1 basic.get-ok routing_key=\"QUEUE\" message_count=0",
            "body frame 8192 bytes: ch1 content header class=60 body_size=8192",
            "body frame 8192 bytes: ch1 content body 8184 bytes",
            "body frame 8192 bytes: ch1 content body 8 bytes",
        ]))
    );
}

#[tokio::test]
async fn bad_frame_end_octet_is_a_frame_error() {
    let t = differential_cases(|url| {
        vec![
            (
                "channel.open ending 0x00",
                after_open(&url, &[], raw_frame(1, 1, b"\x00\x14\x00\x0a\x00", 0x00)),
            ),
            (
                "heartbeat ending 0x42",
                after_open(&url, &[], raw_frame(8, 0, b"", 0x42)),
            ),
        ]
    })
    .await;
    assert_eq!(
        t,
        with_healthy(lines(&[
            "channel.open ending 0x00: ch0 connection.close 501 \"FRAME_ERROR - type 1, all octets = <<0,20,0,10,0>>: {invalid_frame_end_marker,0}\" class=0 method=0",
            "channel.open ending 0x00: socket closed before close-ok",
            "heartbeat ending 0x42: ch0 connection.close 501 \"FRAME_ERROR - type 8, all octets = <<>>: {invalid_frame_end_marker,66}\" class=0 method=0",
            "heartbeat ending 0x42: socket closed before close-ok",
        ]))
    );
}

#[tokio::test]
async fn unknown_frame_type_is_a_frame_error() {
    let t = differential_cases(|url| {
        vec![
            (
                "type 9 on ch0",
                after_open(&url, &[], raw_frame(9, 0, b"", 0xCE)),
            ),
            (
                "type 4 on ch1",
                after_open(&url, &[1], raw_frame(4, 1, b"abc", 0xCE)),
            ),
            (
                "type 65 on ch0",
                after_open(&url, &[], raw_frame(65, 0, b"", 0xCE)),
            ),
        ]
    })
    .await;
    assert_eq!(
        t,
        with_healthy(lines(&[
            "type 9 on ch0: ch0 connection.close 501 \"FRAME_ERROR - type 9, all octets = <<>>: unknown_frame\" class=0 method=0",
            "type 9 on ch0: socket open 4 s after connection.close",
            "type 9 on ch0: socket closed after close-ok",
            "type 4 on ch1: ch0 connection.close 501 \"FRAME_ERROR - type 4, all octets = <<\\\"abc\\\">>: unknown_frame\" class=0 method=0",
            "type 4 on ch1: socket open 4 s after connection.close",
            "type 4 on ch1: socket closed after close-ok",
            "type 65 on ch0: ch0 connection.close 501 \"FRAME_ERROR - type 65, all octets = <<>>: unknown_frame\" class=0 method=0",
            "type 65 on ch0: socket open 4 s after connection.close",
            "type 65 on ch0: socket closed after close-ok",
        ]))
    );
}

/// RabbitMQ's connection process crashes on an unknown class or method id: the socket is closed
/// at once and no connection.close is sent.
#[tokio::test]
async fn unknown_class_or_method_id_drops_the_connection() {
    let t = differential_cases(|url| {
        vec![
            (
                "class 99 on ch0",
                after_open(&url, &[], raw_method(0, 99, 10, b"")),
            ),
            (
                "class 99 on ch1",
                after_open(&url, &[1], raw_method(1, 99, 10, b"")),
            ),
            (
                "class 99 on unopened ch5",
                after_open(&url, &[], raw_method(5, 99, 10, b"")),
            ),
            (
                "method 10.99 on ch0",
                after_open(&url, &[], raw_method(0, 10, 99, b"")),
            ),
            (
                "method 20.99 on ch1",
                after_open(&url, &[1], raw_method(1, 20, 99, b"")),
            ),
            (
                "method 60.99 on ch1",
                after_open(&url, &[1], raw_method(1, 60, 99, b"")),
            ),
        ]
    })
    .await;
    let mut expected = Vec::new();
    for label in [
        "class 99 on ch0",
        "class 99 on ch1",
        "class 99 on unopened ch5",
        "method 10.99 on ch0",
        "method 20.99 on ch1",
        "method 60.99 on ch1",
    ] {
        expected.push(format!("{label}: socket closed"));
    }
    assert_eq!(t, with_healthy(expected));
}

/// Arguments that do not decode are a 501 FRAME_ERROR naming the method (not 502).
#[tokio::test]
async fn truncated_or_overlong_method_arguments() {
    let t = differential_cases(|url| {
        vec![
            (
                "queue.declare cut short",
                // reserved-1, then a shortstr of length 5 with only "ab"
                after_open(&url, &[1], raw_method(1, 50, 10, b"\x00\x00\x05ab")),
            ),
            (
                "channel.open without arguments",
                after_open(&url, &[], raw_method(1, 20, 10, b"")),
            ),
            (
                "channel.open with trailing bytes",
                after_open(&url, &[], raw_method(1, 20, 10, b"\x00junk")),
            ),
            (
                "method payload of 1 byte",
                after_open(&url, &[], raw_frame(1, 1, b"\x00", 0xCE)),
            ),
            (
                "method payload empty",
                after_open(&url, &[], raw_frame(1, 1, b"", 0xCE)),
            ),
        ]
    })
    .await;
    assert_eq!(
        t,
        with_healthy(lines(&[
            "queue.declare cut short: ch0 connection.close 501 \"FRAME_ERROR - cannot decode <<0,0,5,97,98>>\" class=50 method=10",
            "queue.declare cut short: socket open 4 s after connection.close",
            "queue.declare cut short: socket closed after close-ok",
            "channel.open without arguments: ch0 connection.close 501 \"FRAME_ERROR - cannot decode <<>>\" class=20 method=10",
            "channel.open without arguments: socket open 4 s after connection.close",
            "channel.open without arguments: socket closed after close-ok",
            "channel.open with trailing bytes: ch0 connection.close 501 \"FRAME_ERROR - cannot decode <<0,106,117,110,107>>\" class=20 method=10",
            "channel.open with trailing bytes: socket open 4 s after connection.close",
            "channel.open with trailing bytes: socket closed after close-ok",
            "method payload of 1 byte: ch0 connection.close 501 \"FRAME_ERROR - type 1, all octets = <<0>>: unknown_frame\" class=0 method=0",
            "method payload of 1 byte: socket open 4 s after connection.close",
            "method payload of 1 byte: socket closed after close-ok",
            "method payload empty: ch0 connection.close 501 \"FRAME_ERROR - type 1, all octets = <<>>: unknown_frame\" class=0 method=0",
            "method payload empty: socket open 4 s after connection.close",
            "method payload empty: socket closed after close-ok",
        ]))
    );
}

// ---------------------------------------------------------------------------------------------
// Channels
// ---------------------------------------------------------------------------------------------

/// Not covered: a method sent right behind channel.close, before close-ok comes back. RabbitMQ
/// answers that with 504 or drops it silently depending on a race inside the broker.
#[tokio::test]
async fn methods_on_channels_that_are_not_open() {
    let t = differential_cases(|url| {
        let after_client_close = case(&url, |url| async move {
            let mut c = Client::open(&url).await;
            let mut t = vec![c.call(&channel_open(1)).await];
            t.push(c.call(&channel_close(1)).await);
            c.send(&queue_declare(1, "anything", true, false)).await;
            t.extend(c.finish().await);
            t
        });
        // A content-carrying method is only looked at once its content is complete.
        let publish_unopened = case(&url, |url| async move {
            let mut c = Client::open(&url).await;
            c.send(&publish(3, "nowhere")).await;
            let mut t = c.quiet().await;
            c.send(&content_header(3, 60, 0)).await;
            t.extend(c.finish().await);
            t
        });
        vec![
            (
                "queue.declare on never-opened ch3",
                after_open(&url, &[], queue_declare(3, "anything", true, false)),
            ),
            ("basic.publish on never-opened ch3", publish_unopened),
            ("queue.declare after channel.close-ok", after_client_close),
            (
                "channel.open twice",
                after_open(&url, &[1], channel_open(1)),
            ),
            (
                "channel.open on ch0",
                after_open(&url, &[], channel_open(0)),
            ),
            (
                "queue.declare on ch0",
                after_open(&url, &[], queue_declare(0, "anything", true, false)),
            ),
            (
                "connection.tune-ok on ch1",
                after_open(
                    &url,
                    &[1],
                    method(
                        1,
                        AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                            channel_max: 0,
                            frame_max: 131072,
                            heartbeat: 0,
                        })),
                    ),
                ),
            ),
        ]
    })
    .await;
    assert_eq!(
        t,
        with_healthy(lines(&[
            "queue.declare on never-opened ch3: ch0 connection.close 504 \"CHANNEL_ERROR - expected 'channel.open'\" class=50 method=10",
            "queue.declare on never-opened ch3: socket open 4 s after connection.close",
            "queue.declare on never-opened ch3: socket closed after close-ok",
            "basic.publish on never-opened ch3: nothing within 1.5 s",
            "basic.publish on never-opened ch3: ch0 connection.close 504 \"CHANNEL_ERROR - expected 'channel.open'\" class=60 method=40",
            "basic.publish on never-opened ch3: socket open 4 s after connection.close",
            "basic.publish on never-opened ch3: socket closed after close-ok",
            "queue.declare after channel.close-ok: ch1 channel.open-ok",
            "queue.declare after channel.close-ok: ch1 channel.close-ok",
            "queue.declare after channel.close-ok: ch0 connection.close 504 \"CHANNEL_ERROR - expected 'channel.open'\" class=50 method=10",
            "queue.declare after channel.close-ok: socket open 4 s after connection.close",
            "queue.declare after channel.close-ok: socket closed after close-ok",
            "channel.open twice: ch0 connection.close 504 \"CHANNEL_ERROR - second 'channel.open' seen\" class=20 method=10",
            "channel.open twice: socket open 4 s after connection.close",
            "channel.open twice: socket closed after close-ok",
            "channel.open on ch0: ch0 connection.close 504 \"CHANNEL_ERROR - unexpected method in connection state running\" class=20 method=10",
            "channel.open on ch0: socket open 4 s after connection.close",
            "channel.open on ch0: socket closed after close-ok",
            "queue.declare on ch0: ch0 connection.close 504 \"CHANNEL_ERROR - unexpected method in connection state running\" class=50 method=10",
            "queue.declare on ch0: socket open 4 s after connection.close",
            "queue.declare on ch0: socket closed after close-ok",
            "connection.tune-ok on ch1: ch0 connection.close 503 \"COMMAND_INVALID - unimplemented method\" class=10 method=31",
            "connection.tune-ok on ch1: socket open 4 s after connection.close",
            "connection.tune-ok on ch1: socket closed after close-ok",
        ]))
    );
}

/// After the server closes a channel it ignores everything on that channel except
/// channel.close-ok (a channel.open there is "second 'channel.open' seen"); after close-ok the
/// id can be opened again.
#[tokio::test]
async fn channel_closed_by_the_server_until_close_ok() {
    let t = differential_cases(|url| {
        let missing = unique("bad-input.missing");
        let ignore_then_reopen = {
            let missing = missing.clone();
            case(&url, |url| async move {
                let mut c = Client::open(&url).await;
                let mut t = vec![c.call(&channel_open(1)).await];
                t.push(c.call(&queue_declare(1, &missing, true, false)).await);
                c.send(&queue_declare(1, "anything", true, false)).await;
                c.send(&publish(1, "nowhere")).await;
                c.send(&content_header(1, 60, 3)).await;
                c.send(&body(1, b"abc")).await;
                t.extend(c.quiet().await);
                c.send(&channel_close_ok(1)).await;
                t.extend(c.quiet().await);
                t.push(c.call(&channel_open(1)).await);
                t.into_iter()
                    .map(|l| l.replace(&missing, "MISSING"))
                    .collect()
            })
        };
        let reopen_before_close_ok = {
            let missing = missing.clone();
            case(&url, |url| async move {
                let mut c = Client::open(&url).await;
                let mut t = vec![c.call(&channel_open(1)).await];
                t.push(c.call(&queue_declare(1, &missing, true, false)).await);
                c.send(&channel_open(1)).await;
                t.extend(c.finish().await);
                t.into_iter()
                    .map(|l| l.replace(&missing, "MISSING"))
                    .collect()
            })
        };
        vec![
            ("ignored until close-ok", ignore_then_reopen),
            ("channel.open before close-ok", reopen_before_close_ok),
        ]
    })
    .await;
    assert_eq!(
        t,
        with_healthy(lines(&[
            "ignored until close-ok: ch1 channel.open-ok",
            "ignored until close-ok: ch1 channel.close 404 \"NOT_FOUND - no queue 'MISSING' in vhost '/'\" class=50 method=10",
            "ignored until close-ok: nothing within 1.5 s",
            "ignored until close-ok: nothing within 1.5 s",
            "ignored until close-ok: ch1 channel.open-ok",
            "channel.open before close-ok: ch1 channel.open-ok",
            "channel.open before close-ok: ch1 channel.close 404 \"NOT_FOUND - no queue 'MISSING' in vhost '/'\" class=50 method=10",
            "channel.open before close-ok: ch0 connection.close 504 \"CHANNEL_ERROR - second 'channel.open' seen\" class=20 method=10",
            "channel.open before close-ok: socket open 4 s after connection.close",
            "channel.open before close-ok: socket closed after close-ok",
        ]))
    );
}

/// RabbitMQ 3.10 accepts any channel id (up to 65535) whatever channel_max says; what it limits is
/// the number of open channels (530 once as many as channel_max are open).
#[tokio::test]
async fn channel_ids_and_channel_max() {
    let t = differential_cases(|url| {
        let too_many = case(&url, |url| async move {
            let mut c = Client::connect(&url).await;
            let login = Login {
                channel_max: Some(2),
                ..Login::default()
            };
            c.handshake_with(&login).await.expect("handshake");
            let mut t = vec![c.call(&channel_open(1)).await];
            t.push(c.call(&channel_open(2)).await);
            c.send(&channel_open(3)).await;
            t.extend(c.finish().await);
            t
        });
        let high_ids = case(&url, |url| async move {
            let mut c = Client::open(&url).await;
            let mut t = Vec::new();
            for ch in [2047u16, 2048, 65535] {
                t.push(c.call(&channel_open(ch)).await);
            }
            t.push(c.call(&queue_declare(65535, "", false, true)).await);
            t
        });
        vec![
            ("ids above channel_max", high_ids),
            ("third channel with channel_max 2", too_many),
        ]
    })
    .await;
    assert_eq!(
        t,
        with_healthy(lines(&[
            "ids above channel_max: ch2047 channel.open-ok",
            "ids above channel_max: ch2048 channel.open-ok",
            "ids above channel_max: ch65535 channel.open-ok",
            "ids above channel_max: ch65535 queue.declare-ok",
            "third channel with channel_max 2: ch1 channel.open-ok",
            "third channel with channel_max 2: ch2 channel.open-ok",
            "third channel with channel_max 2: ch0 connection.close 530 \"NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)\" class=0 method=0",
            "third channel with channel_max 2: socket open 4 s after connection.close",
            "third channel with channel_max 2: socket closed after close-ok",
        ]))
    );
}

// ---------------------------------------------------------------------------------------------
// Content
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn content_frames_out_of_order() {
    let t = differential_cases(|url| {
        let then = |a: Vec<u8>, b: Vec<u8>| -> Vec<u8> { a.into_iter().chain(b).collect() };
        vec![
            (
                "header without publish",
                after_open(&url, &[1], content_header(1, 60, 5)),
            ),
            (
                "body without publish",
                after_open(&url, &[1], body(1, b"abc")),
            ),
            (
                "header on never-opened ch3",
                after_open(&url, &[], content_header(3, 60, 5)),
            ),
            (
                "body on never-opened ch3",
                after_open(&url, &[], body(3, b"abc")),
            ),
            (
                "header on ch0",
                after_open(&url, &[], content_header(0, 60, 5)),
            ),
            ("body on ch0", after_open(&url, &[], body(0, b"a"))),
            (
                "publish then body",
                after_open(&url, &[1], then(publish(1, "nowhere"), body(1, b"abc"))),
            ),
            (
                "publish then method",
                after_open(
                    &url,
                    &[1],
                    then(publish(1, "nowhere"), queue_declare(1, "x", true, false)),
                ),
            ),
            (
                "publish then header of class 50",
                after_open(
                    &url,
                    &[1],
                    then(publish(1, "nowhere"), content_header(1, 50, 3)),
                ),
            ),
            (
                "header then method",
                after_open(
                    &url,
                    &[1],
                    then(
                        then(publish(1, "nowhere"), content_header(1, 60, 10)),
                        queue_declare(1, "x", true, false),
                    ),
                ),
            ),
            (
                "part of body then method",
                after_open(
                    &url,
                    &[1],
                    then(
                        then(
                            then(publish(1, "nowhere"), content_header(1, 60, 10)),
                            body(1, b"abc"),
                        ),
                        queue_declare(1, "x", true, false),
                    ),
                ),
            ),
            (
                "part of body then header",
                after_open(
                    &url,
                    &[1],
                    then(
                        then(
                            then(publish(1, "nowhere"), content_header(1, 60, 10)),
                            body(1, b"abc"),
                        ),
                        content_header(1, 60, 10),
                    ),
                ),
            ),
            (
                "empty-body header then body",
                after_open(
                    &url,
                    &[1],
                    then(
                        then(publish(1, "nowhere"), content_header(1, 60, 0)),
                        body(1, b"abc"),
                    ),
                ),
            ),
        ]
    })
    .await;
    let expected_method = "\"UNEXPECTED_FRAME - expected method frame, got non method frame instead\" class=0 method=0";
    let expected_header = "\"UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead\" class=60 method=40";
    let expected_body = "\"UNEXPECTED_FRAME - expected content body, got non content body frame instead\" class=60 method=40";
    let mut expected = Vec::new();
    let mut push = |label: &str, close: String| {
        expected.push(format!("{label}: ch0 connection.close {close}"));
        expected.push(format!("{label}: socket open 4 s after connection.close"));
        expected.push(format!("{label}: socket closed after close-ok"));
    };
    push("header without publish", format!("505 {expected_method}"));
    push("body without publish", format!("505 {expected_method}"));
    push(
        "header on never-opened ch3",
        format!("505 {expected_method}"),
    );
    push("body on never-opened ch3", format!("505 {expected_method}"));
    push(
        "header on ch0",
        "505 \"UNEXPECTED_FRAME - type 2, all octets = <<0,60,0,0,0,0,0,0,0,0,0,5,0,0>>\" class=0 method=0".into(),
    );
    push(
        "body on ch0",
        "505 \"UNEXPECTED_FRAME - type 3, all octets = <<\\\"a\\\">>\" class=0 method=0".into(),
    );
    push("publish then body", format!("505 {expected_header}"));
    push("publish then method", format!("505 {expected_header}"));
    push(
        "publish then header of class 50",
        "505 \"UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 instead\" class=60 method=40".into(),
    );
    push("header then method", format!("505 {expected_body}"));
    push("part of body then method", format!("505 {expected_body}"));
    push("part of body then header", format!("505 {expected_body}"));
    push(
        "empty-body header then body",
        format!("505 {expected_method}"),
    );
    assert_eq!(t, with_healthy(expected));
}

/// RabbitMQ counts body bytes down from the declared size and completes the message only when
/// the count hits exactly zero: a longer body leaves the channel waiting for more body forever,
/// nothing is routed, and the next method frame is a 505.
#[tokio::test]
async fn body_longer_than_declared_size() {
    let t = differential_cases(|url| {
        let longer = case(&url, |url| async move {
            let q = unique("bad-input.longer");
            let mut c = Client::open(&url).await;
            let mut t = vec![c.call(&channel_open(1)).await];
            t.push(c.call(&channel_open(2)).await);
            t.push(c.call(&queue_declare(1, &q, false, true)).await);
            c.send(&publish(1, &q)).await;
            c.send(&content_header(1, 60, 3)).await;
            c.send(&body(1, b"abcdef")).await;
            t.extend(c.quiet().await);
            // Nothing reached the queue.
            t.push(c.call(&get(2, &q)).await);
            c.send(&body(1, b"ghi")).await;
            t.extend(c.quiet().await);
            c.send(&get(1, &q)).await;
            t.extend(c.finish().await);
            t
        });
        vec![("body 6 bytes for size 3", longer)]
    })
    .await;
    assert_eq!(
        t,
        with_healthy(lines(&[
            "body 6 bytes for size 3: ch1 channel.open-ok",
            "body 6 bytes for size 3: ch2 channel.open-ok",
            "body 6 bytes for size 3: ch1 queue.declare-ok",
            "body 6 bytes for size 3: nothing within 1.5 s",
            "body 6 bytes for size 3: ch2 basic.get-empty",
            "body 6 bytes for size 3: nothing within 1.5 s",
            "body 6 bytes for size 3: ch0 connection.close 505 \"UNEXPECTED_FRAME - expected content body, got non content body frame instead\" class=60 method=40",
            "body 6 bytes for size 3: socket open 4 s after connection.close",
            "body 6 bytes for size 3: socket closed after close-ok",
        ]))
    );
}

/// RabbitMQ's default `max_message_size` (128 MiB): a bigger message closes the channel with 406
/// and the connection goes on. RabbitMQ says so once the whole body is in; the embedded broker
/// as soon as the header announces it (so it never holds the body), which the client sees the
/// same way: the close arrives, the body is ignored.
#[tokio::test]
async fn message_larger_than_max_message_size() {
    let t = differential_cases(|url| {
        let larger = case(&url, |url| async move {
            let size = (128 << 20) + 1;
            let mut c = Client::open(&url).await;
            let mut t = vec![c.call(&channel_open(1)).await];
            c.send(&publish(1, "nowhere")).await;
            c.send(&content_header(1, 60, size as u64)).await;
            let chunk = vec![b'x'; 131_072 - 8];
            let mut bytes = Vec::with_capacity(size + size / chunk.len() * 8 + 8);
            let mut left = size;
            while left > 0 {
                let n = left.min(chunk.len());
                bytes.extend_from_slice(&body(1, &chunk[..n]));
                left -= n;
            }
            c.send(&bytes).await;
            t.push(c.call(&[]).await);
            t.push(c.call(&channel_close_ok(1)).await);
            t.push(c.call(&channel_open(1)).await);
            t
        });
        vec![("128 MiB + 1", larger)]
    })
    .await;
    assert_eq!(
        t,
        with_healthy(lines(&[
            "128 MiB + 1: ch1 channel.open-ok",
            "128 MiB + 1: ch1 channel.close 406 \"PRECONDITION_FAILED - message size 134217729 is larger than configured max size 134217728\" class=60 method=40",
            "128 MiB + 1: no frame within 5 s",
            "128 MiB + 1: ch1 channel.open-ok",
        ]))
    );
}

#[tokio::test]
async fn heartbeat_on_a_non_zero_channel() {
    let t = differential_cases(|url| {
        vec![
            (
                "heartbeat on open ch1",
                after_open(&url, &[1], raw_frame(8, 1, b"", 0xCE)),
            ),
            (
                "heartbeat on never-opened ch1",
                after_open(&url, &[], raw_frame(8, 1, b"", 0xCE)),
            ),
            (
                "heartbeat on ch0 with payload",
                after_open(&url, &[], raw_frame(8, 0, b"xy", 0xCE)),
            ),
        ]
    })
    .await;
    assert_eq!(
        t,
        with_healthy(lines(&[
            "heartbeat on open ch1: ch0 connection.close 505 \"UNEXPECTED_FRAME - type 8, all octets = <<>>\" class=0 method=0",
            "heartbeat on open ch1: socket open 4 s after connection.close",
            "heartbeat on open ch1: socket closed after close-ok",
            "heartbeat on never-opened ch1: ch0 connection.close 505 \"UNEXPECTED_FRAME - type 8, all octets = <<>>\" class=0 method=0",
            "heartbeat on never-opened ch1: socket open 4 s after connection.close",
            "heartbeat on never-opened ch1: socket closed after close-ok",
            "heartbeat on ch0 with payload: ch0 connection.close 501 \"FRAME_ERROR - type 8, all octets = <<\\\"xy\\\">>: unknown_frame\" class=0 method=0",
            "heartbeat on ch0 with payload: socket open 4 s after connection.close",
            "heartbeat on ch0 with payload: socket closed after close-ok",
        ]))
    );
}

// ---------------------------------------------------------------------------------------------
// Login and tuning
// ---------------------------------------------------------------------------------------------

/// Runs a handshake with `login` and records how it ended.
fn login_case(url: &str, login: Login) -> Case {
    case(url, |url| async move {
        let mut c = Client::connect(&url).await;
        match c.handshake_with(&login).await {
            Ok(()) => {
                let mut t = vec!["connection.open-ok".to_string()];
                t.push(c.call(&channel_open(1)).await);
                t
            }
            Err(t) => t,
        }
    })
}

#[tokio::test]
async fn login_failures() {
    let t = differential_cases(|url| {
        let plain = |user: &str, pass: &str| Login {
            response: format!("\0{user}\0{pass}").into_bytes(),
            ..Login::default()
        };
        let amqplain = |user: &str, pass: &str| Login {
            mechanism: "AMQPLAIN".into(),
            response: amqplain_response(user, pass),
            ..Login::default()
        };
        vec![
            ("wrong password", login_case(&url, plain("guest", "wrong"))),
            (
                "unknown user",
                login_case(&url, plain("nobody-here", "guest")),
            ),
            (
                "wrong password, no authentication_failure_close",
                login_case(
                    &url,
                    Login {
                        auth_failure_close: false,
                        ..plain("guest", "wrong")
                    },
                ),
            ),
            ("AMQPLAIN", login_case(&url, amqplain("guest", "guest"))),
            (
                "AMQPLAIN wrong password",
                login_case(&url, amqplain("guest", "wrong")),
            ),
            (
                "mechanism EXTERNAL",
                login_case(
                    &url,
                    Login {
                        mechanism: "EXTERNAL".into(),
                        response: Vec::new(),
                        ..Login::default()
                    },
                ),
            ),
            (
                "mechanism FOO",
                login_case(
                    &url,
                    Login {
                        mechanism: "FOO".into(),
                        ..Login::default()
                    },
                ),
            ),
            (
                "mechanism plain (lower case)",
                login_case(
                    &url,
                    Login {
                        mechanism: "plain".into(),
                        ..Login::default()
                    },
                ),
            ),
            (
                "PLAIN response without NULs",
                login_case(
                    &url,
                    Login {
                        response: b"guest guest".to_vec(),
                        ..Login::default()
                    },
                ),
            ),
            (
                "PLAIN response with authzid",
                login_case(
                    &url,
                    Login {
                        response: b"guest\0guest\0guest".to_vec(),
                        ..Login::default()
                    },
                ),
            ),
            (
                "unknown vhost",
                login_case(
                    &url,
                    Login {
                        vhost: Some("no-such-vhost".into()),
                        ..Login::default()
                    },
                ),
            ),
        ]
    })
    .await;
    let refused = |mech: &str| {
        format!("ch0 connection.close 403 \"ACCESS_REFUSED - Login was refused using authentication mechanism {mech}. For details see the broker logfile.\" class=0 method=0")
    };
    let mut expected = Vec::new();
    for (label, lines) in [
        ("wrong password", vec![refused("PLAIN"), "socket closed before close-ok".into()]),
        ("unknown user", vec![refused("PLAIN"), "socket closed before close-ok".into()]),
        (
            "wrong password, no authentication_failure_close",
            vec!["socket closed".into()],
        ),
        (
            "AMQPLAIN",
            vec!["connection.open-ok".into(), "ch1 channel.open-ok".into()],
        ),
        (
            "AMQPLAIN wrong password",
            vec![refused("AMQPLAIN"), "socket closed before close-ok".into()],
        ),
        ("mechanism EXTERNAL", vec!["socket closed".into()]),
        ("mechanism FOO", vec!["socket closed".into()]),
        ("mechanism plain (lower case)", vec!["socket closed".into()]),
        ("PLAIN response without NULs", vec!["socket closed".into()]),
        ("PLAIN response with authzid", vec!["socket closed".into()]),
        (
            "unknown vhost",
            vec![
                "ch0 connection.close 530 \"NOT_ALLOWED - vhost no-such-vhost not found\" class=10 method=40".into(),
                "socket open 4 s after connection.close".into(),
                "socket closed after close-ok".into(),
            ],
        ),
    ] {
        for line in lines {
            expected.push(format!("{label}: {line}"));
        }
    }
    assert_eq!(t, with_healthy(expected));
}

/// tune-ok values the server cannot accept: RabbitMQ sends nothing and closes the socket about
/// 3 s later.
#[tokio::test]
async fn tune_ok_outside_the_servers_limits() {
    let t = differential_cases(|url| {
        let tune = |channel_max: Option<u16>, frame_max: Option<u32>| Login {
            channel_max,
            frame_max,
            ..Login::default()
        };
        vec![
            ("channel_max 5000", login_case(&url, tune(Some(5000), None))),
            ("channel_max 0", login_case(&url, tune(Some(0), None))),
            ("frame_max 4095", login_case(&url, tune(None, Some(4095)))),
            ("frame_max 4096", login_case(&url, tune(None, Some(4096)))),
            (
                "frame_max 200000",
                login_case(&url, tune(None, Some(200_000))),
            ),
            ("frame_max 0", login_case(&url, tune(None, Some(0)))),
        ]
    })
    .await;
    assert_eq!(
        t,
        with_healthy(lines(&[
            "channel_max 5000: socket closed",
            "channel_max 0: socket closed",
            "frame_max 4095: socket closed",
            "frame_max 4096: connection.open-ok",
            "frame_max 4096: ch1 channel.open-ok",
            "frame_max 200000: socket closed",
            "frame_max 0: socket closed",
        ]))
    );
}

// ---------------------------------------------------------------------------------------------
// Heartbeats
// ---------------------------------------------------------------------------------------------

/// A peer that asks for 1 s heartbeats and then says nothing is dropped (no connection.close)
/// after about two missed beats; RabbitMQ itself sends a heartbeat every half interval.
#[tokio::test]
async fn silent_peer_is_dropped_after_missed_heartbeats() {
    let t = differential_cases(|url| {
        let silent = case(&url, |url| async move {
            let mut c = Client::connect(&url).await;
            let login = Login {
                heartbeat: 1,
                ..Login::default()
            };
            c.handshake_with(&login).await.expect("handshake");
            let started = Instant::now();
            let mut heartbeats = 0;
            let mut other = Vec::new();
            let closed_at = loop {
                match c.next(Duration::from_secs(10)).await {
                    Event::Frame(AMQPFrame::Heartbeat) => heartbeats += 1,
                    Event::Frame(f) => other.push(describe(&f)),
                    Event::Closed => break Some(started.elapsed()),
                    Event::Timeout | Event::Garbage(_) => break None,
                }
            };
            let mut t = vec![format!("server sent heartbeats: {}", heartbeats > 0)];
            t.push(format!("other frames: {other:?}"));
            t.push(format!(
                "closed within 5 s: {}",
                closed_at.is_some_and(|d| d < Duration::from_secs(5))
            ));
            t.push(format!(
                "closed after 2 s or later: {}",
                closed_at.is_some_and(|d| d >= Duration::from_secs(2))
            ));
            t
        });
        vec![("heartbeat 1 s", silent)]
    })
    .await;
    assert_eq!(
        t,
        with_healthy(lines(&[
            "heartbeat 1 s: server sent heartbeats: true",
            "heartbeat 1 s: other frames: []",
            "heartbeat 1 s: closed within 5 s: true",
            "heartbeat 1 s: closed after 2 s or later: true",
        ]))
    );
}

// ---------------------------------------------------------------------------------------------
// A misbehaving peer does not disturb a good one
// ---------------------------------------------------------------------------------------------

/// A lapin client publishes with confirms; a third of the way through, misbehaving raw
/// connections (fatal frame error, unknown class id, unknown frame type, garbage instead of a
/// protocol header) come and go. Every message of the good client must be confirmed and arrive,
/// in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_connection_does_not_disturb_a_good_client() {
    use common::client::{channel, connect, declare_exclusive_queue, drain};
    use lapin::options::BasicPublishOptions;

    const MESSAGES: usize = 300;
    let t = differential(|url| async move {
        let q = unique("bad-input.good-client");
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        declare_exclusive_queue(&ch, &q).await;

        let mut confirms = Vec::new();
        let mut troublemakers = None;
        for i in 0..MESSAGES {
            if i == MESSAGES / 3 {
                let url = url.clone();
                troublemakers = Some(tokio::spawn(async move {
                    let list = vec![
                        (
                            "bad frame end",
                            after_open(&url, &[1], raw_frame(1, 1, b"\x00\x14\x00\x0a\x00", 0)),
                        ),
                        (
                            "unknown class",
                            after_open(&url, &[1], raw_method(1, 99, 10, b"")),
                        ),
                        (
                            "unknown frame type",
                            after_open(&url, &[], raw_frame(9, 0, b"", 0xCE)),
                        ),
                        (
                            "garbage header",
                            raw_exchange(&url, b"\xff\xff\xff\xff\xff\xff\xff\xff"),
                        ),
                    ];
                    join_cases(list).await
                }));
            }
            let confirm = ch
                .basic_publish(
                    "".into(),
                    q.as_str().into(),
                    BasicPublishOptions::default(),
                    format!("message {i}").as_bytes(),
                    BasicProperties::default(),
                )
                .await
                .expect("basic.publish");
            confirms.push(confirm);
            // Keep the stream going while the troublemakers run.
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let mut t = troublemakers
            .expect("troublemakers started")
            .await
            .expect("troublemakers panicked");
        let mut acked = 0;
        for confirm in confirms {
            if confirm.await.expect("confirm").is_ack() {
                acked += 1;
            }
        }
        let received = drain(&ch, &q).await;
        let expected: Vec<String> = (0..MESSAGES).map(|i| format!("message {i}")).collect();
        t.push(format!("good client: {acked} of {MESSAGES} confirmed"));
        t.push(format!(
            "good client: {} received, all in order: {}",
            received.len(),
            received == expected
        ));
        t.push(format!(
            "good client: still connected: {}",
            conn.status().connected()
        ));
        conn.close(200, "done".into()).await.expect("close");
        t
    })
    .await;
    assert_eq!(
        t,
        lines(&[
            "bad frame end: ch0 connection.close 501 \"FRAME_ERROR - type 1, all octets = <<0,20,0,10,0>>: {invalid_frame_end_marker,0}\" class=0 method=0",
            "bad frame end: socket closed before close-ok",
            "unknown class: socket closed",
            "unknown frame type: ch0 connection.close 501 \"FRAME_ERROR - type 9, all octets = <<>>: unknown_frame\" class=0 method=0",
            "unknown frame type: socket open 4 s after connection.close",
            "unknown frame type: socket closed after close-ok",
            "garbage header: received AMQP\\x00\\x00\\t\\x01",
            "garbage header: socket closed",
            "good client: 300 of 300 confirmed",
            "good client: 300 received, all in order: true",
            "good client: still connected: true",
        ])
    );
}
