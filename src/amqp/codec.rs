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

/// One frame cut from the input, not yet decoded.
#[derive(Debug)]
pub struct RawFrame {
    pub kind: u8,
    pub channel: u16,
    /// The whole frame, header and end octet included (amq-protocol parses whole frames).
    pub frame: bytes::Bytes,
}

impl RawFrame {
    pub fn payload(&self) -> &[u8] {
        &self.frame[FRAME_HEADER_SIZE..self.frame.len() - 1]
    }
}

/// One decoded frame.
#[derive(Debug)]
pub enum Incoming {
    Method(u16, AMQPClass),
    /// Content header: channel, class id, body size, properties.
    Header(u16, u16, u64, BasicProperties),
    Body(u16, bytes::Bytes),
    Heartbeat,
}

/// A frame whose payload does not make sense, as RabbitMQ tells it apart.
#[derive(Debug)]
pub enum Undecodable {
    /// A method frame naming a class or method that does not exist: RabbitMQ drops the
    /// connection without a word.
    UnknownMethod,
    /// Known method, bad arguments: 501 naming the method.
    Arguments {
        class: u16,
        method: u16,
        error: AmqpError,
    },
    /// Unknown frame type or a payload too short to hold anything: 501.
    Frame(AmqpError),
}

/// A payload as Erlang prints a binary, the way RabbitMQ quotes frames in its errors.
pub fn octets(bytes: &[u8]) -> String {
    if !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| (32..127).contains(b) && *b != b'"' && *b != b'\\')
    {
        format!("<<\"{}\">>", String::from_utf8_lossy(bytes))
    } else {
        let list: Vec<String> = bytes.iter().map(|b| b.to_string()).collect();
        format!("<<{}>>", list.join(","))
    }
}

/// Cuts one frame from the front of `buf`. `Ok(None)` means more bytes are needed. Errors are
/// fatal framing errors (501), checked as RabbitMQ does: the size against `frame_max` from the
/// frame header alone, then the end octet.
pub fn read_frame(
    buf: &mut bytes::BytesMut,
    frame_max: usize,
) -> Result<Option<RawFrame>, AmqpError> {
    if buf.len() < FRAME_HEADER_SIZE {
        return Ok(None);
    }
    let kind = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    if size > frame_max {
        return Err(AmqpError::frame_error(format!(
            "type {kind}, all octets = <<>>: {{frame_too_large,{size},{}}}",
            frame_max.saturating_sub(FRAME_OVERHEAD)
        )));
    }
    let total = size + FRAME_OVERHEAD;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    if buf[total - 1] != FRAME_END {
        return Err(AmqpError::frame_error(format!(
            "type {kind}, all octets = {}: {{invalid_frame_end_marker,{}}}",
            octets(&buf[FRAME_HEADER_SIZE..total - 1]),
            buf[total - 1]
        )));
    }
    Ok(Some(RawFrame {
        kind,
        channel,
        frame: buf.split_to(total).freeze(),
    }))
}

/// Decodes a raw frame with amq-protocol.
pub fn decode(raw: &RawFrame) -> Result<Incoming, Undecodable> {
    let unknown_frame = || {
        Undecodable::Frame(AmqpError::frame_error(format!(
            "type {}, all octets = {}: unknown_frame",
            raw.kind,
            octets(raw.payload())
        )))
    };
    match raw.kind {
        FRAME_BODY => Ok(Incoming::Body(
            raw.channel,
            raw.frame.slice(FRAME_HEADER_SIZE..raw.frame.len() - 1),
        )),
        FRAME_HEARTBEAT if raw.payload().is_empty() => Ok(Incoming::Heartbeat),
        FRAME_HEARTBEAT => Err(unknown_frame()),
        FRAME_METHOD if raw.payload().len() < 4 => Err(unknown_frame()),
        FRAME_METHOD | FRAME_HEADER => match parse_frame(&raw.frame[..]) {
            Ok((_, AMQPFrame::Method(channel, class))) => Ok(Incoming::Method(channel, class)),
            Ok((_, AMQPFrame::Header(channel, header))) => Ok(Incoming::Header(
                channel,
                header.class_id,
                header.body_size,
                header.properties,
            )),
            Ok(_) => Err(unknown_frame()),
            Err(_) if raw.kind == FRAME_HEADER => Err(unknown_frame()),
            Err(_) => {
                let p = raw.payload();
                let class = u16::from_be_bytes([p[0], p[1]]);
                let method = u16::from_be_bytes([p[2], p[3]]);
                if !known_method(class, method) {
                    return Err(Undecodable::UnknownMethod);
                }
                Err(Undecodable::Arguments {
                    class,
                    method,
                    error: AmqpError::frame_error(format!("cannot decode {}", octets(&p[4..]))),
                })
            }
        },
        _ => Err(unknown_frame()),
    }
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
        while let Some(raw) = read_frame(&mut buf, 4096).unwrap() {
            match decode(&raw).unwrap() {
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

#[cfg(test)]
mod octets_tests {
    use super::octets;

    #[test]
    fn printable_payloads_are_quoted_like_erlang() {
        assert_eq!(octets(b"abc"), "<<\"abc\">>");
        assert_eq!(octets(&[0, 20, 0, 10, 0]), "<<0,20,0,10,0>>");
        assert_eq!(octets(b""), "<<>>");
    }
}
