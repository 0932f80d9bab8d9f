//! Publisher confirms: confirm.select, and writing the acks and nacks, held back while a
//! persistent message waits for the disk.

use amq_protocol::protocol::{basic, confirm, AMQPClass};

use super::Connection;
use crate::amqp::codec;
use crate::broker::AmqpError;

impl Connection {
    /// confirm.select: from now on every publish on the channel is acked or nacked.
    pub(super) fn confirm_select(&mut self, ch: u16, nowait: bool) -> Result<(), AmqpError> {
        let state = self.channels.get_mut(&ch).expect("open");
        if state.tx.is_some() {
            return Err(AmqpError::precondition_failed(
                "cannot switch from tx to confirm mode",
            ));
        }
        state.confirm = true;
        let ok = confirm::AMQPMethod::SelectOk(confirm::SelectOk {});
        self.reply_unless(nowait, ch, AMQPClass::Confirm(ok));
        Ok(())
    }

    pub(super) fn flush_confirms(&mut self) {
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
    pub(super) fn release_confirms(&mut self, durable: u64) {
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

    pub(super) fn write_nack(&mut self, channel: u16, tag: u64) {
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

    pub(super) fn write_ack(&mut self, channel: u16, first: u64, last: u64) {
        codec::write_method(
            &mut self.out,
            channel,
            AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: last,
                multiple: last > first,
            })),
        );
    }
}
