//! One frame of the live view for a big broker: 2,000 exchanges, 10,000 queues and 20,000
//! bindings, at 160x45. The target is at most 16 ms a frame. The topology layout (done when
//! the topology changes, at most four times a second) is measured separately.
use criterion::{criterion_group, criterion_main, Criterion};

use rabbitscope::broker::{ExchangeSnapshot, QueueSnapshot, Snapshot, VhostSnapshot};
use rabbitscope::events::BindingInfo;
use rabbitscope::ui::action::Action;
use rabbitscope::ui::app::{App, ViewOptions};
use rabbitscope::ui::layout::layout;
use rabbitscope::ui::render_to_buffer;

fn big_topology() -> Snapshot {
    let kinds = ["direct", "topic", "fanout", "headers"];
    let exchanges = (0..2_000)
        .map(|i| ExchangeSnapshot {
            name: format!("exchange.{i:04}"),
            kind: kinds[i % 4].to_string(),
            durable: i % 2 == 0,
            auto_delete: false,
            internal: false,
            arguments: vec![],
        })
        .collect();
    let queues = (0..10_000)
        .map(|i| QueueSnapshot {
            name: format!("queue.{i:05}"),
            queue_type: Default::default(),
            durable: false,
            exclusive: false,
            auto_delete: false,
            arguments: vec![],
            ready: i % 7,
            unacked: i % 3,
            consumers: i % 2,
            stream: None,
            delivery_limit: Default::default(),
            ..Default::default()
        })
        .collect();
    let bindings = (0..20_000)
        .map(|i| BindingInfo {
            source: format!("exchange.{:04}", i % 2_000).into(),
            destination: format!("queue.{:05}", (i * 7) % 10_000).into(),
            destination_is_exchange: false,
            routing_key: format!("region.{}.service.{}", i % 13, i % 101).into(),
            arguments: vec![],
        })
        .collect();
    Snapshot {
        vhosts: vec![VhostSnapshot {
            name: "/".into(),
            exchanges,
            queues,
            bindings,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn bench(c: &mut Criterion) {
    let topology = big_topology();
    let mut app = App::new("127.0.0.1:5673", "/", ViewOptions::default());
    app.update(Action::Topology(topology.clone()));
    // Look at the middle of the graph, where lanes cross the most.
    for _ in 0..6_000 {
        app.update(Action::Down);
    }
    c.bench_function(
        "render one frame 160x45 (2k exchanges, 10k queues, 20k bindings)",
        |b| b.iter(|| render_to_buffer(&mut app, 160, 45)),
    );
    // Grouped by service and host (none of it oslo.messaging's): a lane per queue.
    let mut grouped = App::new("127.0.0.1:5673", "/", ViewOptions::default());
    grouped.update(Action::Topology(topology.clone()));
    grouped.update(Action::CycleGrouping);
    c.bench_function(
        "render one frame 160x45 grouped by service (same topology)",
        |b| b.iter(|| render_to_buffer(&mut grouped, 160, 45)),
    );
    let vhost = topology.vhosts[0].clone();
    c.bench_function("lay out the same topology", |b| {
        b.iter(|| {
            layout(
                &vhost,
                &Default::default(),
                false,
                1,
                false,
                &Default::default(),
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
