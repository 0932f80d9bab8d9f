//! Runs a lesson on a broker through a real AMQP client (lapin), the same way on the embedded
//! broker and on RabbitMQ, and reports what each step did next to what it expected.
//!
//! Which queues a publish reached is read from the broker itself: the event stream of the
//! embedded broker, RabbitMQ's firehose otherwise (see `tap`). To tell its own publishes from
//! everybody else's, a run first publishes a probe with a unique routing key and notes the
//! connection and channel the broker reports it on.
//!
//! A player drives it like this:
//!
//! ```no_run
//! # async fn play(broker: std::sync::Arc<rabbitscope::broker::Broker>) -> Result<(), Box<dyn std::error::Error>> {
//! use rabbitscope::lesson::{load_file, LessonRun, Target};
//!
//! let lesson = load_file(std::path::Path::new("lessons/06-topic-exchange.yaml"))?;
//! let url = "amqp://guest:guest@127.0.0.1:5673/%2f".to_string();
//! let mut run = LessonRun::start(lesson, Target::Shared { broker, url }).await?;
//! let report = run.run_step(0).await?;            // what step 1 did, checks included
//! if let Some(predict) = &run.lesson().steps[0].predict {
//!     let right = predict.is_right(&["Q1"], &report.routed); // the student's ticks
//! #   let _ = right;
//! }
//! run.run_step(0).await?;                         // again: resets and replays up to it
//! run.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! The rooms, in the order a run uses them:
//! - [`lesson_run`]: [`LessonRun`], the run's life cycle: start, steps forward and back
//!   (a reset and a replay), other vhosts, cleanup at the end.
//! - `client`: the lesson's AMQP client (lapin), its connections and consumers, and how a step
//!   waits for the broker to report where its publishes went.
//! - `actions`: each `do` keyword performed on the broker, refusals expected or not.
//! - `replay`: a trace's messages published again as recorded, by connections named as recorded.
//! - `link`: one AMQP connection of the run with its confirm-mode publisher.
//! - [`checks`]: what a step did, and its `expect` and `predict` judged, in English and Chinese.
//! - [`convert`]: the lesson's YAML values as AMQP values, properties and short strings.
//! - [`error`]: [`RunError`] and [`StepError`].
//!
//! Nothing here draws on a screen or imports `ui`; the view drives a run from
//! `ui::lessons`.

mod actions;
pub mod checks;
mod client;
pub mod convert;
pub mod error;
pub mod lesson_run;
mod link;
mod replay;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::broker::Broker;

pub use checks::{CheckResult, PublishReport, RecordedRoute, StepReport};
pub use convert::{field_table, yaml_key};
pub use error::{RunError, StepError};
pub use lesson_run::{declared_names, LessonRun};

/// How long one broker operation may take before the run gives up on it.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);
/// How long to wait for the broker to report the route of a publish.
const ROUTE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the deliveries an expectation counts on.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(3);
/// How long `expect.depths` may take to come true after the step is quiet.
const DEPTH_TIMEOUT: Duration = Duration::from_secs(1);
/// Quiet means: nothing changed over this many samples, this far apart.
const QUIET_SAMPLES: usize = 3;
const SAMPLE_EVERY: Duration = Duration::from_millis(25);
const QUIET_TIMEOUT: Duration = Duration::from_secs(3);

/// The routing key prefix of the probe a run publishes to find its own connection in the
/// broker's reports; screens leave these messages out.
pub const PROBE_PREFIX: &str = "rabbitscope.probe.";

/// The broker a lesson runs on.
#[derive(Clone)]
pub enum Target {
    /// A fresh embedded broker on an ephemeral loopback port, started for this run alone.
    Embedded,
    /// An embedded broker the caller already serves at `url` (e.g. the live view's own).
    Shared { broker: Arc<Broker>, url: String },
    /// A RabbitMQ at this `amqp://` URL; its management API (same host, port 15672, same
    /// credentials) switches the firehose on for the run.
    RabbitMq { url: String },
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Embedded => f.write_str("Embedded"),
            Target::Shared { url, .. } => write!(f, "Shared({url})"),
            Target::RabbitMq { url } => write!(f, "RabbitMq({url})"),
        }
    }
}

/// Set to 1 to let lessons restart a RabbitMQ on this machine with `rabbitmqctl`.
pub const RESTART_RABBITMQ: &str = "RABBITSCOPE_RESTART_RABBITMQ";
