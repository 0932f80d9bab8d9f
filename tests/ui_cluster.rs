//! The view of a RabbitMQ cluster of three nodes with one stopped, built from the management
//! API's answers saved from a real one (tests/fixtures/management, `*-3.10-three-nodes.json`)
//! and read through the code `watch` uses: the status line says which node is down, the
//! inspector where each queue lives and what the stopped node means for it.
mod common;

use common::screen::{screen, select_queue};
use rabbitscope::broker::{Snapshot, VhostSnapshot};
use rabbitscope::remote::{answers, snapshot};
use rabbitscope::ui::action::Action;
use rabbitscope::ui::app::{App, ViewOptions};

fn app() -> App {
    let nodes: Vec<answers::Node> = serde_json::from_str(include_str!(
        "fixtures/management/nodes-3.10-three-nodes.json"
    ))
    .unwrap();
    // Read as `watch` reads them: the quorum queues name `online` twice.
    let queues: Vec<answers::Lenient<answers::Queue>> = serde_json::from_str(include_str!(
        "fixtures/management/queues-3.10-three-nodes.json"
    ))
    .unwrap();
    let mut app = App::new("127.0.0.1:5672", "/", ViewOptions::default());
    app.update(Action::Topology(Snapshot {
        vhosts: vec![VhostSnapshot {
            name: "/".into(),
            queues: queues.into_iter().map(|q| snapshot::queue(q.0)).collect(),
            ..Default::default()
        }],
        nodes: nodes.into_iter().map(snapshot::node).collect(),
    }));
    app
}

#[test]
fn the_status_line_names_the_node_that_is_down() {
    let mut app = app();
    let text = screen(&mut app, 160, 45);
    let status = text.lines().next().unwrap();
    assert!(
        status.contains("nodes 2/3 up: rs-c@localhost down"),
        "{status}"
    );
}

#[test]
fn the_inspector_tells_a_quorum_queue_s_leader_members_and_majority() {
    let mut app = app();
    select_queue(&mut app, "votes");
    let text = screen(&mut app, 160, 45);
    // Short pieces: the inspector wraps its lines.
    for piece in [
        "leader rs-a@localhost",
        "members, 2 of 3 online:",
        "  rs-a@localhost ",
        "  rs-c@localhost offline",
        "a majority (2 of 3)",
    ] {
        assert!(text.contains(piece), "missing {piece:?} in\n{text}");
    }
    // The single-node story of the embedded broker is not told of a real cluster.
    assert!(!text.contains("here: 1 node"), "{text}");
    insta::assert_snapshot!("quorum_queue_on_three_nodes_160x45", text);
}

#[test]
fn the_inspector_names_a_member_far_behind_its_leader() {
    let mut app = app();
    // As RabbitMQ 3.13's status of the queue tells it (see `answers::members_behind`).
    let mut picture = Snapshot {
        vhosts: vec![app.model.topology.clone()],
        nodes: app.model.nodes.clone(),
    };
    for q in &mut picture.vhosts[0].queues {
        if q.name == "votes" {
            q.behind = [("rs-b@localhost".to_string(), 59_427)].into();
        }
    }
    app.update(Action::Topology(picture));
    select_queue(&mut app, "votes");
    let text = screen(&mut app, 160, 45);
    assert!(
        text.contains("  rs-b@localhost 59427 entries behind"),
        "{text}"
    );
    assert!(text.contains("  rs-c@localhost offline "), "{text}");
    // Of the two members online, only the leader has the newest entries.
    assert!(text.contains("online, 1 caught up: new"), "{text}");
    insta::assert_snapshot!("quorum_member_behind_160x45", text);
}

#[test]
fn the_inspector_says_a_classic_queue_on_a_stopped_node_is_unavailable() {
    let mut app = app();
    select_queue(&mut app, "orders");
    let text = screen(&mut app, 160, 45);
    assert!(text.contains("node rs-c@localhost is down"), "{text}");
    assert!(text.contains("the queue is unavailable"), "{text}");
    assert!(!text.contains("if it goes down"), "{text}");
    insta::assert_snapshot!("classic_queue_on_a_stopped_node_160x45", text);
}

/// `o` twice groups the graph by node: each queue under the node that holds it (a quorum
/// queue's leader), even the stopped node's; `o` again ends the grouping.
#[test]
fn the_graph_groups_queues_by_node() {
    let mut app = app();
    app.update(Action::CycleGrouping);
    app.update(Action::CycleGrouping);
    let text = screen(&mut app, 160, 45);
    assert!(text.contains("· by node"), "{text}");
    let rows: Vec<&str> = text.lines().collect();
    for (node, queues) in [
        (
            "node rs-a@localhost:",
            ["audit", "ballots", "events", "votes"].as_slice(),
        ),
        ("node rs-c@localhost:", ["billing", "orders"].as_slice()),
    ] {
        let at = (rows.iter().position(|r| r.contains(node)))
            .unwrap_or_else(|| panic!("no {node} in\n{text}"));
        for (i, q) in queues.iter().enumerate() {
            assert!(
                rows[at + 1 + i].contains(&format!(" {q} [")),
                "{q} under {node}:\n{text}"
            );
        }
    }
    app.update(Action::CycleGrouping);
    assert!(!screen(&mut app, 160, 45).contains("· by node"));
}
