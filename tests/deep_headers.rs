//! Message headers nested about as deep as a frame holds reach the tools that read RabbitMQ's
//! firehose. RabbitMQ passes them on, and lapin parses them recursively on a thread of its
//! own; on a default 2 MiB stack that overflowed at a few hundred levels (in a debug build)
//! and aborted `tap`, leaving tracing on. Run against the real binary and RabbitMQ, on a vhost
//! of the test's own.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::vhost::TestVhost;

const BIN: &str = env!("CARGO_BIN_EXE_rabbitscope");

/// About the most tables (7 bytes a level) a published content header can hold while its trace
/// still fits a 131,072-byte frame: the trace adds about 240 bytes, and a trace frame larger
/// than the frame size is refused by lapin (the firehose connection closes).
const DEEPEST: usize = 18_600;

/// A field table `levels` deep (one key per level, a string at the bottom), encoded by hand
/// from the inside out: encoding it with amq-protocol would recurse as deep.
fn deep_table(levels: usize) -> Vec<u8> {
    fn long(bytes: &[u8]) -> Vec<u8> {
        let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(bytes);
        out
    }
    let mut table = long(b"\x04leafS\x00\x00\x00\x06bottom");
    for _ in 1..levels {
        let mut entry = b"\x01aF".to_vec();
        entry.extend_from_slice(&table);
        table = long(&entry);
    }
    table
}

fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.push(0xCE);
    out
}

fn short(text: &str) -> Vec<u8> {
    let mut out = vec![text.len() as u8];
    out.extend_from_slice(text.as_bytes());
    out
}

/// A blocking AMQP publisher of frames built by hand, with publisher confirms.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn open(vhost: &str) -> Raw {
        let stream = TcpStream::connect("127.0.0.1:5672").expect("connect to RabbitMQ");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut raw = Raw {
            stream,
            buf: Vec::new(),
        };
        raw.send(b"AMQP\x00\x00\x09\x01");
        raw.expect(10, 10, "connection.start");
        let mut start_ok = vec![0, 10, 0, 11, 0, 0, 0, 0];
        start_ok.extend(short("PLAIN"));
        start_ok.extend_from_slice(&12u32.to_be_bytes());
        start_ok.extend_from_slice(b"\0guest\0guest");
        start_ok.extend(short("en_US"));
        raw.send(&frame(1, 0, &start_ok));
        raw.expect(10, 30, "connection.tune");
        let mut tune_ok = vec![0, 10, 0, 31, 0, 1];
        tune_ok.extend_from_slice(&131_072u32.to_be_bytes());
        tune_ok.extend_from_slice(&[0, 0]);
        raw.send(&frame(1, 0, &tune_ok));
        let mut open = vec![0, 10, 0, 40];
        open.extend(short(vhost));
        open.extend_from_slice(&[0, 0]);
        raw.send(&frame(1, 0, &open));
        raw.expect(10, 41, "connection.open-ok");
        raw.send(&frame(1, 1, &[0, 20, 0, 10, 0]));
        raw.expect(20, 11, "channel.open-ok");
        raw.send(&frame(1, 1, &[0, 85, 0, 10, 0]));
        raw.expect(85, 11, "confirm.select-ok");
        raw
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send to RabbitMQ");
    }

    /// Reads frames until the method `class`.`method` arrives; fails on a close.
    fn expect(&mut self, class: u16, method: u16, what: &str) {
        loop {
            while self.buf.len() < 7 {
                self.fill(what);
            }
            let size = u32::from_be_bytes(self.buf[3..7].try_into().unwrap()) as usize;
            while self.buf.len() < 8 + size {
                self.fill(what);
            }
            let frame: Vec<u8> = self.buf.drain(..8 + size).collect();
            if frame[0] != 1 {
                continue;
            }
            let got = (
                u16::from_be_bytes([frame[7], frame[8]]),
                u16::from_be_bytes([frame[9], frame[10]]),
            );
            if got == (class, method) {
                return;
            }
            assert!(
                got != (10, 50) && got != (20, 40),
                "RabbitMQ closed while waiting for {what}: {:?}",
                String::from_utf8_lossy(&frame)
            );
        }
    }

    fn fill(&mut self, what: &str) {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk) {
            Ok(0) => panic!("RabbitMQ closed the socket while waiting for {what}"),
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    }

    /// Publishes `body` with `headers` (already encoded, or none) and waits for the confirm.
    fn publish(&mut self, exchange: &str, routing_key: &str, headers: Option<&[u8]>, body: &[u8]) {
        let mut publish = vec![0, 60, 0, 40, 0, 0];
        publish.extend(short(exchange));
        publish.extend(short(routing_key));
        publish.push(0);
        let mut header = vec![0, 60, 0, 0];
        header.extend_from_slice(&(body.len() as u64).to_be_bytes());
        match headers {
            Some(headers) => {
                header.extend_from_slice(&(1u16 << 13).to_be_bytes());
                header.extend_from_slice(headers);
            }
            None => header.extend_from_slice(&[0, 0]),
        }
        assert!(header.len() + 8 <= 131_072, "the header fits one frame");
        let mut out = frame(1, 1, &publish);
        out.extend(frame(2, 1, &header));
        out.extend(frame(3, 1, body));
        self.send(&out);
        self.expect(60, 80, "basic.ack");
    }
}

/// `tap`'s stdout, line by line, read on a thread of its own.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    lines
}

/// Waits for a line containing `wanted`; fails (saying what the tool wrote) if the tool ends
/// or nothing comes.
fn wait_for_line(child: &mut Child, lines: &mpsc::Receiver<String>, wanted: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.contains(wanted) => return line,
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!(
                        "tap ended ({status}) before printing {wanted:?}: {}",
                        said(child)
                    );
                }
            }
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().unwrap();
                panic!("tap never printed {wanted:?} ({status}): {}", said(child));
            }
        }
    }
}

fn said(child: &mut Child) -> String {
    let mut text = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut text);
    }
    text
}

async fn tracing(vhost: &TestVhost) -> bool {
    vhost.management.tracing(&vhost.name).await.unwrap()
}

/// A message with headers 5,000 and then 18,600 tables deep, published to a traced vhost:
/// `tap` prints a line for each, goes on to print the ordinary message after them, and still
/// turns tracing off on SIGTERM.
#[tokio::test(flavor = "multi_thread")]
async fn tap_shows_messages_with_the_deepest_headers_and_carries_on() {
    let vhost = TestVhost::new("deep-tap").await;
    let mut child = Command::new(BIN)
        .args(["tap", &vhost.url()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !tracing(&vhost).await {
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            let _ = child.kill();
            panic!("tap never turned tracing on: {}", said(&mut child));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // tap opens the firehose just after turning tracing on; a message before that is missed.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let name = vhost.name.clone();
    tokio::task::spawn_blocking(move || {
        let mut raw = Raw::open(&name);
        raw.publish("amq.topic", "deep.5000", Some(&deep_table(5_000)), b"deep");
        raw.publish(
            "amq.topic",
            "deep.deepest",
            Some(&deep_table(DEEPEST)),
            b"deep",
        );
        raw.publish("amq.topic", "plain.after", None, b"plain");
    })
    .await
    .unwrap();
    for key in ["deep.5000", "deep.deepest", "plain.after"] {
        let line = wait_for_line(&mut child, &lines, &format!("amq.topic {key} "));
        assert!(line.ends_with("unroutable"), "{line}");
    }

    // SAFETY: kill only sends a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tap did not stop on SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        status.success(),
        "tap after SIGTERM: {status}: {}",
        said(&mut child)
    );
    assert!(!tracing(&vhost).await, "tap left tracing on");
}
