//! `snapshot` and `watch` on a real RabbitMQ cluster of three nodes, started beside the
//! RabbitMQ on 5672 by `common::cluster`: which nodes run, where each queue lives (a classic
//! queue on one node, a quorum queue and a stream on a leader and members), and what stopping
//! a node does to each, checked against what `rabbitmqctl` says.

mod common;

use std::time::{Duration, Instant};

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::Value;

use common::client::{connect, int, try_declare_typed};
use common::cluster::{cluster, Cluster, ClusterNode};
use common::process::rabbitscope;
use common::pty;
use common::screen::{screen, select_queue};
use rabbitscope::broker::Snapshot;
use rabbitscope::remote::{Endpoint, RemoteOptions, RemoteSource};
use rabbitscope::source::Source;
use rabbitscope::ui::action::Action;
use rabbitscope::ui::app::{App, ViewOptions};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

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
