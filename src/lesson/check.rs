//! Whole lessons, run from start to end with every expectation and predict answer checked:
//! what `rabbitscope lessons check` prints.

use std::path::PathBuf;

use super::runner::{LessonRun, RunError, Target};
use super::schema::{Lang, Lesson};

/// The outcome of one lesson.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LessonCheck {
    pub id: String,
    pub path: PathBuf,
    /// One line per failed expectation or error, like
    /// `lessons/06-topic.yaml: step 3 ("Nothing matches"): expect.routed: expected [] but ...`.
    pub failures: Vec<String>,
    /// Notes on steps that ran differently (a restart skipped on RabbitMQ), one line each.
    pub notes: Vec<String>,
}

impl LessonCheck {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// `step 3 ("Nothing matches")`, or `step 3` for a step without a title.
pub fn step_label(lesson: &Lesson, index: usize, lang: Lang) -> String {
    let n = index + 1;
    match (lesson.steps.get(index).and_then(|s| s.title.as_ref()), lang) {
        (Some(title), Lang::En) => format!("step {n} (\"{}\")", title.get(lang)),
        (None, Lang::En) => format!("step {n}"),
        (Some(title), Lang::Zh) => format!("第 {n} 步（“{}”）", title.get(lang)),
        (None, Lang::Zh) => format!("第 {n} 步"),
    }
}

/// Runs every step of `lesson` on `target` and lists what did not hold. A step whose action
/// fails ends the run there.
pub async fn check_lesson(lesson: &Lesson, target: Target, lang: Lang) -> LessonCheck {
    let file = lesson.source.display().to_string();
    let mut check = LessonCheck {
        id: lesson.id.clone(),
        path: lesson.source.clone(),
        failures: Vec::new(),
        notes: Vec::new(),
    };
    let mut run = match LessonRun::start(lesson.clone(), target).await {
        Ok(run) => run,
        Err(e) => {
            check
                .failures
                .push(format!("{file}: {}", describe(lesson, &e, lang)));
            return check;
        }
    };
    for index in 0..lesson.steps.len() {
        match run.run_next().await {
            Ok(report) => {
                let label = step_label(lesson, index, lang);
                for failure in report.failures() {
                    let failure = match lang {
                        Lang::En => failure.to_string(),
                        Lang::Zh => format!("{}：{}", failure.key, failure.zh),
                    };
                    check.failures.push(format!("{file}: {label}: {failure}"));
                }
                for note in &report.notes {
                    check.notes.push(format!("{file}: {label}: {note}"));
                }
            }
            Err(e) => {
                check
                    .failures
                    .push(format!("{file}: {}", describe(lesson, &e, lang)));
                break;
            }
        }
    }
    run.close().await;
    check
}

/// A run error with the step's title.
fn describe(lesson: &Lesson, error: &RunError, lang: Lang) -> String {
    match error {
        RunError::Action {
            step,
            action,
            keyword,
            error,
        } => {
            let label = step_label(lesson, *step, lang);
            let n = action + 1;
            match lang {
                Lang::En => format!("{label}: action {n} ({keyword}): {error}"),
                Lang::Zh => format!("{label}：第 {n} 个动作（{keyword}）：{error}"),
            }
        }
        RunError::Observe {
            step: Some(step),
            error,
        } => format!("{}: {error}", step_label(lesson, *step, lang)),
        other => other.to_string(),
    }
}
