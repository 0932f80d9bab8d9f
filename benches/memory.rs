//! Memory under load, the embedded broker beside RabbitMQ, in the same run.
//!
//! Two scenarios, each measured on both brokers as the growth of the broker process's resident
//! memory (VmRSS in /proc) from idle to loaded:
//! - `messages`: N transient 64-byte messages (default 1,000,000) published without confirms
//!   to one non-durable queue with no consumer, until the queue reports all of them;
//! - `connections`: C client connections (default 1,000) with K channels each (default 10),
//!   held open, plus Q non-durable queues (default 10,000); afterwards every connection
//!   publishes on its last channel and gets its message back, so they are checked alive.
//!
//! The embedded broker is the release binary `rabbitscope broker` (which `cargo bench` builds)
//! started as a child process; RabbitMQ is the `beam.smp` at `RABBITMQ_URL`
//! (default amqp://guest:guest@127.0.0.1:5672/%2f) on this machine.
//!
//! Usage: `cargo bench --bench memory -- [messages|connections|both] [N] [C] [K] [Q]`

mod measure;

use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use measure::embedded::EmbeddedBroker;
use measure::process::{beam_pid, settled_rss};
use measure::Error;

const BODY: [u8; 64] = [b'm'; 64];

fn main() -> Result<(), Error> {
    let Some(args) = measure::arguments("memory") else {
        return Ok(());
    };
    let mut args = args.into_iter();
    let scenario = args.next().unwrap_or_else(|| "both".into());
    let mut number = |default: usize| -> Result<usize, Error> {
        Ok(match args.next() {
            Some(s) => s.replace('_', "").parse()?,
            None => default,
        })
    };
    let messages = number(1_000_000)?;
    let connections = number(1_000)?;
    let channels = number(10)?.max(1);
    let queues = number(10_000)?;
    let rabbit_url = std::env::var("RABBITMQ_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    let embedded = EmbeddedBroker::transient()?;
    let embedded_url = embedded.url();
    let rabbit_pid = beam_pid().ok_or("no beam.smp process: is RabbitMQ running here?")?;
    println!(
        "embedded broker pid {} at {}; RabbitMQ beam.smp pid {rabbit_pid}",
        embedded.pid(),
        embedded.address
    );

    let targets = [
        ("embedded", embedded_url.as_str(), embedded.pid()),
        ("rabbitmq", rabbit_url.as_str(), rabbit_pid),
    ];
    let mut table = Vec::new();
    if scenario == "messages" || scenario == "both" {
        for (label, url, pid) in targets {
            let (grown, took) = runtime.block_on(queued_messages(url, pid, messages))?;
            println!(
                "{label:<9} {messages} queued 64-byte messages: +{} MiB RSS ({:.0} bytes per \
                 message), published in {took:.1?}",
                grown / (1024 * 1024),
                grown as f64 / messages as f64
            );
            table.push((label, "messages", grown));
        }
    }
    if scenario == "connections" || scenario == "both" {
        for (label, url, pid) in targets {
            let grown =
                runtime.block_on(held_connections(url, pid, connections, channels, queues))?;
            println!(
                "{label:<9} {connections} connections x {channels} channels + {queues} queues: \
                 +{} MiB RSS",
                grown / (1024 * 1024)
            );
            table.push((label, "connections", grown));
        }
    }
    println!();
    println!("| scenario | embedded | RabbitMQ |");
    println!("|---|---|---|");
    for scenario in ["messages", "connections"] {
        let get = |label: &str| {
            table
                .iter()
                .find(|(l, s, _)| *l == label && *s == scenario)
                .map(|(_, _, g)| format!("+{} MiB", g / (1024 * 1024)))
        };
        if let (Some(e), Some(r)) = (get("embedded"), get("rabbitmq")) {
            println!("| {scenario} | {e} | {r} |");
        }
    }
    Ok(())
}

async fn declare(channel: &Channel, name: &str) -> Result<u32, Error> {
    let q = channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(q.message_count())
}

/// Returns (RSS growth, time to publish).
async fn queued_messages(url: &str, pid: u32, messages: usize) -> Result<(u64, Duration), Error> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let queue = measure::unique("memory.messages");
    declare(&channel, &queue).await?;
    let before = settled_rss(pid).await?;
    let start = Instant::now();
    let properties = BasicProperties::default().with_delivery_mode(1);
    let mut in_flight = FuturesUnordered::new();
    for _ in 0..messages {
        if in_flight.len() >= 256 {
            in_flight.next().await.expect("not empty")?;
        }
        in_flight.push(channel.basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            &BODY,
            properties.clone(),
        ));
    }
    while let Some(done) = in_flight.next().await {
        done?;
    }
    // Wait until the queue holds every message.
    while (declare(&channel, &queue).await? as usize) < messages {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = start.elapsed();
    let after = settled_rss(pid).await?;
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await?;
    let _ = connection.close(200, "done".into()).await;
    Ok((after.saturating_sub(before), took))
}

/// Opens the connections, channels and queues, checks every connection works, and returns the
/// RSS growth while all of it was held.
async fn held_connections(
    url: &str,
    pid: u32,
    connections: usize,
    channels: usize,
    queues: usize,
) -> Result<u64, Error> {
    let before = settled_rss(pid).await?;
    // lapin keeps 32 frames of buffer each way per connection: with small frames a thousand
    // connections fit in this process's memory (the brokers' side is what is measured).
    let url = format!("{url}?frame_max=8192");
    let mut held: Vec<(Connection, Vec<Channel>)> = Vec::with_capacity(connections);
    let started = Instant::now();
    for i in 0..connections {
        if i > 0 && i % 100 == 0 {
            println!("  {i} connections open after {:.1?}", started.elapsed());
        }
        let connection = Connection::connect(&url, ConnectionProperties::default()).await?;
        let mut open = Vec::with_capacity(channels);
        for _ in 0..channels {
            open.push(connection.create_channel().await?);
        }
        held.push((connection, open));
    }
    let prefix = measure::unique("memory.queue");
    let names: Vec<String> = (0..queues).map(|i| format!("{prefix}.{i}")).collect();
    // Spread the declarations over the connections' first channels.
    for (i, name) in names.iter().enumerate() {
        declare(&held[i % held.len()].1[0], name).await?;
    }
    let after = settled_rss(pid).await?;
    // Every connection publishes on its last channel and gets its own message back.
    for (i, (_, open)) in held.iter().enumerate() {
        let channel = open.last().expect("at least one channel");
        let queue = &names[i % names.len()];
        channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                format!("from connection {i}").as_bytes(),
                BasicProperties::default(),
            )
            .await?;
        let got = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await?
            .ok_or_else(|| format!("connection {i}: its message did not come back"))?;
        if got.data != format!("from connection {i}").as_bytes() {
            return Err(format!("connection {i} got another connection's message").into());
        }
    }
    for name in &names {
        held[0].1[0]
            .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await?;
    }
    for (connection, _) in held {
        let _ = connection.close(200, "done".into()).await;
    }
    Ok(after.saturating_sub(before))
}
