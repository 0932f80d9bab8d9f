//! Streams (`x-queue-type: stream`) as RabbitMQ 3.10 runs them over AMQP 0-9-1: an append-only
//! log that consuming never shortens, read by each consumer from its own offset, and trimmed
//! only by retention, a whole segment at a time.
//!
//! The rules and texts come from rabbitmq-server 3.10 (`deps/rabbit/src/rabbit_stream_queue.erl`
//! and `rabbit_amqqueue.erl`) and were checked against a running 3.10.
//!
//! How the log is cut, as a rule of our own that is as coarse as RabbitMQ's (osiris) is:
//!
//! - A *chunk* is a burst of messages: a message appended within [`CHUNK_GAP`] of the one
//!   before joins its chunk, up to [`CHUNK_MESSAGES`] messages. RabbitMQ's writer likewise puts
//!   what arrives while it writes into one chunk, so a quiet publisher makes one-message chunks
//!   and a busy one large chunks. `x-stream-offset: last` starts at the last chunk's start.
//! - A *segment* holds whole chunks; the message after the one that filled the current
//!   segment to `x-stream-max-segment-size-bytes` or more (500,000,000 by default, as in
//!   RabbitMQ) starts a new chunk in a new segment. A message counts as its body plus
//!   [`RECORD_OVERHEAD`] bytes. (RabbitMQ closes a segment after the chunk that filled it, so
//!   its segments may run over by a chunk; ours by a message.)
//! - *Retention* is evaluated when a segment is rolled, as RabbitMQ does: the oldest segments
//!   (never the one just opened) go while the log is over `x-max-length-bytes`, or while
//!   their newest message is older than `x-max-age`.
//!
//! Offsets here are consecutive from 0. RabbitMQ's skip a number now and then where a segment
//! starts (it writes a tracking record there), so tests compare offsets only within a segment.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use amq_protocol::protocol::BasicProperties;
use amq_protocol::types::{AMQPValue, FieldTable};

use super::args;
use super::error::{AmqpError, AmqpResult, Scope};
use super::message::Message;
use super::queue::non_negative_arg;

/// A message appended this soon after the one before joins its chunk.
pub const CHUNK_GAP: Duration = Duration::from_millis(1);
/// The most messages one chunk holds.
pub const CHUNK_MESSAGES: usize = 64;
/// What a message costs in a segment besides its body (osiris' record and chunk headers and
/// the AMQP 1.0 sections RabbitMQ stores the message as, roughly).
pub const RECORD_OVERHEAD: u64 = 64;
/// RabbitMQ's default `x-stream-max-segment-size-bytes`.
pub const DEFAULT_SEGMENT_BYTES: u64 = 500_000_000;
/// The largest `x-stream-max-segment-size-bytes` RabbitMQ takes (`rabbit.hrl`).
const MAX_SEGMENT_BYTES: u64 = 3_000_000_000;

/// The arguments RabbitMQ 3.10 lets a stream have, in the order it validates them
/// (`declare_args()` filtered by the stream's `capabilities()`); redeclares compare these.
pub const STREAM_ARGUMENTS: &[&str] = &[
    "x-max-length-bytes",
    "x-queue-type",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
];

/// Arguments another queue type takes and a stream refuses whatever their value.
pub const NOT_STREAM: &[&str] = &[
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-delivery-limit",
    "x-expires",
    "x-max-in-memory-bytes",
    "x-max-in-memory-length",
    "x-max-length",
    "x-max-priority",
    "x-message-ttl",
    "x-overflow",
    "x-queue-master-locator",
    "x-queue-mode",
    "x-queue-version",
    "x-quorum-initial-group-size",
    "x-single-active-consumer",
];

/// The leader locators RabbitMQ 3.10 knows (`rabbit_queue_location`).
const LEADER_LOCATORS: &[&str] = &["client-local", "random", "least-leaders"];

/// A stream's retention and segment settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamLimits {
    pub max_length_bytes: Option<u64>,
    pub max_age: Option<Duration>,
    pub max_segment_bytes: u64,
}

impl Default for StreamLimits {
    fn default() -> StreamLimits {
        StreamLimits {
            max_length_bytes: None,
            max_age: None,
            max_segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

/// RabbitMQ's answer when one of its processes crashed on what a client sent: 541 with no
/// detail, and the connection closes.
pub fn internal_error() -> AmqpError {
    AmqpError {
        code: 541,
        text: "INTERNAL_ERROR".to_string(),
        scope: Scope::Connection,
    }
}

/// A `x-max-age` (or interval offset) such as `1800s` or `7D`: digits, then one of Y M D h m
/// s (a year is 365 days, a month 30). `Ok(None)` is RabbitMQ's `invalid_max_age`; `Err` is
/// the crash RabbitMQ has on a text that does not start with a digit (`check_max_age/1`).
pub fn parse_max_age(text: &[u8]) -> AmqpResult<Option<Duration>> {
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return Err(internal_error());
    }
    let value: u64 = std::str::from_utf8(&text[..digits])
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(u64::MAX);
    let unit_secs = match &text[digits..] {
        b"Y" => 365 * 86_400,
        b"M" => 30 * 86_400,
        b"D" => 86_400,
        b"h" => 3_600,
        b"m" => 60,
        b"s" => 1,
        _ => return Ok(None),
    };
    if value == 0 {
        return Ok(None);
    }
    Ok(Some(Duration::from_secs(value.saturating_mul(unit_secs))))
}

/// Reads a stream's arguments the way RabbitMQ 3.10 does: each argument the stream takes is
/// validated in [`STREAM_ARGUMENTS`] order, then the first (in table order) of those it does
/// not take is refused. `invalid` builds the "invalid arg" 406.
pub fn parse_limits(
    arguments: &FieldTable,
    invalid: &dyn Fn(&str, &str) -> AmqpError,
    refused: &dyn Fn(&str) -> AmqpError,
) -> AmqpResult<StreamLimits> {
    let mut limits = StreamLimits::default();
    let table = arguments.inner();
    let non_negative = |arg: &str| non_negative_arg(arguments, arg, invalid);
    limits.max_length_bytes = non_negative("x-max-length-bytes")?;
    match table.get("x-max-age") {
        None => {}
        Some(AMQPValue::LongString(s)) => match parse_max_age(s.as_bytes())? {
            Some(age) => limits.max_age = Some(age),
            None => return Err(invalid("x-max-age", "invalid_max_age")),
        },
        Some(v) => {
            let why = format!("{{unacceptable_type,{}}}", args::type_name(v));
            return Err(invalid("x-max-age", &why));
        }
    }
    if let Some(n) = non_negative("x-stream-max-segment-size-bytes")? {
        limits.max_segment_bytes = n;
    }
    if non_negative("x-initial-cluster-size")? == Some(0) {
        return Err(invalid("x-initial-cluster-size", "{value_zero,0}"));
    }
    match table.get("x-queue-leader-locator") {
        None => {}
        Some(AMQPValue::LongString(s))
            if LEADER_LOCATORS.contains(&&*String::from_utf8_lossy(s.as_bytes())) => {}
        Some(AMQPValue::LongString(_)) => {
            return Err(invalid(
                "x-queue-leader-locator",
                "invalid_queue_locator_arg",
            ))
        }
        Some(v) => {
            let why = format!("{{unacceptable_type,{}}}", args::type_name(v));
            return Err(invalid("x-queue-leader-locator", &why));
        }
    }
    if let Some(arg) = table.keys().find(|k| NOT_STREAM.contains(&k.as_str())) {
        return Err(refused(arg.as_str()));
    }
    Ok(limits)
}

/// RabbitMQ checks the segment size last, after the queue's properties (`declare/2`).
pub fn check_segment_size(limits: &StreamLimits) -> AmqpResult<()> {
    if limits.max_segment_bytes > MAX_SEGMENT_BYTES {
        return Err(AmqpError::precondition_failed(
            "Exceeded max value for x-stream-max-segment-size-bytes",
        ));
    }
    Ok(())
}

/// Where a consumer starts reading (`x-stream-offset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    First,
    /// The start of the last chunk.
    Last,
    /// The next message written: only what arrives from now on (the default).
    Next,
    Offset(i64),
    /// The first chunk written at or after this time, in milliseconds since the epoch.
    Timestamp(i64),
}

impl StartAt {
    /// The consumer argument `x-stream-offset` read as RabbitMQ 3.10 reads it
    /// (`rabbit_stream_queue:parse_offset_arg/1`): `first`, `last`, `next`, an integer of any
    /// size, an AMQP timestamp (seconds), or an interval such as `10m` meaning that long ago.
    /// A text it cannot read is a 406; one that crashes RabbitMQ, and any other type, a 541.
    pub fn parse(arguments: &FieldTable, invalid: &dyn Fn(&str) -> AmqpError) -> AmqpResult<Self> {
        let Some(value) = arguments.inner().get("x-stream-offset") else {
            return Ok(StartAt::Next);
        };
        if let Ok(Some(n)) = args::get_int(arguments, "x-stream-offset") {
            return Ok(StartAt::Offset(n));
        }
        match value {
            AMQPValue::Timestamp(seconds) => {
                Ok(StartAt::Timestamp((*seconds as i64).saturating_mul(1000)))
            }
            AMQPValue::LongString(s) => match s.as_bytes() {
                b"first" => Ok(StartAt::First),
                b"last" => Ok(StartAt::Last),
                b"next" => Ok(StartAt::Next),
                text => match parse_max_age(text)? {
                    Some(ago) => Ok(StartAt::Timestamp(
                        millis_since_epoch(SystemTime::now()) - ago.as_millis() as i64,
                    )),
                    None => Err(invalid(&format!(
                        "{{invalid_stream_offset_arg,{{longstr,<<\"{}\">>}}}}",
                        String::from_utf8_lossy(text)
                    ))),
                },
            },
            _ => Err(internal_error()),
        }
    }
}

fn millis_since_epoch(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A run of messages written together.
#[derive(Clone, Copy, Debug)]
struct Chunk {
    first: u64,
    /// When its first message was written, in ms since the epoch.
    written: i64,
    /// When its last message was written.
    last_written: SystemTime,
}

/// A run of whole chunks that retention keeps or drops together.
#[derive(Clone, Copy, Debug)]
struct Segment {
    first: u64,
    bytes: u64,
    /// When its newest message was written.
    newest: SystemTime,
}

/// The log of one stream. Consumers share it: each holds only its next offset.
#[derive(Debug, Default)]
pub struct StreamLog {
    /// The offset of `messages[0]`.
    first: u64,
    messages: VecDeque<Arc<Message>>,
    chunks: VecDeque<Chunk>,
    segments: VecDeque<Segment>,
    bytes: u64,
    /// Consumers read only below this offset: what the store has written (everything, when
    /// there is no store). Osiris likewise hands readers only chunks already written, so a
    /// consumer gets what one write held at once.
    readable: u64,
}

/// What a stream looks like from outside, to draw it as a log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamSnapshot {
    /// The oldest offset still held.
    pub first_offset: u64,
    /// The offset the next message will get.
    pub next_offset: u64,
    pub messages: u64,
    /// Bytes held, by the segment measure (body plus [`RECORD_OVERHEAD`] each).
    pub bytes: u64,
    pub segments: usize,
    pub chunks: usize,
    pub max_length_bytes: Option<u64>,
    pub max_age: Option<Duration>,
    pub max_segment_bytes: u64,
    /// Each consumer's tag and the offset it reads next.
    pub consumers: Vec<(String, u64)>,
}

/// What a message costs in a segment.
fn record_bytes(message: &Message) -> u64 {
    message.body.len() as u64 + RECORD_OVERHEAD
}

impl StreamLog {
    /// A log whose first message will have offset `first` (a stream kept by the store starts
    /// where retention had left it).
    pub fn starting_at(first: u64) -> StreamLog {
        StreamLog {
            first,
            readable: first,
            ..StreamLog::default()
        }
    }

    /// The message at `offset`, if the log holds it and it may be read yet.
    pub fn get_readable(&self, offset: u64) -> Option<&Arc<Message>> {
        (offset < self.readable).then(|| self.get(offset)).flatten()
    }

    /// The store has written everything before `end`: consumers may read it.
    pub fn mark_written(&mut self, end: u64) {
        self.readable = self.readable.max(end.min(self.next_offset()));
    }

    pub fn first_offset(&self) -> u64 {
        self.first
    }

    /// The offset the next message will get.
    pub fn next_offset(&self) -> u64 {
        self.first + self.messages.len() as u64
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The message at `offset`, if the log holds it.
    pub fn get(&self, offset: u64) -> Option<&Arc<Message>> {
        let i = offset.checked_sub(self.first)?;
        self.messages.get(usize::try_from(i).ok()?)
    }

    /// Every message held, oldest first, with its offset.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Arc<Message>)> {
        (self.first..).zip(self.messages.iter())
    }

    /// Appends a message written at `now`; returns its offset and the offsets retention
    /// dropped (when this message rolled a segment).
    pub fn append(
        &mut self,
        message: Arc<Message>,
        now: SystemTime,
        limits: &StreamLimits,
    ) -> (u64, std::ops::Range<u64>) {
        let offset = self.next_offset();
        let size = record_bytes(&message);
        let rolls = self
            .segments
            .back()
            .is_none_or(|s| s.bytes >= limits.max_segment_bytes);
        let joins_chunk = !rolls
            && self.chunks.back().is_some_and(|c| {
                offset - c.first < CHUNK_MESSAGES as u64
                    && now
                        .duration_since(c.last_written)
                        .is_ok_and(|gap| gap <= CHUNK_GAP)
            });
        let mut dropped = offset..offset;
        if joins_chunk {
            let chunk = self.chunks.back_mut().expect("checked");
            chunk.last_written = now;
        } else {
            self.chunks.push_back(Chunk {
                first: offset,
                written: millis_since_epoch(now),
                last_written: now,
            });
            if rolls {
                self.segments.push_back(Segment {
                    first: offset,
                    bytes: 0,
                    newest: now,
                });
                dropped = self.retain(now, limits);
            }
        }
        let segment = self.segments.back_mut().expect("one segment at least");
        segment.bytes += size;
        segment.newest = now;
        self.bytes += size;
        self.messages.push_back(message);
        (offset, dropped)
    }

    /// Drops the oldest whole segments retention no longer keeps (never the newest one, just
    /// opened); returns the offsets dropped.
    fn retain(&mut self, now: SystemTime, limits: &StreamLimits) -> std::ops::Range<u64> {
        let start = self.first;
        while self.segments.len() > 1 {
            let oldest = self.segments[0];
            let too_big = limits.max_length_bytes.is_some_and(|max| self.bytes > max);
            let too_old = limits.max_age.is_some_and(|age| {
                now.duration_since(oldest.newest)
                    .is_ok_and(|elapsed| elapsed > age)
            });
            if !too_big && !too_old {
                break;
            }
            self.segments.pop_front();
            let until = self.segments[0].first;
            let count = (until - self.first) as usize;
            self.messages.drain(..count);
            self.first = until;
            self.bytes -= oldest.bytes;
            while self.chunks.front().is_some_and(|c| c.first < until) {
                self.chunks.pop_front();
            }
        }
        start..self.first
    }

    /// The offset a consumer starting at `start` reads first. An offset before the log's start
    /// reads from its start; one past its end waits for that offset (RabbitMQ skips what is
    /// written before it).
    pub fn start_offset(&self, start: StartAt) -> u64 {
        match start {
            StartAt::First => self.first,
            StartAt::Last => self.chunks.back().map_or(self.first, |c| c.first),
            StartAt::Next => self.next_offset(),
            StartAt::Offset(n) => (n.max(0) as u64).max(self.first),
            StartAt::Timestamp(ms) => self
                .chunks
                .iter()
                .find(|c| c.written >= ms)
                .map_or(self.next_offset(), |c| c.first),
        }
    }

    /// The numbers inspection shows, with the consumers' positions.
    pub fn snapshot(&self, limits: &StreamLimits, consumers: Vec<(String, u64)>) -> StreamSnapshot {
        StreamSnapshot {
            first_offset: self.first,
            next_offset: self.next_offset(),
            messages: self.messages.len() as u64,
            bytes: self.bytes,
            segments: self.segments.len(),
            chunks: self.chunks.len(),
            max_length_bytes: limits.max_length_bytes,
            max_age: limits.max_age,
            max_segment_bytes: limits.max_segment_bytes,
            consumers,
        }
    }
}

/// The message as a stream hands it out: with its offset in the `x-stream-offset` header (a
/// long), as `rabbit_stream_queue:stream_entries/4` adds it.
pub fn with_offset(original: &Message, offset: u64) -> Message {
    let mut headers = original.headers().cloned().unwrap_or_default();
    headers.insert(
        "x-stream-offset".into(),
        AMQPValue::LongLongInt(offset as i64),
    );
    Message {
        properties: Arc::new(BasicProperties::clone(&original.properties).with_headers(headers)),
        ..original.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn message(body: &str) -> Arc<Message> {
        Arc::new(Message {
            id: 0,
            exchange: "".into(),
            routing_key: "s".into(),
            properties: Arc::new(BasicProperties::default()),
            body: Bytes::copy_from_slice(body.as_bytes()),
        })
    }

    #[test]
    fn consumers_read_only_what_was_written() {
        let mut log = StreamLog::starting_at(5);
        let limits = StreamLimits::default();
        for body in ["a", "b", "c"] {
            log.append(message(body), SystemTime::now(), &limits);
        }
        assert!(log.get_readable(5).is_none(), "nothing written yet");
        log.mark_written(7);
        assert!(log.get_readable(6).is_some());
        assert!(log.get_readable(7).is_none(), "offset 7 is not written");
        // A report past the end reads no further than the log goes.
        log.mark_written(100);
        assert!(log.get_readable(7).is_some());
        log.append(message("d"), SystemTime::now(), &limits);
        assert!(
            log.get_readable(8).is_none(),
            "a new append waits for its write"
        );
        log.mark_written(6);
        assert!(
            log.get_readable(7).is_some(),
            "what was readable stays readable"
        );
    }

    #[test]
    fn max_age_reads_as_rabbitmq_does() {
        let secs = |t: &str| parse_max_age(t.as_bytes()).unwrap().map(|d| d.as_secs());
        assert_eq!(secs("1800s"), Some(1800));
        assert_eq!(secs("7D"), Some(7 * 86_400));
        assert_eq!(secs("01h"), Some(3_600));
        assert_eq!(secs("1Y"), Some(365 * 86_400));
        assert_eq!(secs("1M"), Some(30 * 86_400));
        for invalid in ["10", "0s", "1x", "1.5h", "1hh"] {
            assert_eq!(secs(invalid), None, "{invalid}");
        }
        for crash in ["abc", "", "-1s", " 1h", "s"] {
            assert_eq!(parse_max_age(crash.as_bytes()).unwrap_err().code, 541);
        }
    }

    #[test]
    fn offsets_count_from_zero_and_last_is_the_last_chunk() {
        let limits = StreamLimits::default();
        let mut log = StreamLog::default();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000);
        for i in 0..3 {
            log.append(message("a"), t0 + Duration::from_secs(i), &limits);
        }
        // A burst: one chunk.
        let t1 = t0 + Duration::from_secs(10);
        for _ in 0..3 {
            log.append(message("b"), t1, &limits);
        }
        assert_eq!(log.next_offset(), 6);
        assert_eq!(log.start_offset(StartAt::First), 0);
        assert_eq!(log.start_offset(StartAt::Last), 3);
        assert_eq!(log.start_offset(StartAt::Next), 6);
        assert_eq!(log.start_offset(StartAt::Offset(-5)), 0);
        assert_eq!(log.start_offset(StartAt::Offset(2)), 2);
        let at = millis_since_epoch(t0 + Duration::from_secs(1));
        assert_eq!(log.start_offset(StartAt::Timestamp(at)), 1);
        assert_eq!(log.start_offset(StartAt::Timestamp(i64::MAX)), 6);
    }

    #[test]
    fn retention_drops_whole_old_segments_when_one_rolls() {
        let limits = StreamLimits {
            max_length_bytes: Some(3 * (RECORD_OVERHEAD + 1)),
            max_age: None,
            max_segment_bytes: 2 * (RECORD_OVERHEAD + 1),
        };
        let mut log = StreamLog::default();
        let mut dropped = Vec::new();
        for i in 0..10 {
            let at = UNIX_EPOCH + Duration::from_secs(i);
            dropped.extend(log.append(message("x"), at, &limits).1);
        }
        // Segments of two messages; a roll keeps what fits in three messages' bytes plus the
        // segment being written.
        assert_eq!(log.first_offset() % 2, 0, "whole segments only");
        assert!(log.first_offset() > 0);
        assert_eq!(dropped, (0..log.first_offset()).collect::<Vec<_>>());
        assert_eq!(log.next_offset(), 10);
        assert_eq!(log.get(9).map(|m| &m.body[..]), Some(&b"x"[..]));
        assert!(log.get(log.first_offset() - 1).is_none());

        // A burst (one instant) rolls segments too.
        let mut burst = StreamLog::default();
        for _ in 0..10 {
            burst.append(message("x"), UNIX_EPOCH, &limits);
        }
        assert!(burst.first_offset() > 0);
        assert_eq!(burst.next_offset(), 10);
    }

    #[test]
    fn max_age_drops_segments_whose_newest_message_is_older() {
        let limits = StreamLimits {
            max_length_bytes: None,
            max_age: Some(Duration::from_secs(60)),
            max_segment_bytes: 2 * (RECORD_OVERHEAD + 1),
        };
        let mut log = StreamLog::default();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000);
        for i in 0..4 {
            log.append(message("old"), t0 + Duration::from_secs(i), &limits);
        }
        assert_eq!(log.first_offset(), 0, "nothing is old yet");
        // Ten minutes later the next roll drops both old segments: the newest never goes.
        let later = t0 + Duration::from_secs(600);
        let (offset, dropped) = log.append(message("new"), later, &limits);
        assert_eq!((offset, dropped), (4, 0..4));
        assert_eq!(log.first_offset(), 4);
        assert_eq!(log.len(), 1);
    }
}
