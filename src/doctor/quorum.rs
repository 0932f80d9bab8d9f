//! Quorum queues: a topic whose queues are of mixed types, poison messages dropped by a
//! delivery limit with nowhere to dead-letter them, members offline.

use std::collections::BTreeMap;

use crate::openstack::names::{queue_role, QueueRole};
use crate::topology::MEMBER_BEHIND_BY;

use super::model::{Broker, Queue};
use super::{count, joined, listed, number, Finding, Level};

/// The delivery limit RabbitMQ 4.0 and later give a quorum queue that sets none.
pub const DEFAULT_DELIVERY_LIMIT: i64 = 20;

pub fn check(broker: &Broker) -> Vec<Finding> {
    let mut findings = Vec::new();
    findings.extend(majority(broker));
    findings.extend(behind(broker));
    findings.extend(mixed_topics(broker));
    findings.extend(delivery_limits(broker));
    findings
}

fn majority(broker: &Broker) -> Vec<Finding> {
    let vhost = Some(broker.vhost.as_str());
    let mut lost = Vec::new();
    let mut degraded = Vec::new();
    for q in broker.queues.iter().filter(|q| q.is_quorum()) {
        let (Some(members), Some(online)) = (&q.members, &q.online) else {
            continue;
        };
        let up = members.iter().filter(|m| online.contains(m)).count();
        let shown = format!("'{}' ({up} of {} members online)", q.name, members.len());
        if up < members.len() / 2 + 1 {
            lost.push((q.name.clone(), shown));
        } else if up < members.len() {
            degraded.push((q.name.clone(), shown));
        }
    }
    let mut findings = Vec::new();
    if !lost.is_empty() {
        let (names, shown): (Vec<String>, Vec<String>) = lost.into_iter().unzip();
        findings.push(
            Finding::new(Level::Critical, "quorum-lost", vhost)
                .seen(format!(
                    "{} without a majority of members online: {}",
                    count(names.len(), "quorum queue"),
                    joined(&shown, 5)
                ))
                .why(
                    "a quorum queue with fewer than a majority of its members online has no \
                     leader: publishes to it are not confirmed and nothing is delivered",
                )
                .fix(
                    "bring the members' nodes back (rabbitmq-diagnostics check_running on \
                     each); if a node is lost for good, `rabbitmq-queues delete_member` it \
                     and add another with `rabbitmq-queues add_member`",
                )
                .objects(names),
        );
    }
    if !degraded.is_empty() {
        let (names, shown): (Vec<String>, Vec<String>) = degraded.into_iter().unzip();
        findings.push(
            Finding::new(Level::Warning, "quorum-members-offline", vhost)
                .seen(format!(
                    "{} with members offline: {}",
                    count(names.len(), "quorum queue"),
                    joined(&shown, 5)
                ))
                .why("one more node lost and these queues stop")
                .fix("bring the members' nodes back, or replace them (rabbitmq-queues grow)")
                .objects(names),
        );
    }
    findings
}

/// Members whose log is far behind their leader's, as RabbitMQ 3.13 and later tell it.
fn behind(broker: &Broker) -> Option<Finding> {
    let mut names = Vec::new();
    let mut shown = Vec::new();
    for q in broker.queues.iter().filter(|q| !q.behind.is_empty()) {
        let late: Vec<String> = (q.behind.iter())
            .map(|(node, behind)| format!("'{node}' {behind} entries behind"))
            .collect();
        names.push(q.name.clone());
        shown.push(format!("'{}' ({})", q.name, late.join(", ")));
    }
    if names.is_empty() {
        return None;
    }
    Some(
        Finding::new(Level::Warning, "quorum-members-behind", Some(&broker.vhost))
            .seen(format!(
                "{} with members whose log is more than {MEMBER_BEHIND_BY} entries behind their leader: {}",
                count(names.len(), "quorum queue"),
                joined(&shown, 5)
            ))
            .why(
                "until a member catches up, the queue's majority rests on the others: losing \
                 one more of them stops its publishes and deliveries, as if the member were \
                 offline",
            )
            .fix(
                "let it catch up (`rabbitmq-queues quorum_status` shows its last log index); if \
                 it stays behind, look at its node's disk and network, or replace it \
                 (`rabbitmq-queues delete_member`, then `add_member`)",
            )
            .objects(names),
    )
}

/// A topic's RPC queues (`compute` and `compute.<server>`) of more than one type: its servers
/// run with different oslo.messaging settings, or were migrated halfway.
fn mixed_topics(broker: &Broker) -> Vec<Finding> {
    let mut topics: BTreeMap<&str, Vec<&Queue>> = BTreeMap::new();
    for q in &broker.queues {
        if let QueueRole::Server { topic, .. } = queue_role(&q.name) {
            topics.entry(topic).or_default().push(q);
        }
    }
    for q in &broker.queues {
        if let Some(servers) = topics.get_mut(q.name.as_str()) {
            servers.insert(0, q);
        }
    }
    let mut findings = Vec::new();
    for (topic, queues) in topics {
        let mut kinds: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for q in &queues {
            kinds.entry(&q.kind).or_default().push(q.name.clone());
        }
        if kinds.len() < 2 {
            continue;
        }
        let split: Vec<String> = kinds
            .iter()
            .map(|(kind, names)| format!("{kind}: {}", listed(names, 3)))
            .collect();
        findings.push(
            Finding::new(Level::Warning, "mixed-queue-types", Some(&broker.vhost))
                .seen(format!(
                    "the RPC queues of topic '{topic}' are of {} types ({})",
                    kinds.len(),
                    split.join("; ")
                ))
                .why(
                    "the servers of one topic run with different oslo.messaging settings \
                     (rabbit_quorum_queue on some, off on others), or a migration stopped \
                     halfway: a service that declares the shared queue with the other type \
                     gets 406 PRECONDITION_FAILED (inequivalent arg 'x-queue-type') and \
                     cannot start",
                )
                .fix(
                    "give every service of the topic the same rabbit_quorum_queue setting; \
                     then delete the queues of the wrong type (they are declared again on \
                     restart)",
                )
                .objects(queues.iter().map(|q| q.name.clone()).collect()),
        );
    }
    findings
}

/// Quorum queues that drop a message redelivered past their delivery limit, with no
/// dead-letter exchange to keep it.
fn delivery_limits(broker: &Broker) -> Vec<Finding> {
    let vhost = Some(broker.vhost.as_str());
    let mut explicit = Vec::new();
    let mut default = Vec::new();
    for q in broker.queues.iter().filter(|q| q.is_quorum()) {
        let policy = (q.policy.as_ref())
            .and_then(|name| broker.policies.iter().find(|p| &p.name == name))
            .map(|p| &p.definition);
        let from_policy = |key: &str| policy.and_then(|d| d.get(key));
        let dead_letters = q.argument("x-dead-letter-exchange").is_some()
            || from_policy("dead-letter-exchange").is_some();
        if dead_letters {
            continue;
        }
        let limit = (q.argument("x-delivery-limit"))
            .or_else(|| from_policy("delivery-limit"))
            .and_then(number);
        match limit {
            // 4.x reads a negative limit as none at all.
            Some(n) if n >= 0 => {
                explicit.push((q.name.clone(), format!("'{}' (limit {n})", q.name)))
            }
            Some(_) => {}
            None => default.push(q.name.clone()),
        }
    }
    let mut findings = Vec::new();
    let fix = "set a dead-letter exchange on them (a policy with dead-letter-exchange) so \
               rejected messages are kept to look at, or raise the limit";
    if !explicit.is_empty() {
        findings.push(
            Finding::new(Level::Warning, "poison-messages-dropped", vhost)
                .seen(format!(
                    "{} with a delivery limit and no dead-letter exchange: {}",
                    count(explicit.len(), "quorum queue"),
                    joined(&explicit.iter().map(|e| e.1.clone()).collect::<Vec<_>>(), 5)
                ))
                .why(
                    "a message delivered more often than the limit (a consumer that crashes \
                     on it, or requeues it) is dropped without a trace",
                )
                .fix(fix)
                .objects(explicit.into_iter().map(|e| e.0).collect()),
        );
    }
    if !default.is_empty() {
        // Already so on this broker, or to come with an upgrade.
        let (level, when) = match (&broker.version, broker.runs_4_or_later()) {
            (Some(version), true) => (Level::Warning, format!("on this RabbitMQ ({version})")),
            _ => (Level::Info, "from RabbitMQ 4.0".to_string()),
        };
        findings.push(
            Finding::new(level, "poison-messages-dropped-on-4", vhost)
                .seen(format!(
                    "{} with no delivery limit and no dead-letter exchange: {}",
                    count(default.len(), "quorum queue"),
                    listed(&default, 5)
                ))
                .why(format!(
                    "{when} a quorum queue without a limit has one of \
                     {DEFAULT_DELIVERY_LIMIT}: a message redelivered more often is dropped \
                     without a trace"
                ))
                .fix(fix)
                .objects(default),
        );
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::model::Policy;
    use serde_json::json;

    fn quorum(name: &str) -> Queue {
        Queue {
            name: name.into(),
            kind: "quorum".into(),
            durable: true,
            ..Default::default()
        }
    }

    fn classic(name: &str) -> Queue {
        Queue {
            kind: "classic".into(),
            ..quorum(name)
        }
    }

    fn with(mut q: Queue, arguments: serde_json::Value) -> Queue {
        q.arguments = arguments.as_object().unwrap().clone();
        q
    }

    #[test]
    fn a_topic_of_mixed_types_is_named() {
        let broker = Broker {
            queues: vec![
                quorum("compute"),
                quorum("compute.node1"),
                classic("compute.node2"),
                quorum("scheduler"),
                quorum("scheduler.ctl"),
                classic("orders.eu"),
            ],
            ..Default::default()
        };
        let found = mixed_topics(&broker);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].objects,
            ["compute", "compute.node1", "compute.node2"]
        );
        assert!(
            found[0]
                .seen
                .contains("classic: 'compute.node2'; quorum: 'compute' and 'compute.node1'"),
            "{}",
            found[0].seen
        );
    }

    #[test]
    fn the_default_delivery_limit_is_a_warning_where_the_broker_applies_it() {
        let on = |version: Option<&str>| {
            let broker = Broker {
                version: version.map(str::to_string),
                queues: vec![quorum("unlimited")],
                ..Default::default()
            };
            let found = delivery_limits(&broker);
            assert_eq!(found.len(), 1);
            (found[0].level, found[0].why.clone())
        };
        let (level, why) = on(Some("4.0.5"));
        assert_eq!(level, Level::Warning);
        assert!(
            why.starts_with("on this RabbitMQ (4.0.5) a quorum queue"),
            "{why}"
        );
        for before in [Some("3.13.7"), None, Some("not a version")] {
            let (level, why) = on(before);
            assert_eq!(level, Level::Info, "{before:?}");
            assert!(why.starts_with("from RabbitMQ 4.0"), "{why}");
        }
    }

    #[test]
    fn delivery_limits_without_dead_lettering() {
        let broker = Broker {
            queues: vec![
                with(quorum("limited"), json!({"x-delivery-limit": 5})),
                with(
                    quorum("kept"),
                    json!({"x-delivery-limit": 5, "x-dead-letter-exchange": "dlx"}),
                ),
                Queue {
                    policy: Some("dlx".into()),
                    ..quorum("kept-by-policy")
                },
                Queue {
                    policy: Some("limit".into()),
                    ..quorum("limited-by-policy")
                },
                quorum("unlimited"),
                with(classic("classic"), json!({"x-delivery-limit": 5})),
            ],
            policies: vec![
                Policy {
                    name: "dlx".into(),
                    definition: json!({"dead-letter-exchange": "x"})
                        .as_object()
                        .unwrap()
                        .clone(),
                    ..Default::default()
                },
                Policy {
                    name: "limit".into(),
                    definition: json!({"delivery-limit": 3}).as_object().unwrap().clone(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let found = delivery_limits(&broker);
        let got: Vec<(&str, Level, Vec<String>)> = found
            .into_iter()
            .map(|f| (f.check, f.level, f.objects))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "poison-messages-dropped",
                    Level::Warning,
                    vec!["limited".to_string(), "limited-by-policy".to_string()]
                ),
                (
                    "poison-messages-dropped-on-4",
                    Level::Info,
                    vec!["unlimited".to_string()]
                ),
            ]
        );
    }

    #[test]
    fn a_majority_offline_is_critical() {
        let members = |n: usize| (1..=n).map(|i| format!("rabbit@n{i}")).collect();
        let queue = |name: &str, total: usize, up: usize| Queue {
            members: Some(members(total)),
            online: Some(members(up)),
            ..quorum(name)
        };
        let broker = Broker {
            queues: vec![
                queue("healthy", 3, 3),
                queue("degraded", 3, 2),
                queue("lost", 3, 1),
                queue("lost-even", 4, 2),
                quorum("unknown"),
            ],
            ..Default::default()
        };
        let got: Vec<(&str, Vec<String>)> = majority(&broker)
            .into_iter()
            .map(|f| (f.check, f.objects))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "quorum-lost",
                    vec!["lost".to_string(), "lost-even".to_string()]
                ),
                ("quorum-members-offline", vec!["degraded".to_string()]),
            ]
        );
    }
}
