//! Runs lessons for the view: a background task owns the lesson runner (a real AMQP client on
//! the embedded broker, so the lesson's traffic is drawn like any client's) and answers each
//! [`LessonRequest`] with an action on the view's channel.

use std::sync::Arc;

use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use crate::broker::Broker;
use crate::lesson::{LessonRun, StepReport, Target};
use crate::ui::action::Action;
use crate::ui::player::{Check, LessonFailure, LessonRequest, StepOutcome};

pub struct LessonDriver {
    requests: UnboundedSender<LessonRequest>,
}

impl LessonDriver {
    /// Starts the task on `runtime`; its lessons connect to `broker` at `address`.
    pub fn spawn(
        runtime: &tokio::runtime::Handle,
        broker: Arc<Broker>,
        address: &str,
        actions: UnboundedSender<Action>,
    ) -> LessonDriver {
        let (requests, mut incoming) = unbounded_channel::<LessonRequest>();
        let url = format!("amqp://guest:guest@{address}/%2f");
        runtime.spawn(async move {
            let mut run: Option<LessonRun> = None;
            while let Some(request) = incoming.recv().await {
                let action = match request {
                    LessonRequest::Prepare { lesson, steps } => {
                        let result = prepare(&mut run, &broker, &url, &lesson, steps).await;
                        Action::LessonPrepared(result)
                    }
                    LessonRequest::Run { step } => Action::LessonStepDone(match run.as_mut() {
                        Some(run) => run.run_step(step).await.map(outcome).map_err(Into::into),
                        None => Err(LessonFailure::NotOpen),
                    }),
                };
                if actions.send(action).is_err() {
                    break;
                }
            }
            if let Some(run) = run {
                run.close().await;
            }
        });
        LessonDriver { requests }
    }

    pub fn send(&self, request: LessonRequest) {
        let _ = self.requests.send(request);
    }
}

/// Opens the lesson (closing another one that was open) and replays it up to `steps`.
async fn prepare(
    run: &mut Option<LessonRun>,
    broker: &Arc<Broker>,
    url: &str,
    lesson: &crate::lesson::Lesson,
    steps: usize,
) -> Result<(), LessonFailure> {
    let same = run.as_ref().is_some_and(|r| r.lesson().id == lesson.id);
    if !same {
        if let Some(old) = run.take() {
            old.close().await;
        }
        let target = Target::Shared {
            broker: broker.clone(),
            url: url.to_string(),
        };
        let started = LessonRun::start(lesson.clone(), target).await;
        *run = Some(started?);
    }
    let run = run.as_mut().expect("opened above");
    Ok(run.replay_to(steps).await?)
}

/// The step's report as the lesson pane shows it.
fn outcome(report: StepReport) -> StepOutcome {
    StepOutcome {
        routed: report.routed,
        truth: report.truth,
        checks: report
            .checks
            .into_iter()
            .map(|c| Check {
                ok: c.ok,
                detail: if c.ok {
                    c.actual
                } else {
                    format!("expected {} but {}", c.expected, c.actual)
                },
                detail_zh: c.zh,
                key: c.key,
            })
            .collect(),
    }
}
