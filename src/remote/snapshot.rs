//! The management API's exchanges, queues, bindings, connections and consumers as a
//! [`Snapshot`], shaped exactly like the embedded broker's: sorted by name, the default
//! exchange listed but its implicit per-queue bindings not, arguments as `key=value` text.

use std::collections::HashSet;

use serde_json::Value;

use super::answers;
use super::management::{Management, ManagementError};
use super::{connection_id, is_own_connection};
use crate::events::{BindingInfo, ClientInfo};
use crate::topology::{
    ConnectionSnapshot, ConsumerSnapshot, ExchangeSnapshot, QueueSnapshot, QueueType, Snapshot,
    VhostSnapshot,
};

/// Successive polls become events through the topology's diff (`crate::remote::diff`).
pub use crate::topology::diff;

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
                queue_type: QueueType::from_name(q.kind.as_deref().unwrap_or_default()),
                durable: q.durable,
                exclusive: q.exclusive,
                auto_delete: q.auto_delete,
                arguments: pairs(&q.arguments),
                ready: (q.messages as usize).saturating_sub(unacked),
                unacked,
                consumers: q.consumers as usize,
                // The management API tells a stream's type and messages, not its offsets nor
                // where each consumer reads: that is not drawn rather than guessed.
                stream: None,
                delivery_limit: Default::default(),
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
