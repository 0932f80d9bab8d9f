//! The events that turn one snapshot into another: how a remote broker, read by polling,
//! tells the view what changed as if its broker had emitted the events itself.
//!
//! It imports the snapshot types and the events, nothing else.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use super::{ConsumerSnapshot, ExchangeSnapshot, QueueSnapshot, Snapshot, VhostSnapshot};
use crate::events::{BindingInfo, Event, EventKind, Name};

/// What changed between two snapshots, as the events the embedded broker would have emitted:
/// bindings removed first, then queues and exchanges; new exchanges and queues before the
/// bindings that need them.
pub fn diff(old: &Snapshot, new: &Snapshot) -> Vec<Event> {
    let empty = VhostSnapshot::default();
    let names: BTreeSet<&str> = old
        .vhosts
        .iter()
        .chain(&new.vhosts)
        .map(|v| v.name.as_str())
        .collect();
    let mut events = Vec::new();
    let at = SystemTime::now();
    for name in names {
        let before = old.vhost(name).unwrap_or(&empty);
        let after = new.vhost(name).unwrap_or(&empty);
        let vhost: Name = name.into();
        let old_queues: BTreeMap<&str, &QueueSnapshot> =
            before.queues.iter().map(|q| (q.name.as_str(), q)).collect();
        let new_queues: BTreeMap<&str, &QueueSnapshot> =
            after.queues.iter().map(|q| (q.name.as_str(), q)).collect();
        let old_exchanges: BTreeMap<&str, &ExchangeSnapshot> = before
            .exchanges
            .iter()
            .map(|x| (x.name.as_str(), x))
            .collect();
        let new_exchanges: BTreeMap<&str, &ExchangeSnapshot> = after
            .exchanges
            .iter()
            .map(|x| (x.name.as_str(), x))
            .collect();
        // Deleted and declared again with other properties: the deletion takes the bindings
        // (and a queue's consumers) with it, so those still listed are told again.
        let replaced_queues: BTreeSet<&str> = old_queues
            .iter()
            .filter(|(name, q)| new_queues.get(*name).is_some_and(|n| !same_queue(q, n)))
            .map(|(name, _)| *name)
            .collect();
        let replaced_exchanges: BTreeSet<&str> = old_exchanges
            .iter()
            .filter(|(name, x)| {
                new_exchanges
                    .get(*name)
                    .is_some_and(|n| !same_exchange(x, n))
            })
            .map(|(name, _)| *name)
            .collect();
        let rebound = |b: &BindingInfo| {
            let destinations = if b.destination_is_exchange {
                &replaced_exchanges
            } else {
                &replaced_queues
            };
            replaced_exchanges.contains(&*b.source) || destinations.contains(&*b.destination)
        };
        let (gone, came) = client_changes(before, after, at, &vhost, &replaced_queues);
        events.extend(gone);
        let mut push = |kind| {
            events.push(Event {
                at,
                vhost: vhost.clone(),
                connection: None,
                channel: None,
                kind,
            })
        };
        let old_bindings: BTreeSet<BindingKey> = before.bindings.iter().map(key).collect();
        let new_bindings: BTreeSet<BindingKey> = after.bindings.iter().map(key).collect();
        for b in &before.bindings {
            if !new_bindings.contains(&key(b)) {
                push(EventKind::BindingDeleted(Arc::new(b.clone())));
            }
        }
        // A queue or exchange deleted and declared again with other properties counts as both.
        for (name, q) in &old_queues {
            if new_queues.get(name).is_none_or(|n| !same_queue(q, n)) {
                push(EventKind::QueueDeleted {
                    name: (*name).into(),
                });
            }
        }
        for (name, x) in &old_exchanges {
            if new_exchanges.get(name).is_none_or(|n| !same_exchange(x, n)) {
                push(EventKind::ExchangeDeleted {
                    name: (*name).into(),
                });
            }
        }
        for (name, x) in &new_exchanges {
            if old_exchanges.get(name).is_none_or(|o| !same_exchange(o, x)) {
                push(EventKind::ExchangeDeclared {
                    name: (*name).into(),
                    kind: x.kind.as_str().into(),
                    durable: x.durable,
                    auto_delete: x.auto_delete,
                    internal: x.internal,
                    arguments: x.arguments.clone(),
                });
            }
        }
        for (name, q) in &new_queues {
            if old_queues.get(name).is_none_or(|o| !same_queue(o, q)) {
                push(EventKind::QueueDeclared {
                    name: (*name).into(),
                    queue_type: q.queue_type,
                    durable: q.durable,
                    exclusive: q.exclusive,
                    auto_delete: q.auto_delete,
                    arguments: q.arguments.clone(),
                });
            }
        }
        for b in &after.bindings {
            if !old_bindings.contains(&key(b)) || rebound(b) {
                push(EventKind::BindingCreated(Arc::new(b.clone())));
            }
        }
        events.extend(came);
    }
    events
}

/// The connections and consumers that went between two readings of a vhost (consumers
/// cancelled, then connections closed) and those that came (connections opened, then
/// consumers created, and those of a queue declared anew told again), as events on each
/// one's connection and channel.
fn client_changes(
    before: &VhostSnapshot,
    after: &VhostSnapshot,
    at: SystemTime,
    vhost: &Name,
    replaced_queues: &BTreeSet<&str>,
) -> (Vec<Event>, Vec<Event>) {
    let event = |connection: u64, channel: Option<u16>, kind| Event {
        at,
        vhost: vhost.clone(),
        connection: Some(connection),
        channel,
        kind,
    };
    // A consumer whose acknowledgement mode changed was cancelled and created again.
    let consumer_key = |c: &ConsumerSnapshot| {
        (
            c.queue.clone(),
            c.tag.clone(),
            c.connection,
            c.channel,
            c.ack,
        )
    };
    let old_consumers: HashSet<_> = before.consumers.iter().map(consumer_key).collect();
    let new_consumers: HashSet<_> = after.consumers.iter().map(consumer_key).collect();
    let old_connections: HashSet<u64> = before.connections.iter().map(|c| c.id).collect();
    let new_connections: HashSet<u64> = after.connections.iter().map(|c| c.id).collect();
    let mut gone = Vec::new();
    for c in &before.consumers {
        if !new_consumers.contains(&consumer_key(c)) {
            let kind = EventKind::ConsumerCancelled {
                queue: c.queue.as_str().into(),
                consumer_tag: c.tag.as_str().into(),
            };
            gone.push(event(c.connection, Some(c.channel), kind));
        }
    }
    for c in &before.connections {
        if !new_connections.contains(&c.id) {
            let kind = EventKind::ConnectionClosed {
                reason: "no longer listed by the management API".into(),
            };
            gone.push(event(c.id, None, kind));
        }
    }
    let mut came = Vec::new();
    for c in &after.connections {
        if !old_connections.contains(&c.id) {
            let kind = EventKind::ConnectionOpened {
                peer: c.peer.clone(),
                user: c.user.as_str().into(),
                client: c.client.clone(),
            };
            came.push(event(c.id, None, kind));
        }
    }
    for c in &after.consumers {
        if !old_consumers.contains(&consumer_key(c)) || replaced_queues.contains(c.queue.as_str()) {
            let kind = EventKind::ConsumerCreated {
                queue: c.queue.as_str().into(),
                consumer_tag: c.tag.as_str().into(),
                no_ack: !c.ack,
            };
            came.push(event(c.connection, Some(c.channel), kind));
        }
    }
    (gone, came)
}

type BindingKey = (Name, Name, bool, Name, Vec<(String, String)>);

fn key(b: &BindingInfo) -> BindingKey {
    (
        b.source.clone(),
        b.destination.clone(),
        b.destination_is_exchange,
        b.routing_key.clone(),
        b.arguments.clone(),
    )
}

fn same_queue(a: &QueueSnapshot, b: &QueueSnapshot) -> bool {
    (
        a.queue_type,
        a.durable,
        a.exclusive,
        a.auto_delete,
        &a.arguments,
    ) == (
        b.queue_type,
        b.durable,
        b.exclusive,
        b.auto_delete,
        &b.arguments,
    )
}

fn same_exchange(a: &ExchangeSnapshot, b: &ExchangeSnapshot) -> bool {
    (&a.kind, a.durable, a.auto_delete, a.internal, &a.arguments)
        == (&b.kind, b.durable, b.auto_delete, b.internal, &b.arguments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::ConnectionSnapshot;

    fn queue(name: &str) -> QueueSnapshot {
        QueueSnapshot {
            durable: true,
            ..QueueSnapshot::new(name)
        }
    }

    fn binding(source: &str, destination: &str, key: &str) -> BindingInfo {
        BindingInfo::to_queue(source, destination, key)
    }

    #[test]
    fn successive_snapshots_give_declarations_and_deletions() {
        let old = Snapshot {
            vhosts: vec![VhostSnapshot {
                name: "/".into(),
                exchanges: vec![],
                queues: vec![queue("a"), queue("b")],
                bindings: vec![binding("amq.topic", "a", "x.*")],
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut new = old.clone();
        let v = &mut new.vhosts[0];
        v.queues.retain(|q| q.name != "a");
        v.queues.push(queue("c"));
        v.queues[0].ready = 7; // depth is not topology
        v.bindings = vec![binding("amq.topic", "c", "#")];
        let kinds: Vec<String> = diff(&old, &new)
            .into_iter()
            .map(|e| match e.kind {
                EventKind::QueueDeclared { name, .. } => format!("+q {name}"),
                EventKind::QueueDeleted { name } => format!("-q {name}"),
                EventKind::BindingCreated(b) => format!("+b {}", b.destination),
                EventKind::BindingDeleted(b) => format!("-b {}", b.destination),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(kinds, ["-b a", "-q a", "+q c", "+b c"]);
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn clients_coming_and_going_are_told_on_their_connection_and_channel() {
        let connection = |id: u64, name: &str| ConnectionSnapshot {
            id,
            name: name.into(),
            ..Default::default()
        };
        let consumer = |tag: &str, connection: u64, channel: u16| ConsumerSnapshot {
            queue: "q".into(),
            tag: tag.into(),
            connection,
            channel,
            ack: true,
            prefetch: 0,
        };
        let old = Snapshot {
            vhosts: vec![VhostSnapshot {
                name: "/".into(),
                queues: vec![queue("q")],
                connections: vec![connection(1, "a"), connection(2, "b")],
                consumers: vec![consumer("t-1", 1, 1), consumer("t-2", 2, 1)],
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut new = old.clone();
        let v = &mut new.vhosts[0];
        v.connections = vec![connection(2, "b"), connection(3, "c")];
        // The same tag on another channel is another consumer.
        v.consumers = vec![consumer("t-2", 2, 2), consumer("t-3", 3, 5)];
        let told: Vec<String> = diff(&old, &new)
            .into_iter()
            .map(|e| {
                let on = format!("{}/{}", e.connection.unwrap(), e.channel.unwrap_or(0));
                match e.kind {
                    EventKind::ConsumerCreated {
                        consumer_tag,
                        no_ack,
                        ..
                    } => format!("+c {consumer_tag} {on} no_ack={no_ack}"),
                    EventKind::ConsumerCancelled { consumer_tag, .. } => {
                        format!("-c {consumer_tag} {on}")
                    }
                    EventKind::ConnectionOpened { .. } => format!("+conn {on}"),
                    EventKind::ConnectionClosed { .. } => format!("-conn {on}"),
                    other => format!("{other:?}"),
                }
            })
            .collect();
        assert_eq!(
            told,
            [
                "-c t-1 1/1",
                "-c t-2 2/1",
                "-conn 1/0",
                "+conn 3/0",
                "+c t-2 2/2 no_ack=false",
                "+c t-3 3/5 no_ack=false",
            ]
        );
    }

    /// What the events can carry of a snapshot, in an order that does not matter. Left out,
    /// as no event carries them: queue depths and consumer counts (`ready`, `unacked`,
    /// `consumers`), a connection's broker-given `name`, a consumer's `prefetch` (basic.qos
    /// is no event), and a vhost with nothing in it (no event names it).
    fn expressible(snapshot: &Snapshot) -> Vec<VhostSnapshot> {
        let mut vhosts: Vec<VhostSnapshot> = snapshot
            .vhosts
            .iter()
            .map(|v| {
                let mut v = v.clone();
                for q in &mut v.queues {
                    (q.ready, q.unacked, q.consumers) = (0, 0, 0);
                }
                for c in &mut v.connections {
                    c.name.clear();
                }
                for c in &mut v.consumers {
                    c.prefetch = 0;
                }
                v.exchanges.sort_by(|a, b| a.name.cmp(&b.name));
                v.queues.sort_by(|a, b| a.name.cmp(&b.name));
                v.bindings.sort_by_key(key);
                v.connections.sort_by_key(|c| c.id);
                v.consumers.sort_by(|a, b| {
                    (&a.queue, &a.tag, a.connection, a.channel).cmp(&(
                        &b.queue,
                        &b.tag,
                        b.connection,
                        b.channel,
                    ))
                });
                v
            })
            .filter(|v| {
                !(v.exchanges.is_empty()
                    && v.queues.is_empty()
                    && v.bindings.is_empty()
                    && v.connections.is_empty()
                    && v.consumers.is_empty())
            })
            .collect();
        vhosts.sort_by(|a, b| a.name.cmp(&b.name));
        vhosts
    }

    mod generated {
        use proptest::prelude::*;
        use proptest::sample::subsequence;

        use super::super::super::{
            ConnectionSnapshot, ConsumerSnapshot, ExchangeSnapshot, QueueSnapshot, QueueType,
            Snapshot, VhostSnapshot,
        };
        use crate::events::{BindingInfo, ClientInfo};

        const EXCHANGES: [&str; 3] = ["amq.topic", "orders", "dlx"];
        const QUEUES: [&str; 3] = ["billing", "shipping", "orders"];

        fn arguments() -> impl Strategy<Value = Vec<(String, String)>> {
            prop_oneof![
                Just(vec![]),
                Just(vec![("x-message-ttl".to_string(), "60000".to_string())]),
            ]
        }

        fn exchange(name: &'static str) -> impl Strategy<Value = ExchangeSnapshot> {
            (
                prop_oneof![Just("direct"), Just("topic"), Just("fanout")],
                any::<(bool, bool, bool)>(),
                arguments(),
            )
                .prop_map(
                    move |(kind, (durable, auto_delete, internal), arguments)| ExchangeSnapshot {
                        name: name.into(),
                        kind: kind.into(),
                        durable,
                        auto_delete,
                        internal,
                        arguments,
                    },
                )
        }

        fn queue(name: &'static str) -> impl Strategy<Value = QueueSnapshot> {
            let queue_type = prop_oneof![
                Just(QueueType::Classic),
                Just(QueueType::Quorum),
                Just(QueueType::Stream)
            ];
            (
                any::<(bool, bool, bool)>(),
                queue_type,
                arguments(),
                0..5usize,
            )
                .prop_map(
                    move |((durable, exclusive, auto_delete), queue_type, arguments, ready)| {
                        QueueSnapshot {
                            name: name.into(),
                            queue_type,
                            durable,
                            exclusive,
                            auto_delete,
                            arguments,
                            ready,
                            unacked: ready / 2,
                            consumers: ready % 3,
                            stream: None,
                            delivery_limit: Default::default(),
                            ..Default::default()
                        }
                    },
                )
        }

        /// A connection is known by its id, which stands for its name: the same id is the
        /// same client, so what it says of itself does not change between two readings.
        fn connection(id: u64) -> ConnectionSnapshot {
            ConnectionSnapshot {
                id,
                name: format!("127.0.0.1:{id} -> 127.0.0.1:5672"),
                peer: format!("127.0.0.1:{id}"),
                user: if id == 1 { "nova" } else { "guest" }.into(),
                client: ClientInfo {
                    connection_name: (id != 2).then(|| format!("client-{id}")),
                    product: Some("pika".into()),
                },
                ..Default::default()
            }
        }

        /// One vhost whose bindings join what it declares and whose consumers sit on its
        /// queues and connections, as a broker lists them.
        fn vhost(name: &'static str) -> impl Strategy<Value = VhostSnapshot> {
            let exchanges = subsequence(EXCHANGES.to_vec(), 0..=3)
                .prop_flat_map(|names| names.into_iter().map(exchange).collect::<Vec<_>>());
            let queues = subsequence(QUEUES.to_vec(), 0..=3)
                .prop_flat_map(|names| names.into_iter().map(queue).collect::<Vec<_>>());
            let connections = subsequence(vec![1u64, 2, 3], 0..=3)
                .prop_map(|ids| ids.into_iter().map(connection).collect::<Vec<_>>());
            (exchanges, queues, connections).prop_flat_map(
                move |(exchanges, queues, connections)| {
                    let mut routes = Vec::new();
                    for x in &exchanges {
                        for q in &queues {
                            for key in ["", "new"] {
                                routes.push(BindingInfo::to_queue(&x.name, &q.name, key));
                            }
                        }
                        for other in &exchanges {
                            let mut b = BindingInfo::to_queue(&x.name, &other.name, "#");
                            b.destination_is_exchange = true;
                            routes.push(b);
                        }
                    }
                    if let Some(first) = routes.first().cloned() {
                        let mut with = first;
                        with.arguments = vec![("x-match".into(), "all".into())];
                        routes.push(with);
                    }
                    let mut seats = Vec::new();
                    for q in &queues {
                        for c in &connections {
                            for (tag, channel) in [("ctag-1", 1u16), ("ctag-1", 2), ("ctag-2", 1)] {
                                seats.push((q.name.clone(), tag, c.id, channel));
                            }
                        }
                    }
                    let n = routes.len();
                    let m = seats.len();
                    (
                        Just((exchanges, queues, connections)),
                        subsequence(routes, 0..=n.min(6)),
                        subsequence(seats, 0..=m.min(5)),
                        proptest::collection::vec(any::<bool>(), 5),
                    )
                        .prop_map(
                            move |((exchanges, queues, connections), bindings, seats, acks)| {
                                let consumers = seats
                                    .into_iter()
                                    .zip(acks.into_iter().cycle())
                                    .map(|((queue, tag, connection, channel), ack)| {
                                        ConsumerSnapshot {
                                            queue,
                                            tag: tag.into(),
                                            connection,
                                            channel,
                                            ack,
                                            prefetch: 10,
                                        }
                                    })
                                    .collect();
                                VhostSnapshot {
                                    name: name.into(),
                                    exchanges,
                                    queues,
                                    bindings,
                                    connections,
                                    consumers,
                                }
                            },
                        )
                },
            )
        }

        pub fn snapshot() -> impl Strategy<Value = Snapshot> {
            (vhost("/"), vhost("shop"), any::<bool>()).prop_map(|(root, shop, both)| Snapshot {
                vhosts: if both { vec![root, shop] } else { vec![root] },
                ..Default::default()
            })
        }
    }

    proptest::proptest! {
        /// The diff's events, applied to the old snapshot, give the new one (as far as events
        /// can tell it: see [`expressible`]).
        #[test]
        fn applying_the_diff_to_the_old_snapshot_gives_the_new_one(
            old in generated::snapshot(),
            new in generated::snapshot(),
        ) {
            let mut applied = old.clone();
            for event in diff(&old, &new) {
                crate::topology::apply(&mut applied, &event);
            }
            proptest::prop_assert_eq!(expressible(&applied), expressible(&new));
        }
    }
}
