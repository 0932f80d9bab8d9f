//! The README's picture of the screen, made by the program itself: runs the release binary in
//! a pseudo-terminal, plays a lesson to a chosen step with the keys a student would press, and
//! writes what the terminal shows as an SVG (text and colours cell by cell).
//!
//! ```text
//! cargo build && cargo run --example screenshot
//! cargo run --example screenshot -- --lesson nova-boot --keys "nn1n" --size 160x45 \
//!     --out assets/screen.svg --binary target/release/rabbitscope
//! ```
//!
//! `--keys` are sent one by one after the lesson's first screen shows, each once the lesson is
//! no longer busy on the broker; a `.` waits 700 ms. The picture is taken `--settle`
//! milliseconds after the last key, so messages can be caught in flight.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{native_pty_system, CommandBuilder, PtySize};

struct Options {
    lesson: String,
    keys: String,
    cols: u16,
    rows: u16,
    settle_ms: u64,
    out: PathBuf,
    binary: PathBuf,
}

fn options() -> Result<Options, String> {
    let release = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("rabbitscope"))
        .ok_or("cannot tell where the release binary is")?;
    let mut options = Options {
        lesson: "nova-boot".into(),
        // Lesson 13: the services start, then nova-api's cast is predicted and sent.
        keys: "nn1n".into(),
        cols: 160,
        rows: 45,
        settle_ms: 300,
        out: PathBuf::from("assets/screen.svg"),
        binary: release,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--lesson" => options.lesson = value()?,
            "--keys" => options.keys = value()?,
            "--settle" => {
                options.settle_ms = value()?
                    .parse()
                    .map_err(|_| "--settle takes milliseconds")?
            }
            "--out" => options.out = value()?.into(),
            "--binary" => options.binary = value()?.into(),
            "--size" => {
                let size = value()?;
                let (cols, rows) = size
                    .split_once('x')
                    .and_then(|(c, r)| Some((c.parse().ok()?, r.parse().ok()?)))
                    .ok_or(format!("--size takes COLSxROWS, not {size}"))?;
                (options.cols, options.rows) = (cols, rows);
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    options.binary = std::fs::canonicalize(&options.binary).map_err(|_| {
        format!(
            "{} is missing: build it first (cargo build, or cargo build --release)",
            options.binary.display()
        )
    })?;
    Ok(options)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(56730)
}

fn main() {
    let options = match options() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("screenshot: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&options) {
        eprintln!("screenshot: {e}");
        std::process::exit(1);
    }
    println!("wrote {}", options.out.display());
}

fn run(options: &Options) -> Result<(), String> {
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: options.rows,
            cols: options.cols,
            pixel_width: 0,
            pixel_height: 0,
        })
        .map_err(|e| e.to_string())?;
    let mut cmd = CommandBuilder::new(&options.binary);
    let listen = format!("127.0.0.1:{}", free_port());
    cmd.args(["learn", &options.lesson, "--transient", "--listen", &listen]);
    cmd.cwd(env!("CARGO_MANIFEST_DIR"));
    cmd.env("TERM", "xterm-256color");
    let mut child = pair
        .slave
        .spawn_command(cmd)
        .map_err(|e| format!("cannot start {}: {e}", options.binary.display()))?;
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().map_err(|e| e.to_string())?;
    let mut writer = pair.master.take_writer().map_err(|e| e.to_string())?;
    let size = |n: u16| std::num::NonZeroU16::new(n).ok_or("the size must not be 0");
    let parser = Arc::new(Mutex::new(vt100::Parser::new(
        size(options.rows)?,
        size(options.cols)?,
        0,
    )));
    std::thread::spawn({
        let parser = parser.clone();
        move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                parser.lock().unwrap().process(&buf[..n]);
            }
        }
    });
    // A key pressed while the lesson runs a step on the broker is not for the lesson: after
    // each key, wait until the lesson pane offers the next one again.
    let ready = |text: &str| {
        let idle = [
            "n: next step",
            "n runs the step",
            "Tick your answer",
            "n: finish",
            "n：",
            "按 n",
        ];
        idle.iter().any(|m| text.contains(m)) && !text.contains("Running on the broker")
    };
    // The lesson's first screen, once its setup has run.
    let start = Instant::now();
    while !ready(&parser.lock().unwrap().screen().contents()) {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            return Err("the view never showed its graph".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(700));
    for key in options.keys.chars() {
        if key == '.' {
            std::thread::sleep(Duration::from_millis(700));
            continue;
        }
        let before = lesson_state(&parser.lock().unwrap().screen().contents());
        let mut bytes = [0u8; 4];
        writer
            .write_all(key.encode_utf8(&mut bytes).as_bytes())
            .and_then(|_| writer.flush())
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = parser.lock().unwrap().screen().contents();
            if (lesson_state(&now) != before && ready(&now)) || Instant::now() > deadline {
                break;
            }
        }
    }
    std::thread::sleep(Duration::from_millis(options.settle_ms));
    let svg = svg(parser.lock().unwrap().screen());
    let _ = writer.write_all(b"q").and_then(|_| writer.flush());
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    if let Some(dir) = options.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&options.out, svg).map_err(|e| format!("{}: {e}", options.out.display()))
}

/// What a lesson key changes: the step shown, the ticks, and the pane's last line of
/// instructions (the animation and rates change the rest of the screen all the time).
fn lesson_state(screen: &str) -> Vec<String> {
    screen
        .lines()
        .filter_map(|line| {
            // The lesson pane is the right one: its title, or its text between borders.
            let pane = match line.find("lesson ·") {
                Some(at) => &line[at..],
                None => line.rsplit('│').nth(1).unwrap_or(line),
            };
            let marks = [
                "step ",
                "[x]",
                "n: ",
                "n runs",
                "Tick",
                "Running",
                "Right",
                "Not quite",
            ];
            marks
                .iter()
                .any(|m| line.contains(m))
                .then(|| pane.trim().to_string())
        })
        .collect()
}

/// Cell size in SVG units: a monospace font at 14 px is about 8.4 px wide.
const CELL_W: f32 = 8.4;
const CELL_H: f32 = 18.0;

/// The xterm palette's first 16 colours, as a dark terminal theme shows them.
const PALETTE: [&str; 16] = [
    "#1d1f21", "#cc6666", "#8abe5c", "#e0b84c", "#6a9fd4", "#b98bd6", "#5fb3b3", "#c5c8c6",
    "#707880", "#f07f7f", "#b5e37b", "#f5d77a", "#92c2f0", "#d3a8f0", "#8ad6d6", "#ffffff",
];
const FOREGROUND: &str = "#c5c8c6";
const BACKGROUND: &str = "#1d1f21";

fn colour(c: vt100::Color, default: &str) -> String {
    match c {
        vt100::Color::Default => default.to_string(),
        vt100::Color::Idx(i) if (i as usize) < PALETTE.len() => PALETTE[i as usize].to_string(),
        vt100::Color::Idx(i) if i >= 232 => {
            let level = 8 + (i as u32 - 232) * 10;
            format!("#{level:02x}{level:02x}{level:02x}")
        }
        vt100::Color::Idx(i) => {
            let i = i as u32 - 16;
            let step = |v: u32| if v == 0 { 0 } else { 55 + v * 40 };
            format!(
                "#{:02x}{:02x}{:02x}",
                step(i / 36),
                step(i / 6 % 6),
                step(i % 6)
            )
        }
        vt100::Color::Rgb(r, g, b) => format!("#{r:02x}{g:02x}{b:02x}"),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The screen as SVG: a background rectangle per cell run of one colour, then the text in
/// runs of one style, each run placed at its first cell so wide characters keep their columns.
fn svg(screen: &vt100::Screen) -> String {
    let (rows, cols) = screen.size();
    let (rows, cols) = (rows.get(), cols.get());
    let (width, height) = (cols as f32 * CELL_W, rows as f32 * CELL_H);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="'DejaVu Sans Mono', 'Menlo', 'Consolas', monospace" font-size="14px">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="100%" height="100%" fill="{BACKGROUND}"/>"#
    );
    for row in 0..rows {
        let y = row as f32 * CELL_H;
        let mut col = 0;
        while col < cols {
            let Some(cell) = screen.cell(row, col) else {
                break;
            };
            let (mut fg, mut bg) = (
                colour(cell.fgcolor(), FOREGROUND),
                colour(cell.bgcolor(), BACKGROUND),
            );
            if cell.inverse() {
                std::mem::swap(&mut fg, &mut bg);
            }
            let bold = cell.bold();
            // A run: cells of the same colours and weight.
            let mut text = String::new();
            let mut end = col;
            while end < cols {
                let Some(c) = screen.cell(row, end) else {
                    break;
                };
                let (mut f, mut b) = (
                    colour(c.fgcolor(), FOREGROUND),
                    colour(c.bgcolor(), BACKGROUND),
                );
                if c.inverse() {
                    std::mem::swap(&mut f, &mut b);
                }
                if f != fg || b != bg || c.bold() != bold || (end > col && c.is_wide()) {
                    break;
                }
                if !c.is_wide_continuation() {
                    let contents = c.contents();
                    text.push_str(if contents.is_empty() { " " } else { contents });
                }
                end += 1;
                if c.is_wide() {
                    end += 1;
                    break;
                }
            }
            let x = col as f32 * CELL_W;
            if bg != BACKGROUND {
                let w = (end - col) as f32 * CELL_W;
                let _ = writeln!(
                    out,
                    r#"<rect x="{x}" y="{y}" width="{w}" height="{CELL_H}" fill="{bg}"/>"#
                );
            }
            if !text.trim().is_empty() {
                let weight = if bold { r#" font-weight="bold""# } else { "" };
                let baseline = y + CELL_H * 0.75;
                let w = (end - col) as f32 * CELL_W;
                let _ = writeln!(
                    out,
                    r#"<text x="{x}" y="{baseline}" fill="{fg}"{weight} textLength="{w}" lengthAdjust="spacingAndGlyphs" xml:space="preserve">{}</text>"#,
                    escape(&text)
                );
            }
            col = end.max(col + 1);
        }
    }
    out.push_str("</svg>\n");
    out
}
