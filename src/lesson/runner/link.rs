//! One AMQP connection of a run ([`Link`]): the lesson's own or a program's, with a publisher
//! channel in confirm mode whose name in the broker's reports the run learns by a probe.
//! Also [`timed`], the run's one timeout around every lapin call.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};

use super::super::oslo;
use super::super::tap::Tap;
use super::convert::short;
use super::error::{RunError, StepError};
use super::{OPERATION_TIMEOUT, PROBE_PREFIX, ROUTE_TIMEOUT};

/// One AMQP connection of a run: the lesson's own, or that of a program it plays (`client`).
pub(super) struct Link {
    pub(super) connection: Connection,
    /// Every publish, in confirm mode.
    publisher: Channel,
    /// The publisher channel as the tap names it: (connection, channel).
    pub(super) identity: (String, u16),
    /// basic.get; a message got with manual ack stays unacked here.
    pub(super) getter: Option<Channel>,
    /// Declares, binds, deletes, purges.
    pub(super) control: Option<Channel>,
}

impl Link {
    /// Connects as `name` (the client property `connection_name`) and learns how the tap names
    /// its publisher channel.
    pub(super) async fn open(url: &str, name: &str, tap: &mut Tap) -> Result<Link, RunError> {
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let connection = timed(crate::tls::connect(url, properties))
            .await
            .map_err(|error| RunError::Connect {
                url: url.to_string(),
                name: Some(name.to_string()),
                error,
            })?;
        let publisher = Self::open_publisher(&connection).await?;
        let mut link = Link {
            connection,
            publisher,
            identity: (String::new(), 0),
            getter: None,
            control: None,
        };
        link.identify(tap).await?;
        Ok(link)
    }

    /// A channel in confirm mode, so each publish is known routed (or returned) once confirmed.
    async fn open_publisher(connection: &Connection) -> Result<Channel, RunError> {
        let publisher =
            timed(connection.create_channel())
                .await
                .map_err(|error| RunError::Channel {
                    method: "channel.open",
                    error,
                })?;
        timed(publisher.confirm_select(ConfirmSelectOptions::default()))
            .await
            .map_err(|error| RunError::Channel {
                method: "confirm.select",
                error,
            })?;
        Ok(publisher)
    }

    pub(super) async fn reopen_publisher_if_closed(
        &mut self,
        tap: &mut Tap,
    ) -> Result<(), RunError> {
        if self.publisher.status().connected() {
            return Ok(());
        }
        self.publisher = Self::open_publisher(&self.connection).await?;
        self.identify(tap).await
    }

    /// basic.publish on the confirm channel; waits for the confirm (and any basic.return).
    /// Returns (returned, nacked).
    pub(super) async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
        mandatory: bool,
    ) -> Result<(bool, bool), StepError> {
        let options = BasicPublishOptions {
            mandatory,
            ..BasicPublishOptions::default()
        };
        let confirm = timed(self.publisher.basic_publish(
            short(exchange)?,
            short(routing_key)?,
            options,
            body,
            properties,
        ))
        .await?;
        Ok(match timed(confirm).await? {
            Confirmation::Ack(returned) => (returned.is_some(), false),
            Confirmation::Nack(returned) => (returned.is_some(), true),
            Confirmation::NotRequested => (false, false),
        })
    }

    /// Publishes a probe nobody receives and notes how the tap names its channel. Reads past
    /// what the tap reported before: call it before a step's publishes, not among them.
    async fn identify(&mut self, tap: &mut Tap) -> Result<(), RunError> {
        tap.skip_pending().await;
        let key = format!("{PROBE_PREFIX}{}", oslo::random_hex());
        self.publish("", &key, b"", BasicProperties::default(), false)
            .await
            .map_err(RunError::Probe)?;
        let deadline = tokio::time::Instant::now() + ROUTE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let record = tap.next(left).await.map_err(|e| RunError::Observe {
                step: None,
                error: e.into(),
            })?;
            let Some(record) = record else {
                return Err(RunError::Observe {
                    step: None,
                    error: StepError::ProbeUnseen,
                });
            };
            if record.routing_key == key {
                self.identity = (record.connection, record.channel);
                return Ok(());
            }
        }
    }

    pub(super) async fn close(self) {
        let _ =
            tokio::time::timeout(OPERATION_TIMEOUT, self.connection.close(200, "OK".into())).await;
    }
}

/// A lapin operation with the run's timeout: a refusal keeps the broker's reply code.
pub(super) async fn timed<T>(
    operation: impl std::future::Future<Output = lapin::Result<T>>,
) -> Result<T, StepError> {
    match tokio::time::timeout(OPERATION_TIMEOUT, operation).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(StepError::from_lapin(&e)),
        Err(_) => Err(StepError::NoAnswer),
    }
}
