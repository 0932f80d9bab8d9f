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
    /// The `broker` command's: the broker alone, with as many worker threads as
    /// [`broker_workers`] gives.
    Server,
    /// A command without a view (`snapshot`, `tap`, `record`, `lessons check`): tokio's default
    /// worker threads.
    Plain,
}

/// Builds the runtime of that kind.
pub fn runtime(threads: Threads) -> std::io::Result<tokio::runtime::Runtime> {
    match threads {
        Threads::View => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Threads::Broker => broker_workers(&mut tokio::runtime::Builder::new_multi_thread())
            .enable_all()
            .thread_name("broker")
            .on_thread_start(lower_this_thread_priority)
            .build(),
        Threads::Server => broker_workers(&mut tokio::runtime::Builder::new_multi_thread())
            .enable_all()
            .build(),
        Threads::Plain => tokio::runtime::Runtime::new(),
    }
}

/// Gives a runtime that serves AMQP clients half the cores (at least one) unless
/// `TOKIO_WORKER_THREADS` says otherwise. Its clients usually run on the same machine (a
/// student's programs, the lesson runner, the view, a benchmark), and a broker with a worker
/// per core takes cores from them: every wake-up of a broker thread then moves a client thread
/// to another core. On 2 cores, one publisher and one consumer with confirms went 7 to 34 %
/// faster with one worker than with two (BENCHMARKS.md, section 7).
fn broker_workers(builder: &mut tokio::runtime::Builder) -> &mut tokio::runtime::Builder {
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        builder.worker_threads(cores.div_ceil(2));
    }
    builder
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
