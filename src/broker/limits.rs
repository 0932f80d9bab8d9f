//! What the broker holds, and the alarms that stop publishers when it holds too much.
//!
//! RabbitMQ blocks publishing connections while a resource alarm is on: memory (above the
//! high watermark) or disk (free space below `disk_free_limit`). Here the memory alarm counts
//! what the broker holds for its clients: messages in queues, deliveries not yet acked, bodies
//! still arriving and frames waiting to be written. Each connection's outgoing frames are also
//! bounded on their own: a client that does not read stops being read (RabbitMQ's credit
//! flow), so it cannot make the broker buffer without end.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// RabbitMQ's default `disk_free_limit`: 50 MB.
pub const DEFAULT_DISK_FREE_LIMIT: u64 = 50_000_000;

/// Frames one connection may have waiting for its writer before the broker stops reading that
/// connection until they are written.
pub const OUTGOING_LIMIT: usize = 8 * 1024 * 1024;

/// The resource alarms that are on. Publishers are blocked while any is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Alarms {
    pub memory: bool,
    pub disk: bool,
}

impl Alarms {
    pub fn any(&self) -> bool {
        self.memory || self.disk
    }

    /// The reason connection.blocked gives, in RabbitMQ's words.
    pub fn reason(&self) -> &'static str {
        match (self.memory, self.disk) {
            (true, true) => "low on memory & disk",
            (true, false) => "low on memory",
            _ => "low on disk",
        }
    }
}

/// Bytes a connection holds (a body being received), counted in a broker-wide total until the
/// guard is dropped.
#[derive(Debug)]
pub struct Held {
    total: Arc<AtomicUsize>,
    bytes: usize,
}

impl Held {
    pub fn new(total: Arc<AtomicUsize>) -> Held {
        Held { total, bytes: 0 }
    }

    /// It now holds `bytes`.
    pub fn set(&mut self, bytes: usize) {
        if bytes >= self.bytes {
            self.total.fetch_add(bytes - self.bytes, Ordering::Relaxed);
        } else {
            self.total.fetch_sub(self.bytes - bytes, Ordering::Relaxed);
        }
        self.bytes = bytes;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.total.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// The frames one connection has waiting for its writer.
#[derive(Debug)]
pub struct Outgoing {
    bytes: AtomicUsize,
    /// The broker-wide total the memory alarm reads.
    total: Arc<AtomicUsize>,
    /// Wakes the reader once the writer brought `bytes` back under [`OUTGOING_LIMIT`].
    drained: Notify,
}

impl Outgoing {
    pub fn new(total: Arc<AtomicUsize>) -> Outgoing {
        Outgoing {
            bytes: AtomicUsize::new(0),
            total,
            drained: Notify::new(),
        }
    }

    pub fn queued(&self, bytes: usize) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.total.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn written(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let before = self.bytes.fetch_sub(bytes, Ordering::Relaxed);
        self.total.fetch_sub(bytes, Ordering::Relaxed);
        if before >= OUTGOING_LIMIT && before - bytes < OUTGOING_LIMIT {
            self.drained.notify_one();
        }
    }

    /// Too much is waiting: the connection should not be read until [`Outgoing::drained`].
    pub fn backed_up(&self) -> bool {
        self.bytes.load(Ordering::Relaxed) >= OUTGOING_LIMIT
    }

    /// Resolves once the writer has brought the backlog under the limit (or already has).
    pub async fn drained(&self) {
        self.drained.notified().await
    }
}

/// Bytes an unprivileged writer may still put on the filesystem holding `dir`, as RabbitMQ's
/// disk monitor sees it (`df`'s "Available").
pub fn disk_free(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: statvfs is plain old data, all zeroes is a valid value of it.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `stat` is a valid place for the answer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_bytes_are_counted_until_dropped() {
        let total = Arc::new(AtomicUsize::new(0));
        let mut a = Held::new(total.clone());
        let mut b = Held::new(total.clone());
        a.set(100);
        b.set(50);
        a.set(30);
        assert_eq!(total.load(Ordering::Relaxed), 80);
        drop(a);
        assert_eq!(total.load(Ordering::Relaxed), 50);
        drop(b);
        assert_eq!(total.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_backed_up_connection_is_woken_once_its_frames_are_written() {
        let total = Arc::new(AtomicUsize::new(0));
        let outgoing = Outgoing::new(total.clone());
        outgoing.queued(OUTGOING_LIMIT / 2);
        assert!(!outgoing.backed_up());
        outgoing.queued(OUTGOING_LIMIT / 2);
        assert!(outgoing.backed_up());
        assert_eq!(total.load(Ordering::Relaxed), OUTGOING_LIMIT);
        outgoing.written(1);
        assert!(!outgoing.backed_up());
        tokio::time::timeout(std::time::Duration::from_secs(1), outgoing.drained())
            .await
            .expect("the reader is woken");
    }

    #[test]
    fn the_reason_names_every_resource_low() {
        let both = Alarms {
            memory: true,
            disk: true,
        };
        assert_eq!(both.reason(), "low on memory & disk");
        assert_eq!(
            Alarms {
                disk: true,
                ..Alarms::default()
            }
            .reason(),
            "low on disk"
        );
    }

    #[test]
    fn the_data_directory_has_free_space() {
        let free = disk_free(&std::env::temp_dir()).expect("statvfs");
        assert!(free > 0);
    }
}
