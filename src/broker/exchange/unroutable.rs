//! Why a message reached no queue: the exchange's bindings beside its routing key, and the
//! nearest misses ("no binding has the key 'compute.node3'; nearest: 'compute.node1',
//! 'compute.node2'"). Pure: the bindings come from a snapshot or the broker's state. The
//! reasons are data, said here in English ([`Unroutable::lines`]) and by the view in its
//! languages.

use crate::events::BindingInfo;
use crate::topology::VhostSnapshot;

use super::headers::{headers_match, text_table};
use super::ExchangeKind;

/// How many near misses are named.
pub const NEAREST: usize = 3;

/// What the exchange has against what the message carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Summary {
    /// The default exchange: no queue is named by the key.
    NoQueueNamed,
    NoBindings,
    /// Topic: no pattern matches the key.
    NoPatternMatches,
    /// Direct: no binding has the key.
    NoKey,
    /// A binding has the key, but leads to an exchange that routes nowhere.
    KeyLeadsNowhere,
    NoHeadersMatch,
    /// Fanout: its bindings lead only to exchanges that route nowhere.
    FanoutToDeadEnds,
}

/// What kept one binding from matching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Miss {
    /// The default exchange: a queue whose name is close to the key.
    NamedAlike,
    /// Direct: the binding's key is another.
    OtherKey,
    /// Topic: word `index` (from 1) of the key is not the pattern's.
    Word {
        index: usize,
        got: String,
        wanted: String,
    },
    /// Topic: the key and the pattern have different numbers of words.
    WordCount { key: usize, pattern: usize },
    /// Topic, with `#`: the key does not fit the pattern.
    DoesNotFit,
    /// Headers: the arguments that failed.
    Headers {
        x_match: String,
        failed: Vec<HeaderMiss>,
    },
}

/// A binding argument the message's headers did not satisfy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderMiss {
    pub key: String,
    pub wanted: String,
    /// The message's value, or none when it has no such header.
    pub found: Option<String>,
}

/// A binding that came close, and what kept it from matching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NearMiss {
    /// The binding's key (or, on a headers exchange, its arguments).
    pub binding: String,
    pub destination: String,
    pub miss: Miss,
}

/// Why a message was unroutable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unroutable {
    pub exchange: String,
    pub routing_key: String,
    /// How many bindings the exchange has.
    pub bindings: usize,
    pub summary: Summary,
    /// The closest bindings first, at most `NEAREST`.
    pub nearest: Vec<NearMiss>,
}

impl Unroutable {
    /// The summary in a sentence.
    pub fn summary_text(&self) -> String {
        let (x, key, n) = (&self.exchange, &self.routing_key, count(self.bindings));
        match self.summary {
            Summary::NoQueueNamed => format!(
                "the default exchange delivers to the queue named by the key, and no queue is \
                 named '{key}' (never declared, deleted, or expired)"
            ),
            Summary::NoBindings => {
                format!("'{x}' has no bindings: nothing published to it reaches a queue")
            }
            Summary::NoPatternMatches => {
                format!("no binding pattern of '{x}' ({n}) matches '{key}'")
            }
            Summary::NoKey => format!("no binding of '{x}' ({n}) has the key '{key}'"),
            Summary::KeyLeadsNowhere => format!(
                "'{x}' has a binding with the key '{key}', but it leads to an exchange that \
                 routes the message nowhere"
            ),
            Summary::NoHeadersMatch => {
                format!("no binding of '{x}' ({n}) matches the message's headers")
            }
            Summary::FanoutToDeadEnds => format!(
                "'{x}' (fanout) passes every message on, but only to exchanges that route it \
                 nowhere"
            ),
        }
    }

    /// The summary, then each near miss on a line of its own.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![self.summary_text()];
        lines.extend(self.nearest.iter().map(|m| {
            format!(
                "  '{}' -> {}: {}",
                m.binding,
                m.destination,
                m.why(&self.routing_key)
            )
        }));
        lines
    }
}

impl NearMiss {
    /// What kept it from matching `routing_key`, in a few words.
    pub fn why(&self, routing_key: &str) -> String {
        match &self.miss {
            Miss::NamedAlike => "a queue named alike".to_string(),
            Miss::OtherKey => format!("the key is '{}'", self.binding),
            Miss::Word { index, got, wanted } => {
                format!("word {index} is '{got}', the pattern wants '{wanted}'")
            }
            Miss::WordCount { key, pattern } => format!(
                "the key has {key} words, the pattern {pattern} (each * is one word; # would \
                 take any number)"
            ),
            Miss::DoesNotFit => {
                format!(
                    "'{routing_key}' does not fit the pattern '{}'",
                    self.binding
                )
            }
            Miss::Headers { x_match, failed } => {
                let failed: Vec<String> = (failed.iter())
                    .map(|f| match &f.found {
                        Some(found) => format!("{} is {found}, not {}", f.key, f.wanted),
                        None => format!("no header {} (wanted {})", f.key, f.wanted),
                    })
                    .collect();
                format!("x-match={x_match}: {}", failed.join("; "))
            }
        }
    }
}

/// What the publisher asked for, in words: a returned message was published `mandatory`, a
/// dropped one was not; `None` when the source cannot tell (RabbitMQ's firehose does not
/// carry the flag).
pub fn mandatory_words(mandatory: Option<bool>) -> &'static str {
    match mandatory {
        Some(true) => "published mandatory: the publisher got it back (basic.return 312 NO_ROUTE)",
        Some(false) => "not published mandatory: dropped without a word to the publisher",
        None => "whether it was published mandatory is not known (RabbitMQ's trace does not say)",
    }
}

/// [`explain_unroutable`] with the exchange's type and bindings (or, for the default
/// exchange, the queues) from a picture of the vhost.
pub fn explain_in(
    vhost: &VhostSnapshot,
    exchange: &str,
    routing_key: &str,
    headers: &[(String, String)],
) -> Unroutable {
    if exchange.is_empty() {
        let implicit: Vec<BindingInfo> = (vhost.queues.iter())
            .map(|q| BindingInfo::to_queue("", &q.name, &q.name))
            .collect();
        let refs: Vec<&BindingInfo> = implicit.iter().collect();
        return explain_unroutable(exchange, "direct", &refs, routing_key, headers);
    }
    let kind = (vhost.exchanges.iter())
        .find(|x| *x.name == *exchange)
        .map_or("direct", |x| x.kind.as_str());
    let bindings: Vec<&BindingInfo> = (vhost.bindings.iter())
        .filter(|b| *b.source == *exchange)
        .collect();
    explain_unroutable(exchange, kind, &bindings, routing_key, headers)
}

/// Why a message published to `exchange` (of `kind`: `direct`, `topic`, ...) with
/// `routing_key` and `headers` matched none of `bindings` (the exchange's). For the default
/// exchange, `bindings` are the vhost's queues, each bound by its name.
pub fn explain_unroutable(
    exchange: &str,
    kind: &str,
    bindings: &[&BindingInfo],
    routing_key: &str,
    headers: &[(String, String)],
) -> Unroutable {
    let (summary, nearest) = if exchange.is_empty() {
        // Only names close to the key: any other queue says nothing of this one.
        let mut nearest = by_likeness(bindings, routing_key, |_| 0);
        nearest.retain(|b| alike(&b.routing_key, routing_key));
        let near: Vec<NearMiss> = (nearest.into_iter())
            .map(|b| near(b, Miss::NamedAlike))
            .collect();
        (Summary::NoQueueNamed, near)
    } else if bindings.is_empty() {
        (Summary::NoBindings, Vec::new())
    } else {
        match ExchangeKind::parse(kind) {
            Some(ExchangeKind::Topic) => {
                let nearest = by_likeness(bindings, routing_key, |b| {
                    words_matched(&b.routing_key, routing_key)
                });
                let near = (nearest.into_iter())
                    .map(|b| near(b, topic_miss(&b.routing_key, routing_key)))
                    .collect();
                (Summary::NoPatternMatches, near)
            }
            Some(ExchangeKind::Headers) => {
                (Summary::NoHeadersMatch, headers_misses(bindings, headers))
            }
            // A fanout exchange with a binding routes every message: its miss is a binding to
            // an exchange that routed nowhere further.
            Some(ExchangeKind::Fanout) => (Summary::FanoutToDeadEnds, Vec::new()),
            // Direct, and types this broker does not know (compared as direct).
            _ => {
                let nearest = by_likeness(bindings, routing_key, |_| 0);
                let same_key = bindings.iter().any(|b| *b.routing_key == *routing_key);
                let summary = if same_key {
                    Summary::KeyLeadsNowhere
                } else {
                    Summary::NoKey
                };
                let near = (nearest.into_iter())
                    .map(|b| near(b, Miss::OtherKey))
                    .collect();
                (summary, near)
            }
        }
    };
    Unroutable {
        exchange: exchange.to_string(),
        routing_key: routing_key.to_string(),
        bindings: bindings.len(),
        summary,
        nearest: nearest.into_iter().take(NEAREST).collect(),
    }
}

/// The headers bindings that satisfied most of their arguments, with those they did not.
fn headers_misses(bindings: &[&BindingInfo], headers: &[(String, String)]) -> Vec<NearMiss> {
    let message = text_table(headers);
    let mut scored: Vec<(usize, NearMiss)> = bindings
        .iter()
        .map(|b| {
            let verdict = headers_match(&text_table(&b.arguments), &message);
            let failed = (verdict.checks.iter())
                .filter(|c| !c.ok)
                .map(|c| HeaderMiss {
                    key: c.key.clone(),
                    wanted: c.wanted.clone(),
                    found: c.found.clone(),
                })
                .collect();
            let ok = verdict.checks.iter().filter(|c| c.ok).count();
            let miss = Miss::Headers {
                x_match: verdict.x_match,
                failed,
            };
            let near = NearMiss {
                binding: arguments(b),
                destination: destination(b),
                miss,
            };
            (ok, near)
        })
        .collect();
    scored.sort_by_key(|(ok, _)| std::cmp::Reverse(*ok));
    scored.into_iter().map(|(_, near)| near).collect()
}

fn near(b: &BindingInfo, miss: Miss) -> NearMiss {
    NearMiss {
        binding: b.routing_key.to_string(),
        destination: destination(b),
        miss,
    }
}

fn destination(b: &BindingInfo) -> String {
    if b.destination_is_exchange {
        format!("exchange {}", b.destination)
    } else {
        b.destination.to_string()
    }
}

fn arguments(b: &BindingInfo) -> String {
    (b.arguments.iter())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn count(bindings: usize) -> String {
    if bindings == 1 {
        "1 binding".into()
    } else {
        format!("{bindings} bindings")
    }
}

/// The bindings most like `key` first: most words matched (by `matched`), then the longest
/// common beginning, then fewest edits, then by key.
fn by_likeness<'a>(
    bindings: &[&'a BindingInfo],
    key: &str,
    matched: impl Fn(&BindingInfo) -> usize,
) -> Vec<&'a BindingInfo> {
    let mut scored: Vec<(usize, usize, usize, &BindingInfo)> = bindings
        .iter()
        .map(|b| {
            let common = (b.routing_key.chars().zip(key.chars()))
                .take_while(|(a, b)| a == b)
                .count();
            (matched(b), common, edits(&b.routing_key, key), *b)
        })
        .collect();
    scored
        .sort_by(|a, b| (b.0, b.1, a.2, &a.3.routing_key).cmp(&(a.0, a.1, b.2, &b.3.routing_key)));
    scored.into_iter().map(|(_, _, _, b)| b).collect()
}

/// Names a reader would take for each other: sharing their first half, or a few edits apart.
fn alike(a: &str, b: &str) -> bool {
    let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    common * 2 >= b.chars().count() || edits(a, b) <= 2
}

/// Levenshtein distance, over characters, bounded to keep long keys cheap.
fn edits(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(255).collect();
    let b: Vec<char> = b.chars().take(255).collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(here + 1);
            previous = here;
        }
    }
    row[b.len()]
}

/// How many leading words of `key` the topic `pattern` accepts before it first refuses one.
fn words_matched(pattern: &str, key: &str) -> usize {
    pattern
        .split('.')
        .zip(key.split('.'))
        .take_while(|(p, k)| *p == "#" || *p == "*" || p == k)
        .count()
}

/// Where a topic pattern and a key part: the first word that differs, or the count of words.
fn topic_miss(pattern: &str, key: &str) -> Miss {
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    if p.contains(&"#") {
        return Miss::DoesNotFit;
    }
    for (i, (pw, kw)) in p.iter().zip(&k).enumerate() {
        if *pw != "*" && pw != kw {
            return Miss::Word {
                index: i + 1,
                got: kw.to_string(),
                wanted: pw.to_string(),
            };
        }
    }
    Miss::WordCount {
        key: k.len(),
        pattern: p.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(pairs: &[(&str, &str)]) -> Vec<BindingInfo> {
        pairs
            .iter()
            .map(|(queue, key)| BindingInfo::to_queue("nova", queue, key))
            .collect()
    }

    fn explain(kind: &str, bindings: &[BindingInfo], key: &str) -> Unroutable {
        let refs: Vec<&BindingInfo> = bindings.iter().collect();
        explain_unroutable("nova", kind, &refs, key, &[])
    }

    fn keys(u: &Unroutable) -> Vec<&str> {
        u.nearest.iter().map(|m| m.binding.as_str()).collect()
    }

    #[test]
    fn direct_names_the_keys_most_alike() {
        let bindings = bound(&[
            ("scheduler", "scheduler"),
            ("compute.node2", "compute.node2"),
            ("compute.node1", "compute.node1"),
            ("conductor", "conductor"),
        ]);
        let u = explain("direct", &bindings, "compute.node3");
        assert_eq!(
            u.summary_text(),
            "no binding of 'nova' (4 bindings) has the key 'compute.node3'"
        );
        assert_eq!(keys(&u), ["compute.node1", "compute.node2", "conductor"]);
        assert_eq!(
            u.lines()[1],
            "  'compute.node1' -> compute.node1: the key is 'compute.node1'"
        );
    }

    #[test]
    fn topic_says_which_word_differs() {
        let bindings = bound(&[
            ("all-compute", "compute.#"),
            ("node1", "compute.node1.*"),
            ("info", "notifications.info"),
            ("short", "scheduler.*"),
        ]);
        let u = explain("topic", &bindings, "compute.node1");
        assert_eq!(
            u.summary_text(),
            "no binding pattern of 'nova' (4 bindings) matches 'compute.node1'"
        );
        // `compute.#` would match; a routed message is not explained. Here: no `#`.
        let bindings = bound(&[
            ("node1", "compute.node1.*"),
            ("info", "notifications.info"),
            ("node2", "compute.node2"),
        ]);
        let u = explain("topic", &bindings, "compute.node3");
        assert_eq!(
            keys(&u),
            ["compute.node2", "compute.node1.*", "notifications.info"]
        );
        let whys: Vec<String> = u.nearest.iter().map(|m| m.why("compute.node3")).collect();
        assert_eq!(
            whys,
            [
                "word 2 is 'node3', the pattern wants 'node2'",
                "word 2 is 'node3', the pattern wants 'node1'",
                "word 1 is 'compute', the pattern wants 'notifications'",
            ]
        );
        let u = explain("topic", &bound(&[("n", "compute.*.*")]), "compute.node1");
        assert_eq!(
            u.nearest[0].why("compute.node1"),
            "the key has 2 words, the pattern 3 (each * is one word; # would take any number)"
        );
    }

    #[test]
    fn headers_name_the_failed_arguments() {
        let mut b = BindingInfo::to_queue("nova", "eu", "");
        b.arguments = vec![
            ("x-match".into(), "all".into()),
            ("region".into(), "eu".into()),
            ("kind".into(), "order".into()),
        ];
        let refs = [&b];
        let headers = [("region".to_string(), "us".to_string())];
        let u = explain_unroutable("nova", "headers", &refs, "", &headers);
        assert_eq!(
            u.summary_text(),
            "no binding of 'nova' (1 binding) matches the message's headers"
        );
        assert_eq!(
            u.nearest[0].why(""),
            "x-match=all: no header kind (wanted order); region is us, not eu"
        );
    }

    #[test]
    fn the_default_exchange_and_an_exchange_without_bindings() {
        let queues = bound(&[
            ("reply_abc1", "reply_abc1"),
            ("compute", "compute"),
            ("reply_abd9", "reply_abd9"),
        ]);
        let refs: Vec<&BindingInfo> = queues.iter().collect();
        let u = explain_unroutable("", "direct", &refs, "reply_abc2", &[]);
        assert!(u.summary_text().contains("no queue is named 'reply_abc2'"));
        assert_eq!(keys(&u), ["reply_abc1", "reply_abd9"]);
        let u = explain("fanout", &[], "x");
        assert_eq!(
            u.summary_text(),
            "'nova' has no bindings: nothing published to it reaches a queue"
        );
        assert!(u.nearest.is_empty());
        assert_eq!(
            mandatory_words(Some(true)),
            "published mandatory: the publisher got it back (basic.return 312 NO_ROUTE)"
        );
    }

    #[test]
    fn edits_count_characters() {
        assert_eq!(edits("node1", "node3"), 1);
        assert_eq!(edits("", "abc"), 3);
        assert_eq!(edits("队列", "队"), 1);
    }
}
