//! One file per screen region, each an `impl Widget for &Pane`.

pub mod form;
pub mod graph;
pub mod help;
pub mod inspector;
pub mod log;
pub mod status;
