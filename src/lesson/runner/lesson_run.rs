//! The run's life cycle: [`LessonRun`] starts on a broker, runs steps forward, goes back by
//! resetting and replaying, enters the other vhosts a step names, and cleans up at the end.
//!
//! It drives the lesson's client (`client`) and never speaks AMQP methods itself except to
//! delete the lesson's exchanges and queues.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::types::ShortString;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::task::JoinHandle;

use super::super::replay::{self, Recording};
use super::super::schema::{Action, Lesson};
use super::super::tap::{Firehose, Tap};
use super::checks::StepReport;
use super::client::Client;
use super::convert::short;
use super::error::RunError;
use super::link::timed;
use super::Target;
use crate::amqp::Server;
use crate::broker::release::Release;
use crate::broker::{Behaviour, Broker, BrokerConfig};
use crate::remote::{Endpoint, Management, RemoteError};
/// A lesson being played on a broker.
///
/// Steps run in order; [`LessonRun::run_step`] with an earlier step resets the broker's lesson
/// objects and replays up to it, so "previous step" is cheap to offer.
pub struct LessonRun {
    lesson: Lesson,
    url: String,
    broker: Option<Arc<Broker>>,
    server: Option<JoinHandle<()>>,
    tap: Option<Tap>,
    client: Option<Client>,
    /// Clients of the steps that run in another vhost (`vhost:`), each with its own tap.
    elsewhere: BTreeMap<String, Elsewhere>,
    next_step: usize,
    /// How a shared broker behaved before the lesson's `behave_as`: it does again on close.
    restore: Option<Behaviour>,
    /// How the broker behaves at the lesson's start, when a `restart` of the lesson changes
    /// it: a reset goes back to it.
    initial: Option<Behaviour>,
    /// The traces the lesson's `replay` actions name.
    recordings: Arc<BTreeMap<String, Recording>>,
}

/// A lesson's connection to a vhost other than its own.
struct Elsewhere {
    url: String,
    client: Client,
    tap: Tap,
    /// The run made this vhost on a RabbitMQ, so it removes it at the end.
    created: bool,
}

impl LessonRun {
    /// Connects (starting an embedded broker if asked), deletes whatever the lesson declares,
    /// creates its `setup` and stands before step 1.
    pub async fn start(lesson: Lesson, target: Target) -> Result<LessonRun, RunError> {
        // Validated when the lesson was loaded.
        let behaviour = lesson.behaviour().map_err(RunError::Start)?;
        let mut restore = None;
        let (url, broker, server, tap) = match target {
            Target::Embedded => {
                let config = BrokerConfig {
                    behaviour: behaviour.clone().unwrap_or_default(),
                    ..BrokerConfig::default()
                };
                let broker = Broker::new(config);
                let server = Server::bind(broker.clone(), ([127, 0, 0, 1], 0).into())
                    .await
                    .map_err(|e| RunError::Start(e.to_string()))?;
                let url = format!("amqp://guest:guest@{}/%2f", server.local_addr());
                let tap = Tap::Events(broker.subscribe());
                let handle = tokio::spawn(server.run());
                (url, Some(broker), Some(handle), tap)
            }
            Target::Shared { broker, url } => {
                // The view's broker behaves as the lesson asks until the run closes.
                if behaviour.is_some() || lesson.changes_release() {
                    restore = Some(broker.behaviour());
                }
                if let Some(behaviour) = behaviour.clone() {
                    broker.behave_as(behaviour);
                }
                let tap = Tap::Events(broker.subscribe());
                (url, Some(broker), None, tap)
            }
            Target::RabbitMq { url } => {
                let firehose = Firehose::open(&url).await?;
                (url, None, None, Tap::Firehose(Box::new(firehose)))
            }
        };
        let initial = match &broker {
            Some(broker) if lesson.changes_release() => Some(broker.behaviour()),
            _ => None,
        };
        // Each trace was checked when the lesson was loaded; one that went missing since
        // fails the replay that names it.
        let recordings = replay::recordings(&lesson)
            .into_iter()
            .filter_map(|(name, recording)| Some((name, recording.ok()?)))
            .collect();
        let recordings = Arc::new(recordings);
        let mut run = LessonRun {
            lesson,
            url,
            broker,
            server,
            tap: Some(tap),
            client: None,
            elsewhere: BTreeMap::new(),
            next_step: 0,
            restore,
            initial,
            recordings,
        };
        if let Err(e) = run.reset().await {
            run.close().await;
            return Err(e);
        }
        Ok(run)
    }

    pub fn lesson(&self) -> &Lesson {
        &self.lesson
    }

    /// The release the lesson starts on (validated when it was loaded).
    fn release(&self) -> Release {
        self.lesson.release().unwrap_or(Release::DEFAULT)
    }

    /// Where a student's own client can connect to watch or join in.
    pub fn amqp_url(&self) -> &str {
        &self.url
    }

    /// The embedded broker, for a view that draws its events (None on RabbitMQ).
    pub fn broker(&self) -> Option<&Arc<Broker>> {
        self.broker.as_ref()
    }

    /// The index of the step [`LessonRun::run_next`] would run.
    pub fn next_step(&self) -> usize {
        self.next_step
    }

    /// Starts over: closes the lesson's connections, its own and its clients' (their consumers
    /// and exclusive queues go with them), deletes every exchange and queue the lesson declares,
    /// connects again and creates `setup` again.
    pub async fn reset(&mut self) -> Result<(), RunError> {
        self.next_step = 0;
        if let Some(client) = self.client.take() {
            client.close().await;
        }
        self.leave_other_vhosts(false).await;
        if let (Some(broker), Some(behaviour)) = (&self.broker, &self.initial) {
            broker.behave_as(behaviour.clone());
        }
        delete_lesson_objects(&self.url, &self.lesson).await?;
        let release = self.release();
        let tap = self.tap.as_mut().ok_or(RunError::NotConnected)?;
        let programs = programs_of(&self.lesson, None);
        let mut client = Client::connect(
            &self.url,
            (&self.lesson.id, release),
            &programs,
            self.broker.clone(),
            tap,
        )
        .await?;
        client.recordings = self.recordings.clone();
        if let Err(e) = client.setup(&self.lesson).await {
            client.close().await;
            return Err(e);
        }
        self.client = Some(client);
        Ok(())
    }

    /// Resets and runs steps `0..step`, so that `step` is the next to run.
    pub async fn replay_to(&mut self, step: usize) -> Result<(), RunError> {
        if step > self.lesson.steps.len() {
            return Err(RunError::NoSuchStep(step));
        }
        self.reset().await?;
        self.run_through(step).await
    }

    /// Runs steps until `step` is the next; a step that fails is passed over (it was reported
    /// when it first ran), losing the connection is not.
    async fn run_through(&mut self, step: usize) -> Result<(), RunError> {
        while self.next_step < step {
            match self.run_next().await {
                Ok(_) => {}
                Err(e) if e.connection_lost() => return Err(e),
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// Runs step `step` (0-based). Steps between the next one and it run first; an earlier step
    /// resets and replays.
    pub async fn run_step(&mut self, step: usize) -> Result<StepReport, RunError> {
        if step >= self.lesson.steps.len() {
            return Err(RunError::NoSuchStep(step));
        }
        if step < self.next_step {
            self.replay_to(step).await?;
        }
        self.run_through(step).await?;
        self.run_next().await
    }

    /// Runs the next step. A step counts as run even when one of its actions fails, so the
    /// lesson can go on from there.
    pub async fn run_next(&mut self) -> Result<StepReport, RunError> {
        let index = self.next_step;
        let step = self
            .lesson
            .steps
            .get(index)
            .ok_or(RunError::NoSuchStep(index))?;
        let report = match step.vhost.clone() {
            Some(vhost) => {
                let step = step.clone();
                match self.enter_vhost(&vhost).await {
                    Ok(other) => other.client.run_step(index, &step, &mut other.tap).await,
                    Err(e) => Err(e),
                }
            }
            None => {
                let client = self.client.as_mut().ok_or(RunError::NotConnected)?;
                let tap = self.tap.as_mut().ok_or(RunError::NotConnected)?;
                client.run_step(index, step, tap).await
            }
        };
        self.next_step += 1;
        report
    }

    /// The connection to `vhost` for a step that runs there. The first time, the vhost is made
    /// (as `rabbitmqctl add_vhost` and `set_permissions` would: through the management API on a
    /// RabbitMQ) and left clean of the lesson's exchanges and queues.
    async fn enter_vhost(&mut self, vhost: &str) -> Result<&mut Elsewhere, RunError> {
        if !self.elsewhere.contains_key(vhost) {
            let mut uri: lapin::uri::AMQPUri =
                self.url.parse().map_err(|message| RunError::Url {
                    url: self.url.clone(),
                    message,
                })?;
            let user = uri.authority.userinfo.username.clone();
            uri.vhost = vhost.to_string();
            let url = uri.to_string();
            let cannot = |error: RemoteError| RunError::Vhost {
                vhost: vhost.to_string(),
                error,
            };
            let (mut tap, created) = match &self.broker {
                Some(broker) => {
                    broker.add_vhost(vhost, &user);
                    (Tap::Events(broker.subscribe()), false)
                }
                None => {
                    let api = management_api(&self.url).map_err(cannot)?;
                    let existed = api
                        .vhost_names()
                        .await
                        .map_err(|e| cannot(e.into()))?
                        .iter()
                        .any(|v| v == vhost);
                    if !existed {
                        api.create_vhost(vhost)
                            .await
                            .map_err(|e| cannot(e.into()))?;
                    }
                    api.grant_all(vhost, &user)
                        .await
                        .map_err(|e| cannot(e.into()))?;
                    let firehose = Firehose::open(&url).await?;
                    (Tap::Firehose(Box::new(firehose)), !existed)
                }
            };
            delete_lesson_objects(&url, &self.lesson).await?;
            let programs = programs_of(&self.lesson, Some(vhost));
            let mut client = Client::connect(
                &url,
                (&self.lesson.id, self.release()),
                &programs,
                self.broker.clone(),
                &mut tap,
            )
            .await?;
            client.recordings = self.recordings.clone();
            self.elsewhere.insert(
                vhost.to_string(),
                Elsewhere {
                    url,
                    client,
                    tap,
                    created,
                },
            );
        }
        Ok(self.elsewhere.get_mut(vhost).expect("just made"))
    }

    /// Closes the connections to other vhosts and deletes the lesson's objects there; at the
    /// end of the run (`finished`) a vhost the run made on a RabbitMQ goes too.
    async fn leave_other_vhosts(&mut self, finished: bool) {
        for (vhost, other) in std::mem::take(&mut self.elsewhere) {
            other.client.close().await;
            other.tap.close().await;
            if finished && other.created {
                let deleted = match management_api(&self.url) {
                    Ok(api) => api.delete_vhost(&vhost).await.map_err(RemoteError::from),
                    Err(e) => Err(e),
                };
                if let Err(e) = deleted {
                    tracing::warn!(%vhost, error = %e, "could not delete the lesson's vhost");
                }
            } else if let Err(e) = delete_lesson_objects(&other.url, &self.lesson).await {
                tracing::warn!(%vhost, error = %e, "could not delete the lesson's objects");
            }
        }
    }

    /// Ends the run: closes the connections, deletes the lesson's exchanges and queues, turns
    /// RabbitMQ's tracing off again if the run turned it on, stops a broker it started. Call it:
    /// a run that is only dropped leaves tracing on.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            client.close().await;
        }
        self.leave_other_vhosts(true).await;
        if let Err(e) = delete_lesson_objects(&self.url, &self.lesson).await {
            tracing::warn!(error = %e, "could not delete the lesson's exchanges and queues");
        }
        if let Some(tap) = self.tap.take() {
            tap.close().await;
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        self.restore_behaviour();
    }

    /// A shared broker goes back to how it behaved before the lesson.
    fn restore_behaviour(&mut self) {
        if let (Some(broker), Some(behaviour)) = (&self.broker, self.restore.take()) {
            broker.behave_as(behaviour);
        }
    }
}

impl Drop for LessonRun {
    fn drop(&mut self) {
        self.restore_behaviour();
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// The management API of the RabbitMQ at this AMQP URL.
fn management_api(url: &str) -> Result<Management, RemoteError> {
    let endpoint = Endpoint::new(url, None)?;
    Ok(Management::new(&endpoint)?)
}

/// Exchanges and queues the lesson declares (in `setup` or with an action): the objects a run
/// may delete.
pub fn declared_names(lesson: &Lesson) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut exchanges: BTreeSet<String> = lesson
        .setup
        .exchanges
        .iter()
        .map(|x| x.name.clone())
        .collect();
    let mut queues: BTreeSet<String> = lesson.setup.queues.iter().map(|q| q.name.clone()).collect();
    for step in &lesson.steps {
        for action in &step.actions {
            match action {
                Action::DeclareExchange(x) => {
                    exchanges.insert(x.name.clone());
                }
                Action::DeclareQueue(q) => {
                    queues.insert(q.name.clone());
                }
                _ => {}
            }
        }
    }
    // What a replay with `topology: true` declares, from its trace.
    let declaring: BTreeSet<&str> = lesson
        .steps
        .iter()
        .flat_map(|step| &step.actions)
        .filter_map(|a| match a {
            Action::Replay(r) if r.topology => Some(r.trace.as_str()),
            _ => None,
        })
        .collect();
    let recordings = replay::recordings(lesson);
    let declared = recordings
        .iter()
        .filter(|(name, _)| declaring.contains(name.as_str()))
        .filter_map(|(_, recording)| recording.as_ref().ok());
    for recording in declared {
        exchanges.extend(recording.exchanges.iter().map(|x| x.name.clone()));
        queues.extend(recording.queues.iter().map(|q| q.name.clone()));
    }
    // Never the default exchange or RabbitMQ's own (validation refuses them; this is the guard).
    exchanges.retain(|x| !x.is_empty() && !x.starts_with("amq."));
    queues.retain(|q| !q.is_empty() && !q.starts_with("amq."));
    (exchanges, queues)
}

/// Deletes the lesson's exchanges and queues on a connection of its own, so runs repeat.
async fn delete_lesson_objects(url: &str, lesson: &Lesson) -> Result<(), RunError> {
    let (exchanges, queues) = declared_names(lesson);
    if exchanges.is_empty() && queues.is_empty() {
        return Ok(());
    }
    let name = format!("{} cleanup", lesson_connection_name(&lesson.id));
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let connection = timed(crate::tls::connect(url, properties))
        .await
        .map_err(|error| RunError::Connect {
            url: url.to_string(),
            name: None,
            error,
        })?;
    let mut channel = None;
    // Names AMQP cannot carry were never declared. Queues go first: they may be bound to the
    // exchanges.
    let queues = queues
        .iter()
        .filter_map(|q| short(q).ok())
        .map(Doomed::Queue);
    let exchanges = exchanges.iter().filter_map(|x| short(x).ok());
    for doomed in queues.chain(exchanges.map(Doomed::Exchange)) {
        let ch = open_if_closed(&connection, &mut channel).await?;
        let deleted = match doomed {
            Doomed::Queue(q) => timed(ch.queue_delete(q, QueueDeleteOptions::default()))
                .await
                .map(drop),
            Doomed::Exchange(x) => {
                timed(ch.exchange_delete(x, ExchangeDeleteOptions::default())).await
            }
        };
        // An error (e.g. another connection's exclusive queue) closes the channel; go on.
        if deleted.is_err() {
            channel = None;
        }
    }
    let _ = connection.close(200, "OK".into()).await;
    Ok(())
}

/// An object [`delete_lesson_objects`] deletes.
enum Doomed {
    Queue(ShortString),
    Exchange(ShortString),
}

async fn open_if_closed<'c>(
    connection: &Connection,
    channel: &'c mut Option<Channel>,
) -> Result<&'c Channel, RunError> {
    if channel.is_none() {
        let ch = timed(connection.create_channel())
            .await
            .map_err(|error| RunError::Channel {
                method: "channel.open",
                error,
            })?;
        *channel = Some(ch);
    }
    Ok(channel.as_ref().expect("just opened"))
}

/// The name of the lesson's own connection.
pub(super) fn lesson_connection_name(lesson_id: &str) -> String {
    format!("rabbitscope lesson {lesson_id}")
}

/// The programs the lesson plays (`client`) in the steps that run in `vhost` (None: its own).
fn programs_of(lesson: &Lesson, vhost: Option<&str>) -> Vec<String> {
    let programs: BTreeSet<String> = lesson
        .steps
        .iter()
        .filter(|step| step.vhost.as_deref() == vhost)
        .flat_map(|step| step.actions.iter().filter_map(|a| a.client()))
        .map(str::to_string)
        .collect();
    programs.into_iter().collect()
}
