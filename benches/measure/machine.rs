//! The machine and the code a measurement ran on, for the line every report starts with.

use std::process::Command;

pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory: String,
    pub kernel: String,
    pub rustc: String,
    /// The commit measured, with ` (modified)` when the work tree differs from it.
    pub commit: String,
    pub load_start: String,
    pub load_end: String,
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "unknown CPU".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| format!("{:.0} GiB", kb / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            memory,
            kernel,
            rustc: output("rustc", &["-V"]),
            commit: commit(),
            load_start: loadavg(),
            load_end: String::new(),
        }
    }

    /// One line: cores, CPU, memory, kernel, compiler, commit and the load average now.
    pub fn line(&self) -> String {
        format!(
            "machine: {} cores, {}, {} memory, Linux {}, {}; commit {}; load average {}",
            self.cores,
            self.cpu,
            self.memory,
            self.kernel,
            self.rustc,
            self.commit,
            loadavg()
        )
    }
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The checkout's HEAD, short, as `git log --oneline` shows it.
fn commit() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let head = output("git", &["-C", dir, "rev-parse", "--short", "HEAD"]);
    if head.is_empty() {
        return "unknown".into();
    }
    let changes = output(
        "git",
        &["-C", dir, "status", "--porcelain", "--untracked-files=no"],
    );
    if changes.is_empty() {
        head
    } else {
        format!("{head} (modified)")
    }
}

/// A command's standard output, trimmed; empty when it cannot run.
fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
