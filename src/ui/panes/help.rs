//! The help overlay, generated from the key tables so it is never out of date. It is taller
//! than a small terminal, so it scrolls and says when there is more above or below.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget};

use crate::ui::keys::help_lines;
use crate::ui::theme::Theme;

pub struct HelpPane {
    pub theme: Theme,
    pub classroom: bool,
    /// The first line shown (clamped by the app, see [`crate::ui::app::App::help_scroll`]).
    pub scroll: usize,
}

/// The popup the help takes in `area`, and how many of its lines fit in it.
pub fn help_area(area: Rect, classroom: bool) -> (Rect, usize) {
    let lines = help_lines(classroom).len() as u16;
    let popup = super::centered(area, 76, lines + 2);
    (popup, popup.height.saturating_sub(2) as usize)
}

impl Widget for &HelpPane {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let all = help_lines(self.classroom);
        let (popup, visible) = help_area(area, self.classroom);
        let scroll = self.scroll.min(all.len().saturating_sub(visible));
        let lines: Vec<Line> = all
            .iter()
            .skip(scroll)
            .take(visible)
            .map(|(keys, help)| match *keys {
                "" => Line::styled(format!("{:>12}  {help}", ""), self.theme.title()),
                keys => Line::from(vec![
                    Span::styled(format!("{keys:>12}  "), self.theme.key()),
                    Span::raw(*help),
                ]),
            })
            .collect();
        let below = all.len() - scroll - lines.len();
        let mut block = Block::new()
            .borders(Borders::ALL)
            .title(" keys (Esc closes) ")
            .border_style(self.theme.focused_border());
        if scroll > 0 {
            block = block.title(Line::from(format!(" ↑ {scroll} more ")).right_aligned());
        }
        if below > 0 {
            block = block.title_bottom(
                Line::from(format!(" ↓ {below} more below: ↓ PgDn or the wheel ")).right_aligned(),
            );
        }
        Clear.render(popup, buf);
        Paragraph::new(lines).block(block).render(popup, buf);
    }
}
