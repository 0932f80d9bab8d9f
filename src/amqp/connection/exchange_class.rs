//! The exchange class: declare, delete, bind, unbind.
//!
//! These methods touch no wire state of the connection: each is one broker call and the -ok
//! it earns, which [`Connection::method`] writes unless the client asked for nowait.

use amq_protocol::protocol::exchange::{self, AMQPMethod};

use super::{binding_spec, not_from_client, Answer};
use crate::broker::{Broker, ChannelRef, ExchangeSpec, Target};

/// Carries out an exchange method for channel `on`.
pub(super) fn answer(broker: &Broker, on: ChannelRef, method: &AMQPMethod) -> Answer<AMQPMethod> {
    Ok(match method {
        AMQPMethod::Declare(d) => {
            broker.exchange_declare(
                on,
                ExchangeSpec {
                    name: d.exchange.to_string(),
                    kind: d.kind.to_string(),
                    passive: d.passive,
                    durable: d.durable,
                    auto_delete: d.auto_delete,
                    internal: d.internal,
                    arguments: d.arguments.clone(),
                },
            )?;
            (AMQPMethod::DeclareOk(exchange::DeclareOk {}), d.nowait)
        }
        AMQPMethod::Delete(d) => {
            broker.exchange_delete(on, d.exchange.as_str(), d.if_unused)?;
            (AMQPMethod::DeleteOk(exchange::DeleteOk {}), d.nowait)
        }
        AMQPMethod::Bind(b) => {
            let target = Target::Exchange(b.destination.as_str());
            broker.bind(
                on,
                binding_spec(target, &b.source, &b.routing_key, &b.arguments),
            )?;
            (AMQPMethod::BindOk(exchange::BindOk {}), b.nowait)
        }
        AMQPMethod::Unbind(b) => {
            let target = Target::Exchange(b.destination.as_str());
            broker.unbind(
                on,
                binding_spec(target, &b.source, &b.routing_key, &b.arguments),
            )?;
            (AMQPMethod::UnbindOk(exchange::UnbindOk {}), b.nowait)
        }
        _ => return Err(not_from_client()),
    })
}
