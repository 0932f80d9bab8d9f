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

/// A form field's label in the view's language. Fields are known by their English label
/// (the form reads its values by it); Chinese screens show this instead.
pub fn field_label(lang: Lang, label: &str) -> String {
    if lang == Lang::En {
        return label.to_string();
    }
    let zh = match label {
        "exchange" => "交换器",
        "routing key" => "路由键",
        "headers (k=v, ...)" => "消息头 (k=v, ...)",
        "persistent" => "持久化消息 (persistent)",
        "expiration (ms)" => "过期时间 (expiration, 毫秒)",
        "content type" => "内容类型 (content type)",
        "reply to" => "回复队列 (reply to)",
        "correlation id" => "关联 id (correlation id)",
        "body" => "消息体",
        "name" => "名称",
        "type (direct, fanout, topic, headers)" => "类型 (direct, fanout, topic, headers)",
        "durable" => "持久 (durable)",
        "auto-delete" => "自动删除 (auto-delete)",
        "internal" => "内部 (internal)",
        "alternate-exchange" => "备用交换器 (alternate-exchange)",
        "name (empty: server-named)" => "名称（留空则由服务器命名）",
        "exclusive" => "排他 (exclusive)",
        "queue" => "队列",
        "binding key" => "绑定键",
        "more arguments (k=v, ...)" => "更多参数 (k=v, ...)",
        // Queue arguments keep RabbitMQ's own names.
        other => return other.to_string(),
    };
    zh.to_string()
}

/// A form's title in the view's language.
pub fn form_title(lang: Lang, title: &str) -> String {
    if lang == Lang::En {
        return title.to_string();
    }
    let zh = match title.trim() {
        "publish a message" => "发布一条消息",
        "declare an exchange" => "声明交换器",
        "declare a queue" => "声明队列",
        "bind a queue to an exchange" => "把队列绑定到交换器",
        _ => return title.to_string(),
    };
    format!(" {zh} ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_field_has_chinese_words() {
        use crate::ui::form::{Form, FormKind};
        for kind in [
            FormKind::Publish,
            FormKind::DeclareExchange,
            FormKind::DeclareQueue,
            FormKind::Bind,
        ] {
            let form = Form::new(kind, None, None);
            assert_ne!(form_title(Lang::Zh, form.title()), form.title(), "{kind:?}");
            for field in &form.fields {
                let zh = field_label(Lang::Zh, field.label);
                let arguments = field.label.starts_with("x-");
                assert!(
                    arguments || zh != field.label,
                    "{kind:?}: `{}` has no Chinese label",
                    field.label
                );
            }
        }
    }
}
