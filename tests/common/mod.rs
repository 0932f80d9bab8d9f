//! Shared harness for tests that run one scenario against both brokers.
//!
//! A scenario is an async function from an AMQP URL to a transcript (a list of observations).
//! [`differential`] runs it against the RabbitMQ on 127.0.0.1:5672 and against a fresh embedded
//! broker, and asserts both transcripts are equal. Scenarios also assert what they expect, so a
//! transcript that is empty on both sides cannot pass by accident.
#![allow(dead_code)]

pub mod client;
pub mod cluster;
pub mod doctor;
pub mod imported;
pub mod pki;
pub mod process;
pub mod pty;
pub mod python;
pub mod screen;
pub mod shape;
pub mod vhost;

use std::future::Future;
use std::sync::Arc;

use rabbitscope::amqp::Server;
use rabbitscope::broker::{Broker, BrokerConfig};

/// The RabbitMQ that is the ground truth (override with RABBITMQ_URL).
pub fn rabbitmq_url() -> String {
    std::env::var("RABBITMQ_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

/// Starts an embedded broker on an ephemeral loopback port in the current runtime.
pub async fn start_embedded() -> (String, Arc<Broker>) {
    start_embedded_with(BrokerConfig::default()).await
}

pub async fn start_embedded_with(config: BrokerConfig) -> (String, Arc<Broker>) {
    let broker = Broker::new(config);
    let server = Server::bind(broker.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind embedded broker");
    let addr = server.local_addr();
    tokio::spawn(server.run());
    (format!("amqp://guest:guest@{addr}/%2f"), broker)
}

/// Says that what a test needs (a RabbitMQ plugin, say) is missing, so the test checks nothing.
/// Under CI (the environment variable `CI` set, as `.ci/run` sets it) this fails the test
/// instead: there everything is installed, and a test that skipped must not pass.
pub fn missing(what: &str) {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{what}, and CI is set: .ci/run installs and enables it, so this is a failure");
    }
    eprintln!("{what}; nothing to test");
}

/// A name no other test (or earlier run) uses, so tests can share one RabbitMQ.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "rs-test.{prefix}.{}.{nanos}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `scenario` against RabbitMQ and against the embedded broker; both transcripts must match.
/// The transcript is shown (with `--nocapture`, or when the test fails) and returned.
pub async fn differential<F, Fut>(scenario: F) -> Vec<String>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Vec<String>>,
{
    let reference = scenario(rabbitmq_url()).await;
    // Development aid while writing a scenario: check it against RabbitMQ alone. CI never sets it.
    if std::env::var_os("DIFF_REFERENCE_ONLY").is_some() {
        eprintln!("DIFF_REFERENCE_ONLY set: embedded broker not checked");
    } else {
        let (url, _broker) = start_embedded().await;
        let embedded = scenario(url).await;
        assert_eq!(
            embedded, reference,
            "embedded broker (left) differs from RabbitMQ (right)"
        );
    }
    client::show(&reference);
    reference
}

/// One request to RabbitMQ's management API as guest: the status and the whole response,
/// headers included.
pub fn management(method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect("127.0.0.1:15672")
        .expect("RabbitMQ management API on 127.0.0.1:15672");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    (status, response)
}

/// One request to RabbitMQ's management API as guest, from async code: the status and the
/// body as JSON (Null when it is none).
pub async fn management_json(
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect("127.0.0.1:15672")
        .await
        .expect("RabbitMQ management API on 127.0.0.1:15672");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    let status: u16 = text[9..12].parse().unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let json = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (
        status,
        serde_json::from_str(&json).unwrap_or(serde_json::Value::Null),
    )
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

/// The topology a trace leaves, played to its end at a thousand times its speed.
pub async fn replayed_to_end(trace: rabbitscope::trace::Trace) -> rabbitscope::broker::Snapshot {
    use rabbitscope::source::Source;
    let source = rabbitscope::trace::ReplaySource::start(trace, 1000.0);
    let _reader = source.subscribe();
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !source.finished() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the replay finished");
    source.snapshot()
}
