//! Runs a lesson on a broker through a real AMQP client (lapin), the same way on the embedded
//! broker and on RabbitMQ, and reports what each step did next to what it expected.
//!
//! Which queues a publish reached is read from the broker itself: the event stream of the
//! embedded broker, RabbitMQ's firehose otherwise (see `tap`). To tell its own publishes from
//! everybody else's, a run first publishes a probe with a unique routing key and notes the
//! connection and channel the broker reports it on.
//!
//! A player drives it like this:
//!
//! ```no_run
//! # async fn play(broker: std::sync::Arc<rabbitscope::broker::Broker>) -> Result<(), Box<dyn std::error::Error>> {
//! use rabbitscope::lesson::{load_file, LessonRun, Target};
//!
//! let lesson = load_file(std::path::Path::new("lessons/06-topic-exchange.yaml"))?;
//! let url = "amqp://guest:guest@127.0.0.1:5673/%2f".to_string();
//! let mut run = LessonRun::start(lesson, Target::Shared { broker, url }).await?;
//! let report = run.run_step(0).await?;            // what step 1 did, checks included
//! if let Some(predict) = &run.lesson().steps[0].predict {
//!     let right = predict.is_right(&["Q1"], &report.routed); // the student's ticks
//! #   let _ = right;
//! }
//! run.run_step(0).await?;                         // again: resets and replays up to it
//! run.close().await;
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions,
    ExchangeBindOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, ExchangeUnbindOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{
    Acker, BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::task::JoinHandle;

use super::oslo;
use super::schema::{
    program_of, AckMode, Action, Arguments, Asked, BindingDecl, Consume, Destination, ExchangeDecl,
    ExchangeType, Lesson, Observed, Properties, QueueDecl, Step,
};
use super::tap::{Firehose, Tap, TapRecord};
use crate::amqp::Server;
use crate::broker::{Broker, BrokerConfig};

/// How long one broker operation may take before the run gives up on it.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);
/// How long to wait for the broker to report the route of a publish.
const ROUTE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the deliveries an expectation counts on.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(3);
/// How long `expect.depths` may take to come true after the step is quiet.
const DEPTH_TIMEOUT: Duration = Duration::from_secs(1);
/// Quiet means: nothing changed over this many samples, this far apart.
const QUIET_SAMPLES: usize = 3;
const SAMPLE_EVERY: Duration = Duration::from_millis(25);
const QUIET_TIMEOUT: Duration = Duration::from_secs(3);

/// The routing key prefix of the probe a run publishes to find its own connection in the
/// broker's reports; screens leave these messages out.
pub const PROBE_PREFIX: &str = "rabbitscope.probe.";

/// The broker a lesson runs on.
#[derive(Clone)]
pub enum Target {
    /// A fresh embedded broker on an ephemeral loopback port, started for this run alone.
    Embedded,
    /// An embedded broker the caller already serves at `url` (e.g. the live view's own).
    Shared { broker: Arc<Broker>, url: String },
    /// A RabbitMQ at this `amqp://` URL; its management API (same host, port 15672, same
    /// credentials) switches the firehose on for the run.
    RabbitMq { url: String },
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Embedded => f.write_str("Embedded"),
            Target::Shared { url, .. } => write!(f, "Shared({url})"),
            Target::RabbitMq { url } => write!(f, "RabbitMq({url})"),
        }
    }
}

/// One publish of a step and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishReport {
    pub exchange: String,
    pub routing_key: String,
    pub mandatory: bool,
    /// The queues it reached, sorted.
    pub queues: Vec<String>,
    /// Came back with basic.return.
    pub returned: bool,
    /// The broker refused it (publisher nack).
    pub nacked: bool,
}

/// One expectation, held or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// `expect.routed`, `expect.depths.Q1`, `predict.answer`...
    pub key: String,
    pub expected: String,
    /// What happened, worded to follow "but ": "the message reached [Q2]".
    pub actual: String,
    pub ok: bool,
    /// The check as a Chinese screen says it: what happened, and when it failed what was
    /// expected first.
    pub zh: String,
}

impl CheckResult {
    fn new(
        key: String,
        ok: bool,
        (expected, actual): (String, String),
        zh: (String, String),
    ) -> Self {
        let zh = if ok {
            zh.1
        } else {
            format!("预期 {}，但 {}", zh.0, zh.1)
        };
        CheckResult {
            key,
            expected,
            actual,
            ok,
            zh,
        }
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {} but {}",
            self.key, self.expected, self.actual
        )
    }
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepReport {
    /// The step's index (0-based).
    pub step: usize,
    pub publishes: Vec<PublishReport>,
    /// Every queue the step's publishes reached, sorted.
    pub routed: Vec<String>,
    pub returned: u32,
    /// Unroutable and not returned: silently dropped.
    pub dropped: u32,
    /// Messages each consumer received during the step.
    pub delivered: BTreeMap<String, u32>,
    /// The step's `expect` keys, in the order of the format.
    pub checks: Vec<CheckResult>,
    /// The predict choices that came true: the right ticks (empty without a predict).
    pub truth: Vec<String>,
    /// Whether the author's `predict.answer` agrees with what happened (None: no predict).
    pub predict_ok: Option<bool>,
    /// The same as a check, for reporting.
    pub predict_check: Option<CheckResult>,
    /// What the reader should know about how the step ran (say, a restart that was skipped).
    pub notes: Vec<String>,
}

impl StepReport {
    /// Every expectation and the predict answer held.
    pub fn ok(&self) -> bool {
        self.failures().next().is_none()
    }

    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks
            .iter()
            .chain(self.predict_check.iter())
            .filter(|c| !c.ok)
    }
}

/// Why a run could not go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// The broker (or its management API) could not be reached or started.
    Connect(String),
    /// Creating the lesson's `setup` failed; `what` is like "exchanges[0] `animals`".
    Setup {
        what: String,
        message: String,
    },
    /// An action failed; `action` is its index in the step's `do` (0-based).
    Action {
        step: usize,
        action: usize,
        keyword: &'static str,
        message: String,
    },
    /// The run lost track of what the broker did.
    Observe {
        step: Option<usize>,
        message: String,
    },
    NoSuchStep(usize),
    /// The last reset failed, so there is nothing to run a step on; reset again.
    NotConnected,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Connect(m) => f.write_str(m),
            RunError::Setup { what, message } => write!(f, "setup.{what}: {message}"),
            RunError::Action {
                step,
                action,
                keyword,
                message,
            } => write!(
                f,
                "step {}: action {} ({keyword}): {message}",
                step + 1,
                action + 1
            ),
            RunError::Observe {
                step: Some(step),
                message,
            } => write!(f, "step {}: {message}", step + 1),
            RunError::Observe {
                step: None,
                message,
            } => f.write_str(message),
            RunError::NoSuchStep(i) => write!(f, "there is no step {}", i + 1),
            RunError::NotConnected => {
                f.write_str("the lesson is not set up (the last reset failed)")
            }
        }
    }
}

impl std::error::Error for RunError {}

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
        let (url, broker, server, tap) = match target {
            Target::Embedded => {
                let broker = Broker::new(BrokerConfig::default());
                let server = Server::bind(broker.clone(), ([127, 0, 0, 1], 0).into())
                    .await
                    .map_err(|e| RunError::Connect(format!("cannot start a broker: {e}")))?;
                let url = format!("amqp://guest:guest@{}/%2f", server.local_addr());
                let tap = Tap::Events(broker.subscribe());
                let handle = tokio::spawn(server.run());
                (url, Some(broker), Some(handle), tap)
            }
            Target::Shared { broker, url } => {
                let tap = Tap::Events(broker.subscribe());
                (url, Some(broker), None, tap)
            }
            Target::RabbitMq { url } => {
                let firehose = Firehose::open(&url).await.map_err(RunError::Connect)?;
                (url, None, None, Tap::Firehose(Box::new(firehose)))
            }
        };
        let mut run = LessonRun {
            lesson,
            url,
            broker,
            server,
            tap: Some(tap),
            client: None,
            elsewhere: BTreeMap::new(),
            next_step: 0,
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
        delete_lesson_objects(&self.url, &self.lesson).await?;
        let tap = self.tap.as_mut().ok_or(RunError::NotConnected)?;
        let programs = programs_of(&self.lesson, None);
        let mut client = Client::connect(
            &self.url,
            &self.lesson.id,
            &programs,
            self.broker.clone(),
            tap,
        )
        .await?;
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
                Err(e @ (RunError::Connect(_) | RunError::NotConnected)) => return Err(e),
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
            let mut uri: lapin::uri::AMQPUri = self
                .url
                .parse()
                .map_err(|e| RunError::Connect(format!("{}: {e}", self.url)))?;
            let user = uri.authority.userinfo.username.clone();
            uri.vhost = vhost.to_string();
            let url = uri.to_string();
            let cannot = |e: String| RunError::Connect(format!("cannot make vhost '{vhost}': {e}"));
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
                        .map_err(|e| cannot(e.to_string()))?
                        .iter()
                        .any(|v| v == vhost);
                    if !existed {
                        api.create_vhost(vhost)
                            .await
                            .map_err(|e| cannot(e.to_string()))?;
                    }
                    api.grant_all(vhost, &user)
                        .await
                        .map_err(|e| cannot(e.to_string()))?;
                    let firehose = Firehose::open(&url).await.map_err(RunError::Connect)?;
                    (Tap::Firehose(Box::new(firehose)), !existed)
                }
            };
            delete_lesson_objects(&url, &self.lesson).await?;
            let programs = programs_of(&self.lesson, Some(vhost));
            let client = Client::connect(
                &url,
                &self.lesson.id,
                &programs,
                self.broker.clone(),
                &mut tap,
            )
            .await?;
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
                    Ok(api) => api.delete_vhost(&vhost).await.map_err(|e| e.to_string()),
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
    }
}

impl Drop for LessonRun {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// The management API of the RabbitMQ at this AMQP URL.
fn management_api(url: &str) -> Result<crate::remote::Management, String> {
    let endpoint = crate::remote::Endpoint::new(url, None)?;
    crate::remote::Management::new(&endpoint).map_err(|e| e.to_string())
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
        .map_err(|e| RunError::Connect(format!("cannot connect to {url}: {e}")))?;
    let mut channel = None;
    // Names AMQP cannot carry were never declared.
    let queues = queues.iter().filter_map(|q| short(q).ok());
    let exchanges = exchanges.iter().filter_map(|x| short(x).ok());
    for queue in queues {
        let ch = open_if_closed(&connection, &mut channel).await?;
        // An error (e.g. another connection's exclusive queue) closes the channel; go on.
        if timed(ch.queue_delete(queue, QueueDeleteOptions::default()))
            .await
            .is_err()
        {
            channel = None;
        }
    }
    for exchange in exchanges {
        let ch = open_if_closed(&connection, &mut channel).await?;
        if timed(ch.exchange_delete(exchange, ExchangeDeleteOptions::default()))
            .await
            .is_err()
        {
            channel = None;
        }
    }
    let _ = connection.close(200, "OK".into()).await;
    Ok(())
}

async fn open_if_closed<'c>(
    connection: &Connection,
    channel: &'c mut Option<Channel>,
) -> Result<&'c Channel, RunError> {
    if channel.is_none() {
        let ch = timed(connection.create_channel())
            .await
            .map_err(|e| RunError::Connect(format!("channel.open: {e}")))?;
        *channel = Some(ch);
    }
    Ok(channel.as_ref().expect("just opened"))
}

/// A lapin operation with the run's timeout; both failures as text.
async fn timed<T>(
    operation: impl std::future::Future<Output = lapin::Result<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(OPERATION_TIMEOUT, operation).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(amqp_error(&e)),
        Err(_) => Err(format!(
            "no answer from the broker within {} s",
            OPERATION_TIMEOUT.as_secs()
        )),
    }
}

/// A name, key or property as AMQP carries it: at most 255 bytes.
fn short(text: &str) -> Result<ShortString, String> {
    ShortString::try_new(text).map_err(|_| {
        let start: String = text.chars().take(24).collect();
        format!(
            "`{start}...` is {} bytes long; AMQP allows at most 255",
            text.len()
        )
    })
}

/// "404 NOT_FOUND - no queue 'q' in vhost '/'" for a broker error, lapin's words otherwise.
/// Stops and starts the RabbitMQ on this machine, and waits until it is up.
async fn restart_rabbitmq() -> Result<(), String> {
    for command in ["stop_app", "start_app", "await_startup"] {
        let output = tokio::process::Command::new("rabbitmqctl")
            .arg(command)
            .output()
            .await
            .map_err(|e| format!("cannot run rabbitmqctl to restart RabbitMQ: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "rabbitmqctl {command}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
    }
    Ok(())
}

fn amqp_error(e: &lapin::Error) -> String {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(p) => format!("{} {}", p.get_id(), p.get_message()),
        _ => e.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// The lesson's client
// ---------------------------------------------------------------------------------------------

/// What a consumer has received.
#[derive(Default)]
struct Inbox {
    received: u64,
    unacked: VecDeque<Acker>,
    /// Bodies received since the current step began.
    bodies: Vec<Vec<u8>>,
    last_call: Option<oslo::Call>,
}

struct ConsumerHandle {
    channel: Channel,
    manual: bool,
    /// The program it consumes for (`client`); its replies go out on that connection.
    client: Option<String>,
    inbox: Arc<Mutex<Inbox>>,
    reader: JoinHandle<()>,
}

/// One AMQP connection of a run: the lesson's own, or that of a program it plays (`client`).
struct Link {
    connection: Connection,
    /// Every publish, in confirm mode.
    publisher: Channel,
    /// The publisher channel as the tap names it: (connection, channel).
    identity: (String, u16),
    /// basic.get; a message got with manual ack stays unacked here.
    getter: Option<Channel>,
    /// Declares, binds, deletes, purges.
    control: Option<Channel>,
}

/// A publish of the step, and the channel it went out on as the tap names it.
struct Sent {
    report: PublishReport,
    by: (String, u16),
    routed: bool,
}

struct Client {
    url: String,
    lesson_id: String,
    /// The embedded broker, restarted in place by `restart`; None on RabbitMQ.
    broker: Option<Arc<Broker>>,
    /// The lesson's own connection, `rabbitscope lesson <id>`.
    own: Link,
    /// A connection for each program (`client`) the lesson plays, named as oslo.messaging
    /// names its own (`nova-api:<pid>:<uuid>`), so the broker shows who publishes and consumes.
    programs: BTreeMap<String, Link>,
    /// Every program the lesson plays here; one missing from `programs` was closed and connects
    /// again when an action needs it.
    clients: Vec<String>,
    /// Passive declares to read queue depths.
    inspector: Option<Channel>,
    consumers: BTreeMap<String, ConsumerHandle>,
    /// This step's publishes; `routed` of them have their route.
    publishes: Vec<Sent>,
    routed: usize,
    /// Bodies of messages got in this step.
    got: Vec<Vec<u8>>,
    /// Each consumer's `received` when the step began.
    received_before: BTreeMap<String, u64>,
    /// This step's notes for the report.
    notes: Vec<String>,
    /// The step's expectations cannot be checked (its restart was skipped).
    unchecked: bool,
    /// This step's refusals that the lesson expected, as checks.
    refusals: Vec<CheckResult>,
}

/// Set to 1 to let lessons restart a RabbitMQ on this machine with `rabbitmqctl`.
pub const RESTART_RABBITMQ: &str = "RABBITSCOPE_RESTART_RABBITMQ";

fn lock(inbox: &Mutex<Inbox>) -> std::sync::MutexGuard<'_, Inbox> {
    inbox
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Client {
    /// Connects as the lesson and as each of `clients`.
    async fn connect(
        url: &str,
        lesson_id: &str,
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
        })
    }

    /// Restarts the broker, then connects again as any client of a restarted broker must.
    ///
    /// The embedded broker restarts in place ([`Broker::restart`]). A RabbitMQ is restarted
    /// with `rabbitmqctl stop_app` and `start_app` only when [`RESTART_RABBITMQ`] is 1: it is
    /// often shared (tests, other users), and a restart closes everybody's connections.
    /// Otherwise the step notes that it was not restarted and its expectations go unchecked.
    async fn restart(&mut self, tap: &mut Tap) -> Result<(), String> {
        // The step's publishes so far are reported on the connection about to close.
        self.collect_routes(tap).await?;
        match &self.broker {
            Some(broker) => {
                let broker = broker.clone();
                tokio::task::spawn_blocking(move || broker.restart())
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("the broker could not restart: {e}"))?;
            }
            None => {
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
        self.reconnect(tap).await.map_err(|e| e.to_string())
    }

    /// A new connection in place of one the broker closed; consumers are gone with the old.
    async fn reconnect(&mut self, tap: &mut Tap) -> Result<(), RunError> {
        for handle in std::mem::take(&mut self.consumers).into_values() {
            handle.reader.abort();
        }
        let fresh = Client::connect(
            &self.url,
            &self.lesson_id,
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
        Ok(())
    }

    /// Closes the connection of `program`, as when the process exits: the broker cancels its
    /// consumers and deletes its exclusive queues.
    async fn close_client(&mut self, program: &str, tap: &mut Tap) -> Result<(), String> {
        // The step's publishes so far are reported on connections that may be about to close.
        self.collect_routes(tap).await?;
        let link = self
            .programs
            .remove(program)
            .ok_or_else(|| format!("client `{program}` is not connected"))?;
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
        link.close().await;
        Ok(())
    }

    /// Connects `program` again if a `close` closed it.
    async fn reopen_client(&mut self, program: &str, tap: &mut Tap) -> Result<(), String> {
        if self.programs.contains_key(program) || !self.clients.iter().any(|c| c == program) {
            return Ok(());
        }
        // Opening a link reads past what the tap reported: first the routes of this step.
        self.collect_routes(tap).await?;
        let name = oslo::connection_name(program_of(program));
        let link = Link::open(&self.url, &name, tap)
            .await
            .map_err(|e| e.to_string())?;
        self.programs.insert(program.to_string(), link);
        Ok(())
    }

    /// A publish refused by the broker (say to a missing exchange) closes the publishing
    /// channel; the next step opens another and learns its name anew.
    async fn reopen_publishers_if_closed(&mut self, tap: &mut Tap) -> Result<(), RunError> {
        for link in std::iter::once(&mut self.own).chain(self.programs.values_mut()) {
            link.reopen_publisher_if_closed(tap).await?;
        }
        Ok(())
    }

    /// The connection of `program`, the lesson's own without one.
    fn link(&mut self, program: Option<&str>) -> Result<&mut Link, String> {
        match program {
            None => Ok(&mut self.own),
            Some(program) => self
                .programs
                .get_mut(program)
                .ok_or_else(|| format!("client `{program}` has no connection in this vhost")),
        }
    }

    async fn close(self) {
        for handle in self.consumers.values() {
            handle.reader.abort();
        }
        for link in std::iter::once(self.own).chain(self.programs.into_values()) {
            link.close().await;
        }
    }

    async fn channel(
        connection: &Connection,
        slot: &mut Option<Channel>,
    ) -> Result<Channel, String> {
        if let Some(ch) = slot {
            if ch.status().connected() {
                return Ok(ch.clone());
            }
        }
        let ch = timed(connection.create_channel()).await?;
        *slot = Some(ch.clone());
        Ok(ch)
    }

    async fn control(&mut self) -> Result<Channel, String> {
        Self::channel(&self.own.connection, &mut self.own.control).await
    }

    async fn setup(&mut self, lesson: &Lesson) -> Result<(), RunError> {
        let failed = |what: String| move |message: String| RunError::Setup { what, message };
        for (i, x) in lesson.setup.exchanges.iter().enumerate() {
            self.declare_exchange(x)
                .await
                .map_err(failed(format!("exchanges[{i}] `{}`", x.name)))?;
        }
        for (i, q) in lesson.setup.queues.iter().enumerate() {
            self.declare_queue(q)
                .await
                .map_err(failed(format!("queues[{i}] `{}`", q.name)))?;
        }
        for (i, b) in lesson.setup.bindings.iter().enumerate() {
            self.bind(b, true)
                .await
                .map_err(failed(format!("bindings[{i}]")))?;
        }
        Ok(())
    }

    async fn declare_exchange(&mut self, x: &ExchangeDecl) -> Result<(), String> {
        let kind = match x.kind {
            ExchangeType::Direct => ExchangeKind::Direct,
            ExchangeType::Fanout => ExchangeKind::Fanout,
            ExchangeType::Topic => ExchangeKind::Topic,
            ExchangeType::Headers => ExchangeKind::Headers,
        };
        let options = ExchangeDeclareOptions {
            durable: x.durable,
            auto_delete: x.auto_delete,
            internal: x.internal,
            ..ExchangeDeclareOptions::default()
        };
        let ch = self.control().await?;
        timed(ch.exchange_declare(short(&x.name)?, kind, options, field_table(&x.arguments)?)).await
    }

    async fn declare_queue(&mut self, q: &QueueDecl) -> Result<(), String> {
        let options = QueueDeclareOptions {
            durable: q.durable,
            exclusive: q.exclusive,
            auto_delete: q.auto_delete,
            ..QueueDeclareOptions::default()
        };
        let link = self.link(q.client.as_deref())?;
        let ch = Self::channel(&link.connection, &mut link.control).await?;
        timed(ch.queue_declare(short(&q.name)?, options, field_table(&q.arguments)?))
            .await
            .map(|_| ())
    }

    async fn bind(&mut self, b: &BindingDecl, bind: bool) -> Result<(), String> {
        let ch = self.control().await?;
        let source = short(&b.exchange)?;
        let key = short(&b.routing_key)?;
        let arguments = field_table(&b.arguments)?;
        match (b.destination(), bind) {
            (Destination::Queue(q), true) => {
                timed(ch.queue_bind(
                    short(q)?,
                    source,
                    key,
                    QueueBindOptions::default(),
                    arguments,
                ))
                .await
            }
            (Destination::Queue(q), false) => {
                timed(ch.queue_unbind(short(q)?, source, key, arguments)).await
            }
            (Destination::Exchange(x), true) => {
                timed(ch.exchange_bind(
                    short(x)?,
                    source,
                    key,
                    ExchangeBindOptions::default(),
                    arguments,
                ))
                .await
            }
            (Destination::Exchange(x), false) => {
                timed(ch.exchange_unbind(
                    short(x)?,
                    source,
                    key,
                    ExchangeUnbindOptions::default(),
                    arguments,
                ))
                .await
            }
        }
    }

    /// basic.publish on the confirm channel of `by` (a program, or the lesson); waits for the
    /// confirm (and any basic.return).
    async fn publish(
        &mut self,
        by: Option<&str>,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
        mandatory: bool,
    ) -> Result<(), String> {
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
            },
            by,
            routed: false,
        });
        Ok(())
    }

    /// Reads the tap until every publish so far has its route.
    async fn collect_routes(&mut self, tap: &mut Tap) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + ROUTE_TIMEOUT;
        let mut known_queues = BTreeMap::new();
        while self.routed < self.publishes.len() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(mut record) = tap.next(left).await? else {
                return Err(format!(
                    "the broker reported the route of {} of {} publishes within {} s",
                    self.routed,
                    self.publishes.len(),
                    ROUTE_TIMEOUT.as_secs()
                ));
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
                return Err(format!(
                    "the broker reported a publish to `{exchange}` with key `{routing_key}` \
                     where `{}` with key `{}` was expected",
                    publish.exchange, publish.routing_key
                ));
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
    fn sample(&self) -> Vec<u64> {
        self.consumers
            .values()
            .map(|c| lock(&c.inbox).received)
            .collect()
    }

    /// Ready messages in `queue`, by passive queue.declare.
    async fn depth(&mut self, queue: &str) -> Result<u32, String> {
        let ch = Self::channel(&self.own.connection, &mut self.inspector).await?;
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let answer = timed(ch.queue_declare(short(queue)?, options, FieldTable::default())).await;
        match answer {
            Ok(q) => Ok(q.message_count()),
            Err(e) if e.starts_with("404") => Err(format!("`{queue}` does not exist")),
            Err(e) => Err(e),
        }
    }

    /// Waits until routes are known, the deliveries `expected` counts on have arrived, and
    /// nothing has changed for a few samples.
    async fn settle(
        &mut self,
        tap: &mut Tap,
        expected: Option<&BTreeMap<String, u32>>,
    ) -> Result<(), String> {
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

    fn delivered_this_step(&self, consumer: &str) -> u32 {
        let Some(handle) = self.consumers.get(consumer) else {
            return 0;
        };
        let now = lock(&handle.inbox).received;
        let before = self.received_before.get(consumer).copied().unwrap_or(0);
        u32::try_from(now.saturating_sub(before)).unwrap_or(u32::MAX)
    }

    async fn run_step(
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
                .map_err(|message| RunError::Action {
                    step: index,
                    action: a,
                    keyword: action.keyword(),
                    message,
                })?;
        }
        self.settle(tap, step.expect.delivered.as_ref())
            .await
            .map_err(|message| RunError::Observe {
                step: Some(index),
                message,
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

    /// Runs one action. One that expects a refusal succeeds only when the broker refuses it
    /// with that reply code; the refusal is then one of the step's checks.
    async fn act(&mut self, action: &Action, tap: &mut Tap) -> Result<(), String> {
        if let (Some(program), false) = (action.client(), matches!(action, Action::Close(_))) {
            self.reopen_client(program, tap).await?;
        }
        let outcome = self.perform(action, tap).await;
        let Some(code) = action.refused() else {
            return outcome;
        };
        match outcome {
            Err(answer) if answer.starts_with(&format!("{code} ")) => {
                self.refusals.push(refusal_check(action, code, &answer));
                Ok(())
            }
            Err(answer) => Err(format!(
                "expected the broker to refuse with {code}, but it answered {answer}"
            )),
            Ok(()) => Err(format!(
                "expected the broker to refuse with {code}, but it accepted"
            )),
        }
    }

    async fn perform(&mut self, action: &Action, tap: &mut Tap) -> Result<(), String> {
        match action {
            Action::DeclareExchange(x) => self.declare_exchange(x).await,
            Action::DeleteExchange(x) => {
                let ch = self.control().await?;
                timed(ch.exchange_delete(short(&x.name)?, ExchangeDeleteOptions::default())).await
            }
            Action::DeclareQueue(q) => self.declare_queue(q).await,
            Action::DeleteQueue(q) => {
                let ch = self.control().await?;
                timed(ch.queue_delete(short(&q.name)?, QueueDeleteOptions::default()))
                    .await
                    .map(|_| ())
            }
            Action::Purge(p) => {
                let ch = self.control().await?;
                timed(ch.queue_purge(short(&p.queue)?, QueuePurgeOptions::default()))
                    .await
                    .map(|_| ())
            }
            Action::Bind(b) => self.bind(b, true).await,
            Action::Unbind(b) => self.bind(b, false).await,
            Action::Publish(p) => {
                let mut properties = basic_properties(&p.properties)?;
                if !p.headers.is_empty() {
                    properties = properties.with_headers(field_table(&p.headers)?);
                }
                for _ in 0..p.count {
                    self.publish(
                        p.client.as_deref(),
                        &p.exchange,
                        &p.routing_key,
                        p.body.as_bytes(),
                        properties.clone(),
                        p.mandatory,
                    )
                    .await?;
                }
                Ok(())
            }
            Action::Rpc(rpc) => {
                let msg_id = rpc.call.then(oslo::random_hex);
                let body = oslo::envelope(&oslo::request(rpc, msg_id.as_deref()));
                let mut properties = oslo_properties();
                if rpc.call {
                    let ms = u64::from(oslo::call_timeout(rpc)) * 1000;
                    properties = properties.with_expiration(ms.to_string().into());
                }
                let by = rpc.client.as_deref();
                self.publish(
                    by,
                    &rpc.exchange,
                    &rpc.routing_key,
                    &body,
                    properties,
                    false,
                )
                .await
            }
            Action::Reply(reply) => {
                self.settle(tap, None).await?;
                let consumer = self.consumers.get(&reply.consumer);
                let call = consumer
                    .and_then(|c| lock(&c.inbox).last_call.clone())
                    .ok_or_else(|| {
                        format!(
                            "consumer `{}` has received no call to reply to",
                            reply.consumer
                        )
                    })?;
                // The server that got the call answers it, on its own connection.
                let by = consumer.and_then(|c| c.client.clone());
                let answer = oslo::reply(
                    &call,
                    reply.result.as_ref(),
                    reply.failure.as_deref(),
                    reply.ending,
                );
                let body = oslo::envelope(&answer);
                self.publish(
                    by.as_deref(),
                    "",
                    &call.reply_q,
                    &body,
                    oslo_properties(),
                    true,
                )
                .await
            }
            Action::Consume(c) => self.consume(c).await,
            Action::Cancel(c) => {
                let handle = self
                    .consumers
                    .get(&c.consumer)
                    .ok_or_else(|| format!("there is no consumer `{}`", c.consumer))?;
                timed(
                    handle
                        .channel
                        .basic_cancel(short(&c.consumer)?, BasicCancelOptions::default()),
                )
                .await
            }
            Action::Ack(a) => {
                self.settle(tap, None).await?;
                for acker in self.take_unacked(&a.consumer, a.count)? {
                    timed(acker.ack(BasicAckOptions::default())).await?;
                }
                Ok(())
            }
            Action::Nack(n) => {
                self.settle(tap, None).await?;
                for acker in self.take_unacked(&n.consumer, n.count)? {
                    let options = BasicNackOptions {
                        multiple: false,
                        requeue: n.requeue,
                    };
                    timed(acker.nack(options)).await?;
                }
                Ok(())
            }
            Action::Reject(n) => {
                self.settle(tap, None).await?;
                for acker in self.take_unacked(&n.consumer, n.count)? {
                    let options = BasicRejectOptions { requeue: n.requeue };
                    timed(acker.reject(options)).await?;
                }
                Ok(())
            }
            Action::Get(g) => {
                self.settle(tap, None).await?;
                let link = self.link(g.client.as_deref())?;
                let ch = Self::channel(&link.connection, &mut link.getter).await?;
                let options = BasicGetOptions {
                    no_ack: g.ack == AckMode::Auto,
                };
                if let Some(message) = timed(ch.basic_get(short(&g.queue)?, options)).await? {
                    self.got.push(message.delivery.data);
                }
                Ok(())
            }
            Action::Wait(w) => {
                tokio::time::sleep(Duration::from_millis(w.ms)).await;
                Ok(())
            }
            Action::Restart(_) => self.restart(tap).await,
            Action::Close(c) => self.close_client(&c.client, tap).await,
        }
    }

    async fn consume(&mut self, c: &Consume) -> Result<(), String> {
        if let Some(old) = self.consumers.remove(&c.consumer) {
            // A name used again after its cancel: the old channel goes, requeueing what it held.
            old.reader.abort();
            let _ = timed(old.channel.close(200, "OK".into())).await;
        }
        let link = self.link(c.client.as_deref())?;
        let channel = timed(link.connection.create_channel()).await?;
        timed(channel.basic_qos(c.prefetch, BasicQosOptions::default())).await?;
        let manual = c.ack == AckMode::Manual;
        let mut consumer = timed(channel.basic_consume(
            short(&c.queue)?,
            short(&c.consumer)?,
            BasicConsumeOptions {
                no_ack: !manual,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        ))
        .await?;
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let reader = tokio::spawn({
            let inbox = inbox.clone();
            async move {
                while let Some(Ok(delivery)) = consumer.next().await {
                    let call = oslo::read_call(&delivery.data);
                    let mut inbox = lock(&inbox);
                    inbox.received += 1;
                    if call.is_some() {
                        inbox.last_call = call;
                    }
                    if manual {
                        inbox.unacked.push_back(delivery.acker);
                    }
                    inbox.bodies.push(delivery.data);
                }
            }
        });
        self.received_before.insert(c.consumer.clone(), 0);
        self.consumers.insert(
            c.consumer.clone(),
            ConsumerHandle {
                channel,
                manual,
                client: c.client.clone(),
                inbox,
                reader,
            },
        );
        Ok(())
    }

    /// The `count` oldest unacked deliveries of a consumer (all of them without a count).
    fn take_unacked(&mut self, consumer: &str, count: Option<u32>) -> Result<Vec<Acker>, String> {
        let handle = self
            .consumers
            .get(consumer)
            .ok_or_else(|| format!("there is no consumer `{consumer}`"))?;
        if !handle.manual {
            return Err(format!("consumer `{consumer}` acknowledges automatically"));
        }
        let mut inbox = lock(&handle.inbox);
        let held = inbox.unacked.len();
        let n = match count {
            None => held,
            Some(n) if n as usize <= held => n as usize,
            Some(n) => {
                return Err(format!(
                    "consumer `{consumer}` holds {held} unacked message{}, fewer than {n}",
                    plural(held)
                ))
            }
        };
        Ok(inbox.unacked.drain(..n).collect())
    }

    async fn report(&mut self, index: usize, step: &Step) -> StepReport {
        let publishes: Vec<PublishReport> =
            self.publishes.iter().map(|s| s.report.clone()).collect();
        let routed: BTreeSet<String> = publishes
            .iter()
            .flat_map(|p| p.queues.iter().cloned())
            .collect();
        let routed: Vec<String> = routed.into_iter().collect();
        let returned = publishes.iter().filter(|p| p.returned).count() as u32;
        let dropped = publishes
            .iter()
            .filter(|p| p.queues.is_empty() && !p.returned && !p.nacked)
            .count() as u32;
        let delivered: BTreeMap<String, u32> = self
            .consumers
            .keys()
            .map(|name| (name.clone(), self.delivered_this_step(name)))
            .collect();
        let mut report = StepReport {
            step: index,
            publishes,
            routed,
            returned,
            dropped,
            delivered,
            ..StepReport::default()
        };
        report.checks = self.checks(step, &report).await;
        if let Some(predict) = &step.predict {
            let ready = match (&predict.about, &predict.queue) {
                (Asked::Ready, Some(queue)) => self.depth(queue).await.ok(),
                _ => None,
            };
            let observed = Observed {
                routed: &report.routed,
                delivered: &report.delivered,
                ready,
            };
            let truth = predict.truth(&observed);
            let mut answer = predict.answer.clone();
            answer.sort();
            let mut sorted = truth.clone();
            sorted.sort();
            let ok = answer == sorted;
            let actual = match (predict.about, &predict.queue) {
                (Asked::Ready, Some(queue)) => match ready {
                    Some(n) => ready_text(queue, n),
                    None => format!("the ready messages of `{queue}` could not be read"),
                },
                (Asked::Consumers, _) => format!("of the choices, {}", received_text(&truth)),
                _ => format!("of the choices, {}", reached_text(&report, &truth)),
            };
            report.predict_ok = Some(ok);
            report.predict_check = Some(CheckResult {
                key: "predict.answer".to_string(),
                expected: list(&predict.answer),
                actual,
                ok,
                // The screen says the verdict in its own words (see the lesson pane).
                zh: String::new(),
            });
            report.truth = truth;
        }
        report
    }

    async fn checks(&mut self, step: &Step, report: &StepReport) -> Vec<CheckResult> {
        let expect = &step.expect;
        let mut checks = Vec::new();
        if let Some(routed) = &expect.routed {
            let mut wanted: Vec<String> = routed.clone();
            wanted.sort();
            wanted.dedup();
            checks.push(CheckResult::new(
                "expect.routed".to_string(),
                wanted == report.routed,
                (list(routed), reached_text(report, &report.routed)),
                (list(routed), reached_text_zh(report, &report.routed)),
            ));
        }
        for (key, wanted, got, what, what_zh) in [
            (
                "returned",
                expect.returned,
                report.returned,
                "returned to the publisher",
                "被退回给发布者",
            ),
            (
                "dropped",
                expect.dropped,
                report.dropped,
                "dropped: no queue took it",
                "被丢弃：没有队列接收",
            ),
        ] {
            if let Some(wanted) = wanted {
                let verb = if got == 1 { "was" } else { "were" };
                checks.push(CheckResult::new(
                    format!("expect.{key}"),
                    wanted == got,
                    (
                        wanted.to_string(),
                        format!("{got} {} {verb} {what}", messages(got)),
                    ),
                    (format!("{wanted} 条"), format!("{got} 条消息{what_zh}")),
                ));
            }
        }
        if let Some(depths) = &expect.depths {
            // RabbitMQ moves messages between queues on its own time (dead letters, expiry):
            // give the depths a moment to arrive before calling them wrong.
            let deadline = tokio::time::Instant::now() + DEPTH_TIMEOUT;
            let mut results = Vec::new();
            loop {
                results.clear();
                for (queue, wanted) in depths {
                    let (actual, actual_zh, ok) = match self.depth(queue).await {
                        Ok(n) => (ready_text(queue, n), ready_text_zh(queue, n), n == *wanted),
                        Err(e) => (e.clone(), e, false),
                    };
                    results.push(CheckResult::new(
                        format!("expect.depths.{queue}"),
                        ok,
                        (wanted.to_string(), actual),
                        (format!("{wanted} 条"), actual_zh),
                    ));
                }
                if results.iter().all(|r| r.ok) || tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(SAMPLE_EVERY * 2).await;
            }
            checks.append(&mut results);
        }
        if let Some(delivered) = &expect.delivered {
            for (consumer, wanted) in delivered {
                let got = report.delivered.get(consumer).copied().unwrap_or(0);
                checks.push(CheckResult::new(
                    format!("expect.delivered.{consumer}"),
                    got == *wanted,
                    (
                        wanted.to_string(),
                        format!("`{consumer}` received {got} {}", messages(got)),
                    ),
                    (
                        format!("{wanted} 条"),
                        format!("`{consumer}` 收到了 {got} 条消息"),
                    ),
                ));
            }
        }
        if let Some(pattern) = &expect.routing_key_matches {
            let keys: Vec<&[u8]> = report
                .publishes
                .iter()
                .map(|p| p.routing_key.as_bytes())
                .collect();
            checks.push(match_all(
                "expect.routing_key_matches",
                [("routing key", "routing keys"), ("路由键", "路由键")],
                pattern,
                &keys,
                ["nothing was published", "没有发布任何消息"],
            ));
        }
        if let Some(pattern) = &expect.body_matches {
            let mut bodies: Vec<Vec<u8>> = Vec::new();
            for handle in self.consumers.values() {
                bodies.extend(lock(&handle.inbox).bodies.iter().cloned());
            }
            bodies.extend(self.got.iter().cloned());
            let bodies: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
            checks.push(match_all(
                "expect.body_matches",
                [("body", "bodies"), ("消息体", "消息体")],
                pattern,
                &bodies,
                ["no message was delivered", "没有投递任何消息"],
            ));
        }
        checks
    }
}

impl Link {
    /// Connects as `name` (the client property `connection_name`) and learns how the tap names
    /// its publisher channel.
    async fn open(url: &str, name: &str, tap: &mut Tap) -> Result<Link, RunError> {
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let connection = timed(crate::tls::connect(url, properties))
            .await
            .map_err(|e| RunError::Connect(format!("cannot connect to {url} as {name}: {e}")))?;
        let publisher = Self::open_publisher(&connection).await?;
        let mut link = Link {
            connection,
            publisher,
            identity: (String::new(), 0),
            getter: None,
            control: None,
        };
        link.identify(tap).await?;
        Ok(link)
    }

    /// A channel in confirm mode, so each publish is known routed (or returned) once confirmed.
    async fn open_publisher(connection: &Connection) -> Result<Channel, RunError> {
        let publisher = timed(connection.create_channel())
            .await
            .map_err(|e| RunError::Connect(format!("channel.open: {e}")))?;
        timed(publisher.confirm_select(ConfirmSelectOptions::default()))
            .await
            .map_err(|e| RunError::Connect(format!("confirm.select: {e}")))?;
        Ok(publisher)
    }

    async fn reopen_publisher_if_closed(&mut self, tap: &mut Tap) -> Result<(), RunError> {
        if self.publisher.status().connected() {
            return Ok(());
        }
        self.publisher = Self::open_publisher(&self.connection).await?;
        self.identify(tap).await
    }

    /// basic.publish on the confirm channel; waits for the confirm (and any basic.return).
    /// Returns (returned, nacked).
    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
        mandatory: bool,
    ) -> Result<(bool, bool), String> {
        let options = BasicPublishOptions {
            mandatory,
            ..BasicPublishOptions::default()
        };
        let confirm = timed(self.publisher.basic_publish(
            short(exchange)?,
            short(routing_key)?,
            options,
            body,
            properties,
        ))
        .await?;
        Ok(match timed(confirm).await? {
            Confirmation::Ack(returned) => (returned.is_some(), false),
            Confirmation::Nack(returned) => (returned.is_some(), true),
            Confirmation::NotRequested => (false, false),
        })
    }

    /// Publishes a probe nobody receives and notes how the tap names its channel. Reads past
    /// what the tap reported before: call it before a step's publishes, not among them.
    async fn identify(&mut self, tap: &mut Tap) -> Result<(), RunError> {
        tap.skip_pending().await;
        let key = format!("{PROBE_PREFIX}{}", oslo::random_hex());
        self.publish("", &key, b"", BasicProperties::default(), false)
            .await
            .map_err(|e| RunError::Connect(format!("publishing the probe: {e}")))?;
        let deadline = tokio::time::Instant::now() + ROUTE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let record = tap.next(left).await.map_err(|message| RunError::Observe {
                step: None,
                message,
            })?;
            let Some(record) = record else {
                return Err(RunError::Observe {
                    step: None,
                    message: "the broker never reported the probe publish (is tracing on?)"
                        .to_string(),
                });
            };
            if record.routing_key == key {
                self.identity = (record.connection, record.channel);
                return Ok(());
            }
        }
    }

    async fn close(self) {
        let _ =
            tokio::time::timeout(OPERATION_TIMEOUT, self.connection.close(200, "OK".into())).await;
    }
}

/// The name of the lesson's own connection.
fn lesson_connection_name(lesson_id: &str) -> String {
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

/// "`viewer` was refused: 405 RESOURCE_LOCKED - ...": who was refused is the consumer, or the
/// program (the lesson itself without one) that declared.
fn refusal_check(action: &Action, code: u16, answer: &str) -> CheckResult {
    let (who, who_zh) = match action {
        Action::Consume(c) => (format!("`{}`", c.consumer), format!("`{}`", c.consumer)),
        _ => match action.client() {
            Some(program) => (format!("`{program}`"), format!("`{program}`")),
            None => (
                "the lesson's connection".to_string(),
                "本课的连接".to_string(),
            ),
        },
    };
    CheckResult::new(
        format!("do.{}.refused", action.keyword()),
        true,
        (
            format!("a refusal with {code}"),
            format!("{who} was refused: {answer}"),
        ),
        (
            format!("以 {code} 拒绝"),
            format!("{who_zh} 被拒绝：{answer}"),
        ),
    )
}

/// "every routing key to match `re`": holds when there is at least one and all match.
/// Words of [`match_all`] in English and Chinese: what is matched (one, many).
type Nouns<'a> = [(&'a str, &'a str); 2];

fn match_all(
    key: &str,
    [(what, whats), (what_zh, _)]: Nouns,
    pattern: &str,
    texts: &[&[u8]],
    [none, none_zh]: [&str; 2],
) -> CheckResult {
    let expected = (
        format!("every {what} to match `{pattern}`"),
        format!("每个{what_zh}都匹配 `{pattern}`"),
    );
    let regex = match regex::Regex::new(pattern) {
        Ok(regex) => regex,
        Err(e) => {
            let actual = format!("the pattern is not a regular expression: {e}");
            return CheckResult::new(
                key.to_string(),
                false,
                (expected.0, actual.clone()),
                (expected.1, actual),
            );
        }
    };
    let first_miss = texts
        .iter()
        .map(|t| String::from_utf8_lossy(t))
        .find(|t| !regex.is_match(t));
    let (actual, actual_zh, ok) = match first_miss {
        _ if texts.is_empty() => (none.to_string(), none_zh.to_string(), false),
        Some(miss) => {
            let miss = shorten(&miss);
            (
                format!("`{miss}` does not"),
                format!("`{miss}` 不匹配"),
                false,
            )
        }
        None => (
            format!("all {} {whats} match `{pattern}`", texts.len()),
            format!("全部 {} 个{what_zh}都匹配 `{pattern}`", texts.len()),
            true,
        ),
    };
    CheckResult::new(
        key.to_string(),
        ok,
        (expected.0, actual),
        (expected.1, actual_zh),
    )
}

fn shorten(text: &str) -> String {
    const MAX: usize = 80;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        text.chars().take(MAX).collect::<String>() + "..."
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

fn messages(n: u32) -> &'static str {
    if n == 1 {
        "message"
    } else {
        "messages"
    }
}

/// "`a`", "`a` and `b`", "`a`, `b` and `c`": names as a student reads them.
fn names(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// "the message reached `Q2`", "the 3 messages reached no queue", "nothing was published".
fn reached_text(report: &StepReport, queues: &[String]) -> String {
    let reached = if queues.is_empty() {
        "no queue".to_string()
    } else {
        names(queues)
    };
    match report.publishes.len() {
        0 => "nothing was published".to_string(),
        1 => format!("the message reached {reached}"),
        n => format!("the {n} messages reached {reached}"),
    }
}

/// "`orange-watch` has 1 message ready".
fn ready_text(queue: &str, n: u32) -> String {
    format!("`{queue}` has {n} {} ready", messages(n))
}

/// [`ready_text`] in Chinese.
fn ready_text_zh(queue: &str, n: u32) -> String {
    format!("`{queue}` 有 {n} 条就绪消息")
}

/// [`reached_text`] in Chinese.
fn reached_text_zh(report: &StepReport, queues: &[String]) -> String {
    let quoted: Vec<String> = queues.iter().map(|q| format!("`{q}`")).collect();
    let reached = if quoted.is_empty() {
        "没有到达任何队列".to_string()
    } else {
        format!("到达了 {}", quoted.join("、"))
    };
    match report.publishes.len() {
        0 => "没有发布任何消息".to_string(),
        1 => format!("消息{reached}"),
        n => format!("{n} 条消息{reached}"),
    }
}

/// "messages went to `worker-a`", "no consumer received a message".
fn received_text(consumers: &[String]) -> String {
    if consumers.is_empty() {
        "no consumer received a message".to_string()
    } else {
        format!("messages went to {}", names(consumers))
    }
}

fn oslo_properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type(oslo::CONTENT_TYPE.into())
        .with_content_encoding(oslo::CONTENT_ENCODING.into())
        .with_delivery_mode(2)
        .with_priority(0)
}

fn basic_properties(p: &Properties) -> Result<BasicProperties, String> {
    let mut props = BasicProperties::default();
    if let Some(v) = &p.content_type {
        props = props.with_content_type(short(v)?);
    }
    if let Some(v) = &p.content_encoding {
        props = props.with_content_encoding(short(v)?);
    }
    if let Some(v) = p.delivery_mode {
        props = props.with_delivery_mode(v);
    }
    if let Some(v) = p.priority {
        props = props.with_priority(v);
    }
    if let Some(v) = &p.correlation_id {
        props = props.with_correlation_id(short(v)?);
    }
    if let Some(v) = &p.reply_to {
        props = props.with_reply_to(short(v)?);
    }
    if let Some(v) = &p.expiration {
        props = props.with_expiration(short(v)?);
    }
    if let Some(v) = &p.message_id {
        props = props.with_message_id(short(v)?);
    }
    if let Some(v) = &p.kind {
        props = props.with_type(short(v)?);
    }
    if let Some(v) = &p.app_id {
        props = props.with_app_id(short(v)?);
    }
    Ok(props)
}

/// Arguments as a field table: integers stay integers, text is a long string.
pub fn field_table(arguments: &Arguments) -> Result<FieldTable, String> {
    let mut table = FieldTable::default();
    for (key, value) in arguments {
        table.insert(short(key)?, amqp_value(value)?);
    }
    Ok(table)
}

fn amqp_value(value: &serde_yaml::Value) -> Result<AMQPValue, String> {
    use serde_yaml::Value;
    Ok(match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                // As most clients send them: 32 bits when they fit.
                match i32::try_from(i) {
                    Ok(small) => AMQPValue::LongInt(small),
                    Err(_) => AMQPValue::LongLongInt(i),
                }
            } else if let Some(u) = n.as_u64() {
                AMQPValue::LongLongInt(i64::try_from(u).unwrap_or(i64::MAX))
            } else {
                AMQPValue::Double(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => AMQPValue::LongString(s.as_str().into()),
        Value::Sequence(items) => AMQPValue::FieldArray(
            items
                .iter()
                .map(amqp_value)
                .collect::<Result<Vec<_>, _>>()?
                .into(),
        ),
        Value::Mapping(map) => {
            let mut table = FieldTable::default();
            for (k, v) in map {
                table.insert(short(&yaml_key(k))?, amqp_value(v)?);
            }
            AMQPValue::FieldTable(table)
        }
        Value::Tagged(tagged) => amqp_value(&tagged.value)?,
    })
}

/// A mapping key as text: YAML allows numbers and more as keys.
pub(crate) fn yaml_key(key: &serde_yaml::Value) -> String {
    match key {
        serde_yaml::Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim_end()
            .to_string(),
    }
}
