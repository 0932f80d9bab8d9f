//! End-to-end throughput: one lapin publisher and one lapin consumer on loopback, against the
//! embedded broker and against RabbitMQ, in the same run.
//!
//! Each run declares a fresh transient queue, starts a no-ack consumer on it (its own
//! connection), then publishes N 64-byte transient messages to it through the default exchange
//! (another connection, no publisher confirms) and times from the first publish to the N-th
//! delivery received. The queue is deleted afterwards.
//!
//! Three targets, alternated within each repetition so drift hits all of them alike:
//! - `embedded`: the broker of this crate, started in this process on its own tokio runtime;
//! - `rabbitmq`: the RabbitMQ at `RABBITMQ_URL` (default amqp://guest:guest@127.0.0.1:5672/%2f);
//! - `embedded+events`: the same embedded broker with one event reader attached that drains and
//!   counts every event once per frame (every 16 ms, with `try_recv`), as a live screen does;
//! - `embedded+events-await`: the same, but the reader awaits each event (`recv().await`), so
//!   every event wakes it: the most a reader can cost.
//!
//! The clients run on a second tokio runtime, so the broker and the clients never share a
//! scheduler. It is a current-thread runtime (the publisher and the consumer task on one
//! thread; lapin does its socket I/O on threads of its own); `THROUGHPUT_CLIENT_RUNTIME=multi`
//! makes it a multi-thread one.
//!
//! Besides messages per second, each run reports the CPU time the broker itself used per
//! message: the threads of the embedded broker's runtime, or the RabbitMQ `beam.smp` process
//! when it runs on this machine (read from /proc); and the CPU time of the two clients (this
//! process minus the embedded broker's threads).
//!
//! Usage: `cargo bench --bench throughput -- [MESSAGES] [REPETITIONS] [WINDOW]`
//! (defaults 200000, 5 and 1). WINDOW is how many publishes the publisher keeps in flight (in one
//! task, as a `FuturesUnordered`, so the harness adds no task per message): 1
//! awaits each `basic_publish` before the next, as most applications do; a larger window lets
//! lapin put several messages in one write. `THROUGHPUT_TARGETS=embedded,rabbitmq` runs a subset;
//! `THROUGHPUT_BROKER_THREADS` and `THROUGHPUT_CLIENT_THREADS` set the worker threads of the two
//! multi-thread runtimes (default: one per core).

mod measure;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use measure::process::{beam_pid, process_cpu, stat_cpu};
use measure::summary::{cpu_per_message, median_of, rate};
use measure::Error;
use rabbitscope::amqp::Server;
use rabbitscope::broker::{Broker, BrokerConfig};
use rabbitscope::events::Received;

// The allocator is mimalloc, as in the rabbitscope binary, so the figures are the shipped
// broker's: rbase64 (under rabbitmq_http_client) declares it the global allocator for every
// program linking the library.

const BODY_SIZE: usize = 64;
/// How long one run may take before it is declared stuck.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Embedded,
    RabbitMq,
    EmbeddedWithEvents,
    EmbeddedWithAwaitingReader,
}

impl Target {
    fn label(self) -> &'static str {
        match self {
            Target::Embedded => "embedded",
            Target::RabbitMq => "rabbitmq",
            Target::EmbeddedWithEvents => "embedded+events",
            Target::EmbeddedWithAwaitingReader => "embedded+events-await",
        }
    }

    fn has_reader(self) -> bool {
        matches!(
            self,
            Target::EmbeddedWithEvents | Target::EmbeddedWithAwaitingReader
        )
    }
}

/// What one run measured.
struct Run {
    /// First publish to last delivery received.
    total: Duration,
    /// First publish to last publish returned.
    publishing: Duration,
    /// CPU time the broker used during the run, if it could be read.
    broker_cpu: Option<Duration>,
    /// CPU time the two clients (this process minus the broker's threads) used.
    client_cpu: Option<Duration>,
    /// Events the reader saw (embedded+events targets only).
    events: u64,
    /// Events the reader missed because it fell behind.
    missed: u64,
}

fn main() -> Result<(), Error> {
    let Some(args) = measure::arguments("throughput") else {
        return Ok(());
    };
    let mut args = args.into_iter();
    let messages: usize = match args.next() {
        Some(s) => s.replace('_', "").parse()?,
        None => 200_000,
    };
    let repetitions: usize = match args.next() {
        Some(s) => s.parse()?,
        None => 5,
    };
    let window: usize = match args.next() {
        Some(s) => s.parse::<usize>()?.max(1),
        None => 1,
    };
    let rabbit_url = std::env::var("RABBITMQ_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string());
    let mut targets = vec![
        Target::Embedded,
        Target::RabbitMq,
        Target::EmbeddedWithEvents,
        Target::EmbeddedWithAwaitingReader,
    ];
    if let Ok(list) = std::env::var("THROUGHPUT_TARGETS") {
        targets.retain(|t| list.split(',').any(|s| s.trim() == t.label()));
    }

    // The broker's runtime: the embedded broker and, for the events targets, the event reader.
    let mut broker_rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = env_number("THROUGHPUT_BROKER_THREADS") {
        broker_rt.worker_threads(n);
    }
    let broker_rt = broker_rt.thread_name("broker").enable_all().build()?;
    // The clients' runtime: lapin publisher and consumer, for every target.
    // The two client tasks share one thread by default: lapin does its I/O on threads of its
    // own, and a work-stealing pool only adds wake-ups between them (measured: about 0.5 µs of
    // client CPU per message, for RabbitMQ and the embedded broker alike).
    let mut client_rt = if std::env::var("THROUGHPUT_CLIENT_RUNTIME").as_deref() == Ok("multi") {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    if let Some(n) = env_number("THROUGHPUT_CLIENT_THREADS") {
        client_rt.worker_threads(n);
    }
    let client_rt = client_rt.thread_name("client").enable_all().build()?;

    let (broker, embedded_url) = broker_rt.block_on(async {
        let broker = Broker::new(BrokerConfig::default());
        let server = Server::bind(broker.clone(), "127.0.0.1:0".parse()?).await?;
        let addr = server.local_addr();
        tokio::spawn(server.run());
        Ok::<_, Error>((broker, format!("amqp://guest:guest@{addr}/%2f")))
    })?;

    println!(
        "{messages} messages of {BODY_SIZE} bytes per run, {repetitions} runs per target, \
         publish window {window}, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Warm up every target once (connections, allocator, RabbitMQ's queue processes).
    for &target in &targets {
        let url = url_for(target, &embedded_url, &rabbit_url);
        let warm = (messages / 10).max(1_000);
        one_run(&client_rt, &broker_rt, &broker, target, url, warm, window)?;
    }

    let mut results: Vec<(Target, Vec<Run>)> = targets.iter().map(|&t| (t, Vec::new())).collect();
    for rep in 0..repetitions {
        // Rotate the order so no target always runs first.
        for k in 0..targets.len() {
            let i = (rep + k) % targets.len();
            let target = targets[i];
            let url = url_for(target, &embedded_url, &rabbit_url);
            let run = one_run(
                &client_rt, &broker_rt, &broker, target, url, messages, window,
            )?;
            println!(
                "  run {}/{repetitions} {:<22} {:>8.0} msg/s  (publishing {:>8.0} msg/s, \
                 cpu/msg broker {} clients {}){}",
                rep + 1,
                target.label(),
                rate(messages, run.total),
                rate(messages, run.publishing),
                cpu_per_message(run.broker_cpu, messages),
                cpu_per_message(run.client_cpu, messages),
                if target.has_reader() {
                    format!("  events seen {} missed {}", run.events, run.missed)
                } else {
                    String::new()
                }
            );
            results[i].1.push(run);
        }
    }

    println!();
    println!(
        "{:<22} {:>12} {:>12} {:>12} {:>14} {:>15} {:>15}",
        "target",
        "median msg/s",
        "min msg/s",
        "max msg/s",
        "publish msg/s",
        "broker cpu/msg",
        "client cpu/msg"
    );
    let mut medians = Vec::new();
    for (target, runs) in &results {
        let mut rates: Vec<f64> = runs.iter().map(|r| rate(messages, r.total)).collect();
        let mut publish: Vec<f64> = runs.iter().map(|r| rate(messages, r.publishing)).collect();
        let mut cpu: Vec<Duration> = runs.iter().filter_map(|r| r.broker_cpu).collect();
        let mut client: Vec<Duration> = runs.iter().filter_map(|r| r.client_cpu).collect();
        rates.sort_by(f64::total_cmp);
        publish.sort_by(f64::total_cmp);
        cpu.sort();
        client.sort();
        let median = median_of(&rates);
        medians.push((*target, median));
        println!(
            "{:<22} {:>12.0} {:>12.0} {:>12.0} {:>14.0} {:>15} {:>15}",
            target.label(),
            median,
            rates[0],
            rates[rates.len() - 1],
            median_of(&publish),
            cpu_per_message(cpu.get(cpu.len() / 2).copied(), messages),
            cpu_per_message(client.get(client.len() / 2).copied(), messages)
        );
    }
    let get = |t: Target| medians.iter().find(|(m, _)| *m == t).map(|(_, v)| *v);
    println!();
    if let (Some(e), Some(r)) = (get(Target::Embedded), get(Target::RabbitMq)) {
        println!("embedded / rabbitmq (median msg/s): {:.2}x", e / r);
    }
    for with_reader in [
        Target::EmbeddedWithEvents,
        Target::EmbeddedWithAwaitingReader,
    ] {
        if let (Some(e), Some(w)) = (get(Target::Embedded), get(with_reader)) {
            println!(
                "event reader cost: {} is {:.1}% slower than embedded",
                with_reader.label(),
                (1.0 - w / e) * 100.0
            );
        }
        if let Some((_, runs)) = results.iter().find(|(t, _)| *t == with_reader) {
            let seen: u64 = runs.iter().map(|r| r.events).sum();
            let missed: u64 = runs.iter().map(|r| r.missed).sum();
            println!(
                "  its reader: {seen} events seen, {missed} missed over {} runs",
                runs.len()
            );
        }
    }
    Ok(())
}

fn env_number(name: &str) -> Option<usize> {
    std::env::var(name).ok()?.parse().ok().filter(|&n| n > 0)
}

fn url_for<'a>(target: Target, embedded: &'a str, rabbit: &'a str) -> &'a str {
    match target {
        Target::RabbitMq => rabbit,
        _ => embedded,
    }
}

/// CPU time of this process's threads named `broker` (the broker's runtime).
fn broker_threads_cpu() -> Option<Duration> {
    let mut total = Duration::ZERO;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if name.trim_end() == "broker" {
            total += stat_cpu(&dir.join("stat")).unwrap_or_default();
        }
    }
    Some(total)
}

/// CPU time of the local RabbitMQ (`beam.smp`), when there is one.
fn rabbitmq_cpu() -> Option<Duration> {
    static BEAM: OnceLock<Option<u32>> = OnceLock::new();
    process_cpu((*BEAM.get_or_init(beam_pid))?)
}

/// CPU time of this whole process.
fn own_cpu() -> Option<Duration> {
    process_cpu(std::process::id())
}

fn broker_cpu(target: Target) -> Option<Duration> {
    match target {
        Target::RabbitMq => rabbitmq_cpu(),
        _ => broker_threads_cpu(),
    }
}

/// One timed run, with an event reader attached for the events targets.
fn one_run(
    client_rt: &tokio::runtime::Runtime,
    broker_rt: &tokio::runtime::Runtime,
    broker: &Arc<Broker>,
    target: Target,
    url: &str,
    messages: usize,
    window: usize,
) -> Result<Run, Error> {
    let seen = Arc::new(AtomicU64::new(0));
    let missed = Arc::new(AtomicU64::new(0));
    let reader = target.has_reader().then(|| {
        let mut reader = broker.subscribe();
        let (seen, missed) = (seen.clone(), missed.clone());
        let count = move |received: Received| match received {
            Received::Event(_) => {
                seen.fetch_add(1, Ordering::Relaxed);
                true
            }
            Received::Missed(n) => {
                missed.fetch_add(n, Ordering::Relaxed);
                true
            }
            Received::Closed => false,
        };
        if target == Target::EmbeddedWithAwaitingReader {
            broker_rt.spawn(async move { while count(reader.recv().await) {} })
        } else {
            broker_rt.spawn(async move {
                let mut frame = tokio::time::interval(Duration::from_millis(16));
                frame.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    frame.tick().await;
                    while let Some(received) = reader.try_recv() {
                        if !count(received) {
                            return;
                        }
                    }
                }
            })
        }
    });

    let timed = client_rt.block_on(async {
        tokio::time::timeout(
            RUN_TIMEOUT,
            publish_and_consume(url, messages, window, target),
        )
        .await
        .map_err(|_| format!("{} run did not finish in {RUN_TIMEOUT:?}", target.label()))?
    });

    if let Some(task) = reader {
        // Let the reader catch up with what is already in the ring, then detach it.
        let mut last = u64::MAX;
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let now = seen.load(Ordering::Relaxed) + missed.load(Ordering::Relaxed);
            if now == last {
                break;
            }
            last = now;
        }
        task.abort();
        let _ = broker_rt.block_on(task);
    }
    let (total, publishing, broker_cpu, client_cpu) = timed?;
    Ok(Run {
        total,
        publishing,
        broker_cpu,
        client_cpu,
        events: seen.load(Ordering::Relaxed),
        missed: missed.load(Ordering::Relaxed),
    })
}

/// Returns (first publish to last delivery, first publish to last publish, broker CPU and
/// client CPU used in between).
async fn publish_and_consume(
    url: &str,
    messages: usize,
    window: usize,
    target: Target,
) -> Result<(Duration, Duration, Option<Duration>, Option<Duration>), Error> {
    let queue = measure::unique("throughput");

    let publisher = Connection::connect(url, ConnectionProperties::default()).await?;
    let pub_channel = publisher.create_channel().await?;
    pub_channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let consumer_conn = Connection::connect(url, ConnectionProperties::default()).await?;
    let con_channel = consumer_conn.create_channel().await?;
    let mut consumer = con_channel
        .basic_consume(
            queue.as_str().into(),
            "throughput".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let receiving = tokio::spawn(async move {
        let mut received = 0usize;
        while received < messages {
            match consumer.next().await {
                Some(Ok(delivery)) => {
                    debug_assert_eq!(delivery.data.len(), BODY_SIZE);
                    received += 1;
                }
                Some(Err(e)) => return Err(Error::from(e)),
                None => return Err(Error::from(format!("consumer ended after {received}"))),
            }
        }
        Ok(Instant::now())
    });

    let body = [b'x'; BODY_SIZE];
    let properties = BasicProperties::default().with_delivery_mode(1);
    let cpu_before = broker_cpu(target);
    let process_before = own_cpu();
    let embedded_before = broker_threads_cpu();
    let start = Instant::now();
    if window == 1 {
        for _ in 0..messages {
            pub_channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    properties.clone(),
                )
                .await?;
        }
    } else {
        // Up to `window` publishes in flight in this one task: no task or channel clone per
        // message, so the harness itself costs the clients as little as it can.
        let mut in_flight = FuturesUnordered::new();
        for _ in 0..messages {
            if in_flight.len() >= window {
                in_flight.next().await.expect("not empty")?;
            }
            in_flight.push(pub_channel.basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                properties.clone(),
            ));
        }
        while let Some(done) = in_flight.next().await {
            done?;
        }
    }
    let published = start.elapsed();
    let last_received = receiving.await??;
    let total = last_received - start;
    let used = |before: Option<Duration>, after: Option<Duration>| match (before, after) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    let cpu = used(cpu_before, broker_cpu(target));
    let client_cpu = match (
        used(process_before, own_cpu()),
        used(embedded_before, broker_threads_cpu()),
    ) {
        (Some(process), Some(embedded)) => Some(process.saturating_sub(embedded)),
        _ => None,
    };

    pub_channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await?;
    let _ = con_channel.close(200, "done".into()).await;
    let _ = consumer_conn.close(200, "done".into()).await;
    let _ = pub_channel.close(200, "done".into()).await;
    let _ = publisher.close(200, "done".into()).await;
    Ok((total, published, cpu, client_cpu))
}
