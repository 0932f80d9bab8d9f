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

async fn login(address: &str, user: &str, password: &str) -> Result<Connection, lapin::Error> {
    let uri = lapin::uri::AMQPUri {
        authority: lapin::uri::AMQPAuthority {
            userinfo: lapin::uri::AMQPUserInfo {
                username: user.to_string(),
                password: password.to_string(),
            },
            host: address.rsplit_once(':').unwrap().0.to_string(),
            port: address.rsplit_once(':').unwrap().1.parse().unwrap(),
        },
        ..Default::default()
    };
    Connection::connect_uri(uri, ConnectionProperties::default()).await
}

/// Each refused login is logged in RabbitMQ's words with the peer's address, the user's name
/// shown with its escape sequences escaped; a password guesser's burst is logged only up to
/// the limit and summed up later, while another client logs in meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_logged_within_a_limit() {
    let (mut child, address, lines) = start_broker(&[]);
    login(&address, "eve\u{1b}]0;owned\u{7}", "x")
        .await
        .expect_err("an unknown user is refused");
    let attempts = 30;
    for _ in 0..attempts {
        login(&address, "guest", "guessed")
            .await
            .expect_err("a wrong password is refused");
    }
    let served = login(&address, "guest", "guest")
        .await
        .expect("guest logs in");
    let seen = lines_until(&lines, "connection opened");
    let refused: Vec<&String> = seen
        .iter()
        .filter(|l| l.contains("login refused"))
        .collect();
    assert!(
        refused[0]
            .contains(r"PLAIN login refused: user 'eve\u{1b}]0;owned\u{7}' - invalid credentials")
            && refused[0].contains("peer=127.0.0.1:")
            && !refused[0].contains('\u{1b}'),
        "{refused:#?}"
    );
    assert!(
        refused[1].contains("PLAIN login refused: user 'guest' - invalid credentials"),
        "{refused:#?}"
    );
    // Ten lines a window; a slow run may cross into a second window, never log them all.
    assert!(
        refused.len() >= 10 && refused.len() <= 20 && refused.len() < attempts + 1,
        "{} lines for {} failures: {refused:#?}",
        refused.len(),
        attempts + 1
    );
    served.close(200, "OK".into()).await.unwrap();

    // The next failure after the window names how many went unlogged.
    tokio::time::sleep(Duration::from_secs(10)).await;
    login(&address, "guest", "guessed")
        .await
        .expect_err("refused");
    let summed = lines_until(&lines, "login refused");
    assert!(
        summed
            .iter()
            .any(|l| l.contains("more failed logins were not logged")),
        "{summed:#?}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// On a dual-stack listener an IPv4 client on loopback arrives as ::ffff:127.0.0.1, and guest
/// may log in from there; from the machine's other address guest is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_logs_in_over_ipv4_loopback_on_a_dual_stack_listener() {
    let broker = spawn_broker(binary().args(["broker", "--transient", "--listen", "[::]:0"]));
    let port = broker
        .field("address=")
        .rsplit_once(':')
        .unwrap()
        .1
        .to_string();
    let (mut child, lines) = (broker.child, broker.lines);
    let conn = login(&format!("127.0.0.1:{port}"), "guest", "guest")
        .await
        .expect("guest logs in from 127.0.0.1 through [::]");
    let opened = lines_until(&lines, "connection opened");
    assert!(opened.last().unwrap().contains("user=guest"), "{opened:?}");
    conn.close(200, "OK".into()).await.unwrap();

    // The machine's address on its outward interface, when it has one.
    let outward = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .ok()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
    if let Some(ip) = outward {
        login(&format!("{ip}:{port}"), "guest", "guest")
            .await
            .expect_err("guest is refused from a non-loopback address");
        let refused = lines_until(&lines, "login refused");
        assert!(
            refused
                .last()
                .unwrap()
                .contains("PLAIN login refused: user 'guest' can only connect via localhost"),
            "{refused:?}"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Declares the non-durable, non-exclusive queue `reply_1`, as oslo.messaging's defaults do.
async fn transient(conn: &Connection) -> Result<lapin::Queue, lapin::Error> {
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "reply_1".into(),
        lapin::options::QueueDeclareOptions::default(),
        Default::default(),
    )
    .await
}

/// `broker --behave-as 4.3` says what it behaves as before its address, and refuses what 4.3
/// denies; `--permit` lets it through again; an unknown release is refused naming the valid
/// ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behave_as_and_permit_choose_the_rules() {
    let mut broker = spawn_broker(binary().args([
        "broker",
        "--transient",
        "--listen",
        "127.0.0.1:0",
        "--behave-as",
        "4.3.2",
    ]));
    assert!(
        broker
            .before
            .iter()
            .any(|l| l.ends_with("behaves as RabbitMQ 4.3")),
        "{:#?}",
        broker.before
    );
    let address = broker.field("address=");
    let conn = login(&address, "guest", "guest").await.unwrap();
    let declared = transient(&conn).await;
    let _ = broker.child.kill();
    let _ = broker.child.wait();
    let err = declared.unwrap_err();
    assert!(
        err.to_string()
            .contains("INTERNAL_ERROR - Feature `transient_nonexcl_queues` is deprecated."),
        "{err}"
    );

    let (mut child, address, _lines) =
        start_broker(&["--behave-as", "4.3", "--permit", "transient_nonexcl_queues"]);
    let conn = login(&address, "guest", "guest").await.unwrap();
    let declared = transient(&conn).await;
    let _ = child.kill();
    let _ = child.wait();
    declared.expect("permitted");

    let out = binary()
        .args(["broker", "--transient", "--behave-as", "5.0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("unknown RabbitMQ release '5.0'")
            && stderr.contains("3.13, 4.0, 4.1, 4.2 or 4.3"),
        "{stderr}"
    );
}
