//! The broker's way out to a client: each connection has a [`ClientSink`] the broker sends
//! deliveries and cancels into, and a [`ClientInbox`] its writer takes them from. It counts
//! what waits, for the memory alarm and to skip consumers whose client does not keep up.
//! It may import only the broker's limits and message types.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::{limits, Message};

/// What the broker sends to a client connection.
#[derive(Debug)]
pub enum ToClient {
    Deliver {
        channel: u16,
        consumer_tag: Arc<str>,
        delivery_tag: u64,
        redelivered: bool,
        message: Arc<Message>,
    },
    /// The broker cancelled a consumer (its queue was deleted).
    Cancel {
        channel: u16,
        consumer_tag: Arc<str>,
    },
    /// Frames the wire layer encoded itself (method replies), kept in order with deliveries.
    Raw(bytes::Bytes),
}

/// How many deliveries may wait for a connection's writer before its consumers are skipped.
const SINK_BACKLOG_LIMIT: usize = 4096;

/// The broker's handle on one connection's outgoing side.
#[derive(Clone, Debug)]
pub struct ClientSink {
    sender: mpsc::UnboundedSender<ToClient>,
    backlog: Arc<AtomicUsize>,
    stalled: Arc<AtomicBool>,
    outgoing: Arc<limits::Outgoing>,
}

/// The connection's end of its [`ClientSink`].
pub struct ClientInbox {
    pub receiver: mpsc::UnboundedReceiver<ToClient>,
    backlog: Arc<AtomicUsize>,
    stalled: Arc<AtomicBool>,
    outgoing: Arc<limits::Outgoing>,
}

impl ClientSink {
    /// A sink whose waiting frames count in `held` (see [`Broker::sink`](super::Broker::sink)).
    pub fn new(held: Arc<AtomicUsize>) -> (ClientSink, ClientInbox) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let backlog = Arc::new(AtomicUsize::new(0));
        let stalled = Arc::new(AtomicBool::new(false));
        let outgoing = Arc::new(limits::Outgoing::new(held));
        (
            ClientSink {
                sender,
                backlog: backlog.clone(),
                stalled: stalled.clone(),
                outgoing: outgoing.clone(),
            },
            ClientInbox {
                receiver,
                backlog,
                stalled,
                outgoing,
            },
        )
    }

    /// Queues already-encoded frames behind everything sent so far.
    pub fn send_raw(&self, frames: bytes::Bytes) {
        self.outgoing.queued(frames.len());
        if let Err(unsent) = self.sender.send(ToClient::Raw(frames)) {
            if let ToClient::Raw(frames) = unsent.0 {
                self.outgoing.written(frames.len());
            }
        }
    }

    /// The frames waiting for this connection's writer, as the reader checks them.
    pub fn outgoing(&self) -> &limits::Outgoing {
        &self.outgoing
    }

    pub(super) fn send(&self, message: ToClient) {
        if matches!(message, ToClient::Deliver { .. }) {
            self.backlog.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self.sender.send(message);
    }

    /// True when the writer is too far behind to take more deliveries now.
    pub(super) fn is_stalled(&self) -> bool {
        if self.backlog.load(Ordering::Relaxed) >= SINK_BACKLOG_LIMIT {
            self.stalled.store(true, Ordering::Relaxed);
            true
        } else {
            false
        }
    }
}

impl ClientInbox {
    /// The writer reports deliveries it has written. Returns true when the connection had been
    /// stalled and has room again: the caller then asks the broker to resume its consumers.
    pub fn written(&self, deliveries: usize) -> bool {
        let left = self.backlog.fetch_sub(deliveries, Ordering::Relaxed) - deliveries;
        left < SINK_BACKLOG_LIMIT / 2 && self.stalled.swap(false, Ordering::Relaxed)
    }

    /// The writer reports raw frames it has taken off the queue (written or not).
    pub fn raw_written(&self, bytes: usize) {
        self.outgoing.written(bytes);
    }
}

impl Drop for ClientInbox {
    /// Frames never written no longer count as held.
    fn drop(&mut self) {
        self.receiver.close();
        while let Ok(item) = self.receiver.try_recv() {
            if let ToClient::Raw(frames) = item {
                self.outgoing.written(frames.len());
            }
        }
    }
}
