//! How fast two stores keep persistent messages, measured the way the broker uses a store:
//! publishers' messages arrive in group commits, each commit must be on disk before its
//! confirms go out, and each message is removed again when its consumer acks it.
//!
//! Each message is handed to the store on its own, as a publish is; at most WINDOW (default
//! 128) are unconfirmed at once, as with a publisher's confirm window; a message confirmed is
//! removed again, as its consumer's ack does. Both stores sit behind the same group commit: one
//! writer thread takes everything waiting and makes it durable in one go.
//! - `log`: the broker's own store (`rabbitscope::broker::store`): an append-only log with a
//!   CRC per record, one `fdatasync` per group commit.
//! - `redb`: the redb embedded database, one write transaction (durability Immediate) per
//!   group commit.
//!
//! ```text
//! cargo bench --bench store_choice [-- --messages N --window N --runs N]
//! ```
//!
//! Prints each store's median messages per second. The data lives under the system temp
//! directory (on this machine the same disk as the work tree) and is removed afterwards.

mod measure;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use amq_protocol::protocol::BasicProperties;
use bytes::Bytes;
use rabbitscope::broker::journal::StoreOp;
use rabbitscope::broker::store::Store;
use rabbitscope::broker::Message;
use tokio::sync::watch;

struct Options {
    messages: u64,
    window: usize,
    runs: usize,
}

fn options(args: Vec<String>) -> Options {
    let mut options = Options {
        messages: 50_000,
        window: 128,
        runs: 3,
    };
    for pair in args.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse().ok());
        match (pair[0].as_str(), value) {
            ("--messages", Some(v)) => options.messages = v,
            ("--window", Some(v)) => options.window = v as usize,
            ("--runs", Some(v)) => options.runs = v as usize,
            _ => panic!("usage: store_choice [--messages N] [--window N] [--runs N]"),
        }
    }
    options
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rabbitscope-store-choice-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn message(body: &Bytes) -> Arc<Message> {
    Arc::new(Message {
        id: 0,
        exchange: "".into(),
        routing_key: "bench".into(),
        properties: Arc::new(BasicProperties::default().with_delivery_mode(2)),
        body: body.clone(),
    })
}

/// A store as the broker drives it: operations handed over one publish at a time, a ticket
/// per hand-over, and the last ticket on disk announced by the store's writer.
trait Backend {
    fn submit(&self, op: StoreOp) -> u64;
    fn durable(&self) -> watch::Receiver<u64>;
}

impl Backend for Store {
    fn submit(&self, op: StoreOp) -> u64 {
        Store::submit(self, vec![op])
    }
    fn durable(&self) -> watch::Receiver<u64> {
        Store::durable(self)
    }
}

/// redb behind the same group commit as the log: a writer thread takes every operation that
/// is waiting and commits them in one durable transaction.
struct Redb {
    sender: Mutex<mpsc::Sender<(u64, StoreOp)>>,
    next: AtomicU64,
    durable: watch::Receiver<u64>,
}

const MESSAGES: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("messages");

impl Redb {
    fn open(dir: &Path) -> Redb {
        let db = redb::Database::create(dir.join("bench.redb")).unwrap();
        let (sender, requests) = mpsc::channel::<(u64, StoreOp)>();
        let (durable_tx, durable) = watch::channel(0);
        std::thread::spawn(move || {
            while let Ok(first) = requests.recv() {
                let mut last = first.0;
                let tx = db.begin_write().unwrap();
                {
                    let mut table = tx.open_table(MESSAGES).unwrap();
                    for (ticket, op) in std::iter::once(first).chain(requests.try_iter()) {
                        last = ticket;
                        match op {
                            StoreOp::Enqueued { seq, message, .. } => {
                                table.insert(seq, message.body.as_ref()).unwrap();
                            }
                            StoreOp::Removed { seq, .. } => {
                                table.remove(seq).unwrap();
                            }
                            _ => {}
                        }
                    }
                }
                tx.commit().unwrap();
                durable_tx.send_replace(last);
            }
        });
        Redb {
            sender: Mutex::new(sender),
            next: AtomicU64::new(0),
            durable,
        }
    }
}

impl Backend for Redb {
    fn submit(&self, op: StoreOp) -> u64 {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.sender.lock().unwrap().send((ticket, op)).unwrap();
        ticket
    }
    fn durable(&self) -> watch::Receiver<u64> {
        self.durable.clone()
    }
}

/// Publishes with at most `window` unconfirmed (each message its own hand-over, as from a
/// publisher), and removes each message once confirmed (its consumer's ack).
fn run(store: &dyn Backend, o: &Options, body: &Bytes) -> f64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut durable = store.durable();
    let (vhost, queue): (Arc<str>, Arc<str>) = ("/".into(), "bench".into());
    store.submit(StoreOp::QueueDeclared {
        vhost: vhost.clone(),
        name: queue.clone(),
        auto_delete: false,
        arguments: Default::default(),
    });
    let started = Instant::now();
    let mut unconfirmed = std::collections::VecDeque::new();
    let confirm = |(seq, ticket): (u64, u64), durable: &mut watch::Receiver<u64>| {
        runtime
            .block_on(durable.wait_for(|t| *t >= ticket))
            .unwrap();
        store.submit(StoreOp::Removed {
            vhost: vhost.clone(),
            queue: queue.clone(),
            seq,
        });
    };
    for seq in 0..o.messages {
        if unconfirmed.len() >= o.window {
            confirm(unconfirmed.pop_front().unwrap(), &mut durable);
        }
        let ticket = store.submit(StoreOp::Enqueued {
            vhost: vhost.clone(),
            queue: queue.clone(),
            seq,
            message: message(body),
            flush: true,
        });
        unconfirmed.push_back((seq, ticket));
    }
    while let Some(next) = unconfirmed.pop_front() {
        confirm(next, &mut durable);
    }
    o.messages as f64 / started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let Some(args) = measure::arguments("store_choice") else {
        return;
    };
    let o = options(args);
    let body = Bytes::from(vec![b'x'; 1024]);
    println!(
        "{} messages of 1 KiB, {} unconfirmed at most, median of {} runs",
        o.messages, o.window, o.runs
    );
    let mut log = Vec::new();
    let mut redb = Vec::new();
    for _ in 0..o.runs {
        let dir = scratch("log");
        let (store, _) = Store::open(&dir).unwrap();
        log.push(run(&store, &o, &body));
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
        let dir = scratch("redb");
        redb.push(run(&Redb::open(&dir), &o, &body));
        std::fs::remove_dir_all(&dir).unwrap();
    }
    println!("log   {:>9.0} msg/s", median(log));
    println!("redb  {:>9.0} msg/s", median(redb));
}
