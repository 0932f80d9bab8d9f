//! Recording: a source's events written to a trace as they come.

use std::future::Future;
use std::time::Duration;

use super::TraceWriter;
use crate::events::{EventReader, Received};

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
    mut reader: EventReader,
    writer: &mut TraceWriter,
    limits: Limits,
    stop: impl Future<Output = ()>,
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
        match received {
            Received::Event(event) => {
                writer.write(&event)?;
                recorded.events += 1;
            }
            Received::Missed(n) => recorded.missed += n,
            Received::Closed => break,
        }
    }
    Ok(recorded)
}
