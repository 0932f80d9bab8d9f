//! The shape of a trace: what it declares and what its messages did, without ids and times, so
//! two recordings of the same scenario (from the embedded broker and from RabbitMQ, or a fresh
//! one and a shipped one) can be compared.

use std::collections::BTreeSet;

use rabbitscope::events::{EventKind, PublishFate};
use rabbitscope::trace::Trace;

#[derive(Debug, Default, PartialEq)]
pub struct Shape {
    /// `name kind durable auto_delete internal [arguments]`, the `amq.*` and default ones left
    /// out (every vhost has them).
    pub exchanges: BTreeSet<String>,
    /// `name type durable exclusive auto_delete [arguments]`.
    pub queues: BTreeSet<String>,
    /// `source -> destination key [arguments]`.
    pub bindings: BTreeSet<String>,
    /// In order: `publish exchange key -> [queues] fate` and `deliver queue`.
    pub traffic: Vec<String>,
}

/// The shape of `trace`, each name passed through `name` first (to blank out uuids, say).
/// Declarations come from the header's snapshot and from the events: a recorder that polls
/// may see a declaration in either place.
pub fn shape(trace: &Trace, name: impl Fn(&str) -> String) -> Shape {
    let mut shape = Shape::default();
    let args = |a: &[(String, String)]| {
        let mut a: Vec<String> = a.iter().map(|(k, v)| format!("{k}={v}")).collect();
        a.sort();
        format!("[{}]", a.join(", "))
    };
    let exchange = |n: &str, kind: &str, durable: bool, auto_delete: bool, internal: bool, a| {
        (!n.is_empty() && !n.starts_with("amq."))
            .then(|| format!("{} {kind} {durable} {auto_delete} {internal} {a}", name(n)))
    };
    let binding = |source: &str, destination: &str, key: &str, a: String| {
        format!(
            "{} -> {} {} {a}",
            name(source),
            name(destination),
            name(key)
        )
    };
    if let Some(v) = trace.header.snapshot.vhost(&trace.header.vhost) {
        for e in &v.exchanges {
            let kind = e.kind.to_string();
            let a = args(&e.arguments);
            shape.exchanges.extend(exchange(
                &e.name,
                &kind,
                e.durable,
                e.auto_delete,
                e.internal,
                a,
            ));
        }
        for q in &v.queues {
            shape.queues.insert(format!(
                "{} {} {} {} {} {}",
                name(&q.name),
                q.queue_type.as_str(),
                q.durable,
                q.exclusive,
                q.auto_delete,
                args(&q.arguments)
            ));
        }
        for b in v.bindings.iter().filter(|b| !b.source.is_empty()) {
            shape.bindings.insert(binding(
                &b.source,
                &b.destination,
                &b.routing_key,
                args(&b.arguments),
            ));
        }
    }
    for event in &trace.events {
        match &event.kind {
            EventKind::ExchangeDeclared {
                name: n,
                kind,
                durable,
                auto_delete,
                internal,
                arguments,
            } => shape.exchanges.extend(exchange(
                n,
                kind,
                *durable,
                *auto_delete,
                *internal,
                args(arguments),
            )),
            EventKind::QueueDeclared {
                name: n,
                queue_type,
                durable,
                exclusive,
                auto_delete,
                arguments,
            } => {
                shape.queues.insert(format!(
                    "{} {} {durable} {exclusive} {auto_delete} {}",
                    name(n),
                    queue_type.as_str(),
                    args(arguments)
                ));
            }
            EventKind::BindingCreated(b) if !b.source.is_empty() => {
                shape.bindings.insert(binding(
                    &b.source,
                    &b.destination,
                    &b.routing_key,
                    args(&b.arguments),
                ));
            }
            EventKind::Published {
                exchange,
                routing_key,
                queues,
                fate,
                ..
            } => {
                let mut queues: Vec<String> = queues.iter().map(|q| name(q)).collect();
                queues.sort();
                let fate = match fate {
                    PublishFate::Routed => "routed",
                    PublishFate::Returned => "returned",
                    PublishFate::Dropped => "dropped",
                    PublishFate::Rejected => "rejected",
                };
                shape.traffic.push(format!(
                    "publish {:?} {} -> [{}] {fate}",
                    name(exchange),
                    name(routing_key),
                    queues.join(", ")
                ));
            }
            EventKind::Delivered { queue, .. } => {
                shape.traffic.push(format!("deliver {}", name(queue)));
            }
            _ => {}
        }
    }
    shape
}

/// A name with every uuid (`8-4-4-4-12` or 32 hex digits, as oslo.messaging writes them)
/// written `<uuid>`.
pub fn without_uuids(name: &str) -> String {
    static UUID: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}",
        )
        .unwrap()
    });
    UUID.replace_all(name, "<uuid>").into_owned()
}
