//! The app's state and `update()`, which applies one [`Action`] and does no I/O. What needs the
//! outside world (a topology snapshot, quitting) is returned as an [`Effect`] for the event loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;

use super::action::Action;
use super::form::{Command, Confirm, Form, FormKind};
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
    /// The first help line shown, and how many fit on the last frame drawn.
    pub help_scroll: usize,
    pub help_page: usize,
    pub inspecting: bool,
    /// The graph has the whole width: the lesson and the inspector wait beside it, hidden.
    pub zoomed: bool,
    /// An open form, which takes the keyboard.
    pub form: Option<Form>,
    /// A delete, unbind or purge waiting for a yes, which takes the keyboard.
    pub confirm: Option<Confirm>,
    /// The lesson number being typed in the menu, and when its last digit came.
    pub menu_number: Option<(String, Instant)>,
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

/// How long the lesson menu waits for a second digit when the first could begin a longer number.
pub const MENU_DIGIT_WAIT: Duration = Duration::from_millis(800);

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
            help_scroll: 0,
            help_page: 0,
            inspecting: false,
            zoomed: false,
            form: None,
            confirm: None,
            menu_number: None,
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
                &self.model.traffic,
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
        if self.confirm.is_some() {
            match action {
                Action::Confirm(yes) => {
                    let confirm = self.confirm.take()?;
                    return yes.then_some(Effect::Run(confirm.command));
                }
                Action::Back => self.confirm = None,
                Action::Quit => return Some(Effect::Quit),
                action if action.is_from_the_world() => return self.apply_any(action),
                _ => {}
            }
            return None;
        }
        if self.show_help {
            let page = self.help_page.max(1) as isize;
            let delta = match action {
                Action::Up => -1,
                Action::Down => 1,
                // A clicker's keys page the help in classroom mode too.
                Action::PageUp | Action::PresenterBack => -page,
                Action::PageDown | Action::PresenterNext => page,
                Action::ScrollUp => -3,
                Action::ScrollDown => 3,
                _ => 0,
            };
            if delta != 0 {
                let lines =
                    super::keys::help_lines(self.options.classroom, self.options.lang).len();
                let last = lines.saturating_sub(self.help_page.max(1));
                self.help_scroll =
                    (self.help_scroll as isize + delta).clamp(0, last as isize) as usize;
                return None;
            }
        }
        if let Some(selected) = self.menu {
            match action {
                Action::MenuDigit(d) => return self.menu_digit(d),
                Action::Tick => {
                    let due = self
                        .menu_number
                        .as_ref()
                        .is_some_and(|(_, at)| self.now.duration_since(*at) >= MENU_DIGIT_WAIT);
                    if due {
                        let (typed, _) = self.menu_number.take()?;
                        if let Some(i) = self.lesson_numbered(&typed) {
                            return self.apply(Action::StartLesson(i));
                        }
                    }
                    return self.apply_any(action);
                }
                Action::Up => self.menu = Some(selected.saturating_sub(1)),
                Action::Down => {
                    self.menu = Some((selected + 1).min(self.lessons.len().saturating_sub(1)))
                }
                Action::Inspect => return self.apply(Action::StartLesson(selected)),
                Action::Back | Action::OpenMenu => {
                    self.menu = None;
                    self.menu_number = None;
                }
                Action::Quit => return Some(Effect::Quit),
                // The world goes on behind the menu.
                action if action.is_from_the_world() => return self.apply_any(action),
                Action::StartLesson(_) => return self.apply_any(action),
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
            Action::ToggleZoom => self.zoomed = !self.zoomed,
            Action::ToggleHelp => {
                self.show_help = !self.show_help;
                self.help_scroll = 0;
            }
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
            Action::FormPrevField => self.form.iter_mut().for_each(|f| f.prev_field()),
            // Only meaningful while asked (above) or in the menu (above).
            Action::Confirm(_) | Action::MenuDigit(_) => {}
            Action::FormSubmit => {
                let command = self.form.as_ref()?.command();
                match command {
                    Ok(command) => {
                        self.form = None;
                        return Some(Effect::Run(command));
                    }
                    Err(why) => self.notice = Some((why.to_string(), true)),
                }
            }
            Action::DeleteSelected => {
                if self.selected_binding().is_some_and(|b| b.implicit) {
                    let why = "the default exchange routes to every queue by its name: no binding to delete";
                    self.notice = Some((why.into(), true));
                    return None;
                }
                let question;
                let command = if let Some(b) = self.selected_binding() {
                    let b = &b.binding;
                    question = match self.options.lang {
                        Lang::En => format!(
                            "Unbind '{}' from '{}' with key '{}'? Messages stop taking this route.",
                            b.destination, b.source, b.routing_key
                        ),
                        Lang::Zh => format!(
                            "解除 '{}' 与 '{}' 之间路由键为 '{}' 的绑定？消息将不再走这条路线。",
                            b.destination, b.source, b.routing_key
                        ),
                    };
                    Command::Unbind { binding: b.clone() }
                } else if let Some(x) = self.selected_exchange() {
                    let bound = |name: &str| {
                        self.model
                            .topology
                            .bindings
                            .iter()
                            .filter(|b| {
                                *b.source == *name
                                    || (b.destination_is_exchange && *b.destination == *name)
                            })
                            .count()
                    };
                    question = match self.options.lang {
                        Lang::En => format!(
                            "Delete exchange '{x}' and its {} binding(s)? No queued message is lost.",
                            bound(x)
                        ),
                        Lang::Zh => format!(
                            "删除交换器 '{x}' 及其 {} 个绑定？队列中的消息不会丢失。",
                            bound(x)
                        ),
                    };
                    Command::DeleteExchange {
                        name: x.to_string(),
                    }
                } else if let Some(q) = self.selected_queue() {
                    let (ready, unacked) = self.queue_counts(q);
                    question = match self.options.lang {
                        Lang::En => format!(
                            "Delete queue '{q}'? {} message(s) are lost ({ready} ready, {unacked} unacknowledged).",
                            ready + unacked
                        ),
                        Lang::Zh => format!(
                            "删除队列 '{q}'？将丢失 {} 条消息（{ready} 条就绪，{unacked} 条未确认）。",
                            ready + unacked
                        ),
                    };
                    Command::DeleteQueue {
                        name: q.to_string(),
                    }
                } else {
                    return self.need_queue(|name| Command::DeleteQueue { name });
                };
                self.confirm = Some(Confirm { question, command });
            }
            Action::PurgeSelected => {
                let Some(q) = self.selected_queue() else {
                    return self.need_queue(|queue| Command::Purge { queue });
                };
                let (ready, unacked) = self.queue_counts(q);
                // Purge takes only what waits in the queue, as in RabbitMQ.
                let question = match (self.options.lang, unacked) {
                    (Lang::En, 0) => format!("Purge queue '{q}'? {ready} ready message(s) are lost."),
                    (Lang::En, _) => format!(
                        "Purge queue '{q}'? {ready} ready message(s) are lost. The {unacked} \
                         unacknowledged stay with their consumers."
                    ),
                    (Lang::Zh, 0) => format!("清空队列 '{q}'？将丢失 {ready} 条就绪消息。"),
                    (Lang::Zh, _) => format!(
                        "清空队列 '{q}'？将丢失 {ready} 条就绪消息。{unacked} 条未确认的消息仍留在消费者那里。"
                    ),
                };
                self.confirm = Some(Confirm {
                    question,
                    command: Command::Purge {
                        queue: q.to_string(),
                    },
                });
            }
            Action::GetSelected => return self.need_queue(|queue| Command::Get { queue }),
            Action::CommandDone(result) => {
                self.notice = Some(match result {
                    Ok(text) => (text, false),
                    Err(why) => (why.to_string(), true),
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
                self.menu_number = None;
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

    /// Ready and unacknowledged messages of a queue, as the last snapshot saw them.
    fn queue_counts(&self, queue: &str) -> (usize, usize) {
        self.model
            .topology
            .queues
            .iter()
            .find(|q| q.name == queue)
            .map_or((0, 0), |q| (q.ready, q.unacked))
    }

    /// The menu row of the lesson with this number (the number the menu shows).
    fn lesson_numbered(&self, typed: &str) -> Option<usize> {
        let n: u32 = typed.parse().ok()?;
        self.lessons.iter().position(|l| l.order == n)
    }

    /// A digit in the lesson menu. It starts the lesson with that number at once, unless a
    /// longer number could begin with what is typed (1 when there is a 12): then it selects
    /// it and waits [`MENU_DIGIT_WAIT`] for another digit, or Enter.
    fn menu_digit(&mut self, d: u32) -> Option<Effect> {
        let pending = self
            .menu_number
            .take()
            .filter(|(_, at)| self.now.duration_since(*at) < MENU_DIGIT_WAIT)
            .map(|(typed, _)| typed);
        let mut typed = format!("{}{d}", pending.unwrap_or_default());
        let begins = |typed: &str| {
            self.lessons
                .iter()
                .any(|l| l.order.to_string().starts_with(typed))
        };
        // A digit that continues no number starts a new one.
        if !begins(&typed) {
            typed = d.to_string();
        }
        let longer = self.lessons.iter().any(|l| {
            let number = l.order.to_string();
            number.len() > typed.len() && number.starts_with(&typed)
        });
        let exact = self.lesson_numbered(&typed);
        if let Some(i) = exact {
            self.menu = Some(i);
        }
        match (exact, longer) {
            (Some(i), false) => self.apply(Action::StartLesson(i)),
            (_, true) => {
                self.menu_number = Some((typed, self.now));
                None
            }
            (None, false) => {
                self.notice = Some((format!("no lesson {typed}"), true));
                None
            }
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
            truth: vec!["A".into()],
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
                properties: Default::default(),
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
                    ..Default::default()
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
            (form.fields[0].value.as_str(), form.fields[1].value.as_str()),
            ("logs", "info")
        );
        assert_eq!(app.update(Action::DeleteSelected), None, "it asks first");
        assert_eq!(
            app.update(Action::Confirm(true)),
            Some(Effect::Run(Command::Unbind { binding: infos }))
        );
        // A queue is still deleted as a queue.
        app.update(Action::PageDown);
        assert_eq!(app.selected_queue(), Some("infos"));
        app.update(Action::DeleteSelected);
        assert_eq!(
            app.update(Action::Confirm(true)),
            Some(Effect::Run(Command::DeleteQueue {
                name: "infos".into()
            }))
        );
    }

    /// Two queues, one holding messages, and an exchange bound to both.
    fn app_with_queues() -> App {
        use crate::broker::{ExchangeSnapshot, QueueSnapshot, Snapshot, VhostSnapshot};
        use crate::events::BindingInfo;
        let mut app = app();
        app.update(Action::Topology(Snapshot {
            vhosts: vec![VhostSnapshot {
                name: "/".into(),
                exchanges: vec![ExchangeSnapshot::new("logs", "direct")],
                queues: vec![
                    QueueSnapshot {
                        ready: 7,
                        unacked: 2,
                        ..QueueSnapshot::new("errors")
                    },
                    QueueSnapshot::new("infos"),
                ],
                bindings: vec![
                    BindingInfo::to_queue("logs", "errors", "error"),
                    BindingInfo::to_queue("logs", "infos", "info"),
                ],
                ..Default::default()
            }],
        }));
        app
    }

    fn select_queue(app: &mut App, name: &str) {
        while app.selected_queue() != Some(name) {
            let before = app.graph_selected;
            app.update(Action::Down);
            assert_ne!(before, app.graph_selected, "no queue {name} in the graph");
        }
    }

    #[test]
    fn delete_and_purge_ask_first_and_say_what_is_lost() {
        let mut app = app_with_queues();
        select_queue(&mut app, "errors");
        // Purge: asked, with the ready count; n cancels and nothing is sent.
        assert_eq!(app.update(Action::PurgeSelected), None);
        let question = &app.confirm.as_ref().expect("purge asks").question;
        assert!(
            question.contains("'errors'") && question.contains("7 ready"),
            "{question}"
        );
        assert!(question.contains("2 unacknowledged stay"), "{question}");
        // Keys other than yes and no do nothing while asked: not even a move or a delete.
        assert_eq!(app.update(Action::Down), None);
        assert_eq!(app.selected_queue(), Some("errors"));
        assert_eq!(app.update(Action::Confirm(false)), None);
        assert!(app.confirm.is_none());
        // Esc cancels too.
        app.update(Action::PurgeSelected);
        assert_eq!(app.update(Action::Back), None);
        assert!(app.confirm.is_none());
        // Delete: all 9 messages are lost; yes sends it.
        app.update(Action::DeleteSelected);
        let question = &app.confirm.as_ref().expect("delete asks").question;
        assert!(question.contains("9 message(s) are lost"), "{question}");
        assert_eq!(
            app.update(Action::Confirm(true)),
            Some(Effect::Run(Command::DeleteQueue {
                name: "errors".into()
            }))
        );
        assert!(app.confirm.is_none());
        // An exchange names its bindings.
        app.graph_selected = 0;
        app.update(Action::DeleteSelected);
        let question = &app.confirm.as_ref().expect("delete asks").question;
        assert!(
            question.contains("'logs' and its 2 binding(s)"),
            "{question}"
        );
        // The broker's answers still arrive while the question is open.
        app.update(Action::CommandDone(Ok("done".into())));
        assert_eq!(app.notice, Some(("done".into(), false)));
        assert_eq!(app.update(Action::Quit), Some(Effect::Quit));
    }

    fn lessons_numbered(n: u32) -> App {
        let mut app = app();
        let lessons = (1..=n)
            .map(|order| {
                let text = format!(
                    "id: l{order}\norder: {order}\ntitle: {{ en: L{order}, zh: L{order} }}\nsteps:\n  - say: {{ en: One., zh: 一。 }}\n"
                );
                Arc::new(
                    crate::lesson::load_str(&text, std::path::Path::new("l.yaml"))
                        .expect("the test lesson loads"),
                )
            })
            .collect();
        app.update(Action::LessonsLoaded {
            lessons,
            errors: vec![],
        });
        app
    }

    fn started(effect: Option<Effect>) -> String {
        match effect {
            Some(Effect::Lesson(LessonRequest::Prepare { lesson, .. })) => lesson.id.clone(),
            other => panic!("expected a lesson to start, got {other:?}"),
        }
    }

    #[test]
    fn a_digit_picks_a_lesson_and_two_quick_digits_pick_ten_and_up() {
        // Nine lessons: a digit starts its lesson at once.
        let mut app = lessons_numbered(9);
        app.update(Action::OpenMenu);
        assert_eq!(started(app.update(Action::MenuDigit(4))), "l4");
        assert_eq!(app.menu, None);

        // Fourteen: 7 is at once, 1 waits for a second digit.
        let mut app = lessons_numbered(14);
        app.update(Action::OpenMenu);
        assert_eq!(started(app.update(Action::MenuDigit(7))), "l7");
        app.update(Action::OpenMenu);
        let start = app.now;
        assert_eq!(app.update(Action::MenuDigit(1)), None);
        assert_eq!(app.menu, Some(0), "lesson 1 is selected meanwhile");
        app.set_now(start + Duration::from_millis(300));
        assert_eq!(started(app.update(Action::MenuDigit(2))), "l12");
        // 1 and nothing more: lesson 1 once the wait is over.
        app.update(Action::OpenMenu);
        app.update(Action::MenuDigit(1));
        app.set_now(start + Duration::from_millis(400));
        let effect = app.update(Action::Tick);
        assert!(!matches!(effect, Some(Effect::Lesson(_))), "still waiting");
        assert!(app.menu.is_some());
        app.set_now(start + Duration::from_millis(300) + MENU_DIGIT_WAIT * 2);
        assert_eq!(started(app.update(Action::Tick)), "l1");
        // 1 then Enter: no need to wait.
        app.update(Action::OpenMenu);
        app.update(Action::MenuDigit(1));
        assert_eq!(started(app.update(Action::Inspect)), "l1");
        // A number with no lesson is said, and the menu stays.
        app.update(Action::OpenMenu);
        assert_eq!(app.update(Action::MenuDigit(0)), None);
        assert!(app.menu.is_some());
        assert!(app
            .notice
            .as_ref()
            .is_some_and(|(text, error)| *error && text.contains("no lesson 0")));
    }

    #[test]
    fn help_scrolls_to_its_end_and_no_further() {
        let mut app = app();
        app.update(Action::ToggleHelp);
        app.help_page = 20;
        let lines = crate::ui::keys::help_lines(false, Lang::En).len();
        assert!(lines > 20, "the help is longer than a small screen");
        app.update(Action::Down);
        assert_eq!(app.help_scroll, 1);
        assert_eq!(
            app.graph_selected, 0,
            "the keys scroll the help, not the graph"
        );
        app.update(Action::PageDown);
        app.update(Action::PageDown);
        assert_eq!(app.help_scroll, lines - 20, "the last line at the bottom");
        app.update(Action::ScrollUp);
        assert_eq!(app.help_scroll, lines - 23);
        app.update(Action::PageUp);
        app.update(Action::Up);
        assert_eq!(app.help_scroll, 0);
        // Opened again, it starts at the top.
        app.update(Action::PageDown);
        app.update(Action::ToggleHelp);
        app.update(Action::ToggleHelp);
        assert_eq!(app.help_scroll, 0);
    }

    #[test]
    fn a_form_walks_its_fields_both_ways_and_sets_flags() {
        let mut app = app();
        app.update(Action::OpenForm(FormKind::DeclareQueue));
        for c in "jobs".chars() {
            app.update(Action::FormInput(c));
        }
        app.update(Action::FormNextField);
        app.update(Action::FormInput('y'));
        app.update(Action::FormPrevField);
        app.update(Action::FormPrevField);
        assert_eq!(
            app.form.as_ref().unwrap().fields[app.form.as_ref().unwrap().active].label,
            "more arguments (k=v, ...)"
        );
        for c in "x-max-length=10".chars() {
            app.update(Action::FormInput(c));
        }
        assert_eq!(
            app.update(Action::FormSubmit),
            Some(Effect::Run(Command::DeclareQueue {
                name: "jobs".into(),
                durable: true,
                auto_delete: false,
                exclusive: false,
                arguments: vec![("x-max-length".into(), crate::ui::form::Value::Int(10))],
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
