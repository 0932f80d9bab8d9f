//! Handing messages to clients and hearing back: dispatch to consumers, basic.get, and
//! ack / nack / reject / recover.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::queue_mut;
use super::queues::stream_refuses;
use super::{ChannelRef, State, Unacked};
use crate::broker::error::{AmqpError, AmqpResult};
use crate::broker::journal::StoreOp;
use crate::broker::message::{Message, QueuedMessage};
use crate::broker::permissions::{Access, Resource};
use crate::broker::queue::{GiveBack, QueueType};
use crate::broker::ToClient;
use crate::events::{DeadLetterReason, Event, EventBus, EventKind};

/// basic.get-ok.
#[derive(Clone, Debug)]
pub struct GetOk {
    pub delivery_tag: u64,
    pub redelivered: bool,
    pub message_count: u32,
    pub message: Arc<Message>,
}

/// How a client settles a delivery: basic.ack, basic.nack or basic.reject.
pub enum Settle {
    Ack,
    Nack { requeue: bool },
    Reject { requeue: bool },
}

impl State {
    /// Hands ready messages to consumers round-robin while they have room. Returns messages
    /// found expired at the head on the way (at most `expire_limit`), and whether it stopped
    /// at that limit.
    pub(super) fn dispatch(
        &mut self,
        vhost: &Arc<str>,
        queue_name: &str,
        expire_limit: usize,
    ) -> (Vec<QueuedMessage>, bool) {
        let mut expired = Vec::new();
        let vhost_name: &str = vhost;
        let is_stream = self
            .vhosts
            .get(vhost_name)
            .and_then(|v| v.queues.get(queue_name))
            .is_some_and(|q| q.stream.is_some());
        if is_stream {
            self.dispatch_stream(vhost, queue_name);
            return (expired, false);
        }
        let waits_for_store = self.unwritten.is_some();
        let Some(q) = queue_mut(&mut self.vhosts, vhost_name, queue_name) else {
            return (expired, false);
        };
        // Read the clock only when the head can expire at all.
        let mut now = None;
        let events = &self.events;
        let publish_time = self.publish_time;
        loop {
            if q.peek().is_some_and(|m| m.expires_at.is_some()) {
                let now = *now.get_or_insert_with(Instant::now);
                if expired.len() >= expire_limit && q.next_expiry().is_some_and(|at| at <= now) {
                    return (expired, true);
                }
                if let Some(message) = q.take_expired_head(now) {
                    expired.push(message);
                    continue;
                }
            }
            if q.ready() == 0 || q.consumers.is_empty() {
                break;
            }
            // A quorum queue delivers what the store has written (its log has committed).
            if waits_for_store
                && q.limits.queue_type == QueueType::Quorum
                && q.peek()
                    .is_some_and(|m| m.stored && m.seq >= q.written_below)
            {
                break;
            }
            let n = q.consumers.len();
            let mut chosen = None;
            for k in 0..n {
                let i = (q.next_consumer + k) % n;
                let c = &q.consumers[i];
                if c.prefetch > 0 && c.unacked >= c.prefetch as u32 {
                    continue;
                }
                let Some(ch) = self.channels.get(&c.on) else {
                    continue;
                };
                if ch.not_ready.contains(&c.tag) {
                    continue;
                }
                if !c.no_ack
                    && ch.prefetch_channel > 0
                    && ch.unacked.len() >= ch.prefetch_channel as usize
                {
                    continue;
                }
                let Some(conn) = self.connections.get(&c.on.connection) else {
                    continue;
                };
                if conn.sink.is_stalled() {
                    continue;
                }
                // Consumer priorities: the first ready consumer in round-robin order among
                // those with the highest x-priority.
                if chosen.is_none_or(|best: usize| c.priority > q.consumers[best].priority) {
                    chosen = Some(i);
                }
            }
            let Some(i) = chosen else {
                break;
            };
            q.next_consumer = (i + 1) % n;
            let message = q.pop_front().expect("checked ready");
            let payload = q.outgoing(&message);
            let delivery_count = q.delivery_count(&message);
            let consumer = &mut q.consumers[i];
            let ch = self.channels.get_mut(&consumer.on).expect("checked");
            ch.delivery_tags += 1;
            let delivery_tag = ch.delivery_tags;
            let redelivered = message.redelivered;
            let message_id = message.message.id;
            if let (true, Some(journal)) = (message.stored, &mut self.journal) {
                let (vhost, queue, seq) = (vhost.clone(), q.name.clone(), message.seq);
                if consumer.no_ack {
                    journal.push(StoreOp::Removed { vhost, queue, seq });
                } else if !message.redelivered {
                    journal.push(StoreOp::Delivered { vhost, queue, seq });
                }
            }
            if !consumer.no_ack {
                consumer.unacked += 1;
                q.unacked += 1;
                self.unacked_bytes += message.message.body.len() + crate::broker::MESSAGE_OVERHEAD;
                ch.unacked.insert(
                    delivery_tag,
                    Unacked {
                        queue: q.name.clone(),
                        consumer_tag: Some(consumer.tag.clone()),
                        message,
                        stream_offset: None,
                    },
                );
            }
            q.stats.delivered += 1;
            let conn = &self.connections[&consumer.on.connection];
            conn.sink.send(ToClient::Deliver {
                channel: consumer.on.channel,
                consumer_tag: consumer.tag.clone(),
                delivery_tag,
                redelivered,
                message: payload,
            });
            emit_delivered(events, publish_time, vhost, consumer.on, || {
                EventKind::Delivered {
                    message_id,
                    queue: q.name.clone(),
                    consumer_tag: Some(consumer.tag.clone()),
                    delivery_tag,
                    redelivered,
                    offset: None,
                    delivery_count,
                }
            });
        }
        (expired, false)
    }

    /// basic.get: takes the head of the queue (expired heads leave first, dead-lettered or
    /// dropped); None when the queue is empty.
    pub fn basic_get(
        &mut self,
        on: ChannelRef,
        queue: &str,
        no_ack: bool,
    ) -> AmqpResult<Option<GetOk>> {
        let vhost_name = self.vhost_of(on.connection)?;
        let name = self.queue_name(on, queue)?;
        self.permit(on.connection, Access::Read, Resource::Queue(&name))?;
        let q = self.owned_queue(&vhost_name, &name, on.connection)?;
        if q.stream.is_some() {
            return Err(stream_refuses("basic.get", &name, &vhost_name));
        }
        q.last_used = Instant::now();
        let now = Instant::now();
        let mut expired = Vec::new();
        while let Some(m) = q.take_expired_head(now) {
            expired.push(m);
        }
        let taken = q.pop_front();
        let remaining = q.ready() as u32;
        let queue_name = q.name.clone();
        let payload = taken.as_ref().map(|m| q.outgoing(m));
        let delivery_count = taken.as_ref().and_then(|m| q.delivery_count(m));
        if taken.is_some() {
            q.stats.delivered += 1;
            if !no_ack {
                q.unacked += 1;
            }
        }
        for m in expired {
            self.doom(&vhost_name, &name, m, DeadLetterReason::Expired);
        }
        self.run(VecDeque::new());
        let (Some(message), Some(payload)) = (taken, payload) else {
            return Ok(None);
        };
        let redelivered = message.redelivered;
        if let (true, Some(journal)) = (message.stored, &mut self.journal) {
            let (vhost, queue, seq) = (vhost_name.clone(), queue_name.clone(), message.seq);
            if no_ack {
                journal.push(StoreOp::Removed { vhost, queue, seq });
            } else if !redelivered {
                journal.push(StoreOp::Delivered { vhost, queue, seq });
            }
        }
        let ch = self.channel(on)?;
        ch.delivery_tags += 1;
        let delivery_tag = ch.delivery_tags;
        if !no_ack {
            self.unacked_bytes += message.message.body.len() + crate::broker::MESSAGE_OVERHEAD;
            let ch = self.channel(on)?;
            ch.unacked.insert(
                delivery_tag,
                Unacked {
                    queue: queue_name.clone(),
                    consumer_tag: None,
                    message,
                    stream_offset: None,
                },
            );
        }
        self.emit_on(&vhost_name, on, || EventKind::Delivered {
            message_id: payload.id,
            queue: name.into(),
            consumer_tag: None,
            delivery_tag,
            redelivered,
            offset: None,
            delivery_count,
        });
        Ok(Some(GetOk {
            delivery_tag,
            redelivered,
            message_count: remaining,
            message: payload,
        }))
    }

    /// ack / nack / reject of one tag or (multiple) every tag up to it; tag 0 with multiple
    /// means all.
    pub fn settle(
        &mut self,
        on: ChannelRef,
        delivery_tag: u64,
        multiple: bool,
        how: Settle,
    ) -> AmqpResult<()> {
        let vhost_name = self.vhost_of(on.connection)?;
        let ch = self.channel(on)?;
        let unknown =
            || AmqpError::precondition_failed(format!("unknown delivery tag {delivery_tag}"));
        let taken: Vec<(u64, Unacked)> = if multiple {
            if delivery_tag != 0
                && !ch.unacked.contains_key(&delivery_tag)
                && ch.unacked.range(..=delivery_tag).next().is_none()
            {
                return Err(unknown());
            }
            let keys: Vec<u64> = if delivery_tag == 0 {
                ch.unacked.keys().copied().collect()
            } else {
                ch.unacked.range(..=delivery_tag).map(|(k, _)| *k).collect()
            };
            keys.into_iter()
                .map(|k| (k, ch.unacked.remove(&k).expect("listed")))
                .collect()
        } else {
            let u = ch.unacked.remove(&delivery_tag).ok_or_else(unknown)?;
            vec![(delivery_tag, u)]
        };
        if !matches!(how, Settle::Ack) {
            let from_stream = taken.iter().find(|(_, u)| u.stream_offset.is_some());
            if let Some(queue) = from_stream.map(|(_, u)| u.queue.clone()) {
                // The connection closes: what the channel had goes back as on any close.
                self.channel(on)?.unacked.extend(taken);
                let what = "basic.nack and basic.reject";
                return Err(stream_refuses(what, &queue, &vhost_name));
            }
        }
        self.unacked_bytes -= taken.iter().map(|(_, u)| u.bytes()).sum::<usize>();
        let mut requeue = Vec::new();
        let mut work = VecDeque::new();
        for (tag, u) in taken {
            let id = u.message.message.id;
            let queue = u.queue.clone();
            let (requeue_it, kind) = match how {
                Settle::Ack => (
                    false,
                    EventKind::Acked {
                        message_id: id,
                        queue: queue.clone(),
                        delivery_tag: tag,
                    },
                ),
                Settle::Nack { requeue } => (
                    requeue,
                    EventKind::Nacked {
                        message_id: id,
                        queue: queue.clone(),
                        delivery_tag: tag,
                        requeue,
                    },
                ),
                Settle::Reject { requeue } => (
                    requeue,
                    EventKind::Rejected {
                        message_id: id,
                        queue: queue.clone(),
                        delivery_tag: tag,
                        requeue,
                    },
                ),
            };
            self.emit_on(&vhost_name, on, || kind);
            if requeue_it {
                requeue.push(u);
                continue;
            }
            if let Some(q) = queue_mut(&mut self.vhosts, &vhost_name, &u.queue) {
                q.unacked = q.unacked.saturating_sub(1);
                q.stats.acked += matches!(how, Settle::Ack) as u64;
                if let Some(tag) = &u.consumer_tag {
                    if let Some(c) = q.consumer_mut(tag, on) {
                        c.unacked = c.unacked.saturating_sub(1);
                    }
                }
                work.push_back((vhost_name.clone(), u.queue.clone()));
                if matches!(how, Settle::Ack) && u.message.stored {
                    self.record(|| StoreOp::Removed {
                        vhost: vhost_name.clone(),
                        queue: u.queue.clone(),
                        seq: u.message.seq,
                    });
                }
                if !matches!(how, Settle::Ack) {
                    self.doom(&vhost_name, &queue, u.message, DeadLetterReason::Rejected);
                }
            }
        }
        work.extend(self.requeue_all(&vhost_name, on.connection, requeue, GiveBack::ByClient));
        self.run(work);
        Ok(())
    }

    /// basic.recover: every unacked delivery of the channel goes back to its queue.
    pub fn recover(&mut self, on: ChannelRef) {
        let Ok(vhost) = self.vhost_of(on.connection) else {
            return;
        };
        let Ok(ch) = self.channel(on) else {
            return;
        };
        let unacked: Vec<Unacked> = std::mem::take(&mut ch.unacked).into_values().collect();
        self.unacked_bytes -= unacked.iter().map(Unacked::bytes).sum::<usize>();
        let work = self.requeue_all(&vhost, on.connection, unacked, GiveBack::ByClient);
        self.run(work.into());
    }
}

/// Tells event readers, if any, of a delivery to a consumer on `on` (`kind` is its
/// `Delivered`), at the time of the publish that caused it or else now.
pub(super) fn emit_delivered(
    events: &EventBus,
    at: Option<SystemTime>,
    vhost: &Arc<str>,
    on: ChannelRef,
    kind: impl FnOnce() -> EventKind,
) {
    if events.has_readers() {
        events.emit(Event {
            at: at.unwrap_or_else(SystemTime::now),
            vhost: vhost.clone(),
            connection: Some(on.connection),
            channel: Some(on.channel),
            kind: kind(),
        });
    }
}
