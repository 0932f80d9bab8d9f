//! `snapshot`, `watch` and `doctor` on a real RabbitMQ cluster of three nodes, started beside
//! the RabbitMQ on 5672 by `common::cluster`: which nodes run, where each queue lives (a
//! classic queue on one node, a quorum queue and a stream on a leader and members), what
//! stopping a node does to each, and what `doctor` finds of nodes down and alarms, checked
//! against what `rabbitmqctl` says. (One binary: each starts a cluster of its own, 25 s more.)

mod common;

use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use serde_json::Value;

use common::client::{code, connect, int, text, try_declare_typed};
use common::cluster::{cluster, get, runtime, Cluster, ClusterNode};
use common::doctor::{doctor, Report};
use common::process::rabbitscope;
use common::pty;
use common::screen::{screen, select_queue};
use rabbitscope::broker::Snapshot;
use rabbitscope::events::{EventKind, Received};
use rabbitscope::remote::{Endpoint, RemoteOptions, RemoteSource};
use rabbitscope::source::Source;
use rabbitscope::ui::action::Action;
use rabbitscope::ui::app::{App, ViewOptions};

/// The queues a test declares: a durable classic queue through node `c` (so it lives there),
/// a quorum queue of three members and a stream through node `a`.
struct Queues {
    classic: String,
    quorum: String,
    stream: String,
}

fn declare(cluster: &Cluster) -> Queues {
    let queues = Queues {
        classic: common::unique("cluster-classic"),
        quorum: common::unique("cluster-quorum"),
        stream: common::unique("cluster-stream"),
    };
    runtime().block_on(async {
        let on_c = connect(&cluster.nodes[2].amqp_url()).await;
        let ch = on_c.create_channel().await.unwrap();
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.queue_declare(
            queues.classic.as_str().into(),
            durable,
            FieldTable::default(),
        )
        .await
        .unwrap();
        on_c.close(200, "done".into()).await.unwrap();
        let on_a = connect(&cluster.nodes[0].amqp_url()).await;
        let ch = on_a.create_channel().await.unwrap();
        let group = [("x-quorum-initial-group-size", int(3))];
        try_declare_typed(&ch, &queues.quorum, "quorum", &group)
            .await
            .unwrap();
        try_declare_typed(&ch, &queues.stream, "stream", &[])
            .await
            .unwrap();
        on_a.close(200, "done".into()).await.unwrap();
    });
    queues
}

/// `rabbitscope snapshot` of the cluster through node `a`, in `format`.
fn snapshot_text(cluster: &Cluster, format: &str) -> String {
    let a = &cluster.nodes[0];
    let out = rabbitscope()
        .args([
            "snapshot",
            &a.amqp_url(),
            "--management",
            &a.management_url(),
        ])
        .args(["--format", format])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn snapshot_json(cluster: &Cluster) -> Value {
    serde_json::from_str(&snapshot_text(cluster, "json")).unwrap()
}

fn queue<'a>(snapshot: &'a Value, name: &str) -> &'a Value {
    let queues = snapshot["vhosts"][0]["queues"].as_array().unwrap();
    queues
        .iter()
        .find(|q| q["name"] == name)
        .unwrap_or_else(|| panic!("no queue {name} in {snapshot:#}"))
}

fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = (list.as_array().into_iter().flatten())
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn node_names(cluster: &Cluster) -> Vec<String> {
    let mut names: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    names.sort();
    names
}

/// What `rabbitmqctl list_queues` says of a queue's leader and members.
fn ctl_placement(cluster: &Cluster, name: &str) -> (String, Vec<String>) {
    let listed = cluster.ctl(
        &cluster.nodes[0].name,
        &[
            "list_queues",
            "name",
            "leader",
            "members",
            "--formatter",
            "json",
            "--quiet",
        ],
    );
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let q = (listed.as_array().unwrap().iter())
        .find(|q| q["name"] == name)
        .unwrap_or_else(|| panic!("rabbitmqctl lists no {name}: {listed:#}"));
    (
        q["leader"].as_str().unwrap().to_string(),
        names(&q["members"]),
    )
}

/// Reads snapshots until `done` holds of one (a minute at most).
fn snapshot_until(cluster: &Cluster, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let snapshot = snapshot_json(cluster);
        if done(&snapshot) {
            return snapshot;
        }
        assert!(Instant::now() < deadline, "never {what}: {snapshot:#}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn node_running(snapshot: &Value, node: &ClusterNode) -> Option<bool> {
    (snapshot["nodes"].as_array()?.iter())
        .find(|n| n["name"] == node.name.as_str())
        .and_then(|n| n["running"].as_bool())
}

#[test]
fn snapshot_tells_the_nodes_and_where_each_queue_lives() {
    let Some(cluster) = cluster() else { return };
    eprintln!("the cluster started in {:?}", cluster.started_in);
    let queues = declare(&cluster);
    let all = node_names(&cluster);
    let snapshot = snapshot_until(&cluster, "listed the stream's members", |s| {
        queue(s, &queues.stream)["members"].as_array().is_some()
    });

    let nodes = snapshot["nodes"].as_array().unwrap();
    let listed: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(listed, all, "{snapshot:#}");
    assert!(nodes.iter().all(|n| n["running"] == true), "{snapshot:#}");

    let classic = queue(&snapshot, &queues.classic);
    assert_eq!(classic["queue_type"], "classic");
    assert_eq!(
        classic["node"],
        cluster.nodes[2].name.as_str(),
        "{classic:#}"
    );
    assert!(classic.get("members").is_none(), "{classic:#}");

    for (name, kind) in [(&queues.quorum, "quorum"), (&queues.stream, "stream")] {
        let q = queue(&snapshot, name);
        assert_eq!(q["queue_type"], kind);
        assert_eq!(names(&q["members"]), all, "{q:#}");
        assert_eq!(names(&q["online"]), all, "{q:#}");
        let (leader, members) = ctl_placement(&cluster, name);
        assert_eq!(q["leader"], leader.as_str(), "{q:#}");
        assert_eq!(members, all);
    }
    // Arguments are a map, as RabbitMQ writes them.
    let quorum = queue(&snapshot, &queues.quorum);
    assert_eq!(quorum["arguments"]["x-quorum-initial-group-size"], "3");
    assert_eq!(quorum["arguments"]["x-queue-type"], "quorum");

    let yaml: Snapshot = serde_yaml::from_str(&snapshot_text(&cluster, "yaml")).unwrap();
    assert_eq!(yaml.nodes.len(), 3);
    let from_yaml = (yaml.vhosts[0].queues.iter())
        .find(|q| q.name == queues.quorum)
        .unwrap();
    assert_eq!(from_yaml.members, all);

    // Graphviz: the classic queue in node c's cluster, the quorum queue in its leader's.
    let dot = snapshot_text(&cluster, "dot");
    let block = |node: &str| -> String {
        let start = dot
            .find(&format!("subgraph \"cluster_0_{node}\""))
            .unwrap_or_else(|| panic!("no cluster of {node} in\n{dot}"));
        let end = dot[start..].find("\n    }\n").unwrap() + start;
        dot[start..end].to_string()
    };
    assert!(
        block(&cluster.nodes[2].name).contains(&queues.classic),
        "{dot}"
    );
    let leader = quorum["leader"].as_str().unwrap();
    assert!(block(leader).contains(&queues.quorum), "{dot}");
}

#[test]
fn a_stopped_node_is_down_its_classic_queue_with_it_and_the_quorum_queue_leads_on() {
    let Some(cluster) = cluster() else { return };
    let queues = declare(&cluster);
    let (a, c) = (&cluster.nodes[0], &cluster.nodes[2]);
    let all = node_names(&cluster);
    snapshot_until(&cluster, "listed the quorum queue's members", |s| {
        names(&queue(s, &queues.quorum)["online"]) == all
    });

    // `watch`'s source, read as the view reads it.
    let rt = runtime();
    let endpoint = Endpoint::new(&a.amqp_url(), Some(&a.management_url())).unwrap();
    let source = {
        let _inside = rt.enter();
        RemoteSource::start(
            endpoint,
            RemoteOptions {
                interval: Duration::from_millis(500),
                trace: false,
            },
        )
        .unwrap()
    };

    let stopped = cluster.stop_app(c);
    let snapshot = snapshot_until(&cluster, "said node c is down", |s| {
        node_running(s, c) == Some(false)
    });
    if let Some(dir) = std::env::var_os("RABBITSCOPE_CAPTURE") {
        std::thread::sleep(Duration::from_secs(5));
        capture(&cluster, std::path::Path::new(&dir));
    }
    let classic = queue(&snapshot, &queues.classic);
    assert_eq!(classic["node"], c.name.as_str(), "{classic:#}");
    assert_ne!(classic["state"], "running", "{classic:#}");
    let snapshot = snapshot_until(&cluster, "moved the quorum queue's leader off c", |s| {
        let q = queue(s, &queues.quorum);
        q["leader"] != c.name.as_str() && !names(&q["online"]).contains(&c.name)
    });
    let quorum = queue(&snapshot, &queues.quorum);
    assert_eq!(names(&quorum["members"]), all, "{quorum:#}");
    assert_eq!(names(&quorum["online"]).len(), 2, "{quorum:#}");
    let (leader, _) = ctl_placement(&cluster, &queues.quorum);
    assert_eq!(quorum["leader"], leader.as_str());
    let text = snapshot_text(&cluster, "text");
    assert!(text.contains(&format!("  {} down", c.name)), "{text}");

    // The view: the status line says which node is down; the inspector what it means for
    // each queue.
    let deadline = Instant::now() + Duration::from_secs(30);
    let watched = loop {
        let s = source.snapshot();
        if s.nodes.iter().any(|n| n.name == c.name && !n.running) {
            break s;
        }
        assert!(Instant::now() < deadline, "watch never saw c down");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut app = App::new("127.0.0.1:5672", "/", ViewOptions::default());
    app.update(Action::Topology(watched));
    let shown = screen(&mut app, 200, 50);
    let status = shown.lines().next().unwrap();
    assert!(
        status.contains(&format!("nodes 2/3 up: {} down", c.name)),
        "{status}"
    );
    select_queue(&mut app, &queues.classic);
    let shown = screen(&mut app, 200, 50);
    assert!(
        shown.contains(&format!(
            "node {} is down: the queue is unavailable",
            c.name
        )),
        "{shown}"
    );
    select_queue(&mut app, &queues.quorum);
    let shown = screen(&mut app, 200, 50);
    assert!(
        shown.contains("members, 2 of 3 online:") && shown.contains("a majority (2 of 3)"),
        "{shown}"
    );
    drop(stopped);
    snapshot_until(&cluster, "had node c back with every member online", |s| {
        node_running(s, c) == Some(true) && names(&queue(s, &queues.quorum)["online"]) == all
    });
    drop(source);
}

#[test]
fn watch_says_on_its_status_line_that_a_node_is_down() {
    let Some(cluster) = cluster() else { return };
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let args = [
        "watch",
        &a.amqp_url(),
        "--management",
        &a.management_url(),
        "--interval",
        "0.5",
    ];
    let mut view = pty::spawn(&args, 45, 200, |_| {});
    let wait = |needles: &[&str]| view.screen.wait_for(needles, Duration::from_secs(60));
    wait(&["nodes 3/3 up"]);
    let stopped = cluster.stop_app(b);
    wait(&[&format!("nodes 2/3 up: {} down", b.name)]);
    drop(stopped);
    wait(&["nodes 3/3 up"]);
    view.press(b"q");
    view.wait_exit(Duration::from_secs(10), "watch did not quit on q");
}

/// Whether each node traces the vhost, as each node's own management API says: tracing is a
/// node's own setting.
fn tracing_by_node(cluster: &Cluster, vhost: &str) -> Vec<bool> {
    (cluster.nodes.iter())
        .map(|n| {
            let told = get(n.management_port, &format!("/api/vhosts/{vhost}")).unwrap();
            told["tracing"] == true
        })
        .collect()
}

/// A node traces only the messages published through it: `tap` and `watch --trace`, given
/// node `a`, turn tracing on every node, see messages published through each, and turn it
/// off everywhere when they stop.
#[test]
fn tap_and_watch_trace_the_messages_published_through_every_node() {
    let Some(cluster) = cluster() else { return };
    let vhost = ClusterVhost::new(&cluster, "cluster-trace");
    let a = &cluster.nodes[0];
    let queue = common::unique("traced");
    let rt = runtime();
    rt.block_on(async {
        let conn = connect(&vhost.url(a)).await;
        let ch = conn.create_channel().await.unwrap();
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.queue_declare(queue.as_str().into(), durable, FieldTable::default())
            .await
            .unwrap();
        conn.close(200, "done".into()).await.unwrap();
    });
    // (node, URL of the vhost through it)
    let through: Vec<(String, String)> = (cluster.nodes.iter())
        .map(|n| (n.name.clone(), vhost.url(n)))
        .collect();
    let publish_through_each = || publish_through(&through, &queue);
    assert_eq!(tracing_by_node(&cluster, &vhost.name), [false; 3]);

    // tap: one line for the message published through each node.
    let tap = rabbitscope()
        .args(["tap", &vhost.url(a), "--management", &a.management_url()])
        .args(["--count", "3"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while tracing_by_node(&cluster, &vhost.name) != [true; 3] {
        assert!(Instant::now() < deadline, "tap never traced every node");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The firehose's queue is bound a moment after tracing is on.
    std::thread::sleep(Duration::from_secs(1));
    rt.block_on(publish_through_each());
    let out = tap.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 3, "{stdout}{stderr}");
    assert!(
        stdout.lines().all(|l| l.contains(&format!("-> {queue}"))),
        "{stdout}"
    );
    assert!(!stderr.contains("not traced"), "{stderr}");
    assert_eq!(tracing_by_node(&cluster, &vhost.name), [false; 3]);

    // watch's source: a delivery event for each node's message, tracing off again at close.
    let endpoint = Endpoint::new(&vhost.url(a), Some(&a.management_url())).unwrap();
    rt.block_on(async {
        let source = RemoteSource::start(
            endpoint,
            RemoteOptions {
                interval: Duration::from_millis(500),
                trace: true,
            },
        )
        .unwrap();
        let mut events = source.subscribe();
        let deadline = Instant::now() + Duration::from_secs(60);
        while tracing_by_node(&cluster, &vhost.name) != [true; 3] {
            assert!(Instant::now() < deadline, "watch never traced every node");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(source.trouble(), None);
        publish_through_each().await;
        // The body names the node each message was published through.
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while seen.len() < 3 {
            let received = tokio::time::timeout_at(deadline, events.recv()).await;
            let Ok(Received::Event(event)) = received else {
                panic!("published through {seen:?} only: {received:?}");
            };
            if let EventKind::Published {
                queues,
                body_preview,
                ..
            } = &event.kind
            {
                if queues.iter().any(|q| **q == *queue) {
                    seen.push(String::from_utf8_lossy(body_preview).to_string());
                }
            }
        }
        seen.sort();
        let mut expected: Vec<String> = (cluster.nodes.iter())
            .map(|n| format!("via {}", n.name))
            .collect();
        expected.sort();
        assert_eq!(seen, expected);
        source.close().await;
    });
    assert_eq!(tracing_by_node(&cluster, &vhost.name), [false; 3]);
}

/// One message to `queue` through each node (its body: `via NODE`).
async fn publish_through(through: &[(String, String)], queue: &str) {
    for (name, url) in through {
        let conn = connect(url).await;
        let ch = conn.create_channel().await.unwrap();
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            format!("via {name}").as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap();
        conn.close(200, "done".into()).await.unwrap();
    }
}

/// A vhost of a test's own on the cluster, deleted when dropped.
struct ClusterVhost<'a> {
    cluster: &'a Cluster,
    name: String,
}

impl<'a> ClusterVhost<'a> {
    fn new(cluster: &'a Cluster, what: &str) -> ClusterVhost<'a> {
        let name = common::unique(what);
        let a = &cluster.nodes[0].name;
        cluster.ctl(a, &["add_vhost", &name]);
        cluster.ctl(
            a,
            &["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"],
        );
        ClusterVhost { cluster, name }
    }

    /// The vhost through `node`.
    fn url(&self, node: &ClusterNode) -> String {
        format!(
            "amqp://guest:guest@127.0.0.1:{}/{}",
            node.amqp_port, self.name
        )
    }

    /// `doctor --format json` on the vhost through node `a`, with `more` arguments.
    fn doctor(&self, more: &[&str]) -> Report {
        let a = &self.cluster.nodes[0];
        let mut args = vec![self.url(a), "--management".into(), a.management_url()];
        args.extend(more.iter().map(|s| s.to_string()));
        doctor(&args)
    }

    /// Runs doctor until `done` holds of its report (the management API's node and queue
    /// figures are some seconds late), a minute at most.
    fn doctor_until(&self, what: &str, done: impl Fn(&Report) -> bool) -> Report {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let report = self.doctor(&[]);
            if done(&report) {
                return report;
            }
            assert!(
                Instant::now() < deadline,
                "doctor never {what}: {:#}\n{}",
                report.json,
                report.stderr
            );
            std::thread::sleep(Duration::from_millis(1000));
        }
    }

    /// The report once `check` is found (the last of a change to show), its cluster checks
    /// asserted to be `all`.
    fn cluster_checks_once(&self, check: &str, all: &[&str]) -> Report {
        let report = self.doctor_until(&format!("found {check}"), |r| {
            r.checks().iter().any(|c| c == check)
        });
        assert_eq!(cluster_checks(&report), all, "{:#}", report.json);
        report
    }
}

impl Drop for ClusterVhost<'_> {
    fn drop(&mut self) {
        self.cluster
            .ctl(&self.cluster.nodes[0].name, &["delete_vhost", &self.name]);
    }
}

/// In the vhost: a durable classic queue through node `c` (so it lives there) and a quorum
/// queue of three members through node `a`, with a dead-letter exchange (without one doctor
/// rightly warns of poison messages dropped on 4.x). Their names.
fn declare_in(vhost: &ClusterVhost) -> (String, String) {
    // Not `<prefix>.<name>`: two such queues read as one oslo.messaging topic's servers,
    // whose types doctor rightly wants the same.
    let name = |what: &str| common::unique(what).replace('.', "-");
    let (classic, quorum) = (name("billing"), name("votes"));
    let nodes = &vhost.cluster.nodes;
    runtime().block_on(async {
        for (node, name, kind, args) in [
            (&nodes[2], &classic, "classic", vec![]),
            (
                &nodes[0],
                &quorum,
                "quorum",
                vec![
                    ("x-quorum-initial-group-size", int(3)),
                    ("x-dead-letter-exchange", text("amq.fanout")),
                ],
            ),
        ] {
            let connection = connect(&vhost.url(node)).await;
            let ch = connection.create_channel().await.unwrap();
            try_declare_typed(&ch, name, kind, &args).await.unwrap();
            connection.close(200, "done".into()).await.unwrap();
        }
    });
    (classic, quorum)
}

/// The checks about nodes and what lives on them.
const CLUSTER_CHECKS: [&str; 7] = [
    "nodes-down",
    "queues-down",
    "memory-alarm",
    "disk-alarm",
    "network-partition",
    "quorum-lost",
    "quorum-members-offline",
];

fn cluster_checks(report: &Report) -> Vec<String> {
    (report.checks().into_iter())
        .filter(|c| CLUSTER_CHECKS.contains(&c.as_str()))
        .collect()
}

#[test]
fn doctor_finds_nothing_wrong_with_a_healthy_cluster() {
    let Some(cluster) = cluster() else { return };
    let vhost = ClusterVhost::new(&cluster, "doctor-healthy");
    declare_in(&vhost);
    let report = vhost.doctor(&["--fail-on", "info"]);
    assert_eq!(report.code, 0, "{:#}\n{}", report.json, report.stderr);
    assert_eq!(report.checks(), Vec::<String>::new(), "{:#}", report.json);
    assert_eq!(report.json["counts"]["critical"], 0);
}

#[test]
fn doctor_names_the_nodes_down_the_classic_queue_with_them_and_a_quorum_queue_short_of_a_majority()
{
    let Some(cluster) = cluster() else { return };
    let (b, c) = (&cluster.nodes[1], &cluster.nodes[2]);
    let vhost = ClusterVhost::new(&cluster, "doctor-down");
    let (classic, quorum) = declare_in(&vhost);

    // One node of three down: its classic queue with it; the quorum queue keeps 2 of 3.
    let stopped_c = cluster.stop_app(c);
    let report = vhost.cluster_checks_once(
        "quorum-members-offline",
        &["nodes-down", "queues-down", "quorum-members-offline"],
    );
    assert_eq!(report.objects("nodes-down"), [c.name.as_str()]);
    assert!(report.finding("nodes-down").get("vhost").is_none());
    assert_eq!(
        report.seen("nodes-down"),
        format!("1 node of 3 not running: '{}'", c.name)
    );
    assert_eq!(report.objects("queues-down"), [classic.as_str()]);
    assert_eq!(report.finding("queues-down")["vhost"], vhost.name.as_str());
    assert!(
        (report.seen("queues-down")).contains(&format!("'{classic}' (on '{}')", c.name)),
        "{}",
        report.seen("queues-down")
    );
    assert_eq!(report.objects("quorum-members-offline"), [quorum.as_str()]);
    assert!(report
        .seen("quorum-members-offline")
        .contains(&format!("'{quorum}' (2 of 3 members online)")));
    // What queues-down says: the queue cannot even be declared again meanwhile.
    let declared = runtime().block_on(async {
        let connection = connect(&vhost.url(&cluster.nodes[0])).await;
        let ch = connection.create_channel().await.unwrap();
        try_declare_typed(&ch, &classic, "classic", &[]).await
    });
    let refused = code(&declared.expect_err("declared on a node that is down"));
    assert!(refused.starts_with("404 "), "{refused}");
    assert!(refused.contains("is down or inaccessible"), "{refused}");
    assert_eq!(vhost.doctor(&["--fail-on", "critical"]).code, 1);

    // Two of its three members' nodes down: no majority.
    let stopped_b = cluster.stop_app(b);
    let report =
        vhost.cluster_checks_once("quorum-lost", &["nodes-down", "queues-down", "quorum-lost"]);
    assert_eq!(
        report.objects("nodes-down"),
        [b.name.as_str(), c.name.as_str()]
    );
    assert_eq!(report.objects("quorum-lost"), [quorum.as_str()]);
    assert!(report
        .seen("quorum-lost")
        .contains(&format!("'{quorum}' (1 of 3 members online)")));
    assert_eq!(report.finding("quorum-lost")["level"], "critical");

    drop(stopped_b);
    drop(stopped_c);
    let report = vhost.doctor_until("saw the cluster whole again", |r| {
        cluster_checks(r).is_empty()
    });
    assert_eq!(report.checks(), Vec::<String>::new(), "{:#}", report.json);
    assert_eq!(vhost.doctor(&["--fail-on", "critical"]).code, 0);
}

#[test]
fn doctor_names_the_node_under_a_memory_alarm_and_the_one_under_a_disk_alarm() {
    let Some(cluster) = cluster() else { return };
    let (b, c) = (&cluster.nodes[1], &cluster.nodes[2]);
    let vhost = ClusterVhost::new(&cluster, "doctor-alarms");
    // Set back to RabbitMQ's defaults, which these nodes run with.
    let memory = cluster.change(
        b,
        &["set_vm_memory_high_watermark", "0.0000001"],
        &["set_vm_memory_high_watermark", "0.4"],
    );
    let disk = cluster.change(
        c,
        &["set_disk_free_limit", "100000000000000"],
        &["set_disk_free_limit", "50000000"],
    );
    // What each node says of itself.
    let status = cluster.ctl(&b.name, &["status"]);
    assert!(
        status.contains(&format!("Memory alarm on node {}", b.name)),
        "{status}"
    );
    let status = cluster.ctl(&c.name, &["status"]);
    assert!(
        status.contains(&format!("Free disk space alarm on node {}", c.name)),
        "{status}"
    );

    let report = vhost.doctor_until("saw both alarms", |r| {
        cluster_checks(r) == ["memory-alarm", "disk-alarm"]
    });
    assert_eq!(report.objects("memory-alarm"), [b.name.as_str()]);
    assert_eq!(report.objects("disk-alarm"), [c.name.as_str()]);
    let seen = report.seen("memory-alarm");
    assert!(
        seen.starts_with(&format!(
            "a memory alarm is on at 1 node: '{}' (uses ",
            b.name
        )),
        "{seen}"
    );
    let seen = report.seen("disk-alarm");
    assert!(
        seen.starts_with(&format!("a disk alarm is on at 1 node: '{}' (", c.name))
            && seen.ends_with("limit 93132 GiB)"),
        "{seen}"
    );
    assert_eq!(vhost.doctor(&["--fail-on", "critical"]).code, 1);

    drop(memory);
    drop(disk);
    vhost.doctor_until("saw the alarms cleared", |r| cluster_checks(r).is_empty());
    assert_eq!(vhost.doctor(&["--fail-on", "critical"]).code, 0);
}

/// Saves the management API's answers (for tests/fixtures/management).
fn capture(cluster: &Cluster, dir: &std::path::Path) {
    let port = cluster.nodes[0].management_port;
    for (file, path) in [
        ("nodes.json", "/api/nodes?columns=name,running,mem_alarm,disk_free_alarm,mem_used,mem_limit,disk_free,disk_free_limit,partitions"),
        ("queues.json", "/api/queues/%2F?columns=name,vhost,type,durable,auto_delete,exclusive,arguments,messages,messages_unacknowledged,consumers,node,leader,members,online,state"),
    ] {
        let answer = common::cluster::get_text(port, path).unwrap();
        std::fs::write(dir.join(file), answer).unwrap();
    }
}
