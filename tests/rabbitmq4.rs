//! RabbitMQ 4.0, the release operators run now, as a cluster of three nodes from Debian
//! trixie's packages (`common::cluster::cluster_4`; `.ci/rabbitmq4` makes its chroot): what
//! `doctor`, `snapshot` and `watch` say of it, the real binary against the real broker. On
//! 4.0 the management API tells each quorum queue member's log (`/api/queues/quorum/V/Q/
//! status`), which 3.10 cannot, so a member behind its leader is staged here: its Raft
//! process on its node is suspended (`sys:suspend`) while the others take 20,000 messages.

mod common;

use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::BasicProperties;
use serde_json::Value;

use common::client::{connect, int, try_declare_typed};
use common::cluster::{cluster_4, get, runtime, Cluster};
use common::doctor::{doctor, Report};
use common::process::rabbitscope;
use rabbitscope::remote::{Endpoint, RemoteOptions, RemoteSource};
use rabbitscope::source::Source;

fn doctor_of(cluster: &Cluster) -> Report {
    let a = &cluster.nodes[0];
    let api = a.management_url();
    doctor(&[a.amqp_url().as_str(), "--management", &api])
}

fn snapshot_json(cluster: &Cluster) -> Value {
    let a = &cluster.nodes[0];
    let out = rabbitscope()
        .args(["snapshot", &a.amqp_url(), "--management"])
        .args([&a.management_url(), "--format", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What the quorum queue's members tell of their logs: (node, Raft state, last log index).
fn members(cluster: &Cluster, queue: &str) -> Vec<(String, String, u64)> {
    let path = format!("/api/queues/quorum/%2F/{queue}/status");
    let told = get(cluster.nodes[0].management_port, &path).unwrap();
    (told.as_array().unwrap().iter())
        .map(|m| {
            let text = |key: &str| m[key].as_str().unwrap_or_default().to_string();
            let index = m["Last Log Index"].as_u64().unwrap_or(0);
            (text("Node Name"), text("Raft State"), index)
        })
        .collect()
}

#[test]
fn a_member_behind_its_leader_is_named_by_doctor_snapshot_and_watch() {
    let Some(cluster) = cluster_4() else { return };
    eprintln!(
        "RabbitMQ 4 cluster of {} nodes started in {:.1} s",
        cluster.nodes.len(),
        cluster.started_in.as_secs_f64()
    );
    let version = get(cluster.nodes[0].management_port, "/api/overview").unwrap();
    let version = version["rabbitmq_version"].as_str().unwrap().to_string();
    assert!(version.starts_with("4."), "{version}");

    // A broker with nothing declared has nothing to say.
    let clean = doctor_of(&cluster);
    assert_eq!(clean.code, 0, "{:#}\n{}", clean.json, clean.stderr);
    assert!(clean.findings().is_empty(), "{:#}", clean.json);

    let queue = "compute.node1";
    let rt = runtime();
    let a = connect_a(&rt, &cluster, queue);
    let follower = (members(&cluster, queue).into_iter())
        .find(|(_, state, _)| state == "follower")
        .map(|(node, _, _)| node)
        .expect("a follower");
    // Its Raft process stops taking entries; RabbitMQ still reports its log.
    let suspend = format!(
        "{{ok, Q}} = rabbit_amqqueue:lookup(rabbit_misc:r(<<\"/\">>, queue, <<\"{queue}\">>)), \
         {{Name, _}} = amqqueue:get_pid(Q), sys:{{}}(Name)."
    );
    let suspended = cluster.change(
        cluster.nodes.iter().find(|n| n.name == follower).unwrap(),
        &["eval", &suspend.replace("{}", "suspend")],
        &["eval", &suspend.replace("{}", "resume")],
    );
    rt.block_on(async {
        let ch = a.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let mut confirms = Vec::new();
        for _ in 0..20_000 {
            let confirm = ch
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    &[0u8; 64],
                    BasicProperties::default(),
                )
                .await
                .unwrap();
            confirms.push(confirm);
        }
        for confirm in confirms {
            assert!(confirm.await.unwrap().is_ack());
        }
    });
    let told = members(&cluster, queue);
    let lag = |told: &[(String, String, u64)]| {
        let leader = told.iter().find(|m| m.1 == "leader").unwrap().2;
        leader.saturating_sub(told.iter().find(|m| m.0 == follower).unwrap().2)
    };
    assert!(lag(&told) >= 20_000, "{told:?}");

    // doctor: the member, by how much; and on 4.0 the queue's default delivery limit is in
    // force, a warning.
    let report = doctor_of(&cluster);
    assert_eq!(report.code, 1, "{}", report.stderr);
    assert_eq!(report.objects("quorum-members-behind"), [queue]);
    let seen = report.seen("quorum-members-behind");
    assert!(
        seen.contains(&format!("'{follower}' ")) && seen.contains(" entries behind"),
        "{seen}"
    );
    let poison = report.finding("poison-messages-dropped-on-4");
    assert_eq!(poison["level"], "warning");
    let why = poison["why"].as_str().unwrap();
    assert!(
        why.starts_with(&format!("on this RabbitMQ ({version})")),
        "{why}"
    );

    // snapshot: the member and its lag, in entries.
    let picture = snapshot_json(&cluster);
    let listed = (picture["vhosts"][0]["queues"].as_array().unwrap().iter())
        .find(|q| q["name"] == queue)
        .unwrap()
        .clone();
    let behind = listed["behind"][&follower].as_u64();
    assert!(behind.is_some_and(|b| b >= 20_000), "{listed:#}");

    // watch: the same, read as the view reads it.
    let node = &cluster.nodes[0];
    let endpoint = Endpoint::new(&node.amqp_url(), Some(&node.management_url())).unwrap();
    let watched = rt.block_on(async {
        let source = RemoteSource::start(endpoint, RemoteOptions::default()).unwrap();
        // The first picture leaves the lag for the next read, two seconds on.
        assert!(source.refreshed(1, Duration::from_secs(30)).await);
        let first = source.snapshot();
        let first = first.vhosts[0].queues.iter().find(|q| q.name == queue);
        assert!(first.is_some_and(|q| q.behind.is_empty()), "{first:#?}");
        assert!(source.refreshed(2, Duration::from_secs(30)).await);
        let snapshot = source.snapshot();
        source.close().await;
        snapshot
    });
    let q = (watched.vhosts[0].queues.iter())
        .find(|q| q.name == queue)
        .unwrap();
    assert!(
        q.behind.get(&follower).is_some_and(|b| *b >= 20_000),
        "{q:#?}"
    );

    // Resumed, it catches up, and the finding goes.
    drop(suspended);
    let deadline = Instant::now() + Duration::from_secs(60);
    while lag(&members(&cluster, queue)) > 0 {
        assert!(Instant::now() < deadline, "{:?}", members(&cluster, queue));
        std::thread::sleep(Duration::from_millis(200));
    }
    let report = doctor_of(&cluster);
    assert!(
        !report
            .checks()
            .contains(&"quorum-members-behind".to_string()),
        "{:#}",
        report.json
    );
    rt.block_on(a.close(200, "done".into())).unwrap();
}

/// A connection to node `a`, with the quorum queue declared there (its leader), three members.
fn connect_a(rt: &tokio::runtime::Runtime, cluster: &Cluster, queue: &str) -> lapin::Connection {
    rt.block_on(async {
        let a = connect(&cluster.nodes[0].amqp_url()).await;
        let ch = a.create_channel().await.unwrap();
        let group = [("x-quorum-initial-group-size", int(3))];
        try_declare_typed(&ch, queue, "quorum", &group)
            .await
            .unwrap();
        a
    })
}
