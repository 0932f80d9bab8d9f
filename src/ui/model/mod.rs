//! What the screen knows: the topology of the vhost on view, a ring of recent messages, and
//! per-exchange and per-queue rates. Fed only by snapshots and broker events, so any source
//! (embedded broker, remote RabbitMQ, recorded trace) can drive it.
//!
//! It may import the events, the topology types, the lesson's probe prefix and the OpenStack
//! lens (whose each connection and queue is); nothing of the app or the panes.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::broker::VhostSnapshot;
use crate::topology::QueueType;
use bytes::Bytes;

use crate::events::{
    AlarmResource, BindingInfo, ConnectionId, DeadLetterReason, Event, EventKind, Name, PublishFate,
};
use crate::lesson::{Lang, PROBE_PREFIX};
use crate::openstack::lens::{Calls, Lens, Whose};
use crate::ui::history::Happened;

/// How many messages the log keeps; older ones fall off.
pub const LOG_CAPACITY: usize = 2_000;
/// How many seconds of history a rate sparkline shows.
pub const RATE_HISTORY: usize = 60;

/// One message, as the log and the inspector show it.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEntry {
    pub message_id: u64,
    pub at: SystemTime,
    pub exchange: Name,
    pub routing_key: Name,
    pub queues: Vec<Name>,
    pub matched: Vec<Arc<BindingInfo>>,
    pub fate: PublishFate,
    pub alternate_exchange: Option<Name>,
    pub headers: Vec<(String, String)>,
    pub properties: Arc<[(String, String)]>,
    pub body_size: usize,
    pub body_preview: Bytes,
    /// An oslo.messaging message's headline (`cast schedule_and_build_instances 1.17`,
    /// `reply to select_destinations`), decoded once when it arrives so the log and its filter
    /// need not parse bodies.
    pub oslo: Option<String>,
    /// Its method (for a reply, the method of the call it answers, when that was seen) and
    /// whether a `call`, a `cast`, a `reply` or a `notification`.
    pub method: Option<String>,
    pub kind: Option<&'static str>,
    /// The publishing connection, and its service and host as the lens knows them (learnt
    /// again with each snapshot: a recording may name its connections late).
    pub connection: Option<ConnectionId>,
    pub publisher: Whose,
    /// The consumers it was delivered to, each once: the service (its connection's label)
    /// when the connection is known, else the consumer tag (`basic.get` for a get).
    pub consumers: Vec<Name>,
    /// What happened to it after it was routed, in order: deliveries (and redeliveries),
    /// acks, nacks, rejects, requeues, expiry, dead-lettering.
    pub history: Vec<Happened>,
}

/// How many later events a log entry remembers; a message requeued forever stops there.
const HISTORY: usize = 24;

impl LogEntry {
    fn record(&mut self, happened: Happened) {
        if self.history.len() < HISTORY {
            self.history.push(happened);
        }
    }
}

impl LogEntry {
    /// The one-line summary: `exchange  routing.key -> q1, q2` or the fate; an oslo.messaging
    /// message shows its method instead of exchange and key:
    /// `cast schedule_and_build_instances 1.17 -> conductor (consumer)`.
    pub fn summary(&self, lang: Lang) -> String {
        let zh = lang == Lang::Zh;
        let exchange = if self.exchange.is_empty() {
            "(default)"
        } else {
            &self.exchange
        };
        let to = match self.fate {
            PublishFate::Routed => format!("-> {}", self.queues.join(", ")),
            PublishFate::Returned if zh => "退回（不可路由，mandatory）".to_string(),
            PublishFate::Returned => "returned (unroutable, mandatory)".to_string(),
            PublishFate::Dropped if zh => "丢弃（不可路由）".to_string(),
            PublishFate::Dropped => "dropped (unroutable)".to_string(),
            PublishFate::Rejected if zh => "拒收（队列已满）".to_string(),
            PublishFate::Rejected => "rejected (queue full)".to_string(),
        };
        let via = match &self.alternate_exchange {
            Some(ae) if zh => format!(" 经备用交换器 {ae}"),
            Some(ae) => format!(" via alternate {ae}"),
            None => String::new(),
        };
        let by = if self.consumers.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.consumers.join(", "))
        };
        let from = match self.publisher.label() {
            Some(service) => format!("{service}  "),
            None => String::new(),
        };
        match &self.oslo {
            Some(headline) => format!("{from}{headline} {to}{by}{via}"),
            None => format!("{from}{exchange}  {}  {to}{by}{via}", self.routing_key),
        }
    }

    /// Whether the filter finds this message: in its line as the log shows it (in `lang`),
    /// exchange, routing key, header names and values, or body (as kept).
    pub fn matches(
        &self,
        filter: &regex::Regex,
        body_filter: &regex::bytes::Regex,
        lang: Lang,
    ) -> bool {
        filter.is_match(&self.summary(lang))
            || filter.is_match(&self.exchange)
            || filter.is_match(&self.routing_key)
            || self
                .headers
                .iter()
                .any(|(k, v)| filter.is_match(k) || filter.is_match(v))
            || body_filter.is_match(&self.body_preview)
    }
}

/// Counts per second over the last [`RATE_HISTORY`] seconds.
#[derive(Clone, Debug, Default)]
pub struct Rate {
    /// Oldest first; the last entry is the second in progress.
    pub per_second: VecDeque<u64>,
}

impl Rate {
    fn add(&mut self) {
        if self.per_second.is_empty() {
            self.per_second.push_back(0);
        }
        *self.per_second.back_mut().expect("non-empty") += 1;
    }

    fn roll(&mut self) {
        self.per_second.push_back(0);
        while self.per_second.len() > RATE_HISTORY {
            self.per_second.pop_front();
        }
    }

    /// The last complete second's count.
    pub fn current(&self) -> u64 {
        let n = self.per_second.len();
        if n >= 2 {
            self.per_second[n - 2]
        } else {
            0
        }
    }
}

/// Where a flight goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlightKind {
    ToQueue,
    ToConsumer,
    /// Unroutable: shown at the exchange as dropped, or returned to the publisher.
    Dropped,
    Returned,
}

/// A message moving along the graph: from its publisher through an exchange to a queue, or
/// from a queue to the consumer it was delivered to.
#[derive(Clone, Debug, PartialEq)]
pub struct Flight {
    pub message_id: u64,
    /// The exchange (or, to a consumer, the queue) it leaves from.
    pub from: Name,
    /// The queue, or the consumer tag.
    pub to: Name,
    pub kind: FlightKind,
    /// The publishing connection towards a queue, the consuming one towards a consumer.
    pub connection: Option<ConnectionId>,
    /// When it sets off; a delivery waits for the message to reach its queue first.
    pub started: Instant,
    /// Whether the snapshot on view already counts it where it is going: until it lands, the
    /// queue's counters are shown without it.
    pub counted: bool,
}

impl Flight {
    /// How far along its way at `now`, 0 (not left yet) to 1 (landed).
    pub fn progress(&self, now: Instant, flight_time: Duration) -> f64 {
        let flown = now.saturating_duration_since(self.started).as_secs_f64();
        (flown / flight_time.as_secs_f64()).clamp(0.0, 1.0)
    }

    pub fn landed(&self, now: Instant, flight_time: Duration) -> bool {
        now >= self.started + flight_time
    }
}

/// What the traffic taught about the vhost that a snapshot does not list: who publishes to
/// which exchange, and which queues the default exchange reached by which key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// (publishing connection, exchange).
    pub published: BTreeSet<(ConnectionId, Name)>,
    /// (queue, routing key) of messages published to the default exchange.
    pub default_routes: BTreeSet<(Name, Name)>,
}

#[derive(Debug)]
pub struct Model {
    pub vhost: String,
    pub topology: VhostSnapshot,
    pub log: VecDeque<LogEntry>,
    pub exchange_rates: HashMap<Name, Rate>,
    pub queue_rates: HashMap<Name, Rate>,
    pub total_rate: Rate,
    pub flights: Vec<Flight>,
    pub traffic: Traffic,
    /// What the traffic showed since the last snapshot.
    fresh: Traffic,
    /// Events the stream dropped because the screen fell behind.
    pub missed: u64,
    /// Set by every event that changes what the graph shows; the app then asks for a fresh
    /// snapshot.
    pub topology_stale: bool,
    /// Set by declarations, deletions, bindings and consumers: the graph must be laid out
    /// again, not only relabelled.
    pub structure_changed: bool,
    last_roll: Instant,
    /// How many flights may be in the air; beyond it, messages only count in the rates.
    pub max_flights: usize,
    pub flight_time: Duration,
    /// The broker's resource alarms that are on (they are the node's, not the vhost's).
    pub alarms: crate::broker::Alarms,
    /// A RabbitMQ cluster's nodes, from the last snapshot (none for the embedded broker).
    pub nodes: Vec<crate::topology::NodeSnapshot>,
    /// Whose each connection and queue is, in OpenStack words; learnt again with each
    /// snapshot from its connections and consumers and from what the events showed.
    pub lens: Lens,
    /// Queues seen declared, and consumed (by delivery), by a connection, until deleted: a
    /// snapshot lists consumers, not declarers, and a recording may lack the consumers.
    owners: BTreeSet<(Name, ConnectionId, bool)>,
    /// Connection names seen, in snapshots or as connections opened: a recording may name a
    /// connection only after its messages, or only while the last snapshot did not list it.
    client_names: HashMap<ConnectionId, String>,
    calls: Calls,
}

impl Model {
    pub fn new(vhost: &str) -> Model {
        Model {
            vhost: vhost.to_string(),
            topology: VhostSnapshot {
                name: vhost.to_string(),
                ..Default::default()
            },
            log: VecDeque::with_capacity(LOG_CAPACITY),
            exchange_rates: HashMap::new(),
            queue_rates: HashMap::new(),
            total_rate: Rate::default(),
            flights: Vec::new(),
            traffic: Traffic::default(),
            fresh: Traffic::default(),
            missed: 0,
            topology_stale: true,
            structure_changed: true,
            last_roll: Instant::now(),
            max_flights: 64,
            flight_time: Duration::from_millis(1200),
            alarms: crate::broker::Alarms::default(),
            nodes: Vec::new(),
            lens: Lens::new(),
            owners: BTreeSet::new(),
            client_names: HashMap::new(),
            calls: Calls::default(),
        }
    }

    /// Learns the lens again: connections first (a queue tells its consumers' host), then
    /// the snapshot's queues and consumers and what the events showed. Log lines whose
    /// publisher was not known yet are named now.
    fn learn_lens(&mut self) {
        let t = &self.topology;
        for c in &t.connections {
            if let Some(name) = &c.client.connection_name {
                self.client_names.insert(c.id, name.clone());
            }
        }
        // Names are kept while something on view may need them.
        let listed: HashSet<ConnectionId> = t.connections.iter().map(|c| c.id).collect();
        let logged: HashSet<ConnectionId> = self.log.iter().filter_map(|e| e.connection).collect();
        let owning: HashSet<ConnectionId> = self.owners.iter().map(|o| o.1).collect();
        self.client_names
            .retain(|c, _| listed.contains(c) || logged.contains(c) || owning.contains(c));
        let mut lens = Lens::new();
        for (c, name) in &self.client_names {
            lens.connection(*c, Some(name));
        }
        for q in &t.queues {
            lens.queue_seen(&q.name);
        }
        for c in &t.consumers {
            lens.consumes(c.connection, &c.queue);
        }
        for (queue, connection, consumed) in &self.owners {
            match consumed {
                true => lens.consumes(*connection, queue),
                false => lens.declared(*connection, queue),
            }
        }
        self.lens = lens;
        self.name_publishers();
    }

    /// Names the publisher of each log line the lens knows more of now.
    fn name_publishers(&mut self) {
        for entry in &mut self.log {
            if let Some(c) = entry.connection {
                let whose = self.lens.connection_whose(c);
                if whose.service.is_some() && whose != entry.publisher {
                    entry.publisher = whose;
                }
            }
        }
    }

    /// Remembers that a connection declared or consumed a queue, for the lens.
    fn learn_owner(&mut self, queue: &Name, connection: Option<ConnectionId>, consumed: bool) {
        if let Some(c) = connection {
            if self.owners.insert((queue.clone(), c, consumed)) {
                match consumed {
                    true => self.lens.consumes(c, queue),
                    false => self.lens.declared(c, queue),
                }
            }
        }
    }

    /// Takes a new snapshot. Publishers whose connection the snapshot does not list, and
    /// default-exchange routes to queues it does not list, are forgotten, unless the traffic
    /// showed them since the last snapshot (which may have been taken before they came).
    /// Flights in the air are now counted by the snapshot.
    pub fn set_topology(&mut self, topology: VhostSnapshot) {
        let drawn = self.drawn();
        self.topology = topology;
        let connections: HashSet<ConnectionId> =
            self.topology.connections.iter().map(|c| c.id).collect();
        let queues: HashSet<&str> = self.topology.queues.iter().map(|q| &*q.name).collect();
        let fresh = std::mem::take(&mut self.fresh);
        self.traffic
            .published
            .retain(|p| connections.contains(&p.0) || fresh.published.contains(p));
        self.traffic
            .default_routes
            .retain(|r| queues.contains(&*r.0) || fresh.default_routes.contains(r));
        self.learn_lens();
        if self.drawn() != drawn {
            self.structure_changed = true;
        }
        for flight in &mut self.flights {
            flight.counted = true;
        }
        self.topology_stale = false;
    }

    /// What of the traffic the graph can draw: publishers whose connection the snapshot
    /// names, default-exchange routes to queues it lists.
    fn drawn(&self) -> Traffic {
        let t = &self.topology;
        let connections: HashSet<ConnectionId> = t.connections.iter().map(|c| c.id).collect();
        let queues: HashSet<&str> = t.queues.iter().map(|q| &*q.name).collect();
        let known = |c: &ConnectionId| connections.contains(c);
        let listed = |q: &Name| queues.contains(&**q);
        Traffic {
            published: (self.traffic.published.iter())
                .filter(|p| known(&p.0))
                .cloned()
                .collect(),
            default_routes: (self.traffic.default_routes.iter())
                .filter(|r| listed(&r.0))
                .cloned()
                .collect(),
        }
    }

    /// The label of a connection of the snapshot: its service and host where the lens knows
    /// them (`nova-compute@compute-1`), else its own (`nova-conductor`, `pika :53122`).
    pub fn connection_label(&self, id: ConnectionId) -> Option<String> {
        let c = self.topology.connections.iter().find(|c| c.id == id)?;
        Some(
            self.lens
                .connection_whose(id)
                .label()
                .unwrap_or_else(|| c.label()),
        )
    }

    /// Advances time: finished flights land, rates roll over each second.
    pub fn tick(&mut self, now: Instant) {
        let flight_time = self.flight_time;
        self.flights.retain(|f| !f.landed(now, flight_time));
        while now.duration_since(self.last_roll) >= Duration::from_secs(1) {
            self.last_roll += Duration::from_secs(1);
            self.total_rate.roll();
            for rate in self
                .exchange_rates
                .values_mut()
                .chain(self.queue_rates.values_mut())
            {
                rate.roll();
            }
        }
    }

    fn launch(&mut self, flight: Flight) {
        if self.flights.len() < self.max_flights {
            self.flights.push(flight);
        }
    }

    pub fn apply(&mut self, event: &Arc<Event>, now: Instant) {
        if let EventKind::AlarmOn { resource } | EventKind::AlarmOff { resource } = &event.kind {
            let on = matches!(event.kind, EventKind::AlarmOn { .. });
            match resource {
                AlarmResource::Memory => self.alarms.memory = on,
                AlarmResource::Disk => self.alarms.disk = on,
            }
            return;
        }
        if *event.vhost != *self.vhost {
            return;
        }
        if let EventKind::QueueDeleted { name } = &event.kind {
            self.traffic.default_routes.retain(|(q, _)| q != name);
            // Kept until deleted, not while listed: a recording may declare a reply queue
            // only after its first reply.
            self.owners.retain(|(q, _, _)| q != name);
        }
        if let EventKind::QueueDeclared { name, .. } = &event.kind {
            self.learn_owner(name, event.connection, false);
        }
        if let (EventKind::ConnectionOpened { client, .. }, Some(c)) =
            (&event.kind, event.connection)
        {
            if let Some(name) = &client.connection_name {
                self.client_names.insert(c, name.clone());
                self.lens.connection(c, Some(name));
                self.name_publishers();
            }
        }
        match &event.kind {
            EventKind::ExchangeDeclared { .. }
            | EventKind::ExchangeDeleted { .. }
            | EventKind::QueueDeclared { .. }
            | EventKind::QueueDeleted { .. }
            | EventKind::QueuePurged { .. }
            | EventKind::BindingCreated(_)
            | EventKind::BindingDeleted(_)
            | EventKind::ConsumerCreated { .. }
            | EventKind::ConsumerCancelled { .. } => {
                self.topology_stale = true;
                self.structure_changed = true;
            }
            EventKind::Published {
                message_id,
                exchange,
                routing_key,
                body_size,
                body_preview,
                headers,
                properties,
                matched,
                queues,
                alternate_exchange,
                fate,
            } => {
                // A lesson run's probe (finding its own connection) is bookkeeping, not traffic.
                if exchange.is_empty() && routing_key.starts_with(PROBE_PREFIX) {
                    return;
                }
                self.total_rate.add();
                // Every exchange the message passed through counts it once: the one it was
                // published to, and those reached by exchange-to-exchange bindings.
                let mut through: Vec<&Name> = vec![exchange];
                for b in matched {
                    if !through.contains(&&b.source) {
                        through.push(&b.source);
                    }
                }
                for x in through {
                    self.exchange_rates.entry(x.clone()).or_default().add();
                }
                // A new publisher, or a queue newly reached through the default exchange, is
                // a new node or edge on the graph.
                // (What the snapshot cannot name yet is drawn once a snapshot does.)
                let mut learnt = false;
                if let Some(connection) = event.connection {
                    let publisher = (connection, exchange.clone());
                    self.fresh.published.insert(publisher.clone());
                    let known = self.topology.connections.iter().any(|c| c.id == connection);
                    learnt |= self.traffic.published.insert(publisher) && known;
                }
                if exchange.is_empty() && alternate_exchange.is_none() {
                    for q in queues {
                        let route = (q.clone(), routing_key.clone());
                        self.fresh.default_routes.insert(route.clone());
                        learnt |= self.traffic.default_routes.insert(route);
                    }
                }
                if learnt {
                    self.structure_changed = true;
                }
                // A message travels to each queue from the exchange whose binding delivered
                // it: an alternate exchange, or the end of an exchange-to-exchange chain.
                let default_from = alternate_exchange.as_ref().unwrap_or(exchange);
                for q in queues {
                    self.queue_rates.entry(q.clone()).or_default().add();
                    let from = matched
                        .iter()
                        .find(|b| !b.destination_is_exchange && b.destination == *q)
                        .map_or(default_from, |b| &b.source);
                    self.launch(Flight {
                        message_id: *message_id,
                        from: from.clone(),
                        to: q.clone(),
                        kind: FlightKind::ToQueue,
                        connection: event.connection,
                        started: now,
                        counted: false,
                    });
                }
                let unroutable = match fate {
                    PublishFate::Dropped => Some(FlightKind::Dropped),
                    PublishFate::Returned => Some(FlightKind::Returned),
                    _ => None,
                };
                if let Some(kind) = unroutable {
                    self.launch(Flight {
                        message_id: *message_id,
                        from: exchange.clone(),
                        to: Name::from(""),
                        kind,
                        connection: event.connection,
                        started: now,
                        counted: false,
                    });
                }
                if self.log.len() == LOG_CAPACITY {
                    self.log.pop_front();
                }
                let (oslo, method, kind) = match self.calls.read(body_preview) {
                    Some(said) => (Some(said.headline), said.method, Some(said.kind)),
                    None => (None, None, None),
                };
                self.log.push_back(LogEntry {
                    message_id: *message_id,
                    at: event.at,
                    exchange: exchange.clone(),
                    routing_key: routing_key.clone(),
                    queues: queues.clone(),
                    matched: matched.clone(),
                    fate: fate.clone(),
                    alternate_exchange: alternate_exchange.clone(),
                    headers: headers.clone(),
                    properties: properties.clone(),
                    body_size: *body_size,
                    body_preview: body_preview.clone(),
                    oslo,
                    method,
                    kind,
                    connection: event.connection,
                    publisher: event
                        .connection
                        .map(|c| self.lens.connection_whose(c))
                        .unwrap_or_default(),
                    consumers: Vec::new(),
                    history: Vec::new(),
                });
                // Depth counters move with the traffic between snapshots.
                self.topology_stale = true;
            }
            EventKind::Delivered {
                message_id,
                queue,
                consumer_tag,
                redelivered,
                delivery_tag,
                offset,
                delivery_count,
            } => {
                let tag = consumer_tag
                    .clone()
                    .unwrap_or_else(|| Name::from("basic.get"));
                // A stream's consumer moves along the log before the next snapshot says so.
                if let (Some(offset), Some(connection)) = (offset, event.connection) {
                    let q = self.topology.queues.iter_mut().find(|q| *q.name == **queue);
                    if let Some(log) = q.and_then(|q| q.stream.as_mut()) {
                        log.delivered(&tag, connection, *offset);
                    }
                }
                if consumer_tag.is_some() {
                    self.learn_owner(queue, event.connection, true);
                }
                // The service it went to, as people know it: its connection's label.
                let service = event.connection.and_then(|c| self.connection_label(c));
                let mut default_route = None;
                if let Some(entry) = self.entry_mut(*message_id) {
                    // Delivered from a queue, so it reached that queue, whatever its publish
                    // said: a recorder that learnt of a reply queue late wrote the reply down as
                    // dropped. A message routed elsewhere may reach more queues only by being
                    // dead-lettered, which its history tells.
                    if entry.fate == PublishFate::Dropped && !entry.queues.contains(queue) {
                        entry.queues.push(queue.clone());
                        entry.fate = PublishFate::Routed;
                        if entry.exchange.is_empty() {
                            default_route = Some((queue.clone(), entry.routing_key.clone()));
                        }
                    }
                    let who = service.as_deref().map_or(tag.clone(), Name::from);
                    if !entry.consumers.contains(&who) {
                        entry.consumers.push(who);
                    }
                    let to = match &service {
                        Some(service) => format!("{service} {tag}"),
                        None => tag.to_string(),
                    };
                    entry.record(Happened::Delivered {
                        queue: queue.clone(),
                        to,
                        delivery_tag: *delivery_tag,
                        redelivered: *redelivered,
                        delivery_count: *delivery_count,
                    });
                }
                if let Some(route) = default_route {
                    self.fresh.default_routes.insert(route.clone());
                    if self.traffic.default_routes.insert(route) {
                        self.structure_changed = true;
                    }
                }
                // It leaves the queue once it has got there.
                let flight_time = self.flight_time;
                let arrives = self
                    .flights
                    .iter()
                    .filter(|f| {
                        f.kind == FlightKind::ToQueue
                            && f.message_id == *message_id
                            && f.to == *queue
                    })
                    .map(|f| f.started + flight_time)
                    .max();
                self.launch(Flight {
                    message_id: *message_id,
                    from: queue.clone(),
                    to: tag,
                    kind: FlightKind::ToConsumer,
                    connection: event.connection,
                    started: arrives.map_or(now, |at| at.max(now)),
                    counted: false,
                });
                self.topology_stale = true;
            }
            EventKind::DeadLettered {
                message_id,
                queue,
                reason,
                exchange,
                routing_key,
            } => {
                let happened = Happened::DeadLettered {
                    queue: queue.clone(),
                    reason: reason.as_str(),
                    exchange: exchange.clone(),
                    routing_key: routing_key.clone(),
                };
                self.note(*message_id, happened);
            }
            EventKind::Acked {
                message_id, queue, ..
            } => self.note(
                *message_id,
                Happened::Acked {
                    queue: queue.clone(),
                },
            ),
            EventKind::Nacked {
                message_id,
                queue,
                requeue,
                ..
            } => self.note(
                *message_id,
                Happened::Nacked {
                    queue: queue.clone(),
                    requeue: *requeue,
                },
            ),
            EventKind::Rejected {
                message_id,
                queue,
                requeue,
                ..
            } => self.note(
                *message_id,
                Happened::Rejected {
                    queue: queue.clone(),
                    requeue: *requeue,
                },
            ),
            EventKind::Requeued { message_id, queue } => self.note(
                *message_id,
                Happened::Requeued {
                    queue: queue.clone(),
                },
            ),
            EventKind::Expired { message_id, queue } => self.note(
                *message_id,
                Happened::Expired {
                    queue: queue.clone(),
                },
            ),
            EventKind::Dropped {
                message_id,
                queue,
                reason,
            } => self.note(
                *message_id,
                Happened::Dropped {
                    queue: queue.clone(),
                    past_delivery_limit: *reason == DeadLetterReason::DeliveryLimit,
                },
            ),
            _ => {}
        }
    }

    /// The messages the snapshot already counts in a queue that are still flying to it, as
    /// (ready, unacked): the queue's counters take them in when their dot arrives. A message
    /// already delivered on is counted unacked when its consumer acknowledges, else not at all;
    /// from a stream, reading removes nothing, so it is counted ready whoever read it.
    pub fn arriving(&self, queue: &str, now: Instant) -> (usize, usize) {
        let mut out = (0, 0);
        let stream = (self.topology.queues.iter())
            .any(|q| q.name == queue && q.queue_type == QueueType::Stream);
        let in_air = |f: &&Flight| f.counted && !f.landed(now, self.flight_time);
        for f in self.flights.iter().filter(in_air) {
            if f.kind != FlightKind::ToQueue || *f.to != *queue {
                continue;
            }
            let delivery = self.flights.iter().find(|d| {
                d.counted
                    && d.kind == FlightKind::ToConsumer
                    && d.message_id == f.message_id
                    && *d.from == *queue
            });
            match delivery {
                _ if stream => out.0 += 1,
                None => out.0 += 1,
                Some(d) => {
                    let acks = self
                        .topology
                        .consumers
                        .iter()
                        .find(|c| c.queue == queue && c.tag == *d.to)
                        .is_none_or(|c| c.ack);
                    out.1 += usize::from(acks);
                }
            }
        }
        out
    }

    /// Adds a line to a message's history; counters move too, so a snapshot is due.
    fn note(&mut self, message_id: u64, happened: Happened) {
        if let Some(entry) = self.entry_mut(message_id) {
            entry.record(happened);
        }
        self.topology_stale = true;
    }

    /// Forgets the messages (log, flights, rates): the broker behind them was reset.
    pub fn clear_messages(&mut self) {
        self.log.clear();
        self.flights.clear();
        self.fresh = Traffic::default();
        if self.traffic != Traffic::default() {
            self.traffic = Traffic::default();
            self.structure_changed = true;
        }
        self.exchange_rates.clear();
        self.queue_rates.clear();
        self.total_rate = Rate::default();
    }

    /// The log entry of a message, newest first (recent messages are looked up most).
    pub fn entry_mut(&mut self, message_id: u64) -> Option<&mut LogEntry> {
        self.log
            .iter_mut()
            .rev()
            .find(|e| e.message_id == message_id)
    }
}

#[cfg(test)]
mod tests;
