//! The broker core (work in progress).
use std::sync::Arc;

#[derive(Clone, Debug, Default)]
pub struct BrokerConfig {}

pub struct Broker {}

impl Broker {
    pub fn new(_config: BrokerConfig) -> Arc<Broker> {
        Arc::new(Broker {})
    }
}
