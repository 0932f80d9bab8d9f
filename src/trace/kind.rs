//! How an [`EventKind`] is written in a trace: the same variants and fields, except that a
//! message's body preview is text when it is UTF-8 (and a list of byte values when not), as
//! YAML has no bytes. Spelling the variants out here also keeps the file format from changing
//! by accident when the in-memory events do.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::events::{BindingInfo, DeadLetterReason, EventKind, Name, PublishFate};

#[derive(Serialize, Deserialize)]
#[serde(remote = "EventKind")]
pub enum EventKindDef {
    ConnectionOpened {
        peer: String,
        user: Name,
    },
    ConnectionClosed {
        reason: String,
    },
    ChannelOpened,
    ChannelClosed {
        reason: String,
    },
    ExchangeDeclared {
        name: Name,
        kind: Name,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: Vec<(String, String)>,
    },
    ExchangeDeleted {
        name: Name,
    },
    QueueDeclared {
        name: Name,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        arguments: Vec<(String, String)>,
    },
    QueueDeleted {
        name: Name,
    },
    QueuePurged {
        name: Name,
        messages: u32,
    },
    BindingCreated(Arc<BindingInfo>),
    BindingDeleted(Arc<BindingInfo>),
    ConsumerCreated {
        queue: Name,
        consumer_tag: Name,
        no_ack: bool,
    },
    ConsumerCancelled {
        queue: Name,
        consumer_tag: Name,
    },
    Published {
        message_id: u64,
        exchange: Name,
        routing_key: Name,
        body_size: usize,
        #[serde(with = "preview")]
        body_preview: Bytes,
        headers: Vec<(String, String)>,
        properties: Vec<(String, String)>,
        matched: Vec<Arc<BindingInfo>>,
        queues: Vec<Name>,
        alternate_exchange: Option<Name>,
        fate: PublishFate,
    },
    Delivered {
        message_id: u64,
        queue: Name,
        consumer_tag: Option<Name>,
        delivery_tag: u64,
        redelivered: bool,
    },
    Acked {
        message_id: u64,
        queue: Name,
        delivery_tag: u64,
    },
    Nacked {
        message_id: u64,
        queue: Name,
        delivery_tag: u64,
        requeue: bool,
    },
    Rejected {
        message_id: u64,
        queue: Name,
        delivery_tag: u64,
        requeue: bool,
    },
    Requeued {
        message_id: u64,
        queue: Name,
    },
    Expired {
        message_id: u64,
        queue: Name,
    },
    DeadLettered {
        message_id: u64,
        queue: Name,
        reason: DeadLetterReason,
        exchange: Name,
        routing_key: Name,
    },
    Dropped {
        message_id: u64,
        queue: Name,
    },
}

/// A body preview: text, or byte values when it is not UTF-8.
mod preview {
    use super::*;

    pub fn serialize<S: Serializer>(body: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(body) {
            Ok(text) => serializer.serialize_str(text),
            Err(_) => serializer.collect_seq(body.iter()),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("text or a list of byte values")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Bytes, E> {
                Ok(Bytes::copy_from_slice(text.as_bytes()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Bytes, A::Error> {
                let mut bytes = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    bytes.push(b);
                }
                Ok(Bytes::from(bytes))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}
