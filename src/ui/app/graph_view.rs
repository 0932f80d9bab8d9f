//! The graph pane's own state: the layout drawn last, what is selected in it, how far it is
//! panned, whether the predeclared exchanges show, and how queues and clients are grouped.
//!
//! It knows the topology only through the [`Model`] it is handed; it may not reach into the
//! rest of the app.

use std::collections::{BTreeSet, HashMap};

use super::super::layout::{layout, BindingRow, GraphItem, GraphLayout, Groups};
use super::super::model::Model;
use crate::lesson::Lang;
use crate::openstack::lens::Group;

/// How the graph gathers its queues and clients (`o` cycles through them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Grouping {
    #[default]
    None,
    /// By OpenStack service and host (see [`crate::openstack::lens`]).
    Service,
    /// By cluster node: a queue's node, a quorum queue's or stream's leader.
    Node,
}

impl Grouping {
    /// What the pane's title says of it; nothing when not grouped.
    pub fn title(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Grouping::None, _) => "",
            (Grouping::Service, Lang::En) => "· by service and host ",
            (Grouping::Service, Lang::Zh) => "· 按服务和主机分组 ",
            (Grouping::Node, Lang::En) => "· by node ",
            (Grouping::Node, Lang::Zh) => "· 按节点分组 ",
        }
    }
}

/// The groups for `grouping`, and the lens's names for the clients (`nova-compute@compute-1`;
/// not grouped, the graph draws them only where they fit).
fn groups(model: &Model, grouping: Grouping, lang: Lang) -> Groups {
    let t = &model.topology;
    let names = (t.connections.iter())
        .filter_map(|c| Some((c.id, model.lens.connection_whose(c.id).label()?)))
        .collect();
    // Labels in order, then each queue's and client's index among them.
    let index = |keys: &BTreeSet<String>| -> HashMap<String, usize> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), i))
            .collect()
    };
    match grouping {
        Grouping::None => Groups {
            names,
            ..Groups::default()
        },
        Grouping::Service => {
            let queues: Vec<(String, Group)> = (t.queues.iter())
                .map(|q| (q.name.clone(), model.lens.queue_group(&q.name)))
                .collect();
            let clients: Vec<(u64, Group)> = (t.connections.iter())
                .map(|c| (c.id, model.lens.connection_group(c.id)))
                .collect();
            let all: BTreeSet<&Group> = queues
                .iter()
                .map(|q| &q.1)
                .chain(clients.iter().map(|c| &c.1))
                .collect();
            let order: Vec<&Group> = all.into_iter().collect();
            let at = |g: &Group| order.iter().position(|o| *o == g).unwrap_or(0);
            Groups {
                names,
                labels: order.iter().map(|g| g.label(lang)).collect(),
                queues: queues.iter().map(|(q, g)| (q.clone(), at(g))).collect(),
                connections: clients.iter().map(|(c, g)| (*c, at(g))).collect(),
            }
        }
        Grouping::Node => {
            let unknown = match lang {
                Lang::En => "node unknown",
                Lang::Zh => "节点未知",
            };
            let node_of = |node: Option<&String>| match node {
                Some(n) => format!("{}{n}", crate::ui::words::tr(lang, "node ", "节点 ")),
                None => unknown.to_string(),
            };
            let queues: Vec<(String, String)> = (t.queues.iter())
                .map(|q| {
                    (
                        q.name.clone(),
                        node_of(q.leader.as_ref().or(q.node.as_ref())),
                    )
                })
                .collect();
            let clients: Vec<(u64, String)> = (t.connections.iter())
                .map(|c| (c.id, node_of(c.node.as_ref())))
                .collect();
            let keys: BTreeSet<String> = (queues.iter().map(|q| q.1.clone()))
                .chain(clients.iter().map(|c| c.1.clone()))
                .collect();
            let at = index(&keys);
            Groups {
                names,
                labels: keys.into_iter().collect(),
                queues: queues.into_iter().map(|(q, n)| (q, at[&n])).collect(),
                connections: clients.into_iter().map(|(c, n)| (c, at[&n])).collect(),
            }
        }
    }
}

/// How far the graph pans right: enough to read labels cut on a narrow screen.
const MAX_PAN: usize = 240;
/// Columns one Left or Right moves the graph.
const PAN_STEP: usize = 8;

#[derive(Debug, Default)]
pub struct GraphView {
    /// Exchanges, bindings and queues in rows and lanes, as last laid out.
    pub layout: GraphLayout,
    /// Index into the layout's selectable items ([`GraphLayout::items`]).
    pub selected: usize,
    /// Columns the graph is panned right by.
    pub pan: usize,
    /// Show the default exchange and `amq.*` too.
    pub show_all_exchanges: bool,
    /// The graph has the whole width: the lesson and the inspector wait beside it, hidden.
    pub zoomed: bool,
    pub grouping: Grouping,
}

impl GraphView {
    /// The number of selectable items.
    pub fn len(&self) -> usize {
        self.layout.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.layout.items.is_empty()
    }

    /// What is selected.
    pub fn selected_item(&self) -> Option<GraphItem> {
        self.layout.items.get(self.selected).copied()
    }

    /// The exchange selected, if the selection is an exchange.
    pub fn selected_exchange(&self) -> Option<&str> {
        match self.selected_item()? {
            GraphItem::Exchange(i) => self.layout.exchanges.get(i).map(|x| x.name.as_str()),
            _ => None,
        }
    }

    /// The queue selected, if the selection is a queue.
    pub fn selected_queue(&self) -> Option<&str> {
        match self.selected_item()? {
            GraphItem::Queue(i) => self.layout.queues.get(i).map(|q| q.name.as_str()),
            _ => None,
        }
    }

    /// The binding selected, if the selection is a binding.
    pub fn selected_binding(&self) -> Option<&BindingRow> {
        match self.selected_item()? {
            GraphItem::Binding(i) => self.layout.bindings.get(i),
            _ => None,
        }
    }

    /// `z`: the whole width, or back to sharing it.
    pub fn toggle_zoom(&mut self) {
        self.zoomed = !self.zoomed;
    }

    /// Moves the selection by `delta` items, within the graph.
    pub fn move_by(&mut self, delta: isize) {
        let n = self.len();
        if n > 0 {
            self.selected = (self.selected as isize + delta).clamp(0, n as isize - 1) as usize;
        }
    }

    /// `o`: none, by service and host, by node (only for a cluster of more than one node),
    /// none again.
    pub fn cycle_grouping(&mut self, nodes: usize) {
        self.grouping = match self.grouping {
            Grouping::None => Grouping::Service,
            Grouping::Service if nodes > 1 => Grouping::Node,
            _ => Grouping::None,
        };
    }

    /// Left (negative) or right: pans by whole steps, up to 240 columns.
    pub fn pan_by(&mut self, steps: isize) {
        self.pan = self
            .pan
            .saturating_add_signed(steps * PAN_STEP as isize)
            .min(MAX_PAN);
    }

    /// Lays the graph out again, stacked or side by side, keeping the same exchange, binding
    /// or queue selected when others come and go.
    pub fn relayout(&mut self, model: &Model, spacing: usize, stacked: bool, lang: Lang) {
        let old = std::mem::replace(
            &mut self.layout,
            layout(
                &model.topology,
                &model.traffic,
                self.show_all_exchanges,
                spacing,
                stacked,
                &groups(model, self.grouping, lang),
            ),
        );
        if let Some(i) = old
            .items
            .get(self.selected)
            .and_then(|item| self.layout.find(&old, *item))
        {
            self.selected = i;
        }
        let n = self.len();
        if self.selected >= n {
            self.selected = n.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panning_stops_at_both_ends() {
        let mut graph = GraphView::default();
        graph.pan_by(-1);
        assert_eq!(graph.pan, 0);
        graph.pan_by(2);
        assert_eq!(graph.pan, 2 * PAN_STEP);
        for _ in 0..100 {
            graph.pan_by(1);
        }
        assert_eq!(graph.pan, MAX_PAN);
        graph.pan_by(-1);
        assert_eq!(graph.pan, MAX_PAN - PAN_STEP);
    }

    #[test]
    fn an_empty_graph_has_nothing_to_select() {
        let mut graph = GraphView::default();
        graph.move_by(5);
        assert_eq!(graph.selected, 0);
        assert!(graph.is_empty());
        assert_eq!(graph.selected_item(), None);
        assert_eq!(graph.selected_queue(), None);
    }
}
