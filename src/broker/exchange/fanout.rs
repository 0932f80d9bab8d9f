//! Fanout exchange: every binding matches; the routing key is ignored.

use std::sync::Arc;

use amq_protocol::types::FieldTable;

use super::{remove_binding, Binding, Router};

#[derive(Default)]
pub struct FanoutRouter {
    all: Vec<Arc<Binding>>,
}

impl Router for FanoutRouter {
    fn bind(&mut self, binding: Arc<Binding>) {
        self.all.push(binding);
    }

    fn unbind(&mut self, binding: &Binding) -> bool {
        remove_binding(&mut self.all, binding)
    }

    fn route(
        &self,
        _routing_key: &str,
        _headers: Option<&FieldTable>,
        out: &mut Vec<Arc<Binding>>,
    ) {
        out.extend(self.all.iter().cloned());
    }

    fn bindings(&self) -> Vec<Arc<Binding>> {
        self.all.clone()
    }

    fn binding_count(&self) -> usize {
        self.all.len()
    }
}
