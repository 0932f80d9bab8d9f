//! The 406 PRECONDITION_FAILED rules for declaring again what exists: which differences
//! RabbitMQ refuses, and its words for them.

use amq_protocol::types::FieldTable;

use super::{ExchangeSpec, QueueSpec};
use crate::broker::args;
use crate::broker::error::{AmqpError, AmqpResult};
use crate::broker::exchange::{Exchange, ExchangeKind};
use crate::broker::queue::{Queue, QueueType};

/// 406 unless `spec` declares `existing` again as it is: same type, flags and arguments.
pub(super) fn check_exchange(
    existing: &Exchange,
    spec: &ExchangeSpec,
    kind: ExchangeKind,
    vhost: &str,
) -> AmqpResult<()> {
    let inequivalent = |arg: &str,
                        received: &dyn std::fmt::Display,
                        current: &dyn std::fmt::Display| {
        AmqpError::precondition_failed(format!(
            "inequivalent arg '{arg}' for exchange '{}' in vhost '{vhost}': received '{received}' but current is '{current}'",
            spec.name
        ))
    };
    if existing.kind != kind {
        return Err(inequivalent("type", &spec.kind, &existing.kind.as_str()));
    }
    if existing.durable != spec.durable {
        return Err(inequivalent("durable", &spec.durable, &existing.durable));
    }
    if existing.auto_delete != spec.auto_delete {
        return Err(inequivalent(
            "auto_delete",
            &spec.auto_delete,
            &existing.auto_delete,
        ));
    }
    if existing.internal != spec.internal {
        return Err(inequivalent("internal", &spec.internal, &existing.internal));
    }
    if args::pairs(&existing.arguments) != args::pairs(&spec.arguments) {
        return Err(AmqpError::precondition_failed(format!(
            "inequivalent arg 'arguments' for exchange '{}' in vhost '{vhost}'",
            spec.name
        )));
    }
    Ok(())
}

/// 406 unless `spec` declares `queue` (named `name`) again as it is: same flags, and the
/// same value for each argument RabbitMQ compares.
pub(super) fn check_queue(
    queue: &Queue,
    spec: &QueueSpec,
    name: &str,
    vhost: &str,
) -> AmqpResult<()> {
    let inequivalent = |arg: &str, received: bool, current: bool| {
        AmqpError::precondition_failed(format!(
            "inequivalent arg '{arg}' for queue '{name}' in vhost '{vhost}': received '{received}' but current is '{current}'"
        ))
    };
    if queue.durable != spec.durable {
        return Err(inequivalent("durable", spec.durable, queue.durable));
    }
    if queue.auto_delete != spec.auto_delete {
        return Err(inequivalent(
            "auto_delete",
            spec.auto_delete,
            queue.auto_delete,
        ));
    }
    if queue.owner.is_some() != spec.exclusive {
        return Err(inequivalent(
            "exclusive",
            spec.exclusive,
            queue.owner.is_some(),
        ));
    }
    // A stream compares the arguments it takes, in RabbitMQ's order for them.
    let checked = match queue.limits.queue_type {
        QueueType::Stream => crate::broker::stream::STREAM_ARGUMENTS,
        _ => CHECKED,
    };
    let classic = queue.limits.queue_type == QueueType::Classic;
    if let Some((arg, detail)) =
        inequivalent_argument(&queue.arguments, &spec.arguments, checked, classic)
    {
        return Err(AmqpError::precondition_failed(format!(
            "inequivalent arg '{arg}' for queue '{name}' in vhost '{vhost}': {detail}"
        )));
    }
    Ok(())
}

/// The arguments RabbitMQ compares on a redeclare of a classic or quorum queue.
const CHECKED: &[&str] = &[
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-delivery-limit",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-message-ttl",
    "x-overflow",
    "x-queue-type",
    "x-queue-mode",
    "x-quorum-initial-group-size",
];

/// The first of the `checked` queue arguments that differs, if any, with RabbitMQ's
/// description of the difference. For a `classic` queue, `x-queue-type: classic` and no
/// `x-queue-type` are the same (RabbitMQ 3.10 takes either on a redeclare).
fn inequivalent_argument(
    current: &FieldTable,
    received: &FieldTable,
    checked: &[&str],
    classic: bool,
) -> Option<(String, String)> {
    use crate::broker::exchange::value_text;
    let described = |v: &amq_protocol::types::AMQPValue| {
        format!(
            "the value '{}' of type '{}'",
            value_text(v),
            args::type_name(v)
        )
    };
    checked.iter().find_map(|key| {
        let now = current.inner().get(*key);
        let new = received.inner().get(*key);
        let is_classic = |v: Option<&amq_protocol::types::AMQPValue>| {
            v.is_none_or(|v| args::type_name(v) == "longstr" && value_text(v) == "classic")
        };
        if classic && *key == "x-queue-type" && is_classic(now) && is_classic(new) {
            return None;
        }
        let detail = match (new, now) {
            (None, None) => return None,
            (Some(a), Some(b)) if value_text(a) == value_text(b) => return None,
            (Some(a), Some(b))
                if args::type_name(a) == args::type_name(b) || (is_int(a) && is_int(b)) =>
            {
                format!(
                    "received '{}' but current is '{}'",
                    value_text(a),
                    value_text(b)
                )
            }
            (Some(a), Some(b)) => {
                format!("received {} but current is {}", described(a), described(b))
            }
            (None, Some(b)) => format!("received none but current is {}", described(b)),
            (Some(a), None) => format!("received {} but current is none", described(a)),
        };
        Some((key.to_string(), detail))
    })
}

fn is_int(v: &amq_protocol::types::AMQPValue) -> bool {
    matches!(
        args::type_name(v),
        "byte" | "unsignedbyte" | "short" | "unsignedshort" | "signedint" | "unsignedint" | "long"
    )
}
