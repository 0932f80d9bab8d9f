//! Runs lessons for the view: a background task owns the lesson runner (a real AMQP client on
//! the embedded broker, so the lesson's traffic is drawn like any client's) and answers each
//! [`LessonRequest`] with an action on the view's channel.

use std::sync::Arc;

use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use crate::broker::Broker;
use crate::ui::action::Action;
use crate::ui::player::LessonRequest;

pub struct LessonDriver {
    requests: UnboundedSender<LessonRequest>,
}

impl LessonDriver {
    pub fn spawn(
        runtime: &tokio::runtime::Handle,
        broker: Arc<Broker>,
        address: &str,
        actions: UnboundedSender<Action>,
    ) -> LessonDriver {
        let (requests, mut incoming) = unbounded_channel::<LessonRequest>();
        let _ = (broker, address.to_string());
        runtime.spawn(async move {
            while let Some(request) = incoming.recv().await {
                let action = match request {
                    LessonRequest::Prepare { .. } => {
                        Action::LessonPrepared(Err("the lesson runner is not built yet".into()))
                    }
                    LessonRequest::Run { .. } => {
                        Action::LessonStepDone(Err("the lesson runner is not built yet".into()))
                    }
                };
                if actions.send(action).is_err() {
                    break;
                }
            }
        });
        LessonDriver { requests }
    }

    pub fn send(&self, request: LessonRequest) {
        let _ = self.requests.send(request);
    }
}
