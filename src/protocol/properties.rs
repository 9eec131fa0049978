//! MQTT 5.0 properties (section 2.2.2): the property block that follows the
//! variable header of every v5 packet (and precedes the will topic in CONNECT).
//!
//! A block is a Variable Byte Integer length, then properties, each an
//! identifier byte and a value whose type the identifier fixes. Decoding checks
//! what the codec can check alone: the property is allowed in that packet
//! (table 2-4), appears at most once (except User Property, and Subscription
//! Identifier in PUBLISH), and has a value the spec allows. Whether a value fits
//! the connection (a topic alias above the maximum, a method that differs from
//! the CONNECT's) is the broker's call.

use super::DecodeError;
use super::codec::{Reader, put_bytes, put_remaining_length, remaining_length_len};
use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

/// Every MQTT 5.0 property, one field each. A packet without properties
/// carries `None` instead of an empty `Properties` (so a 3.1.1 PUBLISH never
/// allocates one); an empty block decodes to `None` and `Some(empty)` encodes
/// as an empty block.
///
/// The encoder writes the fields it is given without checking them against the
/// packet type: setting only properties that the packet allows is the caller's
/// job. Encoding order is by identifier, with user properties and subscription
/// identifiers in their vector order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Properties {
    /// 0x01, PUBLISH and will: 0 unspecified bytes, 1 UTF-8 payload.
    pub payload_format_indicator: Option<u8>,
    /// 0x02, PUBLISH and will, seconds.
    pub message_expiry_interval: Option<u32>,
    /// 0x03, PUBLISH and will.
    pub content_type: Option<ByteString>,
    /// 0x08, PUBLISH and will.
    pub response_topic: Option<ByteString>,
    /// 0x09, PUBLISH and will.
    pub correlation_data: Option<Bytes>,
    /// 0x0B, PUBLISH (any number) and SUBSCRIBE (at most one); 1 to 268,435,455.
    pub subscription_identifiers: Vec<u32>,
    /// 0x11, CONNECT, CONNACK, DISCONNECT, seconds.
    pub session_expiry_interval: Option<u32>,
    /// 0x12, CONNACK.
    pub assigned_client_identifier: Option<ByteString>,
    /// 0x13, CONNACK, seconds.
    pub server_keep_alive: Option<u16>,
    /// 0x15, CONNECT, CONNACK, AUTH.
    pub authentication_method: Option<ByteString>,
    /// 0x16, CONNECT, CONNACK, AUTH.
    pub authentication_data: Option<Bytes>,
    /// 0x17, CONNECT: 0 or 1.
    pub request_problem_information: Option<u8>,
    /// 0x18, will, seconds.
    pub will_delay_interval: Option<u32>,
    /// 0x19, CONNECT: 0 or 1.
    pub request_response_information: Option<u8>,
    /// 0x1A, CONNACK.
    pub response_information: Option<ByteString>,
    /// 0x1C, CONNACK, DISCONNECT.
    pub server_reference: Option<ByteString>,
    /// 0x1F, CONNACK, the four publish acks, SUBACK, UNSUBACK, DISCONNECT, AUTH.
    pub reason_string: Option<ByteString>,
    /// 0x21, CONNECT, CONNACK: not 0.
    pub receive_maximum: Option<u16>,
    /// 0x22, CONNECT, CONNACK.
    pub topic_alias_maximum: Option<u16>,
    /// 0x23, PUBLISH. 0 is decoded: the broker answers it with DISCONNECT 0x94.
    pub topic_alias: Option<u16>,
    /// 0x24, CONNACK: 0 or 1.
    pub maximum_qos: Option<u8>,
    /// 0x25, CONNACK: 0 or 1.
    pub retain_available: Option<u8>,
    /// 0x26, every packet with properties and the will; order is kept.
    pub user_properties: Vec<(ByteString, ByteString)>,
    /// 0x27, CONNECT, CONNACK: not 0.
    pub maximum_packet_size: Option<u32>,
    /// 0x28, CONNACK: 0 or 1.
    pub wildcard_subscription_available: Option<u8>,
    /// 0x29, CONNACK: 0 or 1.
    pub subscription_identifier_available: Option<u8>,
    /// 0x2A, CONNACK: 0 or 1.
    pub shared_subscription_available: Option<u8>,
}

impl Properties {
    /// True when no property is set: such a block encodes as length 0.
    pub fn is_empty(&self) -> bool {
        *self == Properties::default()
    }
}

pub(crate) const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
pub(crate) const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
pub(crate) const CONTENT_TYPE: u8 = 0x03;
pub(crate) const RESPONSE_TOPIC: u8 = 0x08;
pub(crate) const CORRELATION_DATA: u8 = 0x09;
pub(crate) const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
pub(crate) const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
pub(crate) const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
pub(crate) const SERVER_KEEP_ALIVE: u8 = 0x13;
pub(crate) const AUTHENTICATION_METHOD: u8 = 0x15;
pub(crate) const AUTHENTICATION_DATA: u8 = 0x16;
pub(crate) const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
pub(crate) const WILL_DELAY_INTERVAL: u8 = 0x18;
pub(crate) const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
pub(crate) const RESPONSE_INFORMATION: u8 = 0x1A;
pub(crate) const SERVER_REFERENCE: u8 = 0x1C;
pub(crate) const REASON_STRING: u8 = 0x1F;
pub(crate) const RECEIVE_MAXIMUM: u8 = 0x21;
pub(crate) const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
pub(crate) const TOPIC_ALIAS: u8 = 0x23;
pub(crate) const MAXIMUM_QOS: u8 = 0x24;
pub(crate) const RETAIN_AVAILABLE: u8 = 0x25;
pub(crate) const USER_PROPERTY: u8 = 0x26;
pub(crate) const MAXIMUM_PACKET_SIZE: u8 = 0x27;
pub(crate) const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
pub(crate) const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
pub(crate) const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

/// Where a property block sits: which packet (or the will in CONNECT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PropCtx {
    Connect,
    Will,
    ConnAck,
    Publish,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

impl PropCtx {
    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

const fn mask(ctxs: &[PropCtx]) -> u16 {
    let mut m = 0;
    let mut i = 0;
    while i < ctxs.len() {
        m |= ctxs[i].bit();
        i += 1;
    }
    m
}

use PropCtx as C;

const MESSAGE: u16 = mask(&[C::Publish, C::Will]);
const SESSION: u16 = mask(&[C::Connect, C::ConnAck, C::Disconnect]);
const AUTH: u16 = mask(&[C::Connect, C::ConnAck, C::Auth]);
const LIMITS: u16 = mask(&[C::Connect, C::ConnAck]);
const CONNECT: u16 = mask(&[C::Connect]);
const CONNACK: u16 = mask(&[C::ConnAck]);
const REASON: u16 = mask(&[
    C::ConnAck,
    C::PubAck,
    C::PubRec,
    C::PubRel,
    C::PubComp,
    C::SubAck,
    C::UnsubAck,
    C::Disconnect,
    C::Auth,
]);
const ALL: u16 = u16::MAX;

/// The packets (as a mask of [`PropCtx`] bits) a property identifier is
/// allowed in (table 2-4); `None` for an identifier that does not exist.
pub(crate) fn allowed_in(id: u8) -> Option<u16> {
    Some(match id {
        PAYLOAD_FORMAT_INDICATOR
        | MESSAGE_EXPIRY_INTERVAL
        | CONTENT_TYPE
        | RESPONSE_TOPIC
        | CORRELATION_DATA => MESSAGE,
        SUBSCRIPTION_IDENTIFIER => mask(&[C::Publish, C::Subscribe]),
        SESSION_EXPIRY_INTERVAL => SESSION,
        ASSIGNED_CLIENT_IDENTIFIER | SERVER_KEEP_ALIVE | RESPONSE_INFORMATION => CONNACK,
        AUTHENTICATION_METHOD | AUTHENTICATION_DATA => AUTH,
        REQUEST_PROBLEM_INFORMATION | REQUEST_RESPONSE_INFORMATION => CONNECT,
        WILL_DELAY_INTERVAL => mask(&[C::Will]),
        SERVER_REFERENCE => mask(&[C::ConnAck, C::Disconnect]),
        REASON_STRING => REASON,
        RECEIVE_MAXIMUM | TOPIC_ALIAS_MAXIMUM | MAXIMUM_PACKET_SIZE => LIMITS,
        TOPIC_ALIAS => mask(&[C::Publish]),
        MAXIMUM_QOS
        | RETAIN_AVAILABLE
        | WILDCARD_SUBSCRIPTION_AVAILABLE
        | SUBSCRIPTION_IDENTIFIER_AVAILABLE
        | SHARED_SUBSCRIPTION_AVAILABLE => CONNACK,
        USER_PROPERTY => ALL,
        _ => return None,
    })
}

/// True when property `id` may appear in `ctx`.
#[cfg(test)]
pub(crate) fn is_allowed(id: u8, ctx: PropCtx) -> bool {
    allowed_in(id).is_some_and(|m| m & ctx.bit() != 0)
}

/// Reads a property block: its length, then the properties. `None` when the
/// length is 0.
pub(crate) fn decode_properties(
    r: &mut Reader,
    ctx: PropCtx,
) -> Result<Option<Box<Properties>>, DecodeError> {
    let len = r.vbi()? as usize;
    if len == 0 {
        return Ok(None);
    }
    if len > r.remaining() {
        return Err(DecodeError::Malformed(
            "property length beyond the packet body",
        ));
    }
    let mut pr = Reader::new(r.take(len)?);
    let mut p = Box::<Properties>::default();
    while pr.remaining() > 0 {
        read_property(&mut pr, ctx, &mut p)?;
    }
    Ok(Some(p))
}

const DUPLICATE: DecodeError = DecodeError::Protocol("duplicate property");

fn once<T>(slot: &mut Option<T>, v: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DUPLICATE);
    }
    *slot = Some(v);
    Ok(())
}

/// A byte property whose only values are 0 and 1.
fn flag(v: u8) -> Result<u8, DecodeError> {
    if v <= 1 {
        Ok(v)
    } else {
        Err(DecodeError::Protocol("property value other than 0 or 1"))
    }
}

fn read_property(pr: &mut Reader, ctx: PropCtx, p: &mut Properties) -> Result<(), DecodeError> {
    let id = pr.u8()?;
    let Some(allowed) = allowed_in(id) else {
        return Err(DecodeError::Malformed("unknown property identifier"));
    };
    if allowed & ctx.bit() == 0 {
        return Err(DecodeError::Protocol("property not allowed in this packet"));
    }
    match id {
        PAYLOAD_FORMAT_INDICATOR => once(&mut p.payload_format_indicator, flag(pr.u8()?)?),
        MESSAGE_EXPIRY_INTERVAL => once(&mut p.message_expiry_interval, pr.u32()?),
        CONTENT_TYPE => once(&mut p.content_type, pr.string()?),
        RESPONSE_TOPIC => once(&mut p.response_topic, pr.string()?),
        CORRELATION_DATA => once(&mut p.correlation_data, pr.binary()?),
        SUBSCRIPTION_IDENTIFIER => {
            let v = pr.vbi()?;
            if v == 0 {
                return Err(DecodeError::Protocol("subscription identifier 0"));
            }
            if ctx != PropCtx::Publish && !p.subscription_identifiers.is_empty() {
                return Err(DUPLICATE);
            }
            p.subscription_identifiers.push(v);
            Ok(())
        }
        SESSION_EXPIRY_INTERVAL => once(&mut p.session_expiry_interval, pr.u32()?),
        ASSIGNED_CLIENT_IDENTIFIER => once(&mut p.assigned_client_identifier, pr.string()?),
        SERVER_KEEP_ALIVE => once(&mut p.server_keep_alive, pr.u16()?),
        AUTHENTICATION_METHOD => once(&mut p.authentication_method, pr.string()?),
        AUTHENTICATION_DATA => once(&mut p.authentication_data, pr.binary()?),
        REQUEST_PROBLEM_INFORMATION => once(&mut p.request_problem_information, flag(pr.u8()?)?),
        WILL_DELAY_INTERVAL => once(&mut p.will_delay_interval, pr.u32()?),
        REQUEST_RESPONSE_INFORMATION => once(&mut p.request_response_information, flag(pr.u8()?)?),
        RESPONSE_INFORMATION => once(&mut p.response_information, pr.string()?),
        SERVER_REFERENCE => once(&mut p.server_reference, pr.string()?),
        REASON_STRING => once(&mut p.reason_string, pr.string()?),
        RECEIVE_MAXIMUM => match pr.u16()? {
            0 => Err(DecodeError::Protocol("receive maximum 0")),
            v => once(&mut p.receive_maximum, v),
        },
        TOPIC_ALIAS_MAXIMUM => once(&mut p.topic_alias_maximum, pr.u16()?),
        TOPIC_ALIAS => once(&mut p.topic_alias, pr.u16()?),
        MAXIMUM_QOS => once(&mut p.maximum_qos, flag(pr.u8()?)?),
        RETAIN_AVAILABLE => once(&mut p.retain_available, flag(pr.u8()?)?),
        USER_PROPERTY => {
            let k = pr.string()?;
            let v = pr.string()?;
            p.user_properties.push((k, v));
            Ok(())
        }
        MAXIMUM_PACKET_SIZE => match pr.u32()? {
            0 => Err(DecodeError::Protocol("maximum packet size 0")),
            v => once(&mut p.maximum_packet_size, v),
        },
        WILDCARD_SUBSCRIPTION_AVAILABLE => {
            once(&mut p.wildcard_subscription_available, flag(pr.u8()?)?)
        }
        SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
            once(&mut p.subscription_identifier_available, flag(pr.u8()?)?)
        }
        SHARED_SUBSCRIPTION_AVAILABLE => {
            once(&mut p.shared_subscription_available, flag(pr.u8()?)?)
        }
        _ => Err(DecodeError::Malformed("unknown property identifier")),
    }
}

/// The encoded length of `p`'s properties, without the property length in
/// front of them.
pub fn properties_len(p: &Properties) -> usize {
    fn s(v: &Option<ByteString>) -> usize {
        v.as_ref().map_or(0, |s| 3 + s.len())
    }
    fn b(v: &Option<Bytes>) -> usize {
        v.as_ref().map_or(0, |b| 3 + b.len())
    }
    fn n<T>(v: &Option<T>, width: usize) -> usize {
        if v.is_some() { 1 + width } else { 0 }
    }
    n(&p.payload_format_indicator, 1)
        + n(&p.message_expiry_interval, 4)
        + s(&p.content_type)
        + s(&p.response_topic)
        + b(&p.correlation_data)
        + p.subscription_identifiers
            .iter()
            .map(|&id| 1 + remaining_length_len(id as usize))
            .sum::<usize>()
        + n(&p.session_expiry_interval, 4)
        + s(&p.assigned_client_identifier)
        + n(&p.server_keep_alive, 2)
        + s(&p.authentication_method)
        + b(&p.authentication_data)
        + n(&p.request_problem_information, 1)
        + n(&p.will_delay_interval, 4)
        + n(&p.request_response_information, 1)
        + s(&p.response_information)
        + s(&p.server_reference)
        + s(&p.reason_string)
        + n(&p.receive_maximum, 2)
        + n(&p.topic_alias_maximum, 2)
        + n(&p.topic_alias, 2)
        + n(&p.maximum_qos, 1)
        + n(&p.retain_available, 1)
        + p.user_properties
            .iter()
            .map(|(k, v)| 5 + k.len() + v.len())
            .sum::<usize>()
        + n(&p.maximum_packet_size, 4)
        + n(&p.wildcard_subscription_available, 1)
        + n(&p.subscription_identifier_available, 1)
        + n(&p.shared_subscription_available, 1)
}

/// The length of the properties of `p` (0 for `None`) and the length of the
/// whole block: that plus the Variable Byte Integer in front.
pub(crate) fn block_len(p: Option<&Properties>) -> (usize, usize) {
    let len = p.map_or(0, properties_len);
    (len, remaining_length_len(len) + len)
}

/// Writes a property block: the length `len` (from [`block_len`]), then the
/// properties of `p`.
pub(crate) fn put_block(buf: &mut BytesMut, p: Option<&Properties>, len: usize) {
    put_remaining_length(buf, len);
    if len != 0
        && let Some(p) = p
    {
        put_properties(buf, p);
    }
}

/// The per-delivery PUBLISH properties the broker adds to a forwarded
/// message's own (which never carry these three).
#[derive(Clone, Copy, Debug, Default)]
pub struct PublishExtras<'a> {
    /// Remaining Message Expiry Interval, seconds.
    pub message_expiry: Option<u32>,
    pub topic_alias: Option<u16>,
    pub subscription_ids: &'a [u32],
}

impl PublishExtras<'_> {
    /// Encoded length of these properties.
    pub(crate) fn len(&self) -> usize {
        self.message_expiry.map_or(0, |_| 5)
            + self.topic_alias.map_or(0, |_| 3)
            + self
                .subscription_ids
                .iter()
                .map(|&id| 1 + remaining_length_len(id as usize))
                .sum::<usize>()
    }

    pub(crate) fn put(&self, buf: &mut BytesMut) {
        if let Some(v) = self.message_expiry {
            buf.put_u8(MESSAGE_EXPIRY_INTERVAL);
            buf.put_u32(v);
        }
        for &id in self.subscription_ids {
            buf.put_u8(SUBSCRIPTION_IDENTIFIER);
            put_remaining_length(buf, id as usize);
        }
        if let Some(v) = self.topic_alias {
            buf.put_u8(TOPIC_ALIAS);
            buf.put_u16(v);
        }
    }
}

pub(crate) fn put_properties(buf: &mut BytesMut, p: &Properties) {
    fn u8p(buf: &mut BytesMut, id: u8, v: Option<u8>) {
        if let Some(v) = v {
            buf.put_slice(&[id, v]);
        }
    }
    fn u16p(buf: &mut BytesMut, id: u8, v: Option<u16>) {
        if let Some(v) = v {
            buf.put_u8(id);
            buf.put_u16(v);
        }
    }
    fn u32p(buf: &mut BytesMut, id: u8, v: Option<u32>) {
        if let Some(v) = v {
            buf.put_u8(id);
            buf.put_u32(v);
        }
    }
    fn strp(buf: &mut BytesMut, id: u8, v: &Option<ByteString>) {
        if let Some(v) = v {
            buf.put_u8(id);
            put_bytes(buf, v.as_bytes());
        }
    }
    fn binp(buf: &mut BytesMut, id: u8, v: &Option<Bytes>) {
        if let Some(v) = v {
            buf.put_u8(id);
            put_bytes(buf, v);
        }
    }
    u8p(buf, PAYLOAD_FORMAT_INDICATOR, p.payload_format_indicator);
    u32p(buf, MESSAGE_EXPIRY_INTERVAL, p.message_expiry_interval);
    strp(buf, CONTENT_TYPE, &p.content_type);
    strp(buf, RESPONSE_TOPIC, &p.response_topic);
    binp(buf, CORRELATION_DATA, &p.correlation_data);
    for &id in &p.subscription_identifiers {
        buf.put_u8(SUBSCRIPTION_IDENTIFIER);
        put_remaining_length(buf, id as usize);
    }
    u32p(buf, SESSION_EXPIRY_INTERVAL, p.session_expiry_interval);
    strp(
        buf,
        ASSIGNED_CLIENT_IDENTIFIER,
        &p.assigned_client_identifier,
    );
    u16p(buf, SERVER_KEEP_ALIVE, p.server_keep_alive);
    strp(buf, AUTHENTICATION_METHOD, &p.authentication_method);
    binp(buf, AUTHENTICATION_DATA, &p.authentication_data);
    u8p(
        buf,
        REQUEST_PROBLEM_INFORMATION,
        p.request_problem_information,
    );
    u32p(buf, WILL_DELAY_INTERVAL, p.will_delay_interval);
    u8p(
        buf,
        REQUEST_RESPONSE_INFORMATION,
        p.request_response_information,
    );
    strp(buf, RESPONSE_INFORMATION, &p.response_information);
    strp(buf, SERVER_REFERENCE, &p.server_reference);
    strp(buf, REASON_STRING, &p.reason_string);
    u16p(buf, RECEIVE_MAXIMUM, p.receive_maximum);
    u16p(buf, TOPIC_ALIAS_MAXIMUM, p.topic_alias_maximum);
    u16p(buf, TOPIC_ALIAS, p.topic_alias);
    u8p(buf, MAXIMUM_QOS, p.maximum_qos);
    u8p(buf, RETAIN_AVAILABLE, p.retain_available);
    for (k, v) in &p.user_properties {
        buf.put_u8(USER_PROPERTY);
        put_bytes(buf, k.as_bytes());
        put_bytes(buf, v.as_bytes());
    }
    u32p(buf, MAXIMUM_PACKET_SIZE, p.maximum_packet_size);
    u8p(
        buf,
        WILDCARD_SUBSCRIPTION_AVAILABLE,
        p.wildcard_subscription_available,
    );
    u8p(
        buf,
        SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        p.subscription_identifier_available,
    );
    u8p(
        buf,
        SHARED_SUBSCRIPTION_AVAILABLE,
        p.shared_subscription_available,
    );
}
