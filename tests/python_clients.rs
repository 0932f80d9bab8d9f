//! Real Python clients (pika, oslo.messaging) run their pytest scenarios against RabbitMQ and
//! against the embedded broker. The scenarios live in tests/python; `.ci/run` creates the
//! virtualenv they need at .venv.

mod common;

use common::python::{repo, venv_python};

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rabbitscope::broker::{Behaviour, Broker, BrokerConfig, DeprecatedFeature, Release};

/// Generous: each suite takes seconds against RabbitMQ; this only stops a hung broker.
const SUITE_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs `pytest tests/python/<suite> -q -x` with AMQP_URL=`url`; panics with its output on failure.
async fn pytest(suite: &str, url: &str) {
    let python = venv_python();
    let mut command = tokio::process::Command::new(&python);
    command
        .args(["-m", "pytest", &format!("tests/python/{suite}"), "-q", "-x"])
        .current_dir(repo())
        .env("AMQP_URL", url)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // oslo.messaging's queue manager reads /proc/<process group>/stat; the group this
        // test runs in may have lost its leader (a shell pipeline), so pytest leads its own.
        .process_group(0)
        .kill_on_drop(true);
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
    let output = match tokio::time::timeout(SUITE_TIMEOUT, child.wait_with_output()).await {
        Ok(result) => result.expect("waiting for pytest"),
        Err(_) => panic!(
            "pytest tests/python/{suite} against {url} did not finish within {SUITE_TIMEOUT:?}"
        ),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        panic!(
            "pytest tests/python/{suite} against {url} failed ({})\n\
             ----- stdout -----\n{stdout}\n----- stderr -----\n{stderr}",
            output.status
        );
    }
    // Shown with --nocapture; the last line is pytest's summary.
    println!(
        "{suite} against {url}: {}",
        stdout.trim_end().lines().last().unwrap_or("")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pika_against_rabbitmq() {
    pytest("test_pika.py", &common::rabbitmq_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pika_against_embedded() {
    let (url, _broker) = common::start_embedded().await;
    pytest("test_pika.py", &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oslo_messaging_against_rabbitmq() {
    pytest("test_oslo_messaging.py", &common::rabbitmq_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oslo_messaging_against_embedded() {
    let (url, _broker) = common::start_embedded().await;
    pytest("test_oslo_messaging.py", &url).await;
}

/// An embedded broker behaving as RabbitMQ 4.3, with the deprecated features switched.
async fn start_embedded_as_4_3(permit: &[DeprecatedFeature]) -> (String, Arc<Broker>) {
    let mut behaviour = Behaviour::of(Release::V4_3);
    for feature in permit {
        behaviour = behaviour.permit(*feature, true).unwrap();
    }
    common::start_embedded_with(BrokerConfig {
        behaviour,
        ..BrokerConfig::default()
    })
    .await
}

/// oslo.messaging's defaults declare non-durable, non-exclusive queues: 4.3 closes the
/// connection with 541 and the driver retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oslo_defaults_on_4_3_are_refused_with_541() {
    let (url, _broker) = start_embedded_as_4_3(&[]).await;
    pytest(
        "test_oslo_releases.py::test_default_settings_are_refused_with_541",
        &url,
    )
    .await;
}

/// The same settings on 4.3 with `deprecated_features.permit.transient_nonexcl_queues = true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oslo_defaults_on_4_3_work_with_transient_nonexcl_queues_permitted() {
    let (url, _broker) = start_embedded_as_4_3(&[DeprecatedFeature::TransientNonexclQueues]).await;
    pytest(
        "test_oslo_releases.py::test_default_settings_work_when_permitted",
        &url,
    )
    .await;
}

/// A real oslo.messaging server started as `nova-conductor` names its connection
/// `nova-conductor:<pid>:<uuid>`: the embedded broker's snapshot labels it `nova-conductor`, with
/// py-amqp as its product and its consumers on the topic's queues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oslo_service_is_named_by_its_program() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let (url, broker) = common::start_embedded().await;
    let mut service = tokio::process::Command::new(venv_python())
        .args([
            "tests/python/named_rpc_server.py",
            "nova-conductor",
            "conductor",
        ])
        .current_dir(repo())
        .env("AMQP_URL", &url)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the oslo.messaging service");
    let pid = service.id().expect("running");
    let mut stdout = BufReader::new(service.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(SUITE_TIMEOUT, stdout.next_line()).await;
    assert_eq!(
        ready.ok().and_then(|l| l.ok()).flatten().as_deref(),
        Some("ready")
    );

    // The server's poll thread issues basic.consume after start() returns.
    let consuming = |v: &rabbitscope::broker::VhostSnapshot| {
        v.consumers
            .iter()
            .any(|c| c.queue == "conductor.controller")
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !consuming(broker.snapshot().vhost("/").unwrap())
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let snapshot = broker.snapshot();
    let vhost = snapshot.vhost("/").unwrap();
    let conductor: Vec<_> = vhost
        .connections
        .iter()
        .filter(|c| c.label() == "nova-conductor")
        .collect();
    assert!(!conductor.is_empty(), "{:#?}", vhost.connections);
    for c in &conductor {
        let name = c.client.connection_name.as_deref().unwrap();
        let prefix = format!("nova-conductor:{pid}:");
        assert!(name.starts_with(&prefix), "{name}");
        assert_eq!(
            name.len(),
            prefix.len() + 36,
            "a uuid after the pid: {name}"
        );
        assert_eq!(c.client.product.as_deref(), Some("py-amqp"));
    }
    let mut queues: Vec<&str> = vhost
        .consumers
        .iter()
        .filter(|consumer| conductor.iter().any(|c| c.id == consumer.connection))
        .map(|consumer| consumer.queue.as_str())
        .collect();
    queues.sort();
    assert!(
        queues.starts_with(&["conductor", "conductor.controller"]),
        "{queues:?}"
    );
    // Closing its stdin stops it.
    drop(service.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(20), service.wait()).await;
}
