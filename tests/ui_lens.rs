//! The OpenStack lens on screen: the graph grouped by service and host (`o`), clients named
//! `service@host`, a queue said to be whose and for what, the log filtered by service, method,
//! host and kind. Driven by the shipped traces, event by event, as a replay drives the view.
mod common;

use std::path::Path;
use std::sync::Arc;

use common::screen::{screen, select_queue};
use rabbitscope::broker::Snapshot;
use rabbitscope::events::EventKind;
use rabbitscope::lesson::Lang;
use rabbitscope::ui::action::Action;
use rabbitscope::ui::app::{App, ViewOptions};

/// A shipped trace replayed into a view, up to (not including) the first connection closed,
/// when every connection the recording named is still listed.
fn replayed(trace: &str, lang: Lang) -> App {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/traces")
        .join(trace);
    let trace = rabbitscope::trace::read(&path).unwrap();
    let vhost = trace.header.vhost.clone();
    let options = ViewOptions {
        lang,
        ..ViewOptions::default()
    };
    let mut app = App::new("127.0.0.1:5672", &vhost, options);
    let mut snapshot: Snapshot = trace.header.snapshot.clone();
    app.update(Action::Topology(snapshot.clone()));
    for event in trace.events {
        if matches!(event.kind, EventKind::ConnectionClosed { .. }) {
            break;
        }
        rabbitscope::topology::apply(&mut snapshot, &event);
        app.update(Action::BrokerEvent(Arc::new(event)));
        app.update(Action::Topology(snapshot.clone()));
    }
    // Every message has landed.
    app.model.flights.clear();
    app
}

/// `/` and a filter, in place of the one typed before.
fn typed(app: &mut App, filter: &str) {
    app.update(Action::StartFilter);
    while !app.log.filter.is_empty() {
        app.update(Action::FilterBackspace);
    }
    for c in filter.chars() {
        app.update(Action::FilterInput(c));
    }
}

/// The log's lines once `filter` is typed in place of the last one.
fn filtered(app: &mut App, filter: &str) -> Vec<String> {
    app.update(Action::Back);
    typed(app, filter);
    log_lines(&screen(app, 160, 45))
}

/// The log's lines (inside its border), newest first.
fn log_lines(text: &str) -> Vec<String> {
    let start = text.lines().position(|l| l.contains(" messages ")).unwrap();
    text.lines()
        .skip(start + 1)
        .take_while(|l| !l.starts_with('└'))
        .map(|l| l.trim_matches(|c| c == '│' || c == ' ').to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn the_classic_boot_grouped_by_service_and_host_160x45() {
    let mut app = replayed("nova-boot-classic.yaml", Lang::En);
    app.update(Action::CycleGrouping);
    let text = screen(&mut app, 160, 45);
    assert!(text.contains("· by service and host"), "{text}");
    // Server queues give their host; nobody the recording named consumes them.
    let block = |label: &str, queues: &[&str]| {
        let lines: Vec<&str> = text.lines().collect();
        let at = (lines.iter())
            .position(|l| l.contains(&format!("{label}:")))
            .unwrap_or_else(|| panic!("no group {label}: {text}"));
        for (i, q) in queues.iter().enumerate() {
            assert!(
                lines[at + 1 + i].contains(&format!("▶{q}")),
                "{q} under {label}: {text}"
            );
        }
    };
    block(
        "service unknown @ compute-1",
        &["compute-alt.compute-1 ", "compute.compute-1 "],
    );
    block(
        "service unknown @ controller-1",
        &["conductor.controller-1 ", "scheduler.controller-1 "],
    );
    // The reply queue a nova-compute connection consumed (before the recording saw it
    // declared) is that process's; the shared topic queues are oslo.messaging's (their server
    // queues say so) though no connection the recording named consumes them.
    // (Long names are cut at this width.)
    block("nova-compute", &["reply_3d609330315442c6b3"]);
    block(
        "oslo.messaging, service unknown",
        &[
            "compute ",
            "compute-alt ",
            "conductor ",
            "reply_b2f51edff4974f6482",
        ],
    );
    insta::assert_snapshot!(text);
    // `o` again: no node grouping on one node, back to no grouping.
    app.update(Action::CycleGrouping);
    assert!(!screen(&mut app, 160, 45).contains("by service and host"));
}

#[test]
fn the_classic_boot_log_filtered_by_service_method_and_kind_160x45() {
    let mut app = replayed("nova-boot-classic.yaml", Lang::En);
    app.update(Action::FocusNext);
    typed(&mut app, "service:nova-compute");
    let text = screen(&mut app, 160, 45);
    let lines = log_lines(&text);
    assert_eq!(lines.len(), 3, "{text}");
    for line in &lines {
        assert!(
            line.contains(" nova-compute  "),
            "the publisher is said: {line}"
        );
    }
    insta::assert_snapshot!(text);
    // Field terms combine with each other and with a regex.
    let only = |app: &mut App, filter: &str| {
        let lines = filtered(app, filter);
        assert_eq!(lines.len(), 1, "{filter}: {lines:?}");
        lines[0].clone()
    };
    let line = only(&mut app, "service:nova-compute kind:cast");
    assert!(line.contains("cast update_instance_info 4.2"), "{line}");
    let line = only(&mut app, "kind:reply select");
    assert!(line.contains("reply to select_destinations"), "{line}");
    // Sent by the conductor, whose connection the recording never named.
    let line = only(&mut app, "method:build_and_run_instance");
    let cast = " cast build_and_run_instance 6.0 -> compute.compute-1 (2)";
    assert!(line.ends_with(cast), "{line}");
    // An unknown field is said like a bad regex.
    for c in " colour:red".chars() {
        app.update(Action::FilterInput(c));
    }
    let text = screen(&mut app, 160, 45);
    let said = "bad filter: unknown field colour (try service, method, host, kind)";
    assert!(text.contains(said), "{text}");
}

#[test]
fn a_recording_of_the_embedded_broker_names_services_and_hosts_200x70() {
    let mut app = replayed("nova-boot-notifications.yaml", Lang::En);
    app.update(Action::CycleGrouping);
    // A lane per queue wants the width, and a label per group the height.
    app.update(Action::ToggleZoom);
    let text = screen(&mut app, 200, 70);
    for label in [
        "nova-compute @ compute-1:",
        "nova-conductor @ controller-1:",
        "nova-scheduler @ controller-1:",
        "oslo.messaging notifications:",
    ] {
        assert!(text.contains(label), "{label}: {text}");
    }
    // Clients are named service@host, the host learnt from the server queue a sibling
    // connection of the same process consumes.
    assert!(text.contains("nova-compute@compute-1"), "{text}");
    insta::assert_snapshot!(text);
    // The inspector says whose a queue is and what it is for.
    app.update(Action::ToggleZoom);
    select_queue(&mut app, "compute.compute-1");
    app.update(Action::Inspect);
    let text = screen(&mut app, 160, 45);
    assert!(text.contains("compute-1's compute topic queue"), "{text}");
    let mut app = replayed("nova-boot-notifications.yaml", Lang::Zh);
    app.update(Action::CycleGrouping);
    let text = screen(&mut app, 160, 45);
    assert!(text.contains("按服务和主机分组"), "{text}");
    select_queue(&mut app, "compute.compute-1");
    app.update(Action::Inspect);
    let text = screen(&mut app, 160, 45);
    assert!(text.contains("compute-1 的 compute 主题队列"), "{text}");
}

#[test]
fn a_topology_without_oslo_messaging_is_grouped_as_not_oslo_80x24() {
    let mut app = App::new("127.0.0.1:5672", "/", ViewOptions::default());
    app.update(Action::Topology(shop()));
    app.update(Action::CycleGrouping);
    let text = screen(&mut app, 80, 24);
    assert!(text.contains("not oslo.messaging:"), "{text}");
    for q in ["billing", "work"] {
        assert!(text.contains(&format!("▶{q}")), "{q}: {text}");
    }
    insta::assert_snapshot!(text);
}

/// A shop: orders by topic, invoices by direct, none of it oslo.messaging's.
fn shop() -> Snapshot {
    use rabbitscope::broker::{ExchangeSnapshot, QueueSnapshot, VhostSnapshot};
    use rabbitscope::events::BindingInfo;
    let exchange = |name: &str, kind: &str| ExchangeSnapshot {
        name: name.into(),
        kind: kind.into(),
        durable: true,
        auto_delete: false,
        internal: false,
        arguments: vec![],
    };
    Snapshot {
        vhosts: vec![VhostSnapshot {
            name: "/".into(),
            exchanges: vec![exchange("shop", "topic"), exchange("jobs", "direct")],
            queues: vec![QueueSnapshot::new("billing"), QueueSnapshot::new("work")],
            bindings: vec![
                BindingInfo::to_queue("shop", "billing", "order.paid"),
                BindingInfo::to_queue("shop", "work", "job.*"),
                BindingInfo::to_queue("jobs", "billing", "invoice"),
            ],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A lapin connection named as oslo.messaging names its own.
async fn connect_as(url: &str, name: &str) -> lapin::Connection {
    let properties = lapin::ConnectionProperties::default().with_connection_name(name.into());
    lapin::Connection::connect(url, properties)
        .await
        .expect("connect")
}

/// The embedded broker with clients named like Nova's: nova-compute consumes its server queue
/// `compute.compute-1` on one connection and its reply queue on another, nova-api casts to it.
/// The grouped view names the process's host on both its connections and groups its queues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_named_like_oslo_on_the_embedded_broker_are_grouped_by_service_and_host() {
    use common::client::{bind, channel, consume, declare_exchange, declare_queue, next};
    let (url, broker) = common::start_embedded().await;
    let mut events = broker.subscribe();
    let server = connect_as(&url, "nova-compute:4242:0c3c387a-b32f-4ee3-9fe1").await;
    let replies = connect_as(&url, "nova-compute:4242:4784fe02-5991-4d8c-afc1").await;
    let api = connect_as(&url, "nova-api:13593:1ca4c61a-6a92-478b-9c07").await;
    let ch = channel(&server).await;
    declare_exchange(&ch, "nova", lapin::ExchangeKind::Topic).await;
    for q in ["compute", "compute.compute-1"] {
        declare_queue(&ch, q).await;
        bind(&ch, q, "nova", q).await;
    }
    let mut compute = consume(&ch, "compute.compute-1", "1", true).await;
    let _shared = consume(&ch, "compute", "2", true).await;
    let reply_ch = channel(&replies).await;
    let reply_q = "reply_9b5e3c1d2a7f4e6b8c0d1e2f3a4b5c6d";
    declare_queue(&reply_ch, reply_q).await;
    let _reply = consume(&reply_ch, reply_q, "1", true).await;
    let cast = std::str::from_utf8(include_bytes!("fixtures/oslo/cast.json")).unwrap();
    let api_ch = channel(&api).await;
    common::client::publish(&api_ch, "nova", "compute.compute-1", cast).await;
    next(&mut compute, std::time::Duration::from_secs(2))
        .await
        .expect("the cast is delivered");

    let mut app = App::new("127.0.0.1:5673", "/", ViewOptions::default());
    app.update(Action::Topology(broker.snapshot()));
    while let Some(received) = events.try_recv() {
        if let rabbitscope::events::Received::Event(event) = received {
            app.update(Action::BrokerEvent(event));
        }
    }
    app.update(Action::Topology(broker.snapshot()));
    app.model.flights.clear();
    app.update(Action::CycleGrouping);
    app.update(Action::ToggleZoom);
    let text = screen(&mut app, 200, 50);
    let rows: Vec<&str> = text.lines().collect();
    let under = |label: &str, queue: &str| {
        let at = (rows.iter().position(|r| r.contains(&format!("{label}:"))))
            .unwrap_or_else(|| panic!("no group {label}:\n{text}"));
        (rows[at + 1..].iter())
            .take_while(|r| !r.trim_matches(|c| c == '│' || c == ' ').ends_with(':'))
            .any(|r| r.contains(&format!("{queue}  0 0 1")))
    };
    assert!(
        under("nova-compute @ compute-1", "compute.compute-1"),
        "{text}"
    );
    assert!(under("nova-compute @ compute-1", reply_q), "{text}");
    assert!(under("nova-compute", "compute"), "{text}");
    // Both of the process's connections are on compute-1 (its three consumers say so);
    // nova-api's host is not known.
    assert_eq!(text.matches("▶nova-compute@compute-1").count(), 3, "{text}");
    assert!(text.contains("│nova-api ─"), "{text}");
    assert!(
        text.contains(
            "nova-api  cast schedule_and_build_instances 1.17 -> compute.compute-1 \
             (nova-compute@compute-1)"
        ),
        "{text}"
    );
    select_queue(&mut app, reply_q);
    app.update(Action::ToggleZoom);
    app.update(Action::Inspect);
    let text = screen(&mut app, 160, 45);
    assert!(text.contains("reply queue of nova-compute:4242"), "{text}");
    for c in [server, replies, api] {
        c.close(200, "done".into()).await.ok();
    }
}

/// Nova's notifications, legacy and versioned, read in the log as `notification <event type>
/// <priority>`, are picked by `kind:notification` and `method:<event type>`, and the inspector
/// says their event, priority, publisher and payload, a versioned payload as its object.
#[test]
fn notifications_are_decoded_in_the_log_and_the_inspector_160x45() {
    let mut app = replayed("nova-boot-notifications.yaml", Lang::En);
    app.update(Action::FocusNext);
    typed(&mut app, "kind:notification");
    let text = screen(&mut app, 160, 45);
    let lines = log_lines(&text);
    // Two of each, to `notifications.info` and `versioned_notifications.info`, at the start
    // and the end of scheduling and of the build.
    assert_eq!(lines.len(), 8, "{text}");
    for event in [
        "notification instance.create.end INFO -> versioned_notifications.info",
        "notification compute.instance.create.end INFO -> notifications.info",
        "notification scheduler.select_destinations.start INFO -> notifications.info",
    ] {
        assert!(lines.iter().any(|l| l.contains(event)), "{event}: {text}");
    }
    let lines = filtered(&mut app, "method:instance.create.end");
    assert_eq!(lines.len(), 1, "{lines:?}");
    app.update(Action::Back);
    app.update(Action::Inspect);
    let text = scrolled_to(&mut app, "oslo.messaging notification");
    for said in [
        "oslo.messaging notification",
        "event      instance.create.end",
        "priority   INFO",
        "publisher  nova-compute:compute-1",
        "payload    InstanceCreatePayload 1.13",
        "uuid: \"0b6f6e6f-7661-4000-8000-626f6f74696e\"",
    ] {
        assert!(text.contains(said), "{said}: {text}");
    }
    assert!(!text.contains("nova_object"), "{text}");
    insta::assert_snapshot!(text);
    let mut app = replayed("nova-boot-notifications.yaml", Lang::Zh);
    app.update(Action::FocusNext);
    typed(&mut app, "method:instance.create.end");
    app.update(Action::Back);
    app.update(Action::Inspect);
    let text = scrolled_to(&mut app, "oslo.messaging 通知");
    for said in [
        "oslo.messaging 通知",
        "事件       instance.create.end",
        "发布者     nova-compute:compute-1",
        "负载       InstanceCreatePayload 1.13",
    ] {
        assert!(text.contains(said), "{said}: {text}");
    }
}

/// The screen at 160x45 once the inspector is scrolled (after the route and why) until `line`
/// shows, then on by twenty rows so that what follows it shows too.
fn scrolled_to(app: &mut App, line: &str) -> String {
    for _ in 0..200 {
        if screen(app, 160, 45).contains(line) {
            app.update(Action::ScrollInspector(20));
            return screen(app, 160, 45);
        }
        app.update(Action::ScrollInspector(1));
    }
    panic!("no {line:?} in the inspector: {}", screen(app, 160, 45));
}

/// Not grouped, clients are named service@host where their column has the room for every
/// such name whole, and by their shorter names where it has not: a narrower screen keeps its
/// consumers in view rather than hiding them for the longer names.
#[test]
fn ungrouped_clients_are_named_service_at_host_where_they_fit() {
    let mut app = replayed("nova-boot-notifications.yaml", Lang::En);
    app.update(Action::ToggleZoom);
    let wide = screen(&mut app, 240, 45);
    // Several connections of one process are told apart by their ports.
    assert!(wide.contains("▶nova-compute@compute-1 :35982 "), "{wide}");
    assert!(wide.contains("│nova-compute@compute-1 :36058 ─"), "{wide}");
    let narrow = screen(&mut app, 180, 45);
    assert!(!narrow.contains("@compute-1 :"), "{narrow}");
    assert!(narrow.contains("▶nova-compute :35982 "), "{narrow}");
    assert!(!narrow.contains("hidden"), "{narrow}");
}
