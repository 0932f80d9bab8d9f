//! `doctor`: what is wrong with a broker, or will be after an upgrade, each finding with what
//! was seen, why it matters and the fix. No I/O: the checks read a [`Broker`] (made from the
//! management API's answers or from a definitions file) and return findings.
//!
//! - [`model`]: what the checks read.
//! - [`upgrade`]: what RabbitMQ 4.x refuses or ignores (transient queues, mirroring, lazy
//!   mode, global qos).
//! - [`idle`]: queues nobody reads (growing, orphaned replies, expiring server queues).
//! - [`quorum`]: quorum queues (mixed types in one topic, poison messages dropped, members
//!   lost).
//! - [`unroutable`]: messages no queue took.
//! - [`cluster`]: nodes down, alarms, partitions.
//! - [`definitions`]: a definitions file as one [`Broker`] per vhost.
//! - [`report`]: findings as text or JSON.

pub mod cluster;
pub mod definitions;
pub mod idle;
pub mod model;
pub mod quorum;
pub mod report;
pub mod unroutable;
pub mod upgrade;

pub use model::Broker;

/// How serious a finding is, least first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
    Critical,
}

impl Level {
    pub fn word(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }
}

/// One thing found: what was seen, why it matters, how to fix it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Finding {
    pub level: Level,
    /// A stable name for scripts: `transient-nonexclusive-queues`.
    pub check: &'static str,
    /// The vhost it is about; none for the cluster's nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    /// The queues, policies, exchanges, channels or nodes concerned.
    pub objects: Vec<String>,
    pub seen: String,
    pub why: String,
    pub fix: String,
}

impl Finding {
    fn new(level: Level, check: &'static str, vhost: Option<&str>) -> Finding {
        Finding {
            level,
            check,
            vhost: vhost.map(str::to_string),
            objects: Vec::new(),
            seen: String::new(),
            why: String::new(),
            fix: String::new(),
        }
    }

    fn objects(mut self, objects: Vec<String>) -> Finding {
        self.objects = objects;
        self
    }

    fn seen(mut self, seen: impl Into<String>) -> Finding {
        self.seen = seen.into();
        self
    }

    fn why(mut self, why: impl Into<String>) -> Finding {
        self.why = why.into();
        self
    }

    fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = fix.into();
        self
    }
}

/// Every finding on `broker`, most serious first (then by check and vhost, for a stable
/// order).
pub fn examine(broker: &Broker) -> Vec<Finding> {
    let mut findings = Vec::new();
    findings.extend(cluster::check(broker));
    findings.extend(upgrade::check(broker));
    findings.extend(idle::check(broker));
    findings.extend(quorum::check(broker));
    findings.extend(unroutable::check(broker));
    sort(&mut findings);
    findings
}

/// Most serious first; the order of the checks within a level is kept.
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by_key(|f| std::cmp::Reverse(f.level));
}

/// `'a'`, `'a' and 'b'`, `'a', 'b' and 3 more`: names for a sentence, at most `shown` of them.
fn listed(names: &[String], shown: usize) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    joined(&quoted, shown)
}

/// As [`listed`], for items quoted already (`'q' (3 messages)`).
fn joined(names: &[String], shown: usize) -> String {
    let quoted: Vec<&String> = names.iter().take(shown).collect();
    match (names.len(), quoted.len()) {
        (0, _) => String::new(),
        (1, _) => quoted[0].clone(),
        (n, q) if n > q => format!("{} and {} more", join(&quoted), n - q),
        _ => format!(
            "{} and {}",
            join(&quoted[..quoted.len() - 1]),
            quoted[quoted.len() - 1]
        ),
    }
}

fn join(items: &[&String]) -> String {
    items
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `1 queue`, `3 queues`.
fn count(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A queue or policy argument as a number (RabbitMQ keeps what the client sent: a number, or
/// sometimes text).
fn number(value: &serde_json::Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_as_a_sentence() {
        let names = |n: usize| (1..=n).map(|i| format!("q{i}")).collect::<Vec<_>>();
        assert_eq!(listed(&names(0), 3), "");
        assert_eq!(listed(&names(1), 3), "'q1'");
        assert_eq!(listed(&names(2), 3), "'q1' and 'q2'");
        assert_eq!(listed(&names(3), 3), "'q1', 'q2' and 'q3'");
        assert_eq!(listed(&names(5), 3), "'q1', 'q2', 'q3' and 2 more");
        assert_eq!(count(1, "queue"), "1 queue");
        assert_eq!(count(2, "queue"), "2 queues");
    }

    #[test]
    fn the_most_serious_come_first() {
        let mut findings = vec![
            Finding::new(Level::Info, "a", None),
            Finding::new(Level::Critical, "b", None),
            Finding::new(Level::Warning, "c", None),
            Finding::new(Level::Critical, "d", None),
        ];
        sort(&mut findings);
        let order: Vec<&str> = findings.iter().map(|f| f.check).collect();
        assert_eq!(order, ["b", "d", "c", "a"]);
    }
}
