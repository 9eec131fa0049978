//! Unit tests for the MQTT codec, rule by rule against MQTT 3.1.1 (and 3.1 for
//! "MQIsdp"), plus property tests: round trip of every packet kind, chunked
//! streams, and decoding of arbitrary bytes never panicking.

use super::codec::{REMAINING_LENGTH_MAX, put_remaining_length, remaining_length_len};
use super::*;
use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use proptest::prelude::*;

/// A limit no test packet reaches.
const NO_LIMIT: usize = usize::MAX;

// ---------------------------------------------------------------------------
// Helpers (independent of the code under test)
// ---------------------------------------------------------------------------

/// The remaining-length encoding of spec section 2.2.3, written independently.
fn rl(mut len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            return out;
        }
    }
}

/// A complete frame: first byte, remaining length, body.
fn frame(byte0: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![byte0];
    v.extend(rl(body.len()));
    v.extend_from_slice(body);
    v
}

/// A length-prefixed string/binary field.
fn field(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(s);
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Decodes one packet from `bytes`, which must hold exactly one frame.
fn dec(bytes: &[u8]) -> Result<Packet, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    match decode(&mut buf, None, NO_LIMIT) {
        Ok(Some(p)) => {
            assert!(buf.is_empty(), "decode left {} bytes", buf.len());
            Ok(p)
        }
        Ok(None) => panic!("complete frame {bytes:02x?} reported incomplete"),
        Err(e) => Err(e),
    }
}

fn enc(p: &Packet) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode(p, &mut buf);
    buf.to_vec()
}

fn bs(s: &str) -> ByteString {
    ByteString::from(s)
}

fn is_malformed<T: std::fmt::Debug>(r: &Result<T, DecodeError>) -> bool {
    matches!(r, Err(DecodeError::Malformed(_)))
}

fn is_protocol<T: std::fmt::Debug>(r: &Result<T, DecodeError>) -> bool {
    matches!(r, Err(DecodeError::Protocol(_)))
}

#[track_caller]
fn assert_malformed(bytes: &[u8]) {
    let r = dec(bytes);
    assert!(
        is_malformed(&r),
        "{bytes:02x?}: expected Malformed, got {r:?}"
    );
}

#[track_caller]
fn assert_protocol(bytes: &[u8]) {
    let r = dec(bytes);
    assert!(
        is_protocol(&r),
        "{bytes:02x?}: expected Protocol, got {r:?}"
    );
}

/// A CONNECT body: protocol name, level, flags, keep alive, then `payload`.
fn connect_body(name: &[u8], level: u8, flags: u8, keep_alive: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = field(name);
    v.push(level);
    v.push(flags);
    v.extend(keep_alive.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn connect_frame(name: &[u8], level: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    frame(0x10, &connect_body(name, level, flags, 60, payload))
}

fn decode_connect_ok(bytes: &[u8]) -> Connect {
    match dec(bytes) {
        Ok(Packet::Connect(c)) => *c,
        other => panic!("expected CONNECT, got {other:?}"),
    }
}

fn decode_publish_ok(bytes: &[u8]) -> Publish {
    match dec(bytes) {
        Ok(Packet::Publish(p)) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

/// A minimal valid body for each packet type other than PUBLISH.
fn valid_body(packet_type: u8) -> Vec<u8> {
    match packet_type {
        1 => connect_body(b"MQTT", 4, 0x02, 60, &field(b"c")),
        2 => vec![0, 0],
        4 | 5 | 6 | 7 | 11 => vec![0, 1],
        8 => cat(&[&[0, 1], &field(b"a"), &[0]]),
        9 => vec![0, 1, 0],
        10 => cat(&[&[0, 1], &field(b"a")]),
        12..=14 => vec![],
        _ => unreachable!(),
    }
}

/// A few valid frames of different shapes, for prefix and stream tests.
fn sample_frames() -> Vec<Vec<u8>> {
    vec![
        frame(
            0x10,
            &connect_body(
                b"MQTT",
                4,
                0xee,
                10,
                &cat(&[
                    &field(b"cid"),
                    &field(b"w/t"),
                    &field(b"wp"),
                    &field(b"user"),
                    &field(b"pw"),
                ]),
            ),
        ),
        frame(0x32, &cat(&[&field(b"a/b"), &[0, 7], b"payload"])),
        frame(0x30, &cat(&[&field(b"t"), &[0xab; 300]])), // 2-byte remaining length
        frame(
            0x82,
            &cat(&[&[0, 9], &field(b"a/+"), &[1], &field(b"#"), &[2]]),
        ),
        frame(0xa2, &cat(&[&[0, 9], &field(b"a/+")])),
        vec![0x40, 2, 0, 1],
        vec![0x62, 2, 0x12, 0x34],
        vec![0xc0, 0],
        vec![0xe0, 0],
    ]
}

// ---------------------------------------------------------------------------
// Small types
// ---------------------------------------------------------------------------

#[test]
fn qos_from_bits() {
    assert_eq!(QoS::from_bits(0), Some(QoS::AtMostOnce));
    assert_eq!(QoS::from_bits(1), Some(QoS::AtLeastOnce));
    assert_eq!(QoS::from_bits(2), Some(QoS::ExactlyOnce));
    for b in 3..=255 {
        assert_eq!(QoS::from_bits(b), None);
    }
    assert!(QoS::AtMostOnce < QoS::AtLeastOnce && QoS::AtLeastOnce < QoS::ExactlyOnce);
}

#[test]
fn protocol_version_levels() {
    assert_eq!(ProtocolVersion::V31.level(), 3);
    assert_eq!(ProtocolVersion::V311.level(), 4);
}

#[test]
fn connect_return_codes() {
    let all = [
        ConnectReturnCode::Accepted,
        ConnectReturnCode::UnacceptableProtocolVersion,
        ConnectReturnCode::IdentifierRejected,
        ConnectReturnCode::ServerUnavailable,
        ConnectReturnCode::BadUsernameOrPassword,
        ConnectReturnCode::NotAuthorized,
    ];
    for (i, code) in all.iter().enumerate() {
        assert_eq!(*code as u8, i as u8);
        assert_eq!(ConnectReturnCode::from_u8(i as u8), Some(*code));
    }
    for b in 6..=255 {
        assert_eq!(ConnectReturnCode::from_u8(b), None);
    }
}

#[test]
fn suback_code_bytes() {
    assert_eq!(SubAckCode::Granted(QoS::AtMostOnce).to_u8(), 0x00);
    assert_eq!(SubAckCode::Granted(QoS::AtLeastOnce).to_u8(), 0x01);
    assert_eq!(SubAckCode::Granted(QoS::ExactlyOnce).to_u8(), 0x02);
    assert_eq!(SubAckCode::Failure.to_u8(), 0x80);
}

#[test]
fn packet_names() {
    let cases: Vec<(Packet, &str)> = vec![
        (
            Packet::ConnAck(ConnAck {
                session_present: false,
                code: ConnectReturnCode::Accepted,
            }),
            "CONNACK",
        ),
        (Packet::PubAck(1), "PUBACK"),
        (Packet::PubRec(1), "PUBREC"),
        (Packet::PubRel(1), "PUBREL"),
        (Packet::PubComp(1), "PUBCOMP"),
        (Packet::UnsubAck(1), "UNSUBACK"),
        (Packet::PingReq, "PINGREQ"),
        (Packet::PingResp, "PINGRESP"),
        (Packet::Disconnect, "DISCONNECT"),
        (
            Packet::SubAck(SubAck {
                packet_id: 1,
                codes: vec![],
            }),
            "SUBACK",
        ),
        (
            Packet::Subscribe(Subscribe {
                packet_id: 1,
                filters: vec![],
            }),
            "SUBSCRIBE",
        ),
        (
            Packet::Unsubscribe(Unsubscribe {
                packet_id: 1,
                filters: vec![],
            }),
            "UNSUBSCRIBE",
        ),
    ];
    for (p, name) in cases {
        assert_eq!(p.name(), name);
    }
    let c = decode_connect_ok(&frame(0x10, &valid_body(1)));
    assert_eq!(Packet::Connect(Box::new(c)).name(), "CONNECT");
    let p = decode_publish_ok(&frame(0x30, &field(b"a")));
    assert_eq!(Packet::Publish(p).name(), "PUBLISH");
}

#[test]
fn decode_error_display() {
    assert_eq!(
        DecodeError::Malformed("x").to_string(),
        "malformed packet: x"
    );
    assert_eq!(DecodeError::Protocol("y").to_string(), "protocol error: y");
    assert_eq!(
        DecodeError::TooLarge { size: 10, max: 5 }.to_string(),
        "packet of 10 bytes exceeds maximum packet size 5"
    );
    assert_eq!(
        DecodeError::UnsupportedProtocolLevel(5).to_string(),
        "unsupported protocol level 5"
    );
    assert_eq!(
        DecodeError::BadProtocolName.to_string(),
        "unknown protocol name"
    );
    let boxed: Box<dyn std::error::Error> = Box::new(DecodeError::BadProtocolName);
    assert!(boxed.source().is_none());
}

// ---------------------------------------------------------------------------
// Remaining length (section 2.2.3)
// ---------------------------------------------------------------------------

/// The spec's table of boundaries, with the exact encodings.
const RL_TABLE: &[(usize, &[u8])] = &[
    (0, &[0x00]),
    (1, &[0x01]),
    (127, &[0x7f]),
    (128, &[0x80, 0x01]),
    (321, &[0xc1, 0x02]),
    (16_383, &[0xff, 0x7f]),
    (16_384, &[0x80, 0x80, 0x01]),
    (2_097_151, &[0xff, 0xff, 0x7f]),
    (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
    (268_435_455, &[0xff, 0xff, 0xff, 0x7f]),
];

#[test]
fn remaining_length_encoding_boundaries() {
    assert_eq!(REMAINING_LENGTH_MAX, 268_435_455);
    for &(len, bytes) in RL_TABLE {
        let mut buf = BytesMut::new();
        put_remaining_length(&mut buf, len);
        assert_eq!(&buf[..], bytes, "encoding of {len}");
        assert_eq!(remaining_length_len(len), bytes.len(), "length of {len}");
        assert_eq!(rl(len), bytes, "test helper for {len}");
    }
}

#[test]
fn remaining_length_decoding_boundaries() {
    for &(len, bytes) in RL_TABLE {
        let mut header = vec![0x30];
        header.extend_from_slice(bytes);
        // frame_len needs only the fixed header.
        assert_eq!(
            frame_len(&header, NO_LIMIT),
            Ok(Some(1 + bytes.len() + len)),
            "frame_len for {len}"
        );
        // decode waits for the body (unless it is empty).
        let mut buf = BytesMut::from(&header[..]);
        let r = decode(&mut buf, None, NO_LIMIT);
        if len == 0 {
            // PUBLISH with an empty body is too short for a topic.
            assert!(is_malformed(&r), "{r:?}");
        } else {
            assert_eq!(r, Ok(None), "decode for {len}");
            assert_eq!(&buf[..], &header[..]);
        }
    }
}

#[test]
fn remaining_length_decoding_full_packets() {
    // Real PUBLISH packets whose remaining length needs 1, 2, 3 and 4 bytes,
    // each exactly at a boundary.
    for remaining in [127usize, 128, 16_383, 16_384, 2_097_151, 2_097_152] {
        let topic = b"t";
        let payload = vec![0x5a; remaining - 3];
        let bytes = frame(0x30, &cat(&[&field(topic), &payload]));
        assert_eq!(bytes.len(), 1 + remaining_length_len(remaining) + remaining);
        let p = decode_publish_ok(&bytes);
        assert_eq!(p.topic, "t");
        assert_eq!(p.payload.len(), remaining - 3);
        // and the encoder writes the same bytes
        let mut out = BytesMut::new();
        encode_publish(&mut out, "t", &payload, QoS::AtMostOnce, 0, false, false);
        assert!(
            out[..] == bytes[..],
            "encoding at remaining length {remaining}"
        );
    }
}

#[test]
fn remaining_length_five_bytes_is_malformed() {
    let five = [0x30, 0xff, 0xff, 0xff, 0xff, 0x7f];
    assert!(is_malformed(&frame_len(&five, NO_LIMIT)));
    let mut buf = BytesMut::from(&five[..]);
    assert!(is_malformed(&decode(&mut buf, None, NO_LIMIT)));
    assert_eq!(&buf[..], &five[..], "error leaves the buffer alone");
    // Detected as soon as the fourth length byte says "more follows", before
    // the fifth byte arrives.
    for bytes in [
        &[0x30u8, 0x80, 0x80, 0x80, 0x80][..],
        &[0xc0, 0x80, 0x80, 0x80, 0x80, 0x00],
    ] {
        assert!(is_malformed(&frame_len(bytes, NO_LIMIT)), "{bytes:02x?}");
        let mut buf = BytesMut::from(bytes);
        assert!(
            is_malformed(&decode(&mut buf, None, NO_LIMIT)),
            "{bytes:02x?}"
        );
    }
    // Three continuation bytes are still a possible (incomplete) length.
    assert_eq!(frame_len(&[0x30, 0x80, 0x80, 0x80], NO_LIMIT), Ok(None));
}

#[test]
fn remaining_length_non_minimal_encoding_is_accepted() {
    // The spec does not forbid it; mosquitto accepts it, so does the codec.
    assert_eq!(dec(&[0xc0, 0x80, 0x00]), Ok(Packet::PingReq));
    assert_eq!(
        dec(&[0x40, 0x82, 0x80, 0x00, 0x00, 0x05]),
        Ok(Packet::PubAck(5))
    );
}

// ---------------------------------------------------------------------------
// frame_len and the maximum packet size
// ---------------------------------------------------------------------------

#[test]
fn frame_len_incomplete_header() {
    assert_eq!(frame_len(&[], NO_LIMIT), Ok(None));
    assert_eq!(frame_len(&[0x30], NO_LIMIT), Ok(None));
    assert_eq!(frame_len(&[0x30, 0x80], NO_LIMIT), Ok(None));
    assert_eq!(frame_len(&[0x30, 0xff, 0xff], NO_LIMIT), Ok(None));
}

#[test]
fn frame_len_complete_header() {
    assert_eq!(frame_len(&[0xc0, 0x00], NO_LIMIT), Ok(Some(2)));
    // The body need not be there.
    assert_eq!(frame_len(&[0x30, 0x05], NO_LIMIT), Ok(Some(7)));
    assert_eq!(frame_len(&[0x30, 0x05, 1, 2], NO_LIMIT), Ok(Some(7)));
    // Bytes after the frame are ignored.
    assert_eq!(frame_len(&[0xc0, 0x00, 0xd0, 0x00], NO_LIMIT), Ok(Some(2)));
    // frame_len does not look at the type or flags.
    assert_eq!(frame_len(&[0x00, 0x00], NO_LIMIT), Ok(Some(2)));
    assert_eq!(frame_len(&[0xff, 0x01], NO_LIMIT), Ok(Some(3)));
    for f in sample_frames() {
        assert_eq!(frame_len(&f, NO_LIMIT), Ok(Some(f.len())));
    }
}

#[test]
fn too_large_from_fixed_header_alone() {
    // A header announcing 1 MiB (0x40 << 14 = 1,048,576), with only 5 bytes
    // buffered and a maximum of 1000.
    let bytes = [0x30, 0x80, 0x80, 0x40, 0x00];
    let want = DecodeError::TooLarge {
        size: 4 + 1_048_576,
        max: 1000,
    };
    assert_eq!(frame_len(&bytes, 1000), Err(want.clone()));
    let mut buf = BytesMut::from(&bytes[..]);
    assert_eq!(decode(&mut buf, None, 1000), Err(want));
    assert_eq!(&buf[..], &bytes[..]);
    // Without a limit it is only incomplete.
    assert_eq!(decode(&mut buf, None, NO_LIMIT), Ok(None));
    assert_eq!(frame_len(&bytes, NO_LIMIT), Ok(Some(1_048_580)));
}

#[test]
fn too_large_counts_the_whole_frame() {
    // PINGREQ is 2 bytes: max 2 accepts it, max 1 rejects it.
    let mut buf = BytesMut::from(&[0xc0, 0x00][..]);
    assert_eq!(
        decode(&mut buf, None, 1),
        Err(DecodeError::TooLarge { size: 2, max: 1 })
    );
    assert_eq!(decode(&mut buf, None, 2), Ok(Some(Packet::PingReq)));
    // A PUBLISH of exactly max bytes passes; one byte more does not.
    let f = frame(0x30, &cat(&[&field(b"t"), &[0u8; 200]]));
    let n = f.len();
    assert_eq!(frame_len(&f, n), Ok(Some(n)));
    assert_eq!(
        frame_len(&f, n - 1),
        Err(DecodeError::TooLarge {
            size: n,
            max: n - 1
        })
    );
    let mut buf = BytesMut::from(&f[..]);
    assert!(matches!(
        decode(&mut buf, None, n - 1),
        Err(DecodeError::TooLarge { .. })
    ));
    assert!(matches!(
        decode(&mut buf, None, n),
        Ok(Some(Packet::Publish(_)))
    ));
    // TooLarge wins over bad flags: it is decided from the header first.
    let mut buf = BytesMut::from(&[0x0f, 0x10][..]);
    assert!(matches!(
        decode(&mut buf, None, 5),
        Err(DecodeError::TooLarge { .. })
    ));
}

// ---------------------------------------------------------------------------
// Incomplete input and streams
// ---------------------------------------------------------------------------

#[test]
fn every_prefix_is_incomplete_and_untouched() {
    for f in sample_frames() {
        for cut in 0..f.len() {
            let prefix = &f[..cut];
            let mut buf = BytesMut::from(prefix);
            assert_eq!(
                decode(&mut buf, None, NO_LIMIT),
                Ok(None),
                "prefix of {cut} bytes of {f:02x?}"
            );
            assert_eq!(&buf[..], prefix, "buffer changed for prefix {cut}");
            assert_eq!(buf.len(), cut);
            match frame_len(prefix, NO_LIMIT) {
                Ok(None) => {}
                Ok(Some(n)) => assert_eq!(n, f.len()),
                Err(e) => panic!("frame_len error on prefix: {e}"),
            }
        }
        // The full frame decodes.
        let mut buf = BytesMut::from(&f[..]);
        assert!(matches!(decode(&mut buf, None, NO_LIMIT), Ok(Some(_))));
        assert!(buf.is_empty());
    }
}

#[test]
fn incomplete_then_completed() {
    let f = &sample_frames()[0];
    let mut buf = BytesMut::new();
    for (i, b) in f.iter().enumerate() {
        assert_eq!(decode(&mut buf, None, NO_LIMIT), Ok(None));
        assert_eq!(buf.len(), i);
        buf.put_u8(*b);
    }
    let p = decode(&mut buf, None, NO_LIMIT).unwrap().unwrap();
    assert!(matches!(p, Packet::Connect(_)));
    assert!(buf.is_empty());
    assert_eq!(decode(&mut buf, None, NO_LIMIT), Ok(None));
}

#[test]
fn back_to_back_packets() {
    let publish = frame(0x32, &cat(&[&field(b"a/b"), &[0, 7], b"hello"]));
    let puback = [0x40, 2, 0, 7];
    let ping = [0xc0, 0];
    let subscribe = frame(0x82, &cat(&[&[0, 9], &field(b"x/#"), &[1]]));
    let (sub_head, sub_tail) = subscribe.split_at(5);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&publish);
    buf.extend_from_slice(&puback);
    buf.extend_from_slice(&ping);
    buf.extend_from_slice(sub_head);

    match decode(&mut buf, None, NO_LIMIT) {
        Ok(Some(Packet::Publish(p))) => {
            assert_eq!(p.topic, "a/b");
            assert_eq!(p.packet_id, 7);
            assert_eq!(
                &p.payload[..],
                b"hello",
                "payload must stop at the frame end"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        decode(&mut buf, None, NO_LIMIT),
        Ok(Some(Packet::PubAck(7)))
    );
    assert_eq!(decode(&mut buf, None, NO_LIMIT), Ok(Some(Packet::PingReq)));
    assert_eq!(decode(&mut buf, None, NO_LIMIT), Ok(None));
    assert_eq!(&buf[..], sub_head);
    buf.extend_from_slice(sub_tail);
    assert_eq!(
        decode(&mut buf, None, NO_LIMIT),
        Ok(Some(Packet::Subscribe(Subscribe {
            packet_id: 9,
            filters: vec![SubscribeFilter {
                filter: bs("x/#"),
                qos: QoS::AtLeastOnce
            }]
        })))
    );
    assert!(buf.is_empty());
}

#[test]
fn header_errors_leave_the_buffer_untouched() {
    // Errors found in the fixed header are reported before anything is taken.
    for bytes in [
        &[0x30u8, 0xff, 0xff, 0xff, 0xff, 0x01][..],
        &[0x30, 0x80, 0x80, 0x40],
    ] {
        let mut buf = BytesMut::from(bytes);
        assert!(decode(&mut buf, None, 1000).is_err());
        assert_eq!(&buf[..], bytes);
    }
}

#[test]
fn packets_before_a_bad_one_are_decoded() {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0xc0, 0, 0x41, 2, 0, 1]);
    assert_eq!(decode(&mut buf, None, NO_LIMIT), Ok(Some(Packet::PingReq)));
    // 0x41: PUBACK with a reserved flag set.
    assert!(is_malformed(&decode(&mut buf, None, NO_LIMIT)));
}

#[test]
fn version_argument_does_not_change_decoding() {
    for f in sample_frames() {
        let mut a = BytesMut::from(&f[..]);
        let mut b = BytesMut::from(&f[..]);
        let mut c = BytesMut::from(&f[..]);
        let ra = decode(&mut a, None, NO_LIMIT);
        let rb = decode(&mut b, Some(ProtocolVersion::V31), NO_LIMIT);
        let rc = decode(&mut c, Some(ProtocolVersion::V311), NO_LIMIT);
        assert_eq!(ra, rb);
        assert_eq!(ra, rc);
    }
}

// ---------------------------------------------------------------------------
// Fixed header: packet types and reserved flags (section 2.2)
// ---------------------------------------------------------------------------

#[test]
fn reserved_flags_for_every_packet_type() {
    for packet_type in 1u8..=14 {
        if packet_type == 3 {
            continue; // PUBLISH flags carry DUP/QoS/RETAIN; tested below.
        }
        let want = if matches!(packet_type, 6 | 8 | 10) {
            0b0010
        } else {
            0
        };
        let body = valid_body(packet_type);
        for flags in 0u8..16 {
            let bytes = frame(packet_type << 4 | flags, &body);
            let r = dec(&bytes);
            if flags == want {
                assert!(r.is_ok(), "type {packet_type} flags {flags:#06b}: {r:?}");
            } else {
                assert_eq!(
                    r,
                    Err(DecodeError::Malformed("reserved fixed-header flags")),
                    "type {packet_type} flags {flags:#06b}"
                );
            }
        }
    }
}

#[test]
fn packet_types_0_and_15_rejected() {
    for flags in 0u8..16 {
        for body in [&[][..], &[0, 1][..], &[0, 0, 0, 0][..]] {
            assert_malformed(&frame(flags, body));
            assert_malformed(&frame(0xf0 | flags, body));
        }
    }
}

#[test]
fn every_type_decodes_to_the_right_variant() {
    let want = [
        (1u8, "CONNECT"),
        (2, "CONNACK"),
        (4, "PUBACK"),
        (5, "PUBREC"),
        (6, "PUBREL"),
        (7, "PUBCOMP"),
        (8, "SUBSCRIBE"),
        (9, "SUBACK"),
        (10, "UNSUBSCRIBE"),
        (11, "UNSUBACK"),
        (12, "PINGREQ"),
        (13, "PINGRESP"),
        (14, "DISCONNECT"),
    ];
    for (t, name) in want {
        let flags = if matches!(t, 6 | 8 | 10) { 2 } else { 0 };
        let p = dec(&frame(t << 4 | flags, &valid_body(t))).unwrap();
        assert_eq!(p.name(), name);
    }
}

// ---------------------------------------------------------------------------
// CONNECT (section 3.1) and MQTT 3.1
// ---------------------------------------------------------------------------

#[test]
fn connect_v311() {
    let c = decode_connect_ok(&frame(
        0x10,
        &connect_body(b"MQTT", 4, 0x02, 0x1234, &field(b"client-1")),
    ));
    assert_eq!(
        c,
        Connect {
            version: ProtocolVersion::V311,
            clean_session: true,
            keep_alive_s: 0x1234,
            client_id: bs("client-1"),
            will: None,
            username: None,
            password: None,
        }
    );
}

#[test]
fn connect_v31() {
    let c = decode_connect_ok(&frame(
        0x10,
        &connect_body(b"MQIsdp", 3, 0x00, 0, &field(b"c")),
    ));
    assert_eq!(c.version, ProtocolVersion::V31);
    assert!(!c.clean_session);
    assert_eq!(c.keep_alive_s, 0);
    assert_eq!(c.client_id, "c");
}

#[test]
fn connect_unsupported_levels() {
    for (name, level) in [
        (&b"MQTT"[..], 3u8),
        (b"MQTT", 5),
        (b"MQTT", 6),
        (b"MQTT", 0),
        (b"MQTT", 255),
        (b"MQIsdp", 4),
        (b"MQIsdp", 5),
        (b"MQIsdp", 0),
    ] {
        assert_eq!(
            dec(&connect_frame(name, level, 0x02, &field(b"c"))),
            Err(DecodeError::UnsupportedProtocolLevel(level)),
            "{:?}/{level}",
            std::str::from_utf8(name)
        );
    }
}

#[test]
fn connect_unsupported_level_wins_over_bad_flags() {
    // The server answers CONNACK 0x01 whatever the rest looks like.
    assert_eq!(
        dec(&connect_frame(b"MQTT", 5, 0xff, &[])),
        Err(DecodeError::UnsupportedProtocolLevel(5))
    );
}

#[test]
fn connect_bad_protocol_names() {
    for name in [
        &b""[..],
        b"MQT",
        b"MQTTT",
        b"mqtt",
        b"MQTX",
        b"MQIsdpX",
        b"MQISDP",
        b"MQTT\0",
        b"\xff\xfe",
    ] {
        for level in [3u8, 4, 5] {
            assert_eq!(
                dec(&connect_frame(name, level, 0x02, &field(b"c"))),
                Err(DecodeError::BadProtocolName),
                "{name:02x?}/{level}"
            );
        }
    }
}

#[test]
fn connect_reserved_flag() {
    assert_malformed(&connect_frame(b"MQTT", 4, 0x01, &field(b"c")));
    assert_malformed(&connect_frame(b"MQTT", 4, 0x03, &field(b"c")));
    assert_malformed(&connect_frame(b"MQIsdp", 3, 0x01, &field(b"c")));
}

#[test]
fn connect_will_qos_3() {
    let payload = cat(&[&field(b"c"), &field(b"wt"), &field(b"wp")]);
    // Will flag + QoS bits 11.
    assert_malformed(&connect_frame(b"MQTT", 4, 0x04 | 0x18, &payload));
    assert_malformed(&connect_frame(b"MQTT", 4, 0x04 | 0x18 | 0x20, &payload));
}

#[test]
fn connect_will_qos_or_retain_without_will_flag() {
    for flags in [0x08u8, 0x10, 0x18, 0x20, 0x28, 0x30, 0x38] {
        assert_malformed(&connect_frame(b"MQTT", 4, flags | 0x02, &field(b"c")));
        // even if the bytes for a will are present
        let payload = cat(&[&field(b"c"), &field(b"wt"), &field(b"wp")]);
        assert_malformed(&connect_frame(b"MQTT", 4, flags, &payload));
    }
}

#[test]
fn connect_password_without_username() {
    let payload = cat(&[&field(b"c"), &field(b"pw")]);
    assert_malformed(&connect_frame(b"MQTT", 4, 0x40, &payload));
    assert_malformed(&connect_frame(b"MQIsdp", 3, 0x42, &payload));
}

#[test]
fn connect_username_and_password() {
    // Password is binary data: any bytes, including 0 and 0xff.
    let payload = cat(&[
        &field(b"c"),
        &field("us\u{e9}r".as_bytes()),
        &field(b"\x00\xffpw"),
    ]);
    let c = decode_connect_ok(&connect_frame(b"MQTT", 4, 0xc2, &payload));
    assert_eq!(c.username.as_deref(), Some("us\u{e9}r"));
    assert_eq!(c.password.as_deref(), Some(&b"\x00\xffpw"[..]));
    assert!(c.will.is_none());
    // Empty username and password are fields of length 0, still present.
    let payload = cat(&[&field(b"c"), &field(b""), &field(b"")]);
    let c = decode_connect_ok(&connect_frame(b"MQTT", 4, 0xc0, &payload));
    assert_eq!(c.username.as_deref(), Some(""));
    assert_eq!(c.password.as_deref(), Some(&b""[..]));
}

#[test]
fn connect_username_only() {
    let payload = cat(&[&field(b"c"), &field(b"u")]);
    let c = decode_connect_ok(&connect_frame(b"MQTT", 4, 0x80, &payload));
    assert_eq!(c.username.as_deref(), Some("u"));
    assert_eq!(c.password, None);
}

#[test]
fn connect_will_decoded() {
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        for retain in [false, true] {
            let flags = 0x04 | (qos as u8) << 3 | if retain { 0x20 } else { 0 };
            let payload = cat(&[
                &field(b"c"),
                &field(b"will/topic"),
                &field(b"\x00\x01bye\xff"),
            ]);
            let c = decode_connect_ok(&connect_frame(b"MQTT", 4, flags, &payload));
            assert_eq!(
                c.will,
                Some(Will {
                    topic: bs("will/topic"),
                    payload: Bytes::from_static(b"\x00\x01bye\xff"),
                    qos,
                    retain,
                })
            );
        }
    }
}

#[test]
fn connect_all_fields_in_order() {
    // Spec example flags 0xCE: username, password, will QoS 1, will, clean.
    let payload = cat(&[
        &field(b"cid"),
        &field(b"wt"),
        &field(b"wp"),
        &field(b"u"),
        &field(b"p"),
    ]);
    let c = decode_connect_ok(&connect_frame(b"MQTT", 4, 0xce, &payload));
    assert_eq!(
        c,
        Connect {
            version: ProtocolVersion::V311,
            clean_session: true,
            keep_alive_s: 60,
            client_id: bs("cid"),
            will: Some(Will {
                topic: bs("wt"),
                payload: Bytes::from_static(b"wp"),
                qos: QoS::AtLeastOnce,
                retain: false,
            }),
            username: Some(bs("u")),
            password: Some(Bytes::from_static(b"p")),
        }
    );
}

#[test]
fn connect_empty_client_id_is_decoded() {
    // Whether it is acceptable is the broker's call (CONNACK 0x02).
    let c = decode_connect_ok(&connect_frame(b"MQTT", 4, 0x02, &field(b"")));
    assert_eq!(c.client_id, "");
}

#[test]
fn connect_truncated_bodies_are_malformed() {
    let body = connect_body(
        b"MQTT",
        4,
        0xee,
        10,
        &cat(&[
            &field(b"cid"),
            &field(b"w/t"),
            &field(b"wp"),
            &field(b"user"),
            &field(b"pw"),
        ]),
    );
    assert!(dec(&frame(0x10, &body)).is_ok());
    for cut in 0..body.len() {
        let r = dec(&frame(0x10, &body[..cut]));
        assert!(is_malformed(&r), "body cut at {cut}: {r:?}");
    }
}

#[test]
fn connect_trailing_bytes_are_malformed() {
    let mut payload = field(b"c");
    payload.push(0);
    assert_malformed(&connect_frame(b"MQTT", 4, 0x02, &payload));
    // A username present without its flag is a trailing field.
    let payload = cat(&[&field(b"c"), &field(b"u")]);
    assert_malformed(&connect_frame(b"MQTT", 4, 0x02, &payload));
}

// ---------------------------------------------------------------------------
// UTF-8 strings (section 1.5.3)
// ---------------------------------------------------------------------------

/// Byte strings that are not well-formed MQTT UTF-8 strings.
const BAD_STRINGS: &[&[u8]] = &[
    b"\x00",             // U+0000
    b"a\x00b",           // U+0000 inside
    b"\xed\xa0\x80",     // encoded surrogate U+D800
    b"\xed\xbf\xbf",     // encoded surrogate U+DFFF
    b"\xc0\x80",         // overlong U+0000
    b"\xc1\xbf",         // overlong
    b"\xe0\x80\xaf",     // overlong '/'
    b"\xff",             // never valid
    b"\x80",             // lone continuation byte
    b"\xe2\x82",         // truncated sequence
    b"\xf4\x90\x80\x80", // above U+10FFFF
];

#[test]
fn bad_strings_in_client_id() {
    for s in BAD_STRINGS {
        assert_malformed(&connect_frame(b"MQTT", 4, 0x02, &field(s)));
    }
}

#[test]
fn bad_strings_in_username_and_will_topic() {
    for s in BAD_STRINGS {
        let payload = cat(&[&field(b"c"), &field(s)]);
        assert_malformed(&connect_frame(b"MQTT", 4, 0x80, &payload));
        let payload = cat(&[&field(b"c"), &field(s), &field(b"wp")]);
        assert_malformed(&connect_frame(b"MQTT", 4, 0x04, &payload));
    }
}

#[test]
fn bad_strings_in_publish_subscribe_unsubscribe() {
    for s in BAD_STRINGS {
        assert_malformed(&frame(0x30, &cat(&[&field(s), b"payload"])));
        assert_malformed(&frame(0x82, &cat(&[&[0, 1], &field(s), &[0]])));
        assert_malformed(&frame(0xa2, &cat(&[&[0, 1], &field(s)])));
        // also as the second filter
        assert_malformed(&frame(
            0x82,
            &cat(&[&[0, 1], &field(b"ok"), &[0], &field(s), &[0]]),
        ));
        assert_malformed(&frame(0xa2, &cat(&[&[0, 1], &field(b"ok"), &field(s)])));
    }
}

#[test]
fn good_strings_are_kept_verbatim() {
    // Multi-byte characters of every length, and U+FEFF which must not be
    // stripped (MQTT-1.5.3-3). U+0001 and U+007F are allowed (SHOULD NOT only).
    let s = "\u{feff}a/\u{e9}/\u{20ac}/\u{1d11e}/\u{1}\u{7f}\u{10ffff}";
    let c = decode_connect_ok(&connect_frame(b"MQTT", 4, 0x02, &field(s.as_bytes())));
    assert_eq!(c.client_id, s);
    let p = decode_publish_ok(&frame(0x30, &field(s.as_bytes())));
    assert_eq!(p.topic, s);
}

#[test]
fn string_length_prefix_beyond_body_is_malformed() {
    // Says 5 bytes, has 2.
    assert_malformed(&frame(0x30, &[0, 5, b'a', b'b']));
    assert_malformed(&frame(0x30, &[0]));
    assert_malformed(&frame(0xa2, &[0, 1, 0xff, 0xff, b'a']));
}

// ---------------------------------------------------------------------------
// PUBLISH (section 3.3)
// ---------------------------------------------------------------------------

#[test]
fn publish_flags() {
    for retain in [false, true] {
        for (qos_bits, qos) in [
            (0u8, QoS::AtMostOnce),
            (1, QoS::AtLeastOnce),
            (2, QoS::ExactlyOnce),
        ] {
            for dup in [false, true] {
                let byte0 = 0x30 | (dup as u8) << 3 | qos_bits << 1 | retain as u8;
                let body = if qos == QoS::AtMostOnce {
                    cat(&[&field(b"a/b"), b"x"])
                } else {
                    cat(&[&field(b"a/b"), &[0x01, 0x02], b"x"])
                };
                let r = dec(&frame(byte0, &body));
                if dup && qos == QoS::AtMostOnce {
                    assert!(is_malformed(&r), "{byte0:#x}: {r:?}");
                    continue;
                }
                let want = Publish {
                    dup,
                    qos,
                    retain,
                    topic: bs("a/b"),
                    packet_id: if qos == QoS::AtMostOnce { 0 } else { 0x0102 },
                    payload: Bytes::from_static(b"x"),
                };
                assert_eq!(r, Ok(Packet::Publish(want)), "{byte0:#x}");
            }
        }
    }
}

#[test]
fn publish_qos_3_is_malformed() {
    for extra in [0x00u8, 0x01, 0x08, 0x09] {
        assert_malformed(&frame(0x36 | extra, &cat(&[&field(b"a"), &[0, 1]])));
    }
}

#[test]
fn publish_dup_on_qos0_is_malformed() {
    assert_malformed(&frame(0x38, &cat(&[&field(b"a"), b"x"])));
    assert_malformed(&frame(0x39, &cat(&[&field(b"a"), b"x"])));
}

#[test]
fn publish_wildcard_topic_is_protocol_error() {
    for t in [&b"+"[..], b"#", b"a/+", b"a/#", b"a/b+", b"#a", b"+/x"] {
        assert_protocol(&frame(0x30, &cat(&[&field(t), b"x"])));
        assert_protocol(&frame(0x32, &cat(&[&field(t), &[0, 1], b"x"])));
    }
}

#[test]
fn publish_empty_topic_is_protocol_error() {
    assert_protocol(&frame(0x30, &field(b"")));
    assert_protocol(&frame(0x30, &cat(&[&field(b""), b"payload"])));
    assert_protocol(&frame(0x34, &cat(&[&field(b""), &[0, 1]])));
}

#[test]
fn publish_packet_id_0_is_protocol_error() {
    for byte0 in [0x32u8, 0x34, 0x3a, 0x3d] {
        assert_protocol(&frame(byte0, &cat(&[&field(b"a"), &[0, 0], b"x"])));
    }
}

#[test]
fn publish_qos0_has_no_packet_id() {
    // The two bytes after the topic are payload for QoS 0.
    let p = decode_publish_ok(&frame(0x30, &cat(&[&field(b"a"), &[0, 0]])));
    assert_eq!(p.packet_id, 0);
    assert_eq!(&p.payload[..], &[0, 0]);
}

#[test]
fn publish_missing_packet_id_is_malformed() {
    assert_malformed(&frame(0x32, &field(b"a")));
    assert_malformed(&frame(0x34, &cat(&[&field(b"a"), &[1]])));
}

#[test]
fn publish_empty_payload() {
    let p = decode_publish_ok(&frame(0x30, &field(b"a")));
    assert!(p.payload.is_empty());
    let p = decode_publish_ok(&frame(0x33, &cat(&[&field(b"a"), &[0, 3]])));
    assert!(p.payload.is_empty());
    assert!(p.retain);
    assert_eq!(p.packet_id, 3);
}

#[test]
fn publish_dollar_topic_is_decoded() {
    let p = decode_publish_ok(&frame(0x30, &field(b"$SYS/x")));
    assert_eq!(p.topic, "$SYS/x");
}

#[test]
fn publish_payload_is_zero_copy() {
    let payload: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let bytes = frame(0x32, &cat(&[&field(b"some/topic"), &[0, 1], &payload]));
    let mut buf = BytesMut::with_capacity(4096);
    buf.extend_from_slice(&bytes);
    buf.extend_from_slice(&[0xc0, 0]); // another packet after it
    let start = buf.as_ptr() as usize;
    let end = start + buf.capacity();
    let p = match decode(&mut buf, None, NO_LIMIT) {
        Ok(Some(Packet::Publish(p))) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(&p.payload[..], &payload[..]);
    let ptr = p.payload.as_ptr() as usize;
    assert!(
        ptr >= start && ptr + p.payload.len() <= end,
        "payload at {ptr:#x} is not inside the read buffer {start:#x}..{end:#x}"
    );
    // Exactly where the payload sits in the frame.
    assert_eq!(ptr - start, bytes.len() - payload.len());
    // The topic is a slice too.
    let tptr = p.topic.as_ptr() as usize;
    assert!(tptr >= start && tptr < end);
    // The rest of the buffer is still usable.
    assert_eq!(decode(&mut buf, None, NO_LIMIT), Ok(Some(Packet::PingReq)));
}

#[test]
fn encode_publish_qos0() {
    let mut buf = BytesMut::new();
    encode_publish(&mut buf, "a/b", b"hi", QoS::AtMostOnce, 0, false, false);
    assert_eq!(&buf[..], &[0x30, 7, 0, 3, b'a', b'/', b'b', b'h', b'i']);
    // packet_id and dup are ignored for QoS 0
    let mut buf2 = BytesMut::new();
    encode_publish(&mut buf2, "a/b", b"hi", QoS::AtMostOnce, 77, false, true);
    assert_eq!(buf, buf2);
    // retain
    let mut buf = BytesMut::new();
    encode_publish(&mut buf, "a", b"", QoS::AtMostOnce, 0, true, false);
    assert_eq!(&buf[..], &[0x31, 3, 0, 1, b'a']);
}

#[test]
fn encode_publish_qos1_qos2() {
    let mut buf = BytesMut::new();
    encode_publish(&mut buf, "a", &[1, 2, 3], QoS::AtLeastOnce, 10, true, true);
    assert_eq!(&buf[..], &[0x3b, 8, 0, 1, b'a', 0, 10, 1, 2, 3]);
    let mut buf = BytesMut::new();
    encode_publish(&mut buf, "t/u", b"", QoS::ExactlyOnce, 0x1234, false, false);
    assert_eq!(&buf[..], &[0x34, 7, 0, 3, b't', b'/', b'u', 0x12, 0x34]);
    // Spec example 3.3.2: topic "a/b", packet id 10.
    let p = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: bs("a/b"),
        packet_id: 10,
        payload: Bytes::new(),
    });
    assert_eq!(enc(&p), [0x32, 7, 0x00, 0x03, 0x61, 0x2f, 0x62, 0x00, 0x0a]);
}

#[test]
fn encode_publish_appends() {
    let mut buf = BytesMut::from(&b"xy"[..]);
    encode_publish(&mut buf, "a", b"z", QoS::AtMostOnce, 0, false, false);
    assert_eq!(&buf[..], b"xy\x30\x04\x00\x01az");
}

#[test]
fn publish_packet_id_offset_points_at_the_id() {
    for payload_len in [
        0usize, 1, 100, 120, 121, 122, 123, 200, 16_000, 16_380, 16_400,
    ] {
        for topic in ["a", "a/b/c", "x".repeat(300).as_str()] {
            let payload = vec![0xee; payload_len];
            let mut buf = BytesMut::new();
            encode_publish(
                &mut buf,
                topic,
                &payload,
                QoS::AtLeastOnce,
                0xbeef,
                false,
                false,
            );
            let remaining = 2 + topic.len() + 2 + payload_len;
            let off = publish_packet_id_offset(topic.len(), remaining);
            assert_eq!(
                &buf[off..off + 2],
                &[0xbe, 0xef],
                "topic {} payload {payload_len}",
                topic.len()
            );
            assert_eq!(buf.len(), off + 2 + payload_len);
        }
    }
}

// ---------------------------------------------------------------------------
// Acknowledgements and empty packets
// ---------------------------------------------------------------------------

fn ack_variant(byte0: u8, id: u16) -> Packet {
    match byte0 {
        0x40 => Packet::PubAck(id),
        0x50 => Packet::PubRec(id),
        0x62 => Packet::PubRel(id),
        0x70 => Packet::PubComp(id),
        0xb0 => Packet::UnsubAck(id),
        _ => unreachable!(),
    }
}

#[test]
fn acks_decode_and_encode() {
    for byte0 in [0x40u8, 0x50, 0x62, 0x70, 0xb0] {
        for id in [1u16, 0x0102, 0xff00, u16::MAX] {
            let bytes = [byte0, 2, (id >> 8) as u8, id as u8];
            let p = ack_variant(byte0, id);
            assert_eq!(dec(&bytes), Ok(p.clone()));
            assert_eq!(enc(&p), bytes);
        }
    }
}

#[test]
fn acks_with_wrong_length_are_malformed() {
    for byte0 in [0x40u8, 0x50, 0x62, 0x70, 0xb0] {
        assert_malformed(&[byte0, 3, 0, 1, 0]); // one extra byte
        assert_malformed(&[byte0, 4, 0, 1, 0, 1]); // two extra bytes
        assert_malformed(&[byte0, 1, 0]); // short
        assert_malformed(&[byte0, 0]); // empty
    }
}

#[test]
fn acks_with_packet_id_0_are_protocol_errors() {
    for byte0 in [0x40u8, 0x50, 0x62, 0x70, 0xb0] {
        assert_protocol(&[byte0, 2, 0, 0]);
    }
}

#[test]
fn empty_packets() {
    assert_eq!(dec(&[0xc0, 0]), Ok(Packet::PingReq));
    assert_eq!(dec(&[0xd0, 0]), Ok(Packet::PingResp));
    assert_eq!(dec(&[0xe0, 0]), Ok(Packet::Disconnect));
    assert_eq!(enc(&Packet::PingReq), [0xc0, 0x00]);
    assert_eq!(enc(&Packet::PingResp), [0xd0, 0x00]);
    assert_eq!(enc(&Packet::Disconnect), [0xe0, 0x00]);
    for byte0 in [0xc0u8, 0xd0, 0xe0] {
        assert_malformed(&[byte0, 1, 0]);
        assert_malformed(&[byte0, 2, 0, 0]);
    }
}

// ---------------------------------------------------------------------------
// CONNACK (section 3.2)
// ---------------------------------------------------------------------------

#[test]
fn connack_encoding() {
    let ok = Packet::ConnAck(ConnAck {
        session_present: false,
        code: ConnectReturnCode::Accepted,
    });
    assert_eq!(enc(&ok), [0x20, 0x02, 0x00, 0x00]);
    let sp = Packet::ConnAck(ConnAck {
        session_present: true,
        code: ConnectReturnCode::Accepted,
    });
    assert_eq!(enc(&sp), [0x20, 0x02, 0x01, 0x00]);
    let bad_version = Packet::ConnAck(ConnAck {
        session_present: false,
        code: ConnectReturnCode::UnacceptableProtocolVersion,
    });
    assert_eq!(enc(&bad_version), [0x20, 0x02, 0x00, 0x01]);
    let not_auth = Packet::ConnAck(ConnAck {
        session_present: false,
        code: ConnectReturnCode::NotAuthorized,
    });
    assert_eq!(enc(&not_auth), [0x20, 0x02, 0x00, 0x05]);
}

#[test]
fn connack_decoding() {
    for code in 0u8..=5 {
        for sp in [0u8, 1] {
            assert_eq!(
                dec(&[0x20, 2, sp, code]),
                Ok(Packet::ConnAck(ConnAck {
                    session_present: sp == 1,
                    code: ConnectReturnCode::from_u8(code).unwrap(),
                }))
            );
        }
    }
    assert_malformed(&[0x20, 2, 0, 6]); // unknown code
    assert_malformed(&[0x20, 2, 0, 0x80]);
    for flags in [0x02u8, 0x80, 0xfe, 0xff] {
        assert_malformed(&[0x20, 2, flags, 0]); // reserved ack flags
    }
    assert_malformed(&[0x20, 3, 0, 0, 0]); // extra byte
    assert_malformed(&[0x20, 1, 0]); // short
    assert_malformed(&[0x20, 0]);
}

// ---------------------------------------------------------------------------
// SUBSCRIBE, SUBACK, UNSUBSCRIBE (sections 3.8 to 3.11)
// ---------------------------------------------------------------------------

#[test]
fn subscribe_decoding() {
    let body = cat(&[
        &[0, 10],
        &field(b"a/b"),
        &[0],
        &field(b"c/+"),
        &[1],
        &field(b"#"),
        &[2],
    ]);
    assert_eq!(
        dec(&frame(0x82, &body)),
        Ok(Packet::Subscribe(Subscribe {
            packet_id: 10,
            filters: vec![
                SubscribeFilter {
                    filter: bs("a/b"),
                    qos: QoS::AtMostOnce
                },
                SubscribeFilter {
                    filter: bs("c/+"),
                    qos: QoS::AtLeastOnce
                },
                SubscribeFilter {
                    filter: bs("#"),
                    qos: QoS::ExactlyOnce
                },
            ],
        }))
    );
}

#[test]
fn subscribe_filters_are_not_validated_by_the_codec() {
    // An invalid filter gets SUBACK 0x80 from the broker, not a close.
    for f in [&b"a/#/b"[..], b"a+", b"", b"$share/g"] {
        let body = cat(&[&[0, 1], &field(f), &[0]]);
        assert!(
            matches!(dec(&frame(0x82, &body)), Ok(Packet::Subscribe(_))),
            "{f:?}"
        );
    }
}

#[test]
fn subscribe_reserved_option_bits() {
    for bit in 2..8 {
        let body = cat(&[&[0, 1], &field(b"a"), &[1 << bit]]);
        assert_malformed(&frame(0x82, &body));
        // on the second filter too
        let body = cat(&[&[0, 1], &field(b"a"), &[0], &field(b"b"), &[1 << bit | 1]]);
        assert_malformed(&frame(0x82, &body));
    }
}

#[test]
fn subscribe_qos_3() {
    assert_malformed(&frame(0x82, &cat(&[&[0, 1], &field(b"a"), &[3]])));
}

#[test]
fn subscribe_empty_list_is_protocol_error() {
    assert_protocol(&frame(0x82, &[0, 1]));
}

#[test]
fn subscribe_packet_id_0_is_protocol_error() {
    assert_protocol(&frame(0x82, &cat(&[&[0, 0], &field(b"a"), &[0]])));
}

#[test]
fn subscribe_truncated_is_malformed() {
    assert_malformed(&frame(0x82, &cat(&[&[0, 1], &field(b"a")]))); // no options byte
    assert_malformed(&frame(0x82, &[0]));
    assert_malformed(&frame(0x82, &[]));
    assert_malformed(&frame(0x82, &[0, 1, 0]));
}

#[test]
fn subscribe_encoding() {
    let s = Packet::Subscribe(Subscribe {
        packet_id: 10,
        filters: vec![
            SubscribeFilter {
                filter: bs("a/b"),
                qos: QoS::AtLeastOnce,
            },
            SubscribeFilter {
                filter: bs("c"),
                qos: QoS::ExactlyOnce,
            },
        ],
    });
    assert_eq!(
        enc(&s),
        [0x82, 12, 0, 10, 0, 3, b'a', b'/', b'b', 1, 0, 1, b'c', 2]
    );
}

#[test]
fn suback_decoding() {
    assert_eq!(
        dec(&[0x90, 6, 0, 1, 0, 1, 2, 0x80]),
        Ok(Packet::SubAck(SubAck {
            packet_id: 1,
            codes: vec![
                SubAckCode::Granted(QoS::AtMostOnce),
                SubAckCode::Granted(QoS::AtLeastOnce),
                SubAckCode::Granted(QoS::ExactlyOnce),
                SubAckCode::Failure,
            ],
        }))
    );
    for bad in [3u8, 4, 0x7f, 0x81, 0xff] {
        assert_malformed(&[0x90, 3, 0, 1, bad]);
    }
    assert_protocol(&[0x90, 3, 0, 0, 0]);
    assert_malformed(&[0x90, 1, 0]);
}

#[test]
fn suback_encoding() {
    let s = Packet::SubAck(SubAck {
        packet_id: 1,
        codes: vec![
            SubAckCode::Granted(QoS::AtMostOnce),
            SubAckCode::Granted(QoS::AtLeastOnce),
            SubAckCode::Granted(QoS::ExactlyOnce),
            SubAckCode::Failure,
        ],
    });
    assert_eq!(enc(&s), [0x90, 6, 0, 1, 0, 1, 2, 0x80]);
    // Spec example 3.9.3: packet id 0x1234... with one failure.
    let s = Packet::SubAck(SubAck {
        packet_id: 0x1234,
        codes: vec![SubAckCode::Failure],
    });
    assert_eq!(enc(&s), [0x90, 3, 0x12, 0x34, 0x80]);
    // Many codes: remaining length needs two bytes.
    let s = Packet::SubAck(SubAck {
        packet_id: 2,
        codes: vec![SubAckCode::Granted(QoS::AtLeastOnce); 200],
    });
    let bytes = enc(&s);
    assert_eq!(&bytes[..5], &[0x90, 0xca, 0x01, 0, 2]);
    assert_eq!(bytes.len(), 3 + 202);
    assert_eq!(dec(&bytes), Ok(s));
}

#[test]
fn unsubscribe_decoding() {
    let body = cat(&[&[0x01, 0x02], &field(b"a/b"), &field(b"#"), &field(b"")]);
    assert_eq!(
        dec(&frame(0xa2, &body)),
        Ok(Packet::Unsubscribe(Unsubscribe {
            packet_id: 0x0102,
            filters: vec![bs("a/b"), bs("#"), bs("")],
        }))
    );
}

#[test]
fn unsubscribe_empty_list_is_protocol_error() {
    assert_protocol(&frame(0xa2, &[0, 1]));
}

#[test]
fn unsubscribe_packet_id_0_is_protocol_error() {
    assert_protocol(&frame(0xa2, &cat(&[&[0, 0], &field(b"a")])));
}

#[test]
fn unsubscribe_truncated_is_malformed() {
    assert_malformed(&frame(0xa2, &cat(&[&[0, 1], &[0]])));
    assert_malformed(&frame(0xa2, &cat(&[&[0, 1], &[0, 2, b'a']])));
    assert_malformed(&frame(0xa2, &[0]));
    assert_malformed(&frame(0xa2, &[]));
}

#[test]
fn unsubscribe_encoding() {
    let u = Packet::Unsubscribe(Unsubscribe {
        packet_id: 10,
        filters: vec![bs("a/b"), bs("c")],
    });
    assert_eq!(
        enc(&u),
        [0xa2, 10, 0, 10, 0, 3, b'a', b'/', b'b', 0, 1, b'c']
    );
}

#[test]
fn unsuback_encoding() {
    assert_eq!(enc(&Packet::UnsubAck(0x0102)), [0xb0, 2, 1, 2]);
}

// ---------------------------------------------------------------------------
// CONNECT encoding
// ---------------------------------------------------------------------------

#[test]
fn connect_encoding_v311_all_fields() {
    let c = Packet::Connect(Box::new(Connect {
        version: ProtocolVersion::V311,
        clean_session: true,
        keep_alive_s: 10,
        client_id: bs("cid"),
        will: Some(Will {
            topic: bs("wt"),
            payload: Bytes::from_static(b"wp"),
            qos: QoS::AtLeastOnce,
            retain: false,
        }),
        username: Some(bs("u")),
        password: Some(Bytes::from_static(b"p")),
    }));
    let want: &[u8] = &[
        0x10, 29, // fixed header
        0, 4, b'M', b'Q', b'T', b'T', // protocol name
        4,    // level
        0xce, // flags: username, password, will QoS 1, will, clean
        0, 10, // keep alive
        0, 3, b'c', b'i', b'd', // client id
        0, 2, b'w', b't', // will topic
        0, 2, b'w', b'p', // will payload
        0, 1, b'u', // username
        0, 1, b'p', // password
    ];
    assert_eq!(enc(&c), want);
    assert_eq!(dec(want), Ok(c));
}

#[test]
fn connect_encoding_v31_minimal() {
    let c = Packet::Connect(Box::new(Connect {
        version: ProtocolVersion::V31,
        clean_session: true,
        keep_alive_s: 60,
        client_id: bs("c"),
        will: None,
        username: None,
        password: None,
    }));
    let want: &[u8] = &[
        0x10, 15, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 0x02, 0, 60, 0, 1, b'c',
    ];
    assert_eq!(enc(&c), want);
    assert_eq!(dec(want), Ok(c));
}

#[test]
fn connect_encoding_will_retain_qos2() {
    let c = Connect {
        version: ProtocolVersion::V311,
        clean_session: false,
        keep_alive_s: 0,
        client_id: bs(""),
        will: Some(Will {
            topic: bs("t"),
            payload: Bytes::new(),
            qos: QoS::ExactlyOnce,
            retain: true,
        }),
        username: None,
        password: None,
    };
    let bytes = enc(&Packet::Connect(Box::new(c)));
    assert_eq!(bytes[9], 0x04 | 0x10 | 0x20, "flags byte");
}

// ---------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------

/// A valid MQTT UTF-8 string (no U+0000), short.
fn arb_string() -> impl Strategy<Value = ByteString> {
    prop::collection::vec(any::<char>().prop_filter("no U+0000", |c| *c != '\0'), 0..8)
        .prop_map(|cs| ByteString::from(cs.into_iter().collect::<String>()))
}

/// A valid PUBLISH topic name: non-empty, no wildcards, no U+0000.
fn arb_topic() -> impl Strategy<Value = ByteString> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(vec!['a', 'b', '/', '$', ' ', '\u{e9}', '\u{1d11e}']),
            1 => any::<char>().prop_filter("no wildcard or U+0000", |c| !matches!(c, '\0' | '+' | '#')),
        ],
        1..10,
    )
    .prop_map(|cs| ByteString::from(cs.into_iter().collect::<String>()))
}

fn arb_bytes(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn arb_qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn arb_packet_id() -> impl Strategy<Value = u16> {
    prop_oneof![1..=u16::MAX, Just(1u16), Just(u16::MAX)]
}

fn arb_connect() -> impl Strategy<Value = Connect> {
    let will = prop::option::of(
        (arb_topic(), arb_bytes(16), arb_qos(), any::<bool>()).prop_map(
            |(topic, payload, qos, retain)| Will {
                topic,
                payload,
                qos,
                retain,
            },
        ),
    );
    (
        prop_oneof![Just(ProtocolVersion::V31), Just(ProtocolVersion::V311)],
        any::<bool>(),
        any::<u16>(),
        arb_string(),
        will,
        prop::option::of(arb_string()),
        prop::option::of(arb_bytes(16)),
    )
        .prop_map(
            |(version, clean_session, keep_alive_s, client_id, will, username, password)| {
                // A password needs a username.
                let password = if username.is_some() { password } else { None };
                Connect {
                    version,
                    clean_session,
                    keep_alive_s,
                    client_id,
                    will,
                    username,
                    password,
                }
            },
        )
}

fn arb_publish() -> impl Strategy<Value = Publish> {
    (
        arb_qos(),
        any::<bool>(),
        any::<bool>(),
        arb_topic(),
        arb_packet_id(),
        prop_oneof![arb_bytes(8), arb_bytes(400)],
    )
        .prop_map(|(qos, dup, retain, topic, packet_id, payload)| {
            let qos0 = qos == QoS::AtMostOnce;
            Publish {
                dup: dup && !qos0,
                qos,
                retain,
                topic,
                packet_id: if qos0 { 0 } else { packet_id },
                payload,
            }
        })
}

fn arb_suback_code() -> impl Strategy<Value = SubAckCode> {
    prop_oneof![
        arb_qos().prop_map(SubAckCode::Granted),
        Just(SubAckCode::Failure)
    ]
}

fn arb_packet() -> impl Strategy<Value = Packet> {
    prop_oneof![
        arb_connect().prop_map(|c| Packet::Connect(Box::new(c))),
        (any::<bool>(), 0u8..=5).prop_map(|(session_present, code)| Packet::ConnAck(ConnAck {
            session_present,
            code: ConnectReturnCode::from_u8(code).unwrap(),
        })),
        arb_publish().prop_map(Packet::Publish),
        arb_packet_id().prop_map(Packet::PubAck),
        arb_packet_id().prop_map(Packet::PubRec),
        arb_packet_id().prop_map(Packet::PubRel),
        arb_packet_id().prop_map(Packet::PubComp),
        (
            arb_packet_id(),
            prop::collection::vec(
                (arb_string(), arb_qos()).prop_map(|(filter, qos)| SubscribeFilter { filter, qos }),
                1..5
            )
        )
            .prop_map(|(packet_id, filters)| Packet::Subscribe(Subscribe { packet_id, filters })),
        (
            arb_packet_id(),
            prop::collection::vec(arb_suback_code(), 1..5)
        )
            .prop_map(|(packet_id, codes)| Packet::SubAck(SubAck { packet_id, codes })),
        (arb_packet_id(), prop::collection::vec(arb_string(), 1..5)).prop_map(
            |(packet_id, filters)| Packet::Unsubscribe(Unsubscribe { packet_id, filters })
        ),
        arb_packet_id().prop_map(Packet::UnsubAck),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        Just(Packet::Disconnect),
    ]
}

/// Decodes `buf` until it is empty, incomplete or broken; never panics.
fn drain(buf: &mut BytesMut, max: usize) {
    for _ in 0..buf.len() + 1 {
        let before = buf.len();
        match decode(buf, None, max) {
            Ok(Some(p)) => {
                assert!(buf.len() < before, "a packet must consume bytes");
                // Anything the decoder accepts, the encoder writes back in a
                // form that decodes to the same packet.
                let mut again = BytesMut::new();
                encode(&p, &mut again);
                assert_eq!(decode(&mut again, None, NO_LIMIT), Ok(Some(p)));
                assert!(again.is_empty());
            }
            Ok(None) => {
                assert_eq!(buf.len(), before);
                return;
            }
            Err(_) => return,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn prop_round_trip(p in arb_packet()) {
        let mut buf = BytesMut::new();
        encode(&p, &mut buf);
        let len = buf.len();
        prop_assert_eq!(frame_len(&buf, NO_LIMIT), Ok(Some(len)));
        prop_assert_eq!(frame_len(&buf, len), Ok(Some(len)));
        prop_assert_eq!(decode(&mut buf, None, len), Ok(Some(p)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn prop_round_trip_publish_matches_encode_publish(p in arb_publish()) {
        let mut a = BytesMut::new();
        encode(&Packet::Publish(p.clone()), &mut a);
        let mut b = BytesMut::new();
        encode_publish(&mut b, &p.topic, &p.payload, p.qos, p.packet_id, p.retain, p.dup);
        prop_assert_eq!(&a, &b);
        if p.qos != QoS::AtMostOnce {
            let remaining = 2 + p.topic.len() + 2 + p.payload.len();
            prop_assert_eq!(1 + remaining_length_len(remaining) + remaining, a.len());
            let off = publish_packet_id_offset(p.topic.len(), remaining);
            prop_assert_eq!(&a[off..off + 2], &p.packet_id.to_be_bytes()[..]);
        }
    }

    #[test]
    fn prop_stream_in_chunks(
        packets in prop::collection::vec(arb_packet(), 0..8),
        chunk in 1usize..64,
    ) {
        let mut stream = BytesMut::new();
        for p in &packets {
            encode(p, &mut stream);
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(p) = decode(&mut buf, None, NO_LIMIT).unwrap() {
                got.push(p);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, packets);
    }

    #[test]
    fn prop_prefix_is_incomplete(p in arb_packet(), cut in any::<prop::sample::Index>()) {
        let bytes = enc(&p);
        let cut = cut.index(bytes.len());
        let mut buf = BytesMut::from(&bytes[..cut]);
        prop_assert_eq!(decode(&mut buf, None, NO_LIMIT), Ok(None));
        prop_assert_eq!(&buf[..], &bytes[..cut]);
    }

    #[test]
    fn prop_random_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        max in prop_oneof![Just(NO_LIMIT), 0usize..600],
    ) {
        let _ = frame_len(&bytes, max);
        let mut buf = BytesMut::from(&bytes[..]);
        drain(&mut buf, max);
    }

    #[test]
    fn prop_random_frames_never_panic(byte0 in any::<u8>(), body in prop::collection::vec(any::<u8>(), 0..64)) {
        // A correct header in front of a random body reaches the body decoders.
        let bytes = frame(byte0, &body);
        let mut buf = BytesMut::from(&bytes[..]);
        match decode(&mut buf, None, NO_LIMIT) {
            Ok(Some(_)) => prop_assert!(buf.is_empty()),
            Ok(None) => prop_assert!(false, "complete frame reported incomplete"),
            Err(e) => prop_assert!(!matches!(e, DecodeError::TooLarge { .. }), "{:?}", e),
        }
        drain(&mut BytesMut::from(&bytes[..]), NO_LIMIT);
    }

    #[test]
    fn prop_mutated_packets_never_panic(
        p in arb_packet(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = enc(&p);
        for (i, x) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
        }
        drain(&mut BytesMut::from(&bytes[..]), NO_LIMIT);
    }
}
