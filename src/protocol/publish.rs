//! PUBLISH body (MQTT 3.1.1 section 3.3, MQTT 5.0 section 3.3). The hot path:
//! the payload is a slice of the read buffer on decode, and encoding writes
//! straight into the connection's write buffer with one reservation. A 3.1.1
//! PUBLISH never touches properties.

use super::codec::{Reader, put_remaining_length, remaining_length_len};
use super::properties::{self, PropCtx, Properties, PublishExtras};
use super::{DecodeError, Publish, QoS};
use bytes::{BufMut, BytesMut};

pub(crate) fn decode_publish(flags: u8, r: &mut Reader, v5: bool) -> Result<Publish, DecodeError> {
    let dup = flags & 0x08 != 0;
    let qos = QoS::from_bits((flags >> 1) & 0x03).ok_or(DecodeError::Malformed("PUBLISH QoS 3"))?;
    let retain = flags & 0x01 != 0;
    if qos == QoS::AtMostOnce && dup {
        return Err(DecodeError::Malformed("DUP set on a QoS 0 PUBLISH"));
    }
    let topic = r.string()?;
    if topic.is_empty() && !v5 {
        return Err(DecodeError::Protocol("empty topic name"));
    }
    if topic.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(DecodeError::Protocol("wildcard in topic name"));
    }
    let packet_id = if qos == QoS::AtMostOnce {
        0
    } else {
        r.packet_id()?
    };
    let properties = if v5 {
        properties::decode_properties(r, PropCtx::Publish)?
    } else {
        None
    };
    // v5: an empty topic stands for the one a Topic Alias maps to (3.3.2.1).
    if topic.is_empty() && properties.as_ref().is_none_or(|p| p.topic_alias.is_none()) {
        return Err(DecodeError::Protocol(
            "empty topic name without a topic alias",
        ));
    }
    Ok(Publish {
        dup,
        qos,
        retain,
        topic,
        packet_id,
        payload: r.rest(),
        properties,
    })
}

/// Appends one PUBLISH to `buf`. `packet_id` is ignored for QoS 0.
pub fn encode_publish(
    buf: &mut BytesMut,
    topic: &str,
    payload: &[u8],
    qos: QoS,
    packet_id: u16,
    retain: bool,
    dup: bool,
) {
    let remaining = publish_head_len(topic.len(), qos) + payload.len();
    buf.reserve(1 + remaining_length_len(remaining) + remaining);
    put_publish_head(buf, topic, qos, packet_id, retain, dup, remaining);
    buf.put_slice(payload);
}

/// Topic and packet id bytes of a PUBLISH variable header.
#[inline]
fn publish_head_len(topic_len: usize, qos: QoS) -> usize {
    2 + topic_len + if qos == QoS::AtMostOnce { 0 } else { 2 }
}

/// Writes the fixed header, topic and packet id (QoS 1/2) of a PUBLISH whose
/// remaining length is `remaining`; the caller has reserved the space.
#[inline]
fn put_publish_head(
    buf: &mut BytesMut,
    topic: &str,
    qos: QoS,
    packet_id: u16,
    retain: bool,
    dup: bool,
    remaining: usize,
) {
    let mut byte0 = 0x30 | ((qos as u8) << 1);
    if retain {
        byte0 |= 0x01;
    }
    if dup && qos != QoS::AtMostOnce {
        byte0 |= 0x08;
    }
    buf.put_u8(byte0);
    put_remaining_length(buf, remaining);
    buf.put_u16(topic.len() as u16);
    buf.put_slice(topic.as_bytes());
    if qos != QoS::AtMostOnce {
        buf.put_u16(packet_id);
    }
}

/// Appends one v5 PUBLISH to `buf`: as [`encode_publish`], with the property
/// block (length 0 for `None`) between the packet id and the payload.
#[allow(clippy::too_many_arguments)]
pub fn encode_publish_v5(
    buf: &mut BytesMut,
    topic: &str,
    payload: &[u8],
    qos: QoS,
    packet_id: u16,
    retain: bool,
    dup: bool,
    properties: Option<&Properties>,
) {
    let none = PublishExtras::default();
    encode_publish_v5_with(
        buf, topic, payload, qos, packet_id, retain, dup, properties, &none,
    );
}

/// The property length and remaining length of a v5 PUBLISH.
#[inline]
fn v5_lengths(
    topic_len: usize,
    payload_len: usize,
    qos: QoS,
    base: Option<&Properties>,
    extras: &PublishExtras,
) -> (usize, usize) {
    let plen = base.map_or(0, properties::properties_len) + extras.len();
    let remaining =
        publish_head_len(topic_len, qos) + remaining_length_len(plen) + plen + payload_len;
    (plen, remaining)
}

/// The encoded size of a v5 PUBLISH, fixed header included, that
/// [`encode_publish_v5_with`] would write.
pub fn publish_v5_size(
    topic_len: usize,
    payload_len: usize,
    qos: QoS,
    base: Option<&Properties>,
    extras: &PublishExtras,
) -> usize {
    let (_, remaining) = v5_lengths(topic_len, payload_len, qos, base, extras);
    1 + remaining_length_len(remaining) + remaining
}

/// Appends a v5 PUBLISH: properties `base` (a forwarded message's own,
/// without expiry, alias or subscription ids) plus the per-delivery `extras`.
#[allow(clippy::too_many_arguments)]
pub fn encode_publish_v5_with(
    buf: &mut BytesMut,
    topic: &str,
    payload: &[u8],
    qos: QoS,
    packet_id: u16,
    retain: bool,
    dup: bool,
    base: Option<&Properties>,
    extras: &PublishExtras,
) {
    let (plen, remaining) = v5_lengths(topic.len(), payload.len(), qos, base, extras);
    buf.reserve(1 + remaining_length_len(remaining) + remaining);
    put_publish_head(buf, topic, qos, packet_id, retain, dup, remaining);
    put_remaining_length(buf, plen);
    if let Some(p) = base {
        properties::put_properties(buf, p);
    }
    extras.put(buf);
    buf.put_slice(payload);
}

/// Offset of the packet identifier inside an encoded QoS 1/2 PUBLISH whose
/// topic is `topic_len` bytes and whose remaining length is `remaining` (v5
/// too: the properties follow the packet id).
pub fn publish_packet_id_offset(topic_len: usize, remaining: usize) -> usize {
    1 + remaining_length_len(remaining) + 2 + topic_len
}
