//! The rabbitscope binary in a pseudo-terminal, its screen parsed (vt100) as it draws: how the
//! view's tests start it, press keys and read what it shows.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{native_pty_system, CommandBuilder, PtySize};

pub type Child = Box<dyn portable_pty::Child + Send + Sync>;
pub type Master = Box<dyn portable_pty::MasterPty + Send>;
pub type Writer = Box<dyn Write + Send>;

/// What the program has drawn so far, read on a thread of its own.
#[derive(Clone)]
pub struct Screen {
    /// The parsed terminal: its cells, their colours, which screen is up.
    pub parser: Arc<Mutex<vt100::Parser>>,
    written: Arc<Mutex<Vec<u8>>>,
}

impl Screen {
    /// The screen as text, row by row.
    pub fn text(&self) -> String {
        self.parser.lock().unwrap().screen().contents()
    }

    /// Every byte the program wrote to the terminal, escape sequences included.
    pub fn written(&self) -> String {
        String::from_utf8_lossy(&self.written.lock().unwrap()).into_owned()
    }

    /// Waits until the screen shows every one of `needles`, and returns it.
    pub fn wait_for(&self, needles: &[&str], within: Duration) -> String {
        let start = Instant::now();
        loop {
            let text = self.text();
            if needles.iter().all(|n| text.contains(n)) {
                return text;
            }
            assert!(
                start.elapsed() < within,
                "screen never showed {needles:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A program running in a pseudo-terminal.
pub struct InPty {
    pub child: Child,
    /// Its keyboard.
    pub writer: Writer,
    pub screen: Screen,
    /// The pseudo-terminal's master, whose settings are the terminal's.
    pub master: Master,
}

impl InPty {
    /// Presses `keys`.
    pub fn press(&mut self, keys: &[u8]) {
        self.writer.write_all(keys).unwrap();
        self.writer.flush().unwrap();
    }

    /// Waits until the program exits, and returns how.
    pub fn wait_exit(&mut self, within: Duration, what: &str) -> portable_pty::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < within, "{what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `rabbitscope ARGS` in a `cols` x `rows` pseudo-terminal with TERM=xterm-256color;
/// `configure` adds to the command (more arguments, a working directory) before it starts.
pub fn spawn(
    args: &[&str],
    rows: u16,
    cols: u16,
    configure: impl FnOnce(&mut CommandBuilder),
) -> InPty {
    let pair = native_pty_system()
        .openpty(PtySize {
            rows,
            cols,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_rabbitscope"));
    cmd.args(args);
    cmd.env("TERM", "xterm-256color");
    configure(&mut cmd);
    let child = pair.slave.spawn_command(cmd).unwrap();
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().unwrap();
    let writer = pair.master.take_writer().unwrap();
    let screen = Screen {
        parser: Arc::new(Mutex::new(vt100::Parser::new(
            rows.try_into().unwrap(),
            cols.try_into().unwrap(),
            0,
        ))),
        written: Arc::new(Mutex::new(Vec::new())),
    };
    let seen = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.written.lock().unwrap().extend_from_slice(&buf[..n]);
            seen.parser.lock().unwrap().process(&buf[..n]);
        }
    });
    InPty {
        child,
        writer,
        screen,
        master: pair.master,
    }
}
