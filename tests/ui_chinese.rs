//! `--lang zh` puts the whole screen in Chinese, not only the lessons: status line, help,
//! lesson menu, forms and confirmations. Chinese characters take two columns, so each screen
//! is also checked for boxes whose borders stay in line.
mod common;

use std::sync::Arc;

use common::screen::{bar_columns, screen, select_queue};
use rabbitscope::broker::{ExchangeSnapshot, QueueSnapshot, Snapshot, VhostSnapshot};
use rabbitscope::events::BindingInfo;
use rabbitscope::lesson::Lang;
use rabbitscope::ui::action::Action;
use rabbitscope::ui::app::{App, ViewOptions};
use rabbitscope::ui::form::FormKind;

fn chinese_app() -> App {
    let options = ViewOptions {
        lang: Lang::Zh,
        ..ViewOptions::default()
    };
    let mut app = App::new("127.0.0.1:5673", "/", options);
    app.update(Action::Topology(Snapshot {
        vhosts: vec![VhostSnapshot {
            name: "/".into(),
            exchanges: vec![ExchangeSnapshot {
                name: "nova".into(),
                kind: "topic".into(),
                ..Default::default()
            }],
            queues: vec![
                QueueSnapshot {
                    ready: 2,
                    ..QueueSnapshot::new("compute.node1")
                },
                QueueSnapshot::new("计算队列"),
            ],
            bindings: vec![
                BindingInfo::to_queue("nova", "compute.node1", "compute.node1"),
                BindingInfo::to_queue("nova", "计算队列", "计算.#"),
            ],
            ..Default::default()
        }],
        ..Default::default()
    }));
    app
}

/// Every row that crosses the popup box has its right border in the same column as the top
/// row's corner: a wide character counted as one column would push it right.
fn assert_box_aligned(text: &str) {
    let rows: Vec<&str> = text.lines().collect();
    let top = rows
        .iter()
        .position(|l| l.contains('┐') && !l.starts_with('┌'))
        .or_else(|| rows.iter().position(|l| l.matches('┐').count() >= 1))
        .expect("a box");
    let corner = |line: &str| {
        let mut column = 0;
        let mut found = None;
        for c in line.chars() {
            if c == '┐' {
                found = Some(column);
            }
            column += unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        }
        found
    };
    let right = corner(rows[top]).expect("a top right corner");
    for line in rows.iter().skip(top + 1).take_while(|l| !l.contains('┘')) {
        assert!(
            bar_columns(line).contains(&right),
            "border out of line at column {right}:\n{line}\n\n{text}"
        );
    }
}

#[test]
fn status_line_in_chinese_80x24() {
    let mut app = chinese_app();
    let text = screen(&mut app, 80, 24);
    let status = text.lines().next().unwrap();
    for words in ["0 条/秒", "? 帮助  q 退出"] {
        assert!(status.contains(words), "no `{words}`:\n{status}");
    }
    insta::assert_snapshot!(text);
}

#[test]
fn help_in_chinese_80x24() {
    let mut app = chinese_app();
    app.update(Action::ToggleHelp);
    let text = screen(&mut app, 80, 24);
    for words in ["按键（Esc 关闭）", "退出", "暂停或继续动画", "下面还有"] {
        assert!(text.contains(words), "no `{words}`:\n{text}");
    }
    assert!(!text.contains("quit"), "English left:\n{text}");
    assert_box_aligned(&text);
    insta::assert_snapshot!(text);
}

#[test]
fn help_scrolled_to_its_end_in_chinese_160x45() {
    let mut app = chinese_app();
    app.update(Action::ToggleHelp);
    for _ in 0..10 {
        app.update(Action::PageDown);
    }
    let text = screen(&mut app, 160, 45);
    assert!(text.contains("确认时（D、P）"), "{text}");
    assert!(text.contains("是：删除、解绑或清空"), "{text}");
    assert_box_aligned(&text);
    insta::assert_snapshot!(text);
}

#[test]
fn lesson_menu_in_chinese_80x24() {
    let mut app = chinese_app();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lessons");
    let (lessons, errors) = rabbitscope::lesson::load_each(&dir);
    assert!(errors.is_empty(), "{errors:?}");
    app.update(Action::LessonsLoaded {
        lessons: lessons.into_iter().map(Arc::new).collect(),
        errors: vec![],
    });
    app.update(Action::OpenMenu);
    let text = screen(&mut app, 80, 24);
    assert!(text.contains("数字或 ↑↓ Enter：开始"), "{text}");
    assert!(text.contains(" 课程 "), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn publish_form_in_chinese_80x24() {
    let mut app = chinese_app();
    app.update(Action::OpenForm(FormKind::Publish));
    app.update(Action::FormNextField);
    for c in "计算.启动".chars() {
        app.update(Action::FormInput(c));
    }
    let text = screen(&mut app, 80, 24);
    for words in [
        "发布一条消息",
        "交换器:",
        "路由键:",
        "回复队列 (reply to):",
        "Esc 取消",
    ] {
        assert!(text.contains(words), "no `{words}`:\n{text}");
    }
    assert_box_aligned(&text);
    insta::assert_snapshot!(text);
}

#[test]
fn purge_asks_in_chinese_160x45() {
    let mut app = chinese_app();
    select_queue(&mut app, "compute.node1");
    app.update(Action::PurgeSelected);
    let text = screen(&mut app, 160, 45);
    assert!(
        text.contains("清空队列 'compute.node1'？将丢失 2 条就绪消息。"),
        "{text}"
    );
    assert!(text.contains("确定吗？"), "{text}");
    insta::assert_snapshot!(text);
}

/// One event of the message traffic in the Chinese app's vhost.
fn traffic(connection: u64, kind: rabbitscope::events::EventKind) -> Action {
    Action::BrokerEvent(Arc::new(rabbitscope::events::Event {
        at: std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(36_000),
        vhost: "/".into(),
        connection: Some(connection),
        channel: Some(1),
        kind,
    }))
}

/// A message oslo.messaging really sent, delivered and acked, and one that found no queue.
fn chinese_app_with_traffic() -> App {
    use rabbitscope::events::{EventKind, PublishFate};
    let mut app = chinese_app();
    let cast = include_bytes!("fixtures/oslo/cast.json");
    let published = |id: u64, key: &str, body: &[u8], queues: Vec<&str>| EventKind::Published {
        message_id: id,
        exchange: "nova".into(),
        routing_key: key.into(),
        body_size: body.len(),
        body_preview: body.to_vec().into(),
        headers: vec![("trace".into(), "on".into())],
        properties: Arc::new([("content_type".into(), "application/json".into())]),
        matched: queues
            .iter()
            .map(|q| Arc::new(BindingInfo::to_queue("nova", q, q)))
            .collect(),
        fate: if queues.is_empty() {
            PublishFate::Dropped
        } else {
            PublishFate::Routed
        },
        queues: queues.into_iter().map(Into::into).collect(),
        alternate_exchange: None,
    };
    for action in [
        traffic(
            1,
            published(1, "compute.node1", cast, vec!["compute.node1"]),
        ),
        traffic(
            2,
            EventKind::Delivered {
                message_id: 1,
                queue: "compute.node1".into(),
                consumer_tag: Some("ctag-1".into()),
                delivery_tag: 1,
                redelivered: false,
                offset: None,
                delivery_count: None,
            },
        ),
        traffic(
            2,
            EventKind::Acked {
                message_id: 1,
                queue: "compute.node1".into(),
                delivery_tag: 1,
            },
        ),
        traffic(1, published(2, "scheduler", b"{}", vec![])),
    ] {
        app.update(action);
    }
    // The dots in flight move with the clock: a screen to compare has none.
    app.model.flights.clear();
    app
}

#[test]
fn message_log_and_inspector_in_chinese_160x45() {
    let mut app = chinese_app_with_traffic();
    app.update(Action::FocusNext); // the log, newest (the dropped one) selected
    app.update(Action::Down); // the oslo cast
    app.update(Action::Inspect);
    let text = screen(&mut app, 160, 45);
    for words in [
        "丢弃（不可路由）",
        "路由键       compute.node1",
        "去向         已路由 -> compute.node1",
        "从 compute.node1 投递给 ctag-1（投递标签 1）",
        "在 compute.node1 中被确认",
        "为什么去了那里",
        "逐词匹配：compute=compute",
        "属性",
        "消息头",
        "消息体（",
        "方法       schedule_and_build_instances",
        "参数",
    ] {
        assert!(text.contains(words), "no `{words}`:\n{text}");
    }
    for english in [
        "why it went there",
        "properties",
        "delivered from",
        "acked in",
        "dropped (unroutable)",
        "routing key",
        "method ",
    ] {
        assert!(!text.contains(english), "English `{english}` left:\n{text}");
    }
    insta::assert_snapshot!(text);
}

#[test]
fn an_unroutable_message_explained_in_chinese_160x45() {
    let mut app = chinese_app_with_traffic();
    app.update(Action::FocusNext); // the log, newest (the dropped one) selected
    app.update(Action::Inspect);
    let text = screen(&mut app, 160, 45);
    for words in ["为什么没有队列收到", "没有以 mandatory 发布"] {
        assert!(text.contains(words), "no `{words}`:\n{text}");
    }
    for english in [
        "why no queue took it",
        "published mandatory",
        "nearest",
        "the key",
    ] {
        assert!(!text.contains(english), "English `{english}` left:\n{text}");
    }
    insta::assert_snapshot!(text);
}

#[test]
fn queue_inspector_in_chinese_120x35() {
    let mut app = chinese_app_with_traffic();
    select_queue(&mut app, "compute.node1");
    app.update(Action::Inspect);
    let text = screen(&mut app, 120, 35);
    for words in [
        "队列 compute.node1",
        "持久 否  排他 否  自动删除 否",
        "就绪 2",
        "绑定来源",
    ] {
        assert!(text.contains(words), "no `{words}`:\n{text}");
    }
    for english in ["durable", "ready", "bound from", "msg/s in"] {
        assert!(!text.contains(english), "English `{english}` left:\n{text}");
    }
    insta::assert_snapshot!(text);
}
