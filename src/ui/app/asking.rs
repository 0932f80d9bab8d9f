//! Acting on the broker from the graph: a form prefilled from what is selected, and the
//! question asked before a delete, unbind or purge, which says what will be lost.
//!
//! These are the app's methods because they read the selection and the topology together;
//! they only open an overlay or return the command to run, and do no I/O.

use super::{App, Effect};
use crate::lesson::Lang;
use crate::ui::form::{Command, Confirm, Form, FormKind};

impl App {
    /// Opens a form, prefilled with the exchange and queue selected.
    pub(super) fn open_form(&mut self, kind: FormKind) {
        let mut exchange = self.selected_exchange().map(str::to_string);
        let mut queue = self.selected_queue().map(str::to_string);
        // A selected binding prefills its exchange, and its key where that is a key a
        // message can carry (not a pattern).
        if let Some(b) = self.selected_binding().map(|b| &b.binding) {
            exchange = Some(b.source.to_string());
            queue = match kind {
                FormKind::Publish if !b.routing_key.contains(['*', '#']) => {
                    Some(b.routing_key.to_string())
                }
                FormKind::Bind if !b.destination_is_exchange => Some(b.destination.to_string()),
                _ => None,
            };
        }
        self.overlays.form = Some(Form::new(kind, exchange.as_deref(), queue.as_deref()));
    }

    /// The open form's command, to run; or why it cannot be, on the status line.
    pub(super) fn submit_form(&mut self) -> Option<Effect> {
        match self.overlays.form.as_ref()?.command() {
            Ok(command) => {
                self.overlays.form = None;
                Some(Effect::Run(command))
            }
            Err(why) => {
                self.notice = Some((why.to_string(), true));
                None
            }
        }
    }

    /// Asks before deleting the selected binding, exchange or queue, saying what goes with it.
    pub(super) fn ask_delete(&mut self) -> Option<Effect> {
        if self.selected_binding().is_some_and(|b| b.implicit) {
            let why =
                "the default exchange routes to every queue by its name: no binding to delete";
            self.notice = Some((why.into(), true));
            return None;
        }
        let question;
        let command = if let Some(b) = self.selected_binding() {
            let b = &b.binding;
            question = match self.options.lang {
                Lang::En => format!(
                    "Unbind '{}' from '{}' with key '{}'? Messages stop taking this route.",
                    b.destination, b.source, b.routing_key
                ),
                Lang::Zh => format!(
                    "解除 '{}' 与 '{}' 之间路由键为 '{}' 的绑定？消息将不再走这条路线。",
                    b.destination, b.source, b.routing_key
                ),
            };
            Command::Unbind { binding: b.clone() }
        } else if let Some(x) = self.selected_exchange() {
            let bound = |name: &str| {
                self.model
                    .topology
                    .bindings
                    .iter()
                    .filter(|b| {
                        *b.source == *name || (b.destination_is_exchange && *b.destination == *name)
                    })
                    .count()
            };
            question = match self.options.lang {
                Lang::En => format!(
                    "Delete exchange '{x}' and its {} binding(s)? No queued message is lost.",
                    bound(x)
                ),
                Lang::Zh => format!(
                    "删除交换器 '{x}' 及其 {} 个绑定？队列中的消息不会丢失。",
                    bound(x)
                ),
            };
            Command::DeleteExchange {
                name: x.to_string(),
            }
        } else if let Some(q) = self.selected_queue() {
            let (ready, unacked) = self.queue_counts(q);
            question = match self.options.lang {
                Lang::En => format!(
                    "Delete queue '{q}'? {} message(s) are lost ({ready} ready, {unacked} unacknowledged).",
                    ready + unacked
                ),
                Lang::Zh => format!(
                    "删除队列 '{q}'？将丢失 {} 条消息（{ready} 条就绪，{unacked} 条未确认）。",
                    ready + unacked
                ),
            };
            Command::DeleteQueue {
                name: q.to_string(),
            }
        } else {
            return self.need_queue(|name| Command::DeleteQueue { name });
        };
        self.overlays.confirm = Some(Confirm { question, command });
        None
    }

    /// Asks before purging the selected queue, saying how many messages are lost.
    pub(super) fn ask_purge(&mut self) -> Option<Effect> {
        let Some(q) = self.selected_queue() else {
            return self.need_queue(|queue| Command::Purge { queue });
        };
        let (ready, unacked) = self.queue_counts(q);
        // Purge takes only what waits in the queue, as in RabbitMQ.
        let question = match (self.options.lang, unacked) {
            (Lang::En, 0) => format!("Purge queue '{q}'? {ready} ready message(s) are lost."),
            (Lang::En, _) => format!(
                "Purge queue '{q}'? {ready} ready message(s) are lost. The {unacked} \
                 unacknowledged stay with their consumers."
            ),
            (Lang::Zh, 0) => format!("清空队列 '{q}'？将丢失 {ready} 条就绪消息。"),
            (Lang::Zh, _) => format!(
                "清空队列 '{q}'？将丢失 {ready} 条就绪消息。{unacked} 条未确认的消息仍留在消费者那里。"
            ),
        };
        self.overlays.confirm = Some(Confirm {
            question,
            command: Command::Purge {
                queue: q.to_string(),
            },
        });
        None
    }

    /// The command on the selected queue; without one, says to select one.
    pub(super) fn need_queue(&mut self, make: impl FnOnce(String) -> Command) -> Option<Effect> {
        match self.selected_queue() {
            Some(q) => Some(Effect::Run(make(q.to_string()))),
            None => {
                self.notice = Some(("select a queue in the graph first".into(), true));
                None
            }
        }
    }

    /// Ready and unacknowledged messages of a queue, as the last snapshot saw them.
    fn queue_counts(&self, queue: &str) -> (usize, usize) {
        self.model
            .topology
            .queues
            .iter()
            .find(|q| q.name == queue)
            .map_or((0, 0), |q| (q.ready, q.unacked))
    }
}
