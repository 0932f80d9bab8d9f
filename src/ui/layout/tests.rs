//! Layouts of small topologies, row by row.

use super::*;
use crate::broker::{ExchangeSnapshot as X, QueueSnapshot as Q, VhostSnapshot};
use crate::events::BindingInfo;
use crate::ui::model::Traffic;

fn binding(source: &str, destination: &str, key: &str) -> BindingInfo {
    BindingInfo::to_queue(source, destination, key)
}

/// The rule the drawing relies on: a queue sits on one of its bindings' rows, at an end
/// of its lane, and only queues with more than one binding have a lane.
#[test]
fn queues_sit_on_their_own_binding_rows() {
    let topology = VhostSnapshot {
        name: "/".into(),
        exchanges: vec![X::new("jobs", "direct"), X::new("shop", "topic")],
        queues: vec![Q::new("billing"), Q::new("shipping"), Q::new("work")],
        bindings: vec![
            binding("jobs", "billing", "invoice"),
            binding("jobs", "work", "resize"),
            binding("shop", "billing", "order.paid"),
            binding("shop", "shipping", "order.#"),
            binding("shop", "work", "job.*"),
        ],
        ..Default::default()
    };
    for stacked in [false, true] {
        let g = layout(
            &topology,
            &Traffic::default(),
            false,
            1,
            stacked,
            &Default::default(),
        );
        for (q, queue) in g.queues.iter().enumerate() {
            let rows: Vec<usize> = g
                .bindings
                .iter()
                .filter(|b| b.target == EdgeTarget::Queue(q))
                .map(|b| b.row)
                .collect();
            let (lo, hi) = (rows.iter().min().unwrap(), rows.iter().max().unwrap());
            assert!(queue.row == *lo || queue.row == *hi, "{queue:?} {rows:?}");
            assert_eq!(queue.lane.is_some(), rows.len() > 1, "{queue:?}");
        }
        let mut rows: Vec<usize> = g.bindings.iter().map(|b| b.row).collect();
        rows.extend(g.exchanges.iter().filter(|_| stacked).map(|x| x.row));
        let n = rows.len();
        rows.sort_unstable();
        rows.dedup();
        assert_eq!(rows.len(), n, "one binding or exchange header a row");
    }
}

/// A queue's consumers get rows of their own below it, one per connection, pushing what
/// follows down; past four rows the rest count as `+N`. Publishers sit on their exchange's
/// rows, and two connections of one label are told apart by their ports.
#[test]
fn consumers_and_publishers_get_rows_of_their_own() {
    use crate::broker::{ConnectionSnapshot, ConsumerSnapshot};
    use crate::events::ClientInfo;
    let connection = |id: u64| ConnectionSnapshot {
        id,
        peer: format!("10.0.0.1:{}", 5000 + id),
        client: ClientInfo {
            connection_name: Some(format!("worker:{id}:ab")),
            product: None,
        },
        ..Default::default()
    };
    let consumer = |queue: &str, connection: u64, tag: &str| ConsumerSnapshot {
        queue: queue.into(),
        tag: tag.into(),
        connection,
        ..Default::default()
    };
    let mut consumers: Vec<ConsumerSnapshot> = (1..=6).map(|c| consumer("busy", c, "t")).collect();
    consumers.push(consumer("busy", 1, "u"));
    consumers.push(consumer("calm", 2, "t"));
    let topology = VhostSnapshot {
        name: "/".into(),
        exchanges: vec![X::new("jobs", "direct")],
        queues: vec![Q::new("busy"), Q::new("calm")],
        bindings: vec![binding("jobs", "busy", "a"), binding("jobs", "calm", "b")],
        connections: (1..=6).map(connection).collect(),
        consumers,
    };
    let traffic = Traffic {
        published: [(1, "jobs".into()), (2, "jobs".into())].into(),
        ..Default::default()
    };
    let g = layout(&topology, &traffic, false, 1, false, &Default::default());
    let busy: Vec<(&str, usize)> = g
        .consumers
        .iter()
        .filter(|c| c.queue == 0)
        .map(|c| (c.label.as_str(), c.row))
        .collect();
    assert_eq!(
        busy,
        [
            ("worker :5001 t, u", 0),
            ("worker :5002 t", 1),
            ("worker :5003 t", 2)
        ]
    );
    assert_eq!(g.queues[0].more_consumers, 3);
    // Three nodes and the `+3` row, then the next queue.
    assert_eq!(g.queues[1].row, 4);
    assert_eq!(g.bindings[1].row, 4);
    let publishers: Vec<(&str, usize)> = g
        .publishers
        .iter()
        .map(|p| (p.label.as_str(), p.row))
        .collect();
    // The rows made for busy's consumers pushed the second publisher down with the rest.
    assert_eq!(publishers, [("worker :5001", 0), ("worker :5002", 4)]);
}

#[test]
fn one_row_per_binding_and_queues_follow_their_bindings() {
    let topology = VhostSnapshot {
        name: "/".into(),
        exchanges: vec![
            X::new("", "direct"),
            X::new("a", "topic"),
            X::new("b", "fanout"),
        ],
        queues: vec![Q::new("late"), Q::new("early"), Q::new("lonely")],
        bindings: vec![binding("a", "early", "x.*"), binding("b", "late", "")],
        ..Default::default()
    };
    let g = layout(
        &topology,
        &Traffic::default(),
        false,
        1,
        false,
        &Default::default(),
    );
    // The default exchange has no bindings and is hidden.
    assert_eq!(
        g.exchanges
            .iter()
            .map(|x| x.name.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(g.bindings.len(), 2);
    let names: Vec<&str> = g.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["early", "late", "lonely"]);
    assert!(g.queues.windows(2).all(|w| w[0].row < w[1].row));
    assert_eq!(g.bindings[1].key, "(fanout)");
    // The arrow keys walk each exchange, then its bindings, then the queues.
    use GraphItem::*;
    assert_eq!(
        g.items,
        [
            Exchange(0),
            Binding(0),
            Exchange(1),
            Binding(1),
            Queue(0),
            Queue(1),
            Queue(2)
        ]
    );
    assert_eq!(g.row_of(Binding(1)), Some(g.exchanges[1].row));
}

/// The default exchange's edge is keyed by its queue's name: a queue it alone leads to is
/// drawn by name, where the key would be, and neither widens the key and queue columns; a
/// queue another binding leads to as well keeps its key, and so does its exchange's label.
#[test]
fn queues_the_default_exchange_alone_reaches_are_drawn_by_name() {
    let reply = "reply_5e0ae42a6b584443b434e29a14a14435";
    let topology = VhostSnapshot {
        name: "/".into(),
        exchanges: vec![X::new("", "direct"), X::new("shop", "topic")],
        queues: vec![Q::new(reply), Q::new("work")],
        bindings: vec![binding("shop", "work", "job.*")],
        ..Default::default()
    };
    let mut traffic = Traffic::default();
    traffic.default_routes.insert((reply.into(), reply.into()));
    let g = layout(&topology, &traffic, false, 1, false, &Default::default());
    let queue = |name: &str| g.queues.iter().find(|q| q.name == name).unwrap();
    let default = || g.exchanges.iter().find(|x| x.name.is_empty()).unwrap();
    assert!(queue(reply).by_name && default().by_name, "{g:#?}");
    assert!(!queue("work").by_name);
    assert_eq!(g.widths.outer_keys, "job.*".len() as u16);
    assert_eq!(g.widths.queue_name, "work".len() as u16);
    assert_eq!(g.widths.exchange_label, "shop [topic]".len() as u16);
    assert_eq!(g.widths.by_name_exchange, "(default) [direct]".len() as u16);

    traffic
        .default_routes
        .insert(("work".into(), "work".into()));
    let g = layout(&topology, &traffic, false, 1, false, &Default::default());
    let queue = |name: &str| g.queues.iter().find(|q| q.name == name).unwrap();
    let default = g.exchanges.iter().find(|x| x.name.is_empty()).unwrap();
    assert!(queue(reply).by_name, "{g:#?}");
    assert!(!queue("work").by_name, "two edges lead to work, on a lane");
    assert!(!default.by_name, "one of its edges keeps its key");
}
