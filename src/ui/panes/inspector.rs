//! The inspector: the selected exchange, binding or queue (flags, arguments, counters), or the
//! selected message (properties, headers, body, an oslo.messaging envelope decoded) and why it
//! went where it went.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

use crate::broker::exchange::explain_in;
use crate::events::{BindingInfo, PublishFate};
use crate::lesson::Lang;
use crate::openstack;
use crate::source::SourceKind;
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
pub fn body_text(body: &[u8], lang: Lang) -> Vec<String> {
    if let Some(oslo) = openstack::decode(body) {
        return oslo.lines(lang);
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
fn rate_line<'a>(rate: Option<&Rate>, lang: Lang, theme: Theme) -> Line<'a> {
    let per_second = tr(lang, "msg/s in", "条/秒 流入");
    let Some(rate) = rate else {
        return Line::raw(format!("0 {per_second}"));
    };
    let history: Vec<u64> = rate.per_second.iter().copied().collect();
    Line::from(vec![
        Span::raw(format!("{} {per_second}  ", rate.current())),
        Span::styled(sparkline(&history, 30), theme.good()),
    ])
}

fn message_lines<'a>(app: &App, entry: &LogEntry, theme: Theme) -> Vec<Line<'a>> {
    let lang = app.options.lang;
    let t = |en: &'static str, zh: &'static str| tr(lang, en, zh);
    let mut lines = vec![Line::styled(
        format!("{} #{}", t("message", "消息"), entry.message_id),
        theme.title(),
    )];
    let exchange = if entry.exchange.is_empty() {
        "(default)".to_string()
    } else {
        entry.exchange.to_string()
    };
    lines.push(Line::raw(format!(
        "{}{exchange}",
        t("exchange     ", "交换器       ")
    )));
    lines.push(Line::raw(format!(
        "{}{}",
        t("routing key  ", "路由键       "),
        entry.routing_key
    )));
    if let Some(publisher) = entry.publisher.label() {
        lines.push(Line::raw(format!(
            "{}{publisher}",
            t("published by ", "发布者       ")
        )));
    }
    let fate = match (lang, &entry.fate) {
        (Lang::Zh, PublishFate::Routed) => "已路由".to_string(),
        (Lang::Zh, PublishFate::Returned) => "退回".to_string(),
        (Lang::Zh, PublishFate::Dropped) => "丢弃".to_string(),
        (Lang::Zh, PublishFate::Rejected) => "拒收".to_string(),
        (Lang::En, fate) => format!("{fate:?}"),
    };
    lines.push(Line::raw(format!(
        "{}{fate} -> {}",
        t("fate         ", "去向         "),
        entry.queues.join(", ")
    )));
    if let Some(ae) = &entry.alternate_exchange {
        lines.push(Line::raw(match lang {
            Lang::En => format!("unroutable: sent to alternate exchange {ae}"),
            Lang::Zh => format!("不可路由：转给备用交换器 {ae}"),
        }));
    }
    let unroutable = matches!(entry.fate, PublishFate::Returned | PublishFate::Dropped);
    if unroutable && entry.alternate_exchange.is_none() {
        lines.push(Line::styled(
            t("why no queue took it", "为什么没有队列收到"),
            theme.title(),
        ));
        // RabbitMQ's trace does not carry the mandatory flag: a remote drop may be a return.
        let mandatory = match app.source {
            SourceKind::Remote { .. } => None,
            _ => Some(entry.fate == PublishFate::Returned),
        };
        let unroutable = explain_in(
            &app.model.topology,
            &entry.exchange,
            &entry.routing_key,
            &entry.headers,
        );
        let said = why::unroutable(&unroutable, mandatory, lang);
        let last = said.len() - 1;
        for (i, line) in said.into_iter().enumerate() {
            let style = match i {
                0 => theme.bad(),
                i if i == last => Style::default(),
                _ => theme.dim(),
            };
            lines.push(Line::styled(format!("  {line}"), style));
        }
    }
    if !entry.history.is_empty() {
        lines.push(Line::styled(t("then", "之后"), theme.title()));
    }
    for happened in &entry.history {
        let style = if happened.bad() {
            theme.bad()
        } else {
            Style::default()
        };
        lines.push(Line::styled(format!("  {}", happened.text(lang)), style));
    }
    lines.push(Line::styled(
        t("why it went there", "为什么去了那里"),
        theme.title(),
    ));
    for v in why::explain(entry, &app.model.topology, lang) {
        let mark = if v.matched { "✓" } else { "✗" };
        let style = if v.matched { theme.good() } else { theme.dim() };
        lines.push(Line::from(vec![
            Span::styled(format!("{mark} {} ", v.destination), style),
            Span::styled(format!("[{}] ", v.binding), theme.key()),
            Span::raw(v.reason),
        ]));
    }
    if !entry.properties.is_empty() {
        lines.push(Line::styled(t("properties", "属性"), theme.title()));
        for (k, v) in entry.properties.iter() {
            lines.push(Line::raw(format!("  {k}: {v}")));
        }
    }
    if !entry.headers.is_empty() {
        lines.push(Line::styled(t("headers", "消息头"), theme.title()));
        for (k, v) in &entry.headers {
            lines.push(Line::raw(format!("  {k}: {v}")));
        }
    }
    let (size, kept) = (entry.body_size, entry.body_preview.len());
    let heading = match (lang, kept < size) {
        (Lang::En, false) => format!("body ({size} bytes)"),
        (Lang::En, true) => format!("body ({size} bytes, cut at {kept} bytes)"),
        (Lang::Zh, false) => format!("消息体（{size} 字节）"),
        (Lang::Zh, true) => format!("消息体（{size} 字节，截断于 {kept} 字节）"),
    };
    lines.push(Line::styled(heading, theme.title()));
    lines.extend(
        body_text(&entry.body_preview, lang)
            .into_iter()
            .map(Line::raw),
    );
    lines
}

/// How a binding of this kind of exchange decides, in a line.
fn binding_rule(kind: &str, b: &BindingInfo, lang: Lang) -> String {
    let zh = lang == Lang::Zh;
    let key = &b.routing_key;
    match kind {
        "fanout" if zh => "扇出：每条消息，不论路由键".to_string(),
        "fanout" => "fanout: every message, whatever its key".to_string(),
        "topic" if zh => format!("主题：路由键逐词匹配 '{key}'（* 一个词，# 零个或多个词）"),
        "topic" => {
            format!("topic: keys matching '{key}' word by word (* one word, # zero or more)")
        }
        "headers" => {
            let any = b
                .arguments
                .iter()
                .any(|(k, v)| k == "x-match" && v.starts_with("any"));
            match (zh, any) {
                (true, true) => "头部：消息头与任一参数匹配的消息".to_string(),
                (true, false) => "头部：消息头与全部参数匹配的消息".to_string(),
                (false, any) => format!(
                    "headers: messages whose headers match {} of the arguments",
                    if any { "any" } else { "all" }
                ),
            }
        }
        _ if zh => format!("直连：路由键等于 '{key}'"),
        _ => format!("direct: keys equal to '{key}'"),
    }
}

fn binding_lines<'a>(app: &App, b: &BindingInfo, theme: Theme) -> Vec<Line<'a>> {
    let lang = app.options.lang;
    let t = |en: &'static str, zh: &'static str| tr(lang, en, zh);
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
    let destination_kind = if b.destination_is_exchange {
        t("exchange", "交换器")
    } else {
        t("queue", "队列")
    };
    let mut lines = vec![
        Line::styled(
            format!("{} {source} -> {}", t("binding", "绑定"), b.destination),
            theme.title(),
        ),
        Line::raw(match lang {
            Lang::En => format!(
                "from exchange {source}  to {destination_kind} {}",
                b.destination
            ),
            Lang::Zh => format!("从交换器 {source}  到{destination_kind} {}", b.destination),
        }),
        Line::raw(format!(
            "{}{}",
            t("routing key  ", "路由键       "),
            b.routing_key
        )),
    ];
    for (k, v) in &b.arguments {
        lines.push(Line::raw(format!("  {k} = {v}")));
    }
    lines.push(Line::styled(binding_rule(kind, b, lang), theme.dim()));
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
    let (through_n, from_n) = (through.len(), from_here.len());
    lines.push(Line::raw(match lang {
        Lang::En => format!("matched {through_n} of the last {from_n} messages routed by {source}"),
        Lang::Zh => format!("{source} 最近路由的 {from_n} 条消息中匹配了 {through_n} 条"),
    }));
    if !through.is_empty() {
        lines.push(Line::styled(
            t("last keys it matched", "最近匹配的路由键"),
            theme.title(),
        ));
        for e in through.iter().rev().take(5) {
            lines.push(Line::raw(format!("  #{} {}", e.message_id, e.routing_key)));
        }
    }
    lines.push(Line::styled(t("D unbinds it", "D 解除绑定"), theme.dim()));
    lines
}

/// A client connection as the broker lists it.
fn connection_lines<'a>(app: &App, id: crate::events::ConnectionId) -> Vec<Line<'a>> {
    let lang = app.options.lang;
    let t = |en: &'static str, zh: &'static str| tr(lang, en, zh);
    let Some(c) = app.model.topology.connections.iter().find(|c| c.id == id) else {
        return vec![Line::raw(t("connection closed", "连接已关闭"))];
    };
    let mut lines = vec![
        Line::raw(format!("{} {}", t("connection", "连接"), c.name)),
        Line::raw(match lang {
            Lang::En => format!("from {}  user {}", c.peer, c.user),
            Lang::Zh => format!("来自 {}  用户 {}", c.peer, c.user),
        }),
    ];
    if let Some(name) = &c.client.connection_name {
        lines.push(Line::raw(format!("connection_name {name}")));
    }
    // The service and its host, or that the host is not known (nothing the broker showed
    // names it).
    let whose = app.model.lens.connection_whose(id);
    if let Some(service) = &whose.service {
        let host = whose.host.as_deref();
        lines.push(Line::raw(match (lang, host) {
            (Lang::En, Some(h)) => format!("service {service}  host {h}"),
            (Lang::En, None) => format!("service {service}  host unknown"),
            (Lang::Zh, Some(h)) => format!("服务 {service}  主机 {h}"),
            (Lang::Zh, None) => format!("服务 {service}  主机未知"),
        }));
    }
    if let Some(product) = &c.client.product {
        lines.push(Line::raw(format!("{} {product}", t("client", "客户端"))));
    }
    lines
}

fn node_lines<'a>(app: &App, theme: Theme) -> Vec<Line<'a>> {
    let lang = app.options.lang;
    let t = |en: &'static str, zh: &'static str| tr(lang, en, zh);
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
                Line::raw(format!(
                    "{}{}",
                    t("routing key  ", "路由键       "),
                    b.routing_key
                )),
                Line::raw(t(
                    "The default exchange routes a message to the queue its routing key \
                     names; every queue is bound to it by its name, and that binding cannot \
                     be deleted. Drawn because messages went this way.",
                    "默认交换器把消息路由到路由键所指名的队列；每个队列都以自己的名字绑定到它，\
                     这个绑定不能删除。画出它，是因为有消息走了这条路。",
                )),
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
                format!("{} {}  -> {x}", t("publisher", "发布者"), p.label),
                theme.title(),
            )];
            lines.extend(connection_lines(app, p.connection));
            return lines;
        }
        GraphItem::Consumer(i) => {
            let c = &app.graph.layout.consumers[i];
            let queue = &app.graph.layout.queues[c.queue].name;
            let mut lines = vec![Line::styled(
                format!("{} {}  <- {queue}", t("consumer", "消费者"), c.label),
                theme.title(),
            )];
            for s in topology
                .consumers
                .iter()
                .filter(|s| s.queue == *queue && s.connection == c.connection)
            {
                let ack = if s.ack {
                    t("manual ack", "手动确认")
                } else {
                    t("no-ack", "自动确认（no-ack）")
                };
                let prefetch = match (lang, s.prefetch) {
                    (Lang::En, 0) => "no prefetch limit".to_string(),
                    (Lang::En, n) => format!("prefetch {n}"),
                    (Lang::Zh, 0) => "预取不限".to_string(),
                    (Lang::Zh, n) => format!("预取 {n}"),
                };
                lines.push(Line::raw(match lang {
                    Lang::En => {
                        format!("  tag {}  channel {}  {ack}  {prefetch}", s.tag, s.channel)
                    }
                    Lang::Zh => format!("  标签 {}  信道 {}  {ack}  {prefetch}", s.tag, s.channel),
                }));
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
        let shown = if x.name.is_empty() {
            "(default)"
        } else {
            &x.name
        };
        lines.push(Line::styled(
            format!("{} {shown}", t("exchange", "交换器")),
            theme.title(),
        ));
        lines.push(Line::raw(format!(
            "{} {}  {}",
            t("type", "类型"),
            x.kind,
            flags(
                lang,
                &[
                    ("durable", "持久", x.durable),
                    ("auto-delete", "自动删除", x.auto_delete),
                    ("internal", "内部", x.internal),
                ],
            )
        )));
        for (k, v) in &x.arguments {
            lines.push(Line::raw(format!("  {k} = {v}")));
        }
        lines.push(rate_line(
            app.model.exchange_rates.get(name.as_str()),
            lang,
            theme,
        ));
        lines.push(Line::styled(t("bindings", "绑定"), theme.title()));
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
        lines.push(Line::styled(
            format!("{} {}", t("queue", "队列"), s.name),
            theme.title(),
        ));
        // In OpenStack words: whose it is and what it is for.
        if let Some(purpose) = app.model.lens.purpose(&s.name, lang) {
            lines.push(Line::raw(purpose));
        }
        lines.push(Line::raw(flags(
            lang,
            &[
                ("durable", "持久", s.durable),
                ("exclusive", "排他", s.exclusive),
                ("auto-delete", "自动删除", s.auto_delete),
            ],
        )));
        if s.is_quorum() {
            lines.extend(quorum_lines(s, lang));
        }
        lines.extend(super::placement::placement_lines(
            s,
            &app.model.nodes,
            lang,
            theme,
        ));
        lines.extend(super::stream::stream_lines(s, app, lang));
        lines.push(Line::raw(match lang {
            Lang::En => format!(
                "{} ready  {} unacked  {} consumers",
                s.ready, s.unacked, s.consumers
            ),
            Lang::Zh => format!(
                "就绪 {}  未确认 {}  消费者 {}",
                s.ready, s.unacked, s.consumers
            ),
        }));
        lines.push(rate_line(
            app.model.queue_rates.get(s.name.as_str()),
            lang,
            theme,
        ));
        for (k, v) in &s.arguments {
            lines.push(Line::raw(format!("  {k} = {v}")));
        }
        lines.push(Line::styled(t("bound from", "绑定来源"), theme.title()));
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

/// What sets a quorum queue apart: its delivery limit, and what a cluster would do with it.
/// The embedded broker is one node, so the queue has one member, which leads and is its own
/// majority.
fn quorum_lines<'a>(q: &crate::broker::QueueSnapshot, lang: Lang) -> Vec<Line<'a>> {
    use crate::topology::DeliveryLimit;
    let group: Option<usize> = q
        .argument("x-quorum-initial-group-size")
        .and_then(|n| n.parse().ok());
    // The broker's word first: from RabbitMQ 4.0 a queue without the argument has a limit.
    let limit = match q.delivery_limit {
        DeliveryLimit::Unknown => match q.argument("x-delivery-limit") {
            Some(n) => match n.parse::<i64>() {
                Ok(n) if n < 0 => DeliveryLimit::Unlimited,
                _ => DeliveryLimit::Limit(n.parse().unwrap_or_default()),
            },
            None => DeliveryLimit::Unknown,
        },
        known => known,
    };
    let limit = match (limit, lang) {
        (DeliveryLimit::Limit(n), Lang::En) => {
            format!("delivery limit {n} (then dead-letter or drop)")
        }
        (DeliveryLimit::Limit(n), Lang::Zh) => format!("投递上限 {n}（超过则死信或丢弃）"),
        (DeliveryLimit::Unlimited, Lang::En) => {
            "no delivery limit (redeliveries only counted)".to_string()
        }
        (DeliveryLimit::Unlimited, Lang::Zh) => "无投递上限（只计数重投）".to_string(),
        (DeliveryLimit::Unknown, Lang::En) => {
            "delivery limit: broker default (20 from 4.0, none before)".to_string()
        }
        (DeliveryLimit::Unknown, Lang::Zh) => {
            "投递上限：代理默认（4.0 起为 20，之前无）".to_string()
        }
    };
    let cluster = match (group, lang) {
        (Some(n), Lang::En) => format!("cluster: {n} members, 1 leader, majority {}", n / 2 + 1),
        (Some(n), Lang::Zh) => format!("集群：{n} 个成员，1 个领导者，多数 {}", n / 2 + 1),
        (None, Lang::En) => "cluster: members on several nodes, 1 leader, majority".to_string(),
        (None, Lang::Zh) => "集群：成员在多个节点，1 个领导者，多数同意".to_string(),
    };
    let here = match lang {
        Lang::En => "here: 1 node, leader and only member, majority 1",
        Lang::Zh => "此处：1 个节点，既是领导者也是唯一成员，多数 1",
    };
    let mut lines = vec![
        Line::raw(match lang {
            Lang::En => "quorum queue: counts redeliveries (x-delivery-count)",
            Lang::Zh => "仲裁队列：计数重投（x-delivery-count）",
        }),
        Line::raw(format!("  {limit}")),
    ];
    // A RabbitMQ cluster names its members: the placement lines tell them instead.
    if q.members.is_empty() {
        lines.push(Line::raw(format!("  {cluster}")));
        lines.push(Line::raw(format!("  {here}")));
    }
    lines
}

/// Named flags in a line: `durable true  exclusive false`, or `持久 是  排他 否`.
fn flags(lang: Lang, named: &[(&str, &str, bool)]) -> String {
    let said: Vec<String> = named
        .iter()
        .map(|&(en, zh, on)| match (lang, on) {
            (Lang::En, on) => format!("{en} {on}"),
            (Lang::Zh, true) => format!("{zh} 是"),
            (Lang::Zh, false) => format!("{zh} 否"),
        })
        .collect();
    said.join("  ")
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
