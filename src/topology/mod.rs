//! The topology at one moment: vhosts with their exchanges, queues, bindings, client
//! connections and consumers, as every source hands it to the view and as a trace's header
//! stores it.
//!
//! - this file: the snapshot types, each list sorted as the embedded broker sorts it.
//! - [`apply`](mod@apply): one event applied to a snapshot (a replay's topology).
//! - [`diff`](mod@diff): the events that turn one snapshot into another (a remote broker's
//!   polls).
//!
//! It imports only the event types: the broker, the view and the sources build on it, never
//! the other way round.

pub mod apply;
pub mod diff;

use std::collections::{BTreeMap, HashMap};

use crate::events::{BindingInfo, ClientInfo, ConnectionId};

pub use apply::{apply, Acking};
pub use diff::diff;

/// The topology at one moment.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub vhosts: Vec<VhostSnapshot>,
    /// The RabbitMQ cluster's nodes, running or not, by name. Empty for the embedded broker
    /// and when the user may not list them (that takes the `monitoring` tag).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeSnapshot>,
}

/// One node of a RabbitMQ cluster, as `/api/nodes` tells it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeSnapshot {
    pub name: String,
    pub running: bool,
    #[serde(default)]
    pub memory_alarm: bool,
    #[serde(default)]
    pub disk_alarm: bool,
    /// The nodes of its cluster this one cannot reach although they run: a network partition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VhostSnapshot {
    pub name: String,
    pub exchanges: Vec<ExchangeSnapshot>,
    pub queues: Vec<QueueSnapshot>,
    pub bindings: Vec<BindingInfo>,
    /// The client connections open on the vhost: the graph draws the ones that publish on
    /// the left and the ones that consume on the right. Absent from older trace files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<ConnectionSnapshot>,
    /// Every consumer (basic.consume) of the vhost's queues, by queue then tag.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<ConsumerSnapshot>,
}

/// A client connection as the graph names it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConnectionSnapshot {
    /// The id events carry in `Event::connection`. A remote broker's connections get ids of
    /// their own making (see `crate::remote`), stable for one connection name.
    pub id: ConnectionId,
    /// The broker's name for it, as RabbitMQ writes it: `127.0.0.1:53122 -> 127.0.0.1:5672`.
    pub name: String,
    /// The client's address, `host:port`.
    pub peer: String,
    pub user: String,
    pub client: ClientInfo,
    /// The cluster node it is connected to; None for the embedded broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl ConnectionSnapshot {
    /// The name a person knows the client by (see [`ClientInfo::label`]).
    pub fn label(&self) -> String {
        self.client.label(&self.peer)
    }
}

/// One consumer of a queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConsumerSnapshot {
    pub queue: String,
    pub tag: String,
    /// The connection (its [`ConnectionSnapshot::id`]) and channel it consumes on.
    pub connection: ConnectionId,
    pub channel: u16,
    /// Manual acknowledgement (basic.consume without no-ack).
    pub ack: bool,
    /// The channel's basic.qos prefetch count (0: unlimited).
    pub prefetch: u16,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExchangeSnapshot {
    pub name: String,
    pub kind: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    #[serde(with = "crate::argument_map")]
    pub arguments: Vec<(String, String)>,
}

/// The kind of queue, as RabbitMQ names it (`x-queue-type`, the management API's `type`).
/// A queue made without `x-queue-type` can still be quorum or stream: a vhost's default queue
/// type decides, so the type is told apart from the arguments.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    #[default]
    Classic,
    Quorum,
    Stream,
}

impl QueueType {
    /// The type RabbitMQ's management API reports; what it does not name is classic (before
    /// 3.8 every queue was).
    pub fn from_name(name: &str) -> QueueType {
        match name {
            "quorum" => QueueType::Quorum,
            "stream" => QueueType::Stream,
            _ => QueueType::Classic,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
            QueueType::Stream => "stream",
        }
    }
}

/// What a quorum queue does with a message returned too often, when the broker says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryLimit {
    /// Not reported (RabbitMQ's management API, older snapshots): only the argument tells.
    #[default]
    Unknown,
    Unlimited,
    Limit(i64),
}

impl DeliveryLimit {
    pub fn is_unknown(&self) -> bool {
        *self == DeliveryLimit::Unknown
    }
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QueueSnapshot {
    pub name: String,
    /// Absent in snapshots and traces written before types were recorded: classic.
    #[serde(default)]
    pub queue_type: QueueType,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    #[serde(with = "crate::argument_map")]
    pub arguments: Vec<(String, String)>,
    pub ready: usize,
    pub unacked: usize,
    pub consumers: usize,
    /// A stream's log as the embedded broker keeps it. None for other queues, for RabbitMQ
    /// (which does not report offsets over AMQP 0-9-1) and in older snapshots and traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamState>,
    /// The delivery limit a quorum queue applies: its `x-delivery-limit`, or the release's
    /// default when it has none (20 from RabbitMQ 4.0), which its arguments do not show.
    #[serde(default, skip_serializing_if = "DeliveryLimit::is_unknown")]
    pub delivery_limit: DeliveryLimit,
    /// Where a RabbitMQ cluster keeps it: a classic queue's node; the leader's of a quorum
    /// queue or stream. None for the embedded broker (one node) and older snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// A quorum queue's or stream's leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// A quorum queue's or stream's member nodes, and those of them online.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub online: Vec<String>,
    /// RabbitMQ's word for its state (`running`, `down`, `minority`, ...), when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The members of a quorum queue more than [`MEMBER_BEHIND_BY`] log entries behind their
    /// leader's commit index, and by how many. Empty when none is, and when RabbitMQ does not
    /// say (before 3.13, which has no status request for a quorum queue).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub behind: BTreeMap<String, u64>,
}

/// How many log entries a quorum queue's member may trail its leader's commit index before it
/// counts as behind: a follower under load trails by a few; one this far back is catching up
/// after a restart, or sits on a node too slow to keep up.
pub const MEMBER_BEHIND_BY: u64 = 10_000;

/// A stream's log: the offsets it holds, its size and retention, and where each consumer
/// reads next.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamState {
    /// The oldest offset still held.
    pub first_offset: u64,
    /// The offset the next message appended will get.
    pub next_offset: u64,
    /// Bytes held, by the segment measure.
    pub bytes: u64,
    pub segments: usize,
    /// `x-stream-max-segment-size-bytes`, or RabbitMQ's default.
    pub max_segment_bytes: u64,
    /// `x-max-length-bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length_bytes: Option<u64>,
    /// `x-max-age`, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_secs: Option<u64>,
    /// Each consumer's position, by tag and connection as the consumer nodes are keyed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readers: Vec<StreamReader>,
}

/// Where one consumer of a stream reads next.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamReader {
    pub tag: String,
    pub connection: ConnectionId,
    /// The offset of the next message it will be handed.
    pub offset: u64,
}

impl StreamState {
    /// Where consumer `tag` on `connection` reads next.
    pub fn reader(&self, tag: &str, connection: ConnectionId) -> Option<u64> {
        let r = self
            .readers
            .iter()
            .find(|r| r.tag == tag && r.connection == connection);
        r.map(|r| r.offset)
    }

    /// A delivery of `offset` to consumer `tag`: it reads on from the next one. Deliveries
    /// come in order, so a late one never moves a reader back.
    pub fn delivered(&mut self, tag: &str, connection: ConnectionId, offset: u64) {
        self.next_offset = self.next_offset.max(offset + 1);
        match (self.readers.iter_mut()).find(|r| r.tag == tag && r.connection == connection) {
            Some(r) => r.offset = r.offset.max(offset + 1),
            None => self.readers.push(StreamReader {
                tag: tag.to_string(),
                connection,
                offset: offset + 1,
            }),
        }
    }
}

/// Snapshots list bindings by source, destination and key, whoever builds them.
pub fn sort_bindings(bindings: &mut [BindingInfo]) {
    bindings.sort_by(|a, b| {
        (&a.source, &a.destination, &a.routing_key).cmp(&(
            &b.source,
            &b.destination,
            &b.routing_key,
        ))
    });
}

impl ExchangeSnapshot {
    /// A transient exchange of this kind with no arguments.
    pub fn new(name: &str, kind: &str) -> ExchangeSnapshot {
        ExchangeSnapshot {
            name: name.to_string(),
            kind: kind.to_string(),
            ..Default::default()
        }
    }
}

impl QueueSnapshot {
    /// An empty transient queue with no consumers.
    pub fn new(name: &str) -> QueueSnapshot {
        QueueSnapshot {
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// The value of one `x-` argument, as text.
    pub fn argument(&self, key: &str) -> Option<&str> {
        self.arguments
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_quorum(&self) -> bool {
        self.queue_type == QueueType::Quorum
    }

    pub fn is_stream(&self) -> bool {
        self.queue_type == QueueType::Stream
    }

    /// The node that serves it: the leader of a replicated queue, else its node.
    pub fn home(&self) -> Option<&str> {
        self.leader.as_deref().or(self.node.as_deref())
    }
}

impl NodeSnapshot {
    /// Whether the node runs with no alarm and no partition.
    pub fn healthy(&self) -> bool {
        self.running && !self.memory_alarm && !self.disk_alarm && self.partitions.is_empty()
    }
}

/// Per-vhost snapshots by name, for quick lookups in tests.
impl Snapshot {
    pub fn vhost(&self, name: &str) -> Option<&VhostSnapshot> {
        self.vhosts.iter().find(|v| v.name == name)
    }

    pub fn by_name(&self) -> HashMap<&str, &VhostSnapshot> {
        self.vhosts.iter().map(|v| (v.name.as_str(), v)).collect()
    }
}
