//! Wrapping and cutting text by display width for both English and Chinese: English breaks
//! between words, Chinese between any two characters (it has no spaces), and closing
//! punctuation such as `，` or `。` never starts a line. A cut ends with `…`.

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Characters that must not begin a line.
const NO_LINE_START: &str = "，。、；：？！）》」』】,.;:?!)";

/// An unbreakable piece of text, in one style or, where punctuation closes a highlighted
/// name (`` `orders`. ``), in several.
type Piece = Vec<(String, Style)>;

/// Splits styled text into pieces that may not be broken: an ASCII word, one space, or one wide
/// character with any closing punctuation after it.
fn pieces(spans: &[(String, Style)]) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::new();
    for (text, style) in spans {
        let mut word = String::new();
        for c in text.chars() {
            let glue = NO_LINE_START.contains(c) && (!word.is_empty() || !out.is_empty());
            if c.is_ascii() && !c.is_whitespace() && !glue {
                word.push(c);
                continue;
            }
            if glue {
                // Hang the punctuation on what came before, in its own style.
                if word.is_empty() {
                    if let Some(last) = out.last_mut() {
                        match last.last_mut() {
                            Some((text, s)) if s == style => text.push(c),
                            _ => last.push((c.to_string(), *style)),
                        }
                    }
                } else {
                    word.push(c);
                }
                continue;
            }
            if !word.is_empty() {
                out.push(vec![(std::mem::take(&mut word), *style)]);
            }
            out.push(vec![(c.to_string(), *style)]);
        }
        if !word.is_empty() {
            out.push(vec![(word, *style)]);
        }
    }
    out
}

/// Wraps styled text to `width` columns.
pub fn wrap<'a>(spans: &[(String, Style)], width: usize) -> Vec<Line<'a>> {
    let width = width.max(1);
    let mut lines: Vec<Line> = Vec::new();
    let mut line: Vec<Span> = Vec::new();
    let mut used = 0;
    for piece in pieces(spans) {
        let w: usize = piece.iter().map(|(text, _)| text.width()).sum();
        let is_space = (piece.iter()).all(|(text, _)| text.chars().all(char::is_whitespace));
        if used + w > width && used > 0 {
            lines.push(Line::from(std::mem::take(&mut line)));
            used = 0;
            if is_space {
                continue;
            }
        }
        if w > width {
            // A word longer than the line: cut it by characters.
            for (text, style) in piece {
                let mut part = String::new();
                for c in text.chars() {
                    let cw = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
                    if used + part.width() + cw > width {
                        line.push(Span::styled(std::mem::take(&mut part), style));
                        lines.push(Line::from(std::mem::take(&mut line)));
                        used = 0;
                    }
                    part.push(c);
                }
                used += part.width();
                line.push(Span::styled(part, style));
            }
            continue;
        }
        used += w;
        line.extend(
            piece
                .into_iter()
                .map(|(text, style)| Span::styled(text, style)),
        );
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(Line::from(line));
    }
    lines
}

/// Cuts a string to a display width, marking the cut with `…`.
pub fn truncate(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// Cuts a line of words to a display width after a whole word, marking the cut with `…`; a
/// first word too long for the width is cut by characters (see [`truncate`]).
pub fn truncate_words(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let room = width.saturating_sub(1);
    let mut end = 0;
    for (at, c) in text.char_indices() {
        if text[..at].width() > room {
            break;
        }
        if c == ' ' && !text[..at].trim_end().is_empty() {
            end = text[..at].trim_end().len();
        }
    }
    match end {
        0 => truncate(text, width),
        _ => format!("{}…", &text[..end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
            .collect()
    }

    fn plain(text: &str) -> Vec<(String, Style)> {
        vec![(text.to_string(), Style::default())]
    }

    #[test]
    fn a_cut_keeps_whole_characters_and_ends_with_an_ellipsis() {
        assert_eq!(truncate("主题交换器把路由键", 9), "主题交换…");
        assert_eq!(truncate("topic exchange", 8), "topic e…");
        assert_eq!(truncate("topic", 8), "topic");
    }

    #[test]
    fn a_cut_between_words_keeps_them_whole() {
        assert_eq!(
            truncate_words("n next  N back  J go to step", 15),
            "n next  N back…"
        );
        assert_eq!(
            truncate_words("n next  N back  J go to step", 14),
            "n next  N…"
        );
        assert_eq!(truncate_words("scheduler.controller", 10), "scheduler…");
        assert_eq!(truncate_words("n next", 6), "n next");
    }

    #[test]
    fn english_breaks_between_words() {
        let lines = wrap(&plain("a topic exchange splits keys"), 12);
        assert_eq!(texts(&lines), ["a topic ", "exchange ", "splits keys"]);
    }

    #[test]
    fn chinese_fills_the_line_by_display_width() {
        // Each character is two columns wide: five fit in ten columns.
        let lines = wrap(&plain("主题交换器把路由键切成单词"), 10);
        assert_eq!(texts(&lines), ["主题交换器", "把路由键切", "成单词"]);
        for line in &lines {
            assert!(line.width() <= 10);
        }
    }

    #[test]
    fn closing_punctuation_never_starts_a_line() {
        let lines = wrap(&plain("队列名字，然后"), 8);
        assert_eq!(texts(&lines), ["队列名", "字，然后"]);
    }

    #[test]
    fn a_full_stop_after_a_highlighted_name_keeps_its_own_style() {
        let name = Style::new().fg(ratatui::style::Color::Cyan);
        let spans = vec![
            ("into ".to_string(), Style::default()),
            ("orders".to_string(), name),
            (". Then".to_string(), Style::default()),
        ];
        let lines = wrap(&spans, 12);
        // The stop stays on the name's line, unhighlighted.
        assert_eq!(texts(&lines), ["into orders.", "Then"]);
        let styled: Vec<(&str, Style)> = (lines[0].spans.iter())
            .map(|s| (s.content.as_ref(), s.style))
            .collect();
        assert_eq!(
            styled,
            [
                ("into", Style::default()),
                (" ", Style::default()),
                ("orders", name),
                (".", Style::default())
            ]
        );
    }

    #[test]
    fn mixed_text_keeps_names_whole() {
        let lines = wrap(&plain("队列 scheduler.controller 和"), 16);
        assert_eq!(texts(&lines), ["队列 ", "scheduler.contro", "ller 和"]);
    }
}
