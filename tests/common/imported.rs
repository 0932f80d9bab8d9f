//! A definitions document imported into RabbitMQ with `rabbitmqctl import_definitions`, and its
//! vhosts and users deleted again when the guard is dropped (the test passed or not).

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

pub struct Imported {
    vhosts: Vec<String>,
    users: Vec<String>,
}

/// The `name` of each entry of `document[list]`.
fn names(document: &Value, list: &str) -> Vec<String> {
    document[list]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry["name"].as_str().map(str::to_string))
        .collect()
}

impl Imported {
    /// Imports `document` into the RabbitMQ on this machine; panics unless it takes it.
    pub fn new(document: &Value) -> Imported {
        let mut child = Command::new("rabbitmqctl")
            .args(["import_definitions", "--format", "json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rabbitmqctl runs");
        let input = document.to_string();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "rabbitmqctl import_definitions: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Imported {
            vhosts: names(document, "vhosts"),
            users: names(document, "users"),
        }
    }
}

impl Drop for Imported {
    fn drop(&mut self) {
        let vhosts = self.vhosts.iter().map(|v| ["delete_vhost", v.as_str()]);
        let users = self.users.iter().map(|u| ["delete_user", u.as_str()]);
        // In parallel: each rabbitmqctl takes about a second to start.
        let running: Vec<_> = vhosts
            .chain(users)
            .filter_map(|args| {
                Command::new("rabbitmqctl")
                    .args(args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .ok()
            })
            .collect();
        for mut child in running {
            let _ = child.wait();
        }
    }
}
