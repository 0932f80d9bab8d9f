//! Queues: ready messages in order (per priority when `x-max-priority` is set), consumers in
//! round-robin order, the limits set by `x-` arguments, and what sets a quorum queue apart.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amq_protocol::types::{AMQPValue, FieldTable};

use super::args;
use super::error::{AmqpError, AmqpResult};
use super::exchange::{Binding, Destination, SourcedBinding};
use super::message::{with_delivery_count, Message, QueuedMessage};
use super::stream::{self, StreamLimits, StreamLog};
use super::ChannelRef;
use crate::events::ConnectionId;
pub use crate::topology::QueueType;

/// What a full queue does with a new message (`x-overflow`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    DropHead,
    RejectPublish,
    RejectPublishDlx,
}

/// Why unacked messages go back to their queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveBack {
    /// basic.nack or basic.reject with requeue, or basic.recover.
    ByClient,
    /// The channel (or its connection) closed with the messages unacked.
    ChannelClosed,
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
    /// `x-queue-type`: what kind of queue the arguments ask for.
    pub queue_type: QueueType,
    /// `x-delivery-limit` (quorum queues): a message given back more often than this is
    /// dead-lettered (or dropped) instead of requeued.
    pub delivery_limit: Option<i64>,
    /// `x-quorum-initial-group-size`: how many nodes a cluster would put the queue on.
    pub initial_group_size: Option<u64>,
    /// A stream's retention and segment size (see [`stream`]).
    pub stream: StreamLimits,
}

/// The longest queue TTL or message TTL RabbitMQ accepts, in milliseconds (ten years).
const MAX_EXPIRY: u64 = 315_360_000_000;

/// The highest `x-max-priority` RabbitMQ accepts.
const MAX_PRIORITY: u64 = 255;

/// The "invalid arg" refusal RabbitMQ gives for a queue argument it will not take.
fn invalid_arg(queue: &str, vhost: &str, arg: &str, why: &str) -> AmqpError {
    AmqpError::precondition_failed(format!(
        "invalid arg '{arg}' for queue '{queue}' in vhost '{vhost}': {why}"
    ))
}

/// A non-negative integer argument, or RabbitMQ's refusal of it (`check_non_neg_int_arg`);
/// `invalid` words the refusal.
pub fn non_negative_arg(
    arguments: &FieldTable,
    arg: &str,
    invalid: &dyn Fn(&str, &str) -> AmqpError,
) -> AmqpResult<Option<u64>> {
    match arguments.inner().get(arg) {
        None => Ok(None),
        Some(v) => match args::get_int(arguments, arg) {
            Ok(Some(n)) if n < 0 => Err(invalid(arg, &format!("{{value_negative,{n}}}"))),
            Ok(n) => Ok(n.map(|n| n as u64)),
            Err(args::NotAnInteger) => Err(invalid(
                arg,
                &format!("\"expected integer, got {}\"", args::type_name(v)),
            )),
        },
    }
}

/// The refusal of an argument RabbitMQ knows but a queue of type `of` does not take.
pub fn refused_arg(queue: &str, vhost: &str, arg: &str, of: QueueType) -> AmqpError {
    AmqpError::precondition_failed(format!(
        "invalid arg '{arg}' for queue '{queue}' in vhost '{vhost}' of queue type {}",
        of.module()
    ))
}

impl QueueLimits {
    /// Reads and validates the arguments the way RabbitMQ does on queue.declare: one argument
    /// after another in RabbitMQ's order, so a declare with several bad ones names the same one.
    pub fn parse(queue: &str, vhost: &str, arguments: &FieldTable) -> AmqpResult<QueueLimits> {
        let invalid = |arg: &str, why: &str| invalid_arg(queue, vhost, arg, why);
        let non_negative = |arg: &str| non_negative_arg(arguments, arg, &invalid);
        // Only a long string will do where RabbitMQ expects a string.
        let string = |arg: &str| -> AmqpResult<Option<String>> {
            match arguments.inner().get(arg) {
                None => Ok(None),
                Some(AMQPValue::LongString(s)) => {
                    Ok(Some(String::from_utf8_lossy(s.as_bytes()).into_owned()))
                }
                Some(v) => Err(invalid(
                    arg,
                    &format!("{{unacceptable_type,{}}}", args::type_name(v)),
                )),
            }
        };
        let expiry = |arg: &str, n: u64| {
            if n > MAX_EXPIRY {
                Err(invalid(arg, &format!("{{value_too_large,{n}}}")))
            } else {
                Ok(Duration::from_millis(n))
            }
        };
        let mut limits = QueueLimits {
            queue_type: QueueType::of(queue, vhost, arguments)?,
            ..QueueLimits::default()
        };
        if limits.queue_type == QueueType::Stream {
            let refused = |arg: &str| refused_arg(queue, vhost, arg, QueueType::Stream);
            limits.stream = stream::parse_limits(arguments, &invalid, &refused)?;
            return Ok(limits);
        }
        // Quorum queues refuse these two whatever their value (see `refuse_unsupported`).
        let reads_priority_and_mode = limits.queue_type != QueueType::Quorum;
        if let Some(n) = non_negative("x-expires")? {
            if n == 0 {
                return Err(invalid("x-expires", "{value_zero,0}"));
            }
            limits.expires = Some(expiry("x-expires", n)?);
        }
        if let Some(n) = non_negative("x-message-ttl")? {
            limits.message_ttl = Some(expiry("x-message-ttl", n)?);
        }
        // A non-string x-dead-letter-exchange was refused before the arguments are read.
        limits.dead_letter_exchange = args::get_string(arguments, "x-dead-letter-exchange");
        limits.dead_letter_routing_key = string("x-dead-letter-routing-key")?;
        if limits.dead_letter_routing_key.is_some() && limits.dead_letter_exchange.is_none() {
            return Err(invalid(
                "x-dead-letter-routing-key",
                "routing_key_but_no_dlx_defined",
            ));
        }
        limits.max_length = non_negative("x-max-length")?.map(|n| n as usize);
        limits.max_length_bytes = non_negative("x-max-length-bytes")?.map(|n| n as usize);
        if let Some(n) = non_negative("x-max-priority")?.filter(|_| reads_priority_and_mode) {
            if n > MAX_PRIORITY {
                return Err(invalid(
                    "x-max-priority",
                    &format!("{{max_value_exceeded,{n}}}"),
                ));
            }
            limits.max_priority = Some(n as u8);
        }
        limits.overflow = match string("x-overflow")?.as_deref() {
            None => None,
            Some("drop-head") => Some(Overflow::DropHead),
            Some("reject-publish") => Some(Overflow::RejectPublish),
            Some("reject-publish-dlx") => Some(Overflow::RejectPublishDlx),
            Some(_) => return Err(invalid("x-overflow", "invalid_overflow")),
        };
        match string("x-queue-mode")?
            .filter(|_| reads_priority_and_mode)
            .as_deref()
        {
            None | Some("default") | Some("lazy") => {}
            Some(other) => {
                return Err(invalid(
                    "x-queue-mode",
                    &format!("\"unsupported queue mode '{other}'\""),
                ))
            }
        }
        string("x-queue-type")?;
        if limits.queue_type == QueueType::Quorum {
            // RabbitMQ takes any value here; only an integer sets a limit.
            limits.delivery_limit = args::get_int(arguments, "x-delivery-limit").ok().flatten();
            if let Some(n) = non_negative("x-quorum-initial-group-size")? {
                if n == 0 {
                    return Err(invalid("x-quorum-initial-group-size", "{value_zero,0}"));
                }
                limits.initial_group_size = Some(n);
            }
        }
        limits
            .queue_type
            .refuse_unsupported(queue, vhost, arguments)?;
        Ok(limits)
    }
}

/// Arguments RabbitMQ knows but a classic queue does not take.
const NOT_CLASSIC: &[&str] = &[
    "x-delivery-limit",
    "x-dead-letter-strategy",
    "x-initial-cluster-size",
    "x-max-age",
    "x-max-in-memory-bytes",
    "x-max-in-memory-length",
    "x-queue-leader-locator",
    "x-quorum-initial-group-size",
    "x-stream-max-segment-size-bytes",
];

/// Arguments RabbitMQ knows but a quorum queue does not take (3.10: no priorities, no lazy
/// mode, no classic mirroring locator, no stream retention).
const NOT_QUORUM: &[&str] = &[
    "x-initial-cluster-size",
    "x-max-age",
    "x-max-priority",
    "x-queue-master-locator",
    "x-queue-mode",
    "x-stream-max-segment-size-bytes",
];

// The kind of queue `x-queue-type` asks for (the type is the topology's). A quorum queue
// behaves as on one RabbitMQ 3.10 node: it counts redeliveries (`x-delivery-count`,
// `x-delivery-limit`), puts what a client gives back at its back, and overflows its own way
// (see `Queue::refuses_publish`). A stream is a log that consuming does not shorten (see the
// `stream` module).
impl QueueType {
    /// The type a declare asks for; RabbitMQ refuses a type it does not know before it reads
    /// any other argument. A type that is not a string is refused with the other arguments.
    pub fn of(queue: &str, vhost: &str, arguments: &FieldTable) -> AmqpResult<QueueType> {
        match arguments.inner().get("x-queue-type") {
            Some(AMQPValue::LongString(s)) => match s.as_bytes() {
                b"classic" => Ok(QueueType::Classic),
                b"quorum" => Ok(QueueType::Quorum),
                b"stream" => Ok(QueueType::Stream),
                other => Err(invalid_arg(
                    queue,
                    vhost,
                    "x-queue-type",
                    &format!(
                        "\"unsupported queue type '{}'\"",
                        String::from_utf8_lossy(other)
                    ),
                )),
            },
            _ => Ok(QueueType::Classic),
        }
    }

    /// RabbitMQ's module name for the type, as its refusals spell it.
    pub fn module(self) -> &'static str {
        match self {
            QueueType::Classic => "rabbit_classic_queue",
            QueueType::Quorum => "rabbit_quorum_queue",
            QueueType::Stream => "rabbit_stream_queue",
        }
    }

    /// 406 for the first argument (in table order) that RabbitMQ knows but this type does
    /// not take. Unknown arguments pass, as on RabbitMQ. Streams check theirs in
    /// [`stream::parse_limits`].
    fn refuse_unsupported(
        self,
        queue: &str,
        vhost: &str,
        arguments: &FieldTable,
    ) -> AmqpResult<()> {
        let refused = match self {
            QueueType::Classic => NOT_CLASSIC,
            QueueType::Quorum => NOT_QUORUM,
            QueueType::Stream => stream::NOT_STREAM,
        };
        match arguments
            .inner()
            .keys()
            .find(|k| refused.contains(&k.as_str()))
        {
            Some(arg) => Err(refused_arg(queue, vhost, arg.as_str(), self)),
            None => Ok(()),
        }
    }

    /// Replicated queues must be durable and can be neither auto-delete nor exclusive; RabbitMQ
    /// checks after the arguments, auto-delete first, then exclusive, then durable.
    pub fn check_properties(
        self,
        queue: &str,
        vhost: &str,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
    ) -> AmqpResult<()> {
        if self == QueueType::Classic {
            return Ok(());
        }
        let refused = [
            (auto_delete, "auto-delete"),
            (exclusive, "exclusive-owner"),
            (!durable, "non-durable"),
        ];
        match refused.iter().find(|(bad, _)| *bad) {
            Some((_, property)) => Err(AmqpError::precondition_failed(format!(
                "invalid property '{property}' for queue '{queue}' in vhost '{vhost}'"
            ))),
            None => Ok(()),
        }
    }
}

/// A consumer attached to a queue.
#[derive(Clone, Debug)]
pub struct Consumer {
    pub tag: Arc<str>,
    /// The channel it consumes on.
    pub on: ChannelRef,
    pub no_ack: bool,
    pub exclusive: bool,
    /// Per-consumer prefetch (basic.qos global=false); 0 means unlimited.
    pub prefetch: u16,
    /// `x-priority`: higher-priority consumers get messages while they have room.
    pub priority: i64,
    pub unacked: u32,
    /// On a stream: the offset it reads next.
    pub offset: u64,
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
    /// A quorum queue with `reject-publish` went over its limit: it refuses publishes until
    /// it is back to 80% of its limits.
    publishes_refused: bool,
    /// A stream's log (None for other queues, whose messages are in `levels`).
    pub stream: Option<StreamLog>,
    /// A quorum queue delivers a stored message only once the store has written it: those
    /// with a sequence number from here on wait (see `state::persistence::Unwritten`).
    pub written_below: u64,
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
        let stream = (limits.queue_type == QueueType::Stream).then(StreamLog::default);
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
            written_below: 0,
            unacked: 0,
            stats: QueueStats::default(),
            publishes_refused: false,
            stream,
        }
    }

    /// What the queue does when full. Quorum queues (3.10) take `reject-publish-dlx` but drop
    /// from the head instead, as they do by default.
    pub fn overflow(&self) -> Overflow {
        match self.limits.overflow {
            Some(Overflow::RejectPublishDlx) if self.limits.queue_type == QueueType::Quorum => {
                Overflow::DropHead
            }
            other => other.unwrap_or(Overflow::DropHead),
        }
    }

    /// Whether `reject-publish` refuses a message of `size` bytes now. A classic queue refuses
    /// what would take it over a limit; a quorum queue takes messages until it is over a limit,
    /// then refuses them until it is back to 80% of its limits.
    pub fn refuses_publish(&mut self, size: usize) -> bool {
        if self.limits.queue_type == QueueType::Quorum {
            self.lift_publish_block();
            self.publishes_refused
        } else {
            self.is_full_for(size)
        }
    }

    /// A quorum queue with `reject-publish` over a limit starts refusing publishes.
    fn block_publishes_when_over(&mut self) {
        if self.limits.queue_type == QueueType::Quorum
            && self.overflow() == Overflow::RejectPublish
            && self.is_over_limit()
        {
            self.publishes_refused = true;
        }
    }

    /// Back to 80% of its limits (rounded down), a quorum queue takes publishes again.
    fn lift_publish_block(&mut self) {
        let below = |max: Option<usize>, now: usize| max.is_none_or(|max| now <= max * 4 / 5);
        if self.publishes_refused
            && below(self.limits.max_length, self.ready())
            && below(self.limits.max_length_bytes, self.ready_bytes)
        {
            self.publishes_refused = false;
        }
    }

    /// The message as this queue hands it to a client: a quorum queue tells how many times
    /// it was given back (`x-delivery-count`); a classic queue sends it as published.
    pub fn outgoing(&self, message: &QueuedMessage) -> Arc<Message> {
        if self.limits.queue_type == QueueType::Quorum {
            Arc::new(with_delivery_count(
                &message.message,
                message.delivery_count,
            ))
        } else {
            message.message.clone()
        }
    }

    /// The `x-delivery-count` a quorum queue hands the message out with (None elsewhere).
    pub fn delivery_count(&self, message: &QueuedMessage) -> Option<u32> {
        (self.limits.queue_type == QueueType::Quorum).then_some(message.delivery_count)
    }

    /// Marks a message a client gave back as redelivered; a quorum queue also counts the
    /// return (see [`Queue::over_delivery_limit`]).
    pub fn count_return(&self, message: &mut QueuedMessage) {
        message.redelivered = true;
        if self.limits.queue_type == QueueType::Quorum {
            message.delivery_count += 1;
        }
    }

    /// Whether a message given back now has been given back more often than the queue's
    /// `x-delivery-limit` allows (RabbitMQ compares the new count with `>`).
    pub fn over_delivery_limit(&self, message: &QueuedMessage) -> bool {
        self.limits
            .delivery_limit
            .is_some_and(|limit| i64::from(message.delivery_count) > limit)
    }

    /// Messages ready for delivery; on a stream, every message the log holds (what RabbitMQ
    /// counts as `messages` and `messages_ready` for a stream).
    pub fn ready(&self) -> usize {
        match &self.stream {
            Some(log) => log.len(),
            None => self.levels.iter().map(VecDeque::len).sum(),
        }
    }

    pub fn ready_bytes(&self) -> usize {
        match &self.stream {
            Some(log) => log.bytes() as usize,
            None => self.ready_bytes,
        }
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
        self.block_publishes_when_over();
    }

    /// Puts a message back in its original place (by sequence number), as RabbitMQ does on requeue.
    pub fn requeue(&mut self, message: QueuedMessage) {
        self.ready_bytes += message.message.body.len();
        let level = self.level_of(&message);
        let deque = &mut self.levels[level];
        let at = deque.partition_point(|m| m.seq < message.seq);
        deque.insert(at, message);
        self.block_publishes_when_over();
    }

    /// Puts back a message a client had (see [`GiveBack`]). A classic queue puts it back in
    /// its place. A quorum queue (3.10) puts what a client returned (nack, reject, recover) at
    /// the back, and what a closed channel returned at the front: `front` is how many messages
    /// the same close already put there, so they keep their order.
    pub fn give_back(&mut self, message: QueuedMessage, how: GiveBack, front: usize) {
        if self.limits.queue_type != QueueType::Quorum {
            return self.requeue(message);
        }
        match how {
            GiveBack::ByClient => self.push_back(message),
            GiveBack::ChannelClosed => {
                // A quorum queue has no priorities: one level.
                self.ready_bytes += message.message.body.len();
                let at = front.min(self.levels[0].len());
                self.levels[0].insert(at, message);
                self.block_publishes_when_over();
            }
        }
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
        self.lift_publish_block();
        Some(message)
    }

    /// The oldest message regardless of priority, for drop-head.
    pub fn pop_oldest(&mut self) -> Option<QueuedMessage> {
        let level = (0..self.levels.len())
            .filter(|&l| !self.levels[l].is_empty())
            .min_by_key(|&l| self.levels[l].front().map(|m| m.seq))?;
        let message = self.levels[level].pop_front()?;
        self.ready_bytes -= message.message.body.len();
        self.lift_publish_block();
        Some(message)
    }

    /// Removes every ready message; returns them.
    pub fn drain(&mut self) -> Vec<QueuedMessage> {
        self.ready_bytes = 0;
        let drained = self.levels.iter_mut().flat_map(|d| d.drain(..)).collect();
        self.lift_publish_block();
        drained
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

    pub fn consumer_mut(&mut self, tag: &str, on: ChannelRef) -> Option<&mut Consumer> {
        self.consumers
            .iter_mut()
            .find(|c| &*c.tag == tag && c.on == on)
    }

    pub fn remove_consumer(&mut self, tag: &str, on: ChannelRef) -> Option<Consumer> {
        let i = self
            .consumers
            .iter()
            .position(|c| &*c.tag == tag && c.on == on)?;
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
