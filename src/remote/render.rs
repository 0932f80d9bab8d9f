//! A snapshot as text: for people (an indented listing), and for other tools Graphviz dot and
//! RabbitMQ definitions JSON (which `rabbitscope broker --definitions FILE` and RabbitMQ
//! itself load).

use std::collections::HashMap;
use std::fmt::Write;

use serde_json::{json, Map, Value};

use crate::broker::{ConsumerSnapshot, Snapshot};

/// Exchanges as rounded boxes, queues as cylinders, bindings as edges labelled with their
/// routing key (and arguments), client connections as ovals with a dashed edge from each
/// queue they consume, labelled with the consumer tag; one cluster per vhost, and in it one
/// per RabbitMQ node holding queues.
pub fn dot(snapshot: &Snapshot) -> String {
    let mut out =
        String::from("digraph rabbitmq {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
    for (i, v) in snapshot.vhosts.iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{i} {{");
        let _ = writeln!(out, "    label={};", quote(&format!("vhost {}", v.name)));
        let exchange_id = |name: &str| quote(&format!("{}/exchange/{name}", v.name));
        let queue_id = |name: &str| quote(&format!("{}/queue/{name}", v.name));
        for x in &v.exchanges {
            let name = if x.name.is_empty() {
                "(AMQP default)"
            } else {
                &x.name
            };
            let _ = writeln!(
                out,
                "    {} [shape=box, style=rounded, label={}];",
                exchange_id(&x.name),
                quote(&format!("{name}\n{}", x.kind))
            );
        }
        // Queues a cluster places on a node (a replicated one: its leader's) in a cluster of
        // that node's, named after the vhost's: dot's subgraph names are global.
        let mut by_node: std::collections::BTreeMap<Option<&str>, Vec<_>> = Default::default();
        for q in &v.queues {
            by_node.entry(q.home()).or_default().push(q);
        }
        for (node, queues) in by_node {
            let indent = if node.is_some() { "      " } else { "    " };
            if let Some(node) = node {
                let _ = writeln!(
                    out,
                    "    subgraph {} {{",
                    quote(&format!("cluster_{i}_{node}"))
                );
                let _ = writeln!(out, "      label={};", quote(&format!("node {node}")));
            }
            for q in queues {
                let mut label = q.name.clone();
                if !q.members.is_empty() {
                    let _ = write!(
                        label,
                        "\n{} {}/{}",
                        q.queue_type.as_str(),
                        q.online.len(),
                        q.members.len()
                    );
                }
                for (node, by) in &q.behind {
                    let _ = write!(label, "\n{node} {by} behind");
                }
                let _ = writeln!(
                    out,
                    "{indent}{} [shape=cylinder, label={}];",
                    queue_id(&q.name),
                    quote(&label)
                );
            }
            if node.is_some() {
                out.push_str(
                    "    }
",
                );
            }
        }
        // Clients as ovals named by their label; each consumer an edge from its queue.
        let connection_id = |id: u64| quote(&format!("{}/connection/{id}", v.name));
        for c in &v.connections {
            let _ = writeln!(
                out,
                "    {} [shape=oval, label={}];",
                connection_id(c.id),
                quote(&c.label())
            );
        }
        for c in &v.consumers {
            let _ = writeln!(
                out,
                "    {} -> {} [style=dashed, label={}];",
                queue_id(&c.queue),
                connection_id(c.connection),
                quote(&c.tag)
            );
        }
        for b in &v.bindings {
            let target = if b.destination_is_exchange {
                exchange_id(&b.destination)
            } else {
                queue_id(&b.destination)
            };
            let mut label = b.routing_key.to_string();
            for (k, val) in &b.arguments {
                let _ = write!(label, "\n{k}={val}");
            }
            let _ = writeln!(
                out,
                "    {} -> {} [label={}];",
                exchange_id(&b.source),
                target,
                quote(&label)
            );
        }
        out.push_str("  }\n");
    }
    out.push_str("}\n");
    out
}

/// An indented listing: a cluster's nodes, then one vhost after another: its exchanges (but
/// the default and `amq.*` ones every broker has), queues with their depths and where a
/// cluster keeps them and, under each, its consumers named by
/// their connection's label; bindings; connections. Control characters in names are shown as
/// escapes.
pub fn text(snapshot: &Snapshot) -> String {
    use crate::terminal::printable;
    let mut out = String::new();
    if !snapshot.nodes.is_empty() {
        out.push_str("nodes:\n");
    }
    for n in &snapshot.nodes {
        let mut said = vec![if n.running { "running" } else { "down" }.to_string()];
        if n.memory_alarm {
            said.push("memory alarm".into());
        }
        if n.disk_alarm {
            said.push("disk alarm".into());
        }
        if !n.partitions.is_empty() {
            said.push(format!("cannot reach {}", n.partitions.join(", ")));
        }
        let _ = writeln!(out, "  {} {}", printable(&n.name), said.join(", "));
    }
    for v in &snapshot.vhosts {
        let _ = writeln!(out, "vhost {}", printable(&v.name));
        let exchanges: Vec<_> = v
            .exchanges
            .iter()
            .filter(|x| !x.name.is_empty() && !x.name.starts_with("amq."))
            .collect();
        if !exchanges.is_empty() {
            out.push_str("  exchanges:\n");
        }
        for x in exchanges {
            let flags = flags(&[
                (x.durable, "durable"),
                (x.auto_delete, "auto-delete"),
                (x.internal, "internal"),
            ]);
            let _ = writeln!(
                out,
                "    {} ({}{flags})",
                printable(&x.name),
                printable(&x.kind)
            );
        }
        // Looked up once per consumer: a broker may have thousands of each.
        let labels: HashMap<u64, String> =
            v.connections.iter().map(|c| (c.id, c.label())).collect();
        let mut consumers: HashMap<&str, Vec<&ConsumerSnapshot>> = HashMap::new();
        for c in &v.consumers {
            consumers.entry(c.queue.as_str()).or_default().push(c);
        }
        if !v.queues.is_empty() {
            out.push_str("  queues:\n");
        }
        for q in &v.queues {
            let flags = flags(&[
                (q.durable, "durable"),
                (q.exclusive, "exclusive"),
                (q.auto_delete, "auto-delete"),
            ]);
            let place = match (&q.leader, &q.node) {
                (Some(leader), _) => format!(
                    ", {} leader {}, {} of {} members online",
                    q.queue_type.as_str(),
                    printable(leader),
                    q.online.len(),
                    q.members.len()
                ),
                (None, Some(node)) => format!(", on {}", printable(node)),
                (None, None) => String::new(),
            };
            let state = match q.state.as_deref() {
                Some(state) if state != "running" => format!(", {}", printable(state)),
                _ => String::new(),
            };
            let behind: String = (q.behind.iter())
                .map(|(node, by)| format!(", {} {by} entries behind", printable(node)))
                .collect();
            let _ = writeln!(
                out,
                "    {}: {} ready, {} unacked{flags}{place}{behind}{state}",
                printable(&q.name),
                q.ready,
                q.unacked
            );
            for c in consumers.get(q.name.as_str()).into_iter().flatten() {
                let by = labels
                    .get(&c.connection)
                    .map_or("an unknown connection", String::as_str);
                let ack = if c.ack { "manual ack" } else { "no ack" };
                let prefetch = match c.prefetch {
                    0 => String::new(),
                    n => format!(", prefetch {n}"),
                };
                let _ = writeln!(
                    out,
                    "      consumer {} by {} (channel {}, {ack}{prefetch})",
                    printable(&c.tag),
                    printable(by),
                    c.channel
                );
            }
        }
        if !v.bindings.is_empty() {
            out.push_str("  bindings:\n");
        }
        for b in &v.bindings {
            let kind = if b.destination_is_exchange {
                "exchange "
            } else {
                ""
            };
            let key = match &*b.routing_key {
                "" => "no key".to_string(),
                key => format!("key {}", printable(key)),
            };
            let arguments: Vec<String> = b
                .arguments
                .iter()
                .map(|(k, val)| format!("{}={}", printable(k), printable(val)))
                .collect();
            let arguments = if arguments.is_empty() {
                String::new()
            } else {
                format!(" [{}]", arguments.join(", "))
            };
            let _ = writeln!(
                out,
                "    {} -> {kind}{}, {key}{arguments}",
                printable(&b.source),
                printable(&b.destination)
            );
        }
        if !v.connections.is_empty() {
            out.push_str("  connections:\n");
        }
        for c in &v.connections {
            let node = c
                .node
                .as_deref()
                .map(|n| format!(", node {}", printable(n)));
            let _ = writeln!(
                out,
                "    {} ({}, user {}{})",
                printable(&c.label()),
                printable(&c.name),
                printable(&c.user),
                node.unwrap_or_default()
            );
        }
    }
    out
}

/// `, durable, exclusive`: the words whose flag is set.
fn flags(set: &[(bool, &str)]) -> String {
    set.iter()
        .filter(|(on, _)| *on)
        .map(|(_, word)| format!(", {word}"))
        .collect()
}

fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            // Shown as `\u{1b}` in the graph, never raw on the terminal it is printed to.
            c if crate::terminal::hidden(c) => {
                let _ = write!(out, "\\\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Arguments RabbitMQ keeps as numbers or booleans; the snapshot holds them as text.
const INTEGER_ARGUMENTS: &[&str] = &[
    "x-message-ttl",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-delivery-limit",
    "x-quorum-initial-group-size",
    "x-stream-max-segment-size-bytes",
];
const BOOLEAN_ARGUMENTS: &[&str] = &["x-single-active-consumer"];

fn arguments(pairs: &[(String, String)]) -> Value {
    let mut map = Map::new();
    for (k, v) in pairs {
        let value = if INTEGER_ARGUMENTS.contains(&k.as_str()) {
            v.parse::<i64>().map(Value::from).unwrap_or(json!(v))
        } else if BOOLEAN_ARGUMENTS.contains(&k.as_str()) {
            v.parse::<bool>().map(Value::from).unwrap_or(json!(v))
        } else {
            json!(v)
        };
        map.insert(k.clone(), value);
    }
    Value::Object(map)
}

/// RabbitMQ definitions JSON for the vhosts' exchanges, queues and bindings. Left out, as
/// RabbitMQ's own export leaves them out: the default and `amq.*` exchanges (every broker has
/// them) and exclusive queues (they die with their connection).
/// `permissions` (of users defined elsewhere, no passwords here) come along as they are.
pub fn definitions(
    snapshot: &Snapshot,
    permissions: &[rabbitmq_http_client::responses::Permissions],
) -> Value {
    let permissions: Vec<Value> = permissions
        .iter()
        .map(|p| {
            json!({
                "user": p.user,
                "vhost": p.vhost,
                "configure": p.configure,
                "write": p.write,
                "read": p.read,
            })
        })
        .collect();
    let mut vhosts = Vec::new();
    let mut exchanges = Vec::new();
    let mut queues = Vec::new();
    let mut bindings = Vec::new();
    for v in &snapshot.vhosts {
        vhosts.push(json!({ "name": v.name }));
        let builtin = |name: &str| name.is_empty() || name.starts_with("amq.");
        let exclusive = |name: &str| v.queues.iter().any(|q| q.name == name && q.exclusive);
        for x in v.exchanges.iter().filter(|x| !builtin(&x.name)) {
            exchanges.push(json!({
                "name": x.name,
                "vhost": v.name,
                "type": x.kind,
                "durable": x.durable,
                "auto_delete": x.auto_delete,
                "internal": x.internal,
                "arguments": arguments(&x.arguments),
            }));
        }
        for q in v.queues.iter().filter(|q| !q.exclusive) {
            queues.push(json!({
                "name": q.name,
                "vhost": v.name,
                "durable": q.durable,
                "auto_delete": q.auto_delete,
                "arguments": arguments(&q.arguments),
            }));
        }
        for b in &v.bindings {
            if !b.destination_is_exchange && exclusive(&b.destination) {
                continue;
            }
            bindings.push(json!({
                "source": b.source.as_ref(),
                "vhost": v.name,
                "destination": b.destination.as_ref(),
                "destination_type": if b.destination_is_exchange { "exchange" } else { "queue" },
                "routing_key": b.routing_key.as_ref(),
                "arguments": arguments(&b.arguments),
            }));
        }
    }
    json!({
        "vhosts": vhosts,
        "permissions": permissions,
        "exchanges": exchanges,
        "queues": queues,
        "bindings": bindings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{ExchangeSnapshot, QueueSnapshot, VhostSnapshot};
    use crate::events::BindingInfo;
    use crate::topology::QueueType;

    fn sample() -> Snapshot {
        Snapshot {
            vhosts: vec![VhostSnapshot {
                name: "/".into(),
                exchanges: vec![ExchangeSnapshot {
                    name: "orders".into(),
                    kind: "topic".into(),
                    durable: true,
                    auto_delete: false,
                    internal: false,
                    arguments: vec![],
                }],
                queues: vec![QueueSnapshot {
                    name: "q \"1\"".into(),
                    queue_type: QueueType::Classic,
                    durable: true,
                    exclusive: false,
                    auto_delete: false,
                    arguments: vec![("x-message-ttl".into(), "60000".into())],
                    ready: 0,
                    unacked: 0,
                    consumers: 0,
                    stream: None,
                    delivery_limit: Default::default(),
                    ..Default::default()
                }],
                bindings: vec![BindingInfo {
                    source: "orders".into(),
                    destination: "q \"1\"".into(),
                    destination_is_exchange: false,
                    routing_key: "eu.#".into(),
                    arguments: vec![],
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn dot_has_shapes_and_labelled_edges() {
        let text = dot(&sample());
        assert!(text.contains("\"//exchange/orders\" [shape=box, style=rounded"));
        assert!(text.contains("\"//queue/q \\\"1\\\"\" [shape=cylinder"));
        assert!(text.contains("-> \"//queue/q \\\"1\\\"\" [label=\"eu.#\"]"));
    }

    #[test]
    fn dot_draws_clients_and_an_edge_per_consumer() {
        use crate::broker::{ConnectionSnapshot, ConsumerSnapshot};
        let mut snapshot = sample();
        let v = &mut snapshot.vhosts[0];
        v.connections = vec![ConnectionSnapshot {
            id: 42,
            peer: "10.0.0.5:53122".into(),
            client: crate::events::ClientInfo {
                connection_name: Some("nova-conductor:4242:2c6f".into()),
                product: None,
            },
            ..Default::default()
        }];
        v.consumers = vec![ConsumerSnapshot {
            queue: "q \"1\"".into(),
            tag: "c-1".into(),
            connection: 42,
            ..Default::default()
        }];
        let text = dot(&snapshot);
        assert!(text.contains("\"//connection/42\" [shape=oval, label=\"nova-conductor\"]"));
        assert!(text.contains(
            "\"//queue/q \\\"1\\\"\" -> \"//connection/42\" [style=dashed, label=\"c-1\"]"
        ));
    }

    #[test]
    fn dot_puts_queues_in_their_node_s_cluster() {
        let mut snapshot = sample();
        let v = &mut snapshot.vhosts[0];
        v.queues[0].node = Some("rs-b@localhost".into());
        v.queues.push(QueueSnapshot {
            queue_type: QueueType::Quorum,
            node: Some("rs-a@localhost".into()),
            leader: Some("rs-c@localhost".into()),
            members: vec![
                "rs-a@localhost".into(),
                "rs-b@localhost".into(),
                "rs-c@localhost".into(),
            ],
            online: vec!["rs-b@localhost".into(), "rs-c@localhost".into()],
            behind: [("rs-b@localhost".to_string(), 12_345)].into(),
            ..QueueSnapshot::new("votes")
        });
        let text = dot(&snapshot);
        let b = text
            .find("subgraph \"cluster_0_rs-b@localhost\" {")
            .unwrap();
        let c = text
            .find("subgraph \"cluster_0_rs-c@localhost\" {")
            .unwrap();
        assert!(
            text[b..c].contains("\"//queue/q \\\"1\\\"\" [shape=cylinder"),
            "{text}"
        );
        // A replicated queue sits with its leader, its members online counted and those far
        // behind named.
        assert!(
            text[c..].contains("label=\"votes\\nquorum 2/3\\nrs-b@localhost 12345 behind\""),
            "{text}"
        );
        assert!(!text.contains("cluster_0_rs-a"), "{text}");
    }

    #[test]
    fn definitions_keep_integer_arguments_integers() {
        let defs = definitions(&sample(), &[]);
        assert_eq!(
            defs["queues"][0]["arguments"]["x-message-ttl"],
            json!(60000)
        );
        assert_eq!(defs["bindings"][0]["destination_type"], json!("queue"));
    }
}
