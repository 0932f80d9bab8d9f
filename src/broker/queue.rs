//! Queues: ready messages in order (per priority when `x-max-priority` is set), consumers in
//! round-robin order, and the limits set by `x-` arguments.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amq_protocol::types::FieldTable;

use super::args;
use super::error::{AmqpError, AmqpResult};
use super::exchange::{Binding, Destination, SourcedBinding};
use super::message::QueuedMessage;
use crate::events::ConnectionId;

/// What a full queue does with a new message (`x-overflow`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    DropHead,
    RejectPublish,
    RejectPublishDlx,
}

/// The settings read from a queue's `x-` arguments.
#[derive(Clone, Debug, Default)]
pub struct QueueLimits {
    pub message_ttl: Option<Duration>,
    pub expires: Option<Duration>,
    pub max_length: Option<usize>,
    pub max_length_bytes: Option<usize>,
    pub overflow: Option<Overflow>,
    pub dead_letter_exchange: Option<String>,
    pub dead_letter_routing_key: Option<String>,
    pub max_priority: Option<u8>,
}

impl QueueLimits {
    /// Reads and validates the arguments the way RabbitMQ does on queue.declare.
    pub fn parse(queue: &str, vhost: &str, arguments: &FieldTable) -> AmqpResult<QueueLimits> {
        let invalid = |arg: &str, why: &str| {
            AmqpError::precondition_failed(format!(
                "invalid arg '{arg}' for queue '{queue}' in vhost '{vhost}': {why}"
            ))
        };
        let non_negative = |arg: &str| -> AmqpResult<Option<u64>> {
            match args::get_int(arguments, arg) {
                Err(args::NotAnInteger) => Err(invalid(arg, "not an integer")),
                Ok(Some(n)) if n < 0 => Err(invalid(arg, &format!("{{value_negative,{n}}}"))),
                Ok(n) => Ok(n.map(|n| n as u64)),
            }
        };
        let mut limits = QueueLimits {
            message_ttl: non_negative("x-message-ttl")?.map(Duration::from_millis),
            max_length: non_negative("x-max-length")?.map(|n| n as usize),
            max_length_bytes: non_negative("x-max-length-bytes")?.map(|n| n as usize),
            dead_letter_exchange: args::get_string(arguments, "x-dead-letter-exchange"),
            dead_letter_routing_key: args::get_string(arguments, "x-dead-letter-routing-key"),
            ..QueueLimits::default()
        };
        if let Some(n) = non_negative("x-expires")? {
            if n == 0 {
                return Err(invalid("x-expires", "{value_zero,0}"));
            }
            limits.expires = Some(Duration::from_millis(n));
        }
        if let Some(n) = non_negative("x-max-priority")? {
            limits.max_priority = Some(n.min(255) as u8);
        }
        limits.overflow = match args::get_string(arguments, "x-overflow").as_deref() {
            None => None,
            Some("drop-head") => Some(Overflow::DropHead),
            Some("reject-publish") => Some(Overflow::RejectPublish),
            Some("reject-publish-dlx") => Some(Overflow::RejectPublishDlx),
            Some(other) => {
                return Err(invalid("x-overflow", &format!("{{unknown_value,{other}}}")))
            }
        };
        Ok(limits)
    }
}

/// A consumer attached to a queue.
#[derive(Clone, Debug)]
pub struct Consumer {
    pub tag: Arc<str>,
    pub connection: ConnectionId,
    pub channel: u16,
    pub no_ack: bool,
    pub exclusive: bool,
    /// Per-consumer prefetch (basic.qos global=false); 0 means unlimited.
    pub prefetch: u16,
    /// `x-priority`: higher-priority consumers get messages while they have room.
    pub priority: i64,
    pub unacked: u32,
}

pub struct Queue {
    pub name: Arc<str>,
    pub durable: bool,
    pub auto_delete: bool,
    /// The connection that owns an exclusive queue.
    pub owner: Option<ConnectionId>,
    pub arguments: FieldTable,
    pub limits: QueueLimits,
    /// Ready messages, one deque per priority level (a single one without x-max-priority).
    levels: Vec<VecDeque<QueuedMessage>>,
    ready_bytes: usize,
    pub consumers: Vec<Consumer>,
    /// Round-robin position in `consumers`.
    pub next_consumer: usize,
    /// Auto-delete only applies once the queue has had a consumer.
    pub had_consumer: bool,
    pub last_used: Instant,
    /// Bindings that lead here (source exchange, binding), so deleting the queue is quick.
    pub bindings: Vec<SourcedBinding>,
    /// The implicit binding from the default exchange (routing key = queue name), kept so
    /// routing through the default exchange allocates nothing.
    pub default_binding: Arc<Binding>,
    pub unacked: usize,
    pub stats: QueueStats,
}

/// Counters shown by the inspector.
#[derive(Clone, Debug, Default)]
pub struct QueueStats {
    pub published: u64,
    pub delivered: u64,
    pub acked: u64,
}

impl Queue {
    pub fn new(
        name: &str,
        durable: bool,
        auto_delete: bool,
        owner: Option<ConnectionId>,
        arguments: FieldTable,
        limits: QueueLimits,
    ) -> Queue {
        let levels = limits.max_priority.map_or(1, |p| p as usize + 1);
        let name: Arc<str> = name.into();
        Queue {
            default_binding: Arc::new(Binding::new(
                Destination::Queue(name.clone()),
                &name,
                FieldTable::default(),
            )),
            name,
            durable,
            auto_delete,
            owner,
            arguments,
            limits,
            levels: (0..levels).map(|_| VecDeque::new()).collect(),
            ready_bytes: 0,
            consumers: Vec::new(),
            next_consumer: 0,
            had_consumer: false,
            last_used: Instant::now(),
            bindings: Vec::new(),
            unacked: 0,
            stats: QueueStats::default(),
        }
    }

    pub fn ready(&self) -> usize {
        self.levels.iter().map(VecDeque::len).sum()
    }

    pub fn ready_bytes(&self) -> usize {
        self.ready_bytes
    }

    fn level_of(&self, message: &QueuedMessage) -> usize {
        let priority = message.message.properties.priority().unwrap_or(0) as usize;
        priority.min(self.levels.len() - 1)
    }

    /// Whether one more message of `size` bytes would go over a length limit.
    pub fn is_full_for(&self, size: usize) -> bool {
        self.limits
            .max_length
            .is_some_and(|max| self.ready() >= max)
            || self
                .limits
                .max_length_bytes
                .is_some_and(|max| self.ready_bytes + size > max)
    }

    /// Whether the queue is over a length limit now.
    pub fn is_over_limit(&self) -> bool {
        self.limits.max_length.is_some_and(|max| self.ready() > max)
            || self
                .limits
                .max_length_bytes
                .is_some_and(|max| self.ready_bytes > max)
    }

    pub fn push_back(&mut self, message: QueuedMessage) {
        self.ready_bytes += message.message.body.len();
        let level = self.level_of(&message);
        self.levels[level].push_back(message);
    }

    /// Puts a message back in its original place (by sequence number), as RabbitMQ does on requeue.
    pub fn requeue(&mut self, message: QueuedMessage) {
        self.ready_bytes += message.message.body.len();
        let level = self.level_of(&message);
        let deque = &mut self.levels[level];
        let at = deque.partition_point(|m| m.seq < message.seq);
        deque.insert(at, message);
    }

    /// Every ready message, level by level.
    pub fn iter(&self) -> impl Iterator<Item = &QueuedMessage> {
        self.levels.iter().flatten()
    }

    /// The message that would be delivered next.
    pub fn peek(&self) -> Option<&QueuedMessage> {
        self.levels.iter().rev().find_map(|d| d.front())
    }

    pub fn pop_front(&mut self) -> Option<QueuedMessage> {
        let message = self.levels.iter_mut().rev().find_map(|d| d.pop_front())?;
        self.ready_bytes -= message.message.body.len();
        Some(message)
    }

    /// The oldest message regardless of priority, for drop-head.
    pub fn pop_oldest(&mut self) -> Option<QueuedMessage> {
        let level = (0..self.levels.len())
            .filter(|&l| !self.levels[l].is_empty())
            .min_by_key(|&l| self.levels[l].front().map(|m| m.seq))?;
        let message = self.levels[level].pop_front()?;
        self.ready_bytes -= message.message.body.len();
        Some(message)
    }

    /// Removes every ready message; returns them.
    pub fn drain(&mut self) -> Vec<QueuedMessage> {
        self.ready_bytes = 0;
        self.levels.iter_mut().flat_map(|d| d.drain(..)).collect()
    }

    /// Takes expired messages off the head. RabbitMQ expires only at the head, so a message with
    /// a long TTL keeps later short-TTL messages waiting behind it; we do the same.
    pub fn take_expired_head(&mut self, now: Instant) -> Option<QueuedMessage> {
        if self.peek()?.expires_at.is_some_and(|at| at <= now) {
            self.pop_front()
        } else {
            None
        }
    }

    /// The earliest instant at which the head may expire.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.levels
            .iter()
            .filter_map(|d| d.front()?.expires_at)
            .min()
    }

    pub fn consumer_mut(
        &mut self,
        tag: &str,
        connection: ConnectionId,
        channel: u16,
    ) -> Option<&mut Consumer> {
        self.consumers
            .iter_mut()
            .find(|c| &*c.tag == tag && c.connection == connection && c.channel == channel)
    }

    pub fn remove_consumer(
        &mut self,
        tag: &str,
        connection: ConnectionId,
        channel: u16,
    ) -> Option<Consumer> {
        let i = self
            .consumers
            .iter()
            .position(|c| &*c.tag == tag && c.connection == connection && c.channel == channel)?;
        if i < self.next_consumer {
            self.next_consumer -= 1;
        }
        let consumer = self.consumers.remove(i);
        if self.next_consumer >= self.consumers.len() {
            self.next_consumer = 0;
        }
        Some(consumer)
    }
}
