//! What /proc tells about a broker process: its CPU time and its resident memory, for the
//! embedded broker and for RabbitMQ's `beam.smp` alike.

use std::path::Path;
use std::time::Duration;

use super::Error;

/// utime + stime of a /proc `stat` file (a process's or one thread's).
pub fn stat_cpu(path: &Path) -> Option<Duration> {
    let text = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// CPU time of a whole process, all its threads.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    stat_cpu(Path::new(&format!("/proc/{pid}/stat")))
}

/// Resident memory of a process (VmRSS), in bytes.
pub fn rss(pid: u32) -> Result<u64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .ok_or("no VmRSS")?
        .parse()?;
    Ok(kib * 1024)
}

/// RSS once it has stopped moving (garbage collectors and allocators settle): two readings
/// half a second apart within 1 MiB, or the last of 20.
pub async fn settled_rss(pid: u32) -> Result<u64, Error> {
    let mut last = rss(pid)?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = rss(pid)?;
        if now.abs_diff(last) < 1024 * 1024 {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// The local RabbitMQ's Erlang VM (`beam.smp`), when it runs on this machine.
pub fn beam_pid() -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        (comm.trim_end() == "beam.smp")
            .then(|| e.file_name().to_str()?.parse().ok())
            .flatten()
    })
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
