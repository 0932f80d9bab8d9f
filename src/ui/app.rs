//! The app's state and `update()`, which applies one [`Action`] and does no I/O. What needs the
//! outside world (a topology snapshot, quitting) is returned as an [`Effect`] for the event loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;

use super::action::Action;
use super::form::{Command, Form, FormKind};
use super::layout::{layout, BindingRow, GraphItem, GraphLayout};
use super::model::Model;
use super::player::{LessonRequest, Player};
use crate::lesson::{Lang, Lesson};

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
    /// Where clients connect, shown on screen.
    pub address: String,
    pub options: ViewOptions,
    pub model: Model,
    pub vhosts: Vec<String>,
    pub graph: GraphLayout,
    pub show_all_exchanges: bool,
    pub focus: Focus,
    /// The list pane (graph or log) the inspector describes: the one focused last.
    pub subject: Focus,
    /// Index into the graph's selectable items ([`GraphLayout::items`]).
    pub graph_selected: usize,
    pub graph_scroll: usize,
    pub graph_pan: usize,
    /// Index from the newest log entry (0 = newest) among the filtered ones.
    pub log_selected: usize,
    pub filter: String,
    pub filter_regex: Option<Regex>,
    /// The same filter over bodies, which need not be UTF-8.
    pub body_filter: Option<regex::bytes::Regex>,
    pub filter_error: Option<String>,
    pub typing_filter: bool,
    /// How many rows the inspector is scrolled down; back to the top when its subject changes.
    pub inspector_scroll: usize,
    pub show_help: bool,
    pub inspecting: bool,
    /// An open form, which takes the keyboard.
    pub form: Option<Form>,
    /// The last command's outcome, shown on the status line: (text, is an error).
    pub notice: Option<(String, bool)>,
    pub paused: bool,
    /// Animation speed factor, 1.0 = normal.
    pub speed: f64,
    pub last_snapshot: Option<Instant>,
    pub now: Instant,
    /// Set whenever something on screen changed.
    pub dirty: bool,
    /// Rectangles of the last frame's panes, for mouse clicks.
    pub areas: PaneAreas,
    /// Lessons found at start, in menu order, and the files that would not load.
    pub lessons: Vec<Arc<Lesson>>,
    pub lesson_errors: Vec<String>,
    /// The lesson menu, open, with its selected row.
    pub menu: Option<usize>,
    /// The lesson being played.
    pub player: Option<Player>,
    /// What is wrong with reaching the source, while something is.
    pub trouble: Option<String>,
    /// A replayed trace has played its last event.
    pub trace_ended: bool,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct PaneAreas {
    pub graph: ratatui::layout::Rect,
    pub log: ratatui::layout::Rect,
    pub inspector: ratatui::layout::Rect,
}

/// How far the graph pans right: enough to read labels cut on a narrow screen.
const MAX_PAN: usize = 240;

/// Topology snapshots are asked for at most this often, however busy the broker is.
const SNAPSHOT_EVERY: Duration = Duration::from_millis(250);

impl App {
    pub fn new(address: &str, vhost: &str, options: ViewOptions) -> App {
        let notice = options.notice.clone();
        let mut model = Model::new(vhost);
        if options.classroom {
            model.flight_time = Duration::from_millis(2400);
        }
        App {
            address: address.to_string(),
            options,
            model,
            vhosts: vec![vhost.to_string()],
            graph: GraphLayout::default(),
            show_all_exchanges: false,
            focus: Focus::Graph,
            subject: Focus::Graph,
            graph_selected: 0,
            graph_scroll: 0,
            graph_pan: 0,
            log_selected: 0,
            filter: String::new(),
            filter_regex: None,
            body_filter: None,
            filter_error: None,
            typing_filter: false,
            inspector_scroll: 0,
            show_help: false,
            inspecting: false,
            form: None,
            notice: notice.map(|text| (text, true)),
            paused: false,
            speed: 1.0,
            last_snapshot: None,
            now: Instant::now(),
            dirty: true,
            areas: PaneAreas::default(),
            lessons: Vec::new(),
            lesson_errors: Vec::new(),
            menu: None,
            player: None,
            trouble: None,
            trace_ended: false,
        }
    }

    /// The number of selectable graph items.
    pub fn graph_nodes(&self) -> usize {
        self.graph.items.len()
    }

    /// What is selected in the graph.
    pub fn selected_item(&self) -> Option<GraphItem> {
        self.graph.items.get(self.graph_selected).copied()
    }

    /// Log entries that pass the filter, newest first.
    pub fn filtered_log(&self) -> Vec<&super::model::LogEntry> {
        self.model
            .log
            .iter()
            .rev()
            .filter(|e| match (&self.filter_regex, &self.body_filter) {
                (Some(re), Some(body)) => e.matches(re, body),
                _ => true,
            })
            .collect()
    }

    pub fn selected_message(&self) -> Option<&super::model::LogEntry> {
        self.filtered_log().get(self.log_selected).copied()
    }

    /// Lays the graph out stacked or side by side, whichever the graph pane's width needs
    /// (see [`layout`]); called when the screen is drawn.
    pub fn fit_graph(&mut self, stacked: bool) {
        if stacked != self.graph.stacked {
            self.relayout_as(stacked);
        }
    }

    fn relayout(&mut self) {
        self.relayout_as(self.graph.stacked);
    }

    fn relayout_as(&mut self, stacked: bool) {
        let spacing = if self.options.classroom { 2 } else { 1 };
        let old = std::mem::replace(
            &mut self.graph,
            layout(
                &self.model.topology,
                self.show_all_exchanges,
                spacing,
                stacked,
            ),
        );
        // Keep the same exchange, binding or queue selected when others come and go.
        if let Some(i) = old
            .items
            .get(self.graph_selected)
            .and_then(|item| self.graph.find(&old, *item))
        {
            self.graph_selected = i;
        }
        let n = self.graph_nodes();
        if self.graph_selected >= n {
            self.graph_selected = n.saturating_sub(1);
        }
    }

    fn set_filter(&mut self) {
        if self.filter.is_empty() {
            self.filter_regex = None;
            self.body_filter = None;
            self.filter_error = None;
            return;
        }
        match Regex::new(&self.filter).and_then(|re| {
            let body = regex::bytes::Regex::new(&self.filter)?;
            Ok((re, body))
        }) {
            Ok((re, body)) => {
                self.filter_regex = Some(re);
                self.body_filter = Some(body);
                self.filter_error = None;
            }
            // Keep the last good filter while the user is still typing.
            Err(e) => {
                self.filter_error = Some(e.to_string().lines().last().unwrap_or("").to_string())
            }
        }
        self.log_selected = 0;
    }

    fn move_selection(&mut self, delta: isize) {
        match self.focus {
            Focus::Graph => {
                let n = self.graph_nodes();
                if n > 0 {
                    self.graph_selected =
                        (self.graph_selected as isize + delta).clamp(0, n as isize - 1) as usize;
                }
            }
            Focus::Log => {
                let n = self.filtered_log().len();
                if n > 0 {
                    self.log_selected =
                        (self.log_selected as isize + delta).clamp(0, n as isize - 1) as usize;
                }
            }
            Focus::Inspector => {
                self.inspector_scroll = self.inspector_scroll.saturating_add_signed(delta);
            }
        }
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
            Action::BrokerEvent(_) | Action::Tick | Action::Missed(_)
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
            self.log_selected = 0;
        }
        if before.is_some_and(|before| self.inspected() != before) {
            self.inspector_scroll = 0;
        }
        effect
    }

    fn apply(&mut self, action: Action) -> Option<Effect> {
        // The clock only redraws while something moves; everything else changes the screen.
        if action != Action::Tick {
            self.dirty = true;
        }
        if let Some(selected) = self.menu {
            match action {
                Action::Up => self.menu = Some(selected.saturating_sub(1)),
                Action::Down => {
                    self.menu = Some((selected + 1).min(self.lessons.len().saturating_sub(1)))
                }
                Action::Inspect => return self.apply(Action::StartLesson(selected)),
                Action::Back | Action::OpenMenu => self.menu = None,
                Action::Quit => return Some(Effect::Quit),
                // The world goes on behind the menu.
                Action::Tick
                | Action::BrokerEvent(_)
                | Action::Missed(_)
                | Action::Topology(_)
                | Action::CommandDone(_)
                | Action::SourceTrouble(_)
                | Action::LessonPrepared(_)
                | Action::LessonStepDone(_)
                | Action::LessonsLoaded { .. }
                | Action::StartLesson(_) => return self.apply_any(action),
                _ => {}
            }
            return None;
        }
        self.apply_any(action)
    }

    fn apply_any(&mut self, action: Action) -> Option<Effect> {
        match action {
            Action::Quit => return Some(Effect::Quit),
            Action::Tick => {
                self.dirty |= !self.model.flights.is_empty();
                if !self.paused {
                    self.model.tick(self.now);
                }
                if let Some(player) = &mut self.player {
                    if player.autoplay_due(self.now, self.speed) {
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
            }
            Action::FocusNext | Action::FocusPrev => {
                let order = [Focus::Graph, Focus::Log, Focus::Inspector];
                let i = order.iter().position(|f| *f == self.focus).unwrap_or(0);
                let step = if action == Action::FocusNext { 1 } else { 2 };
                self.focus = order[(i + step) % 3];
            }
            Action::Up => self.move_selection(-1),
            Action::Down => self.move_selection(1),
            Action::PageUp => self.move_selection(-10),
            Action::PageDown => self.move_selection(10),
            Action::Left => self.graph_pan = self.graph_pan.saturating_sub(8),
            Action::Right => self.graph_pan = (self.graph_pan + 8).min(MAX_PAN),
            Action::Inspect => self.inspecting = true,
            Action::Back => {
                if self.form.is_some() {
                    self.form = None;
                } else if self.jumping() {
                    self.player.iter_mut().for_each(|p| p.jump = None);
                } else if self.typing_filter {
                    self.typing_filter = false;
                } else if self.show_help {
                    self.show_help = false;
                } else {
                    self.inspecting = false;
                }
            }
            Action::TogglePause => self.paused = !self.paused,
            Action::StepForward => return Some(Effect::StepForward),
            Action::StepBack => {
                self.paused = true;
                return Some(Effect::StepBack);
            }
            Action::Rewound(events) => {
                let flight_time = self.model.flight_time;
                let topology = std::mem::take(&mut self.model.topology);
                self.model = Model::new(&self.model.vhost);
                self.model.flight_time = flight_time;
                self.model.topology = topology;
                for event in &events {
                    self.model.apply(event, self.now);
                }
                // What was replayed in one go is history, not traffic to animate.
                self.model.flights.clear();
                self.log_selected = 0;
                return Some(Effect::RefreshTopology);
            }
            Action::Faster => {
                self.speed = (self.speed * 1.5).min(8.0);
                self.model.flight_time = Duration::from_secs_f64(1.2 / self.speed);
            }
            Action::Slower => {
                self.speed = (self.speed / 1.5).max(0.125);
                self.model.flight_time = Duration::from_secs_f64(1.2 / self.speed);
            }
            Action::ToggleHelp => self.show_help = !self.show_help,
            Action::ToggleAllExchanges => {
                self.show_all_exchanges = !self.show_all_exchanges;
                self.relayout();
            }
            Action::NextVhost => {
                if let Some(i) = self.vhosts.iter().position(|v| *v == self.model.vhost) {
                    let next = self.vhosts[(i + 1) % self.vhosts.len()].clone();
                    if next != self.model.vhost {
                        let flight_time = self.model.flight_time;
                        self.model = Model::new(&next);
                        self.model.flight_time = flight_time;
                        self.graph_selected = 0;
                        self.log_selected = 0;
                        return Some(Effect::RefreshTopology);
                    }
                }
            }
            Action::StartFilter => {
                self.typing_filter = true;
                self.focus = Focus::Log;
            }
            Action::FilterInput(c) => {
                self.filter.push(c);
                self.set_filter();
            }
            Action::FilterBackspace => {
                self.filter.pop();
                self.set_filter();
            }
            Action::Click(column, row) => {
                let at = ratatui::layout::Position::new(column, row);
                if self.areas.graph.contains(at) {
                    self.focus = Focus::Graph;
                    if let Some(node) = super::panes::graph::node_at(self, column, row) {
                        self.graph_selected = node;
                    }
                } else if self.areas.log.contains(at) {
                    self.focus = Focus::Log;
                    // Rows under the pane's title line, newest first.
                    let offset = row.saturating_sub(self.areas.log.y + 1) as usize;
                    if offset < self.filtered_log().len() {
                        self.log_selected = offset;
                    }
                } else if self.areas.inspector.contains(at) {
                    self.focus = Focus::Inspector;
                }
            }
            Action::ScrollUp => self.move_selection(-3),
            Action::ScrollDown => self.move_selection(3),
            Action::ScrollInspector(delta) => {
                self.inspector_scroll = self.inspector_scroll.saturating_add_signed(delta);
            }
            Action::BrokerEvent(event) => {
                let before = self.model.log.len();
                self.model.apply(&event, self.now);
                // Keep the selected message in place while new ones arrive above it.
                if self.log_selected > 0 && self.model.log.len() > before {
                    self.log_selected += 1;
                }
            }
            Action::Missed(n) => self.model.missed += n,
            Action::PresenterNext if self.player.is_some() => {
                return self.apply_any(Action::LessonNext)
            }
            Action::PresenterBack if self.player.is_some() => {
                return self.apply_any(Action::LessonBack)
            }
            Action::PresenterNext | Action::PresenterBack => {
                // Newest is index 0, so "next" in time moves towards it.
                self.focus = Focus::Log;
                self.inspecting = true;
                let n = self.filtered_log().len();
                if n > 0 {
                    self.log_selected = match action {
                        Action::PresenterNext => self.log_selected.saturating_sub(1),
                        _ => (self.log_selected + 1).min(n - 1),
                    };
                }
            }
            Action::OpenForm(kind) => {
                let mut exchange = self.selected_exchange().map(str::to_string);
                let mut queue = self.selected_queue().map(str::to_string);
                // A selected binding prefills its exchange, and its key where that is a key a
                // message can carry (not a pattern).
                if let Some(b) = self.selected_binding().map(|b| &b.binding) {
                    exchange = Some(b.source.to_string());
                    queue = match kind {
                        FormKind::Publish if !b.routing_key.contains(['*', '#']) => {
                            Some(b.routing_key.to_string())
                        }
                        FormKind::Bind if !b.destination_is_exchange => {
                            Some(b.destination.to_string())
                        }
                        _ => None,
                    };
                }
                self.form = Some(Form::new(kind, exchange.as_deref(), queue.as_deref()));
            }
            Action::FormInput(c) => self.form.iter_mut().for_each(|f| f.input(c)),
            Action::FormBackspace => self.form.iter_mut().for_each(|f| f.backspace()),
            Action::FormNextField => self.form.iter_mut().for_each(|f| f.next_field()),
            Action::FormSubmit => {
                let command = self.form.as_ref()?.command();
                match command {
                    Ok(command) => {
                        self.form = None;
                        return Some(Effect::Run(command));
                    }
                    Err(why) => self.notice = Some((why, true)),
                }
            }
            Action::DeleteSelected => {
                if let Some(b) = self.selected_binding() {
                    return Some(Effect::Run(Command::Unbind {
                        binding: b.binding.clone(),
                    }));
                }
                if let Some(x) = self.selected_exchange() {
                    return Some(Effect::Run(Command::DeleteExchange {
                        name: x.to_string(),
                    }));
                }
                return self.need_queue(|name| Command::DeleteQueue { name });
            }
            Action::PurgeSelected => return self.need_queue(|queue| Command::Purge { queue }),
            Action::GetSelected => return self.need_queue(|queue| Command::Get { queue }),
            Action::CommandDone(result) => {
                self.notice = Some(match result {
                    Ok(text) => (text, false),
                    Err(text) => (text, true),
                });
            }
            Action::SourceTrouble(trouble) => self.trouble = trouble,
            Action::LessonsLoaded { lessons, errors } => {
                self.lessons = lessons;
                self.lesson_errors = errors;
            }
            Action::OpenMenu => {
                if self.lessons.is_empty() && self.lesson_errors.is_empty() {
                    self.notice = Some(("no lessons found (see --lessons)".into(), true));
                } else {
                    self.menu = Some(0);
                }
            }
            Action::StartLesson(i) => {
                let lesson = self.lessons.get(i)?.clone();
                self.menu = None;
                let (player, request) = Player::new(lesson, self.options.lang, self.now);
                self.player = Some(player);
                return Some(Effect::Lesson(request));
            }
            Action::LessonNext => return self.player.as_mut()?.next(self.now).map(Effect::Lesson),
            Action::LessonBack => {
                return Some(Effect::Lesson(self.player.as_mut()?.back(self.now)))
            }
            Action::LessonRestart => {
                return Some(Effect::Lesson(self.player.as_mut()?.go_to(0, self.now)))
            }
            Action::LessonToggle(i) => self.player.as_mut()?.toggle(i),
            Action::LessonScrollUp => {
                let player = self.player.as_mut()?;
                player.scroll = player.scroll.saturating_sub(3);
            }
            Action::LessonScrollDown => {
                let player = self.player.as_mut()?;
                // The pane stops at the last line; this only keeps the number sane.
                player.scroll = (player.scroll + 3).min(500);
            }
            Action::LessonJumpStart => self.player.as_mut()?.jump = Some(String::new()),
            Action::LessonJumpInput(c) if c.is_ascii_digit() => {
                self.player.as_mut()?.jump.as_mut()?.push(c)
            }
            Action::LessonJumpInput(_) => {}
            Action::LessonJumpBackspace => {
                self.player.as_mut()?.jump.as_mut()?.pop();
            }
            Action::LessonJumpGo => {
                return self.player.as_mut()?.jump_go(self.now).map(Effect::Lesson)
            }
            Action::LessonAutoplay => {
                let player = self.player.as_mut()?;
                player.autoplay = !player.autoplay;
                player.since = self.now;
            }
            Action::LessonClose => self.player = None,
            Action::LessonPrepared(result) => self.player.as_mut()?.prepared(result, self.now),
            Action::LessonStepDone(result) => self.player.as_mut()?.ran(result, self.now),
            Action::Topology(snapshot) => {
                self.vhosts = snapshot.vhosts.iter().map(|v| v.name.clone()).collect();
                if let Some(v) = snapshot.vhost(&self.model.vhost) {
                    self.model.set_topology(v.clone());
                    if std::mem::take(&mut self.model.structure_changed) {
                        self.relayout();
                    } else {
                        super::layout::refresh_labels(&mut self.graph, &self.model.topology);
                    }
                }
            }
        }
        None
    }

    /// Called when the filter is being typed: keys are text.
    pub fn wants_text(&self) -> bool {
        self.typing_filter
    }

    /// Called when a step number is being typed after `J`.
    pub fn jumping(&self) -> bool {
        self.player.as_ref().is_some_and(|p| p.jump.is_some())
    }

    /// The exchange selected in the graph, if the selection is an exchange.
    pub fn selected_exchange(&self) -> Option<&str> {
        match self.selected_item()? {
            GraphItem::Exchange(i) => self.graph.exchanges.get(i).map(|x| x.name.as_str()),
            _ => None,
        }
    }

    /// The queue selected in the graph, if the selection is a queue.
    pub fn selected_queue(&self) -> Option<&str> {
        match self.selected_item()? {
            GraphItem::Queue(i) => self.graph.queues.get(i).map(|q| q.name.as_str()),
            _ => None,
        }
    }

    /// The binding selected in the graph, if the selection is a binding.
    pub fn selected_binding(&self) -> Option<&BindingRow> {
        match self.selected_item()? {
            GraphItem::Binding(i) => self.graph.bindings.get(i),
            _ => None,
        }
    }

    fn need_queue(&mut self, make: impl FnOnce(String) -> Command) -> Option<Effect> {
        match self.selected_queue() {
            Some(q) => Some(Effect::Run(make(q.to_string()))),
            None => {
                self.notice = Some(("select a queue in the graph first".into(), true));
                None
            }
        }
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
mod tests {
    use super::*;

    fn app() -> App {
        App::new("127.0.0.1:5673", "/", ViewOptions::default())
    }

    fn lesson_app() -> App {
        let text = r#"
id: drill
order: 1
title: { en: Drill, zh: 练习 }
steps:
  - say: { en: One., zh: 一。 }
    predict:
      question: { en: Which?, zh: 哪个？ }
      choices: [A, B]
      answer: [A]
  - say: { en: Two., zh: 二。 }
  - say: { en: Three., zh: 三。 }
"#;
        let lesson = crate::lesson::load_str(text, std::path::Path::new("drill.yaml"))
            .expect("the test lesson loads");
        let mut app = app();
        app.update(Action::LessonsLoaded {
            lessons: vec![Arc::new(lesson)],
            errors: vec![],
        });
        app
    }

    fn prepare_of(effect: Option<Effect>) -> usize {
        match effect {
            Some(Effect::Lesson(LessonRequest::Prepare { steps, .. })) => steps,
            other => panic!("expected a prepare request, got {other:?}"),
        }
    }

    #[test]
    fn stepping_back_a_replay_pauses_and_starts_the_picture_over() {
        use crate::events::{Event, EventKind, PublishFate};
        let published = |id: u64| {
            Arc::new(Event {
                at: std::time::SystemTime::UNIX_EPOCH,
                vhost: "/".into(),
                connection: None,
                channel: None,
                kind: EventKind::Published {
                    message_id: id,
                    exchange: "x".into(),
                    routing_key: "k".into(),
                    body_size: 0,
                    body_preview: Default::default(),
                    headers: vec![],
                    properties: Arc::new([]),
                    matched: vec![],
                    queues: vec!["q".into()],
                    alternate_exchange: None,
                    fate: PublishFate::Routed,
                },
            })
        };
        let mut app = app();
        for id in 1..=3 {
            app.update(Action::BrokerEvent(published(id)));
        }
        assert_eq!(app.model.log.len(), 3);
        assert_eq!(app.update(Action::StepBack), Some(Effect::StepBack));
        assert!(
            app.paused,
            "a step back pauses, so the replay does not run on"
        );
        // The source hands back the events before the last one.
        let effect = app.update(Action::Rewound(vec![published(1), published(2)]));
        assert_eq!(effect, Some(Effect::RefreshTopology));
        let ids: Vec<u64> = app.model.log.iter().map(|e| e.message_id).collect();
        assert_eq!(ids, [1, 2]);
        assert!(app.model.flights.is_empty(), "history is not animated");
    }

    #[test]
    fn a_lesson_runs_steps_forward_and_replays_back_exactly() {
        use crate::ui::player::{Phase, StepOutcome};
        let mut app = lesson_app();
        app.update(Action::OpenMenu);
        assert_eq!(app.menu, Some(0));
        // Enter in the menu starts the lesson: the broker is prepared up to step 1.
        assert_eq!(prepare_of(app.update(Action::Inspect)), 0);
        assert_eq!(app.menu, None);
        // Keys cannot run a step before the broker is ready.
        assert_eq!(app.update(Action::LessonNext), None);
        app.update(Action::LessonPrepared(Ok(())));
        app.update(Action::LessonToggle(0));
        app.update(Action::LessonToggle(5)); // no such choice: ignored
        assert_eq!(
            app.update(Action::LessonNext),
            Some(Effect::Lesson(LessonRequest::Run { step: 0 }))
        );
        app.update(Action::LessonStepDone(Ok(StepOutcome {
            routed: vec!["A".into()],
            checks: vec![],
        })));
        let player = app.player.as_ref().unwrap();
        assert_eq!(player.prediction_right(), Some(true));
        // Next shows step 2 without touching the broker; running it asks the runner.
        assert_eq!(app.update(Action::LessonNext), None);
        assert_eq!(app.player.as_ref().unwrap().step, 1);
        assert_eq!(
            app.update(Action::LessonNext),
            Some(Effect::Lesson(LessonRequest::Run { step: 1 }))
        );
        app.update(Action::LessonStepDone(Ok(StepOutcome::default())));
        app.update(Action::LessonNext);
        assert_eq!(app.player.as_ref().unwrap().step, 2);
        // Back from step 3 (not yet run): replay steps 1 and 2, then read step 2 again.
        assert_eq!(prepare_of(app.update(Action::LessonBack)), 1);
        assert_eq!(app.player.as_ref().unwrap().step, 1);
        assert_eq!(app.player.as_ref().unwrap().phase, Phase::Preparing);
        // Restart: back to before step 1.
        assert_eq!(prepare_of(app.update(Action::LessonRestart)), 0);
        assert_eq!(app.player.as_ref().unwrap().step, 0);
        // J 3 Enter: to step 3, with steps 1 and 2 replayed; a step that does not exist is
        // refused and Esc drops what was typed.
        app.update(Action::LessonJumpStart);
        assert!(app.jumping());
        app.update(Action::LessonJumpInput('3'));
        assert_eq!(prepare_of(app.update(Action::LessonJumpGo)), 2);
        assert!(!app.jumping());
        app.update(Action::LessonJumpStart);
        app.update(Action::LessonJumpInput('9'));
        assert_eq!(app.update(Action::LessonJumpGo), None);
        app.update(Action::LessonJumpStart);
        app.update(Action::LessonJumpInput('2'));
        app.update(Action::Back);
        assert!(!app.jumping());
        assert!(app.player.is_some(), "Esc cancels the jump, not the lesson");
    }

    #[test]
    fn presenter_keys_drive_the_lesson_and_autoplay_moves_on_by_itself() {
        let mut app = App::new(
            "127.0.0.1:5673",
            "/",
            ViewOptions {
                classroom: true,
                ..ViewOptions::default()
            },
        );
        let lessons = lesson_app().lessons;
        app.update(Action::LessonsLoaded {
            lessons,
            errors: vec![],
        });
        app.update(Action::StartLesson(0));
        app.update(Action::LessonPrepared(Ok(())));
        assert_eq!(
            app.update(Action::PresenterNext),
            Some(Effect::Lesson(LessonRequest::Run { step: 0 }))
        );
        app.update(Action::LessonStepDone(
            Err("406 PRECONDITION_FAILED".into()),
        ));
        // A failed step is shown; back replays up to it.
        assert_eq!(prepare_of(app.update(Action::PresenterBack)), 0);
        app.update(Action::LessonPrepared(Ok(())));
        app.update(Action::Topology(crate::broker::Snapshot {
            vhosts: vec![crate::broker::VhostSnapshot {
                name: "/".into(),
                ..Default::default()
            }],
        }));
        app.update(Action::LessonAutoplay);
        let start = app.now;
        app.set_now(start + Duration::from_secs(1));
        assert_eq!(app.update(Action::Tick), None, "too early");
        app.set_now(start + Duration::from_secs(7));
        assert_eq!(
            app.update(Action::Tick),
            Some(Effect::Lesson(LessonRequest::Run { step: 0 }))
        );
    }

    #[test]
    fn tab_cycles_the_panes_both_ways() {
        let mut app = app();
        let mut seen = vec![app.focus];
        for _ in 0..3 {
            app.update(Action::FocusNext);
            seen.push(app.focus);
        }
        assert_eq!(
            seen,
            [Focus::Graph, Focus::Log, Focus::Inspector, Focus::Graph]
        );
        app.update(Action::FocusPrev);
        assert_eq!(app.focus, Focus::Inspector);
        // The inspector keeps describing the list focused before it.
        assert_eq!(app.subject, Focus::Graph);
    }

    #[test]
    fn a_bad_regex_keeps_the_last_good_filter_and_says_why() {
        let mut app = app();
        app.update(Action::StartFilter);
        assert!(app.wants_text());
        for c in "a(b".chars() {
            app.update(Action::FilterInput(c));
        }
        assert!(app.filter_error.is_some());
        assert_eq!(app.filter_regex.as_ref().map(|r| r.as_str()), Some("a"));
        app.update(Action::FilterBackspace);
        assert!(app.filter_error.is_some(), "'a(' is still no regex");
        app.update(Action::FilterBackspace);
        assert!(app.filter_error.is_none());
        app.update(Action::Back);
        assert!(!app.wants_text());
        assert_eq!(app.filter, "a");
    }

    #[test]
    fn esc_closes_help_before_the_inspector_and_q_quits() {
        let mut app = app();
        app.update(Action::Inspect);
        app.update(Action::ToggleHelp);
        app.update(Action::Back);
        assert!(!app.show_help && app.inspecting);
        app.update(Action::Back);
        assert!(!app.inspecting);
        assert_eq!(app.update(Action::Quit), Some(Effect::Quit));
    }

    #[test]
    fn snapshots_are_asked_for_at_most_every_quarter_second() {
        let mut app = app();
        let start = app.now;
        assert_eq!(app.update(Action::Tick), Some(Effect::RefreshTopology));
        app.model.topology_stale = true;
        app.set_now(start + Duration::from_millis(100));
        assert_eq!(app.update(Action::Tick), None);
        app.set_now(start + Duration::from_millis(300));
        assert_eq!(app.update(Action::Tick), Some(Effect::RefreshTopology));
    }

    #[test]
    fn the_publish_form_becomes_a_command() {
        let mut app = app();
        app.update(Action::OpenForm(crate::ui::form::FormKind::Publish));
        for c in "amq.topic".chars() {
            app.update(Action::FormInput(c));
        }
        app.update(Action::FormNextField);
        for c in "a.b".chars() {
            app.update(Action::FormInput(c));
        }
        let effect = app.update(Action::FormSubmit);
        assert_eq!(
            effect,
            Some(Effect::Run(Command::Publish {
                exchange: "amq.topic".into(),
                routing_key: "a.b".into(),
                headers: vec![],
                body: String::new(),
            }))
        );
        assert!(app.form.is_none());
        // Purge with nothing selected is explained, not sent.
        assert_eq!(app.update(Action::PurgeSelected), None);
        assert!(app.notice.as_ref().is_some_and(|(_, error)| *error));
    }

    #[test]
    fn a_binding_is_selected_on_its_own_unbound_and_stays_selected_across_changes() {
        use crate::broker::{ExchangeSnapshot, QueueSnapshot, Snapshot, VhostSnapshot};
        use crate::events::BindingInfo;
        let topology = |bindings: Vec<BindingInfo>| {
            Action::Topology(Snapshot {
                vhosts: vec![VhostSnapshot {
                    name: "/".into(),
                    exchanges: vec![ExchangeSnapshot::new("logs", "direct")],
                    queues: vec![QueueSnapshot::new("errors"), QueueSnapshot::new("infos")],
                    bindings,
                }],
            })
        };
        let errors = BindingInfo::to_queue("logs", "errors", "error");
        let infos = BindingInfo::to_queue("logs", "infos", "info");
        let mut app = app();
        app.update(topology(vec![errors.clone(), infos.clone()]));
        assert_eq!(app.selected_exchange(), Some("logs"));
        app.update(Action::Down);
        app.update(Action::Down);
        assert_eq!(app.selected_binding().map(|b| &b.binding), Some(&infos));
        // Another binding appears above it: the selection follows the binding, not the row.
        let warnings = BindingInfo::to_queue("logs", "errors", "warning");
        app.update(topology(vec![errors.clone(), warnings, infos.clone()]));
        assert_eq!(app.selected_binding().map(|b| &b.binding), Some(&infos));
        // The publish form offers the binding's exchange and key.
        app.update(Action::OpenForm(FormKind::Publish));
        let form = app.form.take().unwrap();
        assert_eq!(
            (form.fields[0].1.as_str(), form.fields[1].1.as_str()),
            ("logs", "info")
        );
        assert_eq!(
            app.update(Action::DeleteSelected),
            Some(Effect::Run(Command::Unbind { binding: infos }))
        );
        // A queue is still deleted as a queue.
        app.update(Action::PageDown);
        assert_eq!(app.selected_queue(), Some("infos"));
        assert_eq!(
            app.update(Action::DeleteSelected),
            Some(Effect::Run(Command::DeleteQueue {
                name: "infos".into()
            }))
        );
    }

    #[test]
    fn pause_and_speed() {
        let mut app = app();
        app.update(Action::TogglePause);
        assert!(app.paused);
        app.update(Action::Faster);
        assert!(app.model.flight_time < Duration::from_millis(1200));
        app.update(Action::Slower);
        app.update(Action::Slower);
        assert!(app.model.flight_time > Duration::from_millis(1200));
    }

    fn published_with(id: u64, headers: &[(&str, &str)], body: &[u8]) -> Arc<crate::events::Event> {
        use crate::events::{Event, EventKind, PublishFate};
        Arc::new(Event {
            at: std::time::SystemTime::UNIX_EPOCH,
            vhost: "/".into(),
            connection: None,
            channel: None,
            kind: EventKind::Published {
                message_id: id,
                exchange: "nova".into(),
                routing_key: "conductor".into(),
                body_size: body.len(),
                body_preview: bytes::Bytes::copy_from_slice(body),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                properties: Arc::new([]),
                matched: vec![],
                queues: vec!["conductor".into()],
                alternate_exchange: None,
                fate: PublishFate::Routed,
            },
        })
    }

    fn filter(app: &mut App, text: &str) -> Vec<u64> {
        app.update(Action::StartFilter);
        for c in text.chars() {
            app.update(Action::FilterInput(c));
        }
        app.update(Action::Back);
        app.filtered_log().iter().map(|e| e.message_id).collect()
    }

    #[test]
    fn the_filter_searches_headers_and_bodies() {
        let mut app = app();
        app.update(Action::BrokerEvent(published_with(
            1,
            &[("tenant", "blue")],
            b"plain",
        )));
        app.update(Action::BrokerEvent(published_with(
            2,
            &[],
            include_bytes!("../../tests/fixtures/oslo/call.json"),
        )));
        app.update(Action::BrokerEvent(published_with(
            3,
            &[],
            &[0xff, 0xfe, b'z'],
        )));
        assert_eq!(filter(&mut app, "blue"), [1], "a header value");
        for _ in 0.."blue".len() {
            app.update(Action::FilterBackspace);
        }
        assert_eq!(
            filter(&mut app, "objmethod"),
            [2],
            "inside an oslo.message body"
        );
        for _ in 0.."objmethod".len() {
            app.update(Action::FilterBackspace);
        }
        assert_eq!(filter(&mut app, "z$"), [3], "a body that is not UTF-8");
        for _ in 0.."z$".len() {
            app.update(Action::FilterBackspace);
        }
        assert_eq!(
            filter(&mut app, "conductor"),
            [3, 2, 1],
            "exchange and key still count"
        );
    }

    #[test]
    fn the_inspector_scrolls_and_starts_at_the_top_for_a_new_subject() {
        let mut app = app();
        for id in 1..=2 {
            app.update(Action::BrokerEvent(published_with(id, &[], b"body")));
        }
        app.update(Action::FocusNext); // the log
        app.update(Action::FocusNext); // the inspector, still describing the log's message
        assert_eq!(app.subject, Focus::Log);
        app.update(Action::Down);
        app.update(Action::PageDown);
        assert_eq!(app.inspector_scroll, 11);
        app.update(Action::ScrollInspector(-3));
        assert_eq!(app.inspector_scroll, 8);
        app.update(Action::PageUp);
        assert_eq!(app.inspector_scroll, 0, "scrolling up stops at the top");
        app.update(Action::ScrollInspector(5));
        // Another message selected: its text starts at its first line.
        app.update(Action::FocusPrev);
        app.update(Action::Down);
        assert_eq!(app.log_selected, 1);
        assert_eq!(app.inspector_scroll, 0);
    }

    #[test]
    fn a_lesson_starts_with_an_empty_log_and_going_back_does_not_repeat_lines() {
        let mut app = lesson_app();
        app.update(Action::BrokerEvent(published_with(
            1,
            &[],
            b"before the lesson",
        )));
        assert_eq!(prepare_of(app.update(Action::StartLesson(0))), 0);
        assert!(app.model.log.is_empty(), "the log starts empty");
        app.update(Action::LessonPrepared(Ok(())));
        app.update(Action::LessonNext);
        app.update(Action::BrokerEvent(published_with(2, &[], b"step 1")));
        app.update(Action::LessonStepDone(Ok(Default::default())));
        app.update(Action::LessonNext);
        app.update(Action::LessonNext);
        app.update(Action::BrokerEvent(published_with(3, &[], b"step 2")));
        app.update(Action::LessonStepDone(Ok(Default::default())));
        // Back: the runner resets the broker and replays step 1, which publishes again.
        assert_eq!(prepare_of(app.update(Action::LessonBack)), 1);
        app.update(Action::BrokerEvent(published_with(4, &[], b"step 1")));
        app.update(Action::LessonPrepared(Ok(())));
        let bodies: Vec<&[u8]> = app.model.log.iter().map(|e| &e.body_preview[..]).collect();
        assert_eq!(
            bodies,
            [b"step 1"],
            "one line per message the broker now holds"
        );
    }
}
