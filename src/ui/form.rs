//! Forms for acting on the broker from the screen: publish a message, declare an exchange or a
//! queue, bind, and the one-key commands (delete or unbind, purge, get). A form only collects text; the
//! event loop runs the resulting [`Command`] on the broker.

/// What the user asked the broker to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Publish {
        exchange: String,
        routing_key: String,
        /// `key=value` pairs.
        headers: Vec<(String, String)>,
        body: String,
    },
    DeclareExchange {
        name: String,
        kind: String,
    },
    DeclareQueue {
        name: String,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormKind {
    Publish,
    DeclareExchange,
    DeclareQueue,
    Bind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Form {
    pub kind: FormKind,
    pub fields: Vec<(&'static str, String)>,
    pub active: usize,
}

impl Form {
    /// A new form, prefilled from the current selection where that helps.
    pub fn new(kind: FormKind, exchange: Option<&str>, queue: Option<&str>) -> Form {
        let ex = exchange.unwrap_or("").to_string();
        let q = queue.unwrap_or("").to_string();
        let fields = match kind {
            FormKind::Publish => vec![
                ("exchange", ex),
                ("routing key", q),
                ("headers (k=v, ...)", String::new()),
                ("body", String::new()),
            ],
            FormKind::DeclareExchange => vec![
                ("name", String::new()),
                ("type (direct, fanout, topic, headers)", "topic".into()),
            ],
            FormKind::DeclareQueue => vec![("name (empty: server-named)", String::new())],
            FormKind::Bind => vec![
                ("exchange", ex),
                ("queue", q),
                ("binding key", String::new()),
            ],
        };
        Form {
            kind,
            fields,
            active: 0,
        }
    }

    pub fn title(&self) -> &'static str {
        match self.kind {
            FormKind::Publish => " publish a message ",
            FormKind::DeclareExchange => " declare an exchange ",
            FormKind::DeclareQueue => " declare a queue ",
            FormKind::Bind => " bind a queue to an exchange ",
        }
    }

    pub fn input(&mut self, c: char) {
        self.fields[self.active].1.push(c);
    }

    pub fn backspace(&mut self) {
        self.fields[self.active].1.pop();
    }

    pub fn next_field(&mut self) {
        self.active = (self.active + 1) % self.fields.len();
    }

    fn value(&self, i: usize) -> String {
        self.fields[i].1.trim().to_string()
    }

    /// The command the form describes, or what is missing.
    pub fn command(&self) -> Result<Command, String> {
        match self.kind {
            FormKind::Publish => {
                let mut headers = Vec::new();
                for pair in self
                    .value(2)
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                {
                    let (k, v) = pair
                        .split_once('=')
                        .ok_or_else(|| format!("header '{pair}' is not key=value"))?;
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
                Ok(Command::Publish {
                    exchange: self.value(0),
                    routing_key: self.value(1),
                    headers,
                    body: self.fields[3].1.clone(),
                })
            }
            FormKind::DeclareExchange => {
                let name = self.value(0);
                if name.is_empty() {
                    return Err("an exchange needs a name".into());
                }
                Ok(Command::DeclareExchange {
                    name,
                    kind: self.value(1),
                })
            }
            FormKind::DeclareQueue => Ok(Command::DeclareQueue {
                name: self.value(0),
            }),
            FormKind::Bind => {
                let (exchange, queue) = (self.value(0), self.value(1));
                if exchange.is_empty() || queue.is_empty() {
                    return Err("a binding needs an exchange and a queue".into());
                }
                Ok(Command::Bind {
                    exchange,
                    queue,
                    routing_key: self.value(2),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_form_parses_headers() {
        let mut form = Form::new(FormKind::Publish, Some("amq.headers"), None);
        form.next_field();
        form.next_field();
        for c in "format=pdf, type=report".chars() {
            form.input(c);
        }
        let Command::Publish {
            exchange, headers, ..
        } = form.command().unwrap()
        else {
            panic!()
        };
        assert_eq!(exchange, "amq.headers");
        assert_eq!(
            headers,
            [
                ("format".to_string(), "pdf".to_string()),
                ("type".to_string(), "report".to_string())
            ]
        );
        form.input(',');
        form.input('x');
        assert!(form.command().unwrap_err().contains("key=value"));
    }

    #[test]
    fn bind_needs_both_ends() {
        let form = Form::new(FormKind::Bind, Some("animals"), None);
        assert!(form.command().is_err());
    }
}
