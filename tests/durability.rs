//! The broker's data directory as a user relies on it: the real binary, killed with SIGKILL in
//! the middle of a stream of persistent publishes, started again on the same directory. Every
//! message it confirmed is back, in order and intact; messages acked before a kill stay gone;
//! transient things do not come back.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

const QUEUE: &str = "ledger";
const TOTAL: u64 = 100_000;
/// Publishes in flight (unconfirmed) at once.
const WINDOW: usize = 256;

/// A `rabbitscope broker` on a fresh port, keeping its data in `dir`.
struct BrokerProcess {
    child: Child,
    url: String,
}

impl BrokerProcess {
    fn start(dir: &Path) -> BrokerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rabbitscope"))
            .args(["broker", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rabbitscope broker");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let address = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the broker prints its address");
            if line.contains("broker listening") {
                assert!(line.contains(&dir.display().to_string()), "{line}");
                break line.split("address=").nth(1).unwrap().trim().to_string();
            }
        };
        BrokerProcess {
            child,
            url: format!("amqp://guest:guest@{address}/%2f"),
        }
    }

    fn kill(mut self) {
        // SIGKILL: no chance to flush anything.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rabbitscope-durability-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Sequence number, filler that depends on it, and a CRC of both.
fn body(seq: u64) -> Vec<u8> {
    let mut body = seq.to_be_bytes().to_vec();
    body.extend((0..200u32).map(|i| (seq as u32).wrapping_mul(31).wrapping_add(i) as u8));
    let crc = crc32fast::hash(&body);
    body.extend(crc.to_be_bytes());
    body
}

/// The sequence number of an intact body; panics on a corrupt one.
fn check(body: &[u8]) -> u64 {
    let (data, crc) = body.split_at(body.len() - 4);
    assert_eq!(
        crc32fast::hash(data).to_be_bytes(),
        crc,
        "corrupt body {body:?}"
    );
    let seq = u64::from_be_bytes(data[..8].try_into().unwrap());
    assert_eq!(body, self::body(seq), "body of {seq} altered");
    seq
}

fn persistent() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/x-ledger".into())
}

async fn connect(url: &str) -> (Connection, Channel) {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    (conn, ch)
}

async fn declare(ch: &Channel, name: &str, durable: bool) {
    let options = QueueDeclareOptions {
        durable,
        ..Default::default()
    };
    ch.queue_declare(name.into(), options, FieldTable::default())
        .await
        .unwrap();
}

/// Publishes 0..TOTAL with confirms, WINDOW at a time, noting each confirmed one, until done
/// or the connection dies.
async fn publish_all(ch: Channel, confirmed: Arc<Mutex<Vec<u64>>>) {
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut in_flight = FuturesUnordered::new();
    for seq in 0..TOTAL {
        if in_flight.len() >= WINDOW {
            match in_flight.next().await {
                Some((seq, Ok(()))) => confirmed.lock().unwrap().push(seq),
                _ => return,
            }
        }
        let publish = ch
            .basic_publish(
                "".into(),
                QUEUE.into(),
                BasicPublishOptions::default(),
                &body(seq),
                persistent(),
            )
            .await;
        let Ok(confirm) = publish else {
            return;
        };
        in_flight.push(async move {
            let acked = matches!(confirm.await, Ok(c) if c.is_ack());
            (seq, if acked { Ok(()) } else { Err(()) })
        });
    }
    while let Some((seq, result)) = in_flight.next().await {
        match result {
            Ok(()) => confirmed.lock().unwrap().push(seq),
            Err(()) => return,
        }
    }
}

/// Every message in the queue, in order: (sequence number, redelivered). Leaves them unacked
/// on `ch`.
async fn read_all(ch: &Channel, expected: usize) -> Vec<(u64, bool, u64)> {
    let mut consumer = ch
        .basic_consume(
            QUEUE.into(),
            "reader".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < expected {
        let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {expected} messages came", got.len()))
            .unwrap()
            .unwrap();
        assert_eq!(
            delivery
                .properties
                .content_type()
                .as_ref()
                .map(|c| c.as_str()),
            Some("application/x-ledger")
        );
        assert_eq!(delivery.properties.delivery_mode(), &Some(2));
        got.push((
            check(&delivery.data),
            delivery.redelivered,
            delivery.delivery_tag,
        ));
    }
    got
}

async fn depth(ch: &Channel, name: &str) -> Option<u32> {
    let options = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ch.queue_declare(name.into(), options, FieldTable::default())
        .await
        .ok()
        .map(|q| q.message_count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_messages_survive_sigkill_and_acked_ones_stay_gone() {
    let dir = temp_dir();

    // 1. Publish with confirms; kill the broker mid-stream.
    let broker = BrokerProcess::start(&dir);
    let (_conn, ch) = connect(&broker.url).await;
    declare(&ch, QUEUE, true).await;
    declare(&ch, "scratch", false).await;
    let confirmed = Arc::new(Mutex::new(Vec::new()));
    let publisher = tokio::spawn(publish_all(ch.clone(), confirmed.clone()));
    let kill_after = TOTAL as usize / 3;
    tokio::time::timeout(Duration::from_secs(300), async {
        while confirmed.lock().unwrap().len() < kill_after {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("a third of the messages confirmed within 5 minutes");
    broker.kill();
    let _ = tokio::time::timeout(Duration::from_secs(30), publisher).await;
    let confirmed = std::mem::take(&mut *confirmed.lock().unwrap());
    let last_confirmed = *confirmed.iter().max().unwrap();
    assert!(
        (last_confirmed as usize) < TOTAL as usize - 1,
        "the kill came mid-stream"
    );

    // 2. Start again: every confirmed message is there, in order, intact, no duplicates.
    let broker = BrokerProcess::start(&dir);
    let (conn, ch) = connect(&broker.url).await;
    assert_eq!(depth(&ch, "scratch").await, None, "transient queue gone");
    let ch = conn.create_channel().await.unwrap();
    let count = depth(&ch, QUEUE).await.expect("durable queue kept") as usize;
    assert!(count >= confirmed.len(), "{count} < {}", confirmed.len());
    let got = read_all(&ch, count).await;
    let seqs: Vec<u64> = got.iter().map(|(s, _, _)| *s).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in publish order, no duplicates"
    );
    // Published one after another on one channel: what came back is a prefix of the stream.
    assert_eq!(seqs, (0..count as u64).collect::<Vec<_>>());
    assert!(confirmed.iter().all(|s| (*s as usize) < count));
    assert!(got.iter().all(|(_, redelivered, _)| !redelivered));

    // 3. Ack the first thousand, leave the rest delivered but unacked, kill again.
    let acked = 1000usize;
    let (_, _, tag) = got[acked - 1];
    ch.basic_ack(tag, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    // The store writes in order: once a later persistent publish is confirmed, the acks
    // before it are written too.
    let marker = conn.create_channel().await.unwrap();
    declare(&marker, "marker", true).await;
    marker
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = marker
        .basic_publish(
            "".into(),
            "marker".into(),
            BasicPublishOptions::default(),
            b"after the acks",
            persistent(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    broker.kill();

    // 4. The acked ones are gone; the rest come back, marked redelivered.
    let broker = BrokerProcess::start(&dir);
    let (_conn, ch) = connect(&broker.url).await;
    let left = depth(&ch, QUEUE).await.unwrap() as usize;
    assert_eq!(left, count - acked);
    let again = read_all(&ch, left).await;
    let seqs: Vec<u64> = again.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(seqs, (acked as u64..count as u64).collect::<Vec<_>>());
    assert!(again.iter().all(|(_, redelivered, _)| *redelivered));
    broker.kill();
    std::fs::remove_dir_all(&dir).unwrap();
}
