//! Where a view's picture comes from: a topology snapshot and the broker event stream. The
//! embedded broker is one source; a remote RabbitMQ or a replayed trace are others, and the
//! screens cannot tell them apart, except by the [`SourceKind`] they name on the status line.
//!
//! A replayed trace can also be paused, stepped and rewound: it offers that as a [`Playback`]
//! through [`Source::playback`]; the live sources have none.
//!
//! This file may import the broker (for the embedded source) and the event types, nothing of
//! the view, the remote watcher or the trace module: they implement [`Source`], not the other
//! way round.

use std::path::PathBuf;
use std::sync::Arc;

use crate::broker::Broker;
use crate::events::{Event, EventReader};
use crate::topology::Snapshot;

/// What a view watches, with what its status line says of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// The embedded broker, listening for AMQP clients at `address` (`host:port`).
    Embedded { address: String },
    /// A RabbitMQ reached at `url` (its password masked).
    Remote { url: String },
    /// A trace `file` played back; `recorded_from` is where its events came from, and
    /// `following` whether the file is still read for more.
    Replay {
        file: PathBuf,
        recorded_from: String,
        following: bool,
    },
}

impl SourceKind {
    /// Where the status line says the broker is.
    pub fn describe(&self) -> String {
        match self {
            SourceKind::Embedded { address } => format!("amqp://{address}"),
            SourceKind::Remote { url } => url.clone(),
            SourceKind::Replay {
                file,
                recorded_from,
                following,
            } => {
                let from = if recorded_from.is_empty() {
                    String::new()
                } else {
                    format!(" ({recorded_from})")
                };
                let following = if *following { ", following" } else { "" };
                format!("replay of {}{from}{following}", file.display())
            }
        }
    }

    /// The embedded broker's AMQP address: where lesson clients connect.
    pub fn amqp_address(&self) -> Option<&str> {
        match self {
            SourceKind::Embedded { address } => Some(address),
            _ => None,
        }
    }
}

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
    /// What the source is, for the status line.
    fn kind(&self) -> SourceKind;
    /// The RabbitMQ release an embedded broker behaves as, with the deprecated features it
    /// permits or denies against that release's defaults (see [`Behaviour::summary`]).
    ///
    /// [`Behaviour::summary`]: crate::broker::Behaviour::summary
    fn behaves_as(&self) -> Option<String> {
        None
    }
    /// The controls of a source that plays recorded events back (a replayed trace); a live
    /// source has none.
    fn playback(&self) -> Option<&dyn Playback> {
        None
    }
}

/// A source whose events were recorded: the view can pause it, change its speed, step it one
/// event forward or back.
pub trait Playback: Send + Sync {
    /// The view's pause and speed factor (space, + and -).
    fn follow_view(&self, paused: bool, speed: f64);
    /// The next event now, paused or not.
    fn step_forward(&self);
    /// Undo the last event: the source rewinds one event and pauses.
    fn step_back(&self);
    /// Whether the last event has been played and no more can come: the view says so rather
    /// than look idle.
    fn finished(&self) -> bool;
    /// After a rewind, once: every event up to the new position, for the view to start over
    /// with. Events the view had not read yet before the rewind are stale and must be dropped.
    fn take_rewind(&self) -> Option<Vec<Arc<Event>>>;
}

/// The embedded broker as a source.
pub struct Embedded {
    pub broker: Arc<Broker>,
    /// Where it listens for AMQP clients (`host:port`).
    pub address: String,
}

impl Embedded {
    pub fn new(broker: Arc<Broker>, address: &str) -> Embedded {
        Embedded {
            broker,
            address: address.to_string(),
        }
    }
}

impl Source for Embedded {
    fn snapshot(&self) -> Snapshot {
        self.broker.snapshot()
    }

    fn subscribe(&self) -> EventReader {
        self.broker.subscribe()
    }

    fn broker(&self) -> Option<Arc<Broker>> {
        Some(self.broker.clone())
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Embedded {
            address: self.address.clone(),
        }
    }

    fn behaves_as(&self) -> Option<String> {
        Some(self.broker.behaviour().summary())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_names_its_broker() {
        let embedded = SourceKind::Embedded {
            address: "127.0.0.1:5673".into(),
        };
        assert_eq!(embedded.describe(), "amqp://127.0.0.1:5673");
        assert_eq!(embedded.amqp_address(), Some("127.0.0.1:5673"));
        let remote = SourceKind::Remote {
            url: "amqp://guest:***@localhost:5672/%2f".into(),
        };
        assert_eq!(remote.describe(), "amqp://guest:***@localhost:5672/%2f");
        assert_eq!(remote.amqp_address(), None);
        let replay = SourceKind::Replay {
            file: "shop.yaml".into(),
            recorded_from: "amqp://127.0.0.1:5673".into(),
            following: true,
        };
        assert_eq!(
            replay.describe(),
            "replay of shop.yaml (amqp://127.0.0.1:5673), following"
        );
    }
}
