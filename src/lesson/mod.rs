//! Lessons: YAML files that set up exchanges and queues, then walk a student through steps that
//! really run on a broker (lessons/README.md describes the format for authors).
//!
//! - [`schema`]: the file format as types.
//! - [`load`]: reading files; errors carry `file:line:col`.
//! - `validate`: the checks a lesson must pass once it parses.
//! - [`replay`]: the traces a `replay` action names, found and read, and checked at load time.
//! - [`runner`]: runs a lesson through a real AMQP client, on the embedded broker or a RabbitMQ,
//!   and reports what each step did against what it expected (a folder: life cycle, client,
//!   actions, checks, YAML-to-AMQP conversion).
//! - `tap`: where each publish went, as the broker reports it (events or the firehose).
//! - [`check`]: runs whole lessons and lists what failed (`rabbitscope lessons check`).
//!
//! Imports: the broker and the wire server (a lesson starts its own embedded broker), the
//! remote plumbing (a lesson on RabbitMQ), events. Never the view or the command line: they
//! use this module's public names.

pub mod check;
pub mod load;
pub mod oslo;
pub mod replay;
pub mod runner;
pub mod schema;
mod tap;
mod validate;

// What the view reads of a lesson and its run, so that it needs none of the submodules.
pub use runner::PROBE_PREFIX;
pub use schema::{Asked, Predict, Step};

pub use check::{check_lesson, LessonCheck};
pub use load::{load_dir, load_each, load_file, load_str, LessonError};
pub use runner::{CheckResult, LessonRun, PublishReport, RunError, StepError, StepReport, Target};
pub use schema::{Lang, Lesson, Text};
pub use tap::TapError;
