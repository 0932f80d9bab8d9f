//! The real binary in a pseudo-terminal: start the view, publish with lapin to its embedded
//! broker, read the screen, press `q`, and check the terminal was given back as it was.
use std::io::Write;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};

mod common;
use common::pty::{self, Child, Master, Screen, Writer};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary started with `args` in a 160x45 pseudo-terminal, its screen parsed as it draws.
fn spawn_view(args: &[&str]) -> (Child, Writer, Screen) {
    let (child, writer, screen, _master) = spawn_view_in_pty(args);
    (child, writer, screen)
}

/// [`spawn_view`], also handing back the pseudo-terminal's master, whose settings are the
/// terminal's.
fn spawn_view_in_pty(args: &[&str]) -> (Child, Writer, Screen, Master) {
    let view = pty::spawn(args, 45, 160, |cmd| {
        // The view's broker keeps nothing on disk here: each run starts empty.
        cmd.arg("--transient");
        cmd.cwd(env!("CARGO_MANIFEST_DIR"));
    });
    (view.child, view.writer, view.screen, view.master)
}

/// Presses `q` and waits for a clean exit.
fn quit(
    child: &mut Box<dyn portable_pty::Child + Send + Sync>,
    writer: &mut Box<dyn Write + Send>,
) {
    writer.write_all(b"q").unwrap();
    writer.flush().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the view did not quit on q"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_shows_a_published_message_and_restores_the_terminal_on_quit() {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    // Without lessons no menu opens, so the graph is in plain view.
    let (mut child, mut writer, screen) =
        spawn_view(&["--listen", &address, "--lessons", "tests/lessons/none"]);
    screen.wait_for(&[&address, "messages 0"], Duration::from_secs(20));
    assert!(
        screen.parser.lock().unwrap().screen().alternate_screen(),
        "the view uses the alternate screen"
    );

    let conn = Connection::connect(
        &format!("amqp://guest:guest@{address}/%2f"),
        ConnectionProperties::default(),
    )
    .await
    .expect("a client connects to the view's broker");
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch.exchange_declare(
        "classroom".into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_declare(
        "homework".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        "homework".into(),
        "classroom".into(),
        "essay.*".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_publish(
        "classroom".into(),
        "essay.rabbitmq".into(),
        BasicPublishOptions::default(),
        b"due friday",
        BasicProperties::default(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let text = screen.wait_for(
        &[
            "classroom [topic]",
            "essay.*",
            "homework",
            "essay.rabbitmq  -> homework",
            "homework  1 0 0",
        ],
        Duration::from_secs(10),
    );
    assert!(text.contains("messages 1"), "{text}");
    conn.close(200, "done".into()).await.unwrap();

    quit(&mut child, &mut writer);
    std::thread::sleep(Duration::from_millis(200));
    let parser = screen.parser.lock().unwrap();
    let after = parser.screen();
    assert!(!after.alternate_screen(), "left the alternate screen");
    assert!(!after.hide_cursor(), "cursor shown again");
    assert_eq!(
        after.mouse_protocol_mode(),
        vt100::MouseProtocolMode::None,
        "mouse capture released"
    );
}

/// A lesson played as a student plays it: the step runs on the view's own broker, its checks
/// show, and going back replays the lesson to the step's beginning.
#[test]
fn a_lesson_step_runs_on_the_view_and_goes_back() {
    let address = format!("127.0.0.1:{}", free_port());
    let (mut child, mut writer, screen) = spawn_view(&[
        "learn",
        "direct-exchange",
        "--lang",
        "en",
        "--listen",
        &address,
    ]);
    screen.wait_for(
        &["lesson · step 1 of", "Routing key Cloud", "n runs the step"],
        Duration::from_secs(20),
    );
    writer.write_all(b"n").unwrap();
    writer.flush().unwrap();
    // The lesson's own publish crosses the graph and lands in the log; its checks hold.
    let text = screen.wait_for(
        &["✓ The message reached", "n: next step"],
        Duration::from_secs(20),
    );
    assert!(!text.contains("✗"), "a check failed:\n{text}");
    assert!(text.contains("messages 1"), "{text}");
    writer.write_all(b"N").unwrap();
    writer.flush().unwrap();
    screen.wait_for(
        &["lesson · step 1 of", "n runs the step"],
        Duration::from_secs(20),
    );
    quit(&mut child, &mut writer);
}

/// Whether the terminal behind `master` is in raw mode (no line editing, no echo).
fn raw_mode(master: &dyn portable_pty::MasterPty) -> bool {
    let fd = master.as_raw_fd().expect("the master's descriptor");
    let mut termios: libc::termios = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::tcgetattr(fd, &mut termios) }, 0);
    termios.c_lflag & (libc::ICANON | libc::ECHO) == 0
}

/// An abort or a crash (here sent with kill, as a stack overflow would end in one) skips
/// the view's own clean-up; its signal handlers still leave the alternate screen, show the
/// cursor, stop mouse reports and turn raw mode off before the process dies of the signal.
#[test]
fn an_abort_or_a_crash_still_gives_the_terminal_back() {
    for signal in ["ABRT", "SEGV", "BUS"] {
        let address = format!("127.0.0.1:{}", free_port());
        let (mut child, _writer, screen, master) =
            spawn_view_in_pty(&["--listen", &address, "--lessons", "tests/lessons/none"]);
        screen.wait_for(&[&address, "messages 0"], Duration::from_secs(20));
        assert!(screen.parser.lock().unwrap().screen().alternate_screen());
        assert!(raw_mode(&*master), "the view runs in raw mode");

        let pid = child.process_id().expect("pid").to_string();
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "SIG{signal} did not end the view"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(!status.success(), "SIG{signal} still ends the process");
        std::thread::sleep(Duration::from_millis(200));
        let parser = screen.parser.lock().unwrap();
        let after = parser.screen();
        assert!(
            !after.alternate_screen(),
            "SIG{signal}: left the alternate screen"
        );
        assert!(!after.hide_cursor(), "SIG{signal}: cursor shown again");
        assert_eq!(
            after.mouse_protocol_mode(),
            vt100::MouseProtocolMode::None,
            "SIG{signal}: mouse capture released"
        );
        assert!(!raw_mode(&*master), "SIG{signal}: raw mode turned off");
    }
}
