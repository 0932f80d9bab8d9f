//! The message log pane's own state: which message is selected and the filter being typed
//! (`/`): a regex, and field terms in OpenStack words (`service:nova-compute`,
//! `method:build_and_run_instance`, `host:compute-1`, `kind:call|cast|reply|notification`)
//! that a message must all match. The messages themselves are the [`Model`]'s; this only chooses among them.
//!
//! It may not reach into the rest of the app.

use regex::Regex;

use crate::lesson::Lang;

use super::super::model::{LogEntry, Model};

/// What a field term of the filter looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The publishing connection's service (`nova-compute`).
    Service,
    /// The oslo.messaging method (a reply's: the call's it answers; a notification's: its
    /// event type).
    Method,
    /// The publishing service's host.
    Host,
    /// `call`, `cast`, `reply` or `notification`.
    Kind,
}

const FIELDS: [(&str, Field); 4] = [
    ("service", Field::Service),
    ("method", Field::Method),
    ("host", Field::Host),
    ("kind", Field::Kind),
];

/// `field:value`, or `field:a|b` for any of several values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    pub field: Field,
    pub values: Vec<String>,
}

impl Term {
    fn matches(&self, e: &LogEntry) -> bool {
        let value = match self.field {
            Field::Service => e.publisher.service.as_deref(),
            Field::Method => e.method.as_deref(),
            Field::Host => e.publisher.host.as_deref(),
            Field::Kind => e.kind,
        };
        value.is_some_and(|v| self.values.iter().any(|w| w == v))
    }
}

/// Splits a filter into its field terms and the regex made of the rest. A word shaped like
/// `name:value` whose name is all letters is a field term; an unknown name is an error.
pub fn parse_filter(filter: &str) -> Result<(Vec<Term>, String), String> {
    let mut terms = Vec::new();
    let mut rest = Vec::new();
    for word in filter.split(' ') {
        let field = word
            .split_once(':')
            .filter(|(name, _)| !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphabetic()));
        match field {
            Some((name, value)) => {
                let Some((_, field)) = FIELDS.iter().find(|(n, _)| *n == name) else {
                    let known: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
                    return Err(format!("unknown field {name} (try {})", known.join(", ")));
                };
                terms.push(Term {
                    field: *field,
                    values: value.split('|').map(str::to_string).collect(),
                });
            }
            None => rest.push(word),
        }
    }
    Ok((terms, rest.join(" ").trim().to_string()))
}

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
    /// The field terms of the last filter that was understood.
    pub terms: Vec<Term>,
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
            .filter(|e| self.terms.iter().all(|t| t.matches(e)))
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
            self.terms.clear();
            return;
        }
        let compiled = parse_filter(&self.filter).and_then(|(terms, regex)| {
            if regex.is_empty() {
                return Ok((terms, None));
            }
            let compile = || {
                let re = Regex::new(&regex)?;
                Ok::<_, regex::Error>((re, regex::bytes::Regex::new(&regex)?))
            };
            match compile() {
                Ok(both) => Ok((terms, Some(both))),
                Err(e) => Err(e.to_string().lines().last().unwrap_or("").to_string()),
            }
        });
        match compiled {
            Ok((terms, regexes)) => {
                self.terms = terms;
                (self.filter_regex, self.body_filter) = regexes.unzip();
                self.filter_error = None;
            }
            // Keep the last good filter while the user is still typing.
            Err(e) => self.filter_error = Some(e),
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
    fn field_terms_and_a_regex_combine() {
        let (terms, regex) = parse_filter("service:nova-compute kind:call|cast select").unwrap();
        assert_eq!(regex, "select");
        assert_eq!(
            terms,
            [
                Term {
                    field: Field::Service,
                    values: vec!["nova-compute".into()]
                },
                Term {
                    field: Field::Kind,
                    values: vec!["call".into(), "cast".into()]
                },
            ]
        );
        // A colon after anything but a plain word is the regex's.
        assert_eq!(
            parse_filter(r"\d:\d").unwrap(),
            (vec![], r"\d:\d".to_string())
        );
        let err = parse_filter("colour:red").unwrap_err();
        assert!(err.contains("unknown field colour"), "{err}");
        let mut log = MessageLog::default();
        for c in "service:nova-api colour:".chars() {
            log.type_char(c);
        }
        assert!(log.filter_error.is_some(), "an unknown field is an error");
        assert_eq!(
            log.terms.len(),
            1,
            "the last good filter stays: {:?}",
            log.terms
        );
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
