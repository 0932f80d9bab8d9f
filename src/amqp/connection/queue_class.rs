//! The queue class: declare, bind, unbind, purge, delete.
//!
//! Like the exchange class, these methods touch no wire state of the connection: each is one
//! broker call and the -ok it earns, which [`Connection::method`] writes unless the client
//! asked for nowait.

use amq_protocol::protocol::queue::{self, AMQPMethod};

use super::{binding_spec, not_from_client, Answer};
use crate::broker::{Broker, ChannelRef, QueueSpec, Target};

/// Carries out a queue method for channel `on`.
pub(super) fn answer(broker: &Broker, on: ChannelRef, method: &AMQPMethod) -> Answer<AMQPMethod> {
    Ok(match method {
        AMQPMethod::Declare(d) => {
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
            let ok = queue::DeclareOk {
                queue: declared.name.as_str().into(),
                message_count: declared.message_count,
                consumer_count: declared.consumer_count,
            };
            (AMQPMethod::DeclareOk(ok), d.nowait)
        }
        AMQPMethod::Bind(b) => {
            let target = Target::Queue(b.queue.as_str());
            broker.bind(
                on,
                binding_spec(target, &b.exchange, &b.routing_key, &b.arguments),
            )?;
            (AMQPMethod::BindOk(queue::BindOk {}), b.nowait)
        }
        AMQPMethod::Unbind(b) => {
            let target = Target::Queue(b.queue.as_str());
            broker.unbind(
                on,
                binding_spec(target, &b.exchange, &b.routing_key, &b.arguments),
            )?;
            // queue.unbind has no nowait flag: it is always answered.
            (AMQPMethod::UnbindOk(queue::UnbindOk {}), false)
        }
        AMQPMethod::Purge(p) => {
            let message_count = broker.queue_purge(on, p.queue.as_str())?;
            (
                AMQPMethod::PurgeOk(queue::PurgeOk { message_count }),
                p.nowait,
            )
        }
        AMQPMethod::Delete(d) => {
            let message_count =
                broker.queue_delete(on, d.queue.as_str(), d.if_unused, d.if_empty)?;
            (
                AMQPMethod::DeleteOk(queue::DeleteOk { message_count }),
                d.nowait,
            )
        }
        _ => return Err(not_from_client()),
    })
}
