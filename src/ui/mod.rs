//! The terminal view. It reads only a topology snapshot and the broker event stream, so the
//! same screens serve the embedded broker, a remote RabbitMQ and a replayed trace.
//!
//! Shape: [`action::Action`] is everything that can happen; [`app::App::update`] applies one
//! with no I/O; this module's loop turns keys, mouse, the clock and broker events into actions
//! and draws at most ~30 frames a second, only when something changed.
//!
//! - [`app`]: the state and `update()`, one component per part of the screen.
//! - [`panes`]: one widget per screen region.
//! - [`layout`]: the graph laid out in rows and lanes, before anything is drawn.
//! - [`model`]: what the screen knows of the broker (topology, messages, rates).
//! - [`keys`]: keys to actions, and the help that lists them.
//! - [`commands`], [`form`]: acting on the embedded broker; [`player`], [`lessons`]: a lesson
//!   played beside the graph and the task that runs it.
//!
//! Only this file talks to a [`Source`] (its snapshot, its events, a replay's
//! [`crate::source::Playback`]); everything below it sees actions and the model. The view
//! imports lessons through `crate::lesson`'s public names only, never its submodules.

pub mod action;
pub mod app;
pub mod commands;
mod fatal;
pub mod form;
pub mod history;
pub mod keys;
pub mod layout;
pub mod lessons;
pub mod model;
pub mod panes;
pub mod player;
pub mod text;
pub mod theme;
pub mod why;
pub mod words;

use std::sync::Arc;
use std::time::{Duration, Instant};

use color_eyre::eyre::Result;
use crossterm::event::{Event as TermEvent, EventStream, MouseButton, MouseEventKind};
use futures_util::StreamExt;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::Frame;

use crate::events::Received;
use crate::source::Source;
use action::Action;
use app::{App, Effect, ViewOptions};
use lessons::LessonDriver;
use panes::graph::GraphPane;
use panes::help::HelpPane;
use panes::inspector::InspectorPane;
use theme::Theme;

/// At most this many broker events are applied per frame; the rest wait for the next one, so
/// keys stay responsive under any load.
const EVENTS_PER_FRAME: usize = 20_000;
const FRAME: Duration = Duration::from_millis(33);
/// How often the view reads a remote source's latest topology and counters.
const REMOTE_READ_EVERY: Duration = Duration::from_secs(1);
/// The narrowest side pane a lesson's narration, or the inspector, still reads well in; the
/// graph may take the rest of the side pane's share when it needs it to draw its names whole.
const LESSON_READS: u16 = 51;
const INSPECTOR_READS: u16 = 51;

/// Draws the whole screen.
///
/// ```text
/// ┌ status: broker address, vhost, msg/s, sparkline ──────────────────┐
/// ├ graph: exchanges → bindings → queues ──────┬ inspector ───────────┤
/// │                                            │ (lesson: narration,  │
/// │                                            │  prediction, checks) │
/// │                                            ├ inspector ───────────┤
/// │                                            │ selection details,   │
/// │                                            │ why it went there    │
/// ├ message log (newest first, / filters) ─────┴──────────────────────┤
/// └───────────────────────────────────────────────────────────────────┘
/// ```
pub fn render(frame: &mut Frame, app: &mut App) {
    let theme = Theme {
        monochrome: app.options.monochrome,
        high_contrast: app.options.classroom,
    };
    let area = frame.area();
    // Classroom mode: a big title over everything, readable from the back of the room.
    let area = if app.options.classroom && area.height >= 30 {
        let [title, rest] =
            Layout::vertical([Constraint::Length(4), Constraint::Fill(1)]).areas(area);
        frame.render_widget(
            tui_big_text::BigText::builder()
                .pixel_size(tui_big_text::PixelSize::Quadrant)
                .style(theme.title())
                .lines(vec!["rabbitscope".into()])
                .centered()
                .build(),
            title,
        );
        rest
    } else {
        area
    };
    let log_height = if area.height >= 30 {
        area.height * 3 / 10
    } else {
        (area.height / 3).max(4)
    };
    let [status, main, log] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(log_height),
    ])
    .areas(area);
    // Narrow screens give the graph the room; wide ones give the inspector more.
    // A lesson's narration needs room to be read: half the width, up to 80 columns; from 140
    // columns on, two fifths, so the graph has the room for senders and consumers too.
    let (share, widest) = if app.player.is_some() {
        let half = main.width / 2;
        (
            if main.width >= 140 {
                main.width * 2 / 5
            } else {
                half
            },
            80,
        )
    } else if main.width < 120 {
        (main.width / 3, 64)
    } else {
        (main.width * 2 / 5, 64)
    };
    let split = |app: &App| {
        let inspector_width = if app.graph.zoomed {
            0
        } else {
            let share = share.clamp(24.min(main.width), widest);
            // The graph may take what it needs to draw everything whole, as long as the side
            // pane keeps the room its text reads in.
            let graph_needs = panes::graph::whole_width(app) + 2;
            let reads = if app.player.is_some() {
                LESSON_READS
            } else {
                INSPECTOR_READS
            };
            share.min(main.width.saturating_sub(graph_needs).max(reads))
        };
        let [graph, right] =
            Layout::horizontal([Constraint::Fill(1), Constraint::Length(inspector_width)])
                .areas(main);
        // Exchanges go on rows of their own when the graph pane is too narrow for names side
        // by side.
        let stacked = !panes::graph::side_by_side_fits(app, graph.width.saturating_sub(2));
        (graph, right, stacked)
    };
    let (mut graph, mut right, mut stacked) = split(app);
    // What the graph needs is measured on its layout: laid out anew, it is measured again.
    if stacked != app.graph.layout.stacked {
        app.fit_graph(stacked);
        (graph, right, stacked) = split(app);
    }
    // In a lesson the narration has the right column; inspecting something (Enter) gives the
    // inspector its lower half.
    let (lesson, inspector) = match (&app.player, app.inspecting) {
        _ if app.graph.zoomed => (None, Rect::default()),
        (Some(_), true) => {
            let [lesson, inspector] =
                Layout::vertical([Constraint::Percentage(50), Constraint::Fill(1)]).areas(right);
            (Some(lesson), inspector)
        }
        (Some(_), false) => (Some(right), Rect::default()),
        (None, _) => (None, right),
    };
    // The help scrolls by whole pages of what fits this frame.
    let help_page = panes::help::help_area(area, app.options.classroom).1;
    let areas = app::PaneAreas {
        graph,
        log,
        inspector,
    };
    app.measured(areas, stacked, help_page);
    panes::inspector::fit_scroll(app, inspector, theme);
    let app = &*app;
    panes::status::render(app, theme, status, frame.buffer_mut());
    frame.render_widget(&GraphPane { app, theme }, graph);
    if !inspector.is_empty() {
        frame.render_widget(&InspectorPane { app, theme }, inspector);
    }
    if let (Some(player), Some(area)) = (&app.player, lesson) {
        frame.render_widget(&panes::lesson::LessonPane { player, theme }, area);
    }
    panes::log::render(app, theme, log, frame.buffer_mut());
    if app.overlays.menu.is_some() {
        panes::menu::render(app, theme, area, frame.buffer_mut());
    }
    let lang = app.options.lang;
    if let Some(form) = &app.overlays.form {
        panes::form::render_form(form, theme, lang, area, frame.buffer_mut());
    }
    if let Some(confirm) = &app.overlays.confirm {
        panes::form::render_confirm(confirm, theme, lang, area, frame.buffer_mut());
    }
    if app.overlays.help.shown {
        frame.render_widget(
            &HelpPane {
                theme,
                classroom: app.options.classroom,
                lang,
                scroll: app.overlays.help.scroll,
            },
            area,
        );
    }
}

/// Maps a terminal event to an action.
fn action_for(app: &App, event: TermEvent) -> Option<Action> {
    match event {
        TermEvent::Key(key) if key.is_press() => {
            if app.overlays.confirm.is_some() {
                keys::confirm_action_for(key)
            } else if app.overlays.form.is_some() {
                keys::form_action_for(key)
            } else if app.jumping() {
                keys::jump_action_for(key)
            } else if app.wants_text() {
                keys::filter_action_for(key)
            } else if app.overlays.menu.is_some() {
                keys::menu_action_for(key, app.options.classroom)
            } else {
                keys::action_for(key, app.options.classroom)
            }
        }
        TermEvent::Mouse(mouse) => match mouse.kind {
            MouseEventKind::Down(MouseButton::Left) => Some(Action::Click(mouse.column, mouse.row)),
            // The wheel scrolls the inspector when over it, else moves the focused selection.
            MouseEventKind::ScrollUp | MouseEventKind::ScrollDown
                if app
                    .areas
                    .inspector
                    .contains(ratatui::layout::Position::new(mouse.column, mouse.row)) =>
            {
                let rows = if mouse.kind == MouseEventKind::ScrollUp {
                    -3
                } else {
                    3
                };
                Some(Action::ScrollInspector(rows))
            }
            MouseEventKind::ScrollUp => Some(Action::ScrollUp),
            MouseEventKind::ScrollDown => Some(Action::ScrollDown),
            _ => None,
        },
        TermEvent::Resize(..) => Some(Action::Tick),
        _ => None,
    }
}

/// Runs the view on `source` until the user quits or a stop signal arrives (SIGTERM, SIGINT,
/// SIGHUP when the terminal closes, SIGQUIT; see [`crate::stop`]). The terminal is restored
/// on every way out, panics, aborts and crashes included.
pub async fn run(
    source: Arc<dyn Source>,
    options: ViewOptions,
    lessons: LessonSetup,
) -> Result<()> {
    // Mouse capture is ours to undo; ratatui's own hook restores the rest.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableMouseCapture);
        previous(info);
    }));
    // Aborts and crashes skip all of that: handlers for those signals restore the terminal.
    fatal::arm();
    let mut terminal = ratatui::init();
    crossterm::execute!(std::io::stdout(), crossterm::event::EnableMouseCapture)?;
    let result = event_loop(&mut terminal, source, options, lessons).await;
    if terminal_gone() {
        // Closed under us (SIGHUP): every later write to it would fail, and a failed
        // `eprintln!` panics, inside a panic hook even, which aborts the process before it
        // has cleaned up (turned tracing off). What is still written goes nowhere instead.
        detach_from_terminal();
    }
    let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableMouseCapture);
    ratatui::restore();
    fatal::disarm();
    result
}

/// Whether the terminal on stdin was hung up (its window closed): it then answers nothing.
fn terminal_gone() -> bool {
    // SAFETY: tcgetattr writes into the termios we own; any fd is safe to ask.
    unsafe {
        let mut settings: libc::termios = std::mem::zeroed();
        libc::tcgetattr(libc::STDIN_FILENO, &mut settings) != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EIO)
    }
}

/// Points stdin, stdout and stderr at /dev/null.
fn detach_from_terminal() {
    // SAFETY: open and dup2 on descriptors this process owns; a failure leaves them as they
    // were.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in [libc::STDIN_FILENO, libc::STDOUT_FILENO, libc::STDERR_FILENO] {
                libc::dup2(null, fd);
            }
            if null > libc::STDERR_FILENO {
                libc::close(null);
            }
        }
    }
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    source: Arc<dyn Source>,
    options: ViewOptions,
    lessons: LessonSetup,
) -> Result<()> {
    let stop = crate::stop::stop_signal()?;
    tokio::pin!(stop);
    let mut events = source.subscribe();
    let mut input = EventStream::new();
    let mut clock = tokio::time::interval(FRAME);
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Background work (the lesson runner) reports back as actions on this channel.
    let (actions, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let broker = source.broker();
    let remote = broker.is_none();
    let kind = source.kind();
    let mut last_read = Instant::now();
    let mut effects = Effects {
        source: source.clone(),
        session: broker
            .clone()
            .map(|b| commands::Session::new(b).speaking(options.lang)),
        runner: match (lessons.runtime, broker, kind.amqp_address()) {
            (Some(runtime), Some(broker), Some(address)) => {
                Some(LessonDriver::spawn(&runtime, broker, address, actions))
            }
            _ => None,
        },
    };
    let mut app = App::watching(kind, &source.vhost(), options);
    app.behaves_as = source.behaves_as();
    app.update(Action::Topology(source.snapshot()));
    let found = !lessons.lessons.is_empty() || !lessons.errors.is_empty();
    app.update(Action::LessonsLoaded {
        lessons: lessons.lessons,
        errors: lessons.errors,
    });
    let first = match lessons.start {
        Some(i) => Action::StartLesson(i),
        None if found => Action::OpenMenu,
        None => Action::Tick,
    };
    let effect = app.update(first);
    effects.perform(effect, &mut app);
    loop {
        tokio::select! {
            event = input.next() => {
                let Some(Ok(event)) = event else { break };
                let Some(action) = action_for(&app, event) else { continue };
                app.set_now(Instant::now());
                let effect = app.update(action);
                // A replayed trace keeps to the view's pause and speed.
                if let Some(playback) = source.playback() {
                    playback.follow_view(app.playback.paused, app.playback.speed);
                }
                if effects.perform(effect, &mut app) {
                    break;
                }
                // A key is drawn at once, not at the next frame.
                terminal.draw(|f| render(f, &mut app))?;
                app.update(Action::Drawn);
            }
            Some(action) = reports.recv() => {
                app.set_now(Instant::now());
                let effect = app.update(action);
                effects.perform(effect, &mut app);
            }
            _ = clock.tick() => {
                let playback = source.playback();
                if let Some(history) = playback.and_then(|p| p.take_rewind()) {
                    // Whatever was still queued came before the rewind.
                    events = source.subscribe();
                    let effect = app.update(Action::Rewound(history));
                    effects.perform(effect, &mut app);
                }
                for _ in 0..EVENTS_PER_FRAME {
                    match events.try_recv() {
                        Some(Received::Event(e)) => { app.update(Action::BrokerEvent(e)); }
                        Some(Received::Missed(n)) => { app.update(Action::Missed(n)); }
                        Some(Received::Closed) | None => break,
                    }
                }
                app.set_now(Instant::now());
                let ended = playback.is_some_and(|p| p.finished());
                if ended != app.playback.ended {
                    app.update(Action::PlaybackEnded(ended));
                }
                let trouble = source.trouble();
                if trouble != app.trouble {
                    app.update(Action::SourceTrouble(trouble));
                }
                let effect = app.update(Action::Tick);
                effects.perform(effect, &mut app);
                // A remote source's counters change without events: read its latest picture
                // (a copy, no network) every second.
                if remote && last_read.elapsed() >= REMOTE_READ_EVERY {
                    last_read = Instant::now();
                    effects.perform(Some(Effect::RefreshTopology), &mut app);
                }
                if app.needs_redraw() {
                    terminal.draw(|f| render(f, &mut app))?;
                    app.update(Action::Drawn);
                }
            }
            _ = &mut stop => break,
        }
    }
    Ok(())
}

/// What the view needs for lessons: the lessons found, the files that would not load, the one
/// to open at once (`rabbitscope learn ID`), and a runtime for the runner (none: no lessons run).
#[derive(Default)]
pub struct LessonSetup {
    pub lessons: Vec<Arc<crate::lesson::Lesson>>,
    pub errors: Vec<String>,
    pub start: Option<usize>,
    pub runtime: Option<tokio::runtime::Handle>,
}

/// Carries out what `update()` asked for.
struct Effects {
    source: Arc<dyn Source>,
    /// Acting on the broker needs an embedded one.
    session: Option<commands::Session>,
    runner: Option<LessonDriver>,
}

impl Effects {
    /// Returns true when the view should quit.
    fn perform(&mut self, effect: Option<Effect>, app: &mut App) -> bool {
        match effect {
            Some(Effect::Quit) => return true,
            Some(Effect::RefreshTopology) => {
                app.update(Action::Topology(self.source.snapshot()));
                // A lesson may have changed it (`behave_as`).
                let behaves_as = self.source.behaves_as();
                if behaves_as != app.behaves_as {
                    app.behaves_as = behaves_as;
                    app.dirty = true;
                }
            }
            Some(Effect::StepForward) => {
                if let Some(playback) = self.source.playback() {
                    playback.step_forward();
                }
            }
            Some(Effect::StepBack) => {
                if let Some(playback) = self.source.playback() {
                    playback.step_back();
                }
            }
            Some(Effect::Run(command)) => {
                let vhost = app.model.vhost.clone();
                let done = match &mut self.session {
                    Some(session) => session.run(&vhost, command),
                    None => Err(commands::CommandError::WatchOnly),
                };
                app.update(Action::CommandDone(done));
                app.update(Action::Topology(self.source.snapshot()));
            }
            Some(Effect::Lesson(request)) => match &self.runner {
                Some(runner) => runner.send(request),
                None => {
                    app.update(Action::LessonPrepared(Err(
                        player::LessonFailure::Unavailable,
                    )));
                }
            },
            None => {}
        }
        false
    }
}

/// A frame rendered into a test backend (for tests and benchmarks).
pub fn render_to_buffer(app: &mut App, width: u16, height: u16) -> ratatui::buffer::Buffer {
    let backend = ratatui::backend::TestBackend::new(width, height);
    let mut terminal = ratatui::Terminal::new(backend).expect("test backend");
    terminal.draw(|f| render(f, app)).expect("draw");
    terminal.backend().buffer().clone()
}
