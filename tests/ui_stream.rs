//! A stream in the view: the graph shows its offsets instead of counters and where each
//! consumer reads, moving as deliveries arrive; the inspector draws the log with the
//! consumers on it, its size, retention and the rules of reading a stream.
mod common;

use std::sync::Arc;
use std::time::SystemTime;

use common::screen::{screen, select_queue};
use rabbitscope::broker::{
    ConnectionSnapshot, ConsumerSnapshot, ExchangeSnapshot, QueueSnapshot, Snapshot, StreamReader,
    StreamState, VhostSnapshot,
};
use rabbitscope::events::{BindingInfo, ClientInfo, Event, EventKind};
use rabbitscope::lesson::Lang;
use rabbitscope::topology::QueueType;
use rabbitscope::ui::action::Action;
use rabbitscope::ui::app::{App, ViewOptions};

/// Two compute hosts read oslo.messaging's `compute_fanout` stream: node1 has read all 57
/// messages, node2 the first 20.
fn app(lang: Lang) -> App {
    let options = ViewOptions {
        lang,
        ..ViewOptions::default()
    };
    let mut app = App::new("127.0.0.1:5673", "/", options);
    let host = |id: u64, name: &str| ConnectionSnapshot {
        id,
        name: format!("127.0.0.1:{} -> 127.0.0.1:5673", 50000 + id),
        peer: format!("127.0.0.1:{}", 50000 + id),
        user: "guest".into(),
        client: ClientInfo {
            connection_name: Some(format!("nova-compute:{id}:{name}")),
            product: Some("py-amqp".into()),
        },
        ..Default::default()
    };
    let consumer = |id: u64, tag: &str| ConsumerSnapshot {
        queue: "compute_fanout".into(),
        tag: tag.into(),
        connection: id,
        channel: 1,
        ack: true,
        prefetch: 100,
    };
    let reader = |id: u64, tag: &str, offset| StreamReader {
        tag: tag.into(),
        connection: id,
        offset,
    };
    app.update(Action::Topology(Snapshot {
        vhosts: vec![VhostSnapshot {
            name: "/".into(),
            exchanges: vec![ExchangeSnapshot::new("compute_fanout", "fanout")],
            queues: vec![QueueSnapshot {
                queue_type: QueueType::Stream,
                durable: true,
                arguments: vec![
                    ("x-max-age".into(), "7D".into()),
                    ("x-queue-type".into(), "stream".into()),
                ],
                ready: 57,
                consumers: 2,
                stream: Some(StreamState {
                    first_offset: 0,
                    next_offset: 57,
                    bytes: 57 * 300,
                    segments: 1,
                    max_segment_bytes: 500_000_000,
                    max_length_bytes: None,
                    max_age_secs: Some(7 * 86_400),
                    readers: vec![reader(1, "node1", 57), reader(2, "node2", 20)],
                }),
                ..QueueSnapshot::new("compute_fanout")
            }],
            bindings: vec![BindingInfo::to_queue(
                "compute_fanout",
                "compute_fanout",
                "",
            )],
            connections: vec![host(1, "node1"), host(2, "node2")],
            consumers: vec![consumer(1, "node1"), consumer(2, "node2")],
        }],
        ..Default::default()
    }));
    app
}

/// The position the graph shows on the row of the consumer whose name starts `client`.
fn position_of<'a>(text: &'a str, client: &str) -> Option<&'a str> {
    let graph = text.lines().filter_map(|l| l.split('│').nth(1));
    let row = graph.into_iter().find(|g| g.contains(client))?;
    Some(row.split(" @").nth(1)?.trim_end())
}

/// Each consumer row (found by the start of its name) shows its position.
fn assert_positions(text: &str, expected: &[(&str, &str)]) {
    for &(client, offset) in expected {
        assert_eq!(
            position_of(text, client),
            Some(offset),
            "{client} in\n{text}"
        );
    }
}

/// Offset `offset` delivered to node2.
fn delivered_to_node2(offset: u64) -> Action {
    Action::BrokerEvent(Arc::new(Event {
        at: SystemTime::UNIX_EPOCH,
        vhost: "/".into(),
        connection: Some(2),
        channel: Some(1),
        kind: EventKind::Delivered {
            message_id: 1000 + offset,
            queue: "compute_fanout".into(),
            consumer_tag: Some("node2".into()),
            delivery_tag: offset + 1,
            redelivered: false,
            offset: Some(offset),
            delivery_count: None,
        },
    }))
}

#[test]
fn the_graph_draws_the_stream_s_offsets_and_each_reader_s_position() {
    let mut app = app(Lang::En);
    // Wide: the offsets after the stream's flags, each host's position. (Two hosts of one
    // program are told apart by their port.)
    let text = screen(&mut app, 160, 45);
    assert!(text.contains("compute_fanout [S D]  0‥57"), "{text}");
    assert_positions(
        &text,
        &[("nova-compute :50001", "57"), ("nova-compute :50002", "20")],
    );
    // Narrower: the exchange's type and the stream's offsets stay whole; the consumers, whose
    // names cut short would read alike (`nova-compute :500…`), are hidden and the bottom line
    // says so. Zoomed, the graph has the room for their names and positions again.
    let text = screen(&mut app, 120, 35);
    assert!(text.contains("compute_fanout [fanout] ─"), "{text}");
    assert!(text.contains("compute_fanout [S D]  0‥57"), "{text}");
    assert!(text.contains("consumers hidden (z zooms)"), "{text}");
    insta::assert_snapshot!("stream_graph_120x35", text);
    app.update(Action::ToggleZoom);
    let zoomed = screen(&mut app, 120, 35);
    assert_positions(
        &zoomed,
        &[("nova-compute :50001", "57"), ("nova-compute :50002", "20")],
    );
    app.update(Action::ToggleZoom);
    // At 80 columns the graph hides its consumers, as for any queue.
    let text = screen(&mut app, 80, 24);
    assert!(text.contains("consumers hidden"), "{text}");
    insta::assert_snapshot!("stream_graph_80x24", text);
}

#[test]
fn a_delivery_moves_its_reader_and_keeps_the_stream_s_messages() {
    let mut app = app(Lang::En);
    app.update(delivered_to_node2(20));
    app.update(delivered_to_node2(21));
    let text = screen(&mut app, 160, 45);
    assert_positions(
        &text,
        &[("nova-compute :50002", "22"), ("nova-compute :50001", "57")],
    );
    assert!(text.contains("compute_fanout [S D]  0‥57"), "{text}");
    select_queue(&mut app, "compute_fanout");
    let text = screen(&mut app, 120, 35);
    assert!(text.contains("57 ready  0 unacked  2 consumers"), "{text}");
}

#[test]
fn the_inspector_draws_the_log_with_its_readers() {
    let mut app = app(Lang::En);
    select_queue(&mut app, "compute_fanout");
    let text = screen(&mut app, 120, 35);
    for line in [
        "stream: a log; reading removes nothing",
        "▕━━━━━2━━━━━━━━━1▏",
        "1 @57 nova-compute :50001 node1",
        "2 @20 nova-compute :50002 node2",
        "offsets 0‥57  messages 57  bytes 17100",
        "segments 1 of 500000000 bytes each",
        "retention: x-max-age 604800s",
        "whole old segments are dropped",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    insta::assert_snapshot!("stream_inspector_120x35", text);
    insta::assert_snapshot!("stream_inspector_80x24", screen(&mut app, 80, 24));
}

#[test]
fn the_stream_in_chinese() {
    let mut app = app(Lang::Zh);
    insta::assert_snapshot!("stream_graph_zh_120x35", screen(&mut app, 120, 35));
    select_queue(&mut app, "compute_fanout");
    let text = screen(&mut app, 120, 35);
    assert!(text.contains("流：只追加的日志，读取不删除消息"), "{text}");
    assert!(text.contains("新段开始时检查：整段删除旧段"), "{text}");
    insta::assert_snapshot!("stream_inspector_zh_120x35", text);
    insta::assert_snapshot!("stream_inspector_zh_80x24", screen(&mut app, 80, 24));
}
