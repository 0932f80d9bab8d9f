//! How the live view behaves as a program: how fast it answers a key while its broker is busy,
//! what it costs the broker, what it uses when idle, and whether its memory stays bounded.
//!
//! Everything runs against the real release binary (`target/release/rabbitscope`, or the path in
//! `RABBITSCOPE_BIN`), the view in a 160x45 pseudo-terminal with TERM=xterm-256color whose output
//! a reader thread feeds to a vt100 parser as it arrives, and the clients are lapin on their own
//! tokio runtime in this process (2 worker threads; `VIEW_LATENCY_CLIENT_THREADS` changes it):
//!
//! 1. Key to screen under load: a publisher (one connection, default exchange, 64-byte bodies)
//!    paced to 20,000 msg/s in bursts every 10 ms, and a no-ack consumer on the same queue. While
//!    they run, `?` opens the help overlay and Esc closes it, again and again; each latency is
//!    the time from writing the key to the pseudo-terminal to the first chunk of output after
//!    which the parsed screen shows (or no longer shows) the overlay's title. The reader thread
//!    checks the screen after every chunk and keeps that chunk's arrival time. The same is done
//!    first with no traffic, and last with the client threads at nice 19. Where the time went is
//!    read from /proc: CPU of each process, and the view's event-loop thread's time on a CPU and
//!    waiting for one during each key.
//! 2. Broker throughput with the view against headless (`rabbitscope broker`): the publisher
//!    unthrottled, awaiting each `basic_publish` (window 1), N messages, and a no-ack consumer;
//!    from the first publish to the N-th delivery. A fresh server per run after a warm-up, the
//!    two kinds alternated, the reader thread draining the view's output all along.
//! 3. Idle CPU: the view with no traffic; utime+stime from /proc/<pid>/stat over the interval.
//! 4. Memory: VmRSS of the view before and after every quarter of 1,000,000 messages pushed
//!    through it at full speed with the no-ack consumer (the publisher pausing whenever 10,000
//!    are undelivered), then the same for a headless broker.
//!
//! Usage: `cargo bench --bench view_latency`
//! (`-- --quick` for a short run with small numbers; `-- --watch URL` only the key test, on
//! `rabbitscope watch URL` reading a remote RabbitMQ every 2 s; `-- --out FILE` writes the
//! report there instead of VIEW_BENCHMARKS.md; `--no-report` writes none). Quick runs write no report unless
//! `--out` is given. Every child process is killed when the benchmark ends, on errors and panics
//! too, and every wait has a timeout. Run it on a quiet machine: the report gives the CPU that
//! other processes used during each measurement.

mod measure;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use futures_lite::stream::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use measure::machine::{loadavg, Machine};
use measure::summary::thousands;
use portable_pty::{native_pty_system, CommandBuilder, PtySize};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = Error> = std::result::Result<T, E>;

const ROWS: u16 = 45;
const COLS: u16 = 160;
const BODY_SIZE: usize = 64;
/// The help overlay's title; `?` opens it, Esc closes it.
const HELP_TITLE: &str = "keys (Esc closes)";
/// How long a key may take to show before it counts as lost.
const KEY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one client operation (connect, declare, close) may take.
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// Everything from this line on in the report is kept when the benchmark rewrites it.
const NOTES_MARKER: &str =
    "<!-- Notes below this line are kept when the benchmark rewrites the file. -->";
const LATENCY_TARGET_MS: f64 = 100.0;
/// In the memory runs, publishing waits whenever this many messages are not yet delivered, so
/// RSS shows what the server keeps, not a queue backlog.
const MEMORY_MAX_LAG: u64 = 10_000;
const SLOWDOWN_TARGET_PCT: f64 = 10.0;
const IDLE_TARGET_PCT: f64 = 1.0;

struct Config {
    quick: bool,
    /// `--watch URL`: only the key test, on `rabbitscope watch URL` (a remote RabbitMQ whose
    /// topology is read again every `--interval`), instead of everything on the embedded broker.
    watch: Option<String>,
    /// Open/close cycles of the help overlay under load.
    presses: usize,
    /// Open/close cycles with no traffic.
    idle_presses: usize,
    press_gap: Duration,
    rate: u64,
    burst_every: Duration,
    load_warmup: Duration,
    throughput_messages: u64,
    throughput_warmup: u64,
    repetitions: usize,
    idle_for: Duration,
    memory_messages: u64,
    report: Option<PathBuf>,
}

impl Config {
    fn from_args(args: Vec<String>) -> Result<Config> {
        let quick = args.iter().any(|a| a == "--quick");
        let mut report =
            (!quick).then(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("VIEW_BENCHMARKS.md"));
        let mut watch = None;
        let mut i = 0;
        while i < args.len() {
            match args[i].as_str() {
                "--quick" => {}
                "--watch" => {
                    i += 1;
                    watch = Some(args.get(i).ok_or("--watch needs an AMQP URL")?.clone());
                    report = None;
                }
                "--no-report" => report = None,
                "--out" => {
                    i += 1;
                    report = Some(PathBuf::from(args.get(i).ok_or("--out needs a file")?));
                }
                other => return Err(format!("unknown argument {other}").into()),
            }
            i += 1;
        }
        Ok(if quick {
            Config {
                quick,
                watch,
                presses: 10,
                idle_presses: 5,
                press_gap: Duration::from_millis(200),
                rate: 20_000,
                burst_every: Duration::from_millis(10),
                load_warmup: Duration::from_secs(1),
                throughput_messages: 10_000,
                throughput_warmup: 2_000,
                repetitions: 1,
                idle_for: Duration::from_secs(3),
                memory_messages: 100_000,
                report,
            }
        } else {
            Config {
                quick,
                watch,
                presses: 50,
                idle_presses: 20,
                press_gap: Duration::from_millis(200),
                rate: 20_000,
                burst_every: Duration::from_millis(10),
                load_warmup: Duration::from_secs(3),
                throughput_messages: 100_000,
                throughput_warmup: 10_000,
                repetitions: 3,
                idle_for: Duration::from_secs(20),
                memory_messages: 1_000_000,
                report,
            }
        })
    }

    fn burst(&self) -> u64 {
        (self.rate as f64 * self.burst_every.as_secs_f64()).round() as u64
    }
}

fn main() -> Result<()> {
    let Some(args) = measure::arguments("view_latency") else {
        return Ok(());
    };
    let config = Config::from_args(args)?;
    let binary = binary()?;
    let machine = Machine::read();
    println!(
        "binary {}\nmachine: {} cores, {}; load average at start {}",
        binary.display(),
        machine.cores,
        machine.cpu,
        machine.load_start
    );
    if machine
        .load_start
        .split_whitespace()
        .next()
        .and_then(|l| l.parse::<f64>().ok())
        .unwrap_or(0.0)
        > 1.0
    {
        println!("warning: the machine is busy; the figures will be noisy");
    }
    let client_threads = std::env::var("VIEW_LATENCY_CLIENT_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_threads)
        .thread_name("client")
        .enable_all()
        .build()?;

    if let Some(url) = &config.watch {
        return measure_watch(&config, &binary, url);
    }
    let latency = measure_latency(&config, &binary, &rt)?;
    let throughput = measure_throughput(&config, &binary, &rt)?;
    let idle = measure_idle(&config, &binary)?;
    let memory = measure_memory(&config, &binary, &rt)?;
    rt.shutdown_timeout(Duration::from_secs(2));

    let mut machine = machine;
    machine.load_end = loadavg();
    let report = Report {
        config: &config,
        machine,
        latency,
        throughput,
        idle,
        memory,
    };
    let table = report.table();
    println!("\n{table}");
    if let Some(path) = &config.report {
        // Notes written by hand below the marker survive a rerun.
        let kept = std::fs::read_to_string(path)
            .ok()
            .and_then(|old| old.find(NOTES_MARKER).map(|i| old[i..].to_string()))
            .unwrap_or_else(|| format!("{NOTES_MARKER}\n"));
        std::fs::write(path, format!("{}\n{kept}", report.markdown()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The binary and the machine
// ---------------------------------------------------------------------------------------------

/// `RABBITSCOPE_BIN`, or the `rabbitscope` cargo built with this benchmark (target/release).
fn binary() -> Result<PathBuf> {
    let path = match std::env::var_os("RABBITSCOPE_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_rabbitscope")),
    };
    if !path.is_file() {
        return Err(format!(
            "{} not found: run `cargo build --release` first",
            path.display()
        )
        .into());
    }
    // A stale binary would measure old code: compare with the newest source file.
    let built = std::fs::metadata(&path)?.modified()?;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    if let Some(newest) = newest_mtime(&src) {
        if newest > built {
            println!(
                "warning: {} is older than the sources; run `cargo build --release`",
                path.display()
            );
        }
    }
    Ok(path)
}

fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let t = if path.is_dir() {
            newest_mtime(&path)
        } else {
            entry.metadata().ok()?.modified().ok()
        };
        newest = newest.max(t);
    }
    newest
}

// ---------------------------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------------------------

/// utime + stime of a process, in clock ticks (USER_HZ, 100 a second on Linux).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: state is field 3, utime 14 and stime 15, so 11 and 12 here.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

const TICK: Duration = Duration::from_millis(10);

/// (time on CPU, time runnable but waiting for a CPU) of all live threads of a process, in
/// nanoseconds, from their schedstat.
fn sched_ns(pid: u32) -> Option<(u64, u64)> {
    let (mut on_cpu, mut waiting) = (0, 0);
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let text = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        let mut fields = text
            .split_whitespace()
            .map(|n| n.parse::<u64>().unwrap_or(0));
        on_cpu += fields.next().unwrap_or(0);
        waiting += fields.next().unwrap_or(0);
    }
    Some((on_cpu, waiting))
}

fn cpu_ns(pid: u32) -> Option<u64> {
    sched_ns(pid).map(|(on_cpu, _)| on_cpu)
}

/// A `kB` line of /proc/<pid>/status, in KiB.
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Voluntary context switches of all live threads of a process: how often they went to sleep
/// waiting for something (here: for data on a socket, or for another thread).
fn sleeps(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .filter_map(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum()
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:").unwrap_or(0)
}

/// (on CPU, waiting for a CPU) of one thread, in nanoseconds.
fn thread_sched_ns(pid: u32, tid: u32) -> (u64, u64) {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).unwrap_or_default();
    let mut fields = text
        .split_whitespace()
        .map(|n| n.parse::<u64>().unwrap_or(0));
    (fields.next().unwrap_or(0), fields.next().unwrap_or(0))
}

/// Where the machine's CPU went over a stretch of time: the server under test, this process
/// (clients and terminal reader), and everything else.
struct CpuWindow {
    server: u32,
    start: Instant,
    server_ticks: u64,
    own_ticks: u64,
    machine: (u64, u64, u64),
}

/// Percent of one core over a [`CpuWindow`].
#[derive(Clone, Copy, Default)]
struct CpuShares {
    server: f64,
    clients: f64,
    /// Other processes: busy time of the machine less the two above.
    others: f64,
    /// The whole machine, percent of all cores.
    machine_busy: f64,
    /// Stolen by the hypervisor, percent of one core.
    stolen: f64,
}

impl CpuWindow {
    fn start(server: u32) -> CpuWindow {
        CpuWindow {
            server,
            start: Instant::now(),
            server_ticks: cpu_ticks(server).unwrap_or(0),
            own_ticks: cpu_ticks(std::process::id()).unwrap_or(0),
            machine: machine_jiffies(),
        }
    }

    fn finish(&self) -> CpuShares {
        let over = self.start.elapsed();
        let server = cpu_ticks(self.server).unwrap_or(0) - self.server_ticks;
        let own = cpu_ticks(std::process::id()).unwrap_or(0) - self.own_ticks;
        let machine = machine_jiffies();
        let busy = machine.0 - self.machine.0;
        let stolen = machine.2 - self.machine.2;
        let total = (machine.1 - self.machine.1).max(1);
        CpuShares {
            server: cpu_pct(server, over),
            clients: cpu_pct(own, over),
            others: cpu_pct(busy.saturating_sub(server + own + stolen), over),
            machine_busy: busy as f64 / total as f64 * 100.0,
            stolen: cpu_pct(stolen, over),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Servers under test, killed when dropped
// ---------------------------------------------------------------------------------------------

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until something accepts connections on `address`.
fn wait_for_port(address: &str, within: Duration) -> Result<()> {
    let start = Instant::now();
    let addr: std::net::SocketAddr = address.parse()?;
    loop {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if start.elapsed() > within {
            return Err(format!("nothing listens on {address} after {within:?}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A view whose output is checked for this text after every chunk.
struct Watch {
    needle: &'static str,
    present: bool,
    met: Option<Instant>,
    /// The view's event-loop thread's (on CPU, waiting for a CPU) when it was met.
    ui_at_met: (u64, u64),
    /// The machine's stolen time when it was met, in jiffies.
    steal_at_met: u64,
}

/// One key: its latency and what the view's event-loop thread did meanwhile.
#[derive(Clone, Copy)]
struct KeyTiming {
    latency: Duration,
    on_cpu: Duration,
    waiting: Duration,
    /// Time the hypervisor ran something else on this machine's CPUs meanwhile (both
    /// together, 10 ms resolution).
    stolen: Duration,
}

struct ScreenState {
    parser: vt100::Parser,
    /// Bytes the view wrote.
    bytes: u64,
    /// Time this process spent parsing them.
    parse_time: Duration,
    watch: Option<Watch>,
    /// Arrival times of output chunks, while recording.
    arrivals: Option<Vec<Instant>>,
    closed: bool,
}

struct Screen {
    /// The view's pid, which is also the id of its main thread (the event loop).
    pid: u32,
    state: Mutex<ScreenState>,
    changed: Condvar,
}

impl Screen {
    fn text(&self) -> String {
        self.state.lock().unwrap().parser.screen().contents()
    }

    fn bytes(&self) -> u64 {
        self.state.lock().unwrap().bytes
    }

    fn parse_time(&self) -> Duration {
        self.state.lock().unwrap().parse_time
    }

    fn record_arrivals(&self, on: bool) -> Vec<Instant> {
        let mut state = self.state.lock().unwrap();
        let taken = state.arrivals.take().unwrap_or_default();
        if on {
            state.arrivals = Some(Vec::new());
        }
        taken
    }

    /// Reads the pseudo-terminal until it closes, keeping the screen up to date.
    fn drain(self: Arc<Self>, mut reader: Box<dyn Read + Send>) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let arrived = Instant::now();
            let mut state = self.state.lock().unwrap();
            let ScreenState {
                parser,
                bytes,
                parse_time,
                watch,
                arrivals,
                ..
            } = &mut *state;
            if let Some(a) = arrivals {
                a.push(arrived);
            }
            parser.process(&buf[..n]);
            *bytes += n as u64;
            if let Some(w) = watch {
                if w.met.is_none() && parser.screen().contents().contains(w.needle) == w.present {
                    w.met = Some(arrived);
                    w.ui_at_met = thread_sched_ns(self.pid, self.pid);
                    w.steal_at_met = machine_jiffies().2;
                }
            }
            *parse_time += arrived.elapsed();
            drop(state);
            self.changed.notify_all();
        }
        self.state.lock().unwrap().closed = true;
        self.changed.notify_all();
    }
}

/// The view in a pseudo-terminal. Dropping it kills the process.
struct View {
    child: Box<dyn portable_pty::Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    _master: Box<dyn portable_pty::MasterPty + Send>,
    screen: Arc<Screen>,
    pid: u32,
    address: String,
}

impl View {
    fn start(binary: &Path) -> Result<View> {
        let port = free_port()?;
        let address = format!("127.0.0.1:{port}");
        let mut view = View::spawn(binary, &["--listen", &address])?;
        view.address = address.clone();
        view.wait_for(&[address.as_str(), "? help"], START_TIMEOUT)?;
        wait_for_port(&view.address, START_TIMEOUT)?;
        // The view opens with the lesson menu over it; Esc closes it, as a user exploring
        // freely would.
        view.wait_for(&["lessons"], START_TIMEOUT)?;
        view.writer.write_all(b"\x1b")?;
        view.writer.flush()?;
        std::thread::sleep(Duration::from_millis(300));
        Ok(view)
    }

    /// The binary with `args` in a pseudo-terminal, its output read and parsed all along.
    fn spawn(binary: &Path, args: &[&str]) -> Result<View> {
        let pair = native_pty_system().openpty(PtySize {
            rows: ROWS,
            cols: COLS,
            pixel_width: 0,
            pixel_height: 0,
        })?;
        let mut cmd = CommandBuilder::new(binary);
        cmd.args(args);
        cmd.arg("--transient");
        cmd.env("TERM", "xterm-256color");
        cmd.env_remove("NO_COLOR");
        let child = pair.slave.spawn_command(cmd)?;
        drop(pair.slave);
        let pid = child.process_id().ok_or("no pid for the view")?;
        let reader = pair.master.try_clone_reader()?;
        let writer = pair.master.take_writer()?;
        let screen = Arc::new(Screen {
            pid,
            state: Mutex::new(ScreenState {
                parser: vt100::Parser::new(ROWS.try_into().unwrap(), COLS.try_into().unwrap(), 0),
                bytes: 0,
                parse_time: Duration::ZERO,
                watch: None,
                arrivals: None,
                closed: false,
            }),
            changed: Condvar::new(),
        });
        let drainer = screen.clone();
        std::thread::Builder::new()
            .name("pty-reader".into())
            .spawn(move || drainer.drain(reader))?;
        Ok(View {
            child,
            writer,
            _master: pair.master,
            screen,
            pid,
            address: String::new(),
        })
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.address)
    }

    /// Waits until the screen shows every one of `needles`.
    fn wait_for(&mut self, needles: &[&str], within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        let mut state = self.screen.state.lock().unwrap();
        loop {
            let text = state.parser.screen().contents();
            if needles.iter().all(|n| text.contains(n)) {
                return Ok(());
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                drop(state);
                let exited = self.child.try_wait().ok().flatten();
                return Err(format!(
                    "the view never showed {needles:?} (exited: {exited:?}):\n{text}"
                )
                .into());
            }
            state = self
                .screen
                .changed
                .wait_timeout(state, (deadline - now).min(Duration::from_millis(100)))
                .unwrap()
                .0;
        }
    }

    /// Writes `key` and returns how long until the screen shows (`present`) or stops showing
    /// `needle`; `None` if that took longer than [`KEY_TIMEOUT`].
    fn key_latency(
        &mut self,
        key: &[u8],
        needle: &'static str,
        present: bool,
    ) -> Result<Option<KeyTiming>> {
        {
            let mut state = self.screen.state.lock().unwrap();
            let shown = state.parser.screen().contents().contains(needle);
            if shown == present {
                return Err(format!(
                    "the screen already {} {needle:?} before the key",
                    if present { "shows" } else { "lacks" }
                )
                .into());
            }
            state.watch = Some(Watch {
                needle,
                present,
                met: None,
                ui_at_met: (0, 0),
                steal_at_met: 0,
            });
        }
        let steal_before = machine_jiffies().2;
        let ui_before = thread_sched_ns(self.pid, self.pid);
        let sent = Instant::now();
        self.writer.write_all(key)?;
        self.writer.flush()?;
        let deadline = sent + KEY_TIMEOUT;
        let mut state = self.screen.state.lock().unwrap();
        loop {
            if let Some(w) = state.watch.take_if(|w| w.met.is_some()) {
                let ns = |a: u64, b: u64| Duration::from_nanos(a.saturating_sub(b));
                return Ok(Some(KeyTiming {
                    latency: w.met.unwrap_or(sent).saturating_duration_since(sent),
                    on_cpu: ns(w.ui_at_met.0, ui_before.0),
                    waiting: ns(w.ui_at_met.1, ui_before.1),
                    stolen: TICK * w.steal_at_met.saturating_sub(steal_before) as u32,
                }));
            }
            if state.closed {
                return Err("the view closed its terminal".into());
            }
            let now = Instant::now();
            if now >= deadline {
                state.watch = None;
                return Ok(None);
            }
            state = self
                .screen
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap()
                .0;
        }
    }
}

impl Drop for View {
    fn drop(&mut self) {
        // SIGHUP, then SIGKILL if it is still there after a short grace.
        let _ = self.child.kill();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("warning: view {} did not exit", self.pid);
    }
}

/// `rabbitscope broker`, headless. It too runs in a pseudo-terminal of its own, whose output
/// (warnings at most) is read and dropped: so it gets a hangup and ends even if this process is
/// killed outright. Dropping it kills the process.
struct Headless {
    child: Box<dyn portable_pty::Child + Send + Sync>,
    _master: Box<dyn portable_pty::MasterPty + Send>,
    pid: u32,
    address: String,
}

impl Headless {
    fn start(binary: &Path) -> Result<Headless> {
        let address = format!("127.0.0.1:{}", free_port()?);
        let pair = native_pty_system().openpty(PtySize {
            rows: ROWS,
            cols: COLS,
            pixel_width: 0,
            pixel_height: 0,
        })?;
        let mut cmd = CommandBuilder::new(binary);
        cmd.args(["broker", "--transient", "--listen", &address]);
        cmd.env("RUST_LOG", "warn");
        let child = pair.slave.spawn_command(cmd)?;
        drop(pair.slave);
        let pid = child.process_id().ok_or("no pid for the broker")?;
        let mut reader = pair.master.try_clone_reader()?;
        std::thread::Builder::new()
            .name("broker-output".into())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
            })?;
        let mut headless = Headless {
            child,
            _master: pair.master,
            pid,
            address,
        };
        if let Err(e) = wait_for_port(&headless.address, START_TIMEOUT) {
            let exited = headless.child.try_wait().ok().flatten();
            return Err(format!("{e} (broker exited: {exited:?})").into());
        }
        Ok(headless)
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.address)
    }
}

impl Drop for Headless {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("warning: broker {} did not exit", self.pid);
    }
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

async fn within<T, E: Into<Error>>(
    what: &str,
    limit: Duration,
    future: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T> {
    match tokio::time::timeout(limit, future).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(format!("{what} took longer than {limit:?}").into()),
    }
}

/// A publisher connection and a no-ack consumer connection on one fresh queue.
struct Traffic {
    queue: String,
    publisher: Connection,
    channel: Channel,
    consumer_conn: Connection,
    /// Deliveries received so far.
    received: Arc<AtomicU64>,
    /// When the latest delivery arrived, in nanoseconds since `base`.
    last_received: Arc<AtomicU64>,
    base: Instant,
    consumer: tokio::task::JoinHandle<()>,
}

impl Traffic {
    async fn open(url: &str) -> Result<Traffic> {
        static RUN: AtomicU64 = AtomicU64::new(0);
        let queue = format!(
            "view-latency.{}.{}",
            std::process::id(),
            RUN.fetch_add(1, Ordering::Relaxed)
        );
        let properties = ConnectionProperties::default();
        let publisher = within(
            "connect",
            OP_TIMEOUT,
            Connection::connect(url, properties.clone()),
        )
        .await?;
        let channel = within("channel.open", OP_TIMEOUT, publisher.create_channel()).await?;
        within(
            "queue.declare",
            OP_TIMEOUT,
            channel.queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        let consumer_conn =
            within("connect", OP_TIMEOUT, Connection::connect(url, properties)).await?;
        let con_channel =
            within("channel.open", OP_TIMEOUT, consumer_conn.create_channel()).await?;
        let mut consumer = within(
            "basic.consume",
            OP_TIMEOUT,
            con_channel.basic_consume(
                queue.as_str().into(),
                "view-latency".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            ),
        )
        .await?;
        let received = Arc::new(AtomicU64::new(0));
        let last_received = Arc::new(AtomicU64::new(0));
        let base = Instant::now();
        let consumer = {
            let (received, last_received) = (received.clone(), last_received.clone());
            tokio::spawn(async move {
                while let Some(Ok(delivery)) = consumer.next().await {
                    debug_assert_eq!(delivery.data.len(), BODY_SIZE);
                    last_received.store(base.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    received.fetch_add(1, Ordering::Release);
                }
            })
        };
        Ok(Traffic {
            queue,
            publisher,
            channel,
            consumer_conn,
            received,
            last_received,
            base,
            consumer,
        })
    }

    fn received(&self) -> u64 {
        self.received.load(Ordering::Acquire)
    }

    /// Waits until `n` deliveries have arrived and returns when the n-th did.
    async fn wait_received(&self, n: u64, limit: Duration) -> Result<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            if self.received() >= n {
                let at = self.last_received.load(Ordering::Relaxed);
                return Ok(self.base + Duration::from_nanos(at));
            }
            if Instant::now() > deadline {
                return Err(
                    format!("only {} of {n} deliveries after {limit:?}", self.received()).into(),
                );
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
    }

    async fn close(self) {
        self.consumer.abort();
        let _ = tokio::time::timeout(
            OP_TIMEOUT,
            self.channel
                .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default()),
        )
        .await;
        let _ =
            tokio::time::timeout(OP_TIMEOUT, self.consumer_conn.close(200, "done".into())).await;
        let _ = tokio::time::timeout(OP_TIMEOUT, self.publisher.close(200, "done".into())).await;
    }
}

/// Publishes `n` messages, awaiting each `basic_publish` (window 1). Returns when the last one
/// was handed over.
async fn publish(channel: &Channel, queue: &str, n: u64) -> Result<()> {
    let body = [b'x'; BODY_SIZE];
    let properties = BasicProperties::default().with_delivery_mode(1);
    for _ in 0..n {
        channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                &body,
                properties.clone(),
            )
            .await?;
    }
    Ok(())
}

/// Publishes `n` more messages like [`publish`], in steps of 1,000, and returns the most
/// messages published but not yet delivered seen after a step. With `cap`, waits after a step
/// until no more than `cap` are outstanding, so the broker's queue stays short.
async fn publish_watching_lag(
    traffic: &Traffic,
    n: u64,
    cap: Option<u64>,
    limit: Duration,
) -> Result<u64> {
    let deadline = Instant::now() + limit;
    let already = traffic.received();
    let mut sent = 0;
    let mut max_lag = 0;
    while sent < n {
        let step = (n - sent).min(1_000);
        publish(&traffic.channel, &traffic.queue, step).await?;
        sent += step;
        let lag = |t: &Traffic| (already + sent).saturating_sub(t.received());
        max_lag = max_lag.max(lag(traffic));
        if let Some(cap) = cap {
            while lag(traffic) > cap {
                if Instant::now() > deadline {
                    return Err(format!("deliveries stalled {} behind", lag(traffic)).into());
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        if Instant::now() > deadline {
            return Err(format!("publishing took longer than {limit:?}").into());
        }
    }
    Ok(max_lag)
}

/// Publishes at `rate` messages a second in bursts every `every`, until `stop`. Counts into
/// `published`. A late burst catches up, but by at most two bursts' worth.
async fn publish_paced(
    channel: Channel,
    queue: String,
    rate: u64,
    every: Duration,
    stop: Arc<AtomicBool>,
    published: Arc<AtomicU64>,
) -> Result<()> {
    let burst = (rate as f64 * every.as_secs_f64()).round() as u64;
    let mut clock = tokio::time::interval(every);
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let start = Instant::now();
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        clock.tick().await;
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        let now = due.saturating_sub(sent).min(2 * burst);
        publish(&channel, &queue, now).await?;
        sent += now;
        published.store(sent, Ordering::Relaxed);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 1. Key to screen
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Latencies {
    open: Vec<Duration>,
    close: Vec<Duration>,
    /// Keys whose effect never showed within the timeout.
    lost: usize,
    timings: Vec<KeyTiming>,
}

impl Latencies {
    /// Of the slowest tenth of the keys (at least one): their median latency, and the share of
    /// their time the view's event-loop thread spent on a CPU, waiting for one, and neither
    /// (asleep: waiting for the key to reach it, or blocked).
    fn slowest_breakdown(&self) -> Option<(usize, Duration, f64, f64, f64, f64)> {
        let mut t = self.timings.clone();
        t.sort_by_key(|k| std::cmp::Reverse(k.latency));
        let n = t.len().div_ceil(10);
        let slow = &t[..n.min(t.len())];
        if slow.is_empty() {
            return None;
        }
        let total: f64 = slow.iter().map(|k| k.latency.as_secs_f64()).sum();
        let on: f64 = slow.iter().map(|k| k.on_cpu.as_secs_f64()).sum();
        let wait: f64 = slow.iter().map(|k| k.waiting.as_secs_f64()).sum();
        let stolen: f64 = slow.iter().map(|k| k.stolen.as_secs_f64()).sum();
        // The kernel books a wait when the thread gets the CPU, so a wait that began just before
        // the key may be counted whole: the shares are capped to add up to 100%.
        let on = (on / total.max(1e-9) * 100.0).min(100.0);
        let wait = (wait / total.max(1e-9) * 100.0).min(100.0 - on);
        // Stolen time is of both CPUs together: as a share of the keys' time on two CPUs.
        let stolen = stolen / (2.0 * total.max(1e-9)) * 100.0;
        Some((n, slow[n / 2].latency, on, wait, 100.0 - on - wait, stolen))
    }

    fn describe_breakdown(&self) -> String {
        let worst = self.timings.iter().max_by_key(|k| k.latency).map(|k| {
            let share = |d: Duration| d.as_secs_f64() / k.latency.as_secs_f64().max(1e-9) * 100.0;
            let on = share(k.on_cpu).min(100.0);
            let wait = share(k.waiting).min(100.0 - on);
            format!(
                "; the slowest key ({:.1} ms): on a CPU {on:.0}%, waiting for one {wait:.0}%, \
                 asleep {:.0}%, stolen {:.0}%",
                ms(k.latency),
                100.0 - on - wait,
                share(k.stolen) / 2.0
            )
        });
        let slowest = match self.slowest_breakdown() {
            Some((n, median, on, wait, rest, stolen)) => format!(
                "the slowest {n} keys (median {:.1} ms): the view's event-loop thread was on a CPU \
                 {on:.0}% of that time, ready but waiting for a CPU {wait:.0}%, asleep {rest:.0}%; \
                 the hypervisor took {stolen:.0}% of the machine's two CPUs meanwhile",
                ms(median)
            ),
            None => "no keys".into(),
        };
        slowest + &worst.unwrap_or_default()
    }

    fn all(&self) -> Vec<Duration> {
        let mut all: Vec<Duration> = self.open.iter().chain(&self.close).copied().collect();
        all.sort();
        all
    }
}

/// One stretch of key presses under load.
struct LoadedRound {
    keys: Latencies,
    /// Messages published and delivered per second while the keys were measured.
    published_rate: f64,
    delivered_rate: f64,
    /// Where the CPU went over the same window.
    cpu: CpuShares,
    /// The view's main thread, which runs its event loop (keys, frames, drawing): on CPU and
    /// waiting for a CPU, percent of the window.
    ui_cpu_pct: f64,
    ui_wait_pct: f64,
    /// Time the view's threads were runnable but waited for a CPU, percent of the window.
    view_wait_pct: f64,
    /// Bytes per second the view wrote to its terminal.
    output_rate: f64,
    /// Share of the window this process spent parsing the view's output.
    parse_pct: f64,
    /// The msg/s the view's own status line showed at the end.
    shown_rate: Option<u64>,
    /// Gaps between the view's frames (bursts of output), sorted.
    frame_gaps: Vec<Duration>,
}

struct LatencyResult {
    idle: Latencies,
    loaded: LoadedRound,
    /// The same with the clients' threads at nice 19, so they yield the CPU to the view.
    niced: Option<LoadedRound>,
}

/// Sets the nice value of this process's client threads (the tokio workers and lapin's I/O
/// threads), not of the terminal reader or the main thread. Returns how many were set.
fn renice_clients(nice: i32) -> usize {
    let mut done = 0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !matches!(comm.trim_end(), "client" | "lapin-io-loop") {
            continue;
        }
        let tid = task.file_name().to_string_lossy().to_string();
        let ok = std::process::Command::new("renice")
            .args(["--priority", &nice.to_string(), "-p", &tid])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        done += ok as usize;
    }
    done
}

/// (busy, total, stolen) jiffies of the whole machine from /proc/stat; stolen is time the
/// hypervisor gave this machine's CPUs to something else, and counts as busy.
fn machine_jiffies() -> (u64, u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    // idle and iowait
    let idle = fields.get(3).unwrap_or(&0) + fields.get(4).unwrap_or(&0);
    (total - idle, total, fields.get(7).copied().unwrap_or(0))
}

/// Gaps between bursts of output: chunks less than 2 ms apart belong to the same frame.
fn frame_gaps(arrivals: &[Instant]) -> Vec<Duration> {
    let mut starts = Vec::new();
    let mut last: Option<Instant> = None;
    for &t in arrivals {
        if last.is_none_or(|l| t.duration_since(l) > Duration::from_millis(2)) {
            starts.push(t);
        }
        last = Some(t);
    }
    let mut gaps: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    gaps
}

fn press_cycles(view: &mut View, cycles: usize, gap: Duration, into: &mut Latencies) -> Result<()> {
    for _ in 0..cycles {
        match view.key_latency(b"?", HELP_TITLE, true)? {
            Some(t) => {
                into.open.push(t.latency);
                into.timings.push(t);
            }
            None => {
                into.lost += 1;
                view.wait_for(&[HELP_TITLE], KEY_TIMEOUT)?;
            }
        }
        std::thread::sleep(gap);
        match view.key_latency(b"\x1b", HELP_TITLE, false)? {
            Some(t) => {
                into.close.push(t.latency);
                into.timings.push(t);
            }
            None => {
                into.lost += 1;
                // Still open: close it for the next round, or give up.
                let start = Instant::now();
                while view.screen.text().contains(HELP_TITLE) {
                    if start.elapsed() > KEY_TIMEOUT {
                        return Err("the help overlay never closed".into());
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        std::thread::sleep(gap);
    }
    Ok(())
}

/// Keys on `rabbitscope watch URL --interval 2`: the topology of the remote broker is read
/// again every 2 s while the keys are pressed, so a big topology shows whether a refresh ever
/// holds a key up.
fn measure_watch(config: &Config, binary: &Path, url: &str) -> Result<()> {
    let mut view = View::spawn(binary, &["watch", url, "--interval", "2"])?;
    view.wait_for(&["? help", "exchanges"], Duration::from_secs(30))?;
    // Let a few refreshes go by first.
    std::thread::sleep(Duration::from_secs(5));
    let started = Instant::now();
    let mut keys = Latencies::default();
    press_cycles(&mut view, config.presses, config.press_gap, &mut keys)?;
    let mut all: Vec<Duration> = keys.open.iter().chain(&keys.close).copied().collect();
    all.sort();
    println!(
        "watch {url}: {} keys over {:.1} s, the topology read again 2 s after each read: {}; \
         lost {}",
        all.len(),
        started.elapsed().as_secs_f64(),
        summary(&all),
        keys.lost
    );
    Ok(())
}

/// The msg/s on the view's status line.
fn shown_rate(text: &str) -> Option<u64> {
    let first = text.lines().next()?;
    let before = first.split(" msg/s").next()?;
    before.split_whitespace().last()?.parse().ok()
}

fn measure_latency(
    config: &Config,
    binary: &Path,
    rt: &tokio::runtime::Runtime,
) -> Result<LatencyResult> {
    println!("\n1. key to screen, {} cycles of ? and Esc", config.presses);
    let mut view = View::start(binary)?;
    std::thread::sleep(Duration::from_millis(500));
    let mut idle = Latencies::default();
    press_cycles(&mut view, config.idle_presses, config.press_gap, &mut idle)?;
    println!("   no traffic: {}", summary(&idle.all()));

    let traffic = rt.block_on(Traffic::open(&view.url()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let publisher = rt.spawn(publish_paced(
        traffic.channel.clone(),
        traffic.queue.clone(),
        config.rate,
        config.burst_every,
        stop.clone(),
        published.clone(),
    ));
    // Stop the publisher however this ends.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _stop_guard = StopOnDrop(stop.clone());
    std::thread::sleep(config.load_warmup);
    if publisher.is_finished() {
        return Err("the publisher stopped early".into());
    }

    let counts = || (published.load(Ordering::Relaxed), traffic.received());
    let loaded = loaded_round(&mut view, config, counts)?;
    print_round("under load", &loaded);

    // Again with the load generator niced, if that can be set and undone (root can).
    let niced = if renice_clients(19) > 0 {
        let round = loaded_round(&mut view, config, counts);
        let restored = renice_clients(0);
        let round = round?;
        print_round("under load, clients at nice 19", &round);
        if restored == 0 {
            println!("   warning: could not set the clients back to nice 0");
        }
        Some(round)
    } else {
        println!("   (renice not available: no round with niced clients)");
        None
    };

    stop.store(true, Ordering::Relaxed);
    let outcome = rt.block_on(async { tokio::time::timeout(OP_TIMEOUT, publisher).await });
    match outcome {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(format!("publisher failed: {e}").into()),
        Ok(Err(e)) => return Err(format!("publisher panicked: {e}").into()),
        Err(_) => return Err("publisher did not stop".into()),
    }
    rt.block_on(traffic.close());
    drop(view);
    Ok(LatencyResult {
        idle,
        loaded,
        niced,
    })
}

/// Key presses under the running load, with what the machine did meanwhile.
fn loaded_round(
    view: &mut View,
    config: &Config,
    counts: impl Fn() -> (u64, u64),
) -> Result<LoadedRound> {
    let start = Instant::now();
    let (pub0, rec0) = counts();
    let (bytes0, parse0) = (view.screen.bytes(), view.screen.parse_time());
    let (_, wait0) = sched_ns(view.pid).unwrap_or_default();
    let ui0 = thread_sched_ns(view.pid, view.pid);
    let cpu = CpuWindow::start(view.pid);
    view.screen.record_arrivals(true);
    let mut keys = Latencies::default();
    press_cycles(view, config.presses, config.press_gap, &mut keys)?;
    let window = start.elapsed().as_secs_f64();
    let arrivals = view.screen.record_arrivals(false);
    let (pub1, rec1) = counts();
    let (bytes1, parse1) = (view.screen.bytes(), view.screen.parse_time());
    let cpu = cpu.finish();
    let (_, wait1) = sched_ns(view.pid).unwrap_or_default();
    let ui1 = thread_sched_ns(view.pid, view.pid);
    Ok(LoadedRound {
        keys,
        published_rate: (pub1 - pub0) as f64 / window,
        delivered_rate: (rec1 - rec0) as f64 / window,
        cpu,
        ui_cpu_pct: ui1.0.saturating_sub(ui0.0) as f64 / 1e9 / window * 100.0,
        ui_wait_pct: ui1.1.saturating_sub(ui0.1) as f64 / 1e9 / window * 100.0,
        view_wait_pct: wait1.saturating_sub(wait0) as f64 / 1e9 / window * 100.0,
        output_rate: (bytes1 - bytes0) as f64 / window,
        parse_pct: (parse1 - parse0).as_secs_f64() / window * 100.0,
        shown_rate: shown_rate(&view.screen.text()),
        frame_gaps: frame_gaps(&arrivals),
    })
}

fn print_round(label: &str, r: &LoadedRound) {
    println!(
        "   {label}: {}\n     published {:.0} msg/s, delivered {:.0} msg/s, view output {:.0} \
         KiB/s, parsing it {:.1}% of a core; status line showed {:?} msg/s",
        summary(&r.keys.all()),
        r.published_rate,
        r.delivered_rate,
        r.output_rate / 1024.0,
        r.parse_pct,
        r.shown_rate
    );
    println!("     {}", r.keys.describe_breakdown());
    let c = &r.cpu;
    println!(
        "     cpu (% of a core): view process {:.0} (its event loop thread {:.0}, waiting for a \
         CPU {:.0}), clients and reader {:.0}, other processes {:.0}; machine {:.0}% busy; view \
         threads waited for a CPU {:.0}% (summed); stolen by the hypervisor {:.0}; frame \
         gaps {}",
        c.server,
        r.ui_cpu_pct,
        r.ui_wait_pct,
        c.clients,
        c.others,
        c.machine_busy,
        r.view_wait_pct,
        c.stolen,
        summary(&r.frame_gaps)
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Throughput with the view and headless
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Headless,
    View,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Headless => "headless (rabbitscope broker)",
            Kind::View => "with the view (rabbitscope)",
        }
    }
}

struct ThroughputRun {
    rate: f64,
    /// Where the CPU went over the timed part.
    cpu: CpuShares,
    /// Bytes the view wrote to its terminal per second (0 headless).
    output_rate: f64,
    /// The most messages published but not yet delivered.
    max_lag: u64,
    /// Voluntary context switches of the clients and of the server, per message.
    client_sleeps: f64,
    server_sleeps: f64,
}

struct ThroughputResult {
    headless: Vec<ThroughputRun>,
    view: Vec<ThroughputRun>,
}

fn timed_run(
    rt: &tokio::runtime::Runtime,
    url: &str,
    warmup: u64,
    n: u64,
    pid: u32,
) -> Result<(Duration, CpuShares, u64, f64, f64)> {
    rt.block_on(async {
        let traffic = Traffic::open(url).await?;
        let result = async {
            within(
                "warm-up",
                Duration::from_secs(120),
                publish(&traffic.channel, &traffic.queue, warmup),
            )
            .await?;
            traffic
                .wait_received(warmup, Duration::from_secs(60))
                .await?;
            let cpu = CpuWindow::start(pid);
            let (own0, server0) = (sleeps(std::process::id()), sleeps(pid));
            let start = Instant::now();
            let max_lag = publish_watching_lag(&traffic, n, None, Duration::from_secs(300)).await?;
            let last = traffic
                .wait_received(warmup + n, Duration::from_secs(120))
                .await?;
            let (own1, server1) = (sleeps(std::process::id()), sleeps(pid));
            let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / n as f64;
            Ok::<_, Error>((
                last - start,
                cpu.finish(),
                max_lag,
                per(own1, own0),
                per(server1, server0),
            ))
        }
        .await;
        traffic.close().await;
        result
    })
}

fn measure_throughput(
    config: &Config,
    binary: &Path,
    rt: &tokio::runtime::Runtime,
) -> Result<ThroughputResult> {
    let n = config.throughput_messages;
    println!(
        "\n2. throughput, {n} messages window 1, {} repetitions, alternated",
        config.repetitions
    );
    let mut result = ThroughputResult {
        headless: Vec::new(),
        view: Vec::new(),
    };
    for rep in 0..config.repetitions {
        let order = if rep % 2 == 0 {
            [Kind::Headless, Kind::View]
        } else {
            [Kind::View, Kind::Headless]
        };
        for kind in order {
            let run = match kind {
                Kind::Headless => {
                    let server = Headless::start(binary)?;
                    let (took, cpu, max_lag, client_sleeps, server_sleeps) =
                        timed_run(rt, &server.url(), config.throughput_warmup, n, server.pid)?;
                    ThroughputRun {
                        rate: n as f64 / took.as_secs_f64(),
                        cpu,
                        output_rate: 0.0,
                        max_lag,
                        client_sleeps,
                        server_sleeps,
                    }
                }
                Kind::View => {
                    let view = View::start(binary)?;
                    let bytes0 = view.screen.bytes();
                    let (took, cpu, max_lag, client_sleeps, server_sleeps) =
                        timed_run(rt, &view.url(), config.throughput_warmup, n, view.pid)?;
                    ThroughputRun {
                        rate: n as f64 / took.as_secs_f64(),
                        cpu,
                        // Includes the warm-up's output; a small share.
                        output_rate: (view.screen.bytes() - bytes0) as f64 / took.as_secs_f64(),
                        max_lag,
                        client_sleeps,
                        server_sleeps,
                    }
                }
            };
            println!(
                "   run {}/{} {:<30} {:>8.0} msg/s  cpu % of a core: server {:>3.0} clients {:>3.0} \
                 others {:>3.0} stolen {:>2.0}  lag {:>6}  sleeps a message: clients {:.2} server {:.2}{}",
                rep + 1,
                config.repetitions,
                kind.label(),
                run.rate,
                run.cpu.server,
                run.cpu.clients,
                run.cpu.others,
                run.cpu.stolen,
                run.max_lag,
                run.client_sleeps,
                run.server_sleeps,
                if kind == Kind::View {
                    format!("  output {:.0} KiB/s", run.output_rate / 1024.0)
                } else {
                    String::new()
                }
            );
            match kind {
                Kind::Headless => result.headless.push(run),
                Kind::View => result.view.push(run),
            }
        }
    }
    Ok(result)
}

fn cpu_pct(ticks: u64, over: Duration) -> f64 {
    (ticks as f64 * TICK.as_secs_f64()) / over.as_secs_f64() * 100.0
}

// ---------------------------------------------------------------------------------------------
// 3. Idle CPU
// ---------------------------------------------------------------------------------------------

struct IdleResult {
    over: Duration,
    ticks: u64,
    /// Time on CPU from schedstat, finer than ticks.
    cpu_ns: Option<u64>,
    /// Bytes the view wrote meanwhile.
    output: u64,
}

impl IdleResult {
    fn pct(&self) -> f64 {
        cpu_pct(self.ticks, self.over)
    }
    fn precise_pct(&self) -> Option<f64> {
        self.cpu_ns
            .map(|ns| ns as f64 / self.over.as_nanos() as f64 * 100.0)
    }
}

fn measure_idle(config: &Config, binary: &Path) -> Result<IdleResult> {
    println!("\n3. idle CPU over {:?}", config.idle_for);
    let view = View::start(binary)?;
    // Let start-up settle.
    std::thread::sleep(Duration::from_secs(2));
    let ticks0 = cpu_ticks(view.pid).ok_or("no /proc stat for the view")?;
    let ns0 = cpu_ns(view.pid);
    let bytes0 = view.screen.bytes();
    let start = Instant::now();
    std::thread::sleep(config.idle_for);
    let over = start.elapsed();
    let ticks1 = cpu_ticks(view.pid).ok_or("no /proc stat for the view")?;
    let ns1 = cpu_ns(view.pid);
    let result = IdleResult {
        over,
        ticks: ticks1 - ticks0,
        cpu_ns: ns0.zip(ns1).map(|(a, b)| b.saturating_sub(a)),
        output: view.screen.bytes() - bytes0,
    };
    println!(
        "   {} ticks = {:.2}% of a core (schedstat {}), {} bytes of output",
        result.ticks,
        result.pct(),
        result
            .precise_pct()
            .map_or("n/a".into(), |p| format!("{p:.3}%")),
        result.output
    );
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// 4. Memory
// ---------------------------------------------------------------------------------------------

struct MemorySeries {
    /// (messages through the server, VmRSS KiB)
    samples: Vec<(u64, u64)>,
    /// VmRSS a few seconds after the last message.
    settled_kib: u64,
    /// VmHWM at the end.
    peak_kib: u64,
    rate: f64,
    /// The most messages published but not yet delivered at any moment.
    max_backlog: u64,
}

impl MemorySeries {
    /// Whether RSS levelled off: the second half added at most 10% (and 4 MiB) to it.
    fn levels_off(&self) -> bool {
        let mid = self.samples.get(self.samples.len() / 2).map_or(0, |s| s.1);
        let last = self.samples.last().map_or(0, |s| s.1);
        last as f64 <= mid as f64 * 1.10 + 4096.0
    }

    /// VmRSS at the end less VmRSS half way, in KiB.
    fn second_half_growth_kib(&self) -> i64 {
        let mid = self.samples.get(self.samples.len() / 2).map_or(0, |s| s.1);
        let last = self.samples.last().map_or(0, |s| s.1);
        last as i64 - mid as i64
    }

    fn describe(&self) -> String {
        let rss: Vec<String> = self
            .samples
            .iter()
            .map(|(n, kib)| format!("{}: {:.1}", short_count(*n), *kib as f64 / 1024.0))
            .collect();
        format!(
            "{}; 3 s later {:.1}; peak {:.1}",
            rss.join(", "),
            self.settled_kib as f64 / 1024.0,
            self.peak_kib as f64 / 1024.0
        )
    }
}

struct MemoryResult {
    view: MemorySeries,
    headless: MemorySeries,
}

fn measure_memory(
    config: &Config,
    binary: &Path,
    rt: &tokio::runtime::Runtime,
) -> Result<MemoryResult> {
    let total = config.memory_messages;
    println!("\n4. memory over {total} messages, the view then headless for comparison");
    let view = {
        let view = View::start(binary)?;
        memory_series(rt, &view.url(), view.pid, total)?
    };
    let headless = {
        let server = Headless::start(binary)?;
        memory_series(rt, &server.url(), server.pid, total)?
    };
    Ok(MemoryResult { view, headless })
}

fn memory_series(
    rt: &tokio::runtime::Runtime,
    url: &str,
    pid: u32,
    total: u64,
) -> Result<MemorySeries> {
    std::thread::sleep(Duration::from_secs(1));
    let mut samples = vec![(0, rss_kib(pid))];
    println!("   {:>9} messages  VmRSS {:>7} KiB", 0, samples[0].1);
    let quarter = total / 4;
    let mut max_backlog = 0;
    let took = rt.block_on(async {
        let traffic = Traffic::open(url).await?;
        let result = async {
            let start = Instant::now();
            for q in 1..=4u64 {
                let lag = publish_watching_lag(
                    &traffic,
                    quarter,
                    Some(MEMORY_MAX_LAG),
                    Duration::from_secs(600),
                )
                .await?;
                max_backlog = max_backlog.max(lag);
                traffic
                    .wait_received(q * quarter, Duration::from_secs(120))
                    .await?;
                let rss = rss_kib(pid);
                println!("   {:>9} messages  VmRSS {:>7} KiB", q * quarter, rss);
                samples.push((q * quarter, rss));
            }
            Ok::<_, Error>(start.elapsed())
        }
        .await;
        traffic.close().await;
        result
    })?;
    std::thread::sleep(Duration::from_secs(3));
    let series = MemorySeries {
        samples,
        settled_kib: rss_kib(pid),
        peak_kib: status_kib(pid, "VmHWM:").unwrap_or(0),
        rate: (4 * quarter) as f64 / took.as_secs_f64(),
        max_backlog,
    };
    println!(
        "   3 s later VmRSS {} KiB, peak (VmHWM) {} KiB; {:.0} msg/s; deliveries lagged by at \
         most {} messages",
        series.settled_kib, series.peak_kib, series.rate, series.max_backlog
    );
    Ok(series)
}

// ---------------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------------

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median_f(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn summary(sorted: &[Duration]) -> String {
    format!(
        "median {:.1} ms, p95 {:.1} ms, max {:.1} ms (n={})",
        ms(percentile(sorted, 50.0)),
        ms(percentile(sorted, 95.0)),
        ms(sorted.last().copied().unwrap_or_default()),
        sorted.len()
    )
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

struct Report<'a> {
    config: &'a Config,
    machine: Machine,
    latency: LatencyResult,
    throughput: ThroughputResult,
    idle: IdleResult,
    memory: MemoryResult,
}

impl Report<'_> {
    fn slowdown(&self) -> (f64, f64, f64) {
        let h = median_f(
            &self
                .throughput
                .headless
                .iter()
                .map(|r| r.rate)
                .collect::<Vec<_>>(),
        );
        let v = median_f(
            &self
                .throughput
                .view
                .iter()
                .map(|r| r.rate)
                .collect::<Vec<_>>(),
        );
        (h, v, (1.0 - v / h) * 100.0)
    }

    /// The table of figures, as markdown (also printed).
    fn table(&self) -> String {
        let mut out = String::new();
        let l = &self.latency;
        out += "| measure | figure | target |\n|---|---|---|\n";
        let key_row = |label: &str, lat: &Latencies, target: bool| {
            let all = lat.all();
            let max = all.last().copied().unwrap_or_default();
            let ok = ms(max) <= LATENCY_TARGET_MS && lat.lost == 0;
            let split = |v: &[Duration]| {
                let mut v = v.to_vec();
                v.sort();
                format!(
                    "{:.1}/{:.1}/{:.1}",
                    ms(percentile(&v, 50.0)),
                    ms(percentile(&v, 95.0)),
                    ms(v.last().copied().unwrap_or_default())
                )
            };
            format!(
                "| {label} ({} keys{}) | median {:.1} ms, p95 {:.1} ms, max {:.1} ms (? open {}, Esc close {}) | {} |\n",
                all.len(),
                if lat.lost > 0 { format!(", {} lost", lat.lost) } else { String::new() },
                ms(percentile(&all, 50.0)),
                ms(percentile(&all, 95.0)),
                ms(max),
                split(&lat.open),
                split(&lat.close),
                if target { format!("≤ {LATENCY_TARGET_MS:.0} ms: {}", verdict(ok)) } else { "-".into() }
            )
        };
        out += &key_row("key to screen, no traffic", &l.idle, false);
        out += &key_row(
            &format!("key to screen under ~{} msg/s", thousands(self.config.rate)),
            &l.loaded.keys,
            true,
        );
        out += &round_rows("", &l.loaded);
        if let Some(n) = &l.niced {
            out += &key_row(
                &format!(
                    "key to screen under ~{} msg/s, clients at nice 19",
                    thousands(self.config.rate)
                ),
                &n.keys,
                false,
            );
            out += &round_rows(", clients at nice 19", n);
        }
        let (h, v, slow) = self.slowdown();
        let runs = |rs: &[ThroughputRun]| {
            rs.iter()
                .map(|r| format!("{:.0}", r.rate))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let cpu = |rs: &[ThroughputRun]| {
            let server = median_f(&rs.iter().map(|r| r.cpu.server).collect::<Vec<_>>());
            let clients = median_f(&rs.iter().map(|r| r.cpu.clients).collect::<Vec<_>>());
            let others = rs.iter().map(|r| r.cpu.others).fold(0.0, f64::max);
            let stolen = rs.iter().map(|r| r.cpu.stolen).fold(0.0, f64::max);
            let lag = median_f(&rs.iter().map(|r| r.max_lag as f64).collect::<Vec<_>>());
            let client_sleeps = median_f(&rs.iter().map(|r| r.client_sleeps).collect::<Vec<_>>());
            let server_sleeps = median_f(&rs.iter().map(|r| r.server_sleeps).collect::<Vec<_>>());
            let per = |f: fn(&ThroughputRun) -> f64| {
                median_f(
                    &rs.iter()
                        .map(|r| f(r) / 100.0 / r.rate * 1e6)
                        .collect::<Vec<_>>(),
                )
            };
            format!(
                "CPU server {server:.0}%, clients {clients:.0}% of a core = {:.1} and {:.1} µs a message; threads went to sleep {client_sleeps:.2} times a message in the clients and {server_sleeps:.2} in the server; deliveries up to {lag:.0} messages behind (medians); other processes at most {others:.0}%, stolen by the hypervisor at most {stolen:.0}%",
                per(|r| r.cpu.server),
                per(|r| r.cpu.clients)
            )
        };
        out += &format!(
            "| throughput headless, median of {} | {h:.0} msg/s (runs: {}); {} | |\n",
            self.throughput.headless.len(),
            runs(&self.throughput.headless),
            cpu(&self.throughput.headless)
        );
        out += &format!(
            "| throughput with the view, median of {} | {v:.0} msg/s (runs: {}); {} | |\n",
            self.throughput.view.len(),
            runs(&self.throughput.view),
            cpu(&self.throughput.view)
        );
        out += &format!(
            "| slowdown with the view | {slow:.1}%{} | ≤ {SLOWDOWN_TARGET_PCT:.0}%: {} |\n",
            if slow < 0.0 {
                " (negative: faster with the view)"
            } else {
                ""
            },
            verdict(slow <= SLOWDOWN_TARGET_PCT)
        );
        let i = &self.idle;
        out += &format!(
            "| idle CPU over {:.0} s | {:.2}% of a core ({} ticks; schedstat {}); {} bytes of output | < {IDLE_TARGET_PCT:.0}%: {} |\n",
            i.over.as_secs_f64(),
            i.pct(),
            i.ticks,
            i.precise_pct().map_or("n/a".into(), |p| format!("{p:.3}%")),
            i.output,
            verdict(i.pct() < IDLE_TARGET_PCT)
        );
        let m = &self.memory;
        out += &format!(
            "| VmRSS (MiB) of the view by messages through it | {} | levels off (second half adds at most 10% + 4 MiB; it added {:+.1} MiB): {} |\n",
            m.view.describe(),
            m.view.second_half_growth_kib() as f64 / 1024.0,
            if m.view.levels_off() { "yes" } else { "NO" }
        );
        out += &format!(
            "| VmRSS (MiB) headless, the same load, for comparison | {} | |\n",
            m.headless.describe()
        );
        out
    }

    fn markdown(&self) -> String {
        let c = self.config;
        let m = &self.machine;
        let l = &self.latency;
        let (_, _, slow) = self.slowdown();
        let mut md = String::new();
        md += "# The live view: latency, cost, idle CPU and memory\n\n";
        md +=
            "Figures for the terminal view (`rabbitscope` with no command) as a program: how fast \
               it answers a key while its embedded broker is busy, how much broker throughput it \
               costs against `rabbitscope broker` (headless), how much CPU it uses when nothing \
               happens, and whether its memory stays bounded as messages flow.\n\n";
        md += "## Command\n\n```sh\ncargo bench --bench view_latency\n```\n\n";
        md += "The benchmark drives the release binary `target/release/rabbitscope` as a user \
               would: the view runs in a 160x45 pseudo-terminal (portable-pty, \
               `TERM=xterm-256color`) and a reader thread feeds everything it writes to a vt100 \
               parser, so the view never blocks on its output. The clients are lapin 4 on a \
               2-thread tokio runtime in the benchmark's process, each on its own connection, on \
               loopback. Every child process is killed when the benchmark ends, panics included. \
               This file is written by the benchmark.\n\n";
        md += &format!(
            "## Machine\n\n- {} cores (`nproc`), {}\n- {} of memory, Linux {}\n- {}\n- load \
             average (1, 5, 15 min) at the start {}, at the end {}\n\n",
            m.cores, m.cpu, m.memory, m.kernel, m.rustc, m.load_start, m.load_end
        );
        md += "## Figures\n\n";
        if c.quick {
            md += "**A quick run with small numbers (`--quick`): not the figures of record.**\n\n";
        }
        md += &self.table();
        md += "\n## How each figure was taken\n\n";
        md += &format!(
            "1. **Key to screen under load.** A publisher (one connection, default exchange, \
             64-byte transient bodies) paced to {} msg/s in bursts of {} every {} ms, awaiting \
             each `basic_publish`, and a no-ack consumer on the same queue, on a fresh view. After \
             {} s of warm-up, {} cycles of: write `?` to the terminal, wait for the help overlay \
             (its title `{HELP_TITLE}`), wait {} ms, write Esc, wait for the title to go, wait {} \
             ms. A latency is the time from writing the key to the arrival of the first chunk of \
             output after which the parsed screen shows (or no longer shows) the title: the reader \
             thread parses every chunk as it arrives and checks the screen after it, keeping the \
             chunk's arrival time. The same {} cycles with no traffic come first, for comparison. \
             Percentiles are nearest-rank over the open and close latencies together (the three \
             figures in brackets are median/p95/max of each key alone). The load rows give the \
             actual rates over the measured window and how much the view wrote to its terminal \
             (parsing it took {:.1}% of a core in the benchmark). The CPU and waiting rows say \
             where the time went: utime+stime of the view process and of the benchmark's own \
             process (lapin clients, lapin's I/O threads and the terminal reader) from \
             `/proc/<pid>/stat`, other processes as the machine's busy time (`/proc/stat`) less \
             those two; the CPU of the view's main thread, which runs its event loop (keys, \
             broker events, drawing), and how long it and all the view's threads were ready to \
             run but had no CPU (`/proc/<pid>/task/*/schedstat`); and the gaps between the \
             view's frames (bursts of output more than 2 ms apart; it draws at most every 33 ms \
             while something moves). Then the same cycles once more, on the same view with the \
             same load, with the benchmark's client threads (tokio workers and lapin's I/O \
             threads, not the terminal reader) set to nice 19 with `renice`, so that the \
             scheduler prefers the view when both want a CPU: the view gets what it would get \
             if the clients ran on other machines, as they would outside a benchmark.\n",
            thousands(c.rate),
            c.burst(),
            c.burst_every.as_millis(),
            c.load_warmup.as_secs(),
            c.presses,
            c.press_gap.as_millis(),
            c.press_gap.as_millis(),
            c.idle_presses,
            l.loaded.parse_pct
        );
        md += &format!(
            "2. **Throughput with the view against headless.** The same publisher unthrottled \
             (window 1: each `basic_publish` awaited before the next) and the no-ack consumer; \
             {} messages, timed from the first publish to the last of them delivered, after {} warm-up \
             messages on the same connections. Each run gets a fresh server process: `rabbitscope \
             broker --listen ADDR` (headless, `RUST_LOG=warn`, its output read and dropped) or \
             `rabbitscope --listen ADDR` (the view) in the pseudo-terminal. The two alternate, headless first in odd repetitions \
             and the view first in even ones, {} repetitions each; the figure is the median. The \
             slowdown is 1 - view/headless. The CPU shares are taken as for the keys (server = \
             the broker's process, with the view this includes the screen), also divided by \
             the messages; going to sleep is counted as voluntary context switches of all threads \
             (`/proc/<pid>/task/*/status`; the clients' count includes the terminal reader's, a \
             few dozen a second), a measure of how many wake-ups each message costs; \"behind\" \
             is the most messages published but not yet delivered, read after every 1,000 \
             publishes.\n",
            thousands(c.throughput_messages),
            thousands(c.throughput_warmup),
            c.repetitions
        );
        md += &format!(
            "3. **Idle CPU.** A fresh view with no client, 2 s after it started: utime+stime of the \
             process from `/proc/<pid>/stat` over {} s, as a share of one core (one tick is 10 ms, \
             so the resolution is {:.2}%); the schedstat figure sums the nanoseconds on CPU of its \
             threads from `/proc/<pid>/task/*/schedstat`.\n",
            c.idle_for.as_secs(),
            cpu_pct(1, c.idle_for)
        );
        md += &format!(
            "4. **Memory.** A fresh view; VmRSS from `/proc/<pid>/status` 1 s after it started \
             (0 messages), then {} messages pushed through it at full speed (window 1, no-ack \
             consumer, {:.0} msg/s on average), in four quarters. The publisher pauses whenever \
             {} messages are not yet delivered (at most {} were), so that a queue \
             backlog does not pass for the view's memory. VmRSS is read after each quarter once its last message was \
             delivered, then again 3 s later, and the peak (VmHWM) at the end. Then the same \
             against a headless broker ({:.0} msg/s, at most {} not yet delivered), to tell the \
             view's share from the broker's. \"Levels off\" means the second half of the messages added at most 10% \
             (+4 MiB) to the view's RSS. The view keeps the last 2,000 messages in its log, and \
             the broker keeps the last 65,536 events in the ring the view reads from.\n",
            thousands(c.memory_messages),
            self.memory.view.rate,
            thousands(MEMORY_MAX_LAG),
            thousands(self.memory.view.max_backlog),
            self.memory.headless.rate,
            thousands(self.memory.headless.max_backlog)
        );
        md += "\n## Targets\n\n";
        let max = l.loaded.keys.all().last().copied().unwrap_or_default();
        md += &format!(
            "- Key to screen under ~{} msg/s at most {LATENCY_TARGET_MS:.0} ms: {} (max {:.1} ms).\n",
            thousands(c.rate),
            verdict(ms(max) <= LATENCY_TARGET_MS && l.loaded.keys.lost == 0),
            ms(max)
        );
        md += &format!(
            "- The view costs at most {SLOWDOWN_TARGET_PCT:.0}% of broker throughput: {} ({slow:.1}%{}).\n",
            verdict(slow <= SLOWDOWN_TARGET_PCT),
            if slow < 0.0 { ", faster with the view" } else { "" }
        );
        md += &format!(
            "- Idle CPU under {IDLE_TARGET_PCT:.0}% of a core: {} ({:.2}%).\n",
            verdict(self.idle.pct() < IDLE_TARGET_PCT),
            self.idle.pct()
        );
        md
    }
}

/// The load and contention rows of one loaded round.
fn round_rows(suffix: &str, r: &LoadedRound) -> String {
    let gaps = &r.frame_gaps;
    let c = &r.cpu;
    let mut out = format!(
        "| slow keys{suffix} | {} | |\n",
        r.keys.describe_breakdown()
    );
    out += &format!(
        "| load during those keys{suffix} | published {:.0} msg/s, delivered {:.0} msg/s; terminal output {:.0} KiB/s | |\n",
        r.published_rate, r.delivered_rate, r.output_rate / 1024.0
    );
    out += &format!(
        "| CPU during those keys{suffix}, % of one core | view process (broker and screen) {:.0}, of which its event-loop thread {:.0}; clients and terminal reader {:.0}; other processes {:.0}; stolen by the hypervisor {:.0}; machine {:.0}% busy (both cores) | |\n",
        c.server, r.ui_cpu_pct, c.clients, c.others, c.stolen, c.machine_busy
    );
    out += &format!(
        "| waiting during those keys{suffix} | the view's event-loop thread was ready to run but had no CPU {:.0}% of the time, all its threads together {:.0}%; gaps between the view's frames median {:.0} ms, p95 {:.0} ms, max {:.0} ms | |\n",
        r.ui_wait_pct,
        r.view_wait_pct,
        ms(percentile(gaps, 50.0)),
        ms(percentile(gaps, 95.0)),
        ms(gaps.last().copied().unwrap_or_default())
    );
    out
}

/// 1234567 as "1,234,567".
fn short_count(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}
