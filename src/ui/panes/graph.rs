//! The topology graph: exchanges on the left, queues on the right, one row per binding, and
//! messages in flight as dots along the edges. Layout comes from [`crate::ui::layout`].

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::{Block, Borders, Widget};
use unicode_width::UnicodeWidthStr;

use crate::ui::app::{App, Focus};
use crate::ui::layout::{EdgeTarget, GraphItem};
use crate::ui::model::FlightKind;
use crate::ui::theme::Theme;

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

/// Column positions of the regions, for a given inner width.
///
/// ```text
///  exchanges   keys     exchange lanes ▶ inner exchanges  keys   queue lanes ▶ queues
/// ```
///
/// Exchanges that are the destination of an exchange-to-exchange binding sit in a chain column
/// inside the middle, so a chain reads left to right: source exchange, binding, inner exchange,
/// binding, queue. Every lane has a column of its own; keys stop before the first lane, so no
/// text ever hides a line.
struct Columns {
    exchange_width: u16,
    middle_start: u16,
    middle_end: u16,
    lane_start: u16,
    lane_step: u16,
    /// Where inner exchanges' labels start, and how wide they may be (0 when none).
    chain_x: u16,
    chain_width: u16,
    /// The column of the leftmost exchange lane (`chain_x - 1` when none).
    chain_lanes_x: u16,
    /// Per exchange: is it the destination of an exchange-to-exchange binding?
    inner: Vec<bool>,
}

impl Columns {
    /// Where the edges of an exchange's bindings begin.
    fn edge_start(&self, exchange: usize) -> u16 {
        if self.is_inner(exchange) {
            self.chain_x + self.chain_width
        } else {
            self.middle_start
        }
    }

    fn is_inner(&self, exchange: usize) -> bool {
        self.inner.get(exchange).copied().unwrap_or(false)
    }

    /// The column of a queue lane.
    fn lane_x(&self, lane: usize) -> u16 {
        self.lane_start + lane as u16 * self.lane_step
    }

    /// The column of an exchange lane.
    fn chain_lane_x(&self, lane: usize) -> u16 {
        self.chain_lanes_x + lane as u16
    }
}

/// Which exchanges are the destination of an exchange-to-exchange binding shown.
fn inner_exchanges(app: &App) -> Vec<bool> {
    app.graph
        .exchanges
        .iter()
        .map(|x| x.lane.is_some())
        .collect()
}

/// The narrowest canvas on which every lane has a column of its own; a narrower pane shows the
/// left part of it (and panning the rest) rather than letting lanes run together.
fn canvas_width(app: &App, width: u16) -> u16 {
    let chain = if app.graph.chain_lanes > 0 {
        app.graph.chain_lanes as u16 + 6 + 10
    } else {
        0
    };
    let needed = 8 + 6 + chain + app.graph.lanes as u16 + 2 + 8;
    width.max(needed)
}

fn columns(app: &App, width: u16) -> Columns {
    let widest = |labels: &mut dyn Iterator<Item = &str>| {
        labels.map(|l| l.width()).max().unwrap_or(0) as u16
    };
    // Room for an exchange's rate (` 1234/s`) once traffic has been seen, so the columns do
    // not shift with every change of rate.
    let rate_room = if app.model.exchange_rates.is_empty() {
        0
    } else {
        7
    };
    let inner = inner_exchanges(app);
    let graph = &app.graph;
    let labels_in = |chain: bool| {
        let labels = graph.exchanges.iter().zip(&inner);
        widest(
            &mut labels
                .filter(|(_, i)| **i == chain)
                .map(|(x, _)| x.label.as_str()),
        )
    };
    let keys_of = |chain: bool| {
        widest(
            &mut graph
                .bindings
                .iter()
                .filter(|b| inner.get(b.exchange).copied().unwrap_or(false) == chain)
                .map(|b| b.key.as_str()),
        )
    };
    let lanes = graph.lanes as u16;
    let chain_lanes = graph.chain_lanes as u16;
    // Room every lane needs, one column each, and the key room that makes readable.
    let lane_room = |step: u16| if lanes == 0 { 1 } else { lanes * step + 1 };
    let exchange_width = (labels_in(false) + 1 + rate_room).min(width / 3).max(8);
    // Queue names come before their counters: the counters are cut first.
    let queue_full = widest(&mut graph.queues.iter().map(|q| q.label.as_str())) + 2;
    let queue_names = widest(&mut graph.queues.iter().map(|q| {
        q.label
            .split_once("  ")
            .map(|(name, _)| name)
            .unwrap_or(&q.label)
    })) + 2;
    let mut queue_width = queue_full
        .min(width / 3)
        .max(queue_names.min(width * 2 / 5))
        .max(8);
    let middle_start = exchange_width;
    let mut middle_end = width.saturating_sub(queue_width);
    // Keys of the outer exchanges, and when there are chains: their keys, lanes and labels.
    let chain_label_width = labels_in(true);
    // Keys of outer exchanges stop before the exchange lanes.
    let outer_keys = keys_of(false) + 4;
    let wanted_keys = if chain_lanes > 0 {
        outer_keys + chain_lanes + 1 + chain_label_width + 1 + rate_room + keys_of(true) + 4
    } else {
        outer_keys
    };
    // Lanes shrink to one column apart before anything is cut.
    let middle = middle_end.saturating_sub(middle_start);
    let lane_step = if lanes > 0 && middle >= wanted_keys + lane_room(2) {
        2
    } else {
        1
    };
    // Then the queue counters give way to keys, then the queue names to lanes.
    let minimum_keys = if chain_lanes > 0 { 16 + chain_lanes } else { 6 };
    let short = (wanted_keys + lane_room(1)).saturating_sub(middle);
    if short > 0 {
        let give = short.min(queue_width.saturating_sub(queue_names.max(8)));
        queue_width -= give;
    }
    let must = (minimum_keys + lane_room(1))
        .saturating_sub(width.saturating_sub(queue_width) - middle_start);
    queue_width = queue_width.saturating_sub(must).max(8);
    // Room the middle does not need goes to the queues' counters.
    let spare = width
        .saturating_sub(queue_width + middle_start)
        .saturating_sub(wanted_keys + lane_room(lane_step) + 4);
    queue_width += spare.min(queue_full.saturating_sub(queue_width));
    middle_end = width.saturating_sub(queue_width).max(middle_start + 4);
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
        chain_width = (chain_label_width + 1 + rate_room).min(left).max(4);
    }
    Columns {
        exchange_width,
        middle_start,
        middle_end,
        lane_start,
        lane_step,
        chain_x,
        chain_width,
        chain_lanes_x,
        inner,
    }
}

/// The first row drawn, so the selected node stays in view.
fn scroll(app: &App, height: u16) -> usize {
    let rows = app.graph.rows;
    if rows <= height as usize {
        return 0;
    }
    let selected_row = selected_row(app).unwrap_or(0);
    selected_row
        .saturating_sub(height as usize / 2)
        .min(rows - height as usize)
}

fn selected_row(app: &App) -> Option<usize> {
    app.graph.row_of(app.selected_item()?)
}

/// The graph item (index into [`GraphLayout::items`](crate::ui::layout::GraphLayout)) under a
/// mouse click, if any.
pub fn node_at(app: &App, column: u16, row: u16) -> Option<usize> {
    let item = item_at(app, column, row)?;
    app.graph.items.iter().position(|i| *i == item)
}

fn item_at(app: &App, column: u16, row: u16) -> Option<GraphItem> {
    let area = app.areas.graph;
    let inner = Block::new().borders(Borders::ALL).inner(area);
    if !inner.contains(ratatui::layout::Position::new(column, row)) {
        return None;
    }
    let pan = app.graph_pan.min(u16::MAX as usize / 2) as u16;
    let cols = columns(app, canvas_width(app, inner.width + pan));
    let r = (row - inner.y) as usize + scroll(app, inner.height);
    let x = column - inner.x + pan;
    let exchange = |i: usize| GraphItem::Exchange(i);
    if x < cols.exchange_width {
        app.graph
            .exchanges
            .iter()
            .position(|e| e.row == r)
            .map(exchange)
    } else if x >= cols.chain_x && x < cols.chain_x + cols.chain_width {
        (0..app.graph.exchanges.len())
            .find(|&i| app.graph.exchanges[i].row == r && cols.is_inner(i))
            .map(exchange)
    } else if x >= cols.middle_end {
        app.graph
            .queues
            .iter()
            .position(|q| q.row == r)
            .map(GraphItem::Queue)
    } else {
        // Between the columns: the binding whose edge starts on this row, left of the click.
        app.graph
            .bindings
            .iter()
            .position(|b| b.row == r && cols.edge_start(b.exchange) <= x)
            .map(GraphItem::Binding)
    }
}

pub struct GraphPane<'a> {
    pub app: &'a App,
    pub theme: Theme,
}

impl Widget for &GraphPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let app = self.app;
        let theme = self.theme;
        let focused = app.focus == Focus::Graph;
        let title = format!(
            " vhost {}  {} exchanges  {} queues  {} bindings ",
            app.model.vhost,
            app.graph.exchanges.len(),
            app.graph.queues.len(),
            app.graph.bindings.len()
        );
        let block = super::pane_block(title, focused, theme);
        let inner = block.inner(area);
        block.render(area, buf);
        if inner.width < 20 || inner.height < 2 {
            return;
        }
        if app.graph.exchanges.is_empty() && app.graph.queues.is_empty() {
            buf.set_string(
                inner.x + 1,
                inner.y,
                "No exchanges or queues yet. Declare some from a client (press ? for keys).",
                theme.dim(),
            );
            return;
        }
        let pan = app.graph_pan.min(u16::MAX as usize / 2) as u16;
        let width = canvas_width(app, inner.width + pan);
        if width == inner.width {
            draw(app, theme, inner, buf);
            return;
        }
        // Panned, or too many lanes for the pane: draw on a wider canvas (labels and lanes get
        // the room they lacked) and show the part starting `graph_pan` columns in.
        let mut canvas = Buffer::empty(Rect::new(0, 0, width, inner.height));
        draw(app, theme, canvas.area, &mut canvas);
        for y in 0..inner.height {
            for x in 0..inner.width {
                buf[(inner.x + x, inner.y + y)] = canvas[(x + pan, y)].clone();
            }
        }
    }
}

/// Draws the graph's content (no border) into `inner`.
fn draw(app: &App, theme: Theme, inner: Rect, buf: &mut Buffer) {
    let focused = app.focus == Focus::Graph;
    {
        let cols = columns(app, inner.width);
        let top = scroll(app, inner.height);
        let visible = |row: usize| row >= top && row < top + inner.height as usize;
        let y_of = |row: usize| inner.y + (row - top) as u16;

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
        let graph = &app.graph;
        // Each destination's span: the rows of its bindings and its own row.
        let mut queue_span: Vec<(usize, usize)> =
            graph.queues.iter().map(|q| (q.row, q.row)).collect();
        let mut exchange_span: Vec<(usize, usize)> =
            graph.exchanges.iter().map(|x| (x.row, x.row)).collect();
        for b in &graph.bindings {
            let span = match b.target {
                EdgeTarget::Queue(q) => &mut queue_span[q],
                EdgeTarget::Exchange(x) => &mut exchange_span[x],
            };
            span.0 = span.0.min(b.row);
            span.1 = span.1.max(b.row);
        }
        // Where a binding's horizontal ends: at its lane, or at the arrow for a straight line.
        let line_end = |b: &crate::ui::layout::BindingRow| match b.target {
            EdgeTarget::Queue(q) => match graph.queues[q].lane {
                Some(lane) => Some(cols.lane_x(lane)),
                None => Some(cols.middle_end.saturating_sub(1)),
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
            let start = cols.edge_start(b.exchange);
            for x in start..end {
                mark(b.row, x, LEFT | RIGHT);
            }
            match b.target {
                EdgeTarget::Queue(q) if graph.queues[q].lane.is_some() => {
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
        for (q, queue) in graph.queues.iter().enumerate() {
            if let Some(l) = queue.lane {
                lane(cols.lane_x(l), queue_span[q]);
            }
        }
        for (x, exchange) in graph.exchanges.iter().enumerate() {
            if let Some(l) = exchange.lane {
                lane(cols.chain_lane_x(l), exchange_span[x]);
            }
        }
        for (q, queue) in graph.queues.iter().enumerate() {
            if let Some(l) = queue.lane {
                for x in cols.lane_x(l) + 1..cols.middle_end.saturating_sub(1) {
                    mark(queue.row, x, LEFT | RIGHT);
                }
                let _ = q;
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
        // A key may run up to the first line that goes up or down through its row: its own
        // lane's corner, or another lane it crosses. Text never hides a line.
        let key_room = |b: &crate::ui::layout::BindingRow| {
            let start = cols.edge_start(b.exchange);
            let row = &masks[(b.row - top) * width..(b.row - top + 1) * width];
            let end = (start as usize + 1..width)
                .find(|&x| row[x] & (UP | DOWN) != 0)
                .unwrap_or(width.min(cols.middle_end as usize));
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
        for (i, b) in app.graph.bindings.iter().enumerate() {
            if !visible(b.row) {
                continue;
            }
            let y = y_of(b.row);
            let start = cols.edge_start(b.exchange);
            // Keys stop one line cell before the first column another line may cross.
            let text = match line_end(b) {
                Some(_) => format!(" {} ", b.key),
                None => match b.target {
                    EdgeTarget::Exchange(x) => format!(" {} ⇢ {}", b.key, graph.exchanges[x].name),
                    EdgeTarget::Queue(_) => format!(" {} ", b.key),
                },
            };
            let room = match line_end(b) {
                Some(_) => key_room(b),
                None => cols.middle_end.saturating_sub(start + 1) as usize,
            };
            // The space after a key is the first thing to go.
            let text = match text.strip_suffix(' ') {
                Some(tight) if text.width() > room => truncate(tight, room),
                _ => truncate(&text, room),
            };
            let style = if selected == Some(GraphItem::Binding(i)) {
                theme.key().patch(theme.selected())
            } else {
                theme.key()
            };
            buf.set_string(inner.x + start + 1, y, text, style);
        }
        for (i, x) in app.graph.exchanges.iter().enumerate() {
            if cols.is_inner(i) && visible(x.row) && cols.chain_x > 0 {
                buf.set_string(inner.x + cols.chain_x - 1, y_of(x.row), "▶", theme.edge());
            }
        }
        let mut fed = vec![false; app.graph.queues.len()];
        for b in &app.graph.bindings {
            if let EdgeTarget::Queue(q) = b.target {
                fed[q] = true;
            }
        }
        for (q, has_edge) in app.graph.queues.iter().zip(fed) {
            if has_edge && visible(q.row) && cols.middle_end > cols.middle_start + 1 {
                buf.set_string(
                    inner.x + cols.middle_end - 1,
                    y_of(q.row),
                    "▶",
                    theme.edge(),
                );
            }
        }

        // Nodes.
        for (i, x) in app.graph.exchanges.iter().enumerate() {
            if !visible(x.row) {
                continue;
            }
            let mut style = theme.exchange();
            if selected == Some(GraphItem::Exchange(i)) {
                style = style.patch(theme.selected());
            }
            let label = match app
                .model
                .exchange_rates
                .get(x.name.as_str())
                .map(|r| r.current())
            {
                Some(rate) if rate > 0 => format!("{} {rate}/s", x.label),
                _ => x.label.clone(),
            };
            let (column, room) = if cols.is_inner(i) {
                (cols.chain_x, cols.chain_width)
            } else {
                (0, cols.exchange_width)
            };
            let label = truncate(&label, room.saturating_sub(1) as usize);
            buf.set_string(inner.x + column, y_of(x.row), label, style);
        }
        let queue_width = inner.width.saturating_sub(cols.middle_end) as usize;
        for (i, q) in app.graph.queues.iter().enumerate() {
            if !visible(q.row) {
                continue;
            }
            let mut style = theme.queue();
            if selected == Some(GraphItem::Queue(i)) {
                style = style.patch(theme.selected());
            }
            // Rates sit first, where a narrow screen still shows them.
            let label = match app
                .model
                .queue_rates
                .get(q.name.as_str())
                .map(|r| r.current())
            {
                Some(rate) if rate > 0 => format!("{rate}/s {}", q.label),
                _ => q.label.clone(),
            };
            let label = truncate(&label, queue_width);
            buf.set_string(inner.x + cols.middle_end, y_of(q.row), label, style);
        }

        // Messages in flight.
        for flight in &app.model.flights {
            let t = (app
                .now
                .saturating_duration_since(flight.started)
                .as_secs_f64()
                / app.model.flight_time.as_secs_f64())
            .clamp(0.0, 1.0);
            let mark = match flight.kind {
                FlightKind::Dropped => Some('✗'),
                FlightKind::Returned => Some('↩'),
                _ => None,
            };
            if let Some(mark) = mark {
                // Unroutable: a mark beside the exchange, where the message stopped.
                if let Some(x) = app.graph.exchanges.iter().find(|x| *x.name == *flight.from) {
                    if visible(x.row) && cols.middle_start > 0 {
                        buf[(inner.x + cols.middle_start - 1, y_of(x.row))]
                            .set_char(mark)
                            .set_style(theme.bad());
                    }
                }
                continue;
            }
            let to_consumer = flight.kind == FlightKind::ToConsumer;
            let Some(path) = flight_path(
                app,
                &cols,
                &flight.from,
                &flight.to,
                to_consumer,
                inner.width,
            ) else {
                continue;
            };
            let (row, x) = path[((path.len() - 1) as f64 * t) as usize];
            if visible(row) {
                buf[(inner.x + x, y_of(row))]
                    .set_char('●')
                    .set_style(theme.message());
            }
        }
    }
}

/// The cells (row, column) a message passes, from its exchange to a queue, or along a queue's
/// row towards its consumers.
fn flight_path(
    app: &App,
    cols: &Columns,
    from: &str,
    to: &str,
    to_consumer: bool,
    width: u16,
) -> Option<Vec<(usize, u16)>> {
    if to_consumer {
        let q = app.graph.queues.iter().find(|q| q.name == from)?;
        let start = cols.middle_end + q.label.width() as u16 + 1;
        let end = width.saturating_sub(1);
        if start >= end {
            return None;
        }
        return Some((start..end).map(|x| (q.row, x)).collect());
    }
    let xi = app.graph.exchanges.iter().position(|x| x.name == from)?;
    let qi = app.graph.queues.iter().position(|q| q.name == to)?;
    let b = app
        .graph
        .bindings
        .iter()
        .find(|b| b.exchange == xi && b.target == EdgeTarget::Queue(qi))?;
    let q = &app.graph.queues[qi];
    let start = cols.edge_start(xi);
    // A straight line has no lane: its row is the queue's.
    let lx = match q.lane {
        Some(lane) => cols.lane_x(lane),
        None => cols.middle_end.saturating_sub(1),
    };
    let mut path: Vec<(usize, u16)> = (start..=lx).map(|x| (b.row, x)).collect();
    if q.row > b.row {
        path.extend((b.row + 1..=q.row).map(|r| (r, lx)));
    } else {
        path.extend((q.row..b.row).rev().map(|r| (r, lx)));
    }
    path.extend((lx + 1..cols.middle_end).map(|x| (q.row, x)));
    Some(path)
}

/// Cuts a string to a display width, marking the cut with `…`.
pub fn truncate(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}
