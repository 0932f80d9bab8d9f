//! What the inspector shows of where a RabbitMQ cluster keeps a queue: its node, or a quorum
//! queue's or stream's leader and members, and what losing a node does to it. A classic queue
//! lives on one node; a replicated one goes on while a majority of its members runs.

use ratatui::text::Line;

use crate::broker::QueueSnapshot;
use crate::lesson::Lang;
use crate::topology::NodeSnapshot;
use crate::ui::theme::Theme;

/// The queue's placement lines; none when the source does not say (the embedded broker).
pub fn placement_lines<'a>(
    q: &QueueSnapshot,
    nodes: &[NodeSnapshot],
    lang: Lang,
    theme: Theme,
) -> Vec<Line<'a>> {
    let running = |name: &str| nodes.iter().find(|n| n.name == name).map(|n| n.running);
    let zh = lang == Lang::Zh;
    let mut lines = Vec::new();
    if q.members.is_empty() {
        let Some(node) = q.node.as_deref() else {
            return lines;
        };
        let down = running(node) == Some(false) || q.state.as_deref() == Some("down");
        lines.push(match (down, zh) {
            (false, false) => Line::raw(format!("node {node}")),
            (false, true) => Line::raw(format!("节点 {node}")),
            (true, false) => Line::styled(
                format!("node {node} is down: the queue is unavailable"),
                theme.bad(),
            ),
            (true, true) => Line::styled(format!("节点 {node} 已停止：队列不可用"), theme.bad()),
        });
        // What a stop would do, while it has not happened.
        if down {
            return lines;
        }
        lines.push(Line::raw(match (q.durable, zh) {
            (true, false) => "  if it goes down: classic, gone until it returns",
            (false, false) => "  if it goes down: classic and transient, lost with it",
            (true, true) => "  节点停止时：经典队列，节点回来前不可用",
            (false, true) => "  节点停止时：经典非持久队列，随之丢失",
        }));
        return lines;
    }
    let total = q.members.len();
    let majority = total / 2 + 1;
    let online = q.online.len();
    let leader = q.leader.as_deref().unwrap_or("-");
    lines.push(Line::raw(match zh {
        false => format!("leader {leader}"),
        true => format!("领导者 {leader}"),
    }));
    // One member a line: node names are long and the inspector narrow.
    lines.push(Line::raw(match zh {
        false => format!("members, {online} of {total} online:"),
        true => format!("成员，{online}/{total} 在线："),
    }));
    for m in &q.members {
        let offline = match (q.online.contains(m), zh) {
            (true, _) => "",
            (false, false) => " offline",
            (false, true) => " 离线",
        };
        // Far behind, it counts towards the majority only once it catches up.
        match (q.behind.get(m), zh) {
            (None, _) => lines.push(Line::raw(format!("  {m}{offline}"))),
            (Some(by), false) => lines.push(Line::styled(
                format!("  {m}{offline} {by} entries behind"),
                theme.bad(),
            )),
            (Some(by), true) => lines.push(Line::styled(
                format!("  {m}{offline} 落后 {by} 条日志"),
                theme.bad(),
            )),
        }
    }
    // A member far behind cannot confirm new entries until it catches up.
    let caught_up = (q.online.iter())
        .filter(|m| !q.behind.contains_key(*m))
        .count();
    lines.push(if total == 1 && online == 1 {
        Line::raw(match zh {
            false => "  one member: if its node goes down, unavailable until it returns",
            true => "  只有一个成员：其节点停止时，回来前不可用",
        })
    } else if online >= majority && caught_up < majority {
        Line::styled(
            match zh {
                false => format!(
                    "  a majority ({majority} of {total}) online, {caught_up} caught up: new \
                     messages may wait until a member behind catches up"
                ),
                true => format!(
                    "  多数（{majority}/{total}）在线，{caught_up} 个已跟上：新消息可能要等落后的成员追上"
                ),
            },
            theme.bad(),
        )
    } else if online >= majority {
        Line::raw(match zh {
            false => format!(
                "  if a node goes down: a new leader while a majority ({majority} of {total}) lives"
            ),
            true => format!("  节点停止时：只要多数（{majority}/{total}）存活，就选出新领导者"),
        })
    } else {
        Line::styled(
            match zh {
                false => format!(
                    "  no majority ({online} of {total} online, {majority} needed): unavailable"
                ),
                true => format!("  没有多数（{online}/{total} 在线，需要 {majority}）：不可用"),
            },
            theme.bad(),
        )
    });
    lines
}
