//! A virtual host: its exchanges, queues and bindings, and the routing of one message through
//! them (exchange-to-exchange chains and alternate exchanges included).

use std::sync::Arc;

use amq_protocol::types::FieldTable;

use super::error::{AmqpError, AmqpResult};
use super::exchange::{Binding, Destination, Exchange, ExchangeKind, SourcedBinding};
use super::maps::HashMap;
use super::queue::Queue;

/// The exchanges every vhost starts with, as RabbitMQ pre-declares them.
/// `amq.rabbitmq.trace` is RabbitMQ's firehose exchange (internal); it exists here too so a
/// topology reads the same, though nothing is traced into it.
const PREDECLARED: &[(&str, ExchangeKind, bool)] = &[
    ("", ExchangeKind::Direct, false),
    ("amq.direct", ExchangeKind::Direct, false),
    ("amq.fanout", ExchangeKind::Fanout, false),
    ("amq.topic", ExchangeKind::Topic, false),
    ("amq.headers", ExchangeKind::Headers, false),
    ("amq.match", ExchangeKind::Headers, false),
    ("amq.rabbitmq.trace", ExchangeKind::Topic, true),
];

pub struct Vhost {
    pub name: String,
    /// The default exchange's name (""), shared by every route through it.
    default_exchange: Arc<str>,
    pub exchanges: HashMap<Arc<str>, Exchange>,
    pub queues: HashMap<Arc<str>, Queue>,
    /// Exchange-to-exchange bindings by destination exchange, so deleting one is quick.
    pub bindings_into_exchange: HashMap<Arc<str>, Vec<SourcedBinding>>,
}

/// Where one message goes.
#[derive(Debug, Default, Clone)]
pub struct Route {
    /// Each queue at most once, in the order first reached.
    pub queues: Vec<Arc<str>>,
    /// Every binding that matched on the way: (source exchange, binding).
    pub matched: Vec<SourcedBinding>,
    /// Set when the message was unroutable and went to this alternate exchange.
    pub alternate_exchange: Option<Arc<str>>,
}

impl Vhost {
    pub fn new(name: &str) -> Vhost {
        let exchanges = PREDECLARED
            .iter()
            .map(|(name, kind, internal)| {
                let exchange =
                    Exchange::new(name, *kind, true, false, *internal, FieldTable::default());
                (Arc::from(*name), exchange)
            })
            .collect();
        Vhost {
            name: name.to_string(),
            default_exchange: Arc::from(""),
            exchanges,
            queues: HashMap::default(),
            bindings_into_exchange: HashMap::default(),
        }
    }

    pub fn exchange(&self, name: &str) -> AmqpResult<&Exchange> {
        self.exchanges.get(name).ok_or_else(|| {
            AmqpError::not_found(format!("no exchange '{name}' in vhost '{}'", self.name))
        })
    }

    /// Routes a message published to `exchange`. The default exchange reaches the queue named
    /// by the routing key; other exchanges ask their router, follow exchange-to-exchange
    /// bindings (each exchange visited once), and fall back to the alternate exchange.
    pub fn route(&self, exchange: &str, routing_key: &str, headers: Option<&FieldTable>) -> Route {
        let mut route = Route::default();
        if exchange.is_empty() {
            if let Some(queue) = self.queues.get(routing_key) {
                route.queues.push(queue.name.clone());
                route
                    .matched
                    .push((self.default_exchange.clone(), queue.default_binding.clone()));
            }
            return route;
        }
        let mut visited: Vec<&str> = Vec::new();
        self.route_from(exchange, routing_key, headers, &mut visited, &mut route);
        // Alternate exchanges: follow the chain while nothing was reached.
        let mut current = exchange.to_string();
        while route.queues.is_empty() {
            let Some(alternate) = self
                .exchanges
                .get(current.as_str())
                .and_then(Exchange::alternate_exchange)
            else {
                break;
            };
            if visited.contains(&alternate.as_str())
                || !self.exchanges.contains_key(alternate.as_str())
            {
                break;
            }
            route
                .alternate_exchange
                .get_or_insert_with(|| Arc::from(alternate.as_str()));
            self.route_from(&alternate, routing_key, headers, &mut visited, &mut route);
            current = alternate;
        }
        route
    }

    fn route_from<'a>(
        &'a self,
        exchange: &str,
        routing_key: &str,
        headers: Option<&FieldTable>,
        visited: &mut Vec<&'a str>,
        route: &mut Route,
    ) {
        let Some((name, start)) = self.exchanges.get_key_value(exchange) else {
            return;
        };
        visited.push(name);
        let mut pending = vec![(name.clone(), start)];
        let mut found = Vec::new();
        while let Some((source, exchange)) = pending.pop() {
            found.clear();
            exchange.router.route(routing_key, headers, &mut found);
            for binding in &found {
                match &binding.destination {
                    Destination::Queue(queue) => {
                        if !route.queues.contains(queue) {
                            route.queues.push(queue.clone());
                        }
                    }
                    Destination::Exchange(next) => {
                        if let Some((next_name, next_exchange)) =
                            self.exchanges.get_key_value(&**next)
                        {
                            if !visited.contains(&&**next_name) {
                                visited.push(next_name);
                                pending.push((next_name.clone(), next_exchange));
                            }
                        }
                    }
                }
                route.matched.push((source.clone(), binding.clone()));
            }
        }
    }

    /// Whether a binding outlives a restart: both its ends are durable.
    pub fn is_durable_binding(&self, source: &str, binding: &Binding) -> bool {
        let source_durable = self.exchanges.get(source).is_some_and(|x| x.durable);
        let destination_durable = match &binding.destination {
            Destination::Queue(q) => self
                .queues
                .get(q)
                .is_some_and(|q| q.durable && q.owner.is_none()),
            Destination::Exchange(x) => self.exchanges.get(x).is_some_and(|x| x.durable),
        };
        source_durable && destination_durable
    }

    /// Adds a binding unless an identical one exists; returns whether it was added.
    pub fn add_binding(&mut self, source: &str, binding: Binding) -> bool {
        let Some((source_name, exchange)) = self.exchanges.get_key_value_mut_compat(source) else {
            return false;
        };
        if exchange.has_binding(&binding) {
            return false;
        }
        let binding = Arc::new(binding);
        exchange.bind(binding.clone());
        match &binding.destination {
            Destination::Queue(q) => {
                if let Some(queue) = self.queues.get_mut(q) {
                    queue.bindings.push((source_name, binding));
                }
            }
            Destination::Exchange(x) => self
                .bindings_into_exchange
                .entry(x.clone())
                .or_default()
                .push((source_name, binding)),
        }
        true
    }

    /// Removes a binding; returns whether it existed. The caller handles auto-delete.
    pub fn remove_binding(&mut self, source: &str, binding: &Binding) -> bool {
        let Some(exchange) = self.exchanges.get_mut(source) else {
            return false;
        };
        if !exchange.unbind(binding) {
            return false;
        }
        let same = |(s, b): &SourcedBinding| &**s == source && **b == *binding;
        match &binding.destination {
            Destination::Queue(q) => {
                if let Some(queue) = self.queues.get_mut(q) {
                    queue.bindings.retain(|e| !same(e));
                }
            }
            Destination::Exchange(x) => {
                if let Some(list) = self.bindings_into_exchange.get_mut(x) {
                    list.retain(|e| !same(e));
                }
            }
        }
        true
    }

    /// Auto-delete exchanges among `names` that lost their last binding; returns the deleted.
    pub fn collect_auto_deleted(&mut self, names: &[Arc<str>]) -> Vec<Arc<str>> {
        let mut deleted = Vec::new();
        for name in names {
            let gone = self
                .exchanges
                .get(name)
                .is_some_and(|x| x.auto_delete && x.had_binding && x.router.binding_count() == 0);
            if gone {
                deleted.push(name.clone());
                deleted.extend(self.delete_exchange(name));
            }
        }
        deleted
    }

    /// Deletes an exchange with the bindings from and to it; returns auto-deleted exchanges.
    pub fn delete_exchange(&mut self, name: &str) -> Vec<Arc<str>> {
        let Some(exchange) = self.exchanges.remove(name) else {
            return Vec::new();
        };
        for binding in exchange.router.bindings() {
            match &binding.destination {
                Destination::Queue(q) => {
                    if let Some(queue) = self.queues.get_mut(q) {
                        queue
                            .bindings
                            .retain(|(s, b)| !(&**s == name && Arc::ptr_eq(b, &binding)));
                    }
                }
                Destination::Exchange(x) => {
                    if let Some(list) = self.bindings_into_exchange.get_mut(x) {
                        list.retain(|(s, b)| !(&**s == name && Arc::ptr_eq(b, &binding)));
                    }
                }
            }
        }
        let inbound = self.bindings_into_exchange.remove(name).unwrap_or_default();
        let mut sources = Vec::new();
        for (source, binding) in inbound {
            if let Some(x) = self.exchanges.get_mut(&source) {
                x.unbind(&binding);
                sources.push(source);
            }
        }
        self.collect_auto_deleted(&sources)
    }

    /// Removes a queue and its bindings; returns it and auto-deleted exchanges.
    pub fn delete_queue(&mut self, name: &str) -> Option<(Queue, Vec<Arc<str>>)> {
        let queue = self.queues.remove(name)?;
        let mut sources = Vec::new();
        for (source, binding) in &queue.bindings {
            if let Some(x) = self.exchanges.get_mut(source) {
                x.unbind(binding);
                sources.push(source.clone());
            }
        }
        let deleted = self.collect_auto_deleted(&sources);
        Some((queue, deleted))
    }
}

/// `HashMap::get_key_value` plus mutable access to the value.
trait GetKeyValueMut {
    fn get_key_value_mut_compat(&mut self, key: &str) -> Option<(Arc<str>, &mut Exchange)>;
}

impl GetKeyValueMut for HashMap<Arc<str>, Exchange> {
    fn get_key_value_mut_compat(&mut self, key: &str) -> Option<(Arc<str>, &mut Exchange)> {
        let name = self.get_key_value(key)?.0.clone();
        self.get_mut(key).map(|x| (name, x))
    }
}
