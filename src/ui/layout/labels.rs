//! The text the graph shows for each node (exchange and queue labels with their flags and
//! counters, binding keys, client names) and the widest of each kind, measured once per layout
//! so that a frame need not measure them all.
//!
//! It may import the snapshot and event types only.

use std::collections::HashMap;

use unicode_width::UnicodeWidthStr;

use super::{ConsumerNode, EdgeTarget, GraphLayout, PublisherNode, QueueNode};
use crate::broker::{QueueSnapshot, VhostSnapshot};
use crate::events::ConnectionId;

/// A queue's counters as the graph shows them, in the order the pane's legend names them:
/// ready, unacked, consumers.
pub fn counters(ready: usize, unacked: usize, consumers: usize) -> String {
    format!("{ready} {unacked} {consumers}")
}

/// What follows a queue's label: a stream's offsets, first to next (`0‥57`), since reading a
/// stream removes nothing and its depth says little; else its counters, less the messages
/// (ready, unacked) still flying to it.
pub fn queue_counters(q: &QueueNode, arriving: (usize, usize)) -> String {
    match q.offsets {
        Some((first, next)) => format!("{first}‥{next}"),
        None => counters(
            q.ready.saturating_sub(arriving.0),
            q.unacked.saturating_sub(arriving.1),
            q.consumers,
        ),
    }
}

/// A stream's first and next offsets, as its node keeps them.
pub fn offsets(q: &QueueSnapshot) -> Option<(u64, u64)> {
    q.stream.as_ref().map(|s| (s.first_offset, s.next_offset))
}

/// Where a consumer node of a stream reads next, `@57` (`@3,57` for two tags on one
/// connection); None for other queues.
pub fn position(topology: &VhostSnapshot, queue: &str, c: &ConsumerNode) -> Option<String> {
    let q = topology.queues.iter().find(|q| q.name == queue)?;
    let log = q.stream.as_ref()?;
    let offsets: Vec<String> = (c.tags.iter())
        .filter_map(|tag| log.reader(tag, c.connection))
        .map(|offset| offset.to_string())
        .collect();
    (!offsets.is_empty()).then(|| format!("@{}", offsets.join(",")))
}

/// The room a stream consumer's position may take: ` @` and the digits of the stream's next
/// offset (a reader is never past it), one tag's worth.
fn position_width(q: &QueueNode) -> usize {
    q.offsets.map_or(0, |(_, next)| 2 + next.to_string().len())
}

/// The widest of each kind of text the graph shows, so a frame need not measure them all.
/// Exchanges that a binding's line leads to are "inner"; the others "outer".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Widths {
    /// Outer exchanges: their names, and their whole labels; but the whole labels of those
    /// whose edges all lead to queues drawn by name apart (see [`super::ExchangeNode::by_name`]).
    pub exchange_name: u16,
    pub exchange_label: u16,
    pub by_name_exchange: u16,
    pub inner_label: u16,
    /// Keys of outer and of inner exchanges' bindings; a binding drawn without a line counts
    /// with the ` ⇢ destination` after its key.
    pub outer_keys: u16,
    pub inner_keys: u16,
    /// Queues: their names, and their whole labels with counters; but not those drawn where
    /// their key would be (see [`super::QueueNode::by_name`]), measured on their own.
    pub queue_name: u16,
    pub queue_label: u16,
    pub by_name_name: u16,
    pub by_name_label: u16,
    /// The same whole labels, but a made-up name counted as cut (see `needed`).
    pub queue_short: u16,
    pub by_name_short: u16,
    pub publisher_label: u16,
    /// Consumers: the names of their connections, and their whole labels with the tags.
    pub consumer_name: u16,
    pub consumer_label: u16,
    /// The same for clients with their longer names (see [`super::PublisherNode::long`]).
    pub publisher_long: u16,
    pub consumer_long_label: u16,
}

/// The name at the start of a label: before its flags (` [`) or counters (two spaces).
fn name_width(label: &str) -> u16 {
    let name = label.split(" [").next().unwrap_or(label);
    needed(name.split("  ").next().unwrap_or(name))
}

/// Whether a client made the name up: a prefix and 32 hex digits, as oslo.messaging's
/// `reply_<uuid>`. No one reads such a name to its end.
pub fn made_up(name: &str) -> bool {
    name.is_ascii()
        && name.len() > 32
        && name[name.len() - 32..]
            .bytes()
            .all(|c| c.is_ascii_hexdigit())
}

/// The width a name needs to be recognised: whole, but a made-up name only its first
/// [`MADE_UP_KEPT`] characters and a `…`. The rest of such names gets its room after every
/// other name, counter and type.
fn needed(name: &str) -> u16 {
    if made_up(name) {
        MADE_UP_KEPT as u16 + 1
    } else {
        name.width() as u16
    }
}

/// The characters of a made-up name kept when it is cut.
pub const MADE_UP_KEPT: usize = 24;

/// The most a default-exchange edge's key asks for (it repeats its queue's name): the first
/// 24 characters of a made-up name such as `reply_<uuid>` and its `…`.
const DEFAULT_KEY_ROOM: u16 = 26;

pub(super) fn measure(graph: &GraphLayout) -> Widths {
    let inner = |x: usize| graph.exchanges[x].lane.is_some();
    let widest = |widths: &mut dyn Iterator<Item = u16>| widths.max().unwrap_or(0);
    let keys = |of_inner: bool| {
        widest(
            &mut graph
                .bindings
                .iter()
                .filter(|b| inner(b.exchange) == of_inner)
                .filter(|b| !matches!(b.target, EdgeTarget::Queue(q) if graph.queues[q].by_name))
                .map(|b| match b.target {
                    EdgeTarget::Exchange(x) if of_inner || !inner(x) => {
                        (b.key.width() + 3 + graph.exchanges[x].name.width()) as u16
                    }
                    // The default exchange's key is the queue's own name, shown whole beside
                    // it: the key may be cut to leave the name its room.
                    _ if b.implicit => needed(&b.key).min(DEFAULT_KEY_ROOM),
                    _ => needed(&b.key),
                }),
        )
    };
    let outer = || graph.exchanges.iter().filter(|x| x.lane.is_none());
    let by_name = |drawn_by_name: bool| {
        graph
            .queues
            .iter()
            .filter(move |q| q.by_name == drawn_by_name)
    };
    let publisher_width = |long: bool| {
        let texts = graph
            .publishers
            .iter()
            .map(|p| publisher_text(graph, p, long));
        widest(&mut texts.map(|t| t.width() as u16))
    };
    // A stream consumer's position takes room beside its name, before its tags; `+N` is a
    // label of the column too.
    let consumer_width = |consumers: &[ConsumerNode], name_only: bool| {
        let text = |c: &ConsumerNode| match name_only {
            true => c.client().width(),
            false => c.label.width(),
        };
        let mut widths = (consumers.iter())
            .map(|c| (text(c) + position_width(&graph.queues[c.queue])) as u16)
            .chain(
                (graph.queues.iter().filter(|_| !name_only)).map(|q| more_label(q).width() as u16),
            );
        widest(&mut widths)
    };
    let short = &graph.consumers[..];
    let long: Vec<ConsumerNode> = graph
        .consumers
        .iter()
        .map(ConsumerNode::long_named)
        .collect();
    Widths {
        exchange_name: widest(&mut outer().map(|x| name_width(&x.label))),
        exchange_label: widest(
            &mut outer()
                .filter(|x| !x.by_name)
                .map(|x| x.label.width() as u16),
        ),
        by_name_exchange: widest(
            &mut outer()
                .filter(|x| x.by_name)
                .map(|x| x.label.width() as u16),
        ),
        inner_label: widest(
            &mut graph
                .exchanges
                .iter()
                .filter(|x| x.lane.is_some())
                .map(|x| x.label.width() as u16),
        ),
        outer_keys: keys(false),
        inner_keys: keys(true),
        // A group's label (with its colon) is a name of the queue column too.
        queue_name: widest(
            &mut by_name(false)
                .map(|q| name_width(&q.label))
                .chain(graph.groups.iter().map(|g| g.label.width() as u16 + 1))
                .chain(
                    (graph.unbound.iter()).flat_map(|_| UNBOUND_HEADING.map(|h| h.width() as u16)),
                ),
        ),
        queue_label: queue_label_width(graph, false, false),
        by_name_name: widest(&mut by_name(true).map(|q| name_width(&q.label))),
        by_name_label: queue_label_width(graph, true, false),
        queue_short: queue_label_width(graph, false, true),
        by_name_short: queue_label_width(graph, true, true),
        publisher_label: publisher_width(false),
        publisher_long: publisher_width(true),
        consumer_name: consumer_width(short, true),
        consumer_label: consumer_width(short, false),
        consumer_long_label: consumer_width(&long, false),
    }
}

/// The widest queue label with its counters, of the queues drawn where their key would be or
/// of the others; with `short`, made-up names counted as cut.
fn queue_label_width(graph: &GraphLayout, by_name: bool, short: bool) -> u16 {
    let width = |q: &QueueNode| {
        let cut = match short {
            true => q.name.width() - needed(&q.name) as usize,
            false => 0,
        };
        q.label.width() - cut + 2 + queue_counters(q, (0, 0)).width()
    };
    let queues = graph.queues.iter().filter(|q| q.by_name == by_name);
    queues.map(width).max().unwrap_or(0) as u16
}

/// A publisher's label, with `long` its longer name if it has one. One of an exchange in the
/// chain column, which its line could not reach without joining the lines chained to it,
/// names the exchange instead: `nova-api ⇢ nova`.
pub fn publisher_text(graph: &GraphLayout, p: &PublisherNode, long: bool) -> String {
    let label = match (long, &p.long) {
        (true, Some(long)) => long,
        _ => &p.label,
    };
    let x = &graph.exchanges[p.exchange];
    match x.lane {
        Some(_) => format!("{label} ⇢ {}", x.name),
        None => label.clone(),
    }
}

/// The heading over the queues only the default exchange leads to (see
/// [`GraphLayout::unbound`]), in English and in Chinese; the queue column makes room for the
/// wider.
pub const UNBOUND_HEADING: [&str; 2] = ["default exchange only:", "仅默认交换器："];

/// What stands for the consumers of a queue that got no row: `+N`.
pub fn more_label(queue: &QueueNode) -> String {
    if queue.more_consumers == 0 {
        String::new()
    } else {
        format!("+{}", queue.more_consumers)
    }
}

pub fn exchange_label(x: &crate::broker::ExchangeSnapshot) -> String {
    let name = if x.name.is_empty() {
        "(default)"
    } else {
        &x.name
    };
    let mut flags = vec![x.kind.as_str()];
    flags.extend(set_flags(&[
        (x.durable, "D"),
        (x.auto_delete, "AD"),
        (x.internal, "I"),
    ]));
    format!("{name} [{}]", flags.join(" "))
}

/// The letters of the flags that are set, in the order given.
fn set_flags(flags: &[(bool, &'static str)]) -> Vec<&'static str> {
    flags
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, letter)| *letter)
        .collect()
}

pub fn queue_label(q: &crate::broker::QueueSnapshot) -> String {
    let flags = set_flags(&[
        (q.is_quorum(), "Q"),
        (q.is_stream(), "S"),
        (q.durable, "D"),
        (q.exclusive, "X"),
        (q.auto_delete, "AD"),
    ]);
    let flags = if flags.is_empty() {
        String::new()
    } else {
        format!(" [{}]", flags.join(" "))
    };
    format!("{}{flags}", q.name)
}

/// Refreshes the queue counters (depths, consumers) of an existing layout from a newer
/// snapshot of the same structure, without laying everything out again.
pub fn refresh_labels(graph: &mut GraphLayout, topology: &VhostSnapshot) {
    let by_name: HashMap<&str, &crate::broker::QueueSnapshot> = topology
        .queues
        .iter()
        .map(|q| (q.name.as_str(), q))
        .collect();
    for node in &mut graph.queues {
        if let Some(q) = by_name.get(node.name.as_str()) {
            node.label = queue_label(q);
            (node.ready, node.unacked, node.consumers) = (q.ready, q.unacked, q.consumers);
            node.offsets = offsets(q);
        }
    }
    graph.widths.queue_label = queue_label_width(graph, false, false);
    graph.widths.by_name_label = queue_label_width(graph, true, false);
    graph.widths.queue_short = queue_label_width(graph, false, true);
    graph.widths.by_name_short = queue_label_width(graph, true, true);
}

/// The label of each connection of the snapshot (see [`crate::broker::ConnectionSnapshot`]),
/// or its name in `names` (`nova-compute@compute-1`); connections with the same label get
/// their client's port after it, to tell them apart.
pub fn connection_labels(
    topology: &VhostSnapshot,
    names: &HashMap<ConnectionId, String>,
) -> HashMap<ConnectionId, String> {
    let mut labels: HashMap<ConnectionId, String> = topology
        .connections
        .iter()
        .map(|c| (c.id, names.get(&c.id).cloned().unwrap_or_else(|| c.label())))
        .collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for label in labels.values() {
        *seen.entry(label.clone()).or_default() += 1;
    }
    for c in &topology.connections {
        let label = labels.get_mut(&c.id).expect("labelled above");
        if seen[label.as_str()] > 1 {
            if let Some((_, port)) = c.peer.rsplit_once(':') {
                *label = format!("{label} :{port}");
            }
        }
    }
    labels
}

/// Binding arguments shown as the edge label of a headers binding.
pub(super) fn binding_key(b: &crate::events::BindingInfo, kind: &str) -> String {
    match kind {
        "headers" => {
            let args: Vec<String> = b
                .arguments
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if args.is_empty() {
                "(all)".to_string()
            } else {
                args.join(" ")
            }
        }
        "fanout" => "(fanout)".to_string(),
        _ if b.routing_key.is_empty() => "\"\"".to_string(),
        _ => b.routing_key.to_string(),
    }
}
