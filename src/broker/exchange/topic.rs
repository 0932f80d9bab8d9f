//! Topic exchange: binding keys are patterns of `.`-separated words, where `*` stands for
//! exactly one word and `#` for zero or more.
//!
//! Bindings live in a trie keyed by pattern word, so routing costs follow the number of words
//! in the routing key (and the `*`/`#` branches met on the way), not the number of bindings.

use crate::broker::maps::{HashMap, HashSet};
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

    /// Collects the bindings whose pattern matches `key[i..]` from this node. A node reached
    /// through a `#` can be reached again at the same word by another path (`#.#`, `#.*`,
    /// ...); `seen` lets each such (node, word) be visited once, so a walk costs at most
    /// (trie nodes on the way) x (key words + 1) steps however many `#` a binding has, and
    /// each binding is reported once. `is_hash`: this node is a `#`, which may swallow more
    /// words; `below_hash`: a `#` lies on the way here. Each call goes one word further or
    /// one trie level deeper, so recursion is at most 256 deep (a routing key and a binding
    /// key are short strings: at most 128 words each).
    fn collect(
        &self,
        key: &[&str],
        i: usize,
        is_hash: bool,
        below_hash: bool,
        seen: &mut Seen,
        out: &mut Vec<Arc<Binding>>,
    ) {
        // Without a `#` above it, a node has exactly one path and one word index.
        if below_hash && !seen.first_visit(self, i) {
            return;
        }
        if i == key.len() {
            out.extend(self.here.iter().cloned());
        } else {
            if let Some(child) = self.words.get(key[i]) {
                child.collect(key, i + 1, false, below_hash, seen, out);
            }
            if let Some(child) = &self.star {
                child.collect(key, i + 1, false, below_hash, seen, out);
            }
            // A `#` swallows one more word and stays where it is...
            if is_hash {
                self.collect(key, i + 1, true, true, seen, out);
            }
        }
        if let Some(child) = &self.hash {
            // ... or swallows none: its pattern goes on from the same word.
            child.collect(key, i, true, true, seen, out);
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

/// The (node, word) states of one walk reached below a `#`. A walk usually meets a handful:
/// they are kept in place, and only a walk that meets more moves them to a hash set.
struct Seen {
    few: [(*const Node, usize); Seen::FEW],
    count: usize,
    many: Option<HashSet<(*const Node, usize)>>,
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            few: [(std::ptr::null(), 0); Seen::FEW],
            count: 0,
            many: None,
        }
    }
}

impl Seen {
    const FEW: usize = 16;

    /// Whether this is the first visit of `node` at word `i` (and notes it).
    fn first_visit(&mut self, node: &Node, i: usize) -> bool {
        let state = (node as *const Node, i);
        if let Some(many) = &mut self.many {
            return many.insert(state);
        }
        if self.few[..self.count].contains(&state) {
            return false;
        }
        if self.count < Self::FEW {
            self.few[self.count] = state;
            self.count += 1;
        } else {
            let mut many: HashSet<_> = self.few.iter().copied().collect();
            many.insert(state);
            self.many = Some(many);
        }
        true
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
        let mut seen = Seen::default();
        self.root
            .collect(&words(routing_key), 0, false, false, &mut seen, out);
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

/// `table[p][k]`: whether pattern words `p..` match key words `k..`. Filled from the end, so
/// each cell costs one step and a pattern full of `#` stays quadratic at worst, never
/// exponential (patterns and keys are at most 255 octets).
fn match_table(p: &[&str], k: &[&str]) -> Vec<Vec<bool>> {
    let mut table = vec![vec![false; k.len() + 1]; p.len() + 1];
    table[p.len()][k.len()] = true;
    for pi in (0..p.len()).rev() {
        for ki in (0..=k.len()).rev() {
            table[pi][ki] = match p[pi] {
                // none taken, or one more taken
                "#" => table[pi + 1][ki] || (ki < k.len() && table[pi][ki + 1]),
                "*" => ki < k.len() && table[pi + 1][ki + 1],
                word => ki < k.len() && k[ki] == word && table[pi + 1][ki + 1],
            };
        }
    }
    table
}

/// Whether a single pattern matches a routing key; the same rule as the trie, for explanations
/// and tests.
pub fn pattern_matches(pattern: &str, routing_key: &str) -> bool {
    match_table(&words(pattern), &words(routing_key))[0][0]
}

/// How a pattern matched a routing key, word by word: each pattern word with the key words it
/// took (`*` one, `#` as few as still lets the rest match, a plain word itself). `None` when it
/// does not match.
pub fn explain_match(pattern: &str, routing_key: &str) -> Option<Vec<(String, Vec<String>)>> {
    let (p, k) = (words(pattern), words(routing_key));
    let table = match_table(&p, &k);
    if !table[0][0] {
        return None;
    }
    let mut out = Vec::with_capacity(p.len());
    let mut ki = 0;
    for (pi, word) in p.iter().enumerate() {
        let took = match *word {
            "#" => {
                (ki..=k.len())
                    .find(|&end| table[pi + 1][end])
                    .expect("the table says the rest matches")
                    - ki
            }
            _ => 1,
        };
        out.push((
            word.to_string(),
            k[ki..ki + took].iter().map(|w| w.to_string()).collect(),
        ));
        ki += took;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::exchange::queue_binding as binding;
    use proptest::prelude::*;

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

    /// The plain recursive definition of a topic match (exponential in the number of `#`, so
    /// only for short generated patterns): what the trie and the tables must agree with.
    fn reference(p: &[&str], k: &[&str]) -> bool {
        match p.split_first() {
            None => k.is_empty(),
            Some((&"#", rest)) => (0..=k.len()).any(|skip| reference(rest, &k[skip..])),
            Some((&"*", rest)) => !k.is_empty() && reference(rest, &k[1..]),
            Some((word, rest)) => k.first() == Some(word) && reference(rest, &k[1..]),
        }
    }

    #[test]
    fn eight_hashes_and_a_sixty_word_key() {
        let pattern = "#.#.#.#.#.#.#.#.x";
        let mut router = TopicRouter::default();
        router.bind(binding("q", pattern));
        router.bind(binding("r", "#.*.#.*.#.*.#.*.#.y"));
        let miss = vec!["w"; 60].join(".");
        let hit = format!("{}.x", vec!["w"; 59].join("."));
        assert!(routed(&router, &miss).is_empty());
        assert_eq!(routed(&router, &hit), ["q"]);
        assert!(!pattern_matches(pattern, &miss));
        assert!(explain_match(pattern, &miss).is_none());
        let explained = explain_match(pattern, &hit).unwrap();
        assert_eq!(explained.len(), 9);
        assert_eq!(
            explained[0].1.len(),
            0,
            "the first # takes as few words as it can"
        );
        assert_eq!(explained[7].1.len(), 59, "so the last # takes the rest");
        assert_eq!(explained[8].1, ["x"]);
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

        // Patterns crowded with `#` and `*`: the trie, `pattern_matches` and `explain_match`
        // all agree with the recursive definition, and an explanation spells the key back.
        #[test]
        fn wildcards_agree_with_the_reference(
            patterns in prop::collection::vec(
                prop::collection::vec(
                    prop_oneof![3 => Just("#".to_string()), 2 => Just("*".to_string()), 1 => word()],
                    0..9,
                ),
                1..6,
            ),
            key in prop::collection::vec(word(), 0..12),
        ) {
            let key_words = key.clone();
            let key = key.join(".");
            let mut router = TopicRouter::default();
            let patterns: Vec<String> = patterns.iter().map(|p| p.join(".")).collect();
            for (i, p) in patterns.iter().enumerate() {
                router.bind(binding(&i.to_string(), p));
            }
            let mut expected = Vec::new();
            for (i, p) in patterns.iter().enumerate() {
                let matches = reference(&words(p), &words(&key));
                prop_assert_eq!(pattern_matches(p, &key), matches);
                match explain_match(p, &key) {
                    Some(parts) => {
                        prop_assert!(matches);
                        let spelled: Vec<String> = parts.into_iter().flat_map(|(_, took)| took).collect();
                        prop_assert_eq!(spelled.join("."), key_words.join("."));
                    }
                    None => prop_assert!(!matches),
                }
                if matches {
                    expected.push(i.to_string());
                }
            }
            expected.sort();
            prop_assert_eq!(routed(&router, &key), expected);
        }
    }
}
