//! What the inspector shows of a stream: its log as a bar from the first offset held to the
//! next one, a numbered marker where each consumer reads, the log's size and retention, and
//! the rules a stream's consumers live by (rabbit_stream_queue.erl, RabbitMQ 3.10).

use ratatui::text::Line;

use crate::broker::{QueueSnapshot, StreamState};
use crate::lesson::Lang;
use crate::ui::app::App;

/// Cells between the bar's ends: with its indent and ends it fits the narrowest inspector
/// (24 columns at 80x24).
const BAR: usize = 16;

/// The stream's lines, or none for another queue or one whose log the source does not report
/// (RabbitMQ's management API gives its type and messages, not its offsets).
pub fn stream_lines<'a>(q: &QueueSnapshot, app: &App, lang: Lang) -> Vec<Line<'a>> {
    let Some(log) = &q.stream else {
        return Vec::new();
    };
    let zh = lang == Lang::Zh;
    let mut lines = vec![Line::raw(match zh {
        false => "stream: a log; reading removes nothing",
        true => "流：只追加的日志，读取不删除消息",
    })];
    lines.push(Line::raw(format!("  {}", bar(log))));
    for (i, r) in log.readers.iter().enumerate() {
        // Named as the graph names its consumer node (two hosts of one program by port).
        let node = (app.graph.layout.consumers.iter())
            .find(|c| c.connection == r.connection && c.tags.contains(&r.tag));
        let client = node.map(|c| c.client().to_string());
        let who = match client.or_else(|| app.model.connection_label(r.connection)) {
            Some(client) => format!("{client} {}", r.tag),
            None => r.tag.clone(),
        };
        // The offset first: a narrow inspector wraps the name, not the number.
        lines.push(Line::raw(format!("  {} @{} {who}", marker(i), r.offset)));
    }
    let retention = match (log.max_length_bytes, log.max_age_secs) {
        (None, None) if zh => "无（永久保留）".to_string(),
        (None, None) => "none (kept for ever)".to_string(),
        (bytes, age) => {
            let bytes = bytes.map(|b| format!("x-max-length-bytes {b}"));
            let age = age.map(|s| format!("x-max-age {s}s"));
            [bytes, age]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("  ")
        }
    };
    let said = if zh {
        vec![
            format!(
                "  偏移 {}‥{}  消息 {}  字节 {}",
                log.first_offset, log.next_offset, q.ready, log.bytes
            ),
            format!("  段 {}，每段 {} 字节", log.segments, log.max_segment_bytes),
            format!("  保留：{retention}"),
            "  新段开始时检查：整段删除旧段".to_string(),
            "  消费者须设 prefetch 并手动确认".to_string(),
            "  读取不缩短日志，确认只归还额度".to_string(),
            "  从 x-stream-offset 读起：first last next".to_string(),
            "    偏移、时间戳或间隔（如 1h）".to_string(),
        ]
    } else {
        vec![
            format!(
                "  offsets {}‥{}  messages {}  bytes {}",
                log.first_offset, log.next_offset, q.ready, log.bytes
            ),
            format!(
                "  segments {} of {} bytes each",
                log.segments, log.max_segment_bytes
            ),
            format!("  retention: {retention}"),
            "  checked when a new segment starts:".to_string(),
            "  whole old segments are dropped".to_string(),
            "  consumers need prefetch and manual ack".to_string(),
            "  an ack only gives credit back".to_string(),
            "  read from x-stream-offset: first last".to_string(),
            "    next, an offset, a timestamp, 1h".to_string(),
        ]
    };
    lines.extend(said.into_iter().map(Line::raw));
    lines
}

/// The log from its first offset to the next: `▕━━━1━━━━━2▏`, each consumer's number where
/// it reads (a consumer at the next offset waits at the right end).
fn bar(log: &StreamState) -> String {
    let mut cells = vec!['━'; BAR];
    let span = log.next_offset.saturating_sub(log.first_offset).max(1);
    for (i, r) in log.readers.iter().enumerate() {
        let along = r.offset.saturating_sub(log.first_offset).min(span);
        let cell = (along * (BAR as u64 - 1) / span) as usize;
        cells[cell] = marker(i);
    }
    format!("▕{}▏", cells.into_iter().collect::<String>())
}

/// A consumer's marker: 1 to 9, then `●`.
fn marker(i: usize) -> char {
    char::from_digit(i as u32 + 1, 10)
        .filter(|_| i < 9)
        .unwrap_or('●')
}
