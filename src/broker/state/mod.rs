//! Everything the broker knows, and the AMQP rules applied to it. The [`Broker`] facade
//! calls in with the lock held; nothing here does I/O or waits.
//!
//! This file holds the [`State`] struct, the per-connection and per-channel records it keeps,
//! and the small helpers every concern uses (permission checks, events, the journal). Each
//! other file is one `impl State` block for one concern:
//!
//! - `connections`: connections and channels opening and closing;
//! - `exchanges`: exchange.declare / delete, and bind / unbind;
//! - `queues`: queue.declare / purge / delete;
//! - `equivalence`: the 406 rules for declaring again what exists;
//! - `consumers`: basic.qos, basic.consume, basic.cancel;
//! - `publish`: basic.publish, routing and enqueueing;
//! - `run`: dead-lettering and the bounded work loop every operation ends with;
//! - `delivery`: dispatch to consumers, basic.get, ack / nack / reject / recover;
//! - `timers`: TTL and queue expiry;
//! - `streams`: appending to a stream and reading it from each consumer's offset;
//! - `persistence`: the restart image and restoring from it;
//! - `inspection`: snapshots, held memory, the "all gone" events of a restart.
//!
//! It may import the broker's parts (vhosts, exchanges, queues, the journal) and
//! `crate::events`; never the wire layer (`crate::amqp`) or anything above the broker.
//!
//! [`Broker`]: super::Broker

mod connections;
mod consumers;
mod delivery;
mod equivalence;
mod exchanges;
mod inspection;
mod persistence;
mod publish;
mod queues;
mod run;
mod streams;
mod timers;

pub use consumers::ConsumeSpec;
pub use delivery::{GetOk, Settle};
pub use exchanges::{BindingSpec, ExchangeSpec, Target};
pub use publish::{Publish, PublishOutcome};
pub use queues::{QueueDeclared, QueueSpec};

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use amq_protocol::protocol::BasicProperties;

use super::error::{AmqpError, AmqpResult};
use super::journal::StoreOp;
use super::maps::{HashMap, HashSet};
use super::message::QueuedMessage;
use super::permissions::{Access, Grant, Resource};
use super::queue::Queue;
use super::release::Behaviour;
use super::vhost::Vhost;
use super::{ClientSink, ConnectionSnapshot};
use crate::events::{ConnectionId, DeadLetterReason, Event, EventBus, EventKind};

/// The pseudo-queue for RabbitMQ's direct reply-to.
const REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// One channel of one connection: where most AMQP methods are sent from, and what the broker
/// answers on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChannelRef {
    pub connection: ConnectionId,
    pub channel: u16,
}

impl ChannelRef {
    /// Channel 1 of `connection`: the one channel the program's own connections have (see
    /// [`crate::broker::Broker::open_internal_connection`]).
    pub fn internal(connection: ConnectionId) -> ChannelRef {
        ChannelRef {
            connection,
            channel: 1,
        }
    }
}

/// Everything the broker knows. One per broker, behind its lock; a restart builds a new one.
pub struct State {
    /// The vhosts, each with its exchanges, queues and bindings: the topology itself. Public
    /// for the facade's few reads (vhost names, a binding's exact arguments).
    pub vhosts: HashMap<Arc<str>, Vhost>,
    /// Open connections: which vhost each works in, what its user may do, and where its
    /// deliveries go.
    connections: HashMap<ConnectionId, Connection>,
    /// Open channels: what each has delivered and awaits an ack for, and its qos limits.
    channels: HashMap<ChannelRef, Channel>,
    /// Where events go; emitting is skipped when nobody reads them.
    events: EventBus,
    /// The last message sequence number given out: a queue's messages keep their order by it,
    /// and the store keys messages by it.
    next_seq: u64,
    /// The last message id given out: events name a message by it.
    next_message_id: u64,
    /// Changes to durable things, for the store to write; None when nothing is stored.
    journal: Option<Vec<StoreOp>>,
    /// Appends to streams and quorum queues waiting for the store before consumers get them;
    /// None when consumers get appends at once (no store, or nothing hears its progress).
    unwritten: Option<persistence::Unwritten>,
    /// The properties of the last published event, as text: the messages of one publisher
    /// mostly share their properties, so their events share this list too.
    rendered_properties: Option<(Arc<BasicProperties>, PropertyPairs)>,
    /// While a publish is routed and delivered: its one timestamp for all the events it causes.
    publish_time: Option<SystemTime>,
    /// Messages that left a queue and wait to be dead-lettered, oldest first. Dead-lettering
    /// goes through this list rather than calling itself, so a chain of queues costs no stack.
    dying: VecDeque<Dying>,
    /// Queues still to dispatch when an operation used up its
    /// [`STEPS_PER_RUN`](run::STEPS_PER_RUN): the timer carries on with them after other
    /// clients had their turn.
    backlog: VecDeque<(Arc<str>, Arc<str>)>,
    /// Dead-letter cycles already logged, by (vhost, queue it would go back to, queue it died
    /// in): each is logged once, as RabbitMQ does, however many paths close it (a fanout
    /// dead-letter exchange makes many).
    cycles_logged: HashSet<(Arc<str>, Arc<str>, Arc<str>)>,
    /// Bytes of the deliveries waiting for an ack, by the memory alarm's measure.
    unacked_bytes: usize,
    /// The RabbitMQ release whose rules apply (see [`crate::broker::release`]).
    behaviour: Behaviour,
}

/// One open connection, as the broker sees it.
struct Connection {
    /// The vhost it opened: every name it uses is looked up there.
    vhost: Arc<str>,
    /// Who it is, as snapshots list it.
    info: ConnectionSnapshot,
    /// What the connection's user may do in its vhost.
    grant: Grant,
    /// Where its deliveries and cancels go.
    sink: ClientSink,
    /// Its open channels, so closing the connection closes each.
    channels: HashSet<u16>,
    /// Consumers per (channel, tag), so closing finds them without scanning queues.
    consumers: HashMap<(u16, Arc<str>), Arc<str>>,
}

/// One open channel.
#[derive(Default)]
struct Channel {
    /// The last delivery tag given out: tags count up per channel.
    delivery_tags: u64,
    /// Deliveries waiting for an ack, by delivery tag (ordered, for `multiple`).
    unacked: BTreeMap<u64, Unacked>,
    /// basic.qos global=true: a limit for the whole channel (0 = none).
    prefetch_channel: u16,
    /// basic.qos global=false: the limit given to consumers started afterwards.
    prefetch_consumer: u16,
    /// The last queue declared on this channel; `""` in later methods means it.
    last_queue: Option<String>,
    /// Consumer tag of a direct reply-to consumer on this channel.
    reply_consumer: Option<Arc<str>>,
    /// Consumers declared but not yet announced with consume-ok.
    not_ready: HashSet<Arc<str>>,
    /// The last message published here: the next one shares its properties, exchange and
    /// routing key when they are the same, rather than keeping copies of its own.
    last_published: Option<LastPublished>,
}

/// A delivery the client has not settled yet.
struct Unacked {
    /// The queue it came from, and goes back to if requeued.
    queue: Arc<str>,
    /// The consumer it went to (None: basic.get), whose prefetch it counts against.
    consumer_tag: Option<Arc<str>>,
    message: QueuedMessage,
    /// From a stream: its offset there. Nothing goes back to a stream, and the log holds it
    /// whether acked or not.
    stream_offset: Option<u64>,
}

impl Unacked {
    /// What it costs by the memory alarm's measure (a stream's log already counts it).
    fn bytes(&self) -> usize {
        if self.stream_offset.is_some() {
            return 0;
        }
        self.message.message.body.len() + crate::broker::MESSAGE_OVERHEAD
    }
}

/// What the last message published on a channel was sent with, to share with the next.
struct LastPublished {
    properties: Arc<BasicProperties>,
    exchange: Arc<str>,
    routing_key: Arc<str>,
}

/// A message on its way out of `queue`, to be dead-lettered for `reason`.
struct Dying {
    vhost: Arc<str>,
    queue: Arc<str>,
    message: QueuedMessage,
    reason: DeadLetterReason,
}

/// A message's properties as `name=value` pairs, as `Published` events carry them.
type PropertyPairs = Arc<[(String, String)]>;

/// 22 random letters and digits, for server-named queues and consumer tags.
fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..22)
        .map(|_| {
            let n: u8 = rng.random_range(0..62);
            (match n {
                0..=9 => b'0' + n,
                10..=35 => b'a' + n - 10,
                _ => b'A' + n - 36,
            }) as char
        })
        .collect()
}

impl State {
    /// A state with these vhosts (each with its predeclared exchanges) and nothing else.
    pub fn new(vhosts: &[String], events: EventBus) -> State {
        State {
            vhosts: vhosts
                .iter()
                .map(|v| (Arc::from(v.as_str()), Vhost::new(v)))
                .collect(),
            connections: HashMap::default(),
            channels: HashMap::default(),
            events,
            next_seq: 0,
            next_message_id: 0,
            journal: None,
            unwritten: None,
            rendered_properties: None,
            publish_time: None,
            dying: VecDeque::new(),
            backlog: VecDeque::new(),
            cycles_logged: HashSet::default(),
            unacked_bytes: 0,
            behaviour: Behaviour::default(),
        }
    }

    /// The release whose rules apply from now on.
    pub fn behave_as(&mut self, behaviour: Behaviour) {
        self.behaviour = behaviour;
    }

    pub fn behaviour(&self) -> &Behaviour {
        &self.behaviour
    }

    /// Goes on numbering messages after `old`, so a restarted broker's events never reuse the
    /// ids of the messages readers saw before.
    pub fn number_after(&mut self, old: &State) {
        self.next_message_id = self.next_message_id.max(old.next_message_id);
        self.next_seq = self.next_seq.max(old.next_seq);
    }

    /// From now on, record what the store must keep.
    pub fn keep_journal(&mut self) {
        self.journal = Some(Vec::new());
    }

    /// The changes recorded since the last call (None when there are none).
    pub fn take_journal(&mut self) -> Option<Vec<StoreOp>> {
        match &mut self.journal {
            Some(ops) if !ops.is_empty() => Some(std::mem::take(ops)),
            _ => None,
        }
    }

    fn record(&mut self, op: impl FnOnce() -> StoreOp) {
        if let Some(journal) = &mut self.journal {
            journal.push(op());
        }
    }

    /// The vhost map's shared copy of a vhost's name.
    fn vhost_key(&self, vhost: &str) -> Arc<str> {
        match self.vhosts.get_key_value(vhost) {
            Some((name, _)) => name.clone(),
            None => Arc::from(vhost),
        }
    }

    fn emit(
        &self,
        vhost: &str,
        connection: Option<ConnectionId>,
        channel: Option<u16>,
        kind: impl FnOnce() -> EventKind,
    ) {
        if self.events.has_readers() {
            self.events.emit(Event {
                at: self.publish_time.unwrap_or_else(SystemTime::now),
                vhost: self.vhost_key(vhost),
                connection,
                channel,
                kind: kind(),
            });
        }
    }

    /// Emits an event that happened on channel `on`.
    fn emit_on(&self, vhost: &str, on: ChannelRef, kind: impl FnOnce() -> EventKind) {
        self.emit(vhost, Some(on.connection), Some(on.channel), kind);
    }

    fn vhost_of(&self, connection: ConnectionId) -> AmqpResult<Arc<str>> {
        self.connections
            .get(&connection)
            .map(|c| c.vhost.clone())
            .ok_or_else(|| AmqpError::channel_error("connection not open"))
    }

    fn channel(&mut self, on: ChannelRef) -> AmqpResult<&mut Channel> {
        self.channels.get_mut(&on).ok_or_else(|| {
            AmqpError::channel_error(format!(
                "expected 'channel.open' for channel {}",
                on.channel
            ))
        })
    }

    /// Resolves `""` to the channel's last declared queue, as RabbitMQ does.
    fn queue_name(&mut self, on: ChannelRef, name: &str) -> AmqpResult<String> {
        if !name.is_empty() {
            return Ok(name.to_string());
        }
        match self.channel(on)?.last_queue.clone() {
            Some(last) => Ok(last),
            None => Err(AmqpError::not_found("no previously declared queue")),
        }
    }

    /// 403 unless the connection's user has `access` to `resource` in its vhost.
    fn permit(
        &self,
        connection: ConnectionId,
        access: Access,
        resource: Resource<'_>,
    ) -> AmqpResult<()> {
        self.connections
            .get(&connection)
            .ok_or_else(|| AmqpError::channel_error("connection not open"))?
            .grant
            .check(access, resource)
    }

    /// Queue `name` of `vhost`, for a method of `connection`: 404 when it does not exist, 405
    /// when it is another connection's exclusive queue.
    fn owned_queue(
        &mut self,
        vhost: &str,
        name: &str,
        connection: ConnectionId,
    ) -> AmqpResult<&mut Queue> {
        let queue =
            queue_mut(&mut self.vhosts, vhost, name).ok_or_else(|| missing_queue(vhost, name))?;
        Self::check_owner(queue, connection, vhost)?;
        Ok(queue)
    }

    /// Exclusive queues belong to one connection: 405 for everyone else.
    fn check_owner(queue: &Queue, connection: ConnectionId, vhost: &str) -> AmqpResult<()> {
        match queue.owner {
            Some(owner) if owner != connection => Err(AmqpError::resource_locked(format!(
                "cannot obtain exclusive access to locked queue '{}' in vhost '{vhost}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
                queue.name
            ))),
            _ => Ok(()),
        }
    }
}

/// 404 for a queue `name` that `vhost` does not have, in RabbitMQ's words.
fn missing_queue(vhost: &str, name: &str) -> AmqpError {
    AmqpError::not_found(format!("no queue '{name}' in vhost '{vhost}'"))
}

/// The exchanges every vhost has from the start; they are never stored.
fn is_predeclared(exchange: &str) -> bool {
    exchange.is_empty() || exchange.starts_with("amq.")
}

/// Queue `name` of `vhost`. A function of the vhosts alone, so a caller can hold the queue
/// while it uses the state's other fields (channels, connections, the journal).
pub(super) fn queue_mut<'a>(
    vhosts: &'a mut HashMap<Arc<str>, Vhost>,
    vhost: &str,
    name: &str,
) -> Option<&'a mut Queue> {
    vhosts.get_mut(vhost)?.queues.get_mut(name)
}
