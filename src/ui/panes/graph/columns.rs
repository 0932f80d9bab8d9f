//! Where the graph's regions start for a given width: publishers, exchanges, keys, the chain
//! column of inner exchanges, the lanes, queues and consumers; and what gives way first when
//! the pane is narrow (names come first, then counters and types, then clients' names, each
//! side whole or hidden, then consumers' tags, then lane spacing). A stream shows its offsets (`0‥57`) where other queues show
//! counters; its consumers' positions (`@57`) give way after their tags (see `consumer_text`).

use unicode_width::UnicodeWidthStr;

use super::{scroll, Columns, QueueLane};
use crate::ui::app::App;
use crate::ui::layout::{
    made_up, queue_counters, BindingRow, EdgeTarget, GraphLayout, QueueNode, MADE_UP_KEPT,
};
use crate::ui::model::Rate;

impl Columns {
    /// Where the edges of an exchange's bindings begin.
    pub(super) fn edge_start(&self, exchange: usize) -> u16 {
        if self.is_inner(exchange) {
            self.chain_x + self.chain_width
        } else {
            self.middle_start
        }
    }

    pub(super) fn is_inner(&self, exchange: usize) -> bool {
        self.inner.get(exchange).copied().unwrap_or(false)
    }

    /// The column of a queue lane.
    pub(super) fn lane_x(&self, lane: usize) -> u16 {
        self.lane_start + lane as u16 * self.lane_step
    }

    /// The column of an exchange lane.
    pub(super) fn chain_lane_x(&self, lane: usize) -> u16 {
        self.chain_lanes_x + lane as u16
    }

    /// The lane gathering the publishers of an exchange, just before its arrow.
    pub(super) fn publisher_lane_x(&self) -> u16 {
        self.exchange_x.saturating_sub(2)
    }

    /// The lane fanning a queue's line out to its consumers; their arrows follow it.
    pub(super) fn consumer_lane_x(&self) -> u16 {
        self.middle_end + self.queue_width + 1
    }

    /// Where the label of a queue drawn where its key would be starts: after its exchange, one
    /// line cell and the arrow (see [`crate::ui::layout::QueueNode::by_name`]).
    pub(super) fn by_name_x(&self, exchange: usize) -> u16 {
        self.edge_start(exchange) + self.overflow.get(exchange).copied().unwrap_or(0) + 2
    }

    /// Where a binding's line starts: after its exchange's column, or after the label of an
    /// exchange whose queues are drawn by name.
    pub(super) fn line_start(&self, graph: &GraphLayout, b: &BindingRow) -> u16 {
        match b.target {
            EdgeTarget::Queue(q) if graph.queues[q].by_name => self.queue_x[q].saturating_sub(2),
            _ => self.edge_start(b.exchange),
        }
    }

    /// How wide a queue's label may be drawn from `x` in a frame `width` wide: up to the space
    /// and the line cell before the consumers' lane, or to the edge when they are hidden.
    pub(super) fn queue_room(&self, x: u16, width: u16) -> u16 {
        if self.consumer_width > 0 {
            self.consumer_lane_x().saturating_sub(x + 2)
        } else {
            width.saturating_sub(x)
        }
    }
}

/// Which exchanges are the destination of an exchange-to-exchange binding shown.
fn inner_exchanges(app: &App) -> Vec<bool> {
    app.graph
        .layout
        .exchanges
        .iter()
        .map(|x| x.lane.is_some())
        .collect()
}

/// The narrowest canvas on which exchange lanes and their labels have room; a narrower pane
/// shows the left part of it (and panning the rest) rather than letting lines run together.
pub(super) fn canvas_width(app: &App, width: u16) -> u16 {
    let chain = if app.graph.layout.chain_lanes > 0 {
        app.graph.layout.chain_lanes as u16 + 6 + 10
    } else {
        0
    };
    let needed = 8 + 6 + chain + 2 + 8;
    width.max(needed)
}

/// The columns of a frame `width` wide and `height` high, with the lanes it shows.
pub(super) fn columns(app: &App, width: u16, height: u16) -> Columns {
    let top = scroll(app, height);
    let passing = passing_lanes(app, top, top + height as usize);
    let mut cols = columns_of(app, app.graph.layout.stacked, width, passing.len() as u16);
    // The lanes with a column: the shortest of those passing, kept in the layout's order.
    let mut chosen = passing.clone();
    chosen.sort_by_key(|(_, length)| *length);
    chosen.truncate(cols.lanes as usize);
    chosen.sort_by_key(|(q, _)| app.graph.layout.queues[*q].lane);
    // An exchange whose queues are all drawn by name runs its label on into the key column,
    // as far as the longest of their labels leaves room. One pass over the bindings: a big
    // broker has tens of thousands.
    let graph = &app.graph.layout;
    let by_name: Vec<(usize, usize)> = graph
        .bindings
        .iter()
        .filter_map(|b| match b.target {
            EdgeTarget::Queue(q) if graph.queues[q].by_name => Some((b.exchange, q)),
            _ => None,
        })
        .collect();
    let mut slack: Vec<u16> = vec![u16::MAX; graph.exchanges.len()];
    cols.overflow = vec![0; graph.exchanges.len()];
    for &(x, q) in by_name.iter().filter(|_| !cols.stacked) {
        let room = cols.queue_room(cols.by_name_x(x), width);
        let text = queue_text_width(&graph.queues[q]);
        slack[x] = slack[x].min(room.saturating_sub(text));
    }
    for (i, x) in graph.exchanges.iter().enumerate() {
        if x.by_name && slack[i] < u16::MAX {
            let label = x.label.width() as u16 + 1;
            cols.overflow[i] = label.saturating_sub(cols.exchange_width).min(slack[i]);
        }
    }
    cols.queue_x = vec![cols.middle_end; graph.queues.len()];
    for &(x, q) in &by_name {
        cols.queue_x[q] = cols.by_name_x(x);
    }
    cols.queue_lane = app
        .graph
        .layout
        .queues
        .iter()
        .map(|q| match q.lane {
            None => QueueLane::Straight,
            Some(_) => QueueLane::Named,
        })
        .collect();
    for (column, (q, _)) in chosen.iter().enumerate() {
        cols.queue_lane[*q] = QueueLane::Column(column);
    }
    cols
}

/// A queue's label with its counters, without its rate, a made-up name cut (the exchange's
/// type comes before the end of such a name).
fn queue_text_width(q: &QueueNode) -> u16 {
    let cut = match made_up(&q.name) {
        true => q.name.width() - (MADE_UP_KEPT + 1),
        false => 0,
    };
    (q.label.width() - cut + 2 + queue_counters(q, (0, 0)).width()) as u16
}

/// The queue lanes that pass through rows `top..bottom`, in the layout's order, with their
/// lengths.
fn passing_lanes(app: &App, top: usize, bottom: usize) -> Vec<(usize, usize)> {
    let graph = &app.graph.layout;
    let mut span: Vec<(usize, usize)> = graph.queues.iter().map(|q| (q.row, q.row)).collect();
    for b in &graph.bindings {
        if let EdgeTarget::Queue(q) = b.target {
            span[q] = (span[q].0.min(b.row), span[q].1.max(b.row));
        }
    }
    let mut passing: Vec<(usize, usize)> = graph
        .queues
        .iter()
        .enumerate()
        .filter(|(q, queue)| queue.lane.is_some() && span[*q].1 >= top && span[*q].0 < bottom)
        .map(|(q, _)| (q, span[q].1 - span[q].0))
        .collect();
    passing.sort_by_key(|(q, _)| graph.queues[*q].lane);
    passing
}

/// The width of the widest rate shown with its ` /s`, 0 when none is.
fn rates_width(rates: &std::collections::HashMap<crate::events::Name, Rate>) -> u16 {
    let fastest = rates.values().map(Rate::current).max().unwrap_or(0);
    if fastest == 0 {
        0
    } else {
        fastest.to_string().len() as u16 + 3
    }
}

fn columns_of(app: &App, stacked: bool, width: u16, passing: u16) -> Columns {
    // Room for the rates shown (an exchange's ` 12/s` after it, a queue's `12/s ` before
    // it). Rates come last, and are drawn only whole (see draw.rs), so traffic never cuts a
    // name, a type or a counter, nor moves the side pane.
    let rate_room = rates_width(&app.model.exchange_rates);
    let queue_rate_room = rates_width(&app.model.queue_rates);
    let inner = inner_exchanges(app);
    let graph = &app.graph.layout;
    // Measured once per layout: a big broker has tens of thousands of keys.
    let widths = &graph.widths;
    let chain_lanes = graph.chain_lanes as u16;
    // Lanes take what the names leave, at most; the rest are named instead (see QueueLane).
    let fewest = if stacked { 2 } else { 8 } + 6 + 8 + 1;
    let chain_fewest = if chain_lanes > 0 { chain_lanes + 12 } else { 0 };
    let lanes = passing.min(width.saturating_sub(fewest + chain_fewest));
    // Every lane has a column; two apart reads better when there is room.
    let lane_room = |step: u16| if lanes == 0 { 1 } else { lanes * step + 1 };
    // Stacked, exchanges have rows of their own and their bindings are indented by two.
    let exchange_name = if stacked { 2 } else { widths.exchange_name + 2 };
    let exchange_full = if stacked {
        2
    } else {
        widths.exchange_label + 1
    };
    // With consumers beside them, a queue's label keeps one more column: the space before
    // the line to its consumers.
    let consumers_beside = u16::from(!graph.consumers.is_empty());
    let queue_name = widths.queue_name + 1 + consumers_beside;
    let queue_full = widths.queue_label + 1 + consumers_beside;
    // A queue drawn where its key would be starts two columns after the exchange and may run
    // across the keys and the lanes: the queue column gives it what they leave.
    let by_name =
        |label: u16, keys: u16| (label + 2 + consumers_beside).saturating_sub(keys + lane_room(1));
    let chain_label_width = if stacked { 1 } else { widths.inner_label };
    // Keys of outer exchanges stop before the exchange lanes, followed by the inner exchanges'
    // labels and keys.
    let outer_keys = widths.outer_keys + 4;
    let wanted_keys = if chain_lanes > 0 {
        outer_keys + chain_lanes + 1 + chain_label_width + 1 + rate_room + widths.inner_keys + 4
    } else {
        outer_keys
    };
    // Names side by side must leave room for a few lanes.
    let wanted_key_room = wanted_keys.max(if chain_lanes > 0 { 16 } else { 6 });
    let queue_name = queue_name.max(by_name(widths.by_name_name, wanted_key_room));
    let names = exchange_name.max(8) + wanted_keys + queue_name.max(8) + lane_room(1).min(9);
    let names_fit = stacked || names <= width;
    // Share the width: first names and keys, evenly when they do not all fit; then queue
    // counters; then exchange types; then publishers' names and consumers' connections, each
    // side whole or not at all; then consumers' tags; then lanes two apart; what is left
    // lengthens the lines.
    let mut budget = width.saturating_sub(lane_room(1));
    let [mut exchange_width, keys, mut queue_width] = fill(
        [
            if stacked { 2 } else { exchange_name.max(8) },
            wanted_key_room,
            queue_name.max(8),
        ],
        budget,
    );
    // An exchange whose queues are drawn by name takes what its label needs past the exchange
    // column from their rows.
    let overflow = match stacked {
        true => 0,
        false => (widths.by_name_exchange + 1).saturating_sub(exchange_full),
    };
    let queue_full = queue_full.max(by_name(widths.by_name_label + overflow, keys));
    // Counters come before the end of a made-up name (`reply_3d609330315442c6b3…  0 0 1`),
    // and exchange types between them.
    let queue_short = (widths.queue_short + 1 + consumers_beside)
        .max(by_name(widths.by_name_short + overflow, keys));
    budget -= exchange_width + keys + queue_width;
    grow(&mut queue_width, queue_short, &mut budget);
    grow(&mut exchange_width, exchange_full, &mut budget);
    grow(&mut queue_width, queue_full, &mut budget);
    // A publisher needs ` ─┬▶` after its name, a consumer `─┬▶` before it. A cut name would
    // pass for another client's: a side without the room for its widest name is hidden (the
    // bottom line says so), the publishers' first when only one side fits.
    let wanted = |label: u16, lines: u16, any: bool| if any { label + lines } else { 0 };
    let publisher_wanted = wanted(widths.publisher_label, 4, !graph.publishers.is_empty());
    let consumer_wanted = wanted(widths.consumer_name, 3, !graph.consumers.is_empty());
    let (mut publisher_room, mut consumer_room) = match budget {
        b if publisher_wanted + consumer_wanted <= b => (publisher_wanted, consumer_wanted),
        b if publisher_wanted <= b => (publisher_wanted, 0),
        b if consumer_wanted <= b => (0, consumer_wanted),
        _ => (0, 0),
    };
    budget -= publisher_room + consumer_room;
    if consumer_room > 0 {
        let more = budget.min((widths.consumer_label + 3).saturating_sub(consumer_room));
        consumer_room += more;
        budget -= more;
    }
    // Then the lens's longer names (`nova-compute@compute-1`), on a side only where every one
    // is whole (a consumer's with its tags): what the graph needs is measured on the shorter
    // ones, so they take only room nothing else wants.
    let mut lengthen = |room: &mut u16, wanted: u16| {
        let fits = *room > 0 && wanted <= *room + budget;
        if fits {
            budget -= wanted.saturating_sub(*room);
            *room = (*room).max(wanted);
        }
        fits
    };
    let long_consumers = lengthen(&mut consumer_room, widths.consumer_long_label + 3);
    let long_publishers = lengthen(&mut publisher_room, widths.publisher_long + 4);
    let labels_fit = names_fit && queue_width >= queue_short && exchange_width >= exchange_full;
    let whole = labels_fit
        && publisher_room >= publisher_wanted
        && consumer_room >= consumer_wanted
        && queue_width >= queue_full;
    // Rates last, each only when it fits whole.
    for (column, rate) in [
        (&mut queue_width, queue_rate_room),
        (&mut exchange_width, rate_room),
    ] {
        if rate > 0 && budget >= rate {
            *column += rate;
            budget -= rate;
        }
    }
    let lane_step = if lanes > 0 && budget >= lane_room(2) - lane_room(1) {
        2
    } else {
        1
    };
    let exchange_x = publisher_room;
    let middle_start = exchange_x + exchange_width;
    let middle_end = width
        .saturating_sub(queue_width + consumer_room)
        .max(middle_start + 4);
    let lane_start = middle_end
        .saturating_sub(lane_room(lane_step))
        .max(middle_start + 2);
    let (mut chain_x, mut chain_width, mut chain_lanes_x) = (middle_start, 0, middle_start);
    if chain_lanes > 0 {
        // Keys of the chain bindings on the left, exchange lanes, an arrow, then the inner
        // exchanges' labels; what is left after the label goes to their own keys: at least 8.
        let room = lane_start.saturating_sub(middle_start);
        chain_lanes_x = middle_start + outer_keys.min(room / 2).max(4);
        chain_x = chain_lanes_x + chain_lanes + 1;
        let left = lane_start.saturating_sub(chain_x).saturating_sub(8);
        chain_width = if stacked {
            2
        } else {
            (chain_label_width + 1 + rate_room).min(left).max(4)
        };
    }
    Columns {
        exchange_x,
        exchange_width,
        publisher_width: publisher_room.saturating_sub(4),
        queue_width,
        consumer_width: consumer_room.saturating_sub(3),
        long_publishers,
        long_consumers,
        middle_start,
        middle_end,
        lane_start,
        lane_step,
        chain_x,
        chain_width,
        chain_lanes_x,
        inner,
        stacked,
        names_fit,
        labels_fit,
        whole,
        lanes,
        queue_lane: Vec::new(),
        queue_x: Vec::new(),
        overflow: Vec::new(),
    }
}

/// Widens a column towards `wanted`, as far as `budget` goes.
fn grow(column: &mut u16, wanted: u16, budget: &mut u16) {
    let more = (*budget).min(wanted.saturating_sub(*column));
    *column += more;
    *budget -= more;
}

/// Whether exchanges, keys and queues fit side by side in `width` columns without a name being
/// cut, nor a type or a counter where stacking the exchanges would keep them whole; when not,
/// the graph is laid out stacked.
pub fn side_by_side_fits(app: &App, width: u16) -> bool {
    let side = columns_of(app, false, width, lanes_in_view(app));
    side.names_fit
        && (side.labels_fit || !columns_of(app, true, width, lanes_in_view(app)).labels_fit)
}

/// The lanes a frame is expected to pass, for measuring the graph apart from a frame.
fn lanes_in_view(app: &App) -> u16 {
    app.graph.layout.lanes.min(8) as u16
}

/// The narrowest pane (inside its border) in which the graph, side by side, draws every name,
/// type, counter, publisher and consumer's connection whole (a consumer's tags may be cut;
/// rates, which come and go with the traffic, are not counted), so that a side pane can give
/// it that much.
pub fn whole_width(app: &App) -> u16 {
    let whole = |width: u16| columns_of(app, false, width, lanes_in_view(app)).whole;
    // Each share grows with the width: halve the range until the narrowest is found.
    let (mut narrow, mut wide) = (0, 400);
    while narrow < wide {
        let middle = (narrow + wide) / 2;
        if whole(middle) {
            wide = middle;
        } else {
            narrow = middle + 1;
        }
    }
    wide
}

/// Shares `budget` among demands: all of them when they fit, else each up to one level, the
/// most it can be (the smaller demands whole, the larger cut alike).
fn fill<const N: usize>(demands: [u16; N], budget: u16) -> [u16; N] {
    let total: u32 = demands.iter().map(|d| *d as u32).sum();
    if total <= budget as u32 {
        return demands;
    }
    let given = |level: u16| -> u32 { demands.iter().map(|d| (*d).min(level) as u32).sum() };
    let mut level = 0;
    while given(level + 1) <= budget as u32 {
        level += 1;
    }
    let mut out = demands.map(|d| d.min(level));
    let mut left = budget as u32 - given(level);
    for (o, d) in out.iter_mut().zip(demands) {
        if left > 0 && d > *o {
            *o += 1;
            left -= 1;
        }
    }
    out
}
