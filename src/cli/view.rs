//! The live view on the embedded broker: `rabbitscope` without a command, and `learn`.
//!
//! Also the view's display options ([`DisplayArgs`]), which `watch` and `replay` share, and the
//! one place that turns them into the view's [`ViewOptions`]. It imports the library's view,
//! lessons and embedded broker; never the remote or trace modules.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use color_eyre::eyre::{eyre, Result};

use rabbitscope::lesson::Lang;
use rabbitscope::ui::app::ViewOptions;

use super::embedded::{bind, exposure_warning, open_broker, StoreArgs, TlsArgs};
use super::runtime::{runtime, Threads};

/// How the view looks: every command that opens it takes these.
#[derive(clap::Args, Clone)]
pub struct DisplayArgs {
    /// Classroom mode: high contrast, slower animation, presenter keys.
    #[arg(long)]
    classroom: bool,
    /// No colours (also when NO_COLOR is set).
    #[arg(long)]
    monochrome: bool,
}

impl DisplayArgs {
    /// The view's options, with neither a notice nor an amqps address (the embedded broker's
    /// view adds those).
    pub fn view_options(&self, lang: Lang) -> ViewOptions {
        ViewOptions {
            classroom: self.classroom,
            monochrome: self.monochrome
                || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            lang,
            notice: None,
            tls_address: None,
        }
    }
}

#[derive(clap::Args, Clone)]
pub struct ViewArgs {
    /// Where the embedded broker listens (the view shows it).
    #[arg(long, default_value = "127.0.0.1:5673")]
    listen: SocketAddr,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    display: DisplayArgs,
    /// Where the lessons are (default: ./lessons, else the lessons shipped with the source).
    #[arg(long, value_name = "DIR")]
    lessons: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct LearnArgs {
    /// The lesson's id; without it the menu opens.
    id: Option<String>,
    #[command(flatten)]
    view: ViewArgs,
}

/// `rabbitscope learn`: the view, opened on a lesson or on the lessons' menu.
pub fn learn(args: LearnArgs, store: &StoreArgs, lang: Lang) -> Result<()> {
    run(args.view, store, args.id, lang)
}

/// The live view on an embedded broker. The view gets the main thread and a runtime of its
/// own; the broker and the lesson runner run on the broker's runtime.
pub fn run(args: ViewArgs, store: &StoreArgs, lesson_id: Option<String>, lang: Lang) -> Result<()> {
    let broker_runtime = runtime(Threads::Broker)?;
    runtime(Threads::View)?.block_on(view(
        args,
        store,
        lesson_id,
        lang,
        broker_runtime.handle().clone(),
    ))
}

async fn view(
    args: ViewArgs,
    store: &StoreArgs,
    lesson_id: Option<String>,
    lang: Lang,
    broker_runtime: tokio::runtime::Handle,
) -> Result<()> {
    let dir = args.lessons.clone().unwrap_or_else(default_lessons_dir);
    let (found, errors) = rabbitscope::lesson::load_each(&dir);
    let lessons: Vec<_> = found.into_iter().map(Arc::new).collect();
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
    let options = ViewOptions {
        notice: exposure_warning(listen).or_else(|| exposure_warning(tls_address?)),
        tls_address,
        ..args.display.view_options(lang)
    };
    let source = Arc::new(rabbitscope::source::Embedded::new(broker, &address));
    rabbitscope::ui::run(source, options, lessons).await
}

/// `./lessons` when it exists, else the lessons beside the source this binary was built from.
pub fn default_lessons_dir() -> PathBuf {
    let here = PathBuf::from("lessons");
    if here.is_dir() {
        here
    } else {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/lessons"))
    }
}
