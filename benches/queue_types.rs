//! Queue types side by side: classic (durable), quorum and stream queues on the embedded broker
//! and on RabbitMQ, in the same run.
//!
//! Two parts:
//! - `publish`: for each queue type and each target, a fresh durable queue of that type
//!   (`x-queue-type`), one lapin consumer on its own connection (manual ack, prefetch 1000; a
//!   stream consumer starts at `x-stream-offset: next`, before the first publish), and one lapin
//!   publisher on another connection in confirm mode, keeping WINDOW publishes unconfirmed at
//!   most, sending N persistent 64-byte messages through the default exchange. A run is timed
//!   from the first publish until every message is both confirmed and delivered; it also
//!   reports the CPU time the broker process used per message. The queue is deleted after.
//! - `read`: a stream filled with M 64-byte messages (one publisher with confirms and no
//!   consumer: its rate and the broker's CPU per message are reported too), then
//!   one consumer from `x-stream-offset: first` (prefetch 1000, manual ack) reads all of them:
//!   messages per second, and the broker process's resident memory (VmRSS) before the read, its
//!   peak during it (sampled every 10 ms) and after it. The stream is read again in each
//!   repetition and deleted at the end.
//!
//! The consumers ack every 100th delivery with `multiple`, and the last. Before the publish
//! runs, every queue type runs once on every target with a tenth of N, unmeasured (connections,
//! allocators, RabbitMQ's queue processes warm up).
//!
//! Targets, alternated within each repetition so drift hits both alike:
//! - `embedded`: the `rabbitscope broker` binary cargo builds with this benchmark (release
//!   under `cargo bench`), as its own process with a data directory under the system temp
//!   directory, so its CPU time and memory are its own and confirms wait for its disk;
//! - `rabbitmq`: the RabbitMQ at `RABBITMQ_URL` (default amqp://guest:guest@127.0.0.1:5672/%2f),
//!   its `beam.smp` process on this machine. The program warns when its management API
//!   (`RABBITMQ_MANAGEMENT_URL`, default http://127.0.0.1:15672) says tracing is on for that
//!   vhost: the firehose copies every message and would slow RabbitMQ down.
//!
//! It prints a line per run, then the machine and commit line and a markdown table per part.
//!
//! Usage: `cargo bench --bench queue_types -- [--parts publish,read] [--messages 100000]
//! [--repetitions 5] [--window 128] [--read-messages 1000000] [--read-repetitions 3]
//! [--types classic,quorum,stream] [--targets embedded,rabbitmq]`. Numbers may be written
//! with underscores (`1_000_000`).

mod measure;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use measure::embedded::EmbeddedBroker;
use measure::machine::Machine;
use measure::process::{beam_pid, mib, process_cpu, rss, settled_rss};
use measure::publisher::publish_confirmed;
use measure::summary::{cpu_per_message, rate, thousands, Spread};
use measure::Error;

const BODY_SIZE: usize = 64;
const PREFETCH: u16 = 1000;
/// Deliveries acked at once, with `multiple`: a tenth of the prefetch keeps credit flowing.
const ACK_EVERY: usize = 100;
/// How long one run may take before it is declared stuck.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// A consumer that receives nothing for this long has stalled.
const STALL: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum QueueType {
    Classic,
    Quorum,
    Stream,
}

impl QueueType {
    const ALL: [QueueType; 3] = [QueueType::Classic, QueueType::Quorum, QueueType::Stream];

    /// The value of `x-queue-type`.
    fn name(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
            QueueType::Stream => "stream",
        }
    }
}

/// A broker under measurement: where to connect, and which process on this machine is it.
struct Target {
    name: &'static str,
    url: String,
    pid: u32,
}

struct Options {
    publish: bool,
    read: bool,
    messages: usize,
    repetitions: usize,
    window: usize,
    read_messages: usize,
    read_repetitions: usize,
    types: Vec<QueueType>,
    targets: Vec<String>,
}

impl Options {
    fn parse(args: Vec<String>) -> Result<Options, Error> {
        let mut options = Options {
            publish: true,
            read: true,
            messages: 100_000,
            repetitions: 5,
            window: 128,
            read_messages: 1_000_000,
            read_repetitions: 3,
            types: QueueType::ALL.to_vec(),
            targets: vec!["embedded".into(), "rabbitmq".into()],
        };
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number = || {
                let n = value.replace('_', "").parse::<usize>();
                n.map_err(|_| format!("{flag} takes a number, not {value:?}"))
            };
            let list = || value.split(',').map(|s| s.trim().to_string());
            match flag.as_str() {
                "--parts" => {
                    let parts: Vec<String> = list().collect();
                    options.publish = parts.iter().any(|p| p == "publish");
                    options.read = parts.iter().any(|p| p == "read");
                }
                "--messages" => options.messages = number()?.max(1),
                "--repetitions" => options.repetitions = number()?.max(1),
                "--window" => options.window = number()?.max(1),
                "--read-messages" => options.read_messages = number()?.max(1),
                "--read-repetitions" => options.read_repetitions = number()?.max(1),
                "--types" => {
                    options.types = list()
                        .map(|name| {
                            QueueType::ALL
                                .into_iter()
                                .find(|t| t.name() == name)
                                .ok_or_else(|| format!("no queue type {name:?}"))
                        })
                        .collect::<Result<_, _>>()?;
                }
                "--targets" => options.targets = list().collect(),
                other => {
                    return Err(format!(
                        "unknown option {other}: see the top of benches/queue_types.rs"
                    )
                    .into())
                }
            }
        }
        Ok(options)
    }
}

fn main() -> Result<(), Error> {
    let Some(args) = measure::arguments("queue_types") else {
        return Ok(());
    };
    let options = Options::parse(args)?;
    let machine = Machine::read();
    println!("{}", machine.line());

    let wanted = |name: &str| options.targets.iter().any(|t| t == name);
    // Kept alive until the end: dropping it stops the broker.
    let embedded = if wanted("embedded") {
        Some(EmbeddedBroker::on_disk()?)
    } else {
        None
    };
    let mut targets = Vec::new();
    if let Some(embedded) = &embedded {
        targets.push(Target {
            name: "embedded",
            url: embedded.url(),
            pid: embedded.pid(),
        });
    }
    if wanted("rabbitmq") {
        targets.push(Target {
            name: "rabbitmq",
            url: std::env::var("RABBITMQ_URL")
                .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string()),
            pid: beam_pid().ok_or("no beam.smp process: is RabbitMQ running here?")?,
        });
    }
    if targets.is_empty() {
        return Err("no target: --targets takes embedded, rabbitmq or both".into());
    }
    for target in &targets {
        println!("{}: pid {} at {}", target.name, target.pid, target.url);
    }
    let clients = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(rabbitmq) = targets.iter().find(|t| t.name == "rabbitmq") {
        if clients.block_on(tracing_on(&rabbitmq.url)) == Some(true) {
            println!(
                "warning: tracing (the firehose) is on for this vhost on RabbitMQ: it copies \
                 every message, and slows RabbitMQ"
            );
        }
    }

    let publish = if options.publish {
        publish_part(&clients, &targets, &options)?
    } else {
        Vec::new()
    };
    let read = if options.read {
        read_part(&clients, &targets, &options)?
    } else {
        Vec::new()
    };

    println!();
    println!("{}", machine.line());
    if !publish.is_empty() {
        print_publish_table(&publish, &options);
    }
    if !read.is_empty() {
        print_read_table(&read, &options);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Part 1: publish with confirms, consume with acks, per queue type
// ---------------------------------------------------------------------------------------------

/// What one publish run measured.
struct PublishRun {
    /// First publish until every message is confirmed and delivered.
    took: Duration,
    /// CPU time the broker process used meanwhile.
    broker_cpu: Option<Duration>,
}

/// Every run of one queue type on one target.
struct PublishRuns<'a> {
    queue_type: QueueType,
    target: &'a Target,
    runs: Vec<PublishRun>,
}

fn publish_part<'a>(
    clients: &tokio::runtime::Runtime,
    targets: &'a [Target],
    options: &Options,
) -> Result<Vec<PublishRuns<'a>>, Error> {
    let messages = options.messages;
    println!(
        "\npublish: {messages} persistent messages of {BODY_SIZE} B per run, confirm window {}, \
         prefetch {PREFETCH}, {} repetitions",
        options.window, options.repetitions
    );
    // Warm up every queue type on every target once (connections, allocators, queue processes).
    let warm = (messages / 10).max(1_000);
    for &queue_type in &options.types {
        for target in targets {
            publish_run(clients, target, queue_type, warm, options.window)?;
        }
    }
    let mut results: Vec<PublishRuns> = Vec::new();
    for &queue_type in &options.types {
        for target in targets {
            results.push(PublishRuns {
                queue_type,
                target,
                runs: Vec::new(),
            });
        }
    }
    for rep in 0..options.repetitions {
        for &queue_type in &options.types {
            // Rotate the order so no target always runs first.
            for k in 0..targets.len() {
                let target = &targets[(rep + k) % targets.len()];
                let run = publish_run(clients, target, queue_type, messages, options.window)?;
                println!(
                    "  run {}/{} {:<8} {:<9} {:>8.0} msg/s  broker cpu/msg {}",
                    rep + 1,
                    options.repetitions,
                    queue_type.name(),
                    target.name,
                    rate(messages, run.took),
                    cpu_per_message(run.broker_cpu, messages)
                );
                results
                    .iter_mut()
                    .find(|r| r.queue_type == queue_type && r.target.name == target.name)
                    .expect("a slot for every type and target")
                    .runs
                    .push(run);
            }
        }
    }
    Ok(results)
}

/// One timed run on a fresh queue, deleted afterwards whatever happened.
fn publish_run(
    clients: &tokio::runtime::Runtime,
    target: &Target,
    queue_type: QueueType,
    messages: usize,
    window: usize,
) -> Result<PublishRun, Error> {
    let queue = unique_name("publish", queue_type);
    let run = clients.block_on(async {
        tokio::time::timeout(
            RUN_TIMEOUT,
            publish_and_consume(target, &queue, queue_type, messages, window),
        )
        .await
        .unwrap_or_else(|_| {
            Err(format!("{} run did not finish in {RUN_TIMEOUT:?}", target.name).into())
        })
    });
    if run.is_err() {
        clients.block_on(delete_queue(&target.url, &queue));
    }
    run
}

async fn publish_and_consume(
    target: &Target,
    queue: &str,
    queue_type: QueueType,
    messages: usize,
    window: usize,
) -> Result<PublishRun, Error> {
    let consumer_connection =
        Connection::connect(&target.url, ConnectionProperties::default()).await?;
    let consumer_channel = consumer_connection.create_channel().await?;
    declare(&consumer_channel, queue, queue_type).await?;
    // A stream consumer starts at the end of the log: it gets what is published from now on.
    let consumer = consume(&consumer_channel, queue, queue_type, "next").await?;
    let receiving = tokio::spawn(receive(consumer, messages));

    let publisher_connection =
        Connection::connect(&target.url, ConnectionProperties::default()).await?;
    let publisher = publisher_connection.create_channel().await?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let body = [b'q'; BODY_SIZE];
    let persistent = BasicProperties::default().with_delivery_mode(2);
    let cpu_before = process_cpu(target.pid);
    let started = Instant::now();
    publish_confirmed(&publisher, queue, messages, window, &body, &persistent).await?;
    let confirmed = Instant::now();
    let last_delivery = receiving.await??;
    let took = confirmed.max(last_delivery) - started;
    let broker_cpu = match (cpu_before, process_cpu(target.pid)) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };

    publisher
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await?;
    let _ = consumer_connection.close(200, "done".into()).await;
    let _ = publisher_connection.close(200, "done".into()).await;
    Ok(PublishRun { took, broker_cpu })
}

fn print_publish_table(results: &[PublishRuns], options: &Options) {
    println!(
        "\nPublish with confirms and consume with acks: {} persistent {BODY_SIZE} B messages a \
         run, confirm window {}, prefetch {PREFETCH}, {} runs; median msg/s (range) and the \
         broker's CPU time per message (median).\n",
        thousands(options.messages as u64),
        options.window,
        options.repetitions
    );
    println!(
        "| queue type | embedded msg/s | RabbitMQ msg/s | embedded / RabbitMQ | embedded CPU/msg \
         | RabbitMQ CPU/msg |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for &queue_type in &options.types {
        let of = |target: &str| {
            results
                .iter()
                .find(|r| r.queue_type == queue_type && r.target.name == target)
        };
        let rates = |runs: Option<&PublishRuns>| {
            let runs = runs?;
            let rates: Vec<f64> = runs
                .runs
                .iter()
                .map(|r| rate(options.messages, r.took))
                .collect();
            Spread::of(&rates)
        };
        let cpu = |runs: Option<&PublishRuns>| match runs {
            Some(runs) => cpu_cell(runs.runs.iter().map(|r| r.broker_cpu), options.messages),
            None => "not run".into(),
        };
        let (embedded, rabbitmq) = (of("embedded"), of("rabbitmq"));
        let (e, r) = (rates(embedded), rates(rabbitmq));
        let ratio = match (e, r) {
            (Some(e), Some(r)) => format!("{:.2}x", e.median / r.median),
            _ => "n/a".into(),
        };
        println!(
            "| {} | {} | {} | {ratio} | {} | {} |",
            queue_type.name(),
            spread_cell(e),
            spread_cell(r),
            cpu(embedded),
            cpu(rabbitmq)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Part 2: one consumer reads a full stream from the first offset
// ---------------------------------------------------------------------------------------------

/// What one read of the whole stream measured.
struct ReadRun {
    took: Duration,
    broker_cpu: Option<Duration>,
    /// The broker's VmRSS settled before the consumer started, in bytes.
    before: u64,
    /// The highest VmRSS sampled while it read.
    peak: u64,
    /// VmRSS settled after the consumer's connection closed.
    after: u64,
}

struct ReadRuns<'a> {
    target: &'a Target,
    /// The broker's VmRSS settled before its stream was filled, in bytes.
    unfilled: u64,
    /// How long filling the stream took (one publisher, no consumer), and the broker's CPU
    /// time meanwhile: a long fill is what a stream nobody reads yet goes through.
    fill_took: Duration,
    fill_cpu: Option<Duration>,
    runs: Vec<ReadRun>,
}

fn read_part<'a>(
    clients: &tokio::runtime::Runtime,
    targets: &'a [Target],
    options: &Options,
) -> Result<Vec<ReadRuns<'a>>, Error> {
    let messages = options.read_messages;
    println!(
        "\nread: a stream of {messages} messages of {BODY_SIZE} B read from `first`, prefetch \
         {PREFETCH}, {} repetitions",
        options.read_repetitions
    );
    let streams: Vec<String> = targets
        .iter()
        .map(|_| unique_name("read", QueueType::Stream))
        .collect();
    let delete_streams = || {
        for (target, stream) in targets.iter().zip(&streams) {
            clients.block_on(delete_queue(&target.url, stream));
        }
    };
    let mut results: Vec<ReadRuns> = Vec::new();
    for (target, stream) in targets.iter().zip(&streams) {
        let filled = clients.block_on(async {
            let unfilled = settled_rss(target.pid).await?;
            let cpu_before = process_cpu(target.pid);
            let started = Instant::now();
            let fill = fill_stream(target, stream, messages, options.window);
            tokio::time::timeout(RUN_TIMEOUT, fill)
                .await
                .map_err(|_| format!("{} fill did not finish in {RUN_TIMEOUT:?}", target.name))??;
            let took = started.elapsed();
            let cpu = match (cpu_before, process_cpu(target.pid)) {
                (Some(before), Some(after)) => Some(after.saturating_sub(before)),
                _ => None,
            };
            Ok::<_, Error>((unfilled, took, cpu))
        });
        let (unfilled, fill_took, fill_cpu) = match filled {
            Ok(filled) => filled,
            Err(e) => {
                delete_streams();
                return Err(e);
            }
        };
        println!(
            "  {:<9} filled in {:.1?} ({:.0} msg/s, broker cpu/msg {})  RSS before filling {:.0} \
             MiB",
            target.name,
            fill_took,
            rate(messages, fill_took),
            cpu_per_message(fill_cpu, messages),
            mib(unfilled)
        );
        results.push(ReadRuns {
            target,
            unfilled,
            fill_took,
            fill_cpu,
            runs: Vec::new(),
        });
    }
    let mut outcome = Ok(());
    'repetitions: for rep in 0..options.read_repetitions {
        for k in 0..targets.len() {
            let i = (rep + k) % targets.len();
            let target = &targets[i];
            let read = clients.block_on(async {
                tokio::time::timeout(RUN_TIMEOUT, read_stream(target, &streams[i], messages))
                    .await
                    .unwrap_or_else(|_| {
                        Err(
                            format!("{} read did not finish in {RUN_TIMEOUT:?}", target.name)
                                .into(),
                        )
                    })
            });
            let run = match read {
                Ok(run) => run,
                Err(e) => {
                    outcome = Err(e);
                    break 'repetitions;
                }
            };
            println!(
                "  run {}/{} {:<9} {:>8.0} msg/s  broker cpu/msg {}  RSS before {:.0} MiB, peak \
                 {:.0} MiB, after {:.0} MiB",
                rep + 1,
                options.read_repetitions,
                target.name,
                rate(messages, run.took),
                cpu_per_message(run.broker_cpu, messages),
                mib(run.before),
                mib(run.peak),
                mib(run.after)
            );
            results[i].runs.push(run);
        }
    }
    delete_streams();
    outcome.map(|()| results)
}

async fn fill_stream(
    target: &Target,
    stream: &str,
    messages: usize,
    window: usize,
) -> Result<(), Error> {
    let connection = Connection::connect(&target.url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    declare(&channel, stream, QueueType::Stream).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let body = [b's'; BODY_SIZE];
    let persistent = BasicProperties::default().with_delivery_mode(2);
    publish_confirmed(&channel, stream, messages, window, &body, &persistent).await?;
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}

async fn read_stream(target: &Target, stream: &str, messages: usize) -> Result<ReadRun, Error> {
    let before = settled_rss(target.pid).await?;
    let peak = PeakRss::sample(target.pid);
    let cpu_before = process_cpu(target.pid);
    let connection = Connection::connect(&target.url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let started = Instant::now();
    let consumer = consume(&channel, stream, QueueType::Stream, "first").await?;
    let received = receive(consumer, messages).await;
    let broker_cpu = match (cpu_before, process_cpu(target.pid)) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    let _ = connection.close(200, "done".into()).await;
    let peak = peak.stop();
    let took = received? - started;
    let after = settled_rss(target.pid).await?;
    Ok(ReadRun {
        took,
        broker_cpu,
        before,
        peak: peak.max(before),
        after,
    })
}

/// The highest VmRSS of a process, sampled every 10 ms on a thread of its own until stopped.
struct PeakRss {
    stop: Arc<AtomicBool>,
    sampler: std::thread::JoinHandle<()>,
    peak: Arc<AtomicU64>,
}

impl PeakRss {
    fn sample(pid: u32) -> PeakRss {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let sampler = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(now) = rss(pid) {
                        peak.fetch_max(now, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        PeakRss {
            stop,
            sampler,
            peak,
        }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.sampler.join();
        self.peak.load(Ordering::Relaxed)
    }
}

fn print_read_table(results: &[ReadRuns], options: &Options) {
    println!(
        "\nStream read from `first`: {} stored {BODY_SIZE} B messages, one consumer, prefetch \
         {PREFETCH}, {} reads; median (range). Memory is the broker process's VmRSS: settled \
         before the stream was filled, settled before the read, the highest sampled during it \
         (every 10 ms), settled after it. The bodies alone take {:.0} MiB. The fill before it: \
         one publisher with confirms (window {}) and no consumer, once per broker.\n",
        thousands(options.read_messages as u64),
        options.read_repetitions,
        mib((options.read_messages * BODY_SIZE) as u64),
        options.window
    );
    println!(
        "| broker | fill msg/s | fill CPU/msg | read msg/s | read CPU/msg | RSS before filling \
         | RSS before read | RSS peak during read | peak - before read | RSS after read |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for ReadRuns {
        target,
        unfilled,
        fill_took,
        fill_cpu,
        runs,
    } in results
    {
        let rates: Vec<f64> = runs
            .iter()
            .map(|r| rate(options.read_messages, r.took))
            .collect();
        let memory = |of: &dyn Fn(&ReadRun) -> u64| {
            let values: Vec<f64> = runs.iter().map(|r| mib(of(r))).collect();
            match Spread::of(&values) {
                Some(s) => format!("{:.0} MiB ({:.0}-{:.0})", s.median, s.min, s.max),
                None => "not run".into(),
            }
        };
        println!(
            "| {} | {} | {} | {} | {} | {:.0} MiB | {} | {} | {} | {} |",
            if target.name == "rabbitmq" {
                "RabbitMQ"
            } else {
                target.name
            },
            thousands(rate(options.read_messages, *fill_took) as u64),
            cpu_per_message(*fill_cpu, options.read_messages),
            spread_cell(Spread::of(&rates)),
            cpu_cell(runs.iter().map(|r| r.broker_cpu), options.read_messages),
            mib(*unfilled),
            memory(&|r| r.before),
            memory(&|r| r.peak),
            memory(&|r| r.peak.saturating_sub(r.before)),
            memory(&|r| r.after)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// What both parts do with a queue
// ---------------------------------------------------------------------------------------------

/// A durable queue of the given type, as RabbitMQ requires for quorum queues and streams.
async fn declare(channel: &Channel, queue: &str, queue_type: QueueType) -> Result<(), Error> {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(queue_type.name().into()),
    );
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue.into(), durable, arguments)
        .await?;
    Ok(())
}

/// A manual-ack consumer with prefetch [`PREFETCH`]; on a stream it starts at `offset`
/// (RabbitMQ refuses a stream consumer without a prefetch or with automatic acks).
async fn consume(
    channel: &Channel,
    queue: &str,
    queue_type: QueueType,
    offset: &str,
) -> Result<Consumer, Error> {
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await?;
    let mut arguments = FieldTable::default();
    if queue_type == QueueType::Stream {
        arguments.insert(
            "x-stream-offset".into(),
            AMQPValue::LongString(offset.into()),
        );
    }
    Ok(channel
        .basic_consume(
            queue.into(),
            "queue-types-bench".into(),
            BasicConsumeOptions::default(),
            arguments,
        )
        .await?)
}

/// Receives `messages` deliveries of [`BODY_SIZE`] bytes, acking every [`ACK_EVERY`]th with
/// `multiple` (and the last); returns when the last one arrived.
async fn receive(mut consumer: Consumer, messages: usize) -> Result<Instant, Error> {
    let mut received = 0;
    while received < messages {
        let next = tokio::time::timeout(STALL, consumer.next())
            .await
            .map_err(|_| format!("no delivery for {STALL:?} after {received} of {messages}"))?;
        let Some(delivery) = next else {
            return Err(
                format!("the consumer was cancelled after {received} of {messages}").into(),
            );
        };
        let delivery = delivery?;
        if delivery.data.len() != BODY_SIZE {
            return Err(format!("a delivery of {} bytes", delivery.data.len()).into());
        }
        received += 1;
        if received % ACK_EVERY == 0 || received == messages {
            delivery.ack(BasicAckOptions { multiple: true }).await?;
        }
    }
    Ok(Instant::now())
}

/// Deletes a queue left by a failed run, on a connection of its own; failures are ignored
/// (the queue may never have been declared).
async fn delete_queue(url: &str, queue: &str) {
    let Ok(connection) = Connection::connect(url, ConnectionProperties::default()).await else {
        return;
    };
    if let Ok(channel) = connection.create_channel().await {
        let _ = channel
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = connection.close(200, "done".into()).await;
}

/// Whether RabbitMQ traces the vhost of an `amqp://user:password@host:port/vhost` URL, as its
/// management API (`RABBITMQ_MANAGEMENT_URL`, default http://127.0.0.1:15672) says; None when
/// it cannot tell.
async fn tracing_on(amqp_url: &str) -> Option<bool> {
    let api = std::env::var("RABBITMQ_MANAGEMENT_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:15672".to_string());
    let (credentials, rest) = amqp_url.split_once("://")?.1.split_once('@')?;
    let (user, password) = credentials.split_once(':')?;
    // Already percent-encoded in the URL, as the API wants it (`%2f` for `/`).
    let vhost = rest.split_once('/')?.1.split('?').next()?;
    let response = reqwest::Client::new()
        .get(format!("{api}/api/vhosts/{vhost}"))
        .basic_auth(user, Some(password))
        .send()
        .await
        .ok()?;
    let vhost: serde_json::Value = serde_json::from_str(&response.text().await.ok()?).ok()?;
    vhost.get("tracing")?.as_bool()
}

fn unique_name(part: &str, queue_type: QueueType) -> String {
    measure::unique(&format!("queue-types.{part}.{}", queue_type.name()))
}

/// The median CPU time per message over some runs; n/a where /proc could not tell.
fn cpu_cell(cpu: impl Iterator<Item = Option<Duration>>, messages: usize) -> String {
    let per_message: Vec<f64> = cpu
        .flatten()
        .map(|c| c.as_secs_f64() * 1e6 / messages as f64)
        .collect();
    match Spread::of(&per_message) {
        Some(s) => format!("{:.1} µs", s.median),
        None => "n/a".into(),
    }
}

fn spread_cell(spread: Option<Spread>) -> String {
    match spread {
        Some(s) => format!(
            "{} ({}-{})",
            thousands(s.median.round() as u64),
            thousands(s.min.round() as u64),
            thousands(s.max.round() as u64)
        ),
        None => "not run".into(),
    }
}
