//! What outlives a restart, in memory: the operations the broker asks a store to keep
//! ([`StoreOp`]) and the durable picture they add up to ([`Image`]).
//!
//! The broker core records a [`StoreOp`] for every change to something durable (a durable
//! exchange or queue, a binding between durable ends, a persistent message in a durable
//! queue). It does no I/O itself: the store ([`super::store`]) writes the operations, and on
//! start reads them back into an [`Image`] that the broker is rebuilt from. A restart without
//! a store builds the same [`Image`] from the running broker instead.

use std::collections::BTreeMap;
use std::sync::Arc;

use amq_protocol::types::FieldTable;

use super::exchange::Destination;
use super::message::Message;

/// One change to the durable picture, in the order the broker made it.
#[derive(Clone, Debug)]
pub enum StoreOp {
    ExchangeDeclared {
        vhost: Arc<str>,
        name: Arc<str>,
        kind: Arc<str>,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    },
    /// Takes the bindings from and to the exchange with it.
    ExchangeDeleted { vhost: Arc<str>, name: Arc<str> },
    QueueDeclared {
        vhost: Arc<str>,
        name: Arc<str>,
        auto_delete: bool,
        arguments: FieldTable,
    },
    /// Takes the queue's messages and the bindings to it with it.
    QueueDeleted { vhost: Arc<str>, name: Arc<str> },
    BindingAdded {
        vhost: Arc<str>,
        binding: BindingImage,
    },
    BindingRemoved {
        vhost: Arc<str>,
        binding: BindingImage,
    },
    /// A persistent message entered a durable queue; `seq` names it there from now on.
    Enqueued {
        vhost: Arc<str>,
        queue: Arc<str>,
        seq: u64,
        message: Arc<Message>,
        /// Whether its publisher's confirm waits for the disk (`fdatasync`) or only for the
        /// write. Classic and quorum queues flush before they confirm; a stream's appends are
        /// written and left to the operating system to flush, as RabbitMQ's streams do (they
        /// count on their replicas instead). Not kept in the log: a message read back is on disk.
        flush: bool,
    },
    /// It went to a consumer that may not ack it: after a restart it comes back redelivered.
    Delivered {
        vhost: Arc<str>,
        queue: Arc<str>,
        seq: u64,
    },
    /// A client gave it back to a quorum queue, which counted the return: the count its
    /// next delivery carries as `x-delivery-count`. RabbitMQ keeps this count in the
    /// message's header in the queue's Raft state (rabbit_fifo.erl, `return_one`), so it
    /// outlives a restart.
    Returned {
        vhost: Arc<str>,
        queue: Arc<str>,
        seq: u64,
        delivery_count: u32,
    },
    /// It left the queue for good: acked, purged, expired, dead-lettered, dropped.
    Removed {
        vhost: Arc<str>,
        queue: Arc<str>,
        seq: u64,
    },
}

impl StoreOp {
    /// A publisher waiting for a confirm needs this one flushed to disk first.
    pub fn needs_sync(&self) -> bool {
        match self {
            StoreOp::Enqueued { flush, .. } => *flush,
            _ => self.holds_confirms(),
        }
    }

    /// A publisher waiting for a confirm needs this one written (flushed or not) first.
    pub fn holds_confirms(&self) -> bool {
        !matches!(
            self,
            StoreOp::Delivered { .. } | StoreOp::Returned { .. } | StoreOp::Removed { .. }
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BindingImage {
    pub source: Arc<str>,
    pub destination: Destination,
    pub routing_key: Arc<str>,
    pub arguments: FieldTable,
}

impl BindingImage {
    pub fn of(source: &str, binding: &super::exchange::Binding) -> BindingImage {
        BindingImage {
            source: Arc::from(source),
            destination: binding.destination.clone(),
            routing_key: Arc::from(binding.routing_key.as_str()),
            arguments: binding.arguments.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExchangeImage {
    pub kind: Arc<str>,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

#[derive(Clone, Debug, Default)]
pub struct QueueImage {
    pub auto_delete: bool,
    pub arguments: FieldTable,
    /// Persistent messages by their sequence number, so in publish order.
    pub messages: BTreeMap<u64, StoredMessage>,
}

#[derive(Clone, Debug)]
pub struct StoredMessage {
    pub message: Arc<Message>,
    /// Delivered at least once before the restart.
    pub redelivered: bool,
    /// How often a quorum queue counted it given back (0 elsewhere).
    pub delivery_count: u32,
}

impl StoredMessage {
    /// Its body and about what its record adds around it.
    fn bytes(&self) -> u64 {
        self.message.body.len() as u64 + 64
    }
}

#[derive(Clone, Debug, Default)]
pub struct VhostImage {
    pub exchanges: BTreeMap<Arc<str>, ExchangeImage>,
    pub queues: BTreeMap<Arc<str>, QueueImage>,
    /// In the order they were made.
    pub bindings: Vec<BindingImage>,
}

/// Everything durable, per vhost.
#[derive(Clone, Debug, Default)]
pub struct Image {
    pub vhosts: BTreeMap<Arc<str>, VhostImage>,
    /// The bodies of the messages held, plus a record's overhead each: kept as operations
    /// apply, because the store asks after every write whether compacting would pay, and
    /// summing a stream of a million messages each time made a long fill crawl.
    message_bytes: u64,
}

impl Image {
    /// Applies one operation; returns whether it changed anything (a store need not keep the
    /// ones that did not, like the removal of a message it never had).
    pub fn apply(&mut self, op: &StoreOp) -> bool {
        match op {
            StoreOp::ExchangeDeclared {
                vhost,
                name,
                kind,
                auto_delete,
                internal,
                arguments,
            } => {
                let exchange = ExchangeImage {
                    kind: kind.clone(),
                    auto_delete: *auto_delete,
                    internal: *internal,
                    arguments: arguments.clone(),
                };
                let v = self.vhost(vhost);
                v.exchanges.insert(name.clone(), exchange.clone()) != Some(exchange)
            }
            StoreOp::ExchangeDeleted { vhost, name } => {
                let Some(v) = self.vhosts.get_mut(vhost) else {
                    return false;
                };
                let before = v.bindings.len();
                v.bindings.retain(|b| {
                    b.source != *name && b.destination != Destination::Exchange(name.clone())
                });
                v.exchanges.remove(name).is_some() || v.bindings.len() != before
            }
            StoreOp::QueueDeclared {
                vhost,
                name,
                auto_delete,
                arguments,
            } => {
                let v = self.vhost(vhost);
                if v.queues.contains_key(name) {
                    return false;
                }
                v.queues.insert(
                    name.clone(),
                    QueueImage {
                        auto_delete: *auto_delete,
                        arguments: arguments.clone(),
                        messages: BTreeMap::new(),
                    },
                );
                true
            }
            StoreOp::QueueDeleted { vhost, name } => {
                let Some(v) = self.vhosts.get_mut(vhost) else {
                    return false;
                };
                let before = v.bindings.len();
                v.bindings
                    .retain(|b| b.destination != Destination::Queue(name.clone()));
                let removed = v.queues.remove(name);
                if let Some(q) = &removed {
                    self.message_bytes -=
                        q.messages.values().map(StoredMessage::bytes).sum::<u64>();
                }
                removed.is_some() || v.bindings.len() != before
            }
            StoreOp::BindingAdded { vhost, binding } => {
                let v = self.vhost(vhost);
                if v.bindings.contains(binding) {
                    return false;
                }
                v.bindings.push(binding.clone());
                true
            }
            StoreOp::BindingRemoved { vhost, binding } => {
                let Some(v) = self.vhosts.get_mut(vhost) else {
                    return false;
                };
                let before = v.bindings.len();
                v.bindings.retain(|b| b != binding);
                v.bindings.len() != before
            }
            StoreOp::Enqueued {
                vhost,
                queue,
                seq,
                message,
                ..
            } => match self.queue(vhost, queue) {
                Some(q) => {
                    let stored = StoredMessage {
                        message: message.clone(),
                        redelivered: false,
                        delivery_count: 0,
                    };
                    let added = stored.bytes();
                    let replaced = q.messages.insert(*seq, stored).map_or(0, |m| m.bytes());
                    self.message_bytes = self.message_bytes + added - replaced;
                    true
                }
                None => false,
            },
            StoreOp::Delivered { vhost, queue, seq } => {
                match self
                    .queue(vhost, queue)
                    .and_then(|q| q.messages.get_mut(seq))
                {
                    Some(m) if !m.redelivered => {
                        m.redelivered = true;
                        true
                    }
                    _ => false,
                }
            }
            StoreOp::Returned {
                vhost,
                queue,
                seq,
                delivery_count,
            } => match self
                .queue(vhost, queue)
                .and_then(|q| q.messages.get_mut(seq))
            {
                Some(m) if m.delivery_count != *delivery_count => {
                    m.delivery_count = *delivery_count;
                    true
                }
                _ => false,
            },
            StoreOp::Removed { vhost, queue, seq } => {
                let removed = self
                    .queue(vhost, queue)
                    .and_then(|q| q.messages.remove(seq));
                if let Some(m) = &removed {
                    self.message_bytes -= m.bytes();
                }
                removed.is_some()
            }
        }
    }

    /// About how many bytes a compacted log of this image takes for its messages.
    pub fn message_bytes(&self) -> u64 {
        self.message_bytes
    }

    fn vhost(&mut self, name: &Arc<str>) -> &mut VhostImage {
        self.vhosts.entry(name.clone()).or_default()
    }

    fn queue(&mut self, vhost: &str, queue: &str) -> Option<&mut QueueImage> {
        self.vhosts.get_mut(vhost)?.queues.get_mut(queue)
    }

    /// The operations that build this image from nothing (what a compacted log holds).
    pub fn ops(&self) -> impl Iterator<Item = StoreOp> + '_ {
        self.vhosts.iter().flat_map(|(vhost, v)| {
            let exchanges = v
                .exchanges
                .iter()
                .map(|(name, x)| StoreOp::ExchangeDeclared {
                    vhost: vhost.clone(),
                    name: name.clone(),
                    kind: x.kind.clone(),
                    auto_delete: x.auto_delete,
                    internal: x.internal,
                    arguments: x.arguments.clone(),
                });
            let queues = v.queues.iter().flat_map(|(name, q)| {
                let declared = StoreOp::QueueDeclared {
                    vhost: vhost.clone(),
                    name: name.clone(),
                    auto_delete: q.auto_delete,
                    arguments: q.arguments.clone(),
                };
                let messages = q.messages.iter().flat_map(|(seq, m)| {
                    let enqueued = StoreOp::Enqueued {
                        vhost: vhost.clone(),
                        queue: name.clone(),
                        seq: *seq,
                        message: m.message.clone(),
                        flush: true,
                    };
                    let delivered = m.redelivered.then(|| StoreOp::Delivered {
                        vhost: vhost.clone(),
                        queue: name.clone(),
                        seq: *seq,
                    });
                    let returned = (m.delivery_count > 0).then(|| StoreOp::Returned {
                        vhost: vhost.clone(),
                        queue: name.clone(),
                        seq: *seq,
                        delivery_count: m.delivery_count,
                    });
                    std::iter::once(enqueued).chain(delivered).chain(returned)
                });
                std::iter::once(declared).chain(messages)
            });
            let bindings = v.bindings.iter().map(|b| StoreOp::BindingAdded {
                vhost: vhost.clone(),
                binding: b.clone(),
            });
            exchanges.chain(queues).chain(bindings)
        })
    }

    /// How many persistent messages it holds, for logs.
    pub fn message_count(&self) -> usize {
        self.vhosts
            .values()
            .flat_map(|v| v.queues.values())
            .map(|q| q.messages.len())
            .sum()
    }
}
