//! Writes the fuzzers' seed corpus: short, valid client conversations (what lapin and pika
//! send for the common methods), so the fuzzers start past the parsers' front doors.
//!
//! `cargo run --example fuzz_seeds [DIR]` (default `fuzz/corpus`) writes
//! `DIR/connection/<name>` (frames after the handshake, which the target sends itself) and
//! `DIR/frames/<name>` (one byte choosing frame_max, then frames, handshake included).

use std::path::PathBuf;

use amq_protocol::frame::{gen_frame, AMQPContentHeader, AMQPFrame, WriteContext};
use amq_protocol::protocol::{
    basic, channel, confirm, connection, exchange, queue, tx, AMQPClass, BasicProperties,
};
use amq_protocol::types::{AMQPValue, FieldTable, ShortString};

struct Frames(Vec<u8>);

impl Frames {
    fn new() -> Frames {
        Frames(Vec::new())
    }

    fn frame(mut self, frame: AMQPFrame) -> Frames {
        let written = gen_frame(&frame)(WriteContext::from(Vec::new())).expect("writing to a Vec");
        self.0.extend_from_slice(&written.write);
        self
    }

    fn method(self, channel: u16, method: AMQPClass) -> Frames {
        self.frame(AMQPFrame::Method(channel, method))
    }

    fn open(self, channel: u16) -> Frames {
        self.method(
            channel,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        )
    }

    fn declare(self, channel: u16, name: &str, arguments: FieldTable) -> Frames {
        self.method(
            channel,
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: name.into(),
                passive: false,
                durable: false,
                exclusive: false,
                auto_delete: false,
                nowait: false,
                arguments,
            })),
        )
    }

    fn exchange(self, channel: u16, name: &str, kind: &str) -> Frames {
        self.method(
            channel,
            AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
                exchange: name.into(),
                kind: kind.into(),
                passive: false,
                durable: false,
                auto_delete: false,
                internal: false,
                nowait: false,
                arguments: FieldTable::default(),
            })),
        )
    }

    fn bind(
        self,
        channel: u16,
        queue: &str,
        exchange: &str,
        key: &str,
        args: FieldTable,
    ) -> Frames {
        self.method(
            channel,
            AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
                queue: queue.into(),
                exchange: exchange.into(),
                routing_key: key.into(),
                nowait: false,
                arguments: args,
            })),
        )
    }

    fn publish(self, channel: u16, exchange: &str, key: &str, body: &[u8]) -> Frames {
        self.publish_with(
            channel,
            exchange,
            key,
            body,
            BasicProperties::default(),
            4096,
        )
    }

    fn publish_with(
        self,
        channel: u16,
        exchange: &str,
        key: &str,
        body: &[u8],
        properties: BasicProperties,
        chunk: usize,
    ) -> Frames {
        let mut f = self
            .method(
                channel,
                AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                    exchange: exchange.into(),
                    routing_key: key.into(),
                    mandatory: true,
                    immediate: false,
                })),
            )
            .frame(AMQPFrame::Header(
                channel,
                AMQPContentHeader {
                    class_id: 60,
                    body_size: body.len() as u64,
                    properties,
                },
            ));
        for part in body.chunks(chunk) {
            f = f.frame(AMQPFrame::Body(channel, part.to_vec()));
        }
        f
    }

    fn basic(self, channel: u16, method: basic::AMQPMethod) -> Frames {
        self.method(channel, AMQPClass::Basic(method))
    }
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert(ShortString::from(*k), v.clone());
    }
    t
}

fn handshake() -> Frames {
    Frames::new()
        .method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: table(&[(
                    "capabilities",
                    AMQPValue::FieldTable(table(&[
                        ("publisher_confirms", AMQPValue::Boolean(true)),
                        ("authentication_failure_close", AMQPValue::Boolean(true)),
                    ])),
                )]),
                mechanism: "PLAIN".into(),
                response: "\0guest\0guest".into(),
                locale: "en_US".into(),
            })),
        )
        .method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: 2047,
                frame_max: 131_072,
                heartbeat: 60,
            })),
        )
        .method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: "/".into(),
            })),
        )
}

fn seeds() -> Vec<(&'static str, Frames)> {
    let consume = |queue: &str, tag: &str| {
        basic::AMQPMethod::Consume(basic::Consume {
            queue: queue.into(),
            consumer_tag: tag.into(),
            no_local: false,
            no_ack: false,
            exclusive: false,
            nowait: false,
            arguments: FieldTable::default(),
        })
    };
    let get = |queue: &str, no_ack| {
        basic::AMQPMethod::Get(basic::Get {
            queue: queue.into(),
            no_ack,
        })
    };
    let ttl_queue = table(&[
        ("x-message-ttl", AMQPValue::LongInt(0)),
        ("x-max-length", AMQPValue::LongInt(1)),
        ("x-overflow", AMQPValue::LongString("reject-publish".into())),
        (
            "x-dead-letter-exchange",
            AMQPValue::LongString("dlx".into()),
        ),
        ("x-expires", AMQPValue::LongInt(1)),
        ("x-max-priority", AMQPValue::ShortShortUInt(5)),
    ]);
    let properties = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_delivery_mode(2)
        .with_priority(3)
        .with_expiration("0".into())
        .with_correlation_id("c1".into())
        .with_reply_to("amq.rabbitmq.reply-to".into())
        .with_headers(table(&[
            (
                "CC",
                AMQPValue::FieldArray(vec![AMQPValue::LongString("q".into())].into()),
            ),
            ("x-delay", AMQPValue::LongLongInt(-1)),
        ]));
    vec![
        ("channel-open", Frames::new().open(1)),
        (
            "topic-route",
            Frames::new()
                .open(1)
                .exchange(1, "routes", "topic")
                .declare(1, "q1", FieldTable::default())
                .bind(1, "q1", "routes", "a.*.#", FieldTable::default())
                .publish(1, "routes", "a.b.c", b"hello"),
        ),
        (
            "headers-route",
            Frames::new()
                .open(1)
                .exchange(1, "h", "headers")
                .declare(1, "q", FieldTable::default())
                .bind(
                    1,
                    "q",
                    "h",
                    "",
                    table(&[
                        ("x-match", AMQPValue::LongString("any".into())),
                        ("k", AMQPValue::LongString("v".into())),
                    ]),
                )
                .publish_with(1, "h", "", b"x", properties.clone(), 4096),
        ),
        (
            "fanout-and-direct",
            Frames::new()
                .open(1)
                .exchange(1, "f", "fanout")
                .exchange(1, "d", "direct")
                .method(
                    1,
                    AMQPClass::Exchange(exchange::AMQPMethod::Bind(exchange::Bind {
                        destination: "d".into(),
                        source: "f".into(),
                        routing_key: "".into(),
                        nowait: false,
                        arguments: FieldTable::default(),
                    })),
                )
                .declare(1, "", FieldTable::default())
                .publish(1, "f", "k", b"")
                .method(
                    1,
                    AMQPClass::Exchange(exchange::AMQPMethod::Unbind(exchange::Unbind {
                        destination: "d".into(),
                        source: "f".into(),
                        routing_key: "".into(),
                        nowait: false,
                        arguments: FieldTable::default(),
                    })),
                )
                .method(
                    1,
                    AMQPClass::Exchange(exchange::AMQPMethod::Delete(exchange::Delete {
                        exchange: "f".into(),
                        if_unused: true,
                        nowait: false,
                    })),
                ),
        ),
        (
            "confirms",
            Frames::new()
                .open(1)
                .method(
                    1,
                    AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                        nowait: false,
                    })),
                )
                .declare(1, "c", FieldTable::default())
                .publish(1, "", "c", b"one")
                .publish(1, "", "nowhere", b"two")
                .publish(1, "amq.direct", "c", b"three"),
        ),
        (
            "transaction",
            Frames::new()
                .open(1)
                .method(1, AMQPClass::Tx(tx::AMQPMethod::Select(tx::Select {})))
                .declare(1, "t", FieldTable::default())
                .publish(1, "", "t", b"in tx")
                .basic(1, get("t", false))
                .basic(
                    1,
                    basic::AMQPMethod::Ack(basic::Ack {
                        delivery_tag: 1,
                        multiple: false,
                    }),
                )
                .method(1, AMQPClass::Tx(tx::AMQPMethod::Commit(tx::Commit {})))
                .method(1, AMQPClass::Tx(tx::AMQPMethod::Rollback(tx::Rollback {}))),
        ),
        (
            "consume-ack-cancel",
            Frames::new()
                .open(1)
                .declare(1, "w", FieldTable::default())
                .basic(
                    1,
                    basic::AMQPMethod::Qos(basic::Qos {
                        prefetch_count: 1,
                        global: false,
                    }),
                )
                .basic(1, consume("w", "ctag"))
                .publish(1, "", "w", b"a")
                .publish(1, "", "w", b"b")
                .basic(
                    1,
                    basic::AMQPMethod::Ack(basic::Ack {
                        delivery_tag: 1,
                        multiple: true,
                    }),
                )
                .basic(
                    1,
                    basic::AMQPMethod::Cancel(basic::Cancel {
                        consumer_tag: "ctag".into(),
                        nowait: false,
                    }),
                ),
        ),
        (
            "get-nack-reject-recover",
            Frames::new()
                .open(1)
                .declare(1, "g", FieldTable::default())
                .publish(1, "", "g", b"1")
                .publish(1, "", "g", b"2")
                .basic(1, get("g", false))
                .basic(
                    1,
                    basic::AMQPMethod::Nack(basic::Nack {
                        delivery_tag: 1,
                        multiple: false,
                        requeue: true,
                    }),
                )
                .basic(1, get("g", false))
                .basic(
                    1,
                    basic::AMQPMethod::Reject(basic::Reject {
                        delivery_tag: 2,
                        requeue: false,
                    }),
                )
                .basic(
                    1,
                    basic::AMQPMethod::Recover(basic::Recover { requeue: true }),
                ),
        ),
        (
            "queue-arguments",
            Frames::new()
                .open(1)
                .exchange(1, "dlx", "fanout")
                .declare(1, "limited", ttl_queue)
                .publish_with(1, "", "limited", b"expires", properties, 4096)
                .method(
                    1,
                    AMQPClass::Queue(queue::AMQPMethod::Purge(queue::Purge {
                        queue: "limited".into(),
                        nowait: false,
                    })),
                )
                .method(
                    1,
                    AMQPClass::Queue(queue::AMQPMethod::Unbind(queue::Unbind {
                        queue: "limited".into(),
                        exchange: "dlx".into(),
                        routing_key: "".into(),
                        arguments: FieldTable::default(),
                    })),
                )
                .method(
                    1,
                    AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
                        queue: "limited".into(),
                        if_unused: false,
                        if_empty: false,
                        nowait: false,
                    })),
                ),
        ),
        (
            "exclusive-and-passive",
            Frames::new()
                .open(1)
                .open(2)
                .method(
                    1,
                    AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                        queue: "mine".into(),
                        passive: false,
                        durable: true,
                        exclusive: true,
                        auto_delete: true,
                        nowait: false,
                        arguments: FieldTable::default(),
                    })),
                )
                .method(
                    2,
                    AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                        queue: "absent".into(),
                        passive: true,
                        durable: false,
                        exclusive: false,
                        auto_delete: false,
                        nowait: false,
                        arguments: FieldTable::default(),
                    })),
                ),
        ),
        (
            "large-body",
            Frames::new()
                .open(1)
                .declare(1, "big", FieldTable::default())
                .publish_with(1, "", "big", &[7u8; 300], BasicProperties::default(), 100),
        ),
        (
            "body-larger-than-announced",
            Frames::new()
                .open(1)
                .method(
                    1,
                    AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                        exchange: "".into(),
                        routing_key: "q".into(),
                        mandatory: false,
                        immediate: false,
                    })),
                )
                .frame(AMQPFrame::Header(
                    1,
                    AMQPContentHeader {
                        class_id: 60,
                        body_size: 2,
                        properties: BasicProperties::default(),
                    },
                ))
                .frame(AMQPFrame::Body(1, b"abc".to_vec())),
        ),
        (
            "flow-and-channel-close",
            Frames::new()
                .open(1)
                .method(
                    1,
                    AMQPClass::Channel(channel::AMQPMethod::Flow(channel::Flow { active: false })),
                )
                .method(
                    1,
                    AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                        reply_code: 200,
                        reply_text: "bye".into(),
                        class_id: 0,
                        method_id: 0,
                    })),
                )
                .method(
                    1,
                    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                ),
        ),
        (
            "heartbeats-and-close",
            Frames::new()
                .frame(AMQPFrame::Heartbeat)
                .open(5)
                .frame(AMQPFrame::Heartbeat)
                .method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                        reply_code: 200,
                        reply_text: "bye".into(),
                        class_id: 0,
                        method_id: 0,
                    })),
                ),
        ),
        (
            "reply-to",
            Frames::new()
                .open(1)
                .basic(
                    1,
                    basic::AMQPMethod::Consume(basic::Consume {
                        queue: "amq.rabbitmq.reply-to".into(),
                        consumer_tag: "".into(),
                        no_local: false,
                        no_ack: true,
                        exclusive: false,
                        nowait: false,
                        arguments: FieldTable::default(),
                    }),
                )
                .publish_with(
                    1,
                    "",
                    "rpc",
                    b"?",
                    BasicProperties::default().with_reply_to("amq.rabbitmq.reply-to".into()),
                    4096,
                ),
        ),
        (
            "errors",
            Frames::new()
                .open(1)
                .publish(1, "missing-exchange", "k", b"x")
                .open(1)
                .basic(1, get("missing-queue", true))
                .open(2)
                .open(2),
        ),
    ]
}

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    let connection = dir.join("connection");
    let frames = dir.join("frames");
    std::fs::create_dir_all(&connection)?;
    std::fs::create_dir_all(&frames)?;
    let handshake = handshake().0;
    std::fs::write(frames.join("handshake"), [&[1u8][..], &handshake].concat())?;
    let mut written = 1;
    for (name, seed) in seeds() {
        std::fs::write(connection.join(name), &seed.0)?;
        // Frame_max choices: 0 is 4096, 1 is the broker's, 2 is 1 MiB (see fuzz_targets).
        let pick = (written % 3) as u8;
        std::fs::write(frames.join(name), [&[pick][..], &seed.0].concat())?;
        written += 1;
    }
    // Malformed on purpose: a bad end octet, an unknown frame type, an unknown method.
    let bad: [(&str, &[u8]); 3] = [
        (
            "bad-frame-end",
            b"\x01\x00\x01\x00\x00\x00\x05\x00\x14\x00\x0a\x00\x00",
        ),
        ("unknown-frame-type", b"\x09\x00\x00\x00\x00\x00\x00\xce"),
        (
            "unknown-method",
            b"\x01\x00\x01\x00\x00\x00\x04\x00\x63\x00\x01\xce",
        ),
    ];
    for (name, bytes) in bad {
        std::fs::write(connection.join(name), bytes)?;
        std::fs::write(frames.join(name), [&[1u8][..], bytes].concat())?;
    }
    println!("{} seeds in {}", written + bad.len(), dir.display());
    Ok(())
}
