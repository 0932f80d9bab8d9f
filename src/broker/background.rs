//! What the broker does on its own, between client calls: the timer that expires messages
//! and queues and finishes left-over work, and the memory and disk alarms that block
//! publishers. Each is an `impl Broker` block; it may import the broker's limits and the
//! event stream, never the wire layer.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{limits, Alarms, Broker, DISK_CHECK_INTERVAL};
use crate::events::{AlarmResource, Event, EventKind};

impl Broker {
    /// Sets or clears the memory alarm from what the broker holds now.
    fn check_memory(&self) {
        let Some(limit) = self.config.memory_limit else {
            return;
        };
        let state = self.lock().held_memory();
        self.state_held.store(state, Ordering::Relaxed);
        let used = state + self.held.load(Ordering::Relaxed);
        let over = used > limit;
        if self.set_alarm(AlarmResource::Memory, over) {
            if over {
                tracing::warn!(used, limit, "memory alarm: publishers are blocked");
            } else {
                tracing::info!(used, limit, "memory alarm cleared: publishers may go on");
            }
        }
    }
    /// Checks the memory alarm now when a cheap estimate says it should be on and it is off:
    /// a connection calls this after reading, so a flood cannot outrun the periodic check.
    pub fn check_memory_soon(&self) {
        let Some(limit) = self.config.memory_limit else {
            return;
        };
        let estimate = self.state_held.load(Ordering::Relaxed) + self.held.load(Ordering::Relaxed);
        if estimate > limit && !self.alarms.borrow().memory {
            self.check_memory();
        }
    }
    /// Sets or clears the disk alarm: `free` bytes are left on the data directory's
    /// filesystem (None: unknown), and the store can write or not.
    fn set_disk_alarm(&self, free: Option<u64>, store_failing: bool) {
        let limit = self.config.disk_free_limit.unwrap_or(0);
        let low = free.is_some_and(|free| free < limit);
        let on = low || store_failing;
        if self.set_alarm(AlarmResource::Disk, on) {
            let free = free.map_or_else(|| "unknown".to_string(), |f| f.to_string());
            if on {
                tracing::warn!(
                    free,
                    limit,
                    store_failing,
                    "disk alarm: publishers are blocked"
                );
            } else {
                tracing::info!(free, limit, "disk alarm cleared: publishers may go on");
            }
        }
    }
    /// Turns the `resource` alarm on or off; if that changed it, tells the publishers waiting on
    /// the alarms and the event stream, and returns true.
    fn set_alarm(&self, resource: AlarmResource, on: bool) -> bool {
        let changed = self.alarms.send_if_modified(|alarms| {
            let flag = match resource {
                AlarmResource::Memory => &mut alarms.memory,
                AlarmResource::Disk => &mut alarms.disk,
            };
            let changed = *flag != on;
            *flag = on;
            changed
        });
        if !changed {
            return false;
        }
        let kind = if on {
            EventKind::AlarmOn { resource }
        } else {
            EventKind::AlarmOff { resource }
        };
        self.events.emit(Event {
            at: std::time::SystemTime::now(),
            vhost: "".into(),
            connection: None,
            channel: None,
            kind,
        });
        true
    }
    /// The resource alarms that are on; publishing connections wait while any is.
    pub fn alarms(&self) -> watch::Receiver<Alarms> {
        self.alarms.subscribe()
    }
    /// Expires messages and queues. Runs on the tokio runtime the broker was created in, if any,
    /// until the broker is dropped.
    pub(super) fn start_timer(broker: &Arc<Broker>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if broker.config.memory_limit.is_some() {
            let weak = Arc::downgrade(broker);
            handle.spawn(async move {
                while let Some(broker) = weak.upgrade() {
                    broker.check_memory();
                    drop(broker);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
        if let Some(store) = &broker.store {
            broker.lock().wait_for_store();
            let weak = Arc::downgrade(broker);
            let mut written = store.durable();
            handle.spawn(async move {
                while written.changed().await.is_ok() {
                    let Some(broker) = weak.upgrade() else {
                        return;
                    };
                    let ticket = *written.borrow_and_update();
                    broker.lock().appends_written(ticket);
                }
            });
            handle.spawn(Broker::watch_disk(
                Arc::downgrade(broker),
                store.dir().to_path_buf(),
                store.failing(),
            ));
        }
        let weak = Arc::downgrade(broker);
        handle.spawn(async move {
            loop {
                let wait = match weak.upgrade() {
                    Some(broker) => broker.tick(Instant::now()),
                    None => return,
                };
                tokio::time::sleep(wait).await;
            }
        });
    }
    /// The disk alarm's monitor: looks at the free space every [`DISK_CHECK_INTERVAL`], and at
    /// once when the store starts or stops failing, until the broker is dropped.
    async fn watch_disk(
        weak: std::sync::Weak<Broker>,
        dir: PathBuf,
        mut store_failing: watch::Receiver<bool>,
    ) {
        let mut writer_alive = true;
        loop {
            let Some(broker) = weak.upgrade() else {
                return;
            };
            let free = match limits::disk_free(&dir) {
                Ok(free) => Some(free),
                Err(error) => {
                    tracing::debug!(%error, dir = %dir.display(), "cannot read the free disk space");
                    None
                }
            };
            broker.set_disk_alarm(free, *store_failing.borrow_and_update());
            drop(broker);
            let failing_changed = async {
                if writer_alive {
                    store_failing.changed().await.is_ok()
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(DISK_CHECK_INTERVAL) => {}
                alive = failing_changed => writer_alive = alive,
            }
        }
    }
    /// Expires what is due; returns how long until the next check is useful.
    fn tick(&self, now: Instant) -> Duration {
        let next = self.lock().tick(now);
        match next {
            Some(at) => at
                .saturating_duration_since(now)
                .clamp(Duration::from_millis(1), Duration::from_millis(100)),
            None => Duration::from_millis(100),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::BrokerConfig;
    use crate::events::{EventReader, Received};

    /// The alarm events the reader has been sent so far, as (on, resource).
    fn alarm_events(reader: &mut EventReader) -> Vec<(bool, AlarmResource)> {
        let mut seen = Vec::new();
        while let Some(Received::Event(event)) = reader.try_recv() {
            match event.kind {
                EventKind::AlarmOn { resource } => seen.push((true, resource)),
                EventKind::AlarmOff { resource } => seen.push((false, resource)),
                _ => {}
            }
        }
        seen
    }

    #[test]
    fn the_memory_alarm_goes_on_and_off_on_the_event_stream() {
        let broker = Broker::new(BrokerConfig {
            memory_limit: Some(1000),
            ..BrokerConfig::default()
        });
        let mut reader = broker.subscribe();
        let mut body = broker.hold();
        body.set(2000);
        broker.check_memory();
        // Checked again while still over: the alarm is already on, nothing new is said.
        broker.check_memory();
        assert_eq!(alarm_events(&mut reader), [(true, AlarmResource::Memory)]);
        drop(body);
        broker.check_memory();
        assert_eq!(alarm_events(&mut reader), [(false, AlarmResource::Memory)]);
    }

    #[test]
    fn the_disk_alarm_goes_on_and_off_on_the_event_stream() {
        let broker = Broker::new(BrokerConfig {
            disk_free_limit: Some(1000),
            ..BrokerConfig::default()
        });
        let mut reader = broker.subscribe();
        broker.set_disk_alarm(Some(10), false);
        broker.set_disk_alarm(Some(20), false);
        broker.set_disk_alarm(Some(5000), false);
        broker.set_disk_alarm(Some(5000), true);
        assert_eq!(
            alarm_events(&mut reader),
            [
                (true, AlarmResource::Disk),
                (false, AlarmResource::Disk),
                (true, AlarmResource::Disk)
            ]
        );
    }
}
