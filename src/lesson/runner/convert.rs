//! The lesson's YAML as AMQP: `arguments` and `headers` as field tables, `properties` as
//! basic properties, names as short strings (at most 255 bytes), and the properties an
//! oslo.messaging client sends. Pure functions; nothing here talks to a broker.

use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::BasicProperties;

use super::super::oslo;
use super::super::schema::{Arguments, Properties};
use super::error::StepError;

/// A name, key or property as AMQP carries it: at most 255 bytes.
pub fn short(text: &str) -> Result<ShortString, StepError> {
    ShortString::try_new(text).map_err(|_| StepError::TooLong {
        start: text.chars().take(24).collect(),
        bytes: text.len(),
    })
}

/// The properties oslo.messaging gives every message it sends.
pub fn oslo_properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type(oslo::CONTENT_TYPE.into())
        .with_content_encoding(oslo::CONTENT_ENCODING.into())
        .with_delivery_mode(2)
        .with_priority(0)
}

/// A publish's `properties`; the names AMQP carries as short strings must fit in one.
pub fn basic_properties(p: &Properties) -> Result<BasicProperties, StepError> {
    let mut props = BasicProperties::default();
    if let Some(v) = p.delivery_mode {
        props = props.with_delivery_mode(v);
    }
    if let Some(v) = p.priority {
        props = props.with_priority(v);
    }
    type Setter = fn(BasicProperties, ShortString) -> BasicProperties;
    let texts: [(&Option<String>, Setter); 8] = [
        (&p.content_type, BasicProperties::with_content_type),
        (&p.content_encoding, BasicProperties::with_content_encoding),
        (&p.correlation_id, BasicProperties::with_correlation_id),
        (&p.reply_to, BasicProperties::with_reply_to),
        (&p.expiration, BasicProperties::with_expiration),
        (&p.message_id, BasicProperties::with_message_id),
        (&p.kind, BasicProperties::with_type),
        (&p.app_id, BasicProperties::with_app_id),
    ];
    for (text, set) in texts {
        if let Some(v) = text {
            props = set(props, short(v)?);
        }
    }
    Ok(props)
}

/// Arguments as a field table: integers stay integers, text is a long string.
pub fn field_table(arguments: &Arguments) -> Result<FieldTable, StepError> {
    let mut table = FieldTable::default();
    for (key, value) in arguments {
        table.insert(short(key)?, amqp_value(value)?);
    }
    Ok(table)
}

/// One YAML value as AMQP: see [`field_table`].
pub fn amqp_value(value: &serde_yaml::Value) -> Result<AMQPValue, StepError> {
    use serde_yaml::Value;
    Ok(match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                // As most clients send them: 32 bits when they fit.
                match i32::try_from(i) {
                    Ok(small) => AMQPValue::LongInt(small),
                    Err(_) => AMQPValue::LongLongInt(i),
                }
            } else if let Some(u) = n.as_u64() {
                AMQPValue::LongLongInt(i64::try_from(u).unwrap_or(i64::MAX))
            } else {
                AMQPValue::Double(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => AMQPValue::LongString(s.as_str().into()),
        Value::Sequence(items) => AMQPValue::FieldArray(
            items
                .iter()
                .map(amqp_value)
                .collect::<Result<Vec<_>, _>>()?
                .into(),
        ),
        Value::Mapping(map) => {
            let mut table = FieldTable::default();
            for (k, v) in map {
                table.insert(short(&yaml_key(k))?, amqp_value(v)?);
            }
            AMQPValue::FieldTable(table)
        }
        Value::Tagged(tagged) => amqp_value(&tagged.value)?,
    })
}

/// A mapping key as text: YAML allows numbers and more as keys.
pub fn yaml_key(key: &serde_yaml::Value) -> String {
    match key {
        serde_yaml::Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim_end()
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_take_32_bits_when_they_fit() {
        let value = |yaml: &str| amqp_value(&serde_yaml::from_str(yaml).unwrap()).unwrap();
        assert_eq!(value("5000"), AMQPValue::LongInt(5000));
        assert_eq!(value("4294967296"), AMQPValue::LongLongInt(1 << 32));
        assert_eq!(
            value("fanout"),
            AMQPValue::LongString("fanout".as_bytes().into())
        );
        assert_eq!(value("true"), AMQPValue::Boolean(true));
    }

    #[test]
    fn names_longer_than_amqp_allows_are_refused_with_their_start() {
        let long = "q".repeat(300);
        assert_eq!(
            short(&long).unwrap_err().to_string(),
            format!(
                "`{}...` is 300 bytes long; AMQP allows at most 255",
                "q".repeat(24)
            )
        );
        assert!(short("orders").is_ok());
    }

    #[test]
    fn properties_carry_what_the_lesson_gives() {
        let p: Properties = serde_yaml::from_str(
            "content_type: text/plain\ndelivery_mode: 2\ntype: order\napp_id: shop\n",
        )
        .unwrap();
        let props = basic_properties(&p).unwrap();
        assert_eq!(
            props.content_type().as_ref().unwrap().as_str(),
            "text/plain"
        );
        assert_eq!(*props.delivery_mode(), Some(2));
        assert_eq!(props.kind().as_ref().unwrap().as_str(), "order");
        assert_eq!(props.app_id().as_ref().unwrap().as_str(), "shop");
        assert_eq!(*props.reply_to(), None);
    }

    #[test]
    fn mapping_keys_become_text() {
        assert_eq!(yaml_key(&serde_yaml::Value::from(7)), "7");
        assert_eq!(yaml_key(&serde_yaml::Value::from("k")), "k");
    }
}
