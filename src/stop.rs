//! The signals that ask rabbitscope to stop: SIGINT (Ctrl-C), SIGTERM, SIGHUP (the terminal
//! was closed) and SIGQUIT. Each ends the program the same orderly way, so whatever it turned
//! on in a broker (tracing) is turned off again and the terminal is given back.

use std::future::Future;

use tokio::signal::unix::{signal, SignalKind};

/// A future that completes when any of the stop signals arrives. The handlers are installed at
/// once, so a signal from the moment this returns is caught rather than killing the process.
pub fn stop_signal() -> std::io::Result<impl Future<Output = ()>> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut quit = signal(SignalKind::quit())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
            _ = quit.recv() => {}
        }
    })
}
