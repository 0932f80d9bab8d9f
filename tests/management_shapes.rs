//! The management API's answers in the shapes RabbitMQ 3.8 to 4.x really give
//! (tests/fixtures/management, with where each comes from), served by a tiny HTTP server and
//! read by the same code `watch`, `snapshot` and `record` use; then the live RabbitMQ with a
//! vhost made by `rabbitmqctl add_vhost`, whose `"tags": ""` once stopped every command.

mod common;

use std::path::PathBuf;
use std::process::Command;

use rabbitscope::remote::{snapshot, Endpoint, Management};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/management")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A management API answering every vhost listing with `vhosts`, every queue listing with
/// `queues`, every binding listing with `bindings` and exchanges with an empty page.
async fn fake_api(vhosts: &str, queues: &str, bindings: &str) -> Management {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (vhosts, queues, bindings) = (fixture(vhosts), fixture(queues), fixture(bindings));
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (vhosts, queues, bindings) = (vhosts.clone(), queues.clone(), bindings.clone());
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
                let path = head.split_whitespace().nth(1).unwrap_or("");
                let body = if path == "/api/vhosts" {
                    vhosts
                } else if path.starts_with("/api/queues/") {
                    queues
                } else if path.starts_with("/api/bindings/") {
                    bindings
                } else if path.starts_with("/api/exchanges/") {
                    r#"{"items":[],"page":1,"page_count":1}"#.to_string()
                } else {
                    let _ = stream
                        .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
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
        let api = fake_api(file, "queues-3.10.json", "bindings-3.10.json").await;
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
    let api = fake_api("vhosts-3.10.json", "queues-3.10.json", "bindings-3.10.json").await;
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

    let api = fake_api("vhosts-3.8.json", "queues-3.7.json", "bindings-3.10.json").await;
    let old = api.queues("v").await.unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].kind, None);
    assert!(old[0].arguments.is_empty());
    assert_eq!(old[0].consumers, 70_000);
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
