//! Arguments (of a queue, an exchange, a binding) written as a map, `{"x-queue-type":
//! "quorum"}`, the way RabbitMQ's management API and definitions show them. Reading takes a
//! map or the list of `[key, value]` pairs that snapshots and traces held before.

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserializer, Serializer};

pub fn serialize<S: Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    d.deserialize_any(Pairs)
}

struct Pairs;

impl<'de> Visitor<'de> for Pairs {
    type Value = Vec<(String, String)>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a map of arguments or a list of [key, value] pairs")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs = Vec::new();
        while let Some(pair) = map.next_entry()? {
            pairs.push(pair);
        }
        Ok(pairs)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut pairs = Vec::new();
        while let Some(pair) = seq.next_element()? {
            pairs.push(pair);
        }
        Ok(pairs)
    }

    /// YAML writes an empty map as `{}` but an empty list in older files may read as unit.
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Holder {
        #[serde(with = "super")]
        arguments: Vec<(String, String)>,
    }

    fn holder() -> Holder {
        Holder {
            arguments: vec![
                ("x-queue-type".into(), "quorum".into()),
                ("x-max-length".into(), "10".into()),
            ],
        }
    }

    #[test]
    fn written_as_a_map_in_their_order() {
        let json = serde_json::to_string(&holder()).unwrap();
        assert_eq!(
            json,
            r#"{"arguments":{"x-queue-type":"quorum","x-max-length":"10"}}"#
        );
        assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), holder());
        let yaml = serde_yaml::to_string(&holder()).unwrap();
        assert_eq!(serde_yaml::from_str::<Holder>(&yaml).unwrap(), holder());
    }

    #[test]
    fn older_lists_of_pairs_still_read() {
        let old = r#"{"arguments":[["x-queue-type","quorum"],["x-max-length","10"]]}"#;
        assert_eq!(serde_json::from_str::<Holder>(old).unwrap(), holder());
        let empty: Holder = serde_yaml::from_str("arguments: []\n").unwrap();
        assert!(empty.arguments.is_empty());
    }
}
