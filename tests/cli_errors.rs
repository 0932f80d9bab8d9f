//! What a person sees when a command cannot do its work: one or two lines saying what is wrong
//! and what to change, never a source location or a backtrace. The real binary against the
//! RabbitMQ on this machine (a wrong password, an unknown vhost), a port where nothing
//! listens, a missing file; and `lessons list` from a directory without lessons.

mod common;

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_rabbitscope");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        // A backtrace must not appear even when asked for in the environment.
        .env("RUST_BACKTRACE", "1")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap()
}

/// The error text, checked to be short and free of internals.
fn error_of(args: &[&str]) -> String {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded: {stderr}");
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    assert!(stderr.lines().count() <= 2, "{args:?}: {stderr}");
    for internal in ["Location", "src/", "BACKTRACE", ".rs:"] {
        assert!(!stderr.contains(internal), "{args:?}: {stderr}");
    }
    stderr
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_wrong_password_is_said_so() {
    let url = "amqp://guest:not-the-password@127.0.0.1:5672/%2f";
    for command in [
        vec!["snapshot", url],
        vec!["tap", url],
        vec!["record", url, "-o", "/dev/null"],
        vec!["watch", url],
    ] {
        let error = error_of(&command);
        assert!(error.contains("wrong user name or password"), "{error}");
        assert!(!error.contains("not-the-password"), "{error}");
    }
}

#[test]
fn an_unknown_vhost_is_named_with_the_ones_there_are() {
    let vhost = common::unique("no-such-vhost");
    let url = common::vhost::url(&vhost);
    let all = common::rabbitmq_url();
    for command in [
        vec!["snapshot", &all, "--vhost", &vhost],
        vec!["tap", &url],
        vec!["record", &url, "-o", "/dev/null"],
        vec!["watch", &url],
    ] {
        let error = error_of(&command);
        assert!(
            error.contains(&format!("there is no vhost '{vhost}'")),
            "{error}"
        );
    }
    let error = error_of(&["tap", &url]);
    assert!(error.contains("'/'"), "the vhosts there are: {error}");
}

#[test]
fn an_unreachable_management_api_says_what_is_needed() {
    let port = free_port();
    let management = format!("http://127.0.0.1:{port}");
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", free_port());
    for command in ["snapshot", "tap", "record", "watch"] {
        let mut args = vec![command, &url, "--management", &management];
        if command == "record" {
            args.extend(["-o", "/dev/null"]);
        }
        let error = error_of(&args);
        assert!(error.contains("connection refused"), "{error}");
        assert!(error.contains("management plugin"), "{error}");
    }
}

#[test]
fn a_missing_file_is_named() {
    let error = error_of(&["replay", "/no/such/trace.yaml"]);
    assert!(error.contains("/no/such/trace.yaml"), "{error}");
    assert!(error.contains("No such file"), "{error}");
}

#[test]
fn lessons_are_listed_from_any_directory() {
    // The shipped lessons, found from a directory that has none.
    let out = run(&["lessons", "list"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("topic-exchange"), "{stdout}");
}

#[test]
fn view_options_before_a_command_are_refused_not_ignored() {
    // Before, `rabbitscope --listen ADDR learn` served the lesson on the default 5673.
    let listen = format!("127.0.0.1:{}", free_port());
    let error = error_of(&["--listen", &listen, "learn"]);
    assert!(
        error.contains("--listen before `learn` would be ignored"),
        "{error}"
    );
    let error = error_of(&["--classroom", "lessons", "list"]);
    assert!(error.contains("--classroom before `lessons`"), "{error}");
    // Options every command shares still go anywhere.
    let out = run(&["--lang", "en", "lessons", "list"]);
    assert!(out.status.success(), "{out:?}");
}
