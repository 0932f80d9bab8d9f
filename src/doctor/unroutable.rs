//! Messages no queue took. What RabbitMQ counts (3.10, asked): the vhost's `return_unroutable`
//! (published `mandatory`, sent back), a `drop_unroutable` that stays 0, and per exchange only
//! `publish_in` and `publish_out` (one for each queue a message reached, through other
//! exchanges and alternate exchanges included). A routed message adds at least 1 to
//! `publish_out` and an unroutable one nothing, so an exchange with fewer out than in lost at
//! least the difference, once both counters are of the same moment ([`Exchange::settled`]);
//! the keys of its bindings say what it would have matched.

use super::model::Broker;
#[cfg(doc)]
use super::model::Exchange;
use super::{count, listed, Finding, Level};

pub fn check(broker: &Broker) -> Vec<Finding> {
    let vhost = Some(broker.vhost.as_str());
    let mut findings = Vec::new();

    let mut dead_ends = Vec::new();
    let mut explained = Vec::new();
    for x in &broker.exchanges {
        // The default exchange's counters are not per message (3.10 counts a publish to a
        // queue that does not exist as passed on).
        let published = x.published_in.unwrap_or(0);
        let routed = x.routed_out.unwrap_or(0);
        if x.name.is_empty() || !x.settled || published <= routed {
            continue;
        }
        let keys: Vec<String> = (broker.bindings.iter())
            .filter(|b| b.source == x.name)
            .map(|b| b.routing_key.clone())
            .collect();
        let bound = if keys.is_empty() {
            "it has no bindings".to_string()
        } else {
            format!("its bindings' keys are {}", listed(&keys, 6))
        };
        let lost = if routed == 0 {
            "passed none on".to_string()
        } else {
            format!(
                "passed {routed} on: at least {} reached no queue",
                published - routed
            )
        };
        explained.push(format!(
            "'{}' ({}) took {} and {lost}; {bound}",
            x.name,
            x.kind,
            count(published as usize, "message")
        ));
        dead_ends.push(x.name.clone());
    }

    let returned = broker.returned_unroutable.unwrap_or(0);
    let dropped = broker.dropped_unroutable.unwrap_or(0);
    if returned + dropped > 0 || !dead_ends.is_empty() {
        let mut seen = Vec::new();
        if returned > 0 {
            seen.push(format!(
                "{} published mandatory came back unroutable",
                count(returned as usize, "message")
            ));
        }
        if dropped > 0 {
            seen.push(format!(
                "{} dropped as unroutable",
                count(dropped as usize, "message")
            ));
        }
        seen.extend(explained);
        findings.push(
            Finding::new(Level::Warning, "unroutable-messages", vhost)
                .seen(seen.join("; "))
                .why(
                    "a message no binding matches reaches no queue: oslo.messaging's casts \
                     are not mandatory and vanish without a word; its replies are, and the \
                     server retries them for a minute before it gives up (the caller times \
                     out)",
                )
                .fix(
                    "check that the consumer of each routing key is running and has declared \
                     its queue (a server's `<topic>.<host>` queue); `rabbitscope tap --why URL` \
                     shows each unroutable message with the bindings nearest its key",
                )
                .objects(dead_ends),
        );
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::model::{Binding, Exchange};

    fn exchange(name: &str, published_in: u64, routed_out: Option<u64>) -> Exchange {
        Exchange {
            name: name.into(),
            kind: "topic".into(),
            published_in: Some(published_in),
            routed_out,
            settled: true,
            ..Default::default()
        }
    }

    #[test]
    fn an_exchange_that_passes_nothing_on_is_named_with_its_bindings() {
        let broker = Broker {
            exchanges: vec![
                exchange("nova", 7, None),
                exchange("routed", 3, Some(3)),
                exchange("some", 5, Some(4)),
                exchange("", 4, None),
                exchange("empty", 2, Some(0)),
                exchange("quiet", 0, None),
            ],
            bindings: vec![
                Binding {
                    source: "nova".into(),
                    destination: "compute.node1".into(),
                    routing_key: "compute.node1".into(),
                    to_exchange: false,
                },
                Binding {
                    source: "nova".into(),
                    destination: "compute.node2".into(),
                    routing_key: "compute.node2".into(),
                    to_exchange: false,
                },
            ],
            returned_unroutable: Some(2),
            dropped_unroutable: Some(0),
            ..Default::default()
        };
        let found = check(&broker);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].objects, ["nova", "some", "empty"]);
        assert_eq!(
            found[0].seen,
            "2 messages published mandatory came back unroutable; 'nova' (topic) took 7 \
             messages and passed none on; its bindings' keys are 'compute.node1' and \
             'compute.node2'; 'some' (topic) took 5 messages and passed 4 on: at least 1 \
             reached no queue; it has no bindings; 'empty' (topic) took 2 messages and passed \
             none on; it has no bindings"
        );
    }

    #[test]
    fn nothing_unroutable_says_nothing() {
        let broker = Broker {
            // One message to two queues, one to none: not told apart from two routed.
            exchanges: vec![
                exchange("routed", 2, Some(2)),
                exchange("fanned", 3, Some(6)),
            ],
            returned_unroutable: Some(0),
            dropped_unroutable: Some(0),
            ..Default::default()
        };
        assert!(check(&broker).is_empty());
    }
}
