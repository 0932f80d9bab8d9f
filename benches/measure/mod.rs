//! What the measurement programs in `benches/` share: telling `cargo bench` (which measures)
//! from `cargo test --all-targets` (which only runs each bench once, as a test, and must not
//! sit through a measurement of minutes that may need RabbitMQ); the machine line of their
//! reports; the embedded broker as a process of its own; what /proc says of a broker; a
//! publisher with confirms; medians.
//!
//! Each program includes this with `mod measure;`; it imports nothing of the crate. Not every
//! program uses every piece, hence the `dead_code` allowances.

#[allow(dead_code)]
pub mod embedded;
#[allow(dead_code)]
pub mod machine;
#[allow(dead_code)]
pub mod process;
#[allow(dead_code)]
pub mod publisher;
#[allow(dead_code)]
pub mod summary;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The program's arguments when `cargo bench --bench NAME [-- ARGS]` runs it (cargo adds
/// `--bench`, dropped here). None when `cargo test` runs it: it says so and the program returns
/// at once.
pub fn arguments(name: &str) -> Option<Vec<String>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("{name} is a measurement: run it with `cargo bench --bench {name}`");
        return None;
    }
    Some(args.into_iter().filter(|a| a != "--bench").collect())
}

/// A name no other run uses, for queues and directories: `rabbitscope.WHAT.PID.NANOS.N`.
#[allow(dead_code)]
pub fn unique(what: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "rabbitscope.{what}.{}.{nanos}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
