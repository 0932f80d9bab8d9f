//! The message log pane's own state: which message is selected and the regex filter being
//! typed (`/`). The messages themselves are the [`Model`]'s; this only chooses among them.
//!
//! It may not reach into the rest of the app.

use regex::Regex;

use crate::lesson::Lang;

use super::super::model::{LogEntry, Model};

#[derive(Debug, Default)]
pub struct MessageLog {
    /// Index from the newest entry (0 = newest) among the filtered ones.
    pub selected: usize,
    /// The filter as typed.
    pub filter: String,
    /// The last filter that compiled, over the text of a message.
    pub filter_regex: Option<Regex>,
    /// The same filter over bodies, which need not be UTF-8.
    pub body_filter: Option<regex::bytes::Regex>,
    /// Why the filter as typed does not compile, while it does not.
    pub filter_error: Option<String>,
    /// Keys are the filter's text.
    pub typing: bool,
    /// The language the log's lines are shown in, which the filter reads them in too.
    pub lang: Lang,
}

impl MessageLog {
    /// Log entries that pass the filter, newest first.
    pub fn filtered<'m>(&self, model: &'m Model) -> Vec<&'m LogEntry> {
        model
            .log
            .iter()
            .rev()
            .filter(|e| match (&self.filter_regex, &self.body_filter) {
                (Some(re), Some(body)) => e.matches(re, body, self.lang),
                _ => true,
            })
            .collect()
    }

    /// The message selected.
    pub fn selected_message<'m>(&self, model: &'m Model) -> Option<&'m LogEntry> {
        self.filtered(model).get(self.selected).copied()
    }

    /// Moves the selection by `delta` messages (positive: older), within the filtered log.
    pub fn move_by(&mut self, model: &Model, delta: isize) {
        let n = self.filtered(model).len();
        if n > 0 {
            self.selected = (self.selected as isize + delta).clamp(0, n as isize - 1) as usize;
        }
    }

    /// Selects the message `offset` rows down from the newest, if there is one.
    pub fn select_row(&mut self, model: &Model, offset: usize) {
        if offset < self.filtered(model).len() {
            self.selected = offset;
        }
    }

    /// A message went into the log: the selected one stays in place as new ones arrive
    /// above it.
    pub fn arrived(&mut self) {
        if self.selected > 0 {
            self.selected += 1;
        }
    }

    /// One character more of the filter.
    pub fn type_char(&mut self, c: char) {
        self.filter.push(c);
        self.set_filter();
    }

    /// One character less of the filter.
    pub fn backspace(&mut self) {
        self.filter.pop();
        self.set_filter();
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
        self.selected = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_that_does_not_compile_keeps_the_last_good_one() {
        let mut log = MessageLog {
            selected: 3,
            ..MessageLog::default()
        };
        for c in "ord".chars() {
            log.type_char(c);
        }
        assert_eq!(log.selected, 0, "a new filter starts at the newest message");
        assert_eq!(log.filter_regex.as_ref().map(|r| r.as_str()), Some("ord"));
        log.type_char('(');
        assert!(log.filter_error.is_some());
        assert_eq!(log.filter_regex.as_ref().map(|r| r.as_str()), Some("ord"));
        log.backspace();
        assert!(log.filter_error.is_none());
        for _ in 0..3 {
            log.backspace();
        }
        assert!(log.filter_regex.is_none() && log.body_filter.is_none());
    }

    #[test]
    fn the_selected_message_stays_put_as_new_ones_arrive() {
        let mut log = MessageLog::default();
        log.arrived();
        assert_eq!(log.selected, 0, "the newest stays selected");
        log.selected = 2;
        log.arrived();
        assert_eq!(log.selected, 3);
    }
}
