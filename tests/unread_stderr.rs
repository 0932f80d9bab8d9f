//! A broker whose stderr is a pipe nobody reads keeps serving: its log lines wait in a bounded
//! buffer and are dropped once it is full, instead of stopping the broker at a full pipe.
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

/// Connections opened and closed while stderr is not read; each logs two lines of about
/// 150 bytes, several times what a 64 KiB pipe and the broker's log buffer hold together.
const CONNECTIONS: usize = 2000;

/// Logins refused meanwhile (logged, within the broker's rate limit).
const FAILED_LOGINS: usize = 200;

/// A client logs in, declares a queue, publishes to it and gets the message back.
async fn round_trip(url: &str) {
    let conn = common::client::connect(url).await;
    let ch = conn.create_channel().await.unwrap();
    let queue = common::unique("stderr.served");
    let declare = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    ch.queue_declare(queue.as_str().into(), declare, FieldTable::default())
        .await
        .unwrap();
    ch.basic_publish(
        "".into(),
        queue.as_str().into(),
        BasicPublishOptions::default(),
        b"still here",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let mut got = None;
    for _ in 0..100 {
        got = ch
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap();
        if got.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(got.expect("the message comes back").data, b"still here");
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_whose_stderr_is_not_read_keeps_serving() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rabbitscope"))
        .args(["broker", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rabbitscope broker");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    // Read up to the announcement only; from then on nobody reads the pipe.
    let mut line = String::new();
    let address = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no announcement");
        if line.contains("broker listening") {
            break line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("address="))
                .expect("address=")
                .to_string();
        }
    };
    let url = format!("amqp://guest:guest@{address}/%2f");
    let wrong = format!("amqp://guest:wrong@{address}/%2f");

    let driven = async {
        for round in 0..CONNECTIONS / 10 {
            let opens = (0..10).map(|_| async {
                let conn = common::client::connect(&url).await;
                conn.close(200, "OK".into()).await.unwrap();
            });
            futures_util::future::join_all(opens).await;
            if round < FAILED_LOGINS {
                let refused = Connection::connect(&wrong, ConnectionProperties::default()).await;
                assert!(refused.is_err(), "a wrong password is refused");
            }
        }
        round_trip(&url).await;
    };
    tokio::time::timeout(Duration::from_secs(120), driven)
        .await
        .expect("the broker kept answering while its stderr was not read");
    // Another client still gets a whole round trip once the log is far behind.
    tokio::time::timeout(Duration::from_secs(10), round_trip(&url))
        .await
        .expect("another client is served within 10 s");

    // Reading again: the lines that did not fit were counted and the count is logged.
    let said = std::thread::spawn(move || {
        stderr
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("log lines dropped"))
    });
    std::thread::sleep(Duration::from_secs(4));
    let _ = child.kill();
    let _ = child.wait();
    let said = said
        .join()
        .unwrap()
        .expect("the dropped lines are reported");
    let dropped: usize = said
        .split_whitespace()
        .find_map(|w| w.strip_prefix("dropped="))
        .and_then(|n| n.parse().ok())
        .expect("dropped=N");
    assert!(dropped > 0, "{said}");
    eprintln!("log lines dropped while stderr was not read: {dropped}");
}
