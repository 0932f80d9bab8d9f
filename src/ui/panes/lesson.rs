//! The lesson pane: the narration of the current step, the prediction the student ticks, and,
//! once the step ran, what the broker did against what the lesson expected.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

use crate::lesson::Lang;
use crate::ui::player::{Phase, Player};
use crate::ui::theme::Theme;

pub struct LessonPane<'a> {
    pub player: &'a Player,
    pub theme: Theme,
}

/// The screen's own words, in the lesson's language.
fn tr(lang: Lang, en: &'static str, zh: &'static str) -> &'static str {
    match lang {
        Lang::En => en,
        Lang::Zh => zh,
    }
}

/// Splits `text` on backticks: names between them are highlighted.
fn highlighted<'a>(text: &str, theme: Theme) -> Line<'a> {
    let spans: Vec<Span> = text
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                Span::styled(part.to_string(), theme.key())
            } else {
                Span::raw(part.to_string())
            }
        })
        .collect();
    Line::from(spans)
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

/// The pane's lines, for the current phase.
pub fn lesson_lines<'a>(player: &Player, theme: Theme) -> Vec<Line<'a>> {
    let lang = player.lang;
    let lesson = &player.lesson;
    let mut lines = vec![Line::styled(
        lesson.title.get(lang).to_string(),
        theme.title(),
    )];
    let Some(step) = player.current() else {
        return lines;
    };
    if let Some(title) = &step.title {
        lines.push(Line::styled(title.get(lang).to_string(), theme.title()));
    }
    lines.push(Line::raw(""));
    for paragraph in paragraphs(step.say.get(lang)) {
        lines.push(highlighted(&paragraph, theme));
        lines.push(Line::raw(""));
    }

    if let Some(predict) = &step.predict {
        lines.push(Line::styled(tr(lang, "Predict", "预测"), theme.title()));
        for paragraph in paragraphs(predict.question.get(lang)) {
            lines.push(highlighted(&paragraph, theme));
        }
        let ticks: Vec<Span> = predict
            .choices
            .iter()
            .enumerate()
            .flat_map(|(i, choice)| {
                let mark = if player.ticked.get(i).copied().unwrap_or(false) {
                    "[x]"
                } else {
                    "[ ]"
                };
                [
                    Span::raw(format!("{mark} {} ", i + 1)),
                    Span::styled(choice.clone(), theme.queue()),
                    Span::raw("   "),
                ]
            })
            .collect();
        lines.push(Line::from(ticks));
    }

    match &player.phase {
        Phase::Preparing => lines.push(Line::styled(
            tr(lang, "Setting up the broker…", "正在准备 broker…"),
            theme.dim(),
        )),
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
            lines.push(Line::styled(hint, theme.dim()));
        }
        Phase::Running => lines.push(Line::styled(
            tr(lang, "Running on the broker…", "正在 broker 上运行…"),
            theme.dim(),
        )),
        Phase::Ran(outcome) => {
            if let Some(right) = player.prediction_right() {
                let reached = if outcome.routed.is_empty() {
                    tr(lang, "no queue", "没有队列").to_string()
                } else {
                    outcome.routed.join(", ")
                };
                let (verdict, style) = if right {
                    (tr(lang, "Right!", "答对了！"), theme.good())
                } else {
                    (tr(lang, "Not quite.", "不太对。"), theme.bad())
                };
                lines.push(Line::from(vec![
                    Span::styled(format!("{verdict} "), style),
                    Span::raw(format!(
                        "{} {reached}",
                        tr(lang, "The messages reached:", "消息到达了：")
                    )),
                ]));
            }
            for check in &outcome.checks {
                let (mark, style) = if check.ok {
                    ("✓", theme.good())
                } else {
                    ("✗", theme.bad())
                };
                lines.push(Line::from(vec![
                    Span::styled(format!("{mark} {} ", check.key), style),
                    Span::raw(check.detail.clone()),
                ]));
            }
            let hint = if player.step + 1 < player.steps() {
                tr(lang, "n: next step", "n：下一步")
            } else {
                tr(lang, "n: finish the lesson", "n：结束本课")
            };
            lines.push(Line::styled(hint, theme.dim()));
        }
        Phase::Finished => lines.push(Line::styled(
            tr(
                lang,
                "Lesson complete. R starts it again, L picks another.",
                "本课完成。按 R 重新开始，按 L 选择其他课程。",
            ),
            theme.good(),
        )),
        Phase::Failed(why) => {
            lines.push(Line::styled(
                tr(lang, "The step could not run:", "这一步无法运行："),
                theme.bad(),
            ));
            lines.push(Line::raw(why.clone()));
        }
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        tr(
            lang,
            "n next  N back  R restart  A auto-play  L lessons  X leave",
            "n 下一步  N 上一步  R 重来  A 自动播放  L 课程列表  X 退出课程",
        ),
        theme.dim(),
    ));
    lines
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
        let block = super::pane_block(title, false, self.theme);
        Paragraph::new(lesson_lines(self.player, self.theme))
            .block(block)
            .wrap(Wrap { trim: false })
            .render(area, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::paragraphs;

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
