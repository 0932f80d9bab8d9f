//! `replay`: a trace's publishes sent again as they were recorded, after the trace's exchanges,
//! queues and bindings when the action asks for them. Each goes out as the action's `client`,
//! else on a connection named as the recording names its publisher, else (a publisher the
//! recording never named) on the lesson's own connection.

use lapin::types::ShortString;
use lapin::BasicProperties;

use super::super::replay::RecordedPublish;
use super::super::schema::Replay;
use super::super::tap::Tap;
use super::checks::RecordedRoute;
use super::client::Client;
use super::convert::short;
use super::error::StepError;
use super::link::Link;

impl Client {
    pub(super) async fn replay(&mut self, replay: &Replay, tap: &mut Tap) -> Result<(), StepError> {
        let recording = self
            .recordings
            .get(&replay.trace)
            .ok_or_else(|| StepError::NoTrace(replay.trace.clone()))?
            .clone();
        if replay.topology {
            for x in &recording.exchanges {
                self.declare_exchange(x).await?;
            }
            for q in &recording.queues {
                self.declare_queue(q).await?;
            }
            for b in &recording.bindings {
                self.bind(b, true).await?;
            }
        }
        let Some((from, to)) = replay.range(recording.publishes.len() as u32) else {
            return Ok(());
        };
        for publish in recording.select(from, to) {
            // The lesson's program when it names one, so that one program is one connection.
            let by = match (&replay.client, &publish.publisher) {
                (Some(program), _) => Some(program.as_str()),
                (None, Some(name)) => {
                    self.open_recorded(name, tap).await?;
                    Some(name.as_str())
                }
                (None, None) => None,
            };
            self.publish(
                by,
                &publish.exchange,
                &publish.routing_key,
                &publish.body,
                recorded_properties(publish)?,
                false,
            )
            .await?;
            if let Some(sent) = self.publishes.last_mut() {
                sent.report.recorded = Some(RecordedRoute {
                    number: publish.number,
                    queues: publish.reached.clone(),
                });
            }
        }
        Ok(())
    }

    /// A connection named `name`, as the recording names a publisher, unless one is open.
    async fn open_recorded(&mut self, name: &str, tap: &mut Tap) -> Result<(), StepError> {
        if self.programs.contains_key(name) {
            return Ok(());
        }
        // Opening a link reads past what the tap reported: first the routes of this step.
        self.collect_routes(tap).await?;
        let link = Link::open(&self.url, name, tap)
            .await
            .map_err(|e| StepError::Reconnect(Box::new(e)))?;
        self.programs.insert(name.to_string(), link);
        Ok(())
    }
}

/// The basic properties of a recorded publish, from the text the trace keeps them as.
fn recorded_properties(publish: &RecordedPublish) -> Result<BasicProperties, StepError> {
    let mut props = BasicProperties::default();
    for (name, value) in &publish.properties {
        let wrong = || StepError::RecordedProperty {
            name: name.clone(),
            value: value.clone(),
        };
        type Setter = fn(BasicProperties, ShortString) -> BasicProperties;
        let text: Option<Setter> = match name.as_str() {
            "content_type" => Some(BasicProperties::with_content_type),
            "content_encoding" => Some(BasicProperties::with_content_encoding),
            "correlation_id" => Some(BasicProperties::with_correlation_id),
            "reply_to" => Some(BasicProperties::with_reply_to),
            "expiration" => Some(BasicProperties::with_expiration),
            "message_id" => Some(BasicProperties::with_message_id),
            "type" => Some(BasicProperties::with_type),
            "user_id" => Some(BasicProperties::with_user_id),
            "app_id" => Some(BasicProperties::with_app_id),
            "cluster_id" => Some(BasicProperties::with_cluster_id),
            _ => None,
        };
        props = match (text, name.as_str()) {
            (Some(set), _) => set(props, short(value)?),
            (None, "delivery_mode") => {
                props.with_delivery_mode(value.parse().map_err(|_| wrong())?)
            }
            (None, "priority") => props.with_priority(value.parse().map_err(|_| wrong())?),
            (None, "timestamp") => props.with_timestamp(value.parse().map_err(|_| wrong())?),
            (None, _) => return Err(wrong()),
        };
    }
    Ok(props)
}
