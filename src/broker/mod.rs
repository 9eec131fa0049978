//! The broker: everything that decides what happens to a packet.
//!
//! - [`shard`]: one per core, owns that core's sessions (a slab), its local
//!   subscription trie (which also holds the cross-core index: which other
//!   cores have subscribers for each filter), its replica of the retained
//!   messages, and its mailboxes. Nothing here is shared between cores.
//! - [`session`]: one client's state: subscriptions, inflight window, queue.
//! - [`conn`]: the part of a live connection the shard writes into.
//! - [`mailbox`]: the lock-free queues between cores.
//! - `handle_*`: one file per packet family, called by [`shard::Shard::handle`].
//!
//! Cross-core rules: a session lives on the home core of its client id
//! ([`home_core`]); a connection whose CONNECT arrives on another core is
//! handed to the home core as a raw fd plus the bytes already read. A publish
//! is routed on the core that received it: local subscribers directly, other
//! cores once each through their mailbox. Retained messages are sequenced by
//! the home core of their topic and replicated to every core.

pub mod client_ids;
pub mod conn;
pub mod enhanced_auth;
pub mod handle;
pub mod handle_connect;
mod handle_publish;
mod handle_subscribe;
pub mod mailbox;
pub mod session;
pub mod shard;
mod sys;

use crate::protocol::{Connect, Properties, QoS};
use crate::topic::stable_hash;
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An application message as the broker routes it. Cloning shares the
/// topic and payload (two reference-count increments) and the v5 metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub topic: ByteString,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// MQTT 5 properties and expiry; `None` for a 3.1.1 message (and a v5
    /// one without properties), so the 3.1.1 path never allocates one.
    pub meta: Option<Arc<MessageMeta>>,
    /// Per delivery: the subscription identifiers of the session the message
    /// is queued or in flight for. Empty while it is being routed.
    pub sub_ids: SubIds,
}

/// The MQTT 5 side of an application message, shared by every copy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageMeta {
    /// What is forwarded unchanged: Payload Format Indicator, Content Type,
    /// Response Topic, Correlation Data, User Properties (in order). Never a
    /// topic alias, subscription identifier or expiry interval: those are
    /// per delivery.
    pub properties: Properties,
    /// When the Message Expiry Interval runs out.
    pub expires_at: Option<Instant>,
    /// The interval as published, seconds: the most ever forwarded (clocks
    /// of two cores may differ by a fraction of a second).
    pub expiry_interval_s: u32,
}

impl MessageMeta {
    /// The metadata of a message published with `p` at `now`; `None` when
    /// nothing in `p` travels with the message. Values are copied out of
    /// the read buffer they point into.
    pub fn from_publish(p: &Properties, now: Instant) -> Option<Arc<MessageMeta>> {
        let properties = Self::forwarded(p);
        let expires_at = p
            .message_expiry_interval
            .map(|s| now + Duration::from_secs(s as u64));
        if properties.is_empty() && expires_at.is_none() {
            return None;
        }
        Some(Arc::new(MessageMeta {
            properties,
            expires_at,
            expiry_interval_s: p.message_expiry_interval.unwrap_or(0),
        }))
    }

    /// An owned copy of the properties of `p` that travel with a message
    /// unchanged (the decoded ones point into the read buffer).
    pub fn forwarded(p: &Properties) -> Properties {
        Properties {
            payload_format_indicator: p.payload_format_indicator,
            content_type: p.content_type.as_deref().map(ByteString::from),
            response_topic: p.response_topic.as_deref().map(ByteString::from),
            correlation_data: p.correlation_data.as_deref().map(Bytes::copy_from_slice),
            user_properties: p
                .user_properties
                .iter()
                .map(|(k, v)| (ByteString::from(&**k), ByteString::from(&**v)))
                .collect(),
            ..Properties::default()
        }
    }
}

/// The subscription identifiers one delivery carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SubIds {
    #[default]
    None,
    One(u32),
    Many(Arc<[u32]>),
}

impl SubIds {
    /// One identifier; 0 (none) gives `None`.
    pub fn of(id: u32) -> SubIds {
        if id == 0 {
            SubIds::None
        } else {
            SubIds::One(id)
        }
    }

    /// The non-zero identifiers among `ids`.
    pub fn collect(ids: impl Iterator<Item = u32>) -> SubIds {
        let ids: Vec<u32> = ids.filter(|&id| id != 0).collect();
        match ids.as_slice() {
            [] => SubIds::None,
            [id] => SubIds::One(*id),
            _ => SubIds::Many(ids.into()),
        }
    }

    pub fn as_slice(&self) -> &[u32] {
        match self {
            SubIds::None => &[],
            SubIds::One(id) => std::slice::from_ref(id),
            SubIds::Many(ids) => ids,
        }
    }
}

impl Message {
    /// A message without v5 metadata.
    pub fn new(topic: ByteString, payload: Bytes, qos: QoS, retain: bool) -> Message {
        Message {
            topic,
            payload,
            qos,
            retain,
            meta: None,
            sub_ids: SubIds::None,
        }
    }

    /// When the message expires, if it has an expiry interval.
    #[inline]
    pub fn expires_at(&self) -> Option<Instant> {
        self.meta.as_ref().and_then(|m| m.expires_at)
    }

    /// True once its Message Expiry Interval has run out at `now`.
    #[inline]
    pub fn expired(&self, now: Instant) -> bool {
        self.expires_at().is_some_and(|t| t <= now)
    }

    /// Copies a small payload out of the read buffer it points into, so that
    /// a message kept for long (queued, retained) does not pin that buffer.
    pub fn detach(mut self) -> Message {
        const DETACH_BELOW_BYTES: usize = 4096;
        if self.payload.len() < DETACH_BELOW_BYTES {
            self.payload = Bytes::copy_from_slice(&self.payload);
        }
        self.topic = ByteString::from(&*self.topic);
        self
    }

    /// [`Message::detach`], made once per routed message: the first session
    /// that queues it makes the copy, the others share it through `cache`.
    pub fn detach_shared(mut self, cache: &mut Option<DetachCache>) -> Message {
        if let Some(c) = cache.as_ref()
            && c.is_copy_of(&self)
        {
            self.topic = c.detached.0.clone();
            self.payload = c.detached.1.clone();
            return self;
        }
        let original = (self.topic.clone(), self.payload.clone());
        let detached = self.detach();
        *cache = Some(DetachCache {
            original,
            detached: (detached.topic.clone(), detached.payload.clone()),
        });
        detached
    }
}

/// The owned copy of one routed message's topic and payload, shared by every
/// session that queues it. It holds the original too, so that the address
/// comparison in `is_copy_of` cannot match another message whose buffer
/// reused the same address.
pub struct DetachCache {
    original: (ByteString, Bytes),
    detached: (ByteString, Bytes),
}

impl DetachCache {
    fn is_copy_of(&self, m: &Message) -> bool {
        let (topic, payload) = &self.original;
        topic.as_ptr() == m.topic.as_ptr()
            && topic.len() == m.topic.len()
            && payload.as_ptr() == m.payload.as_ptr()
            && payload.len() == m.payload.len()
    }
}

/// The core that owns the session of `client_id` among `cores` cores.
pub fn home_core(client_id: &str, cores: usize) -> usize {
    (stable_hash(client_id) % cores.max(1) as u64) as usize
}

/// A connection whose CONNECT was read on one core, moved to its home core.
pub struct Adopted {
    pub fd: OwnedFd,
    /// Bytes read after the CONNECT packet.
    pub buf: BytesMut,
    pub connect: Box<Connect>,
    pub peer: SocketAddr,
    /// Its place in the total connection count.
    pub slot: conn::ConnSlot,
}

/// Per-core counters, summed over cores for `$SYS`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardStats {
    pub clients_connected: u64,
    pub sessions: u64,
    pub subscriptions: u64,
    pub retained: u64,
    pub messages_received: u64,
    pub messages_sent: u64,
    /// Messages dropped because a session queue was full.
    pub dropped_queue_full: u64,
    /// QoS 0 messages dropped because the client's write buffer was full.
    pub dropped_write_buffer_full: u64,
    /// Times a publisher was paused by a congested subscriber.
    pub publisher_pauses: u64,
    /// Messages not sent because they exceed the client's Maximum Packet Size.
    pub dropped_too_large: u64,
    /// Messages whose Message Expiry Interval ran out before delivery.
    pub dropped_expired: u64,
}

impl std::ops::AddAssign for ShardStats {
    fn add_assign(&mut self, o: ShardStats) {
        self.clients_connected += o.clients_connected;
        self.sessions += o.sessions;
        self.subscriptions += o.subscriptions;
        self.retained = self.retained.max(o.retained);
        self.messages_received += o.messages_received;
        self.messages_sent += o.messages_sent;
        self.dropped_queue_full += o.dropped_queue_full;
        self.dropped_write_buffer_full += o.dropped_write_buffer_full;
        self.publisher_pauses += o.publisher_pauses;
        self.dropped_too_large += o.dropped_too_large;
        self.dropped_expired += o.dropped_expired;
    }
}

/// The client connection a publish came from, so that a congested
/// subscriber on any core can pause it (back-pressure).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    pub core: usize,
    pub session: usize,
    pub generation: u64,
}

/// Everything one core sends another. Sent in batches through [`mailbox`].
pub enum ShardMsg {
    /// Deliver to this core's subscribers of plain (non-shared) filters.
    Publish {
        msg: Message,
        origin: Option<Origin>,
    },
    /// Deliver to one member of shared group `share` (`$share/g/f`) on this
    /// core; `hops` counts forwards when the group has left this core.
    SharedPublish {
        msg: Message,
        share: ByteString,
        hops: u8,
        origin: Option<Origin>,
    },
    /// A subscriber here is congested by publisher `Origin` (which lives on
    /// the receiving core): stop reading it until the matching `Resume`.
    Pause(Origin),
    /// The congestion that caused a `Pause` is over.
    Resume(Origin),
    /// The sender gained its first subscriber for `filter` (plain or
    /// `$share/..`); reply `IndexAck { token }` once recorded.
    IndexAdd { filter: ByteString, token: u64 },
    /// The sender lost its last subscriber for `filter`.
    IndexRemove { filter: ByteString },
    /// An `IndexAdd` was recorded by the replying core.
    IndexAck { token: u64 },
    /// A retained message for a topic whose home is this core: apply it and
    /// replicate it to every other core, so that all apply the same order.
    RetainSequence(Message),
    /// Apply this retained message (already sequenced) to the local replica.
    RetainApply(Message),
    /// A connection whose client id lives on this core.
    Adopt(Box<Adopted>),
    /// Counters of the sending core, for the `$SYS` topics (sent to core 0).
    Stats(ShardStats),
    /// Stop accepting, close every connection, exit the runtime.
    Shutdown,
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_v5;
