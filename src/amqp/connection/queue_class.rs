//! The queue class: declare, bind, unbind, purge, delete.

use amq_protocol::protocol::{queue, AMQPClass};

use super::{binding_spec, Connection};
use crate::broker::{AmqpError, QueueSpec, Target};

impl Connection {
    pub(super) fn queue_method(
        &mut self,
        ch: u16,
        method: &queue::AMQPMethod,
    ) -> Result<(), AmqpError> {
        let (on, broker) = (self.on(ch), self.broker.clone());
        let (reply, nowait) = match method {
            queue::AMQPMethod::Declare(d) => {
                let declared = broker.queue_declare(
                    on,
                    QueueSpec {
                        name: d.queue.to_string(),
                        passive: d.passive,
                        durable: d.durable,
                        exclusive: d.exclusive,
                        auto_delete: d.auto_delete,
                        arguments: d.arguments.clone(),
                    },
                )?;
                (
                    queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                        queue: declared.name.as_str().into(),
                        message_count: declared.message_count,
                        consumer_count: declared.consumer_count,
                    }),
                    d.nowait,
                )
            }
            queue::AMQPMethod::Bind(b) => {
                let target = Target::Queue(b.queue.as_str());
                broker.bind(
                    on,
                    binding_spec(target, &b.exchange, &b.routing_key, &b.arguments),
                )?;
                (queue::AMQPMethod::BindOk(queue::BindOk {}), b.nowait)
            }
            queue::AMQPMethod::Unbind(b) => {
                let target = Target::Queue(b.queue.as_str());
                broker.unbind(
                    on,
                    binding_spec(target, &b.exchange, &b.routing_key, &b.arguments),
                )?;
                (queue::AMQPMethod::UnbindOk(queue::UnbindOk {}), false)
            }
            queue::AMQPMethod::Purge(p) => {
                let message_count = broker.queue_purge(on, p.queue.as_str())?;
                (
                    queue::AMQPMethod::PurgeOk(queue::PurgeOk { message_count }),
                    p.nowait,
                )
            }
            queue::AMQPMethod::Delete(d) => {
                let message_count =
                    broker.queue_delete(on, d.queue.as_str(), d.if_unused, d.if_empty)?;
                (
                    queue::AMQPMethod::DeleteOk(queue::DeleteOk { message_count }),
                    d.nowait,
                )
            }
            _ => {
                return Err(AmqpError::command_invalid(
                    "method not expected from a client",
                ))
            }
        };
        if !nowait {
            self.reply(ch, AMQPClass::Queue(reply));
        }
        Ok(())
    }
}
