//! Every key binding in one table: the event loop maps keys through it and the help screen
//! lists it, so the two cannot disagree.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::Action;
use super::form::FormKind;
use super::words::tr;
use crate::lesson::Lang;

pub struct KeyBinding {
    /// How the help screen writes the keys.
    pub keys: &'static str,
    pub codes: &'static [KeyCode],
    pub action: Action,
    pub help: &'static str,
    /// `help` in Chinese.
    pub zh: &'static str,
}

/// Keys that work everywhere except while typing a filter.
pub const BINDINGS: &[KeyBinding] = &[
    KeyBinding {
        keys: "q",
        codes: &[KeyCode::Char('q')],
        action: Action::Quit,
        help: "quit",
        zh: "退出",
    },
    KeyBinding {
        keys: "?",
        codes: &[KeyCode::Char('?')],
        action: Action::ToggleHelp,
        help: "show or hide this help",
        zh: "显示或隐藏本帮助",
    },
    KeyBinding {
        keys: "Tab / S-Tab",
        codes: &[KeyCode::Tab],
        action: Action::FocusNext,
        help: "focus the next pane",
        zh: "切换到下一个窗格",
    },
    KeyBinding {
        keys: "",
        codes: &[KeyCode::BackTab],
        action: Action::FocusPrev,
        help: "",
        zh: "",
    },
    KeyBinding {
        keys: "↑ k",
        codes: &[KeyCode::Up, KeyCode::Char('k')],
        action: Action::Up,
        help: "select the previous item",
        zh: "选择上一项",
    },
    KeyBinding {
        keys: "↓ j",
        codes: &[KeyCode::Down, KeyCode::Char('j')],
        action: Action::Down,
        help: "select the next item",
        zh: "选择下一项",
    },
    KeyBinding {
        keys: "← h",
        codes: &[KeyCode::Left, KeyCode::Char('h')],
        action: Action::Left,
        help: "pan left",
        zh: "向左平移",
    },
    KeyBinding {
        keys: "→ l",
        codes: &[KeyCode::Right, KeyCode::Char('l')],
        action: Action::Right,
        help: "pan right",
        zh: "向右平移",
    },
    KeyBinding {
        keys: "PgUp PgDn",
        codes: &[KeyCode::PageUp],
        action: Action::PageUp,
        help: "scroll a page (this help scrolls with ↑↓ PgUp PgDn, wheel)",
        zh: "翻页（本帮助可用 ↑↓ PgUp PgDn 或滚轮滚动）",
    },
    KeyBinding {
        keys: "",
        codes: &[KeyCode::PageDown],
        action: Action::PageDown,
        help: "",
        zh: "",
    },
    KeyBinding {
        keys: "Enter",
        codes: &[KeyCode::Enter],
        action: Action::Inspect,
        help: "inspect: details, and why a message went where it went",
        zh: "详情：查看细节，以及消息为何这样路由",
    },
    KeyBinding {
        keys: "Esc",
        codes: &[KeyCode::Esc],
        action: Action::Back,
        help: "back: close help, filter or inspector",
        zh: "返回：关闭帮助、过滤器或详情",
    },
    KeyBinding {
        keys: "z",
        codes: &[KeyCode::Char('z')],
        action: Action::ToggleZoom,
        help: "zoom: the graph takes the whole width, or gives it back",
        zh: "放大：关系图占满宽度，再按一次还原",
    },
    KeyBinding {
        keys: "o",
        codes: &[KeyCode::Char('o')],
        action: Action::CycleGrouping,
        help: "group: by OpenStack service and host, by cluster node, none",
        zh: "分组：按 OpenStack 服务和主机、按集群节点、不分组",
    },
    KeyBinding {
        keys: "space",
        codes: &[KeyCode::Char(' ')],
        action: Action::TogglePause,
        help: "pause or resume the animation",
        zh: "暂停或继续动画",
    },
    KeyBinding {
        keys: "+ -",
        codes: &[KeyCode::Char('+')],
        action: Action::Faster,
        help: "animation faster / slower",
        zh: "动画加快 / 减慢",
    },
    KeyBinding {
        keys: "",
        codes: &[KeyCode::Char('-')],
        action: Action::Slower,
        help: "",
        zh: "",
    },
    KeyBinding {
        keys: ". ,",
        codes: &[KeyCode::Char('.')],
        action: Action::StepForward,
        help: "replay: next event (even paused); back one event",
        zh: "重放：下一个事件（暂停时也可）；后退一个事件",
    },
    KeyBinding {
        keys: "",
        codes: &[KeyCode::Char(',')],
        action: Action::StepBack,
        help: "",
        zh: "",
    },
    KeyBinding {
        keys: "/",
        codes: &[KeyCode::Char('/')],
        action: Action::StartFilter,
        help: "filter the log: a regex, service: method: host: kind:",
        zh: "过滤消息日志：正则表达式，或 service: method: host: kind:",
    },
    KeyBinding {
        keys: "a",
        codes: &[KeyCode::Char('a')],
        action: Action::ToggleAllExchanges,
        help: "show or hide the default and amq.* exchanges",
        zh: "显示或隐藏默认交换器和 amq.* 交换器",
    },
    KeyBinding {
        keys: "v",
        codes: &[KeyCode::Char('v')],
        action: Action::NextVhost,
        help: "next vhost",
        zh: "下一个 vhost",
    },
    KeyBinding {
        keys: "p",
        codes: &[KeyCode::Char('p')],
        action: Action::OpenForm(FormKind::Publish),
        help: "publish a message (to the selected exchange)",
        zh: "发布一条消息（到选中的交换器）",
    },
    KeyBinding {
        keys: "e",
        codes: &[KeyCode::Char('e')],
        action: Action::OpenForm(FormKind::DeclareExchange),
        help: "declare an exchange",
        zh: "声明交换器",
    },
    KeyBinding {
        keys: "u",
        codes: &[KeyCode::Char('u')],
        action: Action::OpenForm(FormKind::DeclareQueue),
        help: "declare a queue",
        zh: "声明队列",
    },
    KeyBinding {
        keys: "b",
        codes: &[KeyCode::Char('b')],
        action: Action::OpenForm(FormKind::Bind),
        help: "bind a queue to an exchange",
        zh: "把队列绑定到交换器",
    },
    KeyBinding {
        keys: "g",
        codes: &[KeyCode::Char('g')],
        action: Action::GetSelected,
        help: "get one message from the selected queue",
        zh: "从选中的队列取一条消息 (basic.get)",
    },
    KeyBinding {
        keys: "P",
        codes: &[KeyCode::Char('P')],
        action: Action::PurgeSelected,
        help: "purge the selected queue (asks first)",
        zh: "清空选中的队列（先询问）",
    },
    KeyBinding {
        keys: "D",
        codes: &[KeyCode::Char('D')],
        action: Action::DeleteSelected,
        help: "delete the selected exchange, queue or binding (asks first)",
        zh: "删除选中的交换器、队列或绑定（先询问）",
    },
    KeyBinding {
        keys: "L",
        codes: &[KeyCode::Char('L')],
        action: Action::OpenMenu,
        help: "lessons: open the menu",
        zh: "课程：打开课程菜单",
    },
    KeyBinding {
        keys: "n N",
        codes: &[KeyCode::Char('n')],
        action: Action::LessonNext,
        help: "lesson: run the step, then on; back a step (replayed)",
        zh: "课程：运行这一步并继续；后退一步（重放）",
    },
    KeyBinding {
        keys: "",
        codes: &[KeyCode::Char('N')],
        action: Action::LessonBack,
        help: "",
        zh: "",
    },
    KeyBinding {
        keys: "1-9",
        // 1 to 9: the digits without 0.
        codes: DIGITS.split_at(1).1,
        action: Action::LessonToggle(0),
        help: "lesson: tick or untick a predicted queue",
        zh: "课程：勾选或取消一个预测的队列",
    },
    KeyBinding {
        keys: "[ ]",
        codes: &[KeyCode::Char('[')],
        action: Action::LessonScrollUp,
        help: "lesson: scroll its text up / down",
        zh: "课程：上下滚动课文",
    },
    KeyBinding {
        keys: "",
        codes: &[KeyCode::Char(']')],
        action: Action::LessonScrollDown,
        help: "",
        zh: "",
    },
    KeyBinding {
        keys: "J",
        codes: &[KeyCode::Char('J')],
        action: Action::LessonJumpStart,
        help: "lesson: go to step number … (type it, then Enter)",
        zh: "课程：跳到第几步（输入数字后按 Enter）",
    },
    KeyBinding {
        keys: "R",
        codes: &[KeyCode::Char('R')],
        action: Action::LessonRestart,
        help: "lesson: start again from step 1",
        zh: "课程：从第 1 步重新开始",
    },
    KeyBinding {
        keys: "A",
        codes: &[KeyCode::Char('A')],
        action: Action::LessonAutoplay,
        help: "lesson: auto-play on or off (+ - set its speed)",
        zh: "课程：自动播放开/关（+ - 调速度）",
    },
    KeyBinding {
        keys: "X",
        codes: &[KeyCode::Char('X')],
        action: Action::LessonClose,
        help: "lesson: leave it (the broker keeps what it has)",
        zh: "课程：退出（broker 保留现有内容）",
    },
];

/// While a form is open, keys edit it; any other character is typed into the field.
pub const FORM_BINDINGS: &[KeyBinding] = &[
    KeyBinding {
        keys: "Tab ↓",
        codes: &[KeyCode::Tab, KeyCode::Down],
        action: Action::FormNextField,
        help: "next field",
        zh: "下一栏",
    },
    KeyBinding {
        keys: "S-Tab ↑",
        codes: &[KeyCode::BackTab, KeyCode::Up],
        action: Action::FormPrevField,
        help: "previous field",
        zh: "上一栏",
    },
    KeyBinding {
        keys: "y n space",
        codes: &[],
        action: Action::FormInput(' '),
        help: "on a yes/no field (durable, persistent, ...): set or flip it",
        zh: "是/否栏（durable、persistent 等）：设置或切换",
    },
    KeyBinding {
        keys: "Enter",
        codes: &[KeyCode::Enter],
        action: Action::FormSubmit,
        help: "send it to the broker",
        zh: "发送给 broker",
    },
    KeyBinding {
        keys: "Esc",
        codes: &[KeyCode::Esc],
        action: Action::Back,
        help: "cancel the form",
        zh: "取消表单",
    },
    KeyBinding {
        keys: "",
        codes: &[KeyCode::Backspace],
        action: Action::FormBackspace,
        help: "",
        zh: "",
    },
];

pub fn form_action_for(key: KeyEvent) -> Option<Action> {
    if let Some(b) = FORM_BINDINGS.iter().find(|b| b.codes.contains(&key.code)) {
        return Some(b.action.clone());
    }
    match key.code {
        KeyCode::Char(c) => Some(Action::FormInput(c)),
        _ => None,
    }
}

const DIGITS: &[KeyCode] = &[
    KeyCode::Char('0'),
    KeyCode::Char('1'),
    KeyCode::Char('2'),
    KeyCode::Char('3'),
    KeyCode::Char('4'),
    KeyCode::Char('5'),
    KeyCode::Char('6'),
    KeyCode::Char('7'),
    KeyCode::Char('8'),
    KeyCode::Char('9'),
];

/// In the lesson menu these come first; the other keys work as everywhere.
pub const MENU_BINDINGS: &[KeyBinding] = &[
    KeyBinding {
        keys: "1-9",
        codes: DIGITS,
        action: Action::MenuDigit(0),
        help: "start lesson 1-9; for 10 and up type both digits quickly",
        zh: "开始第 1-9 课；10 及以上请快速输入两位数字",
    },
    KeyBinding {
        keys: "↑↓ Enter",
        codes: &[],
        action: Action::Inspect,
        help: "choose a lesson and start it",
        zh: "选择一课并开始",
    },
];

/// A key in the lesson menu.
pub fn menu_action_for(key: KeyEvent, classroom: bool) -> Option<Action> {
    if let (true, KeyCode::Char(d)) = (DIGITS.contains(&key.code), key.code) {
        return Some(Action::MenuDigit(d.to_digit(10)?));
    }
    action_for(key, classroom)
}

/// While "are you sure?" is asked, only these keys answer it.
pub const CONFIRM_BINDINGS: &[KeyBinding] = &[
    KeyBinding {
        keys: "y Enter",
        codes: &[KeyCode::Char('y'), KeyCode::Char('Y'), KeyCode::Enter],
        action: Action::Confirm(true),
        help: "yes: delete, unbind or purge",
        zh: "是：删除、解绑或清空",
    },
    KeyBinding {
        keys: "n Esc",
        codes: &[KeyCode::Char('n'), KeyCode::Char('N'), KeyCode::Esc],
        action: Action::Confirm(false),
        help: "no: leave it as it is",
        zh: "否：保持原样",
    },
];

pub fn confirm_action_for(key: KeyEvent) -> Option<Action> {
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    CONFIRM_BINDINGS
        .iter()
        .find(|b| b.codes.contains(&key.code))
        .map(|b| b.action.clone())
}

/// The help screen's lines in the view's language: (keys, what they do); a line with no keys
/// is a section heading.
pub fn help_lines(classroom: bool, lang: Lang) -> Vec<(&'static str, &'static str)> {
    let presenter: &[KeyBinding] = if classroom { CLASSROOM_BINDINGS } else { &[] };
    let sections: [(&str, &[KeyBinding]); 5] = [
        ("", presenter),
        ("", BINDINGS),
        (
            tr(lang, "in the lesson menu", "在课程菜单中"),
            MENU_BINDINGS,
        ),
        (tr(lang, "in a form", "在表单中"), FORM_BINDINGS),
        (
            tr(lang, "when asked to confirm (D, P)", "确认时（D、P）"),
            CONFIRM_BINDINGS,
        ),
    ];
    let mut lines = Vec::new();
    for (heading, table) in sections {
        if !heading.is_empty() {
            lines.push(("", heading));
        }
        lines.extend(
            table
                .iter()
                .filter(|b| !b.keys.is_empty())
                .map(|b| (b.keys, tr(lang, b.help, b.zh))),
        );
    }
    lines
}

/// In classroom mode these come first, so a presenter's clicker drives the screen.
pub const CLASSROOM_BINDINGS: &[KeyBinding] = &[
    KeyBinding {
        keys: "space → PgDn",
        codes: &[KeyCode::Char(' '), KeyCode::Right, KeyCode::PageDown],
        action: Action::PresenterNext,
        help: "presenter: next message, explained",
        zh: "演示：下一条消息及其讲解",
    },
    KeyBinding {
        keys: "← PgUp",
        codes: &[KeyCode::Left, KeyCode::PageUp],
        action: Action::PresenterBack,
        help: "presenter: previous message",
        zh: "演示：上一条消息",
    },
];

/// The action for a key press, if it has one.
pub fn action_for(key: KeyEvent, classroom: bool) -> Option<Action> {
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    let presenter: &[KeyBinding] = if classroom { CLASSROOM_BINDINGS } else { &[] };
    let action = presenter
        .iter()
        .chain(BINDINGS)
        .find(|b| b.codes.contains(&key.code))
        .map(|b| b.action.clone())?;
    // The digit says which choice: 1 is the first.
    match (action, key.code) {
        (Action::LessonToggle(_), KeyCode::Char(d)) => {
            Some(Action::LessonToggle(d.to_digit(10)? as usize - 1))
        }
        (action, _) => Some(action),
    }
}

/// While a step number is being typed after `J`.
pub fn jump_action_for(key: KeyEvent) -> Option<Action> {
    match key.code {
        KeyCode::Esc => Some(Action::Back),
        KeyCode::Enter => Some(Action::LessonJumpGo),
        KeyCode::Backspace => Some(Action::LessonJumpBackspace),
        KeyCode::Char(c) => Some(Action::LessonJumpInput(c)),
        _ => None,
    }
}

/// While the filter is being typed, keys are text.
pub fn filter_action_for(key: KeyEvent) -> Option<Action> {
    match key.code {
        KeyCode::Esc | KeyCode::Enter => Some(Action::Back),
        KeyCode::Backspace => Some(Action::FilterBackspace),
        KeyCode::Char(c) => Some(Action::FilterInput(c)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_help_line_fits_the_help_box() {
        // The box is 76 wide: two borders and 14 columns of keys leave 60 for the text.
        for lang in [Lang::En, Lang::Zh] {
            for (keys, help) in help_lines(true, lang) {
                let width = unicode_width::UnicodeWidthStr::width(help);
                assert!(width <= 60, "'{help}' is {width} wide");
                assert!(unicode_width::UnicodeWidthStr::width(keys) <= 12, "{keys}");
            }
        }
        // Every line is said in Chinese too.
        let en = help_lines(true, Lang::En);
        let zh = help_lines(true, Lang::Zh);
        for ((_, e), (_, z)) in en.iter().zip(&zh) {
            assert_ne!(e, z, "no Chinese for '{e}'");
        }
    }

    #[test]
    fn digits_in_the_menu_are_lesson_numbers_and_ticks_elsewhere() {
        let key = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
        assert_eq!(menu_action_for(key('0'), false), Some(Action::MenuDigit(0)));
        assert_eq!(menu_action_for(key('7'), false), Some(Action::MenuDigit(7)));
        assert_eq!(menu_action_for(key('q'), false), Some(Action::Quit));
        assert_eq!(action_for(key('7'), false), Some(Action::LessonToggle(6)));
        assert_eq!(confirm_action_for(key('y')), Some(Action::Confirm(true)));
        assert_eq!(confirm_action_for(key('D')), None, "only yes or no answers");
        let esc = KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE);
        assert_eq!(confirm_action_for(esc), Some(Action::Confirm(false)));
    }
}
