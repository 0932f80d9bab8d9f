//! One client connection: the handshake, then frames in, broker calls, frames out.
//!
//! The reading half runs here. Everything written goes through the connection's
//! [`ClientSink`](crate::broker::ClientSink) to one writer task, so method replies and
//! deliveries leave in the order they were produced.
//!
//! This file serves a stream (TCP, TLS, in memory) and holds the connection's and each
//! channel's wire state. The rest, in the order a connection lives it:
//!
//! - `handshake`: protocol header, start / tune / open, login, refusals;
//! - `run`: the read loop, heartbeats, alarms, restarts, closing on an error;
//! - `dispatch`: frames to handlers, and the connection and channel classes;
//! - `exchange_class`, `queue_class`, `basic_class`, `confirm_class`, `tx_class`: one file
//!   per AMQP class.
//!
//! It speaks to the broker only through [`Broker`]'s methods: no file here reaches into the
//! broker's state, and the broker never imports this module.

mod basic_class;
mod confirm_class;
mod dispatch;
mod exchange_class;
mod handshake;
mod queue_class;
mod run;
mod tx_class;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use amq_protocol::protocol::{AMQPClass, BasicProperties};
use amq_protocol::types::FieldTable;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::codec;
use super::writer;
use crate::broker::limits::Held;
use crate::broker::maps::HashMap;
use crate::broker::{AmqpError, BindingSpec, Broker, ChannelRef, ClientSink, Target};
use crate::events::ConnectionId;
use crate::terminal::printable;

/// What the server offers in connection.tune.
pub const FRAME_MAX: u32 = 131_072;
pub const CHANNEL_MAX: u16 = 2047;
pub const HEARTBEAT: u16 = 60;
/// Frames before tune-ok may be at most this big (the AMQP minimum).
const FRAME_MIN_SIZE: usize = 4096;
/// The largest message RabbitMQ accepts by default.
const MAX_MESSAGE_SIZE: u64 = 134_217_728;
/// How much a connection that sends in bulk reads at a time.
const READ_CHUNK: usize = 64 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// After a fatal framing or login error RabbitMQ hangs up this long after its close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(3);
/// After other connection errors it waits this long for connection.close-ok.
const CLOSE_OK_TIMEOUT: Duration = Duration::from_secs(30);

/// How the server hangs up after a connection error, as RabbitMQ does for each kind of error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hangup {
    /// Send connection.close, then wait for close-ok.
    AfterCloseOk,
    /// Send connection.close, then close after [`CLOSE_LINGER`] whatever the peer does.
    Linger,
    /// Say nothing; close after [`CLOSE_LINGER`] (refused logins without
    /// `authentication_failure_close`, unusable tune parameters).
    Silent,
    /// Close at once without a word (undecodable class or method ids).
    Drop,
}

/// A message being assembled from publish, header and body frames.
struct PendingContent {
    exchange: String,
    routing_key: String,
    mandatory: bool,
    header: Option<(u64, BasicProperties)>,
    /// The body frames so far, kept as they came (no copy, no growing buffer) until the last
    /// one is in.
    body: Vec<Bytes>,
    /// Bytes in `body`.
    received: usize,
    /// The body's bytes, counted by the memory alarm while they wait here (from the first
    /// frame that does not complete it: a body in one frame never waits).
    held: Option<Held>,
    /// More body arrived than the header announced: RabbitMQ then never routes the message
    /// and keeps swallowing body frames; we do the same.
    overflowed: bool,
}

/// A publish or settlement held back by a transaction until tx.commit.
enum TxOp {
    Publish(Box<Content>),
    Ack(u64, bool),
    Nack(u64, bool, bool),
    Reject(u64, bool),
}

struct Content {
    exchange: String,
    routing_key: String,
    mandatory: bool,
    properties: BasicProperties,
    body: Bytes,
    /// Counted by the memory alarm until it is routed.
    held: Option<Held>,
}

#[derive(Default)]
struct ChannelWire {
    /// Set after we sent channel.close: everything but close-ok is ignored.
    closing: bool,
    content: Option<PendingContent>,
    confirm: bool,
    published: u64,
    /// Contiguous confirms not yet written: (first, last).
    pending_acks: Option<(u64, u64)>,
    /// Confirms held back until the store has synced up to a ticket: a persistent message on a
    /// durable queue, and every confirm after it on this channel, so they stay in order.
    waiting: VecDeque<HeldConfirm>,
    tx: Option<Vec<TxOp>>,
}

/// A confirm that waits for the disk.
struct HeldConfirm {
    tag: u64,
    /// The store ticket it waits for; 0 waits only for the confirms before it.
    ticket: u64,
    ack: bool,
}

/// How a connection ends.
enum End {
    /// The peer closed the socket or sent connection.close.
    Peer,
    /// We closed it with this error (already sent connection.close).
    Error(AmqpError),
    /// The server is shutting down.
    Shutdown,
    /// The peer went silent past two heartbeats.
    Silent,
}

/// The reading half of a client stream (TCP, TLS, or in memory).
pub type Reader = Box<dyn AsyncRead + Unpin + Send>;
/// The writing half of a client stream.
pub type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// Serves one accepted TCP socket to the end. Its own halves need no lock between them, unlike
/// [`tokio::io::split`].
pub async fn serve_tcp(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok();
    let (reader, writer) = stream.into_split();
    let ends = Ends { peer, local };
    serve_halves(Box::new(reader), Box::new(writer), ends, broker, shutdown).await
}

/// The two ends of a client stream: the client's address, and ours when there is one (an
/// in-memory pipe has none).
#[derive(Clone, Copy, Debug)]
pub struct Ends {
    pub peer: SocketAddr,
    pub local: Option<SocketAddr>,
}

impl Ends {
    /// The connection's name as RabbitMQ writes it: `127.0.0.1:53122 -> 127.0.0.1:5672`.
    fn name(&self) -> String {
        match self.local {
            Some(local) => format!("{} -> {local}", self.peer),
            None => self.peer.to_string(),
        }
    }
}

/// Serves any byte stream to the end: a TLS session, or an in-memory pipe. `ends.peer` is where
/// it comes from (guest may log in from loopback only).
pub async fn serve<S>(stream: S, ends: Ends, broker: Arc<Broker>, shutdown: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    serve_halves(Box::new(reader), Box::new(writer), ends, broker, shutdown).await
}

/// Serves one connection to the end. Logs open and close to stderr.
async fn serve_halves(
    mut reader: Reader,
    mut write_half: Writer,
    ends: Ends,
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) {
    let peer = ends.peer;
    // Small until the client sends in bulk (see `Connection::run`): idle connections are cheap.
    let mut buf = BytesMut::with_capacity(FRAME_MIN_SIZE);
    let handshake = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        handshake::handshake(&mut reader, &mut write_half, &mut buf, ends, &broker),
    )
    .await;
    let Ok(Ok(Some(opened))) = handshake else {
        let _ = write_half.shutdown().await;
        return;
    };
    tracing::info!(connection = opened.id, %peer, user = %printable(&opened.user), vhost = %printable(&opened.vhost), "connection opened");
    let (writer_task, writer_done) = writer::spawn(
        write_half,
        opened.inbox,
        broker.clone(),
        opened.id,
        opened.frame_max,
        opened.heartbeat,
    );
    let mut conn = Connection {
        id: opened.id,
        broker: broker.clone(),
        sink: opened.sink,
        frame_max: opened.frame_max,
        channel_max: opened.channel_max,
        channels: HashMap::default(),
        orphan_publishes: Default::default(),
        out: Vec::new(),
        closed_by_peer: false,
        publisher: false,
        hears_blocked: opened.hears_blocked,
        told_blocked: false,
    };
    let end = conn.run(&mut reader, buf, opened.heartbeat, shutdown).await;
    let reason = match &end {
        End::Peer => "client closed the connection".to_string(),
        End::Error(e) => e.to_string(),
        End::Shutdown => "broker shutdown".to_string(),
        End::Silent => "missed heartbeats from client".to_string(),
    };
    broker.close_connection(conn.id, &reason);
    drop(conn);
    // The writer ends once every sender is gone and it has written what was queued.
    let _ = tokio::time::timeout(Duration::from_secs(5), writer_done).await;
    writer_task.abort();
    tracing::info!(connection = opened.id, %peer, reason = %printable(&reason), "connection closed");
}

/// What a completed handshake settled.
struct Opened {
    id: ConnectionId,
    user: String,
    vhost: String,
    sink: ClientSink,
    inbox: crate::broker::ClientInbox,
    frame_max: usize,
    channel_max: u16,
    heartbeat: u16,
    /// The client understands connection.blocked and connection.unblocked.
    hears_blocked: bool,
}

struct Connection {
    id: ConnectionId,
    broker: Arc<Broker>,
    sink: ClientSink,
    frame_max: usize,
    channel_max: u16,
    channels: HashMap<u16, ChannelWire>,
    /// Never-opened channels that sent basic.publish: RabbitMQ complains only when the
    /// content header follows.
    orphan_publishes: crate::broker::maps::HashSet<u16>,
    /// Replies produced while handling the current batch of input.
    out: Vec<u8>,
    /// The peer sent connection.close and we answered.
    closed_by_peer: bool,
    /// It has published: the memory alarm stops reading it (connections that only consume go
    /// on, so they can drain the queues).
    publisher: bool,
    hears_blocked: bool,
    /// We sent connection.blocked and owe connection.unblocked.
    told_blocked: bool,
}

/// A failure while handling a frame: which method it answers, and the error.
struct Failure {
    channel: u16,
    class_id: u16,
    method_id: u16,
    error: AmqpError,
    hangup: Hangup,
}

/// Builds a Failure for a method, from the error and the method it answers.
fn failure(channel: u16, method: &AMQPClass, error: AmqpError) -> Failure {
    Failure {
        channel,
        class_id: method.get_amqp_class_id(),
        method_id: method.get_amqp_method_id(),
        error,
        hangup: Hangup::AfterCloseOk,
    }
}

/// basic.publish, for failures found while assembling content.
fn publish_failure(channel: u16, error: AmqpError) -> Failure {
    Failure {
        channel,
        class_id: 60,
        method_id: 40,
        error,
        hangup: Hangup::AfterCloseOk,
    }
}

fn connection_failure(error: AmqpError) -> Failure {
    Failure {
        channel: 0,
        class_id: 0,
        method_id: 0,
        error,
        hangup: Hangup::AfterCloseOk,
    }
}

/// The 540 for a method a server may send but a client may not.
fn not_from_client() -> AmqpError {
    AmqpError::command_invalid("method not expected from a client")
}

/// What an exchange or queue method earns: the -ok to write, and whether the client asked
/// for nowait (then nothing is written).
type Answer<M> = Result<(M, bool), AmqpError>;

/// The 505 for a content frame where a method was expected.
fn expected_method() -> Failure {
    connection_failure(AmqpError::unexpected_frame(
        "expected method frame, got non method frame instead",
    ))
}

/// The broker's form of a bind or unbind method's fields.
fn binding_spec<'a>(
    target: Target<'a>,
    source: &'a amq_protocol::types::ShortString,
    routing_key: &'a amq_protocol::types::ShortString,
    arguments: &FieldTable,
) -> BindingSpec<'a> {
    BindingSpec {
        source: source.as_str(),
        target,
        routing_key: routing_key.as_str(),
        arguments: arguments.clone(),
    }
}

/// An AMQP short string, cut at 255 bytes on a character boundary.
fn short(text: &str) -> amq_protocol::types::ShortString {
    let mut end = text.len().min(255);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].into()
}

impl Connection {
    /// Channel `channel` of this connection, as the broker names it.
    fn on(&self, channel: u16) -> ChannelRef {
        ChannelRef {
            connection: self.id,
            channel,
        }
    }

    fn reply(&mut self, channel: u16, method: AMQPClass) {
        codec::write_method(&mut self.out, channel, method);
    }

    /// Writes `method` unless the client asked for nowait.
    fn reply_unless(&mut self, nowait: bool, channel: u16, method: AMQPClass) {
        if !nowait {
            self.reply(channel, method);
        }
    }
}
