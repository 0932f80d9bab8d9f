//! The store: keeps the broker's durable picture in a data directory, so durable exchanges,
//! queues, bindings and persistent messages outlive the process.
//!
//! # Format
//!
//! One append-only log file, `log.N`, of records `[length u32][crc32 u32][payload]` (little
//! endian; the CRC covers the payload), each payload one [`StoreOp`]. Recovery replays the log
//! into an [`Image`] and stops at the first record that is short or fails its CRC: that is the
//! torn tail of a write the process did not finish. The file is cut there, so the next record
//! goes after the last good one. When the log has grown well past what it still describes (acked
//! messages are mostly garbage), the writer compacts: it writes the live image to `log.N+1`
//! beside it, syncs, renames it into place and removes `log.N`. A crash in between leaves one
//! complete log either way.
//!
//! # Group commit
//!
//! One writer thread owns the file. Every connection hands it operations through a channel,
//! tagged with a ticket number; the writer takes everything waiting, writes it in one go, syncs
//! once (`fdatasync`) when anything in it needs it, and then announces the last ticket it holds
//! ([`Store::durable`]). Publishers' confirms wait for their ticket, so a busy broker pays one
//! sync for many publishers, and a confirm never goes out before its message is on disk.
//!
//! # Why a log of our own
//!
//! Chosen by measurement with `benches/store_choice.rs` (2-core VM, ext4 on a virtio disk,
//! medians of 5 runs, three runs of it agreeing within 10 %): 50,000 persistent 1 KiB
//! messages handed to the store one publish at a time, at most 128 unconfirmed (a publisher's
//! confirm window), each removed again once confirmed (its consumer's ack). Both stores sit
//! behind the same group commit (one writer thread, one durable write per group):
//!
//! | store                                                   | messages/s |
//! |---------------------------------------------------------|-----------:|
//! | this log: `write` + one `fdatasync` per group            |    ~260,000 |
//! | redb 4.6: one write transaction (Immediate) per group   |    ~137,000 |
//!
//! With 1,024 unconfirmed the log reached 451,000/s and redb 143,000/s. The log writes each
//! record once, sequentially; redb, a copy-on-write B-tree, rewrites pages and their checksums
//! on every commit. The broker never reads the store while it runs (every message is in
//! memory) and replays it only at start, which is what a log is good at and what an indexed
//! database pays for without use. End to end (`benches/persistent_throughput.rs`) the store
//! costs little: the clients, not the disk, set the pace (BENCHMARKS.md).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Instant;

use tokio::sync::watch;

use super::journal::{Image, StoreOp};

mod record;

use record::{decode, encode_record};

/// The first bytes of every log file, naming the format.
const MAGIC: &[u8; 8] = b"RSCOPE01";
/// A record header: length and CRC.
const HEADER: usize = 8;
/// No record is larger than this (a message body is at most what a frame chain carries; this
/// only guards recovery against a corrupt length).
const MAX_RECORD: usize = 512 * 1024 * 1024;
/// Compact once the log is this big and holds four times what is live.
const COMPACT_AT: u64 = 64 * 1024 * 1024;

enum Request {
    Ops {
        ticket: u64,
        ops: Vec<StoreOp>,
        sync: bool,
    },
    /// Answer once everything sent before is written, with the image read back from disk.
    Reload(mpsc::Sender<io::Result<Image>>),
}

/// The broker's handle on the writer thread.
pub struct Store {
    dir: PathBuf,
    sender: Mutex<mpsc::Sender<Request>>,
    next_ticket: AtomicU64,
    durable: watch::Receiver<u64>,
    failing: watch::Receiver<bool>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

impl Store {
    /// Opens (creating) the data directory, recovers what it holds and starts the writer.
    pub fn open(dir: &Path) -> io::Result<(Store, Image)> {
        fs::create_dir_all(dir)?;
        let (log, image) = Log::open(dir)?;
        let (sender, receiver) = mpsc::channel();
        let (durable_tx, durable) = watch::channel(0);
        // A new log on a full disk: the broker starts, its store failing until space returns,
        // which turns the disk alarm on (the alarm's line is what says so).
        let (failing_tx, failing) = watch::channel(!log.written());
        let writer = Writer {
            log,
            image: image.clone(),
            durable: durable_tx,
            failing: failing_tx,
        };
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || writer.run(receiver))?;
        let store = Store {
            dir: dir.to_path_buf(),
            sender: Mutex::new(sender),
            next_ticket: AtomicU64::new(0),
            durable,
            failing,
        };
        Ok((store, image))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Hands operations to the writer; returns their ticket. Callers hold the broker's lock, so
    /// tickets follow the order the broker made the changes in.
    pub fn submit(&self, ops: Vec<StoreOp>) -> u64 {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed) + 1;
        let sync = ops.iter().any(StoreOp::needs_sync);
        let request = Request::Ops { ticket, ops, sync };
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        if sender.send(request).is_err() {
            tracing::error!("the store's writer has stopped; changes are no longer kept");
        }
        ticket
    }

    /// The last ticket on disk. A confirm waits until it reaches the publish's ticket.
    pub fn durable(&self) -> watch::Receiver<u64> {
        self.durable.clone()
    }

    /// True while the writer cannot write (a full disk, say): what it was handed waits in
    /// memory, unconfirmed, and it tries again every [`RETRY`].
    pub fn failing(&self) -> watch::Receiver<bool> {
        self.failing.clone()
    }

    /// Waits until everything submitted is written, then reads the log back as a process
    /// restart would.
    pub fn reload(&self) -> io::Result<Image> {
        let (reply, answer) = mpsc::channel();
        self.sender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Request::Reload(reply))
            .map_err(|_| io::Error::other("the store's writer has stopped"))?;
        answer
            .recv()
            .map_err(|_| io::Error::other("the store's writer has stopped"))?
    }
}

struct Writer {
    log: Log,
    /// What the log describes now: decides which operations are worth writing, and is what
    /// compaction writes.
    image: Image,
    durable: watch::Sender<u64>,
    failing: watch::Sender<bool>,
}

/// While several requests come per write (publishers with many confirms outstanding), the
/// writer lets this much time pass between writes, so one write, one sync, one batch of
/// confirms and one batch of deliveries carry many messages: the clients then read far fewer,
/// larger segments (BENCHMARKS.md, section 7). One request per write (a publisher waiting for
/// each confirm) is written at once.
pub const GATHER: std::time::Duration = std::time::Duration::from_millis(1);

/// How often a failing writer tries again when nothing new arrives.
pub const RETRY: std::time::Duration = std::time::Duration::from_secs(1);

impl Writer {
    fn run(mut self, requests: mpsc::Receiver<Request>) {
        // Records not yet on disk, and whether they need a sync: kept until a write succeeds.
        let mut buf = Vec::with_capacity(1024 * 1024);
        let mut sync = false;
        // The last ticket in `buf`: announced once it is written.
        let mut last = None;
        let mut compact_failed = false;
        // When the last write took several requests, and when it started.
        let mut last_batch = 0;
        let mut last_write = Instant::now();
        loop {
            let failing = *self.failing.borrow();
            let first = if failing {
                match requests.recv_timeout(RETRY) {
                    Ok(request) => Some(request),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            } else {
                match requests.recv() {
                    Ok(request) => Some(request),
                    Err(_) => return,
                }
            };
            if last_batch > 1 {
                if let Some(wait) = GATHER.checked_sub(last_write.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            let mut batch: Vec<Request> = first.into_iter().collect();
            // Group commit: everything that arrived while the last sync ran goes in this one.
            batch.extend(requests.try_iter().take(16 * 1024));
            let mut reloads = Vec::new();
            last_batch = batch.len();
            for request in batch {
                match request {
                    Request::Ops {
                        ticket,
                        ops,
                        sync: s,
                    } => {
                        for op in &ops {
                            if self.image.apply(op) {
                                encode_record(&mut buf, op);
                            }
                        }
                        sync |= s;
                        last = Some(ticket);
                    }
                    Request::Reload(reply) => reloads.push(reply),
                }
            }
            last_write = Instant::now();
            if let Err(error) = self.log.append(&buf, sync) {
                // Nothing unwritten is confirmed; it stays here and is tried again. Said once.
                if !failing {
                    tracing::error!(%error, "the store cannot write: confirms wait until it can");
                    self.failing.send_replace(true);
                }
                for reply in reloads {
                    let _ = reply.send(Err(io::Error::other("the store cannot write")));
                }
                continue;
            }
            if failing {
                tracing::info!("the store writes again: the confirms that waited go out");
                self.failing.send_replace(false);
            }
            buf.clear();
            if buf.capacity() > 16 * 1024 * 1024 {
                buf = Vec::with_capacity(1024 * 1024);
            }
            sync = false;
            if let Some(ticket) = last.take() {
                self.durable.send_replace(ticket);
            }
            for reply in reloads {
                let image = Log::open(&self.log.dir).map(|(log, image)| {
                    self.log = log;
                    self.image = image.clone();
                    image
                });
                let _ = reply.send(image);
            }
            if self.log.len > COMPACT_AT && self.log.len > 4 * self.live_bytes() {
                let tmp = self
                    .log
                    .dir
                    .join(format!("log.{}.tmp", self.log.generation + 1));
                match self.compact() {
                    Ok(()) => compact_failed = false,
                    Err(error) => {
                        // Half a new log only takes room; said once until compacting works.
                        let _ = fs::remove_file(tmp);
                        if !compact_failed {
                            tracing::warn!(%error, "compacting the store failed; the log keeps growing");
                        }
                        compact_failed = true;
                    }
                }
            }
        }
    }

    fn live_bytes(&self) -> u64 {
        self.image.message_bytes() + 64 * 1024
    }

    /// Writes the live image as a new log and drops the old one.
    fn compact(&mut self) -> io::Result<()> {
        let next = self.log.generation + 1;
        let tmp = self.log.dir.join(format!("log.{next}.tmp"));
        let mut file = File::create(&tmp)?;
        let mut buf = Vec::with_capacity(1024 * 1024);
        buf.extend_from_slice(MAGIC);
        for op in self.image.ops() {
            encode_record(&mut buf, &op);
            if buf.len() > 1024 * 1024 {
                file.write_all(&buf)?;
                buf.clear();
            }
        }
        file.write_all(&buf)?;
        file.sync_all()?;
        let len = file.metadata()?.len();
        let path = log_path(&self.log.dir, next);
        fs::rename(&tmp, &path)?;
        sync_dir(&self.log.dir)?;
        let old = log_path(&self.log.dir, self.log.generation);
        self.log = Log {
            dir: self.log.dir.clone(),
            generation: next,
            file: OpenOptions::new().append(true).open(&path)?,
            len,
            torn: false,
        };
        fs::remove_file(old)?;
        Ok(())
    }
}

/// The current log file.
struct Log {
    dir: PathBuf,
    generation: u64,
    file: File,
    /// The length of what was written completely; a failed append is cut back to it.
    len: u64,
    /// A write failed, and may have left part of a record behind `len`.
    torn: bool,
}

fn log_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("log.{generation}"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Log {
    /// Finds the newest log, replays it, cuts a torn tail off, and opens it for appending.
    fn open(dir: &Path) -> io::Result<(Log, Image)> {
        let mut generations = Vec::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name.strip_prefix("log.") {
                if let Ok(n) = n.parse::<u64>() {
                    generations.push(n);
                } else if n.ends_with(".tmp") {
                    // A compaction the process did not finish; the old log is still whole.
                    fs::remove_file(dir.join(&*name))?;
                }
            }
        }
        generations.sort_unstable();
        let Some(&generation) = generations.last() else {
            return Ok((Log::fresh(dir, 1)?, Image::default()));
        };
        // Older generations are left over from a compaction that renamed but did not delete.
        for old in &generations[..generations.len() - 1] {
            fs::remove_file(log_path(dir, *old))?;
        }
        let path = log_path(dir, generation);
        if fs::metadata(&path)?.len() == 0 {
            // A start on a full disk made the file but could not write its header.
            return Ok((Log::fresh(dir, generation)?, Image::default()));
        }
        let (image, good) = replay(&path)?;
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let len = file.metadata()?.len();
        if good < len {
            tracing::warn!(
                path = %path.display(),
                dropped_bytes = len - good,
                "the store's log ends in a torn or corrupt record; dropped it"
            );
            file.set_len(good)?;
            file.sync_all()?;
        }
        drop(file);
        let file = OpenOptions::new().append(true).open(&path)?;
        let log = Log {
            dir: dir.to_path_buf(),
            generation,
            file,
            len: good,
            torn: false,
        };
        Ok((log, image))
    }

    /// A new, empty log. Its header is written now if the disk has room, else by the first
    /// append that succeeds ([`Log::written`] says which).
    fn fresh(dir: &Path, generation: u64) -> io::Result<Log> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path(dir, generation))?;
        file.set_len(0)?;
        let mut log = Log {
            dir: dir.to_path_buf(),
            generation,
            file,
            len: 0,
            torn: false,
        };
        // On a full disk this fails; the store then starts failing and tries again.
        let _ = log.append(&[], true);
        Ok(log)
    }

    /// Whether the log's header is on disk: a log made on a full disk has none yet.
    fn written(&self) -> bool {
        self.len > 0
    }

    /// Appends `bytes` and syncs when asked. When that fails, the next append first cuts the
    /// file back to what was whole, so a retry writes the same records again after it (a failed
    /// sync may have lost pages the kernel had, so they are written again too).
    fn append(&mut self, bytes: &[u8], sync: bool) -> io::Result<()> {
        if self.torn {
            self.file.set_len(self.len)?;
            self.torn = false;
        }
        let header = !self.written();
        let written = (|| {
            if header {
                self.file.write_all(MAGIC)?;
            }
            if !bytes.is_empty() {
                self.file.write_all(bytes)?;
            }
            if header {
                self.file.sync_all()?;
                sync_dir(&self.dir)?;
            } else if sync {
                self.file.sync_data()?;
            }
            Ok(())
        })();
        match written {
            Ok(()) if header => self.len += (MAGIC.len() + bytes.len()) as u64,
            Ok(()) => self.len += bytes.len() as u64,
            Err(_) => self.torn = true,
        }
        written
    }
}

/// Reads a log into an image; returns it and the length of the good part of the file.
pub fn replay(path: &Path) -> io::Result<(Image, u64)> {
    let mut file = File::open(path)?;
    let mut magic = [0u8; 8];
    if file.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a rabbitscope store log", path.display()),
        ));
    }
    file.seek(SeekFrom::Start(MAGIC.len() as u64))?;
    let mut reader = BufReader::with_capacity(1024 * 1024, file);
    let mut image = Image::default();
    let mut good = MAGIC.len() as u64;
    let mut payload = Vec::new();
    loop {
        let mut header = [0u8; HEADER];
        if read_full(&mut reader, &mut header)? < HEADER {
            break;
        }
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if len > MAX_RECORD {
            break;
        }
        payload.resize(len, 0);
        if read_full(&mut reader, &mut payload)? < len || crc32fast::hash(&payload) != crc {
            break;
        }
        let Some(op) = decode(&payload) else {
            break;
        };
        image.apply(&op);
        good += (HEADER + len) as u64;
    }
    Ok((image, good))
}

/// Like `read_exact`, but says how much it got at the end of the file instead of failing.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::message::Message;
    use amq_protocol::protocol::BasicProperties;
    use amq_protocol::types::FieldTable;
    use bytes::Bytes;
    use std::sync::Arc;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "rabbitscope-store-{name}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn enqueued(seq: u64, body: &str) -> StoreOp {
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("text/plain".into());
        StoreOp::Enqueued {
            vhost: "/".into(),
            queue: "orders".into(),
            seq,
            message: Arc::new(Message {
                id: 0,
                exchange: "".into(),
                routing_key: "orders".into(),
                properties: Arc::new(properties),
                body: Bytes::copy_from_slice(body.as_bytes()),
            }),
            flush: true,
        }
    }

    #[test]
    fn a_log_whose_header_was_never_written_opens_empty_and_is_written_later() {
        let dir = temp_dir("headerless");
        // What a start on a full disk leaves: the file, without a byte in it.
        File::create(log_path(&dir, 1)).unwrap();
        let (store, image) = Store::open(&dir).unwrap();
        assert!(image.vhosts.is_empty());
        assert!(!*store.failing().borrow(), "the header is written now");
        store.submit(vec![
            StoreOp::QueueDeclared {
                vhost: "/".into(),
                name: "orders".into(),
                auto_delete: false,
                arguments: FieldTable::default(),
            },
            enqueued(1, "one"),
        ]);
        store.reload().unwrap();
        let (image, _) = replay(&log_path(&dir, 1)).unwrap();
        assert_eq!(bodies(&image), ["one"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A store with a durable queue holding three messages, written and closed.
    fn three_messages(dir: &Path) {
        let (store, _) = Store::open(dir).unwrap();
        store.submit(vec![StoreOp::QueueDeclared {
            vhost: "/".into(),
            name: "orders".into(),
            auto_delete: false,
            arguments: FieldTable::default(),
        }]);
        store.submit(vec![enqueued(1, "one"), enqueued(2, "two")]);
        store.submit(vec![enqueued(3, "three")]);
        store.reload().unwrap();
    }

    fn bodies(image: &Image) -> Vec<String> {
        image.vhosts["/"].queues["orders"]
            .messages
            .values()
            .map(|m| String::from_utf8(m.message.body.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn messages_come_back_in_order_with_their_properties() {
        let dir = temp_dir("order");
        three_messages(&dir);
        let (_, image) = Store::open(&dir).unwrap();
        assert_eq!(bodies(&image), ["one", "two", "three"]);
        let first = &image.vhosts["/"].queues["orders"].messages[&1].message;
        assert_eq!(first.properties.delivery_mode(), &Some(2));
        assert_eq!(
            first.properties.content_type().as_ref().map(|c| c.as_str()),
            Some("text/plain")
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_torn_last_record_is_dropped_and_the_log_goes_on_after_the_good_part() {
        let dir = temp_dir("torn");
        three_messages(&dir);
        let path = log_path(&dir, 1);
        let len = fs::metadata(&path).unwrap().len();
        // The process died in the middle of writing "three".
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (store, image) = Store::open(&dir).unwrap();
        assert_eq!(bodies(&image), ["one", "two"]);
        store.submit(vec![enqueued(4, "four")]);
        store.reload().unwrap();
        drop(store);
        let (_, image) = Store::open(&dir).unwrap();
        assert_eq!(bodies(&image), ["one", "two", "four"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_corrupt_last_record_fails_its_crc_and_is_dropped() {
        let dir = temp_dir("corrupt");
        three_messages(&dir);
        let path = log_path(&dir, 1);
        let mut bytes = fs::read(&path).unwrap();
        let at = bytes.len() - 2;
        bytes[at] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let (_, image) = Store::open(&dir).unwrap();
        assert_eq!(bodies(&image), ["one", "two"]);
        let kept = fs::metadata(&path).unwrap().len();
        assert!(kept < bytes.len() as u64, "the bad record is cut off");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn removed_and_deleted_things_stay_gone_and_compaction_keeps_the_rest_with_counts() {
        let dir = temp_dir("compact");
        three_messages(&dir);
        let (store, _) = Store::open(&dir).unwrap();
        store.submit(vec![StoreOp::Removed {
            vhost: "/".into(),
            queue: "orders".into(),
            seq: 2,
        }]);
        store.submit(vec![StoreOp::Delivered {
            vhost: "/".into(),
            queue: "orders".into(),
            seq: 3,
        }]);
        for delivery_count in [1, 2] {
            store.submit(vec![StoreOp::Returned {
                vhost: "/".into(),
                queue: "orders".into(),
                seq: 3,
                delivery_count,
            }]);
        }
        store.reload().unwrap();
        drop(store);
        let (log, image) = Log::open(&dir).unwrap();
        let mut writer = Writer {
            log,
            image,
            durable: watch::channel(0).0,
            failing: watch::channel(false).0,
        };
        writer.compact().unwrap();
        assert!(!log_path(&dir, 1).exists() && log_path(&dir, 2).exists());
        let (_, image) = Store::open(&dir).unwrap();
        assert_eq!(bodies(&image), ["one", "three"]);
        let messages = &image.vhosts["/"].queues["orders"].messages;
        assert!(!messages[&1].redelivered && messages[&3].redelivered);
        assert_eq!(messages[&1].delivery_count, 0);
        assert_eq!(messages[&3].delivery_count, 2, "the last count returned");
        assert_eq!(
            image.message_bytes(),
            3 + 5 + 2 * 64,
            "what compaction would keep"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_bytes_compaction_would_keep_follow_every_operation() {
        let mut image = Image::default();
        image.apply(&StoreOp::QueueDeclared {
            vhost: "/".into(),
            name: "orders".into(),
            auto_delete: false,
            arguments: FieldTable::default(),
        });
        for (seq, body) in [(1, "one"), (2, "two"), (2, "twenty"), (3, "three")] {
            image.apply(&enqueued(seq, body));
        }
        assert_eq!(
            image.message_bytes(),
            3 + 6 + 5 + 3 * 64,
            "a seq written twice counts once"
        );
        image.apply(&StoreOp::Removed {
            vhost: "/".into(),
            queue: "orders".into(),
            seq: 1,
        });
        assert_eq!(image.message_bytes(), 6 + 5 + 2 * 64);
        image.apply(&StoreOp::QueueDeleted {
            vhost: "/".into(),
            name: "orders".into(),
        });
        assert_eq!(
            image.message_bytes(),
            0,
            "a deleted queue's messages go with it"
        );
    }
}
