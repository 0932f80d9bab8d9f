//! The lesson player's state: which lesson and step, what the student predicted, and what the
//! broker did. It holds no connection: the steps run in a background task (see
//! [`super::lessons`]), and their outcomes come back as actions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::lesson::schema::Step;
use crate::lesson::{Lang, Lesson, RunError};

/// Why the lesson could not go on, in the words the lesson pane shows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LessonFailure {
    /// The runner failed: the broker refused an action, or could not be reached.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A step was asked for with no lesson open.
    #[error("no lesson is open")]
    NotOpen,
    /// This view has no broker of its own to run lessons on.
    #[error("lessons cannot run here")]
    Unavailable,
    /// A failure already put in words elsewhere.
    #[error("{0}")]
    Said(String),
}

impl From<&str> for LessonFailure {
    fn from(text: &str) -> LessonFailure {
        LessonFailure::Said(text.to_string())
    }
}

/// What the student is looking at in the current step.
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    /// The broker is being reset and the lesson replayed up to the current step.
    Preparing,
    /// The narration is shown; a prediction may be ticked. Next runs the step.
    Reading,
    /// The step's actions are running on the broker.
    Running,
    /// The step ran: its outcome is shown. Next goes to the following step.
    Ran(StepOutcome),
    /// The last step ran and the student moved on.
    Finished,
    /// The lesson could not go on (the broker refused an action, or the runner failed).
    Failed(String),
}

/// What one step did, as the lesson pane shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepOutcome {
    /// The queues the step's publishes reached.
    pub routed: Vec<String>,
    /// The predict choices that came true: the right ticks.
    pub truth: Vec<String>,
    /// Each expectation: its key, whether it held, and expected against actual.
    pub checks: Vec<Check>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub key: String,
    pub ok: bool,
    pub detail: String,
    /// The detail in Chinese (empty: say it in English).
    pub detail_zh: String,
}

/// Work for the background task that runs lessons.
#[derive(Clone, Debug, PartialEq)]
pub enum LessonRequest {
    /// Reset the broker, run the setup and the first `steps` steps, then report ready.
    Prepare { lesson: Arc<Lesson>, steps: usize },
    /// Run one step and report its outcome.
    Run { step: usize },
}

/// How long auto-play leaves each phase on screen at speed 1.
const AUTOPLAY_PAUSE: Duration = Duration::from_secs(6);

#[derive(Clone, Debug)]
pub struct Player {
    pub lesson: Arc<Lesson>,
    pub lang: Lang,
    pub step: usize,
    pub phase: Phase,
    /// Which of the current step's predict choices are ticked.
    pub ticked: Vec<bool>,
    pub autoplay: bool,
    /// When the phase last changed, for auto-play.
    pub since: Instant,
    /// The step number being typed after `J`, if any.
    pub jump: Option<String>,
    /// How many lines the pane is scrolled down (`[` `]`), for a step longer than the pane.
    pub scroll: u16,
}

impl Player {
    /// A player at the first step; the caller asks the runner to prepare it.
    pub fn new(lesson: Arc<Lesson>, lang: Lang, now: Instant) -> (Player, LessonRequest) {
        let mut player = Player {
            lesson,
            lang,
            step: 0,
            phase: Phase::Preparing,
            ticked: Vec::new(),
            autoplay: false,
            since: now,
            jump: None,
            scroll: 0,
        };
        let request = player.go_to(0, now);
        (player, request)
    }

    pub fn steps(&self) -> usize {
        self.lesson.steps.len()
    }

    pub fn current(&self) -> Option<&Step> {
        self.lesson.steps.get(self.step)
    }

    fn set_phase(&mut self, phase: Phase, now: Instant) {
        self.phase = phase;
        self.since = now;
    }

    /// Resets to the state before step `k` (exact: the broker is reset and steps before `k`
    /// run again) and shows step `k`.
    pub fn go_to(&mut self, k: usize, now: Instant) -> LessonRequest {
        self.step = k.min(self.steps().saturating_sub(1));
        self.ticked = vec![false; self.choices().len()];
        self.scroll = 0;
        self.set_phase(Phase::Preparing, now);
        LessonRequest::Prepare {
            lesson: self.lesson.clone(),
            steps: self.step,
        }
    }

    /// The predict choices of the current step (none without a prediction).
    pub fn choices(&self) -> &[String] {
        self.current()
            .and_then(|s| s.predict.as_ref())
            .map(|p| p.choices.as_slice())
            .unwrap_or(&[])
    }

    pub fn toggle(&mut self, choice: usize) {
        if self.phase == Phase::Reading {
            if let Some(t) = self.ticked.get_mut(choice) {
                *t = !*t;
            }
        }
    }

    /// Forward: run the step being read, or move on from one that ran.
    pub fn next(&mut self, now: Instant) -> Option<LessonRequest> {
        match &self.phase {
            Phase::Reading => {
                self.set_phase(Phase::Running, now);
                Some(LessonRequest::Run { step: self.step })
            }
            Phase::Ran(_) if self.step + 1 < self.steps() => {
                self.step += 1;
                self.ticked = vec![false; self.choices().len()];
                self.scroll = 0;
                self.set_phase(Phase::Reading, now);
                None
            }
            Phase::Ran(_) => {
                self.set_phase(Phase::Finished, now);
                None
            }
            _ => None,
        }
    }

    /// Goes to the step number typed after `J` (1-based, as the pane shows it).
    pub fn jump_go(&mut self, now: Instant) -> Option<LessonRequest> {
        let typed = self.jump.take()?;
        let number: usize = typed.parse().ok()?;
        (1..=self.steps())
            .contains(&number)
            .then(|| self.go_to(number - 1, now))
    }

    /// Back: the step before, replayed from a fresh broker; the first step starts over.
    pub fn back(&mut self, now: Instant) -> LessonRequest {
        let target = match self.phase {
            // A step that ran goes back to its own beginning.
            Phase::Ran(_) | Phase::Finished | Phase::Failed(_) => self.step,
            _ => self.step.saturating_sub(1),
        };
        self.go_to(target, now)
    }

    pub fn prepared(&mut self, result: Result<(), LessonFailure>, now: Instant) {
        match result {
            Ok(()) => self.set_phase(Phase::Reading, now),
            Err(why) => self.set_phase(Phase::Failed(why.to_string()), now),
        }
    }

    pub fn ran(&mut self, result: Result<StepOutcome, LessonFailure>, now: Instant) {
        match result {
            Ok(outcome) => self.set_phase(Phase::Ran(outcome), now),
            Err(why) => self.set_phase(Phase::Failed(why.to_string()), now),
        }
    }

    /// Whether the student's ticks were right, once the step ran (None without a prediction).
    pub fn prediction_right(&self) -> Option<bool> {
        let Phase::Ran(outcome) = &self.phase else {
            return None;
        };
        let predict = self.current()?.predict.as_ref()?;
        let ticked: Vec<&str> = predict
            .choices
            .iter()
            .zip(&self.ticked)
            .filter(|(_, t)| **t)
            .map(|(c, _)| c.as_str())
            .collect();
        Some(predict.is_right(&ticked, &outcome.truth))
    }

    /// Whether a student answered the current step's prediction: not under auto-play, where
    /// nobody ticks, so there is no answer to call right or wrong.
    pub fn answered(&self) -> bool {
        !self.autoplay
    }

    /// The current step's `explain`, once the step ran.
    pub fn explanation(&self) -> Option<&str> {
        match self.phase {
            Phase::Ran(_) => self.current()?.explain.as_ref().map(|t| t.get(self.lang)),
            _ => None,
        }
    }

    /// Auto-play: moves on once the current phase has been shown long enough.
    pub fn autoplay_due(&self, now: Instant, speed: f64) -> bool {
        let pause = AUTOPLAY_PAUSE.div_f64(speed.max(0.1));
        self.autoplay
            && matches!(self.phase, Phase::Reading | Phase::Ran(_))
            && now.duration_since(self.since) >= pause
    }
}
