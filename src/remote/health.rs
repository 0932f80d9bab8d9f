//! What `doctor` reads of a live RabbitMQ: one vhost's queues (with policy and members),
//! policies, exchanges with their counters, bindings, channels and the vhost's counters, and
//! the cluster's nodes, as a [`crate::doctor::Broker`].

use crate::doctor::model;

use super::answers;
use super::management::ErrorKind;
use super::{Management, ManagementError};

/// The broker as `doctor` sees it, and what could not be read (a user without the
/// `monitoring` tag may not list the nodes) in a few words each.
pub async fn read(
    api: &Management,
    vhost: &str,
) -> Result<(model::Broker, Vec<String>), ManagementError> {
    let (policies, sees_every_client) = tokio::join!(api.policies(vhost), api.sees_every_client());
    let policies: Vec<model::Policy> = (policies?.into_iter())
        .map(|p| model::Policy {
            name: p.name,
            pattern: p.pattern,
            apply_to: p.apply_to.unwrap_or_else(|| "all".into()),
            definition: p.definition,
            priority: p.priority,
        })
        .collect();
    // The queues' statistics are most of the read on a cluster (each node gathers them from
    // the others); without them the consumers listing counts consumers, and the policy in
    // force is worked out here, when both can be: the listing is complete only for a user
    // with the `monitoring` tag, and a policy pattern may be one only RabbitMQ reads.
    let policy_clear = |queues: &[answers::Queue]| {
        (queues.iter())
            .map(|q| {
                let kind = q.kind.as_deref().unwrap_or("classic");
                model::policy_in_force(&policies, &q.name, kind)
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let without_stats = sees_every_client.unwrap_or(false);
    // The nodes alongside the rest: on a cluster each read gathers from every node.
    let (vhost_reads, nodes, version) = tokio::join!(
        async {
            tokio::try_join!(
                async {
                    if without_stats {
                        api.queues_without_stats(vhost).await
                    } else {
                        api.queues_in_depth(vhost).await
                    }
                },
                async {
                    if without_stats {
                        api.consumers(vhost).await
                    } else {
                        Ok(Vec::new())
                    }
                },
                api.exchange_stats(vhost),
                api.bindings(vhost),
                api.channels(vhost),
                api.connections(vhost),
                api.vhost_stats(vhost),
            )
        },
        api.nodes(),
        // Without it the checks that depend on the release say what each release does.
        async { api.rabbitmq_version().await.ok().flatten() },
    );
    let (mut queues, consumers, exchanges, bindings, channels, connections, stats) = vhost_reads?;
    if without_stats {
        match policy_clear(&queues) {
            Ok(in_force) => {
                answers::count_consumers(&mut queues, &consumers);
                for (q, policy) in queues.iter_mut().zip(in_force) {
                    q.policy = policy;
                }
            }
            // Only RabbitMQ can say: ask it, statistics and all.
            Err(model::PolicyUnclear) => queues = api.queues_in_depth(vhost).await?,
        }
    }
    let mut unread = Vec::new();
    let nodes = match nodes {
        Ok(nodes) => nodes,
        Err(e) if matches!(e.kind, ErrorKind::Unauthorized | ErrorKind::Other) => {
            unread.push(format!("the cluster's nodes were not read: {}", e.detail));
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    let replicated: Vec<&str> = (queues.iter())
        .filter(|q| q.kind.as_deref() == Some("quorum"))
        .filter(|q| q.members.as_ref().is_some_and(|m| m.len() > 1))
        .map(|q| q.name.as_str())
        .collect();
    let mut behind = api.members_behind(vhost, &replicated).await;
    let client_name = |connection: &Option<String>| {
        let connection = connection.as_deref()?;
        (connections.iter())
            .find(|c| c.name == connection)
            .and_then(answers::Connection::connection_name)
    };
    let broker = model::Broker {
        vhost: vhost.to_string(),
        version,
        queues: (queues.into_iter())
            .map(|q| {
                let behind = behind.remove(&q.name).unwrap_or_default();
                model::Queue { behind, ..queue(q) }
            })
            .collect(),
        policies,
        exchanges: (exchanges.into_iter())
            .map(|x| model::Exchange {
                settled: ["publish_in", "publish_out"]
                    .iter()
                    .all(|c| answers::rate(&x.message_stats, c) == 0.0),
                published_in: answers::counter(&x.message_stats, "publish_in"),
                routed_out: answers::counter(&x.message_stats, "publish_out"),
                name: x.name,
                kind: x.kind,
                arguments: x.arguments,
            })
            .collect(),
        bindings: (bindings.into_iter())
            .map(|b| model::Binding {
                to_exchange: b.to_exchange(),
                source: b.source,
                destination: b.destination,
                routing_key: b.routing_key,
            })
            .collect(),
        channels: (channels.into_iter())
            .map(|c| model::Channel {
                connection_name: client_name(&c.connection_details.name),
                name: c.name,
                global_prefetch: c.global_prefetch_count,
            })
            .collect(),
        nodes: nodes.into_iter().map(node).collect(),
        returned_unroutable: answers::counter(&stats.message_stats, "return_unroutable"),
        dropped_unroutable: answers::counter(&stats.message_stats, "drop_unroutable"),
    };
    Ok((broker, unread))
}

fn queue(q: answers::Queue) -> model::Queue {
    model::Queue {
        name: q.name,
        kind: q.kind.unwrap_or_else(|| "classic".into()),
        durable: q.durable,
        exclusive: q.exclusive,
        auto_delete: q.auto_delete,
        arguments: q.arguments,
        policy: q.policy,
        messages: Some(q.messages),
        consumers: Some(q.consumers),
        members: q.members,
        online: q.online,
        node: q.node,
        state: q.state,
        behind: Default::default(),
    }
}

fn node(n: answers::Node) -> model::Node {
    model::Node {
        name: n.name,
        running: n.running,
        memory_alarm: n.mem_alarm,
        disk_alarm: n.disk_free_alarm,
        memory_used: n.mem_used,
        memory_limit: n.mem_limit,
        disk_free: n.disk_free,
        disk_free_limit: n.disk_free_limit,
        partitions: n.partitions.unwrap_or_default(),
    }
}
