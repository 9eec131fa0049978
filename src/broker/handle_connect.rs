//! CONNECT on the client id's home core: client id and keepalive rules,
//! takeover of an existing connection, clean vs persistent session, CONNACK,
//! and the re-send of what a persistent session had in flight.

use super::conn::ConnIo;
use super::session::{Link, LinkV5, Session};
use super::shard::{CloseReason, Shard};
use crate::protocol::{
    self, ConnAck, ConnAckV5, Connect, ConnectReturnCode, Packet, Properties, ProtocolVersion, QoS,
    Will, reason,
};
use crate::topic::valid_topic_name;
use bytestring::ByteString;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

/// Why a CONNECT was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum ConnectRefused {
    /// Answer with this CONNACK code (its v5 equivalent for a v5 client),
    /// then close.
    Code(ConnectReturnCode),
    /// A v5-only CONNACK reason code (0x8C, 0x9A, 0x9B...), then close.
    V5(u8),
    /// Close without CONNACK (a malformed will, for instance).
    Protocol(&'static str),
}

impl ConnectRefused {
    /// The v5 reason code of the refusal (0x82 protocol error for a close
    /// without CONNACK).
    pub fn v5_code(&self) -> u8 {
        match self {
            ConnectRefused::Code(c) => c.v5_reason(),
            ConnectRefused::V5(c) => *c,
            ConnectRefused::Protocol(_) => reason::PROTOCOL_ERROR,
        }
    }

    /// The CONNACK code to send a client of `version`; `None`: close
    /// without CONNACK.
    pub fn connack_code(&self, version: ProtocolVersion) -> Option<u8> {
        match self {
            ConnectRefused::Code(c) if version != ProtocolVersion::V5 => Some(*c as u8),
            ConnectRefused::Protocol(_) => None,
            other => Some(other.v5_code()),
        }
    }
}

/// Longest client id MQTT 3.1 allows.
const CLIENT_ID_V31_MAX_BYTES: usize = 23;

impl Shard {
    /// Accepts the client of `c` on this (its home) core. `assigned`: the
    /// client sent an empty id and was given `c.client_id`. On success the
    /// CONNACK is in `io`'s buffer and the session key and generation are
    /// returned.
    pub fn connect(
        &mut self,
        io: Rc<ConnIo>,
        c: Box<Connect>,
        peer: SocketAddr,
        assigned: bool,
    ) -> Result<(usize, u64), ConnectRefused> {
        // Queued messages are checked for expiry against this: the real time.
        self.now = self.now.max(Instant::now());
        let v5 = c.version == ProtocolVersion::V5;
        if c.client_id.is_empty() {
            // An empty id gets one assigned before the hand-over; reaching
            // here with one means a persistent session was asked for.
            return Err(ConnectRefused::Code(ConnectReturnCode::IdentifierRejected));
        }
        if c.version == ProtocolVersion::V31 && c.client_id.len() > CLIENT_ID_V31_MAX_BYTES {
            return Err(ConnectRefused::Code(ConnectReturnCode::IdentifierRejected));
        }
        let props = c.properties.as_deref();
        if v5 && props.is_some_and(|p| p.authentication_method.is_some()) {
            let method = props.and_then(|p| p.authentication_method.as_deref());
            if let Err(code) = super::enhanced_auth::start(method.unwrap_or("")) {
                return Err(ConnectRefused::V5(code));
            }
        }
        let ka_max = self.config.keepalive_max_s;
        let ka_capped = ka_max < u16::MAX && (c.keep_alive_s == 0 || c.keep_alive_s > ka_max);
        if ka_capped && !v5 {
            // MQTT 3.1.1 cannot tell the client another keepalive; mosquitto
            // refuses the same way. A v5 client is told Server Keep Alive.
            return Err(ConnectRefused::Code(ConnectReturnCode::IdentifierRejected));
        }
        let keep_alive_s = if ka_capped { ka_max } else { c.keep_alive_s };
        if let Some(w) = &c.will {
            if !valid_topic_name(&w.topic) {
                return Err(ConnectRefused::Protocol("invalid will topic"));
            }
            if w.qos > self.config.qos_max {
                return Err(if v5 {
                    ConnectRefused::V5(reason::QOS_NOT_SUPPORTED)
                } else {
                    ConnectRefused::Code(ConnectReturnCode::NotAuthorized)
                });
            }
            if w.retain && !self.config.retain_available {
                return Err(if v5 {
                    ConnectRefused::V5(reason::RETAIN_NOT_SUPPORTED)
                } else {
                    ConnectRefused::Code(ConnectReturnCode::NotAuthorized)
                });
            }
        }
        if self.shutting_down {
            return Err(ConnectRefused::Code(ConnectReturnCode::ServerUnavailable));
        }
        // Session Expiry Interval: v5 asks for one (default 0); a 3.1.1
        // clean session is 0 and a persistent one never expires.
        let asked_expiry = if v5 {
            props.and_then(|p| p.session_expiry_interval).unwrap_or(0)
        } else if c.clean_session {
            0
        } else {
            u32::MAX
        };
        let expiry_s = asked_expiry.min(self.config.session_expiry_max_s);

        // Takeover: the existing connection with this id ends (its will is
        // published, or delayed).
        if let Some(old) = self.by_client_id.get(&c.client_id, &self.sessions)
            && let Some(s) = self.sessions.get(old)
            && s.link.is_some()
        {
            log::debug!(
                "client {} taken over by a new connection from {peer}",
                c.client_id
            );
            self.drop_link(old, s.generation, CloseReason::Takeover);
        }
        let existing = self.by_client_id.get(&c.client_id, &self.sessions);
        let (key, session_present) = match existing {
            Some(k) if !c.clean_session => (k, true),
            Some(k) => {
                self.remove_session(k);
                (self.new_session(&c, expiry_s), false)
            }
            None => (self.new_session(&c, expiry_s), false),
        };
        let now = self.now;
        let Some(s) = self.sessions.get_mut(key) else {
            return Err(ConnectRefused::Code(ConnectReturnCode::ServerUnavailable));
        };
        s.expiry_s = expiry_s;
        s.expires_at = None;
        // Reconnected in time: a delayed will of the last connection is not sent.
        s.delayed_will = None;
        s.generation += 1;
        let generation = s.generation;
        let config = &self.config;
        let mut inflight_max = config.inflight_max;
        let link_v5 = if v5 {
            let p = props.cloned().unwrap_or_default();
            if let Some(rm) = p.receive_maximum {
                inflight_max = inflight_max.min(rm as usize);
            }
            let ack = ConnAckV5 {
                session_present,
                reason: reason::SUCCESS,
                properties: Some(Box::new(Properties {
                    receive_maximum: Some(config.receive_maximum),
                    maximum_qos: (config.qos_max < QoS::ExactlyOnce)
                        .then_some(config.qos_max as u8),
                    retain_available: Some(config.retain_available as u8),
                    maximum_packet_size: Some(config.packet_size_max_bytes as u32),
                    assigned_client_identifier: assigned.then(|| c.client_id.clone()),
                    topic_alias_maximum: (config.topic_alias_max > 0)
                        .then_some(config.topic_alias_max),
                    wildcard_subscription_available: Some(config.wildcard_subscriptions as u8),
                    subscription_identifier_available: Some(config.subscription_identifiers as u8),
                    shared_subscription_available: Some(config.shared_subscriptions as u8),
                    server_keep_alive: ka_capped.then_some(keep_alive_s),
                    session_expiry_interval: (expiry_s != asked_expiry).then_some(expiry_s),
                    response_information: match (
                        &config.response_information,
                        p.request_response_information,
                    ) {
                        (Some(prefix), Some(1)) => {
                            Some(ByteString::from(format!("{prefix}{}", c.client_id)))
                        }
                        _ => None,
                    },
                    ..Properties::default()
                })),
            };
            io.write(|b| protocol::encode(&Packet::ConnAckV5(ack), b));
            Some(Box::new(LinkV5 {
                packet_max: p.maximum_packet_size.map_or(usize::MAX, |m| m as usize),
                alias_out_max: p.topic_alias_maximum.unwrap_or(0),
                problem_info: p.request_problem_information != Some(0),
                connect_expiry_zero: asked_expiry == 0,
                ..LinkV5::default()
            }))
        } else {
            io.write(|b| {
                protocol::encode(
                    &Packet::ConnAck(ConnAck {
                        session_present,
                        code: ConnectReturnCode::Accepted,
                    }),
                    b,
                )
            });
            None
        };
        log::debug!(
            "client connected: {} from {peer} ({:?}, clean {}, keepalive {}s, session expiry {}s, session present {})",
            c.client_id,
            c.version,
            c.clean_session,
            keep_alive_s,
            expiry_s,
            session_present
        );
        s.link = Some(Link {
            io,
            version: c.version,
            keep_alive_s,
            last_seen: Instant::now(),
            // Copied out of the read buffer, which would otherwise stay
            // allocated for as long as the connection lives.
            will: c.will.map(|w| {
                Box::new(Will {
                    topic: ByteString::from(&*w.topic),
                    payload: bytes::Bytes::copy_from_slice(&w.payload),
                    properties: w.properties.map(|p| Box::new(owned_properties(&p))),
                    ..w
                })
            }),
            peer,
            inflight_max,
            v5: link_v5,
        });
        self.stats.clients_connected += 1;
        if session_present {
            self.stats.messages_sent += s.resend_inflight(now, &mut self.stats) as u64;
        }
        Ok((key, generation))
    }

    fn new_session(&mut self, c: &Connect, expiry_s: u32) -> usize {
        // An owned copy: the decoded id points into the connection's read buffer.
        let client_id = ByteString::from(&*c.client_id);
        let key = self.sessions.insert(Session::new(client_id, expiry_s));
        self.by_client_id.insert(key, &self.sessions);
        self.stats.sessions += 1;
        key
    }
}

/// A deep copy of will properties (the decoded ones point into the read
/// buffer): what is forwarded, the expiry (counted from publication) and
/// the delay.
fn owned_properties(p: &Properties) -> Properties {
    Properties {
        message_expiry_interval: p.message_expiry_interval,
        will_delay_interval: p.will_delay_interval,
        ..super::MessageMeta::forwarded(p)
    }
}
