//! What the fuzz targets (`fuzz/fuzz_targets/`) and their regression test
//! (`tests/fuzz_regressions.rs`) share, so the test replays inputs exactly as the targets feed
//! them: the handshake the connection target sends before the fuzzer's bytes, and the frame
//! limits the frames target picks from with its input's first byte.
//!
//! Both include this file with `#[path]` (the fuzz crate is not part of the main build); it may
//! import only amq-protocol and rabbitscope.
#![allow(dead_code)]

use amq_protocol::frame::{gen_frame, AMQPFrame, WriteContext};
use amq_protocol::protocol::{connection, AMQPClass};

/// The frame limits the frames target decodes with: small, the broker's own, and large, so the
/// too-large checks see each.
pub const FRAME_LIMITS: [usize; 3] = [4096, rabbitscope::amqp::FRAME_MAX as usize, 1 << 20];

/// The frame limit an input's first byte picks.
pub fn frame_limit(pick: u8) -> usize {
    FRAME_LIMITS[usize::from(pick) % FRAME_LIMITS.len()]
}

/// Appends `frame`, encoded.
pub fn frame(out: &mut Vec<u8>, frame: AMQPFrame) {
    let written = gen_frame(&frame)(WriteContext::from(Vec::new())).expect("writing to a Vec");
    out.extend_from_slice(&written.write);
}

/// Appends a method frame on `channel`.
pub fn method(out: &mut Vec<u8>, channel: u16, method: AMQPClass) {
    frame(out, AMQPFrame::Method(channel, method));
}

/// What a client sends to open `vhost` as guest: protocol header, start-ok, tune-ok, open.
pub fn handshake(vhost: &str) -> Vec<u8> {
    let mut out = b"AMQP\x00\x00\x09\x01".to_vec();
    method(
        &mut out,
        0,
        AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
            client_properties: Default::default(),
            mechanism: "PLAIN".into(),
            response: "\0guest\0guest".into(),
            locale: "en_US".into(),
        })),
    );
    method(
        &mut out,
        0,
        AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 0,
        })),
    );
    method(
        &mut out,
        0,
        AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
            virtual_host: vhost.into(),
        })),
    );
    out
}
