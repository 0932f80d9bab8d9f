//! A form in a box over the screen: one line per field, the active one marked.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget};

use crate::lesson::Lang;
use crate::ui::form::{Confirm, Form};
use crate::ui::theme::Theme;
use crate::ui::words::tr;

/// Draws `form` in a box in the middle of `area`.
pub fn render_form(form: &Form, theme: Theme, lang: Lang, area: Rect, buf: &mut Buffer) {
    let mut lines: Vec<Line> = form
        .fields
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let label = field.label_in(lang);
            // A flag holds "yes" or "no"; a Chinese screen says 是 or 否.
            let value = match (field.flag, field.value.as_str()) {
                (true, "yes") => tr(lang, "yes", "是"),
                (true, _) => tr(lang, "no", "否"),
                (false, text) => text,
            };
            let active = i == form.active;
            Line::from(vec![
                Span::styled(
                    format!("{} {label}: ", if active { "▶" } else { " " }),
                    theme.key(),
                ),
                Span::styled(
                    format!("{value}{}", if active { "▏" } else { "" }),
                    if active {
                        theme.selected()
                    } else {
                        theme.queue()
                    },
                ),
            ])
        })
        .collect();
    lines.push(Line::styled(
        if form.fields[form.active].flag {
            tr(
                lang,
                "y/n/space set   Tab ↓ ↑ field   Enter send   Esc cancel",
                "y/n/空格 设置   Tab ↓ ↑ 换栏   Enter 发送   Esc 取消",
            )
        } else {
            tr(
                lang,
                "Tab ↓ ↑ field   Enter send   Esc cancel",
                "Tab ↓ ↑ 换栏   Enter 发送   Esc 取消",
            )
        },
        theme.dim(),
    ));
    let popup = super::centered(area, 70, lines.len() as u16 + 2);
    Clear.render(popup, buf);
    Paragraph::new(lines)
        .block(
            Block::new()
                .borders(Borders::ALL)
                .title(form.title(lang))
                .border_style(theme.focused_border()),
        )
        .render(popup, buf);
}

/// "Are you sure?" before a delete, unbind or purge.
pub fn render_confirm(confirm: &Confirm, theme: Theme, lang: Lang, area: Rect, buf: &mut Buffer) {
    let width = 60.min(area.width);
    // Wrapped here, by display width, so the box is exactly as tall as its text.
    let question = (confirm.question.clone(), ratatui::style::Style::default());
    let mut lines = crate::ui::text::wrap(&[question], width.saturating_sub(2) as usize);
    lines.push(Line::raw(""));
    lines.push(Line::from(vec![
        Span::styled("y", theme.key()),
        Span::raw("/"),
        Span::styled("Enter", theme.key()),
        Span::raw(tr(lang, " yes    ", " 是    ")),
        Span::styled("n", theme.key()),
        Span::raw("/"),
        Span::styled("Esc", theme.key()),
        Span::raw(tr(lang, " no", " 否")),
    ]));
    let height = lines.len() as u16 + 2;
    let text = Paragraph::new(lines);
    let popup = super::centered(area, width, height);
    Clear.render(popup, buf);
    text.block(
        Block::new()
            .borders(Borders::ALL)
            .title(tr(lang, " are you sure? ", " 确定吗？ "))
            .border_style(theme.bad()),
    )
    .render(popup, buf);
}
