//! The basic class: qos, consume, cancel, get, ack / nack / reject, recover, and publish with
//! its content frames (header and body) up to the broker's routing and the answers it owes.

use amq_protocol::protocol::{basic, AMQPClass, BasicProperties};
use bytes::{Bytes, BytesMut};

use super::{
    expected_method, not_from_client, publish_failure, short, Connection, Content, Failure,
    HeldConfirm, TxOp, MAX_MESSAGE_SIZE,
};
use crate::amqp::codec;
use crate::broker::{AmqpError, ConsumeSpec, Publish, Settle};

impl Connection {
    pub(super) fn basic_method(
        &mut self,
        ch: u16,
        method: &basic::AMQPMethod,
    ) -> Result<(), AmqpError> {
        let (on, broker) = (self.on(ch), self.broker.clone());
        match method {
            basic::AMQPMethod::Qos(q) => {
                broker.basic_qos(on, q.prefetch_count, q.global);
                self.reply(
                    ch,
                    AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})),
                );
            }
            basic::AMQPMethod::Consume(c) => {
                let tag = broker.basic_consume(
                    on,
                    ConsumeSpec {
                        queue: c.queue.to_string(),
                        tag: c.consumer_tag.to_string(),
                        no_ack: c.no_ack,
                        exclusive: c.exclusive,
                        arguments: c.arguments.clone(),
                    },
                )?;
                if !c.nowait {
                    self.reply(
                        ch,
                        AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                            consumer_tag: tag.as_str().into(),
                        })),
                    );
                }
                // consume-ok must reach the client before the first delivery.
                self.flush();
                broker.consumer_ready(on, &tag);
            }
            basic::AMQPMethod::Cancel(c) => {
                broker.basic_cancel(on, c.consumer_tag.as_str())?;
                if !c.nowait {
                    self.reply(
                        ch,
                        AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                            consumer_tag: c.consumer_tag.clone(),
                        })),
                    );
                }
            }
            basic::AMQPMethod::Get(g) => match broker.basic_get(on, g.queue.as_str(), g.no_ack)? {
                Some(got) => {
                    self.reply(
                        ch,
                        AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
                            delivery_tag: got.delivery_tag,
                            redelivered: got.redelivered,
                            exchange: short(&got.message.exchange),
                            routing_key: short(&got.message.routing_key),
                            message_count: got.message_count,
                        })),
                    );
                    codec::write_content(
                        &mut self.out,
                        ch,
                        &got.message.properties,
                        &got.message.body,
                        self.frame_max,
                    );
                }
                None => self.reply(
                    ch,
                    AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
                ),
            },
            basic::AMQPMethod::Ack(a) => self.settle(ch, TxOp::Ack(a.delivery_tag, a.multiple))?,
            basic::AMQPMethod::Nack(n) => {
                self.settle(ch, TxOp::Nack(n.delivery_tag, n.multiple, n.requeue))?
            }
            basic::AMQPMethod::Reject(r) => {
                self.settle(ch, TxOp::Reject(r.delivery_tag, r.requeue))?
            }
            basic::AMQPMethod::RecoverAsync(_) => broker.basic_recover(on),
            basic::AMQPMethod::Recover(_) => {
                broker.basic_recover(on);
                self.reply(
                    ch,
                    AMQPClass::Basic(basic::AMQPMethod::RecoverOk(basic::RecoverOk {})),
                );
            }
            _ => return Err(not_from_client()),
        }
        Ok(())
    }

    /// Acks, nacks and rejects; inside a transaction they wait for tx.commit.
    fn settle(&mut self, ch: u16, op: TxOp) -> Result<(), AmqpError> {
        if let Some(ops) = &mut self.channels.get_mut(&ch).expect("open").tx {
            ops.push(op);
            return Ok(());
        }
        self.apply_settle(ch, op)
    }

    pub(super) fn apply_settle(&mut self, ch: u16, op: TxOp) -> Result<(), AmqpError> {
        let (tag, multiple, how) = match op {
            TxOp::Ack(tag, multiple) => (tag, multiple, Settle::Ack),
            TxOp::Nack(tag, multiple, requeue) => (tag, multiple, Settle::Nack { requeue }),
            TxOp::Reject(tag, requeue) => (tag, false, Settle::Reject { requeue }),
            TxOp::Publish(_) => return Ok(()),
        };
        self.broker.settle(self.on(ch), tag, multiple, how)
    }

    pub(super) fn content_header(
        &mut self,
        ch: u16,
        class_id: u16,
        size: u64,
        properties: BasicProperties,
    ) -> Result<(), Failure> {
        let Some(state) = self.channels.get_mut(&ch) else {
            if self.orphan_publishes.remove(&ch) {
                return Err(publish_failure(
                    ch,
                    AmqpError::channel_error("expected 'channel.open'"),
                ));
            }
            return Err(expected_method());
        };
        if state.closing {
            return Ok(());
        }
        let Some(content) = state.content.as_mut() else {
            return Err(expected_method());
        };
        if content.header.is_some() {
            return Err(publish_failure(
                ch,
                AmqpError::unexpected_frame(
                    "expected content body, got non content body frame instead",
                ),
            ));
        }
        if class_id != 60 {
            return Err(publish_failure(
                ch,
                AmqpError::unexpected_frame(format!(
                    "expected content header for class 60, got one for class {class_id} instead"
                )),
            ));
        }
        if size > MAX_MESSAGE_SIZE {
            state.content = None;
            return Err(publish_failure(
                ch,
                AmqpError::precondition_failed(format!(
                    "message size {size} is larger than configured max size {MAX_MESSAGE_SIZE}"
                )),
            ));
        }
        // Nothing is set aside for the announced size: memory follows the bytes that arrive.
        content.header = Some((size, properties));
        if size == 0 {
            return self.complete_publish(ch);
        }
        Ok(())
    }

    pub(super) fn content_body(&mut self, ch: u16, bytes: Bytes) -> Result<(), Failure> {
        let Some(state) = self.channels.get_mut(&ch) else {
            return Err(expected_method());
        };
        if state.closing {
            return Ok(());
        }
        let Some(content) = state.content.as_mut() else {
            return Err(expected_method());
        };
        let Some((size, _)) = &content.header else {
            return Err(publish_failure(
                ch,
                AmqpError::unexpected_frame(
                    "expected content header for class 60, got non content header frame instead",
                ),
            ));
        };
        let size = *size;
        if content.overflowed || content.received as u64 + bytes.len() as u64 > size {
            content.overflowed = true;
            content.body = Vec::new();
            content.received = 0;
            content.held = None;
            return Ok(());
        }
        content.received += bytes.len();
        content.body.push(bytes);
        if content.received as u64 == size {
            return self.complete_publish(ch);
        }
        let received = content.received;
        content
            .held
            .get_or_insert_with(|| self.broker.hold())
            .set(received);
        Ok(())
    }

    fn complete_publish(&mut self, ch: u16) -> Result<(), Failure> {
        let state = self.channels.get_mut(&ch).expect("open");
        let pending = state.content.take().expect("content in progress");
        let (_, properties) = pending.header.expect("header seen");
        let content = Content {
            exchange: pending.exchange,
            routing_key: pending.routing_key,
            mandatory: pending.mandatory,
            properties,
            body: assemble(&pending.body, pending.received),
            held: pending.held,
        };
        if let Some(ops) = &mut state.tx {
            // Held until tx.commit: counted until then.
            let mut content = content;
            let len = content.body.len();
            content
                .held
                .get_or_insert_with(|| self.broker.hold())
                .set(len);
            ops.push(TxOp::Publish(Box::new(content)));
            return Ok(());
        }
        self.publish_now(ch, content)
            .map_err(|e| publish_failure(ch, e))
    }

    /// Routes a complete message, then answers with basic.return and/or a confirm.
    pub(super) fn publish_now(&mut self, ch: u16, content: Content) -> Result<(), AmqpError> {
        let Content {
            exchange,
            routing_key,
            mandatory,
            properties,
            body,
            held,
        } = content;
        // Routed, the body is counted where it lands (a queue, a return waiting to be written).
        drop(held);
        // Only a mandatory message can come back in basic.return: keep its content for that,
        // and spare every other message the copies.
        let kept = mandatory.then(|| (properties.clone(), body.clone()));
        let outcome = self.broker.basic_publish(
            self.on(ch),
            Publish {
                exchange: &exchange,
                routing_key: &routing_key,
                mandatory,
                properties,
                body,
            },
        )?;
        let state = self.channels.get_mut(&ch).expect("open");
        let confirm_tag = state.confirm.then(|| {
            state.published += 1;
            state.published
        });
        if outcome.returned || outcome.rejected {
            // Keep confirms in order around a return or a nack.
            if let Some((first, last)) = state.pending_acks.take() {
                self.write_ack(ch, first, last);
            }
        }
        if let (true, Some((properties, body))) = (outcome.returned, &kept) {
            self.reply(
                ch,
                AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
                    reply_code: 312,
                    reply_text: "NO_ROUTE".into(),
                    exchange: short(&exchange),
                    routing_key: short(&routing_key),
                })),
            );
            codec::write_content(&mut self.out, ch, properties, body, self.frame_max);
        }
        if let Some(tag) = confirm_tag {
            let state = self.channels.get_mut(&ch).expect("open");
            if outcome.durable_at.is_some() || !state.waiting.is_empty() {
                // Confirms already written or pending are for earlier tags, so order holds.
                state.waiting.push_back(HeldConfirm {
                    tag,
                    ticket: outcome.durable_at.unwrap_or(0),
                    ack: !outcome.rejected,
                });
            } else if outcome.rejected {
                self.write_nack(ch, tag);
            } else {
                let state = self.channels.get_mut(&ch).expect("open");
                state.pending_acks = Some(match state.pending_acks {
                    Some((first, _)) => (first, tag),
                    None => (tag, tag),
                });
            }
        }
        Ok(())
    }
}

/// One body from its frames, in an allocation of its own: a frame's bytes share the read
/// buffer they arrived in, which a queued message must not keep alive.
fn assemble(frames: &[Bytes], size: usize) -> Bytes {
    let mut body = BytesMut::with_capacity(size);
    for frame in frames {
        body.extend_from_slice(frame);
    }
    body.freeze()
}
