//! The tx class: select, commit, rollback of held publishes and settlements.

use amq_protocol::protocol::{tx, AMQPClass};

use super::{not_from_client, Connection, TxOp};
use crate::broker::AmqpError;

impl Connection {
    pub(super) fn tx_method(&mut self, ch: u16, method: &tx::AMQPMethod) -> Result<(), AmqpError> {
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
            _ => return Err(not_from_client()),
        }
        Ok(())
    }
}
