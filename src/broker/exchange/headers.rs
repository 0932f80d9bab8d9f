//! Headers exchange: bindings match on message headers, not the routing key.
//!
//! `x-match` chooses the rule: `all` (the default) needs every binding argument present with an
//! equal value, `any` needs one. Plain `all`/`any` ignore binding arguments starting with `x-`;
//! `all-with-x`/`any-with-x` include them. A void argument value only asks that the header is
//! present. An `all` binding with no other arguments matches everything, an `any` one nothing.

use std::sync::Arc;

use amq_protocol::types::{AMQPValue, FieldTable, LongString};

use super::{remove_binding, Binding, Router};

#[derive(Default)]
pub struct HeadersRouter {
    all: Vec<Arc<Binding>>,
}

impl Router for HeadersRouter {
    fn bind(&mut self, binding: Arc<Binding>) {
        self.all.push(binding);
    }

    fn unbind(&mut self, binding: &Binding) -> bool {
        remove_binding(&mut self.all, binding)
    }

    fn route(&self, _routing_key: &str, headers: Option<&FieldTable>, out: &mut Vec<Arc<Binding>>) {
        let empty = FieldTable::default();
        let headers = headers.unwrap_or(&empty);
        out.extend(
            self.all
                .iter()
                .filter(|b| headers_match(&b.arguments, headers).matched)
                .cloned(),
        );
    }

    fn bindings(&self) -> Vec<Arc<Binding>> {
        self.all.clone()
    }

    fn binding_count(&self) -> usize {
        self.all.len()
    }
}

/// The verdict for one binding argument, for "why it went there" explanations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgumentCheck {
    pub key: String,
    pub wanted: String,
    pub found: Option<String>,
    pub ok: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadersVerdict {
    pub x_match: String,
    pub checks: Vec<ArgumentCheck>,
    pub matched: bool,
}

/// Matches one binding's arguments against a message's headers, explaining each argument.
pub fn headers_match(arguments: &FieldTable, headers: &FieldTable) -> HeadersVerdict {
    let x_match = match arguments.inner().get("x-match") {
        Some(v) => value_text(v),
        None => "all".to_string(),
    };
    let (any, with_x) = match x_match.as_str() {
        "any" => (true, false),
        "any-with-x" => (true, true),
        "all-with-x" => (false, true),
        _ => (false, false),
    };
    let mut checks = Vec::new();
    for (key, wanted) in arguments {
        let key = key.as_str();
        if key == "x-match" || (!with_x && key.starts_with("x-")) {
            continue;
        }
        let found = headers.inner().get(key);
        let ok = match (wanted, found) {
            (_, None) => false,
            (AMQPValue::Void, Some(_)) => true,
            (wanted, Some(found)) => values_equal(wanted, found),
        };
        checks.push(ArgumentCheck {
            key: key.to_string(),
            wanted: value_text(wanted),
            found: found.map(value_text),
            ok,
        });
    }
    let matched = if any {
        checks.iter().any(|c| c.ok)
    } else {
        checks.iter().all(|c| c.ok)
    };
    HeadersVerdict {
        x_match,
        checks,
        matched,
    }
}

/// A comparable form of a field value that forgets the wire type tag.
#[derive(PartialEq)]
enum Plain<'a> {
    Int(i128),
    Float(f64),
    Bytes(&'a [u8]),
    Other(&'a AMQPValue),
}

fn plain(v: &AMQPValue) -> Plain<'_> {
    match v {
        AMQPValue::Boolean(b) => Plain::Int(*b as i128),
        AMQPValue::ShortShortInt(n) => Plain::Int(*n as i128),
        AMQPValue::ShortShortUInt(n) => Plain::Int(*n as i128),
        AMQPValue::ShortInt(n) => Plain::Int(*n as i128),
        AMQPValue::ShortUInt(n) => Plain::Int(*n as i128),
        AMQPValue::LongInt(n) => Plain::Int(*n as i128),
        AMQPValue::LongUInt(n) => Plain::Int(*n as i128),
        AMQPValue::LongLongInt(n) => Plain::Int(*n as i128),
        AMQPValue::Timestamp(n) => Plain::Int(*n as i128),
        AMQPValue::Float(f) => Plain::Float(*f as f64),
        AMQPValue::Double(f) => Plain::Float(*f),
        AMQPValue::ShortString(s) => Plain::Bytes(s.as_str().as_bytes()),
        AMQPValue::LongString(s) => Plain::Bytes(s.as_bytes()),
        AMQPValue::ByteArray(b) => Plain::Bytes(b.as_slice()),
        other => Plain::Other(other),
    }
}

fn values_equal(a: &AMQPValue, b: &AMQPValue) -> bool {
    plain(a) == plain(b)
}

/// How many tables and arrays deep a value is written out; deeper ones show as `…`. As deep
/// as the embedded broker accepts, so what it takes is shown whole; RabbitMQ passes on headers
/// nested thousands deep, and writing those out would recurse as deep.
pub const SHOWN_DEPTH: usize = 100;

/// A field value as a person reads it, tables and arrays past [`SHOWN_DEPTH`] as `…` (so the
/// recursion is bounded, however deep the value).
pub fn value_text(v: &AMQPValue) -> String {
    value_text_within(v, SHOWN_DEPTH)
}

/// `key=value` text (as [`value_text`] writes it) back as a field table of strings, so a
/// snapshot's binding arguments can be matched against a trace's headers as a headers
/// exchange would.
pub fn text_table(pairs: &[(String, String)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in pairs {
        let value = if v == "(void)" {
            AMQPValue::Void
        } else {
            AMQPValue::LongString(LongString::from(v.as_str()))
        };
        table.insert(k.as_str().into(), value);
    }
    table
}

fn value_text_within(v: &AMQPValue, depth: usize) -> String {
    match plain(v) {
        Plain::Int(n) => n.to_string(),
        Plain::Float(f) => f.to_string(),
        Plain::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Plain::Other(AMQPValue::Void) => "(void)".to_string(),
        Plain::Other(AMQPValue::FieldArray(_) | AMQPValue::FieldTable(_)) if depth == 0 => {
            "…".to_string()
        }
        Plain::Other(AMQPValue::FieldArray(a)) => {
            let items: Vec<String> = a
                .as_slice()
                .iter()
                .map(|v| value_text_within(v, depth - 1))
                .collect();
            format!("[{}]", items.join(", "))
        }
        Plain::Other(AMQPValue::FieldTable(t)) => {
            let items: Vec<String> = t
                .into_iter()
                .map(|(k, v)| format!("{k}={}", value_text_within(v, depth - 1)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Plain::Other(other) => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    fn s(v: &str) -> AMQPValue {
        AMQPValue::LongString(v.into())
    }

    #[test]
    fn deep_values_are_cut_short() {
        let mut value = s("bottom");
        for _ in 0..20_000 {
            value = AMQPValue::FieldArray(vec![value].into());
        }
        let text = value_text(&value);
        let open = "[".repeat(SHOWN_DEPTH);
        let close = "]".repeat(SHOWN_DEPTH);
        assert_eq!(text, format!("{open}…{close}"));
        // Dropping it is recursive too; a thread of its own with room for that.
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(move || drop(value))
            .unwrap()
            .join()
            .unwrap();
        let shallow = table(&[("a", AMQPValue::FieldTable(table(&[("b", s("c"))])))]);
        assert_eq!(value_text(&AMQPValue::FieldTable(shallow)), "{a={b=c}}");
    }

    #[test]
    fn all_and_any() {
        let msg = table(&[("format", s("pdf")), ("type", s("report"))]);
        let all = table(&[("format", s("pdf")), ("type", s("log"))]);
        assert!(!headers_match(&all, &msg).matched);
        let any = table(&[
            ("x-match", s("any")),
            ("format", s("pdf")),
            ("type", s("log")),
        ]);
        assert!(headers_match(&any, &msg).matched);
    }

    #[test]
    fn types_are_compared_without_tags() {
        let msg = table(&[("n", AMQPValue::LongLongInt(7))]);
        let b = table(&[("n", AMQPValue::ShortShortUInt(7))]);
        assert!(headers_match(&b, &msg).matched);
    }

    #[test]
    fn void_means_present_and_empty_bindings() {
        let msg = table(&[("k", s("v"))]);
        assert!(headers_match(&table(&[("k", AMQPValue::Void)]), &msg).matched);
        assert!(headers_match(&table(&[]), &msg).matched);
        assert!(!headers_match(&table(&[("x-match", s("any"))]), &msg).matched);
    }

    #[test]
    fn x_arguments_only_count_with_x() {
        let msg = table(&[("x-k", s("v"))]);
        assert!(headers_match(&table(&[("x-k", s("other"))]), &msg).matched);
        let with_x = table(&[("x-match", s("all-with-x")), ("x-k", s("other"))]);
        assert!(!headers_match(&with_x, &msg).matched);
    }
}
