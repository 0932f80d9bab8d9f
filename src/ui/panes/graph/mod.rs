//! The topology graph, the whole way a message goes: publishers, exchanges, one row per
//! binding, queues with their counters (`ready unacked consumers`, as the bottom line says),
//! consumers; messages in flight as dots along the lines. Layout comes from
//! [`crate::ui::layout`].
//!
//! How to read it: `┼` is always two lines crossing; `┬ ┴ ├ ┤` only ever join lines bound for
//! the same destination (or leaving the same publisher or queue); `▶` is where a line ends.
//! Names come first when the pane is narrow: exchanges, keys and queues, then counters and
//! exchange types, then publishers and consumers' connections (each side whole, or hidden as
//! the bottom line then says), then consumers' tags, then lanes two columns apart; exchanges
//! move to rows of their own above their bindings when their names do not fit. The default
//! exchange's key is its queue's name: such a queue's label is drawn once, right after the
//! exchange, where the key would be (`(default) [direct] ─▶reply_…  0 0 1`). A binding that
//! gets no line (a chain more than one exchange deep, or more lanes passing the view than the
//! pane has columns) shows `key ⇢ destination` instead. No text is ever written over a line,
//! and a dot only ever runs on lines.
//!
//! - this file: the pane as a widget, which row is in view, and what a click hits.
//! - `columns.rs`: where each region starts for a width, and what is cut when it is narrow.
//! - `draw.rs`: the lines, labels and flying dots, cell by cell.
//!
//! It reads the app and the layout; it changes nothing.

mod columns;
mod draw;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::{Block, Borders, Widget};
use unicode_width::UnicodeWidthStr;

use crate::lesson::Lang;
use crate::ui::app::{App, Focus};
use crate::ui::layout::GraphItem;
pub use crate::ui::text::truncate;
use crate::ui::theme::Theme;
use crate::ui::words::tr;
use columns::{canvas_width, columns};
pub use columns::{side_by_side_fits, whole_width};

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
    /// Clients drawn by their longer names, each side whose room takes them whole.
    long_publishers: bool,
    long_consumers: bool,
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
    /// Whether every name has the room it needs; and every type and counter too; and every
    /// client's name besides.
    names_fit: bool,
    labels_fit: bool,
    whole: bool,
    /// How many queue lanes have a column, and per queue which (see [`QueueLane`]).
    lanes: u16,
    queue_lane: Vec<QueueLane>,
    /// Per queue, where its label starts: `middle_end`, or for a queue drawn where its key
    /// would be, right after its exchange (see [`Columns::by_name_x`]).
    queue_x: Vec<u16>,
    /// Per exchange, how far its label runs on into the key column (see
    /// [`crate::ui::layout::ExchangeNode::by_name`]).
    overflow: Vec<u16>,
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

/// The first row drawn, so the selected node stays in view.
fn scroll(app: &App, height: u16) -> usize {
    let rows = app.graph.layout.rows;
    if rows <= height as usize {
        return 0;
    }
    let selected_row = selected_row(app).unwrap_or(0);
    selected_row
        .saturating_sub(height as usize / 2)
        .min(rows - height as usize)
}

fn selected_row(app: &App) -> Option<usize> {
    app.graph.layout.row_of(app.selected_item()?)
}

/// The graph item (index into [`GraphLayout::items`](crate::ui::layout::GraphLayout)) under a
/// mouse click, if any.
pub fn node_at(app: &App, column: u16, row: u16) -> Option<usize> {
    let item = item_at(app, column, row)?;
    app.graph.layout.items.iter().position(|i| *i == item)
}

fn item_at(app: &App, column: u16, row: u16) -> Option<GraphItem> {
    let area = app.areas.graph;
    let inner = Block::new().borders(Borders::ALL).inner(area);
    if !inner.contains(ratatui::layout::Position::new(column, row)) {
        return None;
    }
    let pan = app.graph.pan.min(u16::MAX as usize / 2) as u16;
    let cols = columns(app, canvas_width(app, inner.width + pan), inner.height);
    let r = (row - inner.y) as usize + scroll(app, inner.height);
    let x = column - inner.x + pan;
    let exchange = |i: usize| GraphItem::Exchange(i);
    let header = || {
        (0..app.graph.layout.exchanges.len())
            .find(|&i| {
                app.graph.layout.exchanges[i].row == r && (!cols.is_inner(i) || x >= cols.chain_x)
            })
            .map(exchange)
    };
    let graph = &app.graph.layout;
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
        graph
            .exchanges
            .iter()
            .position(|e| e.row == r)
            .map(exchange)
    } else if let Some(i) = (0..graph.exchanges.len())
        .find(|&i| graph.exchanges[i].row == r && x < cols.middle_start + cols.overflow[i])
    {
        Some(exchange(i))
    } else if let Some(q) = graph
        .queues
        .iter()
        .enumerate()
        .position(|(q, queue)| queue.row == r && x >= cols.queue_x[q])
    {
        // A queue's label and the line to its consumers; for one drawn where its key would
        // be, that starts right after the exchange.
        Some(GraphItem::Queue(q))
    } else if x >= cols.middle_end {
        None
    } else if x >= cols.chain_x && x < cols.chain_x + cols.chain_width {
        (0..app.graph.layout.exchanges.len())
            .find(|&i| app.graph.layout.exchanges[i].row == r && cols.is_inner(i))
            .map(exchange)
    } else {
        // Between the columns: the binding whose edge starts on this row, left of the click.
        app.graph
            .layout
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
            app.graph.layout.exchanges.len(),
            app.graph.layout.queues.len(),
            app.graph
                .layout
                .bindings
                .iter()
                .filter(|b| !b.implicit)
                .count(),
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
        title.push_str(app.graph.grouping.title(lang));
        if app.graph.zoomed {
            title.push_str(tr(lang, "· zoomed, z returns ", "· 已放大，z 还原 "));
        }
        // A narrow pane cuts its title after a word.
        let title = crate::ui::text::truncate_words(&title, area.width.saturating_sub(2).into());
        let block = super::pane_block(title, focused, theme);
        let inner = block.inner(area);
        let pan = app.graph.pan.min(u16::MAX as usize / 2) as u16;
        let width = canvas_width(app, inner.width + pan);
        // The bottom line reads the queues' counters, and says what found no room.
        let graph = &app.graph.layout;
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
            // A stream shows its offsets instead: where one is drawn, the legend says so first.
            let streams = match (lang, graph.queues.iter().any(|q| q.offsets.is_some())) {
                (_, false) => None,
                (Lang::En, true) => Some(format!("{long} · streams: offsets")),
                (Lang::Zh, true) => Some(format!("{long} · 流：偏移")),
            };
            // Zooming (z) gives the graph the room for what it hid.
            let zoom = match (lang, app.graph.zoomed || hidden[0].is_empty()) {
                (_, true) => "",
                (Lang::En, false) => "(z zooms) ",
                (Lang::Zh, false) => "（z 放大）",
            };
            let with_streams = streams.map(|s| format!("{s} {}{zoom}", hidden[0]));
            let legend = with_streams
                .into_iter()
                .chain([
                    format!("{long} {}{zoom}", hidden[0]),
                    format!("{short} {}{zoom}", hidden[0]),
                    format!("{short} {}{zoom}", hidden[1]),
                    format!("{long} {}", hidden[0]),
                    format!("{short} {}", hidden[0]),
                    format!("{short} {}", hidden[1]),
                ])
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
        if app.graph.layout.exchanges.is_empty() && app.graph.layout.queues.is_empty() {
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
            draw::draw(app, theme, inner, buf);
            return;
        }
        // Panned, or too many lanes for the pane: draw on a wider canvas (labels and lanes get
        // the room they lacked) and show the part starting `graph_pan` columns in.
        let mut canvas = Buffer::empty(Rect::new(0, 0, width, inner.height));
        draw::draw(app, theme, canvas.area, &mut canvas);
        for y in 0..inner.height {
            for x in 0..inner.width {
                buf[(inner.x + x, inner.y + y)] = canvas[(x + pan, y)].clone();
            }
        }
    }
}
