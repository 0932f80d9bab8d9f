//! The management API's exchanges, queues, bindings, connections and consumers as a
//! [`Snapshot`], shaped exactly like the embedded broker's: sorted by name, the default
//! exchange listed but its implicit per-queue bindings not, arguments as `key=value` text;
//! with the cluster's nodes and where each queue and connection lives.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::answers;
use super::management::{Management, ManagementError};
use super::{connection_id, is_own_connection};
use crate::events::{BindingInfo, ClientInfo};
use crate::topology::{
    ConnectionSnapshot, ConsumerSnapshot, ExchangeSnapshot, NodeSnapshot, QueueSnapshot, QueueType,
    Snapshot, VhostSnapshot,
};

/// Successive polls become events through the topology's diff (`crate::remote::diff`).
pub use crate::topology::diff;

/// Whether a read asks each replicated quorum queue how far behind its members are: one
/// request per queue, too many to make on every poll of a large broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lag {
    Ask,
    Skip,
}

/// The topology of every vhost the user may see, and the cluster's nodes.
pub async fn snapshot(management: &Management) -> Result<Snapshot, ManagementError> {
    let nodes = nodes(management).await?;
    let mut vhosts = Vec::new();
    for name in management.vhost_names().await? {
        match vhost_snapshot(management, &name).await {
            Ok(mut v) => {
                ask_members_behind(management, &mut v).await;
                vhosts.push(v)
            }
            // Deleted between listing vhosts and reading it: it is simply gone.
            Err(e) if e.kind == super::management::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    vhosts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Snapshot { vhosts, nodes })
}

/// One vhost's topology and the cluster's nodes.
pub async fn one_vhost(
    management: &Management,
    vhost: &str,
    lag: Lag,
) -> Result<Snapshot, ManagementError> {
    let (mut v, nodes) = tokio::try_join!(vhost_snapshot(management, vhost), nodes(management))?;
    if lag == Lag::Ask {
        ask_members_behind(management, &mut v).await;
    }
    Ok(Snapshot {
        vhosts: vec![v],
        nodes,
    })
}

/// The cluster's nodes by name; none when the user may not list them (it takes the
/// `monitoring` tag), which is no reason to show nothing else.
pub async fn nodes(management: &Management) -> Result<Vec<NodeSnapshot>, ManagementError> {
    use super::management::ErrorKind;
    let listed = match management.nodes().await {
        Ok(listed) => listed,
        Err(e)
            if matches!(
                e.kind,
                ErrorKind::Unauthorized | ErrorKind::NotFound | ErrorKind::Other
            ) =>
        {
            tracing::debug!(error = %e, "the cluster's nodes were not read");
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let mut nodes: Vec<NodeSnapshot> = listed.into_iter().map(node).collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(nodes)
}

/// One vhost's topology.
pub async fn vhost_snapshot(
    management: &Management,
    vhost: &str,
) -> Result<VhostSnapshot, ManagementError> {
    // Where the consumers listing is complete, it counts each queue's consumers, and the
    // queues are read without their statistics, which on a cluster cost most of the read.
    let counts_consumers = management.sees_every_client().await.unwrap_or(false);
    let queues = async {
        if counts_consumers {
            management.queues_without_stats(vhost).await
        } else {
            management.queues(vhost).await
        }
    };
    let (exchanges, mut queues, bindings, connections, consumers) = tokio::try_join!(
        management.exchanges(vhost),
        queues,
        management.bindings(vhost),
        management.connections(vhost),
        management.consumers(vhost),
    )?;
    if counts_consumers {
        answers::count_consumers(&mut queues, &consumers);
    }
    let mut exchanges: Vec<ExchangeSnapshot> = exchanges.iter().filter_map(exchange).collect();
    exchanges.sort_by(|a, b| a.name.cmp(&b.name));
    // This program's own queues (see `firehose::private_queue`) are how it watches, not
    // part of what it shows.
    let own = super::firehose::is_own_queue;
    let mut queues: Vec<QueueSnapshot> = queues
        .into_iter()
        .filter(|q| !own(&q.name))
        .map(queue)
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
    crate::topology::sort_bindings(&mut bindings);
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

/// Sets which members of each replicated quorum queue are far behind their leader, where
/// RabbitMQ says (3.13 and later).
pub async fn ask_members_behind(management: &Management, v: &mut VhostSnapshot) {
    let replicated: Vec<&str> = (v.queues.iter())
        .filter(|q| q.queue_type == QueueType::Quorum && q.members.len() > 1)
        .map(|q| q.name.as_str())
        .collect();
    let mut behind = management.members_behind(&v.name, &replicated).await;
    for q in &mut v.queues {
        q.behind = behind.remove(&q.name).unwrap_or_default();
    }
}

/// Keeps what an earlier read learnt of members behind, for a read of `new` that did not ask.
pub fn keep_members_behind(old: &VhostSnapshot, new: &mut VhostSnapshot) {
    let behind: HashMap<&str, _> = (old.queues.iter())
        .filter(|q| !q.behind.is_empty())
        .map(|q| (q.name.as_str(), &q.behind))
        .collect();
    for q in &mut new.queues {
        if let Some(before) = behind.get(q.name.as_str()) {
            q.behind = (*before).clone();
        }
    }
}

/// One queue of the API as a snapshot lists it, with where a cluster keeps it.
pub fn queue(q: answers::Queue) -> QueueSnapshot {
    let unacked = q.messages_unacknowledged as usize;
    let sorted = |names: Option<Vec<String>>| {
        let mut names = names.unwrap_or_default();
        names.sort();
        names
    };
    QueueSnapshot {
        name: q.name,
        queue_type: QueueType::from_name(q.kind.as_deref().unwrap_or_default()),
        durable: q.durable,
        exclusive: q.exclusive,
        auto_delete: q.auto_delete,
        arguments: pairs(&q.arguments),
        ready: (q.messages as usize).saturating_sub(unacked),
        unacked,
        consumers: q.consumers as usize,
        // The management API tells a stream's type and messages, not its offsets nor where
        // each consumer reads: that is not drawn rather than guessed.
        stream: None,
        delivery_limit: Default::default(),
        // RabbitMQ 3.10 names a stream's leader only as its `node`.
        leader: q.leader.or_else(|| q.members.as_ref().and(q.node.clone())),
        node: q.node,
        members: sorted(q.members),
        online: sorted(q.online),
        state: q.state,
        // Asked separately, queue by queue: see `ask_members_behind`.
        behind: Default::default(),
    }
}

/// One node of `/api/nodes` as a snapshot lists it.
pub fn node(n: answers::Node) -> NodeSnapshot {
    NodeSnapshot {
        name: n.name,
        running: n.running,
        memory_alarm: n.mem_alarm,
        disk_alarm: n.disk_free_alarm,
        partitions: n.partitions.unwrap_or_default(),
    }
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
            node: c.node.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
