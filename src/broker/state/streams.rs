//! Streams: appending to a stream's log and handing each consumer what follows its own
//! offset. Reading deletes nothing; an ack only gives the consumer its credit back.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use super::delivery::emit_delivered;
use super::queue_mut;
use super::{State, Unacked};
use crate::broker::journal::StoreOp;
use crate::broker::message::{Message, QueuedMessage};
use crate::broker::stream::{with_offset, StreamSnapshot};
use crate::broker::ToClient;
use crate::events::EventKind;

impl State {
    /// Appends `message` to stream `queue`. A stream keeps every message, persistent or not,
    /// and the store keys a stream's messages by offset (so they come back with the same
    /// offsets); what retention drops leaves the store too.
    pub(super) fn append_to_stream(
        &mut self,
        vhost_name: &str,
        queue: &Arc<str>,
        message: Arc<Message>,
        work: &mut VecDeque<(Arc<str>, Arc<str>)>,
    ) {
        let vhost = self.vhost_key(vhost_name);
        let Some(q) = queue_mut(&mut self.vhosts, vhost_name, queue) else {
            return;
        };
        let Some(log) = q.stream.as_mut() else {
            return;
        };
        let (offset, dropped) = log.append(message.clone(), SystemTime::now(), &q.limits.stream);
        q.stats.published += 1;
        if let Some(journal) = &mut self.journal {
            journal.push(StoreOp::Enqueued {
                vhost: vhost.clone(),
                queue: q.name.clone(),
                seq: offset,
                message,
                flush: false,
            });
            journal.extend(dropped.map(|seq| StoreOp::Removed {
                vhost: vhost.clone(),
                queue: q.name.clone(),
                seq,
            }));
        }
        match &mut self.unwritten {
            Some(unwritten) if self.journal.is_some() => {
                unwritten.appended(&vhost, queue, offset + 1)
            }
            _ => log.mark_written(offset + 1),
        }
        work.push_back((vhost, queue.clone()));
    }

    /// Hands each consumer of stream `queue_name` the messages after its offset while it has
    /// credit (its prefetch less what it has not acked). Each delivery carries its offset in
    /// the `x-stream-offset` header and is never redelivered.
    pub(super) fn dispatch_stream(&mut self, vhost: &Arc<str>, queue_name: &str) {
        let Some(q) = queue_mut(&mut self.vhosts, vhost, queue_name) else {
            return;
        };
        let Some(log) = &q.stream else {
            return;
        };
        let (events, publish_time) = (&self.events, self.publish_time);
        for consumer in &mut q.consumers {
            let Some(ch) = self.channels.get_mut(&consumer.on) else {
                continue;
            };
            let Some(conn) = self.connections.get(&consumer.on.connection) else {
                continue;
            };
            if ch.not_ready.contains(&consumer.tag) {
                continue;
            }
            // Retention may have dropped what a slow consumer had not read yet.
            consumer.offset = consumer.offset.max(log.first_offset());
            while consumer.unacked < u32::from(consumer.prefetch) && !conn.sink.is_stalled() {
                let Some(message) = log.get_readable(consumer.offset) else {
                    break;
                };
                let offset = consumer.offset;
                consumer.offset += 1;
                consumer.unacked += 1;
                ch.delivery_tags += 1;
                let delivery_tag = ch.delivery_tags;
                ch.unacked.insert(
                    delivery_tag,
                    Unacked {
                        queue: q.name.clone(),
                        consumer_tag: Some(consumer.tag.clone()),
                        message: QueuedMessage {
                            seq: offset,
                            message: message.clone(),
                            expires_at: None,
                            redelivered: false,
                            delivery_count: 0,
                            stored: false,
                        },
                        stream_offset: Some(offset),
                    },
                );
                q.stats.delivered += 1;
                conn.sink.send(ToClient::Deliver {
                    channel: consumer.on.channel,
                    consumer_tag: consumer.tag.clone(),
                    delivery_tag,
                    redelivered: false,
                    message: Arc::new(with_offset(message, offset)),
                });
                emit_delivered(events, publish_time, vhost, consumer.on, || {
                    EventKind::Delivered {
                        message_id: message.id,
                        queue: q.name.clone(),
                        consumer_tag: Some(consumer.tag.clone()),
                        delivery_tag,
                        redelivered: false,
                        offset: Some(offset),
                        delivery_count: None,
                    }
                });
            }
        }
    }

    /// Stream `queue` of `vhost` as a log: its offsets, size, segments, retention and where
    /// each consumer reads next. None when there is no such stream.
    pub fn stream_snapshot(&self, vhost: &str, queue: &str) -> Option<StreamSnapshot> {
        let q = self.vhosts.get(vhost)?.queues.get(queue)?;
        let consumers = q
            .consumers
            .iter()
            .map(|c| (c.tag.to_string(), c.offset))
            .collect();
        Some(q.stream.as_ref()?.snapshot(&q.limits.stream, consumers))
    }
}
