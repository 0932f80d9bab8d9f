//! The help overlay, generated from the key table so it is never out of date.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget};

use crate::ui::keys::{BINDINGS, CLASSROOM_BINDINGS};
use crate::ui::theme::Theme;

pub struct HelpPane {
    pub theme: Theme,
    pub classroom: bool,
}

impl Widget for &HelpPane {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let presenter: &[crate::ui::keys::KeyBinding] = if self.classroom {
            CLASSROOM_BINDINGS
        } else {
            &[]
        };
        let lines: Vec<Line> = presenter
            .iter()
            .chain(BINDINGS)
            .filter(|b| !b.keys.is_empty())
            .map(|b| {
                Line::from(vec![
                    Span::styled(format!("{:>12}  ", b.keys), self.theme.key()),
                    Span::raw(b.help),
                ])
            })
            .collect();
        let popup = super::centered(area, 76, lines.len() as u16 + 2);
        Clear.render(popup, buf);
        Paragraph::new(lines)
            .block(
                Block::new()
                    .borders(Borders::ALL)
                    .title(" keys (Esc closes) ")
                    .border_style(self.theme.focused_border()),
            )
            .render(popup, buf);
    }
}
