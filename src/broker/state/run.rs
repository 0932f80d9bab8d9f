//! The work loop every operation ends with: dead-letter what left its queue, then dispatch
//! each queue that may have something to deliver, a bounded amount at a time.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{Dying, State};
use crate::broker::journal::StoreOp;
use crate::broker::maps::HashSet;
use crate::broker::message::{dead_lettered, death_queues, is_cycle, QueuedMessage};
use crate::events::{DeadLetterReason, EventKind, PublishFate};

/// How many messages one operation dead-letters or expires before it lets go of the broker.
/// Dead-lettering fans out (a fanout dead-letter exchange copies each message to every queue
/// it binds, and those may dead-letter again), so the work one publish causes has no bound of
/// its own; what is left over is done by the timer, a slice at a time.
pub(super) const STEPS_PER_RUN: usize = 1_000;

/// At most this many distinct cycles are remembered as logged; after that they are not logged.
const CYCLES_LOGGED_MAX: usize = 1_000;

impl State {
    /// Puts a message that left `queue` on the list to dead-letter; [`Self::run`] does it.
    pub(super) fn doom(
        &mut self,
        vhost_name: &str,
        queue: &str,
        message: QueuedMessage,
        reason: DeadLetterReason,
    ) {
        let (vhost, queue) = (self.vhost_key(vhost_name), Arc::from(queue));
        self.dying.push_back(Dying {
            vhost,
            queue,
            message,
            reason,
        });
    }

    /// Sends a message that left `queue` to the queue's dead-letter exchange, with `x-death`;
    /// without one the message is gone. Like RabbitMQ, it is not sent to a queue it already
    /// died in for a reason other than `rejected` on the way here (a dead-letter cycle no
    /// client takes part in would go round for ever).
    fn dead_letter(
        &mut self,
        vhost_name: &str,
        queue: &str,
        qm: QueuedMessage,
        reason: DeadLetterReason,
        work: &mut VecDeque<(Arc<str>, Arc<str>)>,
    ) {
        if qm.stored {
            self.record(|| StoreOp::Removed {
                vhost: Arc::from(vhost_name),
                queue: Arc::from(queue),
                seq: qm.seq,
            });
        }
        let id = qm.message.id;
        let (dlx, dlrk) = match self
            .vhosts
            .get(vhost_name)
            .and_then(|v| v.queues.get(queue))
        {
            Some(q) => (
                q.limits.dead_letter_exchange.clone(),
                q.limits.dead_letter_routing_key.clone(),
            ),
            None => (None, None),
        };
        let Some(dlx) = dlx else {
            match reason {
                DeadLetterReason::Expired => {
                    self.emit(vhost_name, None, None, || EventKind::Expired {
                        message_id: id,
                        queue: queue.into(),
                    })
                }
                DeadLetterReason::Maxlen | DeadLetterReason::DeliveryLimit => {
                    self.emit(vhost_name, None, None, || EventKind::Dropped {
                        message_id: id,
                        queue: queue.into(),
                        reason: reason.clone(),
                    })
                }
                DeadLetterReason::Rejected => {}
            }
            return;
        };
        let routing_key = dlrk.unwrap_or_else(|| qm.message.routing_key.to_string());
        self.next_message_id += 1;
        let message = Arc::new(dead_lettered(
            &qm.message,
            self.next_message_id,
            queue,
            &reason,
            &dlx,
            &routing_key,
        ));
        self.emit(vhost_name, None, None, || EventKind::DeadLettered {
            message_id: id,
            queue: queue.into(),
            reason: reason.clone(),
            exchange: Arc::from(dlx.as_str()),
            routing_key: Arc::from(routing_key.as_str()),
        });
        let Some(vhost) = self.vhosts.get(vhost_name) else {
            return;
        };
        if !vhost.exchanges.contains_key(dlx.as_str()) {
            return;
        }
        let mut route = vhost.route(&dlx, &routing_key, message.headers());
        if reason != DeadLetterReason::Rejected {
            let deaths = death_queues(&message);
            let (cycling, onward): (Vec<Arc<str>>, Vec<Arc<str>>) = route
                .queues
                .into_iter()
                .partition(|target| is_cycle(target, &message));
            route.queues = onward;
            for target in cycling {
                let closing = (self.vhost_key(vhost_name), target.clone(), Arc::from(queue));
                let mut cycle = vec![target];
                cycle.extend(deaths.iter().cloned());
                self.log_cycle_once(closing, cycle);
            }
        }
        let fate = if route.queues.is_empty() {
            PublishFate::Dropped
        } else {
            PublishFate::Routed
        };
        self.emit_published(vhost_name, None, &message, route.clone(), fate);
        for target in &route.queues {
            self.enqueue(vhost_name, target, message.clone(), work);
        }
    }

    fn log_cycle_once(&mut self, closing: (Arc<str>, Arc<str>, Arc<str>), cycle: Vec<Arc<str>>) {
        if self.cycles_logged.len() >= CYCLES_LOGGED_MAX || self.cycles_logged.contains(&closing) {
            return;
        }
        tracing::warn!(
            vhost = %closing.0,
            "Message dropped. Dead-letter queues cycle detected: {:?}. This cycle will NOT be reported again.",
            cycle
        );
        self.cycles_logged.insert(closing);
    }

    /// Dead-letters what is dying and dispatches every queue in `work` until nothing more can
    /// move, or until [`STEPS_PER_RUN`] messages were dead-lettered or expired: then the rest
    /// waits in the backlog for the timer, and the broker is free for other clients meanwhile.
    pub(super) fn run(&mut self, mut work: VecDeque<(Arc<str>, Arc<str>)>) {
        let mut seen = HashSet::default();
        let mut steps = 0;
        loop {
            if steps >= STEPS_PER_RUN {
                self.backlog.extend(work);
                return;
            }
            if let Some(dying) = self.dying.pop_front() {
                steps += 1;
                self.dead_letter(
                    &dying.vhost,
                    &dying.queue,
                    dying.message,
                    dying.reason,
                    &mut work,
                );
                // Dead-lettering may have filled queues we already passed.
                seen.clear();
                continue;
            }
            let Some((vhost, queue)) = work.pop_front() else {
                return;
            };
            // Nothing to tell apart when this is the only entry left and none came before:
            // the common publish to one queue pays for no set.
            let alone = work.is_empty() && seen.is_empty();
            if !alone && !seen.insert((vhost.clone(), queue.clone())) {
                continue;
            }
            let (expired, more) = self.dispatch(&vhost, &queue, STEPS_PER_RUN - steps);
            steps += expired.len();
            for message in expired {
                self.doom(&vhost, &queue, message, DeadLetterReason::Expired);
            }
            if more {
                // The expiry limit stopped it: come back to this queue.
                seen.remove(&(vhost.clone(), queue.clone()));
                work.push_back((vhost, queue));
            }
        }
    }

    /// Whether work is left over for the timer.
    pub fn has_backlog(&self) -> bool {
        !self.dying.is_empty() || !self.backlog.is_empty()
    }
}
