//! The app's state and `update()`, which applies one [`Action`] and does no I/O. What needs the
//! outside world (a topology snapshot, quitting) is returned as an [`Effect`] for the event loop.
//!
//! The state is the [`Model`] (what the broker did) and one component per part of the screen,
//! each with its own file and methods: [`GraphView`] (selection and panning), [`MessageLog`]
//! (selection and filter), [`Overlays`] (help, lesson menu, forms, questions) and
//! [`PlaybackView`] (pause, speed, end of a replay). Each arm of `update()` hands off in one
//! line; `asking.rs` holds the forms and questions that read the selection and the topology.
//!
//! This folder may import the rest of `ui` and the public surface of `crate::lesson`, never the
//! event loop (`ui/mod.rs`) or a source.

mod asking;
pub mod graph_view;
pub mod message_log;
pub mod overlays;
pub mod playback;

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::action::Action;
use super::form::Command;
use super::layout::{BindingRow, GraphItem};
use super::model::{LogEntry, Model};
use super::player::{LessonRequest, Player};
use crate::events::Event;
use crate::lesson::{Lang, Lesson};
use crate::source::SourceKind;
pub use graph_view::GraphView;
pub use message_log::MessageLog;
pub use overlays::{Help, LessonMenu, MenuDigit, Overlays, MENU_DIGIT_WAIT};
pub use playback::PlaybackView;

/// The panes that take focus, in Tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    Graph,
    Log,
    Inspector,
}

/// What the event loop should do after an update.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Quit,
    RefreshTopology,
    /// A replayed trace lets its next event out.
    StepForward,
    StepBack,
    /// Run this on the broker and send back [`Action::CommandDone`].
    Run(Command),
    /// Hand this to the lesson runner, which answers with [`Action::LessonPrepared`] or
    /// [`Action::LessonStepDone`].
    Lesson(LessonRequest),
}

/// Options that shape the screen.
#[derive(Clone, Debug, Default)]
pub struct ViewOptions {
    /// Classroom mode: big title, high contrast, more space, slower animation.
    pub classroom: bool,
    /// No colours (NO_COLOR or --monochrome).
    pub monochrome: bool,
    /// The language of lessons.
    pub lang: Lang,
    /// A warning for the status line at start (e.g. the broker listens beyond loopback).
    pub notice: Option<String>,
    /// The embedded broker's amqps listener, if it has one (the status line shows it).
    pub tls_address: Option<std::net::SocketAddr>,
}

pub struct App {
    /// What the view watches, named on the status line.
    pub source: SourceKind,
    /// What the embedded broker behaves as (`behaves as RabbitMQ 4.2`), for the status line.
    pub behaves_as: Option<String>,
    pub options: ViewOptions,
    /// What the broker has done: topology, messages, flights, rates.
    pub model: Model,
    /// The vhosts the source has, for `v` to go round.
    pub vhosts: Vec<String>,
    pub graph: GraphView,
    pub log: MessageLog,
    pub overlays: Overlays,
    pub playback: PlaybackView,
    pub focus: Focus,
    /// The list pane (graph or log) the inspector describes: the one focused last.
    pub subject: Focus,
    /// The inspector is open (Enter) beside a lesson.
    pub inspecting: bool,
    /// How many rows the inspector is scrolled down; back to the top when its subject changes.
    pub inspector_scroll: usize,
    /// The last command's outcome, shown on the status line: (text, is an error).
    pub notice: Option<(String, bool)>,
    /// What is wrong with reaching the source, while something is.
    pub trouble: Option<String>,
    /// Lessons found at start, in menu order, and the files that would not load.
    pub lessons: Vec<Arc<Lesson>>,
    pub lesson_errors: Vec<String>,
    /// The lesson being played.
    pub player: Option<Player>,
    /// When a topology snapshot was last asked for.
    pub last_snapshot: Option<Instant>,
    pub now: Instant,
    /// Set whenever something on screen changed.
    pub dirty: bool,
    /// Rectangles of the last frame's panes, for mouse clicks.
    pub areas: PaneAreas,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct PaneAreas {
    pub graph: ratatui::layout::Rect,
    pub log: ratatui::layout::Rect,
    pub inspector: ratatui::layout::Rect,
}

/// Topology snapshots are asked for at most this often, however busy the broker is.
const SNAPSHOT_EVERY: Duration = Duration::from_millis(250);

impl App {
    /// A view on the embedded broker listening at `address` (`host:port`).
    pub fn new(address: &str, vhost: &str, options: ViewOptions) -> App {
        let source = SourceKind::Embedded {
            address: address.to_string(),
        };
        App::watching(source, vhost, options)
    }

    /// A view on any source, opening on `vhost`.
    pub fn watching(source: SourceKind, vhost: &str, options: ViewOptions) -> App {
        let notice = options.notice.clone();
        let log = MessageLog {
            lang: options.lang,
            ..MessageLog::default()
        };
        let mut model = Model::new(vhost);
        if options.classroom {
            model.flight_time = Duration::from_millis(2400);
        }
        App {
            source,
            behaves_as: None,
            options,
            model,
            vhosts: vec![vhost.to_string()],
            graph: GraphView::default(),
            log,
            overlays: Overlays::default(),
            playback: PlaybackView::default(),
            focus: Focus::Graph,
            subject: Focus::Graph,
            inspecting: false,
            inspector_scroll: 0,
            notice: notice.map(|text| (text, true)),
            trouble: None,
            lessons: Vec::new(),
            lesson_errors: Vec::new(),
            player: None,
            last_snapshot: None,
            now: Instant::now(),
            dirty: true,
            areas: PaneAreas::default(),
        }
    }

    /// The number of selectable graph items.
    pub fn graph_nodes(&self) -> usize {
        self.graph.len()
    }

    /// What is selected in the graph.
    pub fn selected_item(&self) -> Option<GraphItem> {
        self.graph.selected_item()
    }

    /// The exchange selected in the graph, if the selection is an exchange.
    pub fn selected_exchange(&self) -> Option<&str> {
        self.graph.selected_exchange()
    }

    /// The queue selected in the graph, if the selection is a queue.
    pub fn selected_queue(&self) -> Option<&str> {
        self.graph.selected_queue()
    }

    /// The binding selected in the graph, if the selection is a binding.
    pub fn selected_binding(&self) -> Option<&BindingRow> {
        self.graph.selected_binding()
    }

    /// Log entries that pass the filter, newest first.
    pub fn filtered_log(&self) -> Vec<&LogEntry> {
        self.log.filtered(&self.model)
    }

    pub fn selected_message(&self) -> Option<&LogEntry> {
        self.log.selected_message(&self.model)
    }

    /// What drawing a frame measured: the panes' rectangles (for mouse clicks), whether the
    /// graph must stack its exchanges, and how many help lines fit on a page. Called as the
    /// screen is drawn; it changes nothing on screen by itself, so it is not an action.
    pub fn measured(&mut self, areas: PaneAreas, stacked: bool, help_page: usize) {
        self.areas = areas;
        self.fit_graph(stacked);
        self.overlays.help.page = help_page;
    }

    /// Lays the graph out stacked or side by side, whichever the graph pane's width needs
    /// (see [`super::layout::layout`]); called when the screen is drawn.
    pub fn fit_graph(&mut self, stacked: bool) {
        if stacked != self.graph.layout.stacked {
            self.relayout_as(stacked);
        }
    }

    fn relayout(&mut self) {
        self.relayout_as(self.graph.layout.stacked);
    }

    fn relayout_as(&mut self, stacked: bool) {
        let spacing = if self.options.classroom { 2 } else { 1 };
        self.graph
            .relayout(&self.model, spacing, stacked, self.options.lang);
    }

    /// Up, Down, pages and the wheel: the focused pane's selection, or the inspector's scroll.
    fn move_selection(&mut self, delta: isize) {
        match self.focus {
            Focus::Graph => self.graph.move_by(delta),
            Focus::Log => self.log.move_by(&self.model, delta),
            Focus::Inspector => self.scroll_inspector(delta),
        }
    }

    fn scroll_inspector(&mut self, delta: isize) {
        self.inspector_scroll = self.inspector_scroll.saturating_add_signed(delta);
    }

    /// What the inspector describes: the pane, and the selected item or message.
    fn inspected(&self) -> (Focus, Option<GraphItem>, Option<u64>) {
        match self.subject {
            Focus::Log => (
                Focus::Log,
                None,
                self.selected_message().map(|m| m.message_id),
            ),
            _ => (Focus::Graph, self.selected_item(), None),
        }
    }

    /// Applies one action. No I/O: effects are returned to the caller.
    pub fn update(&mut self, action: Action) -> Option<Effect> {
        // Only the user changes what is inspected; traffic and the clock keep it (and finding
        // the selected message walks the filtered log, too dear to do per event).
        let user = !matches!(
            action,
            Action::BrokerEvent(_) | Action::Tick | Action::Missed(_) | Action::Drawn
        );
        let before = user.then(|| self.inspected());
        let effect = self.apply(action);
        if self.focus != Focus::Inspector {
            self.subject = self.focus;
        }
        // A lesson that (re)starts resets the broker and replays its steps: the messages of
        // before are gone, and the replay logs those it keeps anew.
        if let Some(Effect::Lesson(LessonRequest::Prepare { .. })) = &effect {
            self.model.clear_messages();
            self.log.selected = 0;
        }
        if before.is_some_and(|before| self.inspected() != before) {
            self.inspector_scroll = 0;
        }
        effect
    }

    /// The overlay that has the keyboard answers first: the question, the help's scrolling,
    /// the lesson menu; the world goes on behind them.
    fn apply(&mut self, action: Action) -> Option<Effect> {
        // The clock only redraws while something moves; everything else changes the screen.
        if !matches!(action, Action::Tick | Action::Drawn) {
            self.dirty = true;
        }
        if self.overlays.confirm.is_some() {
            return self.apply_asked(action);
        }
        if self.overlays.help.shown {
            let rows = self.overlays.help.rows_for(&action);
            if rows != 0 {
                let lines =
                    super::keys::help_lines(self.options.classroom, self.options.lang).len();
                self.overlays.help.scroll_by(rows, lines);
                return None;
            }
        }
        if self.overlays.menu.is_some() {
            return self.apply_in_menu(action);
        }
        self.apply_any(action)
    }

    /// While "are you sure?" is asked.
    fn apply_asked(&mut self, action: Action) -> Option<Effect> {
        match action {
            Action::Confirm(yes) => {
                let confirm = self.overlays.confirm.take()?;
                return yes.then_some(Effect::Run(confirm.command));
            }
            Action::Back => self.overlays.confirm = None,
            Action::Quit => return Some(Effect::Quit),
            action if action.is_from_the_world() => return self.apply_any(action),
            _ => {}
        }
        None
    }

    /// While the lesson menu is open.
    fn apply_in_menu(&mut self, action: Action) -> Option<Effect> {
        let menu = self.overlays.menu.as_mut()?;
        match action {
            Action::MenuDigit(d) => match menu.digit(d, &self.lessons, self.now) {
                MenuDigit::Start(i) => return self.apply(Action::StartLesson(i)),
                MenuDigit::Wait => {}
                MenuDigit::NoLesson(typed) => {
                    self.notice = Some((format!("no lesson {typed}"), true));
                }
            },
            Action::Tick => {
                if let Some(i) = menu.number_due(&self.lessons, self.now) {
                    return self.apply(Action::StartLesson(i));
                }
                return self.apply_any(action);
            }
            Action::Up => menu.up(),
            Action::Down => menu.down(self.lessons.len()),
            Action::Inspect => {
                let selected = menu.selected;
                return self.apply(Action::StartLesson(selected));
            }
            Action::Back | Action::OpenMenu => self.overlays.menu = None,
            Action::Quit => return Some(Effect::Quit),
            // The world goes on behind the menu.
            action if action.is_from_the_world() => return self.apply_any(action),
            Action::StartLesson(_) => return self.apply_any(action),
            _ => {}
        }
        None
    }

    /// Every action, each handed in one line to the part of the app it is for.
    fn apply_any(&mut self, action: Action) -> Option<Effect> {
        let now = self.now;
        match action {
            Action::Quit => return Some(Effect::Quit),
            Action::Tick => return self.tick(),
            Action::FocusNext => self.cycle_focus(1),
            Action::FocusPrev => self.cycle_focus(2),
            Action::Up => self.move_selection(-1),
            Action::Down => self.move_selection(1),
            Action::PageUp => self.move_selection(-10),
            Action::PageDown => self.move_selection(10),
            Action::Left => self.graph.pan_by(-1),
            Action::Right => self.graph.pan_by(1),
            Action::Inspect => self.inspecting = true,
            Action::Back => self.back(),
            Action::TogglePause => self.playback.toggle_pause(),
            Action::StepForward => return Some(Effect::StepForward),
            Action::StepBack => return self.step_back(),
            Action::Rewound(events) => return self.rewound(&events),
            Action::PlaybackEnded(ended) => self.playback.ended = ended,
            Action::Faster => self.model.flight_time = self.playback.faster(),
            Action::Slower => self.model.flight_time = self.playback.slower(),
            Action::ToggleZoom => self.graph.toggle_zoom(),
            Action::CycleGrouping => {
                self.graph.cycle_grouping(self.model.nodes.len());
                self.relayout();
            }
            Action::ToggleHelp => self.overlays.help.toggle(),
            Action::ToggleAllExchanges => self.toggle_all_exchanges(),
            Action::NextVhost => return self.next_vhost(),
            Action::StartFilter => self.start_filter(),
            Action::FilterInput(c) => self.log.type_char(c),
            Action::FilterBackspace => self.log.backspace(),
            Action::Click(column, row) => self.click(column, row),
            Action::ScrollUp => self.move_selection(-3),
            Action::ScrollDown => self.move_selection(3),
            Action::ScrollInspector(rows) => self.scroll_inspector(rows),
            Action::BrokerEvent(event) => self.broker_event(&event),
            Action::Missed(n) => self.model.missed += n,
            Action::PresenterNext if self.player.is_some() => return self.lesson_next(),
            Action::PresenterBack if self.player.is_some() => return self.lesson_back(),
            // Newest is index 0, so "next" in time moves towards it.
            Action::PresenterNext => self.present_message(-1),
            Action::PresenterBack => self.present_message(1),
            Action::OpenForm(kind) => self.open_form(kind),
            Action::FormInput(c) => self.overlays.form.iter_mut().for_each(|f| f.input(c)),
            Action::FormBackspace => self.overlays.form.iter_mut().for_each(|f| f.backspace()),
            Action::FormNextField => self.overlays.form.iter_mut().for_each(|f| f.next_field()),
            Action::FormPrevField => self.overlays.form.iter_mut().for_each(|f| f.prev_field()),
            // Only meaningful while asked or in the menu (see `apply`).
            Action::Confirm(_) | Action::MenuDigit(_) => {}
            Action::FormSubmit => return self.submit_form(),
            Action::DeleteSelected => return self.ask_delete(),
            Action::PurgeSelected => return self.ask_purge(),
            Action::GetSelected => return self.need_queue(|queue| Command::Get { queue }),
            Action::CommandDone(result) => self.command_done(result),
            Action::SourceTrouble(trouble) => self.trouble = trouble,
            Action::Drawn => self.dirty = false,
            Action::LessonsLoaded { lessons, errors } => self.lessons_loaded(lessons, errors),
            Action::OpenMenu => self.open_menu(),
            Action::StartLesson(i) => return self.start_lesson(i),
            Action::LessonNext => return self.lesson_next(),
            Action::LessonBack => return self.lesson_back(),
            Action::LessonRestart => return self.lesson_restart(),
            Action::LessonToggle(i) => self.player.as_mut()?.toggle(i),
            Action::LessonScrollUp => self.player.as_mut()?.scroll_up(),
            Action::LessonScrollDown => self.player.as_mut()?.scroll_down(),
            Action::LessonJumpStart => self.player.as_mut()?.start_jump(),
            Action::LessonJumpInput(c) => self.player.as_mut()?.jump_input(c),
            Action::LessonJumpBackspace => self.player.as_mut()?.jump_backspace(),
            Action::LessonJumpGo => return self.player.as_mut()?.jump_go(now).map(Effect::Lesson),
            Action::LessonAutoplay => self.player.as_mut()?.toggle_autoplay(now),
            Action::LessonClose => self.player = None,
            Action::LessonPrepared(result) => self.player.as_mut()?.prepared(result, now),
            Action::LessonStepDone(result) => self.player.as_mut()?.ran(result, now),
            Action::Topology(snapshot) => self.topology(snapshot),
        }
        None
    }

    /// The clock: flights move, a lesson on auto-play goes on, a stale topology is asked for.
    fn tick(&mut self) -> Option<Effect> {
        self.dirty |= !self.model.flights.is_empty();
        if !self.playback.paused {
            self.model.tick(self.now);
        }
        if let Some(player) = &mut self.player {
            if player.autoplay_due(self.now, self.playback.speed) {
                self.dirty = true;
                // Auto-play does not predict: it runs the step and shows the outcome.
                return player.next(self.now).map(Effect::Lesson);
            }
        }
        let due = self
            .last_snapshot
            .is_none_or(|t| self.now.duration_since(t) >= SNAPSHOT_EVERY);
        if self.model.topology_stale && due {
            self.last_snapshot = Some(self.now);
            return Some(Effect::RefreshTopology);
        }
        None
    }

    /// Tab (one step) and Shift-Tab (two steps, which is one back).
    fn cycle_focus(&mut self, steps: usize) {
        let order = [Focus::Graph, Focus::Log, Focus::Inspector];
        let i = order.iter().position(|f| *f == self.focus).unwrap_or(0);
        self.focus = order[(i + steps) % 3];
    }

    /// Esc closes the innermost thing open.
    fn back(&mut self) {
        if self.overlays.form.is_some() {
            self.overlays.form = None;
        } else if self.jumping() {
            self.player.iter_mut().for_each(|p| p.jump = None);
        } else if self.log.typing {
            self.log.typing = false;
        } else if self.overlays.help.shown {
            self.overlays.help.shown = false;
        } else {
            self.inspecting = false;
        }
    }

    /// A replayed trace steps back, and stays paused there.
    fn step_back(&mut self) -> Option<Effect> {
        self.playback.paused = true;
        Some(Effect::StepBack)
    }

    /// A replayed trace went back: the model starts over from these events.
    fn rewound(&mut self, events: &[Arc<Event>]) -> Option<Effect> {
        let flight_time = self.model.flight_time;
        let topology = std::mem::take(&mut self.model.topology);
        self.model = Model::new(&self.model.vhost);
        self.model.flight_time = flight_time;
        self.model.topology = topology;
        for event in events {
            self.model.apply(event, self.now);
        }
        // What was replayed in one go is history, not traffic to animate.
        self.model.flights.clear();
        self.log.selected = 0;
        Some(Effect::RefreshTopology)
    }

    fn toggle_all_exchanges(&mut self) {
        self.graph.show_all_exchanges = !self.graph.show_all_exchanges;
        self.relayout();
    }

    /// `v`: the next vhost, drawn from scratch.
    fn next_vhost(&mut self) -> Option<Effect> {
        let i = self.vhosts.iter().position(|v| *v == self.model.vhost)?;
        let next = self.vhosts[(i + 1) % self.vhosts.len()].clone();
        if next == self.model.vhost {
            return None;
        }
        let flight_time = self.model.flight_time;
        self.model = Model::new(&next);
        self.model.flight_time = flight_time;
        self.graph.selected = 0;
        self.log.selected = 0;
        Some(Effect::RefreshTopology)
    }

    /// `/`: keys are the log filter's text from now on.
    fn start_filter(&mut self) {
        self.log.typing = true;
        self.focus = Focus::Log;
    }

    /// A click focuses the pane under it and selects what it hit.
    fn click(&mut self, column: u16, row: u16) {
        let at = ratatui::layout::Position::new(column, row);
        if self.areas.graph.contains(at) {
            self.focus = Focus::Graph;
            if let Some(node) = super::panes::graph::node_at(self, column, row) {
                self.graph.selected = node;
            }
        } else if self.areas.log.contains(at) {
            self.focus = Focus::Log;
            // Rows under the pane's title line, newest first.
            let offset = row.saturating_sub(self.areas.log.y + 1) as usize;
            self.log.select_row(&self.model, offset);
        } else if self.areas.inspector.contains(at) {
            self.focus = Focus::Inspector;
        }
    }

    fn broker_event(&mut self, event: &Arc<Event>) {
        let before = self.model.log.len();
        self.model.apply(event, self.now);
        if self.model.log.len() > before {
            self.log.arrived();
        }
    }

    /// The presenter's keys without a lesson: the message before or after, explained.
    fn present_message(&mut self, delta: isize) {
        self.focus = Focus::Log;
        self.inspecting = true;
        let n = self.log.filtered(&self.model).len();
        if n > 0 {
            self.log.selected = match delta {
                ..0 => self.log.selected.saturating_sub(1),
                _ => (self.log.selected + 1).min(n - 1),
            };
        }
    }

    /// What the broker answered to a command, on the status line: the outcome, or why not.
    fn command_done<E: ToString>(&mut self, result: Result<String, E>) {
        self.notice = Some(match result {
            Ok(text) => (text, false),
            Err(why) => (why.to_string(), true),
        });
    }

    fn lessons_loaded(&mut self, lessons: Vec<Arc<Lesson>>, errors: Vec<String>) {
        self.lessons = lessons;
        self.lesson_errors = errors;
    }

    fn open_menu(&mut self) {
        if self.lessons.is_empty() && self.lesson_errors.is_empty() {
            self.notice = Some(("no lessons found (see --lessons)".into(), true));
        } else {
            self.overlays.menu = Some(LessonMenu::default());
        }
    }

    fn start_lesson(&mut self, i: usize) -> Option<Effect> {
        let lesson = self.lessons.get(i)?.clone();
        self.overlays.menu = None;
        let (player, request) = Player::new(lesson, self.options.lang, self.now);
        self.player = Some(player);
        Some(Effect::Lesson(request))
    }

    fn lesson_next(&mut self) -> Option<Effect> {
        self.player.as_mut()?.next(self.now).map(Effect::Lesson)
    }

    fn lesson_back(&mut self) -> Option<Effect> {
        Some(Effect::Lesson(self.player.as_mut()?.back(self.now)))
    }

    fn lesson_restart(&mut self) -> Option<Effect> {
        Some(Effect::Lesson(self.player.as_mut()?.go_to(0, self.now)))
    }

    /// A fresh snapshot: the graph is laid out again if its structure changed, else only its
    /// labels (counts) change.
    fn topology(&mut self, snapshot: crate::topology::Snapshot) {
        self.vhosts = snapshot.vhosts.iter().map(|v| v.name.clone()).collect();
        if snapshot.nodes != self.model.nodes {
            self.model.nodes = snapshot.nodes.clone();
            self.dirty = true;
        }
        if let Some(v) = snapshot.vhost(&self.model.vhost) {
            self.model.set_topology(v.clone());
            if std::mem::take(&mut self.model.structure_changed) {
                self.relayout();
            } else {
                super::layout::refresh_labels(&mut self.graph.layout, &self.model.topology);
            }
        }
    }

    /// The lesson menu's selected row, while the menu is open.
    pub fn menu_row(&self) -> Option<usize> {
        self.overlays.menu.as_ref().map(|m| m.selected)
    }

    /// Called when the filter is being typed: keys are text.
    pub fn wants_text(&self) -> bool {
        self.log.typing
    }

    /// Called when a step number is being typed after `J`.
    pub fn jumping(&self) -> bool {
        self.player.as_ref().is_some_and(|p| p.jump.is_some())
    }

    /// Whether the loop should redraw now.
    pub fn needs_redraw(&self) -> bool {
        self.dirty
    }

    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
    }
}

#[cfg(test)]
mod tests;
