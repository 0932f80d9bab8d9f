//! Forms for acting on the broker from the screen: publish a message, declare an exchange or a
//! queue, bind, and the one-key commands (delete or unbind, purge, get). A form only collects text; the
//! event loop runs the resulting [`Command`] on the broker.

use crate::lesson::Lang;
use crate::ui::words::tr;

/// A typed value for an argument or a header, as the user typed it: integers stay integers
/// (RabbitMQ refuses `x-message-ttl` as text), `true`/`false` are booleans, the rest is text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bool(bool),
    Text(String),
}

impl Value {
    pub fn parse(text: &str) -> Value {
        if let Ok(n) = text.parse() {
            return Value::Int(n);
        }
        match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::Text(text.to_string()),
        }
    }
}

/// `key=value` pairs, in the order typed.
pub type Pairs = Vec<(String, Value)>;

/// The properties of a published message the publish form sets; empty means not set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Properties {
    pub persistent: bool,
    pub expiration: String,
    pub content_type: String,
    pub reply_to: String,
    pub correlation_id: String,
}

/// What the user asked the broker to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Publish {
        exchange: String,
        routing_key: String,
        headers: Pairs,
        properties: Properties,
        body: String,
    },
    DeclareExchange {
        name: String,
        kind: String,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: Pairs,
    },
    DeclareQueue {
        name: String,
        durable: bool,
        auto_delete: bool,
        exclusive: bool,
        arguments: Pairs,
    },
    Bind {
        exchange: String,
        queue: String,
        routing_key: String,
    },
    /// Remove this binding (exchange.unbind or queue.unbind).
    Unbind {
        binding: crate::events::BindingInfo,
    },
    DeleteExchange {
        name: String,
    },
    DeleteQueue {
        name: String,
    },
    Purge {
        queue: String,
    },
    Get {
        queue: String,
    },
}

impl Command {
    /// A declare with defaults: transient, no arguments.
    pub fn declare_queue(name: &str) -> Command {
        Command::DeclareQueue {
            name: name.into(),
            durable: false,
            auto_delete: false,
            exclusive: false,
            arguments: vec![],
        }
    }

    pub fn declare_exchange(name: &str, kind: &str) -> Command {
        Command::DeclareExchange {
            name: name.into(),
            kind: kind.into(),
            durable: false,
            auto_delete: false,
            internal: false,
            arguments: vec![],
        }
    }
}

/// A command that loses something, held until the user says yes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirm {
    /// What will happen, in a sentence: what goes and how many messages are lost.
    pub question: String,
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormKind {
    Publish,
    DeclareExchange,
    DeclareQueue,
    Bind,
}

/// One line of a form. A flag holds "yes" or "no": `y`, `n` or space set it, nothing else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The field's name; the form reads its value by it.
    pub label: &'static str,
    /// The label a Chinese screen shows (queue arguments keep RabbitMQ's own names).
    pub zh: &'static str,
    pub value: String,
    pub flag: bool,
}

impl Field {
    /// The label in the view's language.
    pub fn label_in(&self, lang: Lang) -> &'static str {
        tr(lang, self.label, self.zh)
    }
}

fn text((label, zh): (&'static str, &'static str), value: impl Into<String>) -> Field {
    Field {
        label,
        zh,
        value: value.into(),
        flag: false,
    }
}

fn flag((label, zh): (&'static str, &'static str)) -> Field {
    Field {
        label,
        zh,
        value: "no".into(),
        flag: true,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Form {
    pub kind: FormKind,
    pub fields: Vec<Field>,
    pub active: usize,
}

/// Queue arguments with a field of their own, and whether each is an integer.
const QUEUE_ARGUMENTS: &[(&str, bool)] = &[
    ("x-message-ttl", true),
    ("x-expires", true),
    ("x-max-length", true),
    ("x-dead-letter-exchange", false),
    ("x-dead-letter-routing-key", false),
    ("x-max-priority", true),
    ("x-queue-type", false),
];

const MORE: (&str, &str) = ("more arguments (k=v, ...)", "更多参数 (k=v, ...)");

impl Form {
    /// A new form, prefilled from the current selection where that helps.
    pub fn new(kind: FormKind, exchange: Option<&str>, queue: Option<&str>) -> Form {
        let ex = exchange.unwrap_or("");
        let q = queue.unwrap_or("");
        let fields = match kind {
            FormKind::Publish => vec![
                text(("exchange", "交换器"), ex),
                text(("routing key", "路由键"), q),
                text(("headers (k=v, ...)", "消息头 (k=v, ...)"), ""),
                flag(("persistent", "持久化消息 (persistent)")),
                text(("expiration (ms)", "过期时间 (expiration, 毫秒)"), ""),
                text(("content type", "内容类型 (content type)"), ""),
                text(("reply to", "回复队列 (reply to)"), ""),
                text(("correlation id", "关联 id (correlation id)"), ""),
                text(("body", "消息体"), ""),
            ],
            FormKind::DeclareExchange => vec![
                text(("name", "名称"), ""),
                text(
                    (
                        "type (direct, fanout, topic, headers)",
                        "类型 (direct, fanout, topic, headers)",
                    ),
                    "topic",
                ),
                flag(("durable", "持久 (durable)")),
                flag(("auto-delete", "自动删除 (auto-delete)")),
                flag(("internal", "内部 (internal)")),
                text(
                    ("alternate-exchange", "备用交换器 (alternate-exchange)"),
                    "",
                ),
                text(MORE, ""),
            ],
            FormKind::DeclareQueue => {
                let mut fields = vec![
                    text(
                        ("name (empty: server-named)", "名称（留空则由服务器命名）"),
                        "",
                    ),
                    flag(("durable", "持久 (durable)")),
                    flag(("auto-delete", "自动删除 (auto-delete)")),
                    flag(("exclusive", "排他 (exclusive)")),
                ];
                fields.extend(QUEUE_ARGUMENTS.iter().map(|(arg, _)| text((arg, arg), "")));
                fields.push(text(MORE, ""));
                fields
            }
            FormKind::Bind => vec![
                text(("exchange", "交换器"), ex),
                text(("queue", "队列"), q),
                text(("binding key", "绑定键"), ""),
            ],
        };
        Form {
            kind,
            fields,
            active: 0,
        }
    }

    /// The form's title in the view's language.
    pub fn title(&self, lang: Lang) -> &'static str {
        match self.kind {
            FormKind::Publish => tr(lang, " publish a message ", " 发布一条消息 "),
            FormKind::DeclareExchange => tr(lang, " declare an exchange ", " 声明交换器 "),
            FormKind::DeclareQueue => tr(lang, " declare a queue ", " 声明队列 "),
            FormKind::Bind => tr(
                lang,
                " bind a queue to an exchange ",
                " 把队列绑定到交换器 ",
            ),
        }
    }

    pub fn input(&mut self, c: char) {
        let field = &mut self.fields[self.active];
        if !field.flag {
            field.value.push(c);
            return;
        }
        let yes = match c {
            'y' | 'Y' => true,
            'n' | 'N' => false,
            ' ' => field.value != "yes",
            _ => return,
        };
        field.value = if yes { "yes" } else { "no" }.into();
    }

    pub fn backspace(&mut self) {
        let field = &mut self.fields[self.active];
        if !field.flag {
            field.value.pop();
        }
    }

    pub fn next_field(&mut self) {
        self.active = (self.active + 1) % self.fields.len();
    }

    pub fn prev_field(&mut self) {
        self.active = (self.active + self.fields.len() - 1) % self.fields.len();
    }

    /// The trimmed text of the field with this label ("" if the form has none).
    fn value(&self, label: &str) -> String {
        self.fields
            .iter()
            .find(|f| f.label == label)
            .map(|f| f.value.trim().to_string())
            .unwrap_or_default()
    }

    fn yes(&self, label: &str) -> bool {
        self.value(label) == "yes"
    }

    /// The command the form describes, or what is missing.
    pub fn command(&self) -> Result<Command, FormError> {
        match self.kind {
            FormKind::Publish => Ok(Command::Publish {
                exchange: self.value("exchange"),
                routing_key: self.value("routing key"),
                headers: pairs(&self.value("headers (k=v, ...)"), "header")?,
                properties: Properties {
                    persistent: self.yes("persistent"),
                    expiration: self.value("expiration (ms)"),
                    content_type: self.value("content type"),
                    reply_to: self.value("reply to"),
                    correlation_id: self.value("correlation id"),
                },
                // The body is sent as typed, spaces and all.
                body: self
                    .fields
                    .last()
                    .map(|f| f.value.clone())
                    .unwrap_or_default(),
            }),
            FormKind::DeclareExchange => {
                let name = self.value("name");
                if name.is_empty() {
                    return Err(FormError::ExchangeName);
                }
                let mut arguments = Vec::new();
                let alternate = self.value("alternate-exchange");
                if !alternate.is_empty() {
                    arguments.push(("alternate-exchange".to_string(), Value::Text(alternate)));
                }
                arguments.extend(pairs(&self.value(MORE.0), "argument")?);
                Ok(Command::DeclareExchange {
                    name,
                    kind: self.value("type (direct, fanout, topic, headers)"),
                    durable: self.yes("durable"),
                    auto_delete: self.yes("auto-delete"),
                    internal: self.yes("internal"),
                    arguments,
                })
            }
            FormKind::DeclareQueue => {
                let mut arguments = Vec::new();
                for (arg, integer) in QUEUE_ARGUMENTS {
                    let value = self.value(arg);
                    if value.is_empty() {
                        continue;
                    }
                    let value = if *integer {
                        Value::Int(value.parse().map_err(|_| FormError::NotANumber(arg))?)
                    } else {
                        Value::Text(value)
                    };
                    arguments.push((arg.to_string(), value));
                }
                arguments.extend(pairs(&self.value(MORE.0), "argument")?);
                Ok(Command::DeclareQueue {
                    name: self.value("name (empty: server-named)"),
                    durable: self.yes("durable"),
                    auto_delete: self.yes("auto-delete"),
                    exclusive: self.yes("exclusive"),
                    arguments,
                })
            }
            FormKind::Bind => {
                let (exchange, queue) = (self.value("exchange"), self.value("queue"));
                if exchange.is_empty() || queue.is_empty() {
                    return Err(FormError::BindingEnds);
                }
                Ok(Command::Bind {
                    exchange,
                    queue,
                    routing_key: self.value("binding key"),
                })
            }
        }
    }
}

/// What a form lacks before its command can run; the text is the notice the screen shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("an exchange needs a name")]
    ExchangeName,
    #[error("a binding needs an exchange and a queue")]
    BindingEnds,
    /// A queue argument that takes an integer (`x-message-ttl`, ...).
    #[error("{0} must be a whole number")]
    NotANumber(&'static str),
    /// `what` is "header" or "argument".
    #[error("{what} '{pair}' is not key=value")]
    NotAPair { what: &'static str, pair: String },
}

/// `a=1, b=x` as typed pairs; `what` names them in the error.
fn pairs(text: &str, what: &'static str) -> Result<Pairs, FormError> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').ok_or_else(|| FormError::NotAPair {
                what,
                pair: pair.to_string(),
            })?;
            Ok((k.trim().to_string(), Value::parse(v.trim())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Why the form's command cannot be made, as the screen says it.
    fn refusal(form: &Form) -> String {
        form.command().unwrap_err().to_string()
    }

    fn type_in(form: &mut Form, label: &str, text: &str) {
        form.active = form.fields.iter().position(|f| f.label == label).unwrap();
        text.chars().for_each(|c| form.input(c));
    }

    #[test]
    fn publish_form_parses_headers_and_properties() {
        let mut form = Form::new(FormKind::Publish, Some("amq.headers"), None);
        type_in(&mut form, "headers (k=v, ...)", "format=pdf, pages=12");
        type_in(&mut form, "persistent", "y");
        type_in(&mut form, "expiration (ms)", "60000");
        type_in(&mut form, "content type", "application/json");
        type_in(&mut form, "reply to", "answers");
        type_in(&mut form, "correlation id", "c-7");
        let Command::Publish {
            exchange,
            headers,
            properties,
            ..
        } = form.command().unwrap()
        else {
            panic!()
        };
        assert_eq!(exchange, "amq.headers");
        assert_eq!(
            headers,
            [
                ("format".to_string(), Value::Text("pdf".into())),
                ("pages".to_string(), Value::Int(12))
            ]
        );
        assert_eq!(
            properties,
            Properties {
                persistent: true,
                expiration: "60000".into(),
                content_type: "application/json".into(),
                reply_to: "answers".into(),
                correlation_id: "c-7".into(),
            }
        );
        type_in(&mut form, "headers (k=v, ...)", ",x");
        assert!(refusal(&form).contains("key=value"));
    }

    #[test]
    fn queue_form_types_its_arguments() {
        let mut form = Form::new(FormKind::DeclareQueue, None, None);
        type_in(&mut form, "name (empty: server-named)", "orders");
        type_in(&mut form, "durable", " ");
        type_in(&mut form, "x-message-ttl", "5000");
        type_in(&mut form, "x-dead-letter-exchange", "dlx");
        type_in(
            &mut form,
            MORE.0,
            "x-overflow=reject-publish, x-single-active-consumer=true",
        );
        let command = form.command().unwrap();
        assert_eq!(
            command,
            Command::DeclareQueue {
                name: "orders".into(),
                durable: true,
                auto_delete: false,
                exclusive: false,
                arguments: vec![
                    ("x-message-ttl".into(), Value::Int(5000)),
                    ("x-dead-letter-exchange".into(), Value::Text("dlx".into())),
                    ("x-overflow".into(), Value::Text("reject-publish".into())),
                    ("x-single-active-consumer".into(), Value::Bool(true)),
                ],
            }
        );
        // A flag takes only yes or no; a number field only a number.
        type_in(&mut form, "durable", "x");
        assert_eq!(form.value("durable"), "yes");
        type_in(&mut form, "x-max-length", "ten");
        assert!(refusal(&form).contains("x-max-length"));
    }

    #[test]
    fn bind_needs_both_ends() {
        let form = Form::new(FormKind::Bind, Some("animals"), None);
        assert!(form.command().is_err());
    }

    #[test]
    fn every_form_field_has_chinese_words() {
        for kind in [
            FormKind::Publish,
            FormKind::DeclareExchange,
            FormKind::DeclareQueue,
            FormKind::Bind,
        ] {
            let form = Form::new(kind, None, None);
            assert_ne!(form.title(Lang::Zh), form.title(Lang::En), "{kind:?}");
            for field in &form.fields {
                let zh = field.label_in(Lang::Zh);
                let arguments = field.label.starts_with("x-");
                assert!(
                    arguments || zh != field.label,
                    "{kind:?}: `{}` has no Chinese label",
                    field.label
                );
            }
        }
    }
}
