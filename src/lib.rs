//! ringmq: an MQTT broker, thread-per-core on io_uring (monoio).
//!
//! Map of the crate (one owner per module):
//! - [`protocol`]: MQTT packets, decode and encode. Pure, no I/O.
//! - [`topic`]: topic/filter validation, subscription trie, retained topic tree. Pure.
//! - [`config`]: command line and TOML configuration, validated once at start.
//! - [`broker`]: the per-core shard (sessions, local trie, retained replica),
//!   the cross-core router (mailboxes, subscription index, client-id homes).
//! - [`transport`]: listeners and connection I/O (TCP).
//! - [`bench`]: the `ringmq-bench` load generator (a client of the codec).
//! - [`server`]: starts one runtime per core and stops them on a signal.

pub mod bench;
pub mod broker;
pub mod config;
pub mod protocol;
pub mod server;
pub mod topic;
pub mod transport;
