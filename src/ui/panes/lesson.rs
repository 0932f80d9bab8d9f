//! The lesson pane: the narration of the current step, the prediction the student ticks, and,
//! once the step ran, what the broker did against what the lesson expected.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Widget};
use unicode_width::UnicodeWidthStr;

use crate::lesson::{Asked, Lang, Predict};
use crate::ui::player::{Phase, Player};
use crate::ui::text::{truncate_words, wrap};
use crate::ui::theme::Theme;
use crate::ui::words::tr;

pub struct LessonPane<'a> {
    pub player: &'a Player,
    pub theme: Theme,
}

/// Splits `text` on backticks: names between them are highlighted.
fn highlighted(text: &str, theme: Theme) -> Vec<(String, Style)> {
    text.split('`')
        .enumerate()
        .map(|(i, part)| {
            let style = if i % 2 == 1 {
                theme.key()
            } else {
                Style::default()
            };
            (part.to_string(), style)
        })
        .collect()
}

/// Lines of the pane, each wrapped to its width as it is added.
struct Page<'a> {
    width: usize,
    lines: Vec<Line<'a>>,
}

impl<'a> Page<'a> {
    fn push(&mut self, spans: Vec<(String, Style)>) {
        self.lines.extend(wrap(&spans, self.width));
    }

    fn text(&mut self, text: impl Into<String>, style: Style) {
        self.push(vec![(text.into(), style)]);
    }

    /// Key hints two spaces apart, as many a line as fit: a hint (`J go to step`) is never
    /// split between lines, and one wider than the pane is cut after a word.
    fn hints(&mut self, hints: &str, style: Style) {
        let mut line = String::new();
        for hint in hints.split("  ") {
            if !line.is_empty() && line.width() + 2 + hint.width() > self.width {
                self.lines
                    .push(Line::styled(std::mem::take(&mut line), style));
            }
            if !line.is_empty() {
                line.push_str("  ");
            }
            line.push_str(&truncate_words(hint, self.width));
        }
        self.lines.push(Line::styled(line, style));
    }

    fn blank(&mut self) {
        self.lines.push(Line::raw(""));
    }
}

/// Reflows a narration the way a reader expects: lines of one paragraph run together (with a
/// space between two words, none between Chinese characters), blank lines separate
/// paragraphs. The pane then wraps by display width.
pub fn paragraphs(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        let joins_words = current.chars().last().is_some_and(|c| c.is_ascii())
            && line.chars().next().is_some_and(|c| c.is_ascii());
        if joins_words {
            current.push(' ');
        }
        current.push_str(line);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The answer to a prediction, in the student's words: where the messages went, who got
/// them, or how many wait.
fn answer_text(predict: &Predict, truth: &[String], lang: Lang) -> String {
    let quoted: Vec<String> = truth.iter().map(|t| format!("`{t}`")).collect();
    let listed = match (lang, quoted.split_last()) {
        (Lang::En, Some((last, rest))) if !rest.is_empty() => {
            format!("{} and {last}", rest.join(", "))
        }
        _ => quoted.join(tr(lang, ", ", "、")),
    };
    match (predict.about, lang, truth.is_empty()) {
        (Asked::Queues, Lang::En, true) => "The messages reached no queue.".to_string(),
        (Asked::Queues, Lang::En, false) => format!("The messages reached {listed}."),
        (Asked::Queues, Lang::Zh, true) => "消息没有到达任何队列。".to_string(),
        (Asked::Queues, Lang::Zh, false) => format!("消息到达了 {listed}。"),
        (Asked::Consumers, Lang::En, true) => "No consumer received a message.".to_string(),
        (Asked::Consumers, Lang::En, false) => format!("Messages went to {listed}."),
        (Asked::Consumers, Lang::Zh, true) => "没有消费者收到消息。".to_string(),
        (Asked::Consumers, Lang::Zh, false) => format!("消息交给了 {listed}。"),
        (Asked::Ready, _, _) => {
            let queue = predict.queue.as_deref().unwrap_or("");
            let count = truth.first().map_or("?", String::as_str);
            match lang {
                Lang::En => format!("`{queue}` has {count} ready."),
                Lang::Zh => format!("`{queue}` 有 {count} 条就绪消息。"),
            }
        }
    }
}

/// A check's detail as a sentence: capital first letter, closing full stop.
fn sentence(detail: &str) -> String {
    let mut chars = detail.chars();
    let mut text: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !text.ends_with('.') {
        text.push('.');
    }
    text
}

/// The pane's lines for the current phase, wrapped to `width` columns.
pub fn lesson_lines<'a>(player: &Player, theme: Theme, width: usize) -> Vec<Line<'a>> {
    let lang = player.lang;
    let mut page = Page {
        width,
        lines: Vec::new(),
    };
    page.text(player.lesson.title.get(lang), theme.title());
    let Some(step) = player.current() else {
        return page.lines;
    };
    if let Some(title) = &step.title {
        page.text(title.get(lang), theme.title());
    }
    if let Some(vhost) = &step.vhost {
        let text = match lang {
            Lang::En => format!("This step runs in vhost `{vhost}` (v switches the view)."),
            Lang::Zh => format!("这一步在 vhost `{vhost}` 中运行（按 v 切换界面）。"),
        };
        page.push(highlighted(&text, theme));
    }
    page.blank();
    for paragraph in paragraphs(step.say.get(lang)) {
        page.push(highlighted(&paragraph, theme));
        page.blank();
    }

    if let Some(predict) = &step.predict {
        page.text(tr(lang, "Predict", "预测"), theme.title());
        for paragraph in paragraphs(predict.question.get(lang)) {
            page.push(highlighted(&paragraph, theme));
        }
        // One choice a line: queue names can be long (reply_<32 hex digits>).
        for (i, choice) in predict.choices.iter().enumerate() {
            let mark = if player.ticked.get(i).copied().unwrap_or(false) {
                "[x]"
            } else {
                "[ ]"
            };
            page.push(vec![
                (format!("{mark} {} ", i + 1), Style::default()),
                (choice.clone(), theme.queue()),
            ]);
        }
    }

    match &player.phase {
        Phase::Preparing => page.text(
            tr(lang, "Setting up the broker…", "正在准备 broker…"),
            theme.dim(),
        ),
        Phase::Reading => {
            let hint = if step.predict.is_some() {
                tr(
                    lang,
                    "Tick your answer with 1-9, then n runs the step.",
                    "用 1-9 勾选答案，然后按 n 运行这一步。",
                )
            } else {
                tr(lang, "n runs the step.", "按 n 运行这一步。")
            };
            page.text(hint, theme.dim());
        }
        Phase::Running => page.text(
            tr(lang, "Running on the broker…", "正在 broker 上运行…"),
            theme.dim(),
        ),
        Phase::Ran(outcome) => {
            if let Some(predict) = &step.predict {
                let answer = answer_text(predict, &outcome.truth, lang);
                let mut line = Vec::new();
                // Under auto-play nobody ticked: give the answer without judging it.
                if let (true, Some(right)) = (player.answered(), player.prediction_right()) {
                    let (verdict, style) = if right {
                        (tr(lang, "Right!", "答对了！"), theme.good())
                    } else {
                        (tr(lang, "Not quite.", "不太对。"), theme.bad())
                    };
                    line.push((format!("{verdict} "), style));
                }
                line.extend(highlighted(&answer, theme));
                page.push(line);
                page.blank();
            }
            if let Some(explain) = player.explanation() {
                for paragraph in paragraphs(explain) {
                    page.push(highlighted(&paragraph, theme));
                    page.blank();
                }
            }
            for check in &outcome.checks {
                let (mark, style) = if check.ok {
                    ("✓", theme.good())
                } else {
                    ("✗", theme.bad())
                };
                let mut line = vec![(format!("{mark} "), style)];
                let detail = match lang {
                    Lang::Zh if !check.detail_zh.is_empty() => format!("{}。", check.detail_zh),
                    _ => sentence(&check.detail),
                };
                line.extend(highlighted(&detail, theme));
                page.push(line);
            }
            let hint = if player.step + 1 < player.steps() {
                tr(lang, "n: next step", "n：下一步")
            } else {
                tr(lang, "n: finish the lesson", "n：结束本课")
            };
            page.text(hint, theme.dim());
        }
        Phase::Finished => page.text(
            tr(
                lang,
                "Lesson complete. R starts it again, L picks another.",
                "本课完成。按 R 重新开始，按 L 选择其他课程。",
            ),
            theme.good(),
        ),
        Phase::Failed(why) => {
            page.text(
                tr(lang, "The step could not run:", "这一步无法运行："),
                theme.bad(),
            );
            page.text(why.clone(), Style::default());
        }
    }
    page.blank();
    if let Some(typed) = &player.jump {
        page.text(
            format!(
                "{} {typed}▏ (1-{}, Enter)",
                tr(lang, "go to step", "跳到第几步"),
                player.steps()
            ),
            theme.title(),
        );
    }
    page.hints(
        tr(
            lang,
            "n next  N back  J go to step  R restart  A auto-play  L lessons  X leave",
            "n 下一步  N 上一步  J 跳到某步  R 重来  A 自动播放  L 课程列表  X 退出课程",
        ),
        theme.dim(),
    );
    page.lines
}

impl Widget for &LessonPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let player = self.player;
        let lang = player.lang;
        let (step, steps) = (player.step + 1, player.steps());
        let mut title = match lang {
            Lang::En => format!(" lesson · step {step} of {steps} "),
            Lang::Zh => format!(" 课程 · 第 {step}/{steps} 步 "),
        };
        if player.autoplay {
            title.push_str(tr(lang, "· auto-play ", "· 自动播放 "));
        }
        let mut block = super::pane_block(title, false, self.theme);
        let inner = block.inner(area);
        let lines = lesson_lines(player, self.theme, inner.width as usize);
        let hidden = lines.len().saturating_sub(inner.height as usize) as u16;
        let scroll = player.scroll.min(hidden);
        if hidden > 0 {
            let more = match (scroll > 0, scroll < hidden) {
                (true, true) => tr(lang, " [ ↑ more ↓ ] ", " [ ↑ 更多 ↓ ] "),
                (true, false) => tr(lang, " [ ↑ more ] ", " [ ↑ 更多 ] "),
                _ => tr(lang, " [ more ↓ ] ", " [ 更多 ↓ ] "),
            };
            block = block.title_bottom(more);
        }
        Paragraph::new(lines)
            .block(block)
            .scroll((scroll, 0))
            .render(area, buf);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::{lesson_lines, paragraphs};
    use crate::lesson::Lang;
    use crate::ui::player::{Player, StepOutcome};
    use crate::ui::theme::Theme;

    const LESSON: &str = "id: t\norder: 1\ntitle: { en: T, zh: T }\nsteps:\n  - say: { en: Who?, zh: 谁？ }\n    \
                          predict:\n      about: consumers\n      question: { en: Which worker?, zh: 哪个？ }\n      \
                          choices: [a, b]\n      answer: [b]\n    \
                          explain: { en: Only b had room., zh: 只有 b 有空位。 }\n    \
                          do:\n      - consume: { queue: q, consumer: a }\n      \
                          - consume: { queue: q, consumer: b }\n";

    /// The pane's text once the step ran, with `b` the right answer and nothing ticked.
    fn ran(autoplay: bool) -> (String, String) {
        let lesson = crate::lesson::load_str(LESSON, std::path::Path::new("t.yaml")).unwrap();
        let now = Instant::now();
        let (mut player, _) = Player::new(Arc::new(lesson), Lang::En, now);
        player.prepared(Ok(()), now);
        let text = |player: &Player| {
            let theme = Theme {
                monochrome: true,
                high_contrast: false,
            };
            lesson_lines(player, theme, 60)
                .iter()
                .map(|l| l.to_string() + "\n")
                .collect::<String>()
        };
        let before = text(&player);
        player.autoplay = autoplay;
        player.next(now);
        let outcome = StepOutcome {
            truth: vec!["b".into()],
            ..StepOutcome::default()
        };
        player.ran(Ok(outcome), now);
        (before, text(&player))
    }

    #[test]
    fn the_explanation_comes_after_the_step_ran() {
        let (before, after) = ran(false);
        assert!(!before.contains("Only b had room."), "{before}");
        assert!(after.contains("Only b had room."), "{after}");
    }

    #[test]
    fn a_prediction_nobody_made_is_not_judged() {
        let (_, student) = ran(false);
        assert!(
            student.contains("Not quite. Messages went to b."),
            "{student}"
        );
        let (_, autoplay) = ran(true);
        assert!(!autoplay.contains("Not quite."), "{autoplay}");
        assert!(autoplay.contains("Messages went to b."), "{autoplay}");
    }

    #[test]
    fn narration_reflows_into_paragraphs() {
        let en = "A topic exchange splits\nthe key into words.\n\nNext paragraph.\n";
        assert_eq!(
            paragraphs(en),
            [
                "A topic exchange splits the key into words.",
                "Next paragraph."
            ]
        );
        // Chinese lines join without a space; an ASCII name after Chinese too.
        assert_eq!(
            paragraphs("主题交换器把\n路由键切成单词。"),
            ["主题交换器把路由键切成单词。"]
        );
    }
}
