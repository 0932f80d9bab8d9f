//! The graph pane's own state: the layout drawn last, what is selected in it, how far it is
//! panned, and whether the predeclared exchanges show.
//!
//! It knows the topology only through the [`Model`] it is handed; it may not reach into the
//! rest of the app.

use super::super::layout::{layout, BindingRow, GraphItem, GraphLayout};
use super::super::model::Model;

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

    /// Left (negative) or right: pans by whole steps, up to 240 columns.
    pub fn pan_by(&mut self, steps: isize) {
        self.pan = self
            .pan
            .saturating_add_signed(steps * PAN_STEP as isize)
            .min(MAX_PAN);
    }

    /// Lays the graph out again, stacked or side by side, keeping the same exchange, binding
    /// or queue selected when others come and go.
    pub fn relayout(&mut self, model: &Model, spacing: usize, stacked: bool) {
        let old = std::mem::replace(
            &mut self.layout,
            layout(
                &model.topology,
                &model.traffic,
                self.show_all_exchanges,
                spacing,
                stacked,
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
