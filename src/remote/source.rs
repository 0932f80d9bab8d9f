//! A live RabbitMQ as a [`Source`]: background tasks poll the management API and read the
//! firehose; the view only ever reads what they last found.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::consumers::{channel_name, only_consumer, Consumers, Lookup};
use super::firehose::{
    consume_unacked, is_own_queue as own_queue, Firehose, FirehoseKeys, Trace, TraceEvents, Tracing,
};
use super::management::{Management, ManagementError};
use super::Endpoint;
use crate::events::{EventBus, EventReader};
use crate::source::{Source, SourceKind};
use crate::topology::Snapshot;

/// How a remote source watches.
#[derive(Clone, Debug)]
pub struct RemoteOptions {
    /// How often the management API is asked for the topology.
    pub interval: Duration,
    /// Read the firehose (turns tracing on for the URL's vhost while watching).
    pub trace: bool,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            interval: Duration::from_secs(2),
            trace: false,
        }
    }
}

/// The first wait after a failure; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The shortest time between two reads of the topology, however many changes are reported.
const MIN_GAP: Duration = Duration::from_millis(250);
/// How often a watch asks how far behind the members of each quorum queue are: one request
/// per queue, and a member's lag is a matter of minutes, not seconds.
const LAG_GAP: Duration = Duration::from_secs(30);

struct Shared {
    snapshot: Mutex<Arc<Snapshot>>,
    events: EventBus,
    poll_trouble: Mutex<Option<String>>,
    firehose_trouble: Mutex<Option<String>>,
    /// Set while tracing is on because this source turned it on.
    tracing_turned_on: AtomicBool,
    /// The cluster's other nodes this source turned tracing on for, by their management API.
    tracing_turned_on_elsewhere: Mutex<Vec<Endpoint>>,
    /// How many snapshots have been read so far.
    refreshes: watch::Sender<u64>,
    /// Rung when the event exchange reports a topology change: read again without waiting.
    changed: tokio::sync::Notify,
    /// Each channel's consumers, to name the consumer of a traced delivery.
    consumers: Consumers,
}

/// A RabbitMQ watched through its management API (and, if asked, its firehose).
pub struct RemoteSource {
    shared: Arc<Shared>,
    management: Management,
    endpoint: Endpoint,
    tasks: Vec<JoinHandle<()>>,
}

impl RemoteSource {
    /// Starts watching; the tasks run on the current tokio runtime. Nothing is awaited here:
    /// an unreachable broker shows as [`Source::trouble`], not as an error.
    pub fn start(
        endpoint: Endpoint,
        options: RemoteOptions,
    ) -> Result<RemoteSource, ManagementError> {
        let management = Management::new(&endpoint)?;
        let (refreshes, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            snapshot: Mutex::new(Arc::new(Snapshot::default())),
            events: EventBus::default(),
            poll_trouble: Mutex::new(None),
            firehose_trouble: Mutex::new(None),
            tracing_turned_on: AtomicBool::new(false),
            tracing_turned_on_elsewhere: Mutex::new(Vec::new()),
            refreshes,
            changed: tokio::sync::Notify::new(),
            consumers: Consumers::default(),
        });
        let mut tasks = vec![
            tokio::spawn(poll(
                shared.clone(),
                management.clone(),
                endpoint.vhost.clone(),
                options.interval,
            )),
            tokio::spawn(listen_for_changes(shared.clone(), endpoint.clone())),
        ];
        if options.trace {
            tasks.push(tokio::spawn(read_firehose(
                shared.clone(),
                management.clone(),
                endpoint.clone(),
            )));
        }
        Ok(RemoteSource {
            shared,
            management,
            endpoint,
            tasks,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Waits until the management API has answered at least `count` times in all (true), or
    /// `timeout` passed (false).
    pub async fn refreshed(&self, count: u64, timeout: Duration) -> bool {
        let mut seen = self.shared.refreshes.subscribe();
        tokio::time::timeout(timeout, seen.wait_for(|n| *n >= count))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// How many times the management API has answered.
    pub fn refreshes(&self) -> u64 {
        *self.shared.refreshes.borrow()
    }

    /// Whether tracing is on because this source turned it on.
    pub fn turned_tracing_on(&self) -> bool {
        self.shared.tracing_turned_on.load(Ordering::SeqCst)
    }

    /// Stops the background tasks and turns tracing off again if this source turned it on.
    pub async fn close(mut self) {
        self.stop_tasks();
        let elsewhere =
            std::mem::take(&mut *self.shared.tracing_turned_on_elsewhere.lock().unwrap());
        for endpoint in elsewhere {
            if let Ok(management) = Management::new(&endpoint) {
                let mut tracing = Tracing::new(management, &self.endpoint.vhost);
                tracing.mark_turned_on();
                if let Err(e) = tracing.release().await {
                    tracing::warn!(error = %e, "could not turn tracing off again");
                }
            }
        }
        // The flag is set once the firehose task saw its request answered; a task stopped
        // between the answer and the flag leaves only the note it made before asking.
        let noted = super::firehose::holds(&self.endpoint, &self.endpoint.vhost);
        if self.shared.tracing_turned_on.swap(false, Ordering::SeqCst) | noted {
            // A busy management API may fail one request; tracing left on slows the broker
            // for everyone, so try a few times.
            for attempt in 1..=5 {
                match self
                    .management
                    .set_tracing(&self.endpoint.vhost, false)
                    .await
                {
                    Ok(()) => {
                        super::firehose::let_go(&self.endpoint, &self.endpoint.vhost);
                        break;
                    }
                    Err(e) if attempt == 5 => {
                        tracing::warn!(error = %e, "could not turn tracing off again")
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200 * attempt)).await,
                }
            }
        }
    }

    fn stop_tasks(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for RemoteSource {
    fn drop(&mut self) {
        self.stop_tasks();
        let elsewhere =
            std::mem::take(&mut *self.shared.tracing_turned_on_elsewhere.lock().unwrap());
        for endpoint in elsewhere {
            super::firehose::turn_off_blocking(endpoint, self.endpoint.vhost.clone());
        }
        let noted = super::firehose::holds(&self.endpoint, &self.endpoint.vhost);
        if self.shared.tracing_turned_on.swap(false, Ordering::SeqCst) | noted {
            let mut tracing = Tracing::new(self.management.clone(), &self.endpoint.vhost);
            tracing.mark_turned_on();
            tracing.release_blocking();
        }
    }
}

impl Source for RemoteSource {
    fn snapshot(&self) -> Snapshot {
        let latest = self.shared.snapshot.lock().unwrap().clone();
        Snapshot::clone(&latest)
    }

    fn subscribe(&self) -> EventReader {
        self.shared.events.subscribe()
    }

    fn vhost(&self) -> String {
        self.endpoint.vhost.clone()
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Remote {
            url: self.endpoint.masked_url(),
        }
    }

    fn trouble(&self) -> Option<String> {
        let poll = self.shared.poll_trouble.lock().unwrap().clone();
        let firehose = self.shared.firehose_trouble.lock().unwrap().clone();
        // One line: when the management API fails, the firehose (which needs it to turn
        // tracing on) usually fails for the same reason.
        poll.or(firehose)
    }
}

/// Reads the watched vhost's topology every `interval` (through the API's per-vhost paths:
/// the other vhosts are neither shown nor asked for); changes go out as events. After a
/// failure it waits longer each time, up to [`MAX_BACKOFF`].
async fn poll(shared: Arc<Shared>, management: Management, vhost: String, interval: Duration) {
    use super::snapshot::{keep_members_behind, one_vhost, Lag};
    let mut backoff = FIRST_BACKOFF;
    // When the members' lag (a request per quorum queue) is next asked: not for the first
    // picture, on the read after it, then every LAG_GAP.
    let mut lag_due: Option<Instant> = None;
    loop {
        let lag = match lag_due {
            Some(due) if Instant::now() >= due => Lag::Ask,
            _ => Lag::Skip,
        };
        let read = one_vhost(&management, &vhost, lag).await;
        match read {
            Ok(mut new) => {
                let now = Instant::now();
                lag_due = match (lag, lag_due) {
                    (Lag::Ask, _) => Some(now + LAG_GAP),
                    (Lag::Skip, None) => Some(now),
                    (Lag::Skip, due) => due,
                };
                if lag == Lag::Skip {
                    let old = shared.snapshot.lock().unwrap().clone();
                    if let (Some(old), Some(new)) = (old.vhost(&vhost), new.vhosts.first_mut()) {
                        keep_members_behind(old, new);
                    }
                }
                let new = Arc::new(new);
                // The first one is told as declarations too: a view that started while the
                // broker was out of reach learns the topology from them.
                let old = std::mem::replace(&mut *shared.snapshot.lock().unwrap(), new.clone());
                for event in super::diff(&old, &new) {
                    shared.events.emit(event);
                }
                *shared.poll_trouble.lock().unwrap() = None;
                shared.refreshes.send_modify(|n| *n += 1);
                backoff = FIRST_BACKOFF;
                // A burst of changes is read in one go, not once per change.
                tokio::time::sleep(interval.min(MIN_GAP)).await;
                let rest = interval.saturating_sub(MIN_GAP);
                tokio::select! {
                    _ = tokio::time::sleep(rest) => {}
                    _ = shared.changed.notified() => {}
                }
            }
            Err(e) => {
                let text = format!("{e}; retrying in {} s", backoff.as_secs());
                tracing::debug!(trouble = %text);
                *shared.poll_trouble.lock().unwrap() = Some(text);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Keeps tracing on and the firehose read, reconnecting (and turning tracing on again, which a
/// restarted broker forgets) after any failure.
async fn read_firehose(shared: Arc<Shared>, management: Management, endpoint: Endpoint) {
    let mut tracing = Tracing::new(management.clone(), &endpoint.vhost);
    let mut events = TraceEvents::default();
    let mut tags = TagFinder::default();
    let mut backoff = FIRST_BACKOFF;
    let masked = endpoint.masked_url();
    loop {
        let failure = async {
            tracing
                .ensure_on()
                .await
                .map_err(|e| format!("firehose: turning tracing on: {e}"))?;
            if tracing.turned_on() {
                shared.tracing_turned_on.store(true, Ordering::SeqCst);
            }
            *shared.tracing_turned_on_elsewhere.lock().unwrap() = tracing.others_turned_on();
            // Told until the firehose reconnects: the messages of those nodes are not seen.
            let untraced = match tracing.untraced() {
                [] => None,
                nodes => Some(format!(
                    "firehose: not traced on {}; messages published there are not seen",
                    nodes.join("; ")
                )),
            };
            let mut firehose = Firehose::open(&endpoint.amqp_url, FirehoseKeys::PublishAndDeliver)
                .await
                .map_err(|e| format!("{e} ({masked})"))?;
            *shared.firehose_trouble.lock().unwrap() = untraced;
            backoff = FIRST_BACKOFF;
            loop {
                let mut trace = match firehose.next().await {
                    Ok(trace) => trace,
                    Err(e) => {
                        firehose.close().await;
                        return Err::<(), String>(format!("{e} ({masked})"));
                    }
                };
                // The event exchange's messages to this program's own queue (when watching
                // `/`) are its plumbing at work, not the broker's traffic.
                match &mut trace {
                    Trace::Delivered { queue, .. } if own_queue(queue) => continue,
                    Trace::Published { queues, .. } if queues.iter().any(|q| own_queue(q)) => {
                        queues.retain(|q| !own_queue(q));
                        if queues.is_empty() {
                            continue;
                        }
                    }
                    _ => {}
                }
                let latest = shared.snapshot.lock().unwrap().clone();
                let consumer_tag = match &trace {
                    Trace::Delivered {
                        queue,
                        connection,
                        channel: Some(number),
                        ..
                    } => {
                        let channel = channel_name(connection, *number);
                        let found = tags
                            .find(&shared, &management, &endpoint.vhost, &channel, queue)
                            .await;
                        // The last poll lists consumers too, later than the event exchange
                        // but for channels the finder has given up on.
                        found.or_else(|| {
                            let listed = latest.vhost(&endpoint.vhost)?;
                            only_consumer(listed, connection, *number, queue)
                        })
                    }
                    _ => None,
                };
                let event = events.event(&trace, &endpoint.vhost, &latest, consumer_tag.as_deref());
                shared.events.emit(event);
            }
        }
        .await;
        if let Err(e) = failure {
            // Whatever the error text says, the AMQP URL in it is shown masked.
            let e = e.replace(&endpoint.amqp_url, &masked);
            let text = format!("{e}; retrying in {} s", backoff.as_secs());
            *shared.firehose_trouble.lock().unwrap() = Some(text);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// How long a delivery's trace waits, once per channel and queue, to learn of a consumer.
const CONSUMER_WAIT: Duration = Duration::from_millis(500);
/// The shortest time between two reads of the management API's consumer listing.
const CONSUMER_LISTING_GAP: Duration = Duration::from_secs(5);

/// Finds the consumer tag of a traced delivery.
#[derive(Default)]
struct TagFinder {
    /// (channel, queue) pairs already waited for.
    waited: HashSet<(String, String)>,
    listed_at: Option<Instant>,
}

impl TagFinder {
    async fn find(
        &mut self,
        shared: &Shared,
        management: &Management,
        vhost: &str,
        channel: &str,
        queue: &str,
    ) -> Option<String> {
        let deadline = tokio::time::Instant::now() + CONSUMER_WAIT;
        loop {
            let learnt = shared.consumers.learnt.notified();
            tokio::pin!(learnt);
            learnt.as_mut().enable();
            match shared.consumers.lookup(vhost, channel, queue) {
                Lookup::Tag(tag) => return Some(tag),
                Lookup::Ambiguous => return None,
                Lookup::Unknown => {}
            }
            // Unknown: a basic.get, or a consumer not heard of yet. The event exchange's
            // consumer.created travels on another connection and may come a moment after the
            // delivery's trace; a channel older than the watching is only in the management
            // listing. Wait once per channel and queue, so gets cost nothing after the first.
            if self.waited.len() > 10_000 {
                self.waited.clear();
            }
            if !self.waited.insert((channel.to_string(), queue.to_string())) {
                return None;
            }
            if self
                .listed_at
                .is_none_or(|at| at.elapsed() >= CONSUMER_LISTING_GAP)
            {
                self.listed_at = Some(Instant::now());
                match management.consumers(vhost).await {
                    Ok(listed) => shared.consumers.listed(vhost, &listed),
                    // The delivery is then told without its consumer; the poll says why the
                    // API fails, if it goes on failing.
                    Err(e) => tracing::debug!(error = %e, "listing consumers to name a delivery's"),
                }
                if let Lookup::Tag(tag) = shared.consumers.lookup(vhost, channel, queue) {
                    return Some(tag);
                }
            }
            if tokio::time::timeout_at(deadline, learnt).await.is_err() {
                return None;
            }
            // Learnt of some consumer: look again (and wait no more than the deadline).
            self.waited
                .remove(&(channel.to_string(), queue.to_string()));
        }
    }
}

/// With RabbitMQ's event exchange plugin, `amq.rabbitmq.event` (in vhost `/`) reports every
/// declaration and deletion: each one brings the next read forward. Without the plugin, or
/// without access to `/`, polling alone carries on: that is no trouble for the status line,
/// only a line in the log saying why.
async fn listen_for_changes(shared: Arc<Shared>, endpoint: Endpoint) {
    // Never there after a few tries (no plugin, no access to `/`): stop asking, as each try
    // is a warning in the broker's log.
    let mut failures = 0;
    loop {
        match listen_to_event_exchange(&shared, &endpoint).await {
            Ok(()) => failures = 0,
            Err(why) => {
                failures += 1;
                // The URL in an error is shown masked, as everywhere else.
                let why = why.replace(&endpoint.amqp_url, &endpoint.masked_url());
                tracing::debug!(%why, failures, "topology events unavailable");
                if failures == 3 {
                    tracing::info!(
                        %why,
                        "no topology events from amq.rabbitmq.event; the topology is polled only"
                    );
                    return;
                }
            }
        }
        tokio::time::sleep(MAX_BACKOFF).await;
    }
}

/// Reads `amq.rabbitmq.event` until its connection ends (Ok) or a step of setting it up fails
/// (Err, saying which step).
async fn listen_to_event_exchange(shared: &Shared, endpoint: &Endpoint) -> Result<(), String> {
    use futures_util::StreamExt;
    use lapin::options::QueueBindOptions;
    use lapin::types::FieldTable;
    let mut uri: lapin::uri::AMQPUri = endpoint
        .amqp_url
        .parse()
        .map_err(|e| format!("reading the AMQP URL: {e}"))?;
    uri.vhost = "/".to_string();
    let properties = lapin::ConnectionProperties::default()
        .with_connection_name(super::TOPOLOGY_EVENTS_CONNECTION.into());
    let failed = |doing: &'static str| move |e: lapin::Error| format!("{doing}: {e}");
    let connection = crate::tls::connect_uri(uri, properties)
        .await
        .map_err(failed("connecting to vhost /"))?;
    let channel = connection
        .create_channel()
        .await
        .map_err(failed("opening a channel"))?;
    let queue = super::firehose::private_queue(&channel, "events")
        .await
        .map_err(failed("declaring a queue"))?;
    // Channels and consumers too: they name the consumer of a traced delivery.
    let keys = [
        "exchange.*",
        "queue.*",
        "binding.*",
        "channel.created",
        "channel.closed",
        "consumer.*",
    ];
    for key in keys {
        channel
            .queue_bind(
                queue.name().clone(),
                "amq.rabbitmq.event".into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(failed("binding to amq.rabbitmq.event"))?;
    }
    let mut consumer = consume_unacked(&channel, &queue, "rabbitscope-topology")
        .await
        .map_err(failed("consuming"))?;
    while let Some(Ok(message)) = consumer.next().await {
        let key = message.routing_key.as_str();
        if key.starts_with("channel.") || key.starts_with("consumer.") {
            let headers = message.properties.headers().clone().unwrap_or_default();
            shared.consumers.heard(key, &headers);
        } else {
            shared.changed.notify_one();
        }
    }
    Ok(())
}
