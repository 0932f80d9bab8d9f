//! rabbitscope: see RabbitMQ routing happen.
//!
//! The library holds everything the binary uses, so tests drive the same code a user runs:
//! - [`broker`]: the broker core (exchanges, queues, bindings, routing, the AMQP rules). No I/O.
//! - [`amqp`]: the AMQP 0-9-1 wire server that puts the core on a TCP port.
//! - [`argument_map`]: arguments written as a map in snapshots and traces (read as pairs too).
//! - [`definitions`]: RabbitMQ definitions JSON, loaded at start.
//! - [`doctor`]: what is wrong with a broker, from its management API or definitions. No I/O.
//! - [`events`]: the broker event stream every screen is drawn from.
//! - [`file_error`]: the `file:line:col` error of lesson and trace files.
//! - [`lesson`]: lesson files, and running them on a broker with their expectations checked.
//! - [`nesting`]: how deeply YAML nests, checked before it is parsed.
//! - [`openstack`]: oslo.messaging bodies and Nova objects, decoded.
//! - [`remote`]: a live RabbitMQ as a source (management API, firehose).
//! - [`source`]: what every view source offers (snapshot, events, kind) and a replay's
//!   playback controls.
//! - [`stop`]: the signals that stop the program in order.
//! - [`terminal`]: text from strangers made safe to print.
//! - [`tls`]: TLS for the broker's amqps listener and for rabbitscope's own clients.
//! - [`topology`]: the topology at one moment (snapshots), an event applied to one, and the
//!   events between two.
//! - [`trace`]: trace files (the event stream on disk), recording and replaying them.
//! - [`ui`]: the terminal view (ratatui).

pub mod amqp;
pub mod argument_map;
pub mod broker;
pub mod definitions;
pub mod doctor;
pub mod events;
pub mod file_error;
pub mod lesson;
pub mod nesting;
pub mod openstack;
pub mod remote;
pub mod source;
pub mod stop;
pub mod terminal;
pub mod tls;
pub mod topology;
pub mod trace;
pub mod ui;
