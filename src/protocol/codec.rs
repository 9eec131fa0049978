//! Framing and primitives shared by every packet: the fixed header, the
//! variable-length remaining length, and a checked reader over a packet body.
//! `decode` dispatches on the packet type; `encode` writes any packet.

use super::{DecodeError, Packet, ProtocolVersion, connect, publish, subscribe};
use bytes::{BufMut, Bytes, BytesMut};
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
    let _ = version; // 3.1 and 3.1.1 share one body format after CONNECT.
    let mut r = Reader::new(body);
    let packet = match byte0 >> 4 {
        1 => {
            expect_flags(flags, 0)?;
            Packet::Connect(Box::new(connect::decode_connect(&mut r)?))
        }
        2 => {
            expect_flags(flags, 0)?;
            Packet::ConnAck(connect::decode_connack(&mut r)?)
        }
        3 => Packet::Publish(publish::decode_publish(flags, &mut r)?),
        4 => {
            expect_flags(flags, 0)?;
            Packet::PubAck(r.packet_id()?)
        }
        5 => {
            expect_flags(flags, 0)?;
            Packet::PubRec(r.packet_id()?)
        }
        6 => {
            expect_flags(flags, 0b0010)?;
            Packet::PubRel(r.packet_id()?)
        }
        7 => {
            expect_flags(flags, 0)?;
            Packet::PubComp(r.packet_id()?)
        }
        8 => {
            expect_flags(flags, 0b0010)?;
            Packet::Subscribe(subscribe::decode_subscribe(&mut r)?)
        }
        9 => {
            expect_flags(flags, 0)?;
            Packet::SubAck(subscribe::decode_suback(&mut r)?)
        }
        10 => {
            expect_flags(flags, 0b0010)?;
            Packet::Unsubscribe(subscribe::decode_unsubscribe(&mut r)?)
        }
        11 => {
            expect_flags(flags, 0)?;
            Packet::UnsubAck(r.packet_id()?)
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
            Packet::Disconnect
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

/// Appends `packet` in wire format to `buf`.
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
    }
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
        let Some(&b) = self.buf.first() else {
            return Err(DecodeError::Malformed("packet body too short"));
        };
        self.buf = self.buf.slice(1..);
        Ok(b)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
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
