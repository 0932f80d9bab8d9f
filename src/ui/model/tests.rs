//! What events and snapshots do to the model: the log, flights, rates and the topology.

use super::*;

fn published(id: u64, queues: &[&str]) -> Arc<Event> {
    Arc::new(Event {
        at: SystemTime::UNIX_EPOCH,
        vhost: "/".into(),
        connection: Some(1),
        channel: Some(1),
        kind: EventKind::Published {
            message_id: id,
            exchange: "x".into(),
            routing_key: "k".into(),
            body_size: 1,
            body_preview: bytes::Bytes::from_static(b"b"),
            headers: vec![],
            properties: Arc::new([]),
            matched: vec![],
            queues: queues.iter().map(|q| Name::from(*q)).collect(),
            alternate_exchange: None,
            fate: if queues.is_empty() {
                PublishFate::Dropped
            } else {
                PublishFate::Routed
            },
        },
    })
}

#[test]
fn the_log_is_a_ring() {
    let mut model = Model::new("/");
    let now = Instant::now();
    for id in 0..(LOG_CAPACITY as u64 + 10) {
        model.apply(&published(id, &["q"]), now);
    }
    assert_eq!(model.log.len(), LOG_CAPACITY);
    assert_eq!(model.log.front().unwrap().message_id, 10);
    assert!(model.flights.len() <= model.max_flights);
}

#[test]
fn rates_count_per_second() {
    let mut model = Model::new("/");
    let start = Instant::now();
    model.tick(start);
    for id in 0..5 {
        model.apply(&published(id, &["q"]), start);
    }
    model.tick(start + Duration::from_millis(1001));
    assert_eq!(model.total_rate.current(), 5);
    assert_eq!(model.queue_rates["q"].current(), 5);
}

#[test]
fn a_chain_of_exchanges_counts_each_and_flies_from_the_last() {
    let binding = |source: &str, destination: &str, to_exchange: bool| {
        Arc::new(BindingInfo {
            source: source.into(),
            destination: destination.into(),
            destination_is_exchange: to_exchange,
            routing_key: "".into(),
            arguments: vec![],
        })
    };
    let mut event = Arc::unwrap_or_clone(published(1, &["q", "audit"]));
    if let EventKind::Published { matched, .. } = &mut event.kind {
        *matched = vec![
            binding("x", "inner", true),
            binding("x", "audit", false),
            binding("inner", "q", false),
        ];
    }
    let mut model = Model::new("/");
    let start = Instant::now();
    model.tick(start);
    model.apply(&Arc::new(event), start);
    model.tick(start + Duration::from_millis(1001));
    assert_eq!(model.exchange_rates["x"].current(), 1);
    assert_eq!(model.exchange_rates["inner"].current(), 1);
    let from = |to: &str| {
        let flight = model.flights.iter().find(|f| &*f.to == to);
        flight.map(|f| f.from.to_string())
    };
    assert_eq!(from("q").as_deref(), Some("inner"));
    assert_eq!(from("audit").as_deref(), Some("x"));
}

#[test]
fn a_message_remembers_what_happened_to_it() {
    let event = |kind| {
        Arc::new(Event {
            at: SystemTime::UNIX_EPOCH,
            vhost: "/".into(),
            connection: Some(1),
            channel: Some(1),
            kind,
        })
    };
    let delivered = |redelivered, delivery_tag| EventKind::Delivered {
        message_id: 7,
        queue: "tasks".into(),
        consumer_tag: Some("worker".into()),
        delivery_tag,
        redelivered,
        offset: None,
        delivery_count: None,
    };
    let mut model = Model::new("/");
    let now = Instant::now();
    model.apply(&published(7, &["tasks"]), now);
    for kind in [
        delivered(false, 1),
        EventKind::Nacked {
            message_id: 7,
            queue: "tasks".into(),
            delivery_tag: 1,
            requeue: true,
        },
        EventKind::Requeued {
            message_id: 7,
            queue: "tasks".into(),
        },
        delivered(true, 2),
        EventKind::Acked {
            message_id: 7,
            queue: "tasks".into(),
            delivery_tag: 2,
        },
    ] {
        model.apply(&event(kind), now);
    }
    let history: Vec<String> = model.log[0]
        .history
        .iter()
        .map(|happened| happened.text(Lang::En))
        .collect();
    assert_eq!(
        history,
        [
            "delivered from tasks to worker (tag 1)",
            "nacked in tasks, requeued",
            "back in tasks, to be redelivered",
            "delivered from tasks to worker (tag 2, redelivered)",
            "acked in tasks",
        ]
    );
}

fn on(connection: u64, kind: EventKind) -> Arc<Event> {
    Arc::new(Event {
        at: SystemTime::UNIX_EPOCH,
        vhost: "/".into(),
        connection: Some(connection),
        channel: Some(1),
        kind,
    })
}

fn vhost(connections: &[u64], queues: &[&str]) -> VhostSnapshot {
    VhostSnapshot {
        name: "/".into(),
        queues: queues
            .iter()
            .map(|q| crate::broker::QueueSnapshot::new(q))
            .collect(),
        connections: connections
            .iter()
            .map(|&id| crate::broker::ConnectionSnapshot {
                id,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// A publisher is learnt from its first message and forgotten when its connection has
/// closed; the default exchange's edge to a queue is forgotten with the queue. A snapshot
/// taken before the message may not list them yet: the one after it must.
#[test]
fn publishers_and_default_routes_come_and_go() {
    let mut model = Model::new("/");
    model.set_topology(vhost(&[1], &["q"]));
    model.structure_changed = false;
    model.apply(&published(1, &["q"]), Instant::now());
    assert!(model.structure_changed, "a new publisher is a new node");
    assert!(model.traffic.published.contains(&(1, Name::from("x"))));
    model.structure_changed = false;
    model.apply(&published(2, &["q"]), Instant::now());
    assert!(!model.structure_changed, "a publisher already drawn");

    let mut to_default = Arc::unwrap_or_clone(published(3, &["q"]));
    if let EventKind::Published { exchange, .. } = &mut to_default.kind {
        *exchange = "".into();
    }
    model.apply(&Arc::new(to_default), Instant::now());
    assert!(model
        .traffic
        .default_routes
        .contains(&("q".into(), "k".into())));

    // Snapshots that do not list connection 1 nor the queue: the first may be older than
    // the messages, the second is not.
    model.set_topology(vhost(&[], &[]));
    // Connection 1 published to `x` and to the default exchange.
    assert_eq!(model.traffic.published.len(), 2);
    assert_eq!(model.traffic.default_routes.len(), 1);
    model.set_topology(vhost(&[], &[]));
    assert!(model.traffic.published.is_empty());
    assert!(model.traffic.default_routes.is_empty());
    assert!(model.structure_changed);
}

/// A delivery sets off when its message reaches the queue; until then the queue's
/// counters (as the snapshot gives them) are shown without the message.
#[test]
fn a_delivery_waits_for_its_message_to_land() {
    let mut model = Model::new("/");
    let start = Instant::now();
    model.apply(&published(1, &["tasks"]), start);
    model.apply(&published(2, &["tasks"]), start);
    model.apply(
        &on(
            9,
            EventKind::Delivered {
                message_id: 1,
                queue: "tasks".into(),
                consumer_tag: Some("worker".into()),
                delivery_tag: 1,
                redelivered: false,
                offset: None,
                delivery_count: None,
            },
        ),
        start,
    );
    let delivery = model
        .flights
        .iter()
        .find(|f| f.kind == FlightKind::ToConsumer)
        .expect("a flight to the consumer");
    assert_eq!(delivery.started, start + model.flight_time);
    assert_eq!(delivery.connection, Some(9));
    // Not counted until a snapshot came after them.
    assert_eq!(model.arriving("tasks", start), (0, 0));
    model.set_topology(vhost(&[9], &["tasks"]));
    let half = start + model.flight_time / 2;
    assert_eq!(model.arriving("tasks", half), (1, 1));
    let landed = start + model.flight_time;
    assert_eq!(model.arriving("tasks", landed), (0, 0));
}

/// Reading a stream removes nothing: while the message flies on to its consumer the stream
/// still counts it ready, never unacked, and the consumer's offset moves on at once.
#[test]
fn a_stream_delivery_keeps_the_count_and_moves_the_offset() {
    let mut model = Model::new("/");
    let start = Instant::now();
    let mut topology = vhost(&[9], &["log"]);
    topology.queues[0].queue_type = QueueType::Stream;
    topology.queues[0].ready = 1;
    topology.queues[0].stream = Some(crate::topology::StreamState {
        next_offset: 5,
        readers: vec![crate::topology::StreamReader {
            tag: "reader".into(),
            connection: 9,
            offset: 4,
        }],
        ..Default::default()
    });
    model.set_topology(topology.clone());
    model.apply(&published(1, &["log"]), start);
    let delivered = EventKind::Delivered {
        message_id: 1,
        queue: "log".into(),
        consumer_tag: Some("reader".into()),
        delivery_tag: 1,
        redelivered: false,
        offset: Some(5),
        delivery_count: None,
    };
    model.apply(&on(9, delivered), start);
    let log = model.topology.queues[0].stream.as_ref().unwrap();
    assert_eq!(log.reader("reader", 9), Some(6));
    assert_eq!(log.next_offset, 6);
    // The next snapshot counts the message; its dot is still on the way in.
    topology.queues[0].ready = 2;
    model.set_topology(topology);
    assert_eq!(model.arriving("log", start), (1, 0));
}

#[test]
fn other_vhosts_are_ignored() {
    let mut model = Model::new("other");
    model.apply(&published(1, &["q"]), Instant::now());
    assert!(model.log.is_empty());
}

/// A message a full queue pushed out and one a quorum queue gave up on read differently; a
/// trace written before drops carried their reason reads as a full queue.
#[test]
fn a_drop_says_why() {
    let mut model = Model::new("/");
    let now = Instant::now();
    for (id, reason) in [
        (1, DeadLetterReason::Maxlen),
        (2, DeadLetterReason::DeliveryLimit),
    ] {
        model.apply(&published(id, &["tasks"]), now);
        let kind = EventKind::Dropped {
            message_id: id,
            queue: "tasks".into(),
            reason,
        };
        model.apply(&on(1, kind), now);
    }
    let said: Vec<String> = model
        .log
        .iter()
        .map(|e| e.history[0].text(Lang::En))
        .collect();
    assert_eq!(
        said,
        [
            "dropped from tasks (queue full)",
            "dropped from tasks (past its delivery limit)"
        ]
    );
    let old: EventKind =
        serde_yaml::from_str("!Dropped\nmessage_id: 3\nqueue: tasks\n").expect("an old drop");
    assert!(matches!(
        old,
        EventKind::Dropped {
            reason: DeadLetterReason::Maxlen,
            ..
        }
    ));
}
