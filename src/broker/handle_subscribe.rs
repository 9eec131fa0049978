//! SUBSCRIBE and UNSUBSCRIBE: filter validation and the features the
//! configuration turns off (reason codes per filter; 3.1.1 gets 0x80 for
//! every failure), v5 subscription options and identifiers, the session's
//! subscription table, the trie and the index update.

use super::handle::{Flow, Held};
use super::session::SubOptions;
use super::shard::{CloseReason, Shard};
use crate::protocol::{
    self, Packet, Properties, ProtocolVersion, SubAck, SubAckCode, SubAckV5, Subscribe, UnsubAckV5,
    Unsubscribe, reason,
};
use crate::topic::{Filter, parse_filter};
use bytestring::ByteString;

impl Shard {
    pub(super) fn handle_subscribe(
        &mut self,
        session: usize,
        sub: Subscribe,
    ) -> Result<Flow, CloseReason> {
        let id = sub
            .properties
            .as_ref()
            .and_then(|p| p.subscription_identifiers.first().copied())
            .unwrap_or(0);
        let in_use = self
            .sessions
            .get(session)
            .is_some_and(|s| s.incoming_qos2.contains(&sub.packet_id));
        let mut reasons = Vec::with_capacity(sub.filters.len());
        let mut retained = Vec::new();
        let mut tokens = Vec::new();
        for f in sub.filters {
            let parsed = parse_filter(&f.filter);
            let refused = match parsed {
                _ if in_use => Some(reason::PACKET_IDENTIFIER_IN_USE),
                None => Some(reason::TOPIC_FILTER_INVALID),
                Some(Filter::Shared { .. }) if !self.config.shared_subscriptions => {
                    Some(reason::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED)
                }
                Some(x)
                    if !self.config.wildcard_subscriptions
                        && x.topic_filter().contains(['+', '#']) =>
                {
                    Some(reason::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED)
                }
                _ if id != 0 && !self.config.subscription_identifiers => {
                    Some(reason::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED)
                }
                _ => None,
            };
            if let Some(code) = refused {
                log::debug!(
                    "subscription to {:?} refused: {:#04x} {}",
                    &*f.filter,
                    code,
                    reason::name(code)
                );
                reasons.push(code);
                continue;
            }
            if f.no_local && matches!(parsed, Some(Filter::Shared { .. })) {
                return Err(CloseReason::Protocol("No Local on a shared subscription"));
            }
            // Kept for the subscription's life: an owned copy, not a slice
            // pinning the read buffer it arrived in.
            let raw = ByteString::from(&*f.filter);
            let Some(filter) = parse_filter(&raw) else {
                continue;
            };
            let options = SubOptions {
                qos: f.qos.min(self.config.qos_max),
                no_local: f.no_local,
                retain_as_published: f.retain_as_published,
                id,
            };
            let Some(s) = self.sessions.get_mut(session) else {
                return Err(CloseReason::Protocol("no session"));
            };
            let is_new = s.subscriptions.insert(raw.clone(), options).is_none();
            if is_new {
                self.stats.subscriptions += 1;
            }
            log::debug!(
                "client {} subscribed to {} qos {}",
                s.client_id,
                &*f.filter,
                options.qos as u8
            );
            if let Some(token) = self.add_subscription(session, &raw, options) {
                tokens.push(token);
            }
            // Retained messages are not sent to shared subscriptions; Retain
            // Handling 1 sends them only for a new subscription, 2 never.
            let send_retained = match f.retain_handling {
                0 => true,
                1 => is_new,
                _ => false,
            };
            if let Filter::Plain(_) = filter
                && send_retained
            {
                retained.push((raw.clone(), options));
            }
            reasons.push(options.qos as u8);
        }
        let held = Held::SubAck {
            packet_id: sub.packet_id,
            reasons,
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
        reasons: Vec<u8>,
        retained: Vec<(ByteString, SubOptions)>,
    ) {
        if let Some(io) = self.live_io(session) {
            let packet = match self.problem_info(session) {
                Some(problem_info) => Packet::SubAckV5(SubAckV5 {
                    packet_id,
                    properties: reason_string(problem_info, &reasons),
                    reasons,
                }),
                None => Packet::SubAck(SubAck {
                    packet_id,
                    codes: reasons
                        .iter()
                        .map(|&r| match protocol::QoS::from_bits(r) {
                            Some(q) => SubAckCode::Granted(q),
                            None => SubAckCode::Failure,
                        })
                        .collect(),
                }),
            };
            io.write(|b| protocol::encode(&packet, b));
        }
        for (filter, options) in retained {
            self.deliver_retained(session, &filter, options);
        }
    }

    pub(super) fn handle_unsubscribe(
        &mut self,
        session: usize,
        u: Unsubscribe,
    ) -> Result<Flow, CloseReason> {
        let mut reasons = Vec::with_capacity(u.filters.len());
        for f in &u.filters {
            let Some(s) = self.sessions.get_mut(session) else {
                return Err(CloseReason::Protocol("no session"));
            };
            if s.incoming_qos2.contains(&u.packet_id) {
                reasons.push(reason::PACKET_IDENTIFIER_IN_USE);
            } else if parse_filter(f).is_none() {
                reasons.push(reason::TOPIC_FILTER_INVALID);
            } else if s.subscriptions.remove(f).is_some() {
                log::debug!("client {} unsubscribed from {}", s.client_id, &**f);
                self.stats.subscriptions -= 1;
                self.remove_subscription(session, f);
                reasons.push(reason::SUCCESS);
            } else {
                reasons.push(reason::NO_SUBSCRIPTION_EXISTED);
            }
        }
        if let Some(io) = self.live_io(session) {
            let packet = match self.problem_info(session) {
                Some(problem_info) => Packet::UnsubAckV5(UnsubAckV5 {
                    packet_id: u.packet_id,
                    properties: reason_string(problem_info, &reasons),
                    reasons,
                }),
                None => Packet::UnsubAck(u.packet_id),
            };
            io.write(|b| protocol::encode(&packet, b));
        }
        Ok(Flow::Continue)
    }

    /// For a v5 connection, whether it accepts reason strings (Request
    /// Problem Information); `None` for 3.1 / 3.1.1.
    fn problem_info(&self, session: usize) -> Option<bool> {
        let link = self.sessions.get(session)?.link.as_ref()?;
        if link.version != ProtocolVersion::V5 {
            return None;
        }
        Some(link.v5.as_ref().is_none_or(|v| v.problem_info))
    }
}

/// A Reason String naming the first failure among `reasons`, if the client
/// accepts problem information.
fn reason_string(problem_info: bool, reasons: &[u8]) -> Option<Box<Properties>> {
    let failed = reasons.iter().find(|&&r| r >= reason::UNSPECIFIED_ERROR)?;
    problem_info.then(|| {
        Box::new(Properties {
            reason_string: Some(ByteString::from(reason::name(*failed))),
            ..Properties::default()
        })
    })
}
