//! What a step did ([`StepReport`]) and its expectations judged ([`CheckResult`]): the
//! `expect` keys and the `predict` answer, refusals the lesson expected, and the sentences that
//! tell a student what happened, in English and in Chinese.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::super::schema::{Action, Asked, Observed, Step};
use super::client::{lock, Client};
use super::{DEPTH_TIMEOUT, SAMPLE_EVERY};

/// One publish of a step and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishReport {
    pub exchange: String,
    pub routing_key: String,
    pub mandatory: bool,
    /// The queues it reached, sorted.
    pub queues: Vec<String>,
    /// Came back with basic.return.
    pub returned: bool,
    /// The broker refused it (publisher nack).
    pub nacked: bool,
    /// For a message a `replay` sent: where it went when it was recorded.
    pub recorded: Option<RecordedRoute>,
}

/// A replayed publish as its trace holds it: its number among the trace's publishes and the
/// queues it reached then, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRoute {
    pub number: u32,
    pub queues: Vec<String>,
}

/// One expectation, held or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// `expect.routed`, `expect.depths.Q1`, `predict.answer`...
    pub key: String,
    pub expected: String,
    /// What happened, worded to follow "but ": "the message reached `Q2`".
    pub actual: String,
    pub ok: bool,
    /// The check as a Chinese screen says it: what happened, and when it failed what was
    /// expected first.
    pub zh: String,
}

impl CheckResult {
    pub(super) fn new(
        key: String,
        ok: bool,
        (expected, actual): (String, String),
        zh: (String, String),
    ) -> Self {
        let zh = if ok {
            zh.1
        } else {
            format!("预期 {}，但 {}", zh.0, zh.1)
        };
        CheckResult {
            key,
            expected,
            actual,
            ok,
            zh,
        }
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {} but {}",
            self.key, self.expected, self.actual
        )
    }
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepReport {
    /// The step's index (0-based).
    pub step: usize,
    pub publishes: Vec<PublishReport>,
    /// Every queue the step's publishes reached, sorted.
    pub routed: Vec<String>,
    pub returned: u32,
    /// Unroutable and not returned: silently dropped.
    pub dropped: u32,
    /// Messages each consumer received during the step.
    pub delivered: BTreeMap<String, u32>,
    /// The step's `expect` keys, in the order of the format.
    pub checks: Vec<CheckResult>,
    /// The predict choices that came true: the right ticks (empty without a predict).
    pub truth: Vec<String>,
    /// Whether the author's `predict.answer` agrees with what happened (None: no predict).
    pub predict_ok: Option<bool>,
    /// The same as a check, for reporting.
    pub predict_check: Option<CheckResult>,
    /// What the reader should know about how the step ran (say, a restart that was skipped).
    pub notes: Vec<String>,
}

impl StepReport {
    /// Every expectation and the predict answer held.
    pub fn ok(&self) -> bool {
        self.failures().next().is_none()
    }

    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks
            .iter()
            .chain(self.predict_check.iter())
            .filter(|c| !c.ok)
    }
}

// ---------------------------------------------------------------------------------------------
// Judging a step: its report, then each `expect` key and the `predict` answer
// ---------------------------------------------------------------------------------------------

impl Client {
    pub(super) async fn report(&mut self, index: usize, step: &Step) -> StepReport {
        let publishes: Vec<PublishReport> =
            self.publishes.iter().map(|s| s.report.clone()).collect();
        let routed: BTreeSet<String> = publishes
            .iter()
            .flat_map(|p| p.queues.iter().cloned())
            .collect();
        let routed: Vec<String> = routed.into_iter().collect();
        let returned = publishes.iter().filter(|p| p.returned).count() as u32;
        let dropped = publishes
            .iter()
            .filter(|p| p.queues.is_empty() && !p.returned && !p.nacked)
            .count() as u32;
        let delivered: BTreeMap<String, u32> = self
            .consumers
            .keys()
            .map(|name| (name.clone(), self.delivered_this_step(name)))
            .collect();
        let mut report = StepReport {
            step: index,
            publishes,
            routed,
            returned,
            dropped,
            delivered,
            ..StepReport::default()
        };
        report.checks = self.checks(step, &report).await;
        if let Some(predict) = &step.predict {
            let ready = match (&predict.about, &predict.queue) {
                (Asked::Ready, Some(queue)) => self.depth(queue).await.ok(),
                _ => None,
            };
            let observed = Observed {
                routed: &report.routed,
                delivered: &report.delivered,
                ready,
            };
            let truth = predict.truth(&observed);
            let mut answer = predict.answer.clone();
            answer.sort();
            let mut sorted = truth.clone();
            sorted.sort();
            let ok = answer == sorted;
            let actual = match (predict.about, &predict.queue) {
                (Asked::Ready, Some(queue)) => match ready {
                    Some(n) => ready_text(queue, n),
                    None => format!("the ready messages of `{queue}` could not be read"),
                },
                (Asked::Consumers, _) => format!("of the choices, {}", received_text(&truth)),
                _ => format!("of the choices, {}", reached_text(&report, &truth)),
            };
            report.predict_ok = Some(ok);
            report.predict_check = Some(CheckResult {
                key: "predict.answer".to_string(),
                expected: list(&predict.answer),
                actual,
                ok,
                // The screen says the verdict in its own words (see the lesson pane).
                zh: String::new(),
            });
            report.truth = truth;
        }
        report
    }

    async fn checks(&mut self, step: &Step, report: &StepReport) -> Vec<CheckResult> {
        let expect = &step.expect;
        let mut checks = Vec::new();
        if let Some(routed) = &expect.routed {
            let mut wanted: Vec<String> = routed.clone();
            wanted.sort();
            wanted.dedup();
            checks.push(CheckResult::new(
                "expect.routed".to_string(),
                wanted == report.routed,
                (list(routed), reached_text(report, &report.routed)),
                (list(routed), reached_text_zh(report, &report.routed)),
            ));
        }
        for (key, wanted, got, what, what_zh) in [
            (
                "returned",
                expect.returned,
                report.returned,
                "returned to the publisher",
                "被退回给发布者",
            ),
            (
                "dropped",
                expect.dropped,
                report.dropped,
                "dropped: no queue took it",
                "被丢弃：没有队列接收",
            ),
        ] {
            if let Some(wanted) = wanted {
                let verb = if got == 1 { "was" } else { "were" };
                checks.push(CheckResult::new(
                    format!("expect.{key}"),
                    wanted == got,
                    (
                        wanted.to_string(),
                        format!("{got} {} {verb} {what}", messages(got)),
                    ),
                    (format!("{wanted} 条"), format!("{got} 条消息{what_zh}")),
                ));
            }
        }
        if let Some(depths) = &expect.depths {
            // RabbitMQ moves messages between queues on its own time (dead letters, expiry):
            // give the depths a moment to arrive before calling them wrong.
            let deadline = tokio::time::Instant::now() + DEPTH_TIMEOUT;
            let mut results = Vec::new();
            loop {
                results.clear();
                for (queue, wanted) in depths {
                    let (actual, actual_zh, ok) = match self.depth(queue).await {
                        Ok(n) => (ready_text(queue, n), ready_text_zh(queue, n), n == *wanted),
                        Err(e) => (e.to_string(), e.to_string(), false),
                    };
                    results.push(CheckResult::new(
                        format!("expect.depths.{queue}"),
                        ok,
                        (wanted.to_string(), actual),
                        (format!("{wanted} 条"), actual_zh),
                    ));
                }
                if results.iter().all(|r| r.ok) || tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(SAMPLE_EVERY * 2).await;
            }
            checks.append(&mut results);
        }
        if let Some(delivered) = &expect.delivered {
            for (consumer, wanted) in delivered {
                let got = report.delivered.get(consumer).copied().unwrap_or(0);
                checks.push(CheckResult::new(
                    format!("expect.delivered.{consumer}"),
                    got == *wanted,
                    (
                        wanted.to_string(),
                        format!("`{consumer}` received {got} {}", messages(got)),
                    ),
                    (
                        format!("{wanted} 条"),
                        format!("`{consumer}` 收到了 {got} 条消息"),
                    ),
                ));
            }
        }
        if let Some(wanted) = expect.routed_as_recorded {
            checks.push(as_recorded_check(wanted, &report.publishes));
        }
        if let Some(pattern) = &expect.routing_key_matches {
            let keys: Vec<&[u8]> = report
                .publishes
                .iter()
                .map(|p| p.routing_key.as_bytes())
                .collect();
            checks.push(match_all(
                "expect.routing_key_matches",
                [("routing key", "routing keys"), ("路由键", "路由键")],
                pattern,
                &keys,
                ["nothing was published", "没有发布任何消息"],
            ));
        }
        if let Some(pattern) = &expect.body_matches {
            let mut bodies: Vec<Vec<u8>> = Vec::new();
            for handle in self.consumers.values() {
                bodies.extend(lock(&handle.inbox).bodies.iter().cloned());
            }
            bodies.extend(self.got.iter().cloned());
            let bodies: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
            checks.push(match_all(
                "expect.body_matches",
                [("body", "bodies"), ("消息体", "消息体")],
                pattern,
                &bodies,
                ["no message was delivered", "没有投递任何消息"],
            ));
        }
        checks
    }
}

// ---------------------------------------------------------------------------------------------
// Checks made of one answer, and the sentences a student reads
// ---------------------------------------------------------------------------------------------

/// "`viewer` was refused: 405 RESOURCE_LOCKED - ...": who was refused is the consumer, or the
/// program (the lesson itself without one) that declared.
pub(super) fn refusal_check(action: &Action, code: u16, answer: &str) -> CheckResult {
    // RabbitMQ's longer texts (541's) come in several lines; the check is one sentence.
    let answer = answer.lines().map(str::trim).collect::<Vec<_>>().join(" ");
    let (who, who_zh) = match action {
        Action::Consume(c) => (format!("`{}`", c.consumer), format!("`{}`", c.consumer)),
        _ => match action.client() {
            Some(program) => (format!("`{program}`"), format!("`{program}`")),
            None => (
                "the lesson's connection".to_string(),
                "本课的连接".to_string(),
            ),
        },
    };
    CheckResult::new(
        format!("do.{}.refused", action.keyword()),
        true,
        (
            format!("a refusal with {code}"),
            format!("{who} was refused: {answer}"),
        ),
        (
            format!("以 {code} 拒绝"),
            format!("{who_zh} 被拒绝：{answer}"),
        ),
    )
}

/// Words of [`match_all`] in English and Chinese: what is matched (one, many).
type Nouns<'a> = [(&'a str, &'a str); 2];

/// "every routing key to match `re`": holds when there is at least one and all match.
fn match_all(
    key: &str,
    [(what, whats), (what_zh, _)]: Nouns,
    pattern: &str,
    texts: &[&[u8]],
    [none, none_zh]: [&str; 2],
) -> CheckResult {
    let expected = (
        format!("every {what} to match `{pattern}`"),
        format!("每个{what_zh}都匹配 `{pattern}`"),
    );
    let regex = match regex::Regex::new(pattern) {
        Ok(regex) => regex,
        Err(e) => {
            let actual = format!("the pattern is not a regular expression: {e}");
            return CheckResult::new(
                key.to_string(),
                false,
                (expected.0, actual.clone()),
                (expected.1, actual),
            );
        }
    };
    let first_miss = texts
        .iter()
        .map(|t| String::from_utf8_lossy(t))
        .find(|t| !regex.is_match(t));
    let (actual, actual_zh, ok) = match first_miss {
        _ if texts.is_empty() => (none.to_string(), none_zh.to_string(), false),
        Some(miss) => {
            let miss = shorten(&miss);
            (
                format!("`{miss}` does not"),
                format!("`{miss}` 不匹配"),
                false,
            )
        }
        None => (
            format!("all {} {whats} match `{pattern}`", texts.len()),
            format!("全部 {} 个{what_zh}都匹配 `{pattern}`", texts.len()),
            true,
        ),
    };
    CheckResult::new(
        key.to_string(),
        ok,
        (expected.0, actual),
        (expected.1, actual_zh),
    )
}

fn shorten(text: &str) -> String {
    const MAX: usize = 80;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        text.chars().take(MAX).collect::<String>() + "..."
    }
}

/// `expect.routed_as_recorded`: every replayed message reached the queues it reached when
/// recorded (`true`), or at least one did not (`false`).
fn as_recorded_check(wanted: bool, publishes: &[PublishReport]) -> CheckResult {
    let replayed: Vec<(&PublishReport, &RecordedRoute)> = publishes
        .iter()
        .filter_map(|p| p.recorded.as_ref().map(|r| (p, r)))
        .collect();
    let differ: Vec<&(&PublishReport, &RecordedRoute)> = replayed
        .iter()
        .filter(|(p, r)| p.queues != r.queues)
        .collect();
    let (actual, actual_zh) = match (replayed.len(), differ.first()) {
        (0, _) => (
            "no message was replayed".to_string(),
            "没有重放任何消息".to_string(),
        ),
        (n, None) => (
            format!(
                "{} replayed {} reached the queues {} reached when recorded",
                n,
                messages(n as u32),
                if n == 1 { "it" } else { "they" }
            ),
            format!("重放的 {n} 条消息都到达了录制时到达的队列"),
        ),
        (_, Some((p, r))) => (
            format!(
                "recorded publish {} reached {} where the recording saw {}",
                r.number,
                list(&p.queues),
                list(&r.queues)
            ),
            format!(
                "录制的第 {} 条发布到达了 {}，而录制时是 {}",
                r.number,
                list(&p.queues),
                list(&r.queues)
            ),
        ),
    };
    let as_recorded = !replayed.is_empty() && differ.is_empty();
    let expected = if wanted {
        "every replayed message to reach the queues it reached when recorded"
    } else {
        "a replayed message to reach other queues than when recorded"
    };
    let expected_zh = if wanted {
        "每条重放的消息都到达录制时的队列"
    } else {
        "有重放的消息到达与录制时不同的队列"
    };
    CheckResult::new(
        "expect.routed_as_recorded".to_string(),
        as_recorded == wanted && !replayed.is_empty(),
        (expected.to_string(), actual),
        (expected_zh.to_string(), actual_zh),
    )
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

fn messages(n: u32) -> &'static str {
    if n == 1 {
        "message"
    } else {
        "messages"
    }
}

/// "`a`", "`a` and `b`", "`a`, `b` and `c`": names as a student reads them.
fn names(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// "the message reached `Q2`", "the 3 messages reached no queue", "nothing was published".
fn reached_text(report: &StepReport, queues: &[String]) -> String {
    let reached = if queues.is_empty() {
        "no queue".to_string()
    } else {
        names(queues)
    };
    match report.publishes.len() {
        0 => "nothing was published".to_string(),
        1 => format!("the message reached {reached}"),
        n => format!("the {n} messages reached {reached}"),
    }
}

/// "`orange-watch` has 1 message ready".
fn ready_text(queue: &str, n: u32) -> String {
    format!("`{queue}` has {n} {} ready", messages(n))
}

/// [`ready_text`] in Chinese.
fn ready_text_zh(queue: &str, n: u32) -> String {
    format!("`{queue}` 有 {n} 条就绪消息")
}

/// [`reached_text`] in Chinese.
fn reached_text_zh(report: &StepReport, queues: &[String]) -> String {
    let quoted: Vec<String> = queues.iter().map(|q| format!("`{q}`")).collect();
    let reached = if quoted.is_empty() {
        "没有到达任何队列".to_string()
    } else {
        format!("到达了 {}", quoted.join("、"))
    };
    match report.publishes.len() {
        0 => "没有发布任何消息".to_string(),
        1 => format!("消息{reached}"),
        n => format!("{n} 条消息{reached}"),
    }
}

/// "messages went to `worker-a`", "no consumer received a message".
fn received_text(consumers: &[String]) -> String {
    if consumers.is_empty() {
        "no consumer received a message".to_string()
    } else {
        format!("messages went to {}", names(consumers))
    }
}
