//! Looking at the state from outside: snapshots for screens and tests, the memory it holds,
//! and the events that say it is all gone before a restart.

use super::{is_predeclared, State};
use crate::broker::args;
use crate::broker::maps::HashMap;
use crate::broker::queue::{Queue, QueueType};
use crate::broker::vhost::Vhost;
use crate::broker::{
    ConnectionSnapshot, ConsumerSnapshot, ExchangeSnapshot, QueueSnapshot, Snapshot, StreamReader,
    StreamState, VhostSnapshot,
};
use crate::events::{BindingInfo, EventKind};
use crate::topology::DeliveryLimit;

impl State {
    /// Bytes the messages of every queue take, ready or delivered and not acked, by the memory
    /// alarm's measure.
    pub fn held_memory(&self) -> usize {
        let ready: usize = self
            .vhosts
            .values()
            .flat_map(|v| v.queues.values())
            .map(|q| q.ready_bytes() + q.ready() * crate::broker::MESSAGE_OVERHEAD)
            .sum();
        ready + self.unacked_bytes
    }

    /// Tells readers that everything this state held is gone, before a restart replaces it:
    /// connections close, bindings, queues and exchanges are deleted.
    pub fn announce_gone(&self, reason: &str) {
        let mut connections: Vec<_> = self.connections.iter().collect();
        connections.sort_by_key(|(id, _)| **id);
        for (id, c) in connections {
            self.emit(&c.vhost, Some(*id), None, || EventKind::ConnectionClosed {
                reason: reason.to_string(),
            });
        }
        for (vhost_name, v) in &self.vhosts {
            for (source, x) in &v.exchanges {
                for b in x.router.bindings() {
                    self.emit(vhost_name, None, None, || {
                        EventKind::BindingDeleted(b.info(source))
                    });
                }
            }
            for name in v.queues.keys() {
                self.emit(vhost_name, None, None, || EventKind::QueueDeleted {
                    name: name.clone(),
                });
            }
            for name in v.exchanges.keys().filter(|x| !is_predeclared(x)) {
                self.emit(vhost_name, None, None, || EventKind::ExchangeDeleted {
                    name: name.clone(),
                });
            }
        }
    }

    /// The topology now, each list sorted, for screens and tests.
    pub fn snapshot(&self) -> Snapshot {
        let mut connections = self.connections_by_vhost();
        let mut vhosts: Vec<VhostSnapshot> = self
            .vhosts
            .values()
            .map(|v| {
                let mut exchanges: Vec<ExchangeSnapshot> = v
                    .exchanges
                    .values()
                    .map(|x| ExchangeSnapshot {
                        name: x.name.to_string(),
                        kind: x.kind.as_str().to_string(),
                        durable: x.durable,
                        auto_delete: x.auto_delete,
                        internal: x.internal,
                        arguments: args::pairs(&x.arguments),
                    })
                    .collect();
                exchanges.sort_by(|a, b| a.name.cmp(&b.name));
                let mut queues: Vec<QueueSnapshot> = v
                    .queues
                    .values()
                    .map(|q| QueueSnapshot {
                        name: q.name.to_string(),
                        queue_type: q.limits.queue_type,
                        durable: q.durable,
                        exclusive: q.owner.is_some(),
                        auto_delete: q.auto_delete,
                        arguments: args::pairs(&q.arguments),
                        ready: q.ready(),
                        unacked: q.unacked,
                        consumers: q.consumers.len(),
                        stream: stream_state(q),
                        delivery_limit: match (q.limits.queue_type, q.limits.delivery_limit) {
                            (QueueType::Quorum, Some(n)) => DeliveryLimit::Limit(n),
                            (QueueType::Quorum, None) => DeliveryLimit::Unlimited,
                            _ => DeliveryLimit::Unknown,
                        },
                        ..Default::default()
                    })
                    .collect();
                queues.sort_by(|a, b| a.name.cmp(&b.name));
                let mut bindings: Vec<BindingInfo> = v
                    .exchanges
                    .values()
                    .flat_map(|x| {
                        x.router
                            .bindings()
                            .into_iter()
                            .map(|b| BindingInfo::clone(&b.info(&x.name)))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                crate::broker::sort_bindings(&mut bindings);
                VhostSnapshot {
                    name: v.name.clone(),
                    exchanges,
                    queues,
                    bindings,
                    connections: connections.remove(&*v.name).unwrap_or_default(),
                    consumers: self.consumers_of(v),
                }
            })
            .collect();
        vhosts.sort_by(|a, b| a.name.cmp(&b.name));
        Snapshot {
            vhosts,
            ..Default::default()
        }
    }

    /// Each vhost's connections, by id.
    fn connections_by_vhost(&self) -> HashMap<&str, Vec<ConnectionSnapshot>> {
        let mut by_vhost: HashMap<&str, Vec<ConnectionSnapshot>> = HashMap::default();
        for c in self.connections.values() {
            by_vhost.entry(&*c.vhost).or_default().push(c.info.clone());
        }
        for connections in by_vhost.values_mut() {
            connections.sort_by_key(|c| c.id);
        }
        by_vhost
    }

    /// The consumers of the vhost's queues, by queue then tag.
    fn consumers_of(&self, vhost: &Vhost) -> Vec<ConsumerSnapshot> {
        let mut consumers: Vec<ConsumerSnapshot> = vhost
            .queues
            .values()
            .flat_map(|q| {
                q.consumers.iter().map(|c| {
                    // basic.qos global=false limits each consumer started after it; global=true
                    // the whole channel.
                    let channel_limit =
                        self.channels.get(&c.on).map_or(0, |ch| ch.prefetch_channel);
                    ConsumerSnapshot {
                        queue: q.name.to_string(),
                        tag: c.tag.to_string(),
                        connection: c.on.connection,
                        channel: c.on.channel,
                        ack: !c.no_ack,
                        prefetch: if c.prefetch > 0 {
                            c.prefetch
                        } else {
                            channel_limit
                        },
                    }
                })
            })
            .collect();
        consumers.sort_by(|a, b| (&a.queue, &a.tag).cmp(&(&b.queue, &b.tag)));
        consumers
    }
}

/// A stream's log as the view draws it; None for other queues.
fn stream_state(q: &Queue) -> Option<StreamState> {
    let log = q.stream.as_ref()?.snapshot(&q.limits.stream, Vec::new());
    Some(StreamState {
        first_offset: log.first_offset,
        next_offset: log.next_offset,
        bytes: log.bytes,
        segments: log.segments,
        max_segment_bytes: log.max_segment_bytes,
        max_length_bytes: log.max_length_bytes,
        max_age_secs: log.max_age.map(|age| age.as_secs()),
        readers: (q.consumers.iter())
            .map(|c| StreamReader {
                tag: c.tag.to_string(),
                connection: c.on.connection,
                offset: c.offset.max(log.first_offset),
            })
            .collect(),
    })
}
