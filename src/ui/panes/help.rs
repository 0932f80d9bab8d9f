//! The help overlay, generated from the key tables so it is never out of date. It is taller
//! than a small terminal, so it scrolls and says when there is more above or below.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget};

use crate::lesson::Lang;
use crate::ui::keys::help_lines;
use crate::ui::theme::Theme;
use crate::ui::words::tr;

pub struct HelpPane {
    pub theme: Theme,
    pub classroom: bool,
    pub lang: Lang,
    /// The first line shown (clamped by the app, see [`crate::ui::app::Help::scroll`]).
    pub scroll: usize,
}

/// The popup the help takes in `area`, and how many of its lines fit in it.
pub fn help_area(area: Rect, classroom: bool) -> (Rect, usize) {
    // Both languages have the same lines.
    let lines = help_lines(classroom, Lang::En).len() as u16;
    let popup = super::centered(area, 76, lines + 2);
    (popup, popup.height.saturating_sub(2) as usize)
}

impl Widget for &HelpPane {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let all = help_lines(self.classroom, self.lang);
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
            .title(tr(self.lang, " keys (Esc closes) ", " 按键（Esc 关闭） "))
            .border_style(self.theme.focused_border());
        if scroll > 0 {
            let more = match self.lang {
                Lang::En => format!(" ↑ {scroll} more "),
                Lang::Zh => format!(" ↑ 上面还有 {scroll} 行 "),
            };
            block = block.title(Line::from(more).right_aligned());
        }
        if below > 0 {
            let more = match self.lang {
                Lang::En => format!(" ↓ {below} more below: ↓ PgDn or the wheel "),
                Lang::Zh => format!(" ↓ 下面还有 {below} 行：↓ PgDn 或滚轮 "),
            };
            block = block.title_bottom(Line::from(more).right_aligned());
        }
        Clear.render(popup, buf);
        Paragraph::new(lines).block(block).render(popup, buf);
    }
}
