//! What opens over the panes and takes the keyboard while open: the help, the lesson menu, a
//! form to act on the broker, and the "are you sure?" before a command that loses something.
//! Only one answers the keys at a time: the question first, then the form, then the menu.
//!
//! It may not reach into the rest of the app: the app hands it what it needs (the lessons,
//! the clock, the help's length).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::action::Action;
use super::super::form::{Confirm, Form};
use crate::lesson::Lesson;

/// How long the lesson menu waits for a second digit when the first could begin a longer number.
pub const MENU_DIGIT_WAIT: Duration = Duration::from_millis(800);

/// What may be open over the panes: the lesson menu, a form, a delete, unbind or purge
/// waiting for a yes, and the key help (`?`).
#[derive(Debug, Default)]
pub struct Overlays {
    pub menu: Option<LessonMenu>,
    pub form: Option<Form>,
    pub confirm: Option<Confirm>,
    pub help: Help,
}

/// The key help, scrolled by lines and by pages.
#[derive(Debug, Default)]
pub struct Help {
    pub shown: bool,
    /// The first line shown.
    pub scroll: usize,
    /// How many lines fit on the last frame drawn.
    pub page: usize,
}

impl Help {
    pub fn toggle(&mut self) {
        self.shown = !self.shown;
        self.scroll = 0;
    }

    /// The rows an action scrolls the open help by (0: the action is not for the help).
    pub fn rows_for(&self, action: &Action) -> isize {
        let page = self.page.max(1) as isize;
        match action {
            Action::Up => -1,
            Action::Down => 1,
            // A clicker's keys page the help in classroom mode too.
            Action::PageUp | Action::PresenterBack => -page,
            Action::PageDown | Action::PresenterNext => page,
            Action::ScrollUp => -3,
            Action::ScrollDown => 3,
            _ => 0,
        }
    }

    /// Scrolls by `rows`, keeping the last page of `lines` in view.
    pub fn scroll_by(&mut self, rows: isize, lines: usize) {
        let last = lines.saturating_sub(self.page.max(1));
        self.scroll = (self.scroll as isize + rows).clamp(0, last as isize) as usize;
    }
}

/// The lesson menu: the row selected, and a lesson number being typed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LessonMenu {
    pub selected: usize,
    /// The digits typed so far, and when the last came.
    pub number: Option<(String, Instant)>,
}

/// What a digit typed in the menu asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum MenuDigit {
    /// Start the lesson at this row.
    Start(usize),
    /// Wait for another digit: a longer number could begin with these.
    Wait,
    /// No lesson has this number.
    NoLesson(String),
}

impl LessonMenu {
    pub fn up(&mut self) {
        self.selected = self.selected.saturating_sub(1);
    }

    pub fn down(&mut self, lessons: usize) {
        self.selected = (self.selected + 1).min(lessons.saturating_sub(1));
    }

    /// A digit. It starts the lesson with that number at once, unless a longer number could
    /// begin with what is typed (1 when there is a 12): then it selects it and waits
    /// [`MENU_DIGIT_WAIT`] for another digit, or Enter.
    pub fn digit(&mut self, d: u32, lessons: &[Arc<Lesson>], now: Instant) -> MenuDigit {
        let pending = self
            .number
            .take()
            .filter(|(_, at)| now.duration_since(*at) < MENU_DIGIT_WAIT)
            .map(|(typed, _)| typed);
        let mut typed = format!("{}{d}", pending.unwrap_or_default());
        let begins = |typed: &str| {
            lessons
                .iter()
                .any(|l| l.order.to_string().starts_with(typed))
        };
        // A digit that continues no number starts a new one.
        if !begins(&typed) {
            typed = d.to_string();
        }
        let longer = lessons.iter().any(|l| {
            let number = l.order.to_string();
            number.len() > typed.len() && number.starts_with(&typed)
        });
        let exact = lesson_numbered(lessons, &typed);
        if let Some(i) = exact {
            self.selected = i;
        }
        match (exact, longer) {
            (Some(i), false) => MenuDigit::Start(i),
            (_, true) => {
                self.number = Some((typed, now));
                MenuDigit::Wait
            }
            (None, false) => MenuDigit::NoLesson(typed),
        }
    }

    /// The clock: a number typed whose wait for more digits is over names the lesson to start.
    pub fn number_due(&mut self, lessons: &[Arc<Lesson>], now: Instant) -> Option<usize> {
        let due = self
            .number
            .as_ref()
            .is_some_and(|(_, at)| now.duration_since(*at) >= MENU_DIGIT_WAIT);
        if !due {
            return None;
        }
        let (typed, _) = self.number.take()?;
        lesson_numbered(lessons, &typed)
    }
}

/// The menu row of the lesson with this number (the number the menu shows).
fn lesson_numbered(lessons: &[Arc<Lesson>], typed: &str) -> Option<usize> {
    let n: u32 = typed.parse().ok()?;
    lessons.iter().position(|l| l.order == n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_scrolls_no_further_than_its_last_page() {
        let mut help = Help {
            shown: true,
            scroll: 0,
            page: 10,
        };
        assert_eq!(help.rows_for(&Action::PageDown), 10);
        assert_eq!(help.rows_for(&Action::Quit), 0);
        help.scroll_by(100, 25);
        assert_eq!(help.scroll, 15);
        help.scroll_by(-100, 25);
        assert_eq!(help.scroll, 0);
        help.scroll = 4;
        help.toggle();
        assert_eq!((help.shown, help.scroll), (false, 0));
    }
}
