//! A snapshot as text for other tools: Graphviz dot, and RabbitMQ definitions JSON (which
//! `rabbitscope broker --definitions FILE` and RabbitMQ itself load).

use std::fmt::Write;

use serde_json::{json, Map, Value};

use crate::broker::Snapshot;

/// Exchanges as rounded boxes, queues as cylinders, bindings as edges labelled with their
/// routing key (and arguments); one cluster per vhost.
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
        for q in &v.queues {
            let _ = writeln!(
                out,
                "    {} [shape=cylinder, label={}];",
                queue_id(&q.name),
                quote(&q.name)
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
                    durable: true,
                    exclusive: false,
                    auto_delete: false,
                    arguments: vec![("x-message-ttl".into(), "60000".into())],
                    ready: 0,
                    unacked: 0,
                    consumers: 0,
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
    fn definitions_keep_integer_arguments_integers() {
        let defs = definitions(&sample(), &[]);
        assert_eq!(
            defs["queues"][0]["arguments"]["x-message-ttl"],
            json!(60000)
        );
        assert_eq!(defs["bindings"][0]["destination_type"], json!("queue"));
    }
}
