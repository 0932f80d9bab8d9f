//! The broker core: vhosts, exchanges, queues, bindings, consumers and the AMQP rules, with no
//! I/O. The wire server ([`crate::amqp`]) and in-process drivers (lessons, tests) call the same
//! methods on [`Broker`]; deliveries go out through each connection's [`ClientSink`].
//!
//! All state sits behind one mutex. Every operation is short and never waits on I/O while
//! holding it, so one lock is both the simplest and, measured, fast enough (BENCHMARKS.md).
//!
//! Where things are:
//!
//! - this file: [`Broker`], the facade every caller uses, one method per AMQP method a client
//!   sends (each takes the lock and hands over to `State`), plus logins and connections;
//! - `state/`: everything the broker knows and the AMQP rules, one file per concern;
//! - `vhost`, `exchange/`, `queue`, `message`: the topology's parts and routing;
//! - `journal`, `store`: what is kept on disk and how; `background`: the timer and alarms;
//! - `config`, `permissions`, `sink`, `limits`, `args`, `error`, `maps`: what those name;
//! - `release`: the RabbitMQ release it behaves as, and the deprecated features' switches;
//! - the topology snapshots it hands out are [`crate::topology`]'s, re-exported here.
//!
//! Nothing here imports the wire server ([`crate::amqp`]), the view or the lessons: they
//! depend on the broker, never the other way round.

pub mod args;
mod background;
mod config;
pub mod error;
pub mod exchange;
pub mod journal;
pub mod limits;
pub mod maps;
pub mod message;
pub mod permissions;
pub mod queue;
pub mod release;
mod sink;
mod state;
pub mod store;
pub mod stream;
pub mod vhost;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

pub use config::{BrokerConfig, Password, User};
pub use error::{AmqpError, AmqpResult, Scope};
pub use exchange::ExchangeKind;
pub use limits::Alarms;
pub use message::Message;
pub use permissions::{Access, Grant, Pattern, Permission, Resource, TopicPermission};
pub use release::{Behaviour, DeprecatedFeature, Release};
pub use sink::{ClientInbox, ClientSink, ToClient};
pub use state::{
    BindingSpec, ChannelRef, ConsumeSpec, ExchangeSpec, GetOk, Publish, PublishOutcome,
    QueueDeclared, QueueSpec, Settle, Target,
};
// The topology snapshot types live in their own module; these names keep older paths working.
pub use crate::topology::{
    sort_bindings, ConnectionSnapshot, ConsumerSnapshot, ExchangeSnapshot, QueueSnapshot, Snapshot,
    StreamReader, StreamState, VhostSnapshot,
};

use crate::events::{ConnectionId, EventBus, EventReader};
use state::State;
use store::Store;

/// How often the disk alarm looks at the data directory's free space.
pub const DISK_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What one queued message costs besides its body (measured: 1,000,000 64-byte messages take
/// about 267 bytes each).
pub const MESSAGE_OVERHEAD: usize = 200;

/// The broker. Cheap to share (`Arc`); every method takes the lock for a short time.
pub struct Broker {
    state: Mutex<State>,
    events: EventBus,
    config: BrokerConfig,
    next_connection: AtomicU64,
    store: Option<Store>,
    /// Bumped by [`Broker::restart`]: every client connection closes with 320.
    restarts: watch::Sender<u64>,
    /// The resource alarms ([`BrokerConfig::memory_limit`], [`BrokerConfig::disk_free_limit`]):
    /// publishers are blocked while any is on.
    alarms: watch::Sender<Alarms>,
    /// Bytes connections hold outside the state: bodies still arriving, frames not yet written.
    held: Arc<AtomicUsize>,
    /// What the state held at the last memory check, for a quick estimate between checks.
    state_held: AtomicUsize,
    /// Vhosts added while running ([`Broker::add_vhost`]) and the user each was made for.
    added_vhosts: Mutex<Vec<(String, String)>>,
}

/// The state, locked. Dropping it hands what changed on durable things to the store, still
/// under the lock, so the store sees changes in the order they were made.
struct Locked<'a> {
    state: MutexGuard<'a, State>,
    store: Option<&'a Store>,
}

impl Locked<'_> {
    /// Hands the changes made so far to the store; returns their ticket when one of them must
    /// be written (and, most, flushed) before a publisher is told (see [`Store::durable`]).
    fn commit(&mut self) -> Option<u64> {
        let store = self.store?;
        let ops = self.state.take_journal()?;
        let hold = ops.iter().any(journal::StoreOp::holds_confirms);
        let ticket = store.submit(ops);
        self.state.appends_ticketed(ticket);
        hold.then_some(ticket)
    }
}

impl std::ops::Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.commit();
    }
}

impl Broker {
    /// A broker. Panics when `config.data_dir` cannot be opened; [`Broker::open`] says why
    /// instead.
    pub fn new(config: BrokerConfig) -> Arc<Broker> {
        Broker::open(config).unwrap_or_else(|e| panic!("cannot open the data directory: {e}"))
    }

    /// A broker, with what its data directory kept (if it has one) already in place.
    pub fn open(config: BrokerConfig) -> std::io::Result<Arc<Broker>> {
        let events = EventBus::new(config.event_capacity);
        let mut state = State::new(&Broker::vhosts_of(&config), events.clone());
        state.behave_as(config.behaviour.clone());
        let store = match &config.data_dir {
            Some(dir) => {
                let (store, image) = Store::open(dir)?;
                state.keep_journal();
                state.restore(&image);
                tracing::info!(
                    dir = %dir.display(),
                    messages = image.message_count(),
                    "recovered the durable exchanges, queues and messages"
                );
                Some(store)
            }
            None => None,
        };
        let broker = Arc::new(Broker {
            state: Mutex::new(state),
            events,
            config,
            next_connection: AtomicU64::new(1),
            store,
            restarts: watch::channel(0).0,
            alarms: watch::channel(Alarms::default()).0,
            held: Arc::new(AtomicUsize::new(0)),
            state_held: AtomicUsize::new(0),
            added_vhosts: Default::default(),
        });
        Broker::start_timer(&broker);
        Ok(broker)
    }

    fn vhosts_of(config: &BrokerConfig) -> Vec<String> {
        let mut vhosts = vec!["/".to_string()];
        vhosts.extend(config.vhosts.iter().cloned());
        vhosts
    }

    /// Restarts the broker in place, as stopping and starting the process would: every client
    /// connection is closed with 320 CONNECTION_FORCED, and the state is rebuilt from the
    /// store, so only durable exchanges, queues and bindings and the persistent messages of
    /// durable queues are left (unacked ones come back redelivered). Readers of the event
    /// stream see everything deleted and the survivors declared again.
    ///
    /// Without a store, the broker keeps the same things in memory as if they had been on
    /// disk: a restart then shows what a durable broker would keep, with nothing written.
    pub fn restart(&self) -> std::io::Result<()> {
        self.restarts.send_modify(|n| *n += 1);
        let mut state = self.lock();
        state.commit();
        let image = match &self.store {
            Some(store) => store.reload()?,
            None => state.image(),
        };
        state.announce_gone("broker restart");
        let mut vhosts = Broker::vhosts_of(&self.config);
        vhosts.extend(self.added_vhosts().into_iter().map(|(vhost, _)| vhost));
        let mut fresh = State::new(&vhosts, self.events.clone());
        if self.store.is_some() {
            fresh.keep_journal();
        }
        fresh.number_after(&state);
        fresh.behave_as(state.behaviour().clone());
        if state.waits_for_store() {
            fresh.wait_for_store();
        }
        fresh.restore(&image);
        *state.state = fresh;
        tracing::info!(messages = image.message_count(), "broker restarted");
        Ok(())
    }

    /// Changes each time [`Broker::restart`] starts: client connections watch it to close.
    pub fn restarts(&self) -> watch::Receiver<u64> {
        self.restarts.subscribe()
    }

    /// A connection's outgoing side, its waiting frames counted by the memory alarm.
    pub fn sink(&self) -> (ClientSink, ClientInbox) {
        ClientSink::new(self.held.clone())
    }

    /// A guard for bytes a connection holds (a body arriving), counted by the memory alarm.
    pub fn hold(&self) -> limits::Held {
        limits::Held::new(self.held.clone())
    }

    /// The store's progress (None without a store): see [`Store::durable`].
    pub fn durable(&self) -> Option<watch::Receiver<u64>> {
        self.store.as_ref().map(Store::durable)
    }

    /// The data directory, when the broker keeps one.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.store.as_ref().map(Store::dir)
    }

    /// A new reader of the event stream.
    pub fn subscribe(&self) -> EventReader {
        self.events.subscribe()
    }

    /// What the broker was started with.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The release the broker behaves as now, with its deprecated features' switches.
    pub fn behaviour(&self) -> Behaviour {
        self.lock().behaviour().clone()
    }

    /// Behaves as another release from now on (a lesson's `behave_as`). What exists stays as
    /// it was declared; the new rules apply to what comes next.
    pub fn behave_as(&self, behaviour: Behaviour) {
        self.lock().behave_as(behaviour);
    }

    fn lock(&self) -> Locked<'_> {
        // A panic while holding the lock must not take every other client down with it.
        let state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Locked {
            state,
            store: self.store.as_ref(),
        }
    }

    // ---- users, vhosts, connections ----

    fn added_vhosts(&self) -> Vec<(String, String)> {
        self.added_vhosts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Adds a vhost while running, as `rabbitmqctl add_vhost` and `set_permissions` would, and
    /// lets `user` open it. Nothing happens to a vhost that exists already. It lasts as long as
    /// this process (a restart keeps it), not in the data directory.
    pub fn add_vhost(&self, name: &str, user: &str) {
        let mut state = self.lock();
        if !state.vhosts.contains_key(name) {
            state
                .vhosts
                .insert(Arc::from(name), vhost::Vhost::new(name));
        }
        let mut added = self
            .added_vhosts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let grant = (name.to_string(), user.to_string());
        if !added.contains(&grant) {
            added.push(grant);
        }
    }

    /// Checks credentials; `from_loopback` says whether the client connected over loopback.
    pub fn authenticate(&self, user: &str, password: &str, from_loopback: bool) -> AmqpResult<()> {
        self.check_login(user, password, from_loopback)
            .map_err(|_| {
                AmqpError::connection_access_refused(
                    "Login was refused using authentication mechanism PLAIN. For details see the broker logfile.",
                )
            })
    }

    /// Checks credentials and says why a login is refused, for the broker's log (the client is
    /// told only that it was, as RabbitMQ does).
    pub fn check_login(
        &self,
        user: &str,
        password: &str,
        from_loopback: bool,
    ) -> Result<(), LoginRefused> {
        let found = self
            .config
            .users
            .iter()
            .find(|u| u.name == user)
            .ok_or(LoginRefused::InvalidCredentials)?;
        // RabbitMQ refuses a blank password whatever the user's hash is.
        if password.is_empty() || !found.password.verify(password) {
            return Err(LoginRefused::InvalidCredentials);
        }
        if found.loopback_only && !from_loopback {
            return Err(LoginRefused::LoopbackOnly);
        }
        Ok(())
    }

    /// Registers a client's connection to `vhost` (530 when the vhost is unknown or not
    /// permitted). `client` says who it is; its `user` is the one that logged in.
    pub fn open_connection(
        &self,
        vhost: &str,
        client: ConnectionSnapshot,
        sink: ClientSink,
    ) -> AmqpResult<ConnectionId> {
        let mut state = self.lock();
        if !state.vhosts.contains_key(vhost) {
            return Err(AmqpError::not_allowed(format!("vhost {vhost} not found")));
        }
        let user = client.user.as_str();
        let refused = || {
            AmqpError::not_allowed(format!(
                "access to vhost '{vhost}' refused for user '{user}'"
            ))
        };
        let found = self.config.users.iter().find(|u| u.name == user);
        let permission = found.and_then(|u| u.permission(vhost)).cloned();
        // Vhosts added while running come with every permission for the user they were made for.
        let permission = permission.or_else(|| {
            self.added_vhosts()
                .iter()
                .any(|(v, u)| v == vhost && u == user)
                .then(|| Permission::all(vhost))
        });
        let topics = found.map(|u| u.topic_permissions.as_slice()).unwrap_or(&[]);
        let impersonator = found.is_some_and(|u| u.tags.iter().any(|t| t == "impersonator"));
        let grant = Grant::user(user, permission.ok_or_else(refused)?, topics, impersonator);
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        state.open_connection(id, vhost, client, sink, grant);
        Ok(id)
    }

    /// A connection for the program itself (definitions, lessons, the view's actions), with
    /// channel 1 open. Skips authentication; the inbox receives its deliveries. Snapshots and
    /// events name it `rabbitscope <name>`, so it is told apart from clients.
    pub fn open_internal_connection(
        &self,
        vhost: &str,
        name: &str,
    ) -> AmqpResult<(ConnectionId, ClientInbox)> {
        let mut state = self.lock();
        if !state.vhosts.contains_key(vhost) {
            return Err(AmqpError::not_allowed(format!("vhost {vhost} not found")));
        }
        let name = internal_name(name);
        let info = ConnectionSnapshot {
            id: 0,
            name: name.clone(),
            peer: name.clone(),
            user: name.clone(),
            client: crate::events::ClientInfo {
                connection_name: Some(name),
                product: Some(INTERNAL_PRODUCT.to_string()),
            },
            ..Default::default()
        };
        let (sink, inbox) = self.sink();
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        state.open_connection(id, vhost, info, sink, Grant::Broker);
        state.open_channel(ChannelRef {
            connection: id,
            channel: 1,
        });
        Ok((id, inbox))
    }

    /// Closes a connection: its channels close and its exclusive queues go.
    pub fn close_connection(&self, connection: ConnectionId, reason: &str) {
        self.lock().close_connection(connection, reason);
    }

    /// Whether a connection is still open (a restart closes them all).
    pub fn is_open(&self, connection: ConnectionId) -> bool {
        self.lock().has_connection(connection)
    }

    /// The writer of a stalled connection has room again: deliver to its consumers.
    pub fn resume_connection(&self, connection: ConnectionId) {
        self.lock().resume_connection(connection);
    }

    /// The vhosts, sorted.
    pub fn vhost_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.lock().vhosts.keys().map(|v| v.to_string()).collect();
        names.sort();
        names
    }

    // ---- channels ----
    //
    // From here on, each method is one AMQP method a client sends on a channel: it takes the
    // lock and hands over to the state's method of the same name.

    pub fn open_channel(&self, on: ChannelRef) {
        self.lock().open_channel(on);
    }

    pub fn close_channel(&self, on: ChannelRef, reason: &str) {
        self.lock().close_channel(on, reason);
    }

    // ---- exchanges ----

    pub fn exchange_declare(&self, on: ChannelRef, spec: ExchangeSpec) -> AmqpResult<()> {
        self.lock().exchange_declare(on, spec)
    }

    pub fn exchange_delete(&self, on: ChannelRef, name: &str, if_unused: bool) -> AmqpResult<()> {
        self.lock().exchange_delete(on, name, if_unused)
    }

    /// queue.bind or exchange.bind: `spec.target` is bound to exchange `spec.source`.
    pub fn bind(&self, on: ChannelRef, spec: BindingSpec<'_>) -> AmqpResult<()> {
        self.lock().bind(on, spec)
    }

    /// queue.unbind or exchange.unbind.
    pub fn unbind(&self, on: ChannelRef, spec: BindingSpec<'_>) -> AmqpResult<()> {
        self.lock().unbind(on, spec)
    }

    // ---- queues ----

    pub fn queue_declare(&self, on: ChannelRef, spec: QueueSpec) -> AmqpResult<QueueDeclared> {
        self.lock().queue_declare(on, spec)
    }

    /// Returns the number of messages purged.
    pub fn queue_purge(&self, on: ChannelRef, queue: &str) -> AmqpResult<u32> {
        self.lock().queue_purge(on, queue)
    }

    /// Returns the number of messages deleted with the queue.
    pub fn queue_delete(
        &self,
        on: ChannelRef,
        queue: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> AmqpResult<u32> {
        self.lock().queue_delete(on, queue, if_unused, if_empty)
    }

    // ---- basic ----

    pub fn basic_qos(&self, on: ChannelRef, prefetch_count: u16, global: bool) {
        self.lock().basic_qos(on, prefetch_count, global);
    }

    /// Starts a consumer; returns its tag (generated when the spec's tag is empty).
    pub fn basic_consume(&self, on: ChannelRef, spec: ConsumeSpec) -> AmqpResult<String> {
        self.lock().basic_consume(on, spec)
    }

    /// Called by the wire layer right after it sent consume-ok, so deliveries follow it.
    pub fn consumer_ready(&self, on: ChannelRef, tag: &str) {
        self.lock().consumer_ready(on, tag);
    }

    pub fn basic_cancel(&self, on: ChannelRef, tag: &str) -> AmqpResult<()> {
        self.lock().basic_cancel(on, tag)
    }

    /// Publishes one message. `Err` closes the channel (e.g. 404 for a missing exchange).
    pub fn basic_publish(
        &self,
        on: ChannelRef,
        publish: Publish<'_>,
    ) -> AmqpResult<PublishOutcome> {
        let mut state = self.lock();
        state.begin_publish();
        let outcome = state.basic_publish(on, publish);
        state.end_publish();
        let mut outcome = outcome?;
        outcome.durable_at = state.commit();
        Ok(outcome)
    }

    pub fn basic_get(
        &self,
        on: ChannelRef,
        queue: &str,
        no_ack: bool,
    ) -> AmqpResult<Option<GetOk>> {
        self.lock().basic_get(on, queue, no_ack)
    }

    /// basic.ack, basic.nack or basic.reject (`how` says which) of `delivery_tag`, or with
    /// `multiple` of every tag up to it (0: all).
    pub fn settle(
        &self,
        on: ChannelRef,
        delivery_tag: u64,
        multiple: bool,
        how: Settle,
    ) -> AmqpResult<()> {
        self.lock().settle(on, delivery_tag, multiple, how)
    }

    /// basic.recover: requeue (or redeliver) every unacked message of the channel.
    pub fn basic_recover(&self, on: ChannelRef) {
        self.lock().recover(on);
    }

    // ---- inspection ----

    /// A copy of the topology, for screens and tests.
    pub fn snapshot(&self) -> Snapshot {
        self.lock().snapshot()
    }

    /// Stream `queue` of `vhost` as a log (offsets, bytes, segments, retention, and where each
    /// consumer reads next); None when it is not a stream.
    pub fn stream_snapshot(&self, vhost: &str, queue: &str) -> Option<stream::StreamSnapshot> {
        self.lock().stream_snapshot(vhost, queue)
    }

    /// The exact arguments of the binding a screen shows as `binding`, so it can be unbound:
    /// unbinding matches arguments by value and type, which the shown text has lost.
    pub fn binding_arguments(
        &self,
        vhost: &str,
        binding: &crate::events::BindingInfo,
    ) -> Option<amq_protocol::types::FieldTable> {
        let state = self.lock();
        let exchange = state.vhosts.get(vhost)?.exchanges.get(&*binding.source)?;
        exchange
            .router
            .bindings()
            .into_iter()
            .find(|b| *b.info(&binding.source) == *binding)
            .map(|b| b.arguments.clone())
    }
}

/// The `product` of the program's own connections.
pub const INTERNAL_PRODUCT: &str = "rabbitscope";

/// `rabbitscope <name>`, unless the name says so already.
fn internal_name(name: &str) -> String {
    if name == INTERNAL_PRODUCT || name.starts_with("rabbitscope ") {
        name.to_string()
    } else {
        format!("{INTERNAL_PRODUCT} {name}")
    }
}

/// Why a login was refused. An unknown user and a wrong password read alike, as in RabbitMQ's
/// log, so the log does not tell a guesser which names exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefused {
    InvalidCredentials,
    /// The user (guest) may log in only from this machine.
    LoopbackOnly,
}
