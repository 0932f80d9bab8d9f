//! The rabbitscope command line: picks a mode and runs it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use color_eyre::eyre::{eyre, Result, WrapErr};

use rabbitscope::amqp::Server;
use rabbitscope::broker::{Broker, BrokerConfig};
use rabbitscope::lesson::{self, Lang, Target};
use rabbitscope::terminal::{printable, printable_lines};

// mimalloc: the broker allocates and frees a message, its events and its frames on different
// threads; measured in examples/throughput.rs, glibc's malloc made an event reader cost about
// twice as much (BENCHMARKS.md). It is already the global allocator: rbase64 (under
// rabbitmq_http_client) declares `#[global_allocator] MiMalloc` itself, and a second
// declaration here would not link (the same mimalloc crate, so the same allocator).

/// See RabbitMQ routing happen. Without a command: the live view on the embedded broker.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    view: ViewArgs,
    /// Language of lesson texts: en or zh (default: from LC_ALL, LC_MESSAGES or LANG).
    #[arg(long, global = true, value_name = "LANG")]
    lang: Option<Lang>,
    #[command(flatten)]
    store: StoreArgs,
}

/// Where the embedded broker keeps what outlives it (the view and `broker`).
#[derive(clap::Args, Clone)]
struct StoreArgs {
    /// Keep durable exchanges, queues, bindings, persistent messages, users and vhosts here
    /// (default: $XDG_DATA_HOME/rabbitscope/broker-PORT, else
    /// ~/.local/share/rabbitscope/broker-PORT).
    #[arg(long, global = true, value_name = "DIR", conflicts_with = "transient")]
    data_dir: Option<PathBuf>,
    /// Keep nothing on disk: everything is gone when the broker stops.
    #[arg(long, global = true)]
    transient: bool,
    /// Block publishing connections (connection.blocked) while what the broker holds for its
    /// clients (messages queued or not yet acked, bodies arriving, frames not yet written) takes
    /// more than this many MiB (default: 40% of this machine's memory, like RabbitMQ's high
    /// watermark).
    #[arg(long, global = true, value_name = "MIB")]
    memory_limit: Option<u64>,
    /// Block publishing connections while the data directory's filesystem has less than this
    /// free: bytes, or with a unit such as 50MB, 1GB, 512MiB (default: 50MB, RabbitMQ's
    /// disk_free_limit).
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size)]
    disk_free_limit: Option<u64>,
}

/// A size as RabbitMQ's configuration writes it: `50000000`, `50MB`, `1GB`, `512MiB`.
fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 50MB"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit {other:?}: use B, kB, MB, GB, KiB, MiB or GiB"
            ))
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// RabbitMQ's default memory high watermark: 40% of the machine's memory (1 GiB when it cannot
/// be read).
fn default_memory_limit() -> usize {
    let total_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<usize>().ok())
        });
    total_kib.map_or(1 << 30, |kib| kib * 1024 / 10 * 4)
}

impl StoreArgs {
    /// The data directory for a broker listening on `listen`, None when transient. One per
    /// port by default, so two brokers never share one.
    fn dir(&self, listen: SocketAddr) -> Result<Option<PathBuf>> {
        if self.transient {
            return Ok(None);
        }
        if let Some(dir) = &self.data_dir {
            return Ok(Some(dir.clone()));
        }
        let base = std::env::var_os("XDG_DATA_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .ok_or_else(|| {
                eyre!("no data directory: set HOME, or pass --data-dir or --transient")
            })?;
        Ok(Some(
            base.join("rabbitscope")
                .join(format!("broker-{}", listen.port())),
        ))
    }

    /// A broker configuration with the data directory's users and vhosts, plus `extra` (the
    /// command line's); what is new is kept there too.
    fn config(
        &self,
        listen: SocketAddr,
        extra: impl FnOnce(BrokerConfig) -> Result<BrokerConfig>,
    ) -> Result<BrokerConfig> {
        let dir = self.dir(listen)?;
        let mut config = BrokerConfig::default();
        if let Some(dir) = &dir {
            if let Some(kept) = rabbitscope::definitions::load_kept(dir)? {
                config = kept.configure(config)?;
            }
        }
        config = extra(config)?;
        if let Some(dir) = &dir {
            // On a full disk the broker still starts, with what it kept before (and the disk
            // alarm on): only what this command line added is not kept.
            let kept =
                rabbitscope::definitions::keep(&config, dir).map_err(color_eyre::Report::from);
            if let Err(error) = kept {
                if !is_disk_full(&error) {
                    return Err(error);
                }
                tracing::warn!(dir = %dir.display(), "the data directory's disk is full: this start's users and vhosts are not kept");
            }
        }
        config.data_dir = dir;
        config.memory_limit = Some(match self.memory_limit {
            Some(mib) => mib as usize * 1024 * 1024,
            None => default_memory_limit(),
        });
        config.disk_free_limit = Some(
            self.disk_free_limit
                .unwrap_or(rabbitscope::broker::limits::DEFAULT_DISK_FREE_LIMIT),
        );
        Ok(config)
    }
}

/// Whether an error comes from a disk with no room left.
fn is_disk_full(error: &color_eyre::Report) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            .is_some_and(|code| code == libc::ENOSPC || code == libc::EDQUOT)
    })
}

#[derive(clap::Args, Clone)]
struct ViewArgs {
    /// Where the embedded broker listens (the view shows it).
    #[arg(long, default_value = "127.0.0.1:5673")]
    listen: SocketAddr,
    #[command(flatten)]
    tls: TlsArgs,
    /// Classroom mode: high contrast, slower animation, presenter keys.
    #[arg(long)]
    classroom: bool,
    /// No colours (also when NO_COLOR is set).
    #[arg(long)]
    monochrome: bool,
    /// Where the lessons are (default: ./lessons, else the lessons shipped with the source).
    #[arg(long, value_name = "DIR")]
    lessons: Option<PathBuf>,
}

/// The embedded broker's amqps listener, beside the plain one.
#[derive(clap::Args, Clone)]
struct TlsArgs {
    /// Serve amqps too, with this certificate (PEM; the chain, server certificate first).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Where amqps listens (RabbitMQ's is 5671; ours is one above the plain 5673).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:5674",
        requires = "tls_cert"
    )]
    tls_listen: SocketAddr,
}

/// Trust for amqps (and https) URLs beyond the system's certificates.
#[derive(clap::Args)]
struct TrustArgs {
    /// Also trust the CA certificates in FILE (PEM): for a broker with a self-signed
    /// certificate. SSL_CERT_FILE replaces the system's certificates for amqps.
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
}

impl TrustArgs {
    fn apply(&self) -> Result<()> {
        if let Some(path) = &self.ca_cert {
            rabbitscope::tls::trust_ca_file(path).map_err(|e| eyre!(e))?;
        }
        Ok(())
    }
}

/// How large one answer of the management API may be.
#[derive(clap::Args, Clone, Copy)]
struct ResponseLimitArgs {
    /// Refuse a management API answer larger than this many MiB (a listing of a very large
    /// broker may need more).
    #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    max_response_mib: u64,
}

impl ResponseLimitArgs {
    fn apply(&self, endpoint: &mut rabbitscope::remote::Endpoint) {
        endpoint.max_response = usize::try_from(self.max_response_mib << 20).unwrap_or(usize::MAX);
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the embedded AMQP 0-9-1 broker alone, until SIGINT, SIGTERM, SIGHUP or SIGQUIT.
    Broker(BrokerArgs),
    /// List lesson files, or check that every expectation in them holds.
    Lessons {
        #[command(subcommand)]
        command: LessonsCommand,
    },
    /// The live view, straight into a lesson (by id, e.g. `topic-exchange`), or its menu.
    Learn(LearnArgs),
    /// The live view on a running RabbitMQ (through its management API).
    Watch(WatchArgs),
    /// Print the topology of a RabbitMQ: exchanges, queues, bindings.
    Snapshot(SnapshotArgs),
    /// Print one line per published message and the queues it reached.
    ///
    /// From RabbitMQ's firehose: tracing is on for the URL's vhost while it runs, and off
    /// again when it stops (if it was off before).
    Tap(TapArgs),
    /// Record a RabbitMQ's events to a trace file, until --count, --duration or SIGINT.
    ///
    /// Tracing is on for the URL's vhost while it runs, as with `tap`.
    Record(RecordArgs),
    /// The view replaying a trace file (space pauses, + and - change the speed, . steps).
    Replay(ReplayArgs),
}

#[derive(clap::Args)]
struct RecordArgs {
    /// The RabbitMQ, as an AMQP URL: amqp://user:pass@host:5672/vhost.
    source: String,
    /// The trace file to write.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Stop after this many events.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Its management API (default: same host, port 15672, https for amqps URLs).
    #[arg(long, value_name = "URL")]
    management: Option<String>,
    #[command(flatten)]
    limit: ResponseLimitArgs,
    #[command(flatten)]
    trust: TrustArgs,
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// The trace file (written by `rabbitscope record`).
    file: PathBuf,
    /// How much faster than recorded (0.5: half as fast).
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    speed: f64,
    /// Keep reading events appended to the file (a `record` still writing it), like tail -f.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Classroom mode: high contrast, slower animation, presenter keys.
    #[arg(long)]
    classroom: bool,
    /// No colours (also when NO_COLOR is set).
    #[arg(long)]
    monochrome: bool,
}

#[derive(clap::Args)]
struct WatchArgs {
    /// The RabbitMQ, as an AMQP URL: amqp://user:pass@host:5672/vhost.
    url: String,
    /// Its management API (default: same host, port 15672, https for amqps URLs).
    #[arg(long, value_name = "URL")]
    management: Option<String>,
    /// Seconds between reads of the topology.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    interval: f64,
    /// Show each message's route, from the firehose. Turns tracing on for the vhost while
    /// watching, which slows the broker.
    #[arg(long)]
    trace: bool,
    /// Classroom mode: high contrast, slower animation, presenter keys.
    #[arg(long)]
    classroom: bool,
    /// No colours (also when NO_COLOR is set).
    #[arg(long)]
    monochrome: bool,
    #[command(flatten)]
    limit: ResponseLimitArgs,
    #[command(flatten)]
    trust: TrustArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SnapshotFormat {
    Json,
    Yaml,
    /// Graphviz.
    Dot,
    /// An indented listing: each queue with its depths and its consumers by client.
    Text,
    /// RabbitMQ definitions JSON (loadable with `rabbitscope broker --definitions FILE`).
    Definitions,
}

#[derive(clap::Args)]
struct SnapshotArgs {
    /// The RabbitMQ, as an AMQP URL: amqp://user:pass@host:5672/vhost.
    source: String,
    #[arg(long, value_enum, default_value = "json")]
    format: SnapshotFormat,
    /// Its management API (default: same host, port 15672, https for amqps URLs).
    #[arg(long, value_name = "URL")]
    management: Option<String>,
    /// Only this vhost (default: every vhost the user may see).
    #[arg(long, value_name = "NAME")]
    vhost: Option<String>,
    #[command(flatten)]
    limit: ResponseLimitArgs,
    #[command(flatten)]
    trust: TrustArgs,
}

#[derive(clap::Args)]
struct TapArgs {
    /// The RabbitMQ, as an AMQP URL: amqp://user:pass@host:5672/vhost.
    source: String,
    /// Stop after this many lines.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Print only lines (without the time) this regular expression matches.
    #[arg(long, value_name = "REGEX")]
    filter: Option<regex::Regex>,
    /// Its management API (default: same host, port 15672, https for amqps URLs).
    #[arg(long, value_name = "URL")]
    management: Option<String>,
    #[command(flatten)]
    limit: ResponseLimitArgs,
    #[command(flatten)]
    trust: TrustArgs,
}

#[derive(Subcommand)]
enum LessonsCommand {
    /// List the lessons in DIR: order, id and title.
    List {
        /// The lesson folder (default: ./lessons, else the lessons shipped with the source).
        dir: Option<PathBuf>,
    },
    /// Load every lesson in DIR and run it, checking each expectation and predict answer;
    /// exits non-zero if any file is broken or anything does not hold.
    Check {
        /// The lesson folder (default: ./lessons, else the lessons shipped with the source).
        dir: Option<PathBuf>,
        /// Run on this RabbitMQ (amqp://user:pass@host:port/vhost; its management API on port
        /// 15672 turns tracing on) instead of a fresh embedded broker per lesson.
        #[arg(long, value_name = "URL")]
        broker: Option<String>,
        #[command(flatten)]
        trust: TrustArgs,
    },
}

#[derive(clap::Args)]
struct LearnArgs {
    /// The lesson's id; without it the menu opens.
    id: Option<String>,
    #[command(flatten)]
    view: ViewArgs,
}

#[derive(clap::Args)]
struct BrokerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5673")]
    listen: SocketAddr,
    #[command(flatten)]
    tls: TlsArgs,
    /// Add a vhost (repeatable); `/` always exists. Guest may do everything there.
    #[arg(long = "vhost", value_name = "NAME")]
    vhosts: Vec<String>,
    /// Load a RabbitMQ definitions JSON file (users, vhosts, permissions, topic permissions,
    /// exchanges, queues, bindings) at start. Permissions are enforced as RabbitMQ does.
    #[arg(long, value_name = "FILE")]
    definitions: Option<PathBuf>,
}

fn main() {
    // Errors are printed by hand: they may quote names from a broker or a file, which reach
    // the terminal only through `printable_lines`, so color-eyre's own colours are left out.
    let installed = color_eyre::config::HookBuilder::default()
        .theme(color_eyre::config::Theme::new())
        .install();
    if let Err(e) = installed.and_then(|()| run()) {
        // What went wrong and why, in the words of each cause: no source locations or
        // backtraces, which say nothing a user can act on.
        let causes: Vec<String> = e.chain().map(|cause| cause.to_string()).collect();
        eprintln!("error: {}", printable_lines(&causes.join(": ")));
        std::process::exit(1);
    }
}

/// Log lines that may wait for stderr before new ones are dropped.
const LOG_LINES_BUFFERED: usize = 1024;

/// A stderr writer that never blocks the broker: lines wait in a bounded buffer written by a
/// thread of its own and are dropped when it is full (a pipe nobody reads must not stop the
/// broker, which logs while holding its state lock). Once lines are dropped, a line saying how
/// many follows when the buffer has room again. The guard flushes what waits when dropped.
fn stderr_log_writer() -> (
    tracing_appender::non_blocking::NonBlocking,
    tracing_appender::non_blocking::WorkerGuard,
) {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_LINES_BUFFERED)
        .lossy(true)
        .thread_name("rabbitscope-log")
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    std::thread::Builder::new()
        .name("rabbitscope-log-drops".into())
        .spawn(move || {
            let (mut reported, mut last) = (0, 0);
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                let now = dropped.dropped_lines();
                // Said only once a second passed without a drop: the buffer drained.
                if now > reported && now == last {
                    tracing::warn!(
                        dropped = now - reported,
                        "log lines dropped: stderr was not read fast enough"
                    );
                    reported = now;
                }
                last = now;
            }
        })
        .ok();
    (writer, guard)
}

/// The view's own options, which only the view without a command reads.
const VIEW_OPTIONS: [&str; 7] = [
    "listen",
    "tls_cert",
    "tls_key",
    "tls_listen",
    "classroom",
    "monochrome",
    "lessons",
];

/// Parses the command line, refusing view options put before a command: clap takes them as
/// the command-less view's and the command would silently use its own defaults instead
/// (`rabbitscope --listen ADDR learn` served on 5673).
fn parse_command_line() -> Result<Cli> {
    use clap::parser::ValueSource;
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some((command, _)) = matches.subcommand() {
        let misplaced = VIEW_OPTIONS
            .iter()
            .find(|id| matches.value_source(id) == Some(ValueSource::CommandLine));
        if let Some(id) = misplaced {
            let flag = format!("--{}", id.replace('_', "-"));
            color_eyre::eyre::bail!(
                "{flag} before `{command}` would be ignored: a command's options go after it \
                 (see rabbitscope {command} --help)"
            );
        }
    }
    Ok(cli)
}

fn run() -> Result<()> {
    use rabbitscope::remote::firehose;
    raise_open_files_limit();
    let cli = parse_command_line()?;
    let lang = cli.lang.unwrap_or_else(Lang::from_env);
    match cli.command {
        Some(Command::Lessons { command }) => match command {
            LessonsCommand::List { dir } => {
                lessons_list(&dir.unwrap_or_else(default_lessons_dir), lang)
            }
            LessonsCommand::Check { dir, broker, trust } => {
                trust.apply()?;
                // A lesson checked against RabbitMQ reads its firehose.
                firehose::allow_deep_headers();
                let dir = dir.unwrap_or_else(default_lessons_dir);
                firehose::on_deep_stack(move || {
                    tokio::runtime::Runtime::new()?.block_on(lessons_check(&dir, broker, lang))
                })
            }
        },
        Some(Command::Broker(args)) => {
            // Logs go to stderr in headless mode only; they would scribble over the view.
            let (stderr, _flush_on_exit) = stderr_log_writer();
            tracing_subscriber::fmt()
                .with_writer(stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .init();
            tokio::runtime::Runtime::new()?.block_on(run_broker(args, &cli.store))
        }
        Some(Command::Learn(args)) => {
            let broker_runtime = broker_runtime()?;
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(run_view(
                    args.view,
                    &cli.store,
                    args.id,
                    lang,
                    broker_runtime.handle().clone(),
                ))
        }
        Some(Command::Watch(args)) => {
            args.trust.apply()?;
            firehose::allow_deep_headers();
            firehose::turn_off_on_panic();
            run_watch(args, lang)
        }
        Some(Command::Snapshot(args)) => {
            args.trust.apply()?;
            tokio::runtime::Runtime::new()?.block_on(run_snapshot(args))
        }
        Some(Command::Tap(args)) => {
            args.trust.apply()?;
            firehose::allow_deep_headers();
            firehose::turn_off_on_panic();
            firehose::on_deep_stack(|| tokio::runtime::Runtime::new()?.block_on(run_tap(args)))
        }
        Some(Command::Record(args)) => {
            args.trust.apply()?;
            firehose::allow_deep_headers();
            firehose::turn_off_on_panic();
            firehose::on_deep_stack(|| tokio::runtime::Runtime::new()?.block_on(run_record(args)))
        }
        Some(Command::Replay(args)) => run_replay(args, lang),
        None => {
            let broker_runtime = broker_runtime()?;
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(run_view(
                    cli.view,
                    &cli.store,
                    None,
                    lang,
                    broker_runtime.handle().clone(),
                ))
        }
    }
}

/// The view gets the main thread and a runtime of its own; the embedded broker (and the lesson
/// runner) run on worker threads of lower priority, so a key is drawn promptly however busy the
/// broker is (the view itself needs little CPU).
fn broker_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("broker")
        .on_thread_start(lower_this_thread_priority)
        .build()
}

/// Every client connection is an open file. Many systems start programs with a soft limit of
/// 1,024 (RabbitMQ started that way takes only 832 sockets); the hard limit is usually far
/// higher, and raising the soft one to it needs no privilege.
fn raise_open_files_limit() {
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

/// The live view on an embedded broker.
async fn run_view(
    args: ViewArgs,
    store: &StoreArgs,
    lesson_id: Option<String>,
    lang: Lang,
    broker_runtime: tokio::runtime::Handle,
) -> Result<()> {
    let dir = args.lessons.clone().unwrap_or_else(default_lessons_dir);
    let (found, errors) = rabbitscope::lesson::load_each(&dir);
    let lessons: Vec<_> = found.into_iter().map(std::sync::Arc::new).collect();
    let start = match &lesson_id {
        Some(id) => Some(
            lessons
                .iter()
                .position(|l| l.id == *id)
                .ok_or_else(|| eyre!("no lesson '{id}' in {}", dir.display()))?,
        ),
        None => None,
    };
    let lessons = rabbitscope::ui::LessonSetup {
        lessons,
        errors: errors.iter().map(|e| e.to_string()).collect(),
        start,
        runtime: Some(broker_runtime.clone()),
    };
    let listen = args.listen;
    let config = store.config(listen, Ok)?;
    let broker = open_broker(config)?;
    let tls = args.tls.clone();
    let server = broker_runtime
        .spawn(bind(broker.clone(), listen, tls))
        .await??;
    let address = server.local_addr().to_string();
    let tls_address = server.tls_local_addr();
    broker_runtime.spawn(server.run());
    let options = rabbitscope::ui::app::ViewOptions {
        classroom: args.classroom,
        monochrome: args.monochrome || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        lang,
        notice: exposure_warning(listen).or_else(|| exposure_warning(tls_address?)),
        tls_address,
    };
    let source = std::sync::Arc::new(rabbitscope::source::Embedded(broker));
    rabbitscope::ui::run(source, &address, options, lessons).await
}

/// The live view on a RabbitMQ. As with the embedded broker, the view has the main thread and
/// the polling and firehose tasks run on the lower-priority runtime.
fn run_watch(args: WatchArgs, lang: Lang) -> Result<()> {
    use rabbitscope::remote::{Endpoint, RemoteOptions, RemoteSource};
    if !(args.interval.is_finite() && args.interval > 0.0) {
        return Err(eyre!("--interval must be a positive number of seconds"));
    }
    let mut endpoint =
        Endpoint::new(&args.url, args.management.as_deref()).map_err(|e| eyre!(e))?;
    args.limit.apply(&mut endpoint);
    let masked = endpoint.masked_url();
    let options = RemoteOptions {
        interval: std::time::Duration::from_secs_f64(args.interval),
        trace: args.trace,
    };
    if args.trace {
        eprintln!(
            "warning: --trace turns on tracing for vhost '{}' while watching; every message is \
             copied to amq.rabbitmq.trace, which slows the broker",
            printable(&endpoint.vhost)
        );
    }
    let broker_runtime = broker_runtime()?;
    broker_runtime.block_on(refuse_embedded(&endpoint))?;
    broker_runtime.block_on(check_vhost(&endpoint))?;
    // Handlers go in before tracing may be turned on: a signal while the view is not up yet
    // still turns it off (the view listens for the same signals itself).
    let stop = {
        let _inside = broker_runtime.enter();
        shutdown_signal()?
    };
    let source = {
        let _inside = broker_runtime.enter();
        std::sync::Arc::new(RemoteSource::start(endpoint, options).map_err(|e| eyre!(e))?)
    };
    // The view opens on a first picture if one comes soon; if not, on trouble and an empty one.
    let stopped = broker_runtime.block_on(async {
        tokio::select! {
            _ = stop => true,
            _ = source.refreshed(1, std::time::Duration::from_secs(5)) => false,
        }
    });
    if stopped {
        if let Ok(source) = std::sync::Arc::try_unwrap(source) {
            broker_runtime.block_on(source.close());
        }
        return Ok(());
    }
    let view_options = rabbitscope::ui::app::ViewOptions {
        classroom: args.classroom,
        monochrome: args.monochrome || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        lang,
        notice: None,
        tls_address: None,
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(rabbitscope::ui::run(
            source.clone(),
            &masked,
            view_options,
            rabbitscope::ui::LessonSetup::default(),
        ));
    // Tracing goes off again (if this turned it on) before the process ends.
    if let Ok(source) = std::sync::Arc::try_unwrap(source) {
        broker_runtime.block_on(source.close());
    }
    result
}

/// The management API's picture (of one vhost, or of all), or a clear word on why there is none.
async fn remote_snapshot(
    url: &str,
    management: Option<&str>,
    vhost: Option<&str>,
    limit: ResponseLimitArgs,
) -> Result<(
    rabbitscope::remote::Management,
    rabbitscope::broker::Snapshot,
)> {
    use rabbitscope::broker::Snapshot;
    use rabbitscope::remote::management::ErrorKind;
    use rabbitscope::remote::{snapshot, Endpoint, Management};
    let mut endpoint = Endpoint::new(url, management).map_err(|e| eyre!(e))?;
    limit.apply(&mut endpoint);
    refuse_embedded(&endpoint).await?;
    let api = Management::new(&endpoint).map_err(|e| eyre!("{e}"))?;
    let read = match vhost {
        Some(name) => snapshot::vhost_snapshot(&api, name)
            .await
            .map(|v| Snapshot { vhosts: vec![v] }),
        None => snapshot(&api).await,
    };
    match read {
        Ok(snapshot) => Ok((api, snapshot)),
        Err(e) if e.kind == ErrorKind::NotFound && vhost.is_some() => {
            // The API answered for the vhosts list before; a 404 here is the vhost.
            match api.vhost_names().await {
                Ok(names) if !names.iter().any(|n| Some(n.as_str()) == vhost) => Err(eyre!(
                    "there is no vhost '{}' at {}",
                    vhost.unwrap_or_default(),
                    api.url()
                )),
                _ => Err(eyre!("{e}")),
            }
        }
        Err(e) if matches!(e.kind, ErrorKind::Unreachable | ErrorKind::NotFound) => {
            Err(eyre!("{e}\n{MANAGEMENT_NEEDED}"))
        }
        Err(e) => Err(eyre!("{e}")),
    }
}

/// What remote mode needs, said when the management API cannot be reached.
const MANAGEMENT_NEEDED: &str = "this needs RabbitMQ's management plugin (rabbitmq-plugins \
    enable rabbitmq_management; --management URL if it is not on port 15672); rabbitscope's \
    embedded broker has no management API";

/// Asks the management API for the URL's vhost before anything is turned on, so a wrong
/// password, an unknown vhost or no API at all is one clear error rather than trouble later.
async fn check_vhost(endpoint: &rabbitscope::remote::Endpoint) -> Result<()> {
    use rabbitscope::remote::management::ErrorKind;
    use rabbitscope::remote::Management;
    let api = Management::new(endpoint).map_err(|e| eyre!("{e}"))?;
    let vhost = &endpoint.vhost;
    match api.vhost(vhost).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind == ErrorKind::NotFound => match api.vhost_names().await {
            Ok(names) => {
                let mut known: Vec<String> =
                    names.iter().take(10).map(|n| format!("'{n}'")).collect();
                if names.len() > 10 {
                    known.push(format!("and {} more", names.len() - 10));
                }
                Err(eyre!(
                    "there is no vhost '{vhost}' at {} (the URL's path names the vhost; this \
                     user may see {})",
                    api.url(),
                    known.join(", ")
                ))
            }
            Err(_) => Err(eyre!("{e}\n{MANAGEMENT_NEEDED}")),
        },
        Err(e) if e.kind == ErrorKind::Unreachable => Err(eyre!("{e}\n{MANAGEMENT_NEEDED}")),
        Err(e) => Err(eyre!("{e}")),
    }
}

/// Remote mode reads a management API; rabbitscope's own broker has none, and the one on its
/// host's port 15672 (if any) is another broker's.
async fn refuse_embedded(endpoint: &rabbitscope::remote::Endpoint) -> Result<()> {
    if rabbitscope::remote::is_embedded_broker(&endpoint.amqp_url).await {
        return Err(eyre!(
            "{} is rabbitscope's embedded broker, which has no management API; this command \
             needs a RabbitMQ with the management plugin (for the embedded broker, run \
             `rabbitscope` without a command)",
            endpoint.masked_url()
        ));
    }
    Ok(())
}

/// `rabbitscope snapshot`: the topology on stdout.
async fn run_snapshot(args: SnapshotArgs) -> Result<()> {
    let (api, snapshot) = remote_snapshot(
        &args.source,
        args.management.as_deref(),
        args.vhost.as_deref(),
        args.limit,
    )
    .await?;
    let text = match args.format {
        SnapshotFormat::Json => {
            rabbitscope::terminal::json(serde_json::to_string_pretty(&snapshot)?) + "\n"
        }
        SnapshotFormat::Yaml => serde_yaml::to_string(&snapshot)?,
        SnapshotFormat::Dot => rabbitscope::remote::render::dot(&snapshot),
        SnapshotFormat::Text => rabbitscope::remote::render::text(&snapshot),
        SnapshotFormat::Definitions => {
            // Who may use each vhost, so a broker loading the file lets them in (reading
            // permissions takes an administrator; without, the file has none).
            let mut permissions = Vec::new();
            for v in &snapshot.vhosts {
                match api.permissions(&v.name).await {
                    Ok(p) => permissions.extend(p),
                    Err(e) => eprintln!(
                        "permissions of vhost '{}' left out: {}",
                        printable(&v.name),
                        printable(&e.to_string())
                    ),
                }
            }
            let definitions = rabbitscope::remote::render::definitions(&snapshot, &permissions);
            rabbitscope::terminal::json(serde_json::to_string_pretty(&definitions)?) + "\n"
        }
    };
    print!("{text}");
    Ok(())
}

/// `rabbitscope tap`: one line per publish until --count lines, SIGINT or SIGTERM; tracing goes
/// off again on every way out if this turned it on.
async fn run_tap(args: TapArgs) -> Result<()> {
    use rabbitscope::remote::firehose::{tap_line, Trace, Tracing};
    use rabbitscope::remote::{Endpoint, Firehose, FirehoseKeys, Management};
    let mut endpoint =
        Endpoint::new(&args.source, args.management.as_deref()).map_err(|e| eyre!(e))?;
    args.limit.apply(&mut endpoint);
    refuse_embedded(&endpoint).await?;
    check_vhost(&endpoint).await?;
    let api = Management::new(&endpoint).map_err(|e| eyre!("{e}"))?;
    // Handlers go in first: a SIGINT from now on still turns tracing off.
    let stop = shutdown_signal()?;
    let mut tracing = Tracing::new(api.clone(), &endpoint.vhost);
    tracing.ensure_on().await.map_err(|e| eyre!("{e}"))?;
    let result = tap_lines(&args, &endpoint, &api, stop).await;
    if let Err(e) = tracing.release().await {
        eprintln!(
            "could not turn tracing off again: {}",
            printable(&e.to_string())
        );
    }
    return result;

    async fn tap_lines(
        args: &TapArgs,
        endpoint: &Endpoint,
        api: &Management,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        let mut firehose = Firehose::open(&endpoint.amqp_url, FirehoseKeys::Publish)
            .await
            .map_err(|e| eyre!("{e} ({})", endpoint.masked_url()))?;
        tokio::pin!(stop);
        let mut printed = 0;
        // The default exchange's trace names the queue it was sent to, existing or not.
        let mut known = std::collections::BTreeMap::new();
        let result = loop {
            if args.count.is_some_and(|n| printed >= n) {
                break Ok(());
            }
            let trace = tokio::select! {
                _ = &mut stop => break Ok(()),
                trace = firehose.next() => trace,
            };
            let (exchange, routing_key, mut queues) = match trace {
                Ok(Trace::Published {
                    exchange,
                    routing_key,
                    queues,
                    ..
                }) => (exchange, routing_key, queues),
                Ok(_) => continue,
                Err(e) => break Err(eyre!("{e}")),
            };
            if exchange.is_empty() {
                let mut existing = Vec::new();
                for queue in queues {
                    let exists = match known.get(&queue) {
                        Some(exists) => *exists,
                        None => {
                            let exists = api
                                .queue_exists(&endpoint.vhost, &queue)
                                .await
                                .unwrap_or(true);
                            known.insert(queue.clone(), exists);
                            exists
                        }
                    };
                    if exists {
                        existing.push(queue);
                    }
                }
                queues = existing;
            }
            let line = tap_line(
                std::time::SystemTime::now(),
                &exchange,
                &routing_key,
                &queues,
            );
            // The time is left out of what the filter sees.
            let shown = line.split_once(' ').map_or(line.as_str(), |(_, rest)| rest);
            if args.filter.as_ref().is_some_and(|f| !f.is_match(shown)) {
                continue;
            }
            println!("{line}");
            printed += 1;
        };
        firehose.close().await;
        result
    }
}

/// `rabbitscope record`: a trace of what the RabbitMQ does, from its management API (topology
/// changes) and firehose (messages); tracing goes off again on every way out if this turned it
/// on, and the file is whole whenever it stops.
async fn run_record(args: RecordArgs) -> Result<()> {
    use rabbitscope::remote::{Endpoint, RemoteOptions, RemoteSource};
    use rabbitscope::source::Source;
    use rabbitscope::trace::{self, Header, Limits, TraceWriter};
    let duration = match args.duration {
        Some(s) if s.is_finite() && s > 0.0 => Some(std::time::Duration::from_secs_f64(s)),
        Some(_) => return Err(eyre!("--duration must be a positive number of seconds")),
        None => None,
    };
    let mut endpoint =
        Endpoint::new(&args.source, args.management.as_deref()).map_err(|e| eyre!(e))?;
    args.limit.apply(&mut endpoint);
    refuse_embedded(&endpoint).await?;
    check_vhost(&endpoint).await?;
    // Handlers go in first: a SIGINT from now on still closes the file and turns tracing off.
    let stop = shutdown_signal()?;
    let masked = endpoint.masked_url();
    let vhost = endpoint.vhost.clone();
    let options = RemoteOptions {
        trace: true,
        ..RemoteOptions::default()
    };
    let source = RemoteSource::start(endpoint, options).map_err(|e| eyre!(e))?;
    let result = async {
        if !source
            .refreshed(1, std::time::Duration::from_secs(10))
            .await
        {
            let why = source.trouble().unwrap_or_else(|| "no answer".into());
            // It stops here rather than retry, whatever the trouble says.
            let why = why
                .split("; retrying")
                .next()
                .unwrap_or_default()
                .to_string();
            return Err(eyre!("cannot read the topology of {masked}: {why}"));
        }
        // Subscribed before the snapshot is taken: nothing falls between the two.
        let reader = source.subscribe();
        let header = Header {
            format: trace::FORMAT_VERSION,
            source: masked.clone(),
            vhost,
            recorded_at: std::time::SystemTime::now(),
            snapshot: source.snapshot(),
        };
        let mut writer = TraceWriter::create(&args.output, &header)
            .wrap_err_with(|| format!("cannot write {}", args.output.display()))?;
        eprintln!(
            "recording {masked} to {} (Ctrl-C stops)",
            args.output.display()
        );
        let limits = Limits {
            count: args.count,
            duration,
        };
        // The firehose retries on its own; while it cannot, say why rather than record
        // nothing in silence.
        let tell_trouble = async {
            let mut told = None;
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let trouble = source.trouble();
                if trouble != told {
                    match &trouble {
                        Some(why) => eprintln!("{}", printable(why)),
                        None => eprintln!("{masked} answers again"),
                    }
                    told = trouble;
                }
            }
        };
        let recorded = tokio::select! {
            recorded = trace::record(reader, &mut writer, limits, stop) => recorded,
            never = tell_trouble => never,
        };
        let events = writer.finish();
        let recorded = recorded.wrap_err_with(|| format!("writing {}", args.output.display()))?;
        events.wrap_err_with(|| format!("writing {}", args.output.display()))?;
        Ok(recorded)
    }
    .await;
    source.close().await;
    let recorded = result?;
    let missed = if recorded.missed > 0 {
        format!(" ({} missed: the recorder fell behind)", recorded.missed)
    } else {
        String::new()
    };
    let noun = if recorded.events == 1 {
        "event"
    } else {
        "events"
    };
    println!(
        "{} {noun} written to {}{missed}",
        recorded.events,
        args.output.display()
    );
    Ok(())
}

/// `rabbitscope replay`: the view on a trace, played back at its recorded pace.
fn run_replay(args: ReplayArgs, lang: Lang) -> Result<()> {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        return Err(eyre!("--speed must be a positive number"));
    }
    use rabbitscope::trace::ReplaySource;
    if args.follow {
        // The header names the source for the status line.
        let (trace, _) =
            rabbitscope::trace::TraceTail::open(&args.file).map_err(|e| eyre!("{e}"))?;
        let address = format!(
            "replay of {} ({}), following",
            args.file.display(),
            trace.header.source
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        return runtime.block_on(async {
            let source = ReplaySource::follow(&args.file, args.speed).map_err(|e| eyre!("{e}"))?;
            rabbitscope::ui::run(
                std::sync::Arc::new(source),
                &address,
                replay_view_options(&args, lang),
                rabbitscope::ui::LessonSetup::default(),
            )
            .await
        });
    }
    let trace = rabbitscope::trace::read(&args.file).map_err(|e| eyre!("{e}"))?;
    if trace.truncated {
        eprintln!(
            "{}: the last event was cut short (a recording that did not finish); replaying \
             the {} before it",
            args.file.display(),
            trace.events.len()
        );
    }
    let address = format!(
        "replay of {} ({})",
        args.file.display(),
        trace.header.source
    );
    let view_options = replay_view_options(&args, lang);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let source = std::sync::Arc::new(ReplaySource::start(trace, args.speed));
        rabbitscope::ui::run(
            source,
            &address,
            view_options,
            rabbitscope::ui::LessonSetup::default(),
        )
        .await
    })
}

fn replay_view_options(args: &ReplayArgs, lang: Lang) -> rabbitscope::ui::app::ViewOptions {
    rabbitscope::ui::app::ViewOptions {
        classroom: args.classroom,
        monochrome: args.monochrome || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        lang,
        notice: None,
        tls_address: None,
    }
}

/// A broker on an address other hosts can reach says so: anyone who can reach it may try to
/// log in (guest is still refused from other hosts, as RabbitMQ does).
fn exposure_warning(address: SocketAddr) -> Option<String> {
    (!address.ip().to_canonical().is_loopback()).then(|| {
        format!(
            "listening on {address}, not only on loopback: other hosts can connect (guest only \
             from this machine)"
        )
    })
}

/// `./lessons` when it exists, else the lessons beside the source this binary was built from.
fn default_lessons_dir() -> PathBuf {
    let here = PathBuf::from("lessons");
    if here.is_dir() {
        here
    } else {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/lessons"))
    }
}

/// The plain listener, and the amqps one when a certificate is given. The certificate is read
/// first, so a bad file is reported before anything listens.
async fn bind(broker: std::sync::Arc<Broker>, listen: SocketAddr, tls: TlsArgs) -> Result<Server> {
    let tls_config = match (&tls.tls_cert, &tls.tls_key) {
        (Some(cert), Some(key)) => {
            Some(rabbitscope::tls::server_config(cert, key).map_err(|e| eyre!(e))?)
        }
        _ => None,
    };
    let mut server = Server::bind(broker, listen)
        .await
        .map_err(|e| eyre!("cannot listen on {listen}: {e}"))?;
    if let Some(config) = tls_config {
        let address = tls.tls_listen;
        server
            .listen_tls(address, config)
            .await
            .map_err(|e| eyre!("cannot listen for amqps on {address}: {e}"))?;
    }
    Ok(server)
}

/// Opens the broker, naming its data directory when that fails.
fn open_broker(config: BrokerConfig) -> Result<std::sync::Arc<Broker>> {
    let dir = config.data_dir.clone();
    Broker::open(config).map_err(|e| match dir {
        Some(dir) => eyre!("cannot open the data directory {}: {e}", dir.display()),
        None => eyre!("cannot start the broker: {e}"),
    })
}

async fn run_broker(args: BrokerArgs, store: &StoreArgs) -> Result<()> {
    let definitions = match &args.definitions {
        Some(path) => Some(
            rabbitscope::definitions::read_file(path)
                .wrap_err_with(|| format!("loading definitions from {}", path.display()))?,
        ),
        None => None,
    };
    let config = store.config(args.listen, |mut config| {
        for vhost in &args.vhosts {
            config = config.with_vhost(vhost);
        }
        match &definitions {
            Some(defs) => Ok(defs.configure(config)?),
            None => Ok(config),
        }
    })?;
    let broker = open_broker(config)?;
    if let Some(defs) = &definitions {
        defs.declare(&broker)?;
    }
    let server = bind(broker, args.listen, args.tls).await?;
    // Handlers go in before the address is announced, so a signal right after it is caught.
    let stop = shutdown_signal()?;
    let addresses = std::iter::once(server.local_addr()).chain(server.tls_local_addr());
    for address in addresses {
        if let Some(warning) = exposure_warning(address) {
            tracing::warn!(%address, "{warning}");
        }
    }
    let data_dir = server.broker().data_dir().map(|d| d.display().to_string());
    let address = server.local_addr();
    // The plain address goes last: scripts read it up to the end of the line.
    match (data_dir, server.tls_local_addr()) {
        (Some(dir), Some(amqps)) => {
            tracing::info!(data_dir = %dir, amqps_address = %amqps, address = %address, "broker listening")
        }
        (Some(dir), None) => {
            tracing::info!(data_dir = %dir, address = %address, "broker listening")
        }
        (None, Some(amqps)) => {
            tracing::info!(amqps_address = %amqps, address = %address, "broker listening (transient: nothing kept on disk)")
        }
        (None, None) => {
            tracing::info!(address = %address, "broker listening (transient: nothing kept on disk)")
        }
    }
    server.run_until(stop).await;
    tracing::info!("broker stopped");
    Ok(())
}

/// `rabbitscope lessons list`: one line per lesson; broken files on stderr.
fn lessons_list(dir: &Path, lang: Lang) -> Result<()> {
    let (lessons, errors) = lesson::load_each(dir);
    for l in &lessons {
        println!(
            "{:>3}  {:<28} {}",
            l.order,
            printable(&l.id),
            printable(l.title.get(lang))
        );
    }
    for e in &errors {
        eprintln!("{}", printable_lines(&e.to_string()));
    }
    if !errors.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

/// `rabbitscope lessons check`: one line per lesson (ok or FAILED, with the reasons below it).
async fn lessons_check(dir: &Path, broker: Option<String>, lang: Lang) -> Result<()> {
    let (lessons, errors) = lesson::load_each(dir);
    let mut failed = errors.len();
    for e in &errors {
        println!("FAILED  {}", e.path.display());
        println!("    {}", printable_lines(&e.to_string()));
    }
    if lessons.is_empty() && errors.is_empty() {
        println!("no lessons (*.yaml) in {}", dir.display());
    }
    for l in &lessons {
        let target = match &broker {
            Some(url) => Target::RabbitMq { url: url.clone() },
            None => Target::Embedded,
        };
        let check = lesson::check_lesson(l, target, lang).await;
        if check.ok() {
            println!(
                "ok      {} ({})",
                printable(&check.id),
                check.path.display()
            );
            for note in &check.notes {
                println!("    note: {}", printable_lines(note));
            }
        } else {
            failed += 1;
            println!(
                "FAILED  {} ({})",
                printable(&check.id),
                check.path.display()
            );
            for failure in &check.failures {
                println!("    {}", printable_lines(&failure.to_string()));
            }
        }
    }
    let total = lessons.len() + errors.len();
    let noun = if total == 1 { "lesson" } else { "lessons" };
    println!("{total} {noun}: {} ok, {failed} failed", total - failed);
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// A future that completes on SIGINT, SIGTERM, SIGHUP or SIGQUIT; the handlers are installed
/// at once.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    Ok(rabbitscope::stop::stop_signal()?)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_read_as_rabbitmq_writes_them() {
        assert_eq!(parse_size("50000000"), Ok(50_000_000));
        assert_eq!(parse_size("50MB"), Ok(50_000_000));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("50 furlongs").is_err());
        assert!(parse_size("MB").is_err());
        assert!(parse_size("99999999999GB").is_err());
    }
}
