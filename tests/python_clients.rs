//! Real Python clients (pika, oslo.messaging) run their pytest scenarios against RabbitMQ and
//! against the embedded broker. The scenarios live in tests/python; `.ci/run` creates the
//! virtualenv they need at .venv.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Generous: each suite takes seconds against RabbitMQ; this only stops a hung broker.
const SUITE_TIMEOUT: Duration = Duration::from_secs(300);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn venv_python() -> PathBuf {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run .ci/run (or `bash .ci/run`) once to create the Python virtualenv \
         with tests/python/requirements.txt",
        python.display()
    );
    python
}

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
