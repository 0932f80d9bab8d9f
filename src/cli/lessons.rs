//! `rabbitscope lessons`: listing the lesson files, and checking that every expectation in
//! them holds (on a fresh embedded broker per lesson, or on a RabbitMQ).
//!
//! Both exit non-zero when a file is broken or a check fails: they return the exit code
//! rather than an error, since what failed is already printed. It imports the library's
//! lesson module; never the view.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use color_eyre::eyre::Result;

use rabbitscope::lesson::{self, Lang, Target};
use rabbitscope::remote::firehose;
use rabbitscope::terminal::{printable, printable_lines};

use super::remote::TrustArgs;
use super::runtime::{runtime, Threads};
use super::view::default_lessons_dir;

#[derive(clap::Subcommand)]
pub enum LessonsCommand {
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
        /// 15672 turns tracing on) instead of a fresh embedded broker per lesson. A lesson with
        /// `behave_as`, `permit` or `deny` (its own or a `restart`'s) still runs on the embedded
        /// broker, with a note.
        #[arg(long, value_name = "URL")]
        broker: Option<String>,
        #[command(flatten)]
        trust: TrustArgs,
    },
}

/// `rabbitscope lessons list` or `rabbitscope lessons check`.
pub fn run(command: LessonsCommand, lang: Lang) -> Result<ExitCode> {
    match command {
        LessonsCommand::List { dir } => Ok(list(&dir.unwrap_or_else(default_lessons_dir), lang)),
        LessonsCommand::Check { dir, broker, trust } => {
            trust.apply()?;
            // A lesson checked against RabbitMQ reads its firehose.
            firehose::allow_deep_headers();
            let dir = dir.unwrap_or_else(default_lessons_dir);
            firehose::on_deep_stack(move || {
                Ok(runtime(Threads::Plain)?.block_on(check(&dir, broker, lang)))
            })
        }
    }
}

/// Exit code 1 when anything failed.
fn exit_code(failed: bool) -> ExitCode {
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `rabbitscope lessons list`: one line per lesson; broken files on stderr.
fn list(dir: &Path, lang: Lang) -> ExitCode {
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
    exit_code(!errors.is_empty())
}

/// `rabbitscope lessons check`: one line per lesson (ok or FAILED, with the reasons below it).
async fn check(dir: &Path, broker: Option<String>, lang: Lang) -> ExitCode {
    let (lessons, errors) = lesson::load_each(dir);
    let mut failed = errors.len();
    for e in &errors {
        println!("FAILED  {}", e.path.display());
        println!("    {}", printable_lines(&e.to_string()));
    }
    if lessons.is_empty() && errors.is_empty() {
        match lang {
            Lang::En => println!("no lessons (*.yaml) in {}", dir.display()),
            Lang::Zh => println!("{} 中没有课程（*.yaml）", dir.display()),
        }
    }
    for l in &lessons {
        // A RabbitMQ cannot be told to behave as another release: a lesson that asks for one
        // is checked on the embedded broker behaving as it asks, and says so.
        let asks_release = l.changes_release();
        let target = match &broker {
            Some(url) if !asks_release => Target::RabbitMq { url: url.clone() },
            _ => Target::Embedded,
        };
        let mut check = lesson::check_lesson(l, target, lang).await;
        let behaviour = l.behaviour().ok().flatten().unwrap_or_default();
        if let (true, Some(_)) = (asks_release, &broker) {
            check.notes.insert(0, match lang {
                Lang::En => format!(
                    "checked on the embedded broker, which {}: --broker cannot make RabbitMQ behave as another release",
                    behaviour.summary()
                ),
                Lang::Zh => format!(
                    "在内置 broker 上检查（{}）：--broker 无法让 RabbitMQ 表现为另一个版本",
                    behaviour.summary()
                ),
            });
        }
        if check.ok() {
            println!(
                "ok      {} ({})",
                printable(&check.id),
                check.path.display()
            );
            for note in &check.notes {
                let note_word = match lang {
                    Lang::En => "note:",
                    Lang::Zh => "注意：",
                };
                println!("    {note_word} {}", printable_lines(note));
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
    // `ok` and `FAILED` above stay as they are in either language: scripts look for them.
    let passed = total - failed;
    match lang {
        Lang::En => {
            let noun = if total == 1 { "lesson" } else { "lessons" };
            println!("{total} {noun}: {passed} ok, {failed} failed");
        }
        Lang::Zh => println!("共 {total} 课：{passed} 通过，{failed} 失败"),
    }
    exit_code(failed > 0)
}
