//! The status line on top: where clients connect, the vhost, the overall rate with a
//! sparkline, whether the animation is paused, and the end of a replayed trace.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use crate::ui::app::App;
use crate::ui::theme::Theme;

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A sparkline of the last `width` complete seconds.
pub fn sparkline(values: &[u64], width: usize) -> String {
    let complete = &values[..values.len().saturating_sub(1)];
    let shown = &complete[complete.len().saturating_sub(width)..];
    let max = shown.iter().copied().max().unwrap_or(0).max(1);
    shown
        .iter()
        .map(|v| {
            if *v == 0 {
                ' '
            } else {
                BARS[((*v * 7) / max) as usize]
            }
        })
        .collect()
}

/// The embedded broker is known by its address, a remote one by its (masked) URL.
fn broker_url(address: &str) -> String {
    if address.contains("://") {
        address.to_string()
    } else {
        format!("amqp://{address}")
    }
}

pub struct StatusBar<'a> {
    pub app: &'a App,
    pub theme: Theme,
}

impl Widget for &StatusBar<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let app = self.app;
        let theme = self.theme;
        let rates: Vec<u64> = app.model.total_rate.per_second.iter().copied().collect();
        let mut spans = vec![
            Span::styled(" rabbitscope ", theme.title()),
            Span::raw(format!(
                " broker {}{}  vhost {}  ",
                broker_url(&app.address),
                app.options
                    .tls_address
                    .map(|a| format!(" amqps://{a}"))
                    .unwrap_or_default(),
                app.model.vhost
            )),
            Span::raw(format!("{} msg/s ", app.model.total_rate.current())),
            Span::styled(sparkline(&rates, 20), theme.good()),
        ];
        let alarms = app.model.alarms;
        if alarms.any() {
            let resources = match (alarms.memory, alarms.disk) {
                (true, true) => "memory & disk",
                (true, false) => "memory",
                _ => "disk",
            };
            spans.push(Span::styled(
                format!("  {resources} alarm: publishers blocked"),
                theme.bad(),
            ));
        }
        if app.paused {
            spans.push(Span::styled("  PAUSED", theme.bad()));
        }
        if app.trace_ended {
            spans.push(Span::styled(
                "  END OF TRACE  , back one event",
                theme.bad(),
            ));
        }
        if (app.speed - 1.0).abs() > f64::EPSILON {
            spans.push(Span::raw(format!("  speed x{:.2}", app.speed)));
        }
        if let Some(trouble) = &app.trouble {
            spans.push(Span::styled(format!("  {trouble}"), theme.bad()));
        }
        match &app.notice {
            Some((text, true)) => spans.push(Span::styled(format!("  {text}"), theme.bad())),
            Some((text, false)) => spans.push(Span::styled(format!("  {text}"), theme.good())),
            None => spans.push(Span::styled("  ? help  q quit", theme.dim())),
        }
        buf.set_line(area.x, area.y, &Line::from(spans), area.width);
    }
}
