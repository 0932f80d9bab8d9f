//! The handshake: protocol header, connection.start / start-ok (with the login),
//! tune / tune-ok and open / open-ok, and the ways RabbitMQ refuses one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use amq_protocol::protocol::{connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    short, Ends, Hangup, Opened, Reader, Writer, CHANNEL_MAX, CLOSE_LINGER, CLOSE_OK_TIMEOUT,
    FRAME_MAX, FRAME_MIN_SIZE, HEARTBEAT,
};
use crate::amqp::codec::{self, Incoming, Undecodable};
use crate::broker::{AmqpError, Broker, ConnectionSnapshot, LoginRefused};
use crate::events::ClientInfo;
use crate::terminal::printable;

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
pub(super) async fn linger(
    reader: &mut Reader,
    buf: &mut BytesMut,
    limit: Duration,
    until_close_ok: bool,
) {
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

pub(super) fn close_method(error: &AmqpError, class_id: u16, method_id: u16) -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
        reply_code: error.code,
        reply_text: short(&error.text),
        class_id,
        method_id,
    }))
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
pub(super) async fn handshake(
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
        ..Default::default()
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
