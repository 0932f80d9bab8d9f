//! `rabbitscope replay`: the view on a trace file, played back at its recorded pace (or
//! following a file a `record` still writes).
//!
//! It imports the library's trace module and the view; never the embedded broker or remote.

use std::path::PathBuf;
use std::sync::Arc;

use color_eyre::eyre::{eyre, Result};

use rabbitscope::lesson::Lang;
use rabbitscope::trace::{self, ReplaySource};

use super::runtime::{runtime, Threads};
use super::view::DisplayArgs;

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The trace file (written by `rabbitscope record`).
    file: PathBuf,
    /// How much faster than recorded (0.5: half as fast).
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    speed: f64,
    /// Keep reading events appended to the file (a `record` still writing it), like tail -f.
    #[arg(long, short = 'f')]
    follow: bool,
    #[command(flatten)]
    display: DisplayArgs,
}

/// `rabbitscope replay`. The file is read before the view opens, so a bad file is an error on
/// the terminal rather than an empty view.
pub fn run(args: ReplayArgs, lang: Lang) -> Result<()> {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        return Err(eyre!("--speed must be a positive number"));
    }
    // A followed file is opened once the runtime is up (its reader is a task of its own).
    let whole = if args.follow {
        None
    } else {
        let trace = trace::read(&args.file)?;
        if trace.truncated {
            eprintln!(
                "{}: the last event was cut short (a recording that did not finish); replaying \
                 the {} before it",
                args.file.display(),
                trace.events.len()
            );
        }
        Some(trace)
    };
    runtime(Threads::View)?.block_on(async {
        // Both start tasks of their own, hence inside the runtime.
        let source = match whole {
            Some(trace) => ReplaySource::start(trace, args.speed),
            None => ReplaySource::follow(&args.file, args.speed)?,
        };
        // The status line names the file.
        let source = source.from_file(&args.file);
        rabbitscope::ui::run(
            Arc::new(source),
            args.display.view_options(lang),
            rabbitscope::ui::LessonSetup::default(),
        )
        .await
    })
}
