//! The packet dispatcher: one `match` from a decoded packet to its handler.
//! Handlers return a [`Flow`] or a [`CloseReason`]; only the connection task
//! acts on them (closing, waiting for index acks).

use super::session::SubOptions;
use super::shard::{CloseReason, Shard};
use crate::protocol::{AckKind, Packet, reason};
use bytestring::ByteString;

/// What the connection task does after a packet was handled.
pub enum Flow {
    Continue,
    /// The client sent DISCONNECT.
    Disconnect,
    /// Wait until every token's index update is acked, then call
    /// [`Shard::complete`] with the held reply.
    Wait(Vec<u64>, Held),
}

/// A reply held back until other cores have caught up.
pub enum Held {
    SubAck {
        packet_id: u16,
        /// One v5 reason code per filter (granted QoS, or a failure code
        /// that a 3.1.1 SUBACK writes as 0x80).
        reasons: Vec<u8>,
        /// Granted plain filters whose retained messages are sent after the SUBACK.
        retained: Vec<(ByteString, SubOptions)>,
    },
}

impl Shard {
    /// Handles one packet from the client of `session` (generation `generation`).
    pub fn handle(
        &mut self,
        session: usize,
        generation: u64,
        packet: Packet,
    ) -> Result<Flow, CloseReason> {
        let _ = generation;
        match packet {
            Packet::Publish(p) => self.handle_publish(session, p),
            Packet::PubAck(id) => self.handle_puback(session, id),
            Packet::PubRec(id) => self.handle_pubrec(session, id),
            Packet::PubRel(id) => self.handle_pubrel(session, id),
            Packet::PubComp(id) => self.handle_pubcomp(session, id),
            Packet::Subscribe(s) => self.handle_subscribe(session, s),
            Packet::Unsubscribe(u) => self.handle_unsubscribe(session, u),
            Packet::PingReq => {
                if let Some(io) = self.live_io(session) {
                    io.write(|b| crate::protocol::encode(&Packet::PingResp, b));
                }
                Ok(Flow::Continue)
            }
            Packet::Disconnect => self.handle_disconnect(session, reason::SUCCESS, None),
            Packet::DisconnectV5(d) => {
                let expiry = d
                    .properties
                    .as_ref()
                    .and_then(|p| p.session_expiry_interval);
                self.handle_disconnect(session, d.reason, expiry)
            }
            Packet::AckV5(a) => match a.kind {
                AckKind::PubAck => self.handle_puback(session, a.packet_id),
                AckKind::PubRec if a.reason >= reason::UNSPECIFIED_ERROR => {
                    // The client refused the message: the exchange ends here.
                    let matched = self
                        .sessions
                        .get_mut(session)
                        .is_some_and(|s| s.on_pubrec_refused(a.packet_id));
                    self.completed(session, matched);
                    Ok(Flow::Continue)
                }
                AckKind::PubRec => self.handle_pubrec(session, a.packet_id),
                AckKind::PubRel => self.handle_pubrel(session, a.packet_id),
                AckKind::PubComp => self.handle_pubcomp(session, a.packet_id),
            },
            Packet::Auth(_) => Err(CloseReason::Protocol(
                "AUTH without enhanced authentication",
            )),
            Packet::Connect(_) => Err(CloseReason::Protocol("second CONNECT")),
            Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp
            | Packet::ConnAckV5(_)
            | Packet::SubAckV5(_)
            | Packet::UnsubAckV5(_) => Err(CloseReason::Protocol(
                "server-to-client packet from a client",
            )),
        }
    }

    /// DISCONNECT from the client: reason 0x00 discards the will, any other
    /// reason (0x04 "with will message" included) keeps it for publishing.
    /// v5 may change the Session Expiry Interval, but not from 0.
    fn handle_disconnect(
        &mut self,
        session: usize,
        code: u8,
        expiry: Option<u32>,
    ) -> Result<Flow, CloseReason> {
        let cap = self.config.session_expiry_max_s;
        let Some(s) = self.sessions.get_mut(session) else {
            return Ok(Flow::Disconnect);
        };
        if let Some(expiry) = expiry {
            let from_zero = s
                .link
                .as_ref()
                .and_then(|l| l.v5.as_ref())
                .is_some_and(|v| v.connect_expiry_zero);
            if from_zero && expiry != 0 {
                return Err(CloseReason::Protocol(
                    "session expiry set on DISCONNECT after 0 in CONNECT",
                ));
            }
            s.expiry_s = expiry.min(cap);
        }
        if code == reason::NORMAL_DISCONNECTION
            && let Some(link) = s.link.as_mut()
        {
            link.will = None;
        }
        Ok(Flow::Disconnect)
    }

    /// Sends a reply that was held by [`Flow::Wait`], if the connection is
    /// still the same generation.
    pub fn complete(&mut self, session: usize, generation: u64, held: Held) {
        if self
            .sessions
            .get(session)
            .is_none_or(|s| s.generation != generation)
        {
            return;
        }
        match held {
            Held::SubAck {
                packet_id,
                reasons,
                retained,
            } => self.finish_subscribe(session, packet_id, reasons, retained),
        }
    }
}
