//! The rabbitscope command line: parses the arguments and hands each command to its file in
//! `cli/`. Nothing else lives here.

mod cli;

use std::process::ExitCode;

use color_eyre::eyre::Result;

use cli::{Command, Parsed};
use rabbitscope::lesson::Lang;

// The global allocator is mimalloc, and this crate does not declare it: rbase64 (a dependency
// of rabbitmq_http_client, which no feature leaves out) declares `#[global_allocator]
// MiMalloc` for every program that links the library, and a second declaration here would not
// link. It is the allocator we want: the broker allocates a message, its events and its frames
// on one thread and frees them on another. Measured with examples/throughput.rs when this crate
// still declared it (BENCHMARKS.md, section 2), an event reader cost the broker 15.3% more CPU
// per message with glibc's malloc and 7.7% with mimalloc; see BENCHMARKS.md for the figures
// taken again without it.

fn main() -> ExitCode {
    // Errors are printed by `cli::report`, so color-eyre's own colours are left out.
    let installed = color_eyre::config::HookBuilder::default()
        .theme(color_eyre::config::Theme::new())
        .install();
    match installed.and_then(|()| run()) {
        Ok(code) => code,
        Err(error) => cli::report(&error),
    }
}

/// Parses the command line and runs the command it names.
fn run() -> Result<ExitCode> {
    cli::runtime::raise_open_files_limit();
    let command_line = match cli::parse()? {
        Parsed::Run(command_line) => command_line,
        Parsed::Answered(code) => return Ok(code),
    };
    let lang = command_line.lang.unwrap_or_else(Lang::from_env);
    let store = &command_line.store;
    let ran = match command_line.command {
        Some(Command::Lessons { command }) => return cli::lessons::run(command, lang),
        Some(Command::Broker(args)) => cli::broker::run(args, store),
        Some(Command::Learn(args)) => cli::view::learn(args, store, lang),
        Some(Command::Watch(args)) => cli::watch::run(args, lang),
        Some(Command::Snapshot(args)) => cli::snapshot::run(args),
        Some(Command::Tap(args)) => cli::tap::run(args),
        Some(Command::Record(args)) => cli::record::run(args),
        Some(Command::Replay(args)) => cli::replay::run(args, lang),
        None => cli::view::run(command_line.view, store, None, lang),
    };
    ran.map(|()| ExitCode::SUCCESS)
}
