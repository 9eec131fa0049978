//! CONNECT on the client id's home core: client id and keepalive rules,
//! takeover of an existing connection, clean vs persistent session, CONNACK,
//! and the re-send of what a persistent session had in flight.

use super::conn::ConnIo;
use super::session::{Link, Session};
use super::shard::{CloseReason, Shard};
use crate::protocol::{self, ConnAck, Connect, ConnectReturnCode, Packet, ProtocolVersion, Will};
use crate::topic::valid_topic_name;
use bytestring::ByteString;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

/// Why a CONNECT was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum ConnectRefused {
    /// Answer with this CONNACK code, then close.
    Code(ConnectReturnCode),
    /// Close without CONNACK (a malformed will, for instance).
    Protocol(&'static str),
}

/// Longest client id MQTT 3.1 allows.
const CLIENT_ID_V31_MAX_BYTES: usize = 23;

impl Shard {
    /// Accepts the client of `c` on this (its home) core. On success the
    /// CONNACK is in `io`'s buffer and the session key and generation are
    /// returned.
    pub fn connect(
        &mut self,
        io: Rc<ConnIo>,
        c: Box<Connect>,
        peer: SocketAddr,
    ) -> Result<(usize, u64), ConnectRefused> {
        if c.client_id.is_empty() {
            // An empty id gets one assigned before the hand-over; reaching
            // here with one means a persistent session was asked for.
            return Err(ConnectRefused::Code(ConnectReturnCode::IdentifierRejected));
        }
        if c.version == ProtocolVersion::V31 && c.client_id.len() > CLIENT_ID_V31_MAX_BYTES {
            return Err(ConnectRefused::Code(ConnectReturnCode::IdentifierRejected));
        }
        let ka_max = self.config.keepalive_max_s;
        if ka_max < u16::MAX && (c.keep_alive_s == 0 || c.keep_alive_s > ka_max) {
            // MQTT 3.1.1 cannot tell the client another keepalive; mosquitto
            // refuses the same way.
            return Err(ConnectRefused::Code(ConnectReturnCode::IdentifierRejected));
        }
        if let Some(w) = &c.will
            && !valid_topic_name(&w.topic)
        {
            return Err(ConnectRefused::Protocol("invalid will topic"));
        }
        if self.shutting_down {
            return Err(ConnectRefused::Code(ConnectReturnCode::ServerUnavailable));
        }

        // Takeover: the existing connection with this id ends (its will is published).
        if let Some(&old) = self.by_client_id.get(&c.client_id)
            && let Some(s) = self.sessions.get(old)
            && s.link.is_some()
        {
            log::debug!(
                "client {} taken over by a new connection from {peer}",
                c.client_id
            );
            self.drop_link(old, s.generation, CloseReason::Takeover);
        }
        let existing = self.by_client_id.get(&c.client_id).copied();
        let (key, session_present) = match existing {
            Some(k) if !c.clean_session => (k, true),
            Some(k) => {
                self.remove_session(k);
                (self.new_session(&c), false)
            }
            None => (self.new_session(&c), false),
        };
        let Some(s) = self.sessions.get_mut(key) else {
            return Err(ConnectRefused::Code(ConnectReturnCode::ServerUnavailable));
        };
        s.clean = c.clean_session;
        s.generation += 1;
        let generation = s.generation;
        io.write(|b| {
            protocol::encode(
                &Packet::ConnAck(ConnAck {
                    session_present,
                    code: ConnectReturnCode::Accepted,
                }),
                b,
            )
        });
        log::debug!(
            "client connected: {} from {peer} ({:?}, clean {}, keepalive {}s, session present {})",
            c.client_id,
            c.version,
            c.clean_session,
            c.keep_alive_s,
            session_present
        );
        s.link = Some(Link {
            io,
            version: c.version,
            keep_alive_s: c.keep_alive_s,
            last_seen: Instant::now(),
            // Copied out of the read buffer, which would otherwise stay
            // allocated for as long as the connection lives.
            will: c.will.map(|w| Will {
                topic: ByteString::from(&*w.topic),
                payload: bytes::Bytes::copy_from_slice(&w.payload),
                ..w
            }),
            peer,
        });
        self.stats.clients_connected += 1;
        let config = self.config.clone();
        if session_present {
            self.stats.messages_sent += s.resend_inflight(&config) as u64;
        }
        Ok((key, generation))
    }

    fn new_session(&mut self, c: &Connect) -> usize {
        // An owned copy: the decoded id points into the connection's read buffer.
        let client_id = ByteString::from(&*c.client_id);
        let key = self
            .sessions
            .insert(Session::new(client_id.clone(), c.clean_session));
        self.by_client_id.insert(client_id, key);
        self.stats.sessions += 1;
        key
    }
}
