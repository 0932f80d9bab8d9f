//! Tracing slows a broker for everyone, so whatever turned it on turns it off again, however
//! it ends: the real binary (`tap`, `record`, `watch --trace` in a pseudo-terminal) stopped by
//! SIGHUP, SIGINT, SIGTERM and SIGQUIT, its terminal closed under `watch`, and a panic. Each
//! asks RabbitMQ's management API (`/api/vhosts/NAME`, field `tracing`) afterwards, on a vhost
//! of the test's own. Tracing that was on before is left on.

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::vhost::TestVhost;
use portable_pty::{native_pty_system, CommandBuilder, PtySize};

const BIN: &str = env!("CARGO_BIN_EXE_rabbitscope");

const SIGNALS: [(libc::c_int, &str); 4] = [
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGQUIT, "SIGQUIT"),
];

async fn tracing(vhost: &TestVhost) -> bool {
    vhost.management.tracing(&vhost.name).await.unwrap()
}

async fn wait_until_tracing(vhost: &TestVhost, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tracing(vhost).await {
        assert!(Instant::now() < deadline, "{what} never turned tracing on");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill only sends a signal to our own child.
    unsafe { libc::kill(pid as libc::pid_t, signal) };
}

/// Waits for a child that was told to stop (killing it if it does not, which fails the test).
async fn ended(mut child: Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not stop (pid {})", child.id());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn start(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `child` has turned tracing on; if it ends first or takes too long, fails with
/// what it wrote on stderr.
async fn wait_until_child_traces(vhost: &TestVhost, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !tracing(vhost).await {
        let ended = child.try_wait().unwrap();
        if ended.is_some() || Instant::now() > deadline {
            let _ = child.kill();
            let status = child.wait().unwrap();
            let mut said = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut said);
            panic!("{what} never turned tracing on ({status}); it said: {said}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tap_turns_tracing_off_on_every_stop_signal() {
    let vhost = TestVhost::new("tap-signals").await;
    for (number, name) in SIGNALS {
        let mut child = start(&["tap", &vhost.url()]);
        wait_until_child_traces(&vhost, &mut child, &format!("tap before {name}")).await;
        signal(child.id(), number);
        let status = ended(child, &format!("tap after {name}")).await;
        assert!(status.success(), "tap after {name}: {status}");
        assert!(!tracing(&vhost).await, "tap left tracing on after {name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn record_turns_tracing_off_on_every_stop_signal() {
    let vhost = TestVhost::new("record-signals").await;
    let file = std::env::temp_dir().join(format!("{}.yaml", vhost.name));
    for (number, name) in SIGNALS {
        let mut child = start(&["record", &vhost.url(), "-o", file.to_str().unwrap()]);
        wait_until_child_traces(&vhost, &mut child, &format!("record before {name}")).await;
        signal(child.id(), number);
        let status = ended(child, &format!("record after {name}")).await;
        assert!(status.success(), "record after {name}: {status}");
        assert!(
            !tracing(&vhost).await,
            "record left tracing on after {name}"
        );
        // The file is whole: it reads back.
        rabbitscope::trace::read(&file).unwrap_or_else(|e| panic!("after {name}: {e}"));
    }
    let _ = std::fs::remove_file(&file);
}

#[tokio::test(flavor = "multi_thread")]
async fn tracing_that_was_on_before_is_left_on() {
    let vhost = TestVhost::new("already-on").await;
    vhost
        .management
        .set_tracing(&vhost.name, true)
        .await
        .unwrap();
    let file = std::env::temp_dir().join(format!("{}.yaml", vhost.name));
    let url = vhost.url();
    for args in [
        vec!["tap", url.as_str()],
        vec!["record", url.as_str(), "-o", file.to_str().unwrap()],
    ] {
        let child = start(&args);
        // Long enough to have looked at tracing and opened the firehose.
        tokio::time::sleep(Duration::from_secs(2)).await;
        signal(child.id(), libc::SIGTERM);
        let status = ended(child, args[0]).await;
        assert!(status.success(), "{}: {status}", args[0]);
        assert!(
            tracing(&vhost).await,
            "{} turned off tracing it did not turn on",
            args[0]
        );
    }
    let _ = std::fs::remove_file(&file);
    vhost
        .management
        .set_tracing(&vhost.name, false)
        .await
        .unwrap();
}

/// `watch --trace` in a pseudo-terminal, its output drained so it never blocks.
struct Terminal {
    child: Box<dyn portable_pty::Child + Send + Sync>,
    master: Box<dyn portable_pty::MasterPty + Send>,
    closing: Arc<AtomicBool>,
    /// What the program wrote to its terminal, to show when a test fails.
    shown: Arc<Mutex<Vec<u8>>>,
    drain: std::thread::JoinHandle<()>,
}

impl Terminal {
    fn watch(url: &str) -> Terminal {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: 40,
                cols: 140,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let mut cmd = CommandBuilder::new(BIN);
        cmd.args(["watch", "--trace", url]);
        cmd.env("TERM", "xterm-256color");
        let child = pair.slave.spawn_command(cmd).unwrap();
        drop(pair.slave);
        // Non-blocking (for every copy of the descriptor), so the drain can let go of its copy
        // when the terminal is to close: it closes only when no copy is left.
        let fd = pair.master.as_raw_fd().unwrap();
        // SAFETY: fcntl on a descriptor we own, with plain integer flags.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        let mut reader = pair.master.try_clone_reader().unwrap();
        let closing = Arc::new(AtomicBool::new(false));
        let stop = closing.clone();
        let shown = Arc::new(Mutex::new(Vec::new()));
        let seen = shown.clone();
        let drain = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => seen.lock().unwrap().extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(_) => return,
                }
            }
        });
        Terminal {
            child,
            master: pair.master,
            closing,
            shown,
            drain,
        }
    }

    /// Closes the terminal (once the program ended, or to end it: the kernel then hangs up on
    /// the session, as when a terminal window is closed).
    fn close(self) -> (Box<dyn portable_pty::Child + Send + Sync>, String) {
        self.closing.store(true, Ordering::SeqCst);
        self.drain.join().unwrap();
        drop(self.master);
        let shown = String::from_utf8_lossy(&self.shown.lock().unwrap()).into_owned();
        (self.child, shown)
    }
}

async fn watch_ended(child: &mut (dyn portable_pty::Child + Send + Sync), how: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("watch did not stop after {how}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_turns_tracing_off_on_every_stop_signal() {
    let vhost = TestVhost::new("watch-signals").await;
    for (number, name) in SIGNALS {
        let mut terminal = Terminal::watch(&vhost.url());
        wait_until_tracing(&vhost, "watch --trace").await;
        signal(terminal.child.process_id().unwrap(), number);
        watch_ended(terminal.child.as_mut(), name).await;
        let (_, shown) = terminal.close();
        assert!(
            !tracing(&vhost).await,
            "watch left tracing on after {name}; it wrote {shown:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_turns_tracing_off_when_its_terminal_closes() {
    let vhost = TestVhost::new("watch-hangup").await;
    let terminal = Terminal::watch(&vhost.url());
    wait_until_tracing(&vhost, "watch --trace").await;
    // As closing the terminal's window does: the kernel hangs up on the session.
    let (mut child, shown) = terminal.close();
    watch_ended(child.as_mut(), "its terminal closed").await;
    assert!(
        !tracing(&vhost).await,
        "watch left tracing on when its terminal closed; it wrote {shown:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_turns_tracing_off() {
    use rabbitscope::remote::firehose::{turn_off_on_panic, Tracing};
    let vhost = TestVhost::new("panic").await;
    // What `watch`, `tap` and `record` install first thing.
    turn_off_on_panic();
    let mut on = Tracing::new(vhost.management.clone(), &vhost.name);
    on.ensure_on().await.unwrap();
    assert!(tracing(&vhost).await);
    let panicked = std::thread::spawn(|| panic!("a bug")).join();
    assert!(panicked.is_err());
    assert!(!tracing(&vhost).await, "the panic left tracing on");
}
