//! Broker events (work in progress).
