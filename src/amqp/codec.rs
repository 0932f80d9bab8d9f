//! Frames on the wire: cutting the input into frames (with the frame_max check amq-protocol
//! leaves to servers) and writing frames out (with bodies split by frame_max).

use amq_protocol::frame::{gen_frame, parse_frame, AMQPFrame, WriteContext};
use amq_protocol::protocol::{basic::gen_properties, AMQPClass, BasicProperties};

use crate::broker::AmqpError;

pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
pub const FRAME_END: u8 = 0xCE;
/// Frame type, channel and size, before the payload.
pub const FRAME_HEADER_SIZE: usize = 7;
/// Header plus end octet: what a frame adds around its payload.
pub const FRAME_OVERHEAD: usize = 8;

/// One frame read off the wire.
#[derive(Debug)]
pub enum Incoming {
    Method(u16, AMQPClass),
    /// Content header: channel, class id, body size, properties.
    Header(u16, u16, u64, BasicProperties),
    Body(u16, bytes::Bytes),
    Heartbeat(u16),
}

/// Cuts one frame from the front of `buf`. `Ok(None)` means more bytes are needed.
/// `frame_max` is the negotiated limit for a whole frame.
pub fn read_frame(
    buf: &mut bytes::BytesMut,
    frame_max: usize,
) -> Result<Option<Incoming>, AmqpError> {
    if buf.len() < FRAME_HEADER_SIZE {
        return Ok(None);
    }
    let kind = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    if !matches!(
        kind,
        FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT
    ) {
        return Err(AmqpError::frame_error(format!(
            "type {kind}, first 16 octets = {:?}: {{invalid_frame_type,{kind}}}",
            &buf[..buf.len().min(16)]
        )));
    }
    if size + FRAME_OVERHEAD > frame_max {
        return Err(AmqpError::frame_error(format!(
            "frame size {} exceeds negotiated frame_max {frame_max}",
            size + FRAME_OVERHEAD
        )));
    }
    let total = size + FRAME_OVERHEAD;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    if buf[total - 1] != FRAME_END {
        return Err(AmqpError::frame_error(format!(
            "type {kind}, all octets = <<>>: {{frame_end_marker_missing,{}}}",
            buf[total - 1]
        )));
    }
    let frame = buf.split_to(total).freeze();
    match kind {
        FRAME_BODY => Ok(Some(Incoming::Body(
            channel,
            frame.slice(FRAME_HEADER_SIZE..total - 1),
        ))),
        FRAME_HEARTBEAT => Ok(Some(Incoming::Heartbeat(channel))),
        _ => match parse_frame(&frame[..]) {
            Ok((_, AMQPFrame::Method(channel, class))) => {
                Ok(Some(Incoming::Method(channel, class)))
            }
            Ok((_, AMQPFrame::Header(channel, header))) => Ok(Some(Incoming::Header(
                channel,
                header.class_id,
                header.body_size,
                header.properties,
            ))),
            Ok(_) => Err(AmqpError::frame_error("unexpected frame")),
            Err(_) => Err(undecodable(kind, &frame[FRAME_HEADER_SIZE..total - 1])),
        },
    }
}

/// The error for a method or header frame amq-protocol could not decode.
fn undecodable(kind: u8, payload: &[u8]) -> AmqpError {
    if kind == FRAME_METHOD && payload.len() >= 4 {
        let class = u16::from_be_bytes([payload[0], payload[1]]);
        let method = u16::from_be_bytes([payload[2], payload[3]]);
        if !known_method(class, method) {
            return AmqpError::command_invalid(format!(
                "unknown_method_id class {class} method {method}"
            ));
        }
        return AmqpError::syntax_error(format!(
            "cannot decode arguments of method {class}/{method}"
        ));
    }
    AmqpError::frame_error(format!("cannot decode a frame of type {kind}"))
}

/// Whether (class, method) names a method of AMQP 0-9-1 as RabbitMQ knows it.
fn known_method(class: u16, method: u16) -> bool {
    match class {
        10 => matches!(
            method,
            10 | 11 | 20 | 21 | 30 | 31 | 40 | 41 | 50 | 51 | 60 | 61 | 70 | 71
        ),
        20 => matches!(method, 10 | 11 | 20 | 21 | 40 | 41),
        30 => matches!(method, 10 | 11),
        40 => matches!(method, 10 | 11 | 20 | 21 | 30 | 31 | 40 | 51),
        50 => matches!(method, 10 | 11 | 20 | 21 | 30 | 31 | 40 | 41 | 50 | 51),
        60 => matches!(
            method,
            10 | 11
                | 20
                | 21
                | 30
                | 31
                | 40
                | 50
                | 60
                | 70
                | 71
                | 72
                | 80
                | 90
                | 100
                | 110
                | 111
                | 120
        ),
        85 => matches!(method, 10 | 11),
        90 => matches!(method, 10 | 11 | 20 | 21 | 30 | 31),
        _ => false,
    }
}

/// Appends a method frame.
pub fn write_method(out: &mut Vec<u8>, channel: u16, method: AMQPClass) {
    let frame = AMQPFrame::Method(channel, method);
    let buf = std::mem::take(out);
    let written = gen_frame(&frame)(WriteContext::from(buf)).expect("writing to a Vec cannot fail");
    *out = written.write;
}

/// Appends a content header frame and the body frames, each body frame at most `frame_max`.
pub fn write_content(
    out: &mut Vec<u8>,
    channel: u16,
    properties: &BasicProperties,
    body: &[u8],
    frame_max: usize,
) {
    let props = gen_properties(properties)(WriteContext::from(Vec::with_capacity(64)))
        .expect("writing to a Vec cannot fail")
        .write;
    let payload = 2 + 2 + 8 + props.len();
    out.push(FRAME_HEADER);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload as u32).to_be_bytes());
    out.extend_from_slice(&60u16.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    out.extend_from_slice(&props);
    out.push(FRAME_END);
    for chunk in body.chunks(frame_max - FRAME_OVERHEAD) {
        out.push(FRAME_BODY);
        out.extend_from_slice(&channel.to_be_bytes());
        out.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        out.extend_from_slice(chunk);
        out.push(FRAME_END);
    }
}

pub fn write_heartbeat(out: &mut Vec<u8>) {
    out.extend_from_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::basic;

    #[test]
    fn bodies_are_split_by_frame_max() {
        let mut out = Vec::new();
        let body = vec![7u8; 10_000];
        write_content(&mut out, 1, &BasicProperties::default(), &body, 4096);
        let mut buf = bytes::BytesMut::from(&out[..]);
        let mut sizes = Vec::new();
        while let Some(frame) = read_frame(&mut buf, 4096).unwrap() {
            match frame {
                Incoming::Header(_, class, size, _) => {
                    assert_eq!((class, size), (60, 10_000));
                }
                Incoming::Body(_, bytes) => sizes.push(bytes.len()),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(sizes, [4088, 4088, 1824]);
    }

    #[test]
    fn oversized_and_unterminated_frames_are_frame_errors() {
        let mut out = Vec::new();
        write_method(
            &mut out,
            1,
            AMQPClass::Basic(basic::AMQPMethod::Publish(Default::default())),
        );
        assert_eq!(
            read_frame(&mut bytes::BytesMut::from(&out[..]), 8)
                .unwrap_err()
                .code,
            501
        );
        *out.last_mut().unwrap() = 0;
        assert_eq!(
            read_frame(&mut bytes::BytesMut::from(&out[..]), 4096)
                .unwrap_err()
                .code,
            501
        );
    }

    #[test]
    fn partial_input_waits_for_more() {
        let mut out = Vec::new();
        write_heartbeat(&mut out);
        let mut buf = bytes::BytesMut::from(&out[..5]);
        assert!(read_frame(&mut buf, 4096).unwrap().is_none());
    }
}
