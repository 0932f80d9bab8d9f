//! A quorum queue in the view: the graph marks it `Q`, and the inspector gives its delivery
//! limit and what a cluster would do with it.
mod common;

use common::screen::{screen, select_queue};
use rabbitscope::broker::{QueueSnapshot, Snapshot, VhostSnapshot};
use rabbitscope::topology::{DeliveryLimit, QueueType};
use rabbitscope::ui::action::Action;
use rabbitscope::ui::app::{App, ViewOptions};

fn quorum_queue(name: &str, arguments: &[(&str, &str)]) -> QueueSnapshot {
    let mut all = vec![("x-queue-type".to_string(), "quorum".to_string())];
    all.extend(
        arguments
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    QueueSnapshot {
        queue_type: QueueType::Quorum,
        durable: true,
        arguments: all,
        ..QueueSnapshot::new(name)
    }
}

fn app() -> App {
    let mut app = App::new("127.0.0.1:5673", "/", ViewOptions::default());
    app.update(Action::Topology(Snapshot {
        vhosts: vec![VhostSnapshot {
            name: "/".into(),
            queues: vec![
                QueueSnapshot::new("classic"),
                quorum_queue(
                    "limited",
                    &[
                        ("x-delivery-limit", "5"),
                        ("x-quorum-initial-group-size", "3"),
                    ],
                ),
                quorum_queue("plain", &[]),
                QueueSnapshot {
                    delivery_limit: DeliveryLimit::Limit(20),
                    ..quorum_queue("defaulted", &[])
                },
                QueueSnapshot {
                    delivery_limit: DeliveryLimit::Unlimited,
                    ..quorum_queue("endless", &[])
                },
            ],
            ..Default::default()
        }],
        ..Default::default()
    }));
    app
}

#[test]
fn the_graph_marks_quorum_queues() {
    let mut app = app();
    let text = screen(&mut app, 160, 45);
    assert!(text.contains("limited [Q D]"), "{text}");
    assert!(text.contains("plain [Q D]"), "{text}");
    assert!(!text.contains("classic [Q"), "{text}");
}

#[test]
fn the_inspector_tells_a_quorum_queue_s_limit_and_cluster() {
    let mut app = app();
    select_queue(&mut app, "classic");
    assert!(!screen(&mut app, 160, 45).contains("quorum queue"));
    select_queue(&mut app, "limited");
    let text = screen(&mut app, 160, 45);
    for line in [
        "quorum queue: counts redeliveries (x-delivery-count)",
        "  delivery limit 5 (then dead-letter or drop)",
        "  cluster: 3 members, 1 leader, majority 2",
        "  here: 1 node, leader and only member, majority 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // A remote RabbitMQ does not say which default applies; the embedded broker does.
    select_queue(&mut app, "plain");
    let text = screen(&mut app, 160, 45);
    assert!(
        text.contains("  delivery limit: broker default (20 from 4.0, none before)"),
        "{text}"
    );
    select_queue(&mut app, "defaulted");
    let text = screen(&mut app, 160, 45);
    assert!(
        text.contains("  delivery limit 20 (then dead-letter or drop)"),
        "{text}"
    );
    select_queue(&mut app, "endless");
    let text = screen(&mut app, 160, 45);
    assert!(
        text.contains("  no delivery limit (redeliveries only counted)"),
        "{text}"
    );
}
