//! Topic exchange: binding keys are patterns of `.`-separated words, where `*` stands for
//! exactly one word and `#` for zero or more.
//!
//! Bindings live in a trie keyed by pattern word, so routing costs follow the number of words
//! in the routing key (and the `*`/`#` branches met on the way), not the number of bindings.

use crate::broker::maps::HashMap;
use std::sync::Arc;

use amq_protocol::types::FieldTable;

use super::{remove_binding, Binding, Router};

#[derive(Default)]
struct Node {
    words: HashMap<Box<str>, Node>,
    star: Option<Box<Node>>,
    hash: Option<Box<Node>>,
    /// Bindings whose pattern ends at this node.
    here: Vec<Arc<Binding>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.here.is_empty() && self.words.is_empty() && self.star.is_none() && self.hash.is_none()
    }

    fn child_mut(&mut self, word: &str) -> &mut Node {
        match word {
            "*" => self.star.get_or_insert_with(Default::default),
            "#" => self.hash.get_or_insert_with(Default::default),
            _ => self.words.entry(word.into()).or_default(),
        }
    }

    /// Removes `binding` below this node along `pattern`, pruning empty branches.
    fn remove(&mut self, pattern: &[&str], binding: &Binding) -> bool {
        let Some((word, rest)) = pattern.split_first() else {
            return remove_binding(&mut self.here, binding);
        };
        let (removed, now_empty) = match *word {
            "*" | "#" => {
                let slot = if *word == "*" {
                    &mut self.star
                } else {
                    &mut self.hash
                };
                match slot {
                    Some(child) => {
                        let removed = child.remove(rest, binding);
                        (removed, child.is_empty())
                    }
                    None => (false, false),
                }
            }
            _ => match self.words.get_mut(*word) {
                Some(child) => {
                    let removed = child.remove(rest, binding);
                    (removed, child.is_empty())
                }
                None => (false, false),
            },
        };
        if now_empty {
            match *word {
                "*" => self.star = None,
                "#" => self.hash = None,
                _ => {
                    self.words.remove(*word);
                }
            }
        }
        removed
    }

    /// Collects bindings whose pattern matches `key[i..]` from this node.
    fn collect(&self, key: &[&str], i: usize, out: &mut Vec<Arc<Binding>>) {
        if i == key.len() {
            out.extend(self.here.iter().cloned());
        } else {
            if let Some(child) = self.words.get(key[i]) {
                child.collect(key, i + 1, out);
            }
            if let Some(child) = &self.star {
                child.collect(key, i + 1, out);
            }
        }
        if let Some(child) = &self.hash {
            // `#` swallows zero or more words.
            for j in i..=key.len() {
                child.collect(key, j, out);
            }
        }
    }

    fn all(&self, out: &mut Vec<Arc<Binding>>) {
        out.extend(self.here.iter().cloned());
        for child in self.words.values() {
            child.all(out);
        }
        for child in self.star.iter().chain(self.hash.iter()) {
            child.all(out);
        }
    }
}

/// Splits a routing key or pattern into words. The empty key has no words; `.` has two empty ones.
fn words(key: &str) -> Vec<&str> {
    if key.is_empty() {
        Vec::new()
    } else {
        key.split('.').collect()
    }
}

#[derive(Default)]
pub struct TopicRouter {
    root: Node,
    count: usize,
}

impl Router for TopicRouter {
    fn bind(&mut self, binding: Arc<Binding>) {
        let mut node = &mut self.root;
        for word in words(&binding.routing_key) {
            node = node.child_mut(word);
        }
        node.here.push(binding);
        self.count += 1;
    }

    fn unbind(&mut self, binding: &Binding) -> bool {
        let removed = self.root.remove(&words(&binding.routing_key), binding);
        self.count -= removed as usize;
        removed
    }

    fn route(&self, routing_key: &str, _headers: Option<&FieldTable>, out: &mut Vec<Arc<Binding>>) {
        let start = out.len();
        let key = words(routing_key);
        self.root.collect(&key, 0, out);
        // Several `#` paths can reach the same binding; report each binding once.
        if out.len() - start > 1 {
            let found = &mut out[start..];
            found.sort_by_key(|b| Arc::as_ptr(b) as usize);
            let mut unique: Vec<Arc<Binding>> = Vec::with_capacity(found.len());
            for b in found.iter() {
                if unique.last().is_none_or(|last| !Arc::ptr_eq(last, b)) {
                    unique.push(b.clone());
                }
            }
            out.truncate(start);
            out.extend(unique);
        }
    }

    fn bindings(&self) -> Vec<Arc<Binding>> {
        let mut out = Vec::with_capacity(self.count);
        self.root.all(&mut out);
        out
    }

    fn binding_count(&self) -> usize {
        self.count
    }
}

/// Whether a single pattern matches a routing key; the same rule as the trie, for explanations
/// and tests.
pub fn pattern_matches(pattern: &str, routing_key: &str) -> bool {
    fn go(p: &[&str], k: &[&str]) -> bool {
        match p.split_first() {
            None => k.is_empty(),
            Some((&"#", rest)) => (0..=k.len()).any(|skip| go(rest, &k[skip..])),
            Some((&"*", rest)) => !k.is_empty() && go(rest, &k[1..]),
            Some((word, rest)) => k.first() == Some(word) && go(rest, &k[1..]),
        }
    }
    go(&words(pattern), &words(routing_key))
}

/// How a pattern matched a routing key, word by word: each pattern word with the key words it
/// took (`*` one, `#` any number, a plain word itself). `None` when it does not match.
pub fn explain_match(pattern: &str, routing_key: &str) -> Option<Vec<(String, Vec<String>)>> {
    fn go(p: &[&str], k: &[&str], out: &mut Vec<(String, Vec<String>)>) -> bool {
        let Some((first, rest)) = p.split_first() else {
            return k.is_empty();
        };
        let takes: Vec<usize> = match *first {
            "#" => (0..=k.len()).collect(),
            "*" => vec![1],
            word => {
                if k.first() == Some(&word) {
                    vec![1]
                } else {
                    vec![]
                }
            }
        };
        for n in takes {
            if n > k.len() {
                continue;
            }
            out.push((
                first.to_string(),
                k[..n].iter().map(|w| w.to_string()).collect(),
            ));
            if go(rest, &k[n..], out) {
                return true;
            }
            out.pop();
        }
        false
    }
    let mut out = Vec::new();
    go(&words(pattern), &words(routing_key), &mut out).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::exchange::Destination;
    use proptest::prelude::*;

    fn binding(queue: &str, key: &str) -> Arc<Binding> {
        Arc::new(Binding::new(
            Destination::Queue(queue.into()),
            key,
            FieldTable::default(),
        ))
    }

    fn routed(router: &TopicRouter, key: &str) -> Vec<String> {
        let mut out = Vec::new();
        router.route(key, None, &mut out);
        let mut names: Vec<String> = out
            .iter()
            .map(|b| b.destination.name().to_string())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_tutorial_animals() {
        let mut router = TopicRouter::default();
        router.bind(binding("Q1", "*.orange.*"));
        router.bind(binding("Q2", "*.*.rabbit"));
        router.bind(binding("Q2", "lazy.#"));
        assert_eq!(routed(&router, "quick.orange.rabbit"), ["Q1", "Q2"]);
        assert_eq!(routed(&router, "lazy.orange.elephant"), ["Q1", "Q2"]);
        assert_eq!(routed(&router, "quick.orange.fox"), ["Q1"]);
        assert_eq!(routed(&router, "lazy.brown.fox"), ["Q2"]);
        // Both Q2 bindings match: two bindings, reported once each.
        assert_eq!(routed(&router, "lazy.pink.rabbit"), ["Q2", "Q2"]);
        assert!(routed(&router, "quick.brown.fox").is_empty());
        assert!(routed(&router, "orange").is_empty());
        assert_eq!(routed(&router, "lazy"), ["Q2"]);
    }

    #[test]
    fn explanations_show_which_words_each_wildcard_took() {
        let m = explain_match("*.orange.#", "quick.orange.big.rabbit").unwrap();
        assert_eq!(m[0], ("*".to_string(), vec!["quick".to_string()]));
        assert_eq!(m[2].1, ["big", "rabbit"]);
        assert!(explain_match("*.orange.*", "lazy.brown.fox").is_none());
    }

    #[test]
    fn hash_hash_reports_the_binding_once() {
        let mut router = TopicRouter::default();
        router.bind(binding("q", "#.#"));
        assert_eq!(routed(&router, "a.b.c"), ["q"]);
        assert_eq!(routed(&router, ""), ["q"]);
    }

    #[test]
    fn unbind_prunes_and_forgets() {
        let mut router = TopicRouter::default();
        router.bind(binding("q", "a.*.c"));
        assert!(router.unbind(&binding("q", "a.*.c")));
        assert!(!router.unbind(&binding("q", "a.*.c")));
        assert!(router.root.is_empty());
        assert_eq!(router.binding_count(), 0);
    }

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just("".to_string())
        ]
    }

    fn pattern_word() -> impl Strategy<Value = String> {
        prop_oneof![word(), Just("*".to_string()), Just("#".to_string())]
    }

    proptest! {
        // The trie must agree with the plain recursive definition for every key and pattern.
        #[test]
        fn trie_agrees_with_definition(
            patterns in prop::collection::vec(prop::collection::vec(pattern_word(), 0..5), 1..6),
            key in prop::collection::vec(word(), 0..6),
        ) {
            let key = key.join(".");
            let mut router = TopicRouter::default();
            let patterns: Vec<String> = patterns.iter().map(|p| p.join(".")).collect();
            for (i, p) in patterns.iter().enumerate() {
                router.bind(binding(&i.to_string(), p));
            }
            let mut expected: Vec<String> = patterns
                .iter()
                .enumerate()
                .filter(|(_, p)| pattern_matches(p, &key))
                .map(|(i, _)| i.to_string())
                .collect();
            expected.sort();
            prop_assert_eq!(routed(&router, &key), expected);
        }
    }
}
