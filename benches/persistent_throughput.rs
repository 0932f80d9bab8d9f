//! Persistent throughput: one lapin publisher with confirms and one lapin consumer with acks,
//! on a durable queue, against the embedded broker keeping a data directory and against
//! RabbitMQ, in the same run.
//!
//! Each run declares a fresh durable queue, starts a consumer on it (its own connection, manual
//! ack of every message, prefetch 1000), then publishes N persistent (delivery_mode 2) 1 KiB
//! messages through the default exchange on a confirm channel, keeping WINDOW publishes
//! unconfirmed at most, and times from the first publish until every message is both confirmed
//! and acked. The queue is deleted afterwards. The targets alternate within each repetition so
//! drift hits both alike:
//! - `embedded`: the broker of this crate on its own tokio runtime in this process, its data
//!   directory under the system temp directory (the same disk as the work tree here), so each
//!   confirm waits for the `fdatasync` of its group commit;
//! - `rabbitmq`: the RabbitMQ at `RABBITMQ_URL` (default amqp://guest:guest@127.0.0.1:5672/%2f),
//!   a classic durable queue;
//! - `embedded-transient`: the embedded broker without a data directory (`--transient`), to
//!   show what the disk costs.
//!
//! Usage: `cargo bench --bench persistent_throughput -- [MESSAGES] [REPETITIONS]
//! [WINDOW]` (defaults 50000, 5 and 128). `THROUGHPUT_TARGETS=embedded` runs one target.

mod measure;

use std::time::{Duration, Instant};

use futures_util::stream::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use measure::publisher::publish_confirmed;
use measure::Error;
use rabbitscope::amqp::Server;
use rabbitscope::broker::{Broker, BrokerConfig};

const BODY_SIZE: usize = 1024;
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

fn main() -> Result<(), Error> {
    let Some(args) = measure::arguments("persistent_throughput") else {
        return Ok(());
    };
    let args: Vec<usize> = args
        .into_iter()
        .map(|a| a.parse().expect("numbers: MESSAGES REPETITIONS WINDOW"))
        .collect();
    let messages = args.first().copied().unwrap_or(50_000);
    let repetitions = args.get(1).copied().unwrap_or(5);
    let window = args.get(2).copied().unwrap_or(128);
    let targets = std::env::var("THROUGHPUT_TARGETS")
        .unwrap_or("embedded,rabbitmq,embedded-transient".into());
    let rabbit = std::env::var("RABBITMQ_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());

    let data_dir =
        std::env::temp_dir().join(format!("rabbitscope-persistent-{}", std::process::id()));
    let broker_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("broker")
        .enable_all()
        .build()?;
    let serve = |data_dir: Option<std::path::PathBuf>| {
        broker_rt.block_on(async {
            let config = BrokerConfig {
                data_dir,
                ..BrokerConfig::default()
            };
            let broker = Broker::open(config)?;
            let server = Server::bind(broker, ([127, 0, 0, 1], 0).into()).await?;
            let url = format!("amqp://guest:guest@{}/%2f", server.local_addr());
            tokio::spawn(server.run());
            Ok::<_, Error>(url)
        })
    };
    let embedded = serve(Some(data_dir.clone()))?;
    let transient = serve(None)?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    println!(
        "{messages} persistent messages of {BODY_SIZE} B, confirm window {window}, \
         {repetitions} repetitions"
    );
    let mut rates: Vec<(&str, Vec<f64>)> = Vec::new();
    for name in ["embedded", "rabbitmq", "embedded-transient"] {
        if targets.split(',').any(|t| t == name) {
            rates.push((name, Vec::new()));
        }
    }
    for rep in 0..repetitions {
        for (name, list) in rates.iter_mut() {
            let url = match *name {
                "embedded" => &embedded,
                "rabbitmq" => &rabbit,
                _ => &transient,
            };
            let queue = format!("persistent-bench-{}-{rep}", std::process::id());
            let took = client_rt.block_on(async {
                tokio::time::timeout(RUN_TIMEOUT, one_run(url, &queue, messages, window)).await
            })??;
            let rate = messages as f64 / took.as_secs_f64();
            println!("  {name:<18} run {}: {rate:>8.0} msg/s", rep + 1);
            list.push(rate);
        }
    }
    for (name, mut list) in rates {
        list.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("{name:<18} median {:>8.0} msg/s", list[list.len() / 2]);
    }
    drop(broker_rt);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

async fn one_run(
    url: &str,
    queue: &str,
    messages: usize,
    window: usize,
) -> Result<Duration, Error> {
    let consumer_conn = Connection::connect(url, ConnectionProperties::default()).await?;
    let publisher_conn = Connection::connect(url, ConnectionProperties::default()).await?;
    let ch = consumer_conn.create_channel().await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(queue.into(), durable, FieldTable::default())
        .await?;
    ch.basic_qos(1000, BasicQosOptions::default()).await?;
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let consuming = tokio::spawn(async move {
        let mut got = 0;
        while got < messages {
            let Some(delivery) = consumer.next().await else {
                return Err::<(), Error>("the consumer stopped".into());
            };
            delivery?.ack(BasicAckOptions::default()).await?;
            got += 1;
        }
        Ok(())
    });

    let publisher = publisher_conn.create_channel().await?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let body = vec![b'p'; BODY_SIZE];
    let properties = BasicProperties::default().with_delivery_mode(2);
    let started = Instant::now();
    publish_confirmed(&publisher, queue, messages, window, &body, &properties).await?;
    consuming.await??;
    let took = started.elapsed();
    ch.queue_delete(queue.into(), QueueDeleteOptions::default())
        .await?;
    let _ = publisher_conn.close(200, "done".into()).await;
    let _ = consumer_conn.close(200, "done".into()).await;
    Ok(took)
}
