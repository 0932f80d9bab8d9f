//! Reading `x-` arguments out of field tables.

use amq_protocol::types::{AMQPValue, FieldTable};

pub fn get_string(table: &FieldTable, key: &str) -> Option<String> {
    match table.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// An argument that should be an integer is something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAnInteger;

/// An integer argument; `Err` when present with a non-integer type.
pub fn get_int(table: &FieldTable, key: &str) -> Result<Option<i64>, NotAnInteger> {
    let Some(value) = table.inner().get(key) else {
        return Ok(None);
    };
    Ok(Some(match value {
        AMQPValue::ShortShortInt(n) => *n as i64,
        AMQPValue::ShortShortUInt(n) => *n as i64,
        AMQPValue::ShortInt(n) => *n as i64,
        AMQPValue::ShortUInt(n) => *n as i64,
        AMQPValue::LongInt(n) => *n as i64,
        AMQPValue::LongUInt(n) => *n as i64,
        AMQPValue::LongLongInt(n) => *n,
        _ => return Err(NotAnInteger),
    }))
}

/// A table rendered as `key=value` pairs, for events and the inspector.
pub fn pairs(table: &FieldTable) -> Vec<(String, String)> {
    table
        .into_iter()
        .map(|(k, v)| (k.to_string(), super::exchange::value_text(v)))
        .collect()
}

/// RabbitMQ's name for a field value's type, as its error texts spell it.
pub fn type_name(v: &AMQPValue) -> &'static str {
    match v {
        AMQPValue::Boolean(_) => "bool",
        AMQPValue::ShortShortInt(_) => "byte",
        AMQPValue::ShortShortUInt(_) => "unsignedbyte",
        AMQPValue::ShortInt(_) => "short",
        AMQPValue::ShortUInt(_) => "unsignedshort",
        AMQPValue::LongInt(_) => "signedint",
        AMQPValue::LongUInt(_) => "unsignedint",
        AMQPValue::LongLongInt(_) => "long",
        AMQPValue::Float(_) => "float",
        AMQPValue::Double(_) => "double",
        AMQPValue::DecimalValue(_) => "decimal",
        AMQPValue::ShortString(_) => "shortstr",
        AMQPValue::LongString(_) => "longstr",
        AMQPValue::FieldArray(_) => "array",
        AMQPValue::Timestamp(_) => "timestamp",
        AMQPValue::FieldTable(_) => "table",
        AMQPValue::ByteArray(_) => "binary",
        AMQPValue::Void => "void",
    }
}
