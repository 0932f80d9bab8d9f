//! The AMQP 0-9-1 wire server: a tokio listener, one task pair per connection, frames
//! translated to [`Broker`] calls and back.
//!
//! `codec` turns bytes into frames and back, `connection/` serves one client (handshake, then
//! one handler file per AMQP class), `writer` is each connection's writing task. It calls the
//! broker only through [`Broker`]'s methods and imports nothing from the view or the lessons.

mod codec;
mod connection;
pub mod nesting;
mod writer;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::{rustls, TlsAcceptor};

use crate::broker::Broker;

pub use connection::{CHANNEL_MAX, FRAME_MAX, HEARTBEAT};

/// A TLS client has this long to finish its handshake (the AMQP handshake then has its own).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound listener, ready to serve.
pub struct Server {
    listener: TcpListener,
    /// The amqps listener, if any.
    tls: Option<(TcpListener, TlsAcceptor)>,
    broker: Arc<Broker>,
}

impl Server {
    /// Binds the listening socket. A taken port fails here, naming nothing; callers add the
    /// address to the message.
    pub async fn bind(broker: Arc<Broker>, addr: SocketAddr) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Server {
            listener,
            tls: None,
            broker,
        })
    }

    /// Also serves amqps on `addr`, presenting `config`'s certificate (see
    /// [`crate::tls::server_config`]).
    pub async fn listen_tls(
        &mut self,
        addr: SocketAddr,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<()> {
        let listener = TcpListener::bind(addr).await?;
        self.tls = Some((listener, TlsAcceptor::from(config)));
        Ok(())
    }

    /// Where the amqps listener is, if there is one.
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.tls
            .as_ref()
            .map(|(l, _)| l.local_addr().expect("a bound listener has an address"))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Serves forever.
    pub async fn run(self) {
        self.run_until(std::future::pending()).await
    }

    /// Serves until `stop` completes, then closes every connection with 320 CONNECTION_FORCED
    /// and waits (briefly) for them to finish.
    pub async fn run_until(self, stop: impl Future<Output = ()>) {
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let broker = self.broker.clone();
                        let shutdown = shutdown_rx.clone();
                        connections.spawn(connection::serve_tcp(stream, peer, broker, shutdown));
                    }
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                accepted = accept_tls(&self.tls), if self.tls.is_some() => match accepted {
                    Ok((stream, peer, acceptor)) => {
                        let broker = self.broker.clone();
                        let shutdown = shutdown_rx.clone();
                        connections.spawn(serve_tls(stream, peer, acceptor, broker, shutdown));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                _ = &mut stop => break,
            }
        }
        drop(self.listener);
        drop(self.tls);
        let _ = shutdown_tx.send(true);
        let drain = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), drain)
            .await
            .is_err()
        {
            connections.abort_all();
        }
    }
}

async fn accept_tls(
    tls: &Option<(TcpListener, TlsAcceptor)>,
) -> std::io::Result<(TcpStream, SocketAddr, TlsAcceptor)> {
    match tls {
        Some((listener, acceptor)) => {
            let (stream, peer) = listener.accept().await?;
            Ok((stream, peer, acceptor.clone()))
        }
        None => std::future::pending().await,
    }
}

/// The TLS handshake in the connection's own task, so a slow or confused client (plain AMQP
/// on the TLS port, say) holds up no one; a failed one is logged and dropped.
async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok();
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            let ends = connection::Ends { peer, local };
            connection::serve(stream, ends, broker, shutdown).await
        }
        Ok(Err(error)) => tracing::info!(%peer, %error, "TLS handshake failed"),
        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
    }
}

/// Serves one client over any byte stream (an in-memory pipe, say) until it ends, as the
/// listener serves a socket. `peer` stands for where it comes from: guest may log in from
/// loopback only. For tests and fuzzing.
pub async fn serve_stream<S>(stream: S, peer: SocketAddr, broker: Arc<Broker>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Kept until the connection ends: a dropped sender would read as a shutdown.
    let (_shutdown_tx, shutdown_rx) = watch::channel(false);
    let ends = connection::Ends { peer, local: None };
    connection::serve(stream, ends, broker, shutdown_rx).await
}

/// Cuts `input` into frames and decodes each, as a connection's reader does, until the input
/// runs out or a frame is fatally malformed; then checks that every decoded method, written
/// out, reads back as the same frame, and that a publish or content header decoded directly
/// decodes the same through amq-protocol. Returns how many frames decoded. For fuzzing.
pub fn decode_frames(input: &[u8], frame_max: usize) -> usize {
    let mut buf = bytes::BytesMut::from(input);
    let mut decoded = 0;
    while let Ok(Some(raw)) = codec::read_frame(&mut buf, frame_max) {
        if let Some(direct) = codec::decode_publishing(&raw) {
            assert_eq!(
                format!("{:?}", Ok::<_, codec::Undecodable>(direct)),
                format!("{:?}", codec::decode_generic(&raw)),
                "the direct decoding disagrees with amq-protocol"
            );
        }
        let Ok(incoming) = codec::decode(&raw) else {
            continue;
        };
        decoded += 1;
        if let codec::Incoming::Method(channel, method) = incoming {
            // Bytes, not values, are compared: a float field may be NaN.
            let written = write_method(channel, method);
            let mut again = bytes::BytesMut::from(&written[..]);
            let raw = codec::read_frame(&mut again, usize::MAX)
                .expect("a written frame is well formed")
                .expect("a written frame is whole");
            match codec::decode(&raw) {
                Ok(codec::Incoming::Method(c, m)) => {
                    assert_eq!(
                        write_method(c, m),
                        written,
                        "method changed on the way round"
                    )
                }
                other => panic!("a written method did not decode: {other:?}"),
            }
        }
    }
    decoded
}

fn write_method(channel: u16, method: amq_protocol::protocol::AMQPClass) -> Vec<u8> {
    let mut out = Vec::new();
    codec::write_method(&mut out, channel, method);
    out
}
