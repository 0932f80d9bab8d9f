//! Text from strangers on its way to a terminal. Queue, exchange and user names, message fields
//! and lesson files may hold control characters: ESC or CSI begin sequences that clear the
//! screen, set the window title or (OSC 52) write the clipboard. Every command-line path that
//! prints such text passes it through [`printable`] (or [`printable_lines`] for a message of
//! several lines we composed), which shows each control character as an escape instead. The
//! view needs none of this: ratatui's buffer drops control characters as it draws.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether a character must not reach a terminal as it is: C0 and C1 controls, DEL, and the
/// bidirectional overrides that make text read differently from how it is stored.
pub fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every [`hidden`] character (newlines and tabs too) written as `\u{1b}`.
pub fn printable(text: &str) -> Cow<'_, str> {
    escape(text, |_| false)
}

/// As [`printable`], but newlines stay: for messages of several lines.
pub fn printable_lines(text: &str) -> Cow<'_, str> {
    escape(text, |c| c == '\n')
}

fn escape(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| hidden(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hidden(c) && !keep(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// JSON text (from serde_json) safe for a terminal: serde_json escapes C0 controls in strings
/// (those left are its own line breaks) but writes DEL, C1 controls and bidirectional overrides
/// raw. Outside strings JSON is ASCII, so every such character is inside a string, where
/// `\u00XX` means the same character.
pub fn json(text: String) -> String {
    let escaped = |c: char| hidden(c) && c >= '\u{7f}';
    if !text.chars().any(escaped) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escaped(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_run() {
        let osc52 = "q\u{1b}]52;c;aGk=\u{7}";
        assert_eq!(printable(osc52), "q\\u{1b}]52;c;aGk=\\u{7}");
        assert_eq!(printable("csi\u{9b}2J"), "csi\\u{9b}2J");
        assert_eq!(printable("a\nb"), "a\\u{a}b");
        assert_eq!(printable_lines("a\nb\u{1b}"), "a\nb\\u{1b}");
        assert_eq!(printable("队列.orders"), "队列.orders");
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_stays_json() {
        let text = serde_json::to_string_pretty(&["x\u{9b}\u{7f}\u{202e}\u{1b}y"]).unwrap();
        let safe = json(text);
        assert_eq!(safe, "[\n  \"x\\u009b\\u007f\\u202e\\u001by\"\n]");
        let back: Vec<String> = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, ["x\u{9b}\u{7f}\u{202e}\u{1b}y"]);
    }
}
