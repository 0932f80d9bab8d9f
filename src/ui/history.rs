//! What happened to a message after it was routed, as the inspector lists it. Kept as facts, not
//! sentences, so the same history reads in either language.

use crate::events::Name;
use crate::lesson::Lang;

#[derive(Clone, Debug, PartialEq)]
pub enum Happened {
    /// Delivered to a consumer (`to` names the service and tag) or handed to `basic.get`.
    Delivered {
        queue: Name,
        to: String,
        delivery_tag: u64,
        redelivered: bool,
        /// A quorum queue's `x-delivery-count` on it.
        delivery_count: Option<u32>,
    },
    Acked {
        queue: Name,
    },
    Nacked {
        queue: Name,
        requeue: bool,
    },
    Rejected {
        queue: Name,
        requeue: bool,
    },
    /// Back at the queue's head, to be delivered again.
    Requeued {
        queue: Name,
    },
    Expired {
        queue: Name,
    },
    /// Gone with nowhere to be dead-lettered: pushed out of a full queue (`x-overflow`
    /// drop-head), or given back more often than a quorum queue's `x-delivery-limit`.
    Dropped {
        queue: Name,
        past_delivery_limit: bool,
    },
    DeadLettered {
        queue: Name,
        reason: &'static str,
        exchange: Name,
        routing_key: Name,
    },
}

impl Happened {
    /// Bad news for the message: it is gone, or gone elsewhere.
    pub fn bad(&self) -> bool {
        match self {
            Happened::Nacked { requeue, .. } | Happened::Rejected { requeue, .. } => !requeue,
            Happened::Expired { .. } | Happened::Dropped { .. } | Happened::DeadLettered { .. } => {
                true
            }
            _ => false,
        }
    }

    /// The event in a line, in `lang`.
    pub fn text(&self, lang: Lang) -> String {
        let zh = lang == Lang::Zh;
        let then = |requeue: bool| match (zh, requeue) {
            (false, true) => "requeued",
            (false, false) => "not requeued",
            (true, true) => "已重新入队",
            (true, false) => "未重新入队",
        };
        match self {
            Happened::Delivered {
                queue,
                to,
                delivery_tag,
                redelivered,
                delivery_count,
            } => {
                let again = match (zh, *redelivered) {
                    (_, false) => "",
                    (false, true) => ", redelivered",
                    (true, true) => "，重新投递",
                };
                let count = match (zh, delivery_count) {
                    (_, None) => String::new(),
                    (false, Some(n)) => format!(", delivery count {n}"),
                    (true, Some(n)) => format!("，投递计数 {n}"),
                };
                if zh {
                    format!("从 {queue} 投递给 {to}（投递标签 {delivery_tag}{again}{count}）")
                } else {
                    format!("delivered from {queue} to {to} (tag {delivery_tag}{again}{count})")
                }
            }
            Happened::Acked { queue } if zh => format!("在 {queue} 中被确认"),
            Happened::Acked { queue } => format!("acked in {queue}"),
            Happened::Nacked { queue, requeue } if zh => {
                format!("在 {queue} 中被否定确认，{}", then(*requeue))
            }
            Happened::Nacked { queue, requeue } => {
                format!("nacked in {queue}, {}", then(*requeue))
            }
            Happened::Rejected { queue, requeue } if zh => {
                format!("在 {queue} 中被拒绝，{}", then(*requeue))
            }
            Happened::Rejected { queue, requeue } => {
                format!("rejected in {queue}, {}", then(*requeue))
            }
            Happened::Requeued { queue } if zh => format!("回到 {queue}，等待重新投递"),
            Happened::Requeued { queue } => format!("back in {queue}, to be redelivered"),
            Happened::Expired { queue } if zh => format!("在 {queue} 中过期（TTL）"),
            Happened::Expired { queue } => format!("expired in {queue} (TTL)"),
            Happened::Dropped {
                queue,
                past_delivery_limit,
            } => match (zh, past_delivery_limit) {
                (false, false) => format!("dropped from {queue} (queue full)"),
                (false, true) => format!("dropped from {queue} (past its delivery limit)"),
                (true, false) => format!("从 {queue} 中被丢弃（队列已满）"),
                (true, true) => format!("从 {queue} 中被丢弃（超过投递次数上限）"),
            },
            Happened::DeadLettered {
                queue,
                reason,
                exchange,
                routing_key,
            } => {
                let exchange: &str = if exchange.is_empty() {
                    "(default)"
                } else {
                    exchange
                };
                if zh {
                    format!("从 {queue} 死信（{reason}）到 {exchange}，路由键 {routing_key}")
                } else {
                    format!(
                        "dead-lettered from {queue} ({reason}) to {exchange} with key {routing_key}"
                    )
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_from_a_quorum_queue_says_its_count_in_both_languages() {
        let delivered = |delivery_count| Happened::Delivered {
            queue: "orders".into(),
            to: "billing worker".into(),
            delivery_tag: 4,
            redelivered: true,
            delivery_count,
        };
        assert_eq!(
            delivered(Some(2)).text(Lang::En),
            "delivered from orders to billing worker (tag 4, redelivered, delivery count 2)"
        );
        assert_eq!(
            delivered(Some(2)).text(Lang::Zh),
            "从 orders 投递给 billing worker（投递标签 4，重新投递，投递计数 2）"
        );
        assert_eq!(
            delivered(None).text(Lang::En),
            "delivered from orders to billing worker (tag 4, redelivered)"
        );
    }
}
