//! One core's broker state and the operations on it. Every method is
//! synchronous and runs on the shard's own thread; tasks borrow the shard,
//! call one method, and release it before awaiting anything.
//!
//! Owns: the session slab, the client ids homed here, the subscription trie
//! (local subscribers and, per filter, the mask of other cores that have
//! subscribers: the cross-core index replica), the retained replica, the
//! outbox to other cores and this core's counters.
//!
//! Index protocol: when this core gains its first subscriber for a filter it
//! broadcasts `IndexAdd` and holds the SUBACK until every core has acked, so a
//! publish on any core after the SUBACK reaches the new subscriber. Losing
//! the last subscriber broadcasts `IndexRemove`. Mailboxes are FIFO per pair,
//! so every core sees one core's adds and removes in order.

use super::conn::ConnIo;
use super::mailbox::Outbox;
use super::session::{Delivery, Session, SubOptions};
use super::{Message, Origin, ShardMsg, ShardStats, SubIds, home_core};
use crate::config::Config;
use crate::protocol::{QoS, Will};
use crate::topic::{Filter, TopicTree, Trie, parse_filter};
use ahash::AHashMap;
use bytestring::ByteString;
use slab::Slab;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

pub type ShardRef = Rc<RefCell<Shard>>;

/// A subscriber on this core, with the options that decide each delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalSub {
    pub session: usize,
    pub qos: QoS,
    /// v5 No Local: not its own messages.
    pub no_local: bool,
    /// v5 Retain As Published: forward the RETAIN flag.
    pub retain_as_published: bool,
    /// v5 Subscription Identifier; 0 for none.
    pub id: u32,
}

impl LocalSub {
    fn sub_ids(&self) -> SubIds {
        SubIds::of(self.id)
    }
}

/// A `$share/{group}/{filter}` group, as seen from this core.
#[derive(Debug)]
pub struct SharedGroup {
    /// The full filter `$share/{group}/{filter}`.
    pub share: ByteString,
    pub group: ByteString,
    pub members: Vec<LocalSub>,
    /// Other cores with members.
    pub remote: u64,
    /// An `IndexAdd` for this group not yet acked by every core.
    pub pending: Option<u64>,
    /// Round-robin positions: over cores, then over local members.
    next_core: Cell<usize>,
    next_member: Cell<usize>,
}

/// Everything this core keeps for one topic filter.
#[derive(Debug, Default)]
pub struct FilterEntry {
    pub subs: Vec<LocalSub>,
    /// Other cores with subscribers for this (plain) filter.
    pub remote: u64,
    pub pending: Option<u64>,
    pub shared: Vec<SharedGroup>,
}

impl FilterEntry {
    fn is_empty(&self) -> bool {
        self.subs.is_empty() && self.remote == 0 && self.shared.is_empty()
    }
}

/// Where one shared-subscription delivery goes.
enum SharedTarget {
    Local(LocalSub),
    Remote(usize, ByteString),
}

/// An `IndexAdd` waiting for acks.
struct PendingAck {
    remaining: usize,
    filter: ByteString,
    waiters: Vec<Waker>,
}

/// Why a connection ended; decides the log line and, for a v5 client, the
/// reason code of the DISCONNECT the broker sends before closing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent DISCONNECT (its handler has already discarded the
    /// will for reason 0x00).
    ClientDisconnect,
    /// The client closed the socket.
    Eof,
    Io,
    /// Bytes that break the wire format: 0x81.
    Malformed(&'static str),
    /// A protocol rule broken: 0x82.
    Protocol(&'static str),
    /// A packet above `max_packet_size`: 0x95.
    TooLarge,
    /// Another v5 reason code (0x93, 0x94, 0x9A, 0x9B, 0xA1...) and why.
    Refused(u8, &'static str),
    Keepalive,
    Takeover,
    Shutdown,
}

impl CloseReason {
    /// The reason for a decode error.
    pub fn from_decode(e: &crate::protocol::DecodeError) -> CloseReason {
        use crate::protocol::DecodeError as E;
        match e {
            E::Malformed(why) => CloseReason::Malformed(why),
            E::Protocol(why) => CloseReason::Protocol(why),
            E::TooLarge { .. } => CloseReason::TooLarge,
            E::UnsupportedProtocolLevel(_) | E::BadProtocolName => {
                CloseReason::Protocol("CONNECT after CONNECT")
            }
        }
    }

    /// The reason code and text of the DISCONNECT a v5 client is sent, if
    /// the broker is the one closing.
    pub fn v5_disconnect(&self) -> Option<(u8, &'static str)> {
        use crate::protocol::reason as r;
        Some(match *self {
            CloseReason::ClientDisconnect | CloseReason::Eof | CloseReason::Io => return None,
            CloseReason::Malformed(why) => (r::MALFORMED_PACKET, why),
            CloseReason::Protocol(why) => (r::PROTOCOL_ERROR, why),
            CloseReason::TooLarge => (r::PACKET_TOO_LARGE, "packet larger than max_packet_size"),
            CloseReason::Refused(code, why) => (code, why),
            CloseReason::Keepalive => (r::KEEP_ALIVE_TIMEOUT, "keep alive timeout"),
            CloseReason::Takeover => (r::SESSION_TAKEN_OVER, "another connection took over"),
            CloseReason::Shutdown => (r::SERVER_SHUTTING_DOWN, "server shutting down"),
        })
    }
}

pub struct Shard {
    pub id: usize,
    pub cores: usize,
    pub config: Arc<Config>,
    pub sessions: Slab<Session>,
    pub by_client_id: super::client_ids::ClientIds,
    pub(super) trie: Trie<FilterEntry>,
    pub(super) retained: TopicTree<Message>,
    pub outbox: Outbox,
    acks: AHashMap<u64, PendingAck>,
    next_token: u64,
    /// Reused buffer of matched subscriptions: no allocation per publish.
    scratch: Vec<LocalSub>,
    pub stats: ShardStats,
    /// Connections accepted on this core and not yet closed (including ones
    /// handed to another core until they leave).
    pub connections: usize,
    /// Connections over `max_connections` being answered CONNACK 0x97 / 0x03.
    pub refusing: usize,
    /// Connections of the whole process (the `max_connections` limit).
    pub connections_total: Arc<std::sync::atomic::AtomicUsize>,
    /// Sockets still waiting for their CONNECT: fd and deadline. Entries
    /// are removed by their connection task before the socket closes.
    pub connecting: Slab<(std::os::fd::RawFd, Instant)>,
    pub shutting_down: bool,
    next_assigned_id: u64,
    pub(super) sys: super::sys::SysState,
    /// A task is retrying an outbox flush that found a full mailbox.
    pub outbox_retrying: bool,
    /// Cancels the accept loops at shutdown.
    pub accept_cancel: Option<monoio::io::Canceller>,
    /// The publisher of the message being routed, if a client (back-pressure).
    origin: Option<Origin>,
    /// A coarse clock: set on every read batch and tick.
    pub now: Instant,
    /// The owned copy of the message being routed, once a session queued it;
    /// cleared when its routing ends.
    detached: Option<super::DetachCache>,
    /// Offline sessions' deadlines (session expiry, delayed will): when,
    /// which session, which generation. Stale entries are skipped.
    timers: std::collections::BinaryHeap<std::cmp::Reverse<(Instant, usize, u64)>>,
}

impl Shard {
    pub fn new(id: usize, config: Arc<Config>, outbox: Outbox) -> Shard {
        let cores = outbox.cores();
        Shard {
            id,
            cores,
            config,
            sessions: Slab::new(),
            by_client_id: Default::default(),
            trie: Trie::default(),
            retained: TopicTree::default(),
            outbox,
            acks: AHashMap::default(),
            next_token: 0,
            scratch: Vec::new(),
            stats: ShardStats::default(),
            connections: 0,
            refusing: 0,
            connections_total: Arc::default(),
            connecting: Slab::new(),
            shutting_down: false,
            next_assigned_id: 0,
            sys: super::sys::SysState::new(cores),
            outbox_retrying: false,
            accept_cancel: None,
            origin: None,
            now: Instant::now(),
            detached: None,
            timers: std::collections::BinaryHeap::new(),
        }
    }

    /// A client id for a client that sent an empty one, chosen so that its
    /// home is this core (no hand-over needed).
    pub fn assign_client_id(&mut self) -> ByteString {
        loop {
            self.next_assigned_id += 1;
            let id = format!("ringmq-{}-{:x}", self.id, self.next_assigned_id);
            if home_core(&id, self.cores) == self.id {
                return ByteString::from(id);
            }
        }
    }

    // ----- publishing --------------------------------------------------

    /// Routes a message published on this core by `origin` (None for wills
    /// and `$SYS`): retained store, local subscribers, other cores, shared
    /// groups. Returns false when no subscription matched on any core.
    pub fn publish(&mut self, msg: Message, origin: Option<Origin>) -> bool {
        self.origin = origin;
        if msg.retain {
            self.retain(msg.clone());
        }
        let mut matched = std::mem::take(&mut self.scratch);
        let mut remote = 0u64;
        let mut shared: Vec<SharedTarget> = Vec::new();
        let mut entries = 0usize;
        let me = self.id;
        self.trie.for_each_match(&msg.topic, |e| {
            if !e.subs.is_empty() {
                entries += 1;
                matched.extend_from_slice(&e.subs);
            }
            remote |= e.remote;
            for g in &e.shared {
                if let Some(t) = pick_shared(g, me) {
                    shared.push(t);
                }
            }
        });
        let any = !matched.is_empty() || remote != 0 || !shared.is_empty();
        self.deliver_matched(&msg, &mut matched, entries);
        self.scratch = matched;
        for core in bits(remote) {
            self.outbox.push(
                core,
                ShardMsg::Publish {
                    msg: msg.clone(),
                    origin,
                },
            );
        }
        for t in shared {
            match t {
                SharedTarget::Local(s) => self.deliver_sub(&s, &msg),
                SharedTarget::Remote(core, share) => self.outbox.push(
                    core,
                    ShardMsg::SharedPublish {
                        msg: msg.clone(),
                        share,
                        hops: 0,
                        origin,
                    },
                ),
            }
        }
        self.origin = None;
        self.detached = None;
        any
    }

    /// A publish routed here by another core: local plain subscribers only.
    pub fn publish_from_core(&mut self, msg: Message, origin: Option<Origin>) {
        self.origin = origin;
        let mut matched = std::mem::take(&mut self.scratch);
        let mut entries = 0usize;
        self.trie.for_each_match(&msg.topic, |e| {
            if !e.subs.is_empty() {
                entries += 1;
                matched.extend_from_slice(&e.subs);
            }
        });
        self.deliver_matched(&msg, &mut matched, entries);
        self.scratch = matched;
        self.origin = None;
        self.detached = None;
    }

    /// A shared-group delivery routed here: one local member, or on to
    /// another core of the group if this core has none left.
    pub fn publish_shared(
        &mut self,
        msg: Message,
        share: ByteString,
        hops: u8,
        origin: Option<Origin>,
    ) {
        let Some(Filter::Shared { group, filter }) = parse_filter(&share) else {
            return;
        };
        let me = self.id;
        let target = self
            .trie
            .get(filter)
            .and_then(|e| e.shared.iter().find(|g| &*g.group == group))
            // The sending core chose this core: a local member takes it; only
            // a group that left this core meanwhile is forwarded.
            .and_then(|g| {
                pick_member(g)
                    .map(SharedTarget::Local)
                    .or_else(|| pick_shared(g, me))
            });
        match target {
            Some(SharedTarget::Local(s)) => {
                self.origin = origin;
                self.deliver_sub(&s, &msg);
                self.origin = None;
                self.detached = None;
            }
            Some(SharedTarget::Remote(core, share)) if (hops as usize) < self.cores => {
                self.outbox.push(
                    core,
                    ShardMsg::SharedPublish {
                        msg,
                        share,
                        hops: hops + 1,
                        origin,
                    },
                );
            }
            // The group has left every core: nobody to deliver to.
            _ => {}
        }
    }

    /// Delivers to the matched subscriptions, once per session: at the
    /// highest QoS among its matching subscriptions, with all their
    /// subscription identifiers. `entries` is the number of filters that
    /// contributed: with one, sessions are already distinct.
    fn deliver_matched(&mut self, msg: &Message, matched: &mut Vec<LocalSub>, entries: usize) {
        // No Local: the publisher's own session (on this core) is skipped.
        let own = self
            .origin
            .filter(|o| o.core == self.id)
            .map_or(usize::MAX, |o| o.session);
        if entries <= 1 {
            for s in matched.iter() {
                if s.no_local && s.session == own {
                    continue;
                }
                self.deliver_sub(s, msg);
            }
            matched.clear();
            return;
        }
        matched.retain(|s| !(s.no_local && s.session == own));
        matched.sort_unstable_by_key(|s| s.session);
        let mut i = 0;
        while i < matched.len() {
            let first = matched[i];
            let mut j = i + 1;
            while j < matched.len() && matched[j].session == first.session {
                j += 1;
            }
            if j - i == 1 {
                self.deliver_sub(&first, msg);
            } else {
                let group = &matched[i..j];
                let qos = group.iter().map(|s| s.qos).max().unwrap_or(first.qos);
                let retain = msg.retain && group.iter().any(|s| s.retain_as_published);
                let sub_ids = SubIds::collect(group.iter().map(|s| s.id));
                self.deliver_one(first.session, msg, qos, retain, sub_ids);
            }
            i = j;
        }
        matched.clear();
    }

    /// Delivers `msg` through one subscription, with its options.
    #[inline(always)]
    fn deliver_sub(&mut self, s: &LocalSub, msg: &Message) {
        let retain = msg.retain && s.retain_as_published;
        self.deliver_one(s.session, msg, s.qos, retain, s.sub_ids());
    }

    /// Delivers `msg` to one session at `min(msg.qos, granted)`.
    #[inline]
    pub(super) fn deliver_one(
        &mut self,
        session: usize,
        msg: &Message,
        granted: QoS,
        retain: bool,
        sub_ids: SubIds,
    ) {
        let Some(s) = self.sessions.get_mut(session) else {
            debug_assert!(false, "subscriber {session} has no session");
            return;
        };
        match s.deliver(
            msg,
            msg.qos.min(granted),
            retain,
            sub_ids,
            &self.config,
            self.now,
            &mut self.detached,
        ) {
            Delivery::Sent => self.stats.messages_sent += 1,
            Delivery::Queued | Delivery::Skipped => {}
            Delivery::QueuedOverLimit => {
                if let Some(origin) = self.origin {
                    self.block(session, origin);
                }
            }
            Delivery::SentOverLimit => {
                self.stats.messages_sent += 1;
                if let Some(origin) = self.origin {
                    self.block(session, origin);
                }
            }
            Delivery::DroppedQueueFull => self.stats.dropped_queue_full += 1,
            Delivery::DroppedWriteBufferFull => self.stats.dropped_write_buffer_full += 1,
            Delivery::DroppedTooLarge => self.stats.dropped_too_large += 1,
            Delivery::Expired => self.stats.dropped_expired += 1,
        }
    }

    // ----- back-pressure -----------------------------------------------

    /// Subscriber `session` is congested by `origin`: pause that publisher
    /// (once per subscriber) until [`Shard::release`].
    fn block(&mut self, session: usize, origin: Origin) {
        let now = self.now;
        let Some(s) = self.sessions.get_mut(session) else {
            return;
        };
        if s.blocked.contains(&origin) {
            return;
        }
        if s.blocked.is_empty() {
            s.congested_since = Some(now);
        }
        s.blocked.push(origin);
        self.stats.publisher_pauses += 1;
        if origin.core == self.id {
            self.pause(origin);
        } else {
            self.outbox.push(origin.core, ShardMsg::Pause(origin));
        }
    }

    /// Resumes the publishers `origins` (local ones now, others by mail).
    fn release(&mut self, origins: Vec<Origin>) {
        for o in origins {
            if o.core == self.id {
                self.resume(o);
            } else {
                self.outbox.push(o.core, ShardMsg::Resume(o));
            }
        }
    }

    /// Releases every publisher blocked by `session` (it left or stalled).
    fn release_all(&mut self, session: usize) {
        let blocked = match self.sessions.get_mut(session) {
            Some(s) => {
                s.congested_since = None;
                std::mem::take(&mut s.blocked)
            }
            None => return,
        };
        self.release(blocked);
    }

    /// A local publisher stops being read.
    pub fn pause(&mut self, o: Origin) {
        if let Some(s) = self.sessions.get_mut(o.session)
            && s.generation == o.generation
        {
            s.paused += 1;
        }
    }

    /// One pause of a local publisher is over.
    pub fn resume(&mut self, o: Origin) {
        if let Some(s) = self.sessions.get_mut(o.session)
            && s.generation == o.generation
        {
            s.paused = s.paused.saturating_sub(1);
            if s.paused == 0
                && let Some(w) = s.reader.take()
            {
                w.wake();
            }
        }
    }

    /// An acknowledgement from `session`: progress; maybe resume its publishers.
    pub(super) fn progress(&mut self, session: usize) {
        // Field borrows, not an Arc clone: the config is shared by every
        // core, and a reference-count update per ack would bounce its cache
        // line between them.
        let resume = match self.sessions.get_mut(session) {
            Some(s) => s.on_progress(self.now, &self.config),
            None => return,
        };
        if !resume.is_empty() {
            self.release(resume);
        }
    }

    /// The writer of `session` completed a write while it was congested.
    pub fn write_progress(&mut self, session: usize, generation: u64) {
        let resume = match self.sessions.get_mut(session) {
            Some(s) if s.generation == generation => s.on_write_progress(self.now, &self.config),
            _ => return,
        };
        if !resume.is_empty() {
            self.release(resume);
        }
    }

    /// Congested subscribers that acknowledged nothing for `stall_timeout`
    /// are stalled: their publishers go free and the drop policy applies.
    pub fn check_stalled(&mut self, now: Instant) {
        let timeout = std::time::Duration::from_secs(self.config.stall_timeout_s);
        let stalled: Vec<usize> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.congested_since
                    .is_some_and(|t| now.duration_since(t) > timeout)
            })
            .map(|(k, _)| k)
            .collect();
        for key in stalled {
            if let Some(s) = self.sessions.get_mut(key) {
                log::warn!(
                    "client {} acknowledged nothing for {}s: stalled, {} publisher(s) released, queue-full policy applies",
                    s.client_id,
                    timeout.as_secs(),
                    s.blocked.len()
                );
                s.stalled = true;
                if let Some(io) = s.live_io() {
                    io.set_congested(false);
                }
            }
            self.release_all(key);
        }
    }

    /// True while the publisher `session` must not be read; registers `waker`.
    pub fn publisher_paused(&mut self, session: usize, generation: u64, waker: &Waker) -> bool {
        match self.sessions.get_mut(session) {
            Some(s) if s.generation == generation && s.paused > 0 => {
                s.reader = Some(waker.clone());
                true
            }
            _ => false,
        }
    }

    // ----- retained messages --------------------------------------------

    /// Sends a retained message to its topic's home core for sequencing.
    fn retain(&mut self, msg: Message) {
        let msg = msg.detach();
        let home = home_core(&msg.topic, self.cores);
        if home == self.id {
            self.sequence_retained(msg);
        } else {
            self.outbox.push(home, ShardMsg::RetainSequence(msg));
        }
    }

    /// On the topic's home core: apply, then replicate to every other core.
    pub fn sequence_retained(&mut self, msg: Message) {
        for core in (0..self.cores).filter(|&c| c != self.id) {
            self.outbox.push(core, ShardMsg::RetainApply(msg.clone()));
        }
        self.apply_retained(msg);
    }

    /// Updates the local replica: an empty payload clears the topic.
    pub fn apply_retained(&mut self, msg: Message) {
        if msg.payload.is_empty() {
            self.retained.remove(&msg.topic);
        } else {
            let topic = msg.topic.clone();
            self.retained.insert(&topic, msg);
        }
    }

    /// Delivers the retained messages matching `filter` to a new subscriber
    /// (with RETAIN set, and the subscription's identifier). Expired ones
    /// are removed instead.
    pub(super) fn deliver_retained(&mut self, session: usize, filter: &str, sub: SubOptions) {
        let mut found = Vec::new();
        self.retained
            .for_each_match(filter, |_, m| found.push(m.clone()));
        let sub_ids = SubIds::of(sub.id);
        for m in found {
            if m.expired(self.now) {
                self.retained.remove(&m.topic);
                continue;
            }
            self.deliver_one(session, &m, sub.qos, true, sub_ids.clone());
        }
        self.detached = None;
    }

    // ----- subscriptions and the cross-core index -----------------------

    /// Adds (or updates) a subscription of `session`. Returns the token of an
    /// index update that must be acked before the SUBACK, if any.
    pub(super) fn add_subscription(
        &mut self,
        session: usize,
        raw: &ByteString,
        o: SubOptions,
    ) -> Option<u64> {
        let filter = parse_filter(raw)?;
        let sub = LocalSub {
            session,
            qos: o.qos,
            no_local: o.no_local,
            retain_as_published: o.retain_as_published,
            id: o.id,
        };
        let entry = self.trie.entry(filter.topic_filter());
        let (members, pending) = match filter {
            Filter::Plain(_) => (&mut entry.subs, &mut entry.pending),
            Filter::Shared { group, .. } => {
                let i = match entry.shared.iter().position(|g| &*g.group == group) {
                    Some(i) => i,
                    None => {
                        entry.shared.push(SharedGroup {
                            share: raw.clone(),
                            group: ByteString::from(group),
                            members: Vec::new(),
                            remote: 0,
                            pending: None,
                            next_core: Cell::new(0),
                            next_member: Cell::new(0),
                        });
                        entry.shared.len() - 1
                    }
                };
                let g = &mut entry.shared[i];
                (&mut g.members, &mut g.pending)
            }
        };
        if let Some(existing) = members.iter_mut().find(|m| m.session == session) {
            *existing = sub;
            return *pending;
        }
        let first = members.is_empty();
        members.push(sub);
        if first && self.cores > 1 {
            self.next_token += 1;
            let token = (self.next_token << 6) | self.id as u64;
            *pending = Some(token);
            self.acks.insert(
                token,
                PendingAck {
                    remaining: self.cores - 1,
                    filter: raw.clone(),
                    waiters: Vec::new(),
                },
            );
            for core in (0..self.cores).filter(|&c| c != self.id) {
                self.outbox.push(
                    core,
                    ShardMsg::IndexAdd {
                        filter: raw.clone(),
                        token,
                    },
                );
            }
        }
        *pending
    }

    /// Removes a subscription of `session`. Returns true if it existed.
    pub(super) fn remove_subscription(&mut self, session: usize, raw: &str) -> bool {
        let Some(filter) = parse_filter(raw) else {
            return false;
        };
        let Some(entry) = self.trie.get_mut(filter.topic_filter()) else {
            return false;
        };
        let (removed, now_empty) = match filter {
            Filter::Plain(_) => {
                let before = entry.subs.len();
                entry.subs.retain(|s| s.session != session);
                (entry.subs.len() < before, entry.subs.is_empty())
            }
            Filter::Shared { group, .. } => {
                let Some(i) = entry.shared.iter().position(|g| &*g.group == group) else {
                    return false;
                };
                let g = &mut entry.shared[i];
                let before = g.members.len();
                g.members.retain(|s| s.session != session);
                let result = (g.members.len() < before, g.members.is_empty());
                if g.members.is_empty() && g.remote == 0 {
                    entry.shared.swap_remove(i);
                }
                result
            }
        };
        if removed && now_empty && self.cores > 1 {
            for core in (0..self.cores).filter(|&c| c != self.id) {
                self.outbox.push(
                    core,
                    ShardMsg::IndexRemove {
                        filter: ByteString::from(raw),
                    },
                );
            }
        }
        self.trie
            .remove_if(filter.topic_filter(), FilterEntry::is_empty);
        removed
    }

    /// Another core gained its first subscriber for `raw`.
    pub fn index_add(&mut self, from: usize, raw: &ByteString, token: u64) {
        if let Some(filter) = parse_filter(raw) {
            let entry = self.trie.entry(filter.topic_filter());
            let bit = 1u64 << from;
            match filter {
                Filter::Plain(_) => entry.remote |= bit,
                Filter::Shared { group, .. } => {
                    match entry.shared.iter_mut().find(|g| &*g.group == group) {
                        Some(g) => g.remote |= bit,
                        None => entry.shared.push(SharedGroup {
                            share: raw.clone(),
                            group: ByteString::from(group),
                            members: Vec::new(),
                            remote: bit,
                            pending: None,
                            next_core: Cell::new(0),
                            next_member: Cell::new(0),
                        }),
                    }
                }
            }
        }
        self.outbox.push(from, ShardMsg::IndexAck { token });
    }

    /// Another core lost its last subscriber for `raw`.
    pub fn index_remove(&mut self, from: usize, raw: &str) {
        let Some(filter) = parse_filter(raw) else {
            return;
        };
        let Some(entry) = self.trie.get_mut(filter.topic_filter()) else {
            return;
        };
        let bit = 1u64 << from;
        match filter {
            Filter::Plain(_) => entry.remote &= !bit,
            Filter::Shared { group, .. } => {
                if let Some(i) = entry.shared.iter().position(|g| &*g.group == group) {
                    let g = &mut entry.shared[i];
                    g.remote &= !bit;
                    if g.members.is_empty() && g.remote == 0 {
                        entry.shared.swap_remove(i);
                    }
                }
            }
        }
        self.trie
            .remove_if(filter.topic_filter(), FilterEntry::is_empty);
    }

    /// Another core recorded our `IndexAdd`.
    pub fn index_ack(&mut self, token: u64) {
        let Some(p) = self.acks.get_mut(&token) else {
            return;
        };
        p.remaining -= 1;
        if p.remaining > 0 {
            return;
        }
        let Some(p) = self.acks.remove(&token) else {
            return;
        };
        if let Some(filter) = parse_filter(&p.filter)
            && let Some(entry) = self.trie.get_mut(filter.topic_filter())
        {
            let pending = match filter {
                Filter::Plain(_) => Some(&mut entry.pending),
                Filter::Shared { group, .. } => entry
                    .shared
                    .iter_mut()
                    .find(|g| &*g.group == group)
                    .map(|g| &mut g.pending),
            };
            if let Some(pending) = pending
                && *pending == Some(token)
            {
                *pending = None;
            }
        }
        for w in p.waiters {
            w.wake();
        }
    }

    /// True once every token has been acked; otherwise registers `waker`.
    pub fn acks_done(&mut self, tokens: &[u64], waker: &Waker) -> bool {
        let mut done = true;
        for t in tokens {
            if let Some(p) = self.acks.get_mut(t) {
                p.waiters.push(waker.clone());
                done = false;
            }
        }
        done
    }

    // ----- sessions ------------------------------------------------------

    /// Ends the live connection of `session` if it is still generation
    /// `generation`: a v5 client is told why (DISCONNECT with a reason code)
    /// when the broker closes, the socket's read side is shut, the will is
    /// published (now, or after its Will Delay Interval), and the session
    /// ends now (expiry 0) or starts its expiry countdown.
    pub fn drop_link(&mut self, session: usize, generation: u64, reason: CloseReason) {
        // The real time, not the coarse clock: will delay and session expiry
        // count from here, and must not end early.
        let now = self.now.max(Instant::now());
        self.now = now;
        let Some(s) = self.sessions.get_mut(session) else {
            return;
        };
        if s.generation != generation {
            return;
        }
        let Some(link) = s.link.take() else {
            return;
        };
        if link.version == crate::protocol::ProtocolVersion::V5
            && let Some((code, why)) = reason.v5_disconnect()
        {
            let packet = crate::protocol::Packet::DisconnectV5(crate::protocol::DisconnectV5 {
                reason: code,
                properties: Some(Box::new(crate::protocol::Properties {
                    reason_string: Some(ByteString::from(why)),
                    ..Default::default()
                })),
            });
            link.io.write(|b| crate::protocol::encode(&packet, b));
        }
        link.io.close();
        s.paused = 0;
        if let Some(reader) = s.reader.take() {
            // A paused reader must see that its connection is gone.
            reader.wake();
        }
        self.stats.clients_connected -= 1;
        log::debug!(
            "client disconnected: {} ({}) reason {:?}",
            s.client_id,
            link.peer,
            reason
        );
        let expiry_s = s.expiry_s;
        let mut will_now = None;
        if reason != CloseReason::Shutdown
            && let Some(will) = link.will.map(|w| *w)
        {
            let delay = will
                .properties
                .as_ref()
                .and_then(|p| p.will_delay_interval)
                .unwrap_or(0);
            if delay == 0 || expiry_s == 0 {
                will_now = Some(will);
            } else {
                // Sent when the delay is over or the session ends, whichever
                // comes first; a reconnect before then cancels it.
                let due = now + std::time::Duration::from_secs(delay.min(expiry_s) as u64);
                s.delayed_will = Some(Box::new((due, will)));
                self.timers
                    .push(std::cmp::Reverse((due, session, generation)));
            }
        }
        if expiry_s != 0 && expiry_s != u32::MAX {
            let at = now + std::time::Duration::from_secs(expiry_s as u64);
            s.expires_at = Some(at);
            self.timers
                .push(std::cmp::Reverse((at, session, generation)));
        }
        self.release_all(session);
        if let Some(will) = will_now {
            self.publish_will(will);
        }
        if expiry_s == 0 {
            self.remove_session(session);
        }
        self.compact_timers();
    }

    /// Deadlines waiting (tests).
    #[cfg(test)]
    pub(super) fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// Drops stale deadlines (of sessions that reconnected, or ended) once
    /// they outnumber the sessions: a client with a long expiry that
    /// reconnects often would otherwise grow the heap until its far-off
    /// deadlines come due.
    fn compact_timers(&mut self) {
        if self.timers.len() <= 2 * self.sessions.len() + 64 {
            return;
        }
        let sessions = &self.sessions;
        self.timers
            .retain(|std::cmp::Reverse((at, key, generation))| {
                sessions.get(*key).is_some_and(|s| {
                    s.generation == *generation
                        && s.link.is_none()
                        && (s.expires_at == Some(*at)
                            || s.delayed_will.as_ref().is_some_and(|d| d.0 == *at))
                })
            });
    }

    fn publish_will(&mut self, will: Will) {
        self.stats.messages_received += 1;
        let meta = will
            .properties
            .as_deref()
            .and_then(|p| super::MessageMeta::from_publish(p, self.now));
        let mut msg = Message::new(will.topic, will.payload, will.qos, will.retain);
        msg.meta = meta;
        self.publish(msg, None);
    }

    /// Runs the offline deadlines that are due: delayed wills are published,
    /// expired sessions removed (with their subscriptions and queues).
    pub fn check_timers(&mut self, now: Instant) {
        self.now = now;
        while let Some(std::cmp::Reverse((at, session, generation))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(s) = self.sessions.get_mut(session) else {
                continue;
            };
            if s.generation != generation || s.link.is_some() {
                continue;
            }
            if s.delayed_will.as_ref().is_some_and(|d| d.0 <= now)
                && let Some(d) = s.delayed_will.take()
            {
                self.publish_will(d.1);
            }
            let Some(s) = self.sessions.get(session) else {
                continue;
            };
            if s.expires_at.is_some_and(|t| t <= now) {
                log::debug!("session {} expired", s.client_id);
                self.remove_session(session);
            }
        }
    }

    /// Removes a session with its subscriptions and queued messages. Its
    /// delayed will, if any, is published: the session has ended.
    pub(super) fn remove_session(&mut self, session: usize) {
        self.release_all(session);
        let Some(s) = self.sessions.get_mut(session) else {
            return;
        };
        let will = s.delayed_will.take().map(|d| d.1);
        let filters: Vec<ByteString> = s.subscriptions.drain().map(|(f, _)| f).collect();
        let client_id = s.client_id.clone();
        for f in &filters {
            self.remove_subscription(session, f);
        }
        self.stats.subscriptions -= filters.len() as u64;
        self.by_client_id.remove(&client_id, session);
        self.sessions.remove(session);
        self.stats.sessions -= 1;
        if let Some(will) = will {
            self.publish_will(will);
        }
    }

    /// Marks activity on a connection (keepalive).
    /// Returns how long the connection was silent before (zero if it has
    /// no link).
    pub fn touch(&mut self, session: usize, now: Instant) -> Duration {
        self.now = now;
        match self.sessions.get_mut(session).and_then(|s| s.link.as_mut()) {
            Some(link) => {
                now.saturating_duration_since(std::mem::replace(&mut link.last_seen, now))
            }
            None => Duration::ZERO,
        }
    }

    /// Closes connections silent for more than 1.5 × their keepalive.
    pub fn check_keepalive(&mut self, now: Instant) {
        let expired: Vec<(usize, u64)> = self
            .sessions
            .iter()
            .filter_map(|(key, s)| {
                let link = s.link.as_ref()?;
                if s.paused > 0 {
                    // Not read while paused: its PINGREQs wait in the socket.
                    return None;
                }
                let ka_ms = link.keep_alive_s as u128 * 1500;
                (ka_ms > 0 && now.duration_since(link.last_seen).as_millis() > ka_ms)
                    .then_some((key, s.generation))
            })
            .collect();
        for (key, generation) in expired {
            if let Some(s) = self.sessions.get(key) {
                log::info!("client {} keepalive timeout", s.client_id);
            }
            self.drop_link(key, generation, CloseReason::Keepalive);
        }
    }

    /// Shuts down sockets that did not send CONNECT in time. The entry stays
    /// until its task removes it (its deadline moves out of reach).
    pub fn check_connect_deadlines(&mut self, now: Instant) {
        for (_, (fd, deadline)) in self.connecting.iter_mut() {
            if *deadline <= now {
                log::info!(
                    "no CONNECT within {}s: closing",
                    self.config.connect_timeout_s
                );
                // SAFETY: the entry exists, so its task still owns the open socket.
                unsafe {
                    libc::shutdown(*fd, libc::SHUT_RDWR);
                }
                *deadline = now + std::time::Duration::from_secs(3600);
            }
        }
    }

    /// Closes every connection (server shutdown).
    pub fn close_all(&mut self) {
        for (_, (fd, _)) in self.connecting.iter() {
            // SAFETY: as in `check_connect_deadlines`.
            unsafe {
                libc::shutdown(*fd, libc::SHUT_RDWR);
            }
        }
        let live: Vec<(usize, u64)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.link.is_some())
            .map(|(k, s)| (k, s.generation))
            .collect();
        for (key, generation) in live {
            self.drop_link(key, generation, CloseReason::Shutdown);
        }
    }

    /// Handles one batch from another core's mailbox.
    pub fn handle_mail(&mut self, from: usize, batch: Vec<ShardMsg>, shard: &ShardRef) {
        // A core that only receives mail would otherwise see the time of
        // its last tick (expiry decisions).
        self.now = Instant::now();
        for msg in batch {
            match msg {
                ShardMsg::Publish { msg, origin } => self.publish_from_core(msg, origin),
                ShardMsg::SharedPublish {
                    msg,
                    share,
                    hops,
                    origin,
                } => self.publish_shared(msg, share, hops, origin),
                ShardMsg::Pause(o) => self.pause(o),
                ShardMsg::Resume(o) => self.resume(o),
                ShardMsg::IndexAdd { filter, token } => self.index_add(from, &filter, token),
                ShardMsg::IndexRemove { filter } => self.index_remove(from, &filter),
                ShardMsg::IndexAck { token } => self.index_ack(token),
                ShardMsg::RetainSequence(m) => self.sequence_retained(m),
                ShardMsg::RetainApply(m) => self.apply_retained(m),
                ShardMsg::Adopt(a) => {
                    self.connections += 1;
                    crate::transport::connection::adopt(shard, *a)
                }
                ShardMsg::Stats(s) => self.sys.record(from, s),
                ShardMsg::Shutdown => self.shutting_down = true,
            }
        }
    }

    /// A connection's I/O handle for a session, if it is live.
    pub fn live_io(&self, session: usize) -> Option<Rc<ConnIo>> {
        self.sessions.get(session)?.live_io().cloned()
    }
}

/// Chooses where one shared-group message goes: round-robin over the cores
/// that have members (this one included), then over this core's members.
fn pick_shared(g: &SharedGroup, me: usize) -> Option<SharedTarget> {
    let local = !g.members.is_empty();
    let n = g.remote.count_ones() as usize + local as usize;
    if n == 0 {
        return None;
    }
    let i = g.next_core.get() % n;
    g.next_core.set(g.next_core.get().wrapping_add(1));
    if local && i == 0 {
        return pick_member(g).map(SharedTarget::Local);
    }
    let k = if local { i - 1 } else { i };
    let core = bits(g.remote).nth(k)?;
    debug_assert_ne!(core, me);
    Some(SharedTarget::Remote(core, g.share.clone()))
}

/// The next local member of a group, round-robin.
fn pick_member(g: &SharedGroup) -> Option<LocalSub> {
    if g.members.is_empty() {
        return None;
    }
    let m = g.next_member.get() % g.members.len();
    g.next_member.set(g.next_member.get().wrapping_add(1));
    g.members.get(m).copied()
}

/// The indexes of the set bits of `mask`, lowest first.
pub fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let i = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        Some(i)
    })
}
