//! The screen's own words in the view's language. Lessons carry their text in both languages;
//! everything else the screen says (key bar, help, menu, status line, forms, confirmations) is
//! chosen here, so a Chinese screen is Chinese throughout.
//!
//! Terms follow one glossary: exchange 交换器, queue 队列, binding 绑定, routing key 路由键,
//! declare 声明 (never used for "claim"), publish 发布, consume 消费, acknowledge 确认,
//! nack 否定确认, purge 清空, topic exchange 主题交换器.

use crate::lesson::Lang;

/// `en` or `zh`, by the view's language.
pub fn tr(lang: Lang, en: &'static str, zh: &'static str) -> &'static str {
    match lang {
        Lang::En => en,
        Lang::Zh => zh,
    }
}
