//! The management API's exchanges, queues, bindings, connections and consumers as a
//! [`Snapshot`], shaped exactly like the embedded broker's: sorted by name, the default
//! exchange listed but its implicit per-queue bindings not, arguments as `key=value` text.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

use super::answers;
use super::management::{Management, ManagementError};
use super::{connection_id, is_own_connection};
use crate::broker::{
    ConnectionSnapshot, ConsumerSnapshot, ExchangeSnapshot, QueueSnapshot, Snapshot, VhostSnapshot,
};
use crate::events::{BindingInfo, ClientInfo, Event, EventKind, Name};

/// The topology of every vhost the user may see.
pub async fn snapshot(management: &Management) -> Result<Snapshot, ManagementError> {
    let mut vhosts = Vec::new();
    for name in management.vhost_names().await? {
        match vhost_snapshot(management, &name).await {
            Ok(v) => vhosts.push(v),
            // Deleted between listing vhosts and reading it: it is simply gone.
            Err(e) if e.kind == super::management::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    vhosts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Snapshot { vhosts })
}

/// One vhost's topology.
pub async fn vhost_snapshot(
    management: &Management,
    vhost: &str,
) -> Result<VhostSnapshot, ManagementError> {
    let (exchanges, queues, bindings, connections, consumers) = tokio::try_join!(
        management.exchanges(vhost),
        management.queues(vhost),
        management.bindings(vhost),
        management.connections(vhost),
        management.consumers(vhost),
    )?;
    let mut exchanges: Vec<ExchangeSnapshot> = exchanges.iter().filter_map(exchange).collect();
    exchanges.sort_by(|a, b| a.name.cmp(&b.name));
    // This program's own queues (see `firehose::private_queue`) are how it watches, not
    // part of what it shows.
    let own = super::firehose::is_own_queue;
    let mut queues: Vec<QueueSnapshot> = queues
        .into_iter()
        .filter(|q| !own(&q.name))
        .map(|q| {
            let unacked = q.messages_unacknowledged as usize;
            QueueSnapshot {
                name: q.name,
                durable: q.durable,
                exclusive: q.exclusive,
                auto_delete: q.auto_delete,
                arguments: pairs(&q.arguments),
                ready: (q.messages as usize).saturating_sub(unacked),
                unacked,
                consumers: q.consumers as usize,
            }
        })
        .collect();
    queues.sort_by(|a, b| a.name.cmp(&b.name));
    let mut bindings: Vec<BindingInfo> = bindings
        .into_iter()
        // The default exchange's bindings are implied by the queues, as in the embedded broker.
        .filter(|b| !b.source.is_empty())
        .filter(|b| b.to_exchange() || !own(&b.destination))
        .map(|b| BindingInfo {
            destination_is_exchange: b.to_exchange(),
            source: b.source.into(),
            destination: b.destination.into(),
            routing_key: b.routing_key.into(),
            arguments: pairs(&b.arguments),
        })
        .collect();
    crate::broker::sort_bindings(&mut bindings);
    let (connections, consumers) = clients(connections, consumers);
    Ok(VhostSnapshot {
        name: vhost.to_string(),
        exchanges,
        queues,
        bindings,
        connections,
        consumers,
    })
}

/// The API's connections and consumers as a snapshot lists them: connections by name,
/// consumers by queue then tag, each with the id [`super::connection_id`] gives its
/// connection's name. rabbitscope's own connections, and consumers on them or of its own
/// queues, are left out. A consumer whose channel the API does not know yet has connection 0.
fn clients(
    connections: Vec<answers::Connection>,
    consumers: Vec<answers::Consumer>,
) -> (Vec<ConnectionSnapshot>, Vec<ConsumerSnapshot>) {
    let own_names: HashSet<String> = connections
        .iter()
        .filter(|c| {
            c.connection_name()
                .as_deref()
                .is_some_and(is_own_connection)
        })
        .map(|c| c.name.clone())
        .collect();
    let mut listed: Vec<ConnectionSnapshot> = connections
        .into_iter()
        .filter(|c| !own_names.contains(&c.name))
        .map(|c| ConnectionSnapshot {
            id: connection_id(&c.name),
            peer: c.peer(),
            user: c.user.clone().unwrap_or_default(),
            client: ClientInfo {
                connection_name: c.connection_name(),
                product: c.client_property("product"),
            },
            name: c.name,
        })
        .collect();
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    let mut consuming: Vec<ConsumerSnapshot> = consumers
        .into_iter()
        .filter(|c| !super::firehose::is_own_queue(&c.queue))
        .filter_map(|c| {
            let channel = c.channel();
            if channel
                .as_ref()
                .is_some_and(|(name, _)| own_names.contains(name))
            {
                return None;
            }
            let (connection, channel) = channel
                .map(|(name, number)| (connection_id(&name), number))
                .unwrap_or_default();
            Some(ConsumerSnapshot {
                queue: c.queue,
                tag: c.consumer_tag,
                connection,
                channel,
                ack: c.ack_required,
                prefetch: u16::try_from(c.prefetch_count).unwrap_or(u16::MAX),
            })
        })
        .collect();
    consuming.sort_by(|a, b| (&a.queue, &a.tag).cmp(&(&b.queue, &b.tag)));
    (listed, consuming)
}

fn exchange(x: &Value) -> Option<ExchangeSnapshot> {
    let flag = |name: &str| x.get(name).and_then(Value::as_bool).unwrap_or(false);
    Some(ExchangeSnapshot {
        name: x.get("name")?.as_str()?.to_string(),
        kind: x.get("type")?.as_str()?.to_string(),
        durable: flag("durable"),
        auto_delete: flag("auto_delete"),
        internal: flag("internal"),
        arguments: x
            .get("arguments")
            .and_then(Value::as_object)
            .map(pairs)
            .unwrap_or_default(),
    })
}

/// JSON arguments as `key=value` text, the way the embedded broker renders field tables.
pub fn pairs(map: &serde_json::Map<String, Value>) -> Vec<(String, String)> {
    map.iter().map(|(k, v)| (k.clone(), text(v))).collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "(void)".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(text).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}={}", text(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

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
        let (gone, came) = client_changes(before, after, at, &vhost);
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
                    durable: q.durable,
                    exclusive: q.exclusive,
                    auto_delete: q.auto_delete,
                    arguments: q.arguments.clone(),
                });
            }
        }
        for b in &after.bindings {
            if !old_bindings.contains(&key(b)) {
                push(EventKind::BindingCreated(Arc::new(b.clone())));
            }
        }
        events.extend(came);
    }
    events
}

/// The connections and consumers that went between two readings of a vhost (consumers
/// cancelled, then connections closed) and those that came (connections opened, then
/// consumers created), as events on each one's connection and channel.
fn client_changes(
    before: &VhostSnapshot,
    after: &VhostSnapshot,
    at: SystemTime,
    vhost: &Name,
) -> (Vec<Event>, Vec<Event>) {
    let event = |connection: u64, channel: Option<u16>, kind| Event {
        at,
        vhost: vhost.clone(),
        connection: Some(connection),
        channel,
        kind,
    };
    let consumer_key =
        |c: &ConsumerSnapshot| (c.queue.clone(), c.tag.clone(), c.connection, c.channel);
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
        if !old_consumers.contains(&consumer_key(c)) {
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
    (a.durable, a.exclusive, a.auto_delete, &a.arguments)
        == (b.durable, b.exclusive, b.auto_delete, &b.arguments)
}

fn same_exchange(a: &ExchangeSnapshot, b: &ExchangeSnapshot) -> bool {
    (&a.kind, a.durable, a.auto_delete, a.internal, &a.arguments)
        == (&b.kind, b.durable, b.auto_delete, b.internal, &b.arguments)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn json_arguments_read_like_field_tables() {
        let map: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"x-message-ttl":60000,"x-dead-letter-exchange":"dlx"}"#)
                .unwrap();
        assert_eq!(
            pairs(&map),
            [
                ("x-dead-letter-exchange".to_string(), "dlx".to_string()),
                ("x-message-ttl".to_string(), "60000".to_string())
            ]
        );
    }
}
