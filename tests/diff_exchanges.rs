//! Exchange behaviour, checked against RabbitMQ and the embedded broker alike.
//!
//! Every scenario records what it observes (by short labels, never by the generated names) and
//! asserts the outcome it expects, so two brokers that both do nothing cannot agree by accident.
mod common;

use lapin::options::{
    BasicPublishOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, ExchangeUnbindOptions,
    QueueBindOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Confirmation, Connection, ExchangeKind};

use common::client::*;

/// Passive exchange.declare on a throwaway channel (a miss closes the channel).
async fn exchange_exists(conn: &Connection, name: &str) -> String {
    let ch = conn.create_channel().await.expect("channel.open");
    let r = try_declare_exchange(
        &ch,
        name,
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            passive: true,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await;
    let o = outcome(&r);
    if r.is_ok() {
        let _ = ch.close(200, "OK".into()).await;
    }
    o
}

// ---------------------------------------------------------------------------------------------
// Default exchange
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_exchange_routes_by_queue_name() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q1 = common::unique("dflt-q1");
        let q2 = common::unique("dflt-q2");
        let missing = common::unique("dflt-missing");
        declare_queue(&ch, &q1).await;
        declare_queue(&ch, &q2).await;
        t.push(format!("to q1: {}", publish(&ch, "", &q1, "m1").await));
        t.push(format!("to q2: {}", publish(&ch, "", &q2, "m2").await));
        t.push(format!(
            "to q1 again: {}",
            publish(&ch, "", &q1, "m3").await
        ));
        let p = publish_with(&ch, "", &missing, "m4", BasicProperties::default(), true).await;
        t.push(format!("mandatory to a missing queue: {p}"));
        t.push(format!("q1 got {:?}", drain(&ch, &q1).await));
        t.push(format!("q2 got {:?}", drain(&ch, &q2).await));
        cleanup(&conn, &[&q1, &q2], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            r#"q1 got ["m1", "m3"]"#,
            r#"q2 got ["m2"]"#,
            "mandatory to a missing queue: returned 312 NO_ROUTE then ack",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_exchange_refuses_bind_and_unbind() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let q = common::unique("dflt-bind");
        declare_queue(&ch, &q).await;
        let r = ch
            .queue_bind(
                q.as_str().into(),
                "".into(),
                "some-key".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await;
        t.push(format!("bind on default exchange: {}", outcome(&r)));
        let ch = channel(&conn).await;
        let r = ch
            .queue_unbind(
                q.as_str().into(),
                "".into(),
                q.as_str().into(),
                FieldTable::default(),
            )
            .await;
        t.push(format!("unbind from default exchange: {}", outcome(&r)));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "bind on default exchange: 403 ACCESS-REFUSED",
            "unbind from default exchange: 403 ACCESS-REFUSED",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// direct, fanout, topic, headers
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_exchange_routes_by_exact_key() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let x = common::unique("direct-x");
        let q1 = common::unique("direct-q1");
        let q2 = common::unique("direct-q2");
        let q3 = common::unique("direct-q3");
        declare_exchange(&ch, &x, ExchangeKind::Direct).await;
        for q in [&q1, &q2, &q3] {
            declare_queue(&ch, q).await;
        }
        // q1 and q2 share key "k"; q3 has "k" and "j"; q1 is bound to "k" twice (idempotent).
        bind(&ch, &q1, &x, "k").await;
        bind(&ch, &q1, &x, "k").await;
        bind(&ch, &q2, &x, "k").await;
        bind(&ch, &q3, &x, "k").await;
        bind(&ch, &q3, &x, "j").await;
        for (key, body) in [
            ("k", "to-k"),
            ("j", "to-j"),
            ("K", "to-K"),
            ("", "to-empty"),
        ] {
            publish(&ch, &x, key, body).await;
        }
        let p = publish_with(&ch, &x, "nope", "m", BasicProperties::default(), true).await;
        t.push(format!("mandatory with unbound key: {p}"));
        t.push(format!("q1 got {:?}", drain(&ch, &q1).await));
        t.push(format!("q2 got {:?}", drain(&ch, &q2).await));
        t.push(format!("q3 got {:?}", drain(&ch, &q3).await));
        cleanup(&conn, &[&q1, &q2, &q3], &[&x]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            r#"q1 got ["to-k"]"#,
            r#"q2 got ["to-k"]"#,
            r#"q3 got ["to-k", "to-j"]"#,
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_exchange_ignores_routing_key() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let x = common::unique("fanout-x");
        let q1 = common::unique("fanout-q1");
        let q2 = common::unique("fanout-q2");
        declare_exchange(&ch, &x, ExchangeKind::Fanout).await;
        declare_queue(&ch, &q1).await;
        declare_queue(&ch, &q2).await;
        bind(&ch, &q1, &x, "a").await;
        bind(&ch, &q2, &x, "").await;
        publish(&ch, &x, "zzz", "m1").await;
        publish(&ch, &x, "", "m2").await;
        publish(&ch, &x, "a", "m3").await;
        t.push(format!("q1 got {:?}", drain(&ch, &q1).await));
        t.push(format!("q2 got {:?}", drain(&ch, &q2).await));
        cleanup(&conn, &[&q1, &q2], &[&x]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            r#"q1 got ["m1", "m2", "m3"]"#,
            r#"q2 got ["m1", "m2", "m3"]"#,
        ],
    );
}

const TOPIC_PATTERNS: &[&str] = &[
    "", "#", "#.#", "*", "*.*", "a", "a.*", "a.#", "#.b", "*.b", "a.*.b", "a.#.b", "a.#.#.b",
    "#.a.#", "*.#", "#.*", "*.#.*", "a..b", ".", "a.", ".a", "a.*.*", "*.b.#", "a.b.c", "#.#.b",
];

const TOPIC_KEYS: &[&str] = &[
    "", "a", "b", "a.b", "a.c", "b.a", "a.b.c", "a.x.b", "a.x.y.b", "a.b.b", "a..b", ".", "..",
    "a.", ".a", "x.a.y", "a.b.c.d", "ab",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_exchange_pattern_table() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let x = common::unique("topic-x");
        declare_exchange(&ch, &x, ExchangeKind::Topic).await;
        let mut queues = Vec::new();
        for (i, pattern) in TOPIC_PATTERNS.iter().enumerate() {
            let q = common::unique(&format!("topic-p{i}"));
            declare_queue(&ch, &q).await;
            bind(&ch, &q, &x, pattern).await;
            queues.push(q);
        }
        for (j, key) in TOPIC_KEYS.iter().enumerate() {
            publish(&ch, &x, key, &j.to_string()).await;
        }
        for (pattern, q) in TOPIC_PATTERNS.iter().zip(&queues) {
            let got: Vec<&str> = drain(&ch, q)
                .await
                .iter()
                .map(|b| TOPIC_KEYS[b.parse::<usize>().unwrap()])
                .collect();
            for key in TOPIC_KEYS {
                let verdict = if got.contains(key) {
                    "matches"
                } else {
                    "misses"
                };
                t.push(format!("pattern {pattern:?} {verdict} key {key:?}"));
            }
        }
        let qs: Vec<&str> = queues.iter().map(String::as_str).collect();
        cleanup(&conn, &qs, &[&x]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            r##"pattern "#" matches key """##,
            r##"pattern "#" matches key "a.x.y.b""##,
            r#"pattern "" matches key """#,
            r#"pattern "" misses key "a""#,
            r#"pattern "*" matches key "a""#,
            r#"pattern "*" misses key "a.b""#,
            r#"pattern "*" misses key """#,
            r#"pattern "a.*" matches key "a.b""#,
            r#"pattern "a.*" misses key "a""#,
            r#"pattern "a.#" matches key "a""#,
            r#"pattern "a.#.b" matches key "a.b""#,
            r#"pattern "a.#.b" matches key "a.x.y.b""#,
            r#"pattern "a.*.b" misses key "a.b""#,
            r#"pattern "a..b" matches key "a..b""#,
            r#"pattern "." matches key ".""#,
            r#"pattern "*.*" matches key ".""#,
            r#"pattern "a" misses key "ab""#,
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_exchange_match_modes() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let x = common::unique("headers-x");
        declare_exchange(&ch, &x, ExchangeKind::Headers).await;
        let one = AMQPValue::LongInt(1);
        let bindings: Vec<(&str, FieldTable)> = vec![
            (
                "all",
                table(&[
                    ("x-match", text("all")),
                    ("a", one.clone()),
                    ("b", text("two")),
                ]),
            ),
            (
                "any",
                table(&[
                    ("x-match", text("any")),
                    ("a", one.clone()),
                    ("b", text("two")),
                ]),
            ),
            (
                "no-x-match",
                table(&[("a", one.clone()), ("b", text("two"))]),
            ),
            (
                "all-ignores-x",
                table(&[
                    ("x-match", text("all")),
                    ("a", one.clone()),
                    ("x-k", text("v")),
                ]),
            ),
            (
                "any-only-x",
                table(&[("x-match", text("any")), ("x-k", text("v"))]),
            ),
            (
                "all-with-x",
                table(&[
                    ("x-match", text("all-with-x")),
                    ("a", one.clone()),
                    ("x-k", text("v")),
                ]),
            ),
            (
                "any-with-x",
                table(&[("x-match", text("any-with-x")), ("x-k", text("v"))]),
            ),
            (
                "void",
                table(&[("x-match", text("all")), ("c", AMQPValue::Void)]),
            ),
            ("only-all", table(&[("x-match", text("all"))])),
            ("only-any", table(&[("x-match", text("any"))])),
            ("empty", FieldTable::default()),
            (
                "all-int64",
                table(&[("x-match", text("all")), ("a", AMQPValue::LongLongInt(1))]),
            ),
            (
                "all-string-1",
                table(&[("x-match", text("all")), ("a", text("1"))]),
            ),
        ];
        let messages: Vec<(&str, Option<FieldTable>)> = vec![
            ("none", None),
            ("empty", Some(FieldTable::default())),
            ("a=1", Some(table(&[("a", one.clone())]))),
            ("a=1(i64)", Some(table(&[("a", AMQPValue::LongLongInt(1))]))),
            (
                "a=1(i8)",
                Some(table(&[("a", AMQPValue::ShortShortInt(1))])),
            ),
            ("a='1'", Some(table(&[("a", text("1"))]))),
            (
                "a=1,b=two",
                Some(table(&[("a", one.clone()), ("b", text("two"))])),
            ),
            ("b=two", Some(table(&[("b", text("two"))]))),
            (
                "a=2,b=two",
                Some(table(&[("a", AMQPValue::LongInt(2)), ("b", text("two"))])),
            ),
            ("x-k=v", Some(table(&[("x-k", text("v"))]))),
            (
                "x-k=v,a=1",
                Some(table(&[("x-k", text("v")), ("a", one.clone())])),
            ),
            ("c=void", Some(table(&[("c", AMQPValue::Void)]))),
            ("c=str", Some(table(&[("c", text("anything"))]))),
        ];
        let mut queues = Vec::new();
        for (label, args) in &bindings {
            let q = common::unique(&format!("headers-{label}"));
            declare_queue(&ch, &q).await;
            let r = ch
                .queue_bind(
                    q.as_str().into(),
                    x.as_str().into(),
                    "ignored".into(),
                    QueueBindOptions::default(),
                    args.clone(),
                )
                .await;
            t.push(format!("bind {label}: {}", outcome(&r)));
            queues.push(q);
        }
        for (label, headers) in &messages {
            let mut props = BasicProperties::default();
            if let Some(h) = headers {
                props = props.with_headers(h.clone());
            }
            publish_with(&ch, &x, "any-key", label, props, false).await;
        }
        for ((label, _), q) in bindings.iter().zip(&queues) {
            t.push(format!("binding {label} got {:?}", drain(&ch, q).await));
        }
        let qs: Vec<&str> = queues.iter().map(String::as_str).collect();
        cleanup(&conn, &qs, &[&x]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            r#"binding all got ["a=1,b=two"]"#,
            r#"binding only-any got []"#,
        ],
    );
    assert!(
        t.iter()
            .any(|l| l.starts_with("binding only-all got [\"none\", \"empty\"")),
        "{t:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Declaring and deleting exchanges
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predeclared_amq_exchanges_exist() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        for name in [
            "amq.direct",
            "amq.fanout",
            "amq.topic",
            "amq.headers",
            "amq.match",
        ] {
            t.push(format!(
                "passive {name}: {}",
                exchange_exists(&conn, name).await
            ));
        }
        // Routing through a predeclared exchange works like any other.
        let ch = channel(&conn).await;
        let q = common::unique("amq-topic-q");
        declare_queue(&ch, &q).await;
        bind(&ch, &q, "amq.topic", &format!("{q}.#")).await;
        publish(&ch, "amq.topic", &format!("{q}.hello"), "via-amq.topic").await;
        t.push(format!("q got {:?}", drain(&ch, &q).await));
        cleanup(&conn, &[&q], &[]).await;
        t
    })
    .await;
    assert_has(&t, &["passive amq.match: ok", r#"q got ["via-amq.topic"]"#]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amq_prefix_is_reserved() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let name = format!("amq.{}", common::unique("reserved"));
        let ch = channel(&conn).await;
        let r = try_declare_exchange(
            &ch,
            &name,
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
        t.push(format!("declare amq.<new>: {}", outcome(&r)));
        t.push(format!(
            "amq.<new> exists afterwards: {}",
            exchange_exists(&conn, &name).await
        ));
        let ch = channel(&conn).await;
        let r = ch
            .exchange_delete("amq.direct".into(), ExchangeDeleteOptions::default())
            .await;
        t.push(format!("delete amq.direct: {}", outcome(&r)));
        t.push(format!(
            "amq.direct exists afterwards: {}",
            exchange_exists(&conn, "amq.direct").await
        ));
        cleanup(&conn, &[], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "declare amq.<new>: 403 ACCESS-REFUSED",
            "delete amq.direct: 403 ACCESS-REFUSED",
            "amq.direct exists afterwards: ok",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_redeclare_must_be_equivalent() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let x = common::unique("redeclare-x");
        let mut ch = channel(&conn).await;
        declare_exchange(&ch, &x, ExchangeKind::Direct).await;
        let plain = ExchangeDeclareOptions::default();
        let auto_delete = ExchangeDeclareOptions {
            auto_delete: true,
            ..plain
        };
        let passive = ExchangeDeclareOptions {
            passive: true,
            ..plain
        };
        let mut refused = false;
        for (label, kind, options) in [
            ("same type again", ExchangeKind::Direct, plain),
            ("as fanout", ExchangeKind::Fanout, plain),
            ("with auto-delete", ExchangeKind::Direct, auto_delete),
            ("passive with another type", ExchangeKind::Fanout, passive),
        ] {
            // A refused declare closes its channel; the next case needs a new one.
            if refused {
                ch = channel(&conn).await;
            }
            let r = try_declare_exchange(&ch, &x, kind, options, FieldTable::default()).await;
            t.push(format!("{label}: {}", outcome(&r)));
            refused = r.is_err();
        }
        cleanup(&conn, &[], &[&x]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &["same type again: ok", "as fanout: 406 PRECONDITION-FAILED"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_declare_of_missing_exchange_is_not_found() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let x = common::unique("missing-x");
        t.push(format!(
            "passive missing: {}",
            exchange_exists(&conn, &x).await
        ));
        // A channel error leaves the connection usable.
        let ch = channel(&conn).await;
        declare_exchange(&ch, &x, ExchangeKind::Topic).await;
        t.push(format!(
            "passive after declare: {}",
            exchange_exists(&conn, &x).await
        ));
        let r = ch
            .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
            .await;
        t.push(format!("delete: {}", outcome(&r)));
        t.push(format!(
            "passive after delete: {}",
            exchange_exists(&conn, &x).await
        ));
        let r = ch
            .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
            .await;
        t.push(format!("delete again: {}", outcome(&r)));
        cleanup(&conn, &[], &[]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "passive missing: 404 NOT-FOUND",
            "passive after declare: ok",
            "passive after delete: 404 NOT-FOUND",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Exchange-to-exchange bindings
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_to_exchange_chain_routes_until_unbound() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let x1 = common::unique("chain-x1");
        let x2 = common::unique("chain-x2");
        let x3 = common::unique("chain-x3");
        let q = common::unique("chain-q");
        declare_exchange(&ch, &x1, ExchangeKind::Direct).await;
        declare_exchange(&ch, &x2, ExchangeKind::Topic).await;
        declare_exchange(&ch, &x3, ExchangeKind::Fanout).await;
        declare_queue(&ch, &q).await;
        // x1 --"k.a"--> x2 --"k.*"--> x3 --> q
        bind_exchange(&ch, &x2, &x1, "k.a").await;
        bind_exchange(&ch, &x3, &x2, "k.*").await;
        bind(&ch, &q, &x3, "").await;
        publish(&ch, &x1, "k.a", "through-chain").await;
        publish(&ch, &x1, "k.b", "stopped-at-x1").await;
        publish(&ch, &x2, "k.b", "enters-at-x2").await;
        t.push(format!("q got {:?}", drain(&ch, &q).await));
        let r = ch
            .exchange_unbind(
                x3.as_str().into(),
                x2.as_str().into(),
                "k.*".into(),
                ExchangeUnbindOptions::default(),
                FieldTable::default(),
            )
            .await;
        t.push(format!("unbind x3 from x2: {}", outcome(&r)));
        let p = publish_with(
            &ch,
            &x1,
            "k.a",
            "after-unbind",
            BasicProperties::default(),
            true,
        )
        .await;
        t.push(format!("mandatory after unbind: {p}"));
        t.push(format!("q got after unbind {:?}", drain(&ch, &q).await));
        cleanup(&conn, &[&q], &[&x1, &x2, &x3]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            r#"q got ["through-chain", "enters-at-x2"]"#,
            "q got after unbind []",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_to_exchange_diamond_and_cycle_deliver_once() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let top = common::unique("diamond-top");
        let left = common::unique("diamond-left");
        let right = common::unique("diamond-right");
        let q = common::unique("diamond-q");
        let q_direct = common::unique("diamond-q-direct");
        declare_exchange(&ch, &top, ExchangeKind::Fanout).await;
        declare_exchange(&ch, &left, ExchangeKind::Fanout).await;
        declare_exchange(&ch, &right, ExchangeKind::Direct).await;
        declare_queue(&ch, &q).await;
        declare_queue(&ch, &q_direct).await;
        bind_exchange(&ch, &left, &top, "").await;
        bind_exchange(&ch, &right, &top, "").await;
        bind(&ch, &q, &left, "").await;
        bind(&ch, &q, &right, "k").await;
        // q_direct: bound to top directly and through left.
        bind(&ch, &q_direct, &top, "").await;
        bind(&ch, &q_direct, &left, "").await;
        publish(&ch, &top, "k", "both-paths").await;
        publish(&ch, &top, "other", "left-path-only").await;
        t.push(format!("q got {:?}", drain(&ch, &q).await));
        t.push(format!("q_direct got {:?}", drain(&ch, &q_direct).await));
        // A cycle: left -> top as well. Still once per queue, and no loop.
        bind_exchange(&ch, &top, &left, "").await;
        publish(&ch, &top, "k", "with-cycle").await;
        publish(&ch, &left, "k", "into-cycle-at-left").await;
        t.push(format!("q got with cycle {:?}", drain(&ch, &q).await));
        t.push(format!(
            "q_direct got with cycle {:?}",
            drain(&ch, &q_direct).await
        ));
        cleanup(&conn, &[&q, &q_direct], &[&top, &left, &right]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            r#"q got ["both-paths", "left-path-only"]"#,
            r#"q got with cycle ["with-cycle", "into-cycle-at-left"]"#,
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Alternate, internal and auto-delete exchanges
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternate_exchange_receives_unroutable_messages() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let x = common::unique("ae-main");
        let ae = common::unique("ae-alt");
        let q_main = common::unique("ae-q-main");
        let q_alt = common::unique("ae-q-alt");
        declare_exchange(&ch, &ae, ExchangeKind::Fanout).await;
        try_declare_exchange(
            &ch,
            &x,
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            table(&[("alternate-exchange", text(&ae))]),
        )
        .await
        .expect("declare with alternate-exchange");
        declare_queue(&ch, &q_main).await;
        declare_queue(&ch, &q_alt).await;
        bind(&ch, &q_main, &x, "k").await;
        bind(&ch, &q_alt, &ae, "").await;
        publish(&ch, &x, "k", "routable").await;
        let p = publish_with(
            &ch,
            &x,
            "nope",
            "unroutable",
            BasicProperties::default(),
            true,
        )
        .await;
        t.push(format!("mandatory unroutable with AE: {p}"));
        t.push(format!("main got {:?}", drain(&ch, &q_main).await));
        t.push(format!("alternate got {:?}", drain(&ch, &q_alt).await));
        // An alternate exchange that routes nowhere: the message is returned.
        unbind(&ch, &q_alt, &ae, "").await;
        let p = publish_with(&ch, &x, "nope", "lost", BasicProperties::default(), true).await;
        t.push(format!("mandatory unroutable with empty AE: {p}"));
        cleanup(&conn, &[&q_main, &q_alt], &[&x, &ae]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "mandatory unroutable with AE: ack",
            r#"main got ["routable"]"#,
            r#"alternate got ["unroutable"]"#,
            "mandatory unroutable with empty AE: returned 312 NO_ROUTE then ack",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_exchange_refuses_publish_but_routes_from_bound_exchange() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let front = common::unique("internal-front");
        let inner = common::unique("internal-inner");
        let q = common::unique("internal-q");
        declare_exchange(&ch, &front, ExchangeKind::Fanout).await;
        try_declare_exchange(
            &ch,
            &inner,
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                internal: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare internal");
        declare_queue(&ch, &q).await;
        bind(&ch, &q, &inner, "").await;
        bind_exchange(&ch, &inner, &front, "").await;
        t.push(format!(
            "publish via front: {}",
            publish(&ch, &front, "k", "via-front").await
        ));
        t.push(format!("q got {:?}", drain(&ch, &q).await));
        t.push(format!(
            "publish to internal: {}",
            publish(&ch, &inner, "k", "direct").await
        ));
        let ch = channel(&conn).await;
        t.push(format!(
            "q got after direct publish {:?}",
            drain(&ch, &q).await
        ));
        cleanup(&conn, &[&q], &[&front, &inner]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            r#"q got ["via-front"]"#,
            "publish to internal: 403 ACCESS-REFUSED",
            "q got after direct publish []",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_delete_exchange_goes_with_its_last_binding() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let ad = ExchangeDeclareOptions {
            auto_delete: true,
            ..ExchangeDeclareOptions::default()
        };
        let x1 = common::unique("autodel-x1");
        let x2 = common::unique("autodel-x2");
        let q1 = common::unique("autodel-q1");
        let q2 = common::unique("autodel-q2");
        for x in [&x1, &x2] {
            try_declare_exchange(&ch, x, ExchangeKind::Direct, ad, FieldTable::default())
                .await
                .expect("declare auto-delete");
        }
        declare_queue(&ch, &q1).await;
        declare_queue(&ch, &q2).await;
        t.push(format!(
            "x1 before any binding: {}",
            exchange_exists(&conn, &x1).await
        ));
        bind(&ch, &q1, &x1, "a").await;
        bind(&ch, &q2, &x1, "b").await;
        unbind(&ch, &q1, &x1, "a").await;
        t.push(format!(
            "x1 with one binding left: {}",
            exchange_exists(&conn, &x1).await
        ));
        unbind(&ch, &q2, &x1, "b").await;
        t.push(format!(
            "x1 after last unbind: {}",
            exchange_exists(&conn, &x1).await
        ));
        // Losing the binding by deleting its queue counts too.
        bind(&ch, &q1, &x2, "a").await;
        ch.queue_delete(q1.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("delete q1");
        t.push(format!(
            "x2 after its queue was deleted: {}",
            exchange_exists(&conn, &x2).await
        ));
        cleanup(&conn, &[&q1, &q2], &[&x1, &x2]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "x1 before any binding: ok",
            "x1 with one binding left: ok",
            "x1 after last unbind: 404 NOT-FOUND",
            "x2 after its queue was deleted: 404 NOT-FOUND",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_delete_if_unused_refuses_a_bound_exchange() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let x = common::unique("ifunused-x");
        let dest = common::unique("ifunused-dest");
        let q = common::unique("ifunused-q");
        declare_exchange(&ch, &x, ExchangeKind::Direct).await;
        declare_exchange(&ch, &dest, ExchangeKind::Direct).await;
        declare_queue(&ch, &q).await;
        bind(&ch, &q, &x, "k").await;
        bind_exchange(&ch, &dest, &x, "k").await;
        let if_unused = ExchangeDeleteOptions {
            if_unused: true,
            ..ExchangeDeleteOptions::default()
        };
        let r = ch.exchange_delete(x.as_str().into(), if_unused).await;
        t.push(format!("if-unused delete of bound source: {}", outcome(&r)));
        t.push(format!(
            "source still there: {}",
            exchange_exists(&conn, &x).await
        ));
        // Being only the destination of a binding does not make an exchange "used".
        let ch = channel(&conn).await;
        let r = ch.exchange_delete(dest.as_str().into(), if_unused).await;
        t.push(format!(
            "if-unused delete of a destination-only exchange: {}",
            outcome(&r)
        ));
        let ch = channel(&conn).await;
        unbind(&ch, &q, &x, "k").await;
        let r = ch.exchange_delete(x.as_str().into(), if_unused).await;
        t.push(format!("if-unused delete once unbound: {}", outcome(&r)));
        t.push(format!(
            "source afterwards: {}",
            exchange_exists(&conn, &x).await
        ));
        cleanup(&conn, &[&q], &[&x, &dest]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            "if-unused delete of bound source: 406 PRECONDITION-FAILED",
            "source still there: ok",
            "if-unused delete once unbound: ok",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mandatory_unroutable_message_is_returned_before_ack() {
    let t = common::differential(|url| async move {
        let mut t = Vec::new();
        let conn = connect(&url).await;
        let ch = channel(&conn).await;
        let x = common::unique("mandatory-x");
        let q = common::unique("mandatory-q");
        declare_exchange(&ch, &x, ExchangeKind::Direct).await;
        declare_queue(&ch, &q).await;
        bind(&ch, &q, &x, "k").await;
        let confirm = ch
            .basic_publish(
                x.as_str().into(),
                "nowhere".into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                b"lost",
                BasicProperties::default().with_message_id("id-1".into()),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        match confirm {
            Confirmation::Ack(Some(m)) => {
                t.push(format!(
                    "returned {} {} exchange-is-x={} key={} body={} message_id={:?}",
                    m.reply_code,
                    m.reply_text,
                    m.delivery.exchange.as_str() == x,
                    m.delivery.routing_key,
                    String::from_utf8_lossy(&m.delivery.data),
                    m.delivery
                        .properties
                        .message_id()
                        .as_ref()
                        .map(|s| s.to_string()),
                ));
            }
            other => t.push(format!("unexpected confirmation {other:?}")),
        }
        let p = publish_with(&ch, &x, "k", "kept", BasicProperties::default(), true).await;
        t.push(format!("mandatory routable: {p}"));
        let p = publish_with(
            &ch,
            &x,
            "nowhere",
            "dropped",
            BasicProperties::default(),
            false,
        )
        .await;
        t.push(format!("not mandatory unroutable: {p}"));
        t.push(format!("q got {:?}", drain(&ch, &q).await));
        cleanup(&conn, &[&q], &[&x]).await;
        t
    })
    .await;
    assert_has(
        &t,
        &[
            r#"returned 312 NO_ROUTE exchange-is-x=true key=nowhere body=lost message_id=Some("id-1")"#,
            "mandatory routable: ack",
            "not mandatory unroutable: ack",
            r#"q got ["kept"]"#,
        ],
    );
}
