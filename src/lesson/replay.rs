//! The `replay` action's side of a trace: finding `assets/traces/<name>.yaml` for a lesson,
//! and reading from it what a replay sends and declares: each publish as it was recorded (its
//! exchange, routing key, properties and body, the name of the connection that sent it, the
//! queues it reached) and the exchanges, queues and bindings the recording declared.
//!
//! A lesson is refused at load time when a replay cannot be done as written (no such trace,
//! publishes it does not hold, a body the trace kept only in part); see `check`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::load::Seg;
use super::schema::{
    Action, Arguments, BindingDecl, ExchangeDecl, ExchangeType, Lesson, QueueDecl, Replay,
};
use super::validate::Problem;
use crate::events::EventKind;

/// Where traces sit, next to `lessons/`.
const TRACES: &str = "assets/traces";

/// One publish of a trace, as it is replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedPublish {
    /// Its place among the trace's publishes, from 1.
    pub number: u32,
    pub exchange: String,
    pub routing_key: String,
    pub body: Vec<u8>,
    /// The basic properties as the trace writes them: `("delivery_mode", "2")`.
    pub properties: Vec<(String, String)>,
    /// The `connection_name` of the connection that published it, when the recording saw it.
    pub publisher: Option<String>,
    /// The queues it reached when recorded, sorted: those the broker routed it to and those it
    /// was delivered from (a recorder that learnt of a queue late may list the delivery only).
    pub reached: Vec<String>,
}

/// What a replay reads of a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub publishes: Vec<RecordedPublish>,
    pub exchanges: Vec<ExchangeDecl>,
    pub queues: Vec<QueueDecl>,
    pub bindings: Vec<BindingDecl>,
}

impl Recording {
    /// The publishes numbered `from` to `to` (inclusive, from 1), once checked by `check`.
    pub fn select(&self, from: u32, to: u32) -> &[RecordedPublish] {
        let start = (from.max(1) - 1) as usize;
        let end = (to as usize).min(self.publishes.len());
        self.publishes.get(start..end).unwrap_or(&[])
    }
}

/// The trace a lesson's `replay` names: `assets/traces/<name>.yaml` in the nearest folder
/// above the lesson file that has one, else beside the source this binary was built from (as
/// `lessons/` is found).
pub fn find(lesson: &Path, name: &str) -> Option<PathBuf> {
    let file = format!("{name}.yaml");
    let above = lesson
        .ancestors()
        .skip(1)
        .map(|dir| dir.join(TRACES).join(&file));
    let built = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/traces")).join(&file);
    above.chain(std::iter::once(built)).find(|p| p.is_file())
}

/// Reads the trace at `path` as a replay uses it.
pub fn read(path: &Path) -> Result<Recording, String> {
    let trace = crate::trace::read(path).map_err(|e| e.to_string())?;
    let mut names: BTreeMap<u64, String> = BTreeMap::new();
    for event in &trace.events {
        if let (EventKind::ConnectionOpened { client, .. }, Some(id)) =
            (&event.kind, event.connection)
        {
            if let Some(name) = &client.connection_name {
                names.insert(id, name.clone());
            }
        }
    }
    let mut delivered: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for event in &trace.events {
        if let EventKind::Delivered {
            message_id, queue, ..
        } = &event.kind
        {
            delivered
                .entry(*message_id)
                .or_default()
                .insert(queue.to_string());
        }
    }
    let mut recording = Recording {
        publishes: Vec::new(),
        exchanges: Vec::new(),
        queues: Vec::new(),
        bindings: Vec::new(),
    };
    let mut declared_exchanges = BTreeSet::new();
    let mut declared_queues = BTreeSet::new();
    for event in &trace.events {
        match &event.kind {
            EventKind::Published {
                message_id,
                exchange,
                routing_key,
                body_size,
                body_preview,
                headers,
                properties,
                queues,
                ..
            } => {
                let number = recording.publishes.len() as u32 + 1;
                if *body_size != body_preview.len() {
                    return Err(format!(
                        "{}: publish {number} kept {} of its {body_size} bytes: it cannot be \
                         replayed as it was sent",
                        path.display(),
                        body_preview.len()
                    ));
                }
                if !headers.is_empty() {
                    return Err(format!(
                        "{}: publish {number} has headers, which a trace keeps only as text: it \
                         cannot be replayed as it was sent",
                        path.display()
                    ));
                }
                let mut reached: BTreeSet<String> = queues.iter().map(|q| q.to_string()).collect();
                reached.extend(delivered.remove(message_id).unwrap_or_default());
                recording.publishes.push(RecordedPublish {
                    number,
                    exchange: exchange.to_string(),
                    routing_key: routing_key.to_string(),
                    body: body_preview.to_vec(),
                    properties: properties.to_vec(),
                    publisher: event.connection.and_then(|id| names.get(&id).cloned()),
                    reached: reached.into_iter().collect(),
                });
            }
            EventKind::ExchangeDeclared {
                name,
                kind,
                durable,
                auto_delete,
                internal,
                arguments,
            } if !name.is_empty() && !name.starts_with("amq.") => {
                let Some(kind) = ExchangeType::named(kind) else {
                    return Err(format!(
                        "{}: the exchange `{name}` is of type `{kind}`, which a lesson cannot \
                         declare",
                        path.display()
                    ));
                };
                if declared_exchanges.insert(name.to_string()) {
                    recording.exchanges.push(ExchangeDecl {
                        name: name.to_string(),
                        kind,
                        durable: *durable,
                        auto_delete: *auto_delete,
                        internal: *internal,
                        arguments: typed(arguments),
                    });
                }
            }
            EventKind::QueueDeclared {
                name,
                durable,
                exclusive,
                auto_delete,
                arguments,
                ..
            } if !name.starts_with("amq.") && declared_queues.insert(name.to_string()) => {
                recording.queues.push(QueueDecl {
                    name: name.to_string(),
                    durable: *durable,
                    exclusive: *exclusive,
                    auto_delete: *auto_delete,
                    arguments: typed(arguments),
                    client: None,
                    refused: None,
                });
            }
            EventKind::BindingCreated(b) if !b.source.is_empty() => {
                let destination = Some(b.destination.to_string());
                let (queue, to_exchange) = if b.destination_is_exchange {
                    (None, destination)
                } else {
                    (destination, None)
                };
                let binding = BindingDecl {
                    exchange: b.source.to_string(),
                    queue,
                    to_exchange,
                    routing_key: b.routing_key.to_string(),
                    arguments: typed(&b.arguments),
                };
                if !recording.bindings.contains(&binding) {
                    recording.bindings.push(binding);
                }
            }
            _ => {}
        }
    }
    Ok(recording)
}

/// Arguments as the trace writes them (text) with their types back, as the declares that made
/// them carried them: whole numbers as numbers (`x-expires`), `true` and `false` as booleans,
/// the rest text (`x-queue-type`, `x-max-age: 1800s`).
fn typed(pairs: &[(String, String)]) -> Arguments {
    pairs
        .iter()
        .map(|(key, text)| {
            let value = match text.as_str() {
                "true" => serde_yaml::Value::Bool(true),
                "false" => serde_yaml::Value::Bool(false),
                _ => match text.parse::<i64>() {
                    Ok(n) => serde_yaml::Value::Number(n.into()),
                    Err(_) => serde_yaml::Value::String(text.clone()),
                },
            };
            (key.clone(), value)
        })
        .collect()
}

/// Every trace the lesson's replays name, read once: by name, or why it cannot be used.
pub fn recordings(lesson: &Lesson) -> BTreeMap<String, Result<Recording, String>> {
    let mut read_once = BTreeMap::new();
    for step in &lesson.steps {
        for action in &step.actions {
            if let Action::Replay(r) = action {
                read_once.entry(r.trace.clone()).or_insert_with(|| {
                    // A name that could lead out of the folder is never looked up.
                    if !plain(&r.trace) {
                        return Err(not_a_name(&r.trace));
                    }
                    match find(&lesson.source, &r.trace) {
                        Some(path) => read(&path),
                        None => Err(format!(
                            "no trace `{}`: expected a file `{TRACES}/{}.yaml` beside the lessons",
                            r.trace, r.trace
                        )),
                    }
                });
            }
        }
    }
    read_once
}

/// A trace's name as a lesson gives it: letters, digits, `-`, `_` and `.`, not first.
fn plain(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn not_a_name(name: &str) -> String {
    format!("expected the name of a file in {TRACES}/ without `.yaml`, found `{name}`")
}

/// Each `replay` of the lesson can be done as written: its trace is there and reads, and it
/// holds the publishes asked for.
pub(super) fn check(lesson: &Lesson) -> Result<(), Problem> {
    let recordings = recordings(lesson);
    for (s, step) in lesson.steps.iter().enumerate() {
        for (a, action) in step.actions.iter().enumerate() {
            let Action::Replay(replay) = action else {
                continue;
            };
            let here = |field: Option<&'static str>| {
                let mut at = vec![
                    Seg::Key("steps"),
                    Seg::Index(s),
                    Seg::Key("do"),
                    Seg::Index(a),
                    Seg::Key("replay"),
                ];
                at.extend(field.map(Seg::Key));
                at
            };
            check_one(replay, &recordings[&replay.trace], here)?;
        }
    }
    Ok(())
}

fn check_one(
    replay: &Replay,
    recording: &Result<Recording, String>,
    here: impl Fn(Option<&'static str>) -> Vec<Seg<'static>>,
) -> Result<(), Problem> {
    let fail = |field, message: String| {
        Err(Problem {
            at: here(field),
            message,
        })
    };
    let recording = match recording {
        Ok(recording) => recording,
        Err(why) => return fail(Some("trace"), format!("trace: {why}")),
    };
    let total = recording.publishes.len() as u32;
    if replay.from == Some(0) {
        return fail(
            Some("from"),
            "from: expected a publish's number, counted from 1".to_string(),
        );
    }
    for (field, number) in [("from", replay.from), ("to", replay.to)] {
        if let Some(n) = number.filter(|n| *n > total) {
            return fail(
                Some(field),
                format!(
                    "{field}: expected at most {total} (`{}` holds {total} publishes), found {n}",
                    replay.trace
                ),
            );
        }
    }
    if let (Some(from), Some(to)) = (replay.from, replay.to) {
        if from > to {
            return fail(
                Some("to"),
                format!("to: expected {from} or more (`from` is {from}), found {to}"),
            );
        }
    }
    if total == 0 && replay.range(total).is_some() {
        return fail(
            None,
            format!(
                "expected publishes to replay, but `{}` holds none (`topology: true` alone \
                 declares what it declared)",
                replay.trace
            ),
        );
    }
    Ok(())
}
