//! The topology graph, the whole way a message goes: publishers, exchanges, one row per
//! binding, queues with their counters (`ready unacked consumers`, as the bottom line says),
//! consumers; messages in flight as dots along the lines. Layout comes from
//! [`crate::ui::layout`].
//!
//! How to read it: `┼` is always two lines crossing; `┬ ┴ ├ ┤` only ever join lines bound for
//! the same destination (or leaving the same publisher or queue); `▶` is where a line ends.
//! Names come first when the pane is narrow: exchanges, keys and queues, then publishers and
//! consumers (cut, or hidden, as the bottom line then says), then counters and exchange types,
//! then lanes two columns apart; exchanges move to rows of their own above their bindings when
//! their names do not fit. A binding that gets no line (a chain more than one exchange deep,
//! or more lanes passing the view than the pane has columns) shows `key ⇢ destination`
//! instead. No text is ever written over a line, and a dot only ever runs on lines.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::{Block, Borders, Widget};
use unicode_width::UnicodeWidthStr;

use crate::lesson::Lang;
use crate::ui::app::{App, Focus};
use crate::ui::layout::{publisher_text, EdgeTarget, GraphItem};
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

/// Column positions of the regions, for a given inner width.
///
/// ```text
///  publishers ─┬▶ exchanges   keys     exchange lanes ▶ inner exchanges  keys
///              queue lanes ▶ queues ─┬▶ consumers
/// ```
///
/// Exchanges that are the destination of an exchange-to-exchange binding sit in a chain column
/// inside the middle, so a chain reads left to right: source exchange, binding, inner exchange,
/// binding, queue. Every lane has a column of its own; keys stop before the first lane, so no
/// text ever hides a line.
struct Columns {
    /// Where the exchanges' labels start: after the publishers (0 when they are hidden).
    exchange_x: u16,
    exchange_width: u16,
    /// Room for a publisher's label (0: publishers hidden).
    publisher_width: u16,
    /// Room for a queue's label and counters, and for a consumer's (0: consumers hidden).
    queue_width: u16,
    consumer_width: u16,
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
    /// Exchanges on rows of their own (see [`crate::ui::layout::layout`]).
    stacked: bool,
    /// Whether every name has the room it needs.
    names_fit: bool,
    /// How many queue lanes have a column, and per queue which (see [`QueueLane`]).
    lanes: u16,
    queue_lane: Vec<QueueLane>,
}

/// How a queue's bindings reach it in one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QueueLane {
    /// One binding, a straight line along the queue's row.
    Straight,
    /// A lane in this column (0 = nearest the keys).
    Column(usize),
    /// More lanes pass through the view than the pane has columns for: the binding on the
    /// queue's row runs straight to it, the others name it after their key.
    Named,
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

    /// The lane gathering the publishers of an exchange, just before its arrow.
    fn publisher_lane_x(&self) -> u16 {
        self.exchange_x.saturating_sub(2)
    }

    /// The lane fanning a queue's line out to its consumers; their arrows follow it.
    fn consumer_lane_x(&self) -> u16 {
        self.middle_end + self.queue_width + 1
    }
}

/// Line cells a dot may run on (text hides no line, but lines pass under nothing either).
fn is_line(symbol: &str) -> bool {
    matches!(
        symbol,
        "─" | "│" | "┌" | "┐" | "└" | "┘" | "├" | "┤" | "┬" | "┴" | "┼" | "▶"
    )
}

/// Which exchanges are the destination of an exchange-to-exchange binding shown.
fn inner_exchanges(app: &App) -> Vec<bool> {
    app.graph
        .exchanges
        .iter()
        .map(|x| x.lane.is_some())
        .collect()
}

/// The narrowest canvas on which exchange lanes and their labels have room; a narrower pane
/// shows the left part of it (and panning the rest) rather than letting lines run together.
fn canvas_width(app: &App, width: u16) -> u16 {
    let chain = if app.graph.chain_lanes > 0 {
        app.graph.chain_lanes as u16 + 6 + 10
    } else {
        0
    };
    let needed = 8 + 6 + chain + 2 + 8;
    width.max(needed)
}

/// The columns of a frame `width` wide and `height` high, with the lanes it shows.
fn columns(app: &App, width: u16, height: u16) -> Columns {
    let top = scroll(app, height);
    let passing = passing_lanes(app, top, top + height as usize);
    let mut cols = columns_of(app, app.graph.stacked, width, passing.len() as u16);
    // The lanes with a column: the shortest of those passing, kept in the layout's order.
    let mut chosen = passing.clone();
    chosen.sort_by_key(|(_, length)| *length);
    chosen.truncate(cols.lanes as usize);
    chosen.sort_by_key(|(q, _)| app.graph.queues[*q].lane);
    cols.queue_lane = app
        .graph
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

/// The queue lanes that pass through rows `top..bottom`, in the layout's order, with their
/// lengths.
fn passing_lanes(app: &App, top: usize, bottom: usize) -> Vec<(usize, usize)> {
    let graph = &app.graph;
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
    // it), so what follows them is not cut for them.
    let rate_room = rates_width(&app.model.exchange_rates);
    let queue_rate_room = rates_width(&app.model.queue_rates);
    let inner = inner_exchanges(app);
    let graph = &app.graph;
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
        widths.exchange_label + 1 + rate_room
    };
    // With consumers beside them, a queue's label keeps one more column: the space before
    // the line to its consumers.
    let consumers_beside = u16::from(!graph.consumers.is_empty());
    let queue_name = widths.queue_name + 1 + consumers_beside;
    let queue_full = widths.queue_label + 1 + consumers_beside + queue_rate_room;
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
    let names = exchange_name.max(8) + wanted_keys + queue_name.max(8) + lane_room(1).min(9);
    let names_fit = stacked || names <= width;
    // Share the width: first names and keys, evenly when they do not all fit; then publishers'
    // and consumers' names; then queue counters; then exchange types; then lanes two apart;
    // what is left lengthens the lines.
    let mut budget = width.saturating_sub(lane_room(1));
    let [mut exchange_width, keys, mut queue_width] = fill(
        [
            if stacked { 2 } else { exchange_name.max(8) },
            wanted_keys.max(if chain_lanes > 0 { 16 } else { 6 }),
            queue_name.max(8),
        ],
        budget,
    );
    budget -= exchange_width + keys + queue_width;
    // A publisher needs ` ─┬▶` after its name, a consumer `─┬▶` before it; shown only when
    // six columns of their names fit.
    let wanted = |label: u16, lines: u16, any: bool| if any { label + lines } else { 0 };
    let [publisher_room, consumer_room] = fill(
        [
            wanted(widths.publisher_label, 4, !graph.publishers.is_empty()),
            wanted(widths.consumer_label, 3, !graph.consumers.is_empty()),
        ],
        budget,
    );
    let room = |given: u16, lines: u16, label: u16| {
        if given >= lines + label.min(6) {
            given
        } else {
            0
        }
    };
    let publisher_room = room(publisher_room, 4, widths.publisher_label);
    let consumer_room = room(consumer_room, 3, widths.consumer_label);
    budget -= publisher_room + consumer_room;
    let more = budget.min(queue_full.saturating_sub(queue_width));
    queue_width += more;
    budget -= more;
    let more = budget.min(exchange_full.saturating_sub(exchange_width));
    exchange_width += more;
    budget -= more;
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
        lanes,
        queue_lane: Vec::new(),
    }
}

/// Whether exchanges, keys and queues fit side by side in `width` columns without a name being
/// cut; when not, the graph is laid out stacked.
pub fn side_by_side_fits(app: &App, width: u16) -> bool {
    columns_of(app, false, width, app.graph.lanes.min(8) as u16).names_fit
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
    let cols = columns(app, canvas_width(app, inner.width + pan), inner.height);
    let r = (row - inner.y) as usize + scroll(app, inner.height);
    let x = column - inner.x + pan;
    let exchange = |i: usize| GraphItem::Exchange(i);
    let header = || {
        (0..app.graph.exchanges.len())
            .find(|&i| app.graph.exchanges[i].row == r && (!cols.is_inner(i) || x >= cols.chain_x))
            .map(exchange)
    };
    let graph = &app.graph;
    if cols.stacked && x < cols.middle_end && header().is_some() {
        header()
    } else if x < cols.exchange_x {
        graph
            .publishers
            .iter()
            .position(|p| p.row == r)
            .map(GraphItem::Publisher)
    } else if cols.consumer_width > 0 && x > cols.consumer_lane_x() {
        graph
            .consumers
            .iter()
            .position(|c| c.row == r)
            .map(GraphItem::Consumer)
    } else if x < cols.middle_start {
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
        let lang = app.options.lang;
        let (exchanges, queues, bindings) = (
            app.graph.exchanges.len(),
            app.graph.queues.len(),
            app.graph.bindings.iter().filter(|b| !b.implicit).count(),
        );
        let mut title = match lang {
            Lang::En => format!(
                " vhost {}  {exchanges} exchanges  {queues} queues  {bindings} bindings ",
                app.model.vhost
            ),
            Lang::Zh => format!(
                " vhost {}  {exchanges} 个交换器  {queues} 个队列  {bindings} 个绑定 ",
                app.model.vhost
            ),
        };
        if app.zoomed {
            title.push_str(tr(lang, "· zoomed, z returns ", "· 已放大，z 还原 "));
        }
        let block = super::pane_block(title, focused, theme);
        let inner = block.inner(area);
        let pan = app.graph_pan.min(u16::MAX as usize / 2) as u16;
        let width = canvas_width(app, inner.width + pan);
        // The bottom line reads the queues' counters, and says what found no room.
        let graph = &app.graph;
        if !graph.queues.is_empty() {
            let cols = columns(app, width, inner.height);
            let publishers_hidden = graph.hidden_publishers > 0
                || (!graph.publishers.is_empty() && cols.publisher_width == 0);
            let consumers_hidden = !graph.consumers.is_empty() && cols.consumer_width == 0;
            let hidden = match (lang, publishers_hidden, consumers_hidden) {
                (Lang::En, true, true) => ["· publishers, consumers hidden ", "· clients hidden "],
                (Lang::En, true, false) => ["· publishers hidden "; 2],
                (Lang::En, false, true) => ["· consumers hidden "; 2],
                (Lang::Zh, true, true) => ["· 发布者、消费者未显示 ", "· 客户端未显示 "],
                (Lang::Zh, true, false) => ["· 发布者未显示 "; 2],
                (Lang::Zh, false, true) => ["· 消费者未显示 "; 2],
                (_, false, false) => [""; 2],
            };
            let room = inner.width as usize;
            let (long, short) = match lang {
                Lang::En => (
                    " queues: ready unacked consumers",
                    " ready unacked consumers",
                ),
                Lang::Zh => (" 队列：就绪 未确认 消费者", " 就绪 未确认 消费者"),
            };
            // Zooming (z) gives the graph the room for what it hid.
            let zoom = match (lang, app.zoomed || hidden[0].is_empty()) {
                (_, true) => "",
                (Lang::En, false) => "(z zooms) ",
                (Lang::Zh, false) => "（z 放大）",
            };
            let legend = [
                format!("{long} {}{zoom}", hidden[0]),
                format!("{short} {}{zoom}", hidden[0]),
                format!("{short} {}{zoom}", hidden[1]),
                format!("{long} {}", hidden[0]),
                format!("{short} {}", hidden[0]),
                format!("{short} {}", hidden[1]),
            ]
            .into_iter()
            .find(|l| l.width() <= room)
            .unwrap_or_default();
            block
                .title_bottom(ratatui::text::Line::from(legend).right_aligned())
                .render(area, buf);
        } else {
            block.render(area, buf);
        }
        if inner.width < 20 || inner.height < 2 {
            return;
        }
        if app.graph.exchanges.is_empty() && app.graph.queues.is_empty() {
            buf.set_string(
                inner.x + 1,
                inner.y,
                tr(
                    lang,
                    "No exchanges or queues yet. Declare some from a client (press ? for keys).",
                    "还没有交换器或队列。从客户端声明一些（按 ? 查看按键）。",
                ),
                theme.dim(),
            );
            return;
        }
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
        let cols = columns(app, inner.width, inner.height);
        let top = scroll(app, inner.height);
        let visible = |row: usize| row >= top && row < top + inner.height as usize;
        let y_of = |row: usize| inner.y + (row - top) as u16;
        let graph = &app.graph;
        // Labels first: where they end, the publishers' and the queues' lines begin.
        let publisher_labels: Vec<String> = graph
            .publishers
            .iter()
            .map(|p| truncate(&publisher_text(graph, p), cols.publisher_width as usize))
            .collect();
        let queue_room = if cols.consumer_width > 0 {
            cols.queue_width.saturating_sub(1)
        } else {
            inner.width.saturating_sub(cols.middle_end)
        };
        // Only the queues on view: a big broker has thousands.
        let queue_labels: Vec<String> = graph
            .queues
            .iter()
            .map(|q| match visible(q.row) {
                true => truncate(&queue_text(app, q), queue_room as usize),
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
            let start = cols.edge_start(b.exchange);
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
        for (queue, lane) in graph.queues.iter().zip(&cols.queue_lane) {
            if let QueueLane::Column(l) = lane {
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
                let start = cols.middle_end + queue_labels[q].width() as u16 + 1;
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
                    buf.set_string(inner.x + lx + 2, y, truncate(&c.label, room), style);
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
            let column = if cols.is_inner(i) {
                cols.chain_x
            } else {
                cols.exchange_x
            };
            let room = if cols.stacked {
                // On its own row, up to the first line that crosses it.
                let row = &masks[(x.row - top) * width..(x.row - top + 1) * width];
                let queue_beside = app.graph.queues.iter().any(|q| q.row == x.row);
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
                cols.exchange_width
            };
            let label = truncate(&label, room.saturating_sub(1) as usize);
            buf.set_string(inner.x + column, y_of(x.row), label, style);
        }
        for (i, (q, label)) in app.graph.queues.iter().zip(&queue_labels).enumerate() {
            if !visible(q.row) {
                continue;
            }
            let mut style = theme.queue();
            if selected == Some(GraphItem::Queue(i)) {
                style = style.patch(theme.selected());
            }
            buf.set_string(inner.x + cols.middle_end, y_of(q.row), label, style);
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
                let exchange = app.graph.exchanges.iter().enumerate();
                if let Some((i, x)) = exchange.clone().find(|(_, x)| *x.name == *flight.from) {
                    if visible(x.row) && cols.edge_start(i) > 0 {
                        buf[(inner.x + cols.edge_start(i) - 1, y_of(x.row))]
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

/// A queue's label as drawn: its rate first (where a narrow screen still shows it), name and
/// flags, and its counters without the messages still flying to it.
fn queue_text(app: &App, q: &crate::ui::layout::QueueNode) -> String {
    let (ready, unacked) = app.model.arriving(&q.name, app.now);
    let counters = crate::ui::layout::counters(
        q.ready.saturating_sub(ready),
        q.unacked.saturating_sub(unacked),
        q.consumers,
    );
    match app
        .model
        .queue_rates
        .get(q.name.as_str())
        .map(|r| r.current())
    {
        Some(rate) if rate > 0 => format!("{rate}/s {}  {counters}", q.label),
        _ => format!("{}  {counters}", q.label),
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
    let graph = &app.graph;
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
        let start = cols.middle_end + queue_labels[qi].width() as u16 + 1;
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
    let start = cols.edge_start(xi);
    // A straight line has no lane: its row is the queue's.
    let lx = match cols.queue_lane[qi] {
        QueueLane::Column(lane) => cols.lane_x(lane),
        QueueLane::Named if q.row != b.row => return path,
        _ => cols.middle_end.saturating_sub(1),
    };
    path.extend((start..=lx).map(|x| (b.row, x)));
    if q.row > b.row {
        path.extend((b.row + 1..=q.row).map(|r| (r, lx)));
    } else {
        path.extend((q.row..b.row).rev().map(|r| (r, lx)));
    }
    path.extend((lx + 1..cols.middle_end).map(|x| (q.row, x)));
    path
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
