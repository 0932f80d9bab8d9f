//! The lesson menu: every lesson found, in order, over the live view. Files that would not
//! load are listed under it with their `file:line:col` reason.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Widget};
use unicode_width::UnicodeWidthStr;

use crate::ui::app::App;
use crate::ui::text::truncate;
use crate::ui::theme::Theme;
use crate::ui::words::tr;

/// Draws the lesson menu over `area`.
pub fn render(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    let lang = app.options.lang;
    let selected = app.menu_row().unwrap_or(0);
    let width = area.width.saturating_sub(8).min(100);
    // One line per lesson: a long summary is cut at the edge rather than wrapped, so the
    // list keeps its shape, and the cut is marked.
    let inside_width = usize::from(width.saturating_sub(2));
    let mut lines = Vec::new();
    for (i, lesson) in app.lessons.iter().enumerate() {
        let style = if i == selected {
            theme.selected()
        } else {
            ratatui::style::Style::default()
        };
        let title = format!("{:>2}  {}", lesson.order, lesson.title.get(lang));
        let room = inside_width.saturating_sub(title.width());
        let mut spans = vec![Span::styled(title, style)];
        if let Some(summary) = &lesson.summary {
            spans.push(Span::styled(
                truncate(&format!("  {}", summary.get(lang)), room),
                theme.dim(),
            ));
        }
        lines.push(Line::from(spans));
    }
    for error in &app.lesson_errors {
        lines.push(Line::styled(error.clone(), theme.bad()));
    }
    let keys = Line::styled(
        tr(
            lang,
            "number or ↑↓ Enter: start   Esc explore freely (L opens this again)",
            "数字或 ↑↓ Enter：开始   Esc：自由探索（L 再次打开本菜单）",
        ),
        theme.dim(),
    );
    let inside = usize::from(area.height.saturating_sub(2));
    if lines.len() + 2 <= inside {
        lines.push(Line::raw(""));
    } else {
        // Too many for the screen: the keys line stays, and the list scrolls so that the
        // selected lesson is always in sight.
        let room = inside.saturating_sub(1).max(1);
        let first = (selected + 1).saturating_sub(room);
        lines = lines.into_iter().skip(first).take(room).collect();
    }
    lines.push(keys);
    let height = (lines.len() as u16 + 2).min(area.height);
    let popup = super::centered(area, width, height);
    Clear.render(popup, buf);
    let block = super::pane_block(tr(lang, " lessons ", " 课程 "), true, theme);
    Paragraph::new(lines).block(block).render(popup, buf);
}
