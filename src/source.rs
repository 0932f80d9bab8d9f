//! Where a view's picture comes from: a topology snapshot and the broker event stream. The
//! embedded broker is one source; a remote RabbitMQ or a replayed trace are others, and the
//! screens cannot tell them apart.

use std::sync::Arc;

use crate::broker::{Broker, Snapshot};
use crate::events::{Event, EventReader};

pub trait Source: Send + Sync {
    /// The topology now. It must not block: a remote source answers from its last refresh.
    fn snapshot(&self) -> Snapshot;
    /// The events from now on.
    fn subscribe(&self) -> EventReader;
    /// What is wrong with reaching the source, while something is (shown on the status line).
    fn trouble(&self) -> Option<String> {
        None
    }
    /// The vhost a view opens on (a remote source: the one its URL names).
    fn vhost(&self) -> String {
        "/".to_string()
    }
    /// The embedded broker behind the source, if any: the view can then act on it and play
    /// lessons on it.
    fn broker(&self) -> Option<Arc<Broker>> {
        None
    }
    /// The view's pause and speed factor (space, + and -): a replayed trace follows them,
    /// a live source cannot.
    fn follow_view(&self, _paused: bool, _speed: f64) {}
    /// The next event now, paused or not (a replayed trace; a live source cannot).
    fn step_forward(&self) {}
    /// Undo the last event (a replayed trace): the source rewinds one event and pauses.
    fn step_back(&self) {}
    /// A replayed trace that has played its last event, with no more to come: the view says
    /// so rather than look idle.
    fn finished(&self) -> bool {
        false
    }
    /// After a rewind, once: every event up to the new position, for the view to start over
    /// with. Events the view had not read yet before the rewind are stale and must be dropped.
    fn take_rewind(&self) -> Option<Vec<Arc<Event>>> {
        None
    }
}

/// The embedded broker as a source.
pub struct Embedded(pub Arc<Broker>);

impl Source for Embedded {
    fn snapshot(&self) -> Snapshot {
        self.0.snapshot()
    }

    fn subscribe(&self) -> EventReader {
        self.0.subscribe()
    }

    fn broker(&self) -> Option<Arc<Broker>> {
        Some(self.0.clone())
    }
}
