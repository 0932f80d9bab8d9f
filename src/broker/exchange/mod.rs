//! Exchanges: one module per exchange type, all behind the [`Router`] trait.
//!
//! A router only answers "which bindings match this message?". Everything else an exchange is
//! (its flags, arguments, alternate exchange) lives in [`Exchange`], and following
//! exchange-to-exchange bindings is the vhost's job. Why a message matched no binding at all
//! is [`explain_unroutable`]'s.

mod direct;
mod fanout;
mod headers;
mod topic;
mod unroutable;

use crate::broker::maps::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use amq_protocol::types::FieldTable;

use super::args;
use crate::events::BindingInfo;

pub use direct::DirectRouter;
pub use fanout::FanoutRouter;
pub use headers::{
    headers_match, text_table, value_text, HeadersRouter, HeadersVerdict, SHOWN_DEPTH,
};
pub use topic::{explain_match, pattern_matches, TopicRouter};
pub use unroutable::{
    explain_in, explain_unroutable, mandatory_words, HeaderMiss, Miss, NearMiss, Summary,
    Unroutable,
};

/// Where a binding leads: a queue, or another exchange.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    Queue(Arc<str>),
    Exchange(Arc<str>),
}

impl Destination {
    pub fn name(&self) -> &str {
        match self {
            Destination::Queue(name) | Destination::Exchange(name) => name,
        }
    }
}

/// A binding from an exchange to a destination.
#[derive(Clone, Debug)]
pub struct Binding {
    pub destination: Destination,
    pub routing_key: String,
    pub arguments: FieldTable,
    /// How events describe this binding, built the first time an event needs it, so each
    /// routed message shares it instead of copying the binding's text.
    info: OnceLock<Arc<BindingInfo>>,
}

impl Binding {
    pub fn new(destination: Destination, routing_key: &str, arguments: FieldTable) -> Binding {
        Binding {
            destination,
            routing_key: routing_key.to_string(),
            arguments,
            info: OnceLock::new(),
        }
    }

    /// The event form of this binding; `source` is the exchange it belongs to.
    pub fn info(&self, source: &str) -> Arc<BindingInfo> {
        self.info
            .get_or_init(|| {
                Arc::new(BindingInfo {
                    source: Arc::from(source),
                    destination: match &self.destination {
                        Destination::Queue(name) | Destination::Exchange(name) => name.clone(),
                    },
                    destination_is_exchange: matches!(self.destination, Destination::Exchange(_)),
                    routing_key: Arc::from(self.routing_key.as_str()),
                    arguments: args::pairs(&self.arguments),
                })
            })
            .clone()
    }
}

/// Two bindings are the same binding when destination, key and arguments agree. Written by
/// hand because the cached event form (`info`) is no part of a binding's identity.
impl PartialEq for Binding {
    fn eq(&self, other: &Binding) -> bool {
        self.destination == other.destination
            && self.routing_key == other.routing_key
            && self.arguments == other.arguments
    }
}

/// A float argument that is NaN makes a binding unequal to itself, as `FieldTable`'s own
/// equality says; such a binding can be bound but never found again, which is what routers
/// (that compare with `==`) did all along.
impl Eq for Binding {}

/// Agrees with [`PartialEq`]: hashes the destination, the key and the arguments' names (field
/// values hold floats, which have no hash; bindings that differ only in argument values share
/// a bucket and are told apart by `==`).
impl Hash for Binding {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.destination.hash(state);
        self.routing_key.hash(state);
        for name in self.arguments.inner().keys() {
            name.hash(state);
        }
    }
}

/// A binding together with the name of its source exchange.
pub type SourcedBinding = (Arc<str>, Arc<Binding>);

/// The four exchange types of AMQP 0-9-1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    pub fn parse(name: &str) -> Option<ExchangeKind> {
        match name {
            "direct" => Some(ExchangeKind::Direct),
            "fanout" => Some(ExchangeKind::Fanout),
            "topic" => Some(ExchangeKind::Topic),
            "headers" => Some(ExchangeKind::Headers),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }

    pub fn new_router(self) -> Box<dyn Router> {
        match self {
            ExchangeKind::Direct => Box::<DirectRouter>::default(),
            ExchangeKind::Fanout => Box::<FanoutRouter>::default(),
            ExchangeKind::Topic => Box::<TopicRouter>::default(),
            ExchangeKind::Headers => Box::<HeadersRouter>::default(),
        }
    }
}

/// The matching rule of one exchange type. No I/O; unit-testable alone.
pub trait Router: Send + Sync {
    /// Adds a binding. The caller guarantees it is not already present.
    fn bind(&mut self, binding: Arc<Binding>);
    /// Removes a binding equal to `binding`; returns whether one was there.
    fn unbind(&mut self, binding: &Binding) -> bool;
    /// Pushes every binding that matches the message onto `out`.
    fn route(&self, routing_key: &str, headers: Option<&FieldTable>, out: &mut Vec<Arc<Binding>>);
    /// All bindings, in no particular order.
    fn bindings(&self) -> Vec<Arc<Binding>>;
    fn binding_count(&self) -> usize;
}

/// An exchange: its declaration plus the router holding its bindings.
pub struct Exchange {
    pub name: Arc<str>,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
    pub router: Box<dyn Router>,
    /// Auto-delete only applies once the exchange has had a binding.
    pub had_binding: bool,
    /// The bindings again, by identity (see `Binding`'s `Hash`), so a duplicate bind is found
    /// without a scan.
    keys: HashSet<Arc<Binding>>,
}

impl Exchange {
    pub fn new(
        name: &str,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Exchange {
        Exchange {
            name: name.into(),
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
            router: kind.new_router(),
            had_binding: false,
            keys: HashSet::default(),
        }
    }

    pub fn has_binding(&self, binding: &Binding) -> bool {
        self.keys.contains(binding)
    }

    pub fn bind(&mut self, binding: Arc<Binding>) {
        self.keys.insert(binding.clone());
        self.router.bind(binding);
        self.had_binding = true;
    }

    pub fn unbind(&mut self, binding: &Binding) -> bool {
        self.keys.remove(binding) && self.router.unbind(binding)
    }

    /// The `alternate-exchange` argument, if set.
    pub fn alternate_exchange(&self) -> Option<String> {
        crate::broker::args::get_string(&self.arguments, "alternate-exchange")
    }
}

/// A binding to queue `queue` with key `key` and no arguments, for the routers' tests.
#[cfg(test)]
pub(crate) fn queue_binding(queue: &str, key: &str) -> Arc<Binding> {
    Arc::new(Binding::new(
        Destination::Queue(queue.into()),
        key,
        FieldTable::default(),
    ))
}

/// Finds the binding in `list` equal to `binding` and removes it.
pub(crate) fn remove_binding(list: &mut Vec<Arc<Binding>>, binding: &Binding) -> bool {
    match list.iter().position(|b| **b == *binding) {
        Some(i) => {
            list.swap_remove(i);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::AMQPValue;

    fn with_args(pairs: &[(&str, AMQPValue)]) -> Binding {
        let mut arguments = FieldTable::default();
        for (name, value) in pairs {
            arguments.insert((*name).into(), value.clone());
        }
        Binding::new(Destination::Queue("q".into()), "key", arguments)
    }

    #[test]
    fn a_binding_is_known_by_destination_key_and_argument_values_and_types() {
        let mut exchange = Exchange::new(
            "x",
            ExchangeKind::Headers,
            false,
            false,
            false,
            FieldTable::default(),
        );
        let pages = |v: AMQPValue| {
            with_args(&[
                ("x-match", AMQPValue::LongString("any".into())),
                ("pages", v),
            ])
        };
        exchange.bind(Arc::new(pages(AMQPValue::LongInt(12))));
        // The same arguments, built again, are the same binding (a second bind is a no-op).
        assert!(exchange.has_binding(&pages(AMQPValue::LongInt(12))));
        // Another value, or the same number with another type, is another binding.
        assert!(!exchange.has_binding(&pages(AMQPValue::LongInt(13))));
        assert!(!exchange.has_binding(&pages(AMQPValue::ShortInt(12))));
        // The cached event form is no part of the identity.
        let shown = pages(AMQPValue::LongInt(12));
        shown.info("x");
        assert!(exchange.has_binding(&shown));
        assert!(exchange.unbind(&shown));
        assert!(!exchange.has_binding(&shown));
    }
}
