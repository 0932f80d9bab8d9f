//! How deeply YAML text nests, found before serde_yaml reads it. libyaml's scanner walks every
//! open flow collection (`[` or `{`) for each token it reads, so text nested thousands deep
//! takes time quadratic in its size: a 400 KB lesson of `[[[...]]]` loaded for minutes. This
//! reads the events with the same parser and stops at the first list or mapping deeper than the
//! limit, so the walks stay short.

use std::mem::MaybeUninit;

use unsafe_libyaml::{
    yaml_event_delete, yaml_event_t, yaml_parser_delete, yaml_parser_initialize, yaml_parser_parse,
    yaml_parser_set_encoding, yaml_parser_set_input_string, yaml_parser_t, YAML_MAPPING_END_EVENT,
    YAML_MAPPING_START_EVENT, YAML_SEQUENCE_END_EVENT, YAML_SEQUENCE_START_EVENT,
    YAML_STREAM_END_EVENT, YAML_UTF8_ENCODING,
};

/// Where `text` first nests lists and mappings more than `limit` deep (1-based line and
/// column), if it does. Syntax errors are left for serde_yaml to report.
pub fn deeper_than(text: &str, limit: usize) -> Option<(usize, usize)> {
    let mut parser = Box::new(MaybeUninit::<yaml_parser_t>::uninit());
    let parser = parser.as_mut_ptr();
    // SAFETY: the parser is initialised before use and deleted once; it lives in a box that does
    // not move, and reads `text`, which outlives it. Each event is deleted after its type and
    // mark are copied out.
    unsafe {
        if yaml_parser_initialize(parser).fail {
            return None;
        }
        yaml_parser_set_encoding(parser, YAML_UTF8_ENCODING);
        yaml_parser_set_input_string(parser, text.as_ptr(), text.len() as u64);
        let mut depth = 0usize;
        let mut found = None;
        loop {
            let mut event = MaybeUninit::<yaml_event_t>::uninit();
            if yaml_parser_parse(parser, event.as_mut_ptr()).fail {
                break;
            }
            let event = event.as_mut_ptr();
            let kind = (*event).type_;
            let mark = (*event).start_mark;
            yaml_event_delete(event);
            match kind {
                YAML_SEQUENCE_START_EVENT | YAML_MAPPING_START_EVENT => {
                    depth += 1;
                    if depth > limit {
                        found = Some((mark.line as usize + 1, mark.column as usize + 1));
                        break;
                    }
                }
                YAML_SEQUENCE_END_EVENT | YAML_MAPPING_END_EVENT => {
                    depth = depth.saturating_sub(1);
                }
                YAML_STREAM_END_EVENT => break,
                _ => {}
            }
        }
        yaml_parser_delete(parser);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_collection_past_the_limit_is_named() {
        assert_eq!(deeper_than("a: [[1]]\n", 3), None);
        assert_eq!(deeper_than("a: [[1]]\n", 2), Some((1, 5)));
        assert_eq!(deeper_than("a:\n  b:\n    c: 1\n", 2), Some((3, 5)));
        let deep = format!("x: {}{}\n", "[".repeat(200_000), "]".repeat(200_000));
        assert_eq!(deeper_than(&deep, 64), Some((1, 4 + 63)));
        assert_eq!(deeper_than("a: [unclosed\n", 2), None);
    }
}
