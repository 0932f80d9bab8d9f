//! The management API's answers in the shapes RabbitMQ 3.8 to 4.x really give
//! (tests/fixtures/management, with where each comes from), served by a tiny HTTP server and
//! read by the same code `watch`, `snapshot` and `record` use; then the live RabbitMQ with a
//! vhost made by `rabbitmqctl add_vhost`, whose `"tags": ""` once stopped every command.

mod common;

use std::path::PathBuf;
use std::process::Command;

use rabbitscope::remote::{connection_id, snapshot, Endpoint, Management};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/management")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Which fixture answers each listing.
#[derive(Clone, Copy)]
struct Answers {
    vhosts: &'static str,
    queues: &'static str,
    bindings: &'static str,
    connections: &'static str,
    consumers: &'static str,
    /// One quorum queue of `/` whose members' status RabbitMQ 3.13 tells, and the fixture
    /// telling it; other queues' status requests get 404.
    quorum_status: Option<(&'static str, &'static str)>,
    /// Answers to exact paths, as written here.
    exact: &'static [(&'static str, &'static str)],
}

impl Default for Answers {
    fn default() -> Self {
        Answers {
            vhosts: "vhosts-3.10.json",
            queues: "queues-3.10.json",
            bindings: "bindings-3.10.json",
            connections: "connections-3.10.json",
            consumers: "consumers-3.10.json",
            quorum_status: None,
            exact: &[],
        }
    }
}

/// A management API answering each listing with its fixture, exchanges with an empty page
/// and anything else with 404.
async fn fake_api(answers: Answers) -> Management {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let vhosts = fixture(answers.vhosts);
    let exact: Vec<(String, String)> = (answers.exact.iter())
        .map(|(path, body)| (path.to_string(), body.to_string()))
        .collect();
    let mut listings: Vec<(String, Option<String>)> = Vec::new();
    if let Some((queue, status)) = answers.quorum_status {
        let path = format!("/api/queues/quorum/%2F/{queue}/status");
        listings.push((path, Some(fixture(status))));
    }
    // Any other quorum queue's status: not found.
    listings.push(("/api/queues/quorum/".into(), None));
    for (prefix, body) in [
        ("/api/queues/", fixture(answers.queues)),
        ("/api/bindings/", fixture(answers.bindings)),
        ("/api/consumers/", fixture(answers.consumers)),
        (
            "/api/exchanges/",
            r#"{"items":[],"page":1,"page_count":1}"#.to_string(),
        ),
    ] {
        listings.push((prefix.into(), Some(body)));
    }
    let connections = fixture(answers.connections);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (vhosts, listings, connections, exact) = (
                vhosts.clone(),
                listings.clone(),
                connections.clone(),
                exact.clone(),
            );
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let target = head.split_whitespace().nth(1).unwrap_or("");
                let path = target.split('?').next().unwrap_or("");
                let body = if let Some((_, body)) = exact.iter().find(|(p, _)| p == path) {
                    Some(body.clone())
                } else if path == "/api/vhosts" {
                    Some(vhosts)
                } else if path.starts_with("/api/vhosts/") && path.ends_with("/connections") {
                    Some(connections)
                } else {
                    listings
                        .into_iter()
                        .find(|(prefix, _)| path.starts_with(prefix.as_str()))
                        .and_then(|(_, body)| body)
                };
                let Some(body) = body else {
                    let _ = stream
                        .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                    return;
                };
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    let endpoint = Endpoint::new(
        "amqp://guest:guest@127.0.0.1:1/%2f",
        Some(&format!("http://{address}")),
    )
    .unwrap();
    Management::new(&endpoint).unwrap()
}

#[tokio::test]
async fn every_releases_vhosts_are_read() {
    for (file, names) in [
        (
            "vhosts-3.8.json",
            &["/", "from-an-older-release", "tagged"][..],
        ),
        ("vhosts-3.10.json", &["/", "made-by-rabbitmqctl"]),
        ("vhosts-3.12.json", &["/", "orders"]),
        ("vhosts-4.1.json", &["/", "orders"]),
    ] {
        let api = fake_api(Answers {
            vhosts: file,
            ..Answers::default()
        })
        .await;
        let listed = api
            .vhost_names()
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(listed, names, "{file}");
        // The whole picture, as `snapshot` without --vhost and `watch` read it.
        let picture = snapshot(&api)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(picture.vhosts.len(), names.len(), "{file}");
    }
}

#[test]
fn tags_descriptions_and_queue_types_in_every_shape() {
    use rabbitscope::remote::answers::Vhost;
    let read = |file: &str| -> Vec<Vhost> { serde_json::from_str(&fixture(file)).unwrap() };
    let v38 = read("vhosts-3.8.json");
    assert_eq!(v38[1].tags, Vec::<String>::new());
    assert_eq!(v38[1].description, None);
    assert!(v38[1].tracing);
    assert_eq!(v38[2].tags, ["prod", "eu"]);
    assert_eq!(
        v38[2].description, None,
        "Erlang's undefined is no description"
    );
    let v310 = read("vhosts-3.10.json");
    assert_eq!(v310[1].tags, Vec::<String>::new());
    assert_eq!(v310[1].default_queue_type, None);
    let v312 = read("vhosts-3.12.json");
    assert_eq!(v312[1].tags, ["prod", "eu"]);
    assert_eq!(v312[1].default_queue_type.as_deref(), Some("quorum"));
    assert_eq!(v312[1].description, None);
    let v41 = read("vhosts-4.1.json");
    assert_eq!(v41[1].tags, ["prod"]);
    assert_eq!(v41[1].description.as_deref(), Some(""));
}

#[tokio::test]
async fn queues_without_counters_or_type_and_old_argument_tables_are_read() {
    let api = fake_api(Answers::default()).await;
    let queues = api.queues("v").await.unwrap();
    let shown: Vec<(&str, Option<&str>, u64, u64, u64)> = queues
        .iter()
        .map(|q| {
            let kind = q.kind.as_deref();
            let counts = (q.messages, q.messages_unacknowledged, q.consumers);
            (q.name.as_str(), kind, counts.0, counts.1, counts.2)
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("fresh", Some("classic"), 0, 0, 0),
            ("orders", Some("quorum"), 7, 3, 2),
            ("stopped", Some("classic"), 0, 0, 0)
        ]
    );
    let picture = rabbitscope::remote::snapshot::vhost_snapshot(&api, "v")
        .await
        .unwrap();
    let orders = &picture.queues[1];
    assert_eq!((orders.ready, orders.unacked, orders.consumers), (4, 3, 2));
    // The default exchange's bindings are left out; the exchange-to-exchange one with `[]`
    // as its arguments is kept.
    assert_eq!(picture.bindings.len(), 2);
    assert!(picture.bindings.iter().any(|b| b.destination_is_exchange));

    let api = fake_api(Answers {
        vhosts: "vhosts-3.8.json",
        queues: "queues-3.7.json",
        ..Answers::default()
    })
    .await;
    let old = api.queues("v").await.unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].kind, None);
    assert!(old[0].arguments.is_empty());
    assert_eq!(old[0].consumers, 70_000);
}

/// A vhost's clients as a test compares them: (label, peer, user) per connection, and
/// (queue, tag, connection name, channel, manual ack, prefetch) per consumer, the connection
/// found again by the id the snapshot gave it.
type Clients = (
    Vec<(String, String, String)>,
    Vec<(String, String, String, u16, bool, u16)>,
);

async fn clients(answers: Answers, names: &[&str]) -> Clients {
    let api = fake_api(answers).await;
    let v = snapshot::vhost_snapshot(&api, "v").await.unwrap();
    let connections = v
        .connections
        .iter()
        .map(|c| (c.label(), c.peer.clone(), c.user.clone()))
        .collect();
    let name_of = |id: u64| {
        names
            .iter()
            .find(|n| connection_id(n) == id)
            .map_or_else(|| format!("unknown {id}"), |n| n.to_string())
    };
    let consumers = v
        .consumers
        .iter()
        .map(|c| {
            let (queue, tag) = (c.queue.clone(), c.tag.clone());
            (
                queue,
                tag,
                name_of(c.connection),
                c.channel,
                c.ack,
                c.prefetch,
            )
        })
        .collect();
    (connections, consumers)
}

fn row(label: &str, peer: &str, user: &str) -> (String, String, String) {
    (label.into(), peer.into(), user.into())
}

fn consumer(
    queue: &str,
    tag: &str,
    connection: &str,
    channel: u16,
    ack: bool,
    prefetch: u16,
) -> (String, String, String, u16, bool, u16) {
    let (queue, tag, connection) = (queue.into(), tag.into(), connection.into());
    (queue, tag, connection, channel, ack, prefetch)
}

#[tokio::test]
async fn connections_and_consumers_of_3_10_are_read_without_rabbitscopes_own() {
    let nova = "127.0.0.1:40062 -> 127.0.0.1:5672";
    let plain = "127.0.0.1:40068 -> 127.0.0.1:5672";
    let (connections, consumers) = clients(Answers::default(), &[nova, plain]).await;
    // The firehose's connection and its consumer are how rabbitscope watches: left out.
    assert_eq!(
        connections,
        [
            row("nova-conductor", "127.0.0.1:40062", "guest"),
            row(
                "Pika Python Client Library :40068",
                "127.0.0.1:40068",
                "guest"
            ),
        ]
    );
    assert_eq!(
        consumers,
        [
            consumer("audit", "amq.ctag-abc", plain, 1, false, 0),
            consumer("work", "conductor-1", nova, 2, true, 10),
        ]
    );
}

#[tokio::test]
async fn connections_and_consumers_of_3_8_shapes_are_read() {
    let nova = "10.0.0.5:53122 -> 10.0.0.2:5672";
    let answers = Answers {
        connections: "connections-3.8.json",
        consumers: "consumers-3.8.json",
        ..Answers::default()
    };
    let (connections, consumers) = clients(answers, &[nova]).await;
    // No connection_name: the library and port. A direct connection has neither peer
    // port nor host: its name stands for both.
    let direct = "<rabbit@node-1.1624012345.4242.0>";
    assert_eq!(
        connections,
        [
            row("py-amqp :53122", "10.0.0.5:53122", "nova"),
            row(direct, direct, "shovel"),
        ]
    );
    // A consumer whose channel is not known (`channel_details: []`) is kept, on connection 0.
    assert_eq!(
        consumers,
        [
            consumer("conductor", "4f1d0c9e", nova, 1, true, 1),
            consumer("conductor", "amq.ctag-stale", "unknown 0", 0, true, 0),
        ]
    );
}

#[tokio::test]
async fn connections_and_consumers_of_4_1_shapes_are_read() {
    let billing = "[::1]:40112 -> [::1]:5672";
    let lapin = "127.0.0.1:40200 -> 127.0.0.1:5672";
    let answers = Answers {
        connections: "connections-4.1.json",
        consumers: "consumers-4.1.json",
        ..Answers::default()
    };
    let (connections, consumers) = clients(answers, &[billing, lapin]).await;
    assert_eq!(
        connections,
        [
            row("lapin :40200", "127.0.0.1:40200", "guest"),
            row("billing worker", "[::1]:40112", "billing"),
        ]
    );
    assert_eq!(
        consumers,
        [
            consumer("audit", "amq.ctag-9x", lapin, 1, false, 0),
            consumer("invoices", "invoices-1", billing, 3, true, 250),
        ]
    );
}

/// The text listing puts each consumer under its queue, named by its client.
#[tokio::test]
async fn the_text_listing_names_each_consumers_client() {
    let api = fake_api(Answers {
        queues: "queues-consumed-3.10.json",
        ..Answers::default()
    })
    .await;
    let picture = snapshot::snapshot(&api).await.unwrap();
    let text = rabbitscope::remote::render::text(&picture);
    let work = text
        .lines()
        .position(|l| l == "    work: 0 ready, 1 unacked")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        text.lines().nth(work + 1),
        Some("      consumer conductor-1 by nova-conductor (channel 2, manual ack, prefetch 10)"),
        "{text}"
    );
    assert!(text.contains("    nova-conductor (127.0.0.1:40062 -> 127.0.0.1:5672, user guest)"));
    assert!(!text.contains("rabbitscope firehose"), "{text}");
    assert!(!text.contains("consumer rabbitscope-firehose"), "{text}");
}

fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deletes the vhost when the test ends, passed or not.
/// RabbitMQ 3.13 tells each quorum queue member's commit index
/// (tests/fixtures/management/quorum-status-3.13.json: `rabbit@node2` is 59,427 entries behind
/// the leader of `compute.node1`; `rabbit@node3` does not answer). `snapshot` in every format
/// and `watch` name the member behind; queues whose status is not told name none.
#[tokio::test(flavor = "multi_thread")]
async fn members_far_behind_their_leader_are_named_by_snapshot_and_watch() {
    use rabbitscope::remote::snapshot::Lag;
    use rabbitscope::remote::{RemoteOptions, RemoteSource};
    use rabbitscope::source::Source;
    use std::collections::BTreeMap;
    let api = fake_api(Answers {
        queues: "queues-doctor-3.10.json",
        quorum_status: Some(("compute.node1", "quorum-status-3.13.json")),
        ..Answers::default()
    })
    .await;
    let behind = |picture: &rabbitscope::broker::Snapshot, name: &str| {
        (picture.vhosts[0].queues.iter())
            .find(|q| q.name == name)
            .unwrap_or_else(|| panic!("no {name} in {picture:#?}"))
            .behind
            .clone()
    };
    let node2 = BTreeMap::from([("rabbit@node2".to_string(), 59_427)]);
    let asked = snapshot::one_vhost(&api, "/", Lag::Ask).await.unwrap();
    assert_eq!(behind(&asked, "compute.node1"), node2);
    assert!(behind(&asked, "conductor").is_empty());
    let skipped = snapshot::one_vhost(&api, "/", Lag::Skip).await.unwrap();
    assert!(behind(&skipped, "compute.node1").is_empty());

    // The real binary, as an operator runs it.
    let run = |format: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_rabbitscope"))
            .args([
                "snapshot",
                "amqp://guest:guest@127.0.0.1:1/%2f",
                "--management",
            ])
            .args([api.url(), "--vhost", "/", "--format", format])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{format}: {stderr}");
        String::from_utf8(out.stdout).unwrap()
    };
    let json: rabbitscope::broker::Snapshot = serde_json::from_str(&run("json")).unwrap();
    assert_eq!(behind(&json, "compute.node1"), node2);
    let yaml: rabbitscope::broker::Snapshot = serde_yaml::from_str(&run("yaml")).unwrap();
    assert_eq!(behind(&yaml, "compute.node1"), node2);
    let text = run("text");
    let line = (text.lines())
        .find(|l| l.trim_start().starts_with("compute.node1:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("rabbit@node2 59427 entries behind"), "{line}");
    let conductor = (text.lines())
        .find(|l| l.trim_start().starts_with("conductor:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(!conductor.contains("behind"), "{conductor}");
    let dot = run("dot");
    assert!(dot.contains("rabbit@node2 59427 behind"), "{dot}");

    // `watch`: asked on the read after its first picture, and kept on the reads between two
    // asks.
    let endpoint = Endpoint::new("amqp://guest:guest@127.0.0.1:1/%2f", Some(api.url())).unwrap();
    let source = RemoteSource::start(
        endpoint,
        RemoteOptions {
            interval: std::time::Duration::from_millis(50),
            trace: false,
        },
    )
    .unwrap();
    assert!(
        source
            .refreshed(4, std::time::Duration::from_secs(20))
            .await
    );
    assert_eq!(behind(&source.snapshot(), "compute.node1"), node2);
    source.close().await;
}

/// Tracing is each node's own: a node whose management API cannot be reached, or that has
/// none, is told as not traced, with why.
#[tokio::test]
async fn nodes_whose_tracing_cannot_be_turned_on_are_named() {
    let api = fake_api(Answers {
        exact: &[
            ("/api/vhosts/%2F", r#"{"name":"/","tracing":true}"#),
            (
                "/api/overview",
                r#"{"node":"rabbit@a","listeners":[
                    {"node":"rabbit@a","protocol":"http","ip_address":"::","port":15672},
                    {"node":"rabbit@b","protocol":"amqp","ip_address":"127.0.0.1","port":5672},
                    {"node":"rabbit@b","protocol":"http","ip_address":"127.0.0.1","port":1},
                    {"node":"rabbit@b","protocol":"https","ip_address":"127.0.0.1","port":2},
                    {"node":"rabbit@c","protocol":"clustering","ip_address":"::","port":25672}]}"#,
            ),
        ],
        ..Answers::default()
    })
    .await;
    let mut tracing = rabbitscope::remote::firehose::Tracing::new(api, "/");
    tracing.ensure_on().await.unwrap();
    // Already on where it was asked first: nothing to turn off later.
    assert!(!tracing.turned_on());
    let untraced = tracing.untraced();
    assert_eq!(untraced.len(), 2, "{untraced:?}");
    assert!(untraced[0].starts_with("rabbit@b: "), "{untraced:?}");
    assert!(untraced[0].contains("127.0.0.1:1"), "{untraced:?}");
    assert_eq!(untraced[1], "rabbit@c: it has no management listener");
}

struct CtlVhost(String);

impl Drop for CtlVhost {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.0])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vhost_made_by_rabbitmqctl_is_watched_snapshotted_and_traced() {
    let name = common::unique("ctl-vhost");
    rabbitmqctl(&["add_vhost", &name]);
    let _cleanup = CtlVhost(name.clone());
    rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
    let url = common::vhost::url(&name);

    // `snapshot` of every vhost, the real binary: it lists the new vhost.
    let out = Command::new(env!("CARGO_BIN_EXE_rabbitscope"))
        .args(["snapshot", &common::rabbitmq_url(), "--format", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("\"{name}\"")), "{stdout}");

    // Tracing on and off again (what `watch --trace`, `tap` and `record` do) keeps working.
    let api = Management::new(&Endpoint::new(&url, None).unwrap()).unwrap();
    api.set_tracing(&name, true).await.unwrap();
    assert!(api.tracing(&name).await.unwrap());
    api.set_tracing(&name, false).await.unwrap();
    assert!(!api.tracing(&name).await.unwrap());

    // `record` on it, the real binary, for a moment.
    let file = std::env::temp_dir().join(format!("{name}.yaml"));
    let out = Command::new(env!("CARGO_BIN_EXE_rabbitscope"))
        .args([
            "record",
            &url,
            "-o",
            file.to_str().unwrap(),
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&file);
    assert!(!api.tracing(&name).await.unwrap());
}
