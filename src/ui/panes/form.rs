//! A form in a box over the screen: one line per field, the active one marked.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget};

use crate::lesson::Lang;
use crate::ui::form::{Confirm, Form};
use crate::ui::theme::Theme;
use crate::ui::words::tr;

pub struct FormPane<'a> {
    pub form: &'a Form,
    pub theme: Theme,
    pub lang: Lang,
}

impl Widget for &FormPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let mut lines: Vec<Line> = self
            .form
            .fields
            .iter()
            .enumerate()
            .map(|(i, field)| {
                let label = field.label_in(self.lang);
                // A flag holds "yes" or "no"; a Chinese screen says 是 or 否.
                let value = match (field.flag, field.value.as_str()) {
                    (true, "yes") => tr(self.lang, "yes", "是"),
                    (true, _) => tr(self.lang, "no", "否"),
                    (false, text) => text,
                };
                let active = i == self.form.active;
                Line::from(vec![
                    Span::styled(
                        format!("{} {label}: ", if active { "▶" } else { " " }),
                        self.theme.key(),
                    ),
                    Span::styled(
                        format!("{value}{}", if active { "▏" } else { "" }),
                        if active {
                            self.theme.selected()
                        } else {
                            self.theme.queue()
                        },
                    ),
                ])
            })
            .collect();
        lines.push(Line::styled(
            if self.form.fields[self.form.active].flag {
                tr(
                    self.lang,
                    "y/n/space set   Tab ↓ ↑ field   Enter send   Esc cancel",
                    "y/n/空格 设置   Tab ↓ ↑ 换栏   Enter 发送   Esc 取消",
                )
            } else {
                tr(
                    self.lang,
                    "Tab ↓ ↑ field   Enter send   Esc cancel",
                    "Tab ↓ ↑ 换栏   Enter 发送   Esc 取消",
                )
            },
            self.theme.dim(),
        ));
        let popup = super::centered(area, 70, lines.len() as u16 + 2);
        Clear.render(popup, buf);
        Paragraph::new(lines)
            .block(
                Block::new()
                    .borders(Borders::ALL)
                    .title(self.form.title(self.lang))
                    .border_style(self.theme.focused_border()),
            )
            .render(popup, buf);
    }
}

/// "Are you sure?" before a delete, unbind or purge.
pub struct ConfirmPane<'a> {
    pub confirm: &'a Confirm,
    pub theme: Theme,
    pub lang: Lang,
}

impl Widget for &ConfirmPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let width = 60.min(area.width);
        // Wrapped here, by display width, so the box is exactly as tall as its text.
        let question = (
            self.confirm.question.clone(),
            ratatui::style::Style::default(),
        );
        let mut lines = crate::ui::text::wrap(&[question], width.saturating_sub(2) as usize);
        lines.push(Line::raw(""));
        lines.push(Line::from(vec![
            Span::styled("y", self.theme.key()),
            Span::raw("/"),
            Span::styled("Enter", self.theme.key()),
            Span::raw(tr(self.lang, " yes    ", " 是    ")),
            Span::styled("n", self.theme.key()),
            Span::raw("/"),
            Span::styled("Esc", self.theme.key()),
            Span::raw(tr(self.lang, " no", " 否")),
        ]));
        let height = lines.len() as u16 + 2;
        let text = Paragraph::new(lines);
        let popup = super::centered(area, width, height);
        Clear.render(popup, buf);
        text.block(
            Block::new()
                .borders(Borders::ALL)
                .title(tr(self.lang, " are you sure? ", " 确定吗？ "))
                .border_style(self.theme.bad()),
        )
        .render(popup, buf);
    }
}
