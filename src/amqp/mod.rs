//! The AMQP 0-9-1 wire server (work in progress).
use std::net::SocketAddr;
use std::sync::Arc;

use crate::broker::Broker;

pub struct Server {
    listener: tokio::net::TcpListener,
    _broker: Arc<Broker>,
}

impl Server {
    pub async fn bind(broker: Arc<Broker>, addr: SocketAddr) -> std::io::Result<Server> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        Ok(Server { listener, _broker: broker })
    }
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap()
    }
    pub async fn run(self) {
        std::future::pending::<()>().await
    }
}
