//! One file per screen region, each an `impl Widget for &Pane` or, for the panes that read
//! nothing but the app and the colours, a `render` function: the status line, the graph,
//! the inspector (with a stream's log and a queue's place in a cluster), the lesson narration, the message log, and what opens over them (help,
//! lesson menu, forms and questions).
//!
//! A pane reads the app and draws; it changes nothing but what a frame measures (the
//! inspector's scroll). It may not import a source, the event loop or the lesson runner.

pub mod form;
pub mod graph;
pub mod help;
pub mod inspector;
pub mod lesson;
pub mod log;
pub mod menu;
mod placement;
pub mod status;
mod stream;

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::widgets::{Block, Borders};

use crate::ui::theme::Theme;

/// The bordered block every pane sits in; the focused pane's border stands out.
pub fn pane_block<'a>(
    title: impl Into<ratatui::text::Line<'a>>,
    focused: bool,
    theme: Theme,
) -> Block<'a> {
    let border = if focused {
        theme.focused_border()
    } else {
        theme.border()
    };
    Block::new()
        .borders(Borders::ALL)
        .border_style(border)
        .title(title)
}

/// A box of at most `width` x `height` in the middle of `area`, for popups.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [popup] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [popup] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(popup);
    popup
}
