//! Which bindings a traced message matched. RabbitMQ's `publish.*` trace names the queues a
//! message reached (`routed_queues`) but not the bindings on the way, so the message is routed
//! again through the last snapshot, by the embedded broker's own routing
//! ([`crate::broker::vhost::Vhost::route`]): exchange-to-exchange bindings and alternate
//! exchanges included.

use std::sync::Arc;

use crate::broker::exchange::{text_table, Binding, Destination, Exchange, ExchangeKind};
use crate::broker::queue::{Queue, QueueLimits};
use crate::broker::vhost::Vhost;
use crate::broker::{Snapshot, VhostSnapshot};
use crate::events::{BindingInfo, Name};

/// What the snapshot says a message did, checked against RabbitMQ's own word.
#[derive(Debug, Default, PartialEq)]
pub struct Routed {
    pub matched: Vec<Arc<BindingInfo>>,
    pub alternate_exchange: Option<Name>,
}

/// A snapshot's vhost built as a broker vhost, kept while the snapshot is the same one.
#[derive(Default)]
pub struct RoutingModel {
    built_from: Option<Arc<Snapshot>>,
    vhost: Option<Vhost>,
}

impl RoutingModel {
    /// Routes a message published to `exchange` through `snapshot`'s `vhost`. RabbitMQ's
    /// `routed_queues` are the truth: when the snapshot is older than the message (a binding
    /// made or removed since the last read), only the bindings that agree with them are kept.
    pub fn route(
        &mut self,
        snapshot: &Arc<Snapshot>,
        vhost: &str,
        exchange: &str,
        routing_key: &str,
        headers: &[(String, String)],
        routed_queues: &[Name],
    ) -> Routed {
        if !self
            .built_from
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, snapshot))
        {
            self.vhost = snapshot.vhost(vhost).map(model);
            self.built_from = Some(snapshot.clone());
        }
        let Some(model) = &self.vhost else {
            return Routed::default();
        };
        let route = model.route(exchange, routing_key, Some(&text_table(headers)));
        let matched = route
            .matched
            .iter()
            .filter(|(_, b)| match &b.destination {
                Destination::Queue(q) => routed_queues.contains(q),
                // Its own queues are checked one by one above.
                Destination::Exchange(_) => true,
            })
            .map(|(source, b)| b.info(source))
            .collect();
        // RabbitMQ routes to an alternate exchange only when nothing else was reached, and
        // its routed_queues then are that exchange's.
        let alternate_exchange = route
            .alternate_exchange
            .filter(|_| route.queues.iter().any(|q| routed_queues.contains(q)));
        Routed {
            matched,
            alternate_exchange,
        }
    }
}

/// The snapshot's exchanges, queues and bindings as a vhost that can route. Exchanges of
/// types the broker does not know (plugins') are left out: nothing is matched through them.
fn model(snapshot: &VhostSnapshot) -> Vhost {
    let mut vhost = Vhost::new(&snapshot.name);
    vhost.exchanges.clear();
    for x in &snapshot.exchanges {
        let Some(kind) = ExchangeKind::parse(&x.kind) else {
            continue;
        };
        let exchange = Exchange::new(
            &x.name,
            kind,
            x.durable,
            x.auto_delete,
            x.internal,
            text_table(&x.arguments),
        );
        vhost.exchanges.insert(exchange.name.clone(), exchange);
    }
    for q in &snapshot.queues {
        let queue = Queue::new(
            &q.name,
            q.durable,
            q.auto_delete,
            None,
            text_table(&q.arguments),
            QueueLimits::default(),
        );
        vhost.queues.insert(queue.name.clone(), queue);
    }
    for b in &snapshot.bindings {
        let destination = if b.destination_is_exchange {
            Destination::Exchange(b.destination.clone())
        } else {
            Destination::Queue(b.destination.clone())
        };
        vhost.add_binding(
            &b.source,
            Binding::new(destination, &b.routing_key, text_table(&b.arguments)),
        );
    }
    vhost
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{ExchangeSnapshot, QueueSnapshot};

    fn snapshot() -> Arc<Snapshot> {
        Arc::new(Snapshot {
            vhosts: vec![VhostSnapshot {
                name: "v".into(),
                exchanges: vec![
                    ExchangeSnapshot::new("", "direct"),
                    ExchangeSnapshot::new("a", "topic"),
                    ExchangeSnapshot::new("b", "fanout"),
                ],
                queues: vec![QueueSnapshot::new("q"), QueueSnapshot::new("r")],
                bindings: vec![
                    BindingInfo {
                        destination_is_exchange: true,
                        ..BindingInfo::to_queue("a", "b", "k.*")
                    },
                    BindingInfo::to_queue("b", "q", ""),
                    BindingInfo::to_queue("a", "r", "k.x"),
                ],
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    fn names(routed: &Routed) -> Vec<String> {
        routed
            .matched
            .iter()
            .map(|b| format!("{}->{}", b.source, b.destination))
            .collect()
    }

    #[test]
    fn exchange_to_exchange_paths_are_followed() {
        let mut model = RoutingModel::default();
        let s = snapshot();
        let routed = model.route(&s, "v", "a", "k.x", &[], &["q".into(), "r".into()]);
        let mut got = names(&routed);
        got.sort();
        assert_eq!(got, ["a->b", "a->r", "b->q"]);
        // A binding the snapshot has but RabbitMQ did not use (removed since): left out.
        let routed = model.route(&s, "v", "a", "k.x", &[], &["q".into()]);
        let mut got = names(&routed);
        got.sort();
        assert_eq!(got, ["a->b", "b->q"]);
        // The default exchange's implicit binding.
        let routed = model.route(&s, "v", "", "q", &[], &["q".into()]);
        assert_eq!(names(&routed), ["->q"]);
    }
}
