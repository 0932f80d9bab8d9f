//! The cluster's nodes (from `/api/nodes`): down, under a memory or disk alarm, or cut off
//! from each other. About every vhost, so these findings name none.

use super::model::Broker;
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

    let memory: (Vec<String>, Vec<String>) = (nodes.iter())
        .filter(|n| n.running && n.memory_alarm)
        .map(|n| match (n.memory_used, n.memory_limit) {
            (Some(used), Some(limit)) => (
                n.name.clone(),
                format!("'{}' (uses {}, limit {})", n.name, mib(used), mib(limit)),
            ),
            _ => (n.name.clone(), format!("'{}'", n.name)),
        })
        .unzip();
    let disk: (Vec<String>, Vec<String>) = (nodes.iter())
        .filter(|n| n.running && n.disk_alarm)
        .map(|n| match (n.disk_free, n.disk_free_limit) {
            (Some(free), Some(limit)) => (
                n.name.clone(),
                format!("'{}' ({} free, limit {})", n.name, mib(free), mib(limit)),
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

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
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
}
