//! The rabbitscope binary as a child process: [`rabbitscope`] for any command, and
//! [`spawn_broker`] for `rabbitscope broker`, with stderr piped and drained on a thread (so the
//! broker never blocks on a full pipe) and the addresses read from the line it announces them
//! with. (The view in a pseudo-terminal is `pty.rs`'s.)

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// The binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_rabbitscope");

/// `rabbitscope`, to be given its arguments and started.
pub fn rabbitscope() -> Command {
    Command::new(BIN)
}

/// A started broker process.
pub struct BrokerChild {
    pub child: Child,
    /// Every stderr line up to and including the announcement.
    pub before: Vec<String>,
    /// The line that announced the addresses (`broker listening ... address=...`).
    pub announced: String,
    /// Later stderr lines, as the broker writes them.
    pub lines: Receiver<String>,
}

impl BrokerChild {
    /// The value of `name` in the announcement, e.g. `field("address=")`.
    pub fn field(&self, name: &str) -> String {
        self.announced
            .split_whitespace()
            .find_map(|word| word.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.announced))
            .to_string()
    }
}

/// Spawns `command` (a `rabbitscope broker ...`) and waits until it announces its addresses.
pub fn spawn_broker(command: &mut Command) -> BrokerChild {
    let mut child = command
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rabbitscope broker");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // Keep reading after the test stops listening: the pipe must not fill up.
            let _ = tx.send(line);
        }
    });
    let mut before = Vec::new();
    loop {
        let Ok(line) = lines.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the broker announced no address; it said {before:#?}");
        };
        let announced = line.contains("broker listening");
        before.push(line.clone());
        if announced {
            return BrokerChild {
                child,
                before,
                announced: line,
                lines,
            };
        }
    }
}
