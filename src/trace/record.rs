//! Recording: a source's events written to a trace as they come.

use std::future::Future;
use std::time::Duration;

use super::TraceWriter;
use crate::events::{Event, EventReader, Received};

/// When recording stops by itself (besides the stop signal and the source closing).
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    /// After this many events.
    pub count: Option<u64>,
    /// After this long.
    pub duration: Option<Duration>,
}

/// What a recording wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    pub events: u64,
    /// Events the recorder fell too far behind to read (the source never waits for it).
    pub missed: u64,
}

/// Writes what `reader` receives to `writer` until a limit is reached, `stop` completes or
/// the source closes. Each event is on disk before the next one is awaited, so stopping at
/// any point leaves a whole trace.
pub async fn record(
    reader: EventReader,
    writer: &mut TraceWriter,
    limits: Limits,
    stop: impl Future<Output = ()>,
) -> std::io::Result<Recorded> {
    let mut reader = reader;
    record_where(&mut reader, writer, limits, stop, |_| true).await
}

/// [`record`] for the embedded broker, whose stream carries every vhost: only the events of
/// `vhost` and the node's alarms (which have no vhost) are written. Once `stop` completes, the
/// events already on the stream are written too: the broker stops first, and the connections
/// it closes on its way out belong to the recording.
pub async fn record_vhost(
    reader: EventReader,
    writer: &mut TraceWriter,
    vhost: &str,
    stop: impl Future<Output = ()>,
) -> std::io::Result<Recorded> {
    let ours = |event: &Event| &*event.vhost == vhost || event.vhost.is_empty();
    let mut reader = reader;
    let mut recorded = record_where(&mut reader, writer, Limits::default(), stop, ours).await?;
    while let Some(received) = reader.try_recv() {
        if !take(received, writer, &mut recorded, ours)? {
            break;
        }
    }
    Ok(recorded)
}

/// Writes one received item when `keep` wants it; false when the source closed.
fn take(
    received: Received,
    writer: &mut TraceWriter,
    recorded: &mut Recorded,
    keep: impl Fn(&Event) -> bool,
) -> std::io::Result<bool> {
    match received {
        Received::Event(event) => {
            if keep(&event) {
                writer.write(&event)?;
                recorded.events += 1;
            }
        }
        Received::Missed(n) => recorded.missed += n,
        Received::Closed => return Ok(false),
    }
    Ok(true)
}

/// [`record`] of the events `keep` wants.
async fn record_where(
    reader: &mut EventReader,
    writer: &mut TraceWriter,
    limits: Limits,
    stop: impl Future<Output = ()>,
    keep: impl Fn(&Event) -> bool,
) -> std::io::Result<Recorded> {
    tokio::pin!(stop);
    let deadline = async {
        match limits.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut recorded = Recorded::default();
    loop {
        if limits.count.is_some_and(|n| recorded.events >= n) {
            break;
        }
        let received = tokio::select! {
            _ = &mut stop => break,
            _ = &mut deadline => break,
            received = reader.recv() => received,
        };
        if !take(received, writer, &mut recorded, &keep)? {
            break;
        }
    }
    Ok(recorded)
}
