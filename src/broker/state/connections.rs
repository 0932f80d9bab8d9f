//! Connections and channels: opening and closing them, and what closing gives back
//! (consumers cancelled, unacked messages requeued).

use std::collections::VecDeque;
use std::sync::Arc;

use super::queue_mut;
use super::{Channel, ChannelRef, Connection, State, Unacked};
use crate::broker::journal::StoreOp;
use crate::broker::maps::{HashMap, HashSet};
use crate::broker::permissions::Grant;
use crate::broker::queue::{GiveBack, Overflow};
use crate::broker::{ClientSink, ConnectionSnapshot};
use crate::events::{ConnectionId, DeadLetterReason, EventKind};

impl State {
    /// Registers connection `id`, described by `info` (its `id` is set here).
    pub fn open_connection(
        &mut self,
        id: ConnectionId,
        vhost: &str,
        mut info: ConnectionSnapshot,
        sink: ClientSink,
        grant: Grant,
    ) {
        info.id = id;
        let opened = EventKind::ConnectionOpened {
            peer: info.peer.clone(),
            user: info.user.as_str().into(),
            client: info.client.clone(),
        };
        self.connections.insert(
            id,
            Connection {
                vhost: vhost.into(),
                info,
                grant,
                sink,
                channels: HashSet::default(),
                consumers: HashMap::default(),
            },
        );
        self.emit(vhost, Some(id), None, || opened);
    }

    /// Closes a connection: each channel closes (see [`State::close_channel`]), then its
    /// exclusive queues are deleted.
    pub fn close_connection(&mut self, id: ConnectionId, reason: &str) {
        let Some(channels) = self.connections.get(&id).map(|c| c.channels.clone()) else {
            return;
        };
        let mut channels: Vec<u16> = channels.into_iter().collect();
        channels.sort_unstable();
        for channel in channels {
            self.close_channel(
                ChannelRef {
                    connection: id,
                    channel,
                },
                reason,
            );
        }
        let Some(connection) = self.connections.remove(&id) else {
            return;
        };
        // Exclusive queues die with their connection.
        let owned: Vec<String> = self.vhosts[&connection.vhost]
            .queues
            .values()
            .filter(|q| q.owner == Some(id))
            .map(|q| q.name.to_string())
            .collect();
        for queue in owned {
            self.delete_queue_now(&connection.vhost, &queue, Some(id));
        }
        self.emit(&connection.vhost, Some(id), None, || {
            EventKind::ConnectionClosed {
                reason: reason.to_string(),
            }
        });
    }

    /// Whether connection `id` is open.
    pub fn has_connection(&self, id: ConnectionId) -> bool {
        self.connections.contains_key(&id)
    }

    /// Dispatches again to the queues a connection consumes from: its writer had fallen
    /// behind and has room now.
    pub fn resume_connection(&mut self, id: ConnectionId) {
        let Some(connection) = self.connections.get(&id) else {
            return;
        };
        let vhost = connection.vhost.clone();
        let queues: Vec<Arc<str>> = connection.consumers.values().cloned().collect();
        let mut work = VecDeque::new();
        for q in queues {
            work.push_back((vhost.clone(), q));
        }
        self.run(work);
    }

    /// channel.open: the channel starts with no consumers, no unacked deliveries and no limits.
    pub fn open_channel(&mut self, on: ChannelRef) {
        if let Some(c) = self.connections.get_mut(&on.connection) {
            c.channels.insert(on.channel);
            self.channels.insert(on, Channel::default());
            let vhost = c.vhost.clone();
            self.emit_on(&vhost, on, || EventKind::ChannelOpened);
        }
    }

    /// Closes a channel: its consumers are cancelled and its unacked messages requeued.
    pub fn close_channel(&mut self, on: ChannelRef, reason: &str) {
        let Some(state) = self.channels.remove(&on) else {
            return;
        };
        let Ok(vhost) = self.vhost_of(on.connection) else {
            return;
        };
        let tags: Vec<(Arc<str>, Arc<str>)> = {
            let c = self
                .connections
                .get_mut(&on.connection)
                .expect("checked above");
            c.channels.remove(&on.channel);
            let tags: Vec<_> = c
                .consumers
                .iter()
                .filter(|((ch, _), _)| *ch == on.channel)
                .map(|((_, tag), q)| (tag.clone(), q.clone()))
                .collect();
            for (tag, _) in &tags {
                c.consumers.remove(&(on.channel, tag.clone()));
            }
            tags
        };
        let mut work = VecDeque::new();
        for (tag, queue) in tags {
            self.remove_consumer(&vhost, &queue, on, &tag);
            work.push_back((vhost.clone(), queue));
        }
        let unacked: Vec<Unacked> = state.unacked.into_values().collect();
        self.unacked_bytes -= unacked.iter().map(Unacked::bytes).sum::<usize>();
        work.extend(self.requeue_all(&vhost, on.connection, unacked, GiveBack::ChannelClosed));
        self.run(work);
        self.emit_on(&vhost, on, || EventKind::ChannelClosed {
            reason: reason.to_string(),
        });
    }

    /// Puts unacked messages back in their queues, in order, marked redelivered. A quorum
    /// queue counts the return, and a message past its `x-delivery-limit` leaves instead
    /// (dead-lettered or dropped once the caller runs the work).
    pub(super) fn requeue_all(
        &mut self,
        vhost: &str,
        connection: ConnectionId,
        mut unacked: Vec<Unacked>,
        how: GiveBack,
    ) -> Vec<(Arc<str>, Arc<str>)> {
        unacked.sort_by_key(|u| u.message.seq);
        // From 4.3 a client's requeue is no failed delivery: it is not counted.
        let counted = how == GiveBack::ChannelClosed
            || !self.behaviour.release.counts_only_failed_deliveries();
        // Per queue: how many messages went back to its front so far.
        let mut touched: Vec<(Arc<str>, usize)> = Vec::new();
        for u in unacked {
            let id = u.message.message.id;
            if let Some(queue) = queue_mut(&mut self.vhosts, vhost, &u.queue) {
                queue.unacked = queue.unacked.saturating_sub(1);
                if let Some(tag) = &u.consumer_tag {
                    if let Some(c) = queue
                        .consumers
                        .iter_mut()
                        .find(|c| c.tag == *tag && c.on.connection == connection)
                    {
                        c.unacked = c.unacked.saturating_sub(1);
                    }
                }
                let mut message = u.message;
                if counted {
                    queue.count_return(&mut message);
                } else {
                    message.redelivered = true;
                }
                let i = match touched.iter().position(|(q, _)| *q == u.queue) {
                    Some(i) => i,
                    None => {
                        touched.push((u.queue.clone(), 0));
                        touched.len() - 1
                    }
                };
                if u.stream_offset.is_some() {
                    // A stream keeps it; the consumer just has its credit back.
                    continue;
                }
                if queue.over_delivery_limit(&message) {
                    let name = queue.name.clone();
                    self.doom(vhost, &name, message, DeadLetterReason::DeliveryLimit);
                } else {
                    // A counted return is kept, so the count goes on after a restart.
                    if counted && message.stored && message.delivery_count > 0 {
                        if let Some(journal) = &mut self.journal {
                            journal.push(StoreOp::Returned {
                                vhost: Arc::from(vhost),
                                queue: queue.name.clone(),
                                seq: message.seq,
                                delivery_count: message.delivery_count,
                            });
                        }
                    }
                    queue.give_back(message, how, touched[i].1);
                    touched[i].1 += 1;
                    let name = queue.name.clone();
                    self.emit(vhost, Some(connection), None, || EventKind::Requeued {
                        message_id: id,
                        queue: name,
                    });
                }
            }
        }
        for (queue, _) in &touched {
            self.trim_after_return(vhost, queue);
        }
        let vhost: Arc<str> = Arc::from(vhost);
        touched
            .into_iter()
            .map(|(q, _)| (vhost.clone(), q))
            .collect()
    }

    /// A queue that drops from the head does so whenever it is over a limit, also when
    /// messages given back took it there; the dropped ones are dead-lettered `maxlen`.
    fn trim_after_return(&mut self, vhost: &str, name: &str) {
        let Some(queue) = queue_mut(&mut self.vhosts, vhost, name) else {
            return;
        };
        if queue.overflow() != Overflow::DropHead {
            return;
        }
        let mut dropped = Vec::new();
        while queue.is_over_limit() {
            match queue.pop_oldest() {
                Some(m) => dropped.push(m),
                None => break,
            }
        }
        for m in dropped {
            self.doom(vhost, name, m, DeadLetterReason::Maxlen);
        }
    }
}
