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
// link. It is the allocator we want: with the view's event reader, the broker allocates an
// event on its threads and the reader frees it on another, and there glibc's malloc cost the
// broker 19% more CPU per message than mimalloc (1.85 against 1.55 µs, the same with no
// reader); BENCHMARKS.md, section 2, "The allocator, measured again" (benches/throughput.rs).

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
        Some(Command::Doctor(args)) => return Ok(cli::doctor::run(args)),
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
