//! One client's session: subscriptions, the outgoing inflight window and the
//! queue behind it, incoming QoS 2 packet ids, and the live connection if
//! any. Lives in its home core's slab; only that core touches it.
//!
//! Invariants: `inflight.len() <= inflight_max`; `queue.len() <=
//! queue_messages_max + OVERFLOW_MESSAGES_MAX`; a packet id appears at most
//! once in `inflight`; while `queue` is non-empty the window is full or the
//! client is offline (so messages leave in the order they arrived).
//!
//! Back-pressure: when the queue of a *connected* session is full, a QoS 1/2
//! message is still queued (beyond the limit, up to `OVERFLOW_MESSAGES_MAX`)
//! and the publisher that sent it is paused (`blocked`); the publishers are
//! resumed when the queue has drained to half, when the session disconnects,
//! or when it has made no progress for `stall_timeout` (it is then `stalled`
//! and the drop policy applies, so a dead subscriber cannot hold publishers
//! forever). Offline sessions always use the drop policy. QoS 0 does the
//! same with the connection's write buffer (`write_buffer_max_bytes`, then up
//! to `WRITE_OVERFLOW_BYTES_MAX` more), its progress being completed writes.

use super::conn::ConnIo;
use super::{DetachCache, Message, Origin, SubIds};
use crate::config::{Config, QueueFullPolicy};
use crate::protocol::{self, ProtocolVersion, PublishExtras, QoS, Will};
use ahash::{AHashMap, AHasher};
use bytes::BytesMut;
use bytestring::ByteString;
use std::collections::VecDeque;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::rc::Rc;
use std::time::Instant;

/// Where a QoS 1/2 message sent to the client stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InflightState {
    /// QoS 1 PUBLISH sent, PUBACK awaited.
    AwaitPubAck,
    /// QoS 2 PUBLISH sent, PUBREC awaited.
    AwaitPubRec,
    /// PUBREL sent, PUBCOMP awaited.
    AwaitPubComp,
}

#[derive(Debug)]
pub struct Inflight {
    pub packet_id: u16,
    /// The message with the QoS it is delivered at.
    pub msg: Message,
    pub state: InflightState,
}

/// Messages a congested connected session may queue beyond
/// `queue_messages_max` while its publishers are being paused. Each paused
/// publisher overshoots by at most the rest of one read batch, so this is
/// only reached with thousands of publishers on one subscriber; past it the
/// drop policy applies.
pub const OVERFLOW_MESSAGES_MAX: usize = 65_536;

/// Bytes a congested connected session may have waiting beyond
/// `write_buffer_max_bytes` while its QoS 0 publishers are being paused (the
/// same reasoning as `OVERFLOW_MESSAGES_MAX`: each paused publisher
/// overshoots by at most one read batch of up to 64 KiB).
pub const WRITE_OVERFLOW_BYTES_MAX: usize = 4 << 20;

/// What happened to one delivery (the shard counts these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Written to the connection's buffer.
    Sent,
    /// Kept in the session queue (window full, or offline).
    Queued,
    /// Queued beyond the limit: the publisher must be paused.
    QueuedOverLimit,
    /// QoS 0 written beyond the write-buffer limit: the publisher must be paused.
    SentOverLimit,
    /// Dropped: the queue was full (the drop policy applied).
    DroppedQueueFull,
    /// QoS 0 dropped: the connection's write buffer was full.
    DroppedWriteBufferFull,
    /// QoS 0 for an offline session that does not queue QoS 0.
    Skipped,
    /// Not sent: larger than the client's Maximum Packet Size (v5).
    DroppedTooLarge,
    /// Not sent: its Message Expiry Interval had run out.
    Expired,
}

/// The live connection of a session.
pub struct Link {
    pub io: Rc<ConnIo>,
    pub version: ProtocolVersion,
    pub keep_alive_s: u16,
    pub last_seen: Instant,
    /// Boxed: most connections have none, and a `Will` is ~80 bytes.
    pub will: Option<Box<Will>>,
    pub peer: std::net::SocketAddr,
    /// QoS 1/2 messages the client may have unacknowledged: `max_inflight`,
    /// or the client's (v5) Receive Maximum if smaller.
    pub inflight_max: usize,
    /// MQTT 5 state of the connection; `None` for 3.1 / 3.1.1.
    pub v5: Option<Box<LinkV5>>,
}

/// What a v5 connection negotiated, and its topic aliases (which live as
/// long as the connection, not the session).
#[derive(Debug, Default)]
pub struct LinkV5 {
    /// The client's Maximum Packet Size (bytes, fixed header included).
    pub packet_max: usize,
    /// The client's Topic Alias Maximum: aliases the broker may use to it.
    pub alias_out_max: u16,
    /// Topic → alias the broker assigned on this connection.
    pub alias_out: AHashMap<ByteString, u16>,
    /// Alias → topic the client defined on this connection.
    pub alias_in: AHashMap<u16, ByteString>,
    /// Request Problem Information: reason strings may be sent.
    pub problem_info: bool,
    /// The Session Expiry Interval of the CONNECT was 0 (a DISCONNECT may
    /// then not set it).
    pub connect_expiry_zero: bool,
}

impl Link {
    /// The connection, unless it is closing.
    fn open(&self) -> bool {
        !self.io.is_closing()
    }

    /// Writes one PUBLISH for `msg` at `qos`. v5: with the message's
    /// properties, its remaining expiry, its subscription ids and an
    /// outgoing topic alias, unless it exceeds the client's Maximum Packet
    /// Size (then nothing is written and `false` returned).
    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        msg: &Message,
        sub_ids: &[u32],
        qos: QoS,
        packet_id: u16,
        retain: bool,
        dup: bool,
        now: Instant,
    ) -> bool {
        let Some(v5) = self.v5.as_deref_mut() else {
            self.put(qos, |b| {
                protocol::encode_publish(b, &msg.topic, &msg.payload, qos, packet_id, retain, dup)
            });
            return true;
        };
        let base = msg.meta.as_deref().map(|m| &m.properties);
        let message_expiry = msg.meta.as_deref().and_then(|m| {
            // Whole seconds left, rounded up, and never more than was sent.
            let left = m.expires_at?.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            Some(secs.min(m.expiry_interval_s as u64) as u32)
        });
        let (alias, new_alias) = match v5.alias_out.get(&msg.topic) {
            Some(&a) => (Some(a), false),
            None if (v5.alias_out.len() as u16) < v5.alias_out_max => {
                (Some(v5.alias_out.len() as u16 + 1), true)
            }
            None => (None, false),
        };
        let extras = PublishExtras {
            message_expiry,
            topic_alias: alias,
            subscription_ids: sub_ids,
        };
        let topic: &str = if alias.is_some() && !new_alias {
            ""
        } else {
            &msg.topic
        };
        let size = protocol::publish_v5_size(topic.len(), msg.payload.len(), qos, base, &extras);
        if size > v5.packet_max {
            return false;
        }
        if new_alias && let Some(a) = alias {
            v5.alias_out.insert(msg.topic.clone(), a);
        }
        self.put(qos, |b| {
            protocol::encode_publish_v5_with(
                b,
                topic,
                &msg.payload,
                qos,
                packet_id,
                retain,
                dup,
                base,
                &extras,
            )
        });
        true
    }

    /// Appends one encoded PUBLISH at `qos`: QoS 0 may wait for the core's
    /// write coalescing, QoS 1/2 is flushed at once.
    fn put(&self, qos: QoS, encode: impl FnOnce(&mut BytesMut)) {
        if qos == QoS::AtMostOnce {
            self.io.write_coalescing(encode);
        } else {
            self.io.write(encode);
        }
    }
}

/// One subscription as the session records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// Subscription Identifier; 0 for none.
    pub id: u32,
}

/// A hasher with no per-map state: every idle session has two (usually
/// empty) maps, and a random-state hasher would cost 32 bytes in each. The
/// keys come from the session's own client, who can only slow itself down.
pub type SessionHasher = BuildHasherDefault<AHasher>;

pub struct Session {
    pub client_id: ByteString,
    /// Session Expiry Interval, seconds: 0 ends the session with its
    /// connection, `u32::MAX` never expires (a 3.1.1 persistent session).
    pub expiry_s: u32,
    /// While offline: when the session expires (`None`: never, or online).
    pub expires_at: Option<Instant>,
    /// A will waiting for its Will Delay Interval, and when it is due.
    pub delayed_will: Option<Box<(Instant, Will)>>,
    /// Full filter (including `$share/g/`) → options.
    pub subscriptions: HashMap<ByteString, SubOptions, SessionHasher>,
    pub link: Option<Link>,
    /// Incremented for every connection; a reader whose generation no
    /// longer matches has been taken over and must not touch the session.
    pub generation: u64,
    inflight: VecDeque<Inflight>,
    queue: VecDeque<Message>,
    next_packet_id: u16,
    /// Incoming QoS 2 packet ids: PUBREC sent, PUBREL not yet received.
    pub incoming_qos2: HashSet<u16, SessionHasher>,
    /// As a publisher: pauses imposed by congested subscribers. The reader
    /// reads nothing more while this is non-zero.
    pub paused: u32,
    /// The reader task waiting for `paused` to reach zero.
    pub reader: Option<std::task::Waker>,
    /// As a subscriber: the publishers paused because of this session.
    pub blocked: Vec<Origin>,
    /// Since when the session has been congested without progress.
    pub congested_since: Option<Instant>,
    /// No progress for `stall_timeout`: the drop policy applies until it acks again.
    pub stalled: bool,
}

impl Session {
    pub fn new(client_id: ByteString, expiry_s: u32) -> Self {
        Session {
            client_id,
            expiry_s,
            expires_at: None,
            delayed_will: None,
            subscriptions: HashMap::default(),
            link: None,
            generation: 0,
            inflight: VecDeque::new(),
            queue: VecDeque::new(),
            next_packet_id: 1,
            incoming_qos2: HashSet::default(),
            paused: 0,
            reader: None,
            blocked: Vec::new(),
            congested_since: None,
            stalled: false,
        }
    }

    /// The connection, unless absent or closing.
    pub fn live_io(&self) -> Option<&Rc<ConnIo>> {
        self.link
            .as_ref()
            .map(|l| &l.io)
            .filter(|io| !io.is_closing())
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    #[cfg(test)]
    pub(crate) fn queue_front(&self) -> Option<&Message> {
        self.queue.front()
    }

    pub fn inflight(&self) -> &VecDeque<Inflight> {
        &self.inflight
    }

    /// Delivers `msg` at `qos` (already the minimum of the message's and the
    /// subscription's) with `retain` as the flag to send and `sub_ids` as its
    /// subscription identifiers. `detached` holds the owned copy made by an
    /// earlier session queueing the same message.
    #[allow(clippy::too_many_arguments)]
    pub fn deliver(
        &mut self,
        msg: &Message,
        qos: QoS,
        retain: bool,
        sub_ids: SubIds,
        config: &Config,
        now: Instant,
        detached: &mut Option<DetachCache>,
    ) -> Delivery {
        if msg.expired(now) {
            return Delivery::Expired;
        }
        let Some(link) = self.link.as_mut().filter(|l| l.open()) else {
            if qos == QoS::AtMostOnce && !config.queue_qos0_offline {
                return Delivery::Skipped;
            }
            return self.enqueue(with_qos(msg, qos, retain, sub_ids), config, detached);
        };
        if qos == QoS::AtMostOnce {
            let pending = link.io.pending_bytes();
            if pending >= config.write_buffer_max_bytes {
                // Back-pressure for QoS 0 too, while the client is reading:
                // write past the limit (at most once more) and pause the publisher.
                if config.backpressure
                    && !self.stalled
                    && pending < config.write_buffer_max_bytes + WRITE_OVERFLOW_BYTES_MAX
                {
                    if !link.write(msg, sub_ids.as_slice(), qos, 0, retain, false, now) {
                        return Delivery::DroppedTooLarge;
                    }
                    link.io.set_congested(true);
                    return Delivery::SentOverLimit;
                }
                return Delivery::DroppedWriteBufferFull;
            }
            if !link.write(msg, sub_ids.as_slice(), qos, 0, retain, false, now) {
                return Delivery::DroppedTooLarge;
            }
            return Delivery::Sent;
        }
        if self.inflight.len() < link.inflight_max && self.queue.is_empty() {
            return self.send_new(with_qos(msg, qos, retain, sub_ids), now);
        }
        self.enqueue(with_qos(msg, qos, retain, sub_ids), config, detached)
    }

    /// The one place a message is queued for a session that cannot take it
    /// now (offline, or its window is full). An offline-push hook (APNs/FCM)
    /// belongs here. Applies the queue-full policy.
    fn enqueue(
        &mut self,
        msg: Message,
        config: &Config,
        detached: &mut Option<DetachCache>,
    ) -> Delivery {
        if self.queue.len() >= config.queue_messages_max
            && config.backpressure
            && !self.stalled
            && msg.qos != QoS::AtMostOnce
            && self.live_io().is_some()
            && self.queue.len() < config.queue_messages_max + OVERFLOW_MESSAGES_MAX
        {
            self.queue.push_back(msg.detach_shared(detached));
            return Delivery::QueuedOverLimit;
        }
        if self.queue.len() >= config.queue_messages_max {
            match config.queue_full_policy {
                QueueFullPolicy::DropNew => return Delivery::DroppedQueueFull,
                QueueFullPolicy::DropOld => {
                    if self.queue.pop_front().is_none() {
                        // max_queued_messages = 0: nothing may be queued.
                        return Delivery::DroppedQueueFull;
                    }
                    self.queue.push_back(msg.detach_shared(detached));
                    return Delivery::DroppedQueueFull;
                }
            }
        }
        self.queue.push_back(msg.detach_shared(detached));
        Delivery::Queued
    }

    /// Assigns a packet id, records the message inflight and writes it.
    /// A message too large for the client is not sent (nor kept).
    fn send_new(&mut self, msg: Message, now: Instant) -> Delivery {
        let packet_id = self.allocate_packet_id();
        let state = if msg.qos == QoS::ExactlyOnce {
            InflightState::AwaitPubRec
        } else {
            InflightState::AwaitPubAck
        };
        if let Some(link) = self.link.as_mut().filter(|l| l.open())
            && !link.write(
                &msg,
                msg.sub_ids.as_slice(),
                msg.qos,
                packet_id,
                msg.retain,
                false,
                now,
            )
        {
            return Delivery::DroppedTooLarge;
        }
        self.inflight.push_back(Inflight {
            packet_id,
            msg,
            state,
        });
        Delivery::Sent
    }

    fn allocate_packet_id(&mut self) -> u16 {
        // The window is at most 65535 entries, so a free id always exists.
        loop {
            let id = self.next_packet_id;
            self.next_packet_id = if id == u16::MAX { 1 } else { id + 1 };
            if !self.inflight.iter().any(|m| m.packet_id == id) {
                return id;
            }
        }
    }

    /// Moves queued messages into the window while it has room and the
    /// client is connected, dropping those that expired meanwhile or are too
    /// large for the client (counted in `stats`). Returns how many were sent.
    pub fn fill_window(&mut self, now: Instant, stats: &mut super::ShardStats) -> usize {
        let mut sent = 0;
        // Writing never closes the connection: its state is read once.
        let Some(window) = self
            .link
            .as_ref()
            .filter(|l| l.open())
            .map(|l| l.inflight_max)
        else {
            return 0;
        };
        while self.inflight.len() < window {
            let Some(msg) = self.queue.pop_front() else {
                break;
            };
            if msg.expired(now) {
                stats.dropped_expired += 1;
                continue;
            }
            let delivered = if msg.qos == QoS::AtMostOnce {
                // Queued QoS 0 (queue_qos0_messages): no window, no ack.
                let written = self.link.as_mut().is_some_and(|link| {
                    link.write(
                        &msg,
                        msg.sub_ids.as_slice(),
                        msg.qos,
                        0,
                        msg.retain,
                        false,
                        now,
                    )
                });
                if written {
                    Delivery::Sent
                } else {
                    Delivery::DroppedTooLarge
                }
            } else {
                self.send_new(msg, now)
            };
            match delivered {
                Delivery::Sent => sent += 1,
                _ => stats.dropped_too_large += 1,
            }
        }
        sent
    }

    /// PUBACK from the client. Returns true if it matched a QoS 1 message.
    pub fn on_puback(&mut self, packet_id: u16) -> bool {
        self.remove_inflight(packet_id, InflightState::AwaitPubAck)
    }

    /// PUBREC from the client: the message moves to PUBCOMP-awaited and a
    /// PUBREL is written. An unknown id still gets its PUBREL (the client may
    /// have a stale state after a reconnect).
    pub fn on_pubrec(&mut self, packet_id: u16) {
        if let Some(m) = self
            .inflight
            .iter_mut()
            .find(|m| m.packet_id == packet_id && m.state == InflightState::AwaitPubRec)
        {
            m.state = InflightState::AwaitPubComp;
        }
        if let Some(io) = self.live_io() {
            io.write(|b| protocol::encode(&protocol::Packet::PubRel(packet_id), b));
        }
    }

    /// v5 PUBREC with a reason code of 0x80 or more: the client refused the
    /// message; the exchange ends there (no PUBREL). True if it matched.
    pub fn on_pubrec_refused(&mut self, packet_id: u16) -> bool {
        self.remove_inflight(packet_id, InflightState::AwaitPubRec)
    }

    /// PUBCOMP from the client. Returns true if it matched.
    pub fn on_pubcomp(&mut self, packet_id: u16) -> bool {
        self.remove_inflight(packet_id, InflightState::AwaitPubComp)
    }

    fn remove_inflight(&mut self, packet_id: u16, state: InflightState) -> bool {
        // Acks usually come in order: the front is checked first.
        let pos = self
            .inflight
            .iter()
            .position(|m| m.packet_id == packet_id && m.state == state);
        match pos {
            Some(0) => self.inflight.pop_front().is_some(),
            Some(i) => self.inflight.remove(i).is_some(),
            None => false,
        }
    }

    /// After a reconnect of a persistent session: re-send every unacknowledged
    /// PUBLISH with DUP set and every PUBREL, with their original packet ids,
    /// in their original order, then fill the window from the queue. Returns
    /// the number of PUBLISH packets written.
    pub fn resend_inflight(&mut self, now: Instant, stats: &mut super::ShardStats) -> usize {
        let Some(link) = self.link.as_mut().filter(|l| l.open()) else {
            return 0;
        };
        let mut resent = 0;
        for m in &self.inflight {
            match m.state {
                InflightState::AwaitPubAck | InflightState::AwaitPubRec => {
                    // Once sent, a message is completed even if it has
                    // expired since; only a smaller packet limit stops it.
                    if link.write(
                        &m.msg,
                        m.msg.sub_ids.as_slice(),
                        m.msg.qos,
                        m.packet_id,
                        m.msg.retain,
                        true,
                        now,
                    ) {
                        resent += 1;
                    }
                }
                InflightState::AwaitPubComp => link
                    .io
                    .write(|b| protocol::encode(&protocol::Packet::PubRel(m.packet_id), b)),
            }
        }
        resent + self.fill_window(now, stats)
    }

    /// The connection wrote its buffer down at `now` (QoS 0 progress).
    /// Returns the publishers to resume once the buffer and queue have
    /// drained to half.
    pub fn on_write_progress(&mut self, now: Instant, config: &Config) -> Vec<Origin> {
        self.stalled = false;
        if self.blocked.is_empty() {
            return Vec::new();
        }
        self.congested_since = Some(now);
        let drained = self
            .live_io()
            .is_none_or(|io| io.pending_bytes() <= config.write_buffer_max_bytes / 2);
        if drained && self.queue.len() <= config.queue_messages_max / 2 {
            self.congested_since = None;
            if let Some(io) = self.live_io() {
                io.set_congested(false);
            }
            return std::mem::take(&mut self.blocked);
        }
        Vec::new()
    }

    /// An acknowledgement arrived at `now`: the session is making progress.
    /// Returns the publishers to resume if the queue has drained to half.
    pub fn on_progress(&mut self, now: Instant, config: &Config) -> Vec<Origin> {
        self.stalled = false;
        if self.blocked.is_empty() {
            return Vec::new();
        }
        self.congested_since = Some(now);
        if self.queue.len() <= config.queue_messages_max / 2 {
            self.congested_since = None;
            return std::mem::take(&mut self.blocked);
        }
        Vec::new()
    }

    /// Forgets messages (a clean session starting over).
    pub fn clear_messages(&mut self) {
        self.inflight.clear();
        self.queue.clear();
        self.incoming_qos2.clear();
    }
}

#[inline]
fn with_qos(msg: &Message, qos: QoS, retain: bool, sub_ids: SubIds) -> Message {
    Message {
        topic: msg.topic.clone(),
        payload: msg.payload.clone(),
        qos,
        retain,
        meta: msg.meta.clone(),
        sub_ids,
    }
}
