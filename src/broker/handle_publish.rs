//! PUBLISH from a client and the acknowledgements of both directions.
//! Validation happened in the codec; here: QoS handshakes, exactly-once
//! bookkeeping, and the hand-off to routing.

use super::handle::Flow;
use super::shard::{CloseReason, Shard};
use super::{Message, Origin};
use crate::protocol::{self, Packet, Publish, QoS};

impl Shard {
    pub(super) fn handle_publish(
        &mut self,
        session: usize,
        p: Publish,
    ) -> Result<Flow, CloseReason> {
        let ack = match p.qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce => Some(Packet::PubAck(p.packet_id)),
            QoS::ExactlyOnce => Some(Packet::PubRec(p.packet_id)),
        };
        // QoS 2: a PUBLISH re-sent before PUBREL is acknowledged again but
        // not routed again (exactly once).
        let fresh = p.qos != QoS::ExactlyOnce
            || self
                .sessions
                .get_mut(session)
                .is_some_and(|s| s.incoming_qos2.insert(p.packet_id));
        // Clients may not publish into the broker's own `$SYS` tree.
        if fresh && !p.topic.starts_with("$SYS/") {
            self.stats.messages_received += 1;
            let origin = self.sessions.get(session).map(|s| Origin {
                core: self.id,
                session,
                generation: s.generation,
            });
            self.publish(
                Message {
                    topic: p.topic,
                    payload: p.payload,
                    qos: p.qos,
                    retain: p.retain,
                },
                origin,
            );
        }
        if let Some(ack) = ack
            && let Some(io) = self.live_io(session)
        {
            io.write(|b| protocol::encode(&ack, b));
        }
        Ok(Flow::Continue)
    }

    pub(super) fn handle_pubrel(
        &mut self,
        session: usize,
        packet_id: u16,
    ) -> Result<Flow, CloseReason> {
        if let Some(s) = self.sessions.get_mut(session) {
            s.incoming_qos2.remove(&packet_id);
            if let Some(io) = s.live_io() {
                io.write(|b| protocol::encode(&Packet::PubComp(packet_id), b));
            }
        }
        Ok(Flow::Continue)
    }

    pub(super) fn handle_puback(
        &mut self,
        session: usize,
        packet_id: u16,
    ) -> Result<Flow, CloseReason> {
        let matched = self
            .sessions
            .get_mut(session)
            .is_some_and(|s| s.on_puback(packet_id));
        self.completed(session, matched);
        Ok(Flow::Continue)
    }

    pub(super) fn handle_pubrec(
        &mut self,
        session: usize,
        packet_id: u16,
    ) -> Result<Flow, CloseReason> {
        if let Some(s) = self.sessions.get_mut(session) {
            s.on_pubrec(packet_id);
            self.progress(session);
        }
        Ok(Flow::Continue)
    }

    pub(super) fn handle_pubcomp(
        &mut self,
        session: usize,
        packet_id: u16,
    ) -> Result<Flow, CloseReason> {
        let matched = self
            .sessions
            .get_mut(session)
            .is_some_and(|s| s.on_pubcomp(packet_id));
        self.completed(session, matched);
        Ok(Flow::Continue)
    }

    /// An outgoing QoS 1/2 message was acknowledged: its window slot goes to
    /// the next queued message, and the ack counts as progress.
    fn completed(&mut self, session: usize, matched: bool) {
        if !matched {
            return;
        }
        if let Some(s) = self.sessions.get_mut(session) {
            self.stats.messages_sent += s.fill_window(&self.config) as u64;
        }
        self.progress(session);
    }
}
