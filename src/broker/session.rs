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
use super::{DetachCache, Message, Origin};
use crate::config::{Config, QueueFullPolicy};
use crate::protocol::{self, ProtocolVersion, QoS, Will};
use ahash::{AHashMap, AHashSet};
use bytestring::ByteString;
use std::collections::VecDeque;
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
}

/// The live connection of a session.
pub struct Link {
    pub io: Rc<ConnIo>,
    pub version: ProtocolVersion,
    pub keep_alive_s: u16,
    pub last_seen: Instant,
    pub will: Option<Will>,
    pub peer: std::net::SocketAddr,
}

pub struct Session {
    pub client_id: ByteString,
    /// Clean session: discarded when the connection ends.
    pub clean: bool,
    /// Full filter (including `$share/g/`) → granted QoS.
    pub subscriptions: AHashMap<ByteString, QoS>,
    pub link: Option<Link>,
    /// Incremented for every connection; a reader whose generation no
    /// longer matches has been taken over and must not touch the session.
    pub generation: u64,
    inflight: VecDeque<Inflight>,
    queue: VecDeque<Message>,
    next_packet_id: u16,
    /// Incoming QoS 2 packet ids: PUBREC sent, PUBREL not yet received.
    pub incoming_qos2: AHashSet<u16>,
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
    pub fn new(client_id: ByteString, clean: bool) -> Self {
        Session {
            client_id,
            clean,
            subscriptions: AHashMap::default(),
            link: None,
            generation: 0,
            inflight: VecDeque::new(),
            queue: VecDeque::new(),
            next_packet_id: 1,
            incoming_qos2: AHashSet::default(),
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
    /// subscription's) with `retain` as the flag to send. `detached` holds
    /// the owned copy made by an earlier session queueing the same message.
    pub fn deliver(
        &mut self,
        msg: &Message,
        qos: QoS,
        retain: bool,
        config: &Config,
        detached: &mut Option<DetachCache>,
    ) -> Delivery {
        let Some(io) = self.live_io() else {
            if qos == QoS::AtMostOnce && !config.queue_qos0_offline {
                return Delivery::Skipped;
            }
            return self.enqueue(with_qos(msg, qos, retain), config, detached);
        };
        if qos == QoS::AtMostOnce {
            let pending = io.pending_bytes();
            if pending >= config.write_buffer_max_bytes {
                // Back-pressure for QoS 0 too, while the client is reading:
                // write past the limit (at most once more) and pause the publisher.
                if config.backpressure
                    && !self.stalled
                    && pending < config.write_buffer_max_bytes + WRITE_OVERFLOW_BYTES_MAX
                {
                    write_publish(io, &msg.topic, &msg.payload, qos, 0, retain, false);
                    io.set_congested(true);
                    return Delivery::SentOverLimit;
                }
                return Delivery::DroppedWriteBufferFull;
            }
            write_publish(io, &msg.topic, &msg.payload, qos, 0, retain, false);
            return Delivery::Sent;
        }
        if self.inflight.len() < config.inflight_max && self.queue.is_empty() {
            self.send_new(with_qos(msg, qos, retain));
            return Delivery::Sent;
        }
        self.enqueue(with_qos(msg, qos, retain), config, detached)
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
    fn send_new(&mut self, msg: Message) {
        let packet_id = self.allocate_packet_id();
        let state = if msg.qos == QoS::ExactlyOnce {
            InflightState::AwaitPubRec
        } else {
            InflightState::AwaitPubAck
        };
        if let Some(io) = self.live_io() {
            write_publish(
                io,
                &msg.topic,
                &msg.payload,
                msg.qos,
                packet_id,
                msg.retain,
                false,
            );
        }
        self.inflight.push_back(Inflight {
            packet_id,
            msg,
            state,
        });
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
    /// client is connected. Returns how many were sent.
    pub fn fill_window(&mut self, config: &Config) -> usize {
        let mut sent = 0;
        while self.inflight.len() < config.inflight_max && self.live_io().is_some() {
            let Some(msg) = self.queue.pop_front() else {
                break;
            };
            if msg.qos == QoS::AtMostOnce {
                // Queued QoS 0 (queue_qos0_messages): no window, no ack.
                if let Some(io) = self.live_io() {
                    write_publish(io, &msg.topic, &msg.payload, msg.qos, 0, msg.retain, false);
                }
            } else {
                self.send_new(msg);
            }
            sent += 1;
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
    pub fn resend_inflight(&mut self, config: &Config) -> usize {
        let Some(io) = self.live_io().cloned() else {
            return 0;
        };
        let resent = self
            .inflight
            .iter()
            .filter(|m| m.state != InflightState::AwaitPubComp)
            .count();
        for m in &self.inflight {
            match m.state {
                InflightState::AwaitPubAck | InflightState::AwaitPubRec => write_publish(
                    &io,
                    &m.msg.topic,
                    &m.msg.payload,
                    m.msg.qos,
                    m.packet_id,
                    m.msg.retain,
                    true,
                ),
                InflightState::AwaitPubComp => {
                    io.write(|b| protocol::encode(&protocol::Packet::PubRel(m.packet_id), b))
                }
            }
        }
        resent + self.fill_window(config)
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

/// Appends one PUBLISH to the connection's write buffer.
#[inline]
fn write_publish(
    io: &ConnIo,
    topic: &str,
    payload: &[u8],
    qos: QoS,
    packet_id: u16,
    retain: bool,
    dup: bool,
) {
    io.write(|b| protocol::encode_publish(b, topic, payload, qos, packet_id, retain, dup));
}

fn with_qos(msg: &Message, qos: QoS, retain: bool) -> Message {
    Message {
        topic: msg.topic.clone(),
        payload: msg.payload.clone(),
        qos,
        retain,
    }
}
