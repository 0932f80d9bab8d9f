//! One event applied to a snapshot: how a replay keeps its topology as the trace goes on.
//!
//! [`apply`] follows what an event declares, deletes, binds and opens; [`Acking`] adds the
//! queue depths, which need to know which consumers acknowledge. Declaring what exists
//! replaces it and deleting what does not is nothing, so applying an event twice is harmless.
//!
//! It imports the snapshot types and the events, nothing else.

use std::collections::HashSet;

use super::{
    ConnectionSnapshot, ConsumerSnapshot, ExchangeSnapshot, QueueSnapshot, Snapshot, VhostSnapshot,
};
use crate::events::{BindingInfo, Event, EventKind, Name};

/// The consumers seen declared so far that acknowledge what they get: only a delivery to one
/// of them waits for an ack. A delivery to a `no_ack` consumer, to a consumer declared before
/// the trace began, or a basic.get (whose mode the event does not say) is simply taken.
#[derive(Default)]
pub struct Acking {
    consumers: HashSet<(Name, Name, Name)>,
}

impl Acking {
    /// [`apply`], and the queue depths the event changes.
    pub fn apply(&mut self, snapshot: &mut Snapshot, event: &Event) {
        apply(snapshot, event);
        let vhost = &event.vhost;
        let acked_stream = match &event.kind {
            EventKind::Acked { queue, .. } => is_stream(snapshot, vhost, queue),
            _ => false,
        };
        let mut with = |name: &str, change: &dyn Fn(&mut QueueSnapshot)| {
            let queue = snapshot
                .vhosts
                .iter_mut()
                .find(|v| *v.name == **vhost)
                .and_then(|v| v.queues.iter_mut().find(|q| q.name == name));
            if let Some(q) = queue {
                change(q);
            }
        };
        match &event.kind {
            EventKind::ConsumerCreated {
                queue,
                consumer_tag,
                no_ack,
            } => {
                let key = (event.vhost.clone(), queue.clone(), consumer_tag.clone());
                if *no_ack {
                    self.consumers.remove(&key);
                } else {
                    self.consumers.insert(key);
                }
            }
            EventKind::ConsumerCancelled {
                queue,
                consumer_tag,
            } => {
                let key = (event.vhost.clone(), queue.clone(), consumer_tag.clone());
                self.consumers.remove(&key);
            }
            EventKind::Published { queues, .. } => {
                for queue in queues {
                    with(queue, &|q| q.ready += 1);
                }
            }
            // Reading a stream removes nothing and its acks only give credit back: a delivery
            // moves the consumer along the log, not the counters.
            EventKind::Delivered {
                queue,
                consumer_tag,
                offset: Some(offset),
                ..
            } => with(queue, &|q| {
                if let (Some(log), Some(tag)) = (&mut q.stream, consumer_tag) {
                    let connection = event.connection.unwrap_or_default();
                    log.delivered(tag, connection, *offset);
                }
            }),
            EventKind::Acked { .. } if acked_stream => {}
            EventKind::Delivered {
                queue,
                consumer_tag,
                ..
            } => {
                let acks = consumer_tag.as_ref().is_some_and(|tag| {
                    self.consumers
                        .contains(&(event.vhost.clone(), queue.clone(), tag.clone()))
                });
                with(queue, &|q| {
                    q.ready = q.ready.saturating_sub(1);
                    if acks {
                        q.unacked += 1;
                    }
                });
            }
            EventKind::Acked { queue, .. }
            | EventKind::Nacked {
                queue,
                requeue: false,
                ..
            }
            | EventKind::Rejected {
                queue,
                requeue: false,
                ..
            } => with(queue, &|q| q.unacked = q.unacked.saturating_sub(1)),
            // A requeue that was asked for is told again as `Requeued`.
            EventKind::Requeued { queue, .. } => with(queue, &|q| {
                q.unacked = q.unacked.saturating_sub(1);
                q.ready += 1;
            }),
            EventKind::Expired { queue, .. } | EventKind::Dropped { queue, .. } => {
                with(queue, &|q| q.ready = q.ready.saturating_sub(1))
            }
            // A rejected message left the unacknowledged count with its reject.
            EventKind::DeadLettered { queue, reason, .. }
                if !matches!(reason, crate::events::DeadLetterReason::Rejected) =>
            {
                with(queue, &|q| q.ready = q.ready.saturating_sub(1))
            }
            _ => {}
        }
    }
}

/// Whether `queue` of `vhost` is a stream.
fn is_stream(snapshot: &Snapshot, vhost: &str, queue: &str) -> bool {
    let v = snapshot.vhosts.iter().find(|v| v.name == vhost);
    v.and_then(|v| v.queues.iter().find(|q| q.name == queue))
        .is_some_and(|q| q.queue_type == super::QueueType::Stream)
}

/// Changes `snapshot` as `event` says: declarations, deletions, bindings, purges, connections
/// and consumers (on the event's connection and channel).
/// Declaring what exists replaces it, deleting what does not is nothing, so a trace that
/// repeats its header's topology as events replays the same.
pub fn apply(snapshot: &mut Snapshot, event: &Event) {
    let vhost = match snapshot.vhosts.iter().position(|v| *v.name == *event.vhost) {
        Some(i) => &mut snapshot.vhosts[i],
        None => {
            snapshot.vhosts.push(VhostSnapshot {
                name: event.vhost.to_string(),
                ..VhostSnapshot::default()
            });
            snapshot.vhosts.sort_by(|a, b| a.name.cmp(&b.name));
            let i = snapshot
                .vhosts
                .iter()
                .position(|v| *v.name == *event.vhost)
                .expect("just added");
            &mut snapshot.vhosts[i]
        }
    };
    match &event.kind {
        EventKind::ExchangeDeclared {
            name,
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
        } => {
            vhost.exchanges.retain(|x| *x.name != **name);
            vhost.exchanges.push(ExchangeSnapshot {
                name: name.to_string(),
                kind: kind.to_string(),
                durable: *durable,
                auto_delete: *auto_delete,
                internal: *internal,
                arguments: arguments.clone(),
            });
            vhost.exchanges.sort_by(|a, b| a.name.cmp(&b.name));
        }
        EventKind::ExchangeDeleted { name } => {
            vhost.exchanges.retain(|x| *x.name != **name);
            vhost.bindings.retain(|b| {
                b.source != *name && !(b.destination_is_exchange && b.destination == *name)
            });
        }
        EventKind::QueueDeclared {
            name,
            queue_type,
            durable,
            exclusive,
            auto_delete,
            arguments,
        } => {
            let kept = vhost.queues.iter().find(|q| *q.name == **name).cloned();
            vhost.queues.retain(|q| *q.name != **name);
            // A redeclaration keeps the messages and consumers the queue has.
            let kept = kept.unwrap_or_else(|| QueueSnapshot::new(name));
            vhost.queues.push(QueueSnapshot {
                queue_type: *queue_type,
                durable: *durable,
                exclusive: *exclusive,
                auto_delete: *auto_delete,
                arguments: arguments.clone(),
                ..kept
            });
            vhost.queues.sort_by(|a, b| a.name.cmp(&b.name));
        }
        EventKind::QueueDeleted { name } => {
            vhost.queues.retain(|q| *q.name != **name);
            vhost
                .bindings
                .retain(|b| b.destination_is_exchange || b.destination != *name);
            // Deleting a queue cancels its consumers.
            vhost.consumers.retain(|c| *c.queue != **name);
        }
        EventKind::QueuePurged { name, .. } => {
            if let Some(q) = vhost.queues.iter_mut().find(|q| *q.name == **name) {
                q.ready = 0;
            }
        }
        EventKind::BindingCreated(binding) if !vhost.bindings.iter().any(|b| b == &**binding) => {
            vhost.bindings.push(BindingInfo::clone(binding));
            super::sort_bindings(&mut vhost.bindings);
        }
        EventKind::BindingDeleted(binding) => {
            vhost.bindings.retain(|b| b != &**binding);
        }
        EventKind::ConsumerCreated {
            queue,
            consumer_tag,
            no_ack,
        } => {
            if let Some(q) = vhost.queues.iter_mut().find(|q| *q.name == **queue) {
                q.consumers += 1;
            }
            let consumer = ConsumerSnapshot {
                queue: queue.to_string(),
                tag: consumer_tag.to_string(),
                connection: event.connection.unwrap_or_default(),
                channel: event.channel.unwrap_or_default(),
                ack: !no_ack,
                // basic.qos is no event: the prefetch is not known.
                prefetch: 0,
            };
            vhost.consumers.retain(|c| !same_consumer(c, &consumer));
            vhost.consumers.push(consumer);
            vhost
                .consumers
                .sort_by(|a, b| (&a.queue, &a.tag).cmp(&(&b.queue, &b.tag)));
        }
        EventKind::ConsumerCancelled {
            queue,
            consumer_tag,
        } => {
            if let Some(q) = vhost.queues.iter_mut().find(|q| *q.name == **queue) {
                q.consumers = q.consumers.saturating_sub(1);
            }
            // A cancel the broker made (its queue deleted) may name no connection.
            vhost.consumers.retain(|c| {
                !(*c.queue == **queue
                    && *c.tag == **consumer_tag
                    && event.connection.is_none_or(|id| id == c.connection)
                    && event.channel.is_none_or(|n| n == c.channel))
            });
        }
        EventKind::ConnectionOpened { peer, user, client } => {
            let Some(id) = event.connection else {
                return;
            };
            // Kept in the order they opened, after those of the header.
            vhost.connections.retain(|c| c.id != id);
            vhost.connections.push(ConnectionSnapshot {
                id,
                // The event does not carry the broker's name for the connection.
                name: String::new(),
                peer: peer.clone(),
                user: user.to_string(),
                client: client.clone(),
                ..Default::default()
            });
        }
        // A closed channel's or connection's consumers go with it.
        EventKind::ChannelClosed { .. } => {
            if let (Some(id), Some(channel)) = (event.connection, event.channel) {
                vhost
                    .consumers
                    .retain(|c| !(c.connection == id && c.channel == channel));
            }
        }
        EventKind::ConnectionClosed { .. } => {
            if let Some(id) = event.connection {
                vhost.connections.retain(|c| c.id != id);
                vhost.consumers.retain(|c| c.connection != id);
            }
        }
        _ => {}
    }
}

/// One consumer: a tag is unique on its channel, not on its queue.
fn same_consumer(a: &ConsumerSnapshot, b: &ConsumerSnapshot) -> bool {
    (&a.queue, &a.tag, a.connection, a.channel) == (&b.queue, &b.tag, b.connection, b.channel)
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::topology::{QueueType, StreamState};

    fn on_connection_7(kind: EventKind) -> Event {
        Event {
            at: SystemTime::UNIX_EPOCH,
            vhost: "/".into(),
            connection: Some(7),
            channel: Some(1),
            kind,
        }
    }

    /// A replay treats a stream as the broker does: a delivery moves its reader along the log
    /// and leaves the counters; the ack takes nothing off them.
    #[test]
    fn a_replayed_stream_delivery_moves_the_reader_not_the_counters() {
        let mut snapshot = Snapshot {
            vhosts: vec![VhostSnapshot {
                name: "/".into(),
                queues: vec![QueueSnapshot {
                    queue_type: QueueType::Stream,
                    ready: 3,
                    stream: Some(StreamState {
                        next_offset: 3,
                        ..Default::default()
                    }),
                    ..QueueSnapshot::new("log")
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut acking = Acking::default();
        acking.apply(
            &mut snapshot,
            &on_connection_7(EventKind::ConsumerCreated {
                queue: "log".into(),
                consumer_tag: "reader".into(),
                no_ack: false,
            }),
        );
        acking.apply(
            &mut snapshot,
            &on_connection_7(EventKind::Delivered {
                message_id: 1,
                queue: "log".into(),
                consumer_tag: Some("reader".into()),
                delivery_tag: 1,
                redelivered: false,
                offset: Some(1),
                delivery_count: None,
            }),
        );
        acking.apply(
            &mut snapshot,
            &on_connection_7(EventKind::Acked {
                message_id: 1,
                queue: "log".into(),
                delivery_tag: 1,
            }),
        );
        let q = &snapshot.vhosts[0].queues[0];
        assert_eq!((q.ready, q.unacked), (3, 0));
        assert_eq!(q.stream.as_ref().unwrap().reader("reader", 7), Some(2));
    }
}
