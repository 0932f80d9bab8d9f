//! The lesson file format (lessons/README.md is its description for authors).
//!
//! Every struct refuses keys it does not know, so a typo is an error with a location instead of
//! a silently ignored line.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::broker::release::{Behaviour, DeprecatedFeature, Release};
use serde::{Deserialize, Serialize};

/// The language a student reads lessons in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Lang {
    /// The language of the user's locale: LC_ALL, then LC_MESSAGES, then LANG (the first that is
    /// set and not empty); `zh*` is Chinese, anything else English.
    pub fn from_env() -> Lang {
        let locale = ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .filter_map(|name| std::env::var(name).ok())
            .find(|value| !value.is_empty())
            .unwrap_or_default();
        Lang::from_locale(&locale)
    }

    /// `zh_CN.UTF-8`, `zh_TW`, `zh` -> Chinese; anything else -> English.
    pub fn from_locale(locale: &str) -> Lang {
        if locale.to_ascii_lowercase().starts_with("zh") {
            Lang::Zh
        } else {
            Lang::En
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }
}

/// A language code other than `en` and `zh`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected `en` or `zh`, found `{0}`")]
pub struct UnknownLang(pub String);

impl std::str::FromStr for Lang {
    type Err = UnknownLang;

    fn from_str(s: &str) -> Result<Lang, UnknownLang> {
        match s {
            "en" => Ok(Lang::En),
            "zh" => Ok(Lang::Zh),
            other => Err(UnknownLang(other.to_string())),
        }
    }
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// A text the student reads, in both languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Text {
    pub en: String,
    pub zh: String,
}

impl Text {
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.en,
            Lang::Zh => &self.zh,
        }
    }
}

/// One lesson file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lesson {
    pub id: String,
    pub order: u32,
    pub title: Text,
    #[serde(default)]
    pub summary: Option<Text>,
    #[serde(default)]
    pub setup: Setup,
    /// The RabbitMQ release the lesson's broker behaves as (`"4.3"`); without it, the
    /// broker's own.
    #[serde(default)]
    pub behave_as: Option<String>,
    /// Deprecated features the lesson permits (`deprecated_features.permit.FEATURE = true`).
    #[serde(default)]
    pub permit: Vec<String>,
    /// Deprecated features the lesson denies (`deprecated_features.permit.FEATURE = false`).
    #[serde(default)]
    pub deny: Vec<String>,
    pub steps: Vec<Step>,
    /// The file it was read from (empty for a lesson parsed from text).
    #[serde(skip)]
    pub source: PathBuf,
}

/// The program of a `client`: `nova-compute` of `nova-compute@node1`.
pub fn program_of(client: &str) -> &str {
    client
        .split_once('@')
        .map_or(client, |(program, _)| program)
}

impl Lesson {
    /// The release the lesson asks its broker to behave as, with its permits and denials;
    /// None when it asks for none (`behave_as`, `permit` and `deny` all absent). A lesson that
    /// only permits or denies keeps the default release.
    pub fn behaviour(&self) -> Result<Option<Behaviour>, String> {
        configured(
            self.behave_as.as_deref(),
            &self.permit,
            &self.deny,
            Release::DEFAULT,
        )
    }

    /// The release the lesson starts on: its `behave_as`, else the default.
    pub fn release(&self) -> Result<Release, String> {
        self.behave_as
            .as_deref()
            .map_or(Ok(Release::DEFAULT), str::parse::<Release>)
    }

    /// The lesson asks for a release or deprecated features, at its start or at a `restart`:
    /// only an embedded broker can do that.
    pub fn changes_release(&self) -> bool {
        let at_restart = self
            .steps
            .iter()
            .flat_map(|s| &s.actions)
            .any(|a| matches!(a, Action::Restart(r) if r.configures()));
        !matches!(self.behaviour(), Ok(None)) || at_restart
    }
}

/// A release with permits and denials on top of its defaults, as `behave_as`, `permit` and
/// `deny` say (the lesson's keys, or a `restart`'s); None when all three are absent. Without
/// `behave_as`, `release` is the one meant.
fn configured(
    behave_as: Option<&str>,
    permit: &[String],
    deny: &[String],
    release: Release,
) -> Result<Option<Behaviour>, String> {
    if behave_as.is_none() && permit.is_empty() && deny.is_empty() {
        return Ok(None);
    }
    let release = match behave_as {
        Some(name) => name.parse::<Release>()?,
        None => release,
    };
    let mut behaviour = Behaviour::of(release);
    let switches = permit.iter().map(|f| (f, true));
    for (name, permitted) in switches.chain(deny.iter().map(|f| (f, false))) {
        behaviour = behaviour.permit(name.parse::<DeprecatedFeature>()?, permitted)?;
    }
    Ok(Some(behaviour))
}

/// `x-` arguments, binding arguments and message headers, written as RabbitMQ takes them.
pub type Arguments = BTreeMap<String, serde_yaml::Value>;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setup {
    #[serde(default)]
    pub exchanges: Vec<ExchangeDecl>,
    #[serde(default)]
    pub queues: Vec<QueueDecl>,
    #[serde(default)]
    pub bindings: Vec<BindingDecl>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExchangeType {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeType::Direct => "direct",
            ExchangeType::Fanout => "fanout",
            ExchangeType::Topic => "topic",
            ExchangeType::Headers => "headers",
        }
    }

    /// The type named `name` as AMQP writes it; none for a type a lesson cannot declare.
    pub fn named(name: &str) -> Option<ExchangeType> {
        [Self::Direct, Self::Fanout, Self::Topic, Self::Headers]
            .into_iter()
            .find(|t| t.as_str() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeDecl {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ExchangeType,
    #[serde(default)]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub arguments: Arguments,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueDecl {
    pub name: String,
    #[serde(default)]
    pub durable: bool,
    #[serde(default)]
    pub exclusive: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub arguments: Arguments,
    /// As a step action: the program that declares it (its connection owns an exclusive queue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// As a step action: the reply code the broker must refuse the declare with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<u16>,
}

/// A binding from `exchange` to a queue or (with `to_exchange`) to another exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingDecl {
    pub exchange: String,
    #[serde(default)]
    pub queue: Option<String>,
    #[serde(default)]
    pub to_exchange: Option<String>,
    #[serde(default)]
    pub routing_key: String,
    #[serde(default)]
    pub arguments: Arguments,
}

/// Where a binding leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination<'a> {
    Queue(&'a str),
    Exchange(&'a str),
}

impl BindingDecl {
    /// The destination; validation has made sure exactly one is given.
    pub fn destination(&self) -> Destination<'_> {
        match (&self.queue, &self.to_exchange) {
            (_, Some(exchange)) => Destination::Exchange(exchange),
            (Some(queue), None) => Destination::Queue(queue),
            (None, None) => Destination::Queue(""),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(default)]
    pub title: Option<Text>,
    pub say: Text,
    #[serde(default)]
    pub predict: Option<Predict>,
    /// Shown once the step ran: what happened and why. The outcome goes here, not in `say`,
    /// so the narration before a prediction never gives the answer away.
    #[serde(default)]
    pub explain: Option<Text>,
    #[serde(default, rename = "do")]
    pub actions: Vec<Action>,
    #[serde(default)]
    pub expect: Expect,
    /// Run this step's actions and check its expectations in this vhost instead of the
    /// lesson's own (it is made if missing, with the lesson's user allowed in).
    #[serde(default)]
    pub vhost: Option<String>,
}

/// A question asked before the step's actions run, about what the step will do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Predict {
    /// What the choices name: queues (the default), consumers, or numbers of ready messages.
    #[serde(default)]
    pub about: Asked,
    /// The queue whose ready messages are counted, for `about: ready`.
    #[serde(default)]
    pub queue: Option<String>,
    pub question: Text,
    pub choices: Vec<String>,
    pub answer: Vec<String>,
}

/// What a prediction is about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Asked {
    /// Which queues the step's publishes reach.
    #[default]
    Queues,
    /// Which consumers receive messages during the step.
    Consumers,
    /// How many messages `queue` holds ready after the step (each choice is a number).
    Ready,
}

/// What a step did, as far as predictions ask about it.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The queues the step's publishes reached.
    pub routed: &'a [String],
    /// Messages each consumer received during the step.
    pub delivered: &'a BTreeMap<String, u32>,
    /// The ready messages of the predict's `queue`, when it asks about them.
    pub ready: Option<u32>,
}

impl Predict {
    /// The choices that came true: the right ticks.
    pub fn truth(&self, observed: &Observed) -> Vec<String> {
        self.choices
            .iter()
            .filter(|choice| match self.about {
                Asked::Queues => observed.routed.contains(choice),
                Asked::Consumers => observed.delivered.get(*choice).is_some_and(|n| *n > 0),
                Asked::Ready => observed.ready.is_some() && choice.parse().ok() == observed.ready,
            })
            .cloned()
            .collect()
    }

    /// A student's ticks are right when each choice is ticked exactly if it came true
    /// (`truth`, or for a question about queues simply the queues reached). Anything outside
    /// `choices` does not count.
    pub fn is_right<S: AsRef<str>>(&self, ticked: &[S], truth: &[String]) -> bool {
        self.choices.iter().all(|choice| {
            let was_ticked = ticked.iter().any(|t| t.as_ref() == choice);
            let came_true = truth.iter().any(|q| q == choice);
            was_ticked == came_true
        })
    }
}

/// What must hold after a step; every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub routed: Option<Vec<String>>,
    #[serde(default)]
    pub returned: Option<u32>,
    #[serde(default)]
    pub dropped: Option<u32>,
    #[serde(default)]
    pub depths: Option<BTreeMap<String, u32>>,
    #[serde(default)]
    pub delivered: Option<BTreeMap<String, u32>>,
    #[serde(default)]
    pub routing_key_matches: Option<String>,
    #[serde(default)]
    pub body_matches: Option<String>,
    /// Each message a `replay` published reached the queues it reached when it was recorded.
    #[serde(default)]
    pub routed_as_recorded: Option<bool>,
}

impl Expect {
    pub fn is_empty(&self) -> bool {
        *self == Expect::default()
    }
}

/// One thing a step does on the broker, written `- publish: { ... }`: a mapping with a single
/// key (serde_yaml would want a YAML tag, `!publish`, for a plain enum).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    DeclareExchange(ExchangeDecl),
    DeleteExchange(NameRef),
    DeclareQueue(QueueDecl),
    DeleteQueue(NameRef),
    Purge(QueueRef),
    Bind(BindingDecl),
    Unbind(BindingDecl),
    Publish(Publish),
    Rpc(Rpc),
    Reply(Reply),
    Consume(Consume),
    Cancel(ConsumerRef),
    Ack(Ack),
    Nack(Nack),
    Reject(Nack),
    Get(Get),
    Wait(Wait),
    Restart(Restart),
    Close(Close),
    Replay(Replay),
}

/// Every action's key, in the order of the format.
pub const ACTIONS: &[&str] = &[
    "declare_exchange",
    "delete_exchange",
    "declare_queue",
    "delete_queue",
    "purge",
    "bind",
    "unbind",
    "publish",
    "rpc",
    "reply",
    "consume",
    "cancel",
    "ack",
    "nack",
    "reject",
    "get",
    "wait",
    "restart",
    "close",
    "replay",
];

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Action, D::Error> {
        deserializer.deserialize_map(ActionVisitor)
    }
}

struct ActionVisitor;

impl<'de> serde::de::Visitor<'de> for ActionVisitor {
    type Value = Action;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an action: a mapping with one key, like `publish: { ... }`")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Action, A::Error> {
        use serde::de::Error;
        let Some(keyword) = map.next_key::<String>()? else {
            return Err(A::Error::custom(
                "expected an action, like `publish: { ... }`, found an empty mapping",
            ));
        };
        let action = match keyword.as_str() {
            "declare_exchange" => Action::DeclareExchange(map.next_value()?),
            "delete_exchange" => Action::DeleteExchange(map.next_value()?),
            "declare_queue" => Action::DeclareQueue(map.next_value()?),
            "delete_queue" => Action::DeleteQueue(map.next_value()?),
            "purge" => Action::Purge(map.next_value()?),
            "bind" => Action::Bind(map.next_value()?),
            "unbind" => Action::Unbind(map.next_value()?),
            "publish" => Action::Publish(map.next_value()?),
            "rpc" => Action::Rpc(map.next_value()?),
            "reply" => Action::Reply(map.next_value()?),
            "consume" => Action::Consume(map.next_value()?),
            "cancel" => Action::Cancel(map.next_value()?),
            "ack" => Action::Ack(map.next_value()?),
            "nack" => Action::Nack(map.next_value()?),
            "reject" => Action::Reject(map.next_value()?),
            "get" => Action::Get(map.next_value()?),
            "wait" => Action::Wait(map.next_value()?),
            "restart" => Action::Restart(map.next_value()?),
            "close" => Action::Close(map.next_value()?),
            "replay" => Action::Replay(map.next_value()?),
            other => {
                return Err(A::Error::custom(format!(
                    "unknown action `{other}`, expected one of {}",
                    ACTIONS
                        .iter()
                        .map(|a| format!("`{a}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        };
        if let Some(extra) = map.next_key::<String>()? {
            return Err(A::Error::custom(format!(
                "expected one action per list item, but `{keyword}` is followed by `{extra}` \
                 (start another item with `- `)"
            )));
        }
        Ok(action)
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        let keyword = self.keyword();
        match self {
            Action::DeclareExchange(v) => map.serialize_entry(keyword, v)?,
            Action::DeleteExchange(v) => map.serialize_entry(keyword, v)?,
            Action::DeclareQueue(v) => map.serialize_entry(keyword, v)?,
            Action::DeleteQueue(v) => map.serialize_entry(keyword, v)?,
            Action::Purge(v) => map.serialize_entry(keyword, v)?,
            Action::Bind(v) | Action::Unbind(v) => map.serialize_entry(keyword, v)?,
            Action::Publish(v) => map.serialize_entry(keyword, v)?,
            Action::Rpc(v) => map.serialize_entry(keyword, v)?,
            Action::Reply(v) => map.serialize_entry(keyword, v)?,
            Action::Consume(v) => map.serialize_entry(keyword, v)?,
            Action::Cancel(v) => map.serialize_entry(keyword, v)?,
            Action::Ack(v) => map.serialize_entry(keyword, v)?,
            Action::Nack(v) | Action::Reject(v) => map.serialize_entry(keyword, v)?,
            Action::Get(v) => map.serialize_entry(keyword, v)?,
            Action::Wait(v) => map.serialize_entry(keyword, v)?,
            Action::Restart(v) => map.serialize_entry(keyword, v)?,
            Action::Close(v) => map.serialize_entry(keyword, v)?,
            Action::Replay(v) => map.serialize_entry(keyword, v)?,
        }
        map.end()
    }
}

impl Action {
    /// The program named by the action's `client`, if it has one.
    pub fn client(&self) -> Option<&str> {
        match self {
            Action::Publish(Publish { client, .. })
            | Action::Rpc(Rpc { client, .. })
            | Action::Consume(Consume { client, .. })
            | Action::Get(Get { client, .. })
            | Action::Replay(Replay { client, .. })
            | Action::DeclareQueue(QueueDecl { client, .. }) => client.as_deref(),
            Action::Close(close) => Some(&close.client),
            _ => None,
        }
    }

    /// The reply code the broker must refuse the action with, if the step expects a refusal.
    pub fn refused(&self) -> Option<u16> {
        match self {
            Action::DeclareQueue(QueueDecl { refused, .. })
            | Action::Consume(Consume { refused, .. }) => *refused,
            _ => None,
        }
    }

    /// The action's key in the file.
    pub fn keyword(&self) -> &'static str {
        match self {
            Action::DeclareExchange(_) => "declare_exchange",
            Action::DeleteExchange(_) => "delete_exchange",
            Action::DeclareQueue(_) => "declare_queue",
            Action::DeleteQueue(_) => "delete_queue",
            Action::Purge(_) => "purge",
            Action::Bind(_) => "bind",
            Action::Unbind(_) => "unbind",
            Action::Publish(_) => "publish",
            Action::Rpc(_) => "rpc",
            Action::Reply(_) => "reply",
            Action::Consume(_) => "consume",
            Action::Cancel(_) => "cancel",
            Action::Ack(_) => "ack",
            Action::Nack(_) => "nack",
            Action::Reject(_) => "reject",
            Action::Get(_) => "get",
            Action::Wait(_) => "wait",
            Action::Restart(_) => "restart",
            Action::Close(_) => "close",
            Action::Replay(_) => "replay",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameRef {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueRef {
    pub queue: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerRef {
    pub consumer: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    #[serde(default)]
    pub exchange: String,
    #[serde(default)]
    pub routing_key: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub headers: Arguments,
    #[serde(default)]
    pub properties: Properties,
    #[serde(default)]
    pub mandatory: bool,
    #[serde(default = "one")]
    pub count: u32,
    /// The program that does it (`nova-api`; `nova-compute@node1` for one of several
    /// hosts): a connection of its own, named as oslo.messaging names its connections.
    /// Without it, the lesson's own connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

/// AMQP basic properties by their usual names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub content_encoding: Option<String>,
    #[serde(default)]
    pub delivery_mode: Option<u8>,
    #[serde(default)]
    pub priority: Option<u8>,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub reply_to: Option<String>,
    #[serde(default)]
    pub expiration: Option<String>,
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub app_id: Option<String>,
}

/// An oslo.messaging request: a cast, or a call when `call` is true.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rpc {
    #[serde(default)]
    pub exchange: String,
    #[serde(default)]
    pub routing_key: String,
    pub method: String,
    #[serde(default)]
    pub args: Option<serde_yaml::Value>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub call: bool,
    #[serde(default)]
    pub reply_queue: Option<String>,
    /// A call's timeout in seconds; it travels only as the AMQP `expiration`.
    #[serde(default)]
    pub timeout: Option<u32>,
    /// Seconds the caller waits between keep-alive replies before giving up on a server
    /// (oslo.messaging's `call_monitor_timeout`); it travels as `_timeout`.
    #[serde(default)]
    pub call_monitor_timeout: Option<u32>,
    /// The request context, sent as `_context_*` keys in the order written.
    #[serde(default)]
    pub context: serde_yaml::Mapping,
    /// The program that does it (`nova-api`; `nova-compute@node1` for one of several
    /// hosts): a connection of its own, named as oslo.messaging names its connections.
    /// Without it, the lesson's own connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

/// The answer to the newest call a consumer received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    pub consumer: String,
    #[serde(default)]
    pub result: Option<serde_yaml::Value>,
    #[serde(default)]
    pub failure: Option<String>,
    /// `false` sends a keep-alive instead of the answer: a server still working on a call
    /// that carries a call-monitor timeout tells the caller so.
    #[serde(default = "yes")]
    pub ending: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AckMode {
    #[default]
    Auto,
    Manual,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consume {
    pub queue: String,
    pub consumer: String,
    #[serde(default)]
    pub ack: AckMode,
    #[serde(default)]
    pub prefetch: u16,
    /// The reply code the broker must refuse the consume with (405 for another connection's
    /// exclusive queue); the consumer is then never started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<u16>,
    /// The program that does it (`nova-api`; `nova-compute@node1` for one of several
    /// hosts): a connection of its own, named as oslo.messaging names its connections.
    /// Without it, the lesson's own connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    pub consumer: String,
    #[serde(default)]
    pub count: Option<u32>,
}

/// basic.nack or basic.reject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nack {
    pub consumer: String,
    #[serde(default = "yes")]
    pub requeue: bool,
    #[serde(default)]
    pub count: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Get {
    pub queue: String,
    #[serde(default)]
    pub ack: AckMode,
    /// The program that does it (`nova-api`; `nova-compute@node1` for one of several
    /// hosts): a connection of its own, named as oslo.messaging names its connections.
    /// Without it, the lesson's own connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wait {
    pub ms: u64,
}

/// `restart: {}`: the broker stops and starts again, as after a power cut it survived. Every
/// connection is closed (the lesson reconnects; its consumers are gone); only durable
/// exchanges, queues and bindings and the persistent messages of durable queues are left.
///
/// With `behave_as`, `permit` or `deny` it starts again with a new configuration, as after an
/// upgrade or an edit of rabbitmq.conf: that release (the lesson's without `behave_as`) with
/// these deprecated features permitted or denied, the rest at the release's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behave_as: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permit: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

impl Restart {
    /// It names a release or deprecated features.
    pub fn configures(&self) -> bool {
        self.behave_as.is_some() || !self.permit.is_empty() || !self.deny.is_empty()
    }

    /// The configuration the broker starts again with, None to keep the one it has; `release`
    /// is the lesson's.
    pub fn behaviour(&self, release: Release) -> Result<Option<Behaviour>, String> {
        configured(self.behave_as.as_deref(), &self.permit, &self.deny, release)
    }
}

/// `close: { client: nova-api }`: the program's connection closes, as when the process exits.
/// Its consumers and exclusive queues go with it; a later action as that program connects anew.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Close {
    pub client: String,
}

/// `replay: { trace: nova-boot-classic, from: 1, to: 3 }`: messages of a recorded trace
/// (`assets/traces/<trace>.yaml`) published again as they were recorded, on the exchange and
/// with the routing key, properties and body they had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// The trace's file name without `.yaml`.
    pub trace: String,
    /// The first publish replayed, counted from 1 among the trace's publishes (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u32>,
    /// The last publish replayed (default the trace's last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u32>,
    /// Declare every exchange, queue and binding the trace declared first. Alone (no `from`,
    /// no `to`) it declares them and publishes nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub topology: bool,
    /// The program that sends them, one of the lesson's (`nova-api`). Without it, each goes out
    /// on a connection named exactly as the recording names its publisher, or on the lesson's
    /// own connection when the recording never learnt that name (it learns names only from
    /// connections it saw open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

impl Replay {
    /// The publishes asked for, as 1-based numbers from and to (inclusive), given a trace of
    /// `total` publishes; None when the action only declares.
    pub fn range(&self, total: u32) -> Option<(u32, u32)> {
        if self.topology && self.from.is_none() && self.to.is_none() {
            return None;
        }
        Some((self.from.unwrap_or(1), self.to.unwrap_or(total)))
    }
}
