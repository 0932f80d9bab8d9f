//! [`layout`]: every exchange, binding, queue, publisher and consumer gets its row, and the
//! queues and chained exchanges their lanes, ordered so that lines cross little.
//!
//! It may import the snapshot types and the traffic seen, nothing that draws.

use std::collections::HashMap;

use super::labels::{
    binding_key, connection_labels, exchange_label, measure, offsets, queue_label,
};
use super::{
    BindingRow, ConsumerNode, EdgeTarget, ExchangeNode, GraphItem, GraphLayout, GroupLine, Groups,
    PublisherNode, QueueNode,
};
use crate::broker::VhostSnapshot;
use crate::events::ConnectionId;
use crate::ui::model::Traffic;

/// At most this many consumer rows per queue; more consumers are counted as `+N`.
const CONSUMER_ROWS: usize = 4;

/// Where each item is in its list, by name.
fn positions<'a, T>(items: &'a [T], name: impl Fn(&'a T) -> &'a String) -> HashMap<&'a str, usize> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| (name(item).as_str(), i))
        .collect()
}

/// Whether an exchange is worth a row: user exchanges always, predeclared ones (the default
/// exchange and `amq.*`) only when they have bindings or `show_all` is set.
fn shown(name: &str, bound: bool, show_all: bool) -> bool {
    show_all || bound || !(name.is_empty() || name.starts_with("amq."))
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

/// The queue column of a grouped graph, below the bindings: per queue its row from the top
/// of the column, and each group's label line.
struct QueueBlock {
    offsets: Vec<usize>,
    labels: Vec<(usize, String)>,
}

/// Groups in their order, each label then its queues by name; a blank row between groups when
/// exchanges have one between them.
fn queue_block(topology: &VhostSnapshot, groups: &Groups, spacing: usize) -> QueueBlock {
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); groups.labels.len()];
    let last = members.len() - 1;
    for (q, queue) in topology.queues.iter().enumerate() {
        let group = groups.queues.get(&queue.name).copied().unwrap_or(0);
        members[group.min(last)].push(q);
    }
    let mut block = QueueBlock {
        offsets: vec![0; topology.queues.len()],
        labels: Vec::new(),
    };
    let mut row = 0;
    for (group, list) in members.iter_mut().enumerate() {
        if list.is_empty() {
            continue;
        }
        if row > 0 {
            row += spacing.min(1);
        }
        block.labels.push((row, groups.labels[group].clone()));
        row += 1;
        list.sort_by_key(|&q| &topology.queues[q].name);
        for &q in list.iter() {
            block.offsets[q] = row;
            row += 1;
        }
    }
    block
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
///
/// `groups` renames clients, and when it has labels, gathers the queues by group in a column
/// below the bindings, each queue at the end of a lane of its own (so still one queue per
/// row, and lines only cross or join their own queue's).
pub fn layout(
    topology: &VhostSnapshot,
    traffic: &Traffic,
    show_all: bool,
    spacing: usize,
    stacked: bool,
    groups: &Groups,
) -> GraphLayout {
    let spacing = if stacked {
        spacing.saturating_sub(1)
    } else {
        spacing
    };
    let grouped = !groups.labels.is_empty();
    // Grouped, clients go by the lens's names; else by the snapshot's, the lens's kept for
    // where they fit (see `PublisherNode::long`).
    let plain = connection_labels(topology, &HashMap::new());
    let named = connection_labels(topology, &groups.names);
    let (labels, long) = match grouped {
        true => (named, HashMap::new()),
        false => (plain, named),
    };
    let block = grouped.then(|| queue_block(topology, groups, spacing));
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
    let exchange_index = positions(&shown_exchanges, |x| &x.name);
    let queue_index = positions(&topology.queues, |q| &q.name);

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
        list.sort_by_key(|&(c, label)| (groups.connections.get(&c), label, c));
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
    // Counting crossings is quadratic in the lanes: big brokers get one round, uncounted; so
    // does a grouped graph of many queues, which has a lane per queue.
    let many_lanes = grouped && topology.queues.len() > 60;
    let rounds = if edges.len() > 2_000 || many_lanes {
        1
    } else {
        6
    };
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
            (topology.queues.len(), shown_exchanges.len()),
            block.as_ref(),
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
            by_name: false,
        });
        for (i, &(connection, label)) in publishers[x].iter().enumerate() {
            out.publishers.push(PublisherNode {
                connection,
                label: label.to_string(),
                long: longer(&long, connection, label),
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
    // Below bindings, queues none of them leads to get a heading of their own after a blank
    // row, or the first would read as bound where the lines above end. Each still has the
    // default exchange's binding, as every queue does; the graph leaves that out.
    if queue_rows.iter().any(Option::is_none) && !grouped && (rows.end > 0 || !used.is_empty()) {
        let heading = next.max(rows.end + spacing) + 1;
        out.unbound = Some(heading);
        next = heading + 1;
    }
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
            offsets: offsets(snapshot),
            more_consumers: 0,
            by_name: false,
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
    if let Some(block) = &block {
        let top = block_top(&rows);
        out.groups = (block.labels.iter())
            .map(|(offset, label)| GroupLine {
                row: top + offset,
                label: label.clone(),
            })
            .collect();
        out.rows = out.rows.max(out.groups.last().map_or(0, |g| g.row + 1));
    }
    place_consumers(&mut out, topology, &labels, &long);
    mark_by_name(&mut out);
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

/// A connection's longer name in `long`, when it says more than its `label`.
fn longer(long: &HashMap<ConnectionId, String>, c: ConnectionId, label: &str) -> Option<String> {
    long.get(&c).filter(|l| *l != label).cloned()
}

/// Puts each queue's consumers on rows right of it, one node per connection (its tags
/// together), the first on the queue's own row. Rows are added below a queue whose consumers
/// need more than the rows before the next queue, up to [`CONSUMER_ROWS`]; the rest count as
/// `+N` on the last of them.
fn place_consumers(
    out: &mut GraphLayout,
    topology: &VhostSnapshot,
    labels: &HashMap<ConnectionId, String>,
    long: &HashMap<ConnectionId, String>,
) {
    let mut nodes: Vec<Vec<ConsumerNode>> = vec![Vec::new(); out.queues.len()];
    let slot = positions(&out.queues, |q| &q.name);
    for c in &topology.consumers {
        let Some(&q) = slot.get(c.queue.as_str()) else {
            continue;
        };
        match nodes[q].iter_mut().find(|n| n.connection == c.connection) {
            Some(node) => node.tags.push(c.tag.clone()),
            None => {
                let label = labels.get(&c.connection).cloned().unwrap_or_default();
                nodes[q].push(ConsumerNode {
                    queue: q,
                    connection: c.connection,
                    tags: vec![c.tag.clone()],
                    long: longer(long, c.connection, &label),
                    label,
                    row: 0,
                })
            }
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
        // Up to the next queue, or the next group's label or heading.
        let next_label = (out.groups.iter().map(|g| g.row))
            .chain(out.unbound)
            .filter(|&r| r > row)
            .min();
        let next_queue = out.queues.get(q + 1).map(|next| next.row);
        let free = next_queue
            .into_iter()
            .chain(next_label)
            .min()
            .map_or(usize::MAX, |next| next - row);
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

/// Marks the queues whose label takes the place of their key (see [`QueueNode::by_name`]):
/// the default exchange's edge is their only one, keyed by their name, and no lane passes
/// their row, so the label may run across the key and lane columns; and the exchanges all of
/// whose edges lead to such queues (see [`ExchangeNode::by_name`]).
fn mark_by_name(out: &mut GraphLayout) {
    // The rows each lane spans: a queue's, or an inner exchange's the outer ones lead to.
    let mut spans: HashMap<EdgeTarget, (usize, usize)> = HashMap::new();
    for b in &out.bindings {
        let home = match b.target {
            EdgeTarget::Queue(q) if out.queues[q].lane.is_some() => out.queues[q].row,
            EdgeTarget::Exchange(x)
                if out.exchanges[x].lane.is_some() && out.exchanges[b.exchange].lane.is_none() =>
            {
                out.exchanges[x].row
            }
            _ => continue,
        };
        let (lo, hi) = spans.entry(b.target).or_insert((home, home));
        (*lo, *hi) = ((*lo).min(b.row), (*hi).max(b.row));
    }
    for b in &out.bindings {
        let EdgeTarget::Queue(q) = b.target else {
            continue;
        };
        let queue = &out.queues[q];
        // Whether a lane passes is asked last: a grouped graph has a lane per queue.
        let passed = || spans.values().any(|&(lo, hi)| lo < b.row && b.row < hi);
        if out.exchanges[b.exchange].name.is_empty()
            && *b.binding.routing_key == *queue.name
            && queue.lane.is_none()
            && queue.row == b.row
            && !passed()
        {
            out.queues[q].by_name = true;
        }
    }
    for (i, x) in out.exchanges.iter_mut().enumerate() {
        let mut edges = out.bindings.iter().filter(|b| b.exchange == i).peekable();
        x.by_name = x.lane.is_none()
            && edges.peek().is_some()
            && edges.all(|b| matches!(b.target, EdgeTarget::Queue(q) if out.queues[q].by_name));
    }
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
    out.groups.iter_mut().for_each(|g| shift(&mut g.row));
    out.unbound.iter_mut().for_each(shift);
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

/// The first row of a grouped queue column: one blank row below the bindings.
fn block_top(rows: &Rows) -> usize {
    if rows.end == 0 {
        0
    } else {
        rows.end + 1
    }
}

/// Crossings are counted only when `count` is set. Grouped (`block`), every queue sits in the
/// block, at the bottom end of its lane.
fn place(
    edges: &[Edge],
    rows: &Rows,
    (queues, exchanges): (usize, usize),
    block: Option<&QueueBlock>,
    count: bool,
) -> Placed {
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
        if let Some(block) = block {
            let home = block_top(rows) + block.offsets[q];
            out.queue_homes[q] = Some(home);
            if !list.is_empty() {
                let rows = list.clone();
                lanes.push((q, Lane { rows, home }));
            }
            continue;
        }
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
    if lanes.len() <= 200 && block.is_none() {
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
