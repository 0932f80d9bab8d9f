//! Topic routing cost against the number of bindings.
//!
//! Builds a topic exchange with 1,000 / 10,000 / 100,000 bindings of realistic patterns, each to
//! its own queue, and measures routing one message whose key matches a handful of them (and one
//! that matches only the catch-all bindings). The target: at most 2 µs median at 100,000
//! bindings, and flat across the three sizes.
//!
//! The `many_hashes` group routes a 60-word key against one binding of eight `#` words
//! (`#.#.#.#.#.#.#.#.x`): a walk that tries every split of the key between the `#`s takes
//! tens of seconds on it; the trie walk visits each (node, word) once.
//!
//! Run with `cargo bench --bench topic_routing`. See BENCHMARKS.md for the figures.

use std::hint::black_box;
use std::sync::Arc;

use amq_protocol::types::FieldTable;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rabbitscope::broker::exchange::{Binding, Destination, Router, TopicRouter};
use rabbitscope::broker::vhost::Vhost;

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];

/// The routing key that matches a few bindings (see `patterns`).
const HIT_KEY: &str = "region.7.service.3.created";
/// A key matched only by the catch-all bindings `#` and `*.#`.
const MISS_KEY: &str = "billing.invoice.paid";

/// Number of regions in `region.<r>.service.<s>.*`.
const REGIONS: usize = 50;

/// `n` distinct binding patterns, the kind a large topic setup has:
/// - 70% `region.<r>.service.<s>.*` (one subscriber per region and service),
/// - 15% `#.<word>` (every event of one kind, whatever its prefix),
/// - the rest `<word>.*.<word>` (one source, any instance, one level),
/// - plus a fixed handful of wide patterns: `#`, `region.#`, `region.*.service.*.created`,
///   `*.*.*.*.*`, `#.created`, `*.#`.
///
/// `HIT_KEY` matches `region.7.service.3.*` and the six wide patterns: seven bindings at every
/// size. `MISS_KEY` matches `#` and `*.#` only.
fn patterns(n: usize) -> Vec<String> {
    let wide = [
        "#",
        "region.#",
        "region.*.service.*.created",
        "*.*.*.*.*",
        "#.created",
        "*.#",
    ];
    let mut out: Vec<String> = wide.iter().map(|s| s.to_string()).collect();
    let rest = n - wide.len();
    let regional = rest * 70 / 100;
    let hashed = rest * 15 / 100;
    let dotted = rest - regional - hashed;
    for i in 0..regional {
        out.push(format!("region.{}.service.{}.*", i % REGIONS, i / REGIONS));
    }
    for i in 0..hashed {
        out.push(format!("#.event{i}"));
    }
    for i in 0..dotted {
        out.push(format!("app{}.*.level{}", i, i % 7));
    }
    assert_eq!(out.len(), n);
    out
}

fn binding(i: usize, pattern: &str) -> Binding {
    Binding::new(
        Destination::Queue(Arc::from(format!("q{i}").as_str())),
        pattern,
        FieldTable::default(),
    )
}

fn router(n: usize) -> TopicRouter {
    let mut router = TopicRouter::default();
    for (i, p) in patterns(n).iter().enumerate() {
        router.bind(Arc::new(binding(i, p)));
    }
    assert_eq!(router.binding_count(), n);
    router
}

fn vhost(n: usize) -> Vhost {
    let mut vhost = Vhost::new("/");
    for (i, p) in patterns(n).iter().enumerate() {
        assert!(vhost.add_binding("amq.topic", binding(i, p)));
    }
    vhost
}

fn check_matches(router: &TopicRouter) {
    let mut out = Vec::new();
    router.route(HIT_KEY, None, &mut out);
    assert_eq!(out.len(), 7, "{HIT_KEY} should match seven bindings");
    out.clear();
    router.route(MISS_KEY, None, &mut out);
    assert_eq!(out.len(), 2, "{MISS_KEY} should match two bindings");
}

fn topic_router(c: &mut Criterion) {
    let mut group = c.benchmark_group("topic_router");
    group.throughput(Throughput::Elements(1));
    for n in SIZES {
        let router = router(n);
        check_matches(&router);
        let mut out = Vec::with_capacity(64);
        for (name, key) in [("hit7", HIT_KEY), ("catchall2", MISS_KEY)] {
            group.bench_with_input(BenchmarkId::new(name, n), &key, |b, key| {
                b.iter(|| {
                    out.clear();
                    router.route(black_box(key), None, &mut out);
                    black_box(out.len())
                })
            });
        }
    }
    group.finish();
}

fn vhost_route(c: &mut Criterion) {
    let mut group = c.benchmark_group("vhost_route");
    group.throughput(Throughput::Elements(1));
    for n in SIZES {
        let vhost = vhost(n);
        assert_eq!(vhost.route("amq.topic", HIT_KEY, None).queues.len(), 7);
        group.bench_with_input(BenchmarkId::new("hit7", n), &HIT_KEY, |b, key| {
            b.iter(|| {
                let route = vhost.route("amq.topic", black_box(key), None);
                black_box(route.queues.len())
            })
        });
    }
    group.finish();
}

fn many_hashes(c: &mut Criterion) {
    let mut group = c.benchmark_group("many_hashes");
    group.throughput(Throughput::Elements(1));
    let mut router = TopicRouter::default();
    router.bind(Arc::new(binding(0, "#.#.#.#.#.#.#.#.x")));
    let miss = vec!["w"; 60].join(".");
    let hit = format!("{}.x", vec!["w"; 59].join("."));
    for (name, key, matches) in [("miss60", &miss, 0), ("hit60", &hit, 1)] {
        let mut out = Vec::new();
        router.route(key, None, &mut out);
        assert_eq!(out.len(), matches, "{name}");
        group.bench_with_input(BenchmarkId::new(name, 8), key, |b, key| {
            b.iter(|| {
                out.clear();
                router.route(black_box(key), None, &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, topic_router, vhost_route, many_hashes);
criterion_main!(benches);
