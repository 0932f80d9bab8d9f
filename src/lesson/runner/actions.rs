//! Each `do` keyword of a step performed by the lesson's [`Client`]: declares, binds,
//! publishes and RPC calls, consumers and their acks, a restart, a program's connection
//! closed (`replay` is in `replay`). An action that expects a refusal succeeds only when the
//! broker refuses it so.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicQosOptions, BasicRejectOptions, ExchangeBindOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, ExchangeUnbindOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{Acker, ExchangeKind};

use super::super::oslo;
use super::super::schema::{
    AckMode, Action, BindingDecl, Consume, Destination, ExchangeDecl, ExchangeType, Lesson,
    QueueDecl,
};
use super::super::tap::Tap;
use super::super::validate::CONNECTION_ERRORS;
use super::checks::refusal_check;
use super::client::{lock, Client, ConsumerHandle, Inbox};
use super::convert::{basic_properties, field_table, oslo_properties, short};
use super::error::{RunError, StepError};
use super::link::timed;

impl Client {
    pub(super) async fn setup(&mut self, lesson: &Lesson) -> Result<(), RunError> {
        let failed = |what: String| move |error: StepError| RunError::Setup { what, error };
        for (i, x) in lesson.setup.exchanges.iter().enumerate() {
            self.declare_exchange(x)
                .await
                .map_err(failed(format!("exchanges[{i}] `{}`", x.name)))?;
        }
        for (i, q) in lesson.setup.queues.iter().enumerate() {
            self.declare_queue(q)
                .await
                .map_err(failed(format!("queues[{i}] `{}`", q.name)))?;
        }
        for (i, b) in lesson.setup.bindings.iter().enumerate() {
            self.bind(b, true)
                .await
                .map_err(failed(format!("bindings[{i}]")))?;
        }
        Ok(())
    }

    pub(super) async fn declare_exchange(&mut self, x: &ExchangeDecl) -> Result<(), StepError> {
        let kind = match x.kind {
            ExchangeType::Direct => ExchangeKind::Direct,
            ExchangeType::Fanout => ExchangeKind::Fanout,
            ExchangeType::Topic => ExchangeKind::Topic,
            ExchangeType::Headers => ExchangeKind::Headers,
        };
        let options = ExchangeDeclareOptions {
            durable: x.durable,
            auto_delete: x.auto_delete,
            internal: x.internal,
            ..ExchangeDeclareOptions::default()
        };
        let ch = self.control().await?;
        timed(ch.exchange_declare(short(&x.name)?, kind, options, field_table(&x.arguments)?)).await
    }

    pub(super) async fn declare_queue(&mut self, q: &QueueDecl) -> Result<(), StepError> {
        let options = QueueDeclareOptions {
            durable: q.durable,
            exclusive: q.exclusive,
            auto_delete: q.auto_delete,
            ..QueueDeclareOptions::default()
        };
        let link = self.link(q.client.as_deref())?;
        let ch = Self::channel(&link.connection, &mut link.control).await?;
        timed(ch.queue_declare(short(&q.name)?, options, field_table(&q.arguments)?))
            .await
            .map(|_| ())
    }

    pub(super) async fn bind(&mut self, b: &BindingDecl, bind: bool) -> Result<(), StepError> {
        let ch = self.control().await?;
        let source = short(&b.exchange)?;
        let key = short(&b.routing_key)?;
        let arguments = field_table(&b.arguments)?;
        match (b.destination(), bind) {
            (Destination::Queue(q), true) => {
                timed(ch.queue_bind(
                    short(q)?,
                    source,
                    key,
                    QueueBindOptions::default(),
                    arguments,
                ))
                .await
            }
            (Destination::Queue(q), false) => {
                timed(ch.queue_unbind(short(q)?, source, key, arguments)).await
            }
            (Destination::Exchange(x), true) => {
                timed(ch.exchange_bind(
                    short(x)?,
                    source,
                    key,
                    ExchangeBindOptions::default(),
                    arguments,
                ))
                .await
            }
            (Destination::Exchange(x), false) => {
                timed(ch.exchange_unbind(
                    short(x)?,
                    source,
                    key,
                    ExchangeUnbindOptions::default(),
                    arguments,
                ))
                .await
            }
        }
    }

    /// Runs one action. One that expects a refusal succeeds only when the broker refuses it
    /// with that reply code; the refusal is then one of the step's checks.
    pub(super) async fn act(&mut self, action: &Action, tap: &mut Tap) -> Result<(), StepError> {
        if let (Some(program), false) = (action.client(), matches!(action, Action::Close(_))) {
            self.reopen_client(program, tap).await?;
        }
        let outcome = self.perform(action, tap).await;
        let Some(code) = action.refused() else {
            return outcome;
        };
        match outcome {
            Err(answer) if answer.refusal_code() == Some(code) => {
                self.refusals
                    .push(refusal_check(action, code, &answer.to_string()));
                if CONNECTION_ERRORS.contains(&code) {
                    // The broker closed the program's connection; its next action opens another.
                    if let Some(program) = action.client() {
                        self.drop_client(program);
                    }
                }
                Ok(())
            }
            Err(answer) => Err(StepError::NotRefused {
                code,
                answer: Box::new(answer),
            }),
            Ok(()) => Err(StepError::Accepted { code }),
        }
    }

    async fn perform(&mut self, action: &Action, tap: &mut Tap) -> Result<(), StepError> {
        match action {
            Action::DeclareExchange(x) => self.declare_exchange(x).await,
            Action::DeleteExchange(x) => {
                let ch = self.control().await?;
                timed(ch.exchange_delete(short(&x.name)?, ExchangeDeleteOptions::default())).await
            }
            Action::DeclareQueue(q) => self.declare_queue(q).await,
            Action::DeleteQueue(q) => {
                let ch = self.control().await?;
                timed(ch.queue_delete(short(&q.name)?, QueueDeleteOptions::default()))
                    .await
                    .map(|_| ())
            }
            Action::Purge(p) => {
                let ch = self.control().await?;
                timed(ch.queue_purge(short(&p.queue)?, QueuePurgeOptions::default()))
                    .await
                    .map(|_| ())
            }
            Action::Bind(b) => self.bind(b, true).await,
            Action::Unbind(b) => self.bind(b, false).await,
            Action::Publish(p) => {
                let mut properties = basic_properties(&p.properties)?;
                if !p.headers.is_empty() {
                    properties = properties.with_headers(field_table(&p.headers)?);
                }
                for _ in 0..p.count {
                    self.publish(
                        p.client.as_deref(),
                        &p.exchange,
                        &p.routing_key,
                        p.body.as_bytes(),
                        properties.clone(),
                        p.mandatory,
                    )
                    .await?;
                }
                Ok(())
            }
            Action::Rpc(rpc) => {
                let msg_id = rpc.call.then(oslo::random_hex);
                let body = oslo::envelope(&oslo::request(rpc, msg_id.as_deref()));
                let mut properties = oslo_properties();
                if rpc.call {
                    let ms = u64::from(oslo::call_timeout(rpc)) * 1000;
                    properties = properties.with_expiration(ms.to_string().into());
                }
                let by = rpc.client.as_deref();
                self.publish(
                    by,
                    &rpc.exchange,
                    &rpc.routing_key,
                    &body,
                    properties,
                    false,
                )
                .await
            }
            Action::Reply(reply) => {
                self.settle(tap, None).await?;
                let consumer = self.consumers.get(&reply.consumer);
                let call = consumer
                    .and_then(|c| lock(&c.inbox).last_call.clone())
                    .ok_or_else(|| StepError::NoCall(reply.consumer.clone()))?;
                // The server that got the call answers it, on its own connection.
                let by = consumer.and_then(|c| c.client.clone());
                let answer = oslo::reply(
                    &call,
                    reply.result.as_ref(),
                    reply.failure.as_deref(),
                    reply.ending,
                );
                let body = oslo::envelope(&answer);
                self.publish(
                    by.as_deref(),
                    "",
                    &call.reply_q,
                    &body,
                    oslo_properties(),
                    true,
                )
                .await
            }
            Action::Consume(c) => self.consume(c).await,
            Action::Cancel(c) => {
                let handle = self
                    .consumers
                    .get(&c.consumer)
                    .ok_or_else(|| StepError::NoConsumer(c.consumer.clone()))?;
                timed(
                    handle
                        .channel
                        .basic_cancel(short(&c.consumer)?, BasicCancelOptions::default()),
                )
                .await
            }
            Action::Ack(a) => {
                self.settle(tap, None).await?;
                for acker in self.take_unacked(&a.consumer, a.count)? {
                    timed(acker.ack(BasicAckOptions::default())).await?;
                }
                Ok(())
            }
            Action::Nack(n) => {
                self.settle(tap, None).await?;
                for acker in self.take_unacked(&n.consumer, n.count)? {
                    let options = BasicNackOptions {
                        multiple: false,
                        requeue: n.requeue,
                    };
                    timed(acker.nack(options)).await?;
                }
                Ok(())
            }
            Action::Reject(n) => {
                self.settle(tap, None).await?;
                for acker in self.take_unacked(&n.consumer, n.count)? {
                    let options = BasicRejectOptions { requeue: n.requeue };
                    timed(acker.reject(options)).await?;
                }
                Ok(())
            }
            Action::Get(g) => {
                self.settle(tap, None).await?;
                let link = self.link(g.client.as_deref())?;
                let ch = Self::channel(&link.connection, &mut link.getter).await?;
                let options = BasicGetOptions {
                    no_ack: g.ack == AckMode::Auto,
                };
                if let Some(message) = timed(ch.basic_get(short(&g.queue)?, options)).await? {
                    self.got.push(message.delivery.data);
                }
                Ok(())
            }
            Action::Wait(w) => {
                tokio::time::sleep(Duration::from_millis(w.ms)).await;
                Ok(())
            }
            Action::Restart(r) => self.restart(r, tap).await,
            Action::Close(c) => self.close_client(&c.client, tap).await,
            Action::Replay(r) => self.replay(r, tap).await,
        }
    }

    async fn consume(&mut self, c: &Consume) -> Result<(), StepError> {
        if let Some(old) = self.consumers.remove(&c.consumer) {
            // A name used again after its cancel: the old channel goes, requeueing what it held.
            old.reader.abort();
            let _ = timed(old.channel.close(200, "OK".into())).await;
        }
        let link = self.link(c.client.as_deref())?;
        let channel = timed(link.connection.create_channel()).await?;
        timed(channel.basic_qos(c.prefetch, BasicQosOptions::default())).await?;
        let manual = c.ack == AckMode::Manual;
        let mut consumer = timed(channel.basic_consume(
            short(&c.queue)?,
            short(&c.consumer)?,
            BasicConsumeOptions {
                no_ack: !manual,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        ))
        .await?;
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let reader = tokio::spawn({
            let inbox = inbox.clone();
            async move {
                while let Some(Ok(delivery)) = consumer.next().await {
                    let call = oslo::read_call(&delivery.data);
                    let mut inbox = lock(&inbox);
                    inbox.received += 1;
                    if call.is_some() {
                        inbox.last_call = call;
                    }
                    if manual {
                        inbox.unacked.push_back(delivery.acker);
                    }
                    inbox.bodies.push(delivery.data);
                }
            }
        });
        self.received_before.insert(c.consumer.clone(), 0);
        self.consumers.insert(
            c.consumer.clone(),
            ConsumerHandle {
                channel,
                manual,
                client: c.client.clone(),
                inbox,
                reader,
            },
        );
        Ok(())
    }

    /// The `count` oldest unacked deliveries of a consumer (all of them without a count).
    fn take_unacked(
        &mut self,
        consumer: &str,
        count: Option<u32>,
    ) -> Result<Vec<Acker>, StepError> {
        let handle = self
            .consumers
            .get(consumer)
            .ok_or_else(|| StepError::NoConsumer(consumer.to_string()))?;
        if !handle.manual {
            return Err(StepError::AutoAck(consumer.to_string()));
        }
        let mut inbox = lock(&handle.inbox);
        let held = inbox.unacked.len();
        let n = match count {
            None => held,
            Some(n) if n as usize <= held => n as usize,
            Some(n) => {
                return Err(StepError::FewUnacked {
                    consumer: consumer.to_string(),
                    held,
                    wanted: n,
                })
            }
        };
        Ok(inbox.unacked.drain(..n).collect())
    }
}
