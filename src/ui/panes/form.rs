//! A form in a box over the screen: one line per field, the active one marked.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget};

use crate::ui::form::Form;
use crate::ui::theme::Theme;

pub struct FormPane<'a> {
    pub form: &'a Form,
    pub theme: Theme,
}

impl Widget for &FormPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let mut lines: Vec<Line> = self
            .form
            .fields
            .iter()
            .enumerate()
            .map(|(i, (label, value))| {
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
            "Tab next field   Enter send   Esc cancel",
            self.theme.dim(),
        ));
        let popup = super::centered(area, 70, lines.len() as u16 + 2);
        Clear.render(popup, buf);
        Paragraph::new(lines)
            .block(
                Block::new()
                    .borders(Borders::ALL)
                    .title(self.form.title())
                    .border_style(self.theme.focused_border()),
            )
            .render(popup, buf);
    }
}
