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
//! default exchange draw it as `(default)`, with an edge keyed like a binding to each queue
//! they reached (the broker binds every queue to it by name).
//!
//! Every binding gets its own row under its exchange, so keys never overlap. A queue sits on
//! the row of one of its own bindings, the first or the last, so a queue with one binding is a
//! straight line, and a queue with more gets a vertical lane of its own gathering them. Hence
//! every row carries at most one binding and at most one queue, and when both, the binding is
//! the queue's: lines of different destinations only ever cross (`┼`), and the only junctions
//! (`┬ ┴ ├ ┤`) are on a queue's own lane. Exchanges, their bindings and the lanes are ordered to
//! cross little (barycenters, then swaps of neighbours). Exchanges that are the destination of
//! an exchange-to-exchange binding get a lane of their own the same way, ending at their label.

use std::collections::HashMap;

use unicode_width::UnicodeWidthStr;

use crate::broker::VhostSnapshot;
use crate::events::ConnectionId;
use crate::ui::model::Traffic;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangeNode {
    pub name: String,
    pub label: String,
    pub row: usize,
    /// When bindings lead to this exchange: the lane gathering them, left of the labels of
    /// such exchanges (0 = leftmost).
    pub lane: Option<usize>,
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
    /// Consumer nodes that have no row: the queue says `+N` below its last one.
    pub more_consumers: usize,
}

/// A connection that published to an exchange, on a row left of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublisherNode {
    pub connection: ConnectionId,
    pub label: String,
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
    pub row: usize,
}

/// At most this many consumer rows per queue; more consumers are counted as `+N`.
const CONSUMER_ROWS: usize = 4;

/// A queue's counters as the graph shows them, in the order the pane's legend names them:
/// ready, unacked, consumers.
pub fn counters(ready: usize, unacked: usize, consumers: usize) -> String {
    format!("{ready} {unacked} {consumers}")
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
}

/// The widest of each kind of text the graph shows, so a frame need not measure them all.
/// Exchanges that a binding's line leads to are "inner"; the others "outer".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Widths {
    /// Outer exchanges: their names, and their whole labels.
    pub exchange_name: u16,
    pub exchange_label: u16,
    pub inner_label: u16,
    /// Keys of outer and of inner exchanges' bindings; a binding drawn without a line counts
    /// with the ` ⇢ destination` after its key.
    pub outer_keys: u16,
    pub inner_keys: u16,
    /// Queues: their names, and their whole labels with counters.
    pub queue_name: u16,
    pub queue_label: u16,
    pub publisher_label: u16,
    pub consumer_label: u16,
}

/// The name at the start of a label: before its flags (` [`) or counters (two spaces).
fn name_width(label: &str) -> u16 {
    let name = label.split(" [").next().unwrap_or(label);
    needed(name.split("  ").next().unwrap_or(name))
}

/// The width a name needs to be recognised: whole, but a name a client made up (a prefix and
/// 32 hex digits, as oslo.messaging's `reply_<uuid>`) only its first 24 characters and a `…`.
/// Such names get their room after every other name, with the counters.
fn needed(name: &str) -> u16 {
    let made_up = name.is_ascii()
        && name.len() > 32
        && name[name.len() - 32..]
            .bytes()
            .all(|c| c.is_ascii_hexdigit());
    if made_up {
        25
    } else {
        name.width() as u16
    }
}

/// The most a default-exchange edge's key asks for (it repeats its queue's name): the first
/// 24 characters of a made-up name such as `reply_<uuid>` and its `…`.
const DEFAULT_KEY_ROOM: u16 = 26;

fn measure(graph: &GraphLayout) -> Widths {
    let inner = |x: usize| graph.exchanges[x].lane.is_some();
    let widest = |widths: &mut dyn Iterator<Item = u16>| widths.max().unwrap_or(0);
    let keys = |of_inner: bool| {
        widest(
            &mut graph
                .bindings
                .iter()
                .filter(|b| inner(b.exchange) == of_inner)
                .map(|b| match b.target {
                    EdgeTarget::Exchange(x) if of_inner || !inner(x) => {
                        (b.key.width() + 3 + graph.exchanges[x].name.width()) as u16
                    }
                    // The default exchange's key is the queue's own name, shown whole beside
                    // it: the key may be cut to leave the name its room.
                    _ if b.implicit => needed(&b.key).min(DEFAULT_KEY_ROOM),
                    _ => needed(&b.key),
                }),
        )
    };
    let outer = || graph.exchanges.iter().filter(|x| x.lane.is_none());
    Widths {
        exchange_name: widest(&mut outer().map(|x| name_width(&x.label))),
        exchange_label: widest(&mut outer().map(|x| x.label.width() as u16)),
        inner_label: widest(
            &mut graph
                .exchanges
                .iter()
                .filter(|x| x.lane.is_some())
                .map(|x| x.label.width() as u16),
        ),
        outer_keys: keys(false),
        inner_keys: keys(true),
        queue_name: widest(&mut graph.queues.iter().map(|q| name_width(&q.label))),
        queue_label: queue_label_width(graph),
        publisher_label: widest(
            &mut graph
                .publishers
                .iter()
                .map(|p| publisher_text(graph, p).width() as u16),
        ),
        consumer_label: widest(
            &mut graph
                .consumers
                .iter()
                .map(|c| c.label.width() as u16)
                .chain(graph.queues.iter().map(|q| more_label(q).width() as u16)),
        ),
    }
}

fn queue_label_width(graph: &GraphLayout) -> u16 {
    let width =
        |q: &QueueNode| q.label.width() + 2 + counters(q.ready, q.unacked, q.consumers).len();
    graph.queues.iter().map(width).max().unwrap_or(0) as u16
}

/// A publisher's label. One of an exchange in the chain column, which its line could not reach
/// without joining the lines chained to it, names the exchange instead: `nova-api ⇢ nova`.
pub fn publisher_text(graph: &GraphLayout, p: &PublisherNode) -> String {
    let x = &graph.exchanges[p.exchange];
    match x.lane {
        Some(_) => format!("{} ⇢ {}", p.label, x.name),
        None => p.label.clone(),
    }
}

/// What stands for the consumers of a queue that got no row: `+N`.
pub fn more_label(queue: &QueueNode) -> String {
    if queue.more_consumers == 0 {
        String::new()
    } else {
        format!("+{}", queue.more_consumers)
    }
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
                let p = old.publishers.get(i)?;
                let exchange = &old.exchanges[p.exchange].name;
                GraphItem::Publisher(self.publishers.iter().position(|n| {
                    n.connection == p.connection && &self.exchanges[n.exchange].name == exchange
                })?)
            }
            GraphItem::Consumer(i) => {
                let c = old.consumers.get(i)?;
                let queue = &old.queues[c.queue].name;
                GraphItem::Consumer(self.consumers.iter().position(|n| {
                    n.connection == c.connection && &self.queues[n.queue].name == queue
                })?)
            }
        };
        self.items.iter().position(|i| *i == wanted)
    }
}

/// Whether an exchange is worth a row: user exchanges always, predeclared ones (the default
/// exchange and `amq.*`) only when they have bindings or `show_all` is set.
fn shown(name: &str, bound: bool, show_all: bool) -> bool {
    show_all || bound || !(name.is_empty() || name.starts_with("amq."))
}

pub fn exchange_label(x: &crate::broker::ExchangeSnapshot) -> String {
    let name = if x.name.is_empty() {
        "(default)"
    } else {
        &x.name
    };
    let mut flags = vec![x.kind.as_str()];
    if x.durable {
        flags.push("D");
    }
    if x.auto_delete {
        flags.push("AD");
    }
    if x.internal {
        flags.push("I");
    }
    format!("{name} [{}]", flags.join(" "))
}

pub fn queue_label(q: &crate::broker::QueueSnapshot) -> String {
    let mut flags = Vec::new();
    if q.durable {
        flags.push("D");
    }
    if q.exclusive {
        flags.push("X");
    }
    if q.auto_delete {
        flags.push("AD");
    }
    let flags = if flags.is_empty() {
        String::new()
    } else {
        format!(" [{}]", flags.join(" "))
    };
    format!("{}{flags}", q.name)
}

/// Refreshes the queue counters (depths, consumers) of an existing layout from a newer
/// snapshot of the same structure, without laying everything out again.
pub fn refresh_labels(graph: &mut GraphLayout, topology: &VhostSnapshot) {
    let by_name: HashMap<&str, &crate::broker::QueueSnapshot> = topology
        .queues
        .iter()
        .map(|q| (q.name.as_str(), q))
        .collect();
    for node in &mut graph.queues {
        if let Some(q) = by_name.get(node.name.as_str()) {
            node.label = queue_label(q);
            (node.ready, node.unacked, node.consumers) = (q.ready, q.unacked, q.consumers);
        }
    }
    graph.widths.queue_label = queue_label_width(graph);
}

/// The label of each connection of the snapshot (see [`crate::broker::ConnectionSnapshot`]);
/// connections with the same label get their client's port after it, to tell them apart.
pub fn connection_labels(topology: &VhostSnapshot) -> HashMap<ConnectionId, String> {
    let mut labels: HashMap<ConnectionId, String> = topology
        .connections
        .iter()
        .map(|c| (c.id, c.label()))
        .collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for label in labels.values() {
        *seen.entry(label.clone()).or_default() += 1;
    }
    for c in &topology.connections {
        let label = labels.get_mut(&c.id).expect("labelled above");
        if seen[label.as_str()] > 1 {
            if let Some((_, port)) = c.peer.rsplit_once(':') {
                *label = format!("{label} :{port}");
            }
        }
    }
    labels
}

/// Binding arguments shown as the edge label of a headers binding.
fn binding_key(b: &crate::events::BindingInfo, kind: &str) -> String {
    match kind {
        "headers" => {
            let args: Vec<String> = b
                .arguments
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if args.is_empty() {
                "(all)".to_string()
            } else {
                args.join(" ")
            }
        }
        "fanout" => "(fanout)".to_string(),
        _ if b.routing_key.is_empty() => "\"\"".to_string(),
        _ => b.routing_key.to_string(),
    }
}

/// One binding on its way to a row: which exchange (index into the shown exchanges), where it
/// leads, its key, the binding itself.
struct Edge<'a> {
    exchange: usize,
    target: EdgeTarget,
    /// For an exchange-to-exchange binding: whether it is drawn as a line into an exchange
    /// lane. A binding from an exchange that is itself a destination is not: its key names
    /// where it leads.
    chained: bool,
    key: String,
    binding: &'a crate::events::BindingInfo,
    implicit: bool,
}

/// Where each shown exchange and each binding sits, for one order of exchanges and bindings.
struct Rows {
    exchange_rows: Vec<usize>,
    /// Per edge (same index as the edges).
    edge_rows: Vec<usize>,
    /// Rows used by exchanges and bindings.
    end: usize,
}

/// `publishers`: per exchange, how many publisher rows it needs beside its bindings.
fn rows_for(
    order: &[usize],
    by_exchange: &[Vec<usize>],
    publishers: &[usize],
    edges: usize,
    spacing: usize,
    stacked: bool,
) -> Rows {
    let mut out = Rows {
        exchange_rows: vec![0; by_exchange.len()],
        edge_rows: vec![0; edges],
        end: 0,
    };
    let mut row = 0;
    for &x in order {
        let start = row;
        out.exchange_rows[x] = row;
        // Stacked, an exchange has a row of its own above its bindings.
        if by_exchange[x].is_empty() || stacked {
            row += 1;
        }
        for &e in &by_exchange[x] {
            out.edge_rows[e] = row;
            row += 1;
        }
        row = row.max(start + publishers[x]);
        row += spacing;
    }
    out.end = row.saturating_sub(spacing);
    out
}

/// A vertical lane gathering the bindings of one destination: the rows its bindings leave
/// from, and the row of the destination itself, which is one of the ends of the lane.
#[derive(Clone, Debug)]
struct Lane {
    rows: Vec<usize>,
    /// The row the destination sits on.
    home: usize,
}

impl Lane {
    fn span(&self) -> (usize, usize) {
        let (lo, hi) = (self.rows[0], self.rows[self.rows.len() - 1]);
        (lo.min(self.home), hi.max(self.home))
    }

    /// Whether a row passes strictly inside the lane (not at its ends).
    fn passes(&self, row: usize) -> bool {
        let (lo, hi) = self.span();
        lo < row && row < hi
    }
}

/// Crossings between two lanes when `left` is drawn left of `right`, for queue lanes: every
/// binding row of `right` runs left to right up to its lane, crossing `left` where `left`
/// passes; `left`'s home row runs on rightwards to the queues, crossing `right` where it passes.
fn pair_cost(left: &Lane, right: &Lane) -> usize {
    right.rows.iter().filter(|r| left.passes(**r)).count() + usize::from(right.passes(left.home))
}

/// Orders lanes to cross little: shorter lanes nearer the keys first, then swaps of neighbours
/// while a swap removes crossings. Quadratic only in the number of neighbours compared.
fn order_lanes(lanes: &[Lane]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..lanes.len()).collect();
    order.sort_by_key(|&i| {
        let (lo, hi) = lanes[i].span();
        (hi - lo, lo)
    });
    for _ in 0..lanes.len().min(64) {
        let mut changed = false;
        for i in 1..order.len() {
            let (a, b) = (&lanes[order[i - 1]], &lanes[order[i]]);
            if pair_cost(b, a) < pair_cost(a, b) {
                order.swap(i - 1, i);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    order
}

/// Lays the graph out; `spacing` blank rows separate exchanges.
///
/// The rule that keeps lines apart: a queue sits on the row of one of its own bindings, the
/// first or the last, and gets a lane of its own only when more than one binding leads to it.
/// So every row carries at most one binding and at most one queue, and when it carries both
/// the binding is the queue's own: the only places where lines meet are on a queue's own lane
/// and row, and every other meeting is a plain crossing. A queue with one binding is a
/// straight line. Exchanges that are the destination of an exchange-to-exchange binding get
/// a lane of their own the same way, drawn left of their label.
///
/// `stacked` puts each exchange on a row of its own above its bindings, for panes too narrow
/// to hold an exchange's name, a key and a queue's name side by side; its header row then
/// takes the place of the blank row between exchanges.
pub fn layout(
    topology: &VhostSnapshot,
    traffic: &Traffic,
    show_all: bool,
    spacing: usize,
    stacked: bool,
) -> GraphLayout {
    let spacing = if stacked {
        spacing.saturating_sub(1)
    } else {
        spacing
    };
    let labels = connection_labels(topology);
    let queue_names: std::collections::HashSet<&str> =
        topology.queues.iter().map(|q| q.name.as_str()).collect();
    // The default exchange's edges: one per queue and key the traffic reached, unless the
    // snapshot lists that binding itself.
    let implicit: Vec<crate::events::BindingInfo> = traffic
        .default_routes
        .iter()
        .filter(|(q, _)| queue_names.contains(&**q))
        .map(|(q, key)| crate::events::BindingInfo::to_queue("", q, key))
        .filter(|b| !topology.bindings.contains(b))
        .collect();
    let published: Vec<(ConnectionId, &str)> = traffic
        .published
        .iter()
        .filter(|(c, _)| labels.contains_key(c))
        .map(|(c, x)| (*c, &**x))
        .collect();
    // Exchanges with bindings or traffic are worth a row, predeclared or not.
    let bound: std::collections::HashSet<&str> = topology
        .bindings
        .iter()
        .chain(&implicit)
        .flat_map(|b| {
            let mut v = vec![&*b.source];
            if b.destination_is_exchange {
                v.push(&*b.destination);
            }
            v
        })
        .chain(published.iter().map(|(_, x)| *x))
        .collect();
    let shown_exchanges: Vec<&crate::broker::ExchangeSnapshot> = topology
        .exchanges
        .iter()
        .filter(|x| shown(&x.name, bound.contains(x.name.as_str()), show_all))
        .collect();
    let exchange_index: HashMap<&str, usize> = shown_exchanges
        .iter()
        .enumerate()
        .map(|(i, x)| (x.name.as_str(), i))
        .collect();
    let queue_index: HashMap<&str, usize> = topology
        .queues
        .iter()
        .enumerate()
        .map(|(i, q)| (q.name.as_str(), i))
        .collect();

    // Every binding that can be drawn: its source and destination are on the graph (an
    // exchange bound to itself leads nowhere new).
    let mut edges: Vec<Edge> = Vec::new();
    for (i, b) in topology.bindings.iter().chain(&implicit).enumerate() {
        let Some(&exchange) = exchange_index.get(&*b.source) else {
            continue;
        };
        let target = if b.destination_is_exchange {
            match exchange_index.get(&*b.destination) {
                Some(&x) if x != exchange => EdgeTarget::Exchange(x),
                _ => continue,
            }
        } else {
            match queue_index.get(&*b.destination) {
                Some(&q) => EdgeTarget::Queue(q),
                None => continue,
            }
        };
        edges.push(Edge {
            exchange,
            target,
            chained: false,
            key: binding_key(b, &shown_exchanges[exchange].kind),
            binding: b,
            implicit: i >= topology.bindings.len(),
        });
    }
    // Publishers of each exchange, by label; none stacked, for want of room on the left.
    let mut publishers: Vec<Vec<(ConnectionId, &str)>> = vec![Vec::new(); shown_exchanges.len()];
    for &(c, x) in &published {
        if let Some(&x) = exchange_index.get(x) {
            publishers[x].push((c, &labels[&c]));
        }
    }
    let hidden_publishers = if stacked {
        publishers
            .iter_mut()
            .map(std::mem::take)
            .map(|p| p.len())
            .sum()
    } else {
        0
    };
    for list in &mut publishers {
        list.sort_by_key(|&(c, label)| (label, c));
    }
    let publisher_rows: Vec<usize> = publishers.iter().map(Vec::len).collect();
    // Chains are drawn one level deep: from exchanges no binding leads to.
    let mut destination = vec![false; shown_exchanges.len()];
    for e in &edges {
        if let EdgeTarget::Exchange(x) = e.target {
            destination[x] = true;
        }
    }
    for e in &mut edges {
        e.chained = matches!(e.target, EdgeTarget::Exchange(_)) && !destination[e.exchange];
    }
    let mut by_exchange: Vec<Vec<usize>> = vec![Vec::new(); shown_exchanges.len()];
    for (i, e) in edges.iter().enumerate() {
        by_exchange[e.exchange].push(i);
    }

    // Order exchanges and their bindings so the bindings of one destination sit together
    // (barycenters, a few rounds), keeping the order that crosses least.
    let mut order: Vec<usize> = (0..shown_exchanges.len()).collect();
    let mut best = (usize::MAX, order.clone(), by_exchange.clone());
    // Counting crossings is quadratic in the lanes: big brokers get one round, uncounted.
    let rounds = if edges.len() > 2_000 { 1 } else { 6 };
    // The rows of one order of exchanges and bindings, and where that puts the destinations.
    let arrange = |order: &[usize], by_exchange: &[Vec<usize>], count: bool| {
        let rows = rows_for(
            order,
            by_exchange,
            &publisher_rows,
            edges.len(),
            spacing,
            stacked,
        );
        let placed = place(
            &edges,
            &rows,
            topology.queues.len(),
            shown_exchanges.len(),
            count,
        );
        (rows, placed)
    };
    for round in 0..rounds {
        let (rows, placed) = arrange(&order, &by_exchange, rounds > 1);
        let cost = placed.crossings;
        if cost < best.0 {
            best = (cost, order.clone(), by_exchange.clone());
        }
        if cost == 0 || round + 1 == rounds {
            break;
        }
        // Where each destination is now: the mean row of what leads to it.
        let mut sums: HashMap<EdgeTarget, (usize, usize)> = HashMap::new();
        for (i, e) in edges.iter().enumerate() {
            let s = sums.entry(e.target).or_default();
            s.0 += rows.edge_rows[i];
            s.1 += 1;
        }
        let position = |e: &Edge| match e.target {
            EdgeTarget::Exchange(x) => rows.exchange_rows[x] * 2,
            target => {
                let (s, n) = sums[&target];
                s * 2 / n
            }
        };
        for list in &mut by_exchange {
            list.sort_by_cached_key(|&i| (position(&edges[i]), edges[i].key.clone()));
        }
        let mean = |x: usize| {
            let list = &by_exchange[x];
            if list.is_empty() {
                rows.exchange_rows[x] * 2
            } else {
                list.iter().map(|&i| position(&edges[i])).sum::<usize>() / list.len()
            }
        };
        order.sort_by_cached_key(|&x| mean(x));
    }
    let (mut cost, mut order, by_exchange) = best;
    // Small graphs: swap neighbouring exchanges while that removes crossings.
    if rounds > 1 && order.len() <= 40 {
        let crossings = |order: &[usize]| arrange(order, &by_exchange, true).1.crossings;
        for _ in 0..4 {
            let mut better = false;
            for i in 1..order.len() {
                if cost == 0 {
                    break;
                }
                order.swap(i - 1, i);
                let swapped = crossings(&order);
                if swapped < cost {
                    cost = swapped;
                    better = true;
                } else {
                    order.swap(i - 1, i);
                }
            }
            if !better {
                break;
            }
        }
    }
    let (rows, placed) = arrange(&order, &by_exchange, false);

    // Exchanges in row order.
    let mut out = GraphLayout {
        stacked,
        hidden_publishers,
        ..GraphLayout::default()
    };
    let mut exchange_slot = vec![0; shown_exchanges.len()];
    for (slot, &x) in order.iter().enumerate() {
        exchange_slot[x] = slot;
        out.exchanges.push(ExchangeNode {
            name: shown_exchanges[x].name.clone(),
            label: exchange_label(shown_exchanges[x]),
            row: rows.exchange_rows[x],
            lane: placed.exchange_lanes[x],
        });
        for (i, &(connection, label)) in publishers[x].iter().enumerate() {
            out.publishers.push(PublisherNode {
                connection,
                label: label.to_string(),
                exchange: slot,
                row: rows.exchange_rows[x] + i,
            });
        }
    }
    out.chain_lanes = placed.chain_lanes;

    // Queues: fed ones on their home rows, the others below everything, in name order.
    let mut used: std::collections::HashSet<usize> = std::collections::HashSet::new();
    let mut queue_rows: Vec<Option<usize>> = placed.queue_homes.clone();
    for r in queue_rows.iter().flatten() {
        used.insert(*r);
    }
    let mut next = used.iter().max().map(|r| r + 1 + spacing).unwrap_or(0);
    for r in queue_rows.iter_mut().filter(|r| r.is_none()) {
        while used.contains(&next) {
            next += 1;
        }
        *r = Some(next);
        used.insert(next);
        next += 1 + spacing;
    }
    let mut queue_order: Vec<usize> = (0..topology.queues.len()).collect();
    queue_order.sort_by_key(|&q| queue_rows[q]);
    let mut queue_slot = vec![0; topology.queues.len()];
    for (slot, &q) in queue_order.iter().enumerate() {
        queue_slot[q] = slot;
        let snapshot = &topology.queues[q];
        out.queues.push(QueueNode {
            name: snapshot.name.clone(),
            label: queue_label(snapshot),
            row: queue_rows[q].unwrap_or(0),
            lane: placed.queue_lanes[q],
            ready: snapshot.ready,
            unacked: snapshot.unacked,
            consumers: snapshot.consumers,
            more_consumers: 0,
        });
    }
    out.lanes = placed.lanes;

    // Bindings in row order.
    let mut edge_order: Vec<usize> = (0..edges.len()).collect();
    edge_order.sort_by_key(|&i| rows.edge_rows[i]);
    for i in edge_order {
        let e = &edges[i];
        out.bindings.push(BindingRow {
            row: rows.edge_rows[i],
            exchange: exchange_slot[e.exchange],
            key: e.key.clone(),
            target: match e.target {
                EdgeTarget::Queue(q) => EdgeTarget::Queue(queue_slot[q]),
                EdgeTarget::Exchange(x) => EdgeTarget::Exchange(exchange_slot[x]),
            },
            binding: e.binding.clone(),
            implicit: e.implicit,
        });
    }
    out.rows = rows.end.max(next.saturating_sub(spacing));
    place_consumers(&mut out, topology, &labels);
    // Exchanges, publishers and bindings are all in row order; an exchange comes after its
    // publishers and before its bindings, a queue before its consumers.
    let mut publishers = out.publishers.iter().enumerate().peekable();
    let mut bindings = out.bindings.iter().enumerate().peekable();
    for i in 0..out.exchanges.len() {
        while let Some((p, _)) = publishers.next_if(|(_, p)| p.exchange == i) {
            out.items.push(GraphItem::Publisher(p));
        }
        out.items.push(GraphItem::Exchange(i));
        while let Some((b, _)) = bindings.next_if(|(_, b)| b.exchange == i) {
            out.items.push(GraphItem::Binding(b));
        }
    }
    let mut consumers = out.consumers.iter().enumerate().peekable();
    for q in 0..out.queues.len() {
        out.items.push(GraphItem::Queue(q));
        while let Some((c, _)) = consumers.next_if(|(_, c)| c.queue == q) {
            out.items.push(GraphItem::Consumer(c));
        }
    }
    out.widths = measure(&out);
    out
}

/// Puts each queue's consumers on rows right of it, one node per connection (its tags
/// together), the first on the queue's own row. Rows are added below a queue whose consumers
/// need more than the rows before the next queue, up to [`CONSUMER_ROWS`]; the rest count as
/// `+N` on the last of them.
fn place_consumers(
    out: &mut GraphLayout,
    topology: &VhostSnapshot,
    labels: &HashMap<ConnectionId, String>,
) {
    let mut nodes: Vec<Vec<ConsumerNode>> = vec![Vec::new(); out.queues.len()];
    let slot: HashMap<&str, usize> = out
        .queues
        .iter()
        .enumerate()
        .map(|(i, q)| (q.name.as_str(), i))
        .collect();
    for c in &topology.consumers {
        let Some(&q) = slot.get(c.queue.as_str()) else {
            continue;
        };
        match nodes[q].iter_mut().find(|n| n.connection == c.connection) {
            Some(node) => node.tags.push(c.tag.clone()),
            None => nodes[q].push(ConsumerNode {
                queue: q,
                connection: c.connection,
                tags: vec![c.tag.clone()],
                label: labels.get(&c.connection).cloned().unwrap_or_default(),
                row: 0,
            }),
        }
    }
    for list in &mut nodes {
        list.sort_by(|a, b| (&a.label, a.connection).cmp(&(&b.label, b.connection)));
        for node in list.iter_mut() {
            let tags = node.tags.join(", ");
            node.label = if node.label.is_empty() {
                tags
            } else {
                format!("{} {tags}", node.label)
            };
        }
    }
    // Queues are in row order: make room below each, shifting what follows.
    for (q, list) in nodes.iter_mut().enumerate() {
        if list.len() > CONSUMER_ROWS {
            out.queues[q].more_consumers = list.len() - (CONSUMER_ROWS - 1);
            list.truncate(CONSUMER_ROWS - 1);
        }
        let needed = list.len() + usize::from(out.queues[q].more_consumers > 0);
        let row = out.queues[q].row;
        let free = out
            .queues
            .get(q + 1)
            .map_or(usize::MAX, |next| next.row - row);
        if needed > free {
            shift_rows(out, row + 1, needed - free);
        }
        for (i, node) in list.iter_mut().enumerate() {
            node.row = row + i;
        }
        out.rows = out.rows.max(row + needed);
    }
    out.consumers = nodes.into_iter().flatten().collect();
}

/// Moves everything on row `from` or below down by `n` rows.
fn shift_rows(out: &mut GraphLayout, from: usize, n: usize) {
    let shift = |row: &mut usize| {
        if *row >= from {
            *row += n;
        }
    };
    out.exchanges.iter_mut().for_each(|x| shift(&mut x.row));
    out.bindings.iter_mut().for_each(|b| shift(&mut b.row));
    out.queues.iter_mut().for_each(|q| shift(&mut q.row));
    out.publishers.iter_mut().for_each(|p| shift(&mut p.row));
    out.rows += n;
}

/// Homes and lanes of the destinations for one set of rows, and the crossings that makes.
struct Placed {
    /// Per queue of the snapshot: its row when a binding leads to it.
    queue_homes: Vec<Option<usize>>,
    queue_lanes: Vec<Option<usize>>,
    lanes: usize,
    /// Per shown exchange: its lane when it is the destination of a binding.
    exchange_lanes: Vec<Option<usize>>,
    chain_lanes: usize,
    crossings: usize,
}

/// Crossings are counted only when `count` is set.
fn place(edges: &[Edge], rows: &Rows, queues: usize, exchanges: usize, count: bool) -> Placed {
    let mut queue_rows: Vec<Vec<usize>> = vec![Vec::new(); queues];
    let mut chain_rows: Vec<Vec<usize>> = vec![Vec::new(); exchanges];
    for (i, e) in edges.iter().enumerate() {
        match e.target {
            EdgeTarget::Queue(q) => queue_rows[q].push(rows.edge_rows[i]),
            EdgeTarget::Exchange(x) if e.chained => chain_rows[x].push(rows.edge_rows[i]),
            EdgeTarget::Exchange(_) => {}
        }
    }
    let mut out = Placed {
        queue_homes: vec![None; queues],
        queue_lanes: vec![None; queues],
        lanes: 0,
        exchange_lanes: vec![None; exchanges],
        chain_lanes: 0,
        crossings: 0,
    };

    // Queue lanes. A queue's home is the last row of its bindings, or the first when that
    // crosses less.
    let mut lanes: Vec<(usize, Lane)> = Vec::new();
    let mut straight: Vec<usize> = Vec::new();
    for (q, list) in queue_rows.iter_mut().enumerate() {
        list.sort_unstable();
        match list.len() {
            0 => {}
            1 => {
                out.queue_homes[q] = Some(list[0]);
                straight.push(list[0]);
            }
            _ => lanes.push((
                q,
                Lane {
                    rows: list.clone(),
                    home: list[list.len() - 1],
                },
            )),
        }
    }
    if lanes.len() <= 200 {
        for i in 0..lanes.len() {
            let cost = |lane: &Lane, lanes: &[(usize, Lane)]| -> usize {
                lanes
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, (_, other))| pair_cost(lane, other).min(pair_cost(other, lane)))
                    .sum()
            };
            let mut top = lanes[i].1.clone();
            top.home = top.rows[0];
            if cost(&top, &lanes) < cost(&lanes[i].1, &lanes) {
                lanes[i].1 = top;
            }
        }
    }
    let just_lanes: Vec<Lane> = lanes.iter().map(|(_, l)| l.clone()).collect();
    let order = order_lanes(&just_lanes);
    for (position, &i) in order.iter().enumerate() {
        let (q, lane) = &lanes[i];
        out.queue_homes[*q] = Some(lane.home);
        out.queue_lanes[*q] = Some(position);
    }
    out.lanes = lanes.len();
    for w in 0..order.len() * usize::from(count) {
        for v in w + 1..order.len() {
            out.crossings += pair_cost(&just_lanes[order[w]], &just_lanes[order[v]]);
        }
    }
    // A straight line crosses every lane it passes.
    for r in straight.iter().filter(|_| count) {
        out.crossings += just_lanes.iter().filter(|l| l.passes(*r)).count();
    }

    // Exchange lanes, left of the inner exchanges' labels, numbered from the left. Binding
    // rows run up to their lane from the left, the exchange's row on from it to the label, as
    // for queues.
    let mut chains: Vec<(usize, Lane)> = Vec::new();
    for (x, list) in chain_rows.iter_mut().enumerate() {
        if list.is_empty() {
            continue;
        }
        list.sort_unstable();
        chains.push((
            x,
            Lane {
                rows: list.clone(),
                home: rows.exchange_rows[x],
            },
        ));
    }
    let just_chains: Vec<Lane> = chains.iter().map(|(_, l)| l.clone()).collect();
    let order = order_lanes(&just_chains);
    for (position, &i) in order.iter().enumerate() {
        out.exchange_lanes[chains[i].0] = Some(position);
    }
    out.chain_lanes = chains.len();
    for w in 0..order.len() * usize::from(count) {
        for v in w + 1..order.len() {
            out.crossings += pair_cost(&just_chains[order[w]], &just_chains[order[v]]);
        }
    }
    // Bindings of the outer exchanges to queues run through the exchange lanes.
    for (i, e) in edges.iter().enumerate().filter(|_| count) {
        if matches!(e.target, EdgeTarget::Queue(_)) && chain_rows[e.exchange].is_empty() {
            let row = rows.edge_rows[i];
            out.crossings += just_chains.iter().filter(|l| l.passes(row)).count();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{ExchangeSnapshot as X, QueueSnapshot as Q};
    use crate::events::BindingInfo;

    fn binding(source: &str, destination: &str, key: &str) -> BindingInfo {
        BindingInfo::to_queue(source, destination, key)
    }

    /// The rule the drawing relies on: a queue sits on one of its bindings' rows, at an end
    /// of its lane, and only queues with more than one binding have a lane.
    #[test]
    fn queues_sit_on_their_own_binding_rows() {
        let topology = VhostSnapshot {
            name: "/".into(),
            exchanges: vec![X::new("jobs", "direct"), X::new("shop", "topic")],
            queues: vec![Q::new("billing"), Q::new("shipping"), Q::new("work")],
            bindings: vec![
                binding("jobs", "billing", "invoice"),
                binding("jobs", "work", "resize"),
                binding("shop", "billing", "order.paid"),
                binding("shop", "shipping", "order.#"),
                binding("shop", "work", "job.*"),
            ],
            ..Default::default()
        };
        for stacked in [false, true] {
            let g = layout(&topology, &Traffic::default(), false, 1, stacked);
            for (q, queue) in g.queues.iter().enumerate() {
                let rows: Vec<usize> = g
                    .bindings
                    .iter()
                    .filter(|b| b.target == EdgeTarget::Queue(q))
                    .map(|b| b.row)
                    .collect();
                let (lo, hi) = (rows.iter().min().unwrap(), rows.iter().max().unwrap());
                assert!(queue.row == *lo || queue.row == *hi, "{queue:?} {rows:?}");
                assert_eq!(queue.lane.is_some(), rows.len() > 1, "{queue:?}");
            }
            let mut rows: Vec<usize> = g.bindings.iter().map(|b| b.row).collect();
            rows.extend(g.exchanges.iter().filter(|_| stacked).map(|x| x.row));
            let n = rows.len();
            rows.sort_unstable();
            rows.dedup();
            assert_eq!(rows.len(), n, "one binding or exchange header a row");
        }
    }

    /// A queue's consumers get rows of their own below it, one per connection, pushing what
    /// follows down; past four rows the rest count as `+N`. Publishers sit on their exchange's
    /// rows, and two connections of one label are told apart by their ports.
    #[test]
    fn consumers_and_publishers_get_rows_of_their_own() {
        use crate::broker::{ConnectionSnapshot, ConsumerSnapshot};
        use crate::events::ClientInfo;
        let connection = |id: u64| ConnectionSnapshot {
            id,
            peer: format!("10.0.0.1:{}", 5000 + id),
            client: ClientInfo {
                connection_name: Some(format!("worker:{id}:ab")),
                product: None,
            },
            ..Default::default()
        };
        let consumer = |queue: &str, connection: u64, tag: &str| ConsumerSnapshot {
            queue: queue.into(),
            tag: tag.into(),
            connection,
            ..Default::default()
        };
        let mut consumers: Vec<ConsumerSnapshot> =
            (1..=6).map(|c| consumer("busy", c, "t")).collect();
        consumers.push(consumer("busy", 1, "u"));
        consumers.push(consumer("calm", 2, "t"));
        let topology = VhostSnapshot {
            name: "/".into(),
            exchanges: vec![X::new("jobs", "direct")],
            queues: vec![Q::new("busy"), Q::new("calm")],
            bindings: vec![binding("jobs", "busy", "a"), binding("jobs", "calm", "b")],
            connections: (1..=6).map(connection).collect(),
            consumers,
        };
        let traffic = Traffic {
            published: [(1, "jobs".into()), (2, "jobs".into())].into(),
            ..Default::default()
        };
        let g = layout(&topology, &traffic, false, 1, false);
        let busy: Vec<(&str, usize)> = g
            .consumers
            .iter()
            .filter(|c| c.queue == 0)
            .map(|c| (c.label.as_str(), c.row))
            .collect();
        assert_eq!(
            busy,
            [
                ("worker :5001 t, u", 0),
                ("worker :5002 t", 1),
                ("worker :5003 t", 2)
            ]
        );
        assert_eq!(g.queues[0].more_consumers, 3);
        // Three nodes and the `+3` row, then the next queue.
        assert_eq!(g.queues[1].row, 4);
        assert_eq!(g.bindings[1].row, 4);
        let publishers: Vec<(&str, usize)> = g
            .publishers
            .iter()
            .map(|p| (p.label.as_str(), p.row))
            .collect();
        // The rows made for busy's consumers pushed the second publisher down with the rest.
        assert_eq!(publishers, [("worker :5001", 0), ("worker :5002", 4)]);
    }

    #[test]
    fn one_row_per_binding_and_queues_follow_their_bindings() {
        let topology = VhostSnapshot {
            name: "/".into(),
            exchanges: vec![
                X::new("", "direct"),
                X::new("a", "topic"),
                X::new("b", "fanout"),
            ],
            queues: vec![Q::new("late"), Q::new("early"), Q::new("lonely")],
            bindings: vec![binding("a", "early", "x.*"), binding("b", "late", "")],
            ..Default::default()
        };
        let g = layout(&topology, &Traffic::default(), false, 1, false);
        // The default exchange has no bindings and is hidden.
        assert_eq!(
            g.exchanges
                .iter()
                .map(|x| x.name.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(g.bindings.len(), 2);
        let names: Vec<&str> = g.queues.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["early", "late", "lonely"]);
        assert!(g.queues.windows(2).all(|w| w[0].row < w[1].row));
        assert_eq!(g.bindings[1].key, "(fanout)");
        // The arrow keys walk each exchange, then its bindings, then the queues.
        use GraphItem::*;
        assert_eq!(
            g.items,
            [
                Exchange(0),
                Binding(0),
                Exchange(1),
                Binding(1),
                Queue(0),
                Queue(1),
                Queue(2)
            ]
        );
        assert_eq!(g.row_of(Binding(1)), Some(g.exchanges[1].row));
    }
}
