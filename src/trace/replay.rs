//! A trace played back as a [`Source`]: its events go out at their recorded pace (scaled by a
//! speed), and the topology is the header's, changed by every declaration, deletion and
//! binding replayed so far. Queue depths follow the events too: a publish adds a ready
//! message to each queue it reached, a delivery takes one (and, to a consumer known to ack,
//! makes it unacknowledged until its ack, nack or reject), a requeue gives it back, expiry,
//! a length limit and dead-lettering take it away, a purge empties the queue. Client
//! connections and consumers follow `ConnectionOpened`, `ConsumerCreated` and their ends.
//!
//! A replay can follow its file ([`ReplaySource::follow`]): events appended by a `record`
//! still writing it go out as they come, like `tail -f`.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{Trace, TraceError, TraceTail};
use crate::broker::{
    ConnectionSnapshot, ConsumerSnapshot, ExchangeSnapshot, QueueSnapshot, Snapshot, VhostSnapshot,
};
use crate::events::{BindingInfo, Event, EventBus, EventKind, EventReader, Name};
use crate::source::Source;

/// The fastest and slowest a replay goes, whatever the view asks.
const MIN_SPEED: f64 = 0.01;
const MAX_SPEED: f64 = 1000.0;

#[derive(Clone, Copy, Debug, PartialEq)]
struct Control {
    paused: bool,
    /// The speed given at start.
    base_speed: f64,
    /// The view's factor on it (+ and -).
    view_speed: f64,
    /// How many single steps were asked for so far; each lets one event out at once.
    steps: u64,
    /// How many steps back were asked for so far; each takes the last event back.
    backs: u64,
}

impl Control {
    fn speed(&self) -> f64 {
        (self.base_speed * self.view_speed).clamp(MIN_SPEED, MAX_SPEED)
    }
}

struct Shared {
    snapshot: Mutex<Snapshot>,
    events: EventBus,
    played: AtomicUsize,
    /// Set by a step back: the events up to the new position, for the view to start over.
    rewind: Mutex<Option<Vec<Arc<Event>>>>,
    /// Events known so far (a followed file grows).
    total: AtomicUsize,
    /// Set while the file is followed: more events may come.
    following: AtomicBool,
    /// Why following stopped, if it did by itself.
    trouble: Mutex<Option<String>>,
}

/// How often a followed file is looked at for new events.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);

/// A recorded trace as a source for the view (or a test).
pub struct ReplaySource {
    shared: Arc<Shared>,
    control: watch::Sender<Control>,
    vhost: String,
    tasks: Vec<JoinHandle<()>>,
}

impl ReplaySource {
    /// Starts the replay on the current tokio runtime. The first event goes out once somebody
    /// subscribes, so a view opening on it misses nothing; the gaps between events are the
    /// recorded ones divided by `speed`.
    pub fn start(trace: Trace, speed: f64) -> ReplaySource {
        ReplaySource::begin(trace, speed, None)
    }

    /// Replays the file's events so far, then keeps reading it for more as it grows; a last
    /// document still being written waits until it is whole.
    pub fn follow(path: &Path, speed: f64) -> Result<ReplaySource, TraceError> {
        let (trace, mut tail) = TraceTail::open(path)?;
        let (sender, more) = mpsc::unbounded_channel();
        let mut source = ReplaySource::begin(trace, speed, Some(more));
        let shared = source.shared.clone();
        source.tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(FOLLOW_EVERY).await;
                match tail.read_new() {
                    Ok(events) if events.is_empty() => {}
                    Ok(events) => {
                        if sender.send(events).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        *shared.trouble.lock().unwrap() = Some(format!("{e}; no longer following"));
                        return;
                    }
                }
            }
        }));
        Ok(source)
    }

    fn begin(
        trace: Trace,
        speed: f64,
        more: Option<mpsc::UnboundedReceiver<Vec<Event>>>,
    ) -> ReplaySource {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        let (control, _) = watch::channel(Control {
            paused: false,
            base_speed: speed,
            view_speed: 1.0,
            steps: 0,
            backs: 0,
        });
        let shared = Arc::new(Shared {
            snapshot: Mutex::new(trace.header.snapshot.clone()),
            events: EventBus::default(),
            played: AtomicUsize::new(0),
            rewind: Mutex::new(None),
            total: AtomicUsize::new(trace.events.len()),
            following: AtomicBool::new(more.is_some()),
            trouble: Mutex::new(None),
        });
        let task = tokio::spawn(play(
            shared.clone(),
            control.subscribe(),
            trace.header.snapshot,
            trace.events,
            more,
        ));
        ReplaySource {
            shared,
            control,
            vhost: trace.header.vhost,
            tasks: vec![task],
        }
    }

    /// Holds the replay (true) or lets it go on (false).
    pub fn set_paused(&self, paused: bool) {
        self.control.send_if_modified(|c| {
            let changed = c.paused != paused;
            c.paused = paused;
            changed
        });
    }

    /// Lets the next event out now, paused or not.
    pub fn step_forward(&self) {
        self.control.send_modify(|c| c.steps += 1);
    }

    /// Takes the last event back and pauses: the topology is the header's with the events
    /// before it applied, and [`Source::take_rewind`] hands the view those events.
    pub fn step_back(&self) {
        self.control.send_modify(|c| {
            c.backs += 1;
            c.paused = true;
        });
    }

    /// How many events have gone out.
    pub fn played(&self) -> usize {
        self.shared.played.load(Ordering::SeqCst)
    }

    /// How many events the trace has (so far, when following).
    pub fn total(&self) -> usize {
        self.shared.total.load(Ordering::SeqCst)
    }

    /// Whether the file is followed for more events.
    pub fn following(&self) -> bool {
        self.shared.following.load(Ordering::SeqCst)
    }

    /// True once every event has gone out and no more can come.
    pub fn finished(&self) -> bool {
        !self.following() && self.played() == self.total()
    }
}

impl Drop for ReplaySource {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Source for ReplaySource {
    fn snapshot(&self) -> Snapshot {
        self.shared.snapshot.lock().unwrap().clone()
    }

    fn subscribe(&self) -> EventReader {
        self.shared.events.subscribe()
    }

    fn vhost(&self) -> String {
        self.vhost.clone()
    }

    fn trouble(&self) -> Option<String> {
        self.shared.trouble.lock().unwrap().clone()
    }

    fn follow_view(&self, paused: bool, speed: f64) {
        self.control.send_if_modified(|c| {
            let changed = c.paused != paused || c.view_speed != speed;
            c.paused = paused;
            c.view_speed = speed;
            changed
        });
    }

    fn step_forward(&self) {
        ReplaySource::step_forward(self);
    }

    fn step_back(&self) {
        ReplaySource::step_back(self);
    }

    fn finished(&self) -> bool {
        ReplaySource::finished(self)
    }

    fn take_rewind(&self) -> Option<Vec<Arc<Event>>> {
        self.shared.rewind.lock().unwrap().take()
    }
}

async fn play(
    shared: Arc<Shared>,
    mut control: watch::Receiver<Control>,
    start: Snapshot,
    mut events: Vec<Event>,
    mut more: Option<mpsc::UnboundedReceiver<Vec<Event>>>,
) {
    while !shared.events.has_readers() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (mut steps_taken, mut backs_taken) = {
        let c = control.borrow();
        (c.steps, c.backs)
    };
    // The next event to go out; at the end only a step back can follow.
    let mut position: usize = 0;
    let mut acking = Acking::default();
    loop {
        // Recorded time still to wait before the next event.
        let mut left = position
            .checked_sub(1)
            .filter(|_| position < events.len())
            .and_then(|p| events[position].at.duration_since(events[p].at).ok())
            .unwrap_or_default();
        let release = loop {
            let now = *control.borrow_and_update();
            if now.backs > backs_taken {
                let back = (now.backs - backs_taken) as usize;
                backs_taken = now.backs;
                position = position.saturating_sub(back);
                acking = rewind(&shared, &start, &events[..position]);
                break false;
            }
            if position == events.len() {
                steps_taken = now.steps;
                let Some(receiver) = &mut more else {
                    if control.changed().await.is_err() {
                        return;
                    }
                    continue;
                };
                // Following: whichever comes first, the view's keys or appended events
                // (which go out at once, the replay having caught up with the file).
                tokio::select! {
                    changed = control.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                    appended = receiver.recv() => match appended {
                        Some(appended) => {
                            events.extend(appended);
                            shared.total.store(events.len(), Ordering::SeqCst);
                        }
                        None => {
                            more = None;
                            shared.following.store(false, Ordering::SeqCst);
                        }
                    },
                }
                continue;
            }
            if now.steps > steps_taken {
                steps_taken += 1;
                break true;
            }
            if now.paused {
                if control.changed().await.is_err() {
                    return;
                }
                continue;
            }
            if left.is_zero() {
                break true;
            }
            let started = Instant::now();
            tokio::select! {
                _ = tokio::time::sleep(left.div_f64(now.speed())) => break true,
                changed = control.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    left = left.saturating_sub(started.elapsed().mul_f64(now.speed()));
                }
            }
        };
        if !release {
            continue;
        }
        let event = &events[position];
        acking.apply(&mut shared.snapshot.lock().unwrap(), event);
        position += 1;
        shared.played.store(position, Ordering::SeqCst);
        shared.events.emit(event.clone());
    }
}

/// Goes back to just after `played`: the topology is recomputed from the start, and the view
/// is handed those events to start over with.
fn rewind(shared: &Shared, start: &Snapshot, played: &[Event]) -> Acking {
    let mut snapshot = start.clone();
    let mut acking = Acking::default();
    for event in played {
        acking.apply(&mut snapshot, event);
    }
    *shared.snapshot.lock().unwrap() = snapshot;
    shared.played.store(played.len(), Ordering::SeqCst);
    *shared.rewind.lock().unwrap() = Some(played.iter().cloned().map(Arc::new).collect());
    acking
}

/// The consumers seen declared so far that acknowledge what they get: only a delivery to one
/// of them waits for an ack. A delivery to a `no_ack` consumer, to a consumer declared before
/// the trace began, or a basic.get (whose mode the event does not say) is simply taken.
#[derive(Default)]
pub struct Acking {
    consumers: HashSet<(Name, Name, Name)>,
}

impl Acking {
    /// [`apply`], and the queue depths the event changes.
    pub fn apply(&mut self, snapshot: &mut Snapshot, event: &Event) {
        apply(snapshot, event);
        let vhost = &event.vhost;
        let mut with = |name: &str, change: &dyn Fn(&mut QueueSnapshot)| {
            let queue = snapshot
                .vhosts
                .iter_mut()
                .find(|v| *v.name == **vhost)
                .and_then(|v| v.queues.iter_mut().find(|q| q.name == name));
            if let Some(q) = queue {
                change(q);
            }
        };
        match &event.kind {
            EventKind::ConsumerCreated {
                queue,
                consumer_tag,
                no_ack,
            } => {
                let key = (event.vhost.clone(), queue.clone(), consumer_tag.clone());
                if *no_ack {
                    self.consumers.remove(&key);
                } else {
                    self.consumers.insert(key);
                }
            }
            EventKind::ConsumerCancelled {
                queue,
                consumer_tag,
            } => {
                let key = (event.vhost.clone(), queue.clone(), consumer_tag.clone());
                self.consumers.remove(&key);
            }
            EventKind::Published { queues, .. } => {
                for queue in queues {
                    with(queue, &|q| q.ready += 1);
                }
            }
            EventKind::Delivered {
                queue,
                consumer_tag,
                ..
            } => {
                let acks = consumer_tag.as_ref().is_some_and(|tag| {
                    self.consumers
                        .contains(&(event.vhost.clone(), queue.clone(), tag.clone()))
                });
                with(queue, &|q| {
                    q.ready = q.ready.saturating_sub(1);
                    if acks {
                        q.unacked += 1;
                    }
                });
            }
            EventKind::Acked { queue, .. }
            | EventKind::Nacked {
                queue,
                requeue: false,
                ..
            }
            | EventKind::Rejected {
                queue,
                requeue: false,
                ..
            } => with(queue, &|q| q.unacked = q.unacked.saturating_sub(1)),
            // A requeue that was asked for is told again as `Requeued`.
            EventKind::Requeued { queue, .. } => with(queue, &|q| {
                q.unacked = q.unacked.saturating_sub(1);
                q.ready += 1;
            }),
            EventKind::Expired { queue, .. } | EventKind::Dropped { queue, .. } => {
                with(queue, &|q| q.ready = q.ready.saturating_sub(1))
            }
            // A rejected message left the unacknowledged count with its reject.
            EventKind::DeadLettered { queue, reason, .. }
                if !matches!(reason, crate::events::DeadLetterReason::Rejected) =>
            {
                with(queue, &|q| q.ready = q.ready.saturating_sub(1))
            }
            _ => {}
        }
    }
}

/// Changes `snapshot` as `event` says: declarations, deletions, bindings, purges, connections
/// and consumers (on the event's connection and channel).
/// Declaring what exists replaces it, deleting what does not is nothing, so a trace that
/// repeats its header's topology as events replays the same.
pub fn apply(snapshot: &mut Snapshot, event: &Event) {
    let vhost = match snapshot.vhosts.iter().position(|v| *v.name == *event.vhost) {
        Some(i) => &mut snapshot.vhosts[i],
        None => {
            snapshot.vhosts.push(VhostSnapshot {
                name: event.vhost.to_string(),
                ..VhostSnapshot::default()
            });
            snapshot.vhosts.sort_by(|a, b| a.name.cmp(&b.name));
            let i = snapshot
                .vhosts
                .iter()
                .position(|v| *v.name == *event.vhost)
                .expect("just added");
            &mut snapshot.vhosts[i]
        }
    };
    match &event.kind {
        EventKind::ExchangeDeclared {
            name,
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
        } => {
            vhost.exchanges.retain(|x| *x.name != **name);
            vhost.exchanges.push(ExchangeSnapshot {
                name: name.to_string(),
                kind: kind.to_string(),
                durable: *durable,
                auto_delete: *auto_delete,
                internal: *internal,
                arguments: arguments.clone(),
            });
            vhost.exchanges.sort_by(|a, b| a.name.cmp(&b.name));
        }
        EventKind::ExchangeDeleted { name } => {
            vhost.exchanges.retain(|x| *x.name != **name);
            vhost.bindings.retain(|b| {
                b.source != *name && !(b.destination_is_exchange && b.destination == *name)
            });
        }
        EventKind::QueueDeclared {
            name,
            durable,
            exclusive,
            auto_delete,
            arguments,
        } => {
            let kept = vhost.queues.iter().find(|q| *q.name == **name).cloned();
            vhost.queues.retain(|q| *q.name != **name);
            // A redeclaration keeps the messages and consumers the queue has.
            let kept = kept.unwrap_or_else(|| QueueSnapshot::new(name));
            vhost.queues.push(QueueSnapshot {
                durable: *durable,
                exclusive: *exclusive,
                auto_delete: *auto_delete,
                arguments: arguments.clone(),
                ..kept
            });
            vhost.queues.sort_by(|a, b| a.name.cmp(&b.name));
        }
        EventKind::QueueDeleted { name } => {
            vhost.queues.retain(|q| *q.name != **name);
            vhost
                .bindings
                .retain(|b| b.destination_is_exchange || b.destination != *name);
            // Deleting a queue cancels its consumers.
            vhost.consumers.retain(|c| *c.queue != **name);
        }
        EventKind::QueuePurged { name, .. } => {
            if let Some(q) = vhost.queues.iter_mut().find(|q| *q.name == **name) {
                q.ready = 0;
            }
        }
        EventKind::BindingCreated(binding) if !vhost.bindings.iter().any(|b| *b == **binding) => {
            vhost.bindings.push(BindingInfo::clone(binding));
            vhost.bindings.sort_by(|a, b| {
                (&a.source, &a.destination, &a.routing_key).cmp(&(
                    &b.source,
                    &b.destination,
                    &b.routing_key,
                ))
            });
        }
        EventKind::BindingDeleted(binding) => {
            vhost.bindings.retain(|b| *b != **binding);
        }
        EventKind::ConsumerCreated {
            queue,
            consumer_tag,
            no_ack,
        } => {
            if let Some(q) = vhost.queues.iter_mut().find(|q| *q.name == **queue) {
                q.consumers += 1;
            }
            let consumer = ConsumerSnapshot {
                queue: queue.to_string(),
                tag: consumer_tag.to_string(),
                connection: event.connection.unwrap_or_default(),
                channel: event.channel.unwrap_or_default(),
                ack: !no_ack,
                // basic.qos is no event: the prefetch is not known.
                prefetch: 0,
            };
            vhost.consumers.retain(|c| !same_consumer(c, &consumer));
            vhost.consumers.push(consumer);
            vhost
                .consumers
                .sort_by(|a, b| (&a.queue, &a.tag).cmp(&(&b.queue, &b.tag)));
        }
        EventKind::ConsumerCancelled {
            queue,
            consumer_tag,
        } => {
            if let Some(q) = vhost.queues.iter_mut().find(|q| *q.name == **queue) {
                q.consumers = q.consumers.saturating_sub(1);
            }
            // A cancel the broker made (its queue deleted) may name no connection.
            vhost.consumers.retain(|c| {
                !(*c.queue == **queue
                    && *c.tag == **consumer_tag
                    && event.connection.is_none_or(|id| id == c.connection)
                    && event.channel.is_none_or(|n| n == c.channel))
            });
        }
        EventKind::ConnectionOpened { peer, user, client } => {
            let Some(id) = event.connection else {
                return;
            };
            // Kept in the order they opened, after those of the header.
            vhost.connections.retain(|c| c.id != id);
            vhost.connections.push(ConnectionSnapshot {
                id,
                // The event does not carry the broker's name for the connection.
                name: String::new(),
                peer: peer.clone(),
                user: user.to_string(),
                client: client.clone(),
            });
        }
        // A closed channel's or connection's consumers go with it.
        EventKind::ChannelClosed { .. } => {
            if let (Some(id), Some(channel)) = (event.connection, event.channel) {
                vhost
                    .consumers
                    .retain(|c| !(c.connection == id && c.channel == channel));
            }
        }
        EventKind::ConnectionClosed { .. } => {
            if let Some(id) = event.connection {
                vhost.connections.retain(|c| c.id != id);
                vhost.consumers.retain(|c| c.connection != id);
            }
        }
        _ => {}
    }
}

/// One consumer: a tag is unique on its channel, not on its queue.
fn same_consumer(a: &ConsumerSnapshot, b: &ConsumerSnapshot) -> bool {
    (&a.queue, &a.tag, a.connection, a.channel) == (&b.queue, &b.tag, b.connection, b.channel)
}
