//! Runs the commands the screen asks for ([`Command`]) on the embedded broker, through a
//! connection of the program's own in each vhost, and says what happened in a line.

use std::collections::HashMap;
use std::sync::Arc;

use amq_protocol::protocol::BasicProperties;
use amq_protocol::types::{AMQPValue, FieldTable, LongString};

use crate::broker::{Broker, ExchangeSpec, QueueSpec, Target};
use crate::events::ConnectionId;
use crate::ui::form::Command;

const CHANNEL: u16 = 1;

pub struct Session {
    broker: Arc<Broker>,
    connections: HashMap<String, ConnectionId>,
}

impl Session {
    pub fn new(broker: Arc<Broker>) -> Session {
        Session {
            broker,
            connections: HashMap::new(),
        }
    }

    fn connection(&mut self, vhost: &str) -> Result<ConnectionId, String> {
        if let Some(id) = self.connections.get(vhost) {
            // A restart closes every connection, the program's own too.
            if self.broker.is_open(*id) {
                return Ok(*id);
            }
        }
        let (id, _inbox) = self
            .broker
            .open_internal_connection(vhost, "rabbitscope view")
            .map_err(|e| e.text)?;
        self.connections.insert(vhost.to_string(), id);
        Ok(id)
    }

    /// Runs one command; the text says what happened, or the broker's error.
    pub fn run(&mut self, vhost: &str, command: Command) -> Result<String, String> {
        let id = self.connection(vhost)?;
        let b = &self.broker;
        let result = match command {
            Command::Publish {
                exchange,
                routing_key,
                headers,
                body,
            } => {
                let mut table = FieldTable::default();
                for (k, v) in &headers {
                    table.insert(
                        k.as_str().into(),
                        AMQPValue::LongString(LongString::from(v.as_str())),
                    );
                }
                let properties = if headers.is_empty() {
                    BasicProperties::default()
                } else {
                    BasicProperties::default().with_headers(table)
                };
                b.basic_publish(
                    id,
                    CHANNEL,
                    &exchange,
                    &routing_key,
                    false,
                    properties,
                    body.into_bytes().into(),
                )
                .map(|_| format!("published to '{exchange}' with key '{routing_key}'"))
            }
            Command::DeclareExchange { name, kind } => b
                .exchange_declare(
                    id,
                    CHANNEL,
                    ExchangeSpec {
                        name: name.clone(),
                        kind: kind.clone(),
                        ..Default::default()
                    },
                )
                .map(|_| format!("declared {kind} exchange '{name}'")),
            Command::DeclareQueue { name } => b
                .queue_declare(
                    id,
                    CHANNEL,
                    QueueSpec {
                        name,
                        ..Default::default()
                    },
                )
                .map(|q| format!("declared queue '{}'", q.name)),
            Command::Bind {
                exchange,
                queue,
                routing_key,
            } => b
                .bind(
                    id,
                    CHANNEL,
                    &exchange,
                    Target::Queue(&queue),
                    &routing_key,
                    FieldTable::default(),
                )
                .map(|_| format!("bound '{queue}' to '{exchange}' with '{routing_key}'")),
            Command::Unbind { binding } => {
                let what = format!(
                    "'{}' from '{}' with '{}'",
                    binding.destination, binding.source, binding.routing_key
                );
                match b.binding_arguments(vhost, &binding) {
                    // Someone else removed it first: say so rather than unbind nothing.
                    None => return Err(format!("no binding {what} any more")),
                    Some(arguments) => {
                        let target = if binding.destination_is_exchange {
                            Target::Exchange(&binding.destination)
                        } else {
                            Target::Queue(&binding.destination)
                        };
                        b.unbind(
                            id,
                            CHANNEL,
                            &binding.source,
                            target,
                            &binding.routing_key,
                            arguments,
                        )
                        .map(|_| format!("unbound {what}"))
                    }
                }
            }
            Command::DeleteExchange { name } => b
                .exchange_delete(id, CHANNEL, &name, false)
                .map(|_| format!("deleted exchange '{name}'")),
            Command::DeleteQueue { name } => b
                .queue_delete(id, CHANNEL, &name, false, false)
                .map(|n| format!("deleted queue '{name}' with {n} message(s)")),
            Command::Purge { queue } => b
                .queue_purge(id, CHANNEL, &queue)
                .map(|n| format!("purged {n} message(s) from '{queue}'")),
            Command::Get { queue } => b.basic_get(id, CHANNEL, &queue, true).map(|got| match got {
                Some(got) => format!(
                    "got from '{queue}': {} ({} left)",
                    String::from_utf8_lossy(&got.message.body[..got.message.body.len().min(60)]),
                    got.message_count
                ),
                None => format!("'{queue}' is empty"),
            }),
        };
        result.map_err(|e| e.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::BrokerConfig;

    #[test]
    fn a_binding_shown_on_screen_is_unbound_with_its_exact_arguments() {
        let broker = Broker::new(BrokerConfig::default());
        let mut session = Session::new(broker.clone());
        session
            .run("/", Command::DeclareQueue { name: "pdf".into() })
            .unwrap();
        // Typed arguments: the screen shows them as text, unbinding needs the originals.
        let mut arguments = FieldTable::default();
        arguments.insert("x-match".into(), AMQPValue::LongString("any".into()));
        arguments.insert("pages".into(), AMQPValue::LongInt(12));
        let (id, _inbox) = broker.open_internal_connection("/", "test").unwrap();
        broker
            .bind(id, 1, "amq.headers", Target::Queue("pdf"), "", arguments)
            .unwrap();
        let bindings = |b: &Broker| b.snapshot().vhost("/").unwrap().bindings.clone();
        let shown = bindings(&broker)
            .into_iter()
            .find(|b| &*b.source == "amq.headers")
            .expect("the binding is in the snapshot");
        let done = session
            .run(
                "/",
                Command::Unbind {
                    binding: shown.clone(),
                },
            )
            .unwrap();
        assert!(
            done.starts_with("unbound 'pdf' from 'amq.headers'"),
            "{done}"
        );
        assert!(bindings(&broker)
            .iter()
            .all(|b| &*b.source != "amq.headers"));
        // Twice: it is gone, and the screen says so.
        let again = session
            .run("/", Command::Unbind { binding: shown })
            .unwrap_err();
        assert!(again.contains("no binding"), "{again}");
    }

    #[test]
    fn commands_act_on_the_broker() {
        let broker = Broker::new(BrokerConfig::default());
        let mut session = Session::new(broker.clone());
        let run = |s: &mut Session, c| s.run("/", c);
        run(
            &mut session,
            Command::DeclareExchange {
                name: "animals".into(),
                kind: "topic".into(),
            },
        )
        .unwrap();
        run(&mut session, Command::DeclareQueue { name: "Q1".into() }).unwrap();
        run(
            &mut session,
            Command::Bind {
                exchange: "animals".into(),
                queue: "Q1".into(),
                routing_key: "*.orange.*".into(),
            },
        )
        .unwrap();
        run(
            &mut session,
            Command::Publish {
                exchange: "animals".into(),
                routing_key: "quick.orange.fox".into(),
                headers: vec![],
                body: "hi".into(),
            },
        )
        .unwrap();
        assert_eq!(broker.snapshot().vhost("/").unwrap().queues[0].ready, 1);
        let got = run(&mut session, Command::Get { queue: "Q1".into() }).unwrap();
        assert!(got.contains("hi") && got.contains("0 left"), "{got}");
        let err = run(
            &mut session,
            Command::Purge {
                queue: "nope".into(),
            },
        )
        .unwrap_err();
        assert!(err.starts_with("NOT_FOUND"), "{err}");
        run(
            &mut session,
            Command::DeleteExchange {
                name: "animals".into(),
            },
        )
        .unwrap();
        assert!(broker
            .snapshot()
            .vhost("/")
            .unwrap()
            .exchanges
            .iter()
            .all(|x| x.name != "animals"));
    }
}
