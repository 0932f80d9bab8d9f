//! The checks a lesson must pass after it parses, those YAML's types cannot express: ids and
//! names AMQP can carry, consumers and clients declared before use, counts and codes in range,
//! `predict` choices and `expect` keys that make sense. Each problem names the path of the node
//! it is about; [`super::load`] turns the path into a line and column.
//!
//! It reads only the lesson's types ([`super::schema`]) and never a file or a broker.

use std::collections::{BTreeMap, BTreeSet};

use super::load::Seg;
use super::schema::{
    AckMode, Action, Arguments, Asked, BindingDecl, ExchangeDecl, Lesson, Properties, QueueDecl,
    Step, Text,
};
use crate::broker::release::Release;

/// A problem found after parsing, and the path of the node it is about. The message is what
/// the lesson's author reads after `file:line:col: `.
pub(super) struct Problem {
    pub(super) at: Vec<Seg<'static>>,
    pub(super) message: String,
}

fn problem(at: Vec<Seg<'static>>, message: impl Into<String>) -> Result<(), Problem> {
    Err(Problem {
        at,
        message: message.into(),
    })
}

fn key(k: &'static str) -> Seg<'static> {
    Seg::Key(k)
}

/// `behave_as` names a release rabbitscope behaves as, `permit` and `deny` deprecated features
/// of that release, none in both.
fn behaviour(lesson: &Lesson) -> Result<(), Problem> {
    let keys = Configuration {
        behave_as: lesson.behave_as.as_deref(),
        permit: &lesson.permit,
        deny: &lesson.deny,
    };
    configuration(&[], &keys, || lesson.behaviour().map(drop))
}

/// The keys that configure a broker: the lesson's own, or a `restart`'s.
struct Configuration<'a> {
    behave_as: Option<&'a str>,
    permit: &'a [String],
    deny: &'a [String],
}

/// Checks `keys` found at `base`; `build` makes the configuration they describe, and its error
/// is put on the key it names.
fn configuration(
    base: &[Seg<'static>],
    keys: &Configuration,
    build: impl Fn() -> Result<(), String>,
) -> Result<(), Problem> {
    if let Some(release) = keys.behave_as {
        if let Err(e) = release.parse::<Release>() {
            return problem(at(base, &[key("behave_as")]), format!("behave_as: {e}"));
        }
    }
    let lists = [("permit", keys.permit), ("deny", keys.deny)];
    for (field, features) in lists {
        for (i, name) in features.iter().enumerate() {
            let here = at(base, &[key(field), Seg::Index(i)]);
            if field == "permit" && keys.deny.contains(name) {
                return problem(here, format!("permit: `{name}` is also in `deny`"));
            }
            if let Err(e) = build() {
                if e.contains(name.as_str()) {
                    return problem(here, format!("{field}: {e}"));
                }
            }
        }
    }
    Ok(())
}

/// Extends a path by more segments.
fn at(base: &[Seg<'static>], more: &[Seg<'static>]) -> Vec<Seg<'static>> {
    base.iter().chain(more).cloned().collect()
}

/// Every check of a parsed lesson; the first problem found.
pub(super) fn validate(lesson: &Lesson) -> Result<(), Problem> {
    let id_ok = !lesson.id.is_empty()
        && lesson
            .id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !id_ok {
        return problem(
            vec![key("id")],
            format!(
                "id: expected lowercase letters, digits and '-', found `{}`",
                lesson.id
            ),
        );
    }
    if lesson.steps.is_empty() {
        return problem(vec![key("steps")], "steps: expected at least one step");
    }
    behaviour(lesson)?;
    let setup = &lesson.setup;
    for (i, x) in setup.exchanges.iter().enumerate() {
        exchange(&[key("setup"), key("exchanges"), Seg::Index(i)], x)?;
    }
    for (i, q) in setup.queues.iter().enumerate() {
        let here = [key("setup"), key("queues"), Seg::Index(i)];
        queue(&here, q)?;
        only_in_steps(&here, "client", q.client.is_some())?;
        only_in_steps(&here, "refused", q.refused.is_some())?;
    }
    for (i, b) in setup.bindings.iter().enumerate() {
        binding(&[key("setup"), key("bindings"), Seg::Index(i)], b)?;
    }

    // Consumers by name, as they stand before each action: manual or auto ack, still active.
    let mut consumers: BTreeMap<String, (AckMode, bool)> = BTreeMap::new();
    // Programs an action has played so far: the connections a `close` can close.
    let mut clients: BTreeSet<String> = BTreeSet::new();
    // The program each consumer consumes for.
    let mut consumed_by: BTreeMap<String, String> = BTreeMap::new();
    for (s, step) in lesson.steps.iter().enumerate() {
        let base = vec![key("steps"), Seg::Index(s)];
        if let Some(title) = &step.title {
            numbered_title(&base, s + 1, title)?;
        }
        if let Some(vhost) = &step.vhost {
            if vhost.is_empty() {
                return problem(at(&base, &[key("vhost")]), "vhost: expected a vhost name");
            }
            short(&base, "vhost", vhost)?;
        }
        for (a, action) in step.actions.iter().enumerate() {
            let here = at(&base, &[key("do"), Seg::Index(a), key(action.keyword())]);
            if let Some(name) = action.client() {
                client(&here, name)?;
                if let Action::Close(_) = action {
                    closable(&here, name, &clients)?;
                    // Its consumers go with its connection.
                    for (consumer, (_, active)) in consumers.iter_mut() {
                        if consumed_by.get(consumer).is_some_and(|c| c == name) {
                            *active = false;
                        }
                    }
                }
                clients.insert(name.to_string());
            }
            if let Some(code) = action.refused() {
                refused_code(&here, code)?;
                if CONNECTION_ERRORS.contains(&code) && action.client().is_none() {
                    return problem(
                        at(&here, &[key("refused")]),
                        format!(
                            "refused: {code} closes the whole connection: give the action a \
                             `client`, so the lesson's own connection stays open"
                        ),
                    );
                }
            }
            if let Action::Restart(r) = action {
                // Every connection closes, and every consumer with it.
                for (_, active) in consumers.values_mut() {
                    *active = false;
                }
                let keys = Configuration {
                    behave_as: r.behave_as.as_deref(),
                    permit: &r.permit,
                    deny: &r.deny,
                };
                // An unknown `behave_as` of the lesson was reported above.
                let release = lesson.release().unwrap_or(Release::DEFAULT);
                configuration(&here, &keys, || r.behaviour(release).map(drop))?;
            }
            validate_action(&here, action, &mut consumers)?;
            if let Action::Consume(c) = action {
                match &c.client {
                    Some(program) => consumed_by.insert(c.consumer.clone(), program.clone()),
                    None => consumed_by.remove(&c.consumer),
                };
            }
        }
        validate_predict(&base, step, &consumers)?;
        validate_expect(&base, step, &consumers)?;
    }
    Ok(())
}

/// A title that starts with a number (`7. The conductor replies`) is read as the step's
/// number, beside the pane's `step 8 of 15`: it must be that number.
fn numbered_title(base: &[Seg<'static>], n: usize, title: &Text) -> Result<(), Problem> {
    for (lang, text) in [("en", &title.en), ("zh", &title.zh)] {
        let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && digits != n.to_string() {
            return problem(
                at(base, &[key("title"), key(lang)]),
                format!(
                    "title: `{text}` reads as step {digits}, but this is step {n}: \
                     leave the number out"
                ),
            );
        }
    }
    Ok(())
}

/// Lessons are played live: a step should not keep the student waiting for long.
const MAX_WAIT_MS: u64 = 60_000;
const MAX_COUNT: u32 = 10_000;

/// The most bytes AMQP's short strings (names, keys, most properties) can carry.
const SHORT_MAX: usize = 255;

fn short(here: &[Seg<'static>], field: &'static str, text: &str) -> Result<(), Problem> {
    if text.len() > SHORT_MAX {
        return problem(
            at(here, &[key(field)]),
            format!(
                "{field}: expected at most {SHORT_MAX} bytes (AMQP's limit), found {}",
                text.len()
            ),
        );
    }
    Ok(())
}

/// Table keys are short strings too, at every depth.
fn short_keys(here: &[Seg<'static>], field: &'static str, args: &Arguments) -> Result<(), Problem> {
    fn walk(here: &[Seg<'static>], value: &serde_yaml::Value) -> Result<(), Problem> {
        match value {
            serde_yaml::Value::Mapping(map) => {
                for (k, v) in map {
                    let name = crate::lesson::runner::yaml_key(k);
                    if name.len() > SHORT_MAX {
                        return problem(
                            here.to_vec(),
                            format!("expected keys of at most {SHORT_MAX} bytes (AMQP's limit)"),
                        );
                    }
                    walk(&at(here, &[Seg::Owned(name)]), v)?;
                }
                Ok(())
            }
            serde_yaml::Value::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(&at(here, &[Seg::Index(i)]), item)?;
                }
                Ok(())
            }
            serde_yaml::Value::Tagged(tagged) => walk(here, &tagged.value),
            _ => Ok(()),
        }
    }
    let base = at(here, &[key(field)]);
    for (name, value) in args {
        if name.len() > SHORT_MAX {
            return problem(
                base.clone(),
                format!("{field}: expected keys of at most {SHORT_MAX} bytes (AMQP's limit)"),
            );
        }
        walk(&at(&base, &[Seg::Owned(name.clone())]), value)?;
    }
    Ok(())
}

/// The longest `client` a lesson may give.
const CLIENT_MAX: usize = 64;

/// `program` or `program@host`. The program goes first in an oslo.messaging connection name,
/// `<program>:<pid>:<uuid>`: no `:` (it would read as another part), no spaces.
fn client(here: &[Seg<'static>], client: &str) -> Result<(), Problem> {
    let name = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let fits = match client.split_once('@') {
        Some((program, host)) => name(program) && name(host),
        None => name(client),
    };
    if !fits || client.len() > CLIENT_MAX {
        return problem(
            at(here, &[key("client")]),
            format!(
                "client: expected a program name like `nova-api`, or `nova-compute@node1` for \
                 one of several hosts (letters, digits, '-', '_' and '.', at most {CLIENT_MAX} \
                 in all), found `{client}`"
            ),
        );
    }
    Ok(())
}

/// `close` closes a connection some earlier action opened as that program.
fn closable(here: &[Seg<'static>], name: &str, clients: &BTreeSet<String>) -> Result<(), Problem> {
    if clients.contains(name) {
        return Ok(());
    }
    let known = if clients.is_empty() {
        " (no action before this point has a `client`)".to_string()
    } else {
        let names: Vec<&str> = clients.iter().map(String::as_str).collect();
        format!(" (known: {})", names.join(", "))
    };
    problem(
        at(here, &[key("client")]),
        format!(
            "client: expected a program an earlier action names as its `client`, found \
             `{name}`{known}"
        ),
    )
}

/// The reply codes a refusal may expect: channel errors, which close only the refused
/// action's channel and leave the connection (and the lesson) running.
const CHANNEL_ERRORS: &[u16] = &[403, 404, 405, 406];

/// Connection errors a refusal may expect: 541 INTERNAL_ERROR, RabbitMQ's answer to a
/// deprecated feature it does not permit. They close the program's whole connection.
pub(super) const CONNECTION_ERRORS: &[u16] = &[541];

fn refused_code(here: &[Seg<'static>], code: u16) -> Result<(), Problem> {
    if CHANNEL_ERRORS.contains(&code) || CONNECTION_ERRORS.contains(&code) {
        return Ok(());
    }
    problem(
        at(here, &[key("refused")]),
        format!(
            "refused: expected a channel error code (403 ACCESS_REFUSED, 404 NOT_FOUND, \
             405 RESOURCE_LOCKED or 406 PRECONDITION_FAILED) or 541 INTERNAL_ERROR, found \
             {code}"
        ),
    )
}

/// Keys of a queue that only a step's `declare_queue` takes: `setup` runs on the lesson's own
/// connection and must succeed.
fn only_in_steps(here: &[Seg<'static>], field: &'static str, given: bool) -> Result<(), Problem> {
    if !given {
        return Ok(());
    }
    problem(
        at(here, &[key(field)]),
        format!("{field}: expected only on a step's `declare_queue`, not in `setup`"),
    )
}

fn exchange(here: &[Seg<'static>], x: &ExchangeDecl) -> Result<(), Problem> {
    declared_name(here, "name", &x.name, "exchange")?;
    short_keys(here, "arguments", &x.arguments)
}

fn queue(here: &[Seg<'static>], q: &QueueDecl) -> Result<(), Problem> {
    declared_name(here, "name", &q.name, "queue")?;
    short_keys(here, "arguments", &q.arguments)
}

fn declared_name(
    base: &[Seg<'static>],
    field: &'static str,
    name: &str,
    what: &str,
) -> Result<(), Problem> {
    if name.is_empty() {
        return problem(
            at(base, &[key(field)]),
            format!("{field}: expected the {what}'s name, found an empty name"),
        );
    }
    short(base, field, name)?;
    if name.starts_with("amq.") {
        return problem(
            at(base, &[key(field)]),
            format!(
                "{field}: expected a name that does not start with `amq.` (RabbitMQ keeps those), \
                 found `{name}`"
            ),
        );
    }
    Ok(())
}

fn binding(base: &[Seg<'static>], b: &BindingDecl) -> Result<(), Problem> {
    short(base, "exchange", &b.exchange)?;
    short(base, "routing_key", &b.routing_key)?;
    if let Some(q) = &b.queue {
        short(base, "queue", q)?;
    }
    if let Some(x) = &b.to_exchange {
        short(base, "to_exchange", x)?;
    }
    short_keys(base, "arguments", &b.arguments)?;
    match (&b.queue, &b.to_exchange) {
        (Some(_), Some(_)) => problem(
            at(base, &[key("to_exchange")]),
            "expected either `queue` or `to_exchange` as the destination, not both",
        ),
        (None, None) => problem(
            base.to_vec(),
            "expected a destination: `queue` or `to_exchange`",
        ),
        _ => Ok(()),
    }
}

fn known_consumer(
    here: &[Seg<'static>],
    field: &'static str,
    name: &str,
    consumers: &BTreeMap<String, (AckMode, bool)>,
) -> Result<(AckMode, bool), Problem> {
    match consumers.get(name) {
        Some(state) => Ok(*state),
        None => Err(Problem {
            at: at(here, &[key(field)]),
            message: format!(
                "{field}: expected the name of a consumer started by an earlier `consume`, \
                 found `{name}`{}",
                known_list(consumers)
            ),
        }),
    }
}

fn known_list(consumers: &BTreeMap<String, (AckMode, bool)>) -> String {
    if consumers.is_empty() {
        " (no consumer is started before this point)".to_string()
    } else {
        let names: Vec<&str> = consumers.keys().map(String::as_str).collect();
        format!(" (known: {})", names.join(", "))
    }
}

fn manual_consumer(
    here: &[Seg<'static>],
    keyword: &str,
    name: &str,
    consumers: &BTreeMap<String, (AckMode, bool)>,
) -> Result<(), Problem> {
    let (mode, _) = known_consumer(here, "consumer", name, consumers)?;
    if mode == AckMode::Auto {
        return problem(
            at(here, &[key("consumer")]),
            format!(
                "consumer: expected a consumer with `ack: manual` for `{keyword}`, but `{name}` \
                 acknowledges automatically"
            ),
        );
    }
    Ok(())
}

fn positive_count(here: &[Seg<'static>], count: Option<u32>) -> Result<(), Problem> {
    if count == Some(0) {
        return problem(at(here, &[key("count")]), "count: expected at least 1");
    }
    Ok(())
}

fn validate_action(
    here: &[Seg<'static>],
    action: &Action,
    consumers: &mut BTreeMap<String, (AckMode, bool)>,
) -> Result<(), Problem> {
    match action {
        Action::DeclareExchange(x) => exchange(here, x),
        Action::DeclareQueue(q) => queue(here, q),
        Action::Bind(b) | Action::Unbind(b) => binding(here, b),
        Action::Publish(p) => {
            short(here, "exchange", &p.exchange)?;
            short(here, "routing_key", &p.routing_key)?;
            short_keys(here, "headers", &p.headers)?;
            if p.count == 0 || p.count > MAX_COUNT {
                return problem(
                    at(here, &[key("count")]),
                    format!("count: expected 1 to {MAX_COUNT}, found {}", p.count),
                );
            }
            properties(&at(here, &[key("properties")]), &p.properties)
        }
        Action::Rpc(r) => {
            short(here, "exchange", &r.exchange)?;
            short(here, "routing_key", &r.routing_key)?;
            if let Some(reply_queue) = &r.reply_queue {
                short(here, "reply_queue", reply_queue)?;
            }
            if r.method.is_empty() {
                return problem(at(here, &[key("method")]), "method: expected a method name");
            }
            if r.call && r.reply_queue.as_deref().unwrap_or("").is_empty() {
                return problem(
                    here.to_vec(),
                    "expected `reply_queue` (the caller's reply queue) for a call",
                );
            }
            if !r.call && r.reply_queue.is_some() {
                return problem(
                    at(here, &[key("reply_queue")]),
                    "reply_queue: expected only on a call (`call: true`); a cast gets no reply",
                );
            }
            if !r.call && r.timeout.is_some() {
                return problem(
                    at(here, &[key("timeout")]),
                    "timeout: expected only on a call (`call: true`)",
                );
            }
            if r.call && r.timeout == Some(0) {
                return problem(
                    at(here, &[key("timeout")]),
                    "timeout: expected at least 1 second",
                );
            }
            if !r.call && r.call_monitor_timeout.is_some() {
                return problem(
                    at(here, &[key("call_monitor_timeout")]),
                    "call_monitor_timeout: expected only on a call (`call: true`)",
                );
            }
            if r.call_monitor_timeout == Some(0) {
                return problem(
                    at(here, &[key("call_monitor_timeout")]),
                    "call_monitor_timeout: expected at least 1 second",
                );
            }
            Ok(())
        }
        Action::Reply(r) => {
            known_consumer(here, "consumer", &r.consumer, consumers)?;
            if r.result.is_some() && r.failure.is_some() {
                return problem(
                    at(here, &[key("failure")]),
                    "expected either `result` or `failure`, not both",
                );
            }
            if !r.ending && (r.result.is_some() || r.failure.is_some()) {
                let field = if r.result.is_some() {
                    "result"
                } else {
                    "failure"
                };
                return problem(
                    at(here, &[key(field)]),
                    format!(
                        "{field}: expected none on a keep-alive (`ending: false`): it carries no \
                         answer"
                    ),
                );
            }
            Ok(())
        }
        Action::Consume(c) => {
            short(here, "queue", &c.queue)?;
            short(here, "consumer", &c.consumer)?;
            if c.consumer.is_empty() {
                return problem(
                    at(here, &[key("consumer")]),
                    "consumer: expected a name for the consumer",
                );
            }
            if let Some((_, true)) = consumers.get(&c.consumer) {
                return problem(
                    at(here, &[key("consumer")]),
                    format!(
                        "consumer: expected a new name, but `{}` is already consuming (cancel \
                         it first)",
                        c.consumer
                    ),
                );
            }
            // A refused consume starts no consumer.
            if c.refused.is_none() {
                consumers.insert(c.consumer.clone(), (c.ack, true));
            }
            Ok(())
        }
        Action::Cancel(c) => {
            let (mode, active) = known_consumer(here, "consumer", &c.consumer, consumers)?;
            if !active {
                return problem(
                    at(here, &[key("consumer")]),
                    format!(
                        "consumer: expected an active consumer, but `{}` is already cancelled",
                        c.consumer
                    ),
                );
            }
            consumers.insert(c.consumer.clone(), (mode, false));
            Ok(())
        }
        Action::Ack(a) => {
            manual_consumer(here, "ack", &a.consumer, consumers)?;
            positive_count(here, a.count)
        }
        Action::Nack(n) | Action::Reject(n) => {
            manual_consumer(here, action.keyword(), &n.consumer, consumers)?;
            positive_count(here, n.count)
        }
        Action::DeleteExchange(x) => short(here, "name", &x.name),
        Action::DeleteQueue(q) => short(here, "name", &q.name),
        Action::Purge(p) => short(here, "queue", &p.queue),
        Action::Get(g) => short(here, "queue", &g.queue),
        Action::Restart(_) | Action::Close(_) | Action::Replay(_) => Ok(()),
        Action::Wait(w) => {
            if w.ms > MAX_WAIT_MS {
                return problem(
                    at(here, &[key("ms")]),
                    format!(
                        "ms: expected at most {MAX_WAIT_MS} (one minute), found {}",
                        w.ms
                    ),
                );
            }
            Ok(())
        }
    }
}

fn properties(here: &[Seg<'static>], p: &Properties) -> Result<(), Problem> {
    for (field, value) in [
        ("content_type", &p.content_type),
        ("content_encoding", &p.content_encoding),
        ("correlation_id", &p.correlation_id),
        ("reply_to", &p.reply_to),
        ("expiration", &p.expiration),
        ("message_id", &p.message_id),
        ("type", &p.kind),
        ("app_id", &p.app_id),
    ] {
        if let Some(value) = value {
            short(here, field, value)?;
        }
    }
    if let Some(mode) = p.delivery_mode {
        if mode != 1 && mode != 2 {
            return problem(
                at(here, &[key("delivery_mode")]),
                format!("delivery_mode: expected 1 (transient) or 2 (persistent), found {mode}"),
            );
        }
    }
    if let Some(expiration) = &p.expiration {
        if expiration.is_empty() || !expiration.chars().all(|c| c.is_ascii_digit()) {
            return problem(
                at(here, &[key("expiration")]),
                format!("expiration: expected milliseconds as text, like \"5000\", found `{expiration}`"),
            );
        }
    }
    Ok(())
}

fn validate_predict(
    base: &[Seg<'static>],
    step: &Step,
    consumers: &BTreeMap<String, (AckMode, bool)>,
) -> Result<(), Problem> {
    let Some(predict) = &step.predict else {
        return Ok(());
    };
    let here = at(base, &[key("predict")]);
    if predict.choices.is_empty() {
        return problem(
            at(&here, &[key("choices")]),
            "choices: expected at least one choice",
        );
    }
    match (predict.about, &predict.queue) {
        (Asked::Ready, None) => {
            return problem(
                at(&here, &[key("about")]),
                "expected `queue`: the queue whose ready messages `about: ready` counts",
            )
        }
        (Asked::Ready, Some(queue)) => short(&here, "queue", queue)?,
        (_, Some(_)) => {
            return problem(
                at(&here, &[key("queue")]),
                "queue: expected only with `about: ready`",
            )
        }
        (_, None) => {}
    }
    for (i, choice) in predict.choices.iter().enumerate() {
        let place = at(&here, &[key("choices"), Seg::Index(i)]);
        match predict.about {
            Asked::Ready if choice.parse::<u32>().is_err() => {
                return problem(
                    place,
                    format!("choices: expected a number of messages, found `{choice}`"),
                )
            }
            Asked::Consumers if !consumers.contains_key(choice) => {
                return problem(
                    place,
                    format!(
                        "choices: expected the name of a consumer started by a `consume` up to \
                         this step, found `{choice}`{}",
                        known_list(consumers)
                    ),
                )
            }
            _ => {}
        }
    }
    if predict.about == Asked::Ready && predict.answer.len() != 1 {
        return problem(
            at(&here, &[key("answer")]),
            "answer: expected exactly one number: a queue has one count of ready messages",
        );
    }
    if let (Asked::Ready, Some(queue)) = (predict.about, &predict.queue) {
        // The depths check gives RabbitMQ time to dead-letter and expire before the count.
        let counted = step
            .expect
            .depths
            .as_ref()
            .is_some_and(|d| d.contains_key(queue));
        if !counted {
            return problem(
                at(&here, &[key("queue")]),
                format!(
                    "queue: expected `expect.depths` to name `{queue}` too, so the count is read \
                     once the broker has settled"
                ),
            );
        }
    }
    for (i, choice) in predict.choices.iter().enumerate() {
        if predict.choices[..i].contains(choice) {
            return problem(
                at(&here, &[key("choices"), Seg::Index(i)]),
                format!("choices: expected each choice once, found `{choice}` twice"),
            );
        }
    }
    for (i, answer) in predict.answer.iter().enumerate() {
        if !predict.choices.contains(answer) {
            return problem(
                at(&here, &[key("answer"), Seg::Index(i)]),
                format!(
                    "answer: expected one of the choices [{}], found `{answer}`",
                    predict.choices.join(", ")
                ),
            );
        }
        if predict.answer[..i].contains(answer) {
            return problem(
                at(&here, &[key("answer"), Seg::Index(i)]),
                format!("answer: expected each choice once, found `{answer}` twice"),
            );
        }
    }
    Ok(())
}

fn validate_expect(
    base: &[Seg<'static>],
    step: &Step,
    consumers: &BTreeMap<String, (AckMode, bool)>,
) -> Result<(), Problem> {
    let here = at(base, &[key("expect")]);
    let expect = &step.expect;
    for (field, pattern) in [
        ("routing_key_matches", &expect.routing_key_matches),
        ("body_matches", &expect.body_matches),
    ] {
        if let Some(pattern) = pattern {
            if let Err(e) = regex::Regex::new(pattern) {
                let why = e.to_string();
                let why = why.lines().last().unwrap_or("").trim();
                let why = why.strip_prefix("error: ").unwrap_or(why);
                return problem(
                    at(&here, &[key(field)]),
                    format!(
                        "{field}: expected a regular expression, but `{pattern}` is not one: {why}"
                    ),
                );
            }
        }
    }
    let replays = step.actions.iter().any(|a| matches!(a, Action::Replay(_)));
    if expect.routed_as_recorded.is_some() && !replays {
        return problem(
            at(&here, &[key("routed_as_recorded")]),
            "routed_as_recorded: expected a `replay` in the step's `do`: only replayed messages \
             have a recorded route",
        );
    }
    if let Some(depths) = &expect.depths {
        for queue in depths.keys() {
            let at_queue = at(&here, &[key("depths")]);
            if queue.len() > SHORT_MAX {
                return problem(
                    at_queue,
                    format!("depths: expected queue names of at most {SHORT_MAX} bytes"),
                );
            }
        }
    }
    if let Some(delivered) = &expect.delivered {
        for name in delivered.keys() {
            if !consumers.contains_key(name) {
                return problem(
                    at(&here, &[key("delivered"), Seg::Owned(name.clone())]),
                    format!(
                        "delivered: expected the name of a consumer started by a `consume` up to \
                         this step, found `{name}`{}",
                        known_list(consumers)
                    ),
                );
            }
        }
    }
    Ok(())
}
