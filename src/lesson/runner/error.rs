//! Why a run, or one step's action, could not go on.
//!
//! [`StepError`] is what went wrong inside a step (the broker refused, a name is too long, a
//! consumer is unknown); [`RunError`] says where in the lesson it happened. Both print the
//! sentence a student or `lessons check` reads. This file imports only other error types.

use std::fmt;

use super::super::tap::TapError;
use super::OPERATION_TIMEOUT;
use crate::remote::RemoteError;

/// Why a run could not go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The embedded broker could not listen.
    #[error("cannot start a broker: {0}")]
    Start(String),
    /// RabbitMQ's firehose, through which a run sees where its publishes went, did not open.
    #[error(transparent)]
    Tap(#[from] TapError),
    /// The broker's URL does not parse.
    #[error("{url}: {message}")]
    Url { url: String, message: String },
    /// A step's `vhost` could not be made on the RabbitMQ.
    #[error("cannot make vhost '{vhost}': {error}")]
    Vhost { vhost: String, error: RemoteError },
    /// The broker could not be reached (`name`: as which of the lesson's programs).
    #[error("cannot connect to {url}{}: {error}", As(.name))]
    Connect {
        url: String,
        name: Option<String>,
        error: StepError,
    },
    /// A channel of the run's own could not be opened (`channel.open`) or put in confirm mode.
    #[error("{method}: {error}")]
    Channel {
        method: &'static str,
        error: StepError,
    },
    /// The probe that tells the run's publishes from others' could not be published.
    #[error("publishing the probe: {0}")]
    Probe(StepError),
    /// Creating the lesson's `setup` failed; `what` is like ``exchanges[0] `animals` ``.
    #[error("setup.{what}: {error}")]
    Setup { what: String, error: StepError },
    /// An action failed; `action` is its index in the step's `do` (0-based).
    #[error("step {}: action {} ({keyword}): {error}", .step + 1, .action + 1)]
    Action {
        step: usize,
        action: usize,
        keyword: &'static str,
        error: StepError,
    },
    /// The run lost track of what the broker did.
    #[error("{}{error}", InStep(.step))]
    Observe {
        step: Option<usize>,
        error: StepError,
    },
    #[error("there is no step {}", .0 + 1)]
    NoSuchStep(usize),
    /// The last reset failed, so there is nothing to run a step on; reset again.
    #[error("the lesson is not set up (the last reset failed)")]
    NotConnected,
}

impl RunError {
    /// The run has no working connection to the broker: replaying further steps is pointless.
    pub fn connection_lost(&self) -> bool {
        !matches!(
            self,
            RunError::Setup { .. }
                | RunError::Action { .. }
                | RunError::Observe { .. }
                | RunError::NoSuchStep(_)
        )
    }
}

/// What went wrong inside a step: in an action, or in watching what the broker did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The broker closed the channel or connection with this reply:
    /// "404 NOT_FOUND - no queue 'q' in vhost '/'".
    #[error("{code} {text}")]
    Refused { code: u16, text: String },
    /// The client library failed otherwise (a connection gone, say), in its own words.
    #[error("{0}")]
    Client(String),
    #[error("no answer from the broker within {} s", OPERATION_TIMEOUT.as_secs())]
    NoAnswer,
    /// A name, key or property longer than AMQP's short strings; `start` is its beginning.
    #[error("`{start}...` is {bytes} bytes long; AMQP allows at most 255")]
    TooLong { start: String, bytes: usize },
    #[error("client `{0}` is not connected")]
    ClientClosed(String),
    #[error("client `{0}` has no connection in this vhost")]
    NoConnection(String),
    #[error("there is no consumer `{0}`")]
    NoConsumer(String),
    #[error("consumer `{0}` has received no call to reply to")]
    NoCall(String),
    #[error("the trace `{0}` could not be read when the run started")]
    NoTrace(String),
    #[error("the recorded property `{name}` = `{value}` cannot be sent again")]
    RecordedProperty { name: String, value: String },
    #[error("consumer `{0}` acknowledges automatically")]
    AutoAck(String),
    #[error("consumer `{consumer}` holds {held} unacked message{}, fewer than {wanted}", if *.held == 1 { "" } else { "s" })]
    FewUnacked {
        consumer: String,
        held: usize,
        wanted: u32,
    },
    /// An action that expected a refusal with `code` met another error.
    #[error("expected the broker to refuse with {code}, but it answered {answer}")]
    NotRefused { code: u16, answer: Box<StepError> },
    /// An action that expected a refusal with `code` was accepted.
    #[error("expected the broker to refuse with {code}, but it accepted")]
    Accepted { code: u16 },
    #[error("`{0}` does not exist")]
    NoQueue(String),
    #[error("the broker reported the route of {routed} of {sent} publishes within {} s", super::ROUTE_TIMEOUT.as_secs())]
    RoutesMissing { routed: usize, sent: usize },
    /// The broker reported a publish of the run's channel that is not the one sent next.
    #[error(
        "the broker reported a publish to `{exchange}` with key `{routing_key}` where \
         `{expected_exchange}` with key `{expected_key}` was expected"
    )]
    WrongRoute {
        exchange: String,
        routing_key: String,
        expected_exchange: String,
        expected_key: String,
    },
    #[error(transparent)]
    Tap(#[from] TapError),
    #[error("the broker never reported the probe publish (is tracing on?)")]
    ProbeUnseen,
    /// The embedded broker could not reload what it keeps on disk.
    #[error("the broker could not restart: {0}")]
    Restart(String),
    /// The task restarting the embedded broker panicked or was cancelled.
    #[error("{0}")]
    RestartTask(String),
    #[error("cannot run rabbitmqctl to restart RabbitMQ: {0}")]
    NoRabbitmqctl(String),
    #[error("rabbitmqctl {command}: {stderr}")]
    Rabbitmqctl {
        command: &'static str,
        stderr: String,
    },
    /// Connecting again after a restart failed.
    #[error("{0}")]
    Reconnect(Box<RunError>),
}

impl StepError {
    /// The broker's refusal with its reply code and text, lapin's words otherwise.
    pub fn from_lapin(e: &lapin::Error) -> StepError {
        match e.kind() {
            lapin::ErrorKind::ProtocolError(p) => StepError::Refused {
                code: p.get_id(),
                text: p.get_message().to_string(),
            },
            _ => StepError::Client(e.to_string()),
        }
    }

    /// The reply code of a broker's refusal.
    pub fn refusal_code(&self) -> Option<u16> {
        match self {
            StepError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// " as NAME", or nothing.
struct As<'a>(&'a Option<String>);

impl fmt::Display for As<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(name) => write!(f, " as {name}"),
            None => Ok(()),
        }
    }
}

/// "step N: ", or nothing for what went wrong between steps.
struct InStep<'a>(&'a Option<usize>);

impl fmt::Display for InStep<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(step) => write!(f, "step {}: ", step + 1),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> StepError {
        StepError::Refused {
            code: 404,
            text: "NOT_FOUND - no exchange 'x' in vhost '/'".into(),
        }
    }

    #[test]
    fn a_run_error_says_where_in_the_lesson() {
        let action = RunError::Action {
            step: 1,
            action: 0,
            keyword: "publish",
            error: refused(),
        };
        assert_eq!(
            action.to_string(),
            "step 2: action 1 (publish): 404 NOT_FOUND - no exchange 'x' in vhost '/'"
        );
        let between = RunError::Observe {
            step: None,
            error: StepError::ProbeUnseen,
        };
        assert_eq!(
            between.to_string(),
            "the broker never reported the probe publish (is tracing on?)"
        );
        let in_step = RunError::Observe {
            step: Some(0),
            error: StepError::RoutesMissing { routed: 1, sent: 2 },
        };
        assert_eq!(
            in_step.to_string(),
            "step 1: the broker reported the route of 1 of 2 publishes within 10 s"
        );
        assert_eq!(RunError::NoSuchStep(2).to_string(), "there is no step 3");
    }

    #[test]
    fn a_connection_names_the_program_when_there_is_one() {
        let connect = |name: Option<&str>| RunError::Connect {
            url: "amqp://h".into(),
            name: name.map(str::to_string),
            error: StepError::NoAnswer,
        };
        assert_eq!(
            connect(None).to_string(),
            "cannot connect to amqp://h: no answer from the broker within 15 s"
        );
        assert_eq!(
            connect(Some("nova-api")).to_string(),
            "cannot connect to amqp://h as nova-api: no answer from the broker within 15 s"
        );
        assert!(connect(None).connection_lost());
        assert!(!RunError::NoSuchStep(0).connection_lost());
    }

    #[test]
    fn refusals_keep_their_code() {
        assert_eq!(refused().refusal_code(), Some(404));
        assert_eq!(StepError::NoAnswer.refusal_code(), None);
        let wrong = StepError::NotRefused {
            code: 405,
            answer: Box::new(refused()),
        };
        assert_eq!(
            wrong.to_string(),
            "expected the broker to refuse with 405, but it answered 404 NOT_FOUND - no \
             exchange 'x' in vhost '/'"
        );
        let few = |held| StepError::FewUnacked {
            consumer: "w".into(),
            held,
            wanted: 3,
        };
        assert_eq!(
            few(1).to_string(),
            "consumer `w` holds 1 unacked message, fewer than 3"
        );
        assert_eq!(
            few(2).to_string(),
            "consumer `w` holds 2 unacked messages, fewer than 3"
        );
    }
}
