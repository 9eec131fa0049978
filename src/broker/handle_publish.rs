//! PUBLISH from a client and the acknowledgements of both directions.
//! Validation happened in the codec; here: QoS handshakes, exactly-once
//! bookkeeping, and the hand-off to routing.

use super::handle::Flow;
use super::shard::{CloseReason, Shard};
use super::{Message, MessageMeta, Origin};
use crate::protocol::{self, AckKind, AckV5, Packet, Publish, QoS, reason};
use bytestring::ByteString;

impl Shard {
    pub(super) fn handle_publish(
        &mut self,
        session: usize,
        mut p: Publish,
    ) -> Result<Flow, CloseReason> {
        if p.qos > self.config.qos_max {
            return Err(CloseReason::Refused(
                reason::QOS_NOT_SUPPORTED,
                "PUBLISH QoS above max_qos",
            ));
        }
        if p.retain && !self.config.retain_available {
            return Err(CloseReason::Refused(
                reason::RETAIN_NOT_SUPPORTED,
                "retained messages are turned off",
            ));
        }
        if p.properties.is_some() {
            self.publish_properties(session, &mut p)?;
        }
        let receive_max = self.config.receive_maximum as usize;
        let Some(s) = self.sessions.get_mut(session) else {
            return Ok(Flow::Continue);
        };
        // QoS 2: a PUBLISH re-sent before PUBREL is acknowledged again but
        // not routed again (exactly once).
        let fresh = p.qos != QoS::ExactlyOnce || !s.incoming_qos2.contains(&p.packet_id);
        if p.qos == QoS::ExactlyOnce && fresh {
            if s.incoming_qos2.len() >= receive_max
                && s.link.as_ref().is_some_and(|l| l.v5.is_some())
            {
                return Err(CloseReason::Refused(
                    reason::RECEIVE_MAXIMUM_EXCEEDED,
                    "more QoS 2 PUBLISHes awaiting PUBREL than Receive Maximum",
                ));
            }
            s.incoming_qos2.insert(p.packet_id);
        }
        let generation = s.generation;
        let mut matched = true;
        // Clients may not publish into the broker's own `$SYS` tree.
        if fresh && !p.topic.starts_with("$SYS/") {
            self.stats.messages_received += 1;
            let origin = Some(Origin {
                core: self.id,
                session,
                generation,
            });
            let mut msg = Message::new(p.topic, p.payload, p.qos, p.retain);
            msg.meta = p
                .properties
                .as_deref()
                .and_then(|props| MessageMeta::from_publish(props, self.now));
            matched = self.publish(msg, origin);
        }
        let kind = match p.qos {
            QoS::AtMostOnce => return Ok(Flow::Continue),
            QoS::AtLeastOnce => AckKind::PubAck,
            QoS::ExactlyOnce => AckKind::PubRec,
        };
        let Some(s) = self.sessions.get(session) else {
            return Ok(Flow::Continue);
        };
        let Some(link) = s.link.as_ref().filter(|l| !l.io.is_closing()) else {
            return Ok(Flow::Continue);
        };
        let ack = if !matched && link.v5.is_some() {
            Packet::AckV5(AckV5 {
                kind,
                packet_id: p.packet_id,
                reason: reason::NO_MATCHING_SUBSCRIBERS,
                properties: None,
            })
        } else if kind == AckKind::PubAck {
            Packet::PubAck(p.packet_id)
        } else {
            Packet::PubRec(p.packet_id)
        };
        link.io.write(|b| protocol::encode(&ack, b));
        Ok(Flow::Continue)
    }

    /// The v5 properties of a client's PUBLISH that the broker acts on: no
    /// subscription identifiers, and the topic alias (resolved into the
    /// topic, or recorded). Out of the 3.1.1 path.
    #[inline(never)]
    fn publish_properties(&mut self, session: usize, p: &mut Publish) -> Result<(), CloseReason> {
        let alias_max = self.config.topic_alias_max;
        let Some(props) = p.properties.as_deref() else {
            return Ok(());
        };
        if !props.subscription_identifiers.is_empty() {
            return Err(CloseReason::Protocol(
                "subscription identifier in a PUBLISH from a client",
            ));
        }
        let Some(alias) = props.topic_alias else {
            return Ok(());
        };
        if alias == 0 || alias > alias_max {
            return Err(CloseReason::Refused(
                reason::TOPIC_ALIAS_INVALID,
                "topic alias 0 or above the maximum",
            ));
        }
        let Some(v5) = self
            .sessions
            .get_mut(session)
            .and_then(|s| s.link.as_mut())
            .and_then(|l| l.v5.as_deref_mut())
        else {
            return Ok(());
        };
        if p.topic.is_empty() {
            match v5.alias_in.get(&alias) {
                Some(t) => p.topic = t.clone(),
                None => return Err(CloseReason::Protocol("unknown topic alias")),
            }
        } else {
            // Owned: the alias outlives the read buffer.
            v5.alias_in.insert(alias, ByteString::from(&*p.topic));
        }
        Ok(())
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
    pub(super) fn completed(&mut self, session: usize, matched: bool) {
        if !matched {
            return;
        }
        if let Some(s) = self.sessions.get_mut(session) {
            self.stats.messages_sent += s.fill_window(self.now, &mut self.stats) as u64;
        }
        self.progress(session);
    }
}
