//! The memory alarm: a client flooding the broker is blocked (connection.blocked, and its socket
//! no longer read) while the others go on, and it is let go once the queues drain.
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::BasicPublishOptions;
use lapin::BasicProperties;
use rabbitscope::broker::{Broker, BrokerConfig};

use common::client::{connect, consume, declare_queue};

const LIMIT: usize = 1 << 20;

fn depth(broker: &Broker, queue: &str) -> usize {
    let snapshot = broker.snapshot();
    let vhost = snapshot.vhost("/").expect("vhost /");
    vhost
        .queues
        .iter()
        .find(|q| q.name == queue)
        .map_or(0, |q| q.ready)
}

/// Polls until `done` holds, or fails saying `what` after 10 s.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within 10 s: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_publisher_is_blocked_while_a_consumer_drains_the_queue() {
    let (url, broker) = common::start_embedded_with(BrokerConfig {
        memory_limit: Some(LIMIT),
        ..BrokerConfig::default()
    })
    .await;

    let publisher = connect(&url).await;
    // No confirms: the flood must not wait for the broker's answers.
    let channel = publisher.create_channel().await.unwrap();
    declare_queue(&channel, "flood").await;
    // The flood: 64 KiB messages as fast as lapin sends them, in a task of its own, since a
    // blocked publisher's sends stop returning once the socket is full.
    let sent = Arc::new(AtomicU64::new(0));
    let flood = {
        let sent = sent.clone();
        tokio::spawn(async move {
            let body = vec![b'f'; 64 * 1024];
            loop {
                let published = channel
                    .basic_publish(
                        "".into(),
                        "flood".into(),
                        BasicPublishOptions::default(),
                        &body,
                        BasicProperties::default(),
                    )
                    .await;
                if published.is_err() {
                    return;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // Past the limit, the publisher hears connection.blocked and the queue stops growing.
    until("the publisher is told it is blocked", || {
        publisher.status().blocked()
    })
    .await;
    let held = depth(&broker, "flood");
    assert!(
        held * 64 * 1024 >= LIMIT,
        "blocked at {held} messages, under the limit"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        depth(&broker, "flood"),
        held,
        "a blocked connection is not read"
    );

    // A consumer on another connection is not starved: it drains the queue.
    let consumer_connection = connect(&url).await;
    let consumer_channel = consumer_connection.create_channel().await.unwrap();
    let mut consumer = consume(&consumer_channel, "flood", "drain", true).await;
    let received = tokio::time::timeout(Duration::from_secs(10), async {
        let mut n = 0;
        while n < held {
            consumer
                .next()
                .await
                .expect("a delivery")
                .expect("no error");
            n += 1;
        }
        n
    })
    .await
    .expect("the consumer drains the queue while the publisher is blocked");
    assert_eq!(received, held);

    // Below the limit again, the publisher is let go and its messages flow.
    let before = sent.load(Ordering::Relaxed);
    until("the publisher goes on after the queue drained", || {
        sent.load(Ordering::Relaxed) > before + 20
    })
    .await;
    flood.abort();
    let _ = consumer_connection.close(200, "OK".into()).await;
    let _ = publisher.close(200, "OK".into()).await;
}
