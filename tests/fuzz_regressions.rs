//! Inputs for the connection fuzzer (fuzz/), replayed the way a client would send them: over
//! TCP to the embedded broker, after a valid handshake. Each connection must end once the
//! client stops sending, and the broker must go on serving others. The seeds are here as well
//! as the inputs that once found a fault, so a change that breaks on any of them shows up in
//! `cargo test`, without cargo-fuzz.
mod common;
/// What the fuzz targets send and decode with, shared with them.
#[path = "../fuzz/setup.rs"]
mod setup;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::client::{connect, declare_queue};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// Sends the handshake and `input`, ends the sending side, and waits for the broker to hang up.
async fn replay(address: &str, input: &[u8], name: &str) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    // What the connection target sends before the fuzzer's bytes.
    let mut bytes = setup::handshake("/");
    bytes.extend_from_slice(input);
    // The broker may hang up before reading it all.
    let _ = stream.write_all(&bytes).await;
    let _ = stream.shutdown().await;
    let mut sink = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut sink)).await;
    assert!(ended.is_ok(), "{name}: the broker kept the connection open");
}

#[tokio::test(flavor = "multi_thread")]
async fn fuzz_inputs_end_their_connection_and_the_broker_serves_on() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files: Vec<PathBuf> = [
        root.join("fuzz/corpus/connection"),
        root.join("tests/fuzz_regressions"),
    ]
    .iter()
    .flat_map(|d| inputs(d))
    .collect();
    assert!(files.len() >= 10, "seeds missing: {files:?}");
    let (url, _broker) = common::start_embedded().await;
    let address = url
        .trim_start_matches("amqp://guest:guest@")
        .trim_end_matches("/%2f")
        .to_string();
    // A client that was there before them all, and is still there after.
    let before = connect(&url).await;
    let ch = before.create_channel().await.unwrap();
    for file in &files {
        let input = std::fs::read(file).unwrap();
        replay(&address, &input, &file.display().to_string()).await;
    }
    declare_queue(&ch, "after-fuzz-inputs").await;
    let after = connect(&url).await;
    let ch = after.create_channel().await.unwrap();
    declare_queue(&ch, "new-client-after-fuzz-inputs").await;
    before.close(200, "OK".into()).await.unwrap();
    after.close(200, "OK".into()).await.unwrap();
}

/// The frame fuzzer's seeds, decoded as its target decodes them (the first byte picks the frame
/// limit; here the rest is tried with each limit): no panic, methods read back the same, and
/// publishes decoded directly agree with amq-protocol.
#[test]
fn frame_seeds_decode_as_the_fuzz_target_checks() {
    let files = inputs(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/frames"));
    assert!(files.len() >= 10, "seeds missing: {files:?}");
    let mut decoded = 0;
    for file in &files {
        let seed = std::fs::read(file).unwrap();
        let input = seed.get(1..).unwrap_or_default();
        for frame_max in setup::FRAME_LIMITS {
            decoded += rabbitscope::amqp::decode_frames(input, frame_max);
        }
    }
    assert!(decoded > 0, "no seed held a frame that decodes");
}
