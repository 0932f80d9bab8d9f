//! The writing half of a connection: one task that turns what the broker and the reader queue
//! up into frames, writes them in large batches, and sends heartbeats when otherwise idle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use amq_protocol::protocol::{basic, AMQPClass, BasicProperties};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::codec;
use super::connection::Writer;
use crate::broker::{Broker, ClientInbox, ToClient};
use crate::events::ConnectionId;

/// Write once this much is batched, rather than draining the queue further first.
const BATCH_BYTES: usize = 256 * 1024;
/// A write buffer bigger than this is given back once the connection is idle.
const IDLE_BUFFER: usize = 16 * 1024;

pub fn spawn(
    mut write: Writer,
    mut inbox: ClientInbox,
    broker: Arc<Broker>,
    connection: ConnectionId,
    frame_max: usize,
    heartbeat: u16,
) -> (JoinHandle<()>, oneshot::Receiver<()>) {
    let (done_tx, done_rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let beat = (heartbeat > 0).then(|| Duration::from_secs(heartbeat as u64) / 2);
        // Grows with what is written; an idle connection gives it back at its next heartbeat.
        let mut buf: Vec<u8> = Vec::new();
        let mut properties = PropertiesCache::default();
        let mut last_write = Instant::now();
        loop {
            let next = match beat {
                Some(beat) => match tokio::time::timeout(beat, inbox.receiver.recv()).await {
                    Ok(next) => next,
                    Err(_) => {
                        if buf.capacity() > IDLE_BUFFER {
                            buf = Vec::new();
                        }
                        if last_write.elapsed() >= beat {
                            codec::write_heartbeat(&mut buf);
                            if write.write_all(&buf).await.is_err() {
                                break;
                            }
                            buf.clear();
                            last_write = Instant::now();
                        }
                        continue;
                    }
                },
                None => inbox.receiver.recv().await,
            };
            let Some(first) = next else {
                break;
            };
            let mut raw = 0;
            let mut deliveries = encode(&mut buf, first, frame_max, &mut properties, &mut raw);
            while buf.len() < BATCH_BYTES {
                match inbox.receiver.try_recv() {
                    Ok(item) => {
                        deliveries += encode(&mut buf, item, frame_max, &mut properties, &mut raw)
                    }
                    Err(_) => break,
                }
            }
            // Off the queue and into `buf` (bounded by a batch): no longer counted as waiting,
            // even if this task is stopped in the middle of the write.
            inbox.raw_written(raw);
            if write.write_all(&buf).await.is_err() {
                break;
            }
            buf.clear();
            // A huge message grew it: give that back rather than keep it for small ones.
            if buf.capacity() > 4 * BATCH_BYTES {
                buf = Vec::new();
            }
            last_write = Instant::now();
            if deliveries > 0 && inbox.written(deliveries) {
                broker.resume_connection(connection);
            }
        }
        let _ = write.shutdown().await;
        let _ = done_tx.send(());
    });
    (task, done_rx)
}

/// The encoded properties of the last delivery. Messages published in a row on one channel
/// share one `Arc` of properties (see the broker's state), so a consumer's deliveries mostly
/// reuse these bytes instead of encoding them again.
#[derive(Default)]
struct PropertiesCache {
    properties: Option<Arc<BasicProperties>>,
    encoded: Vec<u8>,
}

impl PropertiesCache {
    fn encoded(&mut self, properties: &Arc<BasicProperties>) -> &[u8] {
        let same = self
            .properties
            .as_ref()
            .is_some_and(|last| Arc::ptr_eq(last, properties));
        if !same {
            let mut into = std::mem::take(&mut self.encoded);
            into.clear();
            self.encoded = codec::encode_properties(properties, into);
            self.properties = Some(properties.clone());
        }
        &self.encoded
    }
}

/// Encodes one item; returns 1 for a delivery (they count against the backlog), else 0.
/// Adds the size of raw frames to `raw` (they count against the connection's outgoing limit).
fn encode(
    buf: &mut Vec<u8>,
    item: ToClient,
    frame_max: usize,
    properties: &mut PropertiesCache,
    raw: &mut usize,
) -> usize {
    match item {
        ToClient::Raw(frames) => {
            buf.extend_from_slice(&frames);
            *raw += frames.len();
            0
        }
        ToClient::Deliver {
            channel,
            consumer_tag,
            delivery_tag,
            redelivered,
            message,
        } => {
            let written = codec::write_deliver(
                buf,
                channel,
                &consumer_tag,
                delivery_tag,
                redelivered,
                &message.exchange,
                &message.routing_key,
            );
            if !written {
                // A name too long for a short string: amq-protocol's writer decides.
                codec::write_method(
                    buf,
                    channel,
                    AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                        consumer_tag: (*consumer_tag).into(),
                        delivery_tag,
                        redelivered,
                        exchange: (*message.exchange).into(),
                        routing_key: (*message.routing_key).into(),
                    })),
                );
            }
            let props = properties.encoded(&message.properties);
            codec::write_encoded_content(buf, channel, props, &message.body, frame_max);
            1
        }
        ToClient::Cancel {
            channel,
            consumer_tag,
        } => {
            codec::write_method(
                buf,
                channel,
                AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                    consumer_tag: (*consumer_tag).into(),
                    nowait: true,
                })),
            );
            0
        }
    }
}
