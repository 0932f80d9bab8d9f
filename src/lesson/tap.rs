//! Which queues each publish reached, as the broker itself tells it: the event stream of the
//! embedded broker, or RabbitMQ's firehose (`amq.rabbitmq.trace`, switched on for the vhost
//! through the management API and off again afterwards).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::events::{EventKind, EventReader, Received};
use crate::remote::firehose::{FirehoseKeys, Trace};
use crate::remote::{Endpoint, Management, ManagementError, RemoteError};

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

/// Why the broker's account of what a publish did could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TapError {
    #[error("fell behind the broker's event stream and missed {0} events")]
    Missed(u64),
    #[error("the broker has stopped")]
    Stopped,
    /// The firehose, or the management API that holds tracing on and tells queues apart.
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

impl From<ManagementError> for TapError {
    fn from(e: ManagementError) -> TapError {
        TapError::Remote(e.into())
    }
}

pub enum Tap {
    Events(EventReader),
    Firehose(Box<Firehose>),
}

impl Tap {
    /// The next publish the broker reports, or `None` when none comes within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Result<Option<TapRecord>, TapError> {
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
                        Received::Missed(n) => return Err(TapError::Missed(n)),
                        Received::Closed => return Err(TapError::Stopped),
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
    ) -> Result<(), TapError> {
        if let Tap::Firehose(firehose) = self {
            if record.exchange.is_empty() {
                let mut existing = Vec::new();
                for queue in &record.queues {
                    let exists = match known.get(queue) {
                        Some(exists) => *exists,
                        None => {
                            let vhost = &firehose.management.endpoint().vhost;
                            let exists = firehose.management.queue_exists(vhost, queue).await?;
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

/// The firehose (`publish.#` on `amq.rabbitmq.trace`, see [`crate::remote::Firehose`]) with
/// tracing held on for the vhost.
pub struct Firehose {
    firehose: crate::remote::Firehose,
    management: Management,
}

/// Lesson runs in this process that need tracing on, per management address and vhost, and
/// the vhost as it was when the first of them turned tracing on (None: it was on already).
static TRACING: tokio::sync::Mutex<BTreeMap<VhostKey, TracingHolders>> =
    tokio::sync::Mutex::const_new(BTreeMap::new());

/// Management address and vhost.
type VhostKey = (String, String);
/// How many runs hold tracing on, and whether the first of them turned it on.
type TracingHolders = (usize, bool);

fn vhost_key(management: &Management) -> VhostKey {
    (
        management.url().to_string(),
        management.endpoint().vhost.clone(),
    )
}

async fn hold_tracing(management: &Management) -> Result<(), ManagementError> {
    let mut holders = TRACING.lock().await;
    let key = vhost_key(management);
    if let Some((count, _)) = holders.get_mut(&key) {
        *count += 1;
        return Ok(());
    }
    let vhost = &management.endpoint().vhost;
    let was_on = management.tracing(vhost).await?;
    if !was_on {
        management.set_tracing(vhost, true).await?;
    }
    holders.insert(key, (1, !was_on));
    Ok(())
}

async fn release_tracing(management: &Management) {
    let mut holders = TRACING.lock().await;
    let key = vhost_key(management);
    let Some((count, _)) = holders.get_mut(&key) else {
        return;
    };
    *count -= 1;
    if *count == 0 {
        if let Some((_, true)) = holders.remove(&key) {
            let vhost = &management.endpoint().vhost;
            if let Err(e) = management.set_tracing(vhost, false).await {
                tracing::warn!(error = %e, "could not turn tracing off again");
            }
        }
    }
}

impl Firehose {
    pub async fn open(url: &str) -> Result<Firehose, TapError> {
        let endpoint = Endpoint::new(url, None)?;
        let management = Management::new(&endpoint)?;
        hold_tracing(&management).await?;
        match crate::remote::Firehose::open(url, FirehoseKeys::Publish).await {
            Ok(firehose) => Ok(Firehose {
                firehose,
                management,
            }),
            Err(e) => {
                release_tracing(&management).await;
                Err(e.into())
            }
        }
    }

    async fn next(&mut self, wait: Duration) -> Result<Option<TapRecord>, TapError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let trace = match tokio::time::timeout_at(deadline, self.firehose.next()).await {
                Err(_) => return Ok(None),
                Ok(trace) => trace?,
            };
            if let Trace::Published {
                exchange,
                routing_key,
                queues,
                connection,
                channel,
                ..
            } = trace
            {
                return Ok(Some(TapRecord {
                    connection,
                    channel: channel.unwrap_or(0),
                    exchange,
                    routing_key,
                    queues,
                }));
            }
        }
    }

    pub async fn close(self) {
        self.firehose.close().await;
        release_tracing(&self.management).await;
    }
}
