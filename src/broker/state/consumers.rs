//! Consumers: basic.qos, basic.consume and basic.cancel.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use amq_protocol::types::FieldTable;

use super::queue_mut;
use super::{random_suffix, ChannelRef, State, REPLY_TO};
use crate::broker::args;
use crate::broker::error::{AmqpError, AmqpResult};
use crate::broker::permissions::{Access, Resource};
use crate::broker::queue::{refused_arg, Consumer, QueueType};
use crate::broker::stream::StartAt;
use crate::events::EventKind;

/// basic.consume arguments.
#[derive(Clone, Debug, Default)]
pub struct ConsumeSpec {
    pub queue: String,
    /// Empty: the broker makes one up.
    pub tag: String,
    pub no_ack: bool,
    pub exclusive: bool,
    /// `x-priority` is read from here.
    pub arguments: FieldTable,
}

impl State {
    /// basic.qos: `global` limits the whole channel, else each consumer started afterwards
    /// (0: no limit) and the channel is no longer limited, as RabbitMQ reads the flag. Where
    /// `global_qos` is denied, global counts as false.
    pub fn basic_qos(&mut self, on: ChannelRef, prefetch_count: u16, global: bool) {
        let global = self.behaviour.qos_global(global);
        if let Ok(ch) = self.channel(on) {
            if global {
                ch.prefetch_channel = prefetch_count;
            } else {
                // As RabbitMQ does, a per-consumer limit lifts the channel's limit.
                ch.prefetch_channel = 0;
                ch.prefetch_consumer = prefetch_count;
            }
        }
        // A raised limit may let waiting messages go.
        self.resume_connection(on.connection);
    }

    /// basic.consume: attaches a consumer (or the channel's direct reply-to consumer); returns
    /// its tag. Deliveries wait for [`State::consumer_ready`], so consume-ok goes first.
    pub fn basic_consume(&mut self, on: ChannelRef, spec: ConsumeSpec) -> AmqpResult<String> {
        let ConsumeSpec {
            queue,
            tag,
            no_ack,
            exclusive,
            arguments,
        } = spec;
        let (queue, tag, arguments) = (queue.as_str(), tag.as_str(), &arguments);
        let vhost_name = self.vhost_of(on.connection)?;
        let tag: Arc<str> = if tag.is_empty() {
            format!("amq.ctag-{}", random_suffix()).into()
        } else {
            tag.into()
        };
        let conn = self.connections.get(&on.connection).expect("checked");
        if conn.consumers.contains_key(&(on.channel, tag.clone())) {
            return Err(AmqpError::not_allowed(format!(
                "attempt to reuse consumer tag '{tag}'"
            )));
        }
        if queue == REPLY_TO {
            if !no_ack {
                return Err(AmqpError::precondition_failed(
                    "reply consumer cannot acknowledge",
                ));
            }
            let ch = self.channel(on)?;
            if ch.reply_consumer.is_some() {
                return Err(AmqpError::precondition_failed("reply consumer already set"));
            }
            ch.reply_consumer = Some(tag.clone());
            return Ok(tag.to_string());
        }
        let name = self.queue_name(on, queue)?;
        self.permit(on.connection, Access::Read, Resource::Queue(&name))?;
        // A stream refuses x-priority whatever its value (see `stream_start`).
        let is_stream = self.vhosts[&vhost_name]
            .queues
            .get(name.as_str())
            .is_some_and(|q| q.stream.is_some());
        let priority = match args::get_int(arguments, "x-priority") {
            Ok(p) => p.unwrap_or(0),
            Err(args::NotAnInteger) if !is_stream => {
                return Err(AmqpError::precondition_failed(
                    "invalid arg 'x-priority' for consumer: not an integer",
                ))
            }
            Err(args::NotAnInteger) => 0,
        };
        let ch = self.channel(on)?;
        let (prefetch, global_limit) = (ch.prefetch_consumer, ch.prefetch_channel > 0);
        let q = self.owned_queue(&vhost_name, &name, on.connection)?;
        let offset = match &q.stream {
            Some(log) => {
                let start = stream_start(arguments, &name, &vhost_name, prefetch, no_ack)?;
                log.start_offset(start)
            }
            None => 0,
        };
        if global_limit && q.limits.queue_type != QueueType::Classic {
            // Quorum queues and streams keep credit per consumer; RabbitMQ 3.10 closes the
            // connection.
            return Err(AmqpError::not_implemented(format!(
                "queue '{name}' in vhost '{vhost_name}' does not support global qos"
            )));
        }
        let exclusive_use = || {
            AmqpError::access_refused(format!(
                "queue '{name}' in vhost '{vhost_name}' in exclusive use"
            ))
        };
        if q.consumers.iter().any(|c| c.exclusive) || (exclusive && !q.consumers.is_empty()) {
            return Err(exclusive_use());
        }
        q.consumers.push(Consumer {
            tag: tag.clone(),
            on,
            no_ack,
            exclusive,
            prefetch,
            priority,
            unacked: 0,
            offset,
        });
        q.had_consumer = true;
        q.last_used = Instant::now();
        let queue_name = q.name.clone();
        let conn = self.connections.get_mut(&on.connection).expect("checked");
        conn.consumers.insert((on.channel, tag.clone()), queue_name);
        self.channel(on)?.not_ready.insert(tag.clone());
        self.emit_on(&vhost_name, on, || EventKind::ConsumerCreated {
            queue: name.into(),
            consumer_tag: tag.clone(),
            no_ack,
        });
        Ok(tag.to_string())
    }

    /// The wire layer has sent consume-ok: the consumer may be delivered to now.
    pub fn consumer_ready(&mut self, on: ChannelRef, tag: &str) {
        if let Ok(ch) = self.channel(on) {
            ch.not_ready.remove(tag);
        }
        let queue = self.connections.get(&on.connection).and_then(|c| {
            c.consumers
                .get(&(on.channel, Arc::from(tag)))
                .cloned()
                .map(|q| (c.vhost.clone(), q))
        });
        if let Some(work) = queue {
            self.run(VecDeque::from([work]));
        }
    }

    /// basic.cancel: detaches a consumer; an unknown tag is no error.
    pub fn basic_cancel(&mut self, on: ChannelRef, tag: &str) -> AmqpResult<()> {
        let vhost_name = self.vhost_of(on.connection)?;
        let ch = self.channel(on)?;
        if ch.reply_consumer.as_deref() == Some(tag) {
            ch.reply_consumer = None;
            return Ok(());
        }
        let key = (on.channel, Arc::from(tag));
        let Some(queue) = self
            .connections
            .get_mut(&on.connection)
            .and_then(|c| c.consumers.remove(&key))
        else {
            // Cancelling an unknown tag is not an error in AMQP.
            return Ok(());
        };
        self.remove_consumer(&vhost_name, &queue, on, tag);
        Ok(())
    }

    /// Detaches a consumer; deletes an auto-delete queue that lost its last one.
    pub(super) fn remove_consumer(
        &mut self,
        vhost_name: &str,
        queue: &str,
        on: ChannelRef,
        tag: &str,
    ) {
        let Some(q) = queue_mut(&mut self.vhosts, vhost_name, queue) else {
            return;
        };
        if q.remove_consumer(tag, on).is_none() {
            return;
        }
        q.last_used = Instant::now();
        let auto_delete = q.auto_delete && q.had_consumer && q.consumers.is_empty();
        self.emit_on(vhost_name, on, || EventKind::ConsumerCancelled {
            queue: queue.into(),
            consumer_tag: tag.into(),
        });
        if auto_delete {
            self.delete_queue_now(vhost_name, queue, Some(on.connection));
        }
    }
}

/// Where a stream consumer starts, after RabbitMQ 3.10's checks in its order: the consume
/// arguments (`x-stream-offset` read, then those a stream does not take refused), then a
/// prefetch must be set (406) and acks must be manual (540) (`rabbit_stream_queue:consume/3`).
fn stream_start(
    arguments: &FieldTable,
    queue: &str,
    vhost: &str,
    prefetch: u16,
    no_ack: bool,
) -> AmqpResult<StartAt> {
    let start = StartAt::parse(arguments, &|why| {
        AmqpError::precondition_failed(format!(
            "invalid arg 'x-stream-offset' for queue '{queue}' in vhost '{vhost}': {why}"
        ))
    })?;
    const NOT_FOR_STREAMS: &[&str] = &["x-priority", "x-cancel-on-ha-failover"];
    if let Some(arg) = arguments
        .inner()
        .keys()
        .find(|k| NOT_FOR_STREAMS.contains(&k.as_str()))
    {
        return Err(refused_arg(queue, vhost, arg.as_str(), QueueType::Stream));
    }
    if prefetch == 0 {
        return Err(AmqpError::precondition_failed(format!(
            "consumer prefetch count is not set for 'queue '{queue}' in vhost '{vhost}''"
        )));
    }
    if no_ack {
        return Err(AmqpError::not_implemented(format!(
            "automatic acknowledgement not supported by stream queues queue '{queue}' in vhost '{vhost}'"
        )));
    }
    Ok(start)
}
