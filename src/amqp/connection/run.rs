//! The connection's life after the handshake: the read loop (frames, heartbeats, alarms,
//! restarts, the store's progress), writing what was produced, and closing on an error.

use std::time::Duration;

use amq_protocol::protocol::{channel, connection, AMQPClass};
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::amqp::codec;
use crate::broker::{AmqpError, Scope};

use super::handshake::{close_method, linger};
use super::{
    short, Connection, End, Failure, Hangup, Reader, CLOSE_LINGER, CLOSE_OK_TIMEOUT,
    FRAME_MIN_SIZE, READ_CHUNK,
};

impl Connection {
    pub(super) async fn run(
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
    pub(super) fn flush(&mut self) {
        if !self.out.is_empty() {
            let frames = Bytes::from(std::mem::take(&mut self.out));
            self.sink.send_raw(frames);
        }
    }

    /// Reports an error to the peer. Channel errors close the channel and go on; connection
    /// errors close the connection (returns how it ended).
    pub(super) async fn fail(
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
