//! What oslo.messaging's names say: which service a connection belongs to, and what a queue
//! is for (a topic's shared queue, one server's queue, a reply queue, a fanout queue, a
//! notification queue).
//!
//! The rules, from oslo.messaging's rabbit driver: a server consumes `<topic>` and
//! `<topic>.<server>` (on the control exchange, `nova`), and `<topic>_fanout_<uuid>` bound to
//! the `<topic>_fanout` exchange; a caller has one `reply_<uuid>` queue; with the queue manager
//! the uuid becomes `<host>:<process>:<n>`. Notifications go to `<topic>.<priority>`
//! (`notifications.info`). A connection is named `<program>:<pid>:<uuid>`.

/// What a queue's name says it is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueRole<'a> {
    /// `reply_<id>`: one caller's replies.
    Reply,
    /// `<topic>_fanout_<id>`: one server's copy of the topic's fanout casts.
    Fanout { topic: &'a str },
    /// `<topic>.<priority>` of a notification topic (`notifications.info`).
    Notifications { topic: &'a str, priority: &'a str },
    /// `<topic>.<server>`: casts and calls to one server (`compute.node1`).
    Server { topic: &'a str, server: &'a str },
    /// Anything else: a topic's shared queue (`compute`, `conductor`) or not oslo's at all.
    Other,
}

/// The priorities oslo.messaging's notifier sends at.
const PRIORITIES: [&str; 7] = [
    "audit", "debug", "info", "warn", "error", "critical", "sample",
];

/// What the queue named `name` is for, by oslo.messaging's naming.
pub fn queue_role(name: &str) -> QueueRole<'_> {
    if name.strip_prefix("reply_").is_some_and(|id| !id.is_empty()) {
        return QueueRole::Reply;
    }
    if let Some((topic, id)) = name.split_once("_fanout_") {
        if !topic.is_empty() && !id.is_empty() {
            return QueueRole::Fanout { topic };
        }
    }
    if let Some((topic, last)) = name.rsplit_once('.') {
        if topic.contains("notifications") && PRIORITIES.contains(&last) {
            return QueueRole::Notifications {
                topic,
                priority: last,
            };
        }
    }
    // A topic has no dot of its own in Nova (`compute`, `compute-alt`, `scheduler`); a server
    // is a host name, which may have several.
    if let Some((topic, server)) = name.split_once('.') {
        if !topic.is_empty() && !server.is_empty() && !topic.contains(['_', ' ']) {
            return QueueRole::Server { topic, server };
        }
    }
    QueueRole::Other
}

/// The program of an oslo.messaging connection name (`nova-compute:4242:<uuid>` ->
/// `nova-compute`); none for a name of another shape.
pub fn service(connection_name: &str) -> Option<&str> {
    let mut parts = connection_name.splitn(3, ':');
    let program = parts.next()?;
    let pid = parts.next()?;
    parts.next()?;
    (!program.is_empty() && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        .then_some(program)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_are_told_apart_by_name() {
        assert_eq!(
            queue_role("reply_4f0c9ba5d1a64d0ab5c3e8f1e0b2a7c4"),
            QueueRole::Reply
        );
        assert_eq!(queue_role("reply_ctl-1:nova-api:1"), QueueRole::Reply);
        assert_eq!(
            queue_role("compute_fanout_4f0c9ba5d1a64d0a"),
            QueueRole::Fanout { topic: "compute" }
        );
        assert_eq!(
            queue_role("scheduler_fanout_ctl-1:nova-scheduler:2"),
            QueueRole::Fanout { topic: "scheduler" }
        );
        assert_eq!(
            queue_role("notifications.info"),
            QueueRole::Notifications {
                topic: "notifications",
                priority: "info"
            }
        );
        assert_eq!(
            queue_role("versioned_notifications.error"),
            QueueRole::Notifications {
                topic: "versioned_notifications",
                priority: "error"
            }
        );
        assert_eq!(
            queue_role("compute.node1.example.org"),
            QueueRole::Server {
                topic: "compute",
                server: "node1.example.org"
            }
        );
        assert_eq!(
            queue_role("compute-alt.node2"),
            QueueRole::Server {
                topic: "compute-alt",
                server: "node2"
            }
        );
        for other in ["compute", "compute_fanout", "reply_", "orders", ".x", "x."] {
            assert_eq!(queue_role(other), QueueRole::Other, "{other}");
        }
    }

    #[test]
    fn services_come_from_connection_names() {
        assert_eq!(
            service("nova-compute:4242:0d6c7a1e-5b"),
            Some("nova-compute")
        );
        assert_eq!(service("nova-conductor:17:x:y"), Some("nova-conductor"));
        assert_eq!(service("127.0.0.1:53122 -> 127.0.0.1:5672"), None);
        assert_eq!(service("pika"), None);
        assert_eq!(service("nova-api:pid:uuid"), None);
    }
}
