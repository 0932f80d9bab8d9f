//! The hash maps the broker looks up on every message (queues, exchanges, channels, binding
//! keys). They use foldhash rather than std's SipHash: several lookups per message made SipHash
//! a visible share of the broker's time, and foldhash still seeds each map at random, so a
//! client choosing queue names cannot aim collisions at it.

pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub type HashSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;
