//! The command line: its arguments ([`Cli`], [`Command`]) and one file per command.
//!
//! - `view.rs`: the live view on the embedded broker (no command, and `learn`), and the view's
//!   display options every command that opens the view shares.
//! - `watch.rs`, `snapshot.rs`, `tap.rs`, `record.rs`: commands on a running RabbitMQ;
//!   `remote.rs` holds what they share (trust, answer size, the checks before they start).
//! - `doctor.rs`: what is wrong with a running RabbitMQ, or with a definitions file.
//! - `replay.rs`: the view on a trace file.
//! - `broker.rs`: the embedded broker alone, writing a trace with --record; `embedded.rs` holds
//!   how the view and it open and bind the broker.
//! - `lessons.rs`: listing and checking lesson files.
//! - `runtime.rs`: the tokio runtimes, the open-files limit, the stop signals.
//!
//! This is a module of the binary, not of the library: the library never sees clap's types.
//! A command's file imports the library and this folder's shared files (`embedded`, `remote`,
//! `runtime`, `view`), never another command's file.

pub mod broker;
pub mod doctor;
pub mod embedded;
pub mod lessons;
pub mod record;
pub mod remote;
pub mod replay;
pub mod runtime;
pub mod snapshot;
pub mod tap;
pub mod view;
pub mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use color_eyre::eyre::{bail, Result};

use rabbitscope::lesson::Lang;
use rabbitscope::terminal::printable_lines;

/// See RabbitMQ routing happen. Without a command: the live view on the embedded broker.
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub view: view::ViewArgs,
    /// Language of lesson texts: en or zh (default: from LC_ALL, LC_MESSAGES or LANG).
    #[arg(long, global = true, value_name = "LANG")]
    pub lang: Option<Lang>,
    #[command(flatten)]
    pub store: embedded::StoreArgs,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the embedded AMQP 0-9-1 broker alone, until SIGINT, SIGTERM, SIGHUP or SIGQUIT.
    Broker(broker::BrokerArgs),
    /// List lesson files, or check that every expectation in them holds.
    Lessons {
        #[command(subcommand)]
        command: lessons::LessonsCommand,
    },
    /// The live view, straight into a lesson (by id, e.g. `topic-exchange`), or its menu.
    Learn(view::LearnArgs),
    /// The live view on a running RabbitMQ (through its management API).
    Watch(watch::WatchArgs),
    /// Print the topology of a RabbitMQ: exchanges, queues, bindings.
    Snapshot(snapshot::SnapshotArgs),
    /// Print one line per published message and the queues it reached.
    ///
    /// From RabbitMQ's firehose: tracing is on for the URL's vhost while it runs, and off
    /// again when it stops (if it was off before).
    Tap(tap::TapArgs),
    /// Record a RabbitMQ's events to a trace file, until --count, --duration or SIGINT.
    ///
    /// Tracing is on for the URL's vhost while it runs, as with `tap`.
    Record(record::RecordArgs),
    /// The view replaying a trace file (space pauses, + and - change the speed, . steps).
    Replay(replay::ReplayArgs),
    /// What is wrong with a RabbitMQ (or a definitions file), or will be on RabbitMQ 4.x.
    ///
    /// Each finding says what was seen, why it matters and the fix, most serious first. Exit
    /// code 0 when nothing at or above --fail-on was found, 1 when something was, 2 when the
    /// broker or file could not be read.
    Doctor(doctor::DoctorArgs),
}

/// What parsing the command line came to.
pub enum Parsed {
    /// A command to run.
    Run(Box<Cli>),
    /// clap answered already (help, version, or a usage error it printed): exit with this.
    Answered(ExitCode),
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
pub fn parse() -> Result<Parsed> {
    use clap::parser::ValueSource;
    use clap::{CommandFactory, FromArgMatches};
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|matches| Ok((Cli::from_arg_matches(&matches)?, matches)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(answer) => {
            // As clap's own exit would: help on stdout, a usage error on stderr.
            let _ = answer.print();
            return Ok(Parsed::Answered(ExitCode::from(answer.exit_code() as u8)));
        }
    };
    if let Some((command, _)) = matches.subcommand() {
        let misplaced = VIEW_OPTIONS
            .iter()
            .find(|id| matches.value_source(id) == Some(ValueSource::CommandLine));
        if let Some(id) = misplaced {
            let flag = format!("--{}", id.replace('_', "-"));
            bail!(
                "{flag} before `{command}` would be ignored: a command's options go after it \
                 (see rabbitscope {command} --help)"
            );
        }
    }
    Ok(Parsed::Run(Box::new(cli)))
}

/// Prints an error the way every command reports one, and gives the exit code 1.
///
/// What went wrong and why, in the words of each cause: no source locations or backtraces,
/// which say nothing a user can act on. The text may quote names from a broker or a file, so it
/// reaches the terminal only through `printable_lines`.
pub fn report(error: &color_eyre::Report) -> ExitCode {
    let causes: Vec<String> = error.chain().map(|cause| cause.to_string()).collect();
    eprintln!("error: {}", printable_lines(&causes.join(": ")));
    ExitCode::FAILURE
}
