//! "Why did it go there?": every binding of a message's exchange, matched or not, and why,
//! in words a student can follow. Pure functions over the event data.

use amq_protocol::types::{AMQPValue, FieldTable, LongString};

use crate::broker::exchange::{explain_match, headers_match};
use crate::broker::VhostSnapshot;
use crate::ui::model::LogEntry;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub destination: String,
    pub binding: String,
    pub matched: bool,
    pub reason: String,
}

fn table(pairs: &[(String, String)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        let value = if v == "(void)" {
            AMQPValue::Void
        } else {
            AMQPValue::LongString(LongString::from(v.as_str()))
        };
        t.insert(k.as_str().into(), value);
    }
    t
}

/// Explains each binding of the message's exchange. The default exchange has one implicit
/// binding per queue, by the queue's name.
pub fn explain(entry: &LogEntry, topology: &VhostSnapshot) -> Vec<Verdict> {
    if entry.exchange.is_empty() {
        let reached = entry.queues.first().cloned();
        return vec![Verdict {
            destination: reached
                .clone()
                .unwrap_or_else(|| entry.routing_key.clone())
                .to_string(),
            binding: "(every queue, by its name)".into(),
            matched: reached.is_some(),
            reason: match reached {
                Some(q) => format!("the default exchange delivers to the queue named '{q}'"),
                None => format!("no queue is named '{}'", entry.routing_key),
            },
        }];
    }
    let kind = topology
        .exchanges
        .iter()
        .find(|x| *x.name == *entry.exchange)
        .map(|x| x.kind.as_str())
        .unwrap_or("direct");
    let key = &entry.routing_key;
    topology
        .bindings
        .iter()
        .filter(|b| b.source == entry.exchange)
        .map(|b| {
            let (matched, reason) = match kind {
                "fanout" => (
                    true,
                    "fanout ignores the routing key: every bound queue gets a copy".to_string(),
                ),
                "topic" => match explain_match(&b.routing_key, key) {
                    Some(steps) => {
                        let words: Vec<String> = steps
                            .iter()
                            .map(|(p, ws)| {
                                format!(
                                    "{p}={}",
                                    if ws.is_empty() {
                                        "(nothing)".into()
                                    } else {
                                        ws.join(".")
                                    }
                                )
                            })
                            .collect();
                        (true, format!("word by word: {}", words.join("  ")))
                    }
                    None => (
                        false,
                        format!("'{}' does not fit the pattern '{}'", key, b.routing_key),
                    ),
                },
                "headers" => {
                    let verdict = headers_match(&table(&b.arguments), &table(&entry.headers));
                    let checks: Vec<String> = verdict
                        .checks
                        .iter()
                        .map(|c| {
                            let found = c.found.clone().unwrap_or_else(|| "missing".into());
                            format!(
                                "{}: want {} got {} {}",
                                c.key,
                                c.wanted,
                                found,
                                if c.ok { "✓" } else { "✗" }
                            )
                        })
                        .collect();
                    (
                        verdict.matched,
                        format!("x-match={}: {}", verdict.x_match, checks.join("; ")),
                    )
                }
                _ => {
                    let same = b.routing_key == *key;
                    let op = if same { "==" } else { "!=" };
                    (
                        same,
                        format!("exact compare: '{}' {op} '{}'", key, b.routing_key),
                    )
                }
            };
            let binding = if kind == "headers" {
                b.arguments
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                b.routing_key.to_string()
            };
            Verdict {
                destination: if b.destination_is_exchange {
                    format!("exchange {}", b.destination)
                } else {
                    b.destination.to_string()
                },
                binding,
                matched,
                reason,
            }
        })
        .collect()
}
