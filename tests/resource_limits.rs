//! What the broker holds is bounded, as RabbitMQ bounds it: each test attacks a real
//! `rabbitscope broker` process, checks that its memory (VmHWM) stays near the limit or that
//! publishers are blocked, and that another client is served meanwhile.
//!
//! The disk tests give the broker a small disk of its own: as root, `unshare -m` plus a tmpfs
//! mount that only the broker's process sees and that vanishes with it (filled through
//! `/proc/PID/root`), or a tmpfs mounted for the test and unmounted after it.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::BasicProperties;

use common::process::{spawn_broker, BrokerChild};

const MIB: usize = 1 << 20;

// ---- a blocking raw client: attacks need frames no well-behaved client sends ----

fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&channel.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v.push(0xCE);
    v
}

fn short(s: &str) -> Vec<u8> {
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

fn long(b: &[u8]) -> Vec<u8> {
    let mut v = (b.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(b);
    v
}

fn method(channel: u16, class: u16, id: u16, args: &[u8]) -> Vec<u8> {
    let mut payload = class.to_be_bytes().to_vec();
    payload.extend_from_slice(&id.to_be_bytes());
    payload.extend_from_slice(args);
    frame(1, channel, &payload)
}

fn channel_open(channel: u16) -> Vec<u8> {
    method(channel, 20, 10, &short(""))
}

fn publish(channel: u16, routing_key: &str, mandatory: bool) -> Vec<u8> {
    let mut args = vec![0, 0];
    args.extend(short(""));
    args.extend(short(routing_key));
    args.push(mandatory as u8);
    method(channel, 60, 40, &args)
}

fn header(channel: u16, size: u64) -> Vec<u8> {
    let mut payload = 60u16.to_be_bytes().to_vec();
    payload.extend_from_slice(&[0, 0]);
    payload.extend_from_slice(&size.to_be_bytes());
    payload.extend_from_slice(&[0, 0]);
    frame(2, channel, &payload)
}

/// Body frames carrying `size` bytes.
fn bodies(channel: u16, size: usize) -> Vec<u8> {
    let chunk = vec![b'x'; 131_072 - 8];
    let mut out = Vec::with_capacity(size + size / chunk.len() * 8 + 8);
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len());
        out.extend(frame(3, channel, &chunk[..n]));
        left -= n;
    }
    out
}

/// A whole message to the default exchange.
fn message(channel: u16, routing_key: &str, size: usize, mandatory: bool) -> Vec<u8> {
    let mut out = publish(channel, routing_key, mandatory);
    out.extend(header(channel, size as u64));
    out.extend(bodies(channel, size));
    out
}

struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    /// Logs in as guest, announcing that it hears connection.blocked.
    fn open(address: &str) -> Raw {
        let stream = TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut raw = Raw {
            stream,
            buf: Vec::new(),
        };
        raw.send(b"AMQP\x00\x00\x09\x01");
        raw.expect(10, 10);
        let mut capabilities = short("connection.blocked");
        capabilities.extend([b't', 1]);
        let mut properties = short("capabilities");
        properties.push(b'F');
        properties.extend(long(&capabilities));
        let mut start_ok = long(&properties);
        start_ok.extend(short("PLAIN"));
        start_ok.extend(long(b"\0guest\0guest"));
        start_ok.extend(short("en_US"));
        raw.send(&method(0, 10, 11, &start_ok));
        raw.expect(10, 30);
        let mut tune_ok = 2047u16.to_be_bytes().to_vec();
        tune_ok.extend(131_072u32.to_be_bytes());
        tune_ok.extend(0u16.to_be_bytes());
        raw.send(&method(0, 10, 31, &tune_ok));
        let mut open = short("/");
        open.extend(short(""));
        open.push(0);
        raw.send(&method(0, 10, 40, &open));
        raw.expect(10, 41);
        raw
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The next method frame: (channel, class, method, arguments); None once `wait` passed or
    /// the socket closed.
    fn next_method(&mut self, wait: Duration) -> Option<(u16, u16, u16, Vec<u8>)> {
        let deadline = Instant::now() + wait;
        loop {
            if self.buf.len() >= 7 {
                let size = u32::from_be_bytes(self.buf[3..7].try_into().unwrap()) as usize;
                if self.buf.len() >= 8 + size {
                    let frame: Vec<u8> = self.buf.drain(..8 + size).collect();
                    if frame[0] == 1 {
                        let channel = u16::from_be_bytes([frame[1], frame[2]]);
                        let class = u16::from_be_bytes([frame[7], frame[8]]);
                        let id = u16::from_be_bytes([frame[9], frame[10]]);
                        return Some((channel, class, id, frame[11..7 + size].to_vec()));
                    }
                    continue;
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = vec![0u8; 1 << 20];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return None,
            }
        }
    }

    fn expect(&mut self, class: u16, id: u16) -> Vec<u8> {
        loop {
            match self.next_method(Duration::from_secs(10)) {
                Some((_, c, m, args)) if (c, m) == (class, id) => return args,
                Some(_) => {}
                None => panic!("no {class}.{id} within 10 s"),
            }
        }
    }

    /// Waits for connection.blocked; returns its reason.
    fn blocked(&mut self, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let (0, 10, 60, args) = self.next_method(left)? {
                return Some(String::from_utf8_lossy(&args[1..1 + args[0] as usize]).into());
            }
        }
        None
    }

    /// Writes `bytes` on a thread of its own (the broker may stop reading): the write ends
    /// when the broker takes it all or the socket closes.
    fn send_in_background(&self, bytes: Vec<u8>) {
        let mut stream = self.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = stream.write_all(&bytes);
        });
    }
}

// ---- the broker process ----

struct Broker {
    child: BrokerChild,
    address: String,
    /// Its stderr lines read so far.
    log: std::sync::Mutex<Vec<String>>,
}

impl Broker {
    fn start(args: &[&str]) -> Broker {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rabbitscope"));
        command
            .args(["broker", "--listen", "127.0.0.1:0"])
            .args(args);
        Broker::spawn(&mut command)
    }

    fn spawn(command: &mut Command) -> Broker {
        let child = spawn_broker(command);
        let address = child.field("address=");
        let log = std::sync::Mutex::new(child.before.clone());
        Broker {
            child,
            address,
            log,
        }
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.address)
    }

    fn pid(&self) -> u32 {
        self.child.child.id()
    }

    /// The most memory the process has had resident, in MiB.
    fn peak_mib(&self) -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kib: usize = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmHWM");
        kib / 1024
    }

    /// Every stderr line so far.
    fn log(&self) -> Vec<String> {
        let mut lines = self.log.lock().unwrap();
        lines.extend(self.child.lines.try_iter());
        lines.clone()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.child.kill();
        let _ = self.child.child.wait();
    }
}

/// Another client is served while the attack goes on: it logs in, declares a queue of its own,
/// and basic.get answers.
async fn another_client_is_served(url: &str) {
    let served = async {
        let conn = common::client::connect(url).await;
        let ch = conn.create_channel().await.unwrap();
        let queue = common::unique("limits.other");
        ch.queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        let got = ch
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap();
        assert!(got.is_none());
        conn.close(200, "OK".into()).await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("another client is served within 10 s");
}

// ---- memory ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_bodies_count_against_the_memory_limit() {
    let broker = Broker::start(&["--transient", "--memory-limit", "32"]);
    // 8 publishers announce 64 MiB each and send half: 256 MiB if the broker took it all.
    let mut publishers: Vec<Raw> = (0..8)
        .map(|_| {
            let mut raw = Raw::open(&broker.address);
            raw.send(&channel_open(1));
            raw.expect(20, 11);
            let mut bytes = publish(1, "nowhere", false);
            bytes.extend(header(1, 64 * MIB as u64));
            bytes.extend(bodies(1, 32 * MIB));
            raw.send_in_background(bytes);
            raw
        })
        .collect();
    // Those still sending when the alarm went on are told why they wait.
    let told: Vec<String> = publishers
        .iter_mut()
        .filter_map(|p| p.blocked(Duration::from_secs(3)))
        .collect();
    assert!(
        !told.is_empty(),
        "no publisher was blocked: {:#?}",
        broker.log()
    );
    assert!(told.iter().all(|r| r == "low on memory"), "{told:?}");
    another_client_is_served(&broker.url()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let peak = broker.peak_mib();
    assert!(peak < 128, "the broker held {peak} MiB with a 32 MiB limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_body_sizes_allocate_nothing() {
    let broker = Broker::start(&["--transient", "--memory-limit", "1024"]);
    // 2,047 channels each announce a 128 MiB body that never comes: 256 GiB if set aside.
    let mut raw = Raw::open(&broker.address);
    let mut bytes = Vec::new();
    for ch in 1..=2047 {
        bytes.extend(channel_open(ch));
    }
    for ch in 1..=2047 {
        bytes.extend(publish(ch, "nowhere", false));
        bytes.extend(header(ch, 128 * MIB as u64));
    }
    raw.send(&bytes);
    for _ in 1..=2047 {
        raw.expect(20, 11);
    }
    another_client_is_served(&broker.url()).await;
    let peak = broker.peak_mib();
    assert!(
        peak < 100,
        "the broker holds {peak} MiB for bodies never sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_deliveries_count_against_the_memory_limit() {
    let broker = Broker::start(&["--transient", "--memory-limit", "32"]);
    let queue = common::unique("limits.unacked");
    // A consumer that never acks (and never reads): every message is delivered, none queued.
    let mut consumer = Raw::open(&broker.address);
    consumer.send(&channel_open(1));
    consumer.expect(20, 11);
    let mut declare = vec![0, 0];
    declare.extend(short(&queue));
    declare.push(0);
    declare.extend(long(b""));
    consumer.send(&method(1, 50, 10, &declare));
    consumer.expect(50, 11);
    let mut consume = vec![0, 0];
    consume.extend(short(&queue));
    consume.extend(short("hoarder"));
    consume.push(0);
    consume.extend(long(b""));
    consumer.send(&method(1, 60, 20, &consume));
    consumer.expect(60, 21);

    // 256 messages of 1 MiB, paced so that the consumer takes each as it comes.
    let mut publisher = Raw::open(&broker.address);
    publisher.send(&channel_open(1));
    publisher.expect(20, 11);
    let one = message(1, &queue, MIB, false);
    let mut writer = publisher.stream.try_clone().unwrap();
    std::thread::spawn(move || {
        for _ in 0..256 {
            if writer.write_all(&one).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let reason = publisher.blocked(Duration::from_secs(60));
    assert_eq!(reason.as_deref(), Some("low on memory"));

    // What holds the memory is the unacked deliveries: the queue itself is nearly empty.
    let conn = common::client::connect(&broker.url()).await;
    let ch = conn.create_channel().await.unwrap();
    let ready = ch
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
        .message_count();
    assert!(
        ready < 16,
        "{ready} MiB queued: the alarm counted the queue"
    );
    another_client_is_served(&broker.url()).await;
    let peak = broker.peak_mib();
    assert!(peak < 160, "the broker held {peak} MiB with a 32 MiB limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_its_returns_stops_being_read() {
    // No memory alarm in the way: the connection's own outgoing limit must hold.
    let broker = Broker::start(&["--transient", "--memory-limit", "4096"]);
    let mut publisher = Raw::open(&broker.address);
    publisher.send(&channel_open(1));
    publisher.expect(20, 11);
    // 512 mandatory messages of 1 MiB that no queue takes, and a client that reads nothing.
    let one = message(1, &common::unique("limits.nowhere"), MIB, true);
    let mut flood = Vec::with_capacity(one.len() * 512);
    for _ in 0..512 {
        flood.extend_from_slice(&one);
    }
    publisher.send_in_background(flood);
    tokio::time::sleep(Duration::from_secs(5)).await;
    another_client_is_served(&broker.url()).await;
    let peak = broker.peak_mib();
    assert!(
        peak < 128,
        "the broker buffered {peak} MiB of returns for a client that does not read"
    );
}

// ---- disk ----

/// A directory under the system's temporary one, removed with its contents when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(common::unique(what));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes to `path` until the disk refuses.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).expect("create the filler");
    let chunk = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = file.write_all(&chunk) {
            assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
            return;
        }
    }
}

/// A broker whose data directory is an 8 MB tmpfs that only its process sees.
fn broker_on_small_disk(dir: &Path, disk_free_limit: &str) -> Broker {
    let script = format!(
        "mount -t tmpfs -o size=8m tmpfs '{dir}' && exec '{bin}' broker --listen 127.0.0.1:0 --data-dir '{dir}' --disk-free-limit {disk_free_limit}",
        dir = dir.display(),
        bin = env!("CARGO_BIN_EXE_rabbitscope"),
    );
    Broker::spawn(Command::new("unshare").args(["-m", "sh", "-c", &script]))
}

/// `dir` as the broker's process sees it (its own mounts).
fn seen_by(broker: &Broker, dir: &Path) -> PathBuf {
    PathBuf::from(format!("/proc/{}/root", broker.pid())).join(dir.strip_prefix("/").unwrap())
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

async fn durable_queue(ch: &lapin::Channel, name: &str) {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
}

async fn until(what: &str, wait: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + wait;
    while !done() {
        assert!(Instant::now() < deadline, "not within {wait:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn count(log: &[String], text: &str) -> usize {
    log.iter().filter(|l| l.contains(text)).count()
}

/// Publishes `n` persistent messages to `queue` on a task of its own (lapin holds the
/// publishes of a blocked connection), counting the acks as they come.
fn publish_in_background(ch: &lapin::Channel, queue: &'static str, n: usize) -> Arc<AtomicUsize> {
    let acked = Arc::new(AtomicUsize::new(0));
    let (ch, counter) = (ch.clone(), acked.clone());
    tokio::spawn(async move {
        let mut confirms = Vec::new();
        for i in 0..n {
            // Bigger than a page: a full disk's last free bytes in the log file's own last
            // page could otherwise take a small record, which would rightly be confirmed.
            let body = format!("{i} {}", "x".repeat(8192));
            let Ok(confirm) = ch
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    persistent(),
                )
                .await
            else {
                return;
            };
            confirms.push(confirm);
        }
        for confirm in confirms {
            if confirm.await.is_ok_and(|c| c.is_ack()) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    acked
}

async fn confirming_channel(conn: &lapin::Connection) -> lapin::Channel {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    durable_queue(&ch, "kept").await;
    ch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_holds_confirms_until_space_returns() {
    let dir = TempDir::new("limits.full-disk");
    // Only a failed write raises the alarm here: the free-space check is off.
    let broker = broker_on_small_disk(&dir.0, "0");
    let conn = common::client::connect(&broker.url()).await;
    let ch = confirming_channel(&conn).await;
    let before = publish_in_background(&ch, "kept", 1);
    until(
        "a confirm with room on the disk",
        Duration::from_secs(10),
        || before.load(Ordering::Relaxed) == 1,
    )
    .await;

    let filler = seen_by(&broker, &dir.0).join("filler");
    fill(&filler);
    let acked = publish_in_background(&ch, "kept", 20);
    // The store's failed write raises the alarm; as with RabbitMQ, the connection is blocked
    // when it publishes again.
    until("the disk alarm is on", Duration::from_secs(10), || {
        count(&broker.log(), "disk alarm: publishers are blocked") == 1
    })
    .await;
    let later = publish_in_background(&ch, "kept", 5);
    until("the publisher is blocked", Duration::from_secs(10), || {
        conn.status().blocked()
    })
    .await;
    another_client_is_served(&broker.url()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Nothing that is not on disk is confirmed.
    assert_eq!(acked.load(Ordering::Relaxed), 0);
    assert_eq!(later.load(Ordering::Relaxed), 0);

    std::fs::remove_file(&filler).unwrap();
    until(
        "the held confirms come once the disk has room",
        Duration::from_secs(15),
        || acked.load(Ordering::Relaxed) == 20 && later.load(Ordering::Relaxed) == 5,
    )
    .await;
    until("the publisher is let go", Duration::from_secs(10), || {
        !conn.status().blocked()
    })
    .await;
    // Said once per change, not once per message.
    let log = broker.log();
    assert_eq!(count(&log, "the store cannot write"), 1, "{log:#?}");
    assert_eq!(count(&log, "the store writes again"), 1, "{log:#?}");
    assert_eq!(
        count(&log, "disk alarm: publishers are blocked"),
        1,
        "{log:#?}"
    );
    assert_eq!(count(&log, "disk alarm cleared"), 1, "{log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_free_space_blocks_publishers_until_it_returns() {
    let dir = TempDir::new("limits.low-disk");
    let broker = broker_on_small_disk(&dir.0, "6MB");
    let conn = common::client::connect(&broker.url()).await;
    let ch = confirming_channel(&conn).await;

    // 3 MB taken: under 6 MB free on an 8 MB disk.
    let filler = seen_by(&broker, &dir.0).join("filler");
    std::fs::write(&filler, vec![0u8; 3_000_000]).unwrap();
    until("the disk alarm is on", Duration::from_secs(10), || {
        count(&broker.log(), "disk alarm: publishers are blocked") == 1
    })
    .await;
    // As with RabbitMQ, a connection is blocked when it publishes during the alarm; what it
    // sends after that is not read.
    let acked = publish_in_background(&ch, "kept", 10);
    until("the publisher is blocked", Duration::from_secs(10), || {
        conn.status().blocked()
    })
    .await;
    let later = publish_in_background(&ch, "kept", 5);
    another_client_is_served(&broker.url()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        later.load(Ordering::Relaxed),
        0,
        "confirmed while the disk was low"
    );

    std::fs::remove_file(&filler).unwrap();
    until(
        "the confirms come once the disk has room",
        Duration::from_secs(10),
        || acked.load(Ordering::Relaxed) == 10 && later.load(Ordering::Relaxed) == 5,
    )
    .await;
    until("the publisher is let go", Duration::from_secs(10), || {
        !conn.status().blocked()
    })
    .await;
    let log = broker.log();
    assert_eq!(
        count(&log, "disk alarm: publishers are blocked"),
        1,
        "{log:#?}"
    );
    assert_eq!(count(&log, "disk alarm cleared"), 1, "{log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_free_limit_above_the_free_space_blocks_publishers_from_the_start() {
    let dir = TempDir::new("limits.above");
    let data = dir.0.display().to_string();
    let broker = Broker::start(&["--data-dir", &data, "--disk-free-limit", "1000000GB"]);
    let mut publisher = Raw::open(&broker.address);
    publisher.send(&channel_open(1));
    publisher.expect(20, 11);
    publisher.send(&message(1, "nowhere", 10, false));
    assert_eq!(
        publisher.blocked(Duration::from_secs(10)).as_deref(),
        Some("low on disk")
    );
    another_client_is_served(&broker.url()).await;
    assert_eq!(
        count(&broker.log(), "disk alarm: publishers are blocked"),
        1
    );
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk(TempDir);

impl SmallDisk {
    fn mount(what: &str) -> SmallDisk {
        let dir = TempDir::new(what);
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
            .arg(&dir.0)
            .status()
            .expect("mount (the disk tests run as root)");
        assert!(status.success(), "mount a tmpfs on {}", dir.0.display());
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0 .0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_starts_on_a_full_disk_with_its_messages_and_the_alarm_on() {
    let disk = SmallDisk::mount("limits.restart");
    let data = disk.0 .0.display().to_string();
    let args = ["--data-dir", data.as_str(), "--disk-free-limit", "1MB"];
    let broker = Broker::start(&args);
    let conn = common::client::connect(&broker.url()).await;
    let ch = confirming_channel(&conn).await;
    let acked = publish_in_background(&ch, "kept", 5);
    until("5 confirms", Duration::from_secs(10), || {
        acked.load(Ordering::Relaxed) == 5
    })
    .await;
    drop(conn);
    fill(&disk.0 .0.join("filler"));
    drop(broker);

    let broker = Broker::start(&args);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        count(&broker.log(), "disk alarm: publishers are blocked"),
        1
    );
    let conn = common::client::connect(&broker.url()).await;
    let ch = conn.create_channel().await.unwrap();
    let mut got = 0;
    while ch
        .basic_get("kept".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .is_some()
    {
        got += 1;
    }
    assert_eq!(got, 5, "the messages kept before the disk filled");
    another_client_is_served(&broker.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_data_directory_on_a_full_disk_starts_with_the_alarm_on() {
    let disk = SmallDisk::mount("limits.fresh");
    let filler = disk.0 .0.join("filler");
    fill(&filler);
    // A directory the broker has never used: no log file yet, and no room to write one.
    let data = disk.0 .0.join("new").display().to_string();
    let args = ["--data-dir", data.as_str(), "--disk-free-limit", "1MB"];
    let broker = Broker::start(&args);
    another_client_is_served(&broker.url()).await;
    let conn = common::client::connect(&broker.url()).await;
    let ch = confirming_channel(&conn).await;
    let acked = publish_in_background(&ch, "kept", 3);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(acked.load(Ordering::Relaxed), 0, "nothing is confirmed");
    assert_eq!(
        count(&broker.log(), "disk alarm: publishers are blocked"),
        1,
        "{:#?}",
        broker.log()
    );

    std::fs::remove_file(&filler).unwrap();
    until(
        "3 confirms once space returned",
        Duration::from_secs(10),
        || acked.load(Ordering::Relaxed) == 3,
    )
    .await;
    assert_eq!(count(&broker.log(), "disk alarm cleared"), 1);
    drop(conn);
    drop(broker);

    // What was confirmed is kept: a restart from the directory finds it.
    let broker = Broker::start(&args);
    let conn = common::client::connect(&broker.url()).await;
    let ch = conn.create_channel().await.unwrap();
    let mut got = 0;
    while ch
        .basic_get("kept".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .is_some()
    {
        got += 1;
    }
    assert_eq!(got, 3, "the messages confirmed once space returned");
}
