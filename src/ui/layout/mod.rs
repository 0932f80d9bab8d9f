//! Lays the exchange -> queue graph out in rows, before anything is drawn.
//!
//! ```text
//!  exchanges       bindings (one row each)  lanes  queues
//!  animals [topic] ─ *.orange.* ──────────────────▶Q1  1 ready
//!                  ─ *.*.rabbit ────────┐
//!                  ─ lazy.# ────────────┴─────────▶Q2  2 ready
//!
//!  jobs [direct]   ─ invoice ──────────────┐
//!                  ─ resize ─────────────┐ │
//!                                        │ │
//!  shop [topic]    ─ order.paid ─────────┼─┴──────▶billing
//!                  ─ job.* ──────────────┴────────▶work
//! ```
//!
//! Around them, what the traffic showed: left of each exchange the connections that published
//! to it (one node per connection and exchange, so a publisher of two exchanges shows at
//! both), right of each queue its consumers (one node per connection), each on a row of its
//! own; rows are added below a queue when its consumers need them. Messages published to the
//! default exchange draw it as `(default)`, with an edge to each queue they reached (the
//! broker binds every queue to it by name). Such an edge's key is its queue's name: the
//! queue's label is drawn once, where the key would be (`(default) ─▶reply_…`).
//!
//! Every binding gets its own row under its exchange, so keys never overlap. A queue sits on
//! the row of one of its own bindings, the first or the last, so a queue with one binding is a
//! straight line, and a queue with more gets a vertical lane of its own gathering them. Hence
//! every row carries at most one binding and at most one queue, and when both, the binding is
//! the queue's: lines of different destinations only ever cross (`┼`), and the only junctions
//! (`┬ ┴ ├ ┤`) are on a queue's own lane. Exchanges, their bindings and the lanes are ordered to
//! cross little (barycenters, then swaps of neighbours). Exchanges that are the destination of
//! an exchange-to-exchange binding get a lane of their own the same way, ending at their label.
//!
//! - this file: what a layout is (nodes, binding rows, the items the arrow keys walk).
//! - `labels`: the text of each node and how wide the widest of each kind is.
//! - `place`: [`layout`] itself, which orders exchanges, bindings and lanes and gives every
//!   node its row.
//!
//! Grouped (see [`Groups`]), every queue gets a lane and sits below the bindings, in a column
//! ordered by group under a label line per group; publishers are ordered by group too, and
//! consumers follow their queues.
//!
//! It reads a topology snapshot and the traffic seen; it may not import the app, the panes or
//! anything that draws.

mod labels;
mod place;

pub use labels::{
    connection_labels, counters, exchange_label, made_up, more_label, position, publisher_text,
    queue_counters, queue_label, refresh_labels, Widths, MADE_UP_KEPT, UNBOUND_HEADING,
};
pub use place::layout;

use std::collections::HashMap;

use crate::events::ConnectionId;

/// What the view adds to the snapshot's names: the clients' names in OpenStack words, and the
/// groups queues and clients are gathered in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Groups {
    /// Connection labels to draw instead of the snapshot's (`nova-compute@compute-1`):
    /// grouped, always; else where they fit (see [`PublisherNode::long`]).
    pub names: HashMap<ConnectionId, String>,
    /// Group labels in the order drawn; none when the graph is not grouped.
    pub labels: Vec<String>,
    /// Per queue name and per connection: its group, an index into `labels`.
    pub queues: HashMap<String, usize>,
    pub connections: HashMap<ConnectionId, usize>,
}

/// A group's label, on a row of its own in the queue column above its queues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupLine {
    pub row: usize,
    pub label: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangeNode {
    pub name: String,
    pub label: String,
    pub row: usize,
    /// When bindings lead to this exchange: the lane gathering them, left of the labels of
    /// such exchanges (0 = leftmost).
    pub lane: Option<usize>,
    /// Each of its edges leads to a queue drawn where its key would be (see
    /// [`QueueNode::by_name`]): the label may run on into the key column, their labels after
    /// it, rather than widen the exchange column for every row.
    pub by_name: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueNode {
    pub name: String,
    /// The name and flags; the counters are drawn after it (see [`counters`]).
    pub label: String,
    pub row: usize,
    /// Which lane (0 = nearest the exchanges) gathers this queue's bindings; none when a single
    /// binding leads to it, straight along its row.
    pub lane: Option<usize>,
    /// The snapshot's counters.
    pub ready: usize,
    pub unacked: usize,
    pub consumers: usize,
    /// A stream's first and next offsets: the graph shows this range instead of counters.
    pub offsets: Option<(u64, u64)>,
    /// Consumer nodes that have no row: the queue says `+N` below its last one.
    pub more_consumers: usize,
    /// Reached by the default exchange alone, whose key is the queue's name, on a row no lane
    /// passes: the label is drawn where the key would be, right after the exchange, and the
    /// key not at all.
    pub by_name: bool,
}

/// A connection that published to an exchange, on a row left of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublisherNode {
    pub connection: ConnectionId,
    pub label: String,
    /// Not grouped: the lens's longer name for it (`nova-compute@compute-1`), drawn instead
    /// where the column has room.
    pub long: Option<String>,
    /// The exchange (index into [`GraphLayout::exchanges`]).
    pub exchange: usize,
    pub row: usize,
}

/// The consumers one connection has on a queue, on a row right of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerNode {
    /// Index into [`GraphLayout::queues`].
    pub queue: usize,
    pub connection: ConnectionId,
    pub tags: Vec<String>,
    /// The connection's label and the tags: `nova-compute node1/compute`.
    pub label: String,
    /// Not grouped: the lens's longer name for the connection, without the tags (see
    /// [`PublisherNode::long`]).
    pub long: Option<String>,
    pub row: usize,
}

impl ConsumerNode {
    /// The connection's label, without the tags.
    pub fn client(&self) -> &str {
        let tags = self.tags.join(", ");
        match self.label.strip_suffix(tags.as_str()) {
            Some(client) => client.trim_end(),
            None => &self.label,
        }
    }

    /// The same consumer labelled with its connection's longer name, if it has one.
    pub fn long_named(&self) -> ConsumerNode {
        let mut node = self.clone();
        if let Some(long) = &self.long {
            node.label = format!("{long} {}", self.tags.join(", "));
        }
        node
    }
}

/// Where a binding row leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EdgeTarget {
    Queue(usize),
    Exchange(usize),
}

#[derive(Clone, Debug, PartialEq)]
pub struct BindingRow {
    pub row: usize,
    pub exchange: usize,
    pub key: String,
    pub target: EdgeTarget,
    /// The binding itself, for the inspector and for unbinding it.
    pub binding: crate::events::BindingInfo,
    /// The default exchange's edge to a queue, seen in the traffic: no binding one can delete.
    pub implicit: bool,
}

/// What can be selected in the graph. [`GraphLayout::items`] lists them in the order the arrow
/// keys walk: each exchange after its publishers and followed by its bindings, top to bottom,
/// then each queue followed by its consumers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphItem {
    Publisher(usize),
    Exchange(usize),
    Binding(usize),
    Queue(usize),
    Consumer(usize),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct GraphLayout {
    pub rows: usize,
    pub exchanges: Vec<ExchangeNode>,
    pub bindings: Vec<BindingRow>,
    pub queues: Vec<QueueNode>,
    /// In row order; none when stacked (no room left of the exchanges).
    pub publishers: Vec<PublisherNode>,
    /// Publishers left out because the exchanges are stacked.
    pub hidden_publishers: usize,
    /// In row order.
    pub consumers: Vec<ConsumerNode>,
    /// Queue lanes (queues with more than one binding).
    pub lanes: usize,
    /// Exchange lanes (exchanges some binding leads to).
    pub chain_lanes: usize,
    /// Each exchange on its own row above its bindings (see [`layout`]).
    pub stacked: bool,
    pub widths: Widths,
    pub items: Vec<GraphItem>,
    /// Grouped: each group's label line, in row order.
    pub groups: Vec<GroupLine>,
    /// The row of the heading over the queues no binding shown leads to, when bindings are
    /// drawn above them (see [`layout`]).
    pub unbound: Option<usize>,
}

impl GraphLayout {
    /// The row an item sits on.
    pub fn row_of(&self, item: GraphItem) -> Option<usize> {
        match item {
            GraphItem::Publisher(i) => self.publishers.get(i).map(|p| p.row),
            GraphItem::Consumer(i) => self.consumers.get(i).map(|c| c.row),
            GraphItem::Exchange(i) => self.exchanges.get(i).map(|x| x.row),
            GraphItem::Binding(i) => self.bindings.get(i).map(|b| b.row),
            GraphItem::Queue(i) => self.queues.get(i).map(|q| q.row),
        }
    }

    /// Where an item of an older layout is in this one, found by name (and for a binding by
    /// everything that makes it one), so a selection survives a change of topology.
    pub fn find(&self, old: &GraphLayout, item: GraphItem) -> Option<usize> {
        let wanted = match item {
            GraphItem::Exchange(i) => {
                let name = &old.exchanges.get(i)?.name;
                GraphItem::Exchange(self.exchanges.iter().position(|x| &x.name == name)?)
            }
            GraphItem::Binding(i) => {
                let binding = &old.bindings.get(i)?.binding;
                GraphItem::Binding(self.bindings.iter().position(|b| &b.binding == binding)?)
            }
            GraphItem::Queue(i) => {
                let name = &old.queues.get(i)?.name;
                GraphItem::Queue(self.queues.iter().position(|q| &q.name == name)?)
            }
            GraphItem::Publisher(i) => {
                let key = old.publisher_key(i)?;
                let n = (0..self.publishers.len()).find(|&n| self.publisher_key(n) == Some(key));
                GraphItem::Publisher(n?)
            }
            GraphItem::Consumer(i) => {
                let key = old.consumer_key(i)?;
                let n = (0..self.consumers.len()).find(|&n| self.consumer_key(n) == Some(key));
                GraphItem::Consumer(n?)
            }
        };
        self.items.iter().position(|i| *i == wanted)
    }

    /// A publisher node by what outlives a layout: its connection and its exchange's name.
    fn publisher_key(&self, i: usize) -> Option<(ConnectionId, &str)> {
        let p = self.publishers.get(i)?;
        Some((p.connection, self.exchanges[p.exchange].name.as_str()))
    }

    /// A consumer node by its connection and its queue's name.
    fn consumer_key(&self, i: usize) -> Option<(ConnectionId, &str)> {
        let c = self.consumers.get(i)?;
        Some((c.connection, self.queues[c.queue].name.as_str()))
    }
}

#[cfg(test)]
mod tests;
