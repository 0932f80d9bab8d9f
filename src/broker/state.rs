//! Everything the broker knows, and the AMQP rules applied to it. Called with the lock held.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::broker::maps::{HashMap, HashSet};

use amq_protocol::protocol::BasicProperties;
use amq_protocol::types::FieldTable;
use bytes::Bytes;

use super::args;
use super::error::{AmqpError, AmqpResult};
use super::exchange::{Binding, Destination, Exchange, ExchangeKind};
use super::journal::{BindingImage, ExchangeImage, Image, QueueImage, StoreOp, StoredMessage};
use super::message::{dead_lettered, death_queues, is_cycle, Message, QueuedMessage};
use super::permissions::{Access, Grant, Resource};
use super::queue::{Consumer, Overflow, Queue, QueueLimits, QueueType};
use super::vhost::Vhost;
use super::{
    ClientSink, ConnectionSnapshot, ConsumerSnapshot, ExchangeSnapshot, QueueSnapshot, Snapshot,
    ToClient, VhostSnapshot,
};
use crate::events::{
    BindingInfo, ConnectionId, DeadLetterReason, Event, EventBus, EventKind, PublishFate,
};

/// The pseudo-queue for RabbitMQ's direct reply-to.
const REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// exchange.declare arguments.
#[derive(Clone, Debug, Default)]
pub struct ExchangeSpec {
    pub name: String,
    pub kind: String,
    pub passive: bool,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

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

/// queue.declare-ok.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueDeclared {
    pub name: String,
    pub message_count: u32,
    pub consumer_count: u32,
}

/// What the publisher must be told after a publish.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Mandatory and unroutable: send basic.return 312 NO_ROUTE.
    pub returned: bool,
    /// A full queue refused it (reject-publish): in confirm mode, nack instead of ack.
    pub rejected: bool,
    /// The store ticket to wait for before confirming (see [`super::Broker::durable`]): the
    /// message is persistent and reached a durable queue.
    pub durable_at: Option<u64>,
}

/// basic.get-ok.
#[derive(Clone, Debug)]
pub struct GetOk {
    pub delivery_tag: u64,
    pub redelivered: bool,
    pub message_count: u32,
    pub message: Arc<Message>,
}

/// The destination of a bind or unbind.
pub enum Target<'a> {
    Queue(&'a str),
    Exchange(&'a str),
}

pub enum Settle {
    Ack,
    Nack { requeue: bool },
    Reject { requeue: bool },
}

struct Connection {
    vhost: Arc<str>,
    /// Who it is, as snapshots list it.
    info: ConnectionSnapshot,
    /// What the connection's user may do in its vhost.
    grant: Grant,
    sink: ClientSink,
    channels: HashSet<u16>,
    /// Consumers per (channel, tag), so closing finds them without scanning queues.
    consumers: HashMap<(u16, Arc<str>), Arc<str>>,
}

struct Unacked {
    queue: Arc<str>,
    consumer_tag: Option<Arc<str>>,
    message: QueuedMessage,
}

impl Unacked {
    /// What it costs by the memory alarm's measure.
    fn bytes(&self) -> usize {
        self.message.message.body.len() + super::MESSAGE_OVERHEAD
    }
}

#[derive(Default)]
struct Channel {
    delivery_tags: u64,
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

struct LastPublished {
    properties: Arc<BasicProperties>,
    exchange: Arc<str>,
    routing_key: Arc<str>,
}

/// `last` when it holds the same text, else a new copy of `text`.
fn share_str(last: Option<&Arc<str>>, text: &str) -> Arc<str> {
    match last {
        Some(last) if **last == *text => last.clone(),
        _ => Arc::from(text),
    }
}

pub struct State {
    pub vhosts: HashMap<Arc<str>, Vhost>,
    connections: HashMap<ConnectionId, Connection>,
    channels: HashMap<(ConnectionId, u16), Channel>,
    events: EventBus,
    next_seq: u64,
    next_message_id: u64,
    /// Changes to durable things, for the store to write; None when nothing is stored.
    journal: Option<Vec<StoreOp>>,
    /// The properties of the last published event, as text: the messages of one publisher
    /// mostly share their properties, so their events share this list too.
    rendered_properties: Option<(Arc<BasicProperties>, PropertyPairs)>,
    /// While a publish is routed and delivered: its one timestamp for all the events it causes.
    publish_time: Option<SystemTime>,
    /// Messages that left a queue and wait to be dead-lettered, oldest first. Dead-lettering
    /// goes through this list rather than calling itself, so a chain of queues costs no stack.
    dying: VecDeque<Dying>,
    /// Queues still to dispatch when an operation used up its [`STEPS_PER_RUN`]: the timer
    /// carries on with them after other clients had their turn.
    backlog: VecDeque<(Arc<str>, Arc<str>)>,
    /// Dead-letter cycles already logged, by (vhost, queue it would go back to, queue it died
    /// in): each is logged once, as RabbitMQ does, however many paths close it (a fanout
    /// dead-letter exchange makes many).
    cycles_logged: HashSet<(Arc<str>, Arc<str>, Arc<str>)>,
    /// Bytes of the deliveries waiting for an ack, by the memory alarm's measure.
    unacked_bytes: usize,
}

/// A message on its way out of `queue`, to be dead-lettered for `reason`.
struct Dying {
    vhost: Arc<str>,
    queue: Arc<str>,
    message: QueuedMessage,
    reason: DeadLetterReason,
}

/// How many messages one operation dead-letters or expires before it lets go of the broker.
/// Dead-lettering fans out (a fanout dead-letter exchange copies each message to every queue
/// it binds, and those may dead-letter again), so the work one publish causes has no bound of
/// its own; what is left over is done by the timer, a slice at a time.
const STEPS_PER_RUN: usize = 1_000;

/// At most this many distinct cycles are remembered as logged; after that they are not logged.
const CYCLES_LOGGED_MAX: usize = 1_000;

/// A message's properties as `name=value` pairs, as `Published` events carry them.
type PropertyPairs = Arc<[(String, String)]>;

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
            rendered_properties: None,
            publish_time: None,
            dying: VecDeque::new(),
            backlog: VecDeque::new(),
            cycles_logged: HashSet::default(),
            unacked_bytes: 0,
        }
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

    /// Emits `Published`, rendering the message's properties only when they differ from the
    /// last event's.
    fn emit_published(
        &mut self,
        vhost: &str,
        from: Option<(ConnectionId, u16)>,
        message: &Message,
        route: super::vhost::Route,
        fate: PublishFate,
    ) {
        if !self.events.has_readers() {
            return;
        }
        let properties = match &self.rendered_properties {
            Some((of, pairs)) if Arc::ptr_eq(of, &message.properties) => pairs.clone(),
            _ => {
                let pairs: PropertyPairs = property_pairs(&message.properties).into();
                self.rendered_properties = Some((message.properties.clone(), pairs.clone()));
                pairs
            }
        };
        let (connection, channel) = from.unzip();
        self.emit(vhost, connection, channel, || {
            published_event(message, route, properties, fate)
        });
    }

    fn vhost_of(&self, connection: ConnectionId) -> AmqpResult<Arc<str>> {
        self.connections
            .get(&connection)
            .map(|c| c.vhost.clone())
            .ok_or_else(|| AmqpError::channel_error("connection not open"))
    }

    fn channel(&mut self, connection: ConnectionId, channel: u16) -> AmqpResult<&mut Channel> {
        self.channels
            .get_mut(&(connection, channel))
            .ok_or_else(|| {
                AmqpError::channel_error(format!("expected 'channel.open' for channel {channel}"))
            })
    }

    /// Resolves `""` to the channel's last declared queue, as RabbitMQ does.
    fn queue_name(
        &mut self,
        connection: ConnectionId,
        channel: u16,
        name: &str,
    ) -> AmqpResult<String> {
        if !name.is_empty() {
            return Ok(name.to_string());
        }
        match self.channel(connection, channel)?.last_queue.clone() {
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

    // ---- connections and channels ----

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

    pub fn close_connection(&mut self, id: ConnectionId, reason: &str) {
        let Some(channels) = self.connections.get(&id).map(|c| c.channels.clone()) else {
            return;
        };
        let mut channels: Vec<u16> = channels.into_iter().collect();
        channels.sort_unstable();
        for channel in channels {
            self.close_channel(id, channel, reason);
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

    pub fn has_connection(&self, id: ConnectionId) -> bool {
        self.connections.contains_key(&id)
    }

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

    pub fn open_channel(&mut self, connection: ConnectionId, channel: u16) {
        if let Some(c) = self.connections.get_mut(&connection) {
            c.channels.insert(channel);
            self.channels
                .insert((connection, channel), Channel::default());
            let vhost = c.vhost.clone();
            self.emit(&vhost, Some(connection), Some(channel), || {
                EventKind::ChannelOpened
            });
        }
    }

    /// Closes a channel: its consumers are cancelled and its unacked messages requeued.
    pub fn close_channel(&mut self, connection: ConnectionId, channel: u16, reason: &str) {
        let Some(state) = self.channels.remove(&(connection, channel)) else {
            return;
        };
        let Ok(vhost) = self.vhost_of(connection) else {
            return;
        };
        let tags: Vec<(Arc<str>, Arc<str>)> = {
            let c = self
                .connections
                .get_mut(&connection)
                .expect("checked above");
            c.channels.remove(&channel);
            let tags: Vec<_> = c
                .consumers
                .iter()
                .filter(|((ch, _), _)| *ch == channel)
                .map(|((_, tag), q)| (tag.clone(), q.clone()))
                .collect();
            for (tag, _) in &tags {
                c.consumers.remove(&(channel, tag.clone()));
            }
            tags
        };
        let mut work = VecDeque::new();
        for (tag, queue) in tags {
            self.remove_consumer(&vhost, &queue, connection, channel, &tag);
            work.push_back((vhost.clone(), queue));
        }
        let unacked: Vec<Unacked> = state.unacked.into_values().collect();
        self.unacked_bytes -= unacked.iter().map(Unacked::bytes).sum::<usize>();
        work.extend(self.requeue_all(&vhost, connection, unacked));
        self.run(work);
        self.emit(&vhost, Some(connection), Some(channel), || {
            EventKind::ChannelClosed {
                reason: reason.to_string(),
            }
        });
    }

    /// Puts unacked messages back in their queues, in order, marked redelivered.
    fn requeue_all(
        &mut self,
        vhost: &str,
        connection: ConnectionId,
        mut unacked: Vec<Unacked>,
    ) -> Vec<(Arc<str>, Arc<str>)> {
        unacked.sort_by_key(|u| u.message.seq);
        let mut touched = Vec::new();
        for u in unacked {
            let id = u.message.message.id;
            if let Some(queue) = self
                .vhosts
                .get_mut(vhost)
                .and_then(|v| v.queues.get_mut(&u.queue))
            {
                queue.unacked = queue.unacked.saturating_sub(1);
                if let Some(tag) = &u.consumer_tag {
                    if let Some(c) = queue
                        .consumers
                        .iter_mut()
                        .find(|c| c.tag == *tag && c.connection == connection)
                    {
                        c.unacked = c.unacked.saturating_sub(1);
                    }
                }
                let mut message = u.message;
                message.redelivered = true;
                queue.requeue(message);
                let name = queue.name.clone();
                self.emit(vhost, Some(connection), None, || EventKind::Requeued {
                    message_id: id,
                    queue: name,
                });
                if !touched.iter().any(|(_, q)| *q == u.queue) {
                    touched.push((Arc::from(vhost), u.queue));
                }
            }
        }
        touched
    }

    // ---- exchanges ----

    pub fn exchange_declare(
        &mut self,
        connection: ConnectionId,
        channel: u16,
        spec: ExchangeSpec,
    ) -> AmqpResult<()> {
        let vhost_name = self.vhost_of(connection)?;
        let vhost = self
            .vhosts
            .get_mut(&vhost_name)
            .expect("vhost of a connection exists");
        if spec.passive {
            vhost.exchange(&spec.name)?;
            return Ok(());
        }
        let Some(kind) = ExchangeKind::parse(&spec.kind) else {
            return Err(AmqpError::command_invalid(format!(
                "unknown exchange type '{}'",
                spec.kind
            )));
        };
        if spec.name.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        self.permit(
            connection,
            Access::Configure,
            Resource::Exchange(&spec.name),
        )?;
        let vhost = self.vhosts.get_mut(&vhost_name).expect("vhost exists");
        if let Some(existing) = vhost.exchanges.get(spec.name.as_str()) {
            let inequivalent = |arg: &str,
                                received: &dyn std::fmt::Display,
                                current: &dyn std::fmt::Display| {
                AmqpError::precondition_failed(format!(
                    "inequivalent arg '{arg}' for exchange '{}' in vhost '{vhost_name}': received '{received}' but current is '{current}'",
                    spec.name
                ))
            };
            if existing.kind != kind {
                return Err(inequivalent("type", &spec.kind, &existing.kind.as_str()));
            }
            if existing.durable != spec.durable {
                return Err(inequivalent("durable", &spec.durable, &existing.durable));
            }
            if existing.auto_delete != spec.auto_delete {
                return Err(inequivalent(
                    "auto_delete",
                    &spec.auto_delete,
                    &existing.auto_delete,
                ));
            }
            if existing.internal != spec.internal {
                return Err(inequivalent("internal", &spec.internal, &existing.internal));
            }
            if args::pairs(&existing.arguments) != args::pairs(&spec.arguments) {
                return Err(AmqpError::precondition_failed(format!(
                    "inequivalent arg 'arguments' for exchange '{}' in vhost '{vhost_name}'",
                    spec.name
                )));
            }
            return Ok(());
        }
        if spec.name.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "exchange name '{}' contains reserved prefix 'amq.*'",
                spec.name
            )));
        }
        // A new exchange with an alternate exchange: its messages will be read from it and
        // written to the alternate.
        if let Some(alternate) = args::get_string(&spec.arguments, "alternate-exchange") {
            self.permit(connection, Access::Read, Resource::Exchange(&spec.name))?;
            self.permit(connection, Access::Write, Resource::Exchange(&alternate))?;
        }
        let vhost = self.vhosts.get_mut(&vhost_name).expect("vhost exists");
        let exchange = Exchange::new(
            &spec.name,
            kind,
            spec.durable,
            spec.auto_delete,
            spec.internal,
            spec.arguments.clone(),
        );
        let name = exchange.name.clone();
        vhost.exchanges.insert(name.clone(), exchange);
        if spec.durable {
            self.record(|| StoreOp::ExchangeDeclared {
                vhost: vhost_name.clone(),
                name,
                kind: kind.as_str().into(),
                auto_delete: spec.auto_delete,
                internal: spec.internal,
                arguments: spec.arguments.clone(),
            });
        }
        self.emit(&vhost_name, Some(connection), Some(channel), || {
            EventKind::ExchangeDeclared {
                name: spec.name.as_str().into(),
                kind: kind.as_str().into(),
                durable: spec.durable,
                auto_delete: spec.auto_delete,
                internal: spec.internal,
                arguments: args::pairs(&spec.arguments),
            }
        });
        Ok(())
    }

    pub fn exchange_delete(
        &mut self,
        connection: ConnectionId,
        channel: u16,
        name: &str,
        if_unused: bool,
    ) -> AmqpResult<()> {
        let vhost_name = self.vhost_of(connection)?;
        if name.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        // Missing or not, no `amq.` exchange may be deleted (checked before permissions).
        if name.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "deletion of system exchange '{name}' in vhost '{vhost_name}' not allowed"
            )));
        }
        self.permit(connection, Access::Configure, Resource::Exchange(name))?;
        let vhost = self.vhosts.get_mut(&vhost_name).expect("vhost exists");
        let Some(exchange) = vhost.exchanges.get(name) else {
            // RabbitMQ answers delete-ok for a missing exchange.
            return Ok(());
        };
        // Only bindings from this exchange count; being a destination does not make it used.
        let used = exchange.router.binding_count() > 0;
        if if_unused && used {
            return Err(AmqpError::precondition_failed(format!(
                "exchange '{name}' in vhost '{vhost_name}' in use"
            )));
        }
        let removed_bindings = Self::bindings_touching_exchange(vhost, name);
        let also = vhost.delete_exchange(name);
        for info in removed_bindings {
            self.emit(&vhost_name, Some(connection), Some(channel), || {
                EventKind::BindingDeleted(info)
            });
        }
        for deleted in std::iter::once(Arc::from(name)).chain(also) {
            self.record(|| StoreOp::ExchangeDeleted {
                vhost: vhost_name.clone(),
                name: deleted.clone(),
            });
            self.emit(&vhost_name, Some(connection), Some(channel), || {
                EventKind::ExchangeDeleted { name: deleted }
            });
        }
        Ok(())
    }

    fn bindings_touching_exchange(vhost: &Vhost, name: &str) -> Vec<Arc<BindingInfo>> {
        let mut out = Vec::new();
        if let Some(x) = vhost.exchanges.get(name) {
            out.extend(x.router.bindings().iter().map(|b| b.info(name)));
        }
        if let Some(list) = vhost.bindings_into_exchange.get(name) {
            out.extend(list.iter().map(|(s, b)| b.info(s)));
        }
        out
    }

    /// Checks a bind or unbind the way RabbitMQ does (no default exchange, both ends exist,
    /// exclusive queues only for their connection) and builds the binding.
    fn checked_binding(
        &mut self,
        connection: ConnectionId,
        channel: u16,
        source: &str,
        target: Target<'_>,
        routing_key: &str,
        arguments: FieldTable,
    ) -> AmqpResult<(Arc<str>, Binding)> {
        let vhost_name = self.vhost_of(connection)?;
        let destination = match target {
            Target::Queue(q) => Destination::Queue(self.queue_name(connection, channel, q)?.into()),
            Target::Exchange(x) => Destination::Exchange(x.into()),
        };
        // Binding writes to the destination and reads from the source.
        let written = match &destination {
            Destination::Queue(q) => Resource::Queue(q),
            Destination::Exchange(x) => Resource::Exchange(x),
        };
        self.permit(connection, Access::Write, written)?;
        let default_exchange = matches!(&destination, Destination::Exchange(x) if x.is_empty());
        if source.is_empty() || default_exchange {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        self.permit(connection, Access::Read, Resource::Exchange(source))?;
        let vhost = &self.vhosts[&vhost_name];
        if vhost
            .exchanges
            .get(source)
            .is_some_and(|x| x.kind == ExchangeKind::Topic)
        {
            self.connections[&connection]
                .grant
                .check_topic(Access::Read, source, routing_key)?;
        }
        match &destination {
            Destination::Queue(q) => {
                let queue = vhost
                    .queues
                    .get(q)
                    .ok_or_else(|| missing_queue(&vhost_name, q))?;
                Self::check_owner(queue, connection, &vhost_name)?;
            }
            Destination::Exchange(x) => {
                vhost.exchange(x)?;
            }
        }
        vhost.exchange(source)?;
        let binding = Binding::new(destination, routing_key, arguments);
        Ok((vhost_name, binding))
    }

    pub fn bind(
        &mut self,
        connection: ConnectionId,
        channel: u16,
        source: &str,
        target: Target<'_>,
        routing_key: &str,
        arguments: FieldTable,
    ) -> AmqpResult<()> {
        let (vhost_name, binding) =
            self.checked_binding(connection, channel, source, target, routing_key, arguments)?;
        let info = binding.info(source);
        let vhost = self.vhosts.get_mut(&vhost_name).expect("vhost exists");
        let image = vhost
            .is_durable_binding(source, &binding)
            .then(|| BindingImage::of(source, &binding));
        if vhost.add_binding(source, binding) {
            if let Some(binding) = image {
                self.record(|| StoreOp::BindingAdded {
                    vhost: vhost_name.clone(),
                    binding,
                });
            }
            self.emit(&vhost_name, Some(connection), Some(channel), || {
                EventKind::BindingCreated(info)
            });
        }
        Ok(())
    }

    pub fn unbind(
        &mut self,
        connection: ConnectionId,
        channel: u16,
        source: &str,
        target: Target<'_>,
        routing_key: &str,
        arguments: FieldTable,
    ) -> AmqpResult<()> {
        let (vhost_name, binding) =
            self.checked_binding(connection, channel, source, target, routing_key, arguments)?;
        let vhost = self.vhosts.get_mut(&vhost_name).expect("vhost exists");
        if vhost.remove_binding(source, &binding) {
            let deleted = vhost.collect_auto_deleted(&[Arc::from(source)]);
            self.record(|| StoreOp::BindingRemoved {
                vhost: vhost_name.clone(),
                binding: BindingImage::of(source, &binding),
            });
            for name in &deleted {
                self.record(|| StoreOp::ExchangeDeleted {
                    vhost: vhost_name.clone(),
                    name: name.clone(),
                });
            }
            let info = binding.info(source);
            self.emit(&vhost_name, Some(connection), Some(channel), || {
                EventKind::BindingDeleted(info)
            });
            for name in deleted {
                self.emit(&vhost_name, Some(connection), Some(channel), || {
                    EventKind::ExchangeDeleted { name }
                });
            }
        }
        Ok(())
    }

    // ---- queues ----

    pub fn queue_declare(
        &mut self,
        connection: ConnectionId,
        channel: u16,
        spec: QueueSpec,
    ) -> AmqpResult<super::QueueDeclared> {
        let vhost_name = self.vhost_of(connection)?;
        self.channel(connection, channel)?;
        if spec.passive && spec.name == REPLY_TO {
            // RabbitMQ pretends the pseudo-queue exists, with one consumer.
            return Ok(super::QueueDeclared {
                name: spec.name,
                message_count: 0,
                consumer_count: 1,
            });
        }
        let mut name = spec.name.clone();
        if name.is_empty() && spec.passive {
            name = self.queue_name(connection, channel, "")?;
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
            self.permit(connection, Access::Configure, Resource::Queue(&name))?;
        }
        let vhost = self.vhosts.get_mut(&vhost_name).expect("vhost exists");
        if let Some(queue) = vhost.queues.get_mut(name.as_str()) {
            Self::check_owner(queue, connection, &vhost_name)?;
            if !spec.passive {
                let inequivalent = |arg: &str, received: bool, current: bool| {
                    AmqpError::precondition_failed(format!(
                        "inequivalent arg '{arg}' for queue '{name}' in vhost '{vhost_name}': received '{received}' but current is '{current}'"
                    ))
                };
                if queue.durable != spec.durable {
                    return Err(inequivalent("durable", spec.durable, queue.durable));
                }
                if queue.auto_delete != spec.auto_delete {
                    return Err(inequivalent(
                        "auto_delete",
                        spec.auto_delete,
                        queue.auto_delete,
                    ));
                }
                if queue.owner.is_some() != spec.exclusive {
                    return Err(inequivalent(
                        "exclusive",
                        spec.exclusive,
                        queue.owner.is_some(),
                    ));
                }
                if let Some((arg, detail)) =
                    inequivalent_argument(&queue.arguments, &spec.arguments)
                {
                    return Err(AmqpError::precondition_failed(format!(
                        "inequivalent arg '{arg}' for queue '{name}' in vhost '{vhost_name}': {detail}"
                    )));
                }
            }
            queue.last_used = Instant::now();
            let declared = super::QueueDeclared {
                name: name.clone(),
                message_count: queue.ready() as u32,
                consumer_count: queue.consumers.len() as u32,
            };
            self.channel(connection, channel)?.last_queue = Some(name);
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
            self.permit(connection, Access::Read, Resource::Queue(&name))?;
            self.permit(connection, Access::Write, Resource::Exchange(&dlx))?;
        }
        let queue_type = QueueType::of(&name, &vhost_name, &spec.arguments)?;
        let limits = QueueLimits::parse(&name, &vhost_name, &spec.arguments)?;
        queue_type.check_properties(
            &name,
            &vhost_name,
            spec.durable,
            spec.exclusive,
            spec.auto_delete,
        )?;
        let vhost = self.vhosts.get_mut(&vhost_name).expect("vhost exists");
        let owner = spec.exclusive.then_some(connection);
        let queue = Queue::new(
            &name,
            spec.durable,
            spec.auto_delete,
            owner,
            spec.arguments.clone(),
            limits,
        );
        let queue_name = queue.name.clone();
        vhost.queues.insert(queue_name.clone(), queue);
        if spec.durable && !spec.exclusive {
            self.record(|| StoreOp::QueueDeclared {
                vhost: vhost_name.clone(),
                name: queue_name,
                auto_delete: spec.auto_delete,
                arguments: spec.arguments.clone(),
            });
        }
        self.emit(&vhost_name, Some(connection), Some(channel), || {
            EventKind::QueueDeclared {
                name: Arc::from(name.as_str()),
                durable: spec.durable,
                exclusive: spec.exclusive,
                auto_delete: spec.auto_delete,
                arguments: args::pairs(&spec.arguments),
            }
        });
        self.channel(connection, channel)?.last_queue = Some(name.clone());
        Ok(super::QueueDeclared {
            name,
            message_count: 0,
            consumer_count: 0,
        })
    }

    pub fn queue_purge(
        &mut self,
        connection: ConnectionId,
        channel: u16,
        queue: &str,
    ) -> AmqpResult<u32> {
        let vhost_name = self.vhost_of(connection)?;
        let name = self.queue_name(connection, channel, queue)?;
        self.permit(connection, Access::Read, Resource::Queue(&name))?;
        let vhost = self.vhosts.get_mut(&vhost_name).expect("vhost exists");
        let q = vhost
            .queues
            .get_mut(name.as_str())
            .ok_or_else(|| missing_queue(&vhost_name, &name))?;
        Self::check_owner(q, connection, &vhost_name)?;
        let drained = q.drain();
        let count = drained.len() as u32;
        if let Some(journal) = &mut self.journal {
            let queue_name = q.name.clone();
            for m in drained.iter().filter(|m| m.stored) {
                journal.push(StoreOp::Removed {
                    vhost: vhost_name.clone(),
                    queue: queue_name.clone(),
                    seq: m.seq,
                });
            }
        }
        self.emit(&vhost_name, Some(connection), Some(channel), || {
            EventKind::QueuePurged {
                name: name.into(),
                messages: count,
            }
        });
        Ok(count)
    }

    pub fn queue_delete(
        &mut self,
        connection: ConnectionId,
        channel: u16,
        queue: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> AmqpResult<u32> {
        let vhost_name = self.vhost_of(connection)?;
        let name = self.queue_name(connection, channel, queue)?;
        self.permit(connection, Access::Configure, Resource::Queue(&name))?;
        let vhost = &self.vhosts[&vhost_name];
        let Some(q) = vhost.queues.get(name.as_str()) else {
            // RabbitMQ answers delete-ok with 0 for a missing queue.
            return Ok(0);
        };
        Self::check_owner(q, connection, &vhost_name)?;
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
        Ok(self.delete_queue_now(&vhost_name, &name, Some(connection)))
    }

    /// Deletes a queue, cancelling its consumers; returns how many ready messages it held.
    fn delete_queue_now(&mut self, vhost_name: &str, name: &str, by: Option<ConnectionId>) -> u32 {
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
            if let Some(c) = self.connections.get_mut(&consumer.connection) {
                c.consumers
                    .remove(&(consumer.channel, consumer.tag.clone()));
                c.sink.send(ToClient::Cancel {
                    channel: consumer.channel,
                    consumer_tag: consumer.tag.clone(),
                });
            }
            self.emit(
                vhost_name,
                Some(consumer.connection),
                Some(consumer.channel),
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

    // ---- consumers ----

    pub fn basic_qos(
        &mut self,
        connection: ConnectionId,
        channel: u16,
        prefetch_count: u16,
        global: bool,
    ) {
        if let Ok(ch) = self.channel(connection, channel) {
            if global {
                ch.prefetch_channel = prefetch_count;
            } else {
                ch.prefetch_consumer = prefetch_count;
            }
        }
        // A raised limit may let waiting messages go.
        self.resume_connection(connection);
    }

    pub fn basic_consume(
        &mut self,
        connection: ConnectionId,
        channel: u16,
        spec: ConsumeSpec,
    ) -> AmqpResult<String> {
        let ConsumeSpec {
            queue,
            tag,
            no_ack,
            exclusive,
            arguments,
        } = spec;
        let (queue, tag, arguments) = (queue.as_str(), tag.as_str(), &arguments);
        let vhost_name = self.vhost_of(connection)?;
        let tag: Arc<str> = if tag.is_empty() {
            format!("amq.ctag-{}", random_suffix()).into()
        } else {
            tag.into()
        };
        let conn = self.connections.get(&connection).expect("checked");
        if conn.consumers.contains_key(&(channel, tag.clone())) {
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
            let ch = self.channel(connection, channel)?;
            if ch.reply_consumer.is_some() {
                return Err(AmqpError::precondition_failed("reply consumer already set"));
            }
            ch.reply_consumer = Some(tag.clone());
            return Ok(tag.to_string());
        }
        let name = self.queue_name(connection, channel, queue)?;
        self.permit(connection, Access::Read, Resource::Queue(&name))?;
        let priority = match args::get_int(arguments, "x-priority") {
            Ok(p) => p.unwrap_or(0),
            Err(args::NotAnInteger) => {
                return Err(AmqpError::precondition_failed(
                    "invalid arg 'x-priority' for consumer: not an integer",
                ))
            }
        };
        let prefetch = self.channel(connection, channel)?.prefetch_consumer;
        let vhost = self.vhosts.get_mut(&vhost_name).expect("vhost exists");
        let q = vhost
            .queues
            .get_mut(name.as_str())
            .ok_or_else(|| missing_queue(&vhost_name, &name))?;
        Self::check_owner(q, connection, &vhost_name)?;
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
            connection,
            channel,
            no_ack,
            exclusive,
            prefetch,
            priority,
            unacked: 0,
        });
        q.had_consumer = true;
        q.last_used = Instant::now();
        let queue_name = q.name.clone();
        let conn = self.connections.get_mut(&connection).expect("checked");
        conn.consumers.insert((channel, tag.clone()), queue_name);
        self.channel(connection, channel)?
            .not_ready
            .insert(tag.clone());
        self.emit(&vhost_name, Some(connection), Some(channel), || {
            EventKind::ConsumerCreated {
                queue: name.into(),
                consumer_tag: tag.clone(),
                no_ack,
            }
        });
        Ok(tag.to_string())
    }

    pub fn consumer_ready(&mut self, connection: ConnectionId, channel: u16, tag: &str) {
        if let Ok(ch) = self.channel(connection, channel) {
            ch.not_ready.remove(tag);
        }
        let queue = self.connections.get(&connection).and_then(|c| {
            c.consumers
                .get(&(channel, Arc::from(tag)))
                .cloned()
                .map(|q| (c.vhost.clone(), q))
        });
        if let Some(work) = queue {
            self.run(VecDeque::from([work]));
        }
    }

    pub fn basic_cancel(
        &mut self,
        connection: ConnectionId,
        channel: u16,
        tag: &str,
    ) -> AmqpResult<()> {
        let vhost_name = self.vhost_of(connection)?;
        let ch = self.channel(connection, channel)?;
        if ch.reply_consumer.as_deref() == Some(tag) {
            ch.reply_consumer = None;
            return Ok(());
        }
        let key = (channel, Arc::from(tag));
        let Some(queue) = self
            .connections
            .get_mut(&connection)
            .and_then(|c| c.consumers.remove(&key))
        else {
            // Cancelling an unknown tag is not an error in AMQP.
            return Ok(());
        };
        self.remove_consumer(&vhost_name, &queue, connection, channel, tag);
        Ok(())
    }

    /// Detaches a consumer; deletes an auto-delete queue that lost its last one.
    fn remove_consumer(
        &mut self,
        vhost_name: &str,
        queue: &str,
        connection: ConnectionId,
        channel: u16,
        tag: &str,
    ) {
        let Some(q) = self
            .vhosts
            .get_mut(vhost_name)
            .and_then(|v| v.queues.get_mut(queue))
        else {
            return;
        };
        if q.remove_consumer(tag, connection, channel).is_none() {
            return;
        }
        q.last_used = Instant::now();
        let auto_delete = q.auto_delete && q.had_consumer && q.consumers.is_empty();
        self.emit(vhost_name, Some(connection), Some(channel), || {
            EventKind::ConsumerCancelled {
                queue: queue.into(),
                consumer_tag: tag.into(),
            }
        });
        if auto_delete {
            self.delete_queue_now(vhost_name, queue, Some(connection));
        }
    }

    // ---- publishing ----

    /// Stamps every event until [`State::end_publish`] with one time: a publish's events
    /// happen at once, and reading the clock per event was a visible share of an event
    /// reader's cost.
    pub fn begin_publish(&mut self) {
        self.publish_time = self.events.has_readers().then(SystemTime::now);
    }

    pub fn end_publish(&mut self) {
        self.publish_time = None;
    }

    #[allow(clippy::too_many_arguments)]
    pub fn basic_publish(
        &mut self,
        connection: ConnectionId,
        channel: u16,
        exchange: &str,
        routing_key: &str,
        mandatory: bool,
        mut properties: BasicProperties,
        body: Bytes,
    ) -> AmqpResult<PublishOutcome> {
        let vhost_name = self.vhost_of(connection)?;
        self.permit(connection, Access::Write, Resource::Exchange(exchange))?;
        // Direct reply-to: the request names the pseudo-queue; give it this channel's address.
        if properties
            .reply_to()
            .as_ref()
            .is_some_and(|r| r.as_str() == REPLY_TO)
        {
            let ch = self.channel(connection, channel)?;
            if ch.reply_consumer.is_none() {
                return Err(AmqpError::precondition_failed(
                    "fast reply consumer does not exist",
                ));
            }
            let address = format!("{REPLY_TO}.{connection}.{channel}.{}", random_suffix());
            properties = properties.with_reply_to(address.as_str().into());
        }
        // The default exchange always exists and is never internal: no lookup for it.
        if !exchange.is_empty() {
            let vhost = &self.vhosts[&vhost_name];
            let x = vhost.exchange(exchange)?;
            if x.internal {
                return Err(AmqpError::access_refused(format!(
                    "cannot publish to internal exchange '{exchange}' in vhost '{vhost_name}'"
                )));
            }
            if x.kind == ExchangeKind::Topic {
                self.connections[&connection].grant.check_topic(
                    Access::Write,
                    exchange,
                    routing_key,
                )?;
            }
        }
        if let Some(user_id) = properties.user_id() {
            self.connections[&connection]
                .grant
                .check_user_id(user_id.as_str())?;
        }
        // Checked last, as RabbitMQ does: a missing exchange or a wrong user_id is said first.
        if let Some(expiration) = properties.expiration() {
            let text = expiration.as_str();
            match text.parse::<i64>() {
                Ok(n) if n >= 0 => {}
                Ok(n) => {
                    return Err(AmqpError::precondition_failed(format!(
                        "invalid expiration '{text}': {{value_negative,{n}}}"
                    )))
                }
                Err(_) => {
                    return Err(AmqpError::precondition_failed(format!(
                        "invalid expiration '{text}': no_integer"
                    )))
                }
            }
        }
        self.next_message_id += 1;
        let message_id = self.next_message_id;
        let ch = self.channel(connection, channel)?;
        let last = ch.last_published.take();
        let shared = LastPublished {
            properties: match &last {
                Some(l) if *l.properties == properties => l.properties.clone(),
                _ => Arc::new(properties),
            },
            exchange: share_str(last.as_ref().map(|l| &l.exchange), exchange),
            routing_key: share_str(last.as_ref().map(|l| &l.routing_key), routing_key),
        };
        let message = Arc::new(Message {
            id: message_id,
            exchange: shared.exchange.clone(),
            routing_key: shared.routing_key.clone(),
            properties: shared.properties.clone(),
            body,
        });
        ch.last_published = Some(shared);
        if exchange.is_empty() && routing_key.starts_with(REPLY_TO) {
            return Ok(self.deliver_reply(&vhost_name, connection, channel, mandatory, message));
        }
        let route = self.vhosts[&vhost_name].route(exchange, routing_key, message.headers());
        let mut outcome = PublishOutcome::default();
        let mut work = VecDeque::new();
        let mut rejected = Vec::new();
        for queue in &route.queues {
            if self.enqueue(&vhost_name, queue, message.clone(), &mut work) {
                rejected.push(queue.clone());
            }
        }
        outcome.rejected = !rejected.is_empty();
        let fate = if !route.queues.is_empty() {
            if rejected.len() == route.queues.len() {
                PublishFate::Rejected
            } else {
                PublishFate::Routed
            }
        } else if mandatory {
            outcome.returned = true;
            PublishFate::Returned
        } else {
            PublishFate::Dropped
        };
        self.emit_published(
            &vhost_name,
            Some((connection, channel)),
            &message,
            route,
            fate,
        );
        self.run(work);
        Ok(outcome)
    }

    fn deliver_reply(
        &mut self,
        vhost: &str,
        connection: ConnectionId,
        channel: u16,
        mandatory: bool,
        message: Arc<Message>,
    ) -> PublishOutcome {
        let address = &message.routing_key[REPLY_TO.len()..];
        let mut parts = address.trim_start_matches('.').splitn(3, '.');
        let target = (|| -> Option<(ConnectionId, u16)> {
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })();
        let delivered = target.and_then(|(conn, ch)| {
            let tag = self.channels.get_mut(&(conn, ch))?.reply_consumer.clone()?;
            let state = self.channels.get_mut(&(conn, ch))?;
            state.delivery_tags += 1;
            let delivery_tag = state.delivery_tags;
            self.connections.get(&conn)?.sink.send(ToClient::Deliver {
                channel: ch,
                consumer_tag: tag,
                delivery_tag,
                redelivered: false,
                message: message.clone(),
            });
            Some(())
        });
        let fate = match (delivered.is_some(), mandatory) {
            (true, _) => PublishFate::Routed,
            (false, true) => PublishFate::Returned,
            (false, false) => PublishFate::Dropped,
        };
        // RabbitMQ 3.10 also returns a mandatory reply it delivered: the pseudo-queue is no
        // queue for routing purposes.
        self.emit_published(
            vhost,
            Some((connection, channel)),
            &message,
            Default::default(),
            fate,
        );
        PublishOutcome {
            returned: mandatory,
            rejected: false,
            durable_at: None,
        }
    }

    /// Adds a message to a queue, applying TTL and length limits. Returns true when the queue
    /// refused it (reject-publish). Queues to dispatch are pushed onto `work`.
    fn enqueue(
        &mut self,
        vhost_name: &str,
        queue: &Arc<str>,
        message: Arc<Message>,
        work: &mut VecDeque<(Arc<str>, Arc<str>)>,
    ) -> bool {
        let journal_vhost = self.journal.is_some().then(|| self.vhost_key(vhost_name));
        let Some(q) = self
            .vhosts
            .get_mut(vhost_name)
            .and_then(|v| v.queues.get_mut(queue))
        else {
            return false;
        };
        let size = message.body.len();
        let overflow = q.limits.overflow.unwrap_or(Overflow::DropHead);
        if overflow != Overflow::DropHead && q.is_full_for(size) {
            let dlx = overflow == Overflow::RejectPublishDlx;
            if dlx {
                let seq = self.next_seq;
                self.next_seq += 1;
                let qm = QueuedMessage {
                    seq,
                    message,
                    expires_at: None,
                    redelivered: false,
                    stored: false,
                };
                self.doom(vhost_name, queue, qm, DeadLetterReason::Maxlen);
            }
            return true;
        }
        let ttl = message_ttl(&q.limits, &message);
        self.next_seq += 1;
        let stored = journal_vhost.is_some()
            && q.durable
            && q.owner.is_none()
            && message.properties.delivery_mode() == &Some(2);
        if let (true, Some(journal), Some(vhost)) = (stored, &mut self.journal, journal_vhost) {
            {
                journal.push(StoreOp::Enqueued {
                    vhost,
                    queue: q.name.clone(),
                    seq: self.next_seq,
                    message: message.clone(),
                });
            }
        }
        q.push_back(QueuedMessage {
            seq: self.next_seq,
            message,
            expires_at: ttl.map(|t| Instant::now() + t),
            redelivered: false,
            stored,
        });
        q.stats.published += 1;
        let mut dropped = Vec::new();
        while q.is_over_limit() {
            match q.pop_oldest() {
                Some(old) => dropped.push(old),
                None => break,
            }
        }
        for old in dropped {
            self.doom(vhost_name, queue, old, DeadLetterReason::Maxlen);
        }
        work.push_back((self.vhost_key(vhost_name), queue.clone()));
        false
    }

    /// Puts a message that left `queue` on the list to dead-letter; [`Self::run`] does it.
    fn doom(
        &mut self,
        vhost_name: &str,
        queue: &str,
        message: QueuedMessage,
        reason: DeadLetterReason,
    ) {
        let (vhost, queue) = (self.vhost_key(vhost_name), Arc::from(queue));
        self.dying.push_back(Dying {
            vhost,
            queue,
            message,
            reason,
        });
    }

    /// Sends a message that left `queue` to the queue's dead-letter exchange, with `x-death`;
    /// without one the message is gone. Like RabbitMQ, it is not sent to a queue it already
    /// died in for a reason other than `rejected` on the way here (a dead-letter cycle no
    /// client takes part in would go round for ever).
    fn dead_letter(
        &mut self,
        vhost_name: &str,
        queue: &str,
        qm: QueuedMessage,
        reason: DeadLetterReason,
        work: &mut VecDeque<(Arc<str>, Arc<str>)>,
    ) {
        if qm.stored {
            self.record(|| StoreOp::Removed {
                vhost: Arc::from(vhost_name),
                queue: Arc::from(queue),
                seq: qm.seq,
            });
        }
        let id = qm.message.id;
        let (dlx, dlrk) = match self
            .vhosts
            .get(vhost_name)
            .and_then(|v| v.queues.get(queue))
        {
            Some(q) => (
                q.limits.dead_letter_exchange.clone(),
                q.limits.dead_letter_routing_key.clone(),
            ),
            None => (None, None),
        };
        let Some(dlx) = dlx else {
            match reason {
                DeadLetterReason::Expired => {
                    self.emit(vhost_name, None, None, || EventKind::Expired {
                        message_id: id,
                        queue: queue.into(),
                    })
                }
                DeadLetterReason::Maxlen => {
                    self.emit(vhost_name, None, None, || EventKind::Dropped {
                        message_id: id,
                        queue: queue.into(),
                    })
                }
                DeadLetterReason::Rejected => {}
            }
            return;
        };
        let routing_key = dlrk.unwrap_or_else(|| qm.message.routing_key.to_string());
        self.next_message_id += 1;
        let message = Arc::new(dead_lettered(
            &qm.message,
            self.next_message_id,
            queue,
            &reason,
            &dlx,
            &routing_key,
        ));
        self.emit(vhost_name, None, None, || EventKind::DeadLettered {
            message_id: id,
            queue: queue.into(),
            reason: reason.clone(),
            exchange: Arc::from(dlx.as_str()),
            routing_key: Arc::from(routing_key.as_str()),
        });
        let Some(vhost) = self.vhosts.get(vhost_name) else {
            return;
        };
        if !vhost.exchanges.contains_key(dlx.as_str()) {
            return;
        }
        let mut route = vhost.route(&dlx, &routing_key, message.headers());
        if reason != DeadLetterReason::Rejected {
            let deaths = death_queues(&message);
            let (cycling, onward): (Vec<Arc<str>>, Vec<Arc<str>>) = route
                .queues
                .into_iter()
                .partition(|target| is_cycle(target, &message));
            route.queues = onward;
            for target in cycling {
                let closing = (self.vhost_key(vhost_name), target.clone(), Arc::from(queue));
                let mut cycle = vec![target];
                cycle.extend(deaths.iter().cloned());
                self.log_cycle_once(closing, cycle);
            }
        }
        let fate = if route.queues.is_empty() {
            PublishFate::Dropped
        } else {
            PublishFate::Routed
        };
        self.emit_published(vhost_name, None, &message, route.clone(), fate);
        for target in &route.queues {
            self.enqueue(vhost_name, target, message.clone(), work);
        }
    }

    fn log_cycle_once(&mut self, closing: (Arc<str>, Arc<str>, Arc<str>), cycle: Vec<Arc<str>>) {
        if self.cycles_logged.len() >= CYCLES_LOGGED_MAX || self.cycles_logged.contains(&closing) {
            return;
        }
        tracing::warn!(
            vhost = %closing.0,
            "Message dropped. Dead-letter queues cycle detected: {:?}. This cycle will NOT be reported again.",
            cycle
        );
        self.cycles_logged.insert(closing);
    }

    // ---- delivering ----

    /// Dead-letters what is dying and dispatches every queue in `work` until nothing more can
    /// move, or until [`STEPS_PER_RUN`] messages were dead-lettered or expired: then the rest
    /// waits in the backlog for the timer, and the broker is free for other clients meanwhile.
    fn run(&mut self, mut work: VecDeque<(Arc<str>, Arc<str>)>) {
        let mut seen = HashSet::default();
        let mut steps = 0;
        loop {
            if steps >= STEPS_PER_RUN {
                self.backlog.extend(work);
                return;
            }
            if let Some(dying) = self.dying.pop_front() {
                steps += 1;
                self.dead_letter(
                    &dying.vhost,
                    &dying.queue,
                    dying.message,
                    dying.reason,
                    &mut work,
                );
                // Dead-lettering may have filled queues we already passed.
                seen.clear();
                continue;
            }
            let Some((vhost, queue)) = work.pop_front() else {
                return;
            };
            // Nothing to tell apart when this is the only entry left and none came before:
            // the common publish to one queue pays for no set.
            let alone = work.is_empty() && seen.is_empty();
            if !alone && !seen.insert((vhost.clone(), queue.clone())) {
                continue;
            }
            let (expired, more) = self.dispatch(&vhost, &queue, STEPS_PER_RUN - steps);
            steps += expired.len();
            for message in expired {
                self.doom(&vhost, &queue, message, DeadLetterReason::Expired);
            }
            if more {
                // The expiry limit stopped it: come back to this queue.
                seen.remove(&(vhost.clone(), queue.clone()));
                work.push_back((vhost, queue));
            }
        }
    }

    /// Whether work is left over for the timer.
    pub fn has_backlog(&self) -> bool {
        !self.dying.is_empty() || !self.backlog.is_empty()
    }

    /// Hands ready messages to consumers round-robin while they have room. Returns messages
    /// found expired at the head on the way (at most `expire_limit`), and whether it stopped
    /// at that limit.
    fn dispatch(
        &mut self,
        vhost: &Arc<str>,
        queue_name: &str,
        expire_limit: usize,
    ) -> (Vec<QueuedMessage>, bool) {
        let mut expired = Vec::new();
        let vhost_name: &str = vhost;
        let Some(q) = self
            .vhosts
            .get_mut(vhost_name)
            .and_then(|v| v.queues.get_mut(queue_name))
        else {
            return (expired, false);
        };
        // Read the clock only when the head can expire at all.
        let mut now = None;
        let events = &self.events;
        let publish_time = self.publish_time;
        loop {
            if q.peek().is_some_and(|m| m.expires_at.is_some()) {
                let now = *now.get_or_insert_with(Instant::now);
                if expired.len() >= expire_limit && q.next_expiry().is_some_and(|at| at <= now) {
                    return (expired, true);
                }
                if let Some(message) = q.take_expired_head(now) {
                    expired.push(message);
                    continue;
                }
            }
            if q.ready() == 0 || q.consumers.is_empty() {
                break;
            }
            let n = q.consumers.len();
            let mut chosen = None;
            for k in 0..n {
                let i = (q.next_consumer + k) % n;
                let c = &q.consumers[i];
                if c.prefetch > 0 && c.unacked >= c.prefetch as u32 {
                    continue;
                }
                let Some(ch) = self.channels.get(&(c.connection, c.channel)) else {
                    continue;
                };
                if ch.not_ready.contains(&c.tag) {
                    continue;
                }
                if !c.no_ack
                    && ch.prefetch_channel > 0
                    && ch.unacked.len() >= ch.prefetch_channel as usize
                {
                    continue;
                }
                let Some(conn) = self.connections.get(&c.connection) else {
                    continue;
                };
                if conn.sink.is_stalled() {
                    continue;
                }
                // Consumer priorities: the first ready consumer in round-robin order among
                // those with the highest x-priority.
                if chosen.is_none_or(|best: usize| c.priority > q.consumers[best].priority) {
                    chosen = Some(i);
                }
            }
            let Some(i) = chosen else {
                break;
            };
            q.next_consumer = (i + 1) % n;
            let message = q.pop_front().expect("checked ready");
            let consumer = &mut q.consumers[i];
            let ch = self
                .channels
                .get_mut(&(consumer.connection, consumer.channel))
                .expect("checked");
            ch.delivery_tags += 1;
            let delivery_tag = ch.delivery_tags;
            let redelivered = message.redelivered;
            let message_id = message.message.id;
            let payload = message.message.clone();
            if let (true, Some(journal)) = (message.stored, &mut self.journal) {
                let (vhost, queue, seq) = (Arc::from(vhost_name), q.name.clone(), message.seq);
                if consumer.no_ack {
                    journal.push(StoreOp::Removed { vhost, queue, seq });
                } else if !message.redelivered {
                    journal.push(StoreOp::Delivered { vhost, queue, seq });
                }
            }
            if !consumer.no_ack {
                consumer.unacked += 1;
                q.unacked += 1;
                self.unacked_bytes += message.message.body.len() + super::MESSAGE_OVERHEAD;
                ch.unacked.insert(
                    delivery_tag,
                    Unacked {
                        queue: q.name.clone(),
                        consumer_tag: Some(consumer.tag.clone()),
                        message,
                    },
                );
            }
            q.stats.delivered += 1;
            let conn = &self.connections[&consumer.connection];
            conn.sink.send(ToClient::Deliver {
                channel: consumer.channel,
                consumer_tag: consumer.tag.clone(),
                delivery_tag,
                redelivered,
                message: payload,
            });
            if events.has_readers() {
                events.emit(Event {
                    at: publish_time.unwrap_or_else(SystemTime::now),
                    vhost: vhost.clone(),
                    connection: Some(consumer.connection),
                    channel: Some(consumer.channel),
                    kind: EventKind::Delivered {
                        message_id,
                        queue: q.name.clone(),
                        consumer_tag: Some(consumer.tag.clone()),
                        delivery_tag,
                        redelivered,
                    },
                });
            }
        }
        (expired, false)
    }

    pub fn basic_get(
        &mut self,
        connection: ConnectionId,
        channel: u16,
        queue: &str,
        no_ack: bool,
    ) -> AmqpResult<Option<GetOk>> {
        let vhost_name = self.vhost_of(connection)?;
        let name = self.queue_name(connection, channel, queue)?;
        self.permit(connection, Access::Read, Resource::Queue(&name))?;
        let vhost = self.vhosts.get_mut(&vhost_name).expect("vhost exists");
        let q = vhost
            .queues
            .get_mut(name.as_str())
            .ok_or_else(|| missing_queue(&vhost_name, &name))?;
        Self::check_owner(q, connection, &vhost_name)?;
        q.last_used = Instant::now();
        let now = Instant::now();
        let mut expired = Vec::new();
        while let Some(m) = q.take_expired_head(now) {
            expired.push(m);
        }
        let taken = q.pop_front();
        let remaining = q.ready() as u32;
        let queue_name = q.name.clone();
        if taken.is_some() {
            q.stats.delivered += 1;
            if !no_ack {
                q.unacked += 1;
            }
        }
        for m in expired {
            self.doom(&vhost_name, &name, m, DeadLetterReason::Expired);
        }
        self.run(VecDeque::new());
        let Some(message) = taken else {
            return Ok(None);
        };
        let redelivered = message.redelivered;
        if let (true, Some(journal)) = (message.stored, &mut self.journal) {
            let (vhost, queue, seq) = (vhost_name.clone(), queue_name.clone(), message.seq);
            if no_ack {
                journal.push(StoreOp::Removed { vhost, queue, seq });
            } else if !redelivered {
                journal.push(StoreOp::Delivered { vhost, queue, seq });
            }
        }
        let ch = self.channel(connection, channel)?;
        ch.delivery_tags += 1;
        let delivery_tag = ch.delivery_tags;
        let payload = message.message.clone();
        if !no_ack {
            self.unacked_bytes += message.message.body.len() + super::MESSAGE_OVERHEAD;
            let ch = self.channel(connection, channel)?;
            ch.unacked.insert(
                delivery_tag,
                Unacked {
                    queue: queue_name.clone(),
                    consumer_tag: None,
                    message,
                },
            );
        }
        self.emit(&vhost_name, Some(connection), Some(channel), || {
            EventKind::Delivered {
                message_id: payload.id,
                queue: name.into(),
                consumer_tag: None,
                delivery_tag,
                redelivered,
            }
        });
        Ok(Some(GetOk {
            delivery_tag,
            redelivered,
            message_count: remaining,
            message: payload,
        }))
    }

    /// ack / nack / reject of one tag or (multiple) every tag up to it; tag 0 with multiple
    /// means all.
    pub fn settle(
        &mut self,
        connection: ConnectionId,
        channel: u16,
        delivery_tag: u64,
        multiple: bool,
        how: Settle,
    ) -> AmqpResult<()> {
        let vhost_name = self.vhost_of(connection)?;
        let ch = self.channel(connection, channel)?;
        let unknown =
            || AmqpError::precondition_failed(format!("unknown delivery tag {delivery_tag}"));
        let taken: Vec<(u64, Unacked)> = if multiple {
            if delivery_tag != 0
                && !ch.unacked.contains_key(&delivery_tag)
                && ch.unacked.range(..=delivery_tag).next().is_none()
            {
                return Err(unknown());
            }
            let keys: Vec<u64> = if delivery_tag == 0 {
                ch.unacked.keys().copied().collect()
            } else {
                ch.unacked.range(..=delivery_tag).map(|(k, _)| *k).collect()
            };
            keys.into_iter()
                .map(|k| (k, ch.unacked.remove(&k).expect("listed")))
                .collect()
        } else {
            let u = ch.unacked.remove(&delivery_tag).ok_or_else(unknown)?;
            vec![(delivery_tag, u)]
        };
        self.unacked_bytes -= taken.iter().map(|(_, u)| u.bytes()).sum::<usize>();
        let mut requeue = Vec::new();
        let mut work = VecDeque::new();
        for (tag, u) in taken {
            let id = u.message.message.id;
            let queue = u.queue.clone();
            let (requeue_it, kind) = match how {
                Settle::Ack => (
                    false,
                    EventKind::Acked {
                        message_id: id,
                        queue: queue.clone(),
                        delivery_tag: tag,
                    },
                ),
                Settle::Nack { requeue } => (
                    requeue,
                    EventKind::Nacked {
                        message_id: id,
                        queue: queue.clone(),
                        delivery_tag: tag,
                        requeue,
                    },
                ),
                Settle::Reject { requeue } => (
                    requeue,
                    EventKind::Rejected {
                        message_id: id,
                        queue: queue.clone(),
                        delivery_tag: tag,
                        requeue,
                    },
                ),
            };
            self.emit(&vhost_name, Some(connection), Some(channel), || kind);
            if requeue_it {
                requeue.push(u);
                continue;
            }
            if let Some(q) = self
                .vhosts
                .get_mut(&vhost_name)
                .and_then(|v| v.queues.get_mut(&u.queue))
            {
                q.unacked = q.unacked.saturating_sub(1);
                q.stats.acked += matches!(how, Settle::Ack) as u64;
                if let Some(tag) = &u.consumer_tag {
                    if let Some(c) = q.consumer_mut(tag, connection, channel) {
                        c.unacked = c.unacked.saturating_sub(1);
                    }
                }
                work.push_back((vhost_name.clone(), u.queue.clone()));
                if matches!(how, Settle::Ack) && u.message.stored {
                    self.record(|| StoreOp::Removed {
                        vhost: vhost_name.clone(),
                        queue: u.queue.clone(),
                        seq: u.message.seq,
                    });
                }
                if !matches!(how, Settle::Ack) {
                    self.doom(&vhost_name, &queue, u.message, DeadLetterReason::Rejected);
                }
            }
        }
        work.extend(self.requeue_all(&vhost_name, connection, requeue));
        self.run(work);
        Ok(())
    }

    pub fn recover(&mut self, connection: ConnectionId, channel: u16) {
        let Ok(vhost) = self.vhost_of(connection) else {
            return;
        };
        let Ok(ch) = self.channel(connection, channel) else {
            return;
        };
        let unacked: Vec<Unacked> = std::mem::take(&mut ch.unacked).into_values().collect();
        self.unacked_bytes -= unacked.iter().map(Unacked::bytes).sum::<usize>();
        let work = self.requeue_all(&vhost, connection, unacked);
        self.run(work.into());
    }

    // ---- time ----

    /// Bytes the messages of every queue take, ready or delivered and not acked, by the memory
    /// alarm's measure.
    pub fn held_memory(&self) -> usize {
        let ready: usize = self
            .vhosts
            .values()
            .flat_map(|v| v.queues.values())
            .map(|q| q.ready_bytes() + q.ready() * super::MESSAGE_OVERHEAD)
            .sum();
        ready + self.unacked_bytes
    }

    /// Expires due messages and unused queues; returns the next instant worth waking for.
    pub fn tick(&mut self, now: Instant) -> Option<Instant> {
        let mut work = std::mem::take(&mut self.backlog);
        let mut unused = Vec::new();
        let mut next: Option<Instant> = None;
        for (vname, vhost) in &self.vhosts {
            for (qname, q) in &vhost.queues {
                if let Some(at) = q.next_expiry() {
                    if at <= now {
                        work.push_back((vname.clone(), qname.clone()));
                    } else {
                        next = Some(next.map_or(at, |n| n.min(at)));
                    }
                }
                if let Some(expires) = q.limits.expires {
                    if q.consumers.is_empty() {
                        let at = q.last_used + expires;
                        if at <= now {
                            unused.push((vname.clone(), qname.to_string()));
                        } else {
                            next = Some(next.map_or(at, |n| n.min(at)));
                        }
                    }
                }
            }
        }
        self.run(work);
        for (vhost, queue) in unused {
            self.delete_queue_now(&vhost, &queue, None);
        }
        if self.has_backlog() {
            // Left over from a run that hit its limit: carry on right after others had a turn.
            return Some(now);
        }
        next
    }

    // ---- restart ----

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
                // messages matter more than its limits, so it comes back without them.
                let limits = QueueLimits::parse(name, vhost_name, &q.arguments)
                    .unwrap_or_else(|e| {
                        tracing::warn!(vhost = %vhost_name, queue = %name, error = %e,
                            "a kept queue's arguments are refused now; it comes back without its limits");
                        QueueLimits::default()
                    });
                let arguments = q.arguments.clone();
                let mut queue = Queue::new(name, true, q.auto_delete, None, arguments, limits);
                for (seq, kept) in &q.messages {
                    self.next_message_id += 1;
                    let mut message = Message::clone(&kept.message);
                    message.id = self.next_message_id;
                    let expires_at = message_ttl(&queue.limits, &message).map(|t| now + t);
                    queue.push_back(QueuedMessage {
                        seq: *seq,
                        message: Arc::new(message),
                        expires_at,
                        redelivered: kept.redelivered,
                        stored: self.journal.is_some(),
                    });
                    self.next_seq = self.next_seq.max(*seq);
                }
                vhost.queues.insert(queue.name.clone(), queue);
                events.push((
                    vhost_name.clone(),
                    EventKind::QueueDeclared {
                        name: name.clone(),
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
                let messages = q
                    .iter()
                    .filter(|m| persistent(&m.message))
                    .map(|m| {
                        let stored = StoredMessage {
                            message: m.message.clone(),
                            redelivered: m.redelivered,
                        };
                        (m.seq, stored)
                    })
                    .collect();
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
        for ((connection, _), channel) in &self.channels {
            let Some(vhost) = self.connections.get(connection).map(|c| &c.vhost) else {
                continue;
            };
            for u in channel.unacked.values() {
                let queue = image
                    .vhosts
                    .get_mut(vhost)
                    .and_then(|v| v.queues.get_mut(&u.queue));
                if let (Some(queue), true) = (queue, persistent(&u.message.message)) {
                    let stored = StoredMessage {
                        message: u.message.message.clone(),
                        redelivered: true,
                    };
                    queue.messages.insert(u.message.seq, stored);
                }
            }
        }
        image
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

    // ---- inspection ----

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
                        durable: q.durable,
                        exclusive: q.owner.is_some(),
                        auto_delete: q.auto_delete,
                        arguments: args::pairs(&q.arguments),
                        ready: q.ready(),
                        unacked: q.unacked,
                        consumers: q.consumers.len(),
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
                super::sort_bindings(&mut bindings);
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
        Snapshot { vhosts }
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
                    let channel_limit = self
                        .channels
                        .get(&(c.connection, c.channel))
                        .map_or(0, |ch| ch.prefetch_channel);
                    ConsumerSnapshot {
                        queue: q.name.to_string(),
                        tag: c.tag.to_string(),
                        connection: c.connection,
                        channel: c.channel,
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

/// How long a message may wait in a queue: the shorter of the queue's and its own TTL.
fn message_ttl(limits: &QueueLimits, message: &Message) -> Option<std::time::Duration> {
    match (limits.message_ttl, message.expiration()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The exchanges every vhost has from the start; they are never stored.
fn is_predeclared(exchange: &str) -> bool {
    exchange.is_empty() || exchange.starts_with("amq.")
}

/// The first queue argument RabbitMQ checks for equivalence that differs, if any, with
/// RabbitMQ's description of the difference.
fn inequivalent_argument(current: &FieldTable, received: &FieldTable) -> Option<(String, String)> {
    const CHECKED: &[&str] = &[
        "x-dead-letter-exchange",
        "x-dead-letter-routing-key",
        "x-expires",
        "x-max-length",
        "x-max-length-bytes",
        "x-max-priority",
        "x-message-ttl",
        "x-overflow",
        "x-queue-type",
        "x-queue-mode",
    ];
    use super::exchange::value_text;
    let described = |v: &amq_protocol::types::AMQPValue| {
        format!(
            "the value '{}' of type '{}'",
            value_text(v),
            args::type_name(v)
        )
    };
    CHECKED.iter().find_map(|key| {
        let now = current.inner().get(*key);
        let new = received.inner().get(*key);
        let detail = match (new, now) {
            (None, None) => return None,
            (Some(a), Some(b)) if value_text(a) == value_text(b) => return None,
            (Some(a), Some(b))
                if args::type_name(a) == args::type_name(b) || (is_int(a) && is_int(b)) =>
            {
                format!(
                    "received '{}' but current is '{}'",
                    value_text(a),
                    value_text(b)
                )
            }
            (Some(a), Some(b)) => {
                format!("received {} but current is {}", described(a), described(b))
            }
            (None, Some(b)) => format!("received none but current is {}", described(b)),
            (Some(a), None) => format!("received {} but current is none", described(a)),
        };
        Some((key.to_string(), detail))
    })
}

fn is_int(v: &amq_protocol::types::AMQPValue) -> bool {
    matches!(
        args::type_name(v),
        "byte" | "unsignedbyte" | "short" | "unsignedshort" | "signedint" | "unsignedint" | "long"
    )
}

/// A field value's type as RabbitMQ names it in error texts.
fn property_pairs(properties: &BasicProperties) -> Vec<(String, String)> {
    let mut props = Vec::new();
    macro_rules! prop {
        ($($name:literal => $get:ident),*) => {
            $(if let Some(v) = properties.$get() { props.push(($name.to_string(), v.to_string())); })*
        };
    }
    prop!("content_type" => content_type, "content_encoding" => content_encoding,
        "correlation_id" => correlation_id, "reply_to" => reply_to, "expiration" => expiration,
        "message_id" => message_id, "type" => kind, "user_id" => user_id, "app_id" => app_id);
    if let Some(mode) = properties.delivery_mode() {
        props.push(("delivery_mode".into(), mode.to_string()));
    }
    if let Some(priority) = properties.priority() {
        props.push(("priority".into(), priority.to_string()));
    }
    props
}

fn published_event(
    message: &Message,
    route: super::vhost::Route,
    properties: PropertyPairs,
    fate: PublishFate,
) -> EventKind {
    EventKind::Published {
        message_id: message.id,
        exchange: message.exchange.clone(),
        routing_key: message.routing_key.clone(),
        body_size: message.body.len(),
        body_preview: crate::events::kept_body(&message.body),
        headers: message.headers().map(args::pairs).unwrap_or_default(),
        properties,
        matched: route.matched.iter().map(|(s, b)| b.info(s)).collect(),
        queues: route.queues,
        alternate_exchange: route.alternate_exchange,
        fate,
    }
}

fn missing_queue(vhost: &str, name: &str) -> AmqpError {
    AmqpError::not_found(format!("no queue '{name}' in vhost '{vhost}'"))
}
