//! `rabbitscope doctor`: reads a RabbitMQ through its management API (or a definitions file)
//! and prints what is wrong, most serious first. The checks are the library's
//! [`rabbitscope::doctor`]; this file only reads and prints, and turns the findings into the
//! exit code: 0 when none is at or above `--fail-on`, 1 when one is, 2 when it could not look.

use std::path::PathBuf;
use std::process::ExitCode;

use color_eyre::eyre::{eyre, Result};

use rabbitscope::doctor::{self, report, Finding, Level};
use rabbitscope::remote::management::ErrorKind;
use rabbitscope::remote::{health, Management};
use rabbitscope::terminal::printable;

use super::remote::{check_vhost, endpoint, refuse_embedded, ResponseLimitArgs, TrustArgs};
use super::runtime::{runtime, Threads};

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

/// The least serious level that makes the exit code 1.
#[derive(Clone, Copy, clap::ValueEnum)]
enum FailOn {
    Info,
    Warning,
    Critical,
    /// Exit 0 whatever is found.
    Never,
}

impl FailOn {
    fn level(self) -> Option<Level> {
        match self {
            FailOn::Info => Some(Level::Info),
            FailOn::Warning => Some(Level::Warning),
            FailOn::Critical => Some(Level::Critical),
            FailOn::Never => None,
        }
    }
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["url", "definitions"])))]
pub struct DoctorArgs {
    /// The RabbitMQ, as an AMQP URL: amqp://user:pass@host:5672/vhost. Its vhost's queues,
    /// policies, exchanges and channels are examined, and the cluster's nodes.
    url: Option<String>,
    /// Examine a definitions file (rabbitmqctl export_definitions) instead: its queues and
    /// policies, before they are deployed.
    #[arg(long, value_name = "FILE", conflicts_with = "url")]
    definitions: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Exit with 1 when a finding at this level or above is found.
    #[arg(long, value_enum, value_name = "LEVEL", default_value = "warning")]
    fail_on: FailOn,
    /// Its management API (default: same host, port 15672, https for amqps URLs).
    #[arg(long, value_name = "URL")]
    management: Option<String>,
    #[command(flatten)]
    limit: ResponseLimitArgs,
    #[command(flatten)]
    trust: TrustArgs,
}

/// `rabbitscope doctor`: its findings on stdout, what went wrong on stderr.
pub fn run(args: DoctorArgs) -> ExitCode {
    match examine(&args) {
        Ok((target, findings, unread)) => {
            for note in &unread {
                eprintln!("note: {}", printable(note));
            }
            let text = match args.format {
                Format::Text => report::text(&target, &findings),
                Format::Json => {
                    let value = report::json(&target, &findings);
                    let pretty = serde_json::to_string_pretty(&value).unwrap_or_default();
                    rabbitscope::terminal::json(pretty) + "\n"
                }
            };
            print!("{text}");
            let failing = args
                .fail_on
                .level()
                .is_some_and(|at| findings.iter().any(|f| f.level >= at));
            ExitCode::from(u8::from(failing))
        }
        Err(error) => {
            super::report(&error);
            ExitCode::from(2)
        }
    }
}

/// What was examined, the findings, and what could not be read.
fn examine(args: &DoctorArgs) -> Result<(String, Vec<Finding>, Vec<String>)> {
    if let Some(path) = &args.definitions {
        let definitions = read_definitions(path)
            .map_err(|e| eyre!(e).wrap_err(format!("reading {}", path.display())))?;
        let mut findings: Vec<Finding> = doctor::definitions::brokers(&definitions)
            .iter()
            .flat_map(doctor::examine)
            .collect();
        doctor::sort(&mut findings);
        return Ok((format!("{}", path.display()), findings, Vec::new()));
    }
    let url = args.url.as_deref().unwrap_or_default();
    args.trust.apply()?;
    let endpoint = endpoint(url, args.management.as_deref(), args.limit)?;
    let target = endpoint.masked_url();
    runtime(Threads::Plain)?.block_on(async {
        refuse_embedded(&endpoint).await?;
        let api = Management::new(&endpoint)?;
        // One line for a broker that cannot be reached; the longer advice is check_vhost's.
        if let Err(e) = api.vhost(&endpoint.vhost).await {
            if e.kind == ErrorKind::Unreachable {
                return Err(eyre!(
                    "cannot reach RabbitMQ's management API at {}: {} (is the management \
                     plugin on? --management URL if it is not on port 15672)",
                    api.url(),
                    e.detail
                ));
            }
            check_vhost(&endpoint).await?;
        }
        let (broker, unread) = health::read(&api, &endpoint.vhost).await?;
        Ok((target, doctor::examine(&broker), unread))
    })
}

/// A definitions file, of a whole broker or of one vhost (whose objects name none).
fn read_definitions(
    path: &std::path::Path,
) -> Result<rabbitscope::definitions::Definitions, rabbitscope::definitions::DefinitionsError> {
    let text = std::fs::read(path).map_err(rabbitscope::definitions::DefinitionsError::Read)?;
    let mut value: serde_json::Value = match serde_json::from_slice(&text) {
        Ok(value) => value,
        // Its own reading says where the JSON is wrong.
        Err(_) => return rabbitscope::definitions::read_file(path),
    };
    doctor::definitions::name_the_vhost(&mut value);
    serde_json::from_value(value).or_else(|_| rabbitscope::definitions::read_file(path))
}
