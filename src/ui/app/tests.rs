//! What `update()` does with each action, without a screen.

use super::*;
use crate::ui::form::FormKind;

fn app() -> App {
    App::new("127.0.0.1:5673", "/", ViewOptions::default())
}

fn lesson_app() -> App {
    let text = r#"
id: drill
order: 1
title: { en: Drill, zh: 练习 }
steps:
  - say: { en: One., zh: 一。 }
    predict:
      question: { en: Which?, zh: 哪个？ }
      choices: [A, B]
      answer: [A]
  - say: { en: Two., zh: 二。 }
  - say: { en: Three., zh: 三。 }
"#;
    let lesson = crate::lesson::load_str(text, std::path::Path::new("drill.yaml"))
        .expect("the test lesson loads");
    let mut app = app();
    app.update(Action::LessonsLoaded {
        lessons: vec![Arc::new(lesson)],
        errors: vec![],
    });
    app
}

fn prepare_of(effect: Option<Effect>) -> usize {
    match effect {
        Some(Effect::Lesson(LessonRequest::Prepare { steps, .. })) => steps,
        other => panic!("expected a prepare request, got {other:?}"),
    }
}

#[test]
fn stepping_back_a_replay_pauses_and_starts_the_picture_over() {
    let published = |id: u64| published_with(id, &[], b"");
    let mut app = app();
    for id in 1..=3 {
        app.update(Action::BrokerEvent(published(id)));
    }
    assert_eq!(app.model.log.len(), 3);
    assert_eq!(app.update(Action::StepBack), Some(Effect::StepBack));
    assert!(
        app.playback.paused,
        "a step back pauses, so the replay does not run on"
    );
    // The source hands back the events before the last one.
    let effect = app.update(Action::Rewound(vec![published(1), published(2)]));
    assert_eq!(effect, Some(Effect::RefreshTopology));
    let ids: Vec<u64> = app.model.log.iter().map(|e| e.message_id).collect();
    assert_eq!(ids, [1, 2]);
    assert!(app.model.flights.is_empty(), "history is not animated");
}

#[test]
fn a_lesson_runs_steps_forward_and_replays_back_exactly() {
    use crate::ui::player::{Phase, StepOutcome};
    let mut app = lesson_app();
    app.update(Action::OpenMenu);
    assert_eq!(app.menu_row(), Some(0));
    // Enter in the menu starts the lesson: the broker is prepared up to step 1.
    assert_eq!(prepare_of(app.update(Action::Inspect)), 0);
    assert_eq!(app.menu_row(), None);
    // Keys cannot run a step before the broker is ready.
    assert_eq!(app.update(Action::LessonNext), None);
    app.update(Action::LessonPrepared(Ok(())));
    app.update(Action::LessonToggle(0));
    app.update(Action::LessonToggle(5)); // no such choice: ignored
    assert_eq!(
        app.update(Action::LessonNext),
        Some(Effect::Lesson(LessonRequest::Run { step: 0 }))
    );
    app.update(Action::LessonStepDone(Ok(StepOutcome {
        routed: vec!["A".into()],
        truth: vec!["A".into()],
        checks: vec![],
    })));
    let player = app.player.as_ref().unwrap();
    assert_eq!(player.prediction_right(), Some(true));
    // Next shows step 2 without touching the broker; running it asks the runner.
    assert_eq!(app.update(Action::LessonNext), None);
    assert_eq!(app.player.as_ref().unwrap().step, 1);
    assert_eq!(
        app.update(Action::LessonNext),
        Some(Effect::Lesson(LessonRequest::Run { step: 1 }))
    );
    app.update(Action::LessonStepDone(Ok(StepOutcome::default())));
    app.update(Action::LessonNext);
    assert_eq!(app.player.as_ref().unwrap().step, 2);
    // Back from step 3 (not yet run): replay steps 1 and 2, then read step 2 again.
    assert_eq!(prepare_of(app.update(Action::LessonBack)), 1);
    assert_eq!(app.player.as_ref().unwrap().step, 1);
    assert_eq!(app.player.as_ref().unwrap().phase, Phase::Preparing);
    // Restart: back to before step 1.
    assert_eq!(prepare_of(app.update(Action::LessonRestart)), 0);
    assert_eq!(app.player.as_ref().unwrap().step, 0);
    // J 3 Enter: to step 3, with steps 1 and 2 replayed; a step that does not exist is
    // refused and Esc drops what was typed.
    app.update(Action::LessonJumpStart);
    assert!(app.jumping());
    app.update(Action::LessonJumpInput('3'));
    assert_eq!(prepare_of(app.update(Action::LessonJumpGo)), 2);
    assert!(!app.jumping());
    app.update(Action::LessonJumpStart);
    app.update(Action::LessonJumpInput('9'));
    assert_eq!(app.update(Action::LessonJumpGo), None);
    app.update(Action::LessonJumpStart);
    app.update(Action::LessonJumpInput('2'));
    app.update(Action::Back);
    assert!(!app.jumping());
    assert!(app.player.is_some(), "Esc cancels the jump, not the lesson");
}

#[test]
fn presenter_keys_drive_the_lesson_and_autoplay_moves_on_by_itself() {
    let mut app = App::new(
        "127.0.0.1:5673",
        "/",
        ViewOptions {
            classroom: true,
            ..ViewOptions::default()
        },
    );
    let lessons = lesson_app().lessons;
    app.update(Action::LessonsLoaded {
        lessons,
        errors: vec![],
    });
    app.update(Action::StartLesson(0));
    app.update(Action::LessonPrepared(Ok(())));
    assert_eq!(
        app.update(Action::PresenterNext),
        Some(Effect::Lesson(LessonRequest::Run { step: 0 }))
    );
    app.update(Action::LessonStepDone(
        Err("406 PRECONDITION_FAILED".into()),
    ));
    // A failed step is shown; back replays up to it.
    assert_eq!(prepare_of(app.update(Action::PresenterBack)), 0);
    app.update(Action::LessonPrepared(Ok(())));
    app.update(Action::Topology(crate::broker::Snapshot {
        vhosts: vec![crate::broker::VhostSnapshot {
            name: "/".into(),
            ..Default::default()
        }],
        ..Default::default()
    }));
    app.update(Action::LessonAutoplay);
    let start = app.now;
    app.set_now(start + Duration::from_secs(1));
    assert_eq!(app.update(Action::Tick), None, "too early");
    app.set_now(start + Duration::from_secs(7));
    assert_eq!(
        app.update(Action::Tick),
        Some(Effect::Lesson(LessonRequest::Run { step: 0 }))
    );
}

#[test]
fn tab_cycles_the_panes_both_ways() {
    let mut app = app();
    let mut seen = vec![app.focus];
    for _ in 0..3 {
        app.update(Action::FocusNext);
        seen.push(app.focus);
    }
    assert_eq!(
        seen,
        [Focus::Graph, Focus::Log, Focus::Inspector, Focus::Graph]
    );
    app.update(Action::FocusPrev);
    assert_eq!(app.focus, Focus::Inspector);
    // The inspector keeps describing the list focused before it.
    assert_eq!(app.subject, Focus::Graph);
}

#[test]
fn a_bad_regex_keeps_the_last_good_filter_and_says_why() {
    let mut app = app();
    app.update(Action::StartFilter);
    assert!(app.wants_text());
    for c in "a(b".chars() {
        app.update(Action::FilterInput(c));
    }
    assert!(app.log.filter_error.is_some());
    assert_eq!(app.log.filter_regex.as_ref().map(|r| r.as_str()), Some("a"));
    app.update(Action::FilterBackspace);
    assert!(app.log.filter_error.is_some(), "'a(' is still no regex");
    app.update(Action::FilterBackspace);
    assert!(app.log.filter_error.is_none());
    app.update(Action::Back);
    assert!(!app.wants_text());
    assert_eq!(app.log.filter, "a");
}

#[test]
fn esc_closes_help_before_the_inspector_and_q_quits() {
    let mut app = app();
    app.update(Action::Inspect);
    app.update(Action::ToggleHelp);
    app.update(Action::Back);
    assert!(!app.overlays.help.shown && app.inspecting);
    app.update(Action::Back);
    assert!(!app.inspecting);
    assert_eq!(app.update(Action::Quit), Some(Effect::Quit));
}

#[test]
fn snapshots_are_asked_for_at_most_every_quarter_second() {
    let mut app = app();
    let start = app.now;
    assert_eq!(app.update(Action::Tick), Some(Effect::RefreshTopology));
    app.model.topology_stale = true;
    app.set_now(start + Duration::from_millis(100));
    assert_eq!(app.update(Action::Tick), None);
    app.set_now(start + Duration::from_millis(300));
    assert_eq!(app.update(Action::Tick), Some(Effect::RefreshTopology));
}

#[test]
fn the_publish_form_becomes_a_command() {
    let mut app = app();
    app.update(Action::OpenForm(crate::ui::form::FormKind::Publish));
    for c in "amq.topic".chars() {
        app.update(Action::FormInput(c));
    }
    app.update(Action::FormNextField);
    for c in "a.b".chars() {
        app.update(Action::FormInput(c));
    }
    let effect = app.update(Action::FormSubmit);
    assert_eq!(
        effect,
        Some(Effect::Run(Command::Publish {
            exchange: "amq.topic".into(),
            routing_key: "a.b".into(),
            headers: vec![],
            properties: Default::default(),
            body: String::new(),
        }))
    );
    assert!(app.overlays.form.is_none());
    // Purge with nothing selected is explained, not sent.
    assert_eq!(app.update(Action::PurgeSelected), None);
    assert!(app.notice.as_ref().is_some_and(|(_, error)| *error));
}

#[test]
fn a_binding_is_selected_on_its_own_unbound_and_stays_selected_across_changes() {
    use crate::broker::{ExchangeSnapshot, QueueSnapshot, Snapshot, VhostSnapshot};
    use crate::events::BindingInfo;
    let topology = |bindings: Vec<BindingInfo>| {
        Action::Topology(Snapshot {
            vhosts: vec![VhostSnapshot {
                name: "/".into(),
                exchanges: vec![ExchangeSnapshot::new("logs", "direct")],
                queues: vec![QueueSnapshot::new("errors"), QueueSnapshot::new("infos")],
                bindings,
                ..Default::default()
            }],
            ..Default::default()
        })
    };
    let errors = BindingInfo::to_queue("logs", "errors", "error");
    let infos = BindingInfo::to_queue("logs", "infos", "info");
    let mut app = app();
    app.update(topology(vec![errors.clone(), infos.clone()]));
    assert_eq!(app.selected_exchange(), Some("logs"));
    app.update(Action::Down);
    app.update(Action::Down);
    assert_eq!(app.selected_binding().map(|b| &b.binding), Some(&infos));
    // Another binding appears above it: the selection follows the binding, not the row.
    let warnings = BindingInfo::to_queue("logs", "errors", "warning");
    app.update(topology(vec![errors.clone(), warnings, infos.clone()]));
    assert_eq!(app.selected_binding().map(|b| &b.binding), Some(&infos));
    // The publish form offers the binding's exchange and key.
    app.update(Action::OpenForm(FormKind::Publish));
    let form = app.overlays.form.take().unwrap();
    assert_eq!(
        (form.fields[0].value.as_str(), form.fields[1].value.as_str()),
        ("logs", "info")
    );
    assert_eq!(app.update(Action::DeleteSelected), None, "it asks first");
    assert_eq!(
        app.update(Action::Confirm(true)),
        Some(Effect::Run(Command::Unbind { binding: infos }))
    );
    // A queue is still deleted as a queue.
    app.update(Action::PageDown);
    assert_eq!(app.selected_queue(), Some("infos"));
    app.update(Action::DeleteSelected);
    assert_eq!(
        app.update(Action::Confirm(true)),
        Some(Effect::Run(Command::DeleteQueue {
            name: "infos".into()
        }))
    );
}

/// Two queues, one holding messages, and an exchange bound to both.
fn app_with_queues() -> App {
    use crate::broker::{ExchangeSnapshot, QueueSnapshot, Snapshot, VhostSnapshot};
    use crate::events::BindingInfo;
    let mut app = app();
    app.update(Action::Topology(Snapshot {
        vhosts: vec![VhostSnapshot {
            name: "/".into(),
            exchanges: vec![ExchangeSnapshot::new("logs", "direct")],
            queues: vec![
                QueueSnapshot {
                    ready: 7,
                    unacked: 2,
                    ..QueueSnapshot::new("errors")
                },
                QueueSnapshot::new("infos"),
            ],
            bindings: vec![
                BindingInfo::to_queue("logs", "errors", "error"),
                BindingInfo::to_queue("logs", "infos", "info"),
            ],
            ..Default::default()
        }],
        ..Default::default()
    }));
    app
}

fn select_queue(app: &mut App, name: &str) {
    while app.selected_queue() != Some(name) {
        let before = app.graph.selected;
        app.update(Action::Down);
        assert_ne!(before, app.graph.selected, "no queue {name} in the graph");
    }
}

#[test]
fn delete_and_purge_ask_first_and_say_what_is_lost() {
    let mut app = app_with_queues();
    select_queue(&mut app, "errors");
    // Purge: asked, with the ready count; n cancels and nothing is sent.
    assert_eq!(app.update(Action::PurgeSelected), None);
    let question = &app.overlays.confirm.as_ref().expect("purge asks").question;
    assert!(
        question.contains("'errors'") && question.contains("7 ready"),
        "{question}"
    );
    assert!(question.contains("2 unacknowledged stay"), "{question}");
    // Keys other than yes and no do nothing while asked: not even a move or a delete.
    assert_eq!(app.update(Action::Down), None);
    assert_eq!(app.selected_queue(), Some("errors"));
    assert_eq!(app.update(Action::Confirm(false)), None);
    assert!(app.overlays.confirm.is_none());
    // Esc cancels too.
    app.update(Action::PurgeSelected);
    assert_eq!(app.update(Action::Back), None);
    assert!(app.overlays.confirm.is_none());
    // Delete: all 9 messages are lost; yes sends it.
    app.update(Action::DeleteSelected);
    let question = &app.overlays.confirm.as_ref().expect("delete asks").question;
    assert!(question.contains("9 message(s) are lost"), "{question}");
    assert_eq!(
        app.update(Action::Confirm(true)),
        Some(Effect::Run(Command::DeleteQueue {
            name: "errors".into()
        }))
    );
    assert!(app.overlays.confirm.is_none());
    // An exchange names its bindings.
    app.graph.selected = 0;
    app.update(Action::DeleteSelected);
    let question = &app.overlays.confirm.as_ref().expect("delete asks").question;
    assert!(
        question.contains("'logs' and its 2 binding(s)"),
        "{question}"
    );
    // The broker's answers still arrive while the question is open.
    app.update(Action::CommandDone(Ok("done".into())));
    assert_eq!(app.notice, Some(("done".into(), false)));
    assert_eq!(app.update(Action::Quit), Some(Effect::Quit));
}

fn lessons_numbered(n: u32) -> App {
    let mut app = app();
    let lessons = (1..=n)
            .map(|order| {
                let text = format!(
                    "id: l{order}\norder: {order}\ntitle: {{ en: L{order}, zh: L{order} }}\nsteps:\n  - say: {{ en: One., zh: 一。 }}\n"
                );
                Arc::new(
                    crate::lesson::load_str(&text, std::path::Path::new("l.yaml"))
                        .expect("the test lesson loads"),
                )
            })
            .collect();
    app.update(Action::LessonsLoaded {
        lessons,
        errors: vec![],
    });
    app
}

fn started(effect: Option<Effect>) -> String {
    match effect {
        Some(Effect::Lesson(LessonRequest::Prepare { lesson, .. })) => lesson.id.clone(),
        other => panic!("expected a lesson to start, got {other:?}"),
    }
}

#[test]
fn a_digit_picks_a_lesson_and_two_quick_digits_pick_ten_and_up() {
    // Nine lessons: a digit starts its lesson at once.
    let mut app = lessons_numbered(9);
    app.update(Action::OpenMenu);
    assert_eq!(started(app.update(Action::MenuDigit(4))), "l4");
    assert_eq!(app.menu_row(), None);

    // Fourteen: 7 is at once, 1 waits for a second digit.
    let mut app = lessons_numbered(14);
    app.update(Action::OpenMenu);
    assert_eq!(started(app.update(Action::MenuDigit(7))), "l7");
    app.update(Action::OpenMenu);
    let start = app.now;
    assert_eq!(app.update(Action::MenuDigit(1)), None);
    assert_eq!(app.menu_row(), Some(0), "lesson 1 is selected meanwhile");
    app.set_now(start + Duration::from_millis(300));
    assert_eq!(started(app.update(Action::MenuDigit(2))), "l12");
    // 1 and nothing more: lesson 1 once the wait is over.
    app.update(Action::OpenMenu);
    app.update(Action::MenuDigit(1));
    app.set_now(start + Duration::from_millis(400));
    let effect = app.update(Action::Tick);
    assert!(!matches!(effect, Some(Effect::Lesson(_))), "still waiting");
    assert!(app.menu_row().is_some());
    app.set_now(start + Duration::from_millis(300) + MENU_DIGIT_WAIT * 2);
    assert_eq!(started(app.update(Action::Tick)), "l1");
    // 1 then Enter: no need to wait.
    app.update(Action::OpenMenu);
    app.update(Action::MenuDigit(1));
    assert_eq!(started(app.update(Action::Inspect)), "l1");
    // A number with no lesson is said, and the menu stays.
    app.update(Action::OpenMenu);
    assert_eq!(app.update(Action::MenuDigit(0)), None);
    assert!(app.menu_row().is_some());
    assert!(app
        .notice
        .as_ref()
        .is_some_and(|(text, error)| *error && text.contains("no lesson 0")));
}

#[test]
fn help_scrolls_to_its_end_and_no_further() {
    let mut app = app();
    app.update(Action::ToggleHelp);
    app.overlays.help.page = 20;
    let lines = crate::ui::keys::help_lines(false, Lang::En).len();
    assert!(lines > 20, "the help is longer than a small screen");
    app.update(Action::Down);
    assert_eq!(app.overlays.help.scroll, 1);
    assert_eq!(
        app.graph.selected, 0,
        "the keys scroll the help, not the graph"
    );
    app.update(Action::PageDown);
    app.update(Action::PageDown);
    assert_eq!(
        app.overlays.help.scroll,
        lines - 20,
        "the last line at the bottom"
    );
    app.update(Action::ScrollUp);
    assert_eq!(app.overlays.help.scroll, lines - 23);
    // More pages up than there are: the top, and no further.
    for _ in 0..lines / 10 + 1 {
        app.update(Action::PageUp);
    }
    app.update(Action::Up);
    assert_eq!(app.overlays.help.scroll, 0);
    // Opened again, it starts at the top.
    app.update(Action::PageDown);
    app.update(Action::ToggleHelp);
    app.update(Action::ToggleHelp);
    assert_eq!(app.overlays.help.scroll, 0);
}

#[test]
fn a_form_walks_its_fields_both_ways_and_sets_flags() {
    let mut app = app();
    app.update(Action::OpenForm(FormKind::DeclareQueue));
    for c in "jobs".chars() {
        app.update(Action::FormInput(c));
    }
    app.update(Action::FormNextField);
    app.update(Action::FormInput('y'));
    app.update(Action::FormPrevField);
    app.update(Action::FormPrevField);
    assert_eq!(
        app.overlays.form.as_ref().unwrap().fields[app.overlays.form.as_ref().unwrap().active]
            .label,
        "more arguments (k=v, ...)"
    );
    for c in "x-max-length=10".chars() {
        app.update(Action::FormInput(c));
    }
    assert_eq!(
        app.update(Action::FormSubmit),
        Some(Effect::Run(Command::DeclareQueue {
            name: "jobs".into(),
            durable: true,
            auto_delete: false,
            exclusive: false,
            arguments: vec![("x-max-length".into(), crate::ui::form::Value::Int(10))],
        }))
    );
}

#[test]
fn pause_and_speed() {
    let mut app = app();
    app.update(Action::TogglePause);
    assert!(app.playback.paused);
    app.update(Action::Faster);
    assert!(app.model.flight_time < Duration::from_millis(1200));
    app.update(Action::Slower);
    app.update(Action::Slower);
    assert!(app.model.flight_time > Duration::from_millis(1200));
}

fn published_with(id: u64, headers: &[(&str, &str)], body: &[u8]) -> Arc<crate::events::Event> {
    use crate::events::{Event, EventKind, PublishFate};
    Arc::new(Event {
        at: std::time::SystemTime::UNIX_EPOCH,
        vhost: "/".into(),
        connection: None,
        channel: None,
        kind: EventKind::Published {
            message_id: id,
            exchange: "nova".into(),
            routing_key: "conductor".into(),
            body_size: body.len(),
            body_preview: bytes::Bytes::copy_from_slice(body),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            properties: Arc::new([]),
            matched: vec![],
            queues: vec!["conductor".into()],
            alternate_exchange: None,
            fate: PublishFate::Routed,
        },
    })
}

fn filter(app: &mut App, text: &str) -> Vec<u64> {
    app.update(Action::StartFilter);
    for c in text.chars() {
        app.update(Action::FilterInput(c));
    }
    app.update(Action::Back);
    app.filtered_log().iter().map(|e| e.message_id).collect()
}

#[test]
fn the_filter_searches_headers_and_bodies() {
    let mut app = app();
    app.update(Action::BrokerEvent(published_with(
        1,
        &[("tenant", "blue")],
        b"plain",
    )));
    app.update(Action::BrokerEvent(published_with(
        2,
        &[],
        include_bytes!("../../../tests/fixtures/oslo/call.json"),
    )));
    app.update(Action::BrokerEvent(published_with(
        3,
        &[],
        &[0xff, 0xfe, b'z'],
    )));
    assert_eq!(filter(&mut app, "blue"), [1], "a header value");
    for _ in 0.."blue".len() {
        app.update(Action::FilterBackspace);
    }
    assert_eq!(
        filter(&mut app, "objmethod"),
        [2],
        "inside an oslo.message body"
    );
    for _ in 0.."objmethod".len() {
        app.update(Action::FilterBackspace);
    }
    assert_eq!(filter(&mut app, "z$"), [3], "a body that is not UTF-8");
    for _ in 0.."z$".len() {
        app.update(Action::FilterBackspace);
    }
    assert_eq!(
        filter(&mut app, "conductor"),
        [3, 2, 1],
        "exchange and key still count"
    );
}

#[test]
fn the_inspector_scrolls_and_starts_at_the_top_for_a_new_subject() {
    let mut app = app();
    for id in 1..=2 {
        app.update(Action::BrokerEvent(published_with(id, &[], b"body")));
    }
    app.update(Action::FocusNext); // the log
    app.update(Action::FocusNext); // the inspector, still describing the log's message
    assert_eq!(app.subject, Focus::Log);
    app.update(Action::Down);
    app.update(Action::PageDown);
    assert_eq!(app.inspector_scroll, 11);
    app.update(Action::ScrollInspector(-3));
    assert_eq!(app.inspector_scroll, 8);
    app.update(Action::PageUp);
    assert_eq!(app.inspector_scroll, 0, "scrolling up stops at the top");
    app.update(Action::ScrollInspector(5));
    // Another message selected: its text starts at its first line.
    app.update(Action::FocusPrev);
    app.update(Action::Down);
    assert_eq!(app.log.selected, 1);
    assert_eq!(app.inspector_scroll, 0);
}

#[test]
fn a_lesson_starts_with_an_empty_log_and_going_back_does_not_repeat_lines() {
    let mut app = lesson_app();
    app.update(Action::BrokerEvent(published_with(
        1,
        &[],
        b"before the lesson",
    )));
    assert_eq!(prepare_of(app.update(Action::StartLesson(0))), 0);
    assert!(app.model.log.is_empty(), "the log starts empty");
    app.update(Action::LessonPrepared(Ok(())));
    app.update(Action::LessonNext);
    app.update(Action::BrokerEvent(published_with(2, &[], b"step 1")));
    app.update(Action::LessonStepDone(Ok(Default::default())));
    app.update(Action::LessonNext);
    app.update(Action::LessonNext);
    app.update(Action::BrokerEvent(published_with(3, &[], b"step 2")));
    app.update(Action::LessonStepDone(Ok(Default::default())));
    // Back: the runner resets the broker and replays step 1, which publishes again.
    assert_eq!(prepare_of(app.update(Action::LessonBack)), 1);
    app.update(Action::BrokerEvent(published_with(4, &[], b"step 1")));
    app.update(Action::LessonPrepared(Ok(())));
    let bodies: Vec<&[u8]> = app.model.log.iter().map(|e| &e.body_preview[..]).collect();
    assert_eq!(
        bodies,
        [b"step 1"],
        "one line per message the broker now holds"
    );
}
