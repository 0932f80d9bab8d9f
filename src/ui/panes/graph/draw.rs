//! Drawing the graph cell by cell: every line is a mask of the directions it leaves a cell in,
//! so lines that meet join with the right box-drawing glyph; then the labels in the room the
//! columns left them, then messages in flight as dots that only ever run on lines.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use unicode_width::UnicodeWidthStr;

use super::columns::columns;
use super::{scroll, truncate, Columns, QueueLane};
use crate::ui::app::{App, Focus};
use crate::ui::layout::{
    made_up, position, publisher_text, ConsumerNode, EdgeTarget, GraphItem, MADE_UP_KEPT,
    UNBOUND_HEADING,
};
use crate::ui::model::{FlightKind, Rate};
use crate::ui::theme::Theme;
use crate::ui::words::tr;

const UP: u8 = 1;
const DOWN: u8 = 2;
const LEFT: u8 = 4;
const RIGHT: u8 = 8;

fn glyph(mask: u8) -> char {
    match mask {
        m if m == LEFT | RIGHT || m == LEFT || m == RIGHT => '─',
        m if m == UP | DOWN || m == UP || m == DOWN => '│',
        m if m == DOWN | RIGHT => '┌',
        m if m == DOWN | LEFT => '┐',
        m if m == UP | RIGHT => '└',
        m if m == UP | LEFT => '┘',
        m if m == UP | DOWN | RIGHT => '├',
        m if m == UP | DOWN | LEFT => '┤',
        m if m == LEFT | RIGHT | DOWN => '┬',
        m if m == LEFT | RIGHT | UP => '┴',
        _ => '┼',
    }
}

/// Line cells a dot may run on (text hides no line, but lines pass under nothing either).
fn is_line(symbol: &str) -> bool {
    matches!(
        symbol,
        "─" | "│" | "┌" | "┐" | "└" | "┘" | "├" | "┤" | "┬" | "┴" | "┼" | "▶"
    )
}

/// Draws the graph's content (no border) into `inner`.
pub(super) fn draw(app: &App, theme: Theme, inner: Rect, buf: &mut Buffer) {
    let focused = app.focus == Focus::Graph;
    {
        let cols = columns(app, inner.width, inner.height);
        let top = scroll(app, inner.height);
        let visible = |row: usize| row >= top && row < top + inner.height as usize;
        let y_of = |row: usize| inner.y + (row - top) as u16;
        let graph = &app.graph.layout;
        // Labels first: where they end, the publishers' and the queues' lines begin.
        let publisher_labels: Vec<String> = graph
            .publishers
            .iter()
            .map(|p| publisher_text(graph, p, cols.long_publishers))
            .map(|text| truncate(&text, cols.publisher_width as usize))
            .collect();
        // Only the queues on view: a big broker has thousands.
        let queue_labels: Vec<String> = graph
            .queues
            .iter()
            .zip(&cols.queue_x)
            .map(|(q, &x)| match visible(q.row) {
                true => {
                    let room = cols.queue_room(x, inner.width) as usize;
                    truncate(&queue_text(app, q, room), room)
                }
                false => String::new(),
            })
            .collect();

        // Edges as connection masks, so crossings and joins get the right box glyph. A lane
        // runs between the first and last row of what it gathers; each binding row meets it
        // with a corner, or a junction when the lane goes on past it.
        let width = inner.width as usize;
        let mut masks = vec![0u8; width * inner.height as usize];
        let mut mark = |row: usize, x: u16, bits: u8| {
            if visible(row) && (x as usize) < width {
                masks[(row - top) * width + x as usize] |= bits;
            }
        };
        let bottom = top + inner.height as usize;
        // Each destination's span: the rows of its bindings and its own row.
        let mut queue_span: Vec<(usize, usize)> =
            graph.queues.iter().map(|q| (q.row, q.row)).collect();
        let mut exchange_span: Vec<(usize, usize)> =
            graph.exchanges.iter().map(|x| (x.row, x.row)).collect();
        for b in &graph.bindings {
            let span = match b.target {
                EdgeTarget::Queue(q) => &mut queue_span[q],
                // Only lines from outer exchanges reach an exchange lane.
                EdgeTarget::Exchange(x) if !cols.is_inner(b.exchange) => &mut exchange_span[x],
                EdgeTarget::Exchange(_) => continue,
            };
            span.0 = span.0.min(b.row);
            span.1 = span.1.max(b.row);
        }
        // Where a binding's horizontal ends: at its lane, or at the arrow for a straight line.
        let line_end = |b: &crate::ui::layout::BindingRow| match b.target {
            EdgeTarget::Queue(q) if graph.queues[q].by_name => Some(cols.queue_x[q] - 1),
            EdgeTarget::Queue(q) => match cols.queue_lane[q] {
                QueueLane::Column(lane) => Some(cols.lane_x(lane)),
                QueueLane::Straight => Some(cols.middle_end.saturating_sub(1)),
                QueueLane::Named if graph.queues[q].row == b.row => {
                    Some(cols.middle_end.saturating_sub(1))
                }
                QueueLane::Named => None,
            },
            EdgeTarget::Exchange(x) if !cols.is_inner(b.exchange) => {
                graph.exchanges[x].lane.map(|lane| cols.chain_lane_x(lane))
            }
            // A chain two deep is not drawn as a line: its key says where it leads.
            EdgeTarget::Exchange(_) => None,
        };
        let meet = |row: usize, (lo, hi): (usize, usize)| {
            (if row > lo { UP } else { 0 }) | (if row < hi { DOWN } else { 0 })
        };
        for b in &graph.bindings {
            let Some(end) = line_end(b) else {
                continue;
            };
            let start = cols.line_start(graph, b);
            for x in start..end {
                mark(b.row, x, LEFT | RIGHT);
            }
            match b.target {
                EdgeTarget::Queue(q) if matches!(cols.queue_lane[q], QueueLane::Column(_)) => {
                    let home = if graph.queues[q].row == b.row {
                        RIGHT
                    } else {
                        0
                    };
                    mark(b.row, end, LEFT | home | meet(b.row, queue_span[q]));
                }
                EdgeTarget::Exchange(x) => mark(b.row, end, LEFT | meet(b.row, exchange_span[x])),
                _ => {}
            }
        }
        // Lanes, only their visible part, and the lines from them to the arrows.
        let mut lane = |x: u16, (lo, hi): (usize, usize)| {
            for r in (lo + 1).max(top)..hi.min(bottom) {
                mark(r, x, UP | DOWN);
            }
        };
        for (q, span) in queue_span.iter().enumerate() {
            if let QueueLane::Column(l) = cols.queue_lane[q] {
                lane(cols.lane_x(l), *span);
            }
        }
        for (x, exchange) in graph.exchanges.iter().enumerate() {
            if let Some(l) = exchange.lane {
                lane(cols.chain_lane_x(l), exchange_span[x]);
            }
        }
        for (q, (queue, lane)) in graph.queues.iter().zip(&cols.queue_lane).enumerate() {
            if let QueueLane::Column(l) = lane {
                // Grouped, no binding sits on the queue's row: the lane turns to it there.
                mark(
                    queue.row,
                    cols.lane_x(*l),
                    RIGHT | meet(queue.row, queue_span[q]),
                );
                for x in cols.lane_x(*l) + 1..cols.middle_end.saturating_sub(1) {
                    mark(queue.row, x, LEFT | RIGHT);
                }
            }
        }
        for (x, exchange) in graph.exchanges.iter().enumerate() {
            if let Some(l) = exchange.lane {
                let lx = cols.chain_lane_x(l);
                mark(
                    exchange.row,
                    lx,
                    RIGHT | meet(exchange.row, exchange_span[x]),
                );
                for c in lx + 1..cols.chain_x.saturating_sub(1) {
                    mark(exchange.row, c, LEFT | RIGHT);
                }
            }
        }
        // Publishers: each line runs into the lane of its exchange, which ends at the arrow on
        // the exchange's row.
        if cols.publisher_width > 0 {
            let lx = cols.publisher_lane_x();
            let mut span: Vec<(usize, usize)> =
                graph.exchanges.iter().map(|x| (x.row, x.row)).collect();
            let drawn = || {
                (graph.publishers.iter().zip(&publisher_labels))
                    .filter(|(p, _)| graph.exchanges[p.exchange].lane.is_none())
            };
            for (p, _) in drawn() {
                span[p.exchange].1 = span[p.exchange].1.max(p.row);
            }
            for (p, label) in drawn() {
                for x in label.width() as u16 + 1..lx {
                    mark(p.row, x, LEFT | RIGHT);
                }
                let home = if p.row == graph.exchanges[p.exchange].row {
                    RIGHT
                } else {
                    0
                };
                mark(p.row, lx, LEFT | home | meet(p.row, span[p.exchange]));
            }
            for &(lo, hi) in &span {
                for r in (lo + 1).max(top)..hi.min(bottom) {
                    mark(r, lx, UP | DOWN);
                }
            }
        }
        // Consumers: a queue's line runs from its label into a lane that fans out to them,
        // ending at its `+N` when some got no row.
        if cols.consumer_width > 0 {
            let lx = cols.consumer_lane_x();
            let mut span: Vec<Option<(usize, usize)>> = vec![None; graph.queues.len()];
            for c in &graph.consumers {
                let (lo, hi) = span[c.queue].get_or_insert((c.row, c.row));
                (*lo, *hi) = ((*lo).min(c.row), (*hi).max(c.row));
            }
            for (q, queue) in graph.queues.iter().enumerate() {
                let Some((lo, hi)) = span[q].as_mut() else {
                    continue;
                };
                if queue.more_consumers > 0 {
                    *hi += 1;
                    mark(*hi, lx, UP | RIGHT);
                }
                for r in (*lo + 1).max(top)..(*hi).min(bottom) {
                    mark(r, lx, UP | DOWN);
                }
                let start = cols.queue_x[q] + queue_labels[q].width() as u16 + 1;
                for x in start..lx {
                    mark(queue.row, x, LEFT | RIGHT);
                }
            }
            for c in &graph.consumers {
                let (lo, hi) = span[c.queue].unwrap_or_default();
                let from = if c.row == graph.queues[c.queue].row {
                    LEFT
                } else {
                    0
                };
                mark(c.row, lx, RIGHT | from | meet(c.row, (lo, hi)));
            }
        }
        // A key may run up to the first line that goes up or down through its row: its own
        // lane's corner, or another lane it crosses. Text never hides a line.
        let key_room = |b: &crate::ui::layout::BindingRow| {
            let start = cols.edge_start(b.exchange);
            let row = &masks[(b.row - top) * width..(b.row - top + 1) * width];
            let end = (start as usize + 1..width)
                .find(|&x| row[x] & (UP | DOWN) != 0)
                .unwrap_or(width.min(cols.middle_end.saturating_sub(1) as usize));
            end.saturating_sub(start as usize + 2)
        };
        for (i, m) in masks.iter().enumerate() {
            if *m != 0 {
                let x = inner.x + (i % width) as u16;
                let y = inner.y + (i / width) as u16;
                buf[(x, y)].set_char(glyph(*m)).set_style(theme.edge());
            }
        }

        // Binding keys on their rows, and arrows into queues.
        let highlight = focused || app.inspecting;
        let selected = if highlight { app.selected_item() } else { None };
        for (i, b) in app.graph.layout.bindings.iter().enumerate() {
            let by_name = matches!(b.target, EdgeTarget::Queue(q) if graph.queues[q].by_name);
            if !visible(b.row) || by_name {
                continue;
            }
            let y = y_of(b.row);
            let start = cols.edge_start(b.exchange);
            // Keys stop one line cell before the first column another line may cross.
            let text = match line_end(b) {
                Some(_) => format!(" {} ", b.key),
                None => match b.target {
                    EdgeTarget::Exchange(x) => format!(" {} ⇢ {}", b.key, graph.exchanges[x].name),
                    EdgeTarget::Queue(q) => format!(" {} ⇢ {}", b.key, graph.queues[q].name),
                },
            };
            let room = match line_end(b) {
                Some(_) => key_room(b),
                None => key_room(b) + 1,
            };
            // The space after a key is the first thing to go.
            let text = match text.strip_suffix(' ') {
                Some(tight) if text.width() > room => truncate(tight, room),
                _ => truncate(&text, room),
            };
            // The default exchange's edges are no bindings one declared.
            let style = if b.implicit { theme.dim() } else { theme.key() };
            let style = if selected == Some(GraphItem::Binding(i)) {
                style.patch(theme.selected())
            } else {
                style
            };
            buf.set_string(inner.x + start + 1, y, text, style);
        }
        for (i, x) in app.graph.layout.exchanges.iter().enumerate() {
            if cols.is_inner(i) && visible(x.row) && cols.chain_x > 0 {
                buf.set_string(inner.x + cols.chain_x - 1, y_of(x.row), "▶", theme.edge());
            }
        }
        let mut fed = vec![false; app.graph.layout.queues.len()];
        for b in &app.graph.layout.bindings {
            if let EdgeTarget::Queue(q) = b.target {
                fed[q] = true;
            }
        }
        for ((q, has_edge), x) in graph.queues.iter().zip(fed).zip(&cols.queue_x) {
            if has_edge && visible(q.row) && *x > cols.middle_start + 1 {
                buf.set_string(inner.x + x - 1, y_of(q.row), "▶", theme.edge());
            }
        }

        // Publishers, their arrows into the exchanges, and the consumers with their arrows.
        if cols.publisher_width > 0 {
            for (i, (p, label)) in graph.publishers.iter().zip(&publisher_labels).enumerate() {
                let x = &graph.exchanges[p.exchange];
                if visible(x.row) && x.row == p.row && x.lane.is_none() {
                    let y = y_of(x.row);
                    buf.set_string(inner.x + cols.exchange_x - 1, y, "▶", theme.edge());
                }
                if visible(p.row) {
                    let mut style = theme.client();
                    if selected == Some(GraphItem::Publisher(i)) {
                        style = style.patch(theme.selected());
                    }
                    buf.set_string(inner.x, y_of(p.row), label, style);
                }
            }
        }
        if cols.consumer_width > 0 {
            let lx = cols.consumer_lane_x();
            let room = cols.consumer_width as usize;
            let mut more: Vec<(usize, String)> = Vec::new();
            for (i, c) in graph.consumers.iter().enumerate() {
                let queue = &graph.queues[c.queue];
                let last = graph
                    .consumers
                    .get(i + 1)
                    .is_none_or(|n| n.queue != c.queue);
                if last && queue.more_consumers > 0 {
                    more.push((c.row + 1, crate::ui::layout::more_label(queue)));
                }
                let mut style = theme.client();
                if selected == Some(GraphItem::Consumer(i)) {
                    style = style.patch(theme.selected());
                }
                if visible(c.row) {
                    let y = y_of(c.row);
                    buf.set_string(inner.x + lx + 1, y, "▶", theme.edge());
                    let position = position(&app.model.topology, &queue.name, c);
                    let text = match cols.long_consumers {
                        true => consumer_text(&c.long_named(), position, room),
                        false => consumer_text(c, position, room),
                    };
                    buf.set_string(inner.x + lx + 2, y, text, style);
                }
            }
            for (row, text) in more {
                if visible(row) {
                    buf.set_string(inner.x + lx + 1, y_of(row), "▶", theme.edge());
                    buf.set_string(inner.x + lx + 2, y_of(row), text, theme.dim());
                }
            }
        }

        // Nodes.
        for (i, x) in app.graph.layout.exchanges.iter().enumerate() {
            if !visible(x.row) {
                continue;
            }
            let mut style = theme.exchange();
            if selected == Some(GraphItem::Exchange(i)) {
                style = style.patch(theme.selected());
            }
            let column = if cols.is_inner(i) {
                cols.chain_x
            } else {
                cols.exchange_x
            };
            let room = if cols.stacked {
                // On its own row, up to the first line that crosses it.
                let row = &masks[(x.row - top) * width..(x.row - top + 1) * width];
                let queue_beside = app.graph.layout.queues.iter().any(|q| q.row == x.row);
                let end = (column as usize..width)
                    .find(|&c| row[c] & (UP | DOWN) != 0)
                    .unwrap_or(width)
                    .min(if queue_beside {
                        cols.middle_end as usize
                    } else {
                        width
                    });
                end.saturating_sub(column as usize) as u16
            } else if cols.is_inner(i) {
                cols.chain_width
            } else {
                cols.exchange_width + cols.overflow[i]
            };
            let room = room.saturating_sub(1) as usize;
            let label = match rate_of(&app.model.exchange_rates, &x.name) {
                Some(rate) => with_rate_if_whole(format!("{} {rate}", x.label), &x.label, room),
                None => x.label.clone(),
            };
            let label = truncate(&label, room);
            buf.set_string(inner.x + column, y_of(x.row), label, style);
        }
        for (i, (q, label)) in graph.queues.iter().zip(&queue_labels).enumerate() {
            if !visible(q.row) {
                continue;
            }
            let mut style = theme.queue();
            if selected == Some(GraphItem::Queue(i)) {
                style = style.patch(theme.selected());
            }
            buf.set_string(inner.x + cols.queue_x[i], y_of(q.row), label, style);
        }
        // Grouped: each group's label above its queues, in the queue column; no consumer sits
        // on its row, so it may run on to the edge.
        for group in graph.groups.iter().filter(|g| visible(g.row)) {
            let room = inner.width.saturating_sub(cols.middle_end) as usize;
            let label = truncate(&format!("{}:", group.label), room);
            let y = y_of(group.row);
            buf.set_string(inner.x + cols.middle_end, y, label, theme.title());
        }

        // The heading over queues only the default exchange leads to, in the queue column.
        if let Some(row) = graph.unbound.filter(|r| visible(*r)) {
            let room = inner.width.saturating_sub(cols.middle_end) as usize;
            let [en, zh] = UNBOUND_HEADING;
            let heading = tr(app.options.lang, en, zh);
            let y = y_of(row);
            buf.set_string(
                inner.x + cols.middle_end,
                y,
                truncate(heading, room),
                theme.dim(),
            );
        }

        // Messages in flight, each on the line cells of its way (never on text).
        for flight in &app.model.flights {
            let mark = match flight.kind {
                FlightKind::Dropped => Some('✗'),
                FlightKind::Returned => Some('↩'),
                _ => None,
            };
            if let Some(mark) = mark {
                // Unroutable: a mark beside the exchange, where the message stopped.
                let exchange = app.graph.layout.exchanges.iter().enumerate();
                if let Some((i, x)) = exchange.clone().find(|(_, x)| *x.name == *flight.from) {
                    // Stacked, the exchange's row is its label's alone: the mark follows it.
                    let column = match cols.stacked {
                        true if !cols.is_inner(i) => cols.exchange_x + x.label.width() as u16 + 1,
                        _ => cols.edge_start(i).saturating_sub(1),
                    };
                    let free = |y: u16| !cols.stacked || buf[(inner.x + column, y)].symbol() == " ";
                    if visible(x.row) && column > 0 && column < inner.width && free(y_of(x.row)) {
                        buf[(inner.x + column, y_of(x.row))]
                            .set_char(mark)
                            .set_style(theme.bad());
                    }
                }
                continue;
            }
            // A delivery waits until the message has reached its queue.
            if app.now < flight.started {
                continue;
            }
            let path: Vec<(usize, u16)> = flight_path(app, &cols, flight, &queue_labels)
                .into_iter()
                .filter(|&(row, x)| {
                    visible(row)
                        && x < inner.width
                        && is_line(buf[(inner.x + x, y_of(row))].symbol())
                })
                .collect();
            if path.is_empty() {
                continue;
            }
            let t = flight.progress(app.now, app.model.flight_time);
            let (row, x) = path[((path.len() - 1) as f64 * t) as usize];
            buf[(inner.x + x, y_of(row))]
                .set_char('●')
                .set_style(theme.message());
        }
    }
}

/// A consumer's label cut to `room`, with a stream consumer's position after it
/// (`nova-compute node1 @57`). In a narrow pane the tags give way first, then the
/// connection's name is cut, keeping at least [`MIN_NAME`] cells of it; only then the
/// position. Without a position: its name alone when that fits but not a piece of its tags.
fn consumer_text(c: &ConsumerNode, position: Option<String>, room: usize) -> String {
    if let Some(position) = position {
        let keep = room.saturating_sub(position.width() + 1);
        if keep >= MIN_NAME {
            let name = match c.label.width() <= keep {
                true => c.label.clone(),
                false => truncate(c.client(), keep),
            };
            return format!("{name} {position}");
        }
    }
    let client = c.client().width();
    if c.label.width() > room && client <= room && room < client + 3 {
        c.client().to_string()
    } else {
        truncate(&c.label, room)
    }
}

/// The fewest cells of a stream consumer's name kept beside its position.
const MIN_NAME: usize = 4;

/// A queue's label as drawn: its name and flags, its counters without the messages still
/// flying to it, and its rate first when all of it fits in `room` columns.
fn queue_text(app: &App, q: &crate::ui::layout::QueueNode, room: usize) -> String {
    let counters = crate::ui::layout::queue_counters(q, app.model.arriving(&q.name, app.now));
    // A made-up name gives way before its counters, down to its first characters.
    let label = match q.label.width() + 2 + counters.width() > room && made_up(&q.name) {
        true => {
            let flags = &q.label[q.name.len()..];
            let keep = room.saturating_sub(flags.width() + 2 + counters.width());
            format!("{}{flags}", truncate(&q.name, keep.max(MADE_UP_KEPT + 1)))
        }
        false => q.label.clone(),
    };
    let text = format!("{label}  {counters}");
    match rate_of(&app.model.queue_rates, &q.name) {
        Some(rate) => with_rate_if_whole(format!("{rate} {text}"), &text, room),
        None => text,
    }
}

/// The current rate of a node as `12/s`, when it has one.
fn rate_of(
    rates: &std::collections::HashMap<crate::events::Name, Rate>,
    name: &str,
) -> Option<String> {
    let rate = rates.get(name).map(Rate::current)?;
    (rate > 0).then(|| format!("{rate}/s"))
}

/// A rate gives way before anything else: the label with it when that fits whole.
fn with_rate_if_whole(with_rate: String, without: &str, room: usize) -> String {
    if with_rate.width() <= room {
        with_rate
    } else {
        without.to_string()
    }
}

/// The cells (row, column) a message passes: from its publisher into the exchange, along the
/// binding's line to the queue; or from the queue to the consumer it was delivered to. Text
/// cells on the way are left out by the caller.
fn flight_path(
    app: &App,
    cols: &Columns,
    flight: &crate::ui::model::Flight,
    queue_labels: &[String],
) -> Vec<(usize, u16)> {
    let graph = &app.graph.layout;
    let mut path = Vec::new();
    if flight.kind == FlightKind::ToConsumer {
        let Some(qi) = graph.queues.iter().position(|q| *q.name == *flight.from) else {
            return path;
        };
        let q = &graph.queues[qi];
        let mine = graph.consumers.iter().filter(|c| c.queue == qi);
        let tagged = mine
            .clone()
            .find(|c| c.tags.iter().any(|t| *t == *flight.to));
        // One of the consumers counted as `+N`: to that line.
        let row = match tagged {
            Some(c) => c.row,
            None if q.more_consumers > 0 => mine.map(|c| c.row + 1).max().unwrap_or(q.row),
            None => return path,
        };
        if cols.consumer_width == 0 {
            return path;
        }
        let lx = cols.consumer_lane_x();
        let start = cols.queue_x[qi] + queue_labels[qi].width() as u16 + 1;
        path.extend((start..=lx).map(|x| (q.row, x)));
        path.extend((q.row + 1..=row).map(|r| (r, lx)));
        path.push((row, lx + 1));
        return path;
    }
    let Some(xi) = graph.exchanges.iter().position(|x| *x.name == *flight.from) else {
        return path;
    };
    let Some(qi) = graph.queues.iter().position(|q| *q.name == *flight.to) else {
        return path;
    };
    let Some(b) = graph
        .bindings
        .iter()
        .find(|b| b.exchange == xi && b.target == EdgeTarget::Queue(qi))
    else {
        return path;
    };
    // From the publisher, when it published to this very exchange.
    let publisher = graph
        .publishers
        .iter()
        .find(|p| Some(p.connection) == flight.connection && p.exchange == xi);
    let drawn = graph.exchanges[xi].lane.is_none() && cols.publisher_width > 0;
    if let (Some(p), true) = (publisher, drawn) {
        let lx = cols.publisher_lane_x();
        let home = graph.exchanges[xi].row;
        path.extend((0..=lx).map(|x| (p.row, x)));
        path.extend((home..p.row).rev().map(|r| (r, lx)));
        path.push((home, lx + 1));
    }
    let q = &graph.queues[qi];
    let start = cols.line_start(graph, b);
    // A straight line has no lane: its row is the queue's, and it ends at the queue's arrow.
    let lx = match cols.queue_lane[qi] {
        QueueLane::Column(lane) => cols.lane_x(lane),
        QueueLane::Named if q.row != b.row => return path,
        _ => cols.queue_x[qi].saturating_sub(1),
    };
    path.extend((start..=lx).map(|x| (b.row, x)));
    if q.row > b.row {
        path.extend((b.row + 1..=q.row).map(|r| (r, lx)));
    } else {
        path.extend((q.row..b.row).rev().map(|r| (r, lx)));
    }
    path.extend((lx + 1..cols.queue_x[qi]).map(|x| (q.row, x)));
    path
}
