//! The management API's answers we read, as RabbitMQ 3.8 to 4.x really send them. Their
//! shapes differ between releases and even between objects of one broker: a vhost made by
//! `rabbitmqctl add_vhost` on 3.10 has `"tags": ""` where one made through the API has a list,
//! 3.9 to 3.11 may say `"undefined"` for a missing description, a queue's counters are absent
//! until its first statistics. `rabbitmq_http_client`'s types refuse some of these, so the
//! answers are decoded here, each field as leniently as its meaning allows.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// One vhost of `/api/vhosts` or `/api/vhosts/NAME`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Vhost {
    pub name: String,
    #[serde(default, deserialize_with = "text")]
    pub description: Option<String>,
    /// A list (most releases), `""` or `"a,b"` (a vhost made by rabbitmqctl on 3.9 to 3.11),
    /// null or absent (before 3.8).
    #[serde(default, deserialize_with = "tags")]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "text")]
    pub default_queue_type: Option<String>,
    #[serde(default, deserialize_with = "flag")]
    pub tracing: bool,
}

/// One queue of `/api/queues/VHOST`. The counters are absent until the queue first reports
/// its statistics (and for a queue whose process is down); they count as 0 then.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Queue {
    pub name: String,
    /// `classic`, `quorum`, `stream`; absent before 3.8 (only classic queues then).
    #[serde(rename = "type", default, deserialize_with = "text")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "flag")]
    pub durable: bool,
    #[serde(default, deserialize_with = "flag")]
    pub auto_delete: bool,
    #[serde(default, deserialize_with = "flag")]
    pub exclusive: bool,
    #[serde(default, deserialize_with = "table")]
    pub arguments: Map<String, Value>,
    #[serde(default, deserialize_with = "count")]
    pub messages: u64,
    #[serde(default, deserialize_with = "count")]
    pub messages_unacknowledged: u64,
    #[serde(default, deserialize_with = "count")]
    pub consumers: u64,
}

/// One binding of `/api/bindings/VHOST`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Binding {
    pub source: String,
    pub destination: String,
    /// `queue` or `exchange`.
    pub destination_type: String,
    #[serde(default)]
    pub routing_key: String,
    #[serde(default, deserialize_with = "table")]
    pub arguments: Map<String, Value>,
}

impl Binding {
    pub fn to_exchange(&self) -> bool {
        self.destination_type == "exchange"
    }
}

/// Text, with null, absent and Erlang's `undefined` as none.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) if s == "undefined" => None,
        Value::String(s) => Some(s),
        _ => None,
    })
}

fn tags<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let words = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty() && *t != "undefined")
            .map(str::to_string)
            .collect()
    };
    Ok(match Value::deserialize(d)? {
        Value::String(s) => words(&s),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .flat_map(words)
            .collect(),
        _ => Vec::new(),
    })
}

fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::String(s) => s == "true",
        _ => false,
    })
}

/// A count; anything but a non-negative number (null, `""`) is 0.
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Value::deserialize(d)?.as_u64().unwrap_or(0))
}

/// Arguments: an object, or `[]` (how older releases render an empty table), or null.
fn table<'de, D: Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Object(map) => map,
        _ => Map::new(),
    })
}
