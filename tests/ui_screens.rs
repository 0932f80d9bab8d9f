//! The view's panes as screens: rendered into ratatui's TestBackend at fixed sizes and compared
//! with reviewed snapshots (`cargo insta review` after an intended change).
mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::screen::{screen, select_queue};
use rabbitscope::broker::{
    ConnectionSnapshot, ConsumerSnapshot, ExchangeSnapshot, QueueSnapshot, Snapshot, VhostSnapshot,
};
use rabbitscope::events::{AlarmResource, BindingInfo, ClientInfo, Event, EventKind, PublishFate};
use rabbitscope::ui::action::Action;
use rabbitscope::ui::app::{App, ViewOptions};
use rabbitscope::ui::form::FormKind;
use rabbitscope::ui::player::{Check, StepOutcome};

fn exchange(name: &str, kind: &str) -> ExchangeSnapshot {
    ExchangeSnapshot {
        name: name.into(),
        kind: kind.into(),
        durable: name.starts_with("amq.") || name.is_empty(),
        auto_delete: false,
        internal: false,
        arguments: vec![],
    }
}

fn queue(name: &str, ready: usize, consumers: usize) -> QueueSnapshot {
    QueueSnapshot {
        ready,
        consumers,
        ..QueueSnapshot::new(name)
    }
}

fn binding(source: &str, destination: &str, key: &str) -> BindingInfo {
    BindingInfo::to_queue(source, destination, key)
}

/// The study note's topic example, a Nova exchange, and a queue with a Chinese name.
fn topology() -> Snapshot {
    Snapshot {
        vhosts: vec![VhostSnapshot {
            name: "/".into(),
            exchanges: vec![
                exchange("", "direct"),
                exchange("amq.topic", "topic"),
                exchange("animals", "topic"),
                exchange("nova", "topic"),
            ],
            queues: vec![
                queue("Q1", 1, 0),
                queue("Q2", 2, 1),
                queue("compute.node1", 0, 1),
                queue("计算队列", 3, 0),
            ],
            bindings: vec![
                binding("animals", "Q1", "*.orange.*"),
                binding("animals", "Q2", "*.*.rabbit"),
                binding("animals", "Q2", "lazy.#"),
                binding("nova", "compute.node1", "compute.node1"),
                binding("nova", "计算队列", "计算.#"),
            ],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn published(
    id: u64,
    exchange: &str,
    key: &str,
    queues: &[&str],
    matched: &[BindingInfo],
) -> Action {
    Action::BrokerEvent(Arc::new(Event {
        at: SystemTime::UNIX_EPOCH + Duration::from_secs(3600 * 10 + 61),
        vhost: "/".into(),
        connection: Some(1),
        channel: Some(1),
        kind: EventKind::Published {
            message_id: id,
            exchange: exchange.into(),
            routing_key: key.into(),
            body_size: 5,
            body_preview: b"hello".to_vec().into(),
            headers: vec![],
            properties: Arc::new([("content_type".into(), "text/plain".into())]),
            matched: matched.iter().cloned().map(std::sync::Arc::new).collect(),
            queues: queues.iter().map(|q| std::sync::Arc::from(*q)).collect(),
            alternate_exchange: None,
            fate: if queues.is_empty() {
                PublishFate::Dropped
            } else {
                PublishFate::Routed
            },
        },
    }))
}

/// An app with the topology and three messages, the animation frozen half-way.
fn app() -> App {
    let mut app = App::new("127.0.0.1:5673", "/", ViewOptions::default());
    let start = app.now;
    app.update(Action::Topology(topology()));
    app.update(published(
        1,
        "animals",
        "quick.orange.rabbit",
        &["Q1", "Q2"],
        &[
            binding("animals", "Q1", "*.orange.*"),
            binding("animals", "Q2", "*.*.rabbit"),
        ],
    ));
    app.update(published(2, "animals", "slow.brown.fox", &[], &[]));
    app.update(published(
        3,
        "nova",
        "计算.启动",
        &["计算队列"],
        &[binding("nova", "计算队列", "计算.#")],
    ));
    app.set_now(start + Duration::from_millis(600));
    app
}

#[test]
fn overview_80x24() {
    let mut app = app();
    insta::assert_snapshot!(screen(&mut app, 80, 24));
}

#[test]
fn overview_160x45() {
    let mut app = app();
    insta::assert_snapshot!(screen(&mut app, 160, 45));
}

#[test]
fn message_inspector_explains_the_route_160x45() {
    let mut app = app();
    app.update(Action::FocusNext); // the log
    app.update(Action::Down); // the unroutable message
    app.update(Action::Down); // quick.orange.rabbit
    app.update(Action::Inspect);
    let text = screen(&mut app, 160, 45);
    assert!(text.contains("why it went there"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn an_unroutable_message_is_explained_160x45() {
    let mut app = app();
    // A cast to a compute host whose queue is gone, published mandatory (as oslo.messaging's
    // replies are): returned.
    let Action::BrokerEvent(event) = published(4, "nova", "compute.node3", &[], &[]) else {
        unreachable!()
    };
    let mut event = (*event).clone();
    if let EventKind::Published { fate, .. } = &mut event.kind {
        *fate = PublishFate::Returned;
    }
    app.update(Action::BrokerEvent(Arc::new(event)));
    app.update(Action::FocusNext); // the log, newest first
    app.update(Action::Inspect);
    let text = screen(&mut app, 160, 45);
    assert!(text.contains("why no queue took it"), "{text}");
    assert!(text.contains("no binding pattern of 'nova' (2 bindings) matches"));
    assert!(text.contains("'compute.node1' -> compute.node1: word 2 is 'node3', the"));
    assert!(text.contains("published mandatory: the publisher got it back"));
    insta::assert_snapshot!(text);
}

#[test]
fn filtered_log_and_help_80x24() {
    let mut app = app();
    for c in "brown".chars() {
        app.update(Action::StartFilter);
        app.update(Action::FilterInput(c));
    }
    app.update(Action::Back);
    insta::assert_snapshot!("filtered_log_80x24", screen(&mut app, 80, 24));
    app.update(Action::ToggleHelp);
    insta::assert_snapshot!("help_80x24", screen(&mut app, 80, 24));
}

#[test]
fn empty_broker_80x24() {
    let mut app = App::new("127.0.0.1:5673", "/", ViewOptions::default());
    app.update(Action::Topology(Snapshot {
        vhosts: vec![VhostSnapshot {
            name: "/".into(),
            ..Default::default()
        }],
        ..Default::default()
    }));
    insta::assert_snapshot!(screen(&mut app, 80, 24));
}

/// Types `text` into the form's field with this label, walking to it with Tab as a user would.
fn fill(app: &mut App, label: &str, text: &str) {
    for _ in 0..20 {
        let form = app.overlays.form.as_ref().expect("a form is open");
        if form.fields[form.active].label == label {
            text.chars().for_each(|c| {
                app.update(Action::FormInput(c));
            });
            return;
        }
        app.update(Action::FormNextField);
    }
    panic!("no field {label}");
}

#[test]
fn publish_form_80x24() {
    let mut app = app();
    app.update(Action::OpenForm(FormKind::Publish));
    fill(&mut app, "routing key", "lazy.orange.rabbit");
    fill(&mut app, "headers (k=v, ...)", "pages=12, kind=pdf");
    fill(&mut app, "persistent", "y");
    fill(&mut app, "expiration (ms)", "60000");
    fill(&mut app, "content type", "text/plain");
    fill(&mut app, "reply to", "answers");
    fill(&mut app, "correlation id", "order-7");
    fill(&mut app, "body", "hello");
    let text = screen(&mut app, 80, 24);
    assert!(
        text.contains("persistent: yes") && text.contains("correlation id: order-7"),
        "{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn declare_queue_form_with_arguments_80x24() {
    let mut app = app();
    app.update(Action::OpenForm(FormKind::DeclareQueue));
    fill(&mut app, "name (empty: server-named)", "orders");
    fill(&mut app, "durable", "y");
    fill(&mut app, "x-message-ttl", "60000");
    fill(&mut app, "x-max-length", "1000");
    fill(&mut app, "x-dead-letter-exchange", "dead");
    fill(&mut app, "x-queue-type", "classic");
    fill(
        &mut app,
        "more arguments (k=v, ...)",
        "x-overflow=reject-publish",
    );
    let text = screen(&mut app, 80, 24);
    assert!(
        text.contains("x-max-priority") && text.contains("x-overflow=reject-publish"),
        "{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn declare_exchange_form_with_arguments_80x24() {
    let mut app = app();
    app.update(Action::OpenForm(FormKind::DeclareExchange));
    fill(&mut app, "name", "orders");
    fill(&mut app, "internal", " ");
    fill(&mut app, "alternate-exchange", "unrouted");
    let text = screen(&mut app, 80, 24);
    assert!(
        text.contains("internal: yes") && text.contains("alternate-exchange: unrouted"),
        "{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn help_scrolled_to_the_end_80x24() {
    let mut app = app();
    app.update(Action::ToggleHelp);
    let top = screen(&mut app, 80, 24);
    assert!(top.contains("more below"), "{top}");
    for _ in 0..5 {
        app.update(Action::PageDown);
    }
    let text = screen(&mut app, 80, 24);
    assert!(!text.contains("more below"), "{text}");
    assert!(
        text.contains("when asked to confirm") && text.contains("lesson: leave it"),
        "{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn purge_asks_first_80x24() {
    let mut app = app();
    select_queue(&mut app, "Q2");
    app.update(Action::PurgeSelected);
    let text = screen(&mut app, 80, 24);
    assert!(
        text.contains("Purge queue 'Q2'? 2 ready message(s) are lost."),
        "{text}"
    );
    insta::assert_snapshot!(text);
    app.update(Action::Confirm(false));
    assert!(!screen(&mut app, 80, 24).contains("are you sure"));
}

#[test]
fn delete_asks_first_80x24() {
    let mut app = app();
    select_queue(&mut app, "计算队列");
    app.update(Action::DeleteSelected);
    let text = screen(&mut app, 80, 24);
    assert!(text.contains("3 message(s) are lost"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn classroom_mode_160x45() {
    let mut app = App::new(
        "127.0.0.1:5673",
        "/",
        ViewOptions {
            classroom: true,
            ..ViewOptions::default()
        },
    );
    app.update(Action::Topology(topology()));
    app.update(published(
        1,
        "animals",
        "quick.orange.rabbit",
        &["Q1", "Q2"],
        &[],
    ));
    app.update(published(2, "animals", "lazy.brown.fox", &["Q2"], &[]));
    // A clicker's "next" goes to the newest message and explains it.
    app.update(Action::PresenterBack);
    app.update(Action::PresenterNext);
    assert_eq!(app.selected_message().unwrap().message_id, 2);
    insta::assert_snapshot!(screen(&mut app, 160, 45));
}

/// A second after the messages, their rates stand before the queues' names, and the queues'
/// counters still have their room (they used to be cut while lines ran long).
#[test]
fn queue_counters_stay_whole_beside_a_rate_80x24() {
    let mut app = app();
    let start = app.now - Duration::from_millis(600);
    app.set_now(start + Duration::from_millis(1100));
    app.update(Action::Tick);
    let text = screen(&mut app, 80, 24);
    for queue in ["1/s Q1  1 0 0", "1/s Q2  2 0 1", "1/s 计算队列  3 0 0"] {
        assert!(text.contains(queue), "{queue}:\n{text}");
    }
}

#[test]
fn panning_reveals_what_a_narrow_screen_cuts_60x24() {
    let mut app = app();
    let before = screen(&mut app, 60, 24);
    assert!(!before.contains("compute.node1  0 0 1"), "{before}");
    for _ in 0..4 {
        app.update(Action::Right);
    }
    let after = screen(&mut app, 60, 24);
    assert!(after.contains("compute.node1  0 0 1"), "{after}");
    insta::assert_snapshot!(after);
}

/// An exchange-to-exchange chain: `edge` (fanout) feeds `animals` (topic), which sits in the
/// chain column between the exchanges and the queues; a message published to `edge` flies
/// from `animals` to the queue its binding reached.
#[test]
fn exchange_chain_160x45() {
    let mut chain = topology();
    let vhost = &mut chain.vhosts[0];
    vhost.exchanges.push(exchange("edge", "fanout"));
    vhost.queues.push(queue("audit", 0, 0));
    let mut to_animals = binding("edge", "animals", "");
    to_animals.destination_is_exchange = true;
    vhost.bindings.push(to_animals.clone());
    vhost.bindings.push(binding("edge", "audit", ""));
    let mut app = App::new("127.0.0.1:5673", "/", ViewOptions::default());
    let start = app.now;
    app.update(Action::Topology(chain));
    app.update(published(
        1,
        "edge",
        "lazy.brown.rabbit",
        &["Q2", "audit"],
        &[
            to_animals,
            binding("edge", "audit", ""),
            binding("animals", "Q2", "lazy.#"),
        ],
    ));
    app.set_now(start + Duration::from_millis(600));
    let text = screen(&mut app, 160, 45);
    let row_of = |needle: &str| text.lines().position(|l| l.contains(needle));
    let animals = row_of("▶anim").unwrap_or_else(|| panic!("no chain column:\n{text}"));
    let edge = row_of("edge [").unwrap_or_else(|| panic!("no edge exchange:\n{text}"));
    assert_ne!(animals, edge);
    insta::assert_snapshot!(text);
}

/// A lesson of two steps, written as a teacher would, without actions so the screen test
/// depends only on the player.
const LESSON: &str = r#"
id: topic-drill
order: 6
title: { en: "Topic exchanges: * and #", zh: "主题交换器：* 和 #" }
steps:
  - title: { en: A lazy orange rabbit, zh: 一只懒惰的橙色兔子 }
    say:
      en: |
        Every word of `lazy.orange.rabbit` is compared with each binding key of `animals`: `*` stands for exactly one word, `#` for any number of words.
      zh: |
        `lazy.orange.rabbit` 的每个单词都会与 `animals` 的每个绑定键逐一比较：`*` 代表恰好一个单词，`#` 代表任意多个单词。
    predict:
      question: { en: Which queues get `lazy.orange.rabbit`?, zh: 哪些队列会收到 `lazy.orange.rabbit`？ }
      choices: [Q1, Q2]
      answer: [Q1, Q2]
    explain:
      en: Both `*.orange.*` and `lazy.#` match, so each queue gets a copy.
      zh: "`*.orange.*` 和 `lazy.#` 都匹配，所以每个队列各得一份。"
  - say: { en: Now nothing matches., zh: 现在什么都不匹配。 }
"#;

/// The app in the middle of that lesson: the student ticked Q1 only, and the step ran.
fn app_in_lesson(lang: rabbitscope::lesson::Lang) -> App {
    let lesson = rabbitscope::lesson::load_str(LESSON, std::path::Path::new("drill.yaml"))
        .expect("the test lesson loads");
    let options = ViewOptions {
        lang,
        ..ViewOptions::default()
    };
    let mut app = App::new("127.0.0.1:5673", "/", options);
    app.update(Action::Topology(topology()));
    app.update(Action::LessonsLoaded {
        lessons: vec![Arc::new(lesson)],
        errors: vec![],
    });
    app.update(Action::StartLesson(0));
    app.update(Action::LessonPrepared(Ok(())));
    app.update(Action::LessonToggle(0));
    app.update(Action::LessonNext);
    app.update(Action::LessonStepDone(Ok(StepOutcome {
        routed: vec!["Q1".into(), "Q2".into()],
        truth: vec!["Q1".into(), "Q2".into()],
        checks: vec![
            Check {
                key: "expect.routed".into(),
                ok: true,
                detail: "the message reached `Q1` and `Q2`".into(),
                detail_zh: "消息到达了 `Q1`、`Q2`".into(),
            },
            Check {
                key: "expect.depths.Q2".into(),
                ok: false,
                detail: "expected 2 but `Q2` has 1 message ready".into(),
                detail_zh: "预期 2 条，但 `Q2` 有 1 条就绪消息".into(),
            },
        ],
    })));
    app
}

#[test]
fn lesson_pane_en_160x45() {
    let mut app = app_in_lesson(rabbitscope::lesson::Lang::En);
    let text = screen(&mut app, 160, 45);
    assert!(text.contains("step 1 of 2"), "{text}");
    assert!(
        text.contains("Not quite."),
        "the student missed Q2:\n{text}"
    );
    // Results speak to the student, without the expectation's key.
    assert!(text.contains("Q2 has 1 message ready."), "{text}");
    assert!(!text.contains("expect.depths"), "{text}");
    assert!(
        text.contains("so each queue gets a copy"),
        "the explanation:\n{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn lesson_pane_zh_80x24() {
    let mut app = app_in_lesson(rabbitscope::lesson::Lang::Zh);
    let text = screen(&mut app, 80, 24);
    assert!(text.contains("第 1/2 步"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn lesson_menu_lists_lessons_and_broken_files_80x24() {
    let lesson = rabbitscope::lesson::load_str(LESSON, std::path::Path::new("drill.yaml"))
        .expect("the test lesson loads");
    let mut app = App::new("127.0.0.1:5673", "/", ViewOptions::default());
    app.update(Action::Topology(topology()));
    app.update(Action::LessonsLoaded {
        lessons: vec![Arc::new(lesson)],
        errors: vec!["lessons/09-broken.yaml:4:3: unknown field `sya`, expected `say`".into()],
    });
    app.update(Action::OpenMenu);
    let text = screen(&mut app, 80, 24);
    assert!(text.contains("Topic exchanges"), "{text}");
    assert!(text.contains("09-broken.yaml:4:3"), "{text}");
    insta::assert_snapshot!(text);
}

/// Every shipped lesson can be chosen in a small terminal: the menu scrolls so the selected one
/// shows, and the keys line stays at its foot.
#[test]
fn the_lesson_menu_scrolls_to_the_selected_lesson_80x16() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lessons");
    let (lessons, errors) = rabbitscope::lesson::load_each(&dir);
    assert!(errors.is_empty(), "{errors:?}");
    let last = lessons.last().expect("shipped lessons").clone();
    let first = lessons[0].clone();
    let count = lessons.len();
    let mut app = App::new("127.0.0.1:5673", "/", ViewOptions::default());
    app.update(Action::Topology(topology()));
    app.update(Action::LessonsLoaded {
        lessons: lessons.into_iter().map(Arc::new).collect(),
        errors: vec![],
    });
    app.update(Action::OpenMenu);
    let row =
        |lesson: &rabbitscope::lesson::Lesson| format!("{:>2}  {}", lesson.order, lesson.title.en);
    let top = screen(&mut app, 80, 16);
    assert!(top.contains(&row(&first)), "{top}");
    assert!(!top.contains(&row(&last)), "{top}");
    assert!(top.contains("number or ↑↓ Enter: start"), "{top}");
    for _ in 1..count {
        app.update(Action::Down);
    }
    let bottom = screen(&mut app, 80, 16);
    assert!(
        bottom.contains(&row(&last)[..40.min(row(&last).len())]),
        "{bottom}"
    );
    assert!(!bottom.contains(&row(&first)), "{bottom}");
    assert!(bottom.contains("number or ↑↓ Enter: start"), "{bottom}");
    insta::assert_snapshot!(bottom);
}

/// A summary too long for the menu's line is cut between characters (a Chinese one is two
/// columns a character) and ends with `…`, so a student sees there is more.
#[test]
fn long_summaries_end_with_an_ellipsis_in_the_menu_80x24() {
    use rabbitscope::lesson::Lang;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lessons");
    let (lessons, errors) = rabbitscope::lesson::load_each(&dir);
    assert!(errors.is_empty(), "{errors:?}");
    for lang in [Lang::En, Lang::Zh] {
        let options = ViewOptions {
            lang,
            ..ViewOptions::default()
        };
        let mut app = App::new("127.0.0.1:5673", "/", options);
        app.update(Action::Topology(topology()));
        app.update(Action::LessonsLoaded {
            lessons: lessons.iter().cloned().map(Arc::new).collect(),
            errors: vec![],
        });
        app.update(Action::OpenMenu);
        let text = screen(&mut app, 80, 24);
        let mut cut = 0;
        for lesson in &lessons {
            let Some(summary) = &lesson.summary else {
                continue;
            };
            let title = format!("{:>2}  {}  ", lesson.order, lesson.title.get(lang));
            let Some(row) = text.lines().find_map(|l| l.split_once(&title)) else {
                continue;
            };
            // What is drawn of the summary: up to the menu's right border.
            let shown = row.1.split('│').next().unwrap_or_default().trim_end();
            let summary = summary.get(lang);
            if shown == summary {
                continue;
            }
            cut += 1;
            let kept = shown.strip_suffix('…');
            assert!(
                kept.is_some_and(|k| summary.starts_with(k)),
                "{lang:?}: `{shown}` cuts `{summary}` without a `…`:\n{text}"
            );
        }
        assert!(
            cut > 0,
            "{lang:?}: no summary is cut at 80 columns:\n{text}"
        );
    }
}

/// At 80x24 beside a lesson nothing is cut inside a word: the status line drops its rate
/// before its keys, the graph's title ends after a whole word with `…`, and each key hint of
/// the lesson stays whole on one line.
#[test]
fn nothing_is_cut_mid_word_beside_a_lesson_80x24() {
    use rabbitscope::lesson::Lang;
    for (lang, keys, hints) in [
        (
            Lang::En,
            "? help  q quit",
            "n next  N back  J go to step  R restart  A auto-play  L lessons  X leave",
        ),
        (
            Lang::Zh,
            "? 帮助  q 退出",
            "n 下一步  N 上一步  J 跳到某步  R 重来  A 自动播放  L 课程列表  X 退出课程",
        ),
    ] {
        let mut app = app_in_lesson(lang);
        app.update(Action::Topology(topology()));
        for _ in 0..5 {
            app.update(Action::LessonScrollDown);
        }
        let text = screen(&mut app, 80, 24);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with(keys), "{lang:?}: {text}");
        // The graph's title: each word whole, the last marked when the rest is left out.
        let title = lines[1]
            .trim_start_matches('┌')
            .split(['─', '┐'])
            .next()
            .unwrap();
        let whole = [
            "vhost",
            "/",
            "2",
            "exchanges",
            "4",
            "queues",
            "5",
            "bindings",
            "个交换器",
            "个队列",
            "个绑定",
        ];
        for word in title.split_whitespace() {
            let word = word.strip_suffix('…').unwrap_or(word);
            assert!(whole.contains(&word), "{lang:?}: `{word}` in `{title}`");
        }
        assert!(title.trim_end().ends_with('…'), "{lang:?}: `{title}`");
        for hint in hints.split("  ") {
            assert!(text.contains(hint), "{lang:?}: `{hint}` split:\n{text}");
        }
    }
}

/// A step longer than a small pane scrolls with `[` `]`, and the border says there is more.
#[test]
fn a_long_step_scrolls_in_a_small_pane_80x24() {
    let mut app = app_in_lesson(rabbitscope::lesson::Lang::Zh);
    let before = screen(&mut app, 80, 24);
    assert!(before.contains("更多 ↓"), "{before}");
    assert!(
        !before.contains("n 下一步"),
        "the key line starts out of view:\n{before}"
    );
    for _ in 0..5 {
        app.update(Action::LessonScrollDown);
    }
    let after = screen(&mut app, 80, 24);
    assert!(after.contains("n 下一步"), "scrolled to the end:\n{after}");
    assert!(after.contains("↑ 更多"), "{after}");
    insta::assert_snapshot!(after);
}

#[test]
fn a_binding_selected_on_its_own_160x45() {
    let mut app = app();
    // animals, then its first binding (*.orange.*), then its second (*.*.rabbit).
    app.update(Action::Down);
    app.update(Action::Down);
    app.update(Action::Inspect);
    let text = screen(&mut app, 160, 45);
    assert!(text.contains("binding animals -> Q2"), "{text}");
    assert!(
        text.contains("matched 1 of the last 2 messages routed by animals"),
        "{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn a_click_on_a_binding_key_selects_the_binding() {
    let mut app = app();
    let text = screen(&mut app, 160, 45);
    // Find the row and column of the key `lazy.#` on screen and click on it.
    let (row, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("lazy.#"))
        .expect("the key is drawn");
    let column = unicode_width::UnicodeWidthStr::width(&line[..line.find("lazy.#").unwrap()]);
    app.update(Action::Click(column as u16, row as u16));
    let selected = app.selected_binding().expect("a binding is selected");
    assert_eq!(&*selected.binding.routing_key, "lazy.#");
    assert_eq!(&*selected.binding.destination, "Q2");
}

#[test]
fn the_status_line_shows_the_amqps_address_beside_the_plain_one() {
    let mut app = App::new(
        "127.0.0.1:5673",
        "/",
        ViewOptions {
            tls_address: Some("127.0.0.1:5674".parse().unwrap()),
            ..ViewOptions::default()
        },
    );
    app.update(Action::Topology(topology()));
    let screen = screen(&mut app, 160, 45);
    let status = screen
        .lines()
        .find(|l| l.contains("broker amqp://127.0.0.1:5673"))
        .unwrap_or_else(|| panic!("no status line in\n{screen}"));
    assert!(
        status.contains("broker amqp://127.0.0.1:5673 amqps://127.0.0.1:5674  vhost /"),
        "{status}"
    );
}

/// A message oslo.messaging really sent (tests/python/capture_oslo_bodies.py), published on
/// the `nova` exchange to `queue` and delivered to `consumer`.
fn oslo_message(id: u64, key: &str, body: &[u8], consumer: Option<&str>) -> Vec<Action> {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(3600 * 10 + 61 + id);
    // nova-api (connection 1) sends, nova-conductor (connection 2) consumes.
    let event = |connection, kind| {
        Action::BrokerEvent(Arc::new(Event {
            at,
            vhost: "/".into(),
            connection: Some(connection),
            channel: Some(1),
            kind,
        }))
    };
    let mut actions = vec![event(
        1,
        EventKind::Published {
            message_id: id,
            exchange: "nova".into(),
            routing_key: key.into(),
            body_size: body.len(),
            body_preview: body.to_vec().into(),
            headers: vec![],
            properties: Arc::new([
                ("content_type".into(), "application/json".into()),
                ("content_encoding".into(), "utf-8".into()),
            ]),
            matched: vec![Arc::new(binding("nova", key, key))],
            queues: vec![key.into()],
            alternate_exchange: None,
            fate: PublishFate::Routed,
        },
    )];
    if let Some(tag) = consumer {
        actions.push(event(
            2,
            EventKind::Delivered {
                message_id: id,
                queue: key.into(),
                consumer_tag: Some(tag.into()),
                delivery_tag: id,
                redelivered: false,
                offset: None,
                delivery_count: None,
            },
        ));
    }
    actions
}

/// Nova's conductor with a cast and a call in the log, the call selected and inspected. The
/// log names the conductor by its connection (`nova-conductor:4242:<uuid>`), not by the tag
/// it consumes with.
fn nova_app() -> App {
    let mut app = App::new("127.0.0.1:5673", "/", ViewOptions::default());
    let connection = |id, name: &str, port| ConnectionSnapshot {
        id,
        name: format!("10.0.0.5:{port} -> 10.0.0.1:5672"),
        peer: format!("10.0.0.5:{port}"),
        user: "nova".into(),
        client: ClientInfo {
            connection_name: Some(name.into()),
            product: Some("py-amqp".into()),
        },
        ..Default::default()
    };
    app.update(Action::Topology(Snapshot {
        vhosts: vec![VhostSnapshot {
            name: "/".into(),
            exchanges: vec![exchange("", "direct"), exchange("nova", "topic")],
            queues: vec![queue("conductor", 0, 1)],
            bindings: vec![binding("nova", "conductor", "conductor")],
            connections: vec![
                connection(1, "nova-api:101:7d3f0c1e", 40101),
                connection(2, "nova-conductor:4242:2c6f9a41", 40202),
            ],
            consumers: vec![ConsumerSnapshot {
                queue: "conductor".into(),
                tag: "1".into(),
                connection: 2,
                channel: 1,
                ack: true,
                prefetch: 0,
            }],
        }],
        ..Default::default()
    }));
    let cast = include_bytes!("fixtures/oslo/cast.json");
    let call = include_bytes!("fixtures/oslo/call.json");
    for action in oslo_message(1, "conductor", cast, Some("1"))
        .into_iter()
        .chain(oslo_message(2, "conductor", call, None))
    {
        app.update(action);
    }
    app.update(Action::FocusNext); // the log, newest (the call) selected
    app.update(Action::Inspect);
    app
}

#[test]
fn log_names_oslo_methods_and_consumers_160x45() {
    let mut app = nova_app();
    let text = screen(&mut app, 160, 45);
    assert!(
        text.contains("cast schedule_and_build_instances 1.17 -> conductor (nova-conductor)"),
        "{text}"
    );
    assert!(
        text.contains("call object_action 1.0 -> conductor"),
        "{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn inspector_decodes_a_nova_call_and_scrolls_to_it_140x30() {
    let mut app = nova_app();
    app.update(Action::FocusNext); // the inspector
                                   // Past the route, down to the decoded body.
    app.update(Action::Down);
    app.update(Action::ScrollInspector(9));
    let text = screen(&mut app, 140, 30);
    assert!(
        text.contains("inspector 11-"),
        "the title says where we are: {text}"
    );
    assert!(text.contains("method     object_action"), "{text}");
    assert!(text.contains("Instance 2.7"), "{text}");
    assert!(!text.contains("nova_object"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn the_inspector_says_where_a_long_body_was_cut() {
    use rabbitscope::events::BODY_KEPT;
    let mut app = App::new("127.0.0.1:5673", "/", ViewOptions::default());
    app.update(Action::BrokerEvent(Arc::new(Event {
        at: SystemTime::UNIX_EPOCH,
        vhost: "/".into(),
        connection: Some(1),
        channel: Some(1),
        kind: EventKind::Published {
            message_id: 1,
            exchange: "".into(),
            routing_key: "q".into(),
            body_size: BODY_KEPT + 1,
            body_preview: vec![b'x'; BODY_KEPT].into(),
            headers: vec![],
            properties: Arc::new([]),
            matched: vec![],
            queues: vec!["q".into()],
            alternate_exchange: None,
            fate: PublishFate::Routed,
        },
    })));
    app.update(Action::FocusNext);
    app.update(Action::Inspect);
    let text = screen(&mut app, 160, 45);
    assert!(
        text.contains(&format!(
            "body ({} bytes, cut at {BODY_KEPT} bytes)",
            BODY_KEPT + 1
        )),
        "{text}"
    );
}

#[test]
fn the_status_line_says_publishers_are_blocked_while_an_alarm_is_on() {
    let mut app = App::new("127.0.0.1:5673", "/", ViewOptions::default());
    app.update(Action::Topology(topology()));
    let alarm = |kind| {
        Action::BrokerEvent(Arc::new(Event {
            at: SystemTime::UNIX_EPOCH,
            vhost: "".into(),
            connection: None,
            channel: None,
            kind,
        }))
    };
    let status = |app: &mut App| {
        let screen = screen(app, 160, 45);
        screen
            .lines()
            .find(|l| l.contains("broker amqp://127.0.0.1:5673"))
            .unwrap_or_else(|| panic!("no status line in\n{screen}"))
            .to_string()
    };
    assert!(!status(&mut app).contains("alarm"));
    app.update(alarm(EventKind::AlarmOn {
        resource: AlarmResource::Memory,
    }));
    let on = status(&mut app);
    assert!(on.contains("memory alarm: publishers blocked"), "{on}");
    app.update(alarm(EventKind::AlarmOff {
        resource: AlarmResource::Memory,
    }));
    assert!(!status(&mut app).contains("alarm"));
}

/// The embedded broker's status line names the release it behaves as and the deprecated
/// features switched against that release's defaults, as the embedded source reports them.
#[test]
fn the_status_line_says_what_release_the_embedded_broker_behaves_as() {
    use rabbitscope::broker::{Behaviour, Broker, BrokerConfig, DeprecatedFeature, Release};
    use rabbitscope::source::{Embedded, Source};
    let behaviour = Behaviour::of(Release::V4_3)
        .permit(DeprecatedFeature::TransientNonexclQueues, true)
        .unwrap();
    let broker = Broker::new(BrokerConfig {
        behaviour,
        ..BrokerConfig::default()
    });
    let source = Embedded::new(broker, "127.0.0.1:5673");
    let mut app = App::new("127.0.0.1:5673", "/", ViewOptions::default());
    app.behaves_as = source.behaves_as();
    app.update(Action::Topology(source.snapshot()));
    let text = screen(&mut app, 160, 45);
    let status = text.lines().next().unwrap();
    assert!(
        status.contains(
            "broker amqp://127.0.0.1:5673  vhost /  behaves as RabbitMQ 4.3 · permits \
             transient_nonexcl_queues  0 msg/s"
        ),
        "{status}"
    );
}
