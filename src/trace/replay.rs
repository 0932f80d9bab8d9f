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
//!
//! The view pauses, speeds and steps it through its [`Playback`]; how one event changes the
//! topology and the depths is [`crate::topology::apply()`]'s business.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{Trace, TraceError, TraceTail};
use crate::events::{Event, EventBus, EventReader};
use crate::source::{Playback, Source, SourceKind};
use crate::topology::{Acking, Snapshot};

/// Applying one event to a snapshot lives with the topology (`crate::trace::apply`).
pub use crate::topology::apply;

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
    /// The trace file, for the status line (empty until [`ReplaySource::from_file`] names it).
    file: PathBuf,
    /// Where the trace's events came from (its header's source).
    recorded_from: String,
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
        let mut source = ReplaySource::begin(trace, speed, Some(more)).from_file(path);
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
            file: PathBuf::new(),
            recorded_from: trace.header.source,
            tasks: vec![task],
        }
    }

    /// Names the file the trace was read from, as the status line shows it.
    pub fn from_file(mut self, file: &Path) -> ReplaySource {
        self.file = file.to_path_buf();
        self
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
    /// before it applied, and [`Playback::take_rewind`] hands the view those events.
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

    fn kind(&self) -> SourceKind {
        SourceKind::Replay {
            file: self.file.clone(),
            recorded_from: self.recorded_from.clone(),
            following: self.following(),
        }
    }

    fn playback(&self) -> Option<&dyn Playback> {
        Some(self)
    }
}

impl Playback for ReplaySource {
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
