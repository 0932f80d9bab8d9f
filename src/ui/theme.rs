//! Colours and emphasis. Monochrome (NO_COLOR, or `--monochrome`) keeps only bold and reverse,
//! so every distinction on screen survives without colour.

use ratatui::style::{Color, Modifier, Style};

#[derive(Clone, Copy, Debug)]
pub struct Theme {
    pub monochrome: bool,
    /// Classroom mode: everything bold and bright, for a projector.
    pub high_contrast: bool,
}

impl Theme {
    fn pick(&self, color: Style, mono: Style) -> Style {
        let style = if self.monochrome { mono } else { color };
        if self.high_contrast {
            brighten(style).add_modifier(Modifier::BOLD)
        } else {
            style
        }
    }

    pub fn title(&self) -> Style {
        self.pick(
            Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }
    pub fn exchange(&self) -> Style {
        self.pick(
            Style::new().fg(Color::Yellow),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }
    pub fn queue(&self) -> Style {
        self.pick(Style::new().fg(Color::Green), Style::new())
    }
    pub fn edge(&self) -> Style {
        self.pick(Style::new().fg(Color::DarkGray), Style::new())
    }
    pub fn key(&self) -> Style {
        self.pick(
            Style::new().fg(Color::Magenta),
            Style::new().add_modifier(Modifier::ITALIC),
        )
    }
    /// A message in flight: unlike anything bad ([`Theme::bad`] marks a dropped message).
    pub fn message(&self) -> Style {
        self.pick(
            Style::new()
                .fg(Color::LightCyan)
                .add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }
    /// Publishers and consumers: the clients' connections.
    pub fn client(&self) -> Style {
        self.pick(Style::new().fg(Color::LightBlue), Style::new())
    }
    pub fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
    pub fn focused_border(&self) -> Style {
        self.pick(
            Style::new().fg(Color::Cyan),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }
    pub fn border(&self) -> Style {
        self.pick(Style::new().fg(Color::Gray), Style::new())
    }
    pub fn good(&self) -> Style {
        self.pick(Style::new().fg(Color::Green), Style::new())
    }
    pub fn bad(&self) -> Style {
        self.pick(
            Style::new().fg(Color::Red),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }
    pub fn dim(&self) -> Style {
        self.pick(
            Style::new().fg(Color::DarkGray),
            Style::new().add_modifier(Modifier::DIM),
        )
    }
}

/// Dim colours become their bright versions; dark grey becomes white.
fn brighten(style: Style) -> Style {
    let fg = match style.fg {
        Some(Color::DarkGray) | Some(Color::Gray) => Some(Color::White),
        Some(Color::Red) => Some(Color::LightRed),
        Some(Color::Green) => Some(Color::LightGreen),
        Some(Color::Yellow) => Some(Color::LightYellow),
        Some(Color::Cyan) => Some(Color::LightCyan),
        Some(Color::Magenta) => Some(Color::LightMagenta),
        other => other,
    };
    Style { fg, ..style }.remove_modifier(Modifier::DIM)
}
