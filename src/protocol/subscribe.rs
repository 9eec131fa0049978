//! SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK bodies (MQTT 3.1.1 sections 3.8 to
//! 3.11, MQTT 5.0 sections 3.8 to 3.11). Filters are only checked as UTF-8
//! strings here; whether a filter is valid (or a shared one may have No Local)
//! is `topic`'s and the broker's call, and an invalid one gets a SUBACK
//! failure code, not a close.

use super::codec::{Reader, check_reason, put_bytes, put_remaining_length, remaining_length_len};
use super::properties::{self, PropCtx, Properties};
use super::{
    DecodeError, QoS, SubAck, SubAckCode, SubAckV5, Subscribe, SubscribeFilter, UnsubAckV5,
    Unsubscribe, reason,
};
use bytes::{BufMut, BytesMut};

const NO_LOCAL: u8 = 0x04;
const RETAIN_AS_PUBLISHED: u8 = 0x08;

pub(crate) fn decode_subscribe(r: &mut Reader, v5: bool) -> Result<Subscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = if v5 {
        properties::decode_properties(r, PropCtx::Subscribe)?
    } else {
        None
    };
    let mut filters = Vec::new();
    while r.remaining() > 0 {
        let filter = r.string()?;
        let options = r.u8()?;
        filters.push(if v5 {
            subscription_options_v5(filter, options)?
        } else {
            if options & 0xfc != 0 {
                return Err(DecodeError::Malformed("SUBSCRIBE reserved option bits"));
            }
            let qos =
                QoS::from_bits(options & 0x03).ok_or(DecodeError::Malformed("SUBSCRIBE QoS 3"))?;
            SubscribeFilter {
                filter,
                qos,
                no_local: false,
                retain_as_published: false,
                retain_handling: 0,
            }
        });
    }
    if filters.is_empty() {
        return Err(DecodeError::Protocol("SUBSCRIBE without a topic filter"));
    }
    Ok(Subscribe {
        packet_id,
        filters,
        properties,
    })
}

/// v5 subscription options (3.8.3.1): bits 0-1 maximum QoS, 2 No Local, 3
/// Retain As Published, 4-5 Retain Handling, 6-7 reserved.
fn subscription_options_v5(
    filter: bytestring::ByteString,
    options: u8,
) -> Result<SubscribeFilter, DecodeError> {
    if options & 0xc0 != 0 {
        return Err(DecodeError::Malformed("SUBSCRIBE reserved option bits"));
    }
    let qos = QoS::from_bits(options & 0x03).ok_or(DecodeError::Protocol("SUBSCRIBE QoS 3"))?;
    let retain_handling = (options >> 4) & 0x03;
    if retain_handling == 3 {
        return Err(DecodeError::Protocol("SUBSCRIBE retain handling 3"));
    }
    Ok(SubscribeFilter {
        filter,
        qos,
        no_local: options & NO_LOCAL != 0,
        retain_as_published: options & RETAIN_AS_PUBLISHED != 0,
        retain_handling,
    })
}

/// The v5 options byte of `f`.
fn options_byte_v5(f: &SubscribeFilter) -> u8 {
    let mut b = f.qos as u8 | (f.retain_handling & 0x03) << 4;
    if f.no_local {
        b |= NO_LOCAL;
    }
    if f.retain_as_published {
        b |= RETAIN_AS_PUBLISHED;
    }
    b
}

pub(crate) fn decode_suback(r: &mut Reader) -> Result<SubAck, DecodeError> {
    let packet_id = r.packet_id()?;
    let mut codes = Vec::with_capacity(r.remaining());
    while r.remaining() > 0 {
        codes.push(match r.u8()? {
            0 => SubAckCode::Granted(QoS::AtMostOnce),
            1 => SubAckCode::Granted(QoS::AtLeastOnce),
            2 => SubAckCode::Granted(QoS::ExactlyOnce),
            0x80 => SubAckCode::Failure,
            _ => return Err(DecodeError::Malformed("unknown SUBACK return code")),
        });
    }
    Ok(SubAck { packet_id, codes })
}

/// v5 SUBACK or UNSUBACK body: packet id, properties, one reason code each
/// (returned as a `SubAckV5` either way).
fn decode_reasons_v5(r: &mut Reader, ctx: PropCtx, valid: &[u8]) -> Result<SubAckV5, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = properties::decode_properties(r, ctx)?;
    let mut reasons = Vec::with_capacity(r.remaining());
    while r.remaining() > 0 {
        reasons.push(check_reason(r.u8()?, valid)?);
    }
    Ok(SubAckV5 {
        packet_id,
        reasons,
        properties,
    })
}

pub(crate) fn decode_suback_v5(r: &mut Reader) -> Result<SubAckV5, DecodeError> {
    decode_reasons_v5(r, PropCtx::SubAck, reason::SUBACK_CODES)
}

pub(crate) fn decode_unsuback_v5(r: &mut Reader) -> Result<UnsubAckV5, DecodeError> {
    let s = decode_reasons_v5(r, PropCtx::UnsubAck, reason::UNSUBACK_CODES)?;
    Ok(UnsubAckV5 {
        packet_id: s.packet_id,
        reasons: s.reasons,
        properties: s.properties,
    })
}

pub(crate) fn decode_unsubscribe(r: &mut Reader, v5: bool) -> Result<Unsubscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = if v5 {
        properties::decode_properties(r, PropCtx::Unsubscribe)?
    } else {
        None
    };
    let mut filters = Vec::new();
    while r.remaining() > 0 {
        filters.push(r.string()?);
    }
    if filters.is_empty() {
        return Err(DecodeError::Protocol("UNSUBSCRIBE without a topic filter"));
    }
    Ok(Unsubscribe {
        packet_id,
        filters,
        properties,
    })
}

pub(crate) fn encode_subscribe(s: &Subscribe, buf: &mut BytesMut) {
    let len = 2 + s
        .filters
        .iter()
        .map(|f| 2 + f.filter.len() + 1)
        .sum::<usize>();
    buf.reserve(len + 5);
    buf.put_u8(0x82);
    put_remaining_length(buf, len);
    buf.put_u16(s.packet_id);
    for f in &s.filters {
        put_bytes(buf, f.filter.as_bytes());
        buf.put_u8(f.qos as u8);
    }
}

pub(crate) fn encode_suback(s: &SubAck, buf: &mut BytesMut) {
    let len = 2 + s.codes.len();
    buf.reserve(len + 5);
    buf.put_u8(0x90);
    put_remaining_length(buf, len);
    buf.put_u16(s.packet_id);
    for c in &s.codes {
        buf.put_u8(c.to_u8());
    }
}

/// A 3.1.1 `SubAck` in v5 form: an empty property block before the codes
/// (the granted QoS and 0x80 mean the same in both).
pub(crate) fn encode_suback_as_v5(s: &SubAck, buf: &mut BytesMut) {
    let len = 3 + s.codes.len();
    buf.reserve(1 + remaining_length_len(len) + len);
    buf.put_u8(0x90);
    put_remaining_length(buf, len);
    buf.put_u16(s.packet_id);
    buf.put_u8(0);
    for c in &s.codes {
        buf.put_u8(c.to_u8());
    }
}

pub(crate) fn encode_unsubscribe(u: &Unsubscribe, buf: &mut BytesMut) {
    let len = 2 + u.filters.iter().map(|f| 2 + f.len()).sum::<usize>();
    buf.reserve(len + 5);
    buf.put_u8(0xa2);
    put_remaining_length(buf, len);
    buf.put_u16(u.packet_id);
    for f in &u.filters {
        put_bytes(buf, f.as_bytes());
    }
}

pub(crate) fn encode_subscribe_v5(s: &Subscribe, buf: &mut BytesMut) {
    let props = s.properties.as_deref();
    let (plen, block) = properties::block_len(props);
    let len = 2
        + block
        + s.filters
            .iter()
            .map(|f| 2 + f.filter.len() + 1)
            .sum::<usize>();
    buf.reserve(1 + remaining_length_len(len) + len);
    buf.put_u8(0x82);
    put_remaining_length(buf, len);
    buf.put_u16(s.packet_id);
    properties::put_block(buf, props, plen);
    for f in &s.filters {
        put_bytes(buf, f.filter.as_bytes());
        buf.put_u8(options_byte_v5(f));
    }
}

pub(crate) fn encode_unsubscribe_v5(u: &Unsubscribe, buf: &mut BytesMut) {
    let props = u.properties.as_deref();
    let (plen, block) = properties::block_len(props);
    let len = 2 + block + u.filters.iter().map(|f| 2 + f.len()).sum::<usize>();
    buf.reserve(1 + remaining_length_len(len) + len);
    buf.put_u8(0xa2);
    put_remaining_length(buf, len);
    buf.put_u16(u.packet_id);
    properties::put_block(buf, props, plen);
    for f in &u.filters {
        put_bytes(buf, f.as_bytes());
    }
}

/// Writes a v5 SUBACK (`byte0` 0x90) or UNSUBACK (0xb0): packet id,
/// properties, reason codes.
pub(crate) fn encode_reasons_v5(
    buf: &mut BytesMut,
    byte0: u8,
    packet_id: u16,
    reasons: &[u8],
    props: Option<&Properties>,
) {
    let (plen, block) = properties::block_len(props);
    let len = 2 + block + reasons.len();
    buf.reserve(1 + remaining_length_len(len) + len);
    buf.put_u8(byte0);
    put_remaining_length(buf, len);
    buf.put_u16(packet_id);
    properties::put_block(buf, props, plen);
    buf.put_slice(reasons);
}
