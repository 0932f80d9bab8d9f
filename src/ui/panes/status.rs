//! The status line on top: where clients connect, the vhost, the release the embedded broker
//! behaves as, the overall rate with a sparkline, whether the animation is paused, and the end
//! of a replayed trace.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use crate::lesson::Lang;
use crate::ui::app::App;
use crate::ui::theme::Theme;
use crate::ui::words::tr;

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

/// Draws the status line.
pub fn render(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    let lang = app.options.lang;
    let rates: Vec<u64> = app.model.total_rate.per_second.iter().copied().collect();
    let mut spans = vec![
        Span::styled(" rabbitscope ", theme.title()),
        Span::raw(format!(
            " broker {}{}  vhost {}  ",
            app.source.describe(),
            app.options
                .tls_address
                .map(|a| format!(" amqps://{a}"))
                .unwrap_or_default(),
            app.model.vhost
        )),
        Span::raw(
            app.behaves_as
                .as_ref()
                .map(|b| format!("{b}  "))
                .unwrap_or_default(),
        ),
        Span::raw(format!(
            "{} {} ",
            app.model.total_rate.current(),
            tr(lang, "msg/s", "条/秒")
        )),
        Span::styled(sparkline(&rates, 20), theme.good()),
    ];
    let alarms = app.model.alarms;
    if alarms.any() {
        let text = match (lang, alarms.memory, alarms.disk) {
            (Lang::En, true, true) => "  memory & disk alarm: publishers blocked",
            (Lang::En, true, false) => "  memory alarm: publishers blocked",
            (Lang::En, _, _) => "  disk alarm: publishers blocked",
            (Lang::Zh, true, true) => "  内存和磁盘告警：发布者被阻塞",
            (Lang::Zh, true, false) => "  内存告警：发布者被阻塞",
            (Lang::Zh, _, _) => "  磁盘告警：发布者被阻塞",
        };
        spans.push(Span::styled(text, theme.bad()));
    }
    if app.playback.paused {
        spans.push(Span::styled(tr(lang, "  PAUSED", "  已暂停"), theme.bad()));
    }
    if app.playback.ended {
        spans.push(Span::styled(
            tr(
                lang,
                "  END OF TRACE  , back one event",
                "  记录已播完  , 后退一个事件",
            ),
            theme.bad(),
        ));
    }
    if (app.playback.speed - 1.0).abs() > f64::EPSILON {
        spans.push(Span::raw(format!(
            "  {} x{:.2}",
            tr(lang, "speed", "速度"),
            app.playback.speed
        )));
    }
    if let Some(trouble) = &app.trouble {
        spans.push(Span::styled(format!("  {trouble}"), theme.bad()));
    }
    match &app.notice {
        Some((text, true)) => spans.push(Span::styled(format!("  {text}"), theme.bad())),
        Some((text, false)) => spans.push(Span::styled(format!("  {text}"), theme.good())),
        None => spans.push(Span::styled(
            tr(lang, "  ? help  q quit", "  ? 帮助  q 退出"),
            theme.dim(),
        )),
    }
    buf.set_line(area.x, area.y, &Line::from(spans), area.width);
}
