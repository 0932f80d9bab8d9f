//! How much thread stack a deeply nested message header takes, per level of nesting.
//!
//! RabbitMQ passes on headers nested thousands deep, and amq-protocol parses field tables
//! recursively (so do `Clone` and `Drop` of the parsed value). This finds, for a content
//! header of tables nested DEPTH deep, the smallest thread stack on which each step survives,
//! by running itself as a child process per try (an overflow aborts the process) and halving
//! the interval between a stack that failed and one that held:
//! - `parse`: amq-protocol's `parse_frame`, as lapin's I/O thread runs it, then dropping it;
//! - `clone`: cloning the parsed headers (and dropping both);
//!
//! each for tables nested in tables and for arrays nested in arrays.
//!
//! Usage: `cargo bench --bench header_stack -- [DEPTH]` (default 18,700, about the most a
//! 131,072-byte frame holds). The figures are for the build it runs in: debug frames are
//! larger than release ones (`cargo bench --profile dev --bench header_stack` for debug).

mod measure;

use std::process::{Command, Stdio};

use amq_protocol::frame::{parse_frame, AMQPFrame};

/// A content-header frame (basic class) whose headers nest `depth` deep: tables of one key
/// each (7 bytes a level), or arrays of one item each (5 bytes a level) in a table.
fn deep_header_frame(depth: usize, arrays: bool) -> Vec<u8> {
    fn long(bytes: &[u8]) -> Vec<u8> {
        let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(bytes);
        out
    }
    let table = if arrays {
        let mut array = long(b"S\x00\x00\x00\x06bottom");
        for _ in 2..depth {
            array = long(&[b"A".to_vec(), array].concat());
        }
        long(&[b"\x01aA".to_vec(), array].concat())
    } else {
        let mut table = long(b"\x04leafS\x00\x00\x00\x06bottom");
        for _ in 1..depth {
            let mut entry = b"\x01aF".to_vec();
            entry.extend_from_slice(&table);
            table = long(&entry);
        }
        table
    };
    let mut payload = Vec::new();
    payload.extend_from_slice(&60u16.to_be_bytes()); // class basic
    payload.extend_from_slice(&0u16.to_be_bytes()); // weight
    payload.extend_from_slice(&5u64.to_be_bytes()); // body size
    payload.extend_from_slice(&0x2000u16.to_be_bytes()); // headers present
    payload.extend_from_slice(&table);
    let mut frame = vec![2u8];
    frame.extend_from_slice(&1u16.to_be_bytes());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame.push(0xce);
    frame
}

/// Runs one step on a thread of `stack` bytes; returns only if it survived.
fn step(what: &str, depth: usize, stack: usize) {
    let frame = deep_header_frame(depth, what.starts_with("arrays"));
    let what = what.to_string();
    std::thread::Builder::new()
        .stack_size(stack)
        .spawn(move || {
            let (_, parsed) = parse_frame(&frame[..]).expect("the frame parses");
            let AMQPFrame::Header(_, header) = parsed else {
                panic!("not a content header");
            };
            if what.ends_with("clone") {
                let copy = header.properties.headers().clone();
                assert!(copy.is_some());
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

/// Whether a child process running `what` on `stack` bytes survived.
fn survives(what: &str, depth: usize, stack: usize) -> bool {
    Command::new(std::env::current_exe().unwrap())
        .args(["--step", what, &depth.to_string(), &stack.to_string()])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn main() {
    // A child run of one step, started by `survives`.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--step") {
        step(&args[1], args[2].parse().unwrap(), args[3].parse().unwrap());
        return;
    }
    let Some(args) = measure::arguments("header_stack") else {
        return;
    };
    let depth: usize = args.first().map_or(18_700, |d| d.parse().unwrap());
    for arrays in [false, true] {
        println!(
            "content header nested {depth} deep in {}: {} bytes as a frame",
            if arrays { "arrays" } else { "tables" },
            deep_header_frame(depth, arrays).len()
        );
    }
    for what in [
        "tables parse",
        "tables clone",
        "arrays parse",
        "arrays clone",
    ] {
        let (mut failed, mut held) = (64 << 10, 1 << 30);
        assert!(
            survives(what, depth, held),
            "{what}: 1 GiB of stack is not enough"
        );
        while held - failed > 16 << 10 {
            let middle = (failed + held) / 2;
            if survives(what, depth, middle) {
                held = middle;
            } else {
                failed = middle;
            }
        }
        println!(
            "{what}: needs about {} KiB of stack, {} bytes per level",
            held >> 10,
            held / depth
        );
    }
}
