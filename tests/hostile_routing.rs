//! Routing set-ups that once froze the broker, against the real binary: a dead-letter cycle
//! with TTL 0, dead-lettering that fans out or chains through many queues, and a topic
//! binding full of `#`. Each time another client must still connect and be served, and
//! SIGTERM must still end the broker.
mod common;

use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use lapin::{Channel, ExchangeKind};

use common::client::*;
use common::process::{spawn_broker, BrokerChild};

/// How long a client waits for the broker before the test calls it frozen: far more than
/// any of this takes when it works (milliseconds), far less than it took when it did not.
const FROZEN: Duration = Duration::from_secs(30);

/// A broker process that a failing test does not leave behind.
struct Broker(BrokerChild);

impl Broker {
    fn start() -> Broker {
        Broker(spawn_broker(
            Command::new(env!("CARGO_BIN_EXE_rabbitscope"))
                .args(["broker", "--transient", "--listen", "127.0.0.1:0"])
                .stdout(Stdio::null()),
        ))
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.0.field("address="))
    }

    /// SIGTERM, and the exit code.
    fn terminate(&mut self) -> Option<i32> {
        let pid = self.0.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.0.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(start.elapsed() < FROZEN, "SIGTERM did not end the broker");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.child.kill();
        let _ = self.0.child.wait();
    }
}

/// A new client connects, declares, publishes and gets back what it published.
async fn bystander_is_served(url: &str) -> String {
    let served = async {
        let conn = connect(url).await;
        let ch = channel(&conn).await;
        let q = common::unique("bystander");
        declare_queue(&ch, &q).await;
        let sent = send(&ch, &q, "still served").await;
        let got = get(&ch, &q).await.map(|m| body(&m.delivery));
        conn.close(200, "bye".into()).await.unwrap();
        format!("bystander: publish {sent}, got {got:?}")
    };
    tokio::time::timeout(FROZEN, served)
        .await
        .unwrap_or_else(|_| "bystander: the broker did not answer".to_string())
}

/// Every stderr line the broker wrote so far.
fn lines_so_far(lines: &Receiver<String>) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
        out.push(line);
    }
    out
}

async fn declare_dead_lettering(
    ch: &Channel,
    queue: &str,
    args: &[(&str, lapin::types::AMQPValue)],
) {
    declare_queue_with(ch, queue, table(args)).await;
}

/// Two queues with TTL 0 dead-letter into each other (before: one publish spun the broker at
/// full CPU for good, no new client got a handshake and SIGTERM was ignored); eight queues
/// dead-letter into one fanout exchange bound to all of them (one copy per path through them:
/// 13,700 dead-letterings for one publish); 300 queues with `x-max-length` 0 pass a message
/// down a chain. All of it ends, the broker logs the cycle once, another client is served
/// meanwhile and after, and SIGTERM ends the broker.
#[test]
fn dead_letter_cycles_fans_and_chains_end_and_the_broker_keeps_serving() {
    let mut broker = Broker::start();
    let url = broker.url();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let t = runtime.block_on(async {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;

        for (queue, next) in [("d1", "d2"), ("d2", "d1")] {
            declare_dead_lettering(
                &ch,
                queue,
                &[
                    ("x-message-ttl", int(0)),
                    ("x-dead-letter-exchange", text("")),
                    ("x-dead-letter-routing-key", text(next)),
                ],
            )
            .await;
        }
        t.push(format!("cycle: publish {}", send(&ch, "d1", "round").await));
        t.push(bystander_is_served(&url).await);
        t.push(format!("d1 {}", inspect_queue(&conn, "d1").await));
        t.push(format!("d2 {}", inspect_queue(&conn, "d2").await));

        declare_exchange(&ch, "mesh", ExchangeKind::Fanout).await;
        for i in 0..8 {
            let q = format!("mesh{i}");
            declare_dead_lettering(
                &ch,
                &q,
                &[
                    ("x-message-ttl", int(0)),
                    ("x-dead-letter-exchange", text("mesh")),
                ],
            )
            .await;
            bind(&ch, &q, "mesh", "").await;
        }
        t.push(format!(
            "mesh: publish {}",
            send(&ch, "mesh0", "spread").await
        ));
        t.push(bystander_is_served(&url).await);

        const CHAIN: usize = 300;
        for i in 0..CHAIN {
            declare_dead_lettering(
                &ch,
                &format!("link{i}"),
                &[
                    ("x-max-length", int(0)),
                    ("x-dead-letter-exchange", text("")),
                    ("x-dead-letter-routing-key", text(&format!("link{}", i + 1))),
                ],
            )
            .await;
        }
        declare_queue(&ch, &format!("link{CHAIN}")).await;
        t.push(format!(
            "chain: publish {}",
            send(&ch, "link0", "passed on").await
        ));
        t.push(bystander_is_served(&url).await);
        let end = get(&ch, &format!("link{CHAIN}")).await;
        t.push(format!(
            "chain end got {:?} having died in {} queues",
            end.as_ref().map(|m| body(&m.delivery)),
            end.as_ref()
                .and_then(|m| m.delivery.properties.headers().clone())
                .and_then(|h| match h.inner().get("x-death") {
                    Some(lapin::types::AMQPValue::FieldArray(a)) => Some(a.as_slice().len()),
                    _ => None,
                })
                .unwrap_or(0)
        ));
        conn.close(200, "bye".into()).await.unwrap();
        t
    });
    let served = "bystander: publish ack, got Some(\"still served\")";
    assert_eq!(
        t,
        [
            "cycle: publish ack",
            served,
            "d1 ok messages=0 consumers=0",
            "d2 ok messages=0 consumers=0",
            "mesh: publish ack",
            served,
            "chain: publish ack",
            served,
            "chain end got Some(\"passed on\") having died in 300 queues",
        ]
    );
    let logged = lines_so_far(&broker.0.lines);
    let cycles: Vec<&String> = logged
        .iter()
        .filter(|l| {
            l.contains("Dead-letter queues cycle detected") && l.contains("\"d1\", \"d2\", \"d1\"")
        })
        .collect();
    assert_eq!(
        cycles.len(),
        1,
        "the d1/d2 cycle is logged once: {logged:#?}"
    );
    // The mesh closes its cycles along thousands of paths, but through 8 x 8 queue pairs.
    let all_cycles = logged
        .iter()
        .filter(|l| l.contains("Dead-letter queues cycle detected"))
        .count();
    assert!(all_cycles <= 1 + 64, "{all_cycles} cycle lines");
    assert_eq!(broker.terminate(), Some(0));
}

/// One binding of eight `#` words and a 60-word routing key (before: 35 s for the publish,
/// and a second client waited as long for its handshake). The non-matching key is returned
/// as unroutable, the matching one delivered, and another client is served meanwhile.
#[test]
fn a_binding_full_of_hashes_does_not_hold_up_the_broker() {
    let mut broker = Broker::start();
    let url = broker.url();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let t = runtime.block_on(async {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        declare_exchange(&ch, "hashes", ExchangeKind::Topic).await;
        declare_queue(&ch, "hashed").await;
        bind(&ch, "hashed", "hashes", "#.#.#.#.#.#.#.#.x").await;
        let miss = vec!["w"; 60].join(".");
        let hit = format!("{}.x", vec!["w"; 59].join("."));
        let publishing = {
            let ch = ch.clone();
            tokio::spawn(async move {
                let mut out = Vec::new();
                for _ in 0..20 {
                    out.push(
                        publish_with(&ch, "hashes", &miss, "m", Default::default(), true).await,
                    );
                }
                out.push(publish_with(&ch, "hashes", &hit, "h", Default::default(), true).await);
                out
            })
        };
        t.push(bystander_is_served(&url).await);
        let outcomes = tokio::time::timeout(FROZEN, publishing)
            .await
            .expect("the publishes finish")
            .unwrap();
        t.push(format!("first miss: {}", outcomes[0]));
        t.push(format!(
            "all misses the same: {}",
            outcomes[..20].iter().all(|o| *o == outcomes[0])
        ));
        t.push(format!("hit: {}", outcomes[20]));
        t.push(format!("hashed {}", inspect_queue(&conn, "hashed").await));
        conn.close(200, "bye".into()).await.unwrap();
        t
    });
    assert_eq!(
        t,
        [
            "bystander: publish ack, got Some(\"still served\")",
            "first miss: returned 312 NO_ROUTE then ack",
            "all misses the same: true",
            "hit: ack",
            "hashed ok messages=1 consumers=0",
        ]
    );
    assert_eq!(broker.terminate(), Some(0));
}
