//! Everything that can happen to the app, from the keyboard, the mouse, the clock or the
//! broker, as one enum. [`super::app::App::update`] is the only place that acts on it.

use std::sync::Arc;

use crate::broker::Snapshot;
use crate::events::Event;
use crate::lesson::Lesson;
use crate::ui::commands::CommandError;
use crate::ui::form::FormKind;
use crate::ui::player::{LessonFailure, StepOutcome};

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Quit,
    /// The clock: flights move, rates roll.
    Tick,
    FocusNext,
    FocusPrev,
    Up,
    Down,
    PageUp,
    PageDown,
    Left,
    Right,
    /// Enter: inspect what is selected.
    Inspect,
    /// Esc: close the help, the filter or the inspector.
    Back,
    TogglePause,
    Faster,
    Slower,
    /// A replayed trace: the next event now.
    StepForward,
    /// A replayed trace: undo the last event (and pause).
    StepBack,
    /// A replayed trace went back: start over from these events, without animating them.
    Rewound(Vec<Arc<Event>>),
    /// A replayed trace has played its last event and no more can come (true), or has
    /// stepped back from there (false).
    PlaybackEnded(bool),
    ToggleHelp,
    /// The graph takes the whole width (the lesson or inspector hides) until pressed again: a
    /// narrow screen beside a lesson shows every name whole this way.
    ToggleZoom,
    /// `o`: group the graph by OpenStack service and host, by node, or not.
    CycleGrouping,
    /// Show or hide the predeclared exchanges (the default exchange and `amq.*`).
    ToggleAllExchanges,
    NextVhost,
    /// `/`: start typing a regex to filter the message log.
    StartFilter,
    FilterInput(char),
    FilterBackspace,
    /// A mouse click at (column, row).
    Click(u16, u16),
    ScrollUp,
    ScrollDown,
    /// The mouse wheel over the inspector: scroll it by this many rows (negative is up).
    ScrollInspector(isize),
    /// From the broker.
    BrokerEvent(Arc<Event>),
    /// The event stream dropped this many events because the screen fell behind.
    Missed(u64),
    /// A fresh topology snapshot arrived.
    Topology(Snapshot),
    /// Open a form to act on the broker.
    OpenForm(FormKind),
    FormInput(char),
    FormBackspace,
    FormNextField,
    FormPrevField,
    FormSubmit,
    /// The answer to "are you sure?" before a delete, unbind or purge: yes or no.
    Confirm(bool),
    /// A digit typed in the lesson menu: picks the lesson with that number.
    MenuDigit(u32),
    /// Delete the selected exchange or queue.
    DeleteSelected,
    /// Purge the selected queue.
    PurgeSelected,
    /// Get one message from the selected queue.
    GetSelected,
    /// Presenter keys in classroom mode (a clicker sends space, arrows, PageUp/PageDown):
    /// step to the next or previous message and explain it.
    PresenterNext,
    PresenterBack,
    /// The screen was drawn: nothing on it is new until something changes again.
    Drawn,
    /// Reaching the source went wrong (Some, shown on the status line) or is fine again.
    SourceTrouble(Option<String>),
    /// What the broker answered to a command: Ok(what happened) or Err(why not).
    CommandDone(Result<String, CommandError>),
    /// The lessons found at start, and the files that would not load (`file:line:col: why`).
    LessonsLoaded {
        lessons: Vec<Arc<Lesson>>,
        errors: Vec<String>,
    },
    /// Open the lesson menu.
    OpenMenu,
    /// Start the lesson at this index of the menu.
    StartLesson(usize),
    /// Forward in the lesson: run the step being read, or go to the next one.
    LessonNext,
    /// Back in the lesson: the step before, replayed exactly.
    LessonBack,
    LessonRestart,
    /// Tick or untick the n-th predict choice.
    LessonToggle(usize),
    LessonAutoplay,
    /// `[` `]`: scroll the lesson pane, for a step longer than it.
    LessonScrollUp,
    LessonScrollDown,
    /// `J`: start typing the number of a step to go to.
    LessonJumpStart,
    LessonJumpInput(char),
    LessonJumpBackspace,
    /// Enter after the number: go to that step (replayed exactly).
    LessonJumpGo,
    /// Leave the lesson (the broker keeps what it has).
    LessonClose,
    /// The runner reset the broker and replayed up to the current step.
    LessonPrepared(Result<(), LessonFailure>),
    /// The runner ran the current step.
    LessonStepDone(Result<StepOutcome, LessonFailure>),
}

impl Action {
    /// Actions that come from the broker, the clock or background work, not from a key: they
    /// go on while an overlay (menu, "are you sure?") has the keyboard.
    pub fn is_from_the_world(&self) -> bool {
        matches!(
            self,
            Action::Tick
                | Action::BrokerEvent(_)
                | Action::Missed(_)
                | Action::Topology(_)
                | Action::CommandDone(_)
                | Action::SourceTrouble(_)
                | Action::LessonPrepared(_)
                | Action::LessonStepDone(_)
                | Action::LessonsLoaded { .. }
                | Action::Rewound(_)
                | Action::PlaybackEnded(_)
                | Action::Drawn
        )
    }
}
