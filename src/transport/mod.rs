//! Listeners and connection I/O. Thin: bytes in, decoded packets to the
//! shard, the shard's write buffer out. Knows nothing of MQTT semantics.
//!
//! - [`tcp`]: binds one SO_REUSEPORT listener per (address, core).
//! - [`connection`]: the per-connection tasks (reader, writer, CONNECT phase,
//!   hand-over of a socket to its client id's home core).

pub mod connection;
pub mod tcp;
