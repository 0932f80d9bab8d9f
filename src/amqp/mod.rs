//! The AMQP 0-9-1 wire server: a tokio listener, one task pair per connection, frames
//! translated to [`Broker`] calls and back.

mod codec;
mod connection;
mod writer;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::Broker;

pub use connection::{CHANNEL_MAX, FRAME_MAX, HEARTBEAT};

/// A bound listener, ready to serve.
pub struct Server {
    listener: TcpListener,
    broker: Arc<Broker>,
}

impl Server {
    /// Binds the listening socket. A taken port fails here, naming nothing; callers add the
    /// address to the message.
    pub async fn bind(broker: Arc<Broker>, addr: SocketAddr) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Server { listener, broker })
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
                        connections.spawn(connection::serve(stream, peer, broker, shutdown));
                    }
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                _ = &mut stop => break,
            }
        }
        drop(self.listener);
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
