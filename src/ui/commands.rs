//! Runs the commands the screen asks for ([`Command`]) on the embedded broker, through a
//! connection of the program's own in each vhost, and says what happened in a line.

use std::collections::HashMap;
use std::sync::Arc;

use amq_protocol::protocol::BasicProperties;
use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::broker::{
    AmqpError, BindingSpec, Broker, ChannelRef, ExchangeSpec, Publish, QueueSpec, Target,
};
use crate::events::ConnectionId;
use crate::lesson::Lang;
use crate::ui::form::{Command, Pairs, Properties, Value};

/// Why a command from the screen did not happen; the text is the notice the screen shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The broker refused, in RabbitMQ's words (`NOT_FOUND - no queue 'x' in vhost '/'`).
    #[error("{}", .0.text)]
    Refused(AmqpError),
    /// The binding to remove was removed by someone else first; `what` describes it.
    #[error("no binding {0} any more")]
    NoBinding(String),
    /// The view watches a broker it cannot act on (a remote one, a replay).
    #[error("this view only watches; it cannot act on that broker")]
    WatchOnly,
}

pub struct Session {
    broker: Arc<Broker>,
    connections: HashMap<String, ConnectionId>,
    /// The language of the notices it returns.
    lang: Lang,
}

impl Session {
    pub fn new(broker: Arc<Broker>) -> Session {
        Session {
            broker,
            connections: HashMap::new(),
            lang: Lang::En,
        }
    }

    /// A session that says what happened in `lang` (the broker's errors keep RabbitMQ's words).
    pub fn speaking(mut self, lang: Lang) -> Session {
        self.lang = lang;
        self
    }

    fn connection(&mut self, vhost: &str) -> Result<ConnectionId, CommandError> {
        if let Some(id) = self.connections.get(vhost) {
            // A restart closes every connection, the program's own too.
            if self.broker.is_open(*id) {
                return Ok(*id);
            }
        }
        let (id, _inbox) = self
            .broker
            .open_internal_connection(vhost, "rabbitscope view")
            .map_err(CommandError::Refused)?;
        self.connections.insert(vhost.to_string(), id);
        Ok(id)
    }

    /// Runs one command; the text says what happened, or the broker's error.
    pub fn run(&mut self, vhost: &str, command: Command) -> Result<String, CommandError> {
        let on = ChannelRef::internal(self.connection(vhost)?);
        let b = &self.broker;
        let zh = self.lang == Lang::Zh;
        // The notice in the session's language.
        let say = |en: String, zh_text: String| if zh { zh_text } else { en };
        let result = match command {
            Command::Publish {
                exchange,
                routing_key,
                headers,
                properties,
                body,
            } => b
                .basic_publish(
                    on,
                    Publish {
                        exchange: &exchange,
                        routing_key: &routing_key,
                        mandatory: false,
                        properties: basic_properties(&headers, &properties),
                        body: body.into_bytes().into(),
                    },
                )
                .map(|_| {
                    say(
                        format!("published to '{exchange}' with key '{routing_key}'"),
                        format!("已发布到 '{exchange}'，路由键 '{routing_key}'"),
                    )
                }),
            Command::DeclareExchange {
                name,
                kind,
                durable,
                auto_delete,
                internal,
                arguments,
            } => b
                .exchange_declare(
                    on,
                    ExchangeSpec {
                        name: name.clone(),
                        kind: kind.clone(),
                        durable,
                        auto_delete,
                        internal,
                        arguments: field_table(&arguments),
                        ..Default::default()
                    },
                )
                .map(|_| {
                    say(
                        format!("declared {kind} exchange '{name}'"),
                        format!("已声明 {kind} 交换器 '{name}'"),
                    )
                }),
            Command::DeclareQueue {
                name,
                durable,
                auto_delete,
                exclusive,
                arguments,
            } => b
                .queue_declare(
                    on,
                    QueueSpec {
                        name,
                        durable,
                        auto_delete,
                        exclusive,
                        arguments: field_table(&arguments),
                        ..Default::default()
                    },
                )
                .map(|q| {
                    say(
                        format!("declared queue '{}'", q.name),
                        format!("已声明队列 '{}'", q.name),
                    )
                }),
            Command::Bind {
                exchange,
                queue,
                routing_key,
            } => b
                .bind(
                    on,
                    BindingSpec {
                        source: &exchange,
                        target: Target::Queue(&queue),
                        routing_key: &routing_key,
                        arguments: FieldTable::default(),
                    },
                )
                .map(|_| {
                    say(
                        format!("bound '{queue}' to '{exchange}' with '{routing_key}'"),
                        format!("已用 '{routing_key}' 把 '{queue}' 绑定到 '{exchange}'"),
                    )
                }),
            Command::Unbind { binding } => {
                let what = format!(
                    "'{}' from '{}' with '{}'",
                    binding.destination, binding.source, binding.routing_key
                );
                match b.binding_arguments(vhost, &binding) {
                    // Someone else removed it first: say so rather than unbind nothing.
                    None => return Err(CommandError::NoBinding(what)),
                    Some(arguments) => {
                        let target =
                            Target::named(&binding.destination, binding.destination_is_exchange);
                        let spec = BindingSpec {
                            source: &binding.source,
                            target,
                            routing_key: &binding.routing_key,
                            arguments,
                        };
                        b.unbind(on, spec)
                            .map(|_| say(format!("unbound {what}"), format!("已解除绑定 {what}")))
                    }
                }
            }
            Command::DeleteExchange { name } => b.exchange_delete(on, &name, false).map(|_| {
                say(
                    format!("deleted exchange '{name}'"),
                    format!("已删除交换器 '{name}'"),
                )
            }),
            Command::DeleteQueue { name } => b.queue_delete(on, &name, false, false).map(|n| {
                say(
                    format!("deleted queue '{name}' with {n} message(s)"),
                    format!("已删除队列 '{name}' 及其 {n} 条消息"),
                )
            }),
            Command::Purge { queue } => b.queue_purge(on, &queue).map(|n| {
                say(
                    format!("purged {n} message(s) from '{queue}'"),
                    format!("已从 '{queue}' 清空 {n} 条消息"),
                )
            }),
            Command::Get { queue } => b.basic_get(on, &queue, true).map(|got| match got {
                Some(got) => {
                    let body = String::from_utf8_lossy(
                        &got.message.body[..got.message.body.len().min(60)],
                    );
                    let left = got.message_count;
                    say(
                        format!("got from '{queue}': {body} ({left} left)"),
                        format!("从 '{queue}' 取到：{body}（还剩 {left} 条）"),
                    )
                }
                None => say(format!("'{queue}' is empty"), format!("'{queue}' 是空的")),
            }),
        };
        result.map_err(CommandError::Refused)
    }
}

/// Typed pairs as an AMQP table: integers as signed 64-bit, as RabbitMQ's own clients send them.
fn field_table(pairs: &Pairs) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in pairs {
        let value = match v {
            Value::Int(n) => AMQPValue::LongLongInt(*n),
            Value::Bool(b) => AMQPValue::Boolean(*b),
            Value::Text(t) => AMQPValue::LongString(LongString::from(t.as_str())),
        };
        table.insert(k.as_str().into(), value);
    }
    table
}

/// Only what was filled in is set, so an empty form publishes a message with no properties.
fn basic_properties(headers: &Pairs, p: &Properties) -> BasicProperties {
    let mut properties = BasicProperties::default();
    if !headers.is_empty() {
        properties = properties.with_headers(field_table(headers));
    }
    if p.persistent {
        properties = properties.with_delivery_mode(2);
    }
    let text = |s: &str| (!s.is_empty()).then(|| ShortString::from(s.to_string()));
    if let Some(v) = text(&p.expiration) {
        properties = properties.with_expiration(v);
    }
    if let Some(v) = text(&p.content_type) {
        properties = properties.with_content_type(v);
    }
    if let Some(v) = text(&p.reply_to) {
        properties = properties.with_reply_to(v);
    }
    if let Some(v) = text(&p.correlation_id) {
        properties = properties.with_correlation_id(v);
    }
    properties
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::BrokerConfig;

    #[test]
    fn a_binding_shown_on_screen_is_unbound_with_its_exact_arguments() {
        let broker = Broker::new(BrokerConfig::default());
        let mut session = Session::new(broker.clone());
        session.run("/", Command::declare_queue("pdf")).unwrap();
        // Typed arguments: the screen shows them as text, unbinding needs the originals.
        let mut arguments = FieldTable::default();
        arguments.insert("x-match".into(), AMQPValue::LongString("any".into()));
        arguments.insert("pages".into(), AMQPValue::LongInt(12));
        let (id, _inbox) = broker.open_internal_connection("/", "test").unwrap();
        broker
            .bind(
                ChannelRef::internal(id),
                BindingSpec {
                    source: "amq.headers",
                    target: Target::Queue("pdf"),
                    routing_key: "",
                    arguments,
                },
            )
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
            .unwrap_err()
            .to_string();
        assert!(again.contains("no binding"), "{again}");
    }

    #[test]
    fn commands_act_on_the_broker() {
        let broker = Broker::new(BrokerConfig::default());
        let mut session = Session::new(broker.clone());
        let run = |s: &mut Session, c| s.run("/", c);
        run(&mut session, Command::declare_exchange("animals", "topic")).unwrap();
        run(&mut session, Command::declare_queue("Q1")).unwrap();
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
                properties: Properties::default(),
                body: "hi".into(),
            },
        )
        .unwrap();
        assert_eq!(broker.snapshot().vhost("/").unwrap().queues[0].ready, 1);
        let got = run(&mut session, Command::Get { queue: "Q1".into() }).unwrap();
        assert!(got.contains("hi") && got.contains("0 left"), "{got}");
        // A Chinese view hears it in Chinese.
        let mut session = Session::new(broker.clone()).speaking(Lang::Zh);
        let empty = session
            .run("/", Command::Get { queue: "Q1".into() })
            .unwrap();
        assert_eq!(empty, "'Q1' 是空的");
        let err = run(
            &mut session,
            Command::Purge {
                queue: "nope".into(),
            },
        )
        .unwrap_err()
        .to_string();
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

    #[test]
    fn the_forms_arguments_and_properties_reach_the_broker() {
        use crate::ui::form::{Form, FormKind};
        let broker = Broker::new(BrokerConfig::default());
        let mut session = Session::new(broker.clone());
        let fill = |kind, values: &[(&str, &str)]| {
            let mut form = Form::new(kind, None, None);
            for (label, text) in values {
                form.active = form.fields.iter().position(|f| f.label == *label).unwrap();
                text.chars().for_each(|c| form.input(c));
            }
            form.command().unwrap()
        };
        let exchange = fill(
            FormKind::DeclareExchange,
            &[
                ("name", "orders"),
                ("durable", "y"),
                ("alternate-exchange", "unrouted"),
            ],
        );
        session.run("/", exchange).unwrap();
        let queue = fill(
            FormKind::DeclareQueue,
            &[
                ("name (empty: server-named)", "jobs"),
                ("auto-delete", "y"),
                ("x-message-ttl", "60000"),
                ("x-max-length", "3"),
                ("x-dead-letter-exchange", "orders"),
                ("more arguments (k=v, ...)", "x-overflow=reject-publish"),
            ],
        );
        session.run("/", queue).unwrap();
        let snapshot = broker.snapshot();
        let vhost = snapshot.vhost("/").unwrap();
        let x = vhost.exchanges.iter().find(|x| x.name == "orders").unwrap();
        assert!(x.durable && !x.auto_delete);
        assert_eq!(
            x.arguments,
            [("alternate-exchange".to_string(), "unrouted".to_string())]
        );
        let q = vhost.queues.iter().find(|q| q.name == "jobs").unwrap();
        assert!(q.auto_delete && !q.durable && !q.exclusive);
        let mut arguments = q.arguments.clone();
        arguments.sort();
        assert_eq!(
            arguments,
            [
                ("x-dead-letter-exchange".to_string(), "orders".to_string()),
                ("x-max-length".into(), "3".into()),
                ("x-message-ttl".into(), "60000".into()),
                ("x-overflow".into(), "reject-publish".into()),
            ]
        );
        // The limits act: typed as numbers, x-max-length holds, reject-publish refuses the 4th.
        let publish = fill(
            FormKind::Publish,
            &[
                ("routing key", "jobs"),
                ("headers (k=v, ...)", "pages=12, kind=pdf"),
                ("persistent", "y"),
                ("expiration (ms)", "5000"),
                ("content type", "text/plain"),
                ("reply to", "answers"),
                ("correlation id", "c-1"),
                ("body", "hello"),
            ],
        );
        for _ in 0..4 {
            session.run("/", publish.clone()).unwrap();
        }
        let jobs = |b: &Broker| {
            b.snapshot()
                .vhost("/")
                .unwrap()
                .queues
                .iter()
                .find(|q| q.name == "jobs")
                .unwrap()
                .ready
        };
        assert_eq!(jobs(&broker), 3);
        let (id, _inbox) = broker.open_internal_connection("/", "test").unwrap();
        let got = broker
            .basic_get(ChannelRef::internal(id), "jobs", true)
            .unwrap()
            .unwrap();
        let p = &got.message.properties;
        assert_eq!(p.delivery_mode(), &Some(2));
        assert_eq!(p.expiration().as_ref().map(|s| s.as_str()), Some("5000"));
        assert_eq!(
            p.content_type().as_ref().map(|s| s.as_str()),
            Some("text/plain")
        );
        assert_eq!(p.reply_to().as_ref().map(|s| s.as_str()), Some("answers"));
        assert_eq!(p.correlation_id().as_ref().map(|s| s.as_str()), Some("c-1"));
        let headers = p.headers().as_ref().unwrap().inner();
        assert_eq!(headers.get("pages"), Some(&AMQPValue::LongLongInt(12)));
        assert_eq!(
            headers.get("kind"),
            Some(&AMQPValue::LongString("pdf".into()))
        );
        assert_eq!(&got.message.body[..], b"hello");
    }
}
