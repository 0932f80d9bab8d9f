//! Restart and recovery: the image of what a restart keeps, and rebuilding from one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::timers::message_ttl;
use super::{is_predeclared, queue_mut, State};
use crate::broker::args;
use crate::broker::exchange::{Binding, Exchange, ExchangeKind};
use crate::broker::journal::{BindingImage, ExchangeImage, Image, QueueImage, StoredMessage};
use crate::broker::message::{Message, QueuedMessage};
use crate::broker::queue::{Queue, QueueLimits, QueueType};
use crate::broker::stream::{StreamLimits, StreamLog};
use crate::events::EventKind;

impl State {
    /// Rebuilds what `image` holds, as a broker starting from its store does: durable
    /// exchanges, queues and bindings, and each queue's persistent messages in their order
    /// (those delivered before marked redelivered). Nothing is recorded: the store has it.
    /// A message's TTL starts again from now.
    pub fn restore(&mut self, image: &Image) {
        let mut events = Vec::new();
        let now = Instant::now();
        for (vhost_name, v) in &image.vhosts {
            let Some(vhost) = self.vhosts.get_mut(&**vhost_name) else {
                tracing::warn!(vhost = %vhost_name, "the store holds a vhost this broker does not have; skipped");
                continue;
            };
            for (name, x) in &v.exchanges {
                let Some(kind) = ExchangeKind::parse(&x.kind) else {
                    continue;
                };
                let arguments = x.arguments.clone();
                let exchange =
                    Exchange::new(name, kind, true, x.auto_delete, x.internal, arguments);
                vhost.exchanges.insert(exchange.name.clone(), exchange);
                events.push((
                    vhost_name.clone(),
                    EventKind::ExchangeDeclared {
                        name: name.clone(),
                        kind: kind.as_str().into(),
                        durable: true,
                        auto_delete: x.auto_delete,
                        internal: x.internal,
                        arguments: args::pairs(&x.arguments),
                    },
                ));
            }
            for (name, q) in &v.queues {
                // A queue kept by an older build may hold arguments declares now refuse: its
                // messages matter more than its limits, so it comes back without them (but
                // keeps its type).
                let mut limits = QueueLimits::parse(name, vhost_name, &q.arguments)
                    .unwrap_or_else(|e| {
                        tracing::warn!(vhost = %vhost_name, queue = %name, error = %e,
                            "a kept queue's arguments are refused now; it comes back without its limits");
                        QueueLimits {
                            queue_type: QueueType::of(name, vhost_name, &q.arguments)
                                .unwrap_or_default(),
                            ..QueueLimits::default()
                        }
                    });
                self.behaviour.apply_to(&mut limits);
                let arguments = q.arguments.clone();
                let mut queue = Queue::new(name, true, q.auto_delete, None, arguments, limits);
                if queue.stream.is_some() {
                    restore_stream(&mut self.next_message_id, &mut queue, q);
                }
                let kept_in_queue = if queue.stream.is_some() {
                    None
                } else {
                    Some(&q.messages)
                };
                for (seq, kept) in kept_in_queue.into_iter().flatten() {
                    self.next_message_id += 1;
                    let mut message = Message::clone(&kept.message);
                    message.id = self.next_message_id;
                    let expires_at = message_ttl(&queue.limits, &message).map(|t| now + t);
                    queue.push_back(QueuedMessage {
                        seq: *seq,
                        message: Arc::new(message),
                        expires_at,
                        redelivered: kept.redelivered,
                        delivery_count: kept.delivery_count,
                        stored: self.journal.is_some(),
                    });
                    self.next_seq = self.next_seq.max(*seq);
                }
                queue.written_below = self.next_seq + 1;
                let queue_type = queue.limits.queue_type;
                vhost.queues.insert(queue.name.clone(), queue);
                events.push((
                    vhost_name.clone(),
                    EventKind::QueueDeclared {
                        name: name.clone(),
                        queue_type,
                        durable: true,
                        exclusive: false,
                        auto_delete: q.auto_delete,
                        arguments: args::pairs(&q.arguments),
                    },
                ));
            }
            for b in &v.bindings {
                let binding =
                    Binding::new(b.destination.clone(), &b.routing_key, b.arguments.clone());
                let info = binding.info(&b.source);
                if vhost.add_binding(&b.source, binding) {
                    events.push((vhost_name.clone(), EventKind::BindingCreated(info)));
                }
            }
        }
        for (vhost, kind) in events {
            self.emit(&vhost, None, None, || kind);
        }
    }

    /// What a restart keeps, taken from the running broker (for a broker without a store):
    /// durable exchanges and queues, bindings between durable ends, and the persistent
    /// messages of durable queues, ready or unacked (those come back redelivered).
    pub fn image(&self) -> Image {
        let mut image = Image::default();
        let persistent = |m: &Message| m.properties.delivery_mode() == &Some(2);
        for (vhost_name, v) in &self.vhosts {
            let kept = image.vhosts.entry(vhost_name.clone()).or_default();
            for (name, x) in &v.exchanges {
                if x.durable && !is_predeclared(name) {
                    let exchange = ExchangeImage {
                        kind: x.kind.as_str().into(),
                        auto_delete: x.auto_delete,
                        internal: x.internal,
                        arguments: x.arguments.clone(),
                    };
                    kept.exchanges.insert(name.clone(), exchange);
                }
            }
            for (name, q) in &v.queues {
                if !q.durable || q.owner.is_some() {
                    continue;
                }
                let messages = match &q.stream {
                    // A stream keeps every message, by offset.
                    Some(log) => log
                        .iter()
                        .map(|(offset, message)| {
                            let stored = StoredMessage {
                                message: message.clone(),
                                redelivered: false,
                                delivery_count: 0,
                            };
                            (offset, stored)
                        })
                        .collect(),
                    None => q
                        .iter()
                        .filter(|m| persistent(&m.message))
                        .map(|m| {
                            let stored = StoredMessage {
                                message: m.message.clone(),
                                redelivered: m.redelivered,
                                delivery_count: m.delivery_count,
                            };
                            (m.seq, stored)
                        })
                        .collect(),
                };
                let queue = QueueImage {
                    auto_delete: q.auto_delete,
                    arguments: q.arguments.clone(),
                    messages,
                };
                kept.queues.insert(name.clone(), queue);
            }
            for (source, x) in &v.exchanges {
                for b in x.router.bindings() {
                    if v.is_durable_binding(source, &b) {
                        kept.bindings.push(BindingImage::of(source, &b));
                    }
                }
            }
        }
        for (on, channel) in &self.channels {
            let Some(vhost) = self.connections.get(&on.connection).map(|c| &c.vhost) else {
                continue;
            };
            for u in channel
                .unacked
                .values()
                .filter(|u| u.stream_offset.is_none())
            {
                let queue = image
                    .vhosts
                    .get_mut(vhost)
                    .and_then(|v| v.queues.get_mut(&u.queue));
                if let (Some(queue), true) = (queue, persistent(&u.message.message)) {
                    let stored = StoredMessage {
                        message: u.message.message.clone(),
                        redelivered: true,
                        delivery_count: u.message.delivery_count,
                    };
                    queue.messages.insert(u.message.seq, stored);
                }
            }
        }
        image
    }
}

/// Refills a kept stream's log: its messages keep their offsets (the store keys them by
/// offset), and retention waits for the next segment roll. The message ages start again
/// from now, since the store keeps no time.
fn restore_stream(next_message_id: &mut u64, queue: &mut Queue, kept: &QueueImage) {
    let first = kept.messages.keys().next().copied().unwrap_or(0);
    let mut log = StreamLog::starting_at(first);
    let keep_all = StreamLimits {
        max_length_bytes: None,
        max_age: None,
        ..queue.limits.stream.clone()
    };
    let now = SystemTime::now();
    for stored in kept.messages.values() {
        *next_message_id += 1;
        let mut message = Message::clone(&stored.message);
        message.id = *next_message_id;
        log.append(Arc::new(message), now, &keep_all);
    }
    log.mark_written(log.next_offset());
    queue.stream = Some(log);
}

/// Appends the store has not written yet: consumers of streams and quorum queues do not see
/// them until it has. RabbitMQ's streams hand readers only written chunks, and its quorum
/// queues deliver only what their log has committed; a consumer thus gets what one write
/// held at once.
#[derive(Debug, Default)]
pub(crate) struct Unwritten {
    /// Appended under the current lock: (vhost, queue, offset or sequence after the append).
    unticketed: Vec<(Arc<str>, Arc<str>, u64)>,
    /// Handed to the store: (its ticket, vhost, queue, end), in ticket order.
    waiting: VecDeque<(u64, Arc<str>, Arc<str>, u64)>,
}

impl Unwritten {
    /// Queue `queue` holds an append that ends before `end` (a stream's next offset, a quorum
    /// queue's next sequence number).
    pub(super) fn appended(&mut self, vhost: &Arc<str>, queue: &Arc<str>, end: u64) {
        match self.unticketed.last_mut() {
            Some(last) if last.0 == *vhost && last.1 == *queue => last.2 = end,
            _ => self.unticketed.push((vhost.clone(), queue.clone(), end)),
        }
    }
}

impl State {
    /// From now on, consumers of streams and quorum queues get appends once the store has
    /// written them, as [`State::appends_written`] reports.
    pub fn wait_for_store(&mut self) {
        self.unwritten.get_or_insert_with(Unwritten::default);
    }

    pub fn waits_for_store(&self) -> bool {
        self.unwritten.is_some()
    }

    /// The appends made since the last call went to the store under `ticket`.
    pub fn appends_ticketed(&mut self, ticket: u64) {
        if let Some(unwritten) = &mut self.unwritten {
            for (vhost, queue, end) in unwritten.unticketed.drain(..) {
                unwritten.waiting.push_back((ticket, vhost, queue, end));
            }
        }
    }

    /// The store has written everything up to `ticket`: consumers get what it held.
    pub fn appends_written(&mut self, ticket: u64) {
        let Some(unwritten) = &mut self.unwritten else {
            return;
        };
        let mut work: VecDeque<(Arc<str>, Arc<str>)> = VecDeque::new();
        while unwritten.waiting.front().is_some_and(|w| w.0 <= ticket) {
            let (_, vhost, queue, end) = unwritten.waiting.pop_front().expect("looked at");
            let Some(q) = queue_mut(&mut self.vhosts, &vhost, &queue) else {
                continue;
            };
            match q.stream.as_mut() {
                Some(log) => log.mark_written(end),
                None => q.written_below = q.written_below.max(end),
            }
            if !work.iter().any(|w| w.0 == vhost && w.1 == queue) {
                work.push_back((vhost, queue));
            }
        }
        self.run(work);
    }
}
