//! The writing half of a connection: one task that turns what the broker and the reader queue
//! up into frames, writes them in large batches, and sends heartbeats when otherwise idle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use amq_protocol::protocol::{basic, AMQPClass};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::codec;
use super::connection::Writer;
use crate::broker::{Broker, ClientInbox, ToClient};
use crate::events::ConnectionId;

/// Write once this much is batched, rather than draining the queue further first.
const BATCH_BYTES: usize = 256 * 1024;

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
        let mut buf: Vec<u8> = Vec::with_capacity(BATCH_BYTES * 2);
        let mut last_write = Instant::now();
        loop {
            let next = match beat {
                Some(beat) => match tokio::time::timeout(beat, inbox.receiver.recv()).await {
                    Ok(next) => next,
                    Err(_) => {
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
            let mut deliveries = encode(&mut buf, first, frame_max);
            while buf.len() < BATCH_BYTES {
                match inbox.receiver.try_recv() {
                    Ok(item) => deliveries += encode(&mut buf, item, frame_max),
                    Err(_) => break,
                }
            }
            if write.write_all(&buf).await.is_err() {
                break;
            }
            buf.clear();
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

/// Encodes one item; returns 1 for a delivery (they count against the backlog), else 0.
fn encode(buf: &mut Vec<u8>, item: ToClient, frame_max: usize) -> usize {
    match item {
        ToClient::Raw(frames) => {
            buf.extend_from_slice(&frames);
            0
        }
        ToClient::Deliver {
            channel,
            consumer_tag,
            delivery_tag,
            redelivered,
            message,
        } => {
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
            codec::write_content(buf, channel, &message.properties, &message.body, frame_max);
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
