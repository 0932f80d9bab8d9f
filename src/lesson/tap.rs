//! Which queues each publish reached, as the broker itself tells it: the event stream of the
//! embedded broker, or RabbitMQ's firehose (`amq.rabbitmq.trace`, switched on for the vhost
//! through the management API and off again afterwards).

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, Consumer};
use serde_json::Value;

use super::management::Management;
use crate::events::{EventKind, EventReader, Received};

/// One publish as the broker saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapRecord {
    /// The publishing connection as the broker names it.
    pub connection: String,
    pub channel: u16,
    pub exchange: String,
    pub routing_key: String,
    pub queues: Vec<String>,
}

pub enum Tap {
    Events(EventReader),
    Firehose(Box<Firehose>),
}

impl Tap {
    /// The next publish the broker reports, or `None` when none comes within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Result<Option<TapRecord>, String> {
        match self {
            Tap::Events(reader) => {
                let deadline = tokio::time::Instant::now() + wait;
                loop {
                    let received = match tokio::time::timeout_at(deadline, reader.recv()).await {
                        Ok(received) => received,
                        Err(_) => return Ok(None),
                    };
                    match received {
                        Received::Event(event) => {
                            if let EventKind::Published {
                                exchange,
                                routing_key,
                                queues,
                                ..
                            } = &event.kind
                            {
                                return Ok(Some(TapRecord {
                                    connection: event
                                        .connection
                                        .map(|c| c.to_string())
                                        .unwrap_or_default(),
                                    channel: event.channel.unwrap_or(0),
                                    exchange: exchange.to_string(),
                                    routing_key: routing_key.to_string(),
                                    queues: queues.iter().map(|q| q.to_string()).collect(),
                                }));
                            }
                        }
                        Received::Missed(n) => {
                            return Err(format!(
                                "fell behind the broker's event stream and missed {n} events"
                            ))
                        }
                        Received::Closed => return Err("the broker has stopped".to_string()),
                    }
                }
            }
            Tap::Firehose(firehose) => firehose.next(wait).await,
        }
    }

    /// Reads past everything reported so far (publishes of others, made while the lesson
    /// waited); losing some of them to a full buffer does not matter here.
    pub async fn skip_pending(&mut self) {
        loop {
            match self {
                Tap::Events(reader) => match reader.try_recv() {
                    None | Some(Received::Closed) => return,
                    Some(_) => {}
                },
                Tap::Firehose(firehose) => {
                    if !matches!(firehose.next(Duration::ZERO).await, Ok(Some(_))) {
                        return;
                    }
                }
            }
        }
    }

    /// Corrects a record of the firehose: RabbitMQ's default exchange "routes" to the queue
    /// named by the routing key whether or not it exists, and the trace lists that name; a
    /// queue that does not exist got nothing.
    /// `known` remembers answers between records of one step.
    pub async fn verify(
        &self,
        record: &mut TapRecord,
        known: &mut BTreeMap<String, bool>,
    ) -> Result<(), String> {
        if let Tap::Firehose(firehose) = self {
            if record.exchange.is_empty() {
                let mut existing = Vec::new();
                for queue in &record.queues {
                    let exists = match known.get(queue) {
                        Some(exists) => *exists,
                        None => {
                            let exists = firehose.management.queue_exists(queue).await?;
                            known.insert(queue.clone(), exists);
                            exists
                        }
                    };
                    if exists {
                        existing.push(queue.clone());
                    }
                }
                record.queues = existing;
            }
        }
        Ok(())
    }

    pub async fn close(self) {
        if let Tap::Firehose(firehose) = self {
            firehose.close().await;
        }
    }
}

/// A queue bound to `amq.rabbitmq.trace` with `publish.#`, on a connection of its own.
pub struct Firehose {
    connection: Connection,
    consumer: Consumer,
    management: Management,
}

/// Lesson runs in this process that need tracing on, per management address and vhost, and
/// the vhost as it was when the first of them turned tracing on (None: it was on already).
static TRACING: tokio::sync::Mutex<BTreeMap<VhostKey, TracingHolders>> =
    tokio::sync::Mutex::const_new(BTreeMap::new());

/// Management address and vhost.
type VhostKey = (String, String);
/// How many runs hold tracing on, and the vhost as it was before (None: tracing was on already).
type TracingHolders = (usize, Option<Value>);

async fn hold_tracing(management: &Management) -> Result<(), String> {
    let mut holders = TRACING.lock().await;
    let key = (management.address.clone(), management.vhost.clone());
    if let Some((count, _)) = holders.get_mut(&key) {
        *count += 1;
        return Ok(());
    }
    let vhost = management.vhost().await?;
    let was_on = vhost.get("tracing").and_then(Value::as_bool) == Some(true);
    if !was_on {
        management.set_tracing(true, &vhost).await?;
    }
    holders.insert(key, (1, (!was_on).then_some(vhost)));
    Ok(())
}

async fn release_tracing(management: &Management) {
    let mut holders = TRACING.lock().await;
    let key = (management.address.clone(), management.vhost.clone());
    let Some((count, _)) = holders.get_mut(&key) else {
        return;
    };
    *count -= 1;
    if *count == 0 {
        if let Some((_, Some(vhost))) = holders.remove(&key) {
            if let Err(e) = management.set_tracing(false, &vhost).await {
                tracing::warn!(error = %e, "could not turn tracing off again");
            }
        }
    }
}

impl Firehose {
    pub async fn open(url: &str) -> Result<Firehose, String> {
        let management = Management::for_amqp_url(url)?;
        hold_tracing(&management).await?;
        match Self::subscribe(url).await {
            Ok((connection, consumer)) => Ok(Firehose {
                connection,
                consumer,
                management,
            }),
            Err(e) => {
                release_tracing(&management).await;
                Err(e)
            }
        }
    }

    async fn subscribe(url: &str) -> Result<(Connection, Consumer), String> {
        let failed = |what: &str, e: lapin::Error| format!("firehose: {what}: {e}");
        let properties =
            ConnectionProperties::default().with_connection_name("rabbitscope firehose".into());
        let connection = Connection::connect(url, properties)
            .await
            .map_err(|e| failed("connect", e))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| failed("channel.open", e))?;
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| failed("queue.declare", e))?;
        channel
            .queue_bind(
                queue.name().clone(),
                "amq.rabbitmq.trace".into(),
                "publish.#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| failed("queue.bind to amq.rabbitmq.trace", e))?;
        let consumer = channel
            .basic_consume(
                queue.name().clone(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| failed("basic.consume", e))?;
        Ok((connection, consumer))
    }

    async fn next(&mut self, wait: Duration) -> Result<Option<TapRecord>, String> {
        let delivery = match tokio::time::timeout(wait, self.consumer.next()).await {
            Err(_) => return Ok(None),
            Ok(None) => return Err("the firehose consumer was cancelled".to_string()),
            Ok(Some(Err(e))) => return Err(format!("firehose: {e}")),
            Ok(Some(Ok(delivery))) => delivery,
        };
        let headers = delivery.properties.headers().clone().unwrap_or_default();
        let headers = headers.inner();
        let text = |name: &str| headers.get(name).map(value_text).unwrap_or_default();
        let channel = match headers.get("channel") {
            Some(value) => value_int(value).unwrap_or(0),
            None => 0,
        };
        let list = |name: &str| match headers.get(name) {
            Some(AMQPValue::FieldArray(items)) => {
                items.as_slice().iter().map(value_text).collect::<Vec<_>>()
            }
            _ => Vec::new(),
        };
        Ok(Some(TapRecord {
            connection: text("connection"),
            channel: u16::try_from(channel).unwrap_or(0),
            exchange: text("exchange_name"),
            routing_key: list("routing_keys").into_iter().next().unwrap_or_default(),
            queues: list("routed_queues"),
        }))
    }

    pub async fn close(self) {
        let _ = self.connection.close(200, "OK".into()).await;
        release_tracing(&self.management).await;
    }
}

fn value_text(value: &AMQPValue) -> String {
    match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_string(),
        other => format!("{other:?}"),
    }
}

fn value_int(value: &AMQPValue) -> Option<i64> {
    Some(match value {
        AMQPValue::ShortShortInt(n) => *n as i64,
        AMQPValue::ShortShortUInt(n) => *n as i64,
        AMQPValue::ShortInt(n) => *n as i64,
        AMQPValue::ShortUInt(n) => *n as i64,
        AMQPValue::LongInt(n) => *n as i64,
        AMQPValue::LongUInt(n) => *n as i64,
        AMQPValue::LongLongInt(n) => *n,
        _ => return None,
    })
}
