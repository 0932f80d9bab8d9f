//! The cluster's nodes (from `/api/nodes`): down, under a memory or disk alarm, or cut off
//! from each other. About every vhost, so these findings name none; but for the vhost's
//! classic queues that went down with their node.

use super::model::{Broker, Node};
use super::{count, joined, listed, Finding, Level};

pub fn check(broker: &Broker) -> Vec<Finding> {
    let nodes = &broker.nodes;
    let mut findings = Vec::new();

    let down: Vec<String> = (nodes.iter())
        .filter(|n| !n.running)
        .map(|n| n.name.clone())
        .collect();
    if !down.is_empty() {
        findings.push(
            Finding::new(Level::Critical, "nodes-down", None)
                .seen(format!(
                    "{} of {} not running: {}",
                    count(down.len(), "node"),
                    nodes.len(),
                    listed(&down, 5)
                ))
                .why(
                    "clients connected to it reconnect elsewhere; classic queues on it are \
                     gone until it returns, and quorum queues lose a member",
                )
                .fix(
                    "start it (and look at its log for why it stopped); if it is gone for \
                     good, `rabbitmqctl forget_cluster_node` it",
                )
                .objects(down),
        );
    }
    findings.extend(queues_down(broker));

    let memory: (Vec<String>, Vec<String>) = (nodes.iter())
        .filter(|n| n.running && n.memory_alarm)
        .map(|n| match (n.memory_used, n.memory_limit) {
            (Some(used), Some(limit)) => (
                n.name.clone(),
                format!("'{}' (uses {}, limit {})", n.name, size(used), size(limit)),
            ),
            _ => (n.name.clone(), format!("'{}'", n.name)),
        })
        .unzip();
    let disk: (Vec<String>, Vec<String>) = (nodes.iter())
        .filter(|n| n.running && n.disk_alarm)
        .map(|n| match (n.disk_free, n.disk_free_limit) {
            (Some(free), Some(limit)) => (
                n.name.clone(),
                format!("'{}' ({} free, limit {})", n.name, size(free), size(limit)),
            ),
            _ => (n.name.clone(), format!("'{}'", n.name)),
        })
        .unzip();
    for (alarm, check, (nodes, shown)) in [
        ("memory", "memory-alarm", memory),
        ("disk", "disk-alarm", disk),
    ] {
        if nodes.is_empty() {
            continue;
        }
        findings.push(
            Finding::new(Level::Critical, check, None)
                .seen(format!(
                    "a {alarm} alarm is on at {}: {}",
                    count(nodes.len(), "node"),
                    joined(&shown, 5)
                ))
                .why(
                    "while an alarm is on anywhere in the cluster, every connection that \
                     publishes is blocked: services hang on their next cast or call",
                )
                .fix(if alarm == "memory" {
                    "drain the deepest queues (see the other findings: queues nobody reads), \
                     or raise vm_memory_high_watermark"
                } else {
                    "free disk space on the node, drain the deepest queues, or lower \
                     disk_free_limit"
                })
                .objects(nodes),
        );
    }

    let cut: Vec<String> = (nodes.iter())
        .filter(|n| !n.partitions.is_empty())
        .map(|n| format!("'{}' cannot see {}", n.name, n.partitions.join(", ")))
        .collect();
    if !cut.is_empty() {
        findings.push(
            Finding::new(Level::Critical, "network-partition", None)
                .seen(format!("a network partition: {}", joined(&cut, 5)))
                .why("the two sides may each accept messages the other never sees")
                .fix(
                    "restore the network, then restart the nodes of the side that lost \
                     (see RabbitMQ's partition handling, cluster_partition_handling)",
                )
                .objects(nodes.iter().map(|n| n.name.clone()).collect()),
        );
    }
    findings
}

/// The vhost's classic queues whose node is down: a classic queue lives on one node only.
/// RabbitMQ lists them with `state: down`; a node listed as not running says it too.
fn queues_down(broker: &Broker) -> Option<Finding> {
    let down = |node: &str| (broker.nodes.iter()).any(|n: &Node| n.name == node && !n.running);
    let (names, shown): (Vec<String>, Vec<String>) = (broker.queues.iter())
        .filter(|q| q.kind == "classic")
        .filter(|q| q.state.as_deref() == Some("down") || q.node.as_deref().is_some_and(down))
        .map(|q| match &q.node {
            Some(node) => (q.name.clone(), format!("'{}' (on '{node}')", q.name)),
            None => (q.name.clone(), format!("'{}'", q.name)),
        })
        .unzip();
    if names.is_empty() {
        return None;
    }
    Some(
        Finding::new(Level::Critical, "queues-down", Some(&broker.vhost))
            .seen(format!(
                "{} down with their node: {}",
                count(names.len(), "classic queue"),
                joined(&shown, 5)
            ))
            .why(
                "a classic queue lives on one node: until that node returns its consumers get \
                 nothing, and declaring it again fails (404 NOT_FOUND, home node down)",
            )
            .fix(
                "start the node; for queues that must outlive a node, use quorum queues \
                 (x-queue-type: quorum), whose members sit on several nodes",
            )
            .objects(names),
    )
}

/// A size the way an operator reads it: `512 KiB`, `132 MiB`, `93132 GiB`.
fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1 << 10 => format!("{b} bytes"),
        b if b < 1 << 20 => format!("{} KiB", b >> 10),
        b if b < 10 << 30 => format!("{} MiB", b >> 20),
        b => format!("{} GiB", b >> 30),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::model::Node;

    fn node(name: &str) -> Node {
        Node {
            name: name.into(),
            running: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_healthy_cluster_says_nothing() {
        let broker = Broker {
            nodes: vec![node("rabbit@a"), node("rabbit@b")],
            ..Default::default()
        };
        assert!(check(&broker).is_empty());
    }

    #[test]
    fn nodes_down_alarms_and_partitions() {
        let broker = Broker {
            nodes: vec![
                Node {
                    running: false,
                    // A stopped node's alarm flags are stale: not reported.
                    memory_alarm: true,
                    ..node("rabbit@a")
                },
                Node {
                    memory_alarm: true,
                    memory_used: Some(900 << 20),
                    memory_limit: Some(800 << 20),
                    disk_alarm: true,
                    partitions: vec!["rabbit@c".into()],
                    ..node("rabbit@b")
                },
            ],
            ..Default::default()
        };
        let found = check(&broker);
        let checks: Vec<&str> = found.iter().map(|f| f.check).collect();
        assert_eq!(
            checks,
            [
                "nodes-down",
                "memory-alarm",
                "disk-alarm",
                "network-partition"
            ]
        );
        assert!(found.iter().all(|f| f.level == Level::Critical));
        assert_eq!(found[0].seen, "1 node of 2 not running: 'rabbit@a'");
        assert_eq!(found[1].objects, ["rabbit@b"]);
        assert!(found[1]
            .seen
            .ends_with("'rabbit@b' (uses 900 MiB, limit 800 MiB)"));
        assert_eq!(found[2].objects, ["rabbit@b"]);
    }

    #[test]
    fn classic_queues_on_a_node_that_is_down() {
        use crate::doctor::model::Queue;
        let queue = |name: &str, kind: &str, node: &str, state: Option<&str>| Queue {
            name: name.into(),
            kind: kind.into(),
            node: Some(node.into()),
            state: state.map(str::to_string),
            ..Default::default()
        };
        let broker = Broker {
            vhost: "nova".into(),
            nodes: vec![
                node("rabbit@a"),
                Node {
                    running: false,
                    ..node("rabbit@b")
                },
            ],
            queues: vec![
                queue("billing", "classic", "rabbit@b", Some("down")),
                // Its state not read yet: its node says it.
                queue("orders", "classic", "rabbit@b", None),
                queue("audit", "classic", "rabbit@a", Some("running")),
                // Its loss is the quorum checks' to judge.
                queue("votes", "quorum", "rabbit@b", Some("running")),
            ],
            ..Default::default()
        };
        let found = check(&broker);
        let down = found.iter().find(|f| f.check == "queues-down").unwrap();
        assert_eq!(down.objects, ["billing", "orders"]);
        assert_eq!(down.vhost.as_deref(), Some("nova"));
        assert_eq!(
            down.seen,
            "2 classic queues down with their node: 'billing' (on 'rabbit@b') and 'orders' \
             (on 'rabbit@b')"
        );
    }

    #[test]
    fn sizes_read_at_their_scale() {
        assert_eq!(size(2532), "2 KiB");
        assert_eq!(size(900), "900 bytes");
        assert_eq!(size(141_901_824), "135 MiB");
        assert_eq!(size(100_000_000_000_000), "93132 GiB");
    }
}
