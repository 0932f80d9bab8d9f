//! Trace files: the broker event stream written down, to be replayed later.
//!
//! A trace is a YAML stream. It opens with a **header** document (the format version, where
//! it was recorded, the vhost, when, and the topology at that moment), followed by **one
//! document per event**, in the order they happened:
//!
//! ```yaml
//! # rabbitscope trace
//! ---
//! format: 1
//! source: amqp://guest:****@127.0.0.1:5672/%2f
//! vhost: /
//! recorded_at: 2026-11-26T02:30:00.000000000Z
//! snapshot:
//!   vhosts:
//!   - name: /
//!     exchanges: [...]
//!     queues: [...]
//!     bindings: [...]
//! ...
//! ---
//! at: 2026-11-26T02:30:01.250000000Z
//! vhost: /
//! kind: !QueueDeclared
//!   name: orders
//!   durable: true
//!   exclusive: false
//!   auto_delete: false
//!   arguments: {}
//! ...
//! ```
//!
//! Every document starts with `---` and the recorder ends each with `...` (YAML's end of
//! document) and flushes it, so a trace can be read while it is still being written, and a
//! file cut short by a crash reads up to its last complete event: a last document without
//! its `...`, in a file whose documents have one, is an unfinished write and is left out
//! ([`Trace::truncated`]). Hand-written traces may leave the `...` out altogether.
//!
//! An event is [`crate::events::Event`] as YAML: `at` (UTC, RFC 3339), `vhost`, the optional
//! `connection` and `channel`, and `kind`, one of [`crate::events::EventKind`] written as a
//! tag (`!Published`, `!BindingCreated`, ...) over its fields, or a bare name for the kinds
//! without fields (`ChannelOpened`). A `Published` event's `body_preview` (the body, whole up to
//! [`crate::events::BODY_KEPT`] bytes) is text when it is UTF-8, else a list of byte values. Broken files are reported as `file:line:col: why`.
//!
//! - [`record`](mod@record): writing the events of any [`crate::source::Source`] to a trace (of
//!   one vhost, for the embedded broker).
//! - [`replay`](mod@replay): [`ReplaySource`], a trace played back as a source for the view.
//!
//! Imports: events, [`crate::topology`] and [`crate::source`] (a replay is a source). Never the
//! view, the lessons or the command line.

pub mod record;
pub mod replay;
mod time;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::broker::Snapshot;
use crate::events::{ConnectionId, Event, EventKind, Name};

pub use record::{record, record_vhost, Limits, Recorded};
pub use replay::{apply, ReplaySource};

/// The version of the format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The first document of a trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// [`FORMAT_VERSION`] of the writer.
    pub format: u32,
    /// Where the events came from, as it may be shown (an AMQP URL's password masked).
    pub source: String,
    /// The vhost a view opens on.
    pub vhost: String,
    /// When recording started.
    #[serde(with = "time")]
    pub recorded_at: SystemTime,
    /// The topology when recording started; the events change it from there.
    pub snapshot: Snapshot,
}

/// One event as a document: [`Event`] with its time written as RFC 3339.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventDoc {
    #[serde(with = "time")]
    at: SystemTime,
    vhost: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    connection: Option<ConnectionId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    channel: Option<u16>,
    kind: EventKind,
}

/// A trace read back.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    pub header: Header,
    pub events: Vec<Event>,
    /// The file ended in the middle of a document (a recording cut short); what came before
    /// it is all here.
    pub truncated: bool,
}

/// Why a trace file cannot be read, and where: `file:line:col: why`.
pub type TraceError = crate::file_error::FileError;

/// Reads a whole trace file.
pub fn read(path: &Path) -> Result<Trace, TraceError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| TraceError::whole(path, format!("cannot read it: {e}")))?;
    parse(&text, path)
}

/// One YAML document of the file: its text and the file line its text starts on.
struct Document {
    first_line: usize,
    text: String,
    ended: bool,
}

/// Reads a trace from its text; `path` is only for the messages.
pub fn parse(text: &str, path: &Path) -> Result<Trace, TraceError> {
    let (mut documents, open) = split(text, path, 0)?;
    let mut truncated = false;
    if let Some(last) = open {
        // The recorder ends every document with `...`: one without, at the end of a file
        // whose documents have it, is a write that never finished.
        if documents.iter().any(|d| d.ended) {
            truncated = true;
        } else {
            documents.push(last);
        }
    }
    let mut documents = documents.into_iter();
    let Some(first) = documents.next() else {
        return Err(TraceError::at(
            path,
            (1, 1),
            "not a trace: no header document (a trace starts with '---' and the header)",
        ));
    };
    let header: Header = from_document(&first, path)?;
    if header.format != FORMAT_VERSION {
        return Err(TraceError::at(
            path,
            (first.first_line, 1),
            format!(
                "trace format {} is not known to this rabbitscope (it reads format {FORMAT_VERSION})",
                header.format
            ),
        ));
    }
    let events = documents
        .map(|doc| event(&doc, path))
        .collect::<Result<_, _>>()?;
    Ok(Trace {
        header,
        events,
        truncated,
    })
}

/// The documents of `text` (whose first line is line `lines_before + 1` of the file), and
/// the last one if it has no end yet. Split at the markers by hand: serde_yaml reads a stream
/// only all or nothing, and a file being written (or cut short) must still read up to its
/// last whole event.
fn split(
    text: &str,
    path: &Path,
    lines_before: usize,
) -> Result<(Vec<Document>, Option<Document>), TraceError> {
    let mut documents: Vec<Document> = Vec::new();
    let mut open: Option<Document> = None;
    for (i, line) in text.lines().enumerate() {
        let number = lines_before + i + 1;
        let marker = line.trim_end();
        if marker == "---" || marker.starts_with("--- ") {
            if let Some(previous) = open.take() {
                documents.push(previous);
            }
            open = Some(Document {
                first_line: number + 1,
                text: String::new(),
                ended: false,
            });
        } else if marker == "..." {
            if let Some(mut done) = open.take() {
                done.ended = true;
                documents.push(done);
            }
        } else if let Some(doc) = &mut open {
            doc.text.push_str(line);
            doc.text.push('\n');
        } else if !(marker.is_empty() || marker.trim_start().starts_with('#')) {
            return Err(TraceError::at(
                path,
                (number, 1),
                "text outside a document: each document starts with a line '---'",
            ));
        }
    }
    Ok((documents, open))
}

/// One event document as the event.
fn event(doc: &Document, path: &Path) -> Result<Event, TraceError> {
    let e: EventDoc = from_document(doc, path)?;
    Ok(Event {
        at: e.at,
        vhost: e.vhost,
        connection: e.connection,
        channel: e.channel,
        kind: e.kind,
    })
}

/// A trace that is still being written (`rabbitscope record` into it), read as it grows:
/// only whole documents, those the writer ended with `...`, so a document read half-written
/// waits for its rest.
pub struct TraceTail {
    path: PathBuf,
    file: std::fs::File,
    /// Bytes read after the last whole document.
    pending: Vec<u8>,
    /// Lines of the file before `pending`.
    lines_before: usize,
}

impl TraceTail {
    /// Opens a trace, reads its header and every whole event so far.
    pub fn open(path: &Path) -> Result<(Trace, TraceTail), TraceError> {
        use std::io::Read;
        let failed = |e: std::io::Error| TraceError::whole(path, format!("cannot read it: {e}"));
        let mut file = std::fs::File::open(path).map_err(failed)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(failed)?;
        // A trace without end markers (written by hand) is taken whole.
        let whole = match whole_documents(&bytes) {
            0 => bytes.len(),
            whole => whole,
        };
        let text = std::str::from_utf8(&bytes[..whole])
            .map_err(|e| TraceError::whole(path, format!("not UTF-8 text: {e}")))?;
        let trace = parse(text, path)?;
        // What follows the last whole document is read again once it is complete.
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(whole as u64))
            .map_err(failed)?;
        let tail = TraceTail {
            path: path.to_path_buf(),
            file,
            pending: Vec::new(),
            lines_before: text.lines().count(),
        };
        Ok((trace, tail))
    }

    /// The events whose documents were completed since the last call.
    pub fn read_new(&mut self) -> Result<Vec<Event>, TraceError> {
        use std::io::Read;
        self.file
            .read_to_end(&mut self.pending)
            .map_err(|e| TraceError::whole(&self.path, format!("cannot read it: {e}")))?;
        let whole = whole_documents(&self.pending);
        if whole == 0 {
            return Ok(Vec::new());
        }
        let complete: Vec<u8> = self.pending.drain(..whole).collect();
        let text = String::from_utf8_lossy(&complete);
        let (documents, _) = split(&text, &self.path, self.lines_before)?;
        self.lines_before += text.lines().count();
        documents.iter().map(|d| event(d, &self.path)).collect()
    }
}

/// How many of `bytes` make whole documents: up to the end of the last `...` line.
fn whole_documents(bytes: &[u8]) -> usize {
    let mut end = 0;
    let mut line_start = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            let line = &bytes[line_start..i];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.trim_ascii_end() == b"..." {
                end = i + 1;
            }
            line_start = i + 1;
        }
    }
    end
}

/// How deeply an event's lists and mappings may nest: serde_yaml refuses more than 128 anyway,
/// so no trace that loaded before is refused, and deeper text no longer costs minutes.
pub const MAX_NESTING: usize = 128;

/// One document's value, with serde_yaml's place in the document turned into the file's.
fn from_document<T: serde::de::DeserializeOwned>(
    doc: &Document,
    path: &Path,
) -> Result<T, TraceError> {
    if doc.text.trim().is_empty() {
        return Err(TraceError::at(
            path,
            (doc.first_line.saturating_sub(1).max(1), 1),
            "empty document",
        ));
    }
    if let Some((line, column)) = crate::nesting::deeper_than(&doc.text, MAX_NESTING) {
        return Err(TraceError::too_deep(
            path,
            (doc.first_line + line - 1, column),
            MAX_NESTING,
        ));
    }
    serde_yaml::from_str(&doc.text).map_err(|e| TraceError::from_yaml(&e, path, doc.first_line))
}

/// Writes a trace: the header at once, then each event as its own flushed document.
pub struct TraceWriter {
    file: std::fs::File,
    events: u64,
}

impl TraceWriter {
    /// Creates (or empties) the file and writes the header.
    pub fn create(path: &Path, header: &Header) -> std::io::Result<TraceWriter> {
        let mut file = std::fs::File::create(path)?;
        let text = serde_yaml::to_string(header).map_err(std::io::Error::other)?;
        write!(
            file,
            "# rabbitscope trace: a header, then one document per event, in order\n---\n{text}...\n"
        )?;
        file.flush()?;
        Ok(TraceWriter { file, events: 0 })
    }

    /// Appends one event. One write per document, so a reader sees whole documents or a
    /// last one without its `...`.
    pub fn write(&mut self, event: &Event) -> std::io::Result<()> {
        let doc = EventDoc {
            at: event.at,
            vhost: event.vhost.clone(),
            connection: event.connection,
            channel: event.channel,
            kind: event.kind.clone(),
        };
        let text = serde_yaml::to_string(&doc).map_err(std::io::Error::other)?;
        self.file
            .write_all(format!("---\n{text}...\n").as_bytes())?;
        self.events += 1;
        Ok(())
    }

    /// How many events were written.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Makes sure everything is on disk; returns how many events were written.
    pub fn finish(mut self) -> std::io::Result<u64> {
        self.file.flush()?;
        self.file.sync_all()?;
        Ok(self.events)
    }
}
