//! The management API as a stranger may answer it: `rabbitscope snapshot` (the real binary)
//! against tiny HTTP servers that send a body without end, or redirect to another host. The
//! command must stop with a clear word, holding little memory, and never follow the redirect.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads one request's head (up to the blank line), as much as these servers need.
async fn read_head(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&byte[..n]),
        }
    }
    true
}

/// Serves every connection with `answer`, counting connections.
async fn serve<F, Fut>(listener: TcpListener, served: Arc<AtomicUsize>, answer: F)
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let answer = Arc::new(answer);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        served.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(answer(stream));
    }
}

/// A 200 with a chunked JSON body that never ends (until the client hangs up).
async fn endless(mut stream: TcpStream) {
    if !read_head(&mut stream).await {
        return;
    }
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let piece = r#"{"name":"vhost-without-end"},"#.repeat(2048);
    let mut chunk = format!("{:x}\r\n[", piece.len() + 1).into_bytes();
    chunk.extend_from_slice(piece.as_bytes());
    chunk.extend_from_slice(b"\r\n");
    if stream.write_all(&chunk).await.is_err() {
        return;
    }
    let chunk = format!("{:x}\r\n{piece}\r\n", piece.len());
    while stream.write_all(chunk.as_bytes()).await.is_ok() {}
}

/// `rabbitscope snapshot` against a management API at `management`, with no AMQP listener
/// behind the URL's port; returns success, stderr and the child's peak resident memory in KiB
/// (`ru_maxrss` from wait4, the same figure as VmHWM at its end).
async fn snapshot(management: &str, extra: &[&str]) -> (bool, String, i64) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let child = Command::new(env!("CARGO_BIN_EXE_rabbitscope"))
        .args([
            "snapshot",
            &format!("amqp://guest:guest@127.0.0.1:{port}/"),
            "--management",
            management,
        ])
        .args(extra)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::task::spawn_blocking(move || {
        let mut child = child;
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        let mut status = 0;
        // SAFETY: rusage is plain data wait4 fills in; the pid is our own child's.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
        assert_eq!(pid, child.id() as libc::pid_t);
        let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        (ok, stderr, usage.ru_maxrss)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_answer_stops_at_the_limit() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, Arc::default(), endless));
    let management = format!("http://{address}");

    let (ok, stderr, peak_kib) = snapshot(&management, &[]).await;
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("answered with more than 64 MiB") && stderr.contains("--max-response-mib"),
        "{stderr}"
    );
    // The 64 MiB read, a copy while the buffer grows, and the program itself.
    assert!(peak_kib < 256 * 1024, "peak {peak_kib} KiB\n{stderr}");

    let (ok, stderr, peak_kib) = snapshot(&management, &["--max-response-mib", "2"]).await;
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("answered with more than 2 MiB"), "{stderr}");
    assert!(peak_kib < 128 * 1024, "peak {peak_kib} KiB\n{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_host_is_refused() {
    // The other host: 127.0.0.2 is loopback too, but another address, as a stranger's would be.
    let elsewhere = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let elsewhere_address = elsewhere.local_addr().unwrap();
    let reached = Arc::new(AtomicUsize::new(0));
    tokio::spawn(serve(elsewhere, reached.clone(), endless));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let target = format!("http://{elsewhere_address}/api/vhosts");
    tokio::spawn(serve(listener, Arc::default(), move |mut stream| {
        let target = target.clone();
        async move {
            // Every request on the connection (the client may ask several things at once).
            while read_head(&mut stream).await {
                let answer = format!(
                    "HTTP/1.1 302 Found\r\nlocation: {target}\r\ncontent-length: 0\r\n\r\n"
                );
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    break;
                }
            }
        }
    }));

    let (ok, stderr, _) = snapshot(&format!("http://{address}"), &[]).await;
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "redirected to http://{elsewhere_address}/api/vhosts, another address: not followed"
        )),
        "{stderr}"
    );
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
}
