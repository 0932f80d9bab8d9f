//! The management API's answers we read, as RabbitMQ 3.8 to 4.x really send them. Their
//! shapes differ between releases and even between objects of one broker: a vhost made by
//! `rabbitmqctl add_vhost` on 3.10 has `"tags": ""` where one made through the API has a list,
//! 3.9 to 3.11 may say `"undefined"` for a missing description, a queue's counters are absent
//! until its first statistics. `rabbitmq_http_client`'s types refuse some of these, so the
//! answers are decoded here, each field as leniently as its meaning allows.

use std::collections::BTreeMap;

use crate::topology::MEMBER_BEHIND_BY;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// One vhost of `/api/vhosts` or `/api/vhosts/NAME`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Vhost {
    pub name: String,
    #[serde(default, deserialize_with = "text")]
    pub description: Option<String>,
    /// A list (most releases), `""` or `"a,b"` (a vhost made by rabbitmqctl on 3.9 to 3.11),
    /// null or absent (before 3.8).
    #[serde(default, deserialize_with = "tags")]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "text")]
    pub default_queue_type: Option<String>,
    #[serde(default, deserialize_with = "flag")]
    pub tracing: bool,
}

/// One queue of `/api/queues/VHOST`. The counters are absent until the queue first reports
/// its statistics (and for a queue whose process is down); they count as 0 then.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Queue {
    pub name: String,
    /// `classic`, `quorum`, `stream`; absent before 3.8 (only classic queues then).
    #[serde(rename = "type", default, deserialize_with = "text")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "flag")]
    pub durable: bool,
    #[serde(default, deserialize_with = "flag")]
    pub auto_delete: bool,
    #[serde(default, deserialize_with = "flag")]
    pub exclusive: bool,
    #[serde(default, deserialize_with = "table")]
    pub arguments: Map<String, Value>,
    #[serde(default, deserialize_with = "count")]
    pub messages: u64,
    #[serde(default, deserialize_with = "count")]
    pub messages_unacknowledged: u64,
    #[serde(default, deserialize_with = "count")]
    pub consumers: u64,
    /// The policy in force, when asked for (`policy` column).
    #[serde(default, deserialize_with = "text")]
    pub policy: Option<String>,
    /// A quorum queue's or stream's member nodes and those online; absent for a classic queue.
    #[serde(default, deserialize_with = "names")]
    pub members: Option<Vec<String>>,
    #[serde(default, deserialize_with = "names")]
    pub online: Option<Vec<String>>,
    /// The node a classic queue lives on; a quorum queue's or stream's leader's.
    #[serde(default, deserialize_with = "text")]
    pub node: Option<String>,
    /// A quorum queue's or stream's leader.
    #[serde(default, deserialize_with = "text")]
    pub leader: Option<String>,
    /// `running`, `down` (its node is), `minority` (a quorum queue without a majority), ...
    #[serde(default, deserialize_with = "text")]
    pub state: Option<String>,
}

/// An answer read as a JSON object first, then as `T`: RabbitMQ 3.10 may name a field twice,
/// which serde's derived types refuse. The first one counts: a quorum queue with a member
/// down lists `online` twice, first the members online, then all of them.
pub struct Lenient<T>(pub T);

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let object = d.deserialize_map(FirstOfEach)?;
        serde_json::from_value(Value::Object(object))
            .map(Lenient)
            .map_err(serde::de::Error::custom)
    }
}

struct FirstOfEach;

impl<'de> serde::de::Visitor<'de> for FirstOfEach {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = Map::new();
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            object.entry(key).or_insert(value);
        }
        Ok(object)
    }
}

/// One policy of `/api/policies/VHOST`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Policy {
    pub name: String,
    #[serde(default)]
    pub pattern: String,
    #[serde(rename = "apply-to", default, deserialize_with = "text")]
    pub apply_to: Option<String>,
    #[serde(default, deserialize_with = "table")]
    pub definition: Map<String, Value>,
    #[serde(default)]
    pub priority: i64,
}

/// One channel of `/api/vhosts/VHOST/channels`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Channel {
    pub name: String,
    /// Set by `basic.qos(global=true)`; 0 when not.
    #[serde(default, deserialize_with = "count")]
    pub global_prefetch_count: u64,
    #[serde(default, deserialize_with = "details")]
    pub connection_details: ChannelDetails,
}

/// One node of `/api/nodes`. A node that is down lists little more than its name.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Node {
    pub name: String,
    #[serde(default, deserialize_with = "flag")]
    pub running: bool,
    #[serde(default, deserialize_with = "flag")]
    pub mem_alarm: bool,
    #[serde(default, deserialize_with = "flag")]
    pub disk_free_alarm: bool,
    #[serde(default, deserialize_with = "amount")]
    pub mem_used: Option<u64>,
    #[serde(default, deserialize_with = "amount")]
    pub mem_limit: Option<u64>,
    #[serde(default, deserialize_with = "amount")]
    pub disk_free: Option<u64>,
    #[serde(default, deserialize_with = "amount")]
    pub disk_free_limit: Option<u64>,
    #[serde(default, deserialize_with = "names")]
    pub partitions: Option<Vec<String>>,
}

/// An exchange of `/api/exchanges/VHOST` with its message counters (absent until it has had
/// a message).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct ExchangeStats {
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, deserialize_with = "table")]
    pub arguments: Map<String, Value>,
    #[serde(default, deserialize_with = "table")]
    pub message_stats: Map<String, Value>,
}

/// A vhost's message counters (`/api/vhosts/VHOST`, `message_stats`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct VhostStats {
    #[serde(default, deserialize_with = "table")]
    pub message_stats: Map<String, Value>,
}

/// The rate of a counter of a `message_stats` object (`<name>_details.rate`), per second; 0
/// when not given.
pub fn rate(stats: &Map<String, Value>, name: &str) -> f64 {
    (stats.get(&format!("{name}_details")))
        .and_then(|d| d.get("rate"))
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

/// A counter of a `message_stats` object, when it is there.
pub fn counter(stats: &Map<String, Value>, name: &str) -> Option<u64> {
    stats.get(name).and_then(Value::as_u64)
}

/// One binding of `/api/bindings/VHOST`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Binding {
    pub source: String,
    pub destination: String,
    /// `queue` or `exchange`.
    pub destination_type: String,
    #[serde(default)]
    pub routing_key: String,
    #[serde(default, deserialize_with = "table")]
    pub arguments: Map<String, Value>,
}

impl Binding {
    pub fn to_exchange(&self) -> bool {
        self.destination_type == "exchange"
    }
}

/// One connection of `/api/vhosts/VHOST/connections`. A direct (Erlang) connection of a
/// plugin may lack the peer's port, or both peer fields; a client may send no
/// `connection_name` (3.10 and later also list it as `user_provided_name`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Connection {
    /// The broker's name for it: `127.0.0.1:53122 -> 127.0.0.1:5672` for a network one.
    pub name: String,
    #[serde(default, deserialize_with = "text")]
    pub user: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub peer_host: Option<String>,
    /// A number, or absent, null or `"unknown"` where there is no port.
    #[serde(default, deserialize_with = "number")]
    pub peer_port: Option<u16>,
    /// The client properties of its connection.start-ok: an object, `[]` when empty.
    #[serde(default, deserialize_with = "table")]
    pub client_properties: Map<String, Value>,
    #[serde(default, deserialize_with = "text")]
    pub user_provided_name: Option<String>,
    /// The cluster node the client is connected to.
    #[serde(default, deserialize_with = "text")]
    pub node: Option<String>,
}

impl Connection {
    /// `host:port`, `host` without a port, the connection's name without either.
    pub fn peer(&self) -> String {
        let host = self
            .peer_host
            .as_deref()
            .filter(|h| !h.is_empty() && *h != "unknown");
        match (host, self.peer_port) {
            (Some(host), Some(port)) if host.contains(':') => format!("[{host}]:{port}"),
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            (None, _) => self.name.clone(),
        }
    }

    /// The `connection_name` the client gave, from its properties or `user_provided_name`.
    pub fn connection_name(&self) -> Option<String> {
        self.client_property("connection_name")
            .or_else(|| self.user_provided_name.clone())
            .filter(|n| !n.is_empty())
    }

    /// A client property that is text (`product`, `connection_name`, ...).
    pub fn client_property(&self, name: &str) -> Option<String> {
        self.client_properties
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

/// One member of a quorum queue as `/api/queues/quorum/VHOST/NAME/status` tells it
/// (RabbitMQ 3.13 and later). A member that did not answer has its error as its state and
/// empty indexes.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct QuorumMember {
    #[serde(rename = "Node Name", default)]
    pub node: String,
    #[serde(rename = "Raft State", default, deserialize_with = "text")]
    pub raft_state: Option<String>,
    #[serde(rename = "Commit Index", default, deserialize_with = "amount")]
    pub commit_index: Option<u64>,
    /// The last entry in the member's log: what it holds. A follower catching up learns the
    /// leader's commit index at once (RabbitMQ 4.0), long before its log gets there.
    #[serde(rename = "Last Log Index", default, deserialize_with = "amount")]
    pub last_index: Option<u64>,
}

/// The members whose log ends more than [`MEMBER_BEHIND_BY`] entries short of their leader's
/// commit index, and by how many. Without a leader that tells its index there is nothing to
/// measure against. A member that is not running (`noproc`: RabbitMQ 4.0 still tells the
/// indexes it had) or did not answer is offline, not behind.
pub fn members_behind(members: &[QuorumMember]) -> BTreeMap<String, u64> {
    let is_leader = |m: &QuorumMember| m.raft_state.as_deref() == Some("leader");
    let Some(leader) = members
        .iter()
        .find(|m| is_leader(m))
        .and_then(|m| m.commit_index)
    else {
        return BTreeMap::new();
    };
    (members.iter())
        .filter(|m| !is_leader(m) && m.raft_state.as_deref() != Some("noproc"))
        .filter_map(|m| {
            let behind = leader.saturating_sub(m.last_index?);
            (behind > MEMBER_BEHIND_BY).then(|| (m.node.clone(), behind))
        })
        .collect()
}

/// The node that answers, its release and every running node's listeners, from
/// `/api/overview`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Overview {
    #[serde(default)]
    pub node: String,
    /// `3.10.8`, `4.0.5`.
    #[serde(default)]
    pub rabbitmq_version: Option<String>,
    #[serde(default)]
    pub listeners: Vec<Listener>,
}

/// One port a node listens on: `amqp`, `clustering`, `http` (the management API), ...
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Listener {
    pub node: String,
    pub protocol: String,
    /// `::` or `0.0.0.0` for every address.
    #[serde(default)]
    pub ip_address: String,
    pub port: u16,
}

/// The user the API answers, from `/api/whoami`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Whoami {
    pub name: String,
    #[serde(default, deserialize_with = "tags")]
    pub tags: Vec<String>,
}

/// Sets each queue's count of consumers from the vhost's consumers listing: what a queue
/// listed without its statistics lacks.
pub fn count_consumers(queues: &mut [Queue], consumers: &[Consumer]) {
    let mut counts: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    for consumer in consumers {
        *counts.entry(consumer.queue.as_str()).or_default() += 1;
    }
    for q in queues {
        q.consumers = counts.get(q.name.as_str()).copied().unwrap_or(0);
    }
}

/// One consumer of `/api/consumers/VHOST`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Consumer {
    pub consumer_tag: String,
    #[serde(default, deserialize_with = "queue_name")]
    pub queue: String,
    /// `[]` (no details) when the channel's statistics are not known (yet, or any more).
    #[serde(default, deserialize_with = "details")]
    pub channel_details: ChannelDetails,
    #[serde(default, deserialize_with = "flag")]
    pub ack_required: bool,
    #[serde(default, deserialize_with = "count")]
    pub prefetch_count: u64,
}

/// Which channel a consumer is on.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct ChannelDetails {
    /// `<connection name> (<channel number>)`.
    #[serde(default, deserialize_with = "text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub connection_name: Option<String>,
    #[serde(default, deserialize_with = "number")]
    pub number: Option<u16>,
}

impl Consumer {
    /// The consumer's connection name and channel number, from the details' fields or, where
    /// a release lists only the channel's name, from that name.
    pub fn channel(&self) -> Option<(String, u16)> {
        let details = &self.channel_details;
        let from_name = details.name.as_deref().and_then(|name| {
            let (connection, number) = name.strip_suffix(')')?.rsplit_once(" (")?;
            Some((connection.to_string(), number.parse().ok()?))
        });
        match (&details.connection_name, details.number) {
            (Some(connection), Some(number)) => Some((connection.clone(), number)),
            _ => from_name,
        }
    }
}

/// A list of names (node names); anything else is none.
fn names<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        ),
        _ => None,
    })
}

/// A size in bytes; anything but a non-negative number is none.
fn amount<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Value::deserialize(d)?.as_u64())
}

/// Text, with null, absent and Erlang's `undefined` as none.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) if s == "undefined" => None,
        Value::String(s) => Some(s),
        _ => None,
    })
}

fn tags<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let words = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty() && *t != "undefined")
            .map(str::to_string)
            .collect()
    };
    Ok(match Value::deserialize(d)? {
        Value::String(s) => words(&s),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .flat_map(words)
            .collect(),
        _ => Vec::new(),
    })
}

fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::String(s) => s == "true",
        _ => false,
    })
}

/// A count; anything but a non-negative number (null, `""`) is 0.
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Value::deserialize(d)?.as_u64().unwrap_or(0))
}

/// Arguments: an object, or `[]` (how older releases render an empty table), or null.
fn table<'de, D: Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Object(map) => map,
        _ => Map::new(),
    })
}

/// A port or channel number; anything else (`"unknown"`, null, out of range) is none.
fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    Ok(Value::deserialize(d)?
        .as_u64()
        .and_then(|n| u16::try_from(n).ok()))
}

/// `{"name": ..., "vhost": ...}`, or the name alone.
fn queue_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(name) => name,
        Value::Object(map) => map
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    })
}

/// Channel details: an object, or `[]` (none known).
fn details<'de, D: Deserializer<'de>>(d: D) -> Result<ChannelDetails, D::Error> {
    let value = Value::deserialize(d)?;
    Ok(match value {
        Value::Object(_) => serde_json::from_value(value).unwrap_or_default(),
        _ => ChannelDetails::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A quorum queue's status as `tests/fixtures/management/FIXTURE` tells it.
    fn read(fixture: &str) -> Vec<QuorumMember> {
        let path = format!(
            "{}/tests/fixtures/management/{fixture}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// A member whose log ends at its commit index, as a member that is not catching up.
    fn member(node: &str, state: &str, commit_index: Option<u64>) -> QuorumMember {
        QuorumMember {
            node: node.into(),
            raft_state: Some(state.into()),
            commit_index,
            last_index: commit_index,
        }
    }

    #[test]
    fn members_are_behind_past_the_margin_and_only_with_a_leader_to_compare() {
        let at_the_margin = [
            member("a", "leader", Some(20_000)),
            member("b", "follower", Some(20_000 - MEMBER_BEHIND_BY)),
        ];
        assert!(members_behind(&at_the_margin).is_empty());
        // The one that did not answer is offline, not behind.
        let past_it = [
            member("a", "follower", Some(5)),
            member("b", "leader", Some(20_000)),
            member("c", "timeout", None),
        ];
        assert_eq!(
            members_behind(&past_it),
            BTreeMap::from([("a".to_string(), 19_995)])
        );
        let no_leader = [
            member("a", "candidate", Some(20_000)),
            member("b", "follower", Some(1)),
        ];
        assert!(members_behind(&no_leader).is_empty());
    }

    /// Told by a cluster of three RabbitMQ 4.0.5 nodes, 150,000 publishes after its third
    /// node stopped: stopped, then catching up.
    #[test]
    fn rabbitmq_4_0s_member_catching_up_is_behind_and_a_stopped_one_offline() {
        let stopped = read("quorum-status-4.0-member-stopped.json");
        assert_eq!(stopped[2].last_index, Some(60_016));
        assert!(members_behind(&stopped).is_empty());
        // Its commit index is the leader's already; its log is 109,970 entries short.
        let catching_up = read("quorum-status-4.0-catching-up.json");
        assert_eq!(catching_up[2].commit_index, Some(210_018));
        assert_eq!(
            members_behind(&catching_up),
            BTreeMap::from([("r4c@localhost".to_string(), 109_970)])
        );
    }

    #[test]
    fn rabbitmq_3_13s_status_reads_as_one_member_behind() {
        let told = read("quorum-status-3.13.json");
        assert_eq!(
            members_behind(&told),
            BTreeMap::from([("rabbit@node2".to_string(), 59_427)])
        );
    }
}
