//! Lays the exchange -> queue graph out in rows, before anything is drawn.
//!
//! ```text
//!  exchanges            bindings (one row each)      lanes   queues
//!  animals [topic] ──── *.orange.* ───────────────────┐
//!                  ──── *.*.rabbit ───────────────────┼──┐
//!                  ──── lazy.# ───────────────────────┼──┤
//!                                                     └──┼──▶ Q1  2 ready
//!                                                        └──▶ Q2  5 ready
//! ```
//!
//! Every binding gets its own row under its exchange, so keys never overlap. Every queue gets a
//! vertical lane that gathers the bindings leading to it. Queues are ordered by the mean row of
//! their bindings (a barycenter heuristic), which keeps lanes short and crossings few.
//! Exchange-to-exchange bindings lead to the destination exchange's own row.

use std::collections::HashMap;

use crate::broker::VhostSnapshot;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangeNode {
    pub name: String,
    pub label: String,
    pub row: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueNode {
    pub name: String,
    pub label: String,
    pub row: usize,
    /// Which lane (0 = nearest the exchanges) gathers this queue's bindings.
    pub lane: usize,
}

/// Where a binding row leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
}

/// What can be selected in the graph. [`GraphLayout::items`] lists them in the order the arrow
/// keys walk: each exchange followed by its bindings, top to bottom, then the queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphItem {
    Exchange(usize),
    Binding(usize),
    Queue(usize),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct GraphLayout {
    pub rows: usize,
    pub exchanges: Vec<ExchangeNode>,
    pub bindings: Vec<BindingRow>,
    pub queues: Vec<QueueNode>,
    pub lanes: usize,
    pub items: Vec<GraphItem>,
}

impl GraphLayout {
    /// The row an item sits on.
    pub fn row_of(&self, item: GraphItem) -> Option<usize> {
        match item {
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
    format!(
        "{}{flags}  {} ready {} unacked {} cons",
        q.name, q.ready, q.unacked, q.consumers
    )
}

/// Refreshes the queue labels (depths, consumers) of an existing layout from a newer snapshot
/// of the same structure, without laying everything out again.
pub fn refresh_labels(graph: &mut GraphLayout, topology: &VhostSnapshot) {
    let by_name: HashMap<&str, &crate::broker::QueueSnapshot> = topology
        .queues
        .iter()
        .map(|q| (q.name.as_str(), q))
        .collect();
    for node in &mut graph.queues {
        if let Some(q) = by_name.get(node.name.as_str()) {
            node.label = queue_label(q);
        }
    }
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

/// Lays the graph out; `spacing` blank rows separate exchanges (and queues).
pub fn layout(topology: &VhostSnapshot, show_all: bool, spacing: usize) -> GraphLayout {
    let mut out = GraphLayout::default();
    let bound: std::collections::HashSet<&str> = topology
        .bindings
        .iter()
        .flat_map(|b| {
            let mut v = vec![&*b.source];
            if b.destination_is_exchange {
                v.push(&*b.destination);
            }
            v
        })
        .collect();
    let mut by_source: HashMap<&str, Vec<&crate::events::BindingInfo>> = HashMap::new();
    for b in &topology.bindings {
        by_source.entry(&*b.source).or_default().push(b);
    }
    let queue_index: HashMap<&str, usize> = topology
        .queues
        .iter()
        .enumerate()
        .map(|(i, q)| (q.name.as_str(), i))
        .collect();

    // Exchanges, each followed by one row per binding.
    let mut row = 0;
    let mut exchange_rows: HashMap<&str, usize> = HashMap::new();
    let mut pending_edges: Vec<(usize, usize, String, &crate::events::BindingInfo)> = Vec::new();
    for x in &topology.exchanges {
        if !shown(&x.name, bound.contains(x.name.as_str()), show_all) {
            continue;
        }
        let index = out.exchanges.len();
        exchange_rows.insert(x.name.as_str(), index);
        out.exchanges.push(ExchangeNode {
            name: x.name.clone(),
            label: exchange_label(x),
            row,
        });
        let bindings = by_source.get(x.name.as_str()).cloned().unwrap_or_default();
        if bindings.is_empty() {
            row += 1;
        }
        for b in bindings {
            pending_edges.push((row, index, binding_key(b, &x.kind), b));
            row += 1;
        }
        row += spacing;
    }

    // Queue order by barycenter of the rows that lead to them.
    let mut sums: HashMap<usize, (usize, usize)> = HashMap::new();
    for (r, _, _, b) in &pending_edges {
        if !b.destination_is_exchange {
            if let Some(&q) = queue_index.get(&*b.destination) {
                let e = sums.entry(q).or_default();
                e.0 += r;
                e.1 += 1;
            }
        }
    }
    let mut order: Vec<usize> = (0..topology.queues.len()).collect();
    // Snapshots list queues by name, so a stable sort keeps name order among equals.
    order.sort_by_cached_key(|q| match sums.get(q) {
        Some((s, n)) => (0, s * 1000 / n),
        None => (1, 0),
    });
    let mut slot_of: HashMap<usize, usize> = HashMap::new();
    let mut lanes = 0;
    for (slot, q) in order.iter().enumerate() {
        slot_of.insert(*q, slot);
        let lane = if sums.contains_key(q) {
            lanes += 1;
            lanes - 1
        } else {
            0
        };
        let snapshot = &topology.queues[*q];
        out.queues.push(QueueNode {
            name: snapshot.name.clone(),
            label: queue_label(snapshot),
            // Queues are spread over the graph's height, aligned with their bindings when
            // possible, never two on one row.
            row: 0,
            lane,
        });
    }
    out.lanes = lanes;
    // Each queue sits at its barycenter row or below the previous queue.
    let mut next_free = 0;
    for (slot, q) in order.iter().enumerate() {
        let wanted = sums.get(q).map(|(s, n)| s / n).unwrap_or(next_free);
        let r = wanted.max(next_free);
        out.queues[slot].row = r;
        next_free = r + 1 + spacing;
    }

    for (r, exchange, key, b) in pending_edges {
        let target = if b.destination_is_exchange {
            match exchange_rows.get(&*b.destination) {
                Some(&x) => EdgeTarget::Exchange(x),
                None => continue,
            }
        } else {
            match queue_index
                .get(&*b.destination)
                .and_then(|q| slot_of.get(q))
            {
                Some(&slot) => EdgeTarget::Queue(slot),
                None => continue,
            }
        };
        out.bindings.push(BindingRow {
            row: r,
            exchange,
            key,
            target,
            binding: b.clone(),
        });
    }
    out.rows = row.max(next_free);
    // Exchanges and bindings are both in row order; an exchange shares its row with its first
    // binding and comes before it.
    let mut bindings = out.bindings.iter().enumerate().peekable();
    for i in 0..out.exchanges.len() {
        out.items.push(GraphItem::Exchange(i));
        while let Some((b, _)) = bindings.next_if(|(_, b)| b.exchange == i) {
            out.items.push(GraphItem::Binding(b));
        }
    }
    out.items
        .extend((0..out.queues.len()).map(GraphItem::Queue));
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
        };
        let g = layout(&topology, false, 1);
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
