//! oslo.messaging messages as Nova sends them: the `oslo.version` / `oslo.message` envelope
//! around a JSON request or reply.

use serde_json::{json, Map, Value};

use super::schema::Rpc;

pub const CONTENT_TYPE: &str = "application/json";
pub const CONTENT_ENCODING: &str = "utf-8";

/// A fresh id as oslo.messaging makes them: uuid4 hex, 32 characters.
pub fn random_hex() -> String {
    format!("{:032x}", uuid4())
}

/// A random uuid4 as 128 bits.
fn uuid4() -> u128 {
    let bits: u128 = rand::random();
    // The version and variant bits of a uuid4.
    let bits = (bits & !(0xf << 76)) | (0x4 << 76);
    (bits & !(0x3 << 62)) | (0x2 << 62)
}

/// The `connection_name` oslo.messaging gives each connection of a program:
/// `<program>:<pid>:<uuid4>` (`nova-conductor:4242:2c6f1e0a-8d3b-4f5e-9a7c-1b2d3e4f5a6b`).
pub fn connection_name(program: &str) -> String {
    let hex = format!("{:032x}", uuid4());
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    );
    format!("{program}:{}:{uuid}", std::process::id())
}

/// A JSON value whose objects keep their keys in the order they were written, as Python's
/// dicts do: oslo.messaging writes a method's arguments and the request context in the order
/// the caller gave them, and so does a lesson.
#[derive(Debug, Clone, PartialEq)]
pub enum Py {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Str(String),
    List(Vec<Py>),
    Dict(Message),
}

/// A JSON object whose keys keep the order oslo.messaging builds them in.
pub type Message = Vec<(String, Py)>;

impl Py {
    /// A YAML value, mappings in their written order; keys that are not text become their
    /// YAML spelling.
    pub fn from_yaml(value: &serde_yaml::Value) -> Py {
        match value {
            serde_yaml::Value::Null => Py::Null,
            serde_yaml::Value::Bool(b) => Py::Bool(*b),
            serde_yaml::Value::Number(n) => {
                let number = if let Some(i) = n.as_i64() {
                    Some(i.into())
                } else if let Some(u) = n.as_u64() {
                    Some(u.into())
                } else {
                    n.as_f64().and_then(serde_json::Number::from_f64)
                };
                number.map_or(Py::Null, Py::Number)
            }
            serde_yaml::Value::String(s) => Py::Str(s.clone()),
            serde_yaml::Value::Sequence(items) => {
                Py::List(items.iter().map(Py::from_yaml).collect())
            }
            serde_yaml::Value::Mapping(map) => Py::Dict(
                map.iter()
                    .map(|(k, v)| (super::runner::yaml_key(k), Py::from_yaml(v)))
                    .collect(),
            ),
            serde_yaml::Value::Tagged(tagged) => Py::from_yaml(&tagged.value),
        }
    }
}

impl From<Value> for Py {
    fn from(value: Value) -> Py {
        match value {
            Value::Null => Py::Null,
            Value::Bool(b) => Py::Bool(b),
            Value::Number(n) => Py::Number(n),
            Value::String(s) => Py::Str(s),
            Value::Array(items) => Py::List(items.into_iter().map(Py::from).collect()),
            Value::Object(map) => Py::Dict(map.into_iter().map(|(k, v)| (k, v.into())).collect()),
        }
    }
}

/// Wraps a message the way oslo.messaging's `serialize_msg` does, written as Python's
/// `json.dumps` writes it (kombu and oslo both use it): keys in insertion order, `", "` and
/// `": "` between items, non-ASCII as `\uXXXX`.
pub fn envelope(message: &Message) -> Vec<u8> {
    let outer = vec![
        ("oslo.version".to_string(), Py::Str("2.0".into())),
        ("oslo.message".to_string(), Py::Str(py_dumps(message))),
    ];
    py_dumps(&outer).into_bytes()
}

fn py_dumps(pairs: &[(String, Py)]) -> String {
    let mut out = String::new();
    py_dict(pairs, &mut out);
    out
}

fn py_dict(pairs: &[(String, Py)], out: &mut String) {
    out.push('{');
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        py_string(key, out);
        out.push_str(": ");
        py_value(value, out);
    }
    out.push('}');
}

fn py_value(value: &Py, out: &mut String) {
    match value {
        Py::Null => out.push_str("null"),
        Py::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Py::Number(n) => out.push_str(&n.to_string()),
        Py::Str(s) => py_string(s, out),
        Py::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_value(item, out);
            }
            out.push(']');
        }
        Py::Dict(pairs) => py_dict(pairs, out),
    }
}

fn py_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The inner message of an envelope, if `body` is one.
pub fn open_envelope(body: &[u8]) -> Option<Map<String, Value>> {
    let outer: Value = serde_json::from_slice(body).ok()?;
    let inner = outer.get("oslo.message")?.as_str()?;
    match serde_json::from_str(inner).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// A request, keys in the order oslo.messaging adds them: the client's `method`, `args`,
/// `namespace`, `version`; the driver's `_msg_id`, `_reply_q`, `_timeout` for a call, then
/// `_unique_id` and the `_context_*` keys. `_timeout` is the call-monitor timeout, null
/// without one: the call's own timeout travels only as the AMQP `expiration`.
pub fn request(rpc: &Rpc, msg_id: Option<&str>) -> Message {
    let mut message: Message = Vec::new();
    let mut add = |key: &str, value: Py| message.push((key.to_string(), value));
    add("method", Py::Str(rpc.method.clone()));
    let args = rpc
        .args
        .as_ref()
        .map_or(Py::Dict(Vec::new()), Py::from_yaml);
    add("args", args);
    if let Some(namespace) = &rpc.namespace {
        add("namespace", Py::Str(namespace.clone()));
    }
    if let Some(version) = &rpc.version {
        add("version", Py::Str(version.clone()));
    }
    if let Some(msg_id) = msg_id {
        add("_msg_id", Py::Str(msg_id.to_string()));
        let reply_q = rpc.reply_queue.clone().unwrap_or_default();
        add("_reply_q", Py::Str(reply_q));
        add("_timeout", json!(rpc.call_monitor_timeout).into());
    }
    add("_unique_id", Py::Str(random_hex()));
    for (key, value) in &rpc.context {
        let key = super::runner::yaml_key(key);
        add(&format!("_context_{key}"), Py::from_yaml(value));
    }
    message
}

/// A call's timeout in seconds: oslo.messaging's `rpc_response_timeout` unless given.
pub fn call_timeout(rpc: &Rpc) -> u32 {
    rpc.timeout.unwrap_or(60)
}

/// A call as its server sees it: where to send the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub msg_id: String,
    pub reply_q: String,
}

/// The call in a delivered body; `None` for a cast or anything that is not oslo.messaging.
pub fn read_call(body: &[u8]) -> Option<Call> {
    let message = open_envelope(body)?;
    Some(Call {
        msg_id: message.get("_msg_id")?.as_str()?.to_string(),
        reply_q: message.get("_reply_q")?.as_str()?.to_string(),
    })
}

/// The reply an oslo.messaging server sends: a result, or a failure the caller re-raises; with
/// `ending` false, a keep-alive (result and failure null) that only tells the caller to wait on.
pub fn reply(
    call: &Call,
    result: Option<&serde_yaml::Value>,
    failure: Option<&str>,
    ending: bool,
) -> Message {
    let failure = failure.map(|text| {
        // What serialize_remote_exception writes for a plain Exception.
        let data: Message = vec![
            ("class".into(), Py::Str("Exception".into())),
            ("module".into(), Py::Str("builtins".into())),
            ("message".into(), Py::Str(text.into())),
            ("tb".into(), Py::List(Vec::new())),
            ("args".into(), Py::List(vec![Py::Str(text.into())])),
            ("kwargs".into(), Py::Dict(Vec::new())),
        ];
        Py::Str(py_dumps(&data))
    });
    vec![
        ("result".into(), result.map_or(Py::Null, Py::from_yaml)),
        ("failure".into(), failure.unwrap_or(Py::Null)),
        ("ending".into(), Py::Bool(ending)),
        ("_msg_id".into(), Py::Str(call.msg_id.clone())),
        ("_unique_id".into(), Py::Str(random_hex())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_names_are_program_pid_and_a_fresh_uuid4() {
        let name = connection_name("nova-api");
        let parts: Vec<&str> = name.splitn(3, ':').collect();
        assert_eq!(parts[..2], ["nova-api", &std::process::id().to_string()]);
        let uuid = parts[2];
        let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{uuid}");
        assert!(uuid.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert_eq!(&uuid[14..15], "4", "version 4: {uuid}");
        assert!("89ab".contains(&uuid[19..20]), "RFC 4122 variant: {uuid}");
        assert_ne!(connection_name("nova-api"), name);
        let client = crate::events::ClientInfo {
            connection_name: Some(name),
            product: None,
        };
        assert_eq!(client.label("127.0.0.1:1"), "nova-api");
    }

    #[test]
    fn text_is_written_as_python_writes_it() {
        let message: Message = vec![
            ("a".into(), json!("é\"\n").into()),
            ("b".into(), json!([1, 2.5]).into()),
        ];
        let text = py_dumps(&message);
        assert_eq!(text, r#"{"a": "\u00e9\"\n", "b": [1, 2.5]}"#);
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["a"], "é\"\n");
    }

    fn rpc(yaml: &str) -> Rpc {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn a_call_carries_its_reply_queue_and_timeout_inside_the_envelope() {
        let call = rpc(
            "{exchange: nova, routing_key: scheduler, method: select_destinations, \
                        args: {instance_uuids: [abc]}, version: '4.5', call: true, \
                        reply_queue: reply_1, timeout: 30, context: {user_id: u1}}",
        );
        let body = envelope(&request(&call, Some("m1")));
        let outer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(outer["oslo.version"], "2.0");
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(
            text.starts_with(r#"{"oslo.version": "2.0", "oslo.message": "{\"method\": "#),
            "{text}"
        );
        let inner = open_envelope(&body).unwrap();
        assert_eq!(inner["method"], "select_destinations");
        assert_eq!(inner["args"], json!({"instance_uuids": ["abc"]}));
        assert_eq!(inner["version"], "4.5");
        assert_eq!(inner["_context_user_id"], "u1");
        // The call's timeout is the message's expiration, not `_timeout`: that one is the
        // call-monitor timeout, null unless asked for.
        assert_eq!(inner["_timeout"], Value::Null);
        let monitored = rpc("{method: select_destinations, call: true, reply_queue: r, \
                             timeout: 1800, call_monitor_timeout: 60}");
        let inner = open_envelope(&envelope(&request(&monitored, Some("m2")))).unwrap();
        assert_eq!(inner["_timeout"], 60);
        assert_eq!(inner["_unique_id"].as_str().unwrap().len(), 32);
        assert_eq!(
            read_call(&body),
            Some(Call {
                msg_id: "m1".into(),
                reply_q: "reply_1".into()
            })
        );
    }

    #[test]
    fn arguments_and_context_keep_the_order_they_were_written_in() {
        let cast =
            rpc("{method: m, args: {zone: a, host: b}, context: {user_id: u, project_id: p}}");
        let text = String::from_utf8(envelope(&request(&cast, None))).unwrap();
        let at = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle} in {text}"))
        };
        assert!(at("zone") < at("host"), "{text}");
        assert!(at("_context_user_id") < at("_context_project_id"), "{text}");
    }

    #[test]
    fn a_cast_is_not_a_call() {
        let cast = rpc("{method: build_and_run_instance}");
        let body = envelope(&request(&cast, None));
        assert_eq!(read_call(&body), None);
        assert!(open_envelope(&body).unwrap().get("_reply_q").is_none());
    }

    #[test]
    fn a_failure_is_a_json_text_naming_the_exception() {
        let call = Call {
            msg_id: "m1".into(),
            reply_q: "r".into(),
        };
        let body = envelope(&reply(&call, None, Some("no valid host"), true));
        let answer = open_envelope(&body).unwrap();
        assert_eq!(answer["result"], Value::Null);
        assert_eq!(answer["ending"], true);
        assert_eq!(answer["_msg_id"], "m1");
        let failure: Value = serde_json::from_str(answer["failure"].as_str().unwrap()).unwrap();
        assert_eq!(failure["message"], "no valid host");
    }

    #[test]
    fn a_keep_alive_is_an_empty_reply_that_does_not_end_the_call() {
        let call = Call {
            msg_id: "m1".into(),
            reply_q: "r".into(),
        };
        let answer = open_envelope(&envelope(&reply(&call, None, None, false))).unwrap();
        assert_eq!(answer["ending"], false);
        assert_eq!(answer["result"], Value::Null);
        assert_eq!(answer["failure"], Value::Null);
        assert_eq!(answer["_msg_id"], "m1");
    }
}
