//! basic.publish: checking a message, routing it and putting it in its queues, and the
//! `Published` event that tells where it went.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use amq_protocol::protocol::BasicProperties;
use bytes::Bytes;

use super::queue_mut;
use super::timers::message_ttl;
use super::{random_suffix, ChannelRef, LastPublished, PropertyPairs, State, REPLY_TO};
use crate::broker::args;
use crate::broker::error::{AmqpError, AmqpResult};
use crate::broker::exchange::ExchangeKind;
use crate::broker::journal::StoreOp;
use crate::broker::message::{Message, QueuedMessage};
use crate::broker::permissions::{Access, Resource};
use crate::broker::queue::{Overflow, QueueType};
use crate::broker::ToClient;
use crate::events::{DeadLetterReason, EventKind, PublishFate};

/// basic.publish and the message it carries.
#[derive(Clone, Debug)]
pub struct Publish<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    /// Return the message (basic.return 312) when no queue takes it.
    pub mandatory: bool,
    pub properties: BasicProperties,
    pub body: Bytes,
}

/// What the publisher must be told after a publish.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Mandatory and unroutable: send basic.return 312 NO_ROUTE.
    pub returned: bool,
    /// A full queue refused it (reject-publish): in confirm mode, nack instead of ack.
    pub rejected: bool,
    /// The store ticket to wait for before confirming (see [`crate::broker::Broker::durable`]): the
    /// message is persistent and reached a durable queue.
    pub durable_at: Option<u64>,
}

/// `last` when it holds the same text, else a new copy of `text`.
fn share_str(last: Option<&Arc<str>>, text: &str) -> Arc<str> {
    match last {
        Some(last) if **last == *text => last.clone(),
        _ => Arc::from(text),
    }
}

impl State {
    /// Emits `Published`, rendering the message's properties only when they differ from the
    /// last event's.
    pub(super) fn emit_published(
        &mut self,
        vhost: &str,
        from: Option<ChannelRef>,
        message: &Message,
        route: crate::broker::vhost::Route,
        fate: PublishFate,
    ) {
        if !self.events.has_readers() {
            return;
        }
        let properties = match &self.rendered_properties {
            Some((of, pairs)) if Arc::ptr_eq(of, &message.properties) => pairs.clone(),
            _ => {
                let pairs: PropertyPairs = property_pairs(&message.properties).into();
                self.rendered_properties = Some((message.properties.clone(), pairs.clone()));
                pairs
            }
        };
        let (connection, channel) = from.map(|on| (on.connection, on.channel)).unzip();
        self.emit(vhost, connection, channel, || {
            published_event(message, route, properties, fate)
        });
    }

    /// Stamps every event until [`State::end_publish`] with one time: a publish's events
    /// happen at once, and reading the clock per event was a visible share of an event
    /// reader's cost.
    pub fn begin_publish(&mut self) {
        self.publish_time = self.events.has_readers().then(SystemTime::now);
    }

    /// Ends what [`State::begin_publish`] started.
    pub fn end_publish(&mut self) {
        self.publish_time = None;
    }

    /// basic.publish: checks the message, routes it and puts it in its queues, then delivers
    /// what it can. The outcome says whether to return it, nack it, or wait for the disk.
    pub fn basic_publish(
        &mut self,
        on: ChannelRef,
        publish: Publish<'_>,
    ) -> AmqpResult<PublishOutcome> {
        let Publish {
            exchange,
            routing_key,
            mandatory,
            mut properties,
            body,
        } = publish;
        let vhost_name = self.vhost_of(on.connection)?;
        self.permit(on.connection, Access::Write, Resource::Exchange(exchange))?;
        // Direct reply-to: the request names the pseudo-queue; give it this channel's address.
        if properties
            .reply_to()
            .as_ref()
            .is_some_and(|r| r.as_str() == REPLY_TO)
        {
            let ch = self.channel(on)?;
            if ch.reply_consumer.is_none() {
                return Err(AmqpError::precondition_failed(
                    "fast reply consumer does not exist",
                ));
            }
            let ChannelRef {
                connection,
                channel,
            } = on;
            let address = format!("{REPLY_TO}.{connection}.{channel}.{}", random_suffix());
            properties = properties.with_reply_to(address.as_str().into());
        }
        // The default exchange always exists and is never internal: no lookup for it.
        if !exchange.is_empty() {
            let vhost = &self.vhosts[&vhost_name];
            let x = vhost.exchange(exchange)?;
            if x.internal {
                return Err(AmqpError::access_refused(format!(
                    "cannot publish to internal exchange '{exchange}' in vhost '{vhost_name}'"
                )));
            }
            if x.kind == ExchangeKind::Topic {
                self.connections[&on.connection].grant.check_topic(
                    Access::Write,
                    exchange,
                    routing_key,
                )?;
            }
        }
        if let Some(user_id) = properties.user_id() {
            self.connections[&on.connection]
                .grant
                .check_user_id(user_id.as_str())?;
        }
        // Checked last, as RabbitMQ does: a missing exchange or a wrong user_id is said first.
        if let Some(expiration) = properties.expiration() {
            let text = expiration.as_str();
            match text.parse::<i64>() {
                Ok(n) if n >= 0 => {}
                Ok(n) => {
                    return Err(AmqpError::precondition_failed(format!(
                        "invalid expiration '{text}': {{value_negative,{n}}}"
                    )))
                }
                Err(_) => {
                    return Err(AmqpError::precondition_failed(format!(
                        "invalid expiration '{text}': no_integer"
                    )))
                }
            }
        }
        self.next_message_id += 1;
        let message_id = self.next_message_id;
        let ch = self.channel(on)?;
        let last = ch.last_published.take();
        let shared = LastPublished {
            properties: match &last {
                Some(l) if *l.properties == properties => l.properties.clone(),
                _ => Arc::new(properties),
            },
            exchange: share_str(last.as_ref().map(|l| &l.exchange), exchange),
            routing_key: share_str(last.as_ref().map(|l| &l.routing_key), routing_key),
        };
        let message = Arc::new(Message {
            id: message_id,
            exchange: shared.exchange.clone(),
            routing_key: shared.routing_key.clone(),
            properties: shared.properties.clone(),
            body,
        });
        ch.last_published = Some(shared);
        if exchange.is_empty() && routing_key.starts_with(REPLY_TO) {
            return Ok(self.deliver_reply(&vhost_name, on, mandatory, message));
        }
        let route = self.vhosts[&vhost_name].route(exchange, routing_key, message.headers());
        let mut outcome = PublishOutcome::default();
        let mut work = VecDeque::new();
        let mut rejected = Vec::new();
        for queue in &route.queues {
            if self.enqueue(&vhost_name, queue, message.clone(), &mut work) {
                rejected.push(queue.clone());
            }
        }
        outcome.rejected = !rejected.is_empty();
        let fate = if !route.queues.is_empty() {
            if rejected.len() == route.queues.len() {
                PublishFate::Rejected
            } else {
                PublishFate::Routed
            }
        } else if mandatory {
            outcome.returned = true;
            PublishFate::Returned
        } else {
            PublishFate::Dropped
        };
        self.emit_published(&vhost_name, Some(on), &message, route, fate);
        self.run(work);
        Ok(outcome)
    }

    /// Direct reply-to: hands the reply straight to the consumer of the channel its routing key
    /// names (`amq.rabbitmq.reply-to.<connection>.<channel>.<random>`), with no queue between.
    fn deliver_reply(
        &mut self,
        vhost: &str,
        on: ChannelRef,
        mandatory: bool,
        message: Arc<Message>,
    ) -> PublishOutcome {
        let address = &message.routing_key[REPLY_TO.len()..];
        let mut parts = address.trim_start_matches('.').splitn(3, '.');
        let target = (|| -> Option<ChannelRef> {
            Some(ChannelRef {
                connection: parts.next()?.parse().ok()?,
                channel: parts.next()?.parse().ok()?,
            })
        })();
        let delivered = target.and_then(|to| {
            let state = self.channels.get_mut(&to)?;
            let tag = state.reply_consumer.clone()?;
            state.delivery_tags += 1;
            let delivery_tag = state.delivery_tags;
            self.connections
                .get(&to.connection)?
                .sink
                .send(ToClient::Deliver {
                    channel: to.channel,
                    consumer_tag: tag,
                    delivery_tag,
                    redelivered: false,
                    message: message.clone(),
                });
            Some(())
        });
        let fate = match (delivered.is_some(), mandatory) {
            (true, _) => PublishFate::Routed,
            (false, true) => PublishFate::Returned,
            (false, false) => PublishFate::Dropped,
        };
        // RabbitMQ 3.10 also returns a mandatory reply it delivered: the pseudo-queue is no
        // queue for routing purposes.
        self.emit_published(vhost, Some(on), &message, Default::default(), fate);
        PublishOutcome {
            returned: mandatory,
            rejected: false,
            durable_at: None,
        }
    }

    /// Adds a message to a queue, applying TTL and length limits. Returns true when the queue
    /// refused it (reject-publish). Queues to dispatch are pushed onto `work`.
    pub(super) fn enqueue(
        &mut self,
        vhost_name: &str,
        queue: &Arc<str>,
        message: Arc<Message>,
        work: &mut VecDeque<(Arc<str>, Arc<str>)>,
    ) -> bool {
        let journal_vhost = self.journal.is_some().then(|| self.vhost_key(vhost_name));
        let Some(q) = queue_mut(&mut self.vhosts, vhost_name, queue) else {
            return false;
        };
        if q.stream.is_some() {
            self.append_to_stream(vhost_name, queue, message, work);
            return false;
        }
        let size = message.body.len();
        let overflow = q.overflow();
        if overflow != Overflow::DropHead && q.refuses_publish(size) {
            let dlx = overflow == Overflow::RejectPublishDlx;
            if dlx {
                let seq = self.next_seq;
                self.next_seq += 1;
                let qm = QueuedMessage {
                    seq,
                    message,
                    expires_at: None,
                    redelivered: false,
                    delivery_count: 0,
                    stored: false,
                };
                self.doom(vhost_name, queue, qm, DeadLetterReason::Maxlen);
            }
            return true;
        }
        let ttl = message_ttl(&q.limits, &message);
        self.next_seq += 1;
        let stored = journal_vhost.is_some()
            && q.durable
            && q.owner.is_none()
            && message.properties.delivery_mode() == &Some(2);
        if let (true, Some(journal), Some(vhost)) = (stored, &mut self.journal, journal_vhost) {
            {
                if let (QueueType::Quorum, Some(unwritten)) =
                    (q.limits.queue_type, &mut self.unwritten)
                {
                    unwritten.appended(&vhost, &q.name, self.next_seq + 1);
                }
                journal.push(StoreOp::Enqueued {
                    vhost,
                    queue: q.name.clone(),
                    seq: self.next_seq,
                    message: message.clone(),
                    flush: true,
                });
            }
        }
        q.push_back(QueuedMessage {
            seq: self.next_seq,
            message,
            expires_at: ttl.map(|t| Instant::now() + t),
            redelivered: false,
            delivery_count: 0,
            stored,
        });
        q.stats.published += 1;
        let mut dropped = Vec::new();
        // Only drop-head trims here: a classic queue refused what would not fit, and a quorum
        // queue with reject-publish may go over its limit by the message just taken.
        while overflow == Overflow::DropHead && q.is_over_limit() {
            match q.pop_oldest() {
                Some(old) => dropped.push(old),
                None => break,
            }
        }
        for old in dropped {
            self.doom(vhost_name, queue, old, DeadLetterReason::Maxlen);
        }
        work.push_back((self.vhost_key(vhost_name), queue.clone()));
        false
    }
}

/// A message's properties as `name=value` pairs, for its `Published` event.
fn property_pairs(properties: &BasicProperties) -> Vec<(String, String)> {
    let mut props = Vec::new();
    macro_rules! prop {
        ($($name:literal => $get:ident),*) => {
            $(if let Some(v) = properties.$get() { props.push(($name.to_string(), v.to_string())); })*
        };
    }
    prop!("content_type" => content_type, "content_encoding" => content_encoding,
        "correlation_id" => correlation_id, "reply_to" => reply_to, "expiration" => expiration,
        "message_id" => message_id, "type" => kind, "user_id" => user_id, "app_id" => app_id);
    if let Some(mode) = properties.delivery_mode() {
        props.push(("delivery_mode".into(), mode.to_string()));
    }
    if let Some(priority) = properties.priority() {
        props.push(("priority".into(), priority.to_string()));
    }
    props
}

/// The `Published` event of `message`, which went where `route` says.
fn published_event(
    message: &Message,
    route: crate::broker::vhost::Route,
    properties: PropertyPairs,
    fate: PublishFate,
) -> EventKind {
    EventKind::Published {
        message_id: message.id,
        exchange: message.exchange.clone(),
        routing_key: message.routing_key.clone(),
        body_size: message.body.len(),
        body_preview: crate::events::kept_body(&message.body),
        headers: message.headers().map(args::pairs).unwrap_or_default(),
        properties,
        matched: route.matched.iter().map(|(s, b)| b.info(s)).collect(),
        queues: route.queues,
        alternate_exchange: route.alternate_exchange,
        fate,
    }
}
