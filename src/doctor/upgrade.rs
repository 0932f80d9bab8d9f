//! What RabbitMQ 4.x refuses or ignores: queues that are neither durable nor exclusive
//! (refused from 4.3, and oslo.messaging's defaults declare them), mirroring (`ha-*` policy
//! keys and the `x-ha-policy` argument, ignored since 4.0), `x-queue-mode` (refused from 4.3)
//! and global qos (refused from 4.3).

use super::model::Broker;
use super::{count, joined, listed, Finding, Level};

pub fn check(broker: &Broker) -> Vec<Finding> {
    let vhost = Some(broker.vhost.as_str());
    let mut findings = Vec::new();

    let transient: Vec<String> = (broker.queues.iter())
        .filter(|q| !q.durable && !q.exclusive && q.kind == "classic")
        .map(|q| q.name.clone())
        .collect();
    if !transient.is_empty() {
        findings.push(
            Finding::new(Level::Warning, "transient-nonexclusive-queues", vhost)
                .seen(format!(
                    "{} neither durable nor exclusive: {}",
                    count(transient.len(), "queue"),
                    listed(&transient, 5)
                ))
                .why(
                    "RabbitMQ 4.3 denies the deprecated feature transient_nonexcl_queues: \
                     declaring such a queue closes the connection with 541 INTERNAL_ERROR, and \
                     oslo.messaging (whose defaults declare them) retries in a loop",
                )
                .fix(
                    "before upgrading, either set `deprecated_features.permit.\
                     transient_nonexcl_queues = true` in rabbitmq.conf, or turn on \
                     oslo.messaging's `rabbit_quorum_queue` and `rabbit_transient_quorum_queue` \
                     (the queues become durable quorum queues; delete the old ones or the vhost \
                     first, since a queue cannot change its type)",
                )
                .objects(transient),
        );
    }

    let mirroring: Vec<String> = (broker.policies.iter())
        .filter(|p| p.definition.keys().any(|k| k.starts_with("ha-")))
        .map(|p| p.name.clone())
        .collect();
    if !mirroring.is_empty() {
        // Mirroring was for classic queues alone (3.10 does not even apply such a policy to
        // a quorum queue).
        let governed = (broker.queues.iter())
            .filter(|q| q.kind == "classic")
            .filter(|q| q.policy.as_ref().is_some_and(|p| mirroring.contains(p)))
            .count();
        let applied = if broker.queues.iter().any(|q| q.policy.is_some()) {
            format!(", in force on {}", count(governed, "classic queue"))
        } else {
            String::new()
        };
        findings.push(
            Finding::new(Level::Warning, "mirroring-policies", vhost)
                .seen(format!(
                    "{} with ha-mode or other ha-* keys: {}{applied}",
                    count(mirroring.len(), "policy"),
                    listed(&mirroring, 5)
                ))
                .why(
                    "classic queue mirroring was removed in RabbitMQ 4.0: these keys do \
                     nothing there, and the queues they cover have one copy on one node",
                )
                .fix(
                    "for queues that must survive a node, use quorum queues (oslo.messaging: \
                     rabbit_quorum_queue); then remove the ha-* keys from the policy",
                )
                .objects(mirroring),
        );
    }

    findings.extend(declared_with(
        broker,
        "x-ha-policy",
        "x-ha-policy-queues",
        "x-ha-policy (oslo.messaging's rabbit_ha_queues) has done nothing since RabbitMQ 3.0 \
         and mirroring is gone in 4.0: these queues are not replicated",
        "turn off rabbit_ha_queues; for replicated queues turn on rabbit_quorum_queue",
    ));
    findings.extend(declared_with(
        broker,
        "x-queue-mode",
        "x-queue-mode-queues",
        "from RabbitMQ 4.3 declaring a queue with x-queue-mode fails (classic queues keep \
         messages on disk anyway since 3.12), so the client that declares them cannot start",
        "drop x-queue-mode from the client's declaration",
    ));
    let lazy_policies: Vec<String> = (broker.policies.iter())
        .filter(|p| p.definition.contains_key("queue-mode"))
        .map(|p| p.name.clone())
        .collect();
    if !lazy_policies.is_empty() {
        findings.push(
            Finding::new(Level::Info, "queue-mode-policies", vhost)
                .seen(format!(
                    "{} with queue-mode: {}",
                    count(lazy_policies.len(), "policy"),
                    listed(&lazy_policies, 5)
                ))
                .why("queue-mode has been ignored since RabbitMQ 3.12")
                .fix("remove the queue-mode key from the policy")
                .objects(lazy_policies),
        );
    }

    let global: Vec<&super::model::Channel> = (broker.channels.iter())
        .filter(|c| c.global_prefetch > 0)
        .collect();
    if !global.is_empty() {
        let names: Vec<String> = global.iter().map(|c| c.name.clone()).collect();
        let shown: Vec<String> = global
            .iter()
            .map(|c| {
                // `nova-conductor` rather than its whole `<program>:<pid>:<uuid>` name.
                let client = (c.connection_name.as_deref())
                    .map(|n| crate::openstack::names::service(n).unwrap_or(n));
                match client {
                    Some(client) => format!("'{}' ({client})", c.name),
                    None => format!("'{}'", c.name),
                }
            })
            .collect();
        findings.push(
            Finding::new(Level::Warning, "global-qos", vhost)
                .seen(format!(
                    "{} with a global prefetch (basic.qos global=true): {}",
                    count(names.len(), "channel"),
                    joined(&shown, 5)
                ))
                .why(
                    "RabbitMQ 4.3 denies the deprecated feature global_qos, and quorum queues \
                     refuse it already: the client's basic.qos fails",
                )
                .fix(
                    "set the prefetch per consumer (global=false); in oslo.messaging, \
                     rabbit_qos_prefetch_count is per consumer already",
                )
                .objects(names),
        );
    }
    findings
}

/// A warning naming the queues declared with `argument`, if any.
fn declared_with(
    broker: &Broker,
    argument: &str,
    check: &'static str,
    why: &str,
    fix: &str,
) -> Option<Finding> {
    let queues: Vec<String> = (broker.queues.iter())
        .filter(|q| q.argument(argument).is_some())
        .map(|q| q.name.clone())
        .collect();
    (!queues.is_empty()).then(|| {
        Finding::new(Level::Warning, check, Some(&broker.vhost))
            .seen(format!(
                "{} declared with {argument}: {}",
                count(queues.len(), "queue"),
                listed(&queues, 5)
            ))
            .why(why)
            .fix(fix)
            .objects(queues)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::model::{Channel, Policy, Queue};
    use serde_json::json;

    fn queue(name: &str, durable: bool, exclusive: bool) -> Queue {
        Queue {
            name: name.into(),
            kind: "classic".into(),
            durable,
            exclusive,
            ..Default::default()
        }
    }

    fn checks(broker: &Broker) -> Vec<&'static str> {
        check(broker).iter().map(|f| f.check).collect()
    }

    #[test]
    fn only_transient_shared_classic_queues_are_refused() {
        let broker = Broker {
            vhost: "/".into(),
            queues: vec![
                queue("reply_1", false, false),
                queue("compute", false, false),
                queue("durable", true, false),
                queue("amq.gen-x", false, true),
            ],
            ..Default::default()
        };
        let found = check(&broker);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].check, "transient-nonexclusive-queues");
        assert_eq!(found[0].objects, ["reply_1", "compute"]);
        assert!(found[0].fix.contains("rabbit_transient_quorum_queue"));
        assert!(found[0]
            .fix
            .contains("deprecated_features.permit.transient_nonexcl_queues"));
        let durable = Broker {
            queues: vec![queue("durable", true, false)],
            ..Default::default()
        };
        assert!(check(&durable).is_empty());
    }

    #[test]
    fn mirroring_lazy_mode_and_global_qos_are_named() {
        let mut ha = queue("compute", true, false);
        ha.arguments = json!({"x-ha-policy": "all", "x-queue-mode": "lazy"})
            .as_object()
            .unwrap()
            .clone();
        ha.policy = Some("ha-all".into());
        let broker = Broker {
            queues: vec![ha, queue("other", true, false)],
            policies: vec![
                Policy {
                    name: "ha-all".into(),
                    definition: json!({"ha-mode": "all"}).as_object().unwrap().clone(),
                    ..Default::default()
                },
                Policy {
                    name: "ttl".into(),
                    definition: json!({"message-ttl": 5}).as_object().unwrap().clone(),
                    ..Default::default()
                },
            ],
            channels: vec![
                Channel {
                    name: "c (1)".into(),
                    global_prefetch: 10,
                    connection_name: Some("nova-compute:1:u".into()),
                },
                Channel {
                    name: "c (2)".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let found = check(&broker);
        assert_eq!(
            checks(&broker),
            [
                "mirroring-policies",
                "x-ha-policy-queues",
                "x-queue-mode-queues",
                "global-qos"
            ]
        );
        assert_eq!(found[0].objects, ["ha-all"]);
        assert!(
            found[0].seen.contains("in force on 1 classic queue"),
            "{}",
            found[0].seen
        );
        assert_eq!(found[3].objects, ["c (1)"]);
        assert!(found[3].seen.ends_with("'c (1)' (nova-compute)"));
    }
}
