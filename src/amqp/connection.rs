//! One client connection: the handshake, then frames in, broker calls, frames out.
//!
//! The reading half runs here. Everything written goes through the connection's
//! [`ClientSink`](crate::broker::ClientSink) to one writer task, so method replies and
//! deliveries leave in the order they were produced.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use amq_protocol::protocol::{
    basic, channel, confirm, connection, exchange, queue, tx, AMQPClass, BasicProperties,
};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::codec::{self, Incoming, Undecodable};
use super::writer;
use crate::broker::limits::Held;
use crate::broker::maps::HashMap;
use crate::broker::{
    AmqpError, BindingSpec, Broker, ChannelRef, ClientSink, ConnectionSnapshot, ConsumeSpec,
    ExchangeSpec, LoginRefused, Publish, QueueSpec, Scope, Settle, Target,
};
use crate::events::{ClientInfo, ConnectionId};
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
        handshake(&mut reader, &mut write_half, &mut buf, ends, &broker),
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

/// Reads until one frame is complete and decodes it.
async fn next_frame(
    reader: &mut Reader,
    buf: &mut BytesMut,
    frame_max: usize,
) -> Result<Option<Incoming>, AmqpError> {
    loop {
        if let Some(raw) = codec::read_frame(buf, frame_max)? {
            return codec::decode(&raw).map(Some).map_err(|e| match e {
                Undecodable::Arguments { error, .. } | Undecodable::Frame(error) => error,
                Undecodable::UnknownMethod => AmqpError::command_invalid("unknown method"),
            });
        }
        match reader.read_buf(buf).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
    }
}

async fn send_close(write: &mut Writer, error: &AmqpError, class_id: u16, method_id: u16) {
    let mut out = Vec::new();
    codec::write_method(&mut out, 0, close_method(error, class_id, method_id));
    let _ = write.write_all(&out).await;
}

/// Reads and discards input until close-ok (when `until_close_ok`), end of input, or `limit`.
async fn linger(reader: &mut Reader, buf: &mut BytesMut, limit: Duration, until_close_ok: bool) {
    let wait = async {
        loop {
            while let Ok(Some(raw)) = codec::read_frame(buf, usize::MAX) {
                if until_close_ok
                    && raw.channel == 0
                    && matches!(
                        codec::decode(&raw),
                        Ok(Incoming::Method(
                            0,
                            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))
                        ))
                    )
                {
                    return;
                }
            }
            if buf.len() > 1 << 20 {
                buf.clear();
            }
            match reader.read_buf(buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(limit, wait).await;
}

/// Refuses the handshake the way RabbitMQ does for this kind of error.
async fn refuse(
    reader: &mut Reader,
    write: &mut Writer,
    buf: &mut BytesMut,
    hangup: Hangup,
    close: Option<(&AmqpError, u16, u16)>,
) {
    if let (Some((error, class, method)), true) = (close, hangup != Hangup::Silent) {
        send_close(write, error, class, method).await;
    }
    match hangup {
        Hangup::AfterCloseOk => linger(reader, buf, CLOSE_OK_TIMEOUT, true).await,
        Hangup::Linger | Hangup::Silent => linger(reader, buf, CLOSE_LINGER, false).await,
        Hangup::Drop => {}
    }
}

fn close_method(error: &AmqpError, class_id: u16, method_id: u16) -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
        reply_code: error.code,
        reply_text: short(&error.text),
        class_id,
        method_id,
    }))
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

/// Whether the client announced a capability in start-ok.
fn client_capability(properties: &FieldTable, name: &str) -> bool {
    match properties.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(caps)) => {
            matches!(caps.inner().get(name), Some(AMQPValue::Boolean(true)))
        }
        _ => false,
    }
}

/// Who the client says it is: `connection_name` and `product` from its client properties, when
/// they are text (long or short strings); a value of another type is left out.
fn client_info(properties: &FieldTable) -> ClientInfo {
    let text = |name: &str| match properties.inner().get(name) {
        Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Some(AMQPValue::ShortString(s)) => Some(s.as_str().to_string()),
        _ => None,
    };
    ClientInfo {
        connection_name: text("connection_name"),
        product: text("product"),
    }
}

/// At most this many failed logins are logged in each [`FAILED_LOGIN_WINDOW`]; the rest are
/// counted and summed up in one line, so a password guesser cannot flood the log.
const FAILED_LOGINS_LOGGED: u32 = 10;
const FAILED_LOGIN_WINDOW: Duration = Duration::from_secs(10);

struct FailedLogins {
    window_start: Option<std::time::Instant>,
    logged: u32,
    unlogged: u64,
}

static FAILED_LOGINS: std::sync::Mutex<FailedLogins> = std::sync::Mutex::new(FailedLogins {
    window_start: None,
    logged: 0,
    unlogged: 0,
});

/// Logs a refused login in RabbitMQ's words, within the rate limit.
fn log_failed_login(peer: SocketAddr, refusal: &str) {
    let mut log = FAILED_LOGINS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let now = std::time::Instant::now();
    if log
        .window_start
        .is_none_or(|start| now.duration_since(start) >= FAILED_LOGIN_WINDOW)
    {
        if log.unlogged > 0 {
            tracing::error!(
                "{} more failed logins were not logged (at most {FAILED_LOGINS_LOGGED} every {} s)",
                log.unlogged,
                FAILED_LOGIN_WINDOW.as_secs()
            );
        }
        *log = FailedLogins {
            window_start: Some(now),
            logged: 0,
            unlogged: 0,
        };
    }
    if log.logged < FAILED_LOGINS_LOGGED {
        log.logged += 1;
        tracing::error!(%peer, "{refusal}");
    } else {
        log.unlogged += 1;
    }
}

/// Protocol header, start/start-ok, tune/tune-ok, open/open-ok. `Ok(None)`: the peer left or
/// was refused (already answered).
async fn handshake(
    reader: &mut Reader,
    write: &mut Writer,
    buf: &mut BytesMut,
    ends: Ends,
    broker: &Arc<Broker>,
) -> std::io::Result<Option<Opened>> {
    let peer = ends.peer;
    while buf.len() < 8 {
        if reader.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
    // 0-9-1, and the 0-9 header some old clients send, which RabbitMQ serves as 0-9-1.
    if &buf[..8] != b"AMQP\x00\x00\x09\x01" && &buf[..8] != b"AMQP\x01\x01\x00\x09" {
        // Tell the client which protocol we speak, then hang up.
        write.write_all(b"AMQP\x00\x00\x09\x01").await?;
        return Ok(None);
    }
    let _ = buf.split_to(8);

    let mut out = Vec::new();
    codec::write_method(
        &mut out,
        0,
        AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
            version_major: 0,
            version_minor: 9,
            server_properties: server_properties(),
            mechanisms: "PLAIN AMQPLAIN".into(),
            locales: "en_US".into(),
        })),
    );
    write.write_all(&out).await?;

    let start_ok = match next_frame(reader, buf, FRAME_MIN_SIZE).await {
        Ok(Some(Incoming::Method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(ok)),
        ))) => ok,
        Ok(None) => return Ok(None),
        Ok(Some(_)) => {
            let e = AmqpError::command_invalid("expected 'connection.start_ok'");
            refuse(reader, write, buf, Hangup::AfterCloseOk, Some((&e, 0, 0))).await;
            return Ok(None);
        }
        Err(e) => {
            refuse(reader, write, buf, Hangup::Linger, Some((&e, 0, 0))).await;
            return Ok(None);
        }
    };
    let mechanism = start_ok.mechanism.as_str();
    let credentials = match mechanism {
        "PLAIN" => parse_plain(start_ok.response.as_bytes()),
        "AMQPLAIN" => parse_amqplain(start_ok.response.as_bytes()),
        _ => None,
    };
    // On a dual-stack listener ([::]) an IPv4 client comes as ::ffff:127.0.0.1.
    let from_loopback = peer.ip().to_canonical().is_loopback();
    let hears_blocked = client_capability(&start_ok.client_properties, "connection.blocked");
    let client = client_info(&start_ok.client_properties);
    let refusal = match &credentials {
        Some((user, password)) => {
            broker
                .check_login(user, password, from_loopback)
                .err()
                .map(|why| {
                    let user = printable(user);
                    match why {
                        LoginRefused::InvalidCredentials => {
                            format!(
                                "{mechanism} login refused: user '{user}' - invalid credentials"
                            )
                        }
                        LoginRefused::LoopbackOnly => format!(
                        "{mechanism} login refused: user '{user}' can only connect via localhost"
                    ),
                    }
                })
        }
        None if matches!(mechanism, "PLAIN" | "AMQPLAIN") => {
            Some(format!("{mechanism} login refused: malformed response"))
        }
        None => Some(format!(
            "login refused: unsupported authentication mechanism '{}'",
            printable(mechanism)
        )),
    };
    if let Some(refusal) = refusal {
        log_failed_login(peer, &refusal);
        if credentials.is_some()
            && client_capability(&start_ok.client_properties, "authentication_failure_close")
        {
            let e = AmqpError::connection_access_refused(format!(
                "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
            ));
            refuse(reader, write, buf, Hangup::Linger, Some((&e, 0, 0))).await;
        } else {
            // Unknown mechanism, malformed response, or a client that cannot be told: hang up.
            refuse(reader, write, buf, Hangup::Silent, None).await;
        }
        return Ok(None);
    }
    let Some((user, _)) = credentials else {
        return Ok(None);
    };

    out.clear();
    codec::write_method(
        &mut out,
        0,
        AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
            channel_max: CHANNEL_MAX,
            frame_max: FRAME_MAX,
            heartbeat: HEARTBEAT,
        })),
    );
    write.write_all(&out).await?;

    let tune_ok = match next_frame(reader, buf, FRAME_MIN_SIZE).await {
        Ok(Some(Incoming::Method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(ok)),
        ))) => ok,
        Ok(None) => return Ok(None),
        Ok(Some(_)) | Err(_) => {
            let e = AmqpError::command_invalid("expected 'connection.tune_ok'");
            refuse(reader, write, buf, Hangup::AfterCloseOk, Some((&e, 0, 0))).await;
            return Ok(None);
        }
    };
    // RabbitMQ hangs up on parameters outside what it offered, without a close frame.
    let frame_max = tune_ok.frame_max as usize;
    let channel_max = tune_ok.channel_max;
    if !(FRAME_MIN_SIZE..=FRAME_MAX as usize).contains(&frame_max)
        || channel_max == 0
        || channel_max > CHANNEL_MAX
    {
        refuse(reader, write, buf, Hangup::Silent, None).await;
        return Ok(None);
    }

    let vhost = match next_frame(reader, buf, frame_max).await {
        Ok(Some(Incoming::Method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(open)),
        ))) => open.virtual_host.to_string(),
        Ok(None) => return Ok(None),
        Ok(Some(_)) | Err(_) => {
            let e = AmqpError::command_invalid("expected 'connection.open'");
            refuse(reader, write, buf, Hangup::AfterCloseOk, Some((&e, 0, 0))).await;
            return Ok(None);
        }
    };
    let (sink, inbox) = broker.sink();
    let opener = ConnectionSnapshot {
        id: 0,
        name: ends.name(),
        peer: peer.to_string(),
        user: user.clone(),
        client,
    };
    let id = match broker.open_connection(&vhost, opener, sink.clone()) {
        Ok(id) => id,
        Err(e) => {
            refuse(reader, write, buf, Hangup::AfterCloseOk, Some((&e, 10, 40))).await;
            return Ok(None);
        }
    };
    out.clear();
    codec::write_method(
        &mut out,
        0,
        AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
    );
    if let Err(e) = write.write_all(&out).await {
        broker.close_connection(id, "connection lost during handshake");
        return Err(e);
    }
    Ok(Some(Opened {
        id,
        user,
        vhost,
        sink,
        inbox,
        frame_max,
        channel_max,
        heartbeat: tune_ok.heartbeat,
        hears_blocked,
    }))
}

/// The properties and capabilities we announce; clients check the capabilities.
fn server_properties() -> FieldTable {
    let mut capabilities = FieldTable::default();
    for name in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
        "consumer_priorities",
        "direct_reply_to",
    ] {
        capabilities.insert(name.into(), AMQPValue::Boolean(true));
    }
    let mut props = FieldTable::default();
    props.insert("capabilities".into(), AMQPValue::FieldTable(capabilities));
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    props.insert("product".into(), text("rabbitscope"));
    props.insert("version".into(), text(env!("CARGO_PKG_VERSION")));
    props.insert("platform".into(), text("Rust"));
    props.insert("cluster_name".into(), text("rabbitscope@localhost"));
    props.insert(
        "information".into(),
        text("An AMQP 0-9-1 broker for studying RabbitMQ routing"),
    );
    props
}

/// PLAIN is `\0user\0password`; like RabbitMQ we accept no authorization identity.
fn parse_plain(response: &[u8]) -> Option<(String, String)> {
    let parts: Vec<&[u8]> = response.split(|b| *b == 0).collect();
    let [authzid, user, password] = parts[..] else {
        return None;
    };
    if !authzid.is_empty() {
        return None;
    }
    Some((
        String::from_utf8(user.to_vec()).ok()?,
        String::from_utf8(password.to_vec()).ok()?,
    ))
}

/// AMQPLAIN sends a field table without its length prefix.
fn parse_amqplain(response: &[u8]) -> Option<(String, String)> {
    let mut framed = (response.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(response);
    let (_, table) = amq_protocol::types::parsing::parse_field_table(&framed[..]).ok()?;
    let text = |key: &str| match table.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    };
    Some((text("LOGIN")?, text("PASSWORD")?))
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

impl Connection {
    async fn run(
        &mut self,
        reader: &mut Reader,
        mut buf: BytesMut,
        heartbeat: u16,
        mut shutdown: watch::Receiver<bool>,
    ) -> End {
        // A peer is dead after two missed heartbeats. RabbitMQ looks once per heartbeat period,
        // so it notices between two and three periods; half a period of grace keeps us inside
        // that window instead of on its edge.
        let silence = (heartbeat > 0).then(|| Duration::from_millis(heartbeat as u64 * 2_500));
        let mut durable = self.broker.durable();
        let mut restarts = self.broker.restarts();
        let mut alarms = self.broker.alarms();
        let sink = self.sink.clone();
        let mut filled = false;
        loop {
            // Handle every complete frame already buffered before flushing replies once.
            loop {
                match codec::read_frame(&mut buf, self.frame_max) {
                    Ok(Some(raw)) => {
                        if let Err(failure) = self.handle_raw(raw) {
                            if let Some(end) = self.fail(failure, reader, &mut buf).await {
                                return end;
                            }
                        } else if self.closed_by_peer {
                            self.flush();
                            return End::Peer;
                        }
                    }
                    Ok(None) => break,
                    Err(error) => {
                        let failure = Failure {
                            channel: 0,
                            class_id: 0,
                            method_id: 0,
                            error,
                            hangup: Hangup::Linger,
                        };
                        return self
                            .fail(failure, reader, &mut buf)
                            .await
                            .unwrap_or(End::Peer);
                    }
                }
            }
            self.flush_confirms();
            if let Some(durable) = &mut durable {
                self.release_confirms(*durable.borrow_and_update());
            }
            if self.publisher {
                self.broker.check_memory_soon();
            }
            // A resource alarm: a publishing connection is not read until it clears, as
            // RabbitMQ does; TCP then holds its publisher back. It is told once, with the
            // resources low at that moment, and told again when all have cleared.
            let on = *alarms.borrow_and_update();
            let blocked = self.publisher && on.any();
            if blocked != self.told_blocked && self.hears_blocked {
                let method = if blocked {
                    connection::AMQPMethod::Blocked(connection::Blocked {
                        reason: on.reason().into(),
                    })
                } else {
                    connection::AMQPMethod::Unblocked(connection::Unblocked {})
                };
                codec::write_method(&mut self.out, 0, AMQPClass::Connection(method));
                self.told_blocked = blocked;
            }
            self.flush();
            // Credit flow: while its writer is far behind (a client that does not read its
            // returns, say), the connection is not read either, so it cannot pile up more.
            let backed_up = sink.outgoing().backed_up();
            let holding = self.channels.values().any(|c| !c.waiting.is_empty());
            let disk = async {
                match &mut durable {
                    Some(durable) if holding => durable.changed().await.is_ok(),
                    _ => std::future::pending().await,
                }
            };
            // A read that filled the buffer says the client sends in bulk: read in large
            // chunks from then on. Until then the buffer stays as small as the handshake's.
            if buf.capacity() - buf.len() < FRAME_MIN_SIZE || filled {
                buf.reserve(if filled { READ_CHUNK } else { FRAME_MIN_SIZE });
            }
            let room = buf.capacity() - buf.len();
            let read = async {
                match silence {
                    Some(limit) => tokio::time::timeout(limit, reader.read_buf(&mut buf)).await,
                    None => Ok(reader.read_buf(&mut buf).await),
                }
            };
            tokio::select! {
                // Heartbeats are not watched while blocked: the peer's wait in the socket.
                result = read, if !blocked && !backed_up => match result {
                    Err(_) => return End::Silent,
                    Ok(Ok(0)) | Ok(Err(_)) => return End::Peer,
                    Ok(Ok(n)) => filled = n == room,
                },
                _ = alarms.changed(), if blocked => {}
                _ = sink.outgoing().drained(), if backed_up => {}
                // The store synced: confirms waiting for it go out at the top of the loop.
                true = disk => {}
                _ = restarts.changed() => {
                    let error = AmqpError::connection_forced("broker forced connection closure with reason 'shutdown'");
                    self.send_connection_close(&error, 0, 0);
                    linger(reader, &mut buf, CLOSE_LINGER, true).await;
                    return End::Shutdown;
                }
                _ = shutdown.changed() => {
                    let error = AmqpError::connection_forced("broker forced connection closure with reason 'shutdown'");
                    self.send_connection_close(&error, 0, 0);
                    linger(reader, &mut buf, CLOSE_LINGER, true).await;
                    return End::Shutdown;
                }
            }
        }
    }

    /// Sends what was produced so far to the writer.
    fn flush(&mut self) {
        if !self.out.is_empty() {
            let frames = Bytes::from(std::mem::take(&mut self.out));
            self.sink.send_raw(frames);
        }
    }

    fn flush_confirms(&mut self) {
        let mut pending: Vec<(u16, (u64, u64))> = self
            .channels
            .iter_mut()
            .filter_map(|(ch, state)| state.pending_acks.take().map(|p| (*ch, p)))
            .collect();
        pending.sort_unstable();
        for (channel, (first, last)) in pending {
            self.write_ack(channel, first, last);
        }
    }

    /// Writes the held confirms whose records are on disk (`durable` is the store's last
    /// synced ticket), in order, contiguous acks as one.
    fn release_confirms(&mut self, durable: u64) {
        let mut channels: Vec<u16> = self
            .channels
            .iter()
            .filter(|(_, c)| !c.waiting.is_empty())
            .map(|(ch, _)| *ch)
            .collect();
        channels.sort_unstable();
        for ch in channels {
            let mut acks: Option<(u64, u64)> = None;
            loop {
                let state = self.channels.get_mut(&ch).expect("listed");
                let Some(held) = state.waiting.front() else {
                    break;
                };
                if held.ticket > durable {
                    break;
                }
                let held = state.waiting.pop_front().expect("looked at");
                if held.ack {
                    acks = Some(acks.map_or((held.tag, held.tag), |(first, _)| (first, held.tag)));
                    continue;
                }
                if let Some((first, last)) = acks.take() {
                    self.write_ack(ch, first, last);
                }
                self.write_nack(ch, held.tag);
            }
            if let Some((first, last)) = acks {
                self.write_ack(ch, first, last);
            }
        }
    }

    fn write_nack(&mut self, channel: u16, tag: u64) {
        codec::write_method(
            &mut self.out,
            channel,
            AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
                delivery_tag: tag,
                multiple: false,
                requeue: false,
            })),
        );
    }

    fn write_ack(&mut self, channel: u16, first: u64, last: u64) {
        codec::write_method(
            &mut self.out,
            channel,
            AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: last,
                multiple: last > first,
            })),
        );
    }

    /// Reports an error to the peer. Channel errors close the channel and go on; connection
    /// errors close the connection (returns how it ended).
    async fn fail(
        &mut self,
        failure: Failure,
        reader: &mut Reader,
        buf: &mut BytesMut,
    ) -> Option<End> {
        let Failure {
            channel,
            class_id,
            method_id,
            error,
            hangup,
        } = failure;
        if error.scope == Scope::Channel && channel != 0 {
            self.broker.close_channel(self.on(channel), &error.text);
            if let Some(state) = self.channels.get_mut(&channel) {
                state.closing = true;
                state.content = None;
                state.pending_acks = None;
                state.waiting.clear();
            }
            codec::write_method(
                &mut self.out,
                channel,
                AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                    reply_code: error.code,
                    reply_text: short(&error.text),
                    class_id,
                    method_id,
                })),
            );
            return None;
        }
        self.flush_confirms();
        match hangup {
            Hangup::Drop => {}
            Hangup::Silent => {
                self.flush();
                linger(reader, buf, CLOSE_LINGER, false).await;
            }
            Hangup::Linger => {
                self.send_connection_close(&error, class_id, method_id);
                linger(reader, buf, CLOSE_LINGER, false).await;
            }
            Hangup::AfterCloseOk => {
                self.send_connection_close(&error, class_id, method_id);
                linger(reader, buf, CLOSE_OK_TIMEOUT, true).await;
            }
        }
        Some(End::Error(error))
    }

    fn send_connection_close(&mut self, error: &AmqpError, class_id: u16, method_id: u16) {
        codec::write_method(&mut self.out, 0, close_method(error, class_id, method_id));
        self.flush();
    }
}

/// One body from its frames, in an allocation of its own: a frame's bytes share the read
/// buffer they arrived in, which a queued message must not keep alive.
fn assemble(frames: &[Bytes], size: usize) -> Bytes {
    let mut body = BytesMut::with_capacity(size);
    for frame in frames {
        body.extend_from_slice(frame);
    }
    body.freeze()
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

/// The 505 for a content frame where a method was expected.
fn expected_method() -> Failure {
    connection_failure(AmqpError::unexpected_frame(
        "expected method frame, got non method frame instead",
    ))
}

impl Connection {
    /// Decodes a frame and handles it, with RabbitMQ's answer to frames that make no sense.
    fn handle_raw(&mut self, raw: codec::RawFrame) -> Result<(), Failure> {
        use codec::{FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT};
        let misplaced = (raw.channel == 0 && (raw.kind == FRAME_HEADER || raw.kind == FRAME_BODY))
            || (raw.channel != 0 && raw.kind == FRAME_HEARTBEAT);
        if misplaced {
            return Err(connection_failure(AmqpError::unexpected_frame(format!(
                "type {}, all octets = {}",
                raw.kind,
                codec::octets(raw.payload())
            ))));
        }
        match codec::decode(&raw) {
            Ok(frame) => self.handle(frame),
            Err(Undecodable::UnknownMethod) => Err(Failure {
                hangup: Hangup::Drop,
                ..connection_failure(AmqpError::command_invalid("unknown method"))
            }),
            Err(Undecodable::Arguments {
                class,
                method,
                error,
            }) => Err(Failure {
                class_id: class,
                method_id: method,
                ..connection_failure(error)
            }),
            Err(Undecodable::Frame(error)) => Err(connection_failure(error)),
        }
    }

    fn handle(&mut self, frame: Incoming) -> Result<(), Failure> {
        match frame {
            Incoming::Heartbeat => Ok(()),
            Incoming::Method(0, AMQPClass::Connection(method)) => self.connection_method(method),
            Incoming::Method(0, method) => Err(failure(
                0,
                &method,
                AmqpError::channel_error("unexpected method in connection state running"),
            )),
            Incoming::Method(channel, method @ AMQPClass::Connection(_)) => Err(failure(
                channel,
                &method,
                AmqpError::command_invalid("unimplemented method"),
            )),
            Incoming::Method(channel, method) => self.channel_method(channel, method),
            Incoming::Header(channel, class_id, size, properties) => {
                self.content_header(channel, class_id, size, properties)
            }
            Incoming::Body(channel, bytes) => self.content_body(channel, bytes),
        }
    }

    fn connection_method(&mut self, method: connection::AMQPMethod) -> Result<(), Failure> {
        match method {
            connection::AMQPMethod::Close(_) => {
                self.broker
                    .close_connection(self.id, "client closed the connection");
                codec::write_method(
                    &mut self.out,
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
                );
                self.closed_by_peer = true;
                Ok(())
            }
            connection::AMQPMethod::CloseOk(_) => Ok(()),
            connection::AMQPMethod::UpdateSecret(_) => {
                codec::write_method(
                    &mut self.out,
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::UpdateSecretOk(
                        connection::UpdateSecretOk {},
                    )),
                );
                Ok(())
            }
            connection::AMQPMethod::Blocked(_) | connection::AMQPMethod::Unblocked(_) => Ok(()),
            other => {
                let class = AMQPClass::Connection(other);
                Err(failure(
                    0,
                    &class,
                    AmqpError::command_invalid("unexpected connection method"),
                ))
            }
        }
    }

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

    fn channel_method(&mut self, channel: u16, method: AMQPClass) -> Result<(), Failure> {
        let Some(state) = self.channels.get_mut(&channel) else {
            return match method {
                AMQPClass::Channel(channel::AMQPMethod::Open(_)) => {
                    // RabbitMQ limits how many channels are open, not their ids.
                    let open = self.channels.len();
                    if open >= self.channel_max as usize {
                        return Err(connection_failure(AmqpError::not_allowed(format!(
                            "number of channels opened ({open}) has reached the negotiated channel_max ({})",
                            self.channel_max
                        ))));
                    }
                    self.orphan_publishes.remove(&channel);
                    self.channels.insert(channel, ChannelWire::default());
                    self.broker.open_channel(self.on(channel));
                    self.reply(
                        channel,
                        AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
                    );
                    Ok(())
                }
                AMQPClass::Basic(basic::AMQPMethod::Publish(_)) => {
                    self.orphan_publishes.insert(channel);
                    Ok(())
                }
                _ => Err(failure(
                    channel,
                    &method,
                    AmqpError::channel_error("expected 'channel.open'"),
                )),
            };
        };
        if state.closing {
            match method {
                AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => {
                    self.channels.remove(&channel);
                }
                AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                    self.channels.remove(&channel);
                    self.reply(
                        channel,
                        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                    );
                }
                AMQPClass::Channel(channel::AMQPMethod::Open(_)) => {
                    return Err(failure(
                        channel,
                        &method,
                        AmqpError::channel_error("second 'channel.open' seen"),
                    ));
                }
                _ => {}
            }
            return Ok(());
        }
        if let Some(content) = &state.content {
            let expected = if content.header.is_none() {
                "expected content header for class 60, got non content header frame instead"
            } else {
                "expected content body, got non content body frame instead"
            };
            return Err(publish_failure(
                channel,
                AmqpError::unexpected_frame(expected),
            ));
        }
        self.method(channel, method)
    }

    fn method(&mut self, ch: u16, method: AMQPClass) -> Result<(), Failure> {
        let broker = self.broker.clone();
        let fail = |e: AmqpError| failure(ch, &method, e);
        match &method {
            AMQPClass::Channel(channel::AMQPMethod::Open(_)) => {
                Err(fail(AmqpError::channel_error("second 'channel.open' seen")))
            }
            AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                broker.close_channel(self.on(ch), "closed by the client");
                self.channels.remove(&ch);
                self.reply(
                    ch,
                    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                );
                Ok(())
            }
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => Ok(()),
            AMQPClass::Channel(channel::AMQPMethod::Flow(flow)) => {
                let active = flow.active;
                self.reply(
                    ch,
                    AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk { active })),
                );
                Ok(())
            }
            AMQPClass::Access(_) => {
                self.reply(
                    ch,
                    AMQPClass::Access(amq_protocol::protocol::access::AMQPMethod::RequestOk(
                        amq_protocol::protocol::access::RequestOk {},
                    )),
                );
                Ok(())
            }
            AMQPClass::Exchange(m) => self.exchange_method(ch, m).map_err(fail),
            AMQPClass::Queue(m) => self.queue_method(ch, m).map_err(fail),
            AMQPClass::Basic(basic::AMQPMethod::Publish(publish)) => {
                self.publisher = true;
                let content = PendingContent {
                    exchange: publish.exchange.as_str().to_owned(),
                    routing_key: publish.routing_key.as_str().to_owned(),
                    mandatory: publish.mandatory,
                    header: None,
                    body: Vec::new(),
                    received: 0,
                    held: None,
                    overflowed: false,
                };
                self.channels.get_mut(&ch).expect("open").content = Some(content);
                Ok(())
            }
            AMQPClass::Basic(m) => self.basic_method(ch, m).map_err(fail),
            AMQPClass::Confirm(confirm::AMQPMethod::Select(select)) => {
                let state = self.channels.get_mut(&ch).expect("open");
                if state.tx.is_some() {
                    return Err(fail(AmqpError::precondition_failed(
                        "cannot switch from tx to confirm mode",
                    )));
                }
                state.confirm = true;
                if !select.nowait {
                    self.reply(
                        ch,
                        AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
                    );
                }
                Ok(())
            }
            AMQPClass::Tx(m) => self.tx_method(ch, m).map_err(fail),
            _ => Err(fail(AmqpError::command_invalid(
                "method not expected from a client",
            ))),
        }
    }

    fn exchange_method(&mut self, ch: u16, method: &exchange::AMQPMethod) -> Result<(), AmqpError> {
        let (on, broker) = (self.on(ch), self.broker.clone());
        let (reply, nowait) = match method {
            exchange::AMQPMethod::Declare(d) => {
                broker.exchange_declare(
                    on,
                    ExchangeSpec {
                        name: d.exchange.to_string(),
                        kind: d.kind.to_string(),
                        passive: d.passive,
                        durable: d.durable,
                        auto_delete: d.auto_delete,
                        internal: d.internal,
                        arguments: d.arguments.clone(),
                    },
                )?;
                (
                    exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {}),
                    d.nowait,
                )
            }
            exchange::AMQPMethod::Delete(d) => {
                broker.exchange_delete(on, d.exchange.as_str(), d.if_unused)?;
                (
                    exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {}),
                    d.nowait,
                )
            }
            exchange::AMQPMethod::Bind(b) => {
                let target = Target::Exchange(b.destination.as_str());
                broker.bind(
                    on,
                    binding_spec(target, &b.source, &b.routing_key, &b.arguments),
                )?;
                (exchange::AMQPMethod::BindOk(exchange::BindOk {}), b.nowait)
            }
            exchange::AMQPMethod::Unbind(b) => {
                let target = Target::Exchange(b.destination.as_str());
                broker.unbind(
                    on,
                    binding_spec(target, &b.source, &b.routing_key, &b.arguments),
                )?;
                (
                    exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {}),
                    b.nowait,
                )
            }
            _ => {
                return Err(AmqpError::command_invalid(
                    "method not expected from a client",
                ))
            }
        };
        if !nowait {
            self.reply(ch, AMQPClass::Exchange(reply));
        }
        Ok(())
    }

    fn queue_method(&mut self, ch: u16, method: &queue::AMQPMethod) -> Result<(), AmqpError> {
        let (on, broker) = (self.on(ch), self.broker.clone());
        let (reply, nowait) = match method {
            queue::AMQPMethod::Declare(d) => {
                let declared = broker.queue_declare(
                    on,
                    QueueSpec {
                        name: d.queue.to_string(),
                        passive: d.passive,
                        durable: d.durable,
                        exclusive: d.exclusive,
                        auto_delete: d.auto_delete,
                        arguments: d.arguments.clone(),
                    },
                )?;
                (
                    queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                        queue: declared.name.as_str().into(),
                        message_count: declared.message_count,
                        consumer_count: declared.consumer_count,
                    }),
                    d.nowait,
                )
            }
            queue::AMQPMethod::Bind(b) => {
                let target = Target::Queue(b.queue.as_str());
                broker.bind(
                    on,
                    binding_spec(target, &b.exchange, &b.routing_key, &b.arguments),
                )?;
                (queue::AMQPMethod::BindOk(queue::BindOk {}), b.nowait)
            }
            queue::AMQPMethod::Unbind(b) => {
                let target = Target::Queue(b.queue.as_str());
                broker.unbind(
                    on,
                    binding_spec(target, &b.exchange, &b.routing_key, &b.arguments),
                )?;
                (queue::AMQPMethod::UnbindOk(queue::UnbindOk {}), false)
            }
            queue::AMQPMethod::Purge(p) => {
                let message_count = broker.queue_purge(on, p.queue.as_str())?;
                (
                    queue::AMQPMethod::PurgeOk(queue::PurgeOk { message_count }),
                    p.nowait,
                )
            }
            queue::AMQPMethod::Delete(d) => {
                let message_count =
                    broker.queue_delete(on, d.queue.as_str(), d.if_unused, d.if_empty)?;
                (
                    queue::AMQPMethod::DeleteOk(queue::DeleteOk { message_count }),
                    d.nowait,
                )
            }
            _ => {
                return Err(AmqpError::command_invalid(
                    "method not expected from a client",
                ))
            }
        };
        if !nowait {
            self.reply(ch, AMQPClass::Queue(reply));
        }
        Ok(())
    }

    fn basic_method(&mut self, ch: u16, method: &basic::AMQPMethod) -> Result<(), AmqpError> {
        let (on, broker) = (self.on(ch), self.broker.clone());
        match method {
            basic::AMQPMethod::Qos(q) => {
                broker.basic_qos(on, q.prefetch_count, q.global);
                self.reply(
                    ch,
                    AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})),
                );
            }
            basic::AMQPMethod::Consume(c) => {
                let tag = broker.basic_consume(
                    on,
                    ConsumeSpec {
                        queue: c.queue.to_string(),
                        tag: c.consumer_tag.to_string(),
                        no_ack: c.no_ack,
                        exclusive: c.exclusive,
                        arguments: c.arguments.clone(),
                    },
                )?;
                if !c.nowait {
                    self.reply(
                        ch,
                        AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                            consumer_tag: tag.as_str().into(),
                        })),
                    );
                }
                // consume-ok must reach the client before the first delivery.
                self.flush();
                broker.consumer_ready(on, &tag);
            }
            basic::AMQPMethod::Cancel(c) => {
                broker.basic_cancel(on, c.consumer_tag.as_str())?;
                if !c.nowait {
                    self.reply(
                        ch,
                        AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                            consumer_tag: c.consumer_tag.clone(),
                        })),
                    );
                }
            }
            basic::AMQPMethod::Get(g) => match broker.basic_get(on, g.queue.as_str(), g.no_ack)? {
                Some(got) => {
                    self.reply(
                        ch,
                        AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
                            delivery_tag: got.delivery_tag,
                            redelivered: got.redelivered,
                            exchange: short(&got.message.exchange),
                            routing_key: short(&got.message.routing_key),
                            message_count: got.message_count,
                        })),
                    );
                    codec::write_content(
                        &mut self.out,
                        ch,
                        &got.message.properties,
                        &got.message.body,
                        self.frame_max,
                    );
                }
                None => self.reply(
                    ch,
                    AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
                ),
            },
            basic::AMQPMethod::Ack(a) => self.settle(ch, TxOp::Ack(a.delivery_tag, a.multiple))?,
            basic::AMQPMethod::Nack(n) => {
                self.settle(ch, TxOp::Nack(n.delivery_tag, n.multiple, n.requeue))?
            }
            basic::AMQPMethod::Reject(r) => {
                self.settle(ch, TxOp::Reject(r.delivery_tag, r.requeue))?
            }
            basic::AMQPMethod::RecoverAsync(_) => broker.basic_recover(on),
            basic::AMQPMethod::Recover(_) => {
                broker.basic_recover(on);
                self.reply(
                    ch,
                    AMQPClass::Basic(basic::AMQPMethod::RecoverOk(basic::RecoverOk {})),
                );
            }
            _ => {
                return Err(AmqpError::command_invalid(
                    "method not expected from a client",
                ))
            }
        }
        Ok(())
    }

    /// Acks, nacks and rejects; inside a transaction they wait for tx.commit.
    fn settle(&mut self, ch: u16, op: TxOp) -> Result<(), AmqpError> {
        if let Some(ops) = &mut self.channels.get_mut(&ch).expect("open").tx {
            ops.push(op);
            return Ok(());
        }
        self.apply_settle(ch, op)
    }

    fn apply_settle(&mut self, ch: u16, op: TxOp) -> Result<(), AmqpError> {
        let (tag, multiple, how) = match op {
            TxOp::Ack(tag, multiple) => (tag, multiple, Settle::Ack),
            TxOp::Nack(tag, multiple, requeue) => (tag, multiple, Settle::Nack { requeue }),
            TxOp::Reject(tag, requeue) => (tag, false, Settle::Reject { requeue }),
            TxOp::Publish(_) => return Ok(()),
        };
        self.broker.settle(self.on(ch), tag, multiple, how)
    }

    fn tx_method(&mut self, ch: u16, method: &tx::AMQPMethod) -> Result<(), AmqpError> {
        let state = self.channels.get_mut(&ch).expect("open");
        match method {
            tx::AMQPMethod::Select(_) => {
                if state.confirm {
                    return Err(AmqpError::precondition_failed(
                        "cannot switch from confirm to tx mode",
                    ));
                }
                state.tx.get_or_insert_with(Vec::new);
                self.reply(ch, AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})));
            }
            tx::AMQPMethod::Commit(_) => {
                let Some(ops) = state.tx.replace(Vec::new()) else {
                    return Err(AmqpError::precondition_failed(
                        "channel is not transactional",
                    ));
                };
                for op in ops {
                    match op {
                        TxOp::Publish(content) => self.publish_now(ch, *content)?,
                        other => self.apply_settle(ch, other)?,
                    }
                }
                self.reply(ch, AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})));
            }
            tx::AMQPMethod::Rollback(_) => {
                if state.tx.replace(Vec::new()).is_none() {
                    return Err(AmqpError::precondition_failed(
                        "channel is not transactional",
                    ));
                }
                self.reply(
                    ch,
                    AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
                );
            }
            _ => {
                return Err(AmqpError::command_invalid(
                    "method not expected from a client",
                ))
            }
        }
        Ok(())
    }

    fn content_header(
        &mut self,
        ch: u16,
        class_id: u16,
        size: u64,
        properties: BasicProperties,
    ) -> Result<(), Failure> {
        let Some(state) = self.channels.get_mut(&ch) else {
            if self.orphan_publishes.remove(&ch) {
                return Err(publish_failure(
                    ch,
                    AmqpError::channel_error("expected 'channel.open'"),
                ));
            }
            return Err(expected_method());
        };
        if state.closing {
            return Ok(());
        }
        let Some(content) = state.content.as_mut() else {
            return Err(expected_method());
        };
        if content.header.is_some() {
            return Err(publish_failure(
                ch,
                AmqpError::unexpected_frame(
                    "expected content body, got non content body frame instead",
                ),
            ));
        }
        if class_id != 60 {
            return Err(publish_failure(
                ch,
                AmqpError::unexpected_frame(format!(
                    "expected content header for class 60, got one for class {class_id} instead"
                )),
            ));
        }
        if size > MAX_MESSAGE_SIZE {
            state.content = None;
            return Err(publish_failure(
                ch,
                AmqpError::precondition_failed(format!(
                    "message size {size} is larger than configured max size {MAX_MESSAGE_SIZE}"
                )),
            ));
        }
        // Nothing is set aside for the announced size: memory follows the bytes that arrive.
        content.header = Some((size, properties));
        if size == 0 {
            return self.complete_publish(ch);
        }
        Ok(())
    }

    fn content_body(&mut self, ch: u16, bytes: Bytes) -> Result<(), Failure> {
        let Some(state) = self.channels.get_mut(&ch) else {
            return Err(expected_method());
        };
        if state.closing {
            return Ok(());
        }
        let Some(content) = state.content.as_mut() else {
            return Err(expected_method());
        };
        let Some((size, _)) = &content.header else {
            return Err(publish_failure(
                ch,
                AmqpError::unexpected_frame(
                    "expected content header for class 60, got non content header frame instead",
                ),
            ));
        };
        let size = *size;
        if content.overflowed || content.received as u64 + bytes.len() as u64 > size {
            content.overflowed = true;
            content.body = Vec::new();
            content.received = 0;
            content.held = None;
            return Ok(());
        }
        content.received += bytes.len();
        content.body.push(bytes);
        if content.received as u64 == size {
            return self.complete_publish(ch);
        }
        let received = content.received;
        content
            .held
            .get_or_insert_with(|| self.broker.hold())
            .set(received);
        Ok(())
    }

    fn complete_publish(&mut self, ch: u16) -> Result<(), Failure> {
        let state = self.channels.get_mut(&ch).expect("open");
        let pending = state.content.take().expect("content in progress");
        let (_, properties) = pending.header.expect("header seen");
        let content = Content {
            exchange: pending.exchange,
            routing_key: pending.routing_key,
            mandatory: pending.mandatory,
            properties,
            body: assemble(&pending.body, pending.received),
            held: pending.held,
        };
        if let Some(ops) = &mut state.tx {
            // Held until tx.commit: counted until then.
            let mut content = content;
            let len = content.body.len();
            content
                .held
                .get_or_insert_with(|| self.broker.hold())
                .set(len);
            ops.push(TxOp::Publish(Box::new(content)));
            return Ok(());
        }
        self.publish_now(ch, content)
            .map_err(|e| publish_failure(ch, e))
    }

    /// Routes a complete message, then answers with basic.return and/or a confirm.
    fn publish_now(&mut self, ch: u16, content: Content) -> Result<(), AmqpError> {
        let Content {
            exchange,
            routing_key,
            mandatory,
            properties,
            body,
            held,
        } = content;
        // Routed, the body is counted where it lands (a queue, a return waiting to be written).
        drop(held);
        // Only a mandatory message can come back in basic.return: keep its content for that,
        // and spare every other message the copies.
        let kept = mandatory.then(|| (properties.clone(), body.clone()));
        let outcome = self.broker.basic_publish(
            self.on(ch),
            Publish {
                exchange: &exchange,
                routing_key: &routing_key,
                mandatory,
                properties,
                body,
            },
        )?;
        let state = self.channels.get_mut(&ch).expect("open");
        let confirm_tag = state.confirm.then(|| {
            state.published += 1;
            state.published
        });
        if outcome.returned || outcome.rejected {
            // Keep confirms in order around a return or a nack.
            if let Some((first, last)) = state.pending_acks.take() {
                self.write_ack(ch, first, last);
            }
        }
        if let (true, Some((properties, body))) = (outcome.returned, &kept) {
            self.reply(
                ch,
                AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
                    reply_code: 312,
                    reply_text: "NO_ROUTE".into(),
                    exchange: short(&exchange),
                    routing_key: short(&routing_key),
                })),
            );
            codec::write_content(&mut self.out, ch, properties, body, self.frame_max);
        }
        if let Some(tag) = confirm_tag {
            let state = self.channels.get_mut(&ch).expect("open");
            if outcome.durable_at.is_some() || !state.waiting.is_empty() {
                // Confirms already written or pending are for earlier tags, so order holds.
                state.waiting.push_back(HeldConfirm {
                    tag,
                    ticket: outcome.durable_at.unwrap_or(0),
                    ack: !outcome.rejected,
                });
            } else if outcome.rejected {
                self.write_nack(ch, tag);
            } else {
                let state = self.channels.get_mut(&ch).expect("open");
                state.pending_acks = Some(match state.pending_acks {
                    Some((first, _)) => (first, tag),
                    None => (tag, tag),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod client_info_tests {
    use super::*;

    #[test]
    fn names_are_read_from_long_and_short_strings_only() {
        let mut properties = FieldTable::default();
        properties.insert("connection_name".into(), AMQPValue::LongInt(7));
        properties.insert("product".into(), AMQPValue::ShortString("shorty".into()));
        let client = client_info(&properties);
        assert_eq!(client.connection_name, None);
        assert_eq!(client.product.as_deref(), Some("shorty"));

        let name = "nova-api:1:0e5d2f6a-1b2c-4d3e-8f90-a1b2c3d4e5f6";
        properties.insert("connection_name".into(), AMQPValue::LongString(name.into()));
        properties.insert("product".into(), AMQPValue::Boolean(true));
        let client = client_info(&properties);
        assert_eq!(client.connection_name.as_deref(), Some(name));
        assert_eq!(client.product, None);
    }
}
