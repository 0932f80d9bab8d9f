//! How deep a frame's field tables nest, found without recursion, before amq-protocol (whose
//! parser recurses once per level) sees the frame.
//!
//! RabbitMQ parses field tables in Erlang and takes thousands of levels. Here every nested
//! value is parsed, cloned, compared, encoded, formatted and dropped by recursive code, each
//! level costing stack, so a frame of a few kilobytes could overflow a thread's stack and
//! abort the whole broker. A client's tables and arrays may therefore nest at most
//! [`MAX_FIELD_DEPTH`] levels; a frame nesting deeper is refused as undecodable, as RabbitMQ
//! refuses a field table it cannot parse.

/// The deepest nesting of field tables and arrays accepted from a client: a table is level 1,
/// a table or array inside it level 2, and so on. Far more than any client uses; every path a
/// value this deep takes through the broker and the view fits in the smallest stack the
/// program runs on (a test checks it).
pub const MAX_FIELD_DEPTH: usize = 100;

// Headers the broker accepts are written out whole in events and the view.
const _: () = assert!(MAX_FIELD_DEPTH <= crate::broker::exchange::SHOWN_DEPTH);

/// What comes before a field table in a method's arguments.
#[derive(Clone, Copy)]
enum Field {
    Octet,
    Short,
    ShortString,
}

use Field::*;

/// The arguments before the one field table of each method that has one (class, method).
fn before_table(class: u16, method: u16) -> Option<&'static [Field]> {
    Some(match (class, method) {
        // connection.start: version major and minor, server properties
        (10, 10) => &[Octet, Octet],
        // connection.start-ok: client properties first
        (10, 11) => &[],
        // exchange.declare: reserved, exchange, type, bits
        (40, 10) => &[Short, ShortString, ShortString, Octet],
        // exchange.bind, exchange.unbind: reserved, destination, source, routing key, no-wait
        (40, 30) | (40, 40) => &[Short, ShortString, ShortString, ShortString, Octet],
        // queue.declare: reserved, queue, bits
        (50, 10) => &[Short, ShortString, Octet],
        // queue.bind: reserved, queue, exchange, routing key, no-wait
        (50, 20) => &[Short, ShortString, ShortString, ShortString, Octet],
        // queue.unbind: reserved, queue, exchange, routing key
        (50, 50) => &[Short, ShortString, ShortString, ShortString],
        // basic.consume: reserved, queue, consumer tag, bits
        (60, 20) => &[Short, ShortString, ShortString, Octet],
        _ => return None,
    })
}

/// Whether a method frame's payload (class and method ids first) nests its field table at
/// most [`MAX_FIELD_DEPTH`] deep. A payload too short to reach its table passes: amq-protocol
/// refuses it without going deeper than this walk did.
pub fn method_within_depth(payload: &[u8]) -> bool {
    let [c1, c2, m1, m2, args @ ..] = payload else {
        return true;
    };
    let Some(fields) = before_table(
        u16::from_be_bytes([*c1, *c2]),
        u16::from_be_bytes([*m1, *m2]),
    ) else {
        return true;
    };
    let mut rest = args;
    for field in fields {
        let skip = match field {
            Octet => 1,
            Short => 2,
            ShortString => match rest.first() {
                Some(&len) => 1 + len as usize,
                None => return true,
            },
        };
        match rest.get(skip..) {
            Some(after) => rest = after,
            None => return true,
        }
    }
    table_within_depth(rest)
}

/// Whether a content header frame's payload nests its `headers` property at most
/// [`MAX_FIELD_DEPTH`] deep. Only basic's properties have a table: the third, after
/// content-type and content-encoding.
pub fn header_within_depth(payload: &[u8]) -> bool {
    // class, weight, body size, then the property flags
    let Some(props) = payload.get(12..) else {
        return true;
    };
    let Some((flags, mut rest)) = props.split_first_chunk::<2>() else {
        return true;
    };
    let flags = u16::from_be_bytes(*flags);
    if flags & (1 << 13) == 0 {
        return true;
    }
    // Further flag words follow while the lowest bit is set (none are defined for basic).
    let mut more = flags & 1 != 0;
    while more {
        let Some((word, after)) = rest.split_first_chunk::<2>() else {
            return true;
        };
        more = u16::from_be_bytes(*word) & 1 != 0;
        rest = after;
    }
    for bit in [15, 14] {
        if flags & (1 << bit) != 0 {
            let Some(after) = rest.first().and_then(|&len| rest.get(1 + len as usize..)) else {
                return true;
            };
            rest = after;
        }
    }
    table_within_depth(rest)
}

/// The long (u32) length-prefixed octets at the front of `input`, and what follows them.
fn take_long(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = input.split_first_chunk::<4>()?;
    let len = u32::from_be_bytes(*len) as usize;
    Some((rest.get(..len)?, rest.get(len..)?))
}

/// Whether the field table at the front of `input` nests tables and arrays at most
/// [`MAX_FIELD_DEPTH`] deep, walked with a stack of its own. Malformed input passes: the walk
/// stops where amq-protocol's parser would fail, at no greater depth.
pub fn table_within_depth(input: &[u8]) -> bool {
    let Some((table, _)) = take_long(input) else {
        return true;
    };
    // The values still to read of each open table or array, innermost last, and whether it is
    // a table (whose values have names).
    let mut open: Vec<(&[u8], bool)> = vec![(table, true)];
    while let Some((mut rest, is_table)) = open.pop() {
        if rest.is_empty() {
            continue;
        }
        if is_table {
            let Some(after) = rest.first().and_then(|&len| rest.get(1 + len as usize..)) else {
                return true;
            };
            rest = after;
        }
        let Some((&kind, after)) = rest.split_first() else {
            return true;
        };
        rest = after;
        let size = match kind {
            b't' | b'b' | b'B' => 1,
            b's' | b'U' | b'u' => 2,
            b'I' | b'i' | b'f' => 4,
            b'D' => 5,
            b'L' | b'l' | b'd' | b'T' => 8,
            b'V' => 0,
            b'S' | b'x' => match take_long(rest) {
                Some((value, _)) => 4 + value.len(),
                None => return true,
            },
            b'F' | b'A' => {
                let Some((inner, after)) = take_long(rest) else {
                    return true;
                };
                open.push((after, is_table));
                open.push((inner, kind == b'F'));
                if open.len() > MAX_FIELD_DEPTH {
                    return false;
                }
                continue;
            }
            _ => return true,
        };
        let Some(after) = rest.get(size..) else {
            return true;
        };
        open.push((after, is_table));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::{AMQPValue, FieldArray, FieldTable};

    /// A table holding `levels` levels in all, alternating tables and arrays below the top.
    fn nested(levels: usize) -> FieldTable {
        let mut value = AMQPValue::LongString("bottom".into());
        for level in (1..levels).rev() {
            value = if level % 2 == 0 {
                AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::Boolean(true), value]))
            } else {
                let mut t = FieldTable::default();
                t.insert("n".into(), AMQPValue::LongLongInt(7));
                t.insert("deeper".into(), value);
                AMQPValue::FieldTable(t)
            };
        }
        let mut top = FieldTable::default();
        top.insert("x-level".into(), value);
        top
    }

    fn encoded(table: &FieldTable) -> Vec<u8> {
        amq_protocol::types::generation::gen_field_table(table)(Vec::new().into())
            .unwrap()
            .into_inner()
            .0
    }

    #[test]
    fn depth_counts_tables_and_arrays() {
        assert!(table_within_depth(&encoded(&nested(1))));
        assert!(table_within_depth(&encoded(&nested(MAX_FIELD_DEPTH))));
        assert!(!table_within_depth(&encoded(&nested(MAX_FIELD_DEPTH + 1))));
    }

    #[test]
    fn values_after_a_nested_one_are_read_at_the_right_level() {
        // Many siblings, each a little nested: wide but shallow is fine.
        let mut top = FieldTable::default();
        for i in 0..500 {
            top.insert(format!("k{i}").into(), AMQPValue::FieldTable(nested(3)));
        }
        assert!(table_within_depth(&encoded(&top)));
    }

    #[test]
    fn truncated_tables_pass_to_the_parser() {
        let bytes = encoded(&nested(MAX_FIELD_DEPTH + 1));
        // Cut inside: the walk cannot see the deepest level, so neither can the parser.
        assert!(table_within_depth(&bytes[..40]));
        assert!(table_within_depth(&[]));
    }
}
