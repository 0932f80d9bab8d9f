//! The status line on top: where clients connect, the vhost, the release the embedded broker
//! behaves as, the overall rate with a sparkline, a RabbitMQ cluster's nodes, whether the
//! animation is paused, and the end of a replayed trace.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use crate::lesson::Lang;
use crate::ui::app::App;
use crate::ui::text::truncate_words;
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
    if let Some((text, trouble)) = nodes_text(&app.model.nodes, lang) {
        let style = if trouble { theme.bad() } else { theme.dim() };
        spans.push(Span::styled(text, style));
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
    // A narrow screen drops the least useful first: the sparkline, the rate, then the release
    // the broker behaves as, as long as that leaves room for the rest; what still does not fit
    // is cut after a whole word.
    let room = usize::from(area.width);
    let width = |spans: &[Span]| spans.iter().map(Span::width).sum::<usize>();
    let least_useful = [4, 3, 2];
    let rest = width(&spans)
        - least_useful
            .iter()
            .map(|&i| spans[i].width())
            .sum::<usize>();
    for (n, &i) in least_useful.iter().enumerate() {
        if width(&spans) > room && (n == 0 || rest <= room) {
            spans[i] = Span::raw("");
        }
    }
    let mut used = 0;
    for span in &mut spans {
        let left = room.saturating_sub(used);
        if span.width() > left {
            let text = span.content.trim_end();
            span.content = truncate_words(text, left).into();
            // Nothing after a cut.
            used = room;
        }
        used += span.width();
    }
    buf.set_line(area.x, area.y, &Line::from(spans), area.width);
}

/// What the status line says of a cluster's nodes, and whether it is trouble: nothing for one
/// healthy node (or none known); how many run; which are down, partitioned or in alarm.
pub fn nodes_text(nodes: &[crate::topology::NodeSnapshot], lang: Lang) -> Option<(String, bool)> {
    if nodes.iter().all(|n| n.healthy()) && nodes.len() < 2 {
        return None;
    }
    let up = nodes.iter().filter(|n| n.running).count();
    let mut text = match lang {
        Lang::En => format!("  nodes {up}/{} up", nodes.len()),
        Lang::Zh => format!("  节点 {up}/{} 运行", nodes.len()),
    };
    let names = |keep: fn(&crate::topology::NodeSnapshot) -> bool| -> String {
        let named: Vec<&str> = (nodes.iter().filter(|n| keep(n)))
            .map(|n| n.name.as_str())
            .collect();
        named.join(", ")
    };
    let down = names(|n| !n.running);
    if !down.is_empty() {
        text += &match lang {
            Lang::En => format!(": {down} down"),
            Lang::Zh => format!("：{down} 已停止"),
        };
    }
    let partitioned = names(|n| n.running && !n.partitions.is_empty());
    if !partitioned.is_empty() {
        text += &match lang {
            Lang::En => format!("  partition seen by {partitioned}"),
            Lang::Zh => format!("  网络分区：{partitioned}"),
        };
    }
    let alarmed = names(|n| n.running && (n.memory_alarm || n.disk_alarm));
    if !alarmed.is_empty() {
        text += &match lang {
            Lang::En => format!("  alarm on {alarmed}: publishers blocked"),
            Lang::Zh => format!("  {alarmed} 告警：发布者被阻塞"),
        };
    }
    let trouble = !nodes.iter().all(|n| n.healthy());
    Some((text, trouble))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::NodeSnapshot;

    fn node(name: &str, running: bool) -> NodeSnapshot {
        NodeSnapshot {
            name: name.into(),
            running,
            ..Default::default()
        }
    }

    #[test]
    fn one_healthy_node_says_nothing_a_cluster_says_how_many_run() {
        assert_eq!(nodes_text(&[], Lang::En), None);
        assert_eq!(nodes_text(&[node("rabbit@a", true)], Lang::En), None);
        let three = [node("rs-a", true), node("rs-b", true), node("rs-c", true)];
        assert_eq!(
            nodes_text(&three, Lang::En),
            Some(("  nodes 3/3 up".to_string(), false))
        );
    }

    #[test]
    fn a_node_down_partitioned_or_in_alarm_is_trouble() {
        let mut nodes = [node("rs-a", true), node("rs-b", true), node("rs-c", false)];
        nodes[0].partitions = vec!["rs-b".into()];
        nodes[1].memory_alarm = true;
        assert_eq!(
            nodes_text(&nodes, Lang::En),
            Some((
                "  nodes 2/3 up: rs-c down  partition seen by rs-a  alarm on rs-b: publishers \
                 blocked"
                    .to_string(),
                true
            ))
        );
    }
}
