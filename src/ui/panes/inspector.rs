//! The inspector: the selected exchange, binding or queue (flags, arguments, counters), or the
//! selected message (properties, headers, body, an oslo.messaging envelope decoded) and why it
//! went where it went.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

use crate::events::BindingInfo;
use crate::lesson::Lang;
use crate::openstack;
use crate::ui::app::{App, Focus};
use crate::ui::layout::GraphItem;
use crate::ui::model::{LogEntry, Rate};
use crate::ui::panes::status::sparkline;
use crate::ui::theme::Theme;
use crate::ui::why;
use crate::ui::words::tr;

pub struct InspectorPane<'a> {
    pub app: &'a App,
    pub theme: Theme,
}

/// An oslo.messaging message decoded (see [`openstack`]), else pretty JSON when the body is
/// JSON, else its text.
pub fn body_text(body: &[u8]) -> Vec<String> {
    if let Some(oslo) = openstack::decode(body) {
        return oslo.lines();
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::from_utf8_lossy(body)
            .lines()
            .map(str::to_string)
            .collect();
    };
    serde_json::to_string_pretty(&value)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
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
    let cut = if entry.body_preview.len() < entry.body_size {
        format!(", cut at {} bytes", entry.body_preview.len())
    } else {
        String::new()
    };
    lines.push(Line::styled(
        format!("body ({} bytes{cut})", entry.body_size),
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

/// A client connection as the broker lists it.
fn connection_lines<'a>(app: &App, id: crate::events::ConnectionId) -> Vec<Line<'a>> {
    let Some(c) = app.model.topology.connections.iter().find(|c| c.id == id) else {
        return vec![Line::raw("connection closed")];
    };
    let mut lines = vec![
        Line::raw(format!("connection {}", c.name)),
        Line::raw(format!("from {}  user {}", c.peer, c.user)),
    ];
    if let Some(name) = &c.client.connection_name {
        lines.push(Line::raw(format!("connection_name {name}")));
    }
    if let Some(product) = &c.client.product {
        lines.push(Line::raw(format!("client {product}")));
    }
    lines
}

fn node_lines<'a>(app: &App, theme: Theme) -> Vec<Line<'a>> {
    let topology = &app.model.topology;
    let mut lines = Vec::new();
    let Some(item) = app.selected_item() else {
        return lines;
    };
    match item {
        GraphItem::Binding(i) if app.graph.layout.bindings[i].implicit => {
            let b = &app.graph.layout.bindings[i].binding;
            return vec![
                Line::styled(format!("(default) -> {}", b.destination), theme.title()),
                Line::raw(format!("routing key  {}", b.routing_key)),
                Line::raw(
                    "The default exchange routes a message to the queue its routing key \
                     names; every queue is bound to it by its name, and that binding cannot \
                     be deleted. Drawn because messages went this way.",
                ),
            ];
        }
        GraphItem::Binding(i) => {
            return binding_lines(app, &app.graph.layout.bindings[i].binding, theme)
        }
        GraphItem::Publisher(i) => {
            let p = &app.graph.layout.publishers[i];
            let x = &app.graph.layout.exchanges[p.exchange].name;
            let x = if x.is_empty() { "(default)" } else { x };
            let mut lines = vec![Line::styled(
                format!("publisher {}  -> {x}", p.label),
                theme.title(),
            )];
            lines.extend(connection_lines(app, p.connection));
            return lines;
        }
        GraphItem::Consumer(i) => {
            let c = &app.graph.layout.consumers[i];
            let queue = &app.graph.layout.queues[c.queue].name;
            let mut lines = vec![Line::styled(
                format!("consumer {}  <- {queue}", c.label),
                theme.title(),
            )];
            for s in topology
                .consumers
                .iter()
                .filter(|s| s.queue == *queue && s.connection == c.connection)
            {
                let ack = if s.ack { "manual ack" } else { "no-ack" };
                let prefetch = match s.prefetch {
                    0 => "no prefetch limit".to_string(),
                    n => format!("prefetch {n}"),
                };
                lines.push(Line::raw(format!(
                    "  tag {}  channel {}  {ack}  {prefetch}",
                    s.tag, s.channel
                )));
            }
            lines.extend(connection_lines(app, c.connection));
            return lines;
        }
        _ => {}
    }
    if let GraphItem::Exchange(i) = item {
        let name = &app.graph.layout.exchanges[i].name;
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
        GraphItem::Queue(i) => app.graph.layout.queues.get(i),
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

/// What the inspector shows, as a paragraph wrapped to its width.
fn paragraph<'a>(app: &App, theme: Theme) -> Paragraph<'a> {
    let lines = match app.subject {
        Focus::Log => app
            .selected_message()
            .map(|m| message_lines(app, m, theme))
            .unwrap_or_default(),
        _ => node_lines(app, theme),
    };
    let lines = if lines.is_empty() {
        vec![Line::styled(
            tr(
                app.options.lang,
                "Select an exchange, a binding, a queue or a message.",
                "选择一个交换器、绑定、队列或一条消息。",
            ),
            theme.dim(),
        )]
    } else {
        lines
    };
    Paragraph::new(lines).wrap(Wrap { trim: false })
}

/// Rows the inspector's text takes at this pane size, and rows it can show.
fn rows(app: &App, area: Rect, theme: Theme) -> (usize, usize) {
    let inner = super::pane_block("", false, theme).inner(area);
    let total = paragraph(app, theme).line_count(inner.width);
    (total, inner.height as usize)
}

/// Keeps the scroll within the text, so scrolling back up answers at once after an overshoot.
pub fn fit_scroll(app: &mut App, area: Rect, theme: Theme) {
    if area.is_empty() {
        return;
    }
    let (total, visible) = rows(app, area, theme);
    app.inspector_scroll = app.inspector_scroll.min(total.saturating_sub(visible));
}

impl Widget for &InspectorPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let app = self.app;
        let theme = self.theme;
        let focused = app.focus == Focus::Inspector;
        let text = paragraph(app, theme);
        let inner = super::pane_block("", false, theme).inner(area);
        let (total, visible) = (text.line_count(inner.width), inner.height as usize);
        // Say where we are when the text is longer than the pane.
        let title = if total > visible {
            let first = app.inspector_scroll.min(total.saturating_sub(visible));
            let (first, last) = (first + 1, (first + visible).min(total));
            match app.options.lang {
                Lang::En => format!(" inspector {first}-{last} of {total} "),
                Lang::Zh => format!(" 详情 {first}-{last}/{total} "),
            }
        } else {
            tr(app.options.lang, " inspector ", " 详情 ").to_string()
        };
        let block = super::pane_block(title, focused, theme);
        let scroll = u16::try_from(app.inspector_scroll).unwrap_or(u16::MAX);
        text.block(block).scroll((scroll, 0)).render(area, buf);
    }
}
