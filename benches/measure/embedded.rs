//! The embedded broker as its own process: `rabbitscope broker` (the binary cargo builds with
//! the benchmark, in the same profile) on a free port, so /proc shows its CPU time and memory
//! apart from the clients'.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::Error;

/// A running `rabbitscope broker`; stopped (and its data directory removed) when dropped.
pub struct EmbeddedBroker {
    child: Child,
    /// `host:port` of its AMQP listener.
    pub address: String,
    data_dir: Option<PathBuf>,
}

impl EmbeddedBroker {
    /// Keeps nothing on disk (`--transient`).
    pub fn transient() -> Result<EmbeddedBroker, Error> {
        EmbeddedBroker::start(None)
    }

    /// Keeps a fresh data directory under the system temp directory, as a deployed broker
    /// does: persistent messages and durable queues wait for the disk.
    pub fn on_disk() -> Result<EmbeddedBroker, Error> {
        let dir = std::env::temp_dir().join(super::unique("bench-data"));
        EmbeddedBroker::start(Some(dir))
    }

    fn start(data_dir: Option<PathBuf>) -> Result<EmbeddedBroker, Error> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rabbitscope"));
        command.args(["broker", "--listen", "127.0.0.1:0"]);
        match &data_dir {
            Some(dir) => command.arg("--data-dir").arg(dir),
            None => command.arg("--transient"),
        };
        let mut child = command.stderr(Stdio::piped()).spawn()?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        // The announcement ends with the plain address (`... address=127.0.0.1:PORT`).
        let address = loop {
            let Some(line) = lines.next() else {
                let _ = child.wait();
                return Err("the broker stopped before it listened".into());
            };
            let line = line?;
            if !line.contains("address=") {
                continue;
            }
            if let Some(address) = line.rsplit("address=").next() {
                break address
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
            }
        };
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        Ok(EmbeddedBroker {
            child,
            address,
            data_dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its `amqp://` URL for guest on vhost `/`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.address)
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        // SIGTERM: the broker stops as on a signal from a service manager.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
