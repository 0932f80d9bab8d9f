//! A definitions file (`rabbitmqctl export_definitions`, /api/definitions) as one [`Broker`]
//! per vhost, so the queue and policy checks run before anything is deployed. A file says
//! nothing of messages, consumers, channels or nodes: those checks stay silent.

use std::collections::BTreeSet;

use crate::definitions::Definitions;

use super::model::{policy_in_force, Binding, Broker, Exchange, Policy, Queue};

/// What an export of one vhost (`/api/definitions/VHOST`) is taken to be about when nothing
/// in it names the vhost.
pub const UNNAMED_VHOST: &str = "(the file's vhost)";

/// Gives the objects of a one-vhost export, which carry no `vhost` (3.10 names it on policies
/// only), the one vhost the file does name, or [`UNNAMED_VHOST`]; then they read as a whole
/// broker's definitions do.
pub fn name_the_vhost(definitions: &mut serde_json::Value) {
    const KINDS: [&str; 4] = ["queues", "exchanges", "bindings", "policies"];
    let named: BTreeSet<String> = KINDS
        .iter()
        .filter_map(|kind| definitions.get(*kind)?.as_array())
        .flatten()
        .filter_map(|item| item.get("vhost")?.as_str().map(str::to_string))
        .collect();
    let vhost = match named.len() {
        1 => named.into_iter().next().unwrap_or_default(),
        _ => UNNAMED_VHOST.to_string(),
    };
    for kind in KINDS {
        let Some(items) = definitions.get_mut(kind).and_then(|v| v.as_array_mut()) else {
            continue;
        };
        for item in items.iter_mut().filter_map(|i| i.as_object_mut()) {
            item.entry("vhost").or_insert_with(|| vhost.as_str().into());
        }
    }
}

/// Each vhost the file names (in `vhosts` or on any of its objects), in name order.
pub fn brokers(definitions: &Definitions) -> Vec<Broker> {
    let d = definitions;
    let vhosts: BTreeSet<&str> = (d.vhosts.iter().map(|v| v.name.as_str()))
        .chain(d.queues.iter().map(|q| q.vhost.as_str()))
        .chain(d.exchanges.iter().map(|x| x.vhost.as_str()))
        .chain(d.policies.iter().map(|p| p.vhost.as_str()))
        .collect();
    vhosts.into_iter().map(|v| broker(d, v)).collect()
}

fn broker(d: &Definitions, vhost: &str) -> Broker {
    let policies: Vec<Policy> = (d.policies.iter())
        .filter(|p| p.vhost == vhost)
        .map(|p| Policy {
            name: p.name.clone(),
            pattern: p.pattern.clone(),
            apply_to: p.apply_to.clone(),
            definition: p.definition.clone(),
            priority: p.priority,
        })
        .collect();
    let queues = (d.queues.iter())
        .filter(|q| q.vhost == vhost)
        .map(|q| {
            let kind = (q.arguments.get("x-queue-type"))
                .and_then(|t| t.as_str())
                .unwrap_or("classic")
                .to_string();
            Queue {
                // A file cannot be asked: a policy that cannot be told is taken as none.
                policy: policy_in_force(&policies, &q.name, &kind).unwrap_or_default(),
                name: q.name.clone(),
                kind,
                durable: q.durable,
                // Exclusive queues belong to a connection and are never exported.
                exclusive: false,
                auto_delete: q.auto_delete,
                arguments: q.arguments.clone(),
                ..Default::default()
            }
        })
        .collect();
    Broker {
        vhost: vhost.to_string(),
        queues,
        policies,
        exchanges: (d.exchanges.iter())
            .filter(|x| x.vhost == vhost)
            .map(|x| Exchange {
                name: x.name.clone(),
                kind: x.kind.clone(),
                arguments: x.arguments.clone(),
                ..Default::default()
            })
            .collect(),
        bindings: (d.bindings.iter())
            .filter(|b| b.vhost == vhost)
            .map(|b| Binding {
                source: b.source.clone(),
                destination: b.destination.clone(),
                to_exchange: b.destination_type == "exchange",
                routing_key: b.routing_key.clone(),
            })
            .collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_of_one_vhost_is_read_as_one() {
        let vhosts = |mut value: serde_json::Value| -> Vec<String> {
            name_the_vhost(&mut value);
            let definitions: Definitions = serde_json::from_value(value).unwrap();
            brokers(&definitions).into_iter().map(|b| b.vhost).collect()
        };
        let queue = serde_json::json!({"name": "compute", "durable": false, "arguments": {}});
        let policy = serde_json::json!({"name": "p", "vhost": "nova", "pattern": ".*"});
        assert_eq!(
            vhosts(serde_json::json!({"queues": [queue], "policies": [policy]})),
            ["nova"]
        );
        assert_eq!(
            vhosts(serde_json::json!({"queues": [queue]})),
            [UNNAMED_VHOST]
        );
    }

    #[test]
    fn a_file_becomes_one_broker_a_vhost() {
        let definitions: Definitions = serde_json::from_str(
            r#"{
              "vhosts": [{"name": "/"}, {"name": "nova"}],
              "policies": [
                {"vhost": "nova", "name": "ha", "pattern": "^compute", "apply-to": "queues",
                 "definition": {"ha-mode": "all"}, "priority": 0},
                {"vhost": "nova", "name": "dlx", "pattern": "^compute\\.", "apply-to": "all",
                 "definition": {"dead-letter-exchange": "dlx"}, "priority": 5},
                {"vhost": "nova", "name": "exchanges", "pattern": ".*",
                 "apply-to": "exchanges", "definition": {}, "priority": 9}
              ],
              "queues": [
                {"name": "compute", "vhost": "nova", "durable": false, "auto_delete": false,
                 "arguments": {}},
                {"name": "compute.n1", "vhost": "nova", "durable": true, "auto_delete": false,
                 "arguments": {"x-queue-type": "quorum"}}
              ],
              "exchanges": [{"name": "nova", "vhost": "nova", "type": "topic"}],
              "bindings": [{"source": "nova", "vhost": "nova", "destination": "compute",
                            "destination_type": "queue", "routing_key": "compute"}]
            }"#,
        )
        .unwrap();
        let brokers = brokers(&definitions);
        let names: Vec<&str> = brokers.iter().map(|b| b.vhost.as_str()).collect();
        assert_eq!(names, ["/", "nova"]);
        let nova = &brokers[1];
        let queues: Vec<(&str, &str, Option<&str>)> = (nova.queues.iter())
            .map(|q| (q.name.as_str(), q.kind.as_str(), q.policy.as_deref()))
            .collect();
        assert_eq!(
            queues,
            [
                ("compute", "classic", Some("ha")),
                ("compute.n1", "quorum", Some("dlx"))
            ]
        );
        assert_eq!(nova.policies.len(), 3);
        assert_eq!(nova.bindings[0].routing_key, "compute");
        assert!(nova.queues.iter().all(|q| q.consumers.is_none()));
    }
}
