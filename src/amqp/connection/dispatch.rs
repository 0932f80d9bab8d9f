//! Frames in: decoding, then handing each method to its class's handler. The connection
//! class (after the handshake) and the channel class (open, close, flow) are handled here.

use amq_protocol::protocol::{basic, channel, confirm, connection, AMQPClass};

use super::{
    connection_failure, exchange_class, failure, not_from_client, publish_failure, queue_class,
    ChannelWire, Connection, Failure, Hangup, PendingContent,
};
use crate::amqp::codec::{self, Incoming, Undecodable};
use crate::broker::AmqpError;

impl Connection {
    /// Decodes a frame and handles it, with RabbitMQ's answer to frames that make no sense.
    pub(super) fn handle_raw(&mut self, raw: codec::RawFrame) -> Result<(), Failure> {
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

    pub(super) fn method(&mut self, ch: u16, method: AMQPClass) -> Result<(), Failure> {
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
            AMQPClass::Exchange(m) => {
                let (ok, nowait) = exchange_class::answer(&broker, self.on(ch), m).map_err(fail)?;
                self.reply_unless(nowait, ch, AMQPClass::Exchange(ok));
                Ok(())
            }
            AMQPClass::Queue(m) => {
                let (ok, nowait) = queue_class::answer(&broker, self.on(ch), m).map_err(fail)?;
                self.reply_unless(nowait, ch, AMQPClass::Queue(ok));
                Ok(())
            }
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
                self.confirm_select(ch, select.nowait).map_err(fail)
            }
            AMQPClass::Tx(m) => self.tx_method(ch, m).map_err(fail),
            _ => Err(fail(not_from_client())),
        }
    }
}
