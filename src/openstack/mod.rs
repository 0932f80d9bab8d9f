//! The OpenStack lens: what an oslo.messaging body says, in Nova's words.
//!
//! oslo.messaging wraps every message in an envelope, `{"oslo.version": "2.0", "oslo.message":
//! "<JSON text>"}`. Inside is a request (`method`, `args`, `version`, `namespace`, `_context_*`
//! fields; a call adds `_msg_id` and `_reply_q`), a reply (`_msg_id`, `ending`, `failure`,
//! `result`) or a notification (`event_type`, `priority`, `publisher_id`, `payload`, sent to
//! topics such as `notifications.info` and `versioned_notifications.info`). Nova's arguments
//! and versioned notifications' payloads carry oslo.versionedobjects (`nova_object.name`,
//! `.version`, `.data`, ...), shown here as objects rather than as the JSON they travel in.
//!
//! Imports: nothing of the crate but the language a label is said in ([`crate::lesson::Lang`]).
//! Pure functions over bytes, so the view, `tap` and the lessons share them. [`names`]: what
//! oslo.messaging's queue and connection names say (used by `doctor`); [`lens`]: whose a
//! connection or a queue is, from what the broker shows (used by the view and `tap`).

pub mod lens;
pub mod names;

use serde_json::{Map, Value};
use unicode_width::UnicodeWidthStr;

use crate::lesson::Lang;

/// What an oslo.messaging body is.
#[derive(Clone, Debug, PartialEq)]
pub enum Oslo {
    Request(Request),
    Reply(Reply),
    Notification(Notification),
}

/// A cast (nobody waits) or a call (the caller waits for a reply on `reply_q`).
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub method: String,
    pub version: Option<String>,
    pub namespace: Option<String>,
    /// Set for a call: the id its reply will carry, and the queue the reply goes to.
    pub call: Option<Call>,
    pub context: Context,
    pub args: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub msg_id: String,
    pub reply_q: String,
    pub timeout: Option<f64>,
}

/// The request context (`_context_*` fields) a user reads first; the rest stays in `other`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Context {
    pub request_id: Option<String>,
    pub user: Option<String>,
    pub project: Option<String>,
    /// How many other `_context_*` fields there were.
    pub other: usize,
}

/// The answer to a call. A long call gets heartbeats first (`ending` false, no result).
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub msg_id: Option<String>,
    pub ending: bool,
    /// The remote error, when the method raised: class and message.
    pub failure: Option<String>,
    pub result: Value,
}

/// An event a service tells whoever listens (oslo.messaging's Notifier): nobody answers.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// `instance.create.start`, `compute.instance.create.end`, ...
    pub event_type: String,
    /// `INFO`, `WARN`, `ERROR`, ...: the last word of the topic it was sent to.
    pub priority: Option<String>,
    /// `nova-compute:compute-1` (versioned), `compute.compute-1` (legacy).
    pub publisher_id: Option<String>,
    pub timestamp: Option<String>,
    pub payload: Value,
}

impl Request {
    pub fn kind(&self) -> &'static str {
        if self.call.is_some() {
            "call"
        } else {
            "cast"
        }
    }

    /// `cast schedule_and_build_instances 1.17`: the words the log shows.
    pub fn headline(&self) -> String {
        let mut s = format!("{} {}", self.kind(), self.method);
        if let Some(v) = &self.version {
            s.push(' ');
            s.push_str(v);
        }
        s
    }
}

impl Reply {
    /// `reply ok`, `reply failed: NoSuchMethod` or `reply heartbeat`.
    pub fn headline(&self) -> String {
        match (&self.failure, self.ending) {
            (Some(f), _) => format!("reply failed: {}", f.split(':').next().unwrap_or(f)),
            (None, true) => "reply".to_string(),
            (None, false) => "reply heartbeat".to_string(),
        }
    }
}

impl Notification {
    /// `notification instance.create.start INFO`: the words the log shows.
    pub fn headline(&self) -> String {
        let mut s = format!("notification {}", self.event_type);
        if let Some(p) = &self.priority {
            s.push(' ');
            s.push_str(p);
        }
        s
    }

    /// What the payload is, in a few words: a versioned object's name and version
    /// (`InstanceCreatePayload 1.10`), else the fields that say which thing it is about.
    pub fn payload_summary(&self) -> String {
        if let Some(obj) = versioned_object(&self.payload) {
            return format!("{} {}", obj.name, obj.version);
        }
        let Value::Object(map) = &self.payload else {
            return short(&self.payload);
        };
        let about: Vec<String> = ["instance_id", "display_name", "host", "state"]
            .iter()
            .filter_map(|k| Some(format!("{k}: {}", short(map.get(*k)?))))
            .collect();
        match about.is_empty() {
            true => format!("{} fields", map.len()),
            false => about.join(", "),
        }
    }
}

impl Oslo {
    pub fn headline(&self) -> String {
        match self {
            Oslo::Request(r) => r.headline(),
            Oslo::Reply(r) => r.headline(),
            Oslo::Notification(n) => n.headline(),
        }
    }

    /// The decoded message, one line per fact, for the inspector, its labels in `lang`.
    pub fn lines(&self, lang: Lang) -> Vec<String> {
        // Labels are padded to one width in each language so the values line up.
        let label = |en: &'static str, zh: &'static str| match lang {
            Lang::En => format!("  {en:<10} "),
            Lang::Zh => format!("  {zh}{} ", " ".repeat(10usize.saturating_sub(zh.width()))),
        };
        let heading = |en: &'static str, zh: &'static str| match lang {
            Lang::En => format!("  {en}"),
            Lang::Zh => format!("  {zh}"),
        };
        let mut lines = Vec::new();
        match self {
            Oslo::Request(r) => {
                lines.push(format!("oslo.messaging {}", r.kind()));
                lines.push(format!("{}{}", label("method", "方法"), r.method));
                if let Some(v) = &r.version {
                    lines.push(format!("{}{v}", label("version", "版本")));
                }
                if let Some(ns) = &r.namespace {
                    lines.push(format!("{}{ns}", label("namespace", "命名空间")));
                }
                if let Some(c) = &r.call {
                    let timeout = c
                        .timeout
                        .map(|t| match lang {
                            Lang::En => format!(" (timeout {t}s)"),
                            Lang::Zh => format!("（超时 {t} 秒）"),
                        })
                        .unwrap_or_default();
                    lines.push(format!(
                        "{}{}{timeout}",
                        label("reply to", "回复到"),
                        c.reply_q
                    ));
                    lines.push(format!("{}{}", label("msg id", "消息 id"), c.msg_id));
                }
                let ctx = &r.context;
                if let Some(id) = &ctx.request_id {
                    lines.push(format!("{}{id}", label("request", "请求")));
                }
                let mut who = Vec::new();
                if let Some(v) = &ctx.user {
                    who.push(format!("user {v}"));
                }
                if let Some(v) = &ctx.project {
                    who.push(format!("project {v}"));
                }
                if ctx.other > 0 {
                    who.push(match lang {
                        Lang::En => format!("+{} context fields", ctx.other),
                        Lang::Zh => format!("另有 {} 个上下文字段", ctx.other),
                    });
                }
                if !who.is_empty() {
                    lines.push(format!("{}{}", label("context", "上下文"), who.join(", ")));
                }
                lines.push(heading("arguments", "参数"));
                tree(&r.args, 2, &mut lines);
            }
            Oslo::Reply(r) => {
                let to = r.msg_id.as_ref().map(|id| match lang {
                    Lang::En => format!(" to msg id {id}"),
                    Lang::Zh => format!("，答复消息 id {id}"),
                });
                lines.push(match lang {
                    Lang::En => format!("oslo.messaging reply{}", to.unwrap_or_default()),
                    Lang::Zh => format!("oslo.messaging 回复{}", to.unwrap_or_default()),
                });
                let ending = match (lang, r.ending) {
                    (Lang::En, true) => "yes",
                    (Lang::En, false) => "no (heartbeat)",
                    (Lang::Zh, true) => "是",
                    (Lang::Zh, false) => "否（心跳）",
                };
                lines.push(format!("{}{ending}", label("ending", "结束")));
                if let Some(f) = &r.failure {
                    lines.push(format!("{}{f}", label("failure", "失败")));
                }
                if !r.result.is_null() {
                    lines.push(heading("result", "结果"));
                    tree(&r.result, 2, &mut lines);
                }
            }
            Oslo::Notification(n) => {
                lines.push(
                    match lang {
                        Lang::En => "oslo.messaging notification",
                        Lang::Zh => "oslo.messaging 通知",
                    }
                    .to_string(),
                );
                lines.push(format!("{}{}", label("event", "事件"), n.event_type));
                if let Some(p) = &n.priority {
                    lines.push(format!("{}{p}", label("priority", "级别")));
                }
                if let Some(p) = &n.publisher_id {
                    lines.push(format!("{}{p}", label("publisher", "发布者")));
                }
                if let Some(t) = &n.timestamp {
                    lines.push(format!("{}{t}", label("at", "时间")));
                }
                lines.push(format!(
                    "{}{}",
                    label("payload", "负载"),
                    n.payload_summary()
                ));
                match versioned_object(&n.payload).and_then(|obj| obj.data) {
                    Some(data) => fields(data, 4, &mut lines),
                    None => tree(&n.payload, 4, &mut lines),
                }
            }
        }
        lines
    }
}

/// Decodes an oslo.messaging body; `None` when it is not one.
pub fn decode(body: &[u8]) -> Option<Oslo> {
    let envelope: Value = serde_json::from_slice(body).ok()?;
    let inner = envelope.get("oslo.message")?.as_str()?;
    let Value::Object(mut msg) = serde_json::from_str::<Value>(inner).ok()? else {
        return None;
    };
    let text = |m: &mut Map<String, Value>, k: &str| match m.remove(k) {
        Some(Value::String(s)) => Some(s),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    if let Some(method) = text(&mut msg, "method") {
        let mut context = Context::default();
        for key in msg.keys().filter(|k| k.starts_with("_context_")) {
            let value = msg.get(key).and_then(Value::as_str).map(str::to_string);
            match &key["_context_".len()..] {
                "request_id" => context.request_id = value,
                "user_id" | "user" if context.user.is_none() => context.user = value,
                "project_id" | "project_name" | "tenant" if context.project.is_none() => {
                    context.project = value
                }
                _ => context.other += 1,
            }
        }
        let msg_id = text(&mut msg, "_msg_id");
        let reply_q = text(&mut msg, "_reply_q");
        let call = msg_id.map(|msg_id| Call {
            msg_id,
            reply_q: reply_q.unwrap_or_default(),
            timeout: msg.get("_timeout").and_then(Value::as_f64),
        });
        return Some(Oslo::Request(Request {
            method,
            version: text(&mut msg, "version"),
            namespace: text(&mut msg, "namespace"),
            call,
            context,
            args: msg.remove("args").unwrap_or(Value::Null),
        }));
    }
    if let Some(event_type) = text(&mut msg, "event_type") {
        return Some(Oslo::Notification(Notification {
            event_type,
            priority: text(&mut msg, "priority"),
            publisher_id: text(&mut msg, "publisher_id"),
            timestamp: text(&mut msg, "timestamp"),
            payload: msg.remove("payload").unwrap_or(Value::Null),
        }));
    }
    if msg.contains_key("ending") || msg.contains_key("result") || msg.contains_key("failure") {
        return Some(Oslo::Reply(Reply {
            msg_id: text(&mut msg, "_msg_id"),
            ending: msg.get("ending").and_then(Value::as_bool).unwrap_or(false),
            failure: msg.remove("failure").and_then(failure_text),
            result: msg.remove("result").unwrap_or(Value::Null),
        }));
    }
    None
}

/// A remote error travels as a JSON string `{class, module, message, tb, ...}`: `Class: message`.
fn failure_text(failure: Value) -> Option<String> {
    let parsed = match &failure {
        Value::Null => return None,
        Value::String(s) => serde_json::from_str::<Value>(s).unwrap_or(failure.clone()),
        _ => failure.clone(),
    };
    let field = |k: &str| parsed.get(k).and_then(Value::as_str);
    match (field("class"), field("message")) {
        (Some(class), Some(message)) => Some(format!("{class}: {message}")),
        (Some(class), None) => Some(class.to_string()),
        _ => Some(short(&failure)),
    }
}

/// Nesting below this is shown as `…`: bodies come from strangers.
const MAX_DEPTH: usize = 16;
/// A value whose one-line form is at most this long is shown on one line.
const INLINE: usize = 60;

/// A versioned object's fields, if `value` is one.
struct VersionedObject<'a> {
    name: &'a str,
    version: &'a str,
    changes: Vec<&'a str>,
    data: Option<&'a Map<String, Value>>,
}

impl VersionedObject<'_> {
    /// Its name and version, and the fields it says changed, if any.
    fn heading(&self) -> String {
        let changed = if self.changes.is_empty() {
            String::new()
        } else {
            format!(" (changed: {})", self.changes.join(", "))
        };
        format!("{} {}{changed}", self.name, self.version)
    }
}

fn versioned_object(value: &Value) -> Option<VersionedObject<'_>> {
    let map = value.as_object()?;
    let (prefix, name) = map.iter().find_map(|(k, v)| {
        let prefix = k.strip_suffix(".name")?;
        prefix.ends_with("_object").then(|| (prefix, v.as_str()))
    })?;
    let get = |field: &str| map.get(&format!("{prefix}.{field}"));
    Some(VersionedObject {
        name: name?,
        version: get("version").and_then(Value::as_str).unwrap_or("?"),
        changes: get("changes")
            .and_then(Value::as_array)
            .map(|c| c.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default(),
        data: get("data").and_then(Value::as_object),
    })
}

/// One line for a value: `"text"`, `3`, `[a, b]`, `{k: v}`, `Instance 2.7 {uuid: …}`.
pub fn short(value: &Value) -> String {
    let mut out = String::new();
    short_into(value, 0, &mut out);
    out
}

fn short_into(value: &Value, depth: usize, out: &mut String) {
    if depth > MAX_DEPTH {
        out.push('…');
        return;
    }
    if let Some(obj) = versioned_object(value) {
        out.push_str(&format!("{} {} ", obj.name, obj.version));
        match obj.data {
            Some(data) => map_into(data, depth, out),
            None => out.push_str("{}"),
        }
        return;
    }
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                short_into(item, depth + 1, out);
            }
            out.push(']');
        }
        Value::Object(map) => map_into(map, depth, out),
        other => out.push_str(&other.to_string()),
    }
}

/// Fields that say which thing this is come first; the rest follow by name.
const IDENTITY: [&str; 5] = ["uuid", "id", "name", "display_name", "host"];

fn ordered(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut fields: Vec<(&String, &Value)> = map.iter().collect();
    fields.sort_by_key(|(k, _)| {
        IDENTITY
            .iter()
            .position(|i| i == k)
            .unwrap_or(IDENTITY.len())
    });
    fields
}

fn map_into(map: &Map<String, Value>, depth: usize, out: &mut String) {
    out.push('{');
    for (i, (k, v)) in ordered(map).into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(k);
        out.push_str(": ");
        short_into(v, depth + 1, out);
    }
    out.push('}');
}

/// The value as an indented tree: short values on one line, the rest one field per line.
pub fn tree(value: &Value, indent: usize, lines: &mut Vec<String>) {
    let pad = " ".repeat(indent);
    let one = short(value);
    if one.chars().count() + indent <= INLINE || indent / 2 > MAX_DEPTH {
        lines.push(format!("{pad}{one}"));
        return;
    }
    if let Some(obj) = versioned_object(value) {
        lines.push(format!("{pad}{}", obj.heading()));
        if let Some(data) = obj.data {
            fields(data, indent + 2, lines);
        }
        return;
    }
    match value {
        Value::Object(map) => fields(map, indent, lines),
        Value::Array(items) => {
            for item in items {
                let mut sub = Vec::new();
                tree(item, indent + 2, &mut sub);
                if let Some(first) = sub.first_mut() {
                    // `- ` takes the place of the first line's indent.
                    *first = format!("{pad}- {}", first.trim_start());
                }
                lines.extend(sub);
            }
        }
        _ => lines.push(format!("{pad}{one}")),
    }
}

fn fields(map: &Map<String, Value>, indent: usize, lines: &mut Vec<String>) {
    let pad = " ".repeat(indent);
    if indent / 2 > MAX_DEPTH {
        lines.push(format!("{pad}…"));
        return;
    }
    for (k, v) in ordered(map) {
        let one = short(v);
        if one.chars().count() + k.len() + 2 + indent <= INLINE {
            lines.push(format!("{pad}{k}: {one}"));
        } else if let Some(obj) = versioned_object(v) {
            lines.push(format!("{pad}{k}: {}", obj.heading()));
            if let Some(data) = obj.data {
                fields(data, indent + 2, lines);
            }
        } else {
            lines.push(format!("{pad}{k}:"));
            tree(v, indent + 2, lines);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Bodies oslo.messaging 18.3 really sent (tests/python/capture_oslo_bodies.py).
    const CAST: &[u8] = include_bytes!("../../tests/fixtures/oslo/cast.json");
    const CALL: &[u8] = include_bytes!("../../tests/fixtures/oslo/call.json");
    const REPLY: &[u8] = include_bytes!("../../tests/fixtures/oslo/reply.json");
    const FAILURE: &[u8] = include_bytes!("../../tests/fixtures/oslo/failure.json");
    // Notifications Nova 34.0.0 sent during a boot (assets/traces/nova-boot-notifications.yaml).
    const NOTIFICATION: &[u8] = include_bytes!("../../tests/fixtures/oslo/notification.json");
    const VERSIONED: &[u8] =
        include_bytes!("../../tests/fixtures/oslo/versioned_notification.json");

    fn request(body: &[u8]) -> Request {
        match decode(body) {
            Some(Oslo::Request(r)) => r,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn reply(body: &[u8]) -> Reply {
        match decode(body) {
            Some(Oslo::Reply(r)) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn a_cast_has_method_version_namespace_and_context() {
        let r = request(CAST);
        assert_eq!(r.headline(), "cast schedule_and_build_instances 1.17");
        assert_eq!(r.namespace.as_deref(), Some("compute_task"));
        assert_eq!(r.call, None);
        assert_eq!(
            r.context.request_id.as_deref(),
            Some("req-6d1c2a7e-0c1b-4a8e-9f1e-3b6f7f0a1c2d")
        );
        assert_eq!(r.context.user.as_deref(), Some("4f2b1a"));
        assert_eq!(r.context.project.as_deref(), Some("9c8d7e"));
        assert_eq!(
            r.context.other, 1,
            "is_admin is the one other context field"
        );
    }

    #[test]
    fn a_call_names_its_reply_queue() {
        let r = request(CALL);
        assert_eq!(r.headline(), "call object_action 1.0");
        let call = r.call.expect("a call");
        assert!(call.reply_q.starts_with("reply_"), "{}", call.reply_q);
        assert_eq!(call.msg_id.len(), 32);
    }

    #[test]
    fn nova_objects_read_as_objects() {
        let lines = request(CALL).args;
        let objinst = short(&lines["objinst"]);
        assert_eq!(
            objinst,
            "Instance 2.7 {uuid: \"8f2c6d3e-1a4b-4c5d-8e9f-0a1b2c3d4e5f\", host: null, \
             flavor_id: 1, vm_state: \"building\"}"
        );
        let text = Oslo::Request(request(CAST)).lines(Lang::En).join("\n");
        assert!(text.contains("Instance 2.7"), "{text}");
        assert!(!text.contains("nova_object"), "no JSON noise: {text}");
    }

    #[test]
    fn a_long_object_becomes_a_tree_with_its_changes() {
        let object: Value = serde_json::from_str(
            r#"{"nova_object.name": "Instance", "nova_object.version": "2.7",
                "nova_object.namespace": "nova", "nova_object.changes": ["host"],
                "nova_object.data": {"uuid": "8f2c6d3e-1a4b-4c5d-8e9f-0a1b2c3d4e5f",
                "host": "compute-node-with-a-rather-long-name.example.org",
                "display_name": "a server"}}"#,
        )
        .unwrap();
        let mut lines = Vec::new();
        tree(&object, 2, &mut lines);
        assert_eq!(
            lines,
            [
                "  Instance 2.7 (changed: host)",
                "    uuid: \"8f2c6d3e-1a4b-4c5d-8e9f-0a1b2c3d4e5f\"",
                "    display_name: \"a server\"",
                "    host: \"compute-node-with-a-rather-long-name.example.org\"",
            ]
        );
    }

    #[test]
    fn replies_carry_result_or_failure() {
        let ok = reply(REPLY);
        assert!(ok.ending);
        assert_eq!(ok.failure, None);
        assert_eq!(short(&ok.result), "{host: \"node1\", saved: true}");
        assert_eq!(ok.headline(), "reply");
        let failed = reply(FAILURE);
        assert_eq!(
            failed.failure.as_deref(),
            Some("NoSuchMethod: Endpoint does not support RPC method no_such_method")
        );
        assert_eq!(failed.headline(), "reply failed: NoSuchMethod");
    }

    fn notification(body: &[u8]) -> Notification {
        match decode(body) {
            Some(Oslo::Notification(n)) => n,
            other => panic!("expected a notification, got {other:?}"),
        }
    }

    #[test]
    fn a_notification_says_its_event_priority_and_publisher() {
        let legacy = notification(NOTIFICATION);
        assert_eq!(
            legacy.headline(),
            "notification compute.instance.create.start INFO"
        );
        assert_eq!(legacy.publisher_id.as_deref(), Some("compute.compute-1"));
        assert_eq!(
            legacy.payload_summary(),
            "instance_id: \"0b6f6e6f-7661-4000-8000-626f6f74696e\", display_name: \"vm1\", \
             host: \"compute-1\", state: \"building\""
        );
        let versioned = notification(VERSIONED);
        assert_eq!(
            versioned.headline(),
            "notification instance.create.start INFO"
        );
        assert_eq!(
            versioned.publisher_id.as_deref(),
            Some("nova-compute:compute-1")
        );
        assert_eq!(versioned.payload_summary(), "InstanceCreatePayload 1.13");
    }

    #[test]
    fn a_versioned_notification_reads_as_its_payload_object() {
        let en = Oslo::Notification(notification(VERSIONED)).lines(Lang::En);
        assert_eq!(en[0], "oslo.messaging notification");
        assert_eq!(en[1], "  event      instance.create.start");
        assert_eq!(en[3], "  publisher  nova-compute:compute-1");
        assert_eq!(en[5], "  payload    InstanceCreatePayload 1.13");
        let text = en.join("\n");
        assert!(
            text.contains("    uuid: \"0b6f6e6f-7661-4000-8000-626f6f74696e\""),
            "{text}"
        );
        assert!(!text.contains("nova_object"), "no JSON noise: {text}");
        let zh = Oslo::Notification(notification(VERSIONED)).lines(Lang::Zh);
        assert_eq!(zh[0], "oslo.messaging 通知");
        assert_eq!(zh[1], "  事件       instance.create.start");
        assert_eq!(zh[5], "  负载       InstanceCreatePayload 1.13");
    }

    #[test]
    fn other_bodies_are_not_oslo() {
        assert_eq!(decode(b"hello"), None);
        assert_eq!(decode(br#"{"method": "x"}"#), None);
        assert_eq!(decode(br#"{"oslo.message": "[1, 2]"}"#), None);
        // Cut bodies are not JSON: the inspector shows them as text.
        assert_eq!(decode(&CALL[..CALL.len() / 2]), None);
    }

    #[test]
    fn deep_nesting_stops_at_a_fixed_depth() {
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        let value: Value = serde_json::from_str(&deep).unwrap();
        assert!(short(&value).contains('…'));
        let mut lines = Vec::new();
        tree(&value, 0, &mut lines);
        assert!(lines.len() <= MAX_DEPTH + 2, "{}", lines.len());
    }
}
