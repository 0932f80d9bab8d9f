//! AMQP errors with RabbitMQ's codes and reply texts.

use std::fmt;

/// Whether an error closes the channel (soft) or the whole connection (hard).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Channel,
    Connection,
}

/// A refusal as the broker sends it: `404 NOT_FOUND - no queue 'x' in vhost '/'`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code} {text}")]
pub struct AmqpError {
    pub code: u16,
    /// The full reply text, e.g. `NOT_FOUND - no queue 'x' in vhost '/'`.
    pub text: String,
    pub scope: Scope,
}

macro_rules! constructors {
    ($($fn:ident, $code:expr, $name:expr, $scope:ident;)*) => {
        impl AmqpError {
            $(
                pub fn $fn(detail: impl fmt::Display) -> AmqpError {
                    AmqpError {
                        code: $code,
                        text: format!("{} - {}", $name, detail),
                        scope: Scope::$scope,
                    }
                }
            )*
        }
    };
}

constructors! {
    not_found, 404, "NOT_FOUND", Channel;
    access_refused, 403, "ACCESS_REFUSED", Channel;
    resource_locked, 405, "RESOURCE_LOCKED", Channel;
    precondition_failed, 406, "PRECONDITION_FAILED", Channel;
    connection_forced, 320, "CONNECTION_FORCED", Connection;
    frame_error, 501, "FRAME_ERROR", Connection;
    syntax_error, 502, "SYNTAX_ERROR", Connection;
    command_invalid, 503, "COMMAND_INVALID", Connection;
    channel_error, 504, "CHANNEL_ERROR", Connection;
    unexpected_frame, 505, "UNEXPECTED_FRAME", Connection;
    resource_error, 506, "RESOURCE_ERROR", Connection;
    not_allowed, 530, "NOT_ALLOWED", Connection;
    not_implemented, 540, "NOT_IMPLEMENTED", Connection;
    internal_error, 541, "INTERNAL_ERROR", Connection;
    connection_access_refused, 403, "ACCESS_REFUSED", Connection;
}

pub type AmqpResult<T> = Result<T, AmqpError>;
