//! Queues nobody reads: growing with no consumer (notification queues most of all), reply
//! queues whose caller is gone, and a server's queue that will expire while its service still
//! needs it. Only where the source counts consumers (not a definitions file).

use crate::openstack::names::{queue_role, QueueRole};

use super::model::{Broker, Queue};
use super::{count, joined, listed, number, Finding, Level};

pub fn check(broker: &Broker) -> Vec<Finding> {
    let vhost = Some(broker.vhost.as_str());
    let unread = |q: &&Queue| q.consumers == Some(0);
    let mut findings = Vec::new();

    let mut notifications = Vec::new();
    let mut growing = Vec::new();
    let mut replies = Vec::new();
    let mut expiring = Vec::new();
    for q in broker.queues.iter().filter(unread) {
        let messages = q.messages.unwrap_or(0);
        let role = queue_role(&q.name);
        match role {
            QueueRole::Reply => replies.push(q),
            QueueRole::Server { .. } if q.argument("x-expires").is_some() => expiring.push(q),
            // A stream keeps what it was sent whether or not anyone reads it.
            _ if q.kind == "stream" || messages == 0 => {}
            QueueRole::Notifications { .. } => notifications.push(q),
            _ => growing.push(q),
        }
    }

    if !notifications.is_empty() {
        let total: u64 = notifications.iter().filter_map(|q| q.messages).sum();
        findings.push(
            Finding::new(Level::Warning, "notifications-nobody-reads", vhost)
                .seen(format!(
                    "{} holding {total} messages with no consumer: {}",
                    count(notifications.len(), "notification queue"),
                    listed(&names(&notifications), 5)
                ))
                .why(
                    "a service sends notifications (oslo.messaging's driver = messagingv2) \
                     but nothing consumes them: the queue only grows, until memory or disk \
                     alarms stop every publisher",
                )
                .fix(
                    "if nothing should read them, set the notifier's driver to noop in the \
                     services' [oslo_messaging_notifications] and delete the queue; otherwise \
                     start the consumer (or give the queue x-max-length / a message TTL)",
                )
                .objects(names(&notifications)),
        );
    }

    if !growing.is_empty() {
        let total: u64 = growing.iter().filter_map(|q| q.messages).sum();
        findings.push(
            Finding::new(Level::Warning, "queues-without-consumers", vhost)
                .seen(format!(
                    "{} holding {total} messages with no consumer: {}",
                    count(growing.len(), "queue"),
                    joined(&names_with_depth(&growing), 5)
                ))
                .why("messages wait in a queue nobody reads; their senders get no answer")
                .fix(
                    "start the service that consumes the queue, or delete the queue (or \
                     unbind it) if nothing will",
                )
                .objects(names(&growing)),
        );
    }

    if !replies.is_empty() {
        findings.push(
            Finding::new(Level::Warning, "orphaned-reply-queues", vhost)
                .seen(format!(
                    "{} with no consumer: {}",
                    count(replies.len(), "reply queue"),
                    joined(&names_with_depth(&replies), 5)
                ))
                .why(
                    "each process that makes RPC calls reads its replies from its own reply \
                     queue; with no consumer its caller is gone (or stuck), and replies sent \
                     there wait unread until the queue expires",
                )
                .fix(
                    "if the process is gone, nothing is lost: the queue expires by its \
                     x-expires (or delete it); if the service is still running, restart it: \
                     it can no longer receive the answers to its calls",
                )
                .objects(names(&replies)),
        );
    }

    if !expiring.is_empty() {
        let shown: Vec<String> = expiring
            .iter()
            .map(|q| {
                let after = q.argument("x-expires").and_then(number);
                match after {
                    Some(ms) => format!("'{}' (x-expires {} s)", q.name, ms / 1000),
                    None => format!("'{}'", q.name),
                }
            })
            .collect();
        findings.push(
            Finding::new(Level::Warning, "server-queues-expiring", vhost)
                .seen(format!(
                    "{} of an RPC server with x-expires and no consumer: {}",
                    count(expiring.len(), "queue"),
                    joined(&shown, 5)
                ))
                .why(
                    "when the queue expires, casts to that server find no queue and are \
                     dropped (they are not mandatory) and calls to it time out: the server \
                     looks alive but is RPC-deaf until its service reconnects and declares \
                     the queue again",
                )
                .fix(
                    "restart (or reconnect) the service that should consume it; a server's \
                     own queues should not carry x-expires",
                )
                .objects(names(&expiring)),
        );
    }
    findings
}

fn names(queues: &[&Queue]) -> Vec<String> {
    queues.iter().map(|q| q.name.clone()).collect()
}

/// `'name' (N messages)`, where counted.
fn names_with_depth(queues: &[&Queue]) -> Vec<String> {
    queues
        .iter()
        .map(|q| match q.messages {
            Some(n) => format!("'{}' ({})", q.name, count(n as usize, "message")),
            None => format!("'{}'", q.name),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn queue(name: &str, messages: u64, consumers: u64) -> Queue {
        Queue {
            name: name.into(),
            kind: "classic".into(),
            messages: Some(messages),
            consumers: Some(consumers),
            ..Default::default()
        }
    }

    fn found(queues: Vec<Queue>) -> Vec<(&'static str, Vec<String>)> {
        let broker = Broker {
            queues,
            ..Default::default()
        };
        check(&broker)
            .into_iter()
            .map(|f| (f.check, f.objects))
            .collect()
    }

    #[test]
    fn unread_queues_are_told_apart() {
        let mut expiring = queue("compute.node1", 0, 0);
        expiring.arguments = json!({"x-expires": 1_800_000}).as_object().unwrap().clone();
        let mut stream = queue("compute_fanout", 40, 0);
        stream.kind = "stream".into();
        let got = found(vec![
            queue("notifications.info", 12, 0),
            queue("orders", 3, 0),
            queue("empty", 0, 0),
            queue("read", 5, 1),
            queue("reply_abc", 0, 0),
            queue("reply_live", 0, 1),
            expiring,
            queue("compute.node2", 0, 0),
            stream,
        ]);
        let expect = |check: &'static str, names: &[&str]| {
            (check, names.iter().map(|n| n.to_string()).collect())
        };
        assert_eq!(
            got,
            [
                expect("notifications-nobody-reads", &["notifications.info"]),
                expect("queues-without-consumers", &["orders"]),
                expect("orphaned-reply-queues", &["reply_abc"]),
                expect("server-queues-expiring", &["compute.node1"]),
            ]
        );
    }

    #[test]
    fn without_consumer_counts_nothing_is_said() {
        let mut q = queue("notifications.info", 5, 0);
        q.consumers = None;
        assert!(found(vec![q]).is_empty());
    }
}
