//! What happens with time: message TTL and queue expiry, driven by the broker's timer.

use std::time::Instant;

use super::State;
use crate::broker::message::Message;
use crate::broker::queue::QueueLimits;

impl State {
    /// Expires due messages and unused queues; returns the next instant worth waking for.
    pub fn tick(&mut self, now: Instant) -> Option<Instant> {
        let mut work = std::mem::take(&mut self.backlog);
        let mut unused = Vec::new();
        let mut next: Option<Instant> = None;
        for (vname, vhost) in &self.vhosts {
            for (qname, q) in &vhost.queues {
                if let Some(at) = q.next_expiry() {
                    if at <= now {
                        work.push_back((vname.clone(), qname.clone()));
                    } else {
                        next = Some(next.map_or(at, |n| n.min(at)));
                    }
                }
                if let Some(expires) = q.limits.expires {
                    if q.consumers.is_empty() {
                        let at = q.last_used + expires;
                        if at <= now {
                            unused.push((vname.clone(), qname.to_string()));
                        } else {
                            next = Some(next.map_or(at, |n| n.min(at)));
                        }
                    }
                }
            }
        }
        self.run(work);
        for (vhost, queue) in unused {
            self.delete_queue_now(&vhost, &queue, None);
        }
        if self.has_backlog() {
            // Left over from a run that hit its limit: carry on right after others had a turn.
            return Some(now);
        }
        next
    }
}

/// How long a message may wait in a queue: the shorter of the queue's and its own TTL.
pub(super) fn message_ttl(limits: &QueueLimits, message: &Message) -> Option<std::time::Duration> {
    match (limits.message_ttl, message.expiration()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
