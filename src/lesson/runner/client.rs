//! The lesson's AMQP client: a [`Client`] holds the lesson's own connection and one for each
//! program it plays, the consumers and what they received, and this step's publishes. It
//! knows when a step is over: every publish's route reported by the broker (the tap) and the
//! deliveries quiet. The `do` keywords are in `actions`, judging a step in `checks`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Acker, BasicProperties, Channel, Connection};
use tokio::task::JoinHandle;

use super::super::oslo;
use super::super::replay::Recording;
use super::super::schema::{program_of, Restart, Step};
use super::super::tap::{Firehose, Tap, TapRecord};
use super::checks::{CheckResult, PublishReport, StepReport};
use super::convert::short;
use super::error::{RunError, StepError};
use super::lesson_run::lesson_connection_name;
use super::link::{timed, Link};
use super::{
    DELIVERY_TIMEOUT, QUIET_SAMPLES, QUIET_TIMEOUT, RESTART_RABBITMQ, ROUTE_TIMEOUT, SAMPLE_EVERY,
};
use crate::broker::release::Release;
use crate::broker::Broker;

/// What a consumer has received.
#[derive(Default)]
pub(super) struct Inbox {
    /// Every delivery since the consumer started, across steps.
    pub(super) received: u64,
    /// Deliveries of a manual-ack consumer waiting for the lesson's `ack`, `nack` or `reject`.
    pub(super) unacked: VecDeque<Acker>,
    /// Bodies received since the current step began.
    pub(super) bodies: Vec<Vec<u8>>,
    /// The last oslo.messaging call received, for a `reply` action to answer.
    pub(super) last_call: Option<oslo::Call>,
}

/// A consumer the lesson started with `consume`, and the task that reads its deliveries.
pub(super) struct ConsumerHandle {
    /// Its own channel, so that cancelling it or consuming again under its name touches no
    /// other consumer.
    pub(super) channel: Channel,
    /// Manual acks (`ack: manual`): deliveries wait in the inbox's `unacked`.
    pub(super) manual: bool,
    /// The program it consumes for (`client`); its replies go out on that connection.
    pub(super) client: Option<String>,
    pub(super) inbox: Arc<Mutex<Inbox>>,
    pub(super) reader: JoinHandle<()>,
}

/// A publish of the step, and the channel it went out on as the tap names it.
pub(super) struct Sent {
    pub(super) report: PublishReport,
    pub(super) by: (String, u16),
    /// The broker has reported where it went.
    pub(super) routed: bool,
}

/// The lesson's AMQP side in one vhost: its connections, its consumers, and what the current
/// step did so far.
pub(super) struct Client {
    pub(super) url: String,
    pub(super) lesson_id: String,
    /// The embedded broker, restarted in place by `restart`; None on RabbitMQ.
    pub(super) broker: Option<Arc<Broker>>,
    /// The release the lesson starts on: a `restart` with permits but no `behave_as` keeps it.
    pub(super) release: Release,
    /// The lesson's own connection, `rabbitscope lesson <id>`.
    pub(super) own: Link,
    /// A connection for each program (`client`) the lesson plays, named as oslo.messaging
    /// names its own (`nova-api:<pid>:<uuid>`), so the broker shows who publishes and consumes.
    pub(super) programs: BTreeMap<String, Link>,
    /// Every program the lesson plays here; one missing from `programs` was closed and connects
    /// again when an action needs it.
    pub(super) clients: Vec<String>,
    /// Passive declares to read queue depths.
    pub(super) inspector: Option<Channel>,
    pub(super) consumers: BTreeMap<String, ConsumerHandle>,
    /// This step's publishes; `routed` of them have their route.
    pub(super) publishes: Vec<Sent>,
    pub(super) routed: usize,
    /// Bodies of messages got in this step.
    pub(super) got: Vec<Vec<u8>>,
    /// Each consumer's `received` when the step began.
    pub(super) received_before: BTreeMap<String, u64>,
    /// This step's notes for the report.
    pub(super) notes: Vec<String>,
    /// The step's expectations cannot be checked (its restart was skipped).
    pub(super) unchecked: bool,
    /// This step's refusals that the lesson expected, as checks.
    pub(super) refusals: Vec<CheckResult>,
    /// The traces the lesson's `replay` actions name, read when the run started.
    pub(super) recordings: Arc<BTreeMap<String, Recording>>,
}

/// The inbox, even if a reader panicked holding it: its counts are still right.
pub(super) fn lock(inbox: &Mutex<Inbox>) -> std::sync::MutexGuard<'_, Inbox> {
    inbox
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Client {
    /// Connects as the lesson and as each of `clients`.
    pub(super) async fn connect(
        url: &str,
        (lesson_id, release): (&str, Release),
        clients: &[String],
        broker: Option<Arc<Broker>>,
        tap: &mut Tap,
    ) -> Result<Client, RunError> {
        let own = Link::open(url, &lesson_connection_name(lesson_id), tap).await?;
        let mut links = BTreeMap::new();
        for client in clients {
            let name = oslo::connection_name(program_of(client));
            links.insert(client.clone(), Link::open(url, &name, tap).await?);
        }
        Ok(Client {
            url: url.to_string(),
            lesson_id: lesson_id.to_string(),
            broker,
            release,
            own,
            programs: links,
            clients: clients.to_vec(),
            inspector: None,
            consumers: BTreeMap::new(),
            publishes: Vec::new(),
            routed: 0,
            got: Vec::new(),
            received_before: BTreeMap::new(),
            notes: Vec::new(),
            unchecked: false,
            refusals: Vec::new(),
            recordings: Arc::default(),
        })
    }

    /// Restarts the broker, then connects again as any client of a restarted broker must.
    ///
    /// The embedded broker restarts in place ([`Broker::restart`]), behaving from then on as
    /// the restart's configuration says, if it says anything. A RabbitMQ is restarted
    /// with `rabbitmqctl stop_app` and `start_app` only when [`RESTART_RABBITMQ`] is 1: it is
    /// often shared (tests, other users), and a restart closes everybody's connections. Its
    /// configuration is not the lesson's to change, so a restart that changes it is never
    /// done there. Otherwise the step notes that it was not restarted and its expectations go
    /// unchecked.
    pub(super) async fn restart(
        &mut self,
        restart: &Restart,
        tap: &mut Tap,
    ) -> Result<(), StepError> {
        // The step's publishes so far are reported on the connection about to close.
        self.collect_routes(tap).await?;
        let configured = restart
            .behaviour(self.release)
            .map_err(StepError::Restart)?;
        match &self.broker {
            Some(broker) => {
                let broker = broker.clone();
                tokio::task::spawn_blocking(move || {
                    if let Some(behaviour) = configured {
                        broker.behave_as(behaviour);
                    }
                    broker.restart()
                })
                .await
                .map_err(|e| StepError::RestartTask(e.to_string()))?
                .map_err(|e| StepError::Restart(e.to_string()))?;
            }
            None => {
                if let Some(behaviour) = configured {
                    self.notes.push(format!(
                        "RabbitMQ was not restarted, so this step's expectations were not \
                         checked (the step restarts the broker so that it {}, which only the \
                         embedded broker can do)",
                        behaviour.summary()
                    ));
                    self.unchecked = true;
                    return Ok(());
                }
                if std::env::var_os(RESTART_RABBITMQ).is_none_or(|v| v != "1") {
                    self.notes.push(format!(
                        "RabbitMQ was not restarted, so this step's expectations were not \
                         checked (a restart closes every client's connections; set \
                         {RESTART_RABBITMQ}=1 to restart it with rabbitmqctl)"
                    ));
                    self.unchecked = true;
                    return Ok(());
                }
                restart_rabbitmq().await?;
                // The firehose's connection went with the restart. The old one is closed too, or
                // its hold on tracing would keep tracing on after the run.
                let firehose = Firehose::open(&self.url).await?;
                let old = std::mem::replace(tap, Tap::Firehose(Box::new(firehose)));
                old.close().await;
            }
        }
        self.reconnect(tap)
            .await
            .map_err(|e| StepError::Reconnect(Box::new(e)))
    }

    /// A new connection in place of one the broker closed; consumers are gone with the old.
    pub(super) async fn reconnect(&mut self, tap: &mut Tap) -> Result<(), RunError> {
        for handle in std::mem::take(&mut self.consumers).into_values() {
            handle.reader.abort();
        }
        let fresh = Client::connect(
            &self.url,
            (&self.lesson_id, self.release),
            &self.clients,
            self.broker.clone(),
            tap,
        )
        .await?;
        let old = std::mem::replace(self, fresh);
        // What the step did before the restart still counts.
        self.publishes = old.publishes;
        self.routed = old.routed;
        self.got = old.got;
        self.notes = old.notes;
        self.unchecked = old.unchecked;
        self.refusals = old.refusals;
        self.recordings = old.recordings;
        Ok(())
    }

    /// Closes the connection of `program`, as when the process exits: the broker cancels its
    /// consumers and deletes its exclusive queues.
    pub(super) async fn close_client(
        &mut self,
        program: &str,
        tap: &mut Tap,
    ) -> Result<(), StepError> {
        // The step's publishes so far are reported on connections that may be about to close.
        self.collect_routes(tap).await?;
        let link = self
            .drop_client(program)
            .ok_or_else(|| StepError::ClientClosed(program.to_string()))?;
        link.close().await;
        Ok(())
    }

    /// Forgets the connection of `program` and its consumers (the broker closed it, or it is
    /// about to close); a later action as `program` connects again.
    pub(super) fn drop_client(&mut self, program: &str) -> Option<Link> {
        let gone: Vec<String> = self
            .consumers
            .iter()
            .filter(|(_, c)| c.client.as_deref() == Some(program))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if let Some(handle) = self.consumers.remove(&name) {
                handle.reader.abort();
            }
        }
        self.programs.remove(program)
    }

    /// Connects `program` again if a `close` closed it.
    pub(super) async fn reopen_client(
        &mut self,
        program: &str,
        tap: &mut Tap,
    ) -> Result<(), StepError> {
        if self.programs.contains_key(program) || !self.clients.iter().any(|c| c == program) {
            return Ok(());
        }
        // Opening a link reads past what the tap reported: first the routes of this step.
        self.collect_routes(tap).await?;
        let name = oslo::connection_name(program_of(program));
        let link = Link::open(&self.url, &name, tap)
            .await
            .map_err(|e| StepError::Reconnect(Box::new(e)))?;
        self.programs.insert(program.to_string(), link);
        Ok(())
    }

    /// A publish refused by the broker (say to a missing exchange) closes the publishing
    /// channel; the next step opens another and learns its name anew.
    pub(super) async fn reopen_publishers_if_closed(
        &mut self,
        tap: &mut Tap,
    ) -> Result<(), RunError> {
        for link in std::iter::once(&mut self.own).chain(self.programs.values_mut()) {
            link.reopen_publisher_if_closed(tap).await?;
        }
        Ok(())
    }

    /// The connection of `program`, the lesson's own without one.
    pub(super) fn link(&mut self, program: Option<&str>) -> Result<&mut Link, StepError> {
        match program {
            None => Ok(&mut self.own),
            Some(program) => self
                .programs
                .get_mut(program)
                .ok_or_else(|| StepError::NoConnection(program.to_string())),
        }
    }

    pub(super) async fn close(self) {
        for handle in self.consumers.values() {
            handle.reader.abort();
        }
        for link in std::iter::once(self.own).chain(self.programs.into_values()) {
            link.close().await;
        }
    }

    pub(super) async fn channel(
        connection: &Connection,
        slot: &mut Option<Channel>,
    ) -> Result<Channel, StepError> {
        if let Some(ch) = slot {
            if ch.status().connected() {
                return Ok(ch.clone());
            }
        }
        let ch = timed(connection.create_channel()).await?;
        *slot = Some(ch.clone());
        Ok(ch)
    }

    pub(super) async fn control(&mut self) -> Result<Channel, StepError> {
        Self::channel(&self.own.connection, &mut self.own.control).await
    }

    /// basic.publish on the confirm channel of `by` (a program, or the lesson); waits for the
    /// confirm (and any basic.return).
    pub(super) async fn publish(
        &mut self,
        by: Option<&str>,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
        mandatory: bool,
    ) -> Result<(), StepError> {
        let link = self.link(by)?;
        let (returned, nacked) = link
            .publish(exchange, routing_key, body, properties, mandatory)
            .await?;
        let by = link.identity.clone();
        self.publishes.push(Sent {
            report: PublishReport {
                exchange: exchange.to_string(),
                routing_key: routing_key.to_string(),
                mandatory,
                queues: Vec::new(),
                returned,
                nacked,
                recorded: None,
            },
            by,
            routed: false,
        });
        Ok(())
    }

    /// Reads the tap until every publish so far has its route.
    pub(super) async fn collect_routes(&mut self, tap: &mut Tap) -> Result<(), StepError> {
        let deadline = tokio::time::Instant::now() + ROUTE_TIMEOUT;
        let mut known_queues = BTreeMap::new();
        while self.routed < self.publishes.len() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(mut record) = tap.next(left).await? else {
                return Err(StepError::RoutesMissing {
                    routed: self.routed,
                    sent: self.publishes.len(),
                });
            };
            // The oldest publish of that channel still without its route: a channel's
            // publishes are reported in order, those of several channels may interleave.
            let by = (record.connection.as_str(), record.channel);
            let Some(sent) = self
                .publishes
                .iter_mut()
                .find(|s| !s.routed && (s.by.0.as_str(), s.by.1) == by)
            else {
                continue;
            };
            tap.verify(&mut record, &mut known_queues).await?;
            let TapRecord {
                exchange,
                routing_key,
                mut queues,
                ..
            } = record;
            let publish = &mut sent.report;
            if publish.exchange != exchange || publish.routing_key != routing_key {
                return Err(StepError::WrongRoute {
                    exchange,
                    routing_key,
                    expected_exchange: publish.exchange.clone(),
                    expected_key: publish.routing_key.clone(),
                });
            }
            queues.sort();
            queues.dedup();
            publish.queues = queues;
            sent.routed = true;
            self.routed += 1;
        }
        Ok(())
    }

    /// What tells the broker is still busy: how many messages each consumer has received.
    /// Queue depths are not sampled: RabbitMQ counts a passive queue.declare as use of the
    /// queue, which would restart its `x-expires` clock.
    pub(super) fn sample(&self) -> Vec<u64> {
        self.consumers
            .values()
            .map(|c| lock(&c.inbox).received)
            .collect()
    }

    /// Ready messages in `queue`, by passive queue.declare.
    pub(super) async fn depth(&mut self, queue: &str) -> Result<u32, StepError> {
        let ch = Self::channel(&self.own.connection, &mut self.inspector).await?;
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let answer = timed(ch.queue_declare(short(queue)?, options, FieldTable::default())).await;
        match answer {
            Ok(q) => Ok(q.message_count()),
            Err(e) if e.refusal_code() == Some(404) => Err(StepError::NoQueue(queue.to_string())),
            Err(e) => Err(e),
        }
    }

    /// Waits until routes are known, the deliveries `expected` counts on have arrived, and
    /// nothing has changed for a few samples.
    pub(super) async fn settle(
        &mut self,
        tap: &mut Tap,
        expected: Option<&BTreeMap<String, u32>>,
    ) -> Result<(), StepError> {
        self.collect_routes(tap).await?;
        if let Some(expected) = expected {
            let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
            while tokio::time::Instant::now() < deadline
                && expected
                    .iter()
                    .any(|(name, n)| self.delivered_this_step(name) < *n)
            {
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
        }
        let deadline = tokio::time::Instant::now() + QUIET_TIMEOUT;
        let mut last = self.sample();
        let mut same = 1;
        while same < QUIET_SAMPLES && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(SAMPLE_EVERY).await;
            let now = self.sample();
            if now == last {
                same += 1;
            } else {
                same = 1;
                last = now;
            }
        }
        Ok(())
    }

    pub(super) fn delivered_this_step(&self, consumer: &str) -> u32 {
        let Some(handle) = self.consumers.get(consumer) else {
            return 0;
        };
        let now = lock(&handle.inbox).received;
        let before = self.received_before.get(consumer).copied().unwrap_or(0);
        u32::try_from(now.saturating_sub(before)).unwrap_or(u32::MAX)
    }

    pub(super) async fn run_step(
        &mut self,
        index: usize,
        step: &Step,
        tap: &mut Tap,
    ) -> Result<StepReport, RunError> {
        self.reopen_publishers_if_closed(tap).await?;
        tap.skip_pending().await;
        self.publishes.clear();
        self.routed = 0;
        self.got.clear();
        self.received_before.clear();
        self.notes.clear();
        self.unchecked = false;
        self.refusals.clear();
        for (name, handle) in &self.consumers {
            let mut inbox = lock(&handle.inbox);
            inbox.bodies.clear();
            self.received_before.insert(name.clone(), inbox.received);
        }
        for (a, action) in step.actions.iter().enumerate() {
            self.act(action, tap)
                .await
                .map_err(|error| RunError::Action {
                    step: index,
                    action: a,
                    keyword: action.keyword(),
                    error,
                })?;
        }
        self.settle(tap, step.expect.delivered.as_ref())
            .await
            .map_err(|error| RunError::Observe {
                step: Some(index),
                error,
            })?;
        let mut report = self.report(index, step).await;
        report
            .checks
            .splice(0..0, std::mem::take(&mut self.refusals));
        report.notes = std::mem::take(&mut self.notes);
        if self.unchecked {
            report.checks.clear();
            report.predict_check = None;
            report.predict_ok = None;
        }
        Ok(report)
    }
}

/// Stops and starts the RabbitMQ on this machine, and waits until it is up.
async fn restart_rabbitmq() -> Result<(), StepError> {
    for command in ["stop_app", "start_app", "await_startup"] {
        let output = tokio::process::Command::new("rabbitmqctl")
            .arg(command)
            .output()
            .await
            .map_err(|e| StepError::NoRabbitmqctl(e.to_string()))?;
        if !output.status.success() {
            return Err(StepError::Rabbitmqctl {
                command,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
    }
    Ok(())
}
