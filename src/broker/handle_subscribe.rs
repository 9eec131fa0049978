//! SUBSCRIBE and UNSUBSCRIBE: filter validation (SUBACK 0x80 for an invalid
//! filter), the session's subscription table, the trie and the index update.

use super::handle::{Flow, Held};
use super::shard::{CloseReason, Shard};
use crate::protocol::{self, Packet, QoS, SubAck, SubAckCode, Subscribe, Unsubscribe};
use crate::topic::{Filter, parse_filter};
use bytestring::ByteString;

impl Shard {
    pub(super) fn handle_subscribe(
        &mut self,
        session: usize,
        sub: Subscribe,
    ) -> Result<Flow, CloseReason> {
        let mut codes = Vec::with_capacity(sub.filters.len());
        let mut retained = Vec::new();
        let mut tokens = Vec::new();
        for f in sub.filters {
            if parse_filter(&f.filter).is_none() {
                log::debug!("invalid topic filter {:?}: SUBACK 0x80", &*f.filter);
                codes.push(SubAckCode::Failure);
                continue;
            }
            // Kept for the subscription's life: an owned copy, not a slice
            // pinning the read buffer it arrived in.
            let raw = ByteString::from(&*f.filter);
            let Some(filter) = parse_filter(&raw) else {
                continue;
            };
            let Some(s) = self.sessions.get_mut(session) else {
                return Err(CloseReason::Protocol("no session"));
            };
            if s.subscriptions.insert(raw.clone(), f.qos).is_none() {
                self.stats.subscriptions += 1;
            }
            log::debug!(
                "client {} subscribed to {} qos {}",
                s.client_id,
                &*f.filter,
                f.qos as u8
            );
            if let Some(token) = self.add_subscription(session, &raw, f.qos) {
                tokens.push(token);
            }
            // Retained messages are not sent to shared subscriptions.
            if let Filter::Plain(_) = filter {
                retained.push((raw.clone(), f.qos));
            }
            codes.push(SubAckCode::Granted(f.qos));
        }
        let held = Held::SubAck {
            packet_id: sub.packet_id,
            codes,
            retained,
        };
        if tokens.is_empty() {
            let generation = self.sessions.get(session).map_or(0, |s| s.generation);
            self.complete(session, generation, held);
            return Ok(Flow::Continue);
        }
        Ok(Flow::Wait(tokens, held))
    }

    /// Writes the SUBACK, then the retained messages of the new subscriptions.
    pub(super) fn finish_subscribe(
        &mut self,
        session: usize,
        packet_id: u16,
        codes: Vec<SubAckCode>,
        retained: Vec<(ByteString, QoS)>,
    ) {
        if let Some(io) = self.live_io(session) {
            io.write(|b| protocol::encode(&Packet::SubAck(SubAck { packet_id, codes }), b));
        }
        for (filter, qos) in retained {
            self.deliver_retained(session, &filter, qos);
        }
    }

    pub(super) fn handle_unsubscribe(
        &mut self,
        session: usize,
        u: Unsubscribe,
    ) -> Result<Flow, CloseReason> {
        for f in &u.filters {
            let Some(s) = self.sessions.get_mut(session) else {
                return Err(CloseReason::Protocol("no session"));
            };
            if s.subscriptions.remove(f).is_some() {
                log::debug!("client {} unsubscribed from {}", s.client_id, &**f);
                self.stats.subscriptions -= 1;
                self.remove_subscription(session, f);
            }
        }
        if let Some(io) = self.live_io(session) {
            io.write(|b| protocol::encode(&Packet::UnsubAck(u.packet_id), b));
        }
        Ok(Flow::Continue)
    }
}
