//! A client connection over an in-memory pipe: a valid handshake into vhost `/`, then the
//! fuzzer's bytes, then end of input. The broker must not panic, the connection must end, and
//! afterwards a well-behaved client (in a vhost of its own, which the fuzzed one cannot touch)
//! must still declare, publish and get a message.
#![no_main]

use std::time::Duration;

use amq_protocol::frame::{parse_frame, AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{basic, channel, connection, queue, AMQPClass, BasicProperties};
use libfuzzer_sys::fuzz_target;
use rabbitscope::broker::{Broker, BrokerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "../setup.rs"]
mod setup;
use setup::{frame, handshake, method};

fuzz_target!(|data: &[u8]| {
    // Paused time: timeouts (close-ok waits, lingering) pass at once when all is idle.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        // Nobody reads events here; the default ring of 65536 would cost more than the run.
        let config = BrokerConfig {
            event_capacity: 16,
            ..BrokerConfig::default()
        };
        let broker = Broker::new(config.with_vhost("probe"));
        let mut input = handshake("/");
        input.extend_from_slice(data);
        let limit = Duration::from_secs(600);
        tokio::time::timeout(limit, exchange(&broker, input))
            .await
            .expect("the fuzzed connection never ended");
        let output = tokio::time::timeout(limit, exchange(&broker, probe()))
            .await
            .expect("the probe connection never ended");
        assert!(
            got_message(&output),
            "the broker no longer serves a plain client"
        );
    });
});

/// Writes `input` to a new connection, then ends it; returns everything the broker wrote
/// until it hung up.
async fn exchange(broker: &std::sync::Arc<Broker>, input: Vec<u8>) -> Vec<u8> {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let peer = "127.0.0.1:40000".parse().unwrap();
    let served = tokio::spawn(rabbitscope::amqp::serve_stream(
        server,
        peer,
        broker.clone(),
    ));
    let (mut read, mut write) = tokio::io::split(client);
    let writing = tokio::spawn(async move {
        // The broker may hang up before reading it all.
        let _ = write.write_all(&input).await;
        let _ = write.shutdown().await;
    });
    let mut output = Vec::new();
    let _ = read.read_to_end(&mut output).await;
    served.await.unwrap();
    writing.await.unwrap();
    output
}

/// A client that declares a queue, publishes to it, gets the message back and closes.
fn probe() -> Vec<u8> {
    let mut out = handshake("probe");
    method(
        &mut out,
        1,
        AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    );
    method(
        &mut out,
        1,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "probe".into(),
            passive: false,
            durable: false,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: Default::default(),
        })),
    );
    method(
        &mut out,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: "probe".into(),
            mandatory: false,
            immediate: false,
        })),
    );
    frame(
        &mut out,
        AMQPFrame::Header(
            1,
            AMQPContentHeader {
                class_id: 60,
                body_size: 5,
                properties: BasicProperties::default(),
            },
        ),
    );
    frame(&mut out, AMQPFrame::Body(1, b"probe".to_vec()));
    method(
        &mut out,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
            queue: "probe".into(),
            no_ack: true,
        })),
    );
    method(
        &mut out,
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        })),
    );
    out
}

/// Whether the broker's output holds basic.get-ok on channel 1.
fn got_message(output: &[u8]) -> bool {
    // After the protocol header the broker writes only frames.
    let mut rest = output;
    while !rest.is_empty() {
        match parse_frame(rest) {
            Ok((_, AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::GetOk(_))))) => {
                return true
            }
            Ok((left, _)) => rest = left,
            Err(_) => return false,
        }
    }
    false
}
