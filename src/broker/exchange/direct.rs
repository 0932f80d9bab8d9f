//! Direct exchange: a binding matches when its key equals the routing key exactly.

use crate::broker::maps::HashMap;
use std::sync::Arc;

use amq_protocol::types::FieldTable;

use super::{remove_binding, Binding, Router};

#[derive(Default)]
pub struct DirectRouter {
    by_key: HashMap<String, Vec<Arc<Binding>>>,
    count: usize,
}

impl Router for DirectRouter {
    fn bind(&mut self, binding: Arc<Binding>) {
        self.by_key
            .entry(binding.routing_key.clone())
            .or_default()
            .push(binding);
        self.count += 1;
    }

    fn unbind(&mut self, binding: &Binding) -> bool {
        let Some(list) = self.by_key.get_mut(&binding.routing_key) else {
            return false;
        };
        let removed = remove_binding(list, binding);
        if list.is_empty() {
            self.by_key.remove(&binding.routing_key);
        }
        self.count -= removed as usize;
        removed
    }

    fn route(&self, routing_key: &str, _headers: Option<&FieldTable>, out: &mut Vec<Arc<Binding>>) {
        if let Some(list) = self.by_key.get(routing_key) {
            out.extend(list.iter().cloned());
        }
    }

    fn bindings(&self) -> Vec<Arc<Binding>> {
        self.by_key.values().flatten().cloned().collect()
    }

    fn binding_count(&self) -> usize {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::exchange::queue_binding as binding;

    #[test]
    fn matches_the_exact_key_only() {
        let mut router = DirectRouter::default();
        router.bind(binding("q1", "Cloud"));
        router.bind(binding("q2", "cloud"));
        let mut out = Vec::new();
        router.route("Cloud", None, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].destination.name(), "q1");
        assert!(router.unbind(&binding("q1", "Cloud")));
        out.clear();
        router.route("Cloud", None, &mut out);
        assert!(out.is_empty());
        assert_eq!(router.binding_count(), 1);
    }
}
