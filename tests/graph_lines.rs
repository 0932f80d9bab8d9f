//! The graph never misleads: from every binding key, the drawn line leads to that binding's own
//! destination and to no other.
//!
//! How a line is read, cell by cell, the way a user's eye follows it:
//!
//! - `─` and `│` carry a line straight on; `┌ ┐ └ ┘` turn it.
//! - `┼` is always a *crossing*: two lines pass over each other, and each goes straight on.
//! - `├ ┤ ┬ ┴` are *junctions*: all three arms are one line. The drawing only ever joins lines
//!   bound for the same destination there.
//! - `▶` is an arrow: the line ends at the queue (or exchange) whose name follows it.
//!
//! A binding's line starts at the first `─` after its key. Everything reachable from there by
//! these rules is what the user can take the binding to mean, so it must contain exactly one
//! arrow, the one of its own destination. The same holds left and right of them: from a
//! publisher's name the line reaches only the exchange it published to, and from a queue's
//! counters the lines reach only that queue's own consumers.
mod common;

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::Arc;

use proptest::prelude::*;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;

use rabbitscope::broker::{
    ConnectionSnapshot, ConsumerSnapshot, ExchangeSnapshot, QueueSnapshot, Snapshot, VhostSnapshot,
};
use rabbitscope::events::{BindingInfo, ClientInfo, Event, EventKind, PublishFate};
use rabbitscope::ui::action::Action;
use rabbitscope::ui::app::{App, ViewOptions};
use rabbitscope::ui::layout::{ConsumerNode, EdgeTarget};
use rabbitscope::ui::model::Rate;
use rabbitscope::ui::panes::graph::GraphPane;
use rabbitscope::ui::theme::Theme;

const UP: u8 = 1;
const DOWN: u8 = 2;
const LEFT: u8 = 4;
const RIGHT: u8 = 8;

/// The arms of a box-drawing cell (`▶` is entered from the left).
fn arms(c: &str) -> u8 {
    match c {
        "─" => LEFT | RIGHT,
        "│" => UP | DOWN,
        "┌" => DOWN | RIGHT,
        "┐" => DOWN | LEFT,
        "└" => UP | RIGHT,
        "┘" => UP | LEFT,
        "├" => UP | DOWN | RIGHT,
        "┤" => UP | DOWN | LEFT,
        "┬" => LEFT | RIGHT | DOWN,
        "┴" => LEFT | RIGHT | UP,
        "┼" => UP | DOWN | LEFT | RIGHT,
        "▶" => LEFT,
        _ => 0,
    }
}

fn opposite(dir: u8) -> u8 {
    match dir {
        UP => DOWN,
        DOWN => UP,
        LEFT => RIGHT,
        _ => LEFT,
    }
}

fn step(x: u16, y: u16, dir: u8, area: ratatui::layout::Rect) -> Option<(u16, u16)> {
    let (x, y) = match dir {
        UP => (x, y.checked_sub(1)?),
        DOWN => (x, y + 1),
        LEFT => (x.checked_sub(1)?, y),
        _ => (x + 1, y),
    };
    (x < area.width && y < area.height).then_some((x, y))
}

/// The name written right of an arrow, up to the first space; past a queue's rate (`12/s `),
/// which comes before its name.
fn name_after(buf: &Buffer, x: u16, y: u16) -> String {
    let word_at = |mut x: u16| {
        let mut word = String::new();
        while x < buf.area.width {
            let s = buf[(x, y)].symbol();
            if s == " " || s == "│" {
                break;
            }
            word.push_str(s);
            x += unicode_width::UnicodeWidthStr::width(s).max(1) as u16;
        }
        word
    };
    let first = word_at(x + 1);
    let is_rate = first
        .strip_suffix("/s")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    match is_rate {
        true => word_at(x + 1 + first.len() as u16 + 1),
        false => first,
    }
}

/// The whole label right of an arrow, up to the pane's border: a consumer's, whose name has
/// spaces.
fn label_after(buf: &Buffer, x: u16, y: u16) -> String {
    let mut name = String::new();
    let mut x = x + 1;
    while x < buf.area.width && buf[(x, y)].symbol() != "│" {
        let s = buf[(x, y)].symbol();
        name.push_str(s);
        x += unicode_width::UnicodeWidthStr::width(s).max(1) as u16;
    }
    name.trim_end().to_string()
}

/// Every arrow reachable from a cell entered moving `dir`, by the reading rules above: the
/// names after those arrows.
fn reached(buf: &Buffer, start: (u16, u16), dir: u8) -> BTreeSet<String> {
    reached_by(buf, start, dir, name_after)
}

/// As [`reached`], reading what follows each arrow with `read`.
fn reached_by(
    buf: &Buffer,
    start: (u16, u16),
    dir: u8,
    read: fn(&Buffer, u16, u16) -> String,
) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    // A state is a cell and the direction it was entered in; a crossing is passed straight.
    let mut seen = HashSet::new();
    let mut todo = VecDeque::from([(start.0, start.1, dir)]);
    while let Some((x, y, dir)) = todo.pop_front() {
        if !seen.insert((x, y, dir)) {
            continue;
        }
        let symbol = buf[(x, y)].symbol();
        let a = arms(symbol);
        // A line only goes on into a cell with an arm facing where it came from.
        if a & opposite(dir) == 0 {
            continue;
        }
        if symbol == "▶" {
            found.insert(read(buf, x, y));
            continue;
        }
        let out = if symbol == "┼" {
            dir
        } else {
            a & !opposite(dir)
        };
        for d in [UP, DOWN, LEFT, RIGHT] {
            if out & d != 0 {
                if let Some((nx, ny)) = step(x, y, d, buf.area) {
                    todo.push_back((nx, ny, d));
                }
            }
        }
    }
    found
}

/// The row of the screen as text, and where each cell's symbol starts in it.
fn row_text(buf: &Buffer, y: u16) -> (String, Vec<(usize, u16)>) {
    let mut text = String::new();
    let mut starts = Vec::new();
    let mut x = 0;
    while x < buf.area.width {
        let s = buf[(x, y)].symbol();
        starts.push((text.len(), x));
        text.push_str(s);
        x += unicode_width::UnicodeWidthStr::width(s).max(1) as u16;
    }
    (text, starts)
}

fn app_for(vhost: VhostSnapshot) -> App {
    let mut app = App::new("127.0.0.1:5673", "/", ViewOptions::default());
    app.update(Action::Topology(Snapshot {
        vhosts: vec![vhost],
        ..Default::default()
    }));
    app
}

fn draw_graph(app: &mut App, width: u16, height: u16) -> Buffer {
    // As the whole screen does: stacked when names do not fit side by side.
    let stacked = !rabbitscope::ui::panes::graph::side_by_side_fits(app, width - 2);
    app.fit_graph(stacked);
    let app = &*app;
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
    terminal
        .draw(|frame| {
            let pane = GraphPane {
                app,
                theme: Theme {
                    monochrome: true,
                    high_contrast: false,
                },
            };
            frame.render_widget(&pane, frame.area());
        })
        .expect("the graph draws");
    terminal.backend().buffer().clone()
}

/// Follows every binding's line and checks it reaches its own destination only. Keys must be
/// drawn whole (the test topologies are small enough for the screen).
fn check_lines(app: &App, buf: &Buffer) -> Result<(), String> {
    check_lines_on(app, buf, true)
}

/// With `whole` false, for a screen too small for everything: a key that is cut is skipped, and
/// a line may leave the screen, but none may reach another destination.
fn check_lines_on(app: &App, buf: &Buffer, whole: bool) -> Result<(), String> {
    // The pane's border takes the first row of its area.
    let top = app.areas.graph.y + 1;
    let graph = &app.graph.layout;
    let screen = || {
        (0..buf.area.height)
            .map(|y| row_text(buf, y).0)
            .collect::<Vec<_>>()
            .join("\n")
    };
    for b in &graph.bindings {
        let y = b.row as u16 + top;
        let (text, starts) = row_text(buf, y);
        let want = match b.target {
            EdgeTarget::Queue(q) => graph.queues[q].name.clone(),
            EdgeTarget::Exchange(e) => graph.exchanges[e].name.clone(),
        };
        // A binding with no lane of its own (from an exchange in a chain, or past the lanes a
        // narrow pane has room for) names its destination after the key instead.
        if text.contains(&format!(" {} ⇢ {want}", b.key)) {
            continue;
        }
        // The default exchange's key is its queue's name: the queue's label may take the
        // key's place, after a short line from the exchange (`(default) ─▶reply_…`).
        if b.binding.source.is_empty() && *b.binding.routing_key == *want {
            if let Some(x) = line_from_space_to(&text, &starts, buf, y, &want) {
                let got = reached(buf, (x, y), RIGHT);
                if got.len() != 1 || !got.iter().all(|g| names(g, &want, whole)) {
                    return Err(format!(
                        "the line of (default) -> {want} reaches {got:?}:\n{}",
                        screen()
                    ));
                }
                continue;
            }
        }
        // A name a client made up may be cut after its first 24 characters.
        let needle = match text.find(&format!(" {} ─", b.key)) {
            None if made_up(&b.key) => format!(" {}", &b.key[..24]),
            _ => format!(" {} ─", b.key),
        };
        let Some(at) = text.find(&needle) else {
            if !whole {
                continue;
            }
            return Err(format!(
                "key {:?} not drawn whole on row {y}:\n{}",
                b.key,
                screen()
            ));
        };
        let from = at + needle.trim_end_matches('─').len();
        let x = line_after(&text, &starts, from).expect("a line after the key");
        let mut got = reached(buf, (x, y), RIGHT);
        if !whole {
            // An arrow at the very edge, its name off screen, says nothing either way.
            got.remove("");
        }
        // A name cut for want of room ends in `…`; what is drawn must still be its start.
        // Where the screen's edge cuts it, only its start shows.
        let names_it = |drawn: &String| names(drawn, &want, whole);
        let leaves = !whole && got.is_empty();
        if !leaves && (got.len() != 1 || !got.iter().all(names_it)) {
            return Err(format!(
                "the line of {} -[{}]-> {want} reaches {got:?}:\n{}",
                b.binding.source,
                b.key,
                screen()
            ));
        }
    }
    Ok(())
}

/// Whether a name drawn after an arrow is `want`'s: a name cut for want of room ends in `…`
/// and what is drawn must still be its start; where the screen's edge cuts it (`whole`
/// false), only its start shows.
fn names(drawn: &str, want: &str, whole: bool) -> bool {
    match drawn.strip_suffix('…') {
        Some(start) => want.starts_with(start),
        None => drawn == want || (!whole && want.starts_with(drawn)),
    }
}

/// Where the line that ends at `name`'s arrow on row `y` starts, when it starts after a space
/// (no other line leads into it).
fn line_from_space_to(
    text: &str,
    starts: &[(usize, u16)],
    buf: &Buffer,
    y: u16,
    name: &str,
) -> Option<u16> {
    let start: String = name.chars().take(24).collect();
    let at = text.find(&format!("─▶{start}"))?;
    let mut x = starts.iter().find(|(i, _)| *i == at)?.1;
    while x > 0 && buf[(x - 1, y)].symbol() == "─" {
        x -= 1;
    }
    (x > 0 && buf[(x - 1, y)].symbol() == " ").then_some(x)
}

/// The column of the first line cell (`─`) at or after byte `from` of a row's text.
fn line_after(text: &str, starts: &[(usize, u16)], from: usize) -> Option<u16> {
    let at = from + text[from..].find('─')?;
    starts.iter().find(|(i, _)| *i == at).map(|(_, x)| *x)
}

/// Follows each publisher's line and each queue's line to its consumers: a publisher reaches
/// the exchange it published to and nothing else, a queue its own consumers (or its `+N`) and
/// nothing else. With `whole` false, cut names are skipped and cut labels compared by their
/// start.
fn check_clients(app: &App, buf: &Buffer, whole: bool) -> Result<(), String> {
    let top = app.areas.graph.y + 1;
    let graph = &app.graph.layout;
    let screen = || as_text(buf);
    // Cut for want of room (`…`), or, when narrow, by the edge of the pane.
    let matches = |drawn: &String, want: &str| match drawn.strip_suffix('…') {
        Some(start) => !whole && want.starts_with(start),
        None => drawn == want || (!whole && want.starts_with(drawn.as_str())),
    };
    for p in &graph.publishers {
        let y = p.row as u16 + top;
        let (text, starts) = row_text(buf, y);
        let exchange = &graph.exchanges[p.exchange].name;
        let want = if exchange.is_empty() {
            "(default)"
        } else {
            exchange
        };
        // A publisher of an exchange in the chain column names it instead of a line.
        if text.starts_with(&format!("│{} ⇢ {want}", p.label))
            || (!whole && text.starts_with(&format!("│{} ⇢", p.label)))
        {
            continue;
        }
        // The pane's border, then the label.
        let Some(rest) = text.strip_prefix(&format!("│{} ", p.label)) else {
            if whole {
                return Err(format!(
                    "publisher {} not drawn whole:\n{}",
                    p.label,
                    screen()
                ));
            }
            continue;
        };
        if !rest.starts_with('─') {
            // Cut, when narrow, before its line or its `⇢`.
            if !whole {
                continue;
            }
            return Err(format!("publisher {} has no line:\n{}", p.label, screen()));
        }
        let from = text.len() - rest.len();
        let x = line_after(&text, &starts, from).ok_or("a publisher without a line")?;
        let got = reached(buf, (x, y), RIGHT);
        if got.len() != 1 || !got.iter().all(|g| matches(g, want)) {
            return Err(format!(
                "the line of publisher {} reaches {got:?}, not only {want}:\n{}",
                p.label,
                screen()
            ));
        }
    }
    for (q, queue) in graph.queues.iter().enumerate() {
        let mut want: BTreeSet<String> = graph
            .consumers
            .iter()
            .filter(|c| c.queue == q)
            .map(|c| c.label.clone())
            .collect();
        if want.is_empty() {
            continue;
        }
        if queue.more_consumers > 0 {
            want.insert(format!("+{}", queue.more_consumers));
        }
        let y = queue.row as u16 + top;
        let (text, starts) = row_text(buf, y);
        // The queue's label: its name followed by its flags or its counters.
        let label = [format!("{}  ", queue.name), format!("{} [", queue.name)]
            .iter()
            .find_map(|needle| text.find(needle.as_str()));
        let Some(label) = label else {
            if whole {
                return Err(format!(
                    "queue {} not drawn whole:\n{}",
                    queue.name,
                    screen()
                ));
            }
            continue;
        };
        let Some(x) = line_after(&text, &starts, label) else {
            if whole {
                return Err(format!(
                    "no line to the consumers of {}:\n{}",
                    queue.name,
                    screen()
                ));
            }
            continue;
        };
        let got = reached_by(buf, (x, y), RIGHT, label_after);
        let ok = got
            .iter()
            .all(|g| want.iter().any(|w| matches(g, w)) || (!whole && g.is_empty()));
        if !ok || (whole && got != want) {
            return Err(format!(
                "the lines of queue {} reach {got:?}, its consumers are {want:?}:\n{}",
                queue.name,
                screen()
            ));
        }
    }
    Ok(())
}

/// Whether a name is one a client made up: a prefix and 32 hex digits (oslo.messaging's
/// `reply_<uuid>`, no lesson spells it out).
fn made_up(name: &str) -> bool {
    name.is_ascii()
        && name.len() > 32
        && name[name.len() - 32..]
            .bytes()
            .all(|c| c.is_ascii_hexdigit())
}

/// Crossings drawn: every `┼` is one, by the reading rules.
fn crossings(buf: &Buffer) -> usize {
    buf.content.iter().filter(|c| c.symbol() == "┼").count()
}

/// The whole screen as the user sees it, graph pane beside the inspector.
fn screen(app: &mut App, width: u16, height: u16) -> Buffer {
    rabbitscope::ui::render_to_buffer(app, width, height)
}

fn as_text(buf: &Buffer) -> String {
    (0..buf.area.height)
        .map(|y| row_text(buf, y).0.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The reported case: `order.#` and `job.*` must not share a junction.
fn shop() -> VhostSnapshot {
    VhostSnapshot {
        name: "/".into(),
        exchanges: vec![ExchangeSnapshot::new("shop", "topic")],
        queues: ["billing", "shipping", "work"]
            .map(QueueSnapshot::new)
            .to_vec(),
        bindings: vec![
            BindingInfo::to_queue("shop", "billing", "order.paid"),
            BindingInfo::to_queue("shop", "shipping", "order.#"),
            BindingInfo::to_queue("shop", "work", "job.*"),
        ],
        ..Default::default()
    }
}

/// What lesson 13 declares before its first step, as the broker lists it.
fn lesson_13() -> VhostSnapshot {
    let lesson = rabbitscope::lesson::load_file(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/lessons/13-nova-boot.yaml"
    )))
    .expect("lesson 13 loads");
    let setup = &lesson.setup;
    let mut exchanges: Vec<ExchangeSnapshot> = setup
        .exchanges
        .iter()
        .map(|x| ExchangeSnapshot::new(&x.name, x.kind.as_str()))
        .collect();
    exchanges.sort_by(|a, b| a.name.cmp(&b.name));
    let mut queues: Vec<QueueSnapshot> = setup
        .queues
        .iter()
        .map(|q| QueueSnapshot::new(&q.name))
        .collect();
    queues.sort_by(|a, b| a.name.cmp(&b.name));
    let mut bindings: Vec<BindingInfo> = setup
        .bindings
        .iter()
        .map(|b| {
            BindingInfo::to_queue(
                &b.exchange,
                b.queue.as_deref().expect("lesson 13 binds queues"),
                &b.routing_key,
            )
        })
        .collect();
    rabbitscope::broker::sort_bindings(&mut bindings);
    VhostSnapshot {
        name: "/".into(),
        exchanges,
        queues,
        bindings,
        ..Default::default()
    }
}

#[test]
fn shop_lines_reach_their_own_queues_160x45() {
    let mut app = app_for(shop());
    let buf = screen(&mut app, 160, 45);
    check_lines(&app, &buf).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(crossings(&buf), 0, "{}", as_text(&buf));
    insta::assert_snapshot!(as_text(&buf));
}

#[test]
fn lesson_13_is_straight_lines_160x45() {
    let mut app = app_for(lesson_13());
    let buf = screen(&mut app, 160, 45);
    check_lines(&app, &buf).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(crossings(&buf), 0, "{}", as_text(&buf));
    insta::assert_snapshot!(as_text(&buf));
}

#[derive(Debug, Clone)]
struct Topology {
    exchanges: Vec<&'static str>,
    queues: usize,
    /// (source exchange, destination: a queue below `queues`, or an exchange after that, key);
    /// exchanges may be bound to each other in chains, cycles, and to themselves.
    bindings: Vec<(usize, usize, u8)>,
    /// (connection, exchange: one of `exchanges`, or the default exchange after them) a
    /// message was published by, and to; to the default exchange it reaches the queue of the
    /// same number, if any.
    publishes: Vec<(u64, usize)>,
    /// (queue, connection, tag) of the consumers.
    consumers: Vec<(usize, u64, u8)>,
}

/// Connections 0 to 5: two pairs share a label (`svc0`, `svc1`), one is known by its port.
const CONNECTIONS: u64 = 6;

const KINDS: [&str; 4] = ["direct", "fanout", "topic", "headers"];

fn topologies() -> impl Strategy<Value = Topology> {
    (
        prop::collection::vec(prop::sample::select(KINDS.to_vec()), 1..6),
        1usize..8,
    )
        .prop_flat_map(|(exchanges, queues)| {
            let n = exchanges.len();
            let binding = (0..n, 0..queues + n, 0u8..3);
            (
                Just(exchanges),
                Just(queues),
                prop::collection::vec(binding, 0..16),
                prop::collection::vec((0..CONNECTIONS, 0..n + 1), 0..8),
                prop::collection::vec((0..queues, 0..CONNECTIONS, 0u8..3), 0..14),
            )
        })
        .prop_map(
            |(exchanges, queues, bindings, publishes, consumers)| Topology {
                exchanges,
                queues,
                bindings,
                publishes,
                consumers,
            },
        )
}

impl Topology {
    fn snapshot(&self) -> VhostSnapshot {
        let xname = |i: usize| format!("x{i}");
        let exchanges = self
            .exchanges
            .iter()
            .enumerate()
            .map(|(i, kind)| ExchangeSnapshot::new(&xname(i), kind))
            .collect();
        let queues = (0..self.queues)
            .map(|i| QueueSnapshot::new(&format!("q{i}")))
            .collect();
        let mut bindings: Vec<BindingInfo> = Vec::new();
        for &(source, to, key) in &self.bindings {
            let kind = self.exchanges[source];
            let key = if kind == "fanout" {
                String::new()
            } else {
                format!("k{key}")
            };
            let mut b = if to < self.queues {
                BindingInfo::to_queue(&xname(source), &format!("q{to}"), &key)
            } else {
                let to = to - self.queues;
                let mut b = BindingInfo::to_queue(&xname(source), &xname(to), &key);
                b.destination_is_exchange = true;
                b
            };
            if kind == "headers" {
                b.arguments = vec![("h".into(), key.clone())];
            }
            if !bindings.contains(&b) {
                bindings.push(b);
            }
        }
        rabbitscope::broker::sort_bindings(&mut bindings);
        let mut exchanges: Vec<ExchangeSnapshot> = exchanges;
        exchanges.insert(0, ExchangeSnapshot::new("", "direct"));
        let connections = (0..CONNECTIONS)
            .map(|c| {
                let name = format!("svc{}:{c}:0f3a", c % 2);
                let name = (c < 4).then_some(name.as_str());
                connection(c, name, 5000 + c as u16)
            })
            .collect();
        let mut consumers: Vec<ConsumerSnapshot> = Vec::new();
        for &(q, c, tag) in &self.consumers {
            let c = consumer(&format!("q{q}"), &format!("t{tag}"), c);
            if !consumers
                .iter()
                .any(|o| o.queue == c.queue && o.tag == c.tag)
            {
                consumers.push(c);
            }
        }
        VhostSnapshot {
            name: "/".into(),
            exchanges,
            queues,
            bindings,
            connections,
            consumers,
        }
    }

    /// The messages published, as the broker reports them.
    fn traffic(&self) -> Vec<Action> {
        let mut out = Vec::new();
        for (id, &(c, x)) in self.publishes.iter().enumerate() {
            let id = id as u64;
            if x < self.exchanges.len() {
                out.push(published(c, id, &format!("x{x}"), "k0", &[]));
            } else {
                // The default exchange routes by queue name.
                let q = format!("q{}", id as usize % (self.queues + 1));
                let to: Vec<&str> = if (id as usize % (self.queues + 1)) < self.queues {
                    vec![q.as_str()]
                } else {
                    vec![]
                };
                out.push(published(c, id, "", &q, &to));
            }
        }
        out
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Grouped (`o`), every queue sits at the end of a lane of its own, under its group's label.
    #[test]
    fn every_line_reaches_its_own_destination(topology in topologies(), grouped in any::<bool>()) {
        let mut app = app_after(topology.snapshot(), topology.traffic());
        group(&mut app, grouped);
        let buf = draw_graph(&mut app, 150, 60);
        if let Err(e) = check_lines(&app, &buf).and_then(|_| check_clients(&app, &buf, true)) {
            prop_assert!(false, "{}", e);
        }
    }

    /// Messages routed by every binding to a queue, and delivered to its consumers: wherever
    /// they are on their way, their dots sit on line cells only, never on a name or a key.
    #[test]
    fn dots_run_only_on_lines(topology in topologies(), at in 0.0f64..2.5, grouped in any::<bool>()) {
        let mut app = app_after(topology.snapshot(), topology.traffic());
        group(&mut app, grouped);
        let clean = draw_graph(&mut app, 150, 60);
        let start = app.now;
        let snapshot = topology.snapshot();
        for (id, b) in snapshot.bindings.iter().enumerate() {
            if b.destination_is_exchange {
                continue;
            }
            let id = 100 + id as u64;
            let connection = id % CONNECTIONS;
            app.update(published(connection, id, &b.source, &b.routing_key, &[&b.destination]));
            if let Some(c) = snapshot.consumers.iter().find(|c| *c.queue == *b.destination) {
                app.update(delivered(c.connection, id, &c.queue, &c.tag));
            }
        }
        app.set_now(start + app.model.flight_time.mul_f64(at));
        let flying = draw_graph(&mut app, 150, 60);
        for (i, (was, is)) in clean.content.iter().zip(&flying.content).enumerate() {
            if was.symbol() != is.symbol() {
                let (x, y) = (i as u16 % clean.area.width, i as u16 / clean.area.width);
                prop_assert!(
                    is.symbol() == "●" && arms(was.symbol()) != 0,
                    "{:?} drawn over {:?} at {x},{y}:\n{}\n{}",
                    is.symbol(),
                    was.symbol(),
                    as_text(&clean),
                    as_text(&flying)
                );
            }
        }
    }

    /// Narrow panes cut names, stack exchanges or let lines run off the edge, and still no line
    /// leads to another destination.
    #[test]
    fn no_line_reaches_another_destination_when_narrow(
        topology in topologies(),
        width in 24u16..100,
        grouped in any::<bool>(),
    ) {
        let mut app = app_after(topology.snapshot(), topology.traffic());
        group(&mut app, grouped);
        let buf = draw_graph(&mut app, width, 60);
        let checked = check_lines_on(&app, &buf, false).and_then(|_| check_clients(&app, &buf, false));
        if let Err(e) = checked {
            prop_assert!(false, "{}", e);
        }
    }
}

/// Groups the graph by service and host (`o`) when `grouped`.
fn group(app: &mut App, grouped: bool) {
    if grouped {
        app.update(Action::CycleGrouping);
    }
}

/// What a lesson declares, as the broker lists it.
fn lesson_setup(lesson: &rabbitscope::lesson::Lesson) -> VhostSnapshot {
    let setup = &lesson.setup;
    let mut exchanges: Vec<ExchangeSnapshot> = setup
        .exchanges
        .iter()
        .map(|x| ExchangeSnapshot::new(&x.name, x.kind.as_str()))
        .collect();
    exchanges.sort_by(|a, b| a.name.cmp(&b.name));
    let mut queues: Vec<QueueSnapshot> = setup
        .queues
        .iter()
        .map(|q| QueueSnapshot::new(&q.name))
        .collect();
    queues.sort_by(|a, b| a.name.cmp(&b.name));
    let mut bindings: Vec<BindingInfo> = setup
        .bindings
        .iter()
        .map(|b| {
            let mut info = match (&b.queue, &b.to_exchange) {
                (_, Some(x)) => {
                    let mut info = BindingInfo::to_queue(&b.exchange, x, &b.routing_key);
                    info.destination_is_exchange = true;
                    info
                }
                (q, None) => BindingInfo::to_queue(
                    &b.exchange,
                    q.as_deref().unwrap_or_default(),
                    &b.routing_key,
                ),
            };
            info.arguments = b
                .arguments
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        serde_yaml::Value::String(s) => s.clone(),
                        other => serde_yaml::to_string(other).unwrap_or_default(),
                    };
                    (k.clone(), v.trim().to_string())
                })
                .collect();
            info
        })
        .collect();
    rabbitscope::broker::sort_bindings(&mut bindings);
    VhostSnapshot {
        name: "/".into(),
        exchanges,
        queues,
        bindings,
        ..Default::default()
    }
}

/// At 120x35, with a lesson's narration beside the graph, every exchange, key and queue the
/// lesson declares is drawn whole, and every line still leads to its own destination. The
/// first render finds the pane too narrow for names side by side and stacks the exchanges.
#[test]
fn lessons_are_drawn_whole_at_120x35() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/lessons"));
    let lessons = rabbitscope::lesson::load_dir(dir).expect("the lessons load");
    let mut cut = Vec::new();
    for lesson in lessons {
        let vhost = lesson_setup(&lesson);
        let mut app = app_for(vhost);
        app.update(Action::LessonsLoaded {
            lessons: vec![std::sync::Arc::new(lesson.clone())],
            errors: vec![],
        });
        app.update(Action::StartLesson(0));
        app.update(Action::LessonPrepared(Ok(())));
        let buf = screen(&mut app, 120, 35);
        check_lines(&app, &buf).unwrap_or_else(|e| panic!("lesson {}: {e}", lesson.id));
        let area = app.areas.graph;
        let pane: Vec<String> = (area.y..area.y + area.height)
            .map(|y| {
                let (text, _) = row_text(&buf, y);
                text
            })
            .collect();
        // Queue names oslo.messaging makes up (a prefix and 32 hex digits, which no lesson
        // spells out) may be cut after their first 24 characters.
        let names = app
            .graph
            .layout
            .exchanges
            .iter()
            .map(|x| x.name.as_str())
            .chain(app.graph.layout.bindings.iter().map(|b| b.key.as_str()))
            .chain(app.graph.layout.queues.iter().map(|q| {
                if made_up(&q.name) {
                    &q.name[..24]
                } else {
                    q.name.as_str()
                }
            }));
        for name in names {
            if !pane.iter().any(|l| l.contains(name)) {
                cut.push(format!("{}: {name}", lesson.id));
            }
        }
    }
    assert!(cut.is_empty(), "cut at 120x35: {cut:#?}");
}

/// Stacked, an exchange has a row of its own: a click on its name selects it, and a click on
/// a key below selects that binding.
#[test]
fn a_click_on_a_stacked_exchange_selects_it() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/lessons"));
    let lesson = rabbitscope::lesson::load_dir(dir)
        .expect("the lessons load")
        .into_iter()
        .find(|l| l.id == "headers-exchange")
        .expect("the headers lesson");
    let mut app = app_for(lesson_setup(&lesson));
    app.update(Action::LessonsLoaded {
        lessons: vec![std::sync::Arc::new(lesson)],
        errors: vec![],
    });
    app.update(Action::StartLesson(0));
    app.update(Action::LessonPrepared(Ok(())));
    let buf = screen(&mut app, 120, 35);
    assert!(app.graph.layout.stacked, "{}", as_text(&buf));
    let find = |needle: &str| {
        (0..buf.area.height)
            .find_map(|y| {
                let (text, starts) = row_text(&buf, y);
                let at = text.find(needle)?;
                starts.iter().find(|(i, _)| *i == at).map(|(_, x)| (*x, y))
            })
            .unwrap_or_else(|| panic!("{needle} not on screen:\n{}", as_text(&buf)))
    };
    let (x, y) = find("print-headers");
    app.update(Action::Click(x + 2, y));
    assert_eq!(
        app.selected_item(),
        Some(rabbitscope::ui::layout::GraphItem::Exchange(0))
    );
    let (x, y) = find("format=pdf paper=a3");
    app.update(Action::Click(x + 2, y));
    let binding = app.selected_binding().expect("a binding is selected");
    assert_eq!(&*binding.binding.destination, "printer-pdf-or-a3");
}

/// A client connection as the broker lists it; oslo.messaging names its connections
/// `<program>:<pid>:<uuid>`, a client without a name is known by its port.
fn connection(id: u64, name: Option<&str>, port: u16) -> ConnectionSnapshot {
    ConnectionSnapshot {
        id,
        name: format!("127.0.0.1:{port} -> 127.0.0.1:5672"),
        peer: format!("127.0.0.1:{port}"),
        user: "guest".into(),
        client: ClientInfo {
            connection_name: name.map(str::to_string),
            product: Some("py-amqp".into()),
        },
        ..Default::default()
    }
}

fn consumer(queue: &str, tag: &str, connection: u64) -> ConsumerSnapshot {
    ConsumerSnapshot {
        queue: queue.into(),
        tag: tag.into(),
        connection,
        channel: 1,
        ack: true,
        prefetch: 0,
    }
}

fn event(connection: u64, kind: EventKind) -> Action {
    Action::BrokerEvent(Arc::new(Event {
        at: std::time::SystemTime::UNIX_EPOCH,
        vhost: "/".into(),
        connection: Some(connection),
        channel: Some(1),
        kind,
    }))
}

/// Message `id` published by `connection` to `exchange`, routed to `queues` by their
/// bindings (or by the default exchange).
fn published(connection: u64, id: u64, exchange: &str, key: &str, queues: &[&str]) -> Action {
    event(
        connection,
        EventKind::Published {
            message_id: id,
            exchange: exchange.into(),
            routing_key: key.into(),
            body_size: 2,
            body_preview: bytes::Bytes::from_static(b"{}"),
            headers: vec![],
            properties: Arc::new([]),
            matched: queues
                .iter()
                .map(|q| Arc::new(BindingInfo::to_queue(exchange, q, key)))
                .collect(),
            queues: queues.iter().map(|q| Arc::from(*q)).collect(),
            alternate_exchange: None,
            fate: if queues.is_empty() {
                PublishFate::Dropped
            } else {
                PublishFate::Routed
            },
        },
    )
}

fn delivered(connection: u64, id: u64, queue: &str, tag: &str) -> Action {
    event(
        connection,
        EventKind::Delivered {
            message_id: id,
            queue: queue.into(),
            consumer_tag: Some(tag.into()),
            delivery_tag: id,
            redelivered: false,
            offset: None,
            delivery_count: None,
        },
    )
}

const REPLY: &str = "reply_b2f51edff4974f64825a8f5f8321e70f";

/// Lesson 13 once its services are up (its first step) and have talked: nova-api casts to
/// the conductor, the conductor calls the scheduler, the scheduler replies by the default
/// exchange to the conductor's reply queue, the conductor casts to compute on compute-1. Two
/// nova-compute processes share a label, so their ports tell them apart.
fn lesson_13_services() -> (VhostSnapshot, Vec<Action>) {
    let mut vhost = lesson_13();
    vhost
        .exchanges
        .insert(0, ExchangeSnapshot::new("", "direct"));
    vhost.queues.push(QueueSnapshot::new(REPLY));
    vhost.connections = vec![
        connection(101, Some("nova-api:101:7d3f0c1e"), 40101),
        connection(202, Some("nova-conductor:202:2c6f9a41"), 40202),
        connection(303, Some("nova-scheduler:303:91be22d0"), 40303),
        connection(404, Some("nova-compute:404:5a0e7b13"), 40404),
        connection(505, Some("nova-compute:505:c4d8e6f2"), 40505),
    ];
    vhost.consumers = vec![
        consumer("compute", "compute-1/compute", 404),
        consumer("compute", "compute-2/compute", 505),
        consumer("compute.compute-1", "compute-1/compute.compute-1", 404),
        consumer("compute.compute-2", "compute-2/compute.compute-2", 505),
        consumer("conductor", "conductor/conductor", 202),
        consumer(
            "conductor.controller",
            "conductor/conductor.controller",
            202,
        ),
        consumer(REPLY, "conductor/reply", 202),
        consumer("scheduler", "scheduler/scheduler", 303),
        consumer(
            "scheduler.controller",
            "scheduler/scheduler.controller",
            303,
        ),
    ];
    for q in &mut vhost.queues {
        q.consumers = vhost.consumers.iter().filter(|c| c.queue == q.name).count();
    }
    let traffic = vec![
        published(101, 1, "nova", "conductor", &["conductor"]),
        delivered(202, 1, "conductor", "conductor/conductor"),
        published(202, 2, "nova", "scheduler", &["scheduler"]),
        delivered(303, 2, "scheduler", "scheduler/scheduler"),
        published(303, 3, "", REPLY, &[REPLY]),
        delivered(202, 3, REPLY, "conductor/reply"),
        published(202, 4, "nova", "compute.compute-1", &["compute.compute-1"]),
        delivered(404, 4, "compute.compute-1", "compute-1/compute.compute-1"),
    ];
    (vhost, traffic)
}

/// The app after this traffic, once the dots have landed and a snapshot came after it.
fn app_after(vhost: VhostSnapshot, traffic: Vec<Action>) -> App {
    land(app_for(vhost.clone()), vhost, traffic)
}

/// `app` after this traffic, once the dots have landed and a snapshot came after it.
fn land(mut app: App, vhost: VhostSnapshot, traffic: Vec<Action>) -> App {
    for action in traffic {
        app.update(action);
    }
    app.model.flights.clear();
    app.update(Action::Topology(Snapshot {
        vhosts: vec![vhost],
        ..Default::default()
    }));
    app
}

#[test]
fn lesson_13_with_its_services_160x45() {
    let (vhost, traffic) = lesson_13_services();
    let mut app = app_after(vhost, traffic);
    let buf = screen(&mut app, 160, 45);
    check_lines(&app, &buf).unwrap_or_else(|e| panic!("{e}"));
    // The inspector leaves the graph what it needs to draw every name, type, counter and
    // service whole; the consumers' tags get what is left.
    check_clients(&app, &buf, false).unwrap_or_else(|e| panic!("{e}"));
    let text = as_text(&buf);
    let reply = format!("▶(default) [direct] ─▶{REPLY}  0 0 1 ─");
    for seen in [
        "nova-scheduler ─",
        "nova-conductor ─",
        "nova-api ─",
        "▶nova [topic] ─",
        reply.as_str(),
        "▶conductor.controller  0 0 1 ─",
        "▶scheduler.controller  0 0 1 ─",
        "─▶nova-compute :40505",
        "─▶nova-scheduler",
        "queues: ready unacked consumers",
    ] {
        assert!(text.contains(seen), "{seen}:\n{text}");
    }
    insta::assert_snapshot!(text);
}

/// Grouped by service and host, lesson 13's queues sit under their services' labels, its
/// clients are named service@host, and every line still reaches its own queue. A lane per
/// queue wants the width: zoomed at 200 columns the consumers have room too.
#[test]
fn lesson_13_grouped_by_service_and_host_zoomed_200x60() {
    let (vhost, traffic) = lesson_13_services();
    let mut app = app_after(vhost, traffic);
    app.update(Action::CycleGrouping);
    app.update(Action::ToggleZoom);
    let buf = screen(&mut app, 200, 60);
    check_lines(&app, &buf).unwrap_or_else(|e| panic!("{e}"));
    check_clients(&app, &buf, false).unwrap_or_else(|e| panic!("{e}"));
    let text = as_text(&buf);
    assert!(text.contains("· by service and host"), "{text}");
    let rows: Vec<&str> = text.lines().collect();
    for (label, queues) in [
        ("nova-compute:", &["compute"][..]),
        ("nova-compute @ compute-1:", &["compute.compute-1"][..]),
        ("nova-compute @ compute-2:", &["compute.compute-2"][..]),
        ("nova-conductor:", &["conductor"][..]),
        (
            "nova-conductor @ controller:",
            &["conductor.controller", REPLY][..],
        ),
    ] {
        let at = (rows.iter().position(|r| r.contains(label)))
            .unwrap_or_else(|| panic!("{label}:\n{text}"));
        for (i, q) in queues.iter().enumerate() {
            assert!(rows[at + 1 + i].contains(&format!("▶{q} ")), "{q}:\n{text}");
        }
    }
    for client in [
        "nova-api ─",
        "nova-scheduler@controller ─",
        "▶nova-compute@compute-1",
        "▶nova-compute@compute-2",
    ] {
        assert!(text.contains(client), "{client}:\n{text}");
    }
    insta::assert_snapshot!(text);
}

/// At 80x24 the names of exchanges, keys and queues come first; publishers and consumers
/// get what is left, or are hidden, and the bottom line says so.
#[test]
fn lesson_13_with_its_services_80x24() {
    let (vhost, traffic) = lesson_13_services();
    let mut app = app_after(vhost, traffic);
    let buf = screen(&mut app, 80, 24);
    check_lines_on(&app, &buf, false).unwrap_or_else(|e| panic!("{e}"));
    check_clients(&app, &buf, false).unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!(as_text(&buf));
}

/// Lesson 13 started in the view, its services' traffic landed and a snapshot after it.
fn lesson_13_beside_the_lesson() -> App {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/lessons"));
    let lesson = rabbitscope::lesson::load_dir(dir)
        .expect("the lessons load")
        .into_iter()
        .find(|l| l.id == "nova-boot")
        .expect("lesson 13");
    let (vhost, traffic) = lesson_13_services();
    let mut app = app_for(vhost.clone());
    app.update(Action::LessonsLoaded {
        lessons: vec![Arc::new(lesson)],
        errors: vec![],
    });
    // Starting a lesson forgets earlier messages; the services talk after that.
    app.update(Action::StartLesson(0));
    app.update(Action::LessonPrepared(Ok(())));
    land(app, vhost, traffic)
}

/// `z` gives the graph the whole width beside a lesson at 120x35: the services hidden beside
/// the lesson are drawn, every line still leads where it should, and `z` again brings the
/// lesson back.
#[test]
fn zoom_shows_the_services_beside_a_lesson_120x35() {
    let mut app = lesson_13_beside_the_lesson();
    let beside = as_text(&screen(&mut app, 120, 35));
    assert!(beside.contains("hidden (z zooms)"), "{beside}");
    app.update(Action::ToggleZoom);
    let buf = screen(&mut app, 120, 35);
    let text = as_text(&buf);
    assert_eq!(app.areas.graph.width, 120, "{text}");
    check_lines(&app, &buf).unwrap_or_else(|e| panic!("{e}"));
    check_clients(&app, &buf, false).unwrap_or_else(|e| panic!("{e}"));
    for seen in [
        "zoomed, z returns",
        "nova-api ─",
        "▶nova-conductor",
        "▶nova-scheduler",
        "▶nova-compute",
        "▶reply_b2f51edff4974f6482",
    ] {
        assert!(text.contains(seen), "{seen}:\n{text}");
    }
    assert!(!text.contains("hidden"), "{text}");
    assert!(!text.contains("lesson · step"), "{text}");
    app.update(Action::ToggleZoom);
    let text = as_text(&screen(&mut app, 120, 35));
    assert!(text.contains("lesson · step 1 of"), "{text}");
    assert_eq!(text, beside);
}

/// With lesson 13 running beside the graph at 120x35, every name the lesson talks about is
/// whole: exchanges with their types, keys, and queues with their counters, the reply queue
/// too, once, beside the default exchange. The services' names need `z` (see above).
#[test]
fn lesson_13_with_its_services_beside_the_lesson_120x35() {
    let mut app = lesson_13_beside_the_lesson();
    let buf = screen(&mut app, 120, 35);
    check_lines(&app, &buf).unwrap_or_else(|e| panic!("{e}"));
    check_clients(&app, &buf, false).unwrap_or_else(|e| panic!("{e}"));
    let area = app.areas.graph;
    let pane: Vec<String> = (area.y..area.y + area.height)
        .map(|y| row_text(&buf, y).0)
        .collect();
    let reply = format!("(default) [direct] ─▶{REPLY}  0 0 1");
    let names = [
        "nova [topic]",
        "─ conductor.controller ─",
        "─ scheduler.controller ─",
        "▶conductor.controller  0 0 1",
        "▶scheduler.controller  0 0 1",
        "▶compute.compute-2  0 0 1",
        reply.as_str(),
    ];
    for name in names {
        assert!(
            pane.iter().any(|l| l.contains(name)),
            "{name}:\n{}",
            as_text(&buf)
        );
    }
    // The reply queue's name is drawn once: the default exchange's key repeats it.
    let drawn = pane.iter().filter(|l| l.contains(REPLY)).count();
    assert_eq!(drawn, 1, "{}", as_text(&buf));
    // Nothing in the graph is cut; the services wait for `z`.
    let graph: Vec<String> = pane
        .iter()
        .map(|l| l.chars().take(area.width as usize).collect())
        .collect();
    assert!(graph.iter().all(|l| !l.contains('…')), "{}", as_text(&buf));
}

/// At 160x45 beside the lesson, lesson 13 with its services is drawn whole: exchanges with
/// their types, keys, queues with their counters (the reply queue's name once, beside the
/// default exchange), publishers, and the consumers' connections; and the narration keeps the
/// room it reads in.
#[test]
fn lesson_13_with_its_services_beside_the_lesson_160x45() {
    lesson_13_is_whole_beside_the_lesson_160x45(lesson_13_beside_the_lesson());
}

/// While messages flow, the rates give way: they are drawn only where they fit whole, and
/// never cut a name, a type or a counter.
#[test]
fn lesson_13_with_its_traffic_flowing_beside_the_lesson_160x45() {
    let mut app = lesson_13_beside_the_lesson();
    let flowing = || Rate {
        per_second: VecDeque::from([12, 0]),
    };
    for exchange in ["nova", ""] {
        app.model.exchange_rates.insert(exchange.into(), flowing());
    }
    for queue in ["conductor", "scheduler", "compute.compute-1", REPLY] {
        app.model.queue_rates.insert(queue.into(), flowing());
    }
    lesson_13_is_whole_beside_the_lesson_160x45(app);
}

fn lesson_13_is_whole_beside_the_lesson_160x45(mut app: App) {
    let buf = screen(&mut app, 160, 45);
    let text = as_text(&buf);
    check_lines(&app, &buf).unwrap_or_else(|e| panic!("{e}"));
    check_clients(&app, &buf, false).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains("lesson · step 1 of"), "{text}");
    assert!(160 - app.areas.graph.width >= 51, "{text}");
    let reply = format!("(default) [direct] ─▶{REPLY}  0 0 1 ─");
    for whole in [
        "nova-api ─",
        "nova-conductor ─",
        "nova-scheduler ─",
        "▶nova [topic]",
        reply.as_str(),
        "─ compute ─",
        "─ conductor.controller ─",
        "▶compute  0 0 2 ─",
        "▶compute.compute-1  0 0 1 ─",
        "▶compute.compute-2  0 0 1 ─",
        "▶conductor  0 0 1 ─",
        "▶conductor.controller  0 0 1 ─",
        "▶scheduler  0 0 1 ─",
        "▶scheduler.controller  0 0 1 ─",
        "▶nova-conductor",
        "▶nova-scheduler",
        "▶nova-compute :40404",
        "▶nova-compute :40505",
    ] {
        // A queue's rate, while messages flow, comes before its name.
        let with_rate = whole.replacen('▶', "▶12/s ", 1);
        assert!(
            text.contains(whole) || text.contains(&with_rate),
            "{whole}:\n{text}"
        );
    }
    // Nothing is cut but consumers' tags, after their connection's whole name.
    let area = app.areas.graph;
    let clients: Vec<&str> = app
        .graph
        .layout
        .consumers
        .iter()
        .map(|c| c.client())
        .collect();
    for y in area.y..area.y + area.height {
        let pane: String = row_text(&buf, y)
            .0
            .chars()
            .take(area.width as usize)
            .collect();
        let graph = match pane.rsplit_once('▶') {
            Some((before, consumer)) if clients.iter().any(|c| consumer.starts_with(c)) => before,
            _ => pane.as_str(),
        };
        assert!(!graph.contains('…'), "cut on row {y}:\n{text}");
    }
}

/// The row of the graph pane (0 = its first inside the border) holding `needle`.
fn row_with(buf: &Buffer, needle: &str) -> u16 {
    (0..buf.area.height)
        .find(|&y| row_text(buf, y).0.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not drawn:\n{}", as_text(buf)))
}

/// The columns of the dots on a row.
fn dots(buf: &Buffer, y: u16) -> Vec<u16> {
    (0..buf.area.width)
        .filter(|&x| buf[(x, y)].symbol() == "●")
        .collect()
}

/// Where `needle` starts on row `y`.
fn column_of(buf: &Buffer, y: u16, needle: &str) -> u16 {
    let (text, starts) = row_text(buf, y);
    let at = text.find(needle).expect("on the row");
    starts.iter().find(|(i, _)| *i == at).expect("a cell").1
}

/// A cast from nova-api to the conductor: its dot runs from nova-api into `nova`, along the
/// binding `conductor` (never over the key) to the queue, then from the queue to the consumer
/// the broker delivered it to. The queue counts the message when the dot gets there, not
/// before. A cast to compute-1 that nobody has taken yet goes into `ready` the same way.
#[test]
fn a_message_travels_from_its_publisher_to_its_consumer() {
    let (mut vhost, traffic) = lesson_13_services();
    let mut app = app_after(vhost.clone(), traffic);
    let start = app.now;
    app.update(published(101, 10, "nova", "conductor", &["conductor"]));
    app.update(delivered(202, 10, "conductor", "conductor/conductor"));
    app.update(published(
        202,
        11,
        "nova",
        "compute.compute-1",
        &["compute.compute-1"],
    ));
    // The snapshot after them counts both messages already.
    for q in &mut vhost.queues {
        match q.name.as_str() {
            "conductor" => q.unacked = 1,
            "compute.compute-1" => q.ready = 1,
            _ => {}
        }
    }
    app.update(Action::Topology(Snapshot {
        vhosts: vec![vhost],
        ..Default::default()
    }));
    let flight = app.model.flight_time;
    let mut frame = |at: f64| {
        app.set_now(start + flight.mul_f64(at));
        app.update(Action::Tick);
        let buf = draw_graph(&mut app, 130, 22);
        (buf.clone(), as_text(&buf))
    };

    // A fifth of the way: on nova-api's line, left of the exchange.
    let (buf, first) = frame(0.2);
    let api = row_with(&buf, "nova-api");
    let nova = column_of(&buf, row_with(&buf, "nova ["), "nova [");
    assert!(
        dots(&buf, api).iter().any(|&x| x < nova),
        "the dot leaves nova-api:\n{first}"
    );
    assert!(first.contains("conductor  0 0 1"), "{first}");
    assert!(first.contains("compute.compute-1  0 0 1"), "{first}");

    // Most of the way: on the binding's line, past its key, before the queue.
    let (buf, second) = frame(0.75);
    let row = row_with(&buf, "─ conductor ─");
    let key_end = column_of(&buf, row, "─ conductor ─") + "─ conductor ".len() as u16;
    let queue = column_of(&buf, row, "▶conductor");
    assert!(
        dots(&buf, row).iter().any(|&x| x > key_end && x <= queue),
        "the dot runs along the binding:\n{second}"
    );
    assert!(second.contains("conductor  0 0 1"), "{second}");

    // Landed, and half-way to nova-conductor: the queue counts it now.
    let (buf, third) = frame(1.5);
    let row = row_with(&buf, "conductor  0 1 1");
    let consumer = column_of(&buf, row, "▶nova-conductor") + 1;
    let counters = column_of(&buf, row, "conductor  0 1 1");
    assert!(
        dots(&buf, row)
            .iter()
            .any(|&x| x > counters && x < consumer),
        "the dot goes on to its consumer:\n{third}"
    );
    assert!(third.contains("compute.compute-1  1 0 1"), "{third}");
    insta::assert_snapshot!(format!("{first}\n{second}\n{third}"));
}

/// A click on a publisher or a consumer selects it, and the inspector names its connection;
/// the default exchange's edge is no binding one can delete.
#[test]
fn a_click_on_a_publisher_or_a_consumer_shows_its_connection() {
    use rabbitscope::ui::layout::GraphItem;
    let (vhost, traffic) = lesson_13_services();
    let mut app = app_after(vhost, traffic);
    let buf = screen(&mut app, 160, 45);
    let y = row_with(&buf, "│nova-api ─");
    app.update(Action::Click(column_of(&buf, y, "nova-api") + 2, y));
    let Some(GraphItem::Publisher(p)) = app.selected_item() else {
        panic!("{:?} selected", app.selected_item());
    };
    assert_eq!(app.graph.layout.publishers[p].label, "nova-api");
    let text = as_text(&screen(&mut app, 160, 45));
    assert!(
        text.contains("connection_name nova-api:101:7d3f0c1e"),
        "{text}"
    );

    let y = row_with(&buf, "compute.compute-2  0 0 1");
    app.update(Action::Click(column_of(&buf, y, "▶nova-comp") + 3, y));
    let Some(GraphItem::Consumer(c)) = app.selected_item() else {
        panic!("{:?} selected", app.selected_item());
    };
    assert_eq!(
        app.graph.layout.consumers[c].tags,
        ["compute-2/compute.compute-2"]
    );
    let text = as_text(&screen(&mut app, 160, 45));
    assert!(text.contains("tag compute-2/compute.compute-2"), "{text}");
    assert!(
        text.contains("connection_name nova-compute:505:c4d8e6f2"),
        "{text}"
    );

    // The default exchange's edge to the reply queue is the short line before its name.
    let y = row_with(&buf, "▶(default)");
    app.update(Action::Click(column_of(&buf, y, "─▶reply_"), y));
    assert!(app.selected_binding().is_some_and(|b| b.implicit));
    assert_eq!(app.update(Action::DeleteSelected), None);
    let text = as_text(&screen(&mut app, 160, 45));
    assert!(text.contains("no binding to delete"), "{text}");

    // Its name, drawn where the key would be, is the queue's.
    app.update(Action::Click(column_of(&buf, y, "▶reply_") + 3, y));
    let Some(GraphItem::Queue(q)) = app.selected_item() else {
        panic!("{:?} selected", app.selected_item());
    };
    assert_eq!(app.graph.layout.queues[q].name, REPLY);
}

/// Every lesson, step by step, as a student plays it: the view's lesson runner runs each step
/// on the embedded broker, the broker's events and snapshot reach the view, and the screen is
/// drawn beside the narration at 160x45 and at 120x35. Nothing a lesson talks about is cut:
/// every exchange with its type, every key, every queue with its counters, each publisher's
/// and consumer's connection (a consumer's tags may be cut after it), and each name the step
/// mentions in backticks that is one of the graph's. A pane too narrow for the services hides
/// them, and its bottom line says so (`z` zooms); a graph too narrow for names side by side
/// stacks its exchanges. Either way nothing is cut without a word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_of_every_lesson_is_whole_beside_the_lesson() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/lessons"));
    let lessons = rabbitscope::lesson::load_dir(dir).expect("the lessons load");
    assert!(lessons.len() >= 19, "{} lessons", lessons.len());
    let mut faults = Vec::new();
    for lesson in lessons {
        faults.extend(play_and_look(lesson).await);
    }
    assert!(faults.is_empty(), "{}", faults.join("\n\n"));
}

/// Plays a lesson in the view on a broker of its own and returns what was cut, step by step.
async fn play_and_look(lesson: rabbitscope::lesson::Lesson) -> Vec<String> {
    use rabbitscope::ui::app::Effect;
    let (url, broker) = common::start_embedded().await;
    let address = url
        .trim_start_matches("amqp://guest:guest@")
        .trim_end_matches("/%2f")
        .to_string();
    let (actions, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let runner = rabbitscope::ui::lessons::LessonDriver::spawn(
        &tokio::runtime::Handle::current(),
        broker.clone(),
        &address,
        actions,
    );
    let mut events = broker.subscribe();
    let mut app = App::new(&address, "/", ViewOptions::default());
    app.update(Action::Topology(broker.snapshot()));
    app.update(Action::LessonsLoaded {
        lessons: vec![Arc::new(lesson.clone())],
        errors: vec![],
    });
    // What the view's loop does with a request: hand it to the runner, apply its answer.
    let mut effect = app.update(Action::StartLesson(0));
    let mut faults = Vec::new();
    for step in 0..lesson.steps.len() {
        if step > 0 {
            effect = app.update(Action::LessonNext);
        }
        effect = effect.or_else(|| app.update(Action::LessonNext));
        while let Some(Effect::Lesson(request)) = effect.take() {
            let run = matches!(request, rabbitscope::ui::player::LessonRequest::Run { .. });
            runner.send(request);
            let answer = tokio::time::timeout(std::time::Duration::from_secs(120), reports.recv())
                .await
                .expect("the runner answers")
                .expect("the runner is running");
            if let Action::LessonStepDone(Err(e)) = &answer {
                faults.push(format!("{} step {}: {e:?}", lesson.id, step + 1));
            }
            effect = app.update(answer);
            if !run && effect.is_none() {
                effect = app.update(Action::LessonNext);
            }
        }
        // The step's traffic and the snapshot after it, once the dots have landed.
        use rabbitscope::events::Received;
        while let Some(received) = events.try_recv() {
            match received {
                Received::Event(e) => app.update(Action::BrokerEvent(e)),
                Received::Missed(n) => app.update(Action::Missed(n)),
                Received::Closed => break,
            };
        }
        app.model.flights.clear();
        app.update(Action::Topology(broker.snapshot()));
        let said = said_in(&lesson.steps[step]);
        for (width, height) in [(160, 45), (120, 35)] {
            let buf = screen(&mut app, width, height);
            let at = format!("{} step {} at {width}x{height}", lesson.id, step + 1);
            let mut cut = cut_in_graph(&app, &buf, &said);
            // Stacked or not, the graph keeps to it from one frame to the next.
            let pane = graph_text(&app, &buf);
            let next = screen(&mut app, width, height);
            if graph_text(&app, &next) != pane {
                cut.push(format!("the next frame differs:\n{}", as_text(&next)));
            }
            if let Err(e) = check_lines(&app, &buf) {
                cut.push(e);
            }
            if let Err(e) = check_clients(&app, &buf, false) {
                cut.push(e);
            }
            if !cut.is_empty() {
                faults.push(format!("{at}: {}\n{}", cut.join("\n"), as_text(&buf)));
            }
        }
    }
    drop(runner);
    faults
}

/// The names a step's text (narration, question, explanation) puts in backticks.
fn said_in(step: &rabbitscope::lesson::Step) -> Vec<String> {
    let texts = [Some(&step.say), step.predict.as_ref().map(|p| &p.question)]
        .into_iter()
        .chain([step.explain.as_ref()])
        .flatten();
    texts
        .flat_map(|t| {
            t.en.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A character that could go on a name: what follows a whole name is none of these.
fn goes_on(c: char) -> bool {
    c.is_alphanumeric() || "…._-:#*/".contains(c)
}

/// Whether `text` holds `name` whole: not cut (`…`) and not the start of a longer word.
fn holds_whole(text: &str, name: &str) -> bool {
    text.match_indices(name)
        .any(|(at, _)| !text[at + name.len()..].starts_with(goes_on))
}

/// The rows inside the graph pane's border.
fn graph_text(app: &App, buf: &Buffer) -> Vec<String> {
    let area = app.areas.graph;
    (area.y + 1..area.y + area.height - 1)
        .map(|y| {
            (row_text(buf, y).0.chars())
                .skip(area.x as usize + 1)
                .take(area.width as usize - 2)
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect()
}

/// What the graph pane of `buf` cuts of what the lesson talks about (see
/// [`every_step_of_every_lesson_is_whole_beside_the_lesson`]), as sentences.
fn cut_in_graph(app: &App, buf: &Buffer, said: &[String]) -> Vec<String> {
    use rabbitscope::ui::layout::{publisher_text, queue_counters};
    let graph = &app.graph.layout;
    let area = app.areas.graph;
    // The pane's rows inside its border; graph row r is rows[r] (nothing selected, no scroll).
    let rows = graph_text(app, buf);
    let legend = row_text(buf, area.y + area.height - 1).0;
    let hidden = |who: &str| {
        legend.contains(&format!("{who} hidden"))
            || legend.contains("clients hidden")
            || legend.contains("publishers, consumers hidden")
    };
    let mut cut = Vec::new();
    if graph.rows > rows.len() {
        cut.push(format!(
            "{} rows of graph in a pane {} high",
            graph.rows,
            rows.len()
        ));
    }
    let row = |r: usize| rows.get(r).map(String::as_str).unwrap_or_default();
    for x in &graph.exchanges {
        if !holds_whole(row(x.row), &x.label) {
            cut.push(format!("exchange `{}`", x.label));
        }
    }
    for b in &graph.bindings {
        let by_name = matches!(b.target, EdgeTarget::Queue(q) if graph.queues[q].by_name);
        // A name a client made up may be cut after its first 24 characters.
        let drawn = match made_up(&b.key) {
            true => row(b.row).contains(&format!(" {}", &b.key[..24])),
            false => holds_whole(row(b.row), &format!(" {}", b.key)),
        };
        if !by_name && !drawn {
            cut.push(format!("key `{}`", b.key));
        }
    }
    for q in &graph.queues {
        let whole = format!("{}  {}", q.label, queue_counters(q, (0, 0)));
        // A made-up name may be cut after its first 24 characters; its counters stay.
        let cut_short = |text: &str| {
            let rest = whole[q.name.len()..].to_string();
            text.match_indices(&q.name[..24]).any(|(at, _)| {
                let after = text[at + 24..].trim_start_matches(|c: char| c.is_ascii_hexdigit());
                let after = after.strip_prefix('…').unwrap_or(after);
                after.starts_with(&rest) && !after[rest.len()..].starts_with(goes_on)
            })
        };
        let drawn = holds_whole(row(q.row), &whole) || (made_up(&q.name) && cut_short(row(q.row)));
        if !drawn {
            cut.push(format!("queue `{whole}`"));
        }
    }
    // A client is whole by its snapshot name or by the lens's longer one.
    for p in &graph.publishers {
        let whole = |text: &str| {
            row(p.row).starts_with(text) && !row(p.row)[text.len()..].starts_with(goes_on)
        };
        let text = publisher_text(graph, p, false);
        if !whole(&text) && !whole(&publisher_text(graph, p, true)) && !hidden("publishers") {
            cut.push(format!("publisher `{text}`"));
        }
    }
    for c in &graph.consumers {
        let whole = |c: &ConsumerNode| holds_whole(row(c.row), &format!("▶{}", c.client()));
        if !whole(c) && !whole(&c.long_named()) && !hidden("consumers") {
            cut.push(format!("consumer `{}`", c.client()));
        }
    }
    // Only a consumer's tags may be cut, after its connection's whole name; and a made-up
    // name after its first 24 characters.
    let made_up_names: Vec<&str> = (graph.queues.iter().map(|q| q.name.as_str()))
        .chain(graph.bindings.iter().map(|b| b.key.as_str()))
        .filter(|name| made_up(name))
        .collect();
    for (r, text) in rows.iter().enumerate() {
        let mut text = text.clone();
        for name in &made_up_names {
            for end in (24..name.len()).rev() {
                text = text.replace(&format!("{}…", &name[..end]), &name[..end]);
            }
        }
        let graph_part = match text.rsplit_once('▶') {
            Some((before, after))
                if (graph.consumers.iter()).any(|c| after.starts_with(c.client())) =>
            {
                before
            }
            _ => text.as_str(),
        };
        if graph_part.contains('…') {
            cut.push(format!("row {r} cut: {text}"));
        }
    }
    // The names the step mentions that the graph shows.
    for name in said {
        let object = graph.exchanges.iter().any(|x| x.name == *name)
            || graph.queues.iter().any(|q| q.name == *name)
            || graph.bindings.iter().any(|b| b.key == *name);
        let client = graph.publishers.iter().any(|p| p.label == *name)
            || graph.consumers.iter().any(|c| c.client() == name);
        let seen = rows.iter().any(|r| holds_whole(r, name));
        if (object && !seen) || (client && !seen && !hidden("consumers") && !hidden("publishers")) {
            cut.push(format!("`{name}`, which the step mentions"));
        }
    }
    cut
}
