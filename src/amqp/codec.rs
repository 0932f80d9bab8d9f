//! Frames on the wire: cutting the input into frames (with the frame_max check amq-protocol
//! leaves to servers) and writing frames out (with bodies split by frame_max).

use amq_protocol::frame::{gen_frame, parse_frame, AMQPFrame, WriteContext};
use amq_protocol::protocol::{basic, basic::gen_properties, AMQPClass, BasicProperties};

use super::nesting;
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
        FRAME_METHOD if !nesting::method_within_depth(raw.payload()) => {
            let p = raw.payload();
            Err(Undecodable::Arguments {
                class: u16::from_be_bytes([p[0], p[1]]),
                method: u16::from_be_bytes([p[2], p[3]]),
                error: too_deep(),
            })
        }
        FRAME_HEADER if !nesting::header_within_depth(raw.payload()) => {
            Err(Undecodable::Frame(too_deep()))
        }
        FRAME_METHOD | FRAME_HEADER => match decode_publishing(raw) {
            Some(incoming) => Ok(incoming),
            None => decode_generic(raw),
        },
        _ => Err(unknown_frame()),
    }
}

/// A field table nesting deeper than [`nesting::MAX_FIELD_DEPTH`]: undecodable here, as a
/// table RabbitMQ cannot parse is (501, "cannot decode"). The frame's octets are left out of
/// the text: the reply text is a short string.
fn too_deep() -> AmqpError {
    AmqpError::frame_error(format!(
        "cannot decode: field tables nested deeper than {} levels",
        nesting::MAX_FIELD_DEPTH
    ))
}

/// The two frames of every publish that carry fields, basic.publish and its content header,
/// decoded directly: amq-protocol's general parser costs a visible share of the broker's time
/// per message. Anything unusual (other methods, bad UTF-8, trailing octets) returns `None`
/// and goes to amq-protocol, which also words the errors.
pub(super) fn decode_publishing(raw: &RawFrame) -> Option<Incoming> {
    let p = raw.payload();
    match raw.kind {
        FRAME_METHOD if p.starts_with(&[0, 60, 0, 40]) => {
            // reserved short, exchange, routing key, mandatory and immediate bits
            let rest = p.get(6..)?;
            let (exchange, rest) = take_short(rest)?;
            let (routing_key, rest) = take_short(rest)?;
            let [bits] = rest else {
                return None;
            };
            Some(Incoming::Method(
                raw.channel,
                AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                    exchange: exchange.into(),
                    routing_key: routing_key.into(),
                    mandatory: bits & 1 != 0,
                    immediate: bits & 2 != 0,
                })),
            ))
        }
        FRAME_HEADER if p.len() >= 12 => {
            let class_id = u16::from_be_bytes([p[0], p[1]]);
            let body_size = u64::from_be_bytes(p[4..12].try_into().ok()?);
            match basic::parse_properties(&p[12..]) {
                Ok(([], properties)) => Some(Incoming::Header(
                    raw.channel,
                    class_id,
                    body_size,
                    properties,
                )),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A short string off the front of `input`, and what follows it.
fn take_short(input: &[u8]) -> Option<(&str, &[u8])> {
    let (&len, rest) = input.split_first()?;
    let text = rest.get(..len as usize)?;
    Some((std::str::from_utf8(text).ok()?, &rest[len as usize..]))
}

/// amq-protocol's decoding of a method or content header frame.
pub(super) fn decode_generic(raw: &RawFrame) -> Result<Incoming, Undecodable> {
    match parse_frame(&raw.frame[..]) {
        Ok((_, AMQPFrame::Method(channel, class))) => Ok(Incoming::Method(channel, class)),
        Ok((_, AMQPFrame::Header(channel, header))) => Ok(Incoming::Header(
            channel,
            header.class_id,
            header.body_size,
            header.properties,
        )),
        Err(_) if raw.kind == FRAME_METHOD => {
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
        Ok(_) | Err(_) => Err(Undecodable::Frame(AmqpError::frame_error(format!(
            "type {}, all octets = {}: unknown_frame",
            raw.kind,
            octets(raw.payload())
        )))),
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

/// Appends basic.deliver, the method frame every delivery starts with. Written by hand rather
/// than through amq-protocol's generic writer: it is the one frame the broker writes per
/// message, and the unit test below holds it byte for byte to amq-protocol's encoding.
/// Returns false, writing nothing, when a name does not fit a short string.
pub fn write_deliver(
    out: &mut Vec<u8>,
    channel: u16,
    consumer_tag: &str,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &str,
    routing_key: &str,
) -> bool {
    let short = [consumer_tag, exchange, routing_key];
    if short.iter().any(|s| s.len() > u8::MAX as usize) {
        return false;
    }
    // class, method, three short strings with their lengths, delivery tag, the bit octet
    let payload = 2 + 2 + short.iter().map(|s| 1 + s.len()).sum::<usize>() + 8 + 1;
    out.reserve(FRAME_OVERHEAD + payload);
    out.push(FRAME_METHOD);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload as u32).to_be_bytes());
    out.extend_from_slice(&60u16.to_be_bytes());
    out.extend_from_slice(&60u16.to_be_bytes());
    push_short(out, consumer_tag);
    out.extend_from_slice(&delivery_tag.to_be_bytes());
    out.push(redelivered as u8);
    push_short(out, exchange);
    push_short(out, routing_key);
    out.push(FRAME_END);
    true
}

fn push_short(out: &mut Vec<u8>, text: &str) {
    out.push(text.len() as u8);
    out.extend_from_slice(text.as_bytes());
}

/// Encodes content-header properties (flags and fields) on their own, to be reused by
/// [`write_encoded_content`] for every message that shares them.
pub fn encode_properties(properties: &BasicProperties, into: Vec<u8>) -> Vec<u8> {
    gen_properties(properties)(WriteContext::from(into))
        .expect("writing to a Vec cannot fail")
        .write
}

/// Appends a content header frame and the body frames, each body frame at most `frame_max`.
pub fn write_content(
    out: &mut Vec<u8>,
    channel: u16,
    properties: &BasicProperties,
    body: &[u8],
    frame_max: usize,
) {
    let props = encode_properties(properties, Vec::with_capacity(64));
    write_encoded_content(out, channel, &props, body, frame_max);
}

/// [`write_content`] with the properties already encoded.
pub fn write_encoded_content(
    out: &mut Vec<u8>,
    channel: u16,
    props: &[u8],
    body: &[u8],
    frame_max: usize,
) {
    let payload = 2 + 2 + 8 + props.len();
    out.reserve(FRAME_OVERHEAD + payload + FRAME_OVERHEAD + body.len());
    out.push(FRAME_HEADER);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload as u32).to_be_bytes());
    out.extend_from_slice(&60u16.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    out.extend_from_slice(props);
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
    fn a_hand_written_deliver_is_what_amq_protocol_writes() {
        let long = "k".repeat(255);
        for (tag, delivery_tag, redelivered, exchange, key) in [
            ("ctag", 1, false, "", "queue.name"),
            ("amq.ctag-x", u64::MAX, true, "logs", "a.b.c"),
            ("", 0, false, "", ""),
            ("t", 42, true, "x", long.as_str()),
        ] {
            let mut ours = Vec::new();
            assert!(write_deliver(
                &mut ours,
                7,
                tag,
                delivery_tag,
                redelivered,
                exchange,
                key
            ));
            let mut theirs = Vec::new();
            write_method(
                &mut theirs,
                7,
                AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                    consumer_tag: tag.into(),
                    delivery_tag,
                    redelivered,
                    exchange: exchange.into(),
                    routing_key: key.into(),
                })),
            );
            assert_eq!(ours, theirs, "deliver {tag} {delivery_tag} {redelivered}");
        }
        let mut out = Vec::new();
        assert!(!write_deliver(
            &mut out,
            1,
            "t",
            1,
            false,
            "",
            &"k".repeat(256)
        ));
        assert!(out.is_empty());
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
mod publishing_tests {
    use super::*;
    use amq_protocol::frame::AMQPContentHeader;
    use amq_protocol::types::{AMQPValue, FieldTable, ShortString};
    use proptest::prelude::*;

    fn raw_of(bytes: Vec<u8>) -> RawFrame {
        let mut buf = bytes::BytesMut::from(&bytes[..]);
        read_frame(&mut buf, usize::MAX).unwrap().unwrap()
    }

    fn frame_bytes(frame: &AMQPFrame) -> Vec<u8> {
        gen_frame(frame)(WriteContext::from(Vec::new()))
            .unwrap()
            .write
    }

    /// A frame with the given type, channel 1 and payload.
    fn frame_with(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![kind, 0, 1];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out.push(FRAME_END);
        out
    }

    /// The direct decoding, where it applies, says what amq-protocol says.
    fn same_as_generic(raw: &RawFrame) {
        if let Some(fast) = decode_publishing(raw) {
            let generic = decode_generic(raw);
            assert_eq!(
                format!("{:?}", Ok::<_, Undecodable>(fast)),
                format!("{generic:?}")
            );
        }
    }

    proptest! {
        #[test]
        fn publish_methods_decode_as_amq_protocol_does(
            exchange in "\\PC{0,40}",
            routing_key in "[a-z.#*]{0,255}",
            mandatory: bool,
            immediate: bool,
        ) {
            let exchange: String = exchange.chars().take(60).collect();
            prop_assume!(exchange.len() <= 255);
            let frame = AMQPFrame::Method(3, AMQPClass::Basic(basic::AMQPMethod::Publish(
                basic::Publish {
                    exchange: exchange.into(),
                    routing_key: routing_key.into(),
                    mandatory,
                    immediate,
                },
            )));
            let raw = raw_of(frame_bytes(&frame));
            prop_assert!(decode_publishing(&raw).is_some());
            same_as_generic(&raw);
        }

        #[test]
        fn content_headers_decode_as_amq_protocol_does(
            body_size: u64,
            delivery_mode in proptest::option::of(1u8..=2),
            priority in proptest::option::of(0u8..=9),
            correlation_id in proptest::option::of("[a-f0-9-]{0,36}"),
            reply_to in proptest::option::of("[a-z.]{0,40}"),
            header in proptest::option::of(("[a-z]{1,10}", any::<i64>())),
        ) {
            let mut properties = BasicProperties::default();
            if let Some(mode) = delivery_mode {
                properties = properties.with_delivery_mode(mode);
            }
            if let Some(p) = priority {
                properties = properties.with_priority(p);
            }
            if let Some(id) = correlation_id {
                properties = properties.with_correlation_id(id.into());
            }
            if let Some(to) = reply_to {
                properties = properties.with_reply_to(to.into());
            }
            if let Some((name, value)) = header {
                let mut table = FieldTable::default();
                table.insert(ShortString::from(name), AMQPValue::LongLongInt(value));
                properties = properties.with_headers(table);
            }
            let frame = AMQPFrame::Header(2, AMQPContentHeader {
                class_id: 60,
                body_size,
                properties,
            });
            let raw = raw_of(frame_bytes(&frame));
            prop_assert!(decode_publishing(&raw).is_some());
            same_as_generic(&raw);
        }

        #[test]
        fn any_publish_or_header_payload_decodes_as_amq_protocol_does(
            header: bool,
            tail in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let payload: Vec<u8> = if header {
                tail
            } else {
                [0, 60, 0, 40].into_iter().chain(tail).collect()
            };
            let kind = if header { FRAME_HEADER } else { FRAME_METHOD };
            let raw = raw_of(frame_with(kind, &payload));
            same_as_generic(&raw);
        }
    }

    #[test]
    fn bad_utf8_and_trailing_octets_are_left_to_amq_protocol() {
        // exchange "\xff", routing key "", no bits
        let bad_utf8 = raw_of(frame_with(
            FRAME_METHOD,
            &[0, 60, 0, 40, 0, 0, 1, 0xff, 0, 0],
        ));
        assert!(decode_publishing(&bad_utf8).is_none());
        let trailing = raw_of(frame_with(FRAME_METHOD, &[0, 60, 0, 40, 0, 0, 0, 0, 0, 9]));
        assert!(decode_publishing(&trailing).is_none());
        assert!(matches!(
            decode(&trailing),
            Err(Undecodable::Arguments {
                class: 60,
                method: 40,
                ..
            })
        ));
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
