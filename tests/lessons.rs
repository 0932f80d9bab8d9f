//! Lessons: broken files are refused with file:line:col, the fixtures under tests/lessons/ok pass
//! on the embedded broker and on RabbitMQ, wrong expectations fail with expected and actual, and
//! the shipped lessons in lessons/ pass on both brokers.
//!
//! Runs on RabbitMQ share the vhost's tracing switch, so they take turns (see `RABBITMQ`).
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use common::management;
use rabbitscope::lesson::{self, Lang, LessonRun, Target};

/// One run on RabbitMQ at a time: each turns tracing on for the vhost and off at its end.
static RABBITMQ: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `rabbitscope lessons ARGS...` from the project folder, so paths print relative to it.
fn lessons(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rabbitscope"))
        .current_dir(root())
        .env("LANG", "C.UTF-8")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .arg("lessons")
        .args(args)
        .output()
        .expect("run rabbitscope lessons")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn show(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn check_on_rabbitmq(dir: &str) -> Output {
    let _turn = RABBITMQ.lock().unwrap_or_else(|p| p.into_inner());
    lessons(&["check", dir, "--broker", &common::rabbitmq_url()])
}

// ---------------------------------------------------------------------------------------------
// Broken files
// ---------------------------------------------------------------------------------------------

/// Each broken file, the line:col its error must point at, and words the message must hold.
const BROKEN: &[(&str, &str, &[&str])] = &[
    (
        "ack_auto_consumer.yaml",
        "12:26",
        &["`ack: manual`", "`worker` acknowledges automatically"],
    ),
    (
        "answer_not_in_choices.yaml",
        "13:20",
        &["answer: expected one of the choices [Q1, Q2], found `Q3`"],
    ),
    (
        "bad_delivery_mode.yaml",
        "9:40",
        &["delivery_mode: expected 1 (transient) or 2 (persistent), found 3"],
    ),
    (
        "bad_id.yaml",
        "1:5",
        &["id: expected lowercase letters, digits and '-', found `Topic_Exchange`"],
    ),
    (
        "bad_regex.yaml",
        "13:21",
        &["body_matches: expected a regular expression", "`hel(lo`", "unclosed group"],
    ),
    (
        "binding_both.yaml",
        "14:20",
        &["expected either `queue` or `to_exchange` as the destination, not both"],
    ),
    (
        "call_without_reply_queue.yaml",
        "8:11",
        &["expected `reply_queue` (the caller's reply queue) for a call"],
    ),
    (
        "client_not_text.yaml",
        "9:19",
        &["client: invalid type: sequence, expected a string"],
    ),
    (
        "client_with_colon.yaml",
        "7:56",
        &["client: expected a program name", "found `nova-api:4242`"],
    ),
    (
        "close_unknown_client.yaml",
        "8:26",
        &["client: expected a program an earlier action names as its `client`", "found `nova-apl` (known: nova-api)"],
    ),
    (
        "delivered_unknown_consumer.yaml",
        "13:39",
        &["delivered: expected the name of a consumer", "found `wroker` (known: worker)"],
    ),
    ("empty.yaml", "1:1", &["expected a lesson", "found nothing"]),
    (
        "empty_vhost.yaml",
        "6:12",
        &["vhost: expected a vhost name"],
    ),
    (
        "explain_without_zh.yaml",
        "6:14",
        &["steps[0].explain: missing field `zh`"],
    ),
    (
        "keep_alive_with_result.yaml",
        "8:59",
        &["result: expected none on a keep-alive (`ending: false`)"],
    ),
    ("missing_zh.yaml", "7:7", &["steps[1].title: missing field `zh`"]),
    (
        "monitor_on_a_cast.yaml",
        "7:91",
        &["call_monitor_timeout: expected only on a call (`call: true`)"],
    ),
    (
        "not_yaml.yaml",
        "4:6",
        &["did not find expected ',' or '}'", "flow mapping at line 3 column 8"],
    ),
    (
        "ready_not_a_number.yaml",
        "13:22",
        &["choices: expected a number of messages, found `two`"],
    ),
    (
        "ready_without_depths.yaml",
        "11:14",
        &["queue: expected `expect.depths` to name `Q1` too"],
    ),
    (
        "ready_without_queue.yaml",
        "7:14",
        &["expected `queue`: the queue whose ready messages `about: ready` counts"],
    ),
    (
        "refused_541_without_client.yaml",
        "8:44",
        &["refused: 541 closes the whole connection: give the action a `client`"],
    ),
    (
        "refused_not_a_channel_error.yaml",
        "7:57",
        &["refused: expected a channel error code", "405 RESOURCE_LOCKED", "or 541 INTERNAL_ERROR, found 200"],
    ),
    (
        "replay_beyond_trace.yaml",
        "7:58",
        &["to: expected at most 10 (`nova-boot-classic` holds 10 publishes), found 11"],
    ),
    (
        "replay_from_after_to.yaml",
        "10:15",
        &["to: expected 5 or more (`from` is 5), found 2"],
    ),
    (
        "replay_missing_trace.yaml",
        "7:26",
        &["trace: no trace `nova-boot-classik`", "`assets/traces/nova-boot-classik.yaml`"],
    ),
    (
        "replay_trace_path.yaml",
        "7:26",
        &["trace: expected the name of a file in assets/traces/ without `.yaml`, found `../../lessons/13-nova-boot`"],
    ),
    (
        "reply_unknown_consumer.yaml",
        "13:28",
        &[
            "consumer: expected the name of a consumer started by an earlier `consume`",
            "found `scheduler-srv` (known: scheduler-server)",
        ],
    ),
    (
        "restart_unknown_feature.yaml",
        "7:29",
        &["permit: unknown deprecated feature 'transient_queues'", "transient_nonexcl_queues"],
    ),
    (
        "setup_queue_with_client.yaml",
        "6:43",
        &["client: expected only on a step's `declare_queue`, not in `setup`"],
    ),
    (
        "title_misnumbered.yaml",
        "8:11",
        &["title: `1. The first message` reads as step 1, but this is step 2"],
    ),
    (
        "two_actions_in_one_item.yaml",
        "7:9",
        &["steps[0].do[0]: expected one action per list item, but `declare_queue` is followed by `publish`"],
    ),
    (
        "unknown_action.yaml",
        "8:9",
        &["steps[0].do[1]: unknown action `publsh`", "`publish`"],
    ),
    (
        "unknown_consumer_choice.yaml",
        "12:27",
        &[
            "choices: expected the name of a consumer started by a `consume` up to this step",
            "found `worker-b` (known: worker-a)",
        ],
    ),
    (
        "unknown_exchange_type.yaml",
        "6:27",
        &["setup.exchanges[0].type: unknown variant `topics`", "`topic`"],
    ),
    (
        "unknown_key.yaml",
        "5:5",
        &["steps[0]: unknown field `sya`", "expected one of `title`, `say`"],
    ),
    (
        "unknown_release.yaml",
        "4:12",
        &["behave_as: unknown RabbitMQ release '5.0': rabbitscope behaves as 3.13, 4.0, 4.1, 4.2 or 4.3"],
    ),
    (
        "wait_too_long.yaml",
        "7:21",
        &["ms: expected at most 60000 (one minute), found 3600000"],
    ),
    (
        "wrong_type.yaml",
        "2:8",
        &["order: invalid type: string \"first\", expected u32"],
    ),
];

#[test]
fn each_broken_file_is_refused_at_its_line_and_column() {
    let dir = Path::new("tests/lessons/broken");
    for (file, place, words) in BROKEN {
        let path = dir.join(file);
        let text = std::fs::read_to_string(root().join(&path)).unwrap();
        let error = match lesson::load_str(&text, &path) {
            Ok(_) => panic!("{file} loaded, but it is broken"),
            Err(e) => e.to_string(),
        };
        let prefix = format!("tests/lessons/broken/{file}:{place}: ");
        assert!(
            error.starts_with(&prefix),
            "{file}: expected the error at {place}, got: {error}"
        );
        for word in *words {
            assert!(error.contains(word), "{file}: no {word:?} in: {error}");
        }
    }
}

#[test]
fn every_broken_file_has_a_case() {
    let files = lesson::load::lesson_files(&root().join("tests/lessons/broken")).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let cases: Vec<&str> = BROKEN.iter().map(|(f, _, _)| *f).collect();
    assert_eq!(names, cases);
}

#[test]
fn check_reports_every_broken_file_and_fails() {
    let output = lessons(&["check", "tests/lessons/broken"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    for (file, place, _) in BROKEN {
        let line = format!("    tests/lessons/broken/{file}:{place}: ");
        assert!(text.contains(&line), "no {line:?} in\n{}", show(&output));
    }
    let total = BROKEN.len();
    assert!(
        text.contains(&format!("{total} lessons: 0 ok, {total} failed")),
        "{}",
        show(&output)
    );
}

#[test]
fn names_longer_than_amqp_allows_are_refused() {
    let name = "q".repeat(256);
    let text = format!(
        "id: long\norder: 1\ntitle: {{ en: A, zh: 甲 }}\nsteps:\n  - say: {{ en: Hi, zh: 嗨 }}\n    \
         do:\n      - publish: {{ routing_key: {name} }}\n"
    );
    let error = lesson::load_str(&text, Path::new("long.yaml")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "long.yaml:7:33: routing_key: expected at most 255 bytes (AMQP's limit), found 256"
    );
    let ok = text.replace(&name, &"q".repeat(255));
    assert!(lesson::load_str(&ok, Path::new("long.yaml")).is_ok());
}

#[test]
fn a_missing_folder_fails() {
    let output = lessons(&["check", "tests/lessons/no-such-folder"]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(stdout(&output).contains("cannot read the directory"));
}

#[test]
fn two_lessons_with_one_id_are_refused() {
    let dir = std::env::temp_dir().join(format!("rabbitscope-dup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lesson =
        "id: same\norder: 1\ntitle: { en: A, zh: 甲 }\nsteps:\n  - say: { en: Hi, zh: 嗨 }\n";
    std::fs::write(dir.join("a.yaml"), lesson).unwrap();
    std::fs::write(dir.join("b.yaml"), lesson).unwrap();
    let result = lesson::load_dir(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    let errors = result.expect_err("a repeated id is an error");
    assert_eq!(errors.len(), 1, "{errors:?}");
    let text = errors[0].to_string();
    assert!(text.contains("b.yaml:1:5: expected a unique id"), "{text}");
    assert!(text.contains("a.yaml"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Valid fixtures, both brokers
// ---------------------------------------------------------------------------------------------

const OK_LINES: &[&str] = &[
    "ok      fx-routes (tests/lessons/ok/01-routes.yaml)",
    "ok      fx-consumers (tests/lessons/ok/02-consumers.yaml)",
    "ok      fx-rpc (tests/lessons/ok/03-rpc.yaml)",
    "ok      fx-replay (tests/lessons/ok/04-replay.yaml)",
    "4 lessons: 4 ok, 0 failed",
];

fn assert_all_ok(output: &Output) {
    assert_eq!(output.status.code(), Some(0), "{}", show(output));
    let text = stdout(output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, OK_LINES, "{}", show(output));
}

/// The lesson in `dir` passes on the embedded broker; checked with `--broker` it still runs on
/// the embedded broker (RabbitMQ cannot be made another release) and says so in a note that
/// holds `note`.
fn assert_checked_on_embedded(dir: &str, ok: &str, note: &str) {
    let output = lessons(&["check", dir]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert_eq!(
        stdout(&output).lines().next(),
        Some(ok),
        "{}",
        show(&output)
    );
    let output = check_on_rabbitmq(dir);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], ok, "{}", show(&output));
    assert!(
        lines[1].starts_with("    note: ") && lines[1].contains(note),
        "{}",
        show(&output)
    );
}

/// A lesson with `behave_as` runs on a broker behaving as it asks.
#[test]
fn a_lesson_behaving_as_another_release_is_checked_on_the_embedded_broker() {
    assert_checked_on_embedded(
        "tests/lessons/release",
        "ok      fx-behave-as (tests/lessons/release/01-behave-as.yaml)",
        "checked on the embedded broker, which behaves as RabbitMQ 4.3 · permits \
         transient_nonexcl_queues",
    );
}

/// A `restart` may bring the broker back as another release or with other permits: 4.3 refuses
/// a transient queue with 541 and closes only that program's connection, permits it after a
/// restart with `transient_nonexcl_queues`, refuses it again once restarted as plain 4.3.
#[test]
fn a_restart_changes_the_release_and_a_541_closes_only_its_program() {
    assert_checked_on_embedded(
        "tests/lessons/restart",
        "ok      fx-restart-permits (tests/lessons/restart/01-restart-permits.yaml)",
        "checked on the embedded broker, which behaves as RabbitMQ 4.3: --broker",
    );

    // Without the expected refusal, or without the permit, the 541 fails the check.
    let fixture =
        std::fs::read_to_string(root().join("tests/lessons/restart/01-restart-permits.yaml"))
            .unwrap();
    let dir = TempDir::new("restart");
    let variants = [
        (
            fixture.replacen(", refused: 541 }", " }", 1),
            "step 1 (\"Denied\"): action 1 (declare_queue): 541 INTERNAL_ERROR - Feature \
             `transient_nonexcl_queues` is deprecated.",
        ),
        (
            fixture.replace(
                "restart: { permit: [transient_nonexcl_queues] }",
                "restart: {}",
            ),
            "step 2 (\"Permitted\"): action 2 (declare_queue): 541 INTERNAL_ERROR",
        ),
        (
            fixture.replace("restart: { behave_as: \"4.3\" }", "restart: {}"),
            "step 3 (\"Denied again\"): action 2 (declare_queue): expected the broker to refuse \
             with 541, but it accepted",
        ),
    ];
    for (text, failure) in variants {
        assert_ne!(text, fixture, "the variant changes the fixture");
        std::fs::write(dir.0.join("a.yaml"), &text).unwrap();
        let output = lessons(&["check", dir.path()]);
        assert_eq!(output.status.code(), Some(1), "{}", show(&output));
        assert!(
            stdout(&output).contains(failure),
            "{failure}\n{}",
            show(&output)
        );
    }
}

/// Going back a step replays from a reset, and the reset brings back the release the lesson
/// starts on, whatever a later `restart` changed.
#[tokio::test]
async fn going_back_undoes_a_restarts_configuration() {
    let lesson =
        lesson::load_file(&root().join("tests/lessons/restart/01-restart-permits.yaml")).unwrap();
    let mut run = LessonRun::start(lesson, Target::Embedded).await.unwrap();
    let summary = |run: &LessonRun| run.broker().unwrap().behaviour().summary();
    assert_eq!(summary(&run), "behaves as RabbitMQ 4.3");
    let first = run.run_step(0).await.unwrap();
    let refusal = &first.checks[0];
    assert_eq!(refusal.key, "do.declare_queue.refused");
    // One sentence in RabbitMQ's words, its lines joined.
    assert!(
        refusal.actual.starts_with(
            "`fx-worker` was refused: 541 INTERNAL_ERROR - Feature `transient_nonexcl_queues` \
             is deprecated. By default, this feature is not permitted anymore. The feature \
             will be removed"
        ),
        "{}",
        refusal.actual
    );
    assert!(!refusal.actual.contains('\n'), "{}", refusal.actual);
    run.run_step(1).await.unwrap();
    assert_eq!(
        summary(&run),
        "behaves as RabbitMQ 4.3 · permits transient_nonexcl_queues"
    );
    let report = run.run_step(0).await.unwrap();
    assert!(report.failures().next().is_none(), "{report:?}");
    assert_eq!(summary(&run), "behaves as RabbitMQ 4.3");
    run.close().await;
}

/// The view plays lessons on its own broker: lesson 16 restarts it as 4.3 with a permit and
/// as plain 4.3 again, every step holds there, and once the lesson closes the broker behaves
/// as it did before.
#[tokio::test]
async fn the_views_broker_plays_the_upgrade_lesson_and_behaves_as_before_afterwards() {
    let (url, broker) = common::start_embedded().await;
    let before = broker.behaviour();
    let lesson = lesson::load_file(&root().join("lessons/16-upgrade-to-4-3.yaml")).unwrap();
    let steps = lesson.steps.len();
    let target = Target::Shared {
        broker: broker.clone(),
        url,
    };
    let mut run = LessonRun::start(lesson, target).await.unwrap();
    assert_eq!(broker.behaviour().summary(), "behaves as RabbitMQ 4.3");
    for step in 0..steps {
        let report = run.run_step(step).await.unwrap();
        let failures: Vec<_> = report.failures().collect();
        assert!(failures.is_empty(), "step {}: {failures:?}", step + 1);
    }
    run.close().await;
    assert_eq!(broker.behaviour(), before);
}

#[test]
fn fixtures_pass_on_the_embedded_broker() {
    assert_all_ok(&lessons(&["check", "tests/lessons/ok"]));
}

/// The fixtures' step in vhost `fx-lab` is the same vhost for every run on RabbitMQ: runs there
/// take turns.
static FX_LAB: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn fx_lab_turn() -> std::sync::MutexGuard<'static, ()> {
    FX_LAB
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn fixtures_pass_on_rabbitmq() {
    let _turn = fx_lab_turn();
    assert_all_ok_on_rabbitmq(&check_on_rabbitmq("tests/lessons/ok"));
    // The run made vhost fx-lab for one step and removed it at the end.
    let (status, _) = management("GET", "/api/vhosts/fx-lab", "");
    assert_eq!(status, 404, "fx-lab is left behind");
}

/// All ok, and the restart step notes that the RabbitMQ was not restarted: it is shared, so a
/// lesson restarts it only when asked to.
fn assert_all_ok_on_rabbitmq(output: &Output) {
    assert_eq!(output.status.code(), Some(0), "{}", show(output));
    let text = stdout(output);
    let (notes, lines): (Vec<&str>, Vec<&str>) =
        text.lines().partition(|l| l.starts_with("    note: "));
    assert_eq!(lines, OK_LINES, "{}", show(output));
    assert_eq!(notes.len(), 1, "{}", show(output));
    assert!(
        notes[0].contains("step 9 (\"Restart\"): RabbitMQ was not restarted"),
        "{}",
        show(output)
    );
}

#[test]
fn the_fixtures_use_every_action_and_every_expectation() {
    let lessons = lesson::load_dir(&root().join("tests/lessons/ok")).unwrap();
    let text = serde_yaml::to_string(&lessons).unwrap();
    for action in lesson::schema::ACTIONS {
        assert!(
            text.contains(&format!("- {action}:")),
            "no `{action}` action"
        );
    }
    for key in [
        "routed:",
        "returned:",
        "dropped:",
        "depths:",
        "delivered:",
        "routing_key_matches:",
        "body_matches:",
        "predict:",
        "to_exchange:",
        "x-match: all",
        "x-match: any",
        "reply_queue:",
        "vhost:",
        "failure:",
        "ack: manual",
        "requeue: false",
        "x-message-ttl:",
        "expiration:",
        "client:",
        "explain:",
        "about: consumers",
        "about: ready",
        "call_monitor_timeout:",
        "ending: false",
        "refused: 405",
        "topology: true",
        "routed_as_recorded: true",
        "routed_as_recorded: false",
    ] {
        assert!(text.contains(key), "no `{key}` in the fixtures");
    }
}

/// A vhost of its own on RabbitMQ for one test, deleted when dropped.
struct Vhost(String);

impl Vhost {
    fn new(name: &str) -> Vhost {
        let about = r#"{"description": "lesson tests"}"#;
        let (status, _) = management("PUT", &format!("/api/vhosts/{name}"), about);
        assert!(
            status == 201 || status == 204,
            "create vhost {name}: {status}"
        );
        let perms = r#"{"configure": ".*", "write": ".*", "read": ".*"}"#;
        let (status, _) = management("PUT", &format!("/api/permissions/{name}/guest"), perms);
        assert!(
            status == 201 || status == 204,
            "permissions on {name}: {status}"
        );
        Vhost(name.to_string())
    }

    fn url(&self) -> String {
        let base = common::rabbitmq_url();
        let root = base.rsplit_once('/').unwrap().0;
        format!("{root}/{}", self.0)
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        management("DELETE", &format!("/api/vhosts/{}", self.0), "");
    }
}

#[test]
fn fixtures_pass_on_a_rabbitmq_vhost_of_their_own() {
    let _turn = fx_lab_turn();
    let vhost = Vhost::new(&format!("rabbitscope-lessons-{}", std::process::id()));
    assert_all_ok_on_rabbitmq(&lessons(&[
        "check",
        "tests/lessons/ok",
        "--broker",
        &vhost.url(),
    ]));
    // Tracing is off again, and the vhost keeps its description.
    let (status, answer) = management("GET", &format!("/api/vhosts/{}", vhost.0), "");
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(r#""tracing":false"#), "{answer}");
    assert!(
        answer.contains(r#""description":"lesson tests""#),
        "{answer}"
    );
}

// ---------------------------------------------------------------------------------------------
// Wrong expectations
// ---------------------------------------------------------------------------------------------

const WRONG: &str = "tests/lessons/wrong/01-wrong.yaml";

fn assert_wrong_reported(output: &Output) {
    assert_eq!(output.status.code(), Some(1), "{}", show(output));
    let step1 = format!("    {WRONG}: step 1 (\"Nothing matches\"): ");
    let step2 = format!("    {WRONG}: step 2 (\"Hello\"): ");
    let expected = [
        "FAILED  fxw-wrong (tests/lessons/wrong/01-wrong.yaml)".to_string(),
        format!("{step1}expect.routed: expected [fxw.a] but the message reached no queue"),
        format!("{step1}expect.returned: expected 1 but 0 messages were returned to the publisher"),
        format!("{step1}expect.dropped: expected 0 but 1 message was dropped: no queue took it"),
        format!("{step1}expect.depths.fxw.a: expected 1 but `fxw.a` has 0 messages ready"),
        format!(
            "{step1}expect.routing_key_matches: expected every routing key to match `^a\\.` \
             but `b.x` does not"
        ),
        format!(
            "{step1}predict.answer: expected [fxw.a] but of the choices, the message reached no queue"
        ),
        format!("{step2}expect.delivered.reader: expected 2 but `reader` received 1 message"),
        format!("{step2}expect.body_matches: expected every body to match `^bye$` but `hello` does not"),
        format!("{step2}predict.answer: expected [] but of the choices, messages went to `reader`"),
        format!("    {WRONG}: step 3: expect.depths.fxw.b: expected 1 but `fxw.b` has 0 messages ready"),
        format!("    {WRONG}: step 3: predict.answer: expected [1] but `fxw.b` has 0 messages ready"),
        format!("    {WRONG}: step 4: action 1 (reply): consumer `reader` has received no call to reply to"),
        "1 lesson: 0 ok, 1 failed".to_string(),
    ];
    let text = stdout(output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, expected, "{}", show(output));
}

#[test]
fn wrong_expectations_fail_on_the_embedded_broker() {
    assert_wrong_reported(&lessons(&["check", "tests/lessons/wrong"]));
}

/// `--lang zh`: the steps, the check sentences and the total in Chinese; `FAILED`, the file and
/// the expectation's key as written, so a script and an author still find them.
#[test]
fn wrong_expectations_are_said_in_chinese() {
    let output = lessons(&["check", "tests/lessons/wrong", "--lang", "zh"]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let text = stdout(&output);
    for said in [
        "FAILED  fxw-wrong (tests/lessons/wrong/01-wrong.yaml)",
        &format!("    {WRONG}: 第 1 步（“没有匹配”）: expect.routed：预期 "),
        &format!("    {WRONG}: 第 4 步：第 1 个动作（reply）："),
        "共 1 课：0 通过，1 失败",
    ] {
        assert!(text.contains(said), "no `{said}`:\n{}", show(&output));
    }
    for english in ["expected", "step ", "1 lesson"] {
        assert!(
            !text.contains(english),
            "`{english}` left:\n{}",
            show(&output)
        );
    }
}

#[test]
fn wrong_expectations_fail_on_rabbitmq() {
    assert_wrong_reported(&check_on_rabbitmq("tests/lessons/wrong"));
}

// ---------------------------------------------------------------------------------------------
// The shipped lessons
// ---------------------------------------------------------------------------------------------

fn shipped_lessons() -> Vec<PathBuf> {
    lesson::load::lesson_files(&root().join("lessons")).unwrap_or_default()
}

fn assert_shipped_ok(output: &Output, count: usize) {
    assert_eq!(output.status.code(), Some(0), "{}", show(output));
    let text = stdout(output);
    let noun = if count == 1 { "lesson" } else { "lessons" };
    assert!(
        text.contains(&format!("{count} {noun}: {count} ok, 0 failed")),
        "{}",
        show(output)
    );
}

#[test]
fn shipped_lessons_pass_on_the_embedded_broker() {
    let files = shipped_lessons();
    if files.is_empty() {
        eprintln!("lessons/ has no *.yaml yet: nothing to check");
        return;
    }
    assert_shipped_ok(&lessons(&["check", "lessons"]), files.len());
}

#[test]
fn shipped_lessons_pass_on_rabbitmq() {
    let files = shipped_lessons();
    if files.is_empty() {
        eprintln!("lessons/ has no *.yaml yet: nothing to check");
        return;
    }
    assert_shipped_ok(&check_on_rabbitmq("lessons"), files.len());
}

// ---------------------------------------------------------------------------------------------
// list, and the runner's API
// ---------------------------------------------------------------------------------------------

#[test]
fn list_shows_order_id_and_title_in_the_chosen_language() {
    let output = lessons(&["list", "tests/lessons/ok"]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    assert_eq!(
        lines,
        [
            "  1  fx-routes                    Routes",
            "  2  fx-consumers                 Consumers",
            "  3  fx-rpc                       RPC",
            "  4  fx-replay                    Replay",
        ]
    );
    let chinese = stdout(&lessons(&["list", "tests/lessons/ok", "--lang", "zh"]));
    assert!(
        chinese.contains("fx-consumers                 消费者"),
        "{chinese}"
    );
    let from_locale = Command::new(env!("CARGO_BIN_EXE_rabbitscope"))
        .current_dir(root())
        .env_remove("LC_ALL")
        .env("LC_MESSAGES", "zh_CN.UTF-8")
        .env("LANG", "en_US.UTF-8")
        .args(["lessons", "list", "tests/lessons/ok"])
        .output()
        .unwrap();
    assert!(
        stdout(&from_locale).contains("路由"),
        "{}",
        show(&from_locale)
    );
}

#[test]
fn list_refuses_an_unknown_language() {
    let output = lessons(&["list", "tests/lessons/ok", "--lang", "fr"]);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("expected `en` or `zh`"));
}

/// What the view's lesson player does: run steps, go back, judge a student's ticks.
#[tokio::test]
async fn a_run_steps_forward_goes_back_and_judges_predictions() {
    let routes = lesson::load_file(&root().join("tests/lessons/ok/01-routes.yaml")).unwrap();
    let mut run = LessonRun::start(routes, Target::Embedded).await.unwrap();
    assert!(run.amqp_url().starts_with("amqp://guest:guest@127.0.0.1:"));
    assert!(run.broker().is_some());

    let first = run.run_step(0).await.unwrap();
    assert_eq!(first.routed, ["fx.q2", "fx.q3"]);
    assert_eq!(first.predict_ok, Some(true));
    assert!(first.ok(), "{:?}", first.failures().collect::<Vec<_>>());
    let predict = run.lesson().steps[0].predict.clone().unwrap();
    assert!(predict.is_right(&["fx.q2", "fx.q3"], &first.routed));
    assert!(!predict.is_right(&["fx.q2"], &first.routed));
    assert!(!predict.is_right(&["fx.q1", "fx.q2", "fx.q3"], &first.routed));

    // Jumping ahead runs the steps between; step 3 publishes two messages.
    let third = run.run_step(2).await.unwrap();
    assert_eq!(third.publishes.len(), 2);
    assert!(third.ok(), "{:?}", third.failures().collect::<Vec<_>>());
    assert_eq!(run.next_step(), 3);

    // Going back replays: the depths are those of a first run again, not doubled.
    let again = run.run_step(2).await.unwrap();
    assert!(again.ok(), "{:?}", again.failures().collect::<Vec<_>>());

    // A student's own client sees the lesson's queues on the same broker.
    let conn = common::client::connect(run.amqp_url()).await;
    let ch = common::client::channel(&conn).await;
    let q = common::client::passive_queue(&ch, "fx.h-any")
        .await
        .unwrap();
    assert_eq!(q.message_count(), 3);
    let _ = conn.close(200, "OK".into()).await;

    run.replay_to(0).await.unwrap();
    assert_eq!(run.next_step(), 0);
    assert!(run.run_step(99).await.is_err());
    run.close().await;
}

/// A refused action fails its step; the next step runs on a fresh publishing channel.
#[tokio::test]
async fn a_run_goes_on_after_a_refused_publish() {
    let text = "id: refused\norder: 1\ntitle: { en: A, zh: 甲 }\nsetup:\n  queues: [{ name: fx-api.q }]\n\
                steps:\n  - say: { en: One, zh: 一 }\n    do:\n      \
                - publish: { exchange: fx-api.none, routing_key: x }\n  \
                - say: { en: Two, zh: 二 }\n    do:\n      - publish: { routing_key: fx-api.q }\n    \
                expect: { routed: [fx-api.q], depths: { fx-api.q: 1 } }\n";
    let refused = lesson::load_str(text, Path::new("refused.yaml")).unwrap();
    let mut run = LessonRun::start(refused, Target::Embedded).await.unwrap();
    let error = run.run_step(0).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("step 1: action 1 (publish): 404"),
        "{error}"
    );
    let second = run.run_step(1).await.unwrap();
    assert!(second.ok(), "{:?}", second.failures().collect::<Vec<_>>());
    // Going back to step 2 replays past the refused step 1.
    let again = run.run_step(1).await.unwrap();
    assert!(again.ok(), "{:?}", again.failures().collect::<Vec<_>>());
    run.close().await;
}

/// A program's exclusive queue: another program is refused, the queue goes when its owner's
/// connection closes, and a refusal that does not come fails the step.
const EXCLUSIVE: &str = r#"
id: fx-exclusive
order: 1
title: { en: Exclusive, zh: 排他 }
steps:
  - say: { en: Another program tries the owner's queue., zh: 另一个程序试用拥有者的队列。 }
    do:
      - declare_queue: { name: fx-excl.mine, exclusive: true, client: fx-owner }
      - consume: { queue: fx-excl.mine, consumer: nosy, client: fx-other, refused: 405 }
      - publish: { routing_key: fx-excl.mine, body: note, client: fx-other }
    expect: { routed: [fx-excl.mine] }
  - say: { en: The owner closes., zh: 拥有者关闭连接。 }
    do:
      - close: { client: fx-owner }
      - publish: { routing_key: fx-excl.mine, body: late, client: fx-other }
    expect: { routed: [], dropped: 1 }
  - say: { en: A plain queue is no one's., zh: 普通队列不属于谁。 }
    do:
      - declare_queue: { name: fx-excl.plain }
      - consume: { queue: fx-excl.plain, consumer: nosy, client: fx-other, refused: 405 }
"#;

/// Runs [`EXCLUSIVE`] and returns the refusal sentence of step 1, with the vhost's name as
/// `VHOST`, after checking steps 2 and 3.
async fn refusal_sentence(target: Target, vhost: &str) -> String {
    let lesson = lesson::load_str(EXCLUSIVE, Path::new("exclusive.yaml")).unwrap();
    let mut run = LessonRun::start(lesson, target).await.unwrap();
    let first = run.run_step(0).await.unwrap();
    assert!(first.ok(), "{:?}", first.failures().collect::<Vec<_>>());
    let refusals: Vec<&lesson::CheckResult> = first
        .checks
        .iter()
        .filter(|c| c.key == "do.consume.refused")
        .collect();
    assert_eq!(refusals.len(), 1, "{:?}", first.checks);
    let sentence = refusals[0].actual.replace(&format!("'{vhost}'"), "'VHOST'");
    let second = run.run_step(1).await.unwrap();
    assert!(second.ok(), "{:?}", second.failures().collect::<Vec<_>>());
    let third = run.run_step(2).await.unwrap_err().to_string();
    assert_eq!(
        third,
        "step 3: action 2 (consume): expected the broker to refuse with 405, but it accepted"
    );
    run.close().await;
    sentence
}

#[test]
fn an_exclusive_queue_is_refused_to_others_and_goes_with_its_owner_on_both_brokers() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let embedded = runtime.block_on(refusal_sentence(Target::Embedded, "/"));
    let vhost = Vhost::new(&format!("rabbitscope-excl-{}", std::process::id()));
    let rabbitmq = {
        let _turn = RABBITMQ.lock().unwrap_or_else(|p| p.into_inner());
        let target = Target::RabbitMq { url: vhost.url() };
        runtime.block_on(refusal_sentence(target, &vhost.0))
    };
    assert_eq!(
        rabbitmq,
        "`nosy` was refused: 405 RESOURCE_LOCKED - cannot obtain exclusive access to locked \
         queue 'fx-excl.mine' in vhost 'VHOST'. It could be originally declared on another \
         connection or the exclusive property value does not match that of the original \
         declaration."
    );
    assert_eq!(embedded, rabbitmq);
}

/// A lesson that plays Nova's services: each `client` is a connection of its own, named as
/// oslo.messaging names it, that publishes, consumes and replies; a restart reconnects them all.
const CLIENTS: &str = r#"
id: fx-clients
order: 1
title: { en: Clients, zh: 客户端 }
setup:
  exchanges: [{ name: fx.nova, type: topic }]
  queues: [{ name: fx.scheduler, durable: true }, { name: fx.reply }]
  bindings: [{ exchange: fx.nova, queue: fx.scheduler, routing_key: scheduler }]
steps:
  - say: { en: Up, zh: 起 }
    do:
      - consume: { queue: fx.scheduler, consumer: scheduler, ack: manual, prefetch: 1, client: nova-scheduler }
      - consume: { queue: fx.reply, consumer: conductor, client: nova-conductor }
  - say: { en: Call, zh: 调用 }
    do:
      - rpc: { exchange: fx.nova, routing_key: scheduler, method: select_destinations, call: true, reply_queue: fx.reply, client: nova-conductor }
      - publish: { routing_key: fx.reply, body: "from the lesson" }
    expect: { routed: [fx.scheduler, fx.reply], delivered: { scheduler: 1, conductor: 1 } }
  - say: { en: Reply, zh: 答复 }
    do:
      - reply: { consumer: scheduler, result: [node1] }
    expect: { routed: [fx.reply], delivered: { conductor: 1 } }
  - say: { en: Restart, zh: 重启 }
    do:
      - restart: {}
      - publish: { routing_key: fx.scheduler, body: boot, client: nova-compute@node1 }
    expect: { routed: [fx.scheduler] }
"#;

/// The connection ids by label (`nova-api`, `rabbitscope lesson fx-clients`...), but for the
/// one that deletes the lesson's objects, which may not be gone yet.
fn connections_by_label(broker: &rabbitscope::broker::Broker) -> Vec<(String, u64)> {
    let snapshot = broker.snapshot();
    let vhost = snapshot.vhost("/").unwrap();
    vhost
        .connections
        .iter()
        .map(|c| (c.label(), c.id))
        .filter(|(label, _)| !label.ends_with(" cleanup"))
        .collect()
}

fn id_of(connections: &[(String, u64)], label: &str) -> u64 {
    let found = connections.iter().find(|(l, _)| l == label);
    found
        .unwrap_or_else(|| panic!("no {label} in {connections:?}"))
        .1
}

/// Runs step `step` and returns the connections that published in it, in order.
async fn publishers_of_step(
    run: &mut LessonRun,
    events: &mut rabbitscope::events::EventReader,
    step: usize,
) -> Vec<u64> {
    use rabbitscope::events::{EventKind, Received};
    let report = run.run_step(step).await.unwrap();
    assert!(report.ok(), "{:?}", report.failures().collect::<Vec<_>>());
    let mut publishers = Vec::new();
    while let Some(received) = events.try_recv() {
        if let Received::Event(e) = received {
            if let EventKind::Published { routing_key, .. } = &e.kind {
                if !routing_key.starts_with(lesson::runner::PROBE_PREFIX) {
                    publishers.push(e.connection.unwrap());
                }
            }
        }
    }
    publishers
}

#[tokio::test]
async fn a_lessons_clients_are_connections_named_as_oslo_names_them() {
    let text = CLIENTS;
    let clients = lesson::load_str(text, Path::new("clients.yaml")).unwrap();
    let mut run = LessonRun::start(clients, Target::Embedded).await.unwrap();
    let broker = run.broker().unwrap().clone();
    let before = connections_by_label(&broker);
    let mut labels: Vec<&str> = before.iter().map(|(l, _)| l.as_str()).collect();
    labels.sort();
    assert_eq!(
        labels,
        [
            "nova-compute",
            "nova-conductor",
            "nova-scheduler",
            "rabbitscope lesson fx-clients"
        ]
    );
    let snapshot = broker.snapshot();
    let vhost = snapshot.vhost("/").unwrap();
    let pid = std::process::id().to_string();
    for c in &vhost.connections {
        let name = c.client.connection_name.as_deref().unwrap();
        if c.label().starts_with("nova-") {
            let parts: Vec<&str> = name.split(':').collect();
            assert_eq!(parts[..2], [c.label().as_str(), &pid], "{name}");
            assert_eq!(parts[2].len(), 36, "a uuid: {name}");
        }
    }

    let mut events = broker.subscribe();
    assert!(publishers_of_step(&mut run, &mut events, 0)
        .await
        .is_empty());
    let snapshot = broker.snapshot();
    let consumers: Vec<(&str, u64, bool, u16)> = snapshot
        .vhost("/")
        .unwrap()
        .consumers
        .iter()
        .map(|c| (c.queue.as_str(), c.connection, c.ack, c.prefetch))
        .collect();
    assert_eq!(
        consumers,
        [
            ("fx.reply", id_of(&before, "nova-conductor"), false, 0),
            ("fx.scheduler", id_of(&before, "nova-scheduler"), true, 1),
        ]
    );
    // The call goes out on the conductor's connection, the plain publish on the lesson's.
    assert_eq!(
        publishers_of_step(&mut run, &mut events, 1).await,
        [
            id_of(&before, "nova-conductor"),
            id_of(&before, "rabbitscope lesson fx-clients")
        ]
    );
    // The scheduler answers on its own connection.
    assert_eq!(
        publishers_of_step(&mut run, &mut events, 2).await,
        [id_of(&before, "nova-scheduler")]
    );
    // The restart closed every connection; each client is back, on a new one.
    let published = publishers_of_step(&mut run, &mut events, 3).await;
    let after = connections_by_label(&broker);
    assert_eq!(published, [id_of(&after, "nova-compute")]);
    assert_eq!(after.len(), before.len(), "{after:?}");
    for (label, id) in &after {
        assert_ne!(*id, id_of(&before, label), "{label} reconnected");
    }
    run.close().await;
}

/// The fixture's replay sends the trace's ten publishes again: each on the exchange, with the
/// routing key, properties and body it was recorded with, from a connection named as the
/// recording names its publisher (the lesson's own where the recording has no name for it, or
/// the replay's `client`).
#[tokio::test]
async fn a_replay_sends_each_recorded_publish_again_as_it_was_sent() {
    use rabbitscope::events::{EventKind, Received};
    let fixture = lesson::load_file(&root().join("tests/lessons/ok/04-replay.yaml")).unwrap();
    let trace =
        rabbitscope::trace::read(&root().join("assets/traces/nova-boot-classic.yaml")).unwrap();
    let mut names = std::collections::BTreeMap::new();
    let mut recorded = Vec::new();
    for e in &trace.events {
        match &e.kind {
            EventKind::ConnectionOpened { client, .. } => {
                names.insert(
                    e.connection.unwrap(),
                    client.connection_name.clone().unwrap(),
                );
            }
            EventKind::Published { .. } => recorded.push(e.clone()),
            _ => {}
        }
    }
    assert_eq!(recorded.len(), 10);
    let mut run = LessonRun::start(fixture, Target::Embedded).await.unwrap();
    let broker = run.broker().unwrap().clone();
    let mut events = broker.subscribe();
    let mut sent = Vec::new();
    for step in 0..4 {
        let report = run.run_step(step).await.unwrap();
        assert!(report.ok(), "{:?}", report.failures().collect::<Vec<_>>());
        while let Some(received) = events.try_recv() {
            if let Received::Event(e) = received {
                if let EventKind::Published { routing_key, .. } = &e.kind {
                    if !routing_key.starts_with(lesson::runner::PROBE_PREFIX) {
                        sent.push(e);
                    }
                }
            }
        }
    }
    let snapshot = broker.snapshot();
    let connections = &snapshot.vhost("/").unwrap().connections;
    let name_of = |id: u64| {
        let c = connections.iter().find(|c| c.id == id).unwrap();
        c.client.connection_name.clone().unwrap()
    };
    assert_eq!(sent.len(), recorded.len() + 1);
    // The last step sends publish 2 again, as its `client`.
    let again = sent.pop().unwrap();
    let conductor = format!("nova-conductor:{}:", std::process::id());
    assert!(name_of(again.connection.unwrap()).starts_with(&conductor));
    let body = |e: &rabbitscope::events::Event| match &e.kind {
        EventKind::Published { body_preview, .. } => body_preview.clone(),
        _ => unreachable!(),
    };
    assert_eq!(body(&again), body(&recorded[1]));
    for (number, (now, then)) in sent.iter().zip(&recorded).enumerate() {
        let (
            EventKind::Published {
                exchange,
                routing_key,
                body_preview,
                body_size,
                headers,
                properties,
                ..
            },
            EventKind::Published {
                exchange: x,
                routing_key: k,
                body_preview: b,
                headers: h,
                properties: p,
                ..
            },
        ) = (&now.kind, &then.kind)
        else {
            unreachable!()
        };
        let number = number + 1;
        assert_eq!((exchange, routing_key), (x, k), "publish {number}");
        assert_eq!(*body_size, b.len(), "publish {number}");
        assert_eq!(body_preview, b, "publish {number}");
        // RabbitMQ's firehose lists properties by name, the embedded broker in wire order.
        let sorted = |pairs: &[(String, String)]| {
            let mut pairs = pairs.to_vec();
            pairs.sort();
            pairs
        };
        assert_eq!(
            (headers, sorted(properties)),
            (h, sorted(p)),
            "publish {number}"
        );
        let publisher = then.connection.and_then(|id| names.get(&id).cloned());
        let expected = publisher.unwrap_or_else(|| "rabbitscope lesson fx-replay".to_string());
        assert_eq!(
            name_of(now.connection.unwrap()),
            expected,
            "publish {number}"
        );
    }
    run.close().await;
}

#[tokio::test]
async fn a_check_names_the_step_in_the_chosen_language() {
    let path = root().join(WRONG);
    let wrong = lesson::load_file(&path).unwrap();
    let check = lesson::check_lesson(&wrong, Target::Embedded, Lang::Zh).await;
    assert!(!check.ok());
    // The step and the check are said in Chinese; only the expectation's key stays as written
    // in the lesson file, so an author can find it.
    assert!(
        check.failures[0].contains(": 第 1 步（“没有匹配”）: expect.routed：预期 "),
        "{:?}",
        check.failures
    );
    assert!(
        !check.failures[0].contains("expected"),
        "{:?}",
        check.failures
    );
}

#[test]
fn the_language_follows_the_locale() {
    assert_eq!(Lang::from_locale("zh_CN.UTF-8"), Lang::Zh);
    assert_eq!(Lang::from_locale("zh_TW"), Lang::Zh);
    assert_eq!(Lang::from_locale("en_US.UTF-8"), Lang::En);
    assert_eq!(Lang::from_locale("C"), Lang::En);
    assert_eq!(Lang::from_locale(""), Lang::En);
}

// ---------------------------------------------------------------------------------------------
// Any input: an error or a lesson, never a panic
// ---------------------------------------------------------------------------------------------

fn fixture_texts() -> Vec<String> {
    [
        "ok/01-routes.yaml",
        "ok/02-consumers.yaml",
        "ok/03-rpc.yaml",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(root().join("tests/lessons").join(f)).unwrap())
    .collect()
}

proptest::proptest! {
    #[test]
    fn any_text_loads_or_is_refused_with_a_place(text in "\\PC{0,400}") {
        if let Err(e) = lesson::load_str(&text, Path::new("x.yaml")) {
            proptest::prop_assert!(e.location.is_some(), "{e}");
        }
    }

    #[test]
    fn a_damaged_fixture_loads_or_is_refused_with_a_place(
        which in 0usize..3,
        at in 0.0f64..1.0,
        cut in 0usize..40,
        insert in "[ :\\-\\[\\]{}#a-z0-9\n'\"]{0,8}",
    ) {
        let text = &fixture_texts()[which];
        let mut start = (text.len() as f64 * at) as usize;
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (start + cut).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        let damaged = format!("{}{}{}", &text[..start], insert, &text[end..]);
        if let Err(e) = lesson::load_str(&damaged, Path::new("x.yaml")) {
            let (line, column) = e.location.expect("a place");
            proptest::prop_assert!(line >= 1 && column >= 1, "{e}");
            proptest::prop_assert!(line <= damaged.lines().count().max(1) + 1, "{e}");
        }
    }
}

/// A folder of its own under the system's temporary directory, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(common::unique(what));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A lesson title holding a window-title change, a screen clear and a C1 CSI, and a broken file
/// whose error quotes an OSC 52 clipboard write: `lessons list` and `lessons check` show them
/// as escapes.
#[test]
fn lesson_text_reaches_the_terminal_escaped() {
    let dir = TempDir::new("escapes");
    let fixture = std::fs::read_to_string(root().join("tests/lessons/ok/01-routes.yaml")).unwrap();
    let titled = fixture.replace(
        "title: { en: Routes, zh: 路由 }",
        r#"title: { en: "Routes\e]0;owned\a\e[2J\x9b2J", zh: 路由 }"#,
    );
    assert_ne!(titled, fixture);
    std::fs::write(dir.0.join("01-escapes.yaml"), titled).unwrap();
    let broken = fixture.replace("id: fx-routes", "id: fx-broken\n\"\\e]52;c;eA==\\a\": 1");
    std::fs::write(dir.0.join("02-broken.yaml"), broken).unwrap();
    let raw = |text: &str| text.chars().any(|c| c.is_control() && c != '\n');

    let listed = lessons(&["list", dir.path()]);
    let (out, err) = (stdout(&listed), String::from_utf8_lossy(&listed.stderr));
    assert!(!raw(&out) && !raw(&err), "{}", show(&listed));
    assert!(
        out.contains(r"Routes\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}2J"),
        "{}",
        show(&listed)
    );
    assert!(err.contains(r"\u{1b}]52;c;eA==\u{7}"), "{}", show(&listed));

    let checked = lessons(&["check", dir.path()]);
    let text = show(&checked);
    assert!(!checked.status.success(), "{text}");
    assert!(!raw(&text.replace("\n", "")), "{text}");
    assert!(text.contains(r"\u{1b}]52;c;eA==\u{7}"), "{text}");
}

/// A 400 KB lesson of `[[[...]]]` is refused at once with the place nesting went too deep
/// (serde_yaml alone took minutes over it).
#[test]
fn deeply_nested_lessons_are_refused_with_their_place() {
    let dir = TempDir::new("nested");
    let depth = 200_000;
    let text = format!(
        "id: nested\norder: 1\ntitle: {{ en: Nested, zh: 嵌套 }}\nsteps: {}{}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    std::fs::write(dir.0.join("nested.yaml"), text).unwrap();
    for command in ["list", "check"] {
        let output = lessons(&[command, dir.path()]);
        let text = show(&output);
        assert!(!output.status.success(), "{text}");
        // The lesson's mapping is the first level and column 8 holds the first `[`: the 64th
        // `[` is the 65th level.
        assert!(
            text.contains("nested.yaml:4:71: expected at most 64 lists and mappings"),
            "{text}"
        );
    }
}
