//! One record of the log: a [`StoreOp`] as bytes and back. The framing (`[length][crc32]`
//! before the payload) is written here and checked by the log's replay. It may import only
//! the journal's types and amq-protocol's codecs.

use std::sync::Arc;

use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::basic::{gen_properties, parse_properties};
use amq_protocol::protocol::BasicProperties;
use amq_protocol::types::generation::gen_field_table;
use amq_protocol::types::parsing::parse_field_table;
use amq_protocol::types::FieldTable;
use bytes::Bytes;

use super::HEADER;
use crate::broker::exchange::Destination;
use crate::broker::journal::{BindingImage, StoreOp};
use crate::broker::message::Message;

const EXCHANGE_DECLARED: u8 = 1;
const EXCHANGE_DELETED: u8 = 2;
const QUEUE_DECLARED: u8 = 3;
const QUEUE_DELETED: u8 = 4;
const BINDING_ADDED: u8 = 5;
const BINDING_REMOVED: u8 = 6;
const ENQUEUED: u8 = 7;
const DELIVERED: u8 = 8;
const REMOVED: u8 = 9;
/// Added after the others: a log written before has none, and still reads.
const RETURNED: u8 = 10;

/// Appends one framed record.
pub(super) fn encode_record(out: &mut Vec<u8>, op: &StoreOp) {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER]);
    encode(out, op);
    let payload = &out[start + HEADER..];
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32fast::hash(payload).to_le_bytes();
    out[start..start + 4].copy_from_slice(&len);
    out[start + 4..start + 8].copy_from_slice(&crc);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_table(out: &mut Vec<u8>, table: &FieldTable) {
    let bytes = gen_field_table(table)(WriteContext::from(Vec::new()))
        .expect("writing to a Vec cannot fail")
        .write;
    put_bytes(out, &bytes);
}

/// The start every exchange, queue and message record shares: its tag, the vhost, and the
/// exchange's or queue's name.
fn put_head(out: &mut Vec<u8>, tag: u8, vhost: &str, name: &str) {
    out.push(tag);
    put_bytes(out, vhost.as_bytes());
    put_bytes(out, name.as_bytes());
}

fn put_binding(out: &mut Vec<u8>, vhost: &str, b: &BindingImage) {
    put_bytes(out, vhost.as_bytes());
    put_bytes(out, b.source.as_bytes());
    let (kind, name) = match &b.destination {
        Destination::Queue(q) => (0u8, q),
        Destination::Exchange(x) => (1u8, x),
    };
    out.push(kind);
    put_bytes(out, name.as_bytes());
    put_bytes(out, b.routing_key.as_bytes());
    put_table(out, &b.arguments);
}

fn encode(out: &mut Vec<u8>, op: &StoreOp) {
    match op {
        StoreOp::ExchangeDeclared {
            vhost,
            name,
            kind,
            auto_delete,
            internal,
            arguments,
        } => {
            put_head(out, EXCHANGE_DECLARED, vhost, name);
            put_bytes(out, kind.as_bytes());
            out.push(*auto_delete as u8);
            out.push(*internal as u8);
            put_table(out, arguments);
        }
        StoreOp::ExchangeDeleted { vhost, name } => {
            put_head(out, EXCHANGE_DELETED, vhost, name);
        }
        StoreOp::QueueDeclared {
            vhost,
            name,
            auto_delete,
            arguments,
        } => {
            put_head(out, QUEUE_DECLARED, vhost, name);
            out.push(*auto_delete as u8);
            put_table(out, arguments);
        }
        StoreOp::QueueDeleted { vhost, name } => {
            put_head(out, QUEUE_DELETED, vhost, name);
        }
        StoreOp::BindingAdded { vhost, binding } => {
            out.push(BINDING_ADDED);
            put_binding(out, vhost, binding);
        }
        StoreOp::BindingRemoved { vhost, binding } => {
            out.push(BINDING_REMOVED);
            put_binding(out, vhost, binding);
        }
        StoreOp::Enqueued {
            vhost,
            queue,
            seq,
            message,
            ..
        } => {
            put_head(out, ENQUEUED, vhost, queue);
            out.extend_from_slice(&seq.to_le_bytes());
            put_bytes(out, message.exchange.as_bytes());
            put_bytes(out, message.routing_key.as_bytes());
            let properties = gen_properties(&message.properties)(WriteContext::from(Vec::new()))
                .expect("writing to a Vec cannot fail")
                .write;
            put_bytes(out, &properties);
            put_bytes(out, &message.body);
        }
        StoreOp::Returned {
            vhost,
            queue,
            seq,
            delivery_count,
        } => {
            put_head(out, RETURNED, vhost, queue);
            out.extend_from_slice(&seq.to_le_bytes());
            out.extend_from_slice(&delivery_count.to_le_bytes());
        }
        StoreOp::Delivered { vhost, queue, seq } | StoreOp::Removed { vhost, queue, seq } => {
            let tag = if matches!(op, StoreOp::Delivered { .. }) {
                DELIVERED
            } else {
                REMOVED
            };
            put_head(out, tag, vhost, queue);
            out.extend_from_slice(&seq.to_le_bytes());
        }
    }
}

/// Reads fields off a record payload.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn text(&mut self) -> Option<Arc<str>> {
        std::str::from_utf8(self.bytes()?).ok().map(Arc::from)
    }

    fn table(&mut self) -> Option<FieldTable> {
        let bytes = self.bytes()?;
        parse_field_table(bytes).ok().map(|(_, t)| t)
    }

    fn binding(&mut self) -> Option<(Arc<str>, BindingImage)> {
        let vhost = self.text()?;
        let source = self.text()?;
        let kind = self.byte()?;
        let name = self.text()?;
        let destination = match kind {
            0 => Destination::Queue(name),
            1 => Destination::Exchange(name),
            _ => return None,
        };
        let binding = BindingImage {
            source,
            destination,
            routing_key: self.text()?,
            arguments: self.table()?,
        };
        Some((vhost, binding))
    }
}

pub(super) fn decode(payload: &[u8]) -> Option<StoreOp> {
    let mut f = Fields(payload);
    let op = match f.byte()? {
        EXCHANGE_DECLARED => StoreOp::ExchangeDeclared {
            vhost: f.text()?,
            name: f.text()?,
            kind: f.text()?,
            auto_delete: f.byte()? != 0,
            internal: f.byte()? != 0,
            arguments: f.table()?,
        },
        EXCHANGE_DELETED => StoreOp::ExchangeDeleted {
            vhost: f.text()?,
            name: f.text()?,
        },
        QUEUE_DECLARED => StoreOp::QueueDeclared {
            vhost: f.text()?,
            name: f.text()?,
            auto_delete: f.byte()? != 0,
            arguments: f.table()?,
        },
        QUEUE_DELETED => StoreOp::QueueDeleted {
            vhost: f.text()?,
            name: f.text()?,
        },
        BINDING_ADDED => {
            let (vhost, binding) = f.binding()?;
            StoreOp::BindingAdded { vhost, binding }
        }
        BINDING_REMOVED => {
            let (vhost, binding) = f.binding()?;
            StoreOp::BindingRemoved { vhost, binding }
        }
        ENQUEUED => {
            let vhost = f.text()?;
            let queue = f.text()?;
            let seq = f.u64()?;
            let exchange = f.text()?;
            let routing_key = f.text()?;
            let properties: BasicProperties = parse_properties(f.bytes()?).ok()?.1;
            let body = Bytes::copy_from_slice(f.bytes()?);
            StoreOp::Enqueued {
                vhost,
                queue,
                seq,
                message: Arc::new(Message {
                    id: 0,
                    exchange,
                    routing_key,
                    properties: Arc::new(properties),
                    body,
                }),
                flush: true,
            }
        }
        tag @ (DELIVERED | REMOVED) => {
            let (vhost, queue, seq) = (f.text()?, f.text()?, f.u64()?);
            if tag == DELIVERED {
                StoreOp::Delivered { vhost, queue, seq }
            } else {
                StoreOp::Removed { vhost, queue, seq }
            }
        }
        RETURNED => StoreOp::Returned {
            vhost: f.text()?,
            queue: f.text()?,
            seq: f.u64()?,
            delivery_count: f.u32()?,
        },
        _ => return None,
    };
    f.0.is_empty().then_some(op)
}
