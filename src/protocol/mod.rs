//! MQTT control packets: types, decoding and encoding. Pure: no I/O, no runtime,
//! no broker state.
//!
//! Owns: the wire format of every MQTT 3.1 / 3.1.1 / 5.0 control packet and the
//! validity rules the spec puts on the bytes (remaining-length encoding,
//! reserved flag bits, UTF-8 strings, packet identifiers, CONNECT flags, v5
//! properties and reason codes).
//! Must not: decide broker behaviour (what a CONNECT with a taken client id
//! means is `broker`'s business) or validate topic filters (that is `topic`).
//!
//! Decoding never panics on input: every length is checked before it is read,
//! and a bad packet becomes a [`DecodeError`] whose variant tells the caller
//! which reason (CONNACK code, or v5 reason via [`DecodeError::v5_reason`])
//! applies. The payload of a PUBLISH is a zero-copy [`Bytes`] slice of the read
//! buffer.
//!
//! MQTT 5: `decode(.., Some(ProtocolVersion::V5), ..)` reads v5 bodies
//! (properties, reason codes, subscription options); a CONNECT always decodes
//! by its own protocol level. The packets 3.1.1 and 5 share keep their
//! variants (with `properties: None` outside v5); v5 acknowledgements that
//! carry only success decode as the plain variants, anything more as the `*V5`
//! variants. [`encode`] writes the 3.1.1 form of shared variants, [`encode_v`]
//! the form of a given version.

mod codec;
mod connect;
mod properties;
mod publish;
pub mod reason;
mod subscribe;

pub use codec::{decode, encode, encode_v, frame_len};
pub use properties::{Properties, PublishExtras, properties_len};
pub use publish::{
    encode_publish, encode_publish_v5, encode_publish_v5_with, publish_packet_id_offset,
    publish_v5_size,
};

use bytes::Bytes;
use bytestring::ByteString;

/// The protocol level of a connection, from its CONNECT packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtocolVersion {
    /// MQTT 3.1, protocol name "MQIsdp", level 3.
    V31,
    /// MQTT 3.1.1, protocol name "MQTT", level 4.
    V311,
    /// MQTT 5.0, protocol name "MQTT", level 5.
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte written in CONNECT.
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V31 => 3,
            ProtocolVersion::V311 => 4,
            ProtocolVersion::V5 => 5,
        }
    }
}

/// Quality of service of a PUBLISH or a subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    /// Parses the two QoS bits; 3 is not a QoS.
    pub fn from_bits(bits: u8) -> Option<QoS> {
        match bits {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// Why a packet could not be decoded. Each variant maps to one reaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes break the wire format (bad length, bad flags, bad UTF-8...).
    /// The connection is closed.
    Malformed(&'static str),
    /// Well-formed bytes that break a protocol rule (e.g. packet id 0).
    /// The connection is closed.
    Protocol(&'static str),
    /// The packet is larger than the configured maximum; detected from the
    /// fixed header, before the body is buffered.
    TooLarge { size: usize, max: usize },
    /// CONNECT with protocol name "MQTT"/"MQIsdp" but a level this broker does
    /// not speak: CONNACK 0x01, then close.
    UnsupportedProtocolLevel(u8),
    /// CONNECT with an unknown protocol name: close without CONNACK.
    BadProtocolName,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Malformed(why) => write!(f, "malformed packet: {why}"),
            DecodeError::Protocol(why) => write!(f, "protocol error: {why}"),
            DecodeError::TooLarge { size, max } => {
                write!(
                    f,
                    "packet of {size} bytes exceeds maximum packet size {max}"
                )
            }
            DecodeError::UnsupportedProtocolLevel(l) => {
                write!(f, "unsupported protocol level {l}")
            }
            DecodeError::BadProtocolName => write!(f, "unknown protocol name"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl DecodeError {
    /// The MQTT 5 reason code for this error, for the CONNACK or DISCONNECT
    /// that reports it.
    pub fn v5_reason(&self) -> u8 {
        match self {
            DecodeError::Malformed(_) | DecodeError::BadProtocolName => reason::MALFORMED_PACKET,
            DecodeError::Protocol(_) => reason::PROTOCOL_ERROR,
            DecodeError::TooLarge { .. } => reason::PACKET_TOO_LARGE,
            DecodeError::UnsupportedProtocolLevel(_) => reason::UNSUPPORTED_PROTOCOL_VERSION,
        }
    }
}

/// CONNECT (client → server). In v5, `clean_session` is Clean Start, and a
/// password may come without a username.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    pub version: ProtocolVersion,
    pub clean_session: bool,
    pub keep_alive_s: u16,
    pub client_id: ByteString,
    pub will: Option<Will>,
    pub username: Option<ByteString>,
    pub password: Option<Bytes>,
    /// v5 CONNECT properties; `None` before v5 or when there are none.
    pub properties: Option<Box<Properties>>,
}

/// The will message carried in CONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Will {
    pub topic: ByteString,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// v5 will properties; `None` before v5 or when there are none.
    pub properties: Option<Box<Properties>>,
}

/// CONNACK return codes of MQTT 3.1.1 (section 3.2.2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectReturnCode {
    Accepted = 0,
    UnacceptableProtocolVersion = 1,
    IdentifierRejected = 2,
    ServerUnavailable = 3,
    BadUsernameOrPassword = 4,
    NotAuthorized = 5,
}

impl ConnectReturnCode {
    pub fn from_u8(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Accepted,
            1 => Self::UnacceptableProtocolVersion,
            2 => Self::IdentifierRejected,
            3 => Self::ServerUnavailable,
            4 => Self::BadUsernameOrPassword,
            5 => Self::NotAuthorized,
            _ => return None,
        })
    }

    /// The MQTT 5 CONNACK reason code with the same meaning.
    pub fn v5_reason(self) -> u8 {
        match self {
            Self::Accepted => reason::SUCCESS,
            Self::UnacceptableProtocolVersion => reason::UNSUPPORTED_PROTOCOL_VERSION,
            Self::IdentifierRejected => reason::CLIENT_IDENTIFIER_NOT_VALID,
            Self::ServerUnavailable => reason::SERVER_UNAVAILABLE,
            Self::BadUsernameOrPassword => reason::BAD_USER_NAME_OR_PASSWORD,
            Self::NotAuthorized => reason::NOT_AUTHORIZED,
        }
    }
}

/// CONNACK (server → client).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    pub code: ConnectReturnCode,
}

/// PUBLISH (both directions). `packet_id` is 0 for QoS 0. In v5 the topic
/// may be empty when the properties carry a topic alias.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    pub topic: ByteString,
    pub packet_id: u16,
    pub payload: Bytes,
    /// v5 PUBLISH properties; `None` before v5 or when there are none.
    pub properties: Option<Box<Properties>>,
}

/// One topic filter of a SUBSCRIBE with its subscription options. Before v5
/// only `qos` is on the wire; the other options are false / 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribeFilter {
    pub filter: ByteString,
    /// The requested (v5: maximum) QoS.
    pub qos: QoS,
    /// v5 No Local: do not send the subscriber its own messages.
    pub no_local: bool,
    /// v5 Retain As Published: keep the RETAIN flag on forwarded messages.
    pub retain_as_published: bool,
    /// v5 Retain Handling: 0 send retained messages on subscribe, 1 only for a
    /// new subscription, 2 never. 3 does not decode.
    pub retain_handling: u8,
}

/// SUBSCRIBE (client → server).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: u16,
    pub filters: Vec<SubscribeFilter>,
    /// v5 SUBSCRIBE properties; `None` before v5 or when there are none.
    pub properties: Option<Box<Properties>>,
}

/// A SUBACK return code: the granted QoS, or failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubAckCode {
    Granted(QoS),
    Failure,
}

impl SubAckCode {
    pub fn to_u8(self) -> u8 {
        match self {
            SubAckCode::Granted(q) => q as u8,
            SubAckCode::Failure => 0x80,
        }
    }
}

/// SUBACK (server → client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubAck {
    pub packet_id: u16,
    pub codes: Vec<SubAckCode>,
}

/// UNSUBSCRIBE (client → server).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: u16,
    pub filters: Vec<ByteString>,
    /// v5 UNSUBSCRIBE properties; `None` before v5 or when there are none.
    pub properties: Option<Box<Properties>>,
}

/// v5 CONNACK (server → client): a reason code from [`reason::CONNACK_CODES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnAckV5 {
    pub session_present: bool,
    pub reason: u8,
    pub properties: Option<Box<Properties>>,
}

/// Which of the four publish acknowledgements an [`AckV5`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AckKind {
    PubAck,
    PubRec,
    PubRel,
    PubComp,
}

impl AckKind {
    /// The packet's name for logs.
    pub fn name(self) -> &'static str {
        match self {
            AckKind::PubAck => "PUBACK",
            AckKind::PubRec => "PUBREC",
            AckKind::PubRel => "PUBREL",
            AckKind::PubComp => "PUBCOMP",
        }
    }

    /// The reason codes this acknowledgement may carry.
    pub fn reason_codes(self) -> &'static [u8] {
        match self {
            AckKind::PubAck | AckKind::PubRec => reason::PUBACK_CODES,
            AckKind::PubRel | AckKind::PubComp => reason::PUBREL_CODES,
        }
    }
}

/// v5 PUBACK / PUBREC / PUBREL / PUBCOMP with a non-zero reason code or
/// properties (one with neither decodes as the plain variant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckV5 {
    pub kind: AckKind,
    pub packet_id: u16,
    pub reason: u8,
    pub properties: Option<Box<Properties>>,
}

/// v5 SUBACK (server → client): one reason code per filter, from
/// [`reason::SUBACK_CODES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubAckV5 {
    pub packet_id: u16,
    pub reasons: Vec<u8>,
    pub properties: Option<Box<Properties>>,
}

/// v5 UNSUBACK (server → client): one reason code per filter, from
/// [`reason::UNSUBACK_CODES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsubAckV5 {
    pub packet_id: u16,
    pub reasons: Vec<u8>,
    pub properties: Option<Box<Properties>>,
}

/// v5 DISCONNECT (both directions) with a non-zero reason code or properties
/// (one with neither decodes as [`Packet::Disconnect`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisconnectV5 {
    pub reason: u8,
    pub properties: Option<Box<Properties>>,
}

/// v5 AUTH (both directions): a reason code from [`reason::AUTH_CODES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth {
    pub reason: u8,
    pub properties: Option<Box<Properties>>,
}

/// Every MQTT 3.1 / 3.1.1 / 5.0 control packet. The `*V5` variants and `Auth`
/// exist only in MQTT 5.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(u16),
    PingReq,
    PingResp,
    Disconnect,
    ConnAckV5(ConnAckV5),
    AckV5(AckV5),
    SubAckV5(SubAckV5),
    UnsubAckV5(UnsubAckV5),
    DisconnectV5(DisconnectV5),
    Auth(Auth),
}

impl Packet {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubRel(_) => "PUBREL",
            Packet::PubComp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::SubAck(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::UnsubAck(_) => "UNSUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect => "DISCONNECT",
            Packet::ConnAckV5(_) => "CONNACK",
            Packet::AckV5(a) => a.kind.name(),
            Packet::SubAckV5(_) => "SUBACK",
            Packet::UnsubAckV5(_) => "UNSUBACK",
            Packet::DisconnectV5(_) => "DISCONNECT",
            Packet::Auth(_) => "AUTH",
        }
    }
}

#[cfg(test)]
mod tests;
