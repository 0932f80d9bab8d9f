//! The broker's data directory as a user relies on it: the real binary, killed with SIGKILL in
//! the middle of a stream of persistent publishes, started again on the same directory. Every
//! message it confirmed is back, in order and intact; messages acked before a kill stay gone;
//! transient things do not come back.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use common::process::spawn_broker;

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
        let broker = spawn_broker(
            Command::new(env!("CARGO_BIN_EXE_rabbitscope"))
                .args(["broker", "--listen", "127.0.0.1:0", "--data-dir"])
                .arg(dir),
        );
        assert!(
            broker.announced.contains(&dir.display().to_string()),
            "{}",
            broker.announced
        );
        BrokerProcess {
            url: format!("amqp://guest:guest@{}/%2f", broker.field("address=")),
            child: broker.child,
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

/// A broker served in this process, with a data directory or without.
async fn serve(data_dir: Option<PathBuf>) -> (Arc<rabbitscope::broker::Broker>, String) {
    use rabbitscope::broker::{Broker, BrokerConfig};
    let config = BrokerConfig {
        data_dir,
        ..BrokerConfig::default()
    };
    let broker = Broker::open(config).unwrap();
    let server = rabbitscope::amqp::Server::bind(broker.clone(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let url = format!("amqp://guest:guest@{}/%2f", server.local_addr());
    tokio::spawn(server.run());
    (broker, url)
}

/// What lesson 8 shows: after `Broker::restart` clients are disconnected with 320, durable
/// exchanges, queues and bindings are back with their persistent messages (the unacked one
/// redelivered), transient ones and transient messages are gone, and the event stream says so.
async fn restart_keeps_what_is_durable(data_dir: Option<PathBuf>) {
    use lapin::options::{BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions};
    use rabbitscope::events::{EventKind, Received};
    let (broker, url) = serve(data_dir).await;
    let (conn, ch) = connect(&url).await;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(
        "archive".into(),
        lapin::ExchangeKind::Direct,
        durable,
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare(&ch, "archive-box", true).await;
    declare(&ch, "scratch-box", false).await;
    ch.queue_bind(
        "archive-box".into(),
        "archive".into(),
        "keep".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let publish = |key: &'static str, body: &'static [u8], mode: u8| {
        let ch = ch.clone();
        async move {
            ch.basic_publish(
                "archive".into(),
                key.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(mode),
            )
            .await
            .unwrap();
        }
    };
    publish("keep", b"first (persistent, delivered)", 2).await;
    publish("keep", b"draft (transient)", 1).await;
    publish("keep", b"second (persistent)", 2).await;
    ch.basic_publish(
        "".into(),
        "scratch-box".into(),
        BasicPublishOptions::default(),
        b"scratch",
        persistent(),
    )
    .await
    .unwrap();
    // The first goes to a consumer that never acks it.
    let got = ch
        .basic_get("archive-box".into(), BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got.delivery.data[..], b"first (persistent, delivered)");

    let mut events = broker.subscribe();
    let mut conn_events = conn.events_listener();
    let restarting = broker.clone();
    tokio::task::spawn_blocking(move || restarting.restart())
        .await
        .unwrap()
        .unwrap();
    // The client is told why: 320 CONNECTION_FORCED.
    let told = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(event) = conn_events.next().await {
            if let lapin::Event::Error(e) = event {
                return format!("{e:?}");
            }
        }
        String::new()
    })
    .await
    .expect("lapin reports the close");
    assert!(
        told.contains("320") || told.contains("CONNECTIONFORCED"),
        "{told}"
    );
    let mut seen = Vec::new();
    while let Some(Received::Event(event)) = events.try_recv() {
        seen.push(event.kind.clone());
    }
    let deleted = |name: &str| {
        seen.iter()
            .any(|k| matches!(k, EventKind::QueueDeleted { name: n } if &**n == name))
    };
    let declared = |name: &str| {
        seen.iter()
            .any(|k| matches!(k, EventKind::QueueDeclared { name: n, .. } if &**n == name))
    };
    assert!(deleted("scratch-box") && deleted("archive-box") && declared("archive-box"));
    assert!(!declared("scratch-box"));

    let (_conn, ch) = connect(&url).await;
    assert_eq!(depth(&ch, "archive-box").await, Some(2));
    let ch = _conn.create_channel().await.unwrap();
    assert_eq!(
        depth(&ch, "scratch-box").await,
        None,
        "transient queue gone"
    );
    let ch = _conn.create_channel().await.unwrap();
    let get = |ch: Channel| async move {
        let m = ch
            .basic_get("archive-box".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .unwrap();
        (
            String::from_utf8(m.delivery.data.clone()).unwrap(),
            m.delivery.redelivered,
        )
    };
    assert_eq!(
        get(ch.clone()).await,
        ("first (persistent, delivered)".into(), true)
    );
    assert_eq!(get(ch.clone()).await, ("second (persistent)".into(), false));
    // The binding came back with its durable ends.
    ch.basic_publish(
        "archive".into(),
        "keep".into(),
        BasicPublishOptions::default(),
        b"third",
        persistent(),
    )
    .await
    .unwrap();
    assert_eq!(get(ch.clone()).await, ("third".into(), false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_a_data_dir_keeps_what_is_durable() {
    let dir = temp_dir();
    restart_keeps_what_is_durable(Some(dir.clone())).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_without_a_store_keeps_the_same_in_memory() {
    restart_keeps_what_is_durable(None).await;
}

/// A poison message's count of failed deliveries outlives a restart, as a quorum queue's Raft
/// log keeps it on RabbitMQ: returned twice before, its next delivery says
/// `x-delivery-count: 2`, and `x-delivery-limit: 3` dead-letters it on the fourth return, not
/// after a fresh set of attempts.
async fn restart_keeps_quorum_delivery_counts(data_dir: Option<PathBuf>) {
    use common::client::{get, sync, table, take_all, text};
    use lapin::options::BasicNackOptions;
    use lapin::types::AMQPValue;
    use rabbitscope::events::{EventKind, Received};
    let (broker, url) = serve(data_dir).await;
    let (_conn, ch) = connect(&url).await;
    declare(&ch, "poison-dlq", true).await;
    let arguments = table(&[
        ("x-queue-type", text("quorum")),
        ("x-delivery-limit", AMQPValue::LongInt(3)),
        ("x-dead-letter-exchange", text("")),
        ("x-dead-letter-routing-key", text("poison-dlq")),
    ]);
    let options = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare("poison".into(), options, arguments)
        .await
        .unwrap();
    ch.basic_publish(
        "".into(),
        "poison".into(),
        BasicPublishOptions::default(),
        b"poison pill",
        persistent(),
    )
    .await
    .unwrap();
    // Gets it and gives it back; the x-delivery-count it came with.
    let deliver_and_return = |ch: Channel| async move {
        let m = get(&ch, "poison").await?;
        let headers = m.delivery.properties.headers().clone().unwrap_or_default();
        let count = match headers.inner().get("x-delivery-count") {
            Some(AMQPValue::LongLongInt(n)) => *n,
            other => panic!("x-delivery-count: {other:?}"),
        };
        let requeue = BasicNackOptions {
            multiple: false,
            requeue: true,
        };
        ch.basic_nack(m.delivery.delivery_tag, requeue)
            .await
            .unwrap();
        Some(count)
    };
    assert_eq!(deliver_and_return(ch.clone()).await, Some(0));
    assert_eq!(deliver_and_return(ch.clone()).await, Some(1));
    // The nack has no reply: the broker has it once a later round trip is back.
    sync(&ch).await;

    let restarting = broker.clone();
    tokio::task::spawn_blocking(move || restarting.restart())
        .await
        .unwrap()
        .unwrap();

    let mut events = broker.subscribe();
    let (_conn, ch) = connect(&url).await;
    assert_eq!(deliver_and_return(ch.clone()).await, Some(2));
    // The view is told the count too.
    let mut counts = Vec::new();
    while let Some(Received::Event(event)) = events.try_recv() {
        if let EventKind::Delivered { delivery_count, .. } = event.kind {
            counts.push(delivery_count);
        }
    }
    assert_eq!(counts, [Some(2)]);
    assert_eq!(deliver_and_return(ch.clone()).await, Some(3));
    // The fourth return is over the limit: the message is dead-lettered.
    assert_eq!(deliver_and_return(ch.clone()).await, None);
    let dead = take_all(&ch, "poison-dlq").await;
    assert_eq!(dead.len(), 1);
    assert_eq!(&dead[0].data[..], b"poison pill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_a_data_dir_keeps_quorum_delivery_counts() {
    let dir = temp_dir();
    restart_keeps_quorum_delivery_counts(Some(dir.clone())).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_without_a_store_keeps_quorum_delivery_counts() {
    restart_keeps_quorum_delivery_counts(None).await;
}

/// With a data directory, a consumer already waiting gets every persistent message of every
/// queue type, in order, while they are published with confirms. Streams and quorum queues
/// hand a message to consumers only once the store has written it (as RabbitMQ's do once
/// their log holds it); classic queues at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_consumer_gets_every_message_of_each_queue_type_with_a_store() {
    use lapin::types::{AMQPValue, ShortString};
    let dir = temp_dir();
    let broker = BrokerProcess::start(&dir);
    let (_conn, ch) = connect(&broker.url).await;
    const MESSAGES: u64 = 3_000;
    for queue_type in ["classic", "quorum", "stream"] {
        let name = format!("waiting-{queue_type}");
        let mut arguments = FieldTable::default();
        arguments.insert(
            ShortString::from("x-queue-type"),
            AMQPValue::LongString(queue_type.into()),
        );
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.queue_declare(name.as_str().into(), durable, arguments)
            .await
            .unwrap();
        let (_reader_conn, reader) = connect(&broker.url).await;
        reader
            .basic_qos(200, lapin::options::BasicQosOptions::default())
            .await
            .unwrap();
        let mut consumer = reader
            .basic_consume(
                name.as_str().into(),
                "waiting".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let (_publisher_conn, publisher) = connect(&broker.url).await;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let mut in_flight = FuturesUnordered::new();
        for seq in 0..MESSAGES {
            if in_flight.len() >= 64 {
                let confirmed: lapin::Result<lapin::Confirmation> =
                    in_flight.next().await.expect("in flight");
                assert!(confirmed.unwrap().is_ack(), "{queue_type}: a nack");
            }
            let confirm = publisher
                .basic_publish(
                    "".into(),
                    name.as_str().into(),
                    BasicPublishOptions::default(),
                    &body(seq),
                    persistent(),
                )
                .await
                .unwrap();
            in_flight.push(confirm);
        }
        while let Some(confirmed) = in_flight.next().await {
            assert!(confirmed.unwrap().is_ack(), "{queue_type}: a nack");
        }
        for expected in 0..MESSAGES {
            let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
                .await
                .unwrap_or_else(|_| panic!("{queue_type}: no delivery of message {expected}"))
                .expect("consumer open")
                .unwrap();
            assert_eq!(check(&delivery.data), expected, "{queue_type}: in order");
            delivery.ack(BasicAckOptions::default()).await.unwrap();
        }
    }
    broker.kill();
    let _ = std::fs::remove_dir_all(dir);
}
