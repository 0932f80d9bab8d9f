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
//! arrow, the one of its own destination.
use std::collections::{BTreeSet, HashSet, VecDeque};

use proptest::prelude::*;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;

use rabbitscope::broker::{ExchangeSnapshot, QueueSnapshot, Snapshot, VhostSnapshot};
use rabbitscope::events::BindingInfo;
use rabbitscope::ui::action::Action;
use rabbitscope::ui::app::{App, ViewOptions};
use rabbitscope::ui::layout::EdgeTarget;
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

/// The name written right of an arrow, up to the first space.
fn name_after(buf: &Buffer, x: u16, y: u16) -> String {
    let mut name = String::new();
    let mut x = x + 1;
    while x < buf.area.width {
        let s = buf[(x, y)].symbol();
        if s == " " || s == "│" {
            break;
        }
        name.push_str(s);
        x += unicode_width::UnicodeWidthStr::width(s).max(1) as u16;
    }
    name
}

/// Every arrow reachable from a cell entered moving `dir`, by the reading rules above: the
/// names after those arrows.
fn reached(buf: &Buffer, start: (u16, u16), dir: u8) -> BTreeSet<String> {
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
            found.insert(name_after(buf, x, y));
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
    let graph = &app.graph;
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
        let needle = format!(" {} ─", b.key);
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
        let line_at = at + needle.len() - "─".len();
        let x = starts
            .iter()
            .find(|(i, _)| *i == line_at)
            .map(|(_, x)| *x)
            .expect("the line starts on a cell");
        let mut got = reached(buf, (x, y), RIGHT);
        if !whole {
            // An arrow at the very edge, its name off screen, says nothing either way.
            got.remove("");
        }
        // A name cut for want of room ends in `…`; what is drawn must still be its start.
        // Where the screen's edge cuts it, only its start shows.
        let names_it = |drawn: &String| match drawn.strip_suffix('…') {
            Some(start) => want.starts_with(start),
            None => *drawn == want || (!whole && want.starts_with(drawn.as_str())),
        };
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
}

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
            )
        })
        .prop_map(|(exchanges, queues, bindings)| Topology {
            exchanges,
            queues,
            bindings,
        })
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
        VhostSnapshot {
            name: "/".into(),
            exchanges,
            queues,
            bindings,
            ..Default::default()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_line_reaches_its_own_destination(topology in topologies()) {
        let mut app = app_for(topology.snapshot());
        let buf = draw_graph(&mut app, 120, 60);
        if let Err(e) = check_lines(&app, &buf) {
            prop_assert!(false, "{}", e);
        }
    }

    /// Narrow panes cut names, stack exchanges or let lines run off the edge, and still no line
    /// leads to another destination.
    #[test]
    fn no_line_reaches_another_destination_when_narrow(
        topology in topologies(),
        width in 24u16..100,
    ) {
        let mut app = app_for(topology.snapshot());
        let buf = draw_graph(&mut app, width, 60);
        if let Err(e) = check_lines_on(&app, &buf, false) {
            prop_assert!(false, "{}", e);
        }
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
            .exchanges
            .iter()
            .map(|x| x.name.as_str())
            .chain(app.graph.bindings.iter().map(|b| b.key.as_str()))
            .chain(app.graph.queues.iter().map(|q| {
                let generated = q.name.is_ascii()
                    && q.name.len() > 32
                    && q.name[q.name.len() - 32..]
                        .bytes()
                        .all(|c| c.is_ascii_hexdigit());
                if generated {
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
    assert!(app.graph.stacked, "{}", as_text(&buf));
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
