//! The `rabbitscope broker` command as a user runs it: the real binary, a real client, signals.
mod common;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use lapin::{Connection, ConnectionProperties};

use common::client::declare_queue;
use common::process::spawn_broker;

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rabbitscope"))
}

/// Starts `rabbitscope broker` on a free port; returns the child, its address and its later
/// stderr lines.
fn start_broker(extra: &[&str]) -> (Child, String, std::sync::mpsc::Receiver<String>) {
    let broker = spawn_broker(
        binary()
            .args(["broker", "--transient", "--listen", "127.0.0.1:0"])
            .args(extra),
    );
    let address = broker.field("address=");
    (broker.child, address, broker.lines)
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < within,
            "broker did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn lines_until(rx: &std::sync::mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        let done = line.contains(needle);
        seen.push(line);
        if done {
            return seen;
        }
    }
    panic!("no line with {needle:?} in {seen:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_clients_with_connection_forced_and_exits_zero() {
    let (mut child, address, lines) = start_broker(&[]);
    let conn = Connection::connect(
        &format!("amqp://guest:guest@{address}/%2f"),
        ConnectionProperties::default(),
    )
    .await
    .expect("connect to the headless broker");
    let mut conn_events = conn.events_listener();
    let ch = conn.create_channel().await.unwrap();
    declare_queue(&ch, "q").await;
    let opened = lines_until(&lines, "connection opened");
    assert!(opened.last().unwrap().contains("user=guest"), "{opened:?}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = wait_exit(&mut child, Duration::from_secs(10));
    assert!(exit.success(), "exit status {exit:?}");
    let closed = lines_until(&lines, "connection closed");
    assert!(closed.last().unwrap().contains("shutdown"), "{closed:?}");

    // The client was told why: 320 CONNECTION_FORCED.
    let told = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(event) = futures_lite::StreamExt::next(&mut conn_events).await {
            if let lapin::Event::Error(e) = event {
                return format!("{e:?}");
            }
        }
        String::new()
    })
    .await
    .expect("lapin reports the close");
    assert!(
        told.contains("320") || told.contains("CONNECTIONFORCED"),
        "{told}"
    );
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = binary()
        .args(["broker", "--transient", "--listen", &address])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&address),
        "stderr does not name {address}: {stderr}"
    );
    assert!(stderr.to_lowercase().contains("address"), "{stderr}");
}

#[test]
fn sigint_stops_an_idle_broker_cleanly() {
    let (mut child, _address, _lines) = start_broker(&["--vhost", "classroom"]);
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
}

/// A broker that other hosts can reach says so before it announces its address; on loopback
/// it says nothing of the kind.
#[test]
fn listening_beyond_loopback_is_a_warning() {
    let mut broker =
        spawn_broker(binary().args(["broker", "--transient", "--listen", "0.0.0.0:0"]));
    let _ = broker.child.kill();
    let _ = broker.child.wait();
    let before = broker.before;
    let text = before.join("\n");
    assert!(
        before
            .iter()
            .any(|l| l.contains("WARN") && l.contains("not only on loopback")),
        "no warning before the address:\n{text}"
    );
    let (mut quiet, _, lines) = start_broker(&[]);
    let _ = quiet.kill();
    let _ = quiet.wait();
    assert!(
        lines.try_iter().all(|l| !l.contains("loopback")),
        "a loopback broker warned"
    );
}
