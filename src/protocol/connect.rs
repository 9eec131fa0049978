//! CONNECT and CONNACK bodies (MQTT 3.1.1 sections 3.1 and 3.2, 3.1 "MQIsdp",
//! MQTT 5.0 sections 3.1 and 3.2).

use super::codec::{Reader, check_reason, put_bytes, put_remaining_length, remaining_length_len};
use super::properties::{self, PropCtx};
use super::{
    ConnAck, ConnAckV5, Connect, ConnectReturnCode, DecodeError, ProtocolVersion, QoS, Will, reason,
};
use bytes::{BufMut, BytesMut};

const FLAG_RESERVED: u8 = 0x01;
const FLAG_CLEAN: u8 = 0x02;
const FLAG_WILL: u8 = 0x04;
const FLAG_WILL_RETAIN: u8 = 0x20;
const FLAG_PASSWORD: u8 = 0x40;
const FLAG_USERNAME: u8 = 0x80;

pub(crate) fn decode_connect(r: &mut Reader) -> Result<Connect, DecodeError> {
    let name = r.binary()?;
    let level = r.u8()?;
    let version = match (&name[..], level) {
        (b"MQTT", 4) => ProtocolVersion::V311,
        (b"MQTT", 5) => ProtocolVersion::V5,
        (b"MQIsdp", 3) => ProtocolVersion::V31,
        (b"MQTT", l) | (b"MQIsdp", l) => return Err(DecodeError::UnsupportedProtocolLevel(l)),
        _ => return Err(DecodeError::BadProtocolName),
    };
    let flags = r.u8()?;
    if flags & FLAG_RESERVED != 0 {
        return Err(DecodeError::Malformed("CONNECT reserved flag set"));
    }
    let will_flag = flags & FLAG_WILL != 0;
    let will_qos_bits = (flags >> 3) & 0x03;
    let will_retain = flags & FLAG_WILL_RETAIN != 0;
    if !will_flag && (will_qos_bits != 0 || will_retain) {
        return Err(DecodeError::Malformed(
            "will QoS or retain set without will flag",
        ));
    }
    let will_qos = QoS::from_bits(will_qos_bits).ok_or(DecodeError::Malformed("will QoS 3"))?;
    let has_username = flags & FLAG_USERNAME != 0;
    let has_password = flags & FLAG_PASSWORD != 0;
    let v5 = version == ProtocolVersion::V5;
    // v5 allows a password without a username (3.1.2.9).
    if has_password && !has_username && !v5 {
        return Err(DecodeError::Malformed(
            "password flag without username flag",
        ));
    }
    let keep_alive_s = r.u16()?;
    let properties = if v5 {
        let p = properties::decode_properties(r, PropCtx::Connect)?;
        if let Some(p) = &p
            && p.authentication_data.is_some()
            && p.authentication_method.is_none()
        {
            return Err(DecodeError::Protocol(
                "authentication data without authentication method",
            ));
        }
        p
    } else {
        None
    };
    let client_id = r.string()?;
    let will = if will_flag {
        let properties = if v5 {
            properties::decode_properties(r, PropCtx::Will)?
        } else {
            None
        };
        let topic = r.string()?;
        let payload = r.binary()?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(r.string()?)
    } else {
        None
    };
    let password = if has_password {
        Some(r.binary()?)
    } else {
        None
    };
    Ok(Connect {
        version,
        clean_session: flags & FLAG_CLEAN != 0,
        keep_alive_s,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

pub(crate) fn decode_connack(r: &mut Reader) -> Result<ConnAck, DecodeError> {
    let ack_flags = r.u8()?;
    if ack_flags & 0xfe != 0 {
        return Err(DecodeError::Malformed("CONNACK reserved flags"));
    }
    let code = ConnectReturnCode::from_u8(r.u8()?)
        .ok_or(DecodeError::Malformed("unknown CONNACK return code"))?;
    Ok(ConnAck {
        session_present: ack_flags & 1 != 0,
        code,
    })
}

/// A v5 CONNACK: ack flags, reason code, properties.
pub(crate) fn decode_connack_v5(r: &mut Reader) -> Result<ConnAckV5, DecodeError> {
    let ack_flags = r.u8()?;
    if ack_flags & 0xfe != 0 {
        return Err(DecodeError::Malformed("CONNACK reserved flags"));
    }
    let reason = check_reason(r.u8()?, reason::CONNACK_CODES)?;
    let properties = properties::decode_properties(r, PropCtx::ConnAck)?;
    Ok(ConnAckV5 {
        session_present: ack_flags & 1 != 0,
        reason,
        properties,
    })
}

pub(crate) fn encode_connack_v5(c: &ConnAckV5, buf: &mut BytesMut) {
    let props = c.properties.as_deref();
    let (plen, block) = properties::block_len(props);
    let len = 2 + block;
    buf.reserve(1 + remaining_length_len(len) + len);
    buf.put_u8(0x20);
    put_remaining_length(buf, len);
    buf.put_u8(c.session_present as u8);
    buf.put_u8(c.reason);
    properties::put_block(buf, props, plen);
}

/// Writes a CONNECT in the format of its `version`; properties only for v5.
pub(crate) fn encode_connect(c: &Connect, buf: &mut BytesMut) {
    let name: &[u8] = match c.version {
        ProtocolVersion::V31 => b"MQIsdp",
        ProtocolVersion::V311 | ProtocolVersion::V5 => b"MQTT",
    };
    let v5 = c.version == ProtocolVersion::V5;
    let props = if v5 { c.properties.as_deref() } else { None };
    let will_props = match &c.will {
        Some(w) if v5 => w.properties.as_deref(),
        _ => None,
    };
    let (plen, block) = properties::block_len(props);
    let (wplen, wblock) = properties::block_len(will_props);
    let mut len = 2 + name.len() + 1 + 1 + 2 + 2 + c.client_id.len();
    if v5 {
        len += block;
    }
    let mut flags = 0u8;
    if c.clean_session {
        flags |= FLAG_CLEAN;
    }
    if let Some(w) = &c.will {
        len += 2 + w.topic.len() + 2 + w.payload.len();
        if v5 {
            len += wblock;
        }
        flags |= FLAG_WILL | ((w.qos as u8) << 3);
        if w.retain {
            flags |= FLAG_WILL_RETAIN;
        }
    }
    if let Some(u) = &c.username {
        len += 2 + u.len();
        flags |= FLAG_USERNAME;
    }
    if let Some(p) = &c.password {
        len += 2 + p.len();
        flags |= FLAG_PASSWORD;
    }
    buf.reserve(len + 5);
    buf.put_u8(0x10);
    put_remaining_length(buf, len);
    put_bytes(buf, name);
    buf.put_u8(c.version.level());
    buf.put_u8(flags);
    buf.put_u16(c.keep_alive_s);
    if v5 {
        properties::put_block(buf, props, plen);
    }
    put_bytes(buf, c.client_id.as_bytes());
    if let Some(w) = &c.will {
        if v5 {
            properties::put_block(buf, will_props, wplen);
        }
        put_bytes(buf, w.topic.as_bytes());
        put_bytes(buf, &w.payload);
    }
    if let Some(u) = &c.username {
        put_bytes(buf, u.as_bytes());
    }
    if let Some(p) = &c.password {
        put_bytes(buf, p);
    }
}
