//! "Why did it go there?": every binding of a message's exchange, matched or not, and why,
//! in words a student can follow. Pure functions over the event data.

use crate::broker::exchange::{explain_match, headers_match, text_table};
use crate::broker::VhostSnapshot;
use crate::lesson::Lang;
use crate::ui::model::LogEntry;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub destination: String,
    pub binding: String,
    pub matched: bool,
    pub reason: String,
}

/// Explains each binding of the message's exchange. The default exchange has one implicit
/// binding per queue, by the queue's name. The reasons are in `lang`.
pub fn explain(entry: &LogEntry, topology: &VhostSnapshot, lang: Lang) -> Vec<Verdict> {
    let zh = lang == Lang::Zh;
    if entry.exchange.is_empty() {
        let reached = entry.queues.first().cloned();
        return vec![Verdict {
            destination: reached
                .clone()
                .unwrap_or_else(|| entry.routing_key.clone())
                .to_string(),
            binding: if zh {
                "（每个队列，按队列名）".into()
            } else {
                "(every queue, by its name)".into()
            },
            matched: reached.is_some(),
            reason: match reached {
                Some(q) if zh => format!("默认交换器把消息投递到名为 '{q}' 的队列"),
                Some(q) => format!("the default exchange delivers to the queue named '{q}'"),
                None if zh => format!("没有名为 '{}' 的队列", entry.routing_key),
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
                    if zh {
                        "扇出交换器不看路由键：每个绑定的队列都得到一份".to_string()
                    } else {
                        "fanout ignores the routing key: every bound queue gets a copy".to_string()
                    },
                ),
                "topic" => match explain_match(&b.routing_key, key) {
                    Some(steps) => {
                        let words: Vec<String> = steps
                            .iter()
                            .map(|(p, ws)| {
                                format!(
                                    "{p}={}",
                                    if ws.is_empty() && zh {
                                        "（空）".into()
                                    } else if ws.is_empty() {
                                        "(nothing)".into()
                                    } else {
                                        ws.join(".")
                                    }
                                )
                            })
                            .collect();
                        let words = words.join("  ");
                        if zh {
                            (true, format!("逐词匹配：{words}"))
                        } else {
                            (true, format!("word by word: {words}"))
                        }
                    }
                    None if zh => (false, format!("'{}' 不符合模式 '{}'", key, b.routing_key)),
                    None => (
                        false,
                        format!("'{}' does not fit the pattern '{}'", key, b.routing_key),
                    ),
                },
                "headers" => {
                    let verdict =
                        headers_match(&text_table(&b.arguments), &text_table(&entry.headers));
                    let checks: Vec<String> = verdict
                        .checks
                        .iter()
                        .map(|c| {
                            let missing = if zh { "缺失" } else { "missing" };
                            let found = c.found.clone().unwrap_or_else(|| missing.into());
                            let mark = if c.ok { "✓" } else { "✗" };
                            if zh {
                                format!("{}：要 {} 得到 {} {mark}", c.key, c.wanted, found)
                            } else {
                                format!("{}: want {} got {} {mark}", c.key, c.wanted, found)
                            }
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
                    let compare = if zh { "精确比较" } else { "exact compare" };
                    (
                        same,
                        format!("{compare}: '{}' {op} '{}'", key, b.routing_key),
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
                destination: if b.destination_is_exchange && zh {
                    format!("交换器 {}", b.destination)
                } else if b.destination_is_exchange {
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
