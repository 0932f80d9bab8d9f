//! The message log: one line per published message, newest first, filtered by a regex (`/`).

use std::time::{SystemTime, UNIX_EPOCH};

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::graph::truncate;
use crate::events::PublishFate;
use crate::ui::app::{App, Focus};
use crate::ui::theme::Theme;
use crate::ui::words::tr;

/// `HH:MM:SS.mmm` (UTC) of a wall-clock time.
pub fn clock(at: SystemTime) -> String {
    let d = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let s = d.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_millis()
    )
}

/// Draws the message log.
pub fn render(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    let entries = app.filtered_log();
    let lang = app.options.lang;
    let messages = tr(lang, "messages", "消息");
    let mut title = format!(" {messages} {} ", entries.len());
    if app.log.typing || !app.log.filter.is_empty() {
        title = format!(
            " {messages} {}  {} /{}{} ",
            entries.len(),
            tr(lang, "filter", "过滤"),
            app.log.filter,
            if app.log.typing { "▏" } else { "" }
        );
    }
    if let Some(e) = &app.log.filter_error {
        title.push_str(&format!(
            "({}: {e}) ",
            tr(lang, "bad filter", "过滤条件有误")
        ));
    }
    if app.model.missed > 0 {
        title.push_str(&format!("[{} events missed] ", app.model.missed));
    }
    let focused = app.focus == Focus::Log;
    let block = super::pane_block(title, focused, theme);
    let inner = block.inner(area);
    block.render(area, buf);
    if entries.is_empty() {
        let hint = if app.log.filter.is_empty() {
            tr(
                lang,
                "No messages yet. Publish one from a client and watch it travel.",
                "还没有消息。从客户端发布一条，看它如何流转。",
            )
        } else {
            tr(
                lang,
                "No message matches the filter.",
                "没有消息匹配过滤条件。",
            )
        };
        buf.set_string(
            inner.x + 1,
            inner.y,
            truncate(hint, inner.width.saturating_sub(1) as usize),
            theme.dim(),
        );
        return;
    }
    let height = inner.height as usize;
    let first = app.log.selected.saturating_sub(height.saturating_sub(1));
    for (i, entry) in entries.iter().enumerate().skip(first).take(height) {
        let fate_style = match entry.fate {
            PublishFate::Routed => theme.good(),
            _ => theme.bad(),
        };
        let selected = i == app.log.selected && (focused || app.inspecting);
        // Dim grey turns into an unreadable grey block once the line is reversed.
        let clock_style = if selected {
            Style::default()
        } else {
            theme.dim()
        };
        let mut line = Line::from(vec![
            Span::styled(clock(entry.at), clock_style),
            Span::raw(" "),
            Span::styled(
                truncate(
                    &entry.summary(app.options.lang),
                    inner.width.saturating_sub(14) as usize,
                ),
                fate_style,
            ),
        ]);
        if selected {
            line = line.style(theme.selected());
        }
        buf.set_line(inner.x, inner.y + (i - first) as u16, &line, inner.width);
    }
}
