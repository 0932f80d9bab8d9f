//! The exchange class: declare, delete, bind, unbind.

use amq_protocol::protocol::{exchange, AMQPClass};

use super::{binding_spec, Connection};
use crate::broker::{AmqpError, ExchangeSpec, Target};

impl Connection {
    pub(super) fn exchange_method(
        &mut self,
        ch: u16,
        method: &exchange::AMQPMethod,
    ) -> Result<(), AmqpError> {
        let (on, broker) = (self.on(ch), self.broker.clone());
        let (reply, nowait) = match method {
            exchange::AMQPMethod::Declare(d) => {
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
                (
                    exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {}),
                    d.nowait,
                )
            }
            exchange::AMQPMethod::Delete(d) => {
                broker.exchange_delete(on, d.exchange.as_str(), d.if_unused)?;
                (
                    exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {}),
                    d.nowait,
                )
            }
            exchange::AMQPMethod::Bind(b) => {
                let target = Target::Exchange(b.destination.as_str());
                broker.bind(
                    on,
                    binding_spec(target, &b.source, &b.routing_key, &b.arguments),
                )?;
                (exchange::AMQPMethod::BindOk(exchange::BindOk {}), b.nowait)
            }
            exchange::AMQPMethod::Unbind(b) => {
                let target = Target::Exchange(b.destination.as_str());
                broker.unbind(
                    on,
                    binding_spec(target, &b.source, &b.routing_key, &b.arguments),
                )?;
                (
                    exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {}),
                    b.nowait,
                )
            }
            _ => {
                return Err(AmqpError::command_invalid(
                    "method not expected from a client",
                ))
            }
        };
        if !nowait {
            self.reply(ch, AMQPClass::Exchange(reply));
        }
        Ok(())
    }
}
