//! Framing and primitives shared by every packet: the fixed header, the
//! variable-length remaining length, and a checked reader over a packet body.
//! `decode` dispatches on the packet type (and, for v5, the version);
//! `encode` / `encode_v` write any packet. Acks, DISCONNECT and AUTH live here.

use super::properties::{self, PropCtx};
use super::{
    AckKind, AckV5, Auth, DecodeError, DisconnectV5, Packet, Properties, ProtocolVersion, connect,
    publish, reason, subscribe,
};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use bytestring::ByteString;

/// Largest value the 4-byte remaining length can carry (268,435,455).
pub const REMAINING_LENGTH_MAX: usize = 268_435_455;

/// Result of parsing a fixed header: the first byte, the header length and the
/// remaining length.
struct FixedHeader {
    byte0: u8,
    header_len: usize,
    remaining_len: usize,
}

/// Parses the fixed header at the start of `buf`. `Ok(None)`: more bytes needed.
fn parse_fixed_header(buf: &[u8]) -> Result<Option<FixedHeader>, DecodeError> {
    let Some(&byte0) = buf.first() else {
        return Ok(None);
    };
    let mut remaining_len = 0usize;
    let mut shift = 0;
    for i in 1..=4 {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        remaining_len |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            // A multi-byte encoding with a zero last byte is not minimal; the
            // spec does not forbid it, so it is accepted as mosquitto does.
            return Ok(Some(FixedHeader {
                byte0,
                header_len: i + 1,
                remaining_len,
            }));
        }
        shift += 7;
    }
    Err(DecodeError::Malformed(
        "remaining length longer than 4 bytes",
    ))
}

/// The total length of the first frame in `buf` once its fixed header is
/// complete, checked against `packet_size_max_bytes`. `Ok(None)`: header incomplete.
pub fn frame_len(buf: &[u8], packet_size_max_bytes: usize) -> Result<Option<usize>, DecodeError> {
    match parse_fixed_header(buf)? {
        None => Ok(None),
        Some(h) => {
            let size = h.header_len + h.remaining_len;
            if size > packet_size_max_bytes {
                return Err(DecodeError::TooLarge {
                    size,
                    max: packet_size_max_bytes,
                });
            }
            Ok(Some(size))
        }
    }
}

/// Decodes the first complete packet in `buf` and removes its bytes.
///
/// `version` is the connection's protocol version, `None` before CONNECT (then
/// only the packet's own bytes decide). `Ok(None)`: the packet is not complete
/// yet, `buf` is untouched. Oversize packets are rejected from the fixed header.
pub fn decode(
    buf: &mut BytesMut,
    version: Option<ProtocolVersion>,
    packet_size_max_bytes: usize,
) -> Result<Option<Packet>, DecodeError> {
    let Some(h) = parse_fixed_header(buf)? else {
        return Ok(None);
    };
    let size = h.header_len + h.remaining_len;
    if size > packet_size_max_bytes {
        return Err(DecodeError::TooLarge {
            size,
            max: packet_size_max_bytes,
        });
    }
    if buf.len() < size {
        return Ok(None);
    }
    let mut frame = buf.split_to(size).freeze();
    let body = frame.split_off(h.header_len);
    decode_body(h.byte0, body, version).map(Some)
}

fn decode_body(
    byte0: u8,
    body: Bytes,
    version: Option<ProtocolVersion>,
) -> Result<Packet, DecodeError> {
    let flags = byte0 & 0x0f;
    // 3.1 and 3.1.1 share one body format after CONNECT; v5 differs.
    let v5 = version == Some(ProtocolVersion::V5);
    let mut r = Reader::new(body);
    let packet = match byte0 >> 4 {
        1 => {
            expect_flags(flags, 0)?;
            Packet::Connect(Box::new(connect::decode_connect(&mut r)?))
        }
        2 => {
            expect_flags(flags, 0)?;
            if v5 {
                Packet::ConnAckV5(connect::decode_connack_v5(&mut r)?)
            } else {
                Packet::ConnAck(connect::decode_connack(&mut r)?)
            }
        }
        3 => Packet::Publish(publish::decode_publish(flags, &mut r, v5)?),
        4 => {
            expect_flags(flags, 0)?;
            decode_ack(&mut r, v5, AckKind::PubAck)?
        }
        5 => {
            expect_flags(flags, 0)?;
            decode_ack(&mut r, v5, AckKind::PubRec)?
        }
        6 => {
            expect_flags(flags, 0b0010)?;
            decode_ack(&mut r, v5, AckKind::PubRel)?
        }
        7 => {
            expect_flags(flags, 0)?;
            decode_ack(&mut r, v5, AckKind::PubComp)?
        }
        8 => {
            expect_flags(flags, 0b0010)?;
            Packet::Subscribe(subscribe::decode_subscribe(&mut r, v5)?)
        }
        9 => {
            expect_flags(flags, 0)?;
            if v5 {
                Packet::SubAckV5(subscribe::decode_suback_v5(&mut r)?)
            } else {
                Packet::SubAck(subscribe::decode_suback(&mut r)?)
            }
        }
        10 => {
            expect_flags(flags, 0b0010)?;
            Packet::Unsubscribe(subscribe::decode_unsubscribe(&mut r, v5)?)
        }
        11 => {
            expect_flags(flags, 0)?;
            if v5 {
                Packet::UnsubAckV5(subscribe::decode_unsuback_v5(&mut r)?)
            } else {
                Packet::UnsubAck(r.packet_id()?)
            }
        }
        12 => {
            expect_flags(flags, 0)?;
            Packet::PingReq
        }
        13 => {
            expect_flags(flags, 0)?;
            Packet::PingResp
        }
        14 => {
            expect_flags(flags, 0)?;
            if v5 {
                let (reason, properties) = decode_reason_and_properties(
                    &mut r,
                    reason::DISCONNECT_CODES,
                    PropCtx::Disconnect,
                )?;
                if reason == reason::NORMAL_DISCONNECTION && properties.is_none() {
                    Packet::Disconnect
                } else {
                    Packet::DisconnectV5(DisconnectV5 { reason, properties })
                }
            } else {
                Packet::Disconnect
            }
        }
        15 if v5 => {
            expect_flags(flags, 0)?;
            let (reason, properties) =
                decode_reason_and_properties(&mut r, reason::AUTH_CODES, PropCtx::Auth)?;
            Packet::Auth(Auth { reason, properties })
        }
        0 => return Err(DecodeError::Malformed("reserved packet type 0")),
        _ => return Err(DecodeError::Malformed("packet type 15 (AUTH) needs MQTT 5")),
    };
    r.finish()?;
    Ok(packet)
}

fn expect_flags(flags: u8, want: u8) -> Result<(), DecodeError> {
    if flags == want {
        Ok(())
    } else {
        Err(DecodeError::Malformed("reserved fixed-header flags"))
    }
}

/// Checks a v5 reason code against the codes its packet may carry.
pub(crate) fn check_reason(code: u8, valid: &[u8]) -> Result<u8, DecodeError> {
    if valid.contains(&code) {
        Ok(code)
    } else {
        Err(DecodeError::Protocol(
            "reason code not valid for this packet",
        ))
    }
}

/// A publish acknowledgement. In v5 the reason code and then the properties
/// may follow the packet id (each omitted when the body ends); success without
/// properties is the plain variant.
fn decode_ack(r: &mut Reader, v5: bool, kind: AckKind) -> Result<Packet, DecodeError> {
    let packet_id = r.packet_id()?;
    let (reason, properties) = if v5 && r.remaining() > 0 {
        let ctx = match kind {
            AckKind::PubAck => PropCtx::PubAck,
            AckKind::PubRec => PropCtx::PubRec,
            AckKind::PubRel => PropCtx::PubRel,
            AckKind::PubComp => PropCtx::PubComp,
        };
        decode_reason_and_properties(r, kind.reason_codes(), ctx)?
    } else {
        (reason::SUCCESS, None)
    };
    if reason == reason::SUCCESS && properties.is_none() {
        return Ok(match kind {
            AckKind::PubAck => Packet::PubAck(packet_id),
            AckKind::PubRec => Packet::PubRec(packet_id),
            AckKind::PubRel => Packet::PubRel(packet_id),
            AckKind::PubComp => Packet::PubComp(packet_id),
        });
    }
    Ok(Packet::AckV5(AckV5 {
        kind,
        packet_id,
        reason,
        properties,
    }))
}

/// An optional reason code then optional properties, each absent when the
/// body ends before it (v5 acks, DISCONNECT, AUTH).
fn decode_reason_and_properties(
    r: &mut Reader,
    valid: &[u8],
    ctx: PropCtx,
) -> Result<(u8, Option<Box<Properties>>), DecodeError> {
    if r.remaining() == 0 {
        return Ok((reason::SUCCESS, None));
    }
    let code = check_reason(r.u8()?, valid)?;
    let properties = if r.remaining() > 0 {
        properties::decode_properties(r, ctx)?
    } else {
        None
    };
    Ok((code, properties))
}

/// Appends `packet` in wire format to `buf`: 3.1.1 for the variants 3.1.1 and
/// 5 share (v5 properties and subscription options are not written), v5 for
/// the v5-only variants. A CONNECT is written in the format of its own
/// `version`. Use [`encode_v`] to write shared variants in v5 form.
pub fn encode(packet: &Packet, buf: &mut BytesMut) {
    match packet {
        Packet::Connect(c) => connect::encode_connect(c, buf),
        Packet::ConnAck(c) => {
            buf.put_slice(&[0x20, 2, c.session_present as u8, c.code as u8]);
        }
        Packet::Publish(p) => publish::encode_publish(
            buf,
            &p.topic,
            &p.payload,
            p.qos,
            p.packet_id,
            p.retain,
            p.dup,
        ),
        Packet::PubAck(id) => encode_ack(buf, 0x40, *id),
        Packet::PubRec(id) => encode_ack(buf, 0x50, *id),
        Packet::PubRel(id) => encode_ack(buf, 0x62, *id),
        Packet::PubComp(id) => encode_ack(buf, 0x70, *id),
        Packet::Subscribe(s) => subscribe::encode_subscribe(s, buf),
        Packet::SubAck(s) => subscribe::encode_suback(s, buf),
        Packet::Unsubscribe(u) => subscribe::encode_unsubscribe(u, buf),
        Packet::UnsubAck(id) => encode_ack(buf, 0xb0, *id),
        Packet::PingReq => buf.put_slice(&[0xc0, 0]),
        Packet::PingResp => buf.put_slice(&[0xd0, 0]),
        Packet::Disconnect => buf.put_slice(&[0xe0, 0]),
        Packet::ConnAckV5(c) => connect::encode_connack_v5(c, buf),
        Packet::AckV5(a) => {
            let byte0 = match a.kind {
                AckKind::PubAck => 0x40,
                AckKind::PubRec => 0x50,
                AckKind::PubRel => 0x62,
                AckKind::PubComp => 0x70,
            };
            encode_ack_v5(buf, byte0, a.packet_id, a.reason, a.properties.as_deref());
        }
        Packet::SubAckV5(s) => subscribe::encode_reasons_v5(
            buf,
            0x90,
            s.packet_id,
            &s.reasons,
            s.properties.as_deref(),
        ),
        Packet::UnsubAckV5(u) => subscribe::encode_reasons_v5(
            buf,
            0xb0,
            u.packet_id,
            &u.reasons,
            u.properties.as_deref(),
        ),
        Packet::DisconnectV5(d) => encode_reason_v5(buf, 0xe0, d.reason, d.properties.as_deref()),
        Packet::Auth(a) => encode_reason_v5(buf, 0xf0, a.reason, a.properties.as_deref()),
    }
}

/// Appends `packet` to `buf` in the wire format of `version`. For 3.1 and
/// 3.1.1 this is [`encode`]. For v5 the shared variants get their v5 form:
/// PUBLISH, SUBSCRIBE and UNSUBSCRIBE with their properties (an empty block
/// when `None`) and subscription options; acks in the shortest form (packet id
/// only); CONNACK with the v5 reason of its return code; SUBACK with its codes
/// (failure is 0x80); `UnsubAck(id)` with no reason codes (v5 wants one per
/// filter: send [`Packet::UnsubAckV5`] instead). A CONNECT is written in the
/// format of its own `version`.
pub fn encode_v(version: ProtocolVersion, packet: &Packet, buf: &mut BytesMut) {
    if version != ProtocolVersion::V5 {
        return encode(packet, buf);
    }
    match packet {
        Packet::ConnAck(c) => {
            buf.put_slice(&[0x20, 3, c.session_present as u8, c.code.v5_reason(), 0]);
        }
        Packet::Publish(p) => publish::encode_publish_v5(
            buf,
            &p.topic,
            &p.payload,
            p.qos,
            p.packet_id,
            p.retain,
            p.dup,
            p.properties.as_deref(),
        ),
        Packet::Subscribe(s) => subscribe::encode_subscribe_v5(s, buf),
        Packet::SubAck(s) => subscribe::encode_suback_as_v5(s, buf),
        Packet::Unsubscribe(u) => subscribe::encode_unsubscribe_v5(u, buf),
        Packet::UnsubAck(id) => subscribe::encode_reasons_v5(buf, 0xb0, *id, &[], None),
        // The same bytes in every version, or the v5-only variants.
        _ => encode(packet, buf),
    }
}

/// Writes a v5 publish ack: packet id, then the reason code unless it is 0
/// and there are no properties, then the properties if there are some.
fn encode_ack_v5(
    buf: &mut BytesMut,
    byte0: u8,
    packet_id: u16,
    reason: u8,
    properties: Option<&Properties>,
) {
    let (plen, block) = properties::block_len(properties);
    let [hi, lo] = packet_id.to_be_bytes();
    if plen == 0 {
        if reason == reason::SUCCESS {
            buf.put_slice(&[byte0, 2, hi, lo]);
        } else {
            buf.put_slice(&[byte0, 3, hi, lo, reason]);
        }
        return;
    }
    let remaining = 3 + block;
    buf.reserve(1 + remaining_length_len(remaining) + remaining);
    buf.put_u8(byte0);
    put_remaining_length(buf, remaining);
    buf.put_slice(&[hi, lo, reason]);
    properties::put_block(buf, properties, plen);
}

/// Writes a v5 DISCONNECT or AUTH: empty for reason 0 without properties,
/// the reason code alone without properties, else both.
fn encode_reason_v5(buf: &mut BytesMut, byte0: u8, reason: u8, properties: Option<&Properties>) {
    let (plen, block) = properties::block_len(properties);
    if plen == 0 {
        if reason == reason::SUCCESS {
            buf.put_slice(&[byte0, 0]);
        } else {
            buf.put_slice(&[byte0, 1, reason]);
        }
        return;
    }
    let remaining = 1 + block;
    buf.reserve(1 + remaining_length_len(remaining) + remaining);
    buf.put_u8(byte0);
    put_remaining_length(buf, remaining);
    buf.put_u8(reason);
    properties::put_block(buf, properties, plen);
}

/// Writes a 4-byte acknowledgement: type/flags, length 2, packet id.
pub(crate) fn encode_ack(buf: &mut BytesMut, byte0: u8, packet_id: u16) {
    let [hi, lo] = packet_id.to_be_bytes();
    buf.put_slice(&[byte0, 2, hi, lo]);
}

/// Writes the variable-length remaining length.
pub(crate) fn put_remaining_length(buf: &mut BytesMut, mut len: usize) {
    debug_assert!(len <= REMAINING_LENGTH_MAX);
    loop {
        let mut byte = (len & 0x7f) as u8;
        len >>= 7;
        if len > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if len == 0 {
            return;
        }
    }
}

/// Number of bytes `put_remaining_length` writes for `len`.
pub(crate) fn remaining_length_len(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes a length-prefixed string or binary field.
pub(crate) fn put_bytes(buf: &mut BytesMut, s: &[u8]) {
    debug_assert!(s.len() <= u16::MAX as usize);
    buf.put_u16(s.len() as u16);
    buf.put_slice(s);
}

/// A checked cursor over one packet body. Every read checks the length first,
/// so a short body is `Malformed`, never a panic.
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Self {
        Reader { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        self.need(2)?;
        Ok(self.buf.get_u16())
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }

    /// Checks that `n` more bytes are there. The fixed-width reads then
    /// advance the cursor in place instead of slicing (no reference count
    /// traffic on the shared buffer).
    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.buf.len() < n {
            Err(DecodeError::Malformed("packet body too short"))
        } else {
            Ok(())
        }
    }

    /// A Variable Byte Integer (section 1.5.5): at most 4 bytes. Like the
    /// remaining length, a non-minimal encoding is accepted.
    pub(crate) fn vbi(&mut self) -> Result<u32, DecodeError> {
        let mut value = 0u32;
        for i in 0..4 {
            let b = self.u8()?;
            value |= ((b & 0x7f) as u32) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Malformed(
            "variable byte integer longer than 4 bytes",
        ))
    }

    /// A non-zero packet identifier.
    pub(crate) fn packet_id(&mut self) -> Result<u16, DecodeError> {
        match self.u16()? {
            0 => Err(DecodeError::Protocol("packet identifier 0")),
            id => Ok(id),
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Malformed("packet body too short"));
        }
        Ok(self.buf.split_to(n))
    }

    /// The rest of the body (a PUBLISH payload).
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// A length-prefixed binary field.
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u16()? as usize;
        self.take(len)
    }

    /// A length-prefixed UTF-8 string: valid UTF-8 (so no surrogates) and no U+0000.
    pub(crate) fn string(&mut self) -> Result<ByteString, DecodeError> {
        let raw = self.binary()?;
        if raw.contains(&0) {
            return Err(DecodeError::Malformed("U+0000 in a UTF-8 string"));
        }
        ByteString::try_from(raw).map_err(|_| DecodeError::Malformed("invalid UTF-8 string"))
    }

    /// Errors if bytes are left over after a fixed-size body.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed(
                "unexpected bytes after the packet body",
            ))
        }
    }
}
