//! Findings as the text an operator reads (each wrapped to 100 columns, names from the broker
//! made printable) or as JSON for scripts.

use super::{Finding, Level};
use crate::terminal::printable;

/// Where lines of the text report are wrapped.
const WIDTH: usize = 100;

/// `2 critical, 1 warning, 3 info`, or `no findings`.
pub fn tally(findings: &[Finding]) -> String {
    let mut parts = Vec::new();
    for level in [Level::Critical, Level::Warning, Level::Info] {
        let n = findings.iter().filter(|f| f.level == level).count();
        if n == 0 {
            continue;
        }
        parts.push(match level {
            Level::Warning if n != 1 => format!("{n} warnings"),
            _ => format!("{n} {}", level.word()),
        });
    }
    if parts.is_empty() {
        "no findings".to_string()
    } else {
        parts.join(", ")
    }
}

/// The text report: a heading naming what was examined (`target`), then each finding.
pub fn text(target: &str, findings: &[Finding]) -> String {
    let mut out = format!("{}: {}\n", printable(target), tally(findings));
    for f in findings {
        out.push('\n');
        let place = match &f.vhost {
            Some(vhost) => format!(" (vhost '{}')", printable(vhost)),
            None => String::new(),
        };
        out.push_str(&format!(
            "{:<8}  {}{place}\n",
            f.level.word().to_uppercase(),
            f.check
        ));
        for (label, body) in [("seen", &f.seen), ("why", &f.why), ("fix", &f.fix)] {
            wrap(&mut out, &format!("  {label:<5}"), &printable(body));
        }
    }
    out
}

/// The JSON report: what was examined, the tally by level, the findings.
pub fn json(target: &str, findings: &[Finding]) -> serde_json::Value {
    let at = |level: Level| findings.iter().filter(|f| f.level == level).count();
    serde_json::json!({
        "target": target,
        "counts": {
            "critical": at(Level::Critical),
            "warning": at(Level::Warning),
            "info": at(Level::Info),
        },
        "findings": findings,
    })
}

/// `body` after `label`, its words wrapped at [`WIDTH`] columns under the first one.
fn wrap(out: &mut String, label: &str, body: &str) {
    let indent = " ".repeat(label.chars().count());
    let mut line = label.to_string();
    let mut empty = true;
    for word in body.split_whitespace() {
        if !empty && line.chars().count() + 1 + word.chars().count() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = indent.clone();
        }
        line.push(' ');
        line.push_str(word);
        empty = false;
    }
    out.push_str(&line);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(level: Level, vhost: Option<&str>) -> Finding {
        Finding::new(level, "queues-without-consumers", vhost)
            .seen("1 queue holding 3 messages with no consumer: 'orders\u{1b}[2J'")
            .why(
                "messages wait in a queue nobody reads; their senders get no answer, and \
                  the words go on long enough to be wrapped onto a second line",
            )
            .fix("start the service")
    }

    #[test]
    fn the_text_report_is_wrapped_and_printable() {
        let findings = [
            finding(Level::Warning, Some("nova")),
            finding(Level::Info, None),
        ];
        let text = text("amqp://guest:****@127.0.0.1:5672/nova", &findings);
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
        assert!(!text.contains('\u{1b}'));
        assert_eq!(
            text.lines().take(6).collect::<Vec<_>>(),
            [
                "amqp://guest:****@127.0.0.1:5672/nova: 1 warning, 1 info",
                "",
                "WARNING   queues-without-consumers (vhost 'nova')",
                "  seen  1 queue holding 3 messages with no consumer: 'orders\\u{1b}[2J'",
                "  why   messages wait in a queue nobody reads; their senders get no answer, \
                 and the words go on long",
                "        enough to be wrapped onto a second line",
            ]
        );
        assert!(text.contains("\nINFO      queues-without-consumers\n"));
    }

    #[test]
    fn the_json_report_counts_by_level() {
        let findings = [
            finding(Level::Warning, Some("nova")),
            finding(Level::Warning, None),
        ];
        let value = json("t", &findings);
        assert_eq!(value["counts"]["warning"], 2);
        assert_eq!(value["counts"]["critical"], 0);
        assert_eq!(value["findings"][0]["level"], "warning");
        assert_eq!(value["findings"][0]["vhost"], "nova");
        assert!(value["findings"][1].get("vhost").is_none());
        assert_eq!(tally(&findings), "2 warnings");
        assert_eq!(tally(&[]), "no findings");
    }
}
