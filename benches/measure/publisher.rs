//! A lapin publisher in confirm mode, as the persistent benchmarks drive it.

use futures_util::stream::{FuturesUnordered, StreamExt};
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel, Confirmation};

use super::Error;

/// Publishes `messages` copies of `body` to `queue` through the default exchange on a channel
/// in confirm mode, keeping at most `window` unconfirmed; returns once every one is confirmed.
/// A nack is an error.
pub async fn publish_confirmed(
    channel: &Channel,
    queue: &str,
    messages: usize,
    window: usize,
    body: &[u8],
    properties: &BasicProperties,
) -> Result<(), Error> {
    let mut in_flight = FuturesUnordered::new();
    for _ in 0..messages {
        if in_flight.len() >= window.max(1) {
            acked(in_flight.next().await.expect("not empty"))?;
        }
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body,
                properties.clone(),
            )
            .await?;
        in_flight.push(confirm);
    }
    while let Some(confirmed) = in_flight.next().await {
        acked(confirmed)?;
    }
    Ok(())
}

fn acked(confirmed: lapin::Result<Confirmation>) -> Result<(), Error> {
    if confirmed?.is_ack() {
        Ok(())
    } else {
        Err("a publish was nacked".into())
    }
}
