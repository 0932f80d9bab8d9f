//! The inspector: the selected exchange, binding or queue (flags, arguments, counters), or the
//! selected message (properties, headers, body, an oslo.messaging envelope decoded) and why it
//! went where it went.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

use crate::events::BindingInfo;
use crate::ui::app::{App, Focus};
use crate::ui::layout::GraphItem;
use crate::ui::model::{LogEntry, Rate};
use crate::ui::panes::status::sparkline;
use crate::ui::theme::Theme;
use crate::ui::why;

pub struct InspectorPane<'a> {
    pub app: &'a App,
    pub theme: Theme,
}

/// Pretty JSON when the body is JSON; the `oslo.message` string inside an oslo.messaging
/// envelope is parsed too, so the method and arguments are readable.
pub fn body_text(body: &[u8]) -> Vec<String> {
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::from_utf8_lossy(body)
            .lines()
            .map(str::to_string)
            .collect();
    };
    let mut lines = Vec::new();
    if let Some(inner) = value
        .get("oslo.message")
        .and_then(|m| m.as_str())
        .map(str::to_string)
    {
        if let Ok(parsed) = serde_json::from_str::<serde_json::Value>(&inner) {
            lines.push(format!(
                "oslo.messaging envelope (oslo.version {})",
                value
                    .get("oslo.version")
                    .and_then(|v| v.as_str())
                    .unwrap_or("?")
            ));
            value["oslo.message"] = parsed;
        }
    }
    lines.extend(
        serde_json::to_string_pretty(&value)
            .unwrap_or_default()
            .lines()
            .map(str::to_string),
    );
    lines
}

/// `N msg/s in` and a sparkline of the last half minute.
fn rate_line<'a>(rate: Option<&Rate>, theme: Theme) -> Line<'a> {
    let Some(rate) = rate else {
        return Line::raw("0 msg/s in");
    };
    let history: Vec<u64> = rate.per_second.iter().copied().collect();
    Line::from(vec![
        Span::raw(format!("{} msg/s in  ", rate.current())),
        Span::styled(sparkline(&history, 30), theme.good()),
    ])
}

fn message_lines<'a>(app: &App, entry: &LogEntry, theme: Theme) -> Vec<Line<'a>> {
    let mut lines = vec![Line::styled(
        format!("message #{}", entry.message_id),
        theme.title(),
    )];
    let exchange = if entry.exchange.is_empty() {
        "(default)".to_string()
    } else {
        entry.exchange.to_string()
    };
    lines.push(Line::raw(format!("exchange     {exchange}")));
    lines.push(Line::raw(format!("routing key  {}", entry.routing_key)));
    lines.push(Line::raw(format!(
        "fate         {:?} -> {}",
        entry.fate,
        entry.queues.join(", ")
    )));
    if let Some(ae) = &entry.alternate_exchange {
        lines.push(Line::raw(format!(
            "unroutable: sent to alternate exchange {ae}"
        )));
    }
    if !entry.history.is_empty() {
        lines.push(Line::styled("then", theme.title()));
    }
    for (text, bad) in &entry.history {
        let style = if *bad { theme.bad() } else { Style::default() };
        lines.push(Line::styled(format!("  {text}"), style));
    }
    lines.push(Line::styled("why it went there", theme.title()));
    for v in why::explain(entry, &app.model.topology) {
        let mark = if v.matched { "✓" } else { "✗" };
        let style = if v.matched { theme.good() } else { theme.dim() };
        lines.push(Line::from(vec![
            Span::styled(format!("{mark} {} ", v.destination), style),
            Span::styled(format!("[{}] ", v.binding), theme.key()),
            Span::raw(v.reason),
        ]));
    }
    if !entry.properties.is_empty() {
        lines.push(Line::styled("properties", theme.title()));
        for (k, v) in entry.properties.iter() {
            lines.push(Line::raw(format!("  {k}: {v}")));
        }
    }
    if !entry.headers.is_empty() {
        lines.push(Line::styled("headers", theme.title()));
        for (k, v) in &entry.headers {
            lines.push(Line::raw(format!("  {k}: {v}")));
        }
    }
    lines.push(Line::styled(
        format!("body ({} bytes)", entry.body_size),
        theme.title(),
    ));
    lines.extend(body_text(&entry.body_preview).into_iter().map(Line::raw));
    lines
}

/// How a binding of this kind of exchange decides, in a line.
fn binding_rule(kind: &str, b: &BindingInfo) -> String {
    match kind {
        "fanout" => "fanout: every message, whatever its key".to_string(),
        "topic" => format!(
            "topic: keys matching '{}' word by word (* one word, # zero or more)",
            b.routing_key
        ),
        "headers" => {
            let any = b
                .arguments
                .iter()
                .any(|(k, v)| k == "x-match" && v.starts_with("any"));
            format!(
                "headers: messages whose headers match {} of the arguments",
                if any { "any" } else { "all" }
            )
        }
        _ => format!("direct: keys equal to '{}'", b.routing_key),
    }
}

fn binding_lines<'a>(app: &App, b: &BindingInfo, theme: Theme) -> Vec<Line<'a>> {
    let source = if b.source.is_empty() {
        "(default)"
    } else {
        &b.source
    };
    let kind = app
        .model
        .topology
        .exchanges
        .iter()
        .find(|x| *x.name == *b.source)
        .map_or("", |x| x.kind.as_str());
    let mut lines = vec![
        Line::styled(
            format!("binding {source} -> {}", b.destination),
            theme.title(),
        ),
        Line::raw(format!(
            "from exchange {source}  to {} {}",
            if b.destination_is_exchange {
                "exchange"
            } else {
                "queue"
            },
            b.destination
        )),
        Line::raw(format!("routing key  {}", b.routing_key)),
    ];
    for (k, v) in &b.arguments {
        lines.push(Line::raw(format!("  {k} = {v}")));
    }
    lines.push(Line::styled(binding_rule(kind, b), theme.dim()));
    // Counters from the message log: how much of this exchange's traffic took this binding.
    let from_here: Vec<&LogEntry> = app
        .model
        .log
        .iter()
        .filter(|e| *e.exchange == *b.source || e.matched.iter().any(|m| *m.source == *b.source))
        .collect();
    let through: Vec<&LogEntry> = from_here
        .iter()
        .copied()
        .filter(|e| e.matched.iter().any(|m| **m == *b))
        .collect();
    lines.push(Line::raw(format!(
        "matched {} of the last {} messages routed by {source}",
        through.len(),
        from_here.len()
    )));
    if !through.is_empty() {
        lines.push(Line::styled("last keys it matched", theme.title()));
        for e in through.iter().rev().take(5) {
            lines.push(Line::raw(format!("  #{} {}", e.message_id, e.routing_key)));
        }
    }
    lines.push(Line::styled("D unbinds it", theme.dim()));
    lines
}

fn node_lines<'a>(app: &App, theme: Theme) -> Vec<Line<'a>> {
    let topology = &app.model.topology;
    let mut lines = Vec::new();
    let Some(item) = app.selected_item() else {
        return lines;
    };
    if let GraphItem::Binding(i) = item {
        return binding_lines(app, &app.graph.bindings[i].binding, theme);
    }
    if let GraphItem::Exchange(i) = item {
        let name = &app.graph.exchanges[i].name;
        let Some(x) = topology.exchanges.iter().find(|x| &x.name == name) else {
            return lines;
        };
        lines.push(Line::styled(
            format!(
                "exchange {}",
                if x.name.is_empty() {
                    "(default)"
                } else {
                    &x.name
                }
            ),
            theme.title(),
        ));
        lines.push(Line::raw(format!(
            "type {}  durable {}  auto-delete {}  internal {}",
            x.kind, x.durable, x.auto_delete, x.internal
        )));
        for (k, v) in &x.arguments {
            lines.push(Line::raw(format!("  {k} = {v}")));
        }
        lines.push(rate_line(
            app.model.exchange_rates.get(name.as_str()),
            theme,
        ));
        lines.push(Line::styled("bindings", theme.title()));
        for b in topology.bindings.iter().filter(|b| *b.source == **name) {
            let args: Vec<String> = b
                .arguments
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            lines.push(Line::raw(format!(
                "  -> {} [{}] {}",
                b.destination,
                b.routing_key,
                args.join(" ")
            )));
        }
    } else if let Some(q) = match item {
        GraphItem::Queue(i) => app.graph.queues.get(i),
        _ => None,
    } {
        let Some(s) = topology.queues.iter().find(|x| x.name == q.name) else {
            return lines;
        };
        lines.push(Line::styled(format!("queue {}", s.name), theme.title()));
        lines.push(Line::raw(format!(
            "durable {}  exclusive {}  auto-delete {}",
            s.durable, s.exclusive, s.auto_delete
        )));
        lines.push(Line::raw(format!(
            "{} ready  {} unacked  {} consumers",
            s.ready, s.unacked, s.consumers
        )));
        lines.push(rate_line(app.model.queue_rates.get(s.name.as_str()), theme));
        for (k, v) in &s.arguments {
            lines.push(Line::raw(format!("  {k} = {v}")));
        }
        lines.push(Line::styled("bound from", theme.title()));
        for b in topology
            .bindings
            .iter()
            .filter(|b| *b.destination == *s.name && !b.destination_is_exchange)
        {
            lines.push(Line::raw(format!("  {} [{}]", b.source, b.routing_key)));
        }
    }
    lines
}

impl Widget for &InspectorPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let app = self.app;
        let theme = self.theme;
        let focused = app.focus == Focus::Inspector;
        let block = super::pane_block(" inspector ", focused, theme);
        let lines = match app.subject {
            Focus::Log => app
                .selected_message()
                .map(|m| message_lines(app, m, theme))
                .unwrap_or_default(),
            _ => node_lines(app, theme),
        };
        let lines = if lines.is_empty() {
            vec![Line::styled(
                "Select an exchange, a binding, a queue or a message.",
                theme.dim(),
            )]
        } else {
            lines
        };
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false })
            .render(area, buf);
    }
}
