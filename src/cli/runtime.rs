//! The process around a command: its tokio runtimes, its open-files limit and its stop signals.
//!
//! Every runtime the commands use is built by [`runtime`], so a newcomer finds in one place
//! which threads exist and why. This file imports nothing of the library but `stop`.

use color_eyre::eyre::Result;

/// The runtimes the commands run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// The view's: the main thread alone, so drawing never waits for a worker.
    View,
    /// The embedded broker's (and the lesson runner's, and remote polling's): worker threads
    /// of lower priority, so a key is drawn promptly however busy the broker is (the view
    /// itself needs little CPU).
    Broker,
    /// A command without a view (`broker`, `snapshot`, `tap`, `record`, `lessons check`):
    /// tokio's default worker threads.
    Plain,
}

/// Builds the runtime of that kind.
pub fn runtime(threads: Threads) -> std::io::Result<tokio::runtime::Runtime> {
    match threads {
        Threads::View => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Threads::Broker => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("broker")
            .on_thread_start(lower_this_thread_priority)
            .build(),
        Threads::Plain => tokio::runtime::Runtime::new(),
    }
}

/// How much nicer than the view the broker's threads are (0 to 19; higher yields more).
const BROKER_NICE: libc::c_int = 5;

/// Raises the calling thread's nice value. Linux keeps one per thread, and raising it needs no
/// privilege; if it fails the thread simply keeps the normal priority.
fn lower_this_thread_priority() {
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
    unsafe {
        let thread = libc::gettid() as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, thread, BROKER_NICE);
    }
}

/// Every client connection is an open file. Many systems start programs with a soft limit of
/// 1,024 (RabbitMQ started that way takes only 832 sockets); the hard limit is usually far
/// higher, and raising the soft one to it needs no privilege.
pub fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the one struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// A future that completes on SIGINT, SIGTERM, SIGHUP or SIGQUIT; the handlers are installed
/// at once (inside a runtime).
pub fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    Ok(rabbitscope::stop::stop_signal()?)
}
