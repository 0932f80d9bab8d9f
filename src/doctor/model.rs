//! What `doctor` knows of a broker: one vhost's queues, policies, exchanges, bindings and
//! channels, and the cluster's nodes. Read from the management API or from a definitions file;
//! what a source cannot say (a file has no message counts, no nodes) is `None` or empty, and
//! the checks that need it say nothing.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Broker {
    pub vhost: String,
    /// The RabbitMQ release the broker runs (`4.0.5`); None for a definitions file, which may
    /// be deployed on another.
    pub version: Option<String>,
    pub queues: Vec<Queue>,
    pub policies: Vec<Policy>,
    pub exchanges: Vec<Exchange>,
    pub bindings: Vec<Binding>,
    pub channels: Vec<Channel>,
    pub nodes: Vec<Node>,
    /// The vhost's count of messages published `mandatory` that no queue took, returned.
    pub returned_unroutable: Option<u64>,
    /// The vhost's count of messages that no queue took, dropped (RabbitMQ 3.10 lists the
    /// counter but leaves it at 0).
    pub dropped_unroutable: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Queue {
    pub name: String,
    /// `classic`, `quorum` or `stream`.
    pub kind: String,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: Map<String, Value>,
    /// The policy in force on it, by name.
    pub policy: Option<String>,
    pub messages: Option<u64>,
    pub consumers: Option<u64>,
    /// A quorum queue's members and those of them online.
    pub members: Option<Vec<String>>,
    pub online: Option<Vec<String>>,
    /// The node a classic queue lives on (a replicated queue's leader's).
    pub node: Option<String>,
    /// As the management API says: `running`, `down` (a classic queue whose node is), ...
    pub state: Option<String>,
    /// A quorum queue's members far behind their leader, and by how many log entries, where
    /// the API tells (RabbitMQ 3.13 and later).
    pub behind: BTreeMap<String, u64>,
}

impl Broker {
    /// Whether the broker runs RabbitMQ 4.0 or later, where a quorum queue has a delivery
    /// limit by default. False when not known.
    pub fn runs_4_or_later(&self) -> bool {
        let major = (self.version.as_deref())
            .and_then(|v| v.split('.').next())
            .and_then(|major| major.parse::<u32>().ok());
        major.is_some_and(|major| major >= 4)
    }
}

impl Queue {
    pub fn argument(&self, name: &str) -> Option<&Value> {
        self.arguments.get(name)
    }

    pub fn is_quorum(&self) -> bool {
        self.kind == "quorum"
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    pub name: String,
    pub pattern: String,
    /// `queues`, `exchanges` or `all`.
    pub apply_to: String,
    pub definition: Map<String, Value>,
    /// Of the policies that match, the highest applies.
    pub priority: i64,
}

/// Why the policy in force on a queue cannot be told here: two policies of the highest
/// priority match it, or a pattern is not one this program's regular expressions read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyUnclear;

/// The policy RabbitMQ applies to a queue: of those that apply to its kind and whose pattern
/// matches somewhere in its name, the one of highest priority.
pub fn policy_in_force(
    policies: &[Policy],
    queue: &str,
    kind: &str,
) -> Result<Option<String>, PolicyUnclear> {
    let applies = |p: &Policy| match p.apply_to.as_str() {
        "all" | "queues" => true,
        "classic_queues" => kind == "classic",
        "quorum_queues" => kind == "quorum",
        "streams" => kind == "stream",
        _ => false,
    };
    let mut best: Option<&Policy> = None;
    let mut tied = false;
    for p in policies.iter().filter(|p| applies(p)) {
        let pattern = regex::Regex::new(&p.pattern).map_err(|_| PolicyUnclear)?;
        if !pattern.is_match(queue) {
            continue;
        }
        match best {
            Some(b) if b.priority > p.priority => {}
            Some(b) if b.priority == p.priority => tied = true,
            _ => {
                best = Some(p);
                tied = false;
            }
        }
    }
    if tied {
        return Err(PolicyUnclear);
    }
    Ok(best.map(|p| p.name.clone()))
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exchange {
    pub name: String,
    pub kind: String,
    pub arguments: Map<String, Value>,
    /// Messages published to it, and messages it passed on to queues, when counted.
    pub published_in: Option<u64>,
    pub routed_out: Option<u64>,
    /// No message came in or went out over the last interval the counters were sampled in:
    /// both counters are of the same moment. (RabbitMQ 3.10 updates `publish_in` and
    /// `publish_out` a fraction of a second apart, every 5 s: while messages flow, one read
    /// may find 480 in and 20 out of an exchange that routed every message.)
    pub settled: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Binding {
    pub source: String,
    pub destination: String,
    pub to_exchange: bool,
    pub routing_key: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Channel {
    /// `<connection> (<number>)`.
    pub name: String,
    /// The client's `connection_name`, when known.
    pub connection_name: Option<String>,
    /// The prefetch set with `basic.qos(global=true)`; 0 when none.
    pub global_prefetch: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Node {
    pub name: String,
    pub running: bool,
    pub memory_alarm: bool,
    pub disk_alarm: bool,
    pub memory_used: Option<u64>,
    pub memory_limit: Option<u64>,
    pub disk_free: Option<u64>,
    pub disk_free_limit: Option<u64>,
    /// Nodes this one cannot see (a network partition).
    pub partitions: Vec<String>,
}
