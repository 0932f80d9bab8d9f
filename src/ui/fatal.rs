//! Giving the terminal back when the process dies of a fatal signal while the view runs.
//!
//! Quitting, SIGTERM and panics restore the terminal through ordinary code. An abort (a stack
//! overflow ends in one) or a crash (SIGSEGV, SIGBUS) runs none of it, and would leave the
//! shell in raw mode on the alternate screen. While the view runs, handlers for those signals
//! write the escape sequences that leave the alternate screen, show the cursor and stop mouse
//! reports, put back the terminal settings saved at start, and hand the signal on: a fault to
//! the handler that was there before (Rust's stack overflow report, which aborts), anything
//! else to the default action, which ends the process as it would have ended anyway. Only
//! async-signal-safe calls are made.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::OnceLock;

const SIGNALS: [libc::c_int; 3] = [libc::SIGABRT, libc::SIGSEGV, libc::SIGBUS];

/// Leave the alternate screen, show the cursor, stop every mouse report crossterm turns on.
const RESTORE: &[u8] =
    b"\x1b[?1049l\x1b[?25h\x1b[?1006l\x1b[?1015l\x1b[?1003l\x1b[?1002l\x1b[?1000l";

/// Set while the view owns the terminal.
static ARMED: AtomicBool = AtomicBool::new(false);
/// The terminal whose settings were saved, or -1.
static TTY: AtomicI32 = AtomicI32::new(-1);
/// Its settings before raw mode.
static SAVED: OnceLock<libc::termios> = OnceLock::new();
/// The actions the handlers replaced, by position in [`SIGNALS`].
static PREVIOUS: [OnceLock<libc::sigaction>; 3] =
    [OnceLock::new(), OnceLock::new(), OnceLock::new()];

/// Saves the terminal's settings and installs the handlers. Call before raw mode is entered;
/// [`disarm`] after the terminal was restored.
pub fn arm() {
    let tty = [libc::STDIN_FILENO, libc::STDOUT_FILENO]
        .into_iter()
        .find(|&fd| unsafe { libc::isatty(fd) } == 1);
    if let Some(fd) = tty {
        let mut termios: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut termios) } == 0 {
            // A second view in the same process finds the same settings saved already.
            let _ = SAVED.set(termios);
            TTY.store(fd, Ordering::SeqCst);
        }
    }
    for (i, &signal) in SIGNALS.iter().enumerate() {
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_fatal_signal as *const () as usize;
        // On the alternate signal stack: a stack overflow leaves no room on the thread's own.
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
        if unsafe { libc::sigaction(signal, &action, &mut previous) } == 0 {
            // Keep the first one seen: a second view must not hand on to this very handler.
            let _ = PREVIOUS[i].set(previous);
        }
    }
    ARMED.store(true, Ordering::SeqCst);
}

/// The terminal is restored: put the previous handlers back.
pub fn disarm() {
    ARMED.store(false, Ordering::SeqCst);
    for (i, &signal) in SIGNALS.iter().enumerate() {
        if let Some(previous) = PREVIOUS[i].get() {
            unsafe { libc::sigaction(signal, previous, std::ptr::null_mut()) };
        }
    }
}

extern "C" fn on_fatal_signal(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    if ARMED.swap(false, Ordering::SeqCst) {
        unsafe {
            libc::write(libc::STDOUT_FILENO, RESTORE.as_ptr().cast(), RESTORE.len());
            let tty = TTY.load(Ordering::SeqCst);
            if let (true, Some(saved)) = (tty >= 0, SAVED.get()) {
                libc::tcsetattr(tty, libc::TCSANOW, saved);
            }
        }
    }
    unsafe {
        // A fault the kernel raised happens again when this handler returns: let it reach the
        // action from before (Rust's report of a stack overflow, which then aborts).
        let fault = !info.is_null() && (*info).si_code > 0 && signal != libc::SIGABRT;
        let i = SIGNALS.iter().position(|&s| s == signal).unwrap_or(0);
        match (fault, PREVIOUS[i].get()) {
            (true, Some(previous)) => {
                libc::sigaction(signal, previous, std::ptr::null_mut());
            }
            _ => {
                // Sent by a process (kill, abort()): the default action, sent again. It is
                // blocked in here, so it arrives as this handler returns.
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
                libc::raise(signal);
            }
        }
    }
}
