//! "Why did it go there?": every binding of a message's exchange, matched or not, and why,
//! in words a student can follow; and for a message no queue took, why not. Pure functions
//! over the event data.

use crate::broker::exchange::{
    explain_match, headers_match, mandatory_words, text_table, Miss, Summary, Unroutable,
};
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

/// Why no queue took a message ([`Unroutable`]) in `lang`: the summary, the nearest misses,
/// and whether it was published mandatory (`None`: the source cannot tell).
pub fn unroutable(u: &Unroutable, mandatory: Option<bool>, lang: Lang) -> Vec<String> {
    if lang == Lang::En {
        let mut lines = u.lines();
        lines.push(mandatory_words(mandatory).to_string());
        return lines;
    }
    let (x, key, n) = (&u.exchange, &u.routing_key, u.bindings);
    let mut lines = vec![match u.summary {
        Summary::NoQueueNamed => format!(
            "默认交换器把消息投递到与路由键同名的队列，而没有名为 '{key}' 的队列（从未声明、已删除或已过期）"
        ),
        Summary::NoBindings => format!("'{x}' 没有任何绑定：发给它的消息到不了任何队列"),
        Summary::NoPatternMatches => format!("'{x}' 的 {n} 个绑定模式都不匹配 '{key}'"),
        Summary::NoKey => format!("'{x}' 的 {n} 个绑定都没有路由键 '{key}'"),
        Summary::KeyLeadsNowhere => {
            format!("'{x}' 有路由键为 '{key}' 的绑定，但它通向的交换器没有把消息路由到任何地方")
        }
        Summary::NoHeadersMatch => format!("'{x}' 的 {n} 个绑定都不匹配消息头"),
        Summary::FanoutToDeadEnds => {
            format!("'{x}'（扇出）转发每条消息，但只转给了不再路由的交换器")
        }
    }];
    for m in &u.nearest {
        let why = match &m.miss {
            Miss::NamedAlike => "名字相近的队列".to_string(),
            Miss::OtherKey => format!("路由键是 '{}'", m.binding),
            Miss::Word { index, got, wanted } => {
                format!("第 {index} 个词是 '{got}'，模式要 '{wanted}'")
            }
            Miss::WordCount { key, pattern } => {
                format!("路由键有 {key} 个词，模式有 {pattern} 个（* 是一个词，# 才能匹配任意个）")
            }
            Miss::DoesNotFit => format!("'{key}' 不符合模式 '{}'", m.binding),
            Miss::Headers { x_match, failed } => {
                let failed: Vec<String> = (failed.iter())
                    .map(|f| match &f.found {
                        Some(found) => format!("{} 是 {found}，不是 {}", f.key, f.wanted),
                        None => format!("缺少消息头 {}（要 {}）", f.key, f.wanted),
                    })
                    .collect();
                format!("x-match={x_match}：{}", failed.join("；"))
            }
        };
        lines.push(format!("  '{}' -> {}：{why}", m.binding, m.destination));
    }
    lines.push(
        match mandatory {
            Some(true) => "以 mandatory 发布：消息退回给了发布者（basic.return 312 NO_ROUTE）",
            Some(false) => "没有以 mandatory 发布：被悄悄丢弃，发布者不知道",
            None => "不知道是否以 mandatory 发布（RabbitMQ 的追踪不带这个标志）",
        }
        .to_string(),
    );
    lines
}
