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

/// Column positions of the regions, for a given inner width. Exchanges that are the
/// destination of an exchange-to-exchange binding sit in a chain column inside the middle, so a
/// chain reads left to right: source exchange, binding, inner exchange, binding, queue.
struct Columns {
    exchange_width: u16,
    middle_start: u16,
    middle_end: u16,
    lane_start: u16,
    lane_step: u16,
    /// Where inner exchanges' labels start, and how wide they may be (0 when none).
    chain_x: u16,
    chain_width: u16,
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
}

impl Columns {
    fn is_inner(&self, exchange: usize) -> bool {
        self.inner.get(exchange).copied().unwrap_or(false)
    }
}

/// Which exchanges are the destination of an exchange-to-exchange binding shown, in one pass
/// over the bindings (a big broker has tens of thousands).
fn inner_exchanges(app: &App) -> Vec<bool> {
    let mut inner = vec![false; app.graph.exchanges.len()];
    for b in &app.graph.bindings {
        if let EdgeTarget::Exchange(x) = b.target {
            inner[x] = true;
        }
    }
    inner
}

fn columns(app: &App, width: u16) -> Columns {
    let widest = |labels: &mut dyn Iterator<Item = &String>| {
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
    let labels_in = |chain: bool| {
        let labels = app.graph.exchanges.iter().zip(&inner);
        widest(&mut labels.filter(|(_, i)| **i == chain).map(|(x, _)| &x.label))
    };
    let exchange_width = (labels_in(false) + 1 + rate_room).min(width / 3).max(8);
    let chain_label_width = labels_in(true);
    let queue_width = (widest(&mut app.graph.queues.iter().map(|q| &q.label)) + 2)
        .min(width / 3)
        .max(8);
    let middle_start = exchange_width;
    let middle_end = width.saturating_sub(queue_width).max(middle_start + 4);
    let middle = middle_end - middle_start;
    // Lanes take the right part of the middle, leaving room for binding keys on the left.
    let lanes = app.graph.lanes.max(1) as u16;
    let lane_room = (middle / 3).max(2);
    let lane_step = if lanes * 2 <= lane_room && middle >= 30 {
        2
    } else {
        1
    };
    let lane_start = middle_end
        .saturating_sub(lanes.min(lane_room) * lane_step + 1)
        .max(middle_start + 2);
    let (mut chain_x, mut chain_width) = (middle_start, 0);
    if inner.iter().any(|i| *i) {
        // Keys of the chain bindings on the left, inner exchanges' labels after them.
        let key_width = app
            .graph
            .bindings
            .iter()
            .filter(|b| matches!(b.target, EdgeTarget::Exchange(_)))
            .map(|b| b.key.width() as u16 + 2)
            .max()
            .unwrap_or(0);
        let room = lane_start.saturating_sub(middle_start);
        chain_x = middle_start + (key_width + 3).min(room / 3);
        // What is left after the label goes to the inner exchange's own keys: at least 10.
        let left = lane_start.saturating_sub(chain_x).saturating_sub(10);
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
    let cols = columns(app, inner.width + pan);
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
        if app.graph_pan == 0 {
            draw(app, theme, inner, buf);
            return;
        }
        // Panned: draw on a wider canvas (labels get the room they lacked) and show the part
        // starting `graph_pan` columns in.
        let pan = app.graph_pan.min(u16::MAX as usize / 2) as u16;
        let mut canvas = Buffer::empty(Rect::new(0, 0, inner.width + pan, inner.height));
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

        // Edges as connection masks, so crossings and joins get the right box glyph.
        let width = inner.width as usize;
        let mut masks = vec![0u8; width * inner.height as usize];
        let mut mark = |row: usize, x: u16, bits: u8| {
            if visible(row) && (x as usize) < width {
                masks[(row - top) * width + x as usize] |= bits;
            }
        };
        let lane_x = |lane: usize| {
            (cols.lane_start + lane as u16 * cols.lane_step).min(cols.middle_end.saturating_sub(2))
        };
        let bottom = top + inner.height as usize;
        for b in &app.graph.bindings {
            let start = cols.edge_start(b.exchange);
            let EdgeTarget::Queue(q) = b.target else {
                continue;
            };
            let queue = &app.graph.queues[q];
            if b.row.max(queue.row) < top || b.row.min(queue.row) >= bottom {
                continue; // entirely off screen
            }
            let lx = lane_x(queue.lane);
            for x in start..lx {
                mark(b.row, x, LEFT | RIGHT);
            }
            let (from, to) = (b.row.min(queue.row), b.row.max(queue.row));
            if b.row != queue.row {
                mark(b.row, lx, LEFT | if queue.row > b.row { DOWN } else { UP });
                // Only the visible part of a lane costs anything.
                for r in (from + 1).max(top)..to.min(bottom) {
                    mark(r, lx, UP | DOWN);
                }
                mark(
                    queue.row,
                    lx,
                    RIGHT | if queue.row > b.row { UP } else { DOWN },
                );
            } else {
                mark(b.row, lx, LEFT | RIGHT);
            }
            for x in lx + 1..cols.middle_end.saturating_sub(1) {
                mark(queue.row, x, LEFT | RIGHT);
            }
        }
        // Chain edges: along the binding row to a connector just left of the chain column,
        // then up or down to the inner exchange's row.
        let connector = cols.chain_x.saturating_sub(2);
        for b in &app.graph.bindings {
            let EdgeTarget::Exchange(t) = b.target else {
                continue;
            };
            let target_row = app.graph.exchanges[t].row;
            for x in cols.edge_start(b.exchange)..connector {
                mark(b.row, x, LEFT | RIGHT);
            }
            let down = target_row > b.row;
            mark(b.row, connector, LEFT | if down { DOWN } else { UP });
            let (from, to) = (b.row.min(target_row), b.row.max(target_row));
            for r in (from + 1).max(top)..to.min(bottom) {
                mark(r, connector, UP | DOWN);
            }
            mark(target_row, connector, RIGHT | if down { UP } else { DOWN });
        }
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
            let end = match b.target {
                EdgeTarget::Queue(q) => lane_x(app.graph.queues[q].lane),
                EdgeTarget::Exchange(_) => connector,
            };
            let text = truncate(
                &format!(" {} ", b.key),
                end.saturating_sub(start + 2) as usize,
            );
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
    let lx =
        (cols.lane_start + q.lane as u16 * cols.lane_step).min(cols.middle_end.saturating_sub(2));
    let start = cols.edge_start(xi);
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
