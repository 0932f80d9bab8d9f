//! A rendered view as text, one line per row, wide characters counted once.

use rabbitscope::ui::action::Action;
use rabbitscope::ui::app::App;
use rabbitscope::ui::render_to_buffer;

/// The view `width` x `height` as text: each row's cells in order (a wide character covers
/// the next cell too), trailing blanks trimmed.
pub fn screen(app: &mut App, width: u16, height: u16) -> String {
    let buffer = render_to_buffer(app, width, height);
    let mut out = String::new();
    for y in 0..height {
        let mut line = String::new();
        let mut x = 0;
        while x < width {
            let cell = &buffer[(x, y)];
            line.push_str(cell.symbol());
            x += unicode_width::UnicodeWidthStr::width(cell.symbol()).max(1) as u16;
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The display column of each `│` in a line.
pub fn bar_columns(line: &str) -> Vec<usize> {
    let mut column = 0;
    let mut bars = Vec::new();
    for c in line.chars() {
        if c == '│' {
            bars.push(column);
        }
        column += unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
    }
    bars
}

/// Moves the graph's selection down to this queue.
pub fn select_queue(app: &mut App, name: &str) {
    while app.selected_queue() != Some(name) {
        let before = app.graph.selected;
        app.update(Action::Down);
        assert_ne!(before, app.graph.selected, "no queue {name}");
    }
}
