//! SUBSCRIBE, SUBACK, UNSUBSCRIBE bodies (MQTT 3.1.1 sections 3.8 to 3.10).
//! Filters are only checked as UTF-8 strings here; whether a filter is valid
//! is `topic`'s call, and an invalid one gets SUBACK 0x80, not a close.

use super::codec::{Reader, put_bytes, put_remaining_length};
use super::{DecodeError, QoS, SubAck, SubAckCode, Subscribe, SubscribeFilter, Unsubscribe};
use bytes::{BufMut, BytesMut};

pub(crate) fn decode_subscribe(r: &mut Reader) -> Result<Subscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let mut filters = Vec::new();
    while r.remaining() > 0 {
        let filter = r.string()?;
        let options = r.u8()?;
        if options & 0xfc != 0 {
            return Err(DecodeError::Malformed("SUBSCRIBE reserved option bits"));
        }
        let qos =
            QoS::from_bits(options & 0x03).ok_or(DecodeError::Malformed("SUBSCRIBE QoS 3"))?;
        filters.push(SubscribeFilter { filter, qos });
    }
    if filters.is_empty() {
        return Err(DecodeError::Protocol("SUBSCRIBE without a topic filter"));
    }
    Ok(Subscribe { packet_id, filters })
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

pub(crate) fn decode_unsubscribe(r: &mut Reader) -> Result<Unsubscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let mut filters = Vec::new();
    while r.remaining() > 0 {
        filters.push(r.string()?);
    }
    if filters.is_empty() {
        return Err(DecodeError::Protocol("UNSUBSCRIBE without a topic filter"));
    }
    Ok(Unsubscribe { packet_id, filters })
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
