//! queue.declare, queue.purge and queue.delete, and the deletion every other way a queue
//! goes (exclusive owner gone, auto-delete, expiry).

use std::sync::Arc;
use std::time::Instant;

use amq_protocol::types::FieldTable;

use super::{equivalence, missing_queue, random_suffix, ChannelRef, State, REPLY_TO};
use crate::broker::args;
use crate::broker::error::{AmqpError, AmqpResult};
use crate::broker::journal::StoreOp;
use crate::broker::permissions::{Access, Resource};
use crate::broker::queue::{Queue, QueueLimits, QueueType};
use crate::broker::stream;
use crate::broker::ToClient;
use crate::events::{BindingInfo, ConnectionId, EventKind};

/// queue.declare arguments.
#[derive(Clone, Debug, Default)]
pub struct QueueSpec {
    pub name: String,
    pub passive: bool,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

/// queue.declare-ok.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueDeclared {
    pub name: String,
    pub message_count: u32,
    pub consumer_count: u32,
}

impl State {
    /// queue.declare: a passive declare only looks; otherwise an existing queue is checked for
    /// equivalence (406) and ownership (405), a new one for its name, permissions and
    /// arguments. The channel remembers the name for later `""`.
    pub fn queue_declare(&mut self, on: ChannelRef, spec: QueueSpec) -> AmqpResult<QueueDeclared> {
        let vhost_name = self.vhost_of(on.connection)?;
        self.channel(on)?;
        if spec.passive && spec.name == REPLY_TO {
            // RabbitMQ pretends the pseudo-queue exists, with one consumer.
            return Ok(QueueDeclared {
                name: spec.name,
                message_count: 0,
                consumer_count: 1,
            });
        }
        let mut name = spec.name.clone();
        if name.is_empty() && spec.passive {
            name = self.queue_name(on, "")?;
        }
        if name.is_empty() {
            name = format!("amq.gen-{}", random_suffix());
        } else if name.starts_with("amq.") && !spec.passive {
            let vhost = &self.vhosts[&vhost_name];
            if !vhost.queues.contains_key(name.as_str()) {
                return Err(AmqpError::access_refused(format!(
                    "queue name '{name}' contains reserved prefix 'amq.*'"
                )));
            }
        }
        // Passive declares only look; server-named queues are checked by the name they get.
        if !spec.passive {
            self.permit(on.connection, Access::Configure, Resource::Queue(&name))?;
        }
        let vhost = self.vhosts.get_mut(&vhost_name).expect("vhost exists");
        if let Some(queue) = vhost.queues.get_mut(name.as_str()) {
            Self::check_owner(queue, on.connection, &vhost_name)?;
            if !spec.passive {
                equivalence::check_queue(queue, &spec, &name, &vhost_name)?;
            }
            queue.last_used = Instant::now();
            let declared = QueueDeclared {
                name: name.clone(),
                message_count: queue.ready() as u32,
                // RabbitMQ 3.10 counts no consumers for a stream here (`rabbit_stream_queue:stat/1`).
                consumer_count: match queue.stream {
                    Some(_) => 0,
                    None => queue.consumers.len() as u32,
                },
            };
            self.channel(on)?.last_queue = Some(name);
            return Ok(declared);
        }
        if spec.passive {
            return Err(missing_queue(&vhost_name, &name));
        }
        // RabbitMQ looks at the dead-letter exchange's type before anything else.
        if let Some(dlx) = spec.arguments.inner().get("x-dead-letter-exchange") {
            if args::get_string(&spec.arguments, "x-dead-letter-exchange").is_none() {
                return Err(AmqpError::precondition_failed(format!(
                    "invalid type '{}' for arg 'x-dead-letter-exchange' in queue '{name}' in vhost '{vhost_name}'",
                    args::type_name(dlx)
                )));
            }
        }
        // A new queue with a dead-letter exchange: its messages will be read from it and
        // written to that exchange.
        if let Some(dlx) = args::get_string(&spec.arguments, "x-dead-letter-exchange") {
            self.permit(on.connection, Access::Read, Resource::Queue(&name))?;
            self.permit(on.connection, Access::Write, Resource::Exchange(&dlx))?;
        }
        let read = self.behaviour.arguments_read(&spec.arguments);
        let mut limits = QueueLimits::parse(&name, &vhost_name, &read)?;
        self.behaviour.check_new_queue(
            limits.queue_type,
            spec.durable,
            spec.exclusive,
            &spec.arguments,
        )?;
        self.behaviour.apply_to(&mut limits);
        limits.queue_type.check_properties(
            &name,
            &vhost_name,
            spec.durable,
            spec.exclusive,
            spec.auto_delete,
        )?;
        if limits.queue_type == QueueType::Stream {
            stream::check_segment_size(&limits.stream)?;
        }
        let vhost = self.vhosts.get_mut(&vhost_name).expect("vhost exists");
        let owner = spec.exclusive.then_some(on.connection);
        let queue = Queue::new(
            &name,
            spec.durable,
            spec.auto_delete,
            owner,
            spec.arguments.clone(),
            limits,
        );
        let queue_name = queue.name.clone();
        let queue_type = queue.limits.queue_type;
        vhost.queues.insert(queue_name.clone(), queue);
        if spec.durable && !spec.exclusive {
            self.record(|| StoreOp::QueueDeclared {
                vhost: vhost_name.clone(),
                name: queue_name,
                auto_delete: spec.auto_delete,
                arguments: spec.arguments.clone(),
            });
        }
        self.emit_on(&vhost_name, on, || EventKind::QueueDeclared {
            name: Arc::from(name.as_str()),
            queue_type,
            durable: spec.durable,
            exclusive: spec.exclusive,
            auto_delete: spec.auto_delete,
            arguments: args::pairs(&spec.arguments),
        });
        self.channel(on)?.last_queue = Some(name.clone());
        Ok(QueueDeclared {
            name,
            message_count: 0,
            consumer_count: 0,
        })
    }

    /// queue.purge: drops the ready messages (not the unacked); returns how many.
    pub fn queue_purge(&mut self, on: ChannelRef, queue: &str) -> AmqpResult<u32> {
        let vhost_name = self.vhost_of(on.connection)?;
        let name = self.queue_name(on, queue)?;
        self.permit(on.connection, Access::Read, Resource::Queue(&name))?;
        let q = self.owned_queue(&vhost_name, &name, on.connection)?;
        if q.stream.is_some() {
            return Err(stream_refuses("queue.purge", &name, &vhost_name));
        }
        let drained = q.drain();
        let queue_name = q.name.clone();
        let count = drained.len() as u32;
        if let Some(journal) = &mut self.journal {
            for m in drained.iter().filter(|m| m.stored) {
                journal.push(StoreOp::Removed {
                    vhost: vhost_name.clone(),
                    queue: queue_name.clone(),
                    seq: m.seq,
                });
            }
        }
        self.emit_on(&vhost_name, on, || EventKind::QueuePurged {
            name: name.into(),
            messages: count,
        });
        Ok(count)
    }

    /// queue.delete: `if_unused` refuses a queue with consumers, `if_empty` one with ready
    /// messages; a missing queue is no error (0).
    pub fn queue_delete(
        &mut self,
        on: ChannelRef,
        queue: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> AmqpResult<u32> {
        let vhost_name = self.vhost_of(on.connection)?;
        let name = self.queue_name(on, queue)?;
        self.permit(on.connection, Access::Configure, Resource::Queue(&name))?;
        let vhost = &self.vhosts[&vhost_name];
        let Some(q) = vhost.queues.get(name.as_str()) else {
            // RabbitMQ answers delete-ok with 0 for a missing queue.
            return Ok(0);
        };
        Self::check_owner(q, on.connection, &vhost_name)?;
        if q.stream.is_some() {
            // RabbitMQ 3.10 deletes a stream whatever it holds and whoever reads it, and says
            // it held nothing (`rabbit_stream_queue:delete/4`).
            self.delete_queue_now(&vhost_name, &name, Some(on.connection));
            return Ok(0);
        }
        if if_unused && !q.consumers.is_empty() {
            return Err(AmqpError::precondition_failed(format!(
                "queue '{name}' in vhost '{vhost_name}' in use"
            )));
        }
        if if_empty && q.ready() > 0 {
            return Err(AmqpError::precondition_failed(format!(
                "queue '{name}' in vhost '{vhost_name}' not empty"
            )));
        }
        Ok(self.delete_queue_now(&vhost_name, &name, Some(on.connection)))
    }

    /// Deletes a queue, cancelling its consumers; returns how many ready messages it held.
    pub(super) fn delete_queue_now(
        &mut self,
        vhost_name: &str,
        name: &str,
        by: Option<ConnectionId>,
    ) -> u32 {
        let Some(vhost) = self.vhosts.get_mut(vhost_name) else {
            return 0;
        };
        let removed_bindings: Vec<Arc<BindingInfo>> = vhost
            .queues
            .get(name)
            .map(|q| q.bindings.iter().map(|(s, b)| b.info(s)).collect())
            .unwrap_or_default();
        let Some((queue, deleted_exchanges)) = vhost.delete_queue(name) else {
            return 0;
        };
        for consumer in &queue.consumers {
            if let Some(c) = self.connections.get_mut(&consumer.on.connection) {
                c.consumers
                    .remove(&(consumer.on.channel, consumer.tag.clone()));
                c.sink.send(ToClient::Cancel {
                    channel: consumer.on.channel,
                    consumer_tag: consumer.tag.clone(),
                });
            }
            self.emit(
                vhost_name,
                Some(consumer.on.connection),
                Some(consumer.on.channel),
                || EventKind::ConsumerCancelled {
                    queue: name.into(),
                    consumer_tag: consumer.tag.clone(),
                },
            );
        }
        if queue.durable {
            self.record(|| StoreOp::QueueDeleted {
                vhost: Arc::from(vhost_name),
                name: queue.name.clone(),
            });
        }
        for info in removed_bindings {
            self.emit(vhost_name, by, None, || EventKind::BindingDeleted(info));
        }
        self.emit(vhost_name, by, None, || EventKind::QueueDeleted {
            name: name.into(),
        });
        for name in deleted_exchanges {
            self.record(|| StoreOp::ExchangeDeleted {
                vhost: Arc::from(vhost_name),
                name: name.clone(),
            });
            self.emit(vhost_name, by, None, || EventKind::ExchangeDeleted { name });
        }
        queue.ready() as u32
    }
}

/// RabbitMQ 3.10's answer to a method a stream does not do (basic.get, queue.purge, nack and
/// reject): 540, closing the connection (`rabbit_stream_queue.erl`).
pub(super) fn stream_refuses(what: &str, queue: &str, vhost: &str) -> AmqpError {
    AmqpError::not_implemented(format!(
        "{what} not supported by stream queues queue '{queue}' in vhost '{vhost}'"
    ))
}
