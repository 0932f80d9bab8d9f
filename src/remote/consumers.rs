//! Which consumer a traced delivery went to. RabbitMQ's `deliver.<queue>` trace names the
//! connection and the channel number but not the consumer tag, so the tags are learnt
//! elsewhere: from the event exchange (`channel.created` names a channel process,
//! `consumer.created` / `consumer.deleted` refer to it) and from the management API's consumer
//! listing, which knows channels opened before watching started but lags a few seconds (and
//! which every poll of a watch reads: [`only_consumer`] finds a delivery's consumer there).

use std::collections::HashMap;
use std::sync::Mutex;

use lapin::types::{AMQPValue, FieldTable};

use crate::broker::exchange::value_text;

/// (vhost, channel name, queue): a channel name is `<connection name> (<number>)`.
type Key = (String, String, String);

#[derive(Default)]
struct Known {
    /// Channel process id -> (vhost, channel name), from `channel.created`.
    channels: HashMap<String, (String, String)>,
    tags: HashMap<Key, Vec<String>>,
}

/// The consumers of every channel heard of, shared by the event exchange reader and the
/// firehose reader.
#[derive(Default)]
pub struct Consumers {
    known: Mutex<Known>,
    /// Rung whenever a consumer is learnt of.
    pub learnt: tokio::sync::Notify,
}

/// What a delivery's channel and queue say about its consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The one consumer of that queue on that channel.
    Tag(String),
    /// Several consumers of the queue share the channel: the trace cannot tell which.
    Ambiguous,
    /// No consumer known there: a basic.get, or a consumer not heard of yet.
    Unknown,
}

/// The channel name RabbitMQ gives a connection's channel.
pub fn channel_name(connection: &str, channel: u16) -> String {
    format!("{connection} ({channel})")
}

/// The tag of the one consumer of `queue` a snapshot lists on that connection (by the broker's
/// name for it) and channel; none when it lists none or several.
pub fn only_consumer(
    listed: &crate::broker::VhostSnapshot,
    connection: &str,
    channel: u16,
    queue: &str,
) -> Option<String> {
    let id = super::connection_id(connection);
    let mut there = listed
        .consumers
        .iter()
        .filter(|c| c.connection == id && c.channel == channel && c.queue == queue);
    match (there.next(), there.next()) {
        (Some(only), None) => Some(only.tag.clone()),
        _ => None,
    }
}

impl Consumers {
    pub fn lookup(&self, vhost: &str, channel: &str, queue: &str) -> Lookup {
        let known = self.known.lock().unwrap();
        let key = (vhost.to_string(), channel.to_string(), queue.to_string());
        match known.tags.get(&key).map(Vec::as_slice) {
            Some([tag]) => Lookup::Tag(tag.clone()),
            Some([_, _, ..]) => Lookup::Ambiguous,
            _ => Lookup::Unknown,
        }
    }

    /// One event exchange message (`channel.*`, `consumer.*`); other keys are ignored.
    pub fn heard(&self, routing_key: &str, headers: &FieldTable) {
        let headers = headers.inner();
        let text = |name: &str| match headers.get(name) {
            Some(AMQPValue::LongString(s)) => Some(s.to_string()),
            Some(v) => Some(value_text(v)),
            None => None,
        };
        let mut known = self.known.lock().unwrap();
        match routing_key {
            "channel.created" => {
                if let (Some(pid), Some(vhost), Some(name)) =
                    (text("pid"), text("vhost"), text("name"))
                {
                    known.channels.insert(pid, (vhost, name));
                }
            }
            "channel.closed" => {
                if let Some((vhost, name)) = text("pid").and_then(|p| known.channels.remove(&p)) {
                    known
                        .tags
                        .retain(|(v, c, _), _| !(*v == vhost && *c == name));
                }
            }
            "consumer.created" | "consumer.deleted" => {
                let (Some(pid), Some(queue), Some(tag)) =
                    (text("channel"), text("queue"), text("consumer_tag"))
                else {
                    return;
                };
                // A channel opened before listening started is not known by its process id;
                // the management listing covers those.
                let Some((vhost, name)) = known.channels.get(&pid).cloned() else {
                    return;
                };
                let tags = known.tags.entry((vhost, name, queue)).or_default();
                if routing_key == "consumer.created" {
                    if !tags.contains(&tag) {
                        tags.push(tag);
                    }
                    drop(known);
                    self.learnt.notify_waiters();
                } else {
                    tags.retain(|t| *t != tag);
                }
            }
            _ => {}
        }
    }

    /// A vhost's consumers as the management API lists them. They are added to what was
    /// known of those channels.
    pub fn listed(&self, vhost: &str, consumers: &[super::answers::Consumer]) {
        let mut listed: HashMap<Key, Vec<String>> = HashMap::new();
        for consumer in consumers {
            let Some((connection, number)) = consumer.channel() else {
                continue;
            };
            let channel = channel_name(&connection, number);
            listed
                .entry((vhost.to_string(), channel, consumer.queue.clone()))
                .or_default()
                .push(consumer.consumer_tag.clone());
        }
        let mut known = self.known.lock().unwrap();
        for (key, tags) in listed {
            let entry = known.tags.entry(key).or_default();
            for tag in tags {
                if !entry.contains(&tag) {
                    entry.push(tag);
                }
            }
        }
        drop(known);
        self.learnt.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::LongString;

    fn headers(pairs: &[(&str, &str)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert((*k).into(), AMQPValue::LongString(LongString::from(*v)));
        }
        t
    }

    #[test]
    fn a_snapshot_names_the_one_consumer_of_a_channel_and_queue() {
        use crate::broker::{ConsumerSnapshot, VhostSnapshot};
        let name = "127.0.0.1:5000 -> 127.0.0.1:5672";
        let consumer = |tag: &str, channel: u16, queue: &str| ConsumerSnapshot {
            queue: queue.into(),
            tag: tag.into(),
            connection: super::super::connection_id(name),
            channel,
            ..Default::default()
        };
        let listed = VhostSnapshot {
            consumers: vec![
                consumer("a", 1, "q"),
                consumer("b", 2, "q"),
                consumer("c", 2, "q"),
                consumer("d", 2, "r"),
            ],
            ..Default::default()
        };
        assert_eq!(only_consumer(&listed, name, 1, "q").as_deref(), Some("a"));
        assert_eq!(only_consumer(&listed, name, 2, "r").as_deref(), Some("d"));
        // Two on one channel: the trace cannot tell which.
        assert_eq!(only_consumer(&listed, name, 2, "q"), None);
        assert_eq!(only_consumer(&listed, name, 3, "q"), None);
        assert_eq!(only_consumer(&listed, "elsewhere", 1, "q"), None);
    }

    #[test]
    fn event_exchange_messages_name_a_channels_consumers() {
        let consumers = Consumers::default();
        let channel = channel_name("127.0.0.1:5000 -> 127.0.0.1:5672", 1);
        consumers.heard(
            "channel.created",
            &headers(&[("pid", "<p.1>"), ("vhost", "v"), ("name", &channel)]),
        );
        let created =
            |tag: &str| headers(&[("channel", "<p.1>"), ("queue", "q"), ("consumer_tag", tag)]);
        assert_eq!(consumers.lookup("v", &channel, "q"), Lookup::Unknown);
        consumers.heard("consumer.created", &created("t-1"));
        assert_eq!(
            consumers.lookup("v", &channel, "q"),
            Lookup::Tag("t-1".into())
        );
        consumers.heard("consumer.created", &created("t-2"));
        assert_eq!(consumers.lookup("v", &channel, "q"), Lookup::Ambiguous);
        consumers.heard("consumer.deleted", &created("t-1"));
        assert_eq!(
            consumers.lookup("v", &channel, "q"),
            Lookup::Tag("t-2".into())
        );
        consumers.heard("channel.closed", &headers(&[("pid", "<p.1>")]));
        assert_eq!(consumers.lookup("v", &channel, "q"), Lookup::Unknown);
    }
}
