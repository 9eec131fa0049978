//! The packet dispatcher: one `match` from a decoded packet to its handler.
//! Handlers return a [`Flow`] or a [`CloseReason`]; only the connection task
//! acts on them (closing, waiting for index acks).

use super::shard::{CloseReason, Shard};
use crate::protocol::{Packet, QoS, SubAckCode};
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
        codes: Vec<SubAckCode>,
        /// Granted plain filters whose retained messages are sent after the SUBACK.
        retained: Vec<(ByteString, QoS)>,
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
            Packet::Disconnect => {
                // A DISCONNECT discards the will.
                if let Some(link) = self.sessions.get_mut(session).and_then(|s| s.link.as_mut()) {
                    link.will = None;
                }
                let _ = generation;
                Ok(Flow::Disconnect)
            }
            Packet::Connect(_) => Err(CloseReason::Protocol("second CONNECT")),
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => Err(
                CloseReason::Protocol("server-to-client packet from a client"),
            ),
            Packet::ConnAckV5(_)
            | Packet::AckV5(_)
            | Packet::SubAckV5(_)
            | Packet::UnsubAckV5(_)
            | Packet::DisconnectV5(_)
            | Packet::Auth(_) => Err(CloseReason::Protocol("MQTT 5 packet")),
        }
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
                codes,
                retained,
            } => self.finish_subscribe(session, packet_id, codes, retained),
        }
    }
}
