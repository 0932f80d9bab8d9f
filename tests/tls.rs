//! amqps as users meet it: the embedded broker serving TLS with a certificate from their own
//! CA, clients that trust that CA (lapin, `rabbitscope tap --ca-cert`, the lesson runner), and
//! clients that do not or that speak something else to the TLS port.
mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use common::pki::Pki;
use common::process::spawn_broker;
use common::vhost::TestVhost;

const BIN: &str = env!("CARGO_BIN_EXE_rabbitscope");

/// One CA for the whole file: the lesson runner trusts a CA once per process.
fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(Pki::new)
}

/// `rabbitscope broker` with TLS on free ports: the child, its plain and amqps addresses.
struct BrokerProcess {
    child: Child,
    plain: SocketAddr,
    amqps: SocketAddr,
    /// The line that announced them.
    announced: String,
}

/// `rabbitscope broker` on free ports, plain and amqps, with this certificate and key.
fn tls_broker(cert: impl AsRef<std::ffi::OsStr>, key: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["broker", "--transient", "--listen", "127.0.0.1:0"])
        .args(["--tls-listen", "127.0.0.1:0", "--tls-cert"])
        .arg(cert)
        .arg("--tls-key")
        .arg(key);
    command
}

impl BrokerProcess {
    fn start() -> BrokerProcess {
        let pki = pki();
        let broker = spawn_broker(&mut tls_broker(&pki.server_cert, &pki.server_key));
        let field = |name: &str| -> SocketAddr { broker.field(name).parse().unwrap() };
        let (plain, amqps) = (field("address="), field("amqps_address="));
        BrokerProcess {
            child: broker.child,
            plain,
            amqps,
            announced: broker.announced,
        }
    }

    fn amqps_url(&self) -> String {
        format!("amqps://guest:guest@localhost:{}/%2f", self.amqps.port())
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A lapin connection over TLS, trusting `ca` (PEM) besides the system's certificates.
async fn amqps(url: &str, ca: Option<String>) -> lapin::Result<Connection> {
    let config = OwnedTLSConfig {
        identity: None,
        cert_chain: ca,
    };
    let runtime = lapin::runtime::default_runtime()?;
    Connection::connect_with_config(url, ConnectionProperties::default(), config, runtime).await
}

/// Declares a queue, publishes one message to it and gets it back.
async fn round_trip(connection: &Connection, queue: &str, body: &[u8]) {
    let ch = connection.create_channel().await.unwrap();
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_publish(
        "".into(),
        queue.into(),
        BasicPublishOptions::default(),
        body,
        BasicProperties::default(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap();
        if let Some(message) = got {
            assert_eq!(message.delivery.data, body);
            break;
        }
        assert!(Instant::now() < deadline, "the message never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ch.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_trusting_the_ca_publishes_and_gets_over_amqps_beside_plain_amqp() {
    let broker = BrokerProcess::start();
    assert!(
        broker.announced.contains("broker listening"),
        "{}",
        broker.announced
    );
    let tls = amqps(&broker.amqps_url(), Some(pki().ca_pem()))
        .await
        .expect("amqps connection with the CA");
    round_trip(&tls, "over-tls", b"sealed").await;

    // The plain listener serves the same broker: a message published over TLS is there.
    let plain = Connection::connect(
        &format!("amqp://guest:guest@{}/%2f", broker.plain),
        ConnectionProperties::default(),
    )
    .await
    .unwrap();
    let ch = tls.create_channel().await.unwrap();
    ch.queue_declare("shared".into(), Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.basic_publish(
        "".into(),
        "shared".into(),
        BasicPublishOptions::default(),
        b"from tls",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let plain_ch = plain.create_channel().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let got = loop {
        let got = plain_ch
            .basic_get("shared".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap();
        if let Some(m) = got {
            break m;
        }
        assert!(Instant::now() < deadline, "not on the plain side");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(got.delivery.data, b"from tls");
    tls.close(200, "OK".into()).await.unwrap();
    plain.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_without_the_ca_does_not_trust_the_broker() {
    let broker = BrokerProcess::start();
    let refused = amqps(&broker.amqps_url(), None).await;
    let error = refused.expect_err("a self-signed broker must not be trusted by default");
    let text = error.to_string().to_lowercase();
    assert!(
        text.contains("certificate") || text.contains("issuer"),
        "not a certificate error: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_amqp_and_garbage_on_the_tls_port_are_dropped_and_others_carry_on() {
    let broker = BrokerProcess::start();
    let good = amqps(&broker.amqps_url(), Some(pki().ca_pem()))
        .await
        .unwrap();

    for (what, bytes) in [
        ("a plain AMQP header", &b"AMQP\x00\x00\x09\x01"[..]),
        (
            "garbage",
            &b"\x16\x03\x01\x00\x05hello, this is not TLS\r\n\r\n"[..],
        ),
        ("zeros", &[0u8; 4096][..]),
    ] {
        let mut stream = TcpStream::connect(broker.amqps).await.unwrap();
        let _ = stream.write_all(bytes).await;
        // The broker hangs up (perhaps after a TLS alert) rather than waiting for more.
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer));
        assert!(read.await.is_ok(), "{what}: the broker did not hang up");
        assert!(
            !answer.starts_with(b"AMQP"),
            "{what}: answered in plain AMQP"
        );
    }
    // A client that connects and says nothing holds no one up either.
    let _silent = TcpStream::connect(broker.amqps).await.unwrap();

    round_trip(&good, "still-served", b"after the noise").await;
    let late = amqps(&broker.amqps_url(), Some(pki().ca_pem()))
        .await
        .expect("new amqps clients are still accepted");
    round_trip(&late, "late", b"x").await;
    good.close(200, "OK".into()).await.unwrap();
    late.close(200, "OK".into()).await.unwrap();
}

#[test]
fn a_missing_or_unusable_certificate_is_an_error_naming_the_file() {
    let pki = pki();
    let not_pem = pki.dir.join("not-a-certificate.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let other_key = pki.dir.join("other-key.pem");
    std::fs::write(
        &other_key,
        rcgen::KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    let missing = pki.dir.join("missing.pem");
    let cases = [
        (&missing, &pki.server_key, &missing),
        (&not_pem, &pki.server_key, &not_pem),
        (&pki.server_cert, &not_pem, &not_pem),
        (&pki.server_cert, &other_key, &other_key),
    ];
    for (cert, key, named) in cases {
        let out = tls_broker(cert, key).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with {cert:?} {key:?}");
        assert!(
            stderr.contains(&*named.to_string_lossy()),
            "the error does not name {named:?}: {stderr}"
        );
        assert!(
            !stderr.contains("broker listening"),
            "listened anyway: {stderr}"
        );
    }
    // A key without a certificate is a usage error, not a silent plain-only broker.
    let out = Command::new(BIN)
        .args([
            "broker",
            "--transient",
            "--listen",
            "127.0.0.1:0",
            "--tls-key",
        ])
        .arg(&pki.server_key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-cert"));
}

/// A TLS front for the RabbitMQ on 127.0.0.1:5672 (as stunnel would be), with the test CA's
/// certificate: RabbitMQ itself has no TLS listener here.
async fn tls_front_for_rabbitmq() -> SocketAddr {
    tls_front(5672).await
}

/// A TLS front for a port of the local RabbitMQ (5672 for amqps, 15672 for https).
async fn tls_front(upstream: u16) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(pki().server_config());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut client) = acceptor.accept(client).await else {
                    return;
                };
                let Ok(mut rabbit) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut rabbit).await;
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_reads_the_management_api_over_https() {
    let (amqps, https) = (tls_front(5672).await, tls_front(15672).await);
    let vhost = TestVhost::new("snapshot-https").await;
    let (connection, ch) = vhost.channel().await;
    ch.queue_declare(
        "seen-over-https".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let out = tokio::process::Command::new(BIN)
        .args([
            "snapshot",
            &format!(
                "amqps://guest:guest@localhost:{}/{}",
                amqps.port(),
                vhost.name
            ),
            "--management",
            &format!("https://localhost:{}", https.port()),
            "--format",
            "json",
            "--ca-cert",
        ])
        .arg(&pki().ca_cert)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "snapshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("seen-over-https"), "{stdout}");
    connection.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn tap_with_ca_cert_reads_the_firehose_over_amqps() {
    let ca = pki().ca_cert.clone();
    tap_one_route_over_tls(move |tap| {
        tap.arg("--ca-cert").arg(ca);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tap_trusts_the_ca_in_ssl_cert_file() {
    let ca = pki().ca_cert.clone();
    tap_one_route_over_tls(move |tap| {
        tap.env("SSL_CERT_FILE", ca);
    })
    .await;
}

/// Runs `tap --count 1` over amqps (set up by `trust`) while publishing one route; asserts
/// the line.
async fn tap_one_route_over_tls(trust: impl FnOnce(&mut tokio::process::Command)) {
    let front = tls_front_for_rabbitmq().await;
    let vhost = TestVhost::new("tap-tls").await;
    let (connection, ch) = vhost.channel().await;
    ch.queue_declare(
        "tls-q".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        "tls-q".into(),
        "amq.topic".into(),
        "over.#".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let url = format!(
        "amqps://guest:guest@localhost:{}/{}",
        front.port(),
        vhost.name
    );
    let mut tap = tokio::process::Command::new(BIN);
    tap.args([
        "tap",
        &url,
        "--count",
        "1",
        "--management",
        "http://127.0.0.1:15672",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    trust(&mut tap);
    let mut child = tap.spawn().unwrap();
    // Publish (plainly, straight to RabbitMQ) until tap has its line and exits.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "tap printed nothing in 30 s");
        ch.basic_publish(
            "amq.topic".into(),
            "over.tls".into(),
            BasicPublishOptions::default(),
            b"m",
            BasicProperties::default(),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let out = child.wait_with_output().await.unwrap();
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tap failed: {stderr}");

    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].ends_with(" amq.topic over.tls -> tls-q"),
        "{:?}",
        lines[0]
    );
    connection.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn tap_without_the_ca_says_the_certificate_is_not_trusted() {
    let front = tls_front_for_rabbitmq().await;
    let vhost = TestVhost::new("tap-tls-untrusted").await;
    let url = format!(
        "amqps://guest:guest@localhost:{}/{}",
        front.port(),
        vhost.name
    );
    let tap = tokio::process::Command::new(BIN)
        .args([
            "tap",
            &url,
            "--count",
            "1",
            "--management",
            "http://127.0.0.1:15672",
        ])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), tap)
        .await
        .expect("tap neither connected nor gave up")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(!out.status.success());
    assert!(
        stderr.contains("certificate") || stderr.contains("issuer"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lesson_runs_over_amqps() {
    use rabbitscope::amqp::Server;
    use rabbitscope::broker::{Broker, BrokerConfig};
    use rabbitscope::lesson::{self, Lang, Target};
    rabbitscope::tls::trust_ca_file(&pki().ca_cert).unwrap();
    let broker = Broker::new(BrokerConfig::default());
    let mut server = Server::bind(broker.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    server
        .listen_tls("127.0.0.1:0".parse().unwrap(), pki().server_config())
        .await
        .unwrap();
    let port = server.tls_local_addr().unwrap().port();
    tokio::spawn(server.run());

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lessons");
    let (lessons, errors) = lesson::load_each(&dir);
    assert!(errors.is_empty(), "{errors:?}");
    let first = lessons.iter().min_by_key(|l| l.order).unwrap();
    let target = Target::Shared {
        broker: Arc::clone(&broker),
        url: format!("amqps://guest:guest@localhost:{port}/%2f"),
    };
    let check = lesson::check_lesson(first, target, Lang::En).await;
    // Its clients could only have come in over TLS: the url has no other way in.
    assert!(check.ok(), "{:?}", check.failures);
}

#[tokio::test(flavor = "multi_thread")]
async fn tap_over_amqps_knows_the_embedded_broker_has_no_management_api() {
    let broker = BrokerProcess::start();
    let out = tokio::process::Command::new(BIN)
        .args(["tap", &broker.amqps_url(), "--count", "1"])
        .arg("--ca-cert")
        .arg(&pki().ca_cert)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("tap did not give up")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("rabbitscope's embedded broker, which has no management API"),
        "{stderr}"
    );
}
