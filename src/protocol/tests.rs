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
    assert_eq!(ProtocolVersion::V5.level(), 5);
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
                properties: None,
            }),
            "SUBSCRIBE",
        ),
        (
            Packet::Unsubscribe(Unsubscribe {
                packet_id: 1,
                filters: vec![],
                properties: None,
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
                qos: QoS::AtLeastOnce,
                no_local: false,
                retain_as_published: false,
                retain_handling: 0,
            }],
            properties: None,
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
            properties: None,
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
        (b"MQTT", 6),
        (b"MQTT", 7),
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
        dec(&connect_frame(b"MQTT", 6, 0xff, &[])),
        Err(DecodeError::UnsupportedProtocolLevel(6))
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
                    properties: None,
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
                properties: None,
            }),
            username: Some(bs("u")),
            password: Some(Bytes::from_static(b"p")),
            properties: None,
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
                    properties: None,
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
        properties: None,
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
                    qos: QoS::AtMostOnce,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: 0,
                },
                SubscribeFilter {
                    filter: bs("c/+"),
                    qos: QoS::AtLeastOnce,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: 0,
                },
                SubscribeFilter {
                    filter: bs("#"),
                    qos: QoS::ExactlyOnce,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: 0,
                },
            ],
            properties: None,
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
                no_local: false,
                retain_as_published: false,
                retain_handling: 0,
            },
            SubscribeFilter {
                filter: bs("c"),
                qos: QoS::ExactlyOnce,
                no_local: false,
                retain_as_published: false,
                retain_handling: 0,
            },
        ],
        properties: None,
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
            properties: None,
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
        properties: None,
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
            properties: None,
        }),
        username: Some(bs("u")),
        password: Some(Bytes::from_static(b"p")),
        properties: None,
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
        properties: None,
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
            properties: None,
        }),
        username: None,
        password: None,
        properties: None,
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
                properties: None,
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
                    properties: None,
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
                properties: None,
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
                (arb_string(), arb_qos()).prop_map(|(filter, qos)| SubscribeFilter {
                    filter,
                    qos,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: 0
                }),
                1..5
            )
        )
            .prop_map(|(packet_id, filters)| Packet::Subscribe(Subscribe {
                packet_id,
                filters,
                properties: None
            })),
        (
            arb_packet_id(),
            prop::collection::vec(arb_suback_code(), 1..5)
        )
            .prop_map(|(packet_id, codes)| Packet::SubAck(SubAck { packet_id, codes })),
        (arb_packet_id(), prop::collection::vec(arb_string(), 1..5)).prop_map(
            |(packet_id, filters)| Packet::Unsubscribe(Unsubscribe {
                packet_id,
                filters,
                properties: None
            })
        ),
        arb_packet_id().prop_map(Packet::UnsubAck),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        Just(Packet::Disconnect),
    ]
}

/// Decodes `buf` until it is empty, incomplete or broken; never panics.
fn drain(buf: &mut BytesMut, max: usize) {
    drain_v(buf, None, max);
}

/// [`drain`] for a connection of `version`: what decodes is re-encoded in that
/// version's format and must decode to the same packet.
fn drain_v(buf: &mut BytesMut, version: Option<ProtocolVersion>, max: usize) {
    for _ in 0..buf.len() + 1 {
        let before = buf.len();
        match decode(buf, version, max) {
            Ok(Some(p)) => {
                assert!(buf.len() < before, "a packet must consume bytes");
                // Anything the decoder accepts, the encoder writes back in a
                // form that decodes to the same packet.
                let mut again = BytesMut::new();
                match version {
                    Some(v) => encode_v(v, &p, &mut again),
                    None => encode(&p, &mut again),
                }
                assert_eq!(decode(&mut again, version, NO_LIMIT), Ok(Some(p)));
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

// ===========================================================================
// MQTT 5.0
// ===========================================================================

const V5: Option<ProtocolVersion> = Some(ProtocolVersion::V5);

/// Decodes one v5 packet from `bytes`, which must hold exactly one frame.
fn dec5(bytes: &[u8]) -> Result<Packet, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    match decode(&mut buf, V5, NO_LIMIT) {
        Ok(Some(p)) => {
            assert!(buf.is_empty(), "decode left {} bytes", buf.len());
            Ok(p)
        }
        Ok(None) => panic!("complete frame {bytes:02x?} reported incomplete"),
        Err(e) => Err(e),
    }
}

fn enc5(p: &Packet) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_v(ProtocolVersion::V5, p, &mut buf);
    buf.to_vec()
}

#[track_caller]
fn assert_malformed5(bytes: &[u8]) {
    let r = dec5(bytes);
    assert!(
        is_malformed(&r),
        "{bytes:02x?}: expected Malformed, got {r:?}"
    );
}

#[track_caller]
fn assert_protocol5(bytes: &[u8]) {
    let r = dec5(bytes);
    assert!(
        is_protocol(&r),
        "{bytes:02x?}: expected Protocol, got {r:?}"
    );
}

/// Decodes `bytes` as v5 and checks that `encode_v` writes them back exactly.
#[track_caller]
fn round_trip5(bytes: &[u8]) -> Packet {
    let p = dec5(bytes).unwrap_or_else(|e| panic!("{bytes:02x?}: {e}"));
    assert_eq!(enc5(&p), bytes, "re-encoding of {p:?}");
    p
}

/// A Variable Byte Integer (section 1.5.5): the same scheme as the remaining
/// length.
fn vbi(n: usize) -> Vec<u8> {
    rl(n)
}

/// A property block: the length, then the properties.
fn block(props: &[u8]) -> Vec<u8> {
    cat(&[&vbi(props.len()), props])
}

fn bx(p: Properties) -> Option<Box<Properties>> {
    Some(Box::new(p))
}

/// A v5 CONNECT frame with clean start, keep alive 60, `props` (a block),
/// client id "c", then `rest`.
fn connect5(flags: u8, props: &[u8], rest: &[u8]) -> Vec<u8> {
    frame(
        0x10,
        &connect_body(b"MQTT", 5, flags, 60, &cat(&[props, &field(b"c"), rest])),
    )
}

fn connect5_ok(bytes: &[u8]) -> Connect {
    match dec5(bytes) {
        Ok(Packet::Connect(c)) => *c,
        other => panic!("expected CONNECT, got {other:?}"),
    }
}

/// Where a property block can sit: each v5 packet with properties, and the
/// will. The test's own list, independent of the implementation's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Where {
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

const EVERYWHERE: [Where; 14] = [
    Where::Connect,
    Where::Will,
    Where::ConnAck,
    Where::Publish,
    Where::PubAck,
    Where::PubRec,
    Where::PubRel,
    Where::PubComp,
    Where::Subscribe,
    Where::SubAck,
    Where::Unsubscribe,
    Where::UnsubAck,
    Where::Disconnect,
    Where::Auth,
];

impl Where {
    /// A valid v5 frame that carries the property block `props` here.
    fn frame(self, props: &[u8]) -> Vec<u8> {
        match self {
            Where::Connect => connect5(0x02, props, &[]),
            Where::Will => connect5(0x06, &[0], &cat(&[props, &field(b"wt"), &field(b"wp")])),
            Where::ConnAck => frame(0x20, &cat(&[&[0, 0], props])),
            Where::Publish => frame(0x30, &cat(&[&field(b"t"), props, b"pl"])),
            Where::PubAck => frame(0x40, &cat(&[&[0, 1, 0], props])),
            Where::PubRec => frame(0x50, &cat(&[&[0, 1, 0], props])),
            Where::PubRel => frame(0x62, &cat(&[&[0, 1, 0], props])),
            Where::PubComp => frame(0x70, &cat(&[&[0, 1, 0], props])),
            Where::Subscribe => frame(0x82, &cat(&[&[0, 1], props, &field(b"a"), &[1]])),
            Where::SubAck => frame(0x90, &cat(&[&[0, 1], props, &[1]])),
            Where::Unsubscribe => frame(0xa2, &cat(&[&[0, 1], props, &field(b"a")])),
            Where::UnsubAck => frame(0xb0, &cat(&[&[0, 1], props, &[0]])),
            Where::Disconnect => frame(0xe0, &cat(&[&[0], props])),
            Where::Auth => frame(0xf0, &cat(&[&[0x18], props])),
        }
    }

    /// True when [`Where::frame`] without properties is not the shortest
    /// form: acks, DISCONNECT and AUTH re-encode without an empty block.
    fn shortens(self) -> bool {
        matches!(
            self,
            Where::PubAck
                | Where::PubRec
                | Where::PubRel
                | Where::PubComp
                | Where::Disconnect
                | Where::Auth
        )
    }

    /// The name of the packet [`Where::frame`] builds.
    fn packet_name(self) -> &'static str {
        match self {
            Where::Connect | Where::Will => "CONNECT",
            Where::ConnAck => "CONNACK",
            Where::Publish => "PUBLISH",
            Where::PubAck => "PUBACK",
            Where::PubRec => "PUBREC",
            Where::PubRel => "PUBREL",
            Where::PubComp => "PUBCOMP",
            Where::Subscribe => "SUBSCRIBE",
            Where::SubAck => "SUBACK",
            Where::Unsubscribe => "UNSUBSCRIBE",
            Where::UnsubAck => "UNSUBACK",
            Where::Disconnect => "DISCONNECT",
            Where::Auth => "AUTH",
        }
    }

    /// The properties of `p` that sit here.
    fn props_of(self, p: &Packet) -> Option<Properties> {
        let b = match (self, p) {
            (Where::Connect, Packet::Connect(c)) => &c.properties,
            (Where::Will, Packet::Connect(c)) => &c.will.as_ref().unwrap().properties,
            (_, Packet::ConnAckV5(c)) => &c.properties,
            (_, Packet::Publish(x)) => &x.properties,
            (_, Packet::AckV5(a)) => &a.properties,
            (_, Packet::Subscribe(s)) => &s.properties,
            (_, Packet::SubAckV5(s)) => &s.properties,
            (_, Packet::Unsubscribe(u)) => &u.properties,
            (_, Packet::UnsubAckV5(u)) => &u.properties,
            (_, Packet::DisconnectV5(d)) => &d.properties,
            (_, Packet::Auth(a)) => &a.properties,
            _ => return None,
        };
        b.as_deref().cloned()
    }

    /// The implementation's name for this place.
    fn ctx(self) -> super::properties::PropCtx {
        use super::properties::PropCtx as C;
        match self {
            Where::Connect => C::Connect,
            Where::Will => C::Will,
            Where::ConnAck => C::ConnAck,
            Where::Publish => C::Publish,
            Where::PubAck => C::PubAck,
            Where::PubRec => C::PubRec,
            Where::PubRel => C::PubRel,
            Where::PubComp => C::PubComp,
            Where::Subscribe => C::Subscribe,
            Where::SubAck => C::SubAck,
            Where::Unsubscribe => C::Unsubscribe,
            Where::UnsubAck => C::UnsubAck,
            Where::Disconnect => C::Disconnect,
            Where::Auth => C::Auth,
        }
    }
}

/// One property of table 2-4: its identifier, a valid encoded value, the
/// `Properties` that value decodes to, and where the property is allowed.
struct Sample {
    id: u8,
    value: Vec<u8>,
    want: Properties,
    allowed: &'static [Where],
}

fn samples() -> Vec<Sample> {
    use Where::*;
    const MESSAGE: &[Where] = &[Publish, Will];
    const REASON: &[Where] = &[
        ConnAck, PubAck, PubRec, PubRel, PubComp, SubAck, UnsubAck, Disconnect, Auth,
    ];
    let p = Properties::default;
    vec![
        Sample {
            id: 0x01,
            value: vec![1],
            want: Properties {
                payload_format_indicator: Some(1),
                ..p()
            },
            allowed: MESSAGE,
        },
        Sample {
            id: 0x02,
            value: vec![0, 0, 0x0e, 0x10],
            want: Properties {
                message_expiry_interval: Some(3600),
                ..p()
            },
            allowed: MESSAGE,
        },
        Sample {
            id: 0x03,
            value: field(b"text/plain"),
            want: Properties {
                content_type: Some(bs("text/plain")),
                ..p()
            },
            allowed: MESSAGE,
        },
        Sample {
            id: 0x08,
            value: field(b"resp/t"),
            want: Properties {
                response_topic: Some(bs("resp/t")),
                ..p()
            },
            allowed: MESSAGE,
        },
        Sample {
            id: 0x09,
            value: field(b"\x00\xff"),
            want: Properties {
                correlation_data: Some(Bytes::from_static(b"\x00\xff")),
                ..p()
            },
            allowed: MESSAGE,
        },
        Sample {
            id: 0x0b,
            value: vec![0x80, 0x01],
            want: Properties {
                subscription_identifiers: vec![128],
                ..p()
            },
            allowed: &[Publish, Subscribe],
        },
        Sample {
            id: 0x11,
            value: vec![0, 0, 0, 60],
            want: Properties {
                session_expiry_interval: Some(60),
                ..p()
            },
            allowed: &[Connect, ConnAck, Disconnect],
        },
        Sample {
            id: 0x12,
            value: field(b"auto-1"),
            want: Properties {
                assigned_client_identifier: Some(bs("auto-1")),
                ..p()
            },
            allowed: &[ConnAck],
        },
        Sample {
            id: 0x13,
            value: vec![0, 30],
            want: Properties {
                server_keep_alive: Some(30),
                ..p()
            },
            allowed: &[ConnAck],
        },
        Sample {
            id: 0x15,
            value: field(b"SCRAM-SHA-1"),
            want: Properties {
                authentication_method: Some(bs("SCRAM-SHA-1")),
                ..p()
            },
            allowed: &[Connect, ConnAck, Auth],
        },
        Sample {
            id: 0x16,
            value: field(b"\x01\x02"),
            want: Properties {
                authentication_data: Some(Bytes::from_static(b"\x01\x02")),
                ..p()
            },
            allowed: &[Connect, ConnAck, Auth],
        },
        Sample {
            id: 0x17,
            value: vec![1],
            want: Properties {
                request_problem_information: Some(1),
                ..p()
            },
            allowed: &[Connect],
        },
        Sample {
            id: 0x18,
            value: vec![0, 0, 0, 5],
            want: Properties {
                will_delay_interval: Some(5),
                ..p()
            },
            allowed: &[Will],
        },
        Sample {
            id: 0x19,
            value: vec![1],
            want: Properties {
                request_response_information: Some(1),
                ..p()
            },
            allowed: &[Connect],
        },
        Sample {
            id: 0x1a,
            value: field(b"resp-info"),
            want: Properties {
                response_information: Some(bs("resp-info")),
                ..p()
            },
            allowed: &[ConnAck],
        },
        Sample {
            id: 0x1c,
            value: field(b"other:1883"),
            want: Properties {
                server_reference: Some(bs("other:1883")),
                ..p()
            },
            allowed: &[ConnAck, Disconnect],
        },
        Sample {
            id: 0x1f,
            value: field(b"why"),
            want: Properties {
                reason_string: Some(bs("why")),
                ..p()
            },
            allowed: REASON,
        },
        Sample {
            id: 0x21,
            value: vec![0, 20],
            want: Properties {
                receive_maximum: Some(20),
                ..p()
            },
            allowed: &[Connect, ConnAck],
        },
        Sample {
            id: 0x22,
            value: vec![0, 10],
            want: Properties {
                topic_alias_maximum: Some(10),
                ..p()
            },
            allowed: &[Connect, ConnAck],
        },
        Sample {
            id: 0x23,
            value: vec![0, 7],
            want: Properties {
                topic_alias: Some(7),
                ..p()
            },
            allowed: &[Publish],
        },
        Sample {
            id: 0x24,
            value: vec![1],
            want: Properties {
                maximum_qos: Some(1),
                ..p()
            },
            allowed: &[ConnAck],
        },
        Sample {
            id: 0x25,
            value: vec![0],
            want: Properties {
                retain_available: Some(0),
                ..p()
            },
            allowed: &[ConnAck],
        },
        Sample {
            id: 0x26,
            value: cat(&[&field(b"k"), &field("v\u{e9}".as_bytes())]),
            want: Properties {
                user_properties: vec![(bs("k"), bs("v\u{e9}"))],
                ..p()
            },
            allowed: &EVERYWHERE,
        },
        Sample {
            id: 0x27,
            value: vec![0, 0, 0x10, 0],
            want: Properties {
                maximum_packet_size: Some(4096),
                ..p()
            },
            allowed: &[Connect, ConnAck],
        },
        Sample {
            id: 0x28,
            value: vec![0],
            want: Properties {
                wildcard_subscription_available: Some(0),
                ..p()
            },
            allowed: &[ConnAck],
        },
        Sample {
            id: 0x29,
            value: vec![1],
            want: Properties {
                subscription_identifier_available: Some(1),
                ..p()
            },
            allowed: &[ConnAck],
        },
        Sample {
            id: 0x2a,
            value: vec![0],
            want: Properties {
                shared_subscription_available: Some(0),
                ..p()
            },
            allowed: &[ConnAck],
        },
    ]
}

/// Every identifier of table 2-4.
const PROPERTY_IDS: [u8; 27] = [
    0x01, 0x02, 0x03, 0x08, 0x09, 0x0b, 0x11, 0x12, 0x13, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1c,
    0x1f, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a,
];

/// Authentication data needs an authentication method in CONNECT.
fn with_method(w: Where, id: u8, props: Vec<u8>, want: &mut Properties) -> Vec<u8> {
    if w == Where::Connect && id == 0x16 {
        want.authentication_method = Some(bs("M"));
        return cat(&[&[0x15], &field(b"M"), &props]);
    }
    props
}

// ---------------------------------------------------------------------------
// v5 small types
// ---------------------------------------------------------------------------

#[test]
fn v5_reason_mapping() {
    assert_eq!(DecodeError::Malformed("x").v5_reason(), 0x81);
    assert_eq!(DecodeError::Protocol("x").v5_reason(), 0x82);
    assert_eq!(DecodeError::TooLarge { size: 2, max: 1 }.v5_reason(), 0x95);
    assert_eq!(DecodeError::UnsupportedProtocolLevel(6).v5_reason(), 0x84);
    assert_eq!(DecodeError::BadProtocolName.v5_reason(), 0x81);
}

#[test]
fn connect_return_codes_map_to_v5_reasons() {
    let want = [
        (ConnectReturnCode::Accepted, 0x00),
        (ConnectReturnCode::UnacceptableProtocolVersion, 0x84),
        (ConnectReturnCode::IdentifierRejected, 0x85),
        (ConnectReturnCode::ServerUnavailable, 0x88),
        (ConnectReturnCode::BadUsernameOrPassword, 0x86),
        (ConnectReturnCode::NotAuthorized, 0x87),
    ];
    for (code, r) in want {
        assert_eq!(code.v5_reason(), r, "{code:?}");
    }
}

/// Every reason code of section 2.4 with its value and name.
const REASON_TABLE: &[(u8, u8, &str)] = &[
    (reason::SUCCESS, 0x00, "Success"),
    (reason::NORMAL_DISCONNECTION, 0x00, "Success"),
    (reason::GRANTED_QOS_0, 0x00, "Success"),
    (reason::GRANTED_QOS_1, 0x01, "Granted QoS 1"),
    (reason::GRANTED_QOS_2, 0x02, "Granted QoS 2"),
    (
        reason::DISCONNECT_WITH_WILL,
        0x04,
        "Disconnect with Will Message",
    ),
    (
        reason::NO_MATCHING_SUBSCRIBERS,
        0x10,
        "No matching subscribers",
    ),
    (
        reason::NO_SUBSCRIPTION_EXISTED,
        0x11,
        "No subscription existed",
    ),
    (
        reason::CONTINUE_AUTHENTICATION,
        0x18,
        "Continue authentication",
    ),
    (reason::REAUTHENTICATE, 0x19, "Re-authenticate"),
    (reason::UNSPECIFIED_ERROR, 0x80, "Unspecified error"),
    (reason::MALFORMED_PACKET, 0x81, "Malformed Packet"),
    (reason::PROTOCOL_ERROR, 0x82, "Protocol Error"),
    (
        reason::IMPLEMENTATION_SPECIFIC_ERROR,
        0x83,
        "Implementation specific error",
    ),
    (
        reason::UNSUPPORTED_PROTOCOL_VERSION,
        0x84,
        "Unsupported Protocol Version",
    ),
    (
        reason::CLIENT_IDENTIFIER_NOT_VALID,
        0x85,
        "Client Identifier not valid",
    ),
    (
        reason::BAD_USER_NAME_OR_PASSWORD,
        0x86,
        "Bad User Name or Password",
    ),
    (reason::NOT_AUTHORIZED, 0x87, "Not authorized"),
    (reason::SERVER_UNAVAILABLE, 0x88, "Server unavailable"),
    (reason::SERVER_BUSY, 0x89, "Server busy"),
    (reason::BANNED, 0x8a, "Banned"),
    (reason::SERVER_SHUTTING_DOWN, 0x8b, "Server shutting down"),
    (
        reason::BAD_AUTHENTICATION_METHOD,
        0x8c,
        "Bad authentication method",
    ),
    (reason::KEEP_ALIVE_TIMEOUT, 0x8d, "Keep Alive timeout"),
    (reason::SESSION_TAKEN_OVER, 0x8e, "Session taken over"),
    (reason::TOPIC_FILTER_INVALID, 0x8f, "Topic Filter invalid"),
    (reason::TOPIC_NAME_INVALID, 0x90, "Topic Name invalid"),
    (
        reason::PACKET_IDENTIFIER_IN_USE,
        0x91,
        "Packet Identifier in use",
    ),
    (
        reason::PACKET_IDENTIFIER_NOT_FOUND,
        0x92,
        "Packet Identifier not found",
    ),
    (
        reason::RECEIVE_MAXIMUM_EXCEEDED,
        0x93,
        "Receive Maximum exceeded",
    ),
    (reason::TOPIC_ALIAS_INVALID, 0x94, "Topic Alias invalid"),
    (reason::PACKET_TOO_LARGE, 0x95, "Packet too large"),
    (reason::MESSAGE_RATE_TOO_HIGH, 0x96, "Message rate too high"),
    (reason::QUOTA_EXCEEDED, 0x97, "Quota exceeded"),
    (reason::ADMINISTRATIVE_ACTION, 0x98, "Administrative action"),
    (
        reason::PAYLOAD_FORMAT_INVALID,
        0x99,
        "Payload format invalid",
    ),
    (reason::RETAIN_NOT_SUPPORTED, 0x9a, "Retain not supported"),
    (reason::QOS_NOT_SUPPORTED, 0x9b, "QoS not supported"),
    (reason::USE_ANOTHER_SERVER, 0x9c, "Use another server"),
    (reason::SERVER_MOVED, 0x9d, "Server moved"),
    (
        reason::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
        0x9e,
        "Shared Subscriptions not supported",
    ),
    (
        reason::CONNECTION_RATE_EXCEEDED,
        0x9f,
        "Connection rate exceeded",
    ),
    (reason::MAXIMUM_CONNECT_TIME, 0xa0, "Maximum connect time"),
    (
        reason::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
        0xa1,
        "Subscription Identifiers not supported",
    ),
    (
        reason::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
        0xa2,
        "Wildcard Subscriptions not supported",
    ),
];

#[test]
fn reason_code_values_and_names() {
    for &(c, value, name) in REASON_TABLE {
        assert_eq!(c, value, "{name}");
        assert_eq!(reason::name(c), name, "{value:#04x}");
    }
    let known: Vec<u8> = REASON_TABLE.iter().map(|r| r.1).collect();
    for c in 0..=255u8 {
        if !known.contains(&c) {
            assert_eq!(reason::name(c), "Unknown reason code", "{c:#04x}");
        }
    }
}

#[test]
fn v5_packet_names() {
    let cases: Vec<(Packet, &str)> = vec![
        (
            Packet::ConnAckV5(ConnAckV5 {
                session_present: false,
                reason: 0,
                properties: None,
            }),
            "CONNACK",
        ),
        (
            Packet::SubAckV5(SubAckV5 {
                packet_id: 1,
                reasons: vec![],
                properties: None,
            }),
            "SUBACK",
        ),
        (
            Packet::UnsubAckV5(UnsubAckV5 {
                packet_id: 1,
                reasons: vec![],
                properties: None,
            }),
            "UNSUBACK",
        ),
        (
            Packet::DisconnectV5(DisconnectV5 {
                reason: 4,
                properties: None,
            }),
            "DISCONNECT",
        ),
        (
            Packet::Auth(Auth {
                reason: 0x18,
                properties: None,
            }),
            "AUTH",
        ),
    ];
    for (p, name) in cases {
        assert_eq!(p.name(), name);
    }
    for (kind, name) in [
        (AckKind::PubAck, "PUBACK"),
        (AckKind::PubRec, "PUBREC"),
        (AckKind::PubRel, "PUBREL"),
        (AckKind::PubComp, "PUBCOMP"),
    ] {
        let p = Packet::AckV5(AckV5 {
            kind,
            packet_id: 1,
            reason: 0x80,
            properties: None,
        });
        assert_eq!(p.name(), name);
        assert_eq!(kind.name(), name);
    }
}

#[test]
fn properties_is_empty() {
    assert!(Properties::default().is_empty());
    for s in samples() {
        assert!(!s.want.is_empty(), "property {:#04x}", s.id);
    }
    let p = Properties {
        topic_alias: Some(0),
        ..Properties::default()
    };
    assert!(!p.is_empty());
}

// ---------------------------------------------------------------------------
// v5 properties (section 2.2.2)
// ---------------------------------------------------------------------------

#[test]
fn property_table_matches_the_spec() {
    // The implementation's table against the test's copy of table 2-4.
    let samples = samples();
    assert_eq!(samples.len(), PROPERTY_IDS.len());
    for (s, id) in samples.iter().zip(PROPERTY_IDS) {
        assert_eq!(s.id, id);
    }
    for s in &samples {
        for w in EVERYWHERE {
            assert_eq!(
                super::properties::is_allowed(s.id, w.ctx()),
                s.allowed.contains(&w),
                "property {:#04x} in {w:?}",
                s.id
            );
        }
    }
    for id in 0..=255u8 {
        if !PROPERTY_IDS.contains(&id) {
            for w in EVERYWHERE {
                assert!(!super::properties::is_allowed(id, w.ctx()));
            }
        }
    }
}

#[test]
fn every_property_round_trips_where_allowed_and_is_rejected_elsewhere() {
    for s in samples() {
        for w in EVERYWHERE {
            let mut want = s.want.clone();
            let props = with_method(w, s.id, cat(&[&[s.id], &s.value]), &mut want);
            let bytes = w.frame(&block(&props));
            if s.allowed.contains(&w) {
                let p = round_trip5(&bytes);
                assert_eq!(p.name(), w.packet_name(), "{:#04x} in {w:?}", s.id);
                assert_eq!(w.props_of(&p), Some(want), "{:#04x} in {w:?}", s.id);
            } else {
                assert_eq!(
                    dec5(&bytes),
                    Err(DecodeError::Protocol("property not allowed in this packet")),
                    "{:#04x} in {w:?}",
                    s.id
                );
            }
        }
    }
}

#[test]
fn every_place_without_properties() {
    // An empty block is None, and the packet re-encodes to the same bytes.
    for w in EVERYWHERE {
        let bytes = w.frame(&[0]);
        let p = if w.shortens() {
            let p = dec5(&bytes).unwrap();
            assert!(enc5(&p).len() < bytes.len(), "{w:?}");
            assert_eq!(dec5(&enc5(&p)), Ok(p.clone()), "{w:?}");
            p
        } else {
            round_trip5(&bytes)
        };
        assert_eq!(p.name(), w.packet_name(), "{w:?}");
        assert_eq!(w.props_of(&p), None, "{w:?}");
    }
}

#[test]
fn all_allowed_properties_together() {
    // Each place with every property it allows, in encoding (identifier)
    // order: decodes to all of them and re-encodes byte for byte.
    for w in EVERYWHERE {
        let mut props = Vec::new();
        let mut want = Properties::default();
        for s in samples().iter().filter(|s| s.allowed.contains(&w)) {
            props.extend_from_slice(&[s.id]);
            props.extend_from_slice(&s.value);
            merge(&mut want, &s.want);
        }
        let p = round_trip5(&w.frame(&block(&props)));
        assert_eq!(w.props_of(&p), Some(want.clone()), "{w:?}");
        assert_eq!(properties_len(&want), props.len(), "{w:?}");
        // In reverse order they decode to the same properties.
        let mut reversed = Vec::new();
        for s in samples().iter().rev().filter(|s| s.allowed.contains(&w)) {
            reversed.extend_from_slice(&[s.id]);
            reversed.extend_from_slice(&s.value);
        }
        let p = dec5(&w.frame(&block(&reversed))).unwrap();
        assert_eq!(w.props_of(&p), Some(want), "{w:?} reversed");
    }
}

/// Sets in `to` every field `from` sets (the samples set one each).
fn merge(to: &mut Properties, from: &Properties) {
    macro_rules! opt {
        ($($f:ident),*) => {$(
            if from.$f.is_some() {
                to.$f = from.$f.clone();
            }
        )*};
    }
    opt!(
        payload_format_indicator,
        message_expiry_interval,
        content_type,
        response_topic,
        correlation_data,
        session_expiry_interval,
        assigned_client_identifier,
        server_keep_alive,
        authentication_method,
        authentication_data,
        request_problem_information,
        will_delay_interval,
        request_response_information,
        response_information,
        server_reference,
        reason_string,
        receive_maximum,
        topic_alias_maximum,
        topic_alias,
        maximum_qos,
        retain_available,
        maximum_packet_size,
        wildcard_subscription_available,
        subscription_identifier_available,
        shared_subscription_available
    );
    to.subscription_identifiers
        .extend_from_slice(&from.subscription_identifiers);
    to.user_properties.extend_from_slice(&from.user_properties);
}

#[test]
fn duplicate_properties_are_protocol_errors() {
    for s in samples() {
        if s.id == 0x26 {
            continue; // user property: any number
        }
        for &w in s.allowed {
            if s.id == 0x0b && w == Where::Publish {
                continue; // several subscription identifiers in PUBLISH
            }
            let one = cat(&[&[s.id], &s.value]);
            let mut ignored = Properties::default();
            let props = with_method(w, s.id, cat(&[&one, &one]), &mut ignored);
            assert_eq!(
                dec5(&w.frame(&block(&props))),
                Err(DecodeError::Protocol("duplicate property")),
                "{:#04x} twice in {w:?}",
                s.id
            );
            // also when not adjacent
            if s.id != 0x26 {
                let props = cat(&[&one, &[0x26], &field(b"k"), &field(b"v"), &one]);
                let props = with_method(w, s.id, props, &mut ignored);
                assert!(
                    is_protocol(&dec5(&w.frame(&block(&props)))),
                    "{:#04x} twice in {w:?}",
                    s.id
                );
            }
        }
    }
}

#[test]
fn user_properties_keep_their_order_and_duplicates() {
    let pairs = [("b", "2"), ("a", "1"), ("b", "2"), ("", ""), ("a", "0")];
    let mut props = Vec::new();
    for (k, v) in pairs {
        props.push(0x26);
        props.extend(field(k.as_bytes()));
        props.extend(field(v.as_bytes()));
    }
    let want: Vec<(ByteString, ByteString)> = pairs.iter().map(|(k, v)| (bs(k), bs(v))).collect();
    for w in EVERYWHERE {
        let p = round_trip5(&w.frame(&block(&props)));
        assert_eq!(
            w.props_of(&p).unwrap().user_properties,
            want,
            "user properties in {w:?}"
        );
    }
}

#[test]
fn publish_subscription_identifiers_keep_their_order() {
    // A PUBLISH to a subscriber matched by several subscriptions.
    let ids = [5u32, 1, 268_435_455, 128, 5];
    let mut props = Vec::new();
    for id in ids {
        props.push(0x0b);
        props.extend(vbi(id as usize));
    }
    let p = round_trip5(&Where::Publish.frame(&block(&props)));
    assert_eq!(
        Where::Publish
            .props_of(&p)
            .unwrap()
            .subscription_identifiers,
        ids
    );
    // SUBSCRIBE takes one.
    let one = [0x0b, 0x01];
    let p = round_trip5(&Where::Subscribe.frame(&block(&one)));
    assert_eq!(
        Where::Subscribe
            .props_of(&p)
            .unwrap()
            .subscription_identifiers,
        [1]
    );
    assert_protocol5(&Where::Subscribe.frame(&block(&[0x0b, 0x01, 0x0b, 0x02])));
}

#[test]
fn subscription_identifier_values() {
    for w in [Where::Publish, Where::Subscribe] {
        // 0 is a protocol error.
        assert_eq!(
            dec5(&w.frame(&block(&[0x0b, 0x00]))),
            Err(DecodeError::Protocol("subscription identifier 0"))
        );
        // A non-minimal 0 too.
        assert_protocol5(&w.frame(&block(&[0x0b, 0x80, 0x00])));
        // Boundaries of 1 to 4 bytes.
        for (id, bytes) in [
            (1u32, &[0x01u8][..]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xff, 0x7f]),
            (16_384, &[0x80, 0x80, 0x01]),
            (268_435_455, &[0xff, 0xff, 0xff, 0x7f]),
        ] {
            let p = round_trip5(&w.frame(&block(&cat(&[&[0x0b], bytes]))));
            assert_eq!(w.props_of(&p).unwrap().subscription_identifiers, [id]);
        }
        // Five bytes is malformed.
        assert_eq!(
            dec5(&w.frame(&block(&[0x0b, 0xff, 0xff, 0xff, 0xff, 0x01]))),
            Err(DecodeError::Malformed(
                "variable byte integer longer than 4 bytes"
            ))
        );
        // Truncated inside the block.
        assert_malformed5(&w.frame(&block(&[0x0b, 0x80])));
    }
}

#[test]
fn zero_limits_are_protocol_errors() {
    for w in [Where::Connect, Where::ConnAck] {
        assert_eq!(
            dec5(&w.frame(&block(&[0x21, 0, 0]))),
            Err(DecodeError::Protocol("receive maximum 0"))
        );
        assert_eq!(
            dec5(&w.frame(&block(&[0x27, 0, 0, 0, 0]))),
            Err(DecodeError::Protocol("maximum packet size 0"))
        );
        // 1 and the maximum are fine; topic alias maximum 0 is too.
        for props in [
            &[0x21, 0, 1][..],
            &[0x21, 0xff, 0xff],
            &[0x27, 0, 0, 0, 1],
            &[0x27, 0xff, 0xff, 0xff, 0xff],
            &[0x22, 0, 0],
        ] {
            round_trip5(&w.frame(&block(props)));
        }
    }
}

#[test]
fn topic_alias_0_is_left_to_the_broker() {
    let p = round_trip5(&Where::Publish.frame(&block(&[0x23, 0, 0])));
    assert_eq!(Where::Publish.props_of(&p).unwrap().topic_alias, Some(0));
}

#[test]
fn boolean_properties_outside_0_and_1_are_protocol_errors() {
    // (id, where): payload format, request problem / response information,
    // maximum QoS, retain available, the three *_available.
    let cases = [
        (0x01u8, Where::Publish),
        (0x01, Where::Will),
        (0x17, Where::Connect),
        (0x19, Where::Connect),
        (0x24, Where::ConnAck),
        (0x25, Where::ConnAck),
        (0x28, Where::ConnAck),
        (0x29, Where::ConnAck),
        (0x2a, Where::ConnAck),
    ];
    for (id, w) in cases {
        for v in 0..=255u8 {
            let bytes = w.frame(&block(&[id, v]));
            if v <= 1 {
                round_trip5(&bytes);
            } else {
                assert_eq!(
                    dec5(&bytes),
                    Err(DecodeError::Protocol("property value other than 0 or 1")),
                    "{id:#04x} = {v} in {w:?}"
                );
            }
        }
    }
}

#[test]
fn unknown_property_identifiers_are_malformed() {
    for id in 0..=255u8 {
        if PROPERTY_IDS.contains(&id) {
            continue;
        }
        for w in EVERYWHERE {
            assert_eq!(
                dec5(&w.frame(&block(&[id, 0, 0, 0, 0]))),
                Err(DecodeError::Malformed("unknown property identifier")),
                "{id:#04x} in {w:?}"
            );
        }
    }
}

#[test]
fn property_length_errors() {
    for w in EVERYWHERE {
        // Longer than the rest of the body.
        let bytes = w.frame(&[0x7f, 0x26, 0, 1, b'k', 0, 1, b'v']);
        assert!(is_malformed(&dec5(&bytes)), "{w:?}");
        // A property length of 5 bytes.
        assert!(
            is_malformed(&dec5(&w.frame(&[0x80, 0x80, 0x80, 0x80, 0x01]))),
            "{w:?}"
        );
        // A non-minimal empty length is still empty.
        if !matches!(w, Where::Connect | Where::Will) {
            let p = dec5(&w.frame(&[0x80, 0x00])).unwrap();
            assert_eq!(w.props_of(&p), None, "{w:?}");
        }
        // Each property's value cut short inside the block.
        for s in samples() {
            if !s.allowed.contains(&w) || s.value.len() < 2 {
                continue;
            }
            let props = cat(&[&[s.id], &s.value[..s.value.len() - 1]]);
            let mut ignored = Properties::default();
            let props = with_method(w, s.id, props, &mut ignored);
            assert!(
                is_malformed(&dec5(&w.frame(&block(&props)))),
                "{:#04x} cut short in {w:?}",
                s.id
            );
        }
        // An identifier with no value at all.
        assert!(is_malformed(&dec5(&w.frame(&block(&[0x26])))), "{w:?}");
    }
    // A block that takes the rest of the PUBLISH leaves an empty payload; one
    // byte more than the body is malformed.
    let body = cat(&[&field(b"t"), &[3, 0x23, 0, 1]]);
    assert!(matches!(dec5(&frame(0x30, &body)), Ok(Packet::Publish(p)) if p.payload.is_empty()));
    let body = cat(&[&field(b"t"), &[4, 0x23, 0, 1]]);
    assert_malformed5(&frame(0x30, &body));
}

#[test]
fn bad_strings_in_properties_are_malformed() {
    for bad in BAD_STRINGS {
        for (id, w) in [
            (0x03u8, Where::Publish),
            (0x08, Where::Will),
            (0x12, Where::ConnAck),
            (0x15, Where::Auth),
            (0x1a, Where::ConnAck),
            (0x1c, Where::Disconnect),
            (0x1f, Where::PubAck),
        ] {
            let props = cat(&[&[id], &field(bad)]);
            assert_malformed5(&w.frame(&block(&props)));
        }
        // Either half of a user property.
        let props = cat(&[&[0x26], &field(bad), &field(b"v")]);
        assert_malformed5(&Where::Publish.frame(&block(&props)));
        let props = cat(&[&[0x26], &field(b"k"), &field(bad)]);
        assert_malformed5(&Where::Subscribe.frame(&block(&props)));
    }
    // Binary properties take any bytes.
    let props = cat(&[&[0x09], &field(b"\x00\xff\xfe")]);
    round_trip5(&Where::Publish.frame(&block(&props)));
}

#[test]
fn properties_len_is_the_encoded_length() {
    let mut all = Properties::default();
    for s in samples() {
        merge(&mut all, &s.want);
    }
    all.subscription_identifiers = vec![1, 200, 300_000, 268_435_455];
    // CONNACK with every property (the encoder does not check the packet).
    let p = Packet::ConnAckV5(ConnAckV5 {
        session_present: false,
        reason: 0,
        properties: bx(all.clone()),
    });
    let bytes = enc5(&p);
    let len = properties_len(&all);
    assert_eq!(
        bytes.len(),
        1 + rl(2 + vbi(len).len() + len).len() + 2 + vbi(len).len() + len
    );
    assert_eq!(properties_len(&Properties::default()), 0);
}

// ---------------------------------------------------------------------------
// v5 CONNECT (section 3.1)
// ---------------------------------------------------------------------------

#[test]
fn connect_v5_byte_exact() {
    let want: &[u8] = &[
        0x10, 53, // fixed header
        0, 4, b'M', b'Q', b'T', b'T', // protocol name
        5,    // level
        0xee, // flags: username, password, will retain, will QoS 1, will, clean start
        0, 10, // keep alive
        15, // property length
        0x11, 0, 0, 0, 120, // session expiry interval 120
        0x21, 0, 20, // receive maximum 20
        0x26, 0, 1, b'a', 0, 1, b'b', // user property a=b
        0, 3, b'c', b'i', b'd', // client id
        7,    // will property length
        0x01, 1, // payload format indicator 1
        0x18, 0, 0, 0, 5, // will delay interval 5
        0, 2, b'w', b't', // will topic
        0, 2, b'w', b'p', // will payload
        0, 1, b'u', // username
        0, 1, b'p', // password
    ];
    let c = Packet::Connect(Box::new(Connect {
        version: ProtocolVersion::V5,
        clean_session: true,
        keep_alive_s: 10,
        client_id: bs("cid"),
        will: Some(Will {
            topic: bs("wt"),
            payload: Bytes::from_static(b"wp"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: bx(Properties {
                payload_format_indicator: Some(1),
                will_delay_interval: Some(5),
                ..Properties::default()
            }),
        }),
        username: Some(bs("u")),
        password: Some(Bytes::from_static(b"p")),
        properties: bx(Properties {
            session_expiry_interval: Some(120),
            receive_maximum: Some(20),
            user_properties: vec![(bs("a"), bs("b"))],
            ..Properties::default()
        }),
    }));
    // CONNECT carries its level: every encoder and every decode version agree.
    assert_eq!(enc(&c), want);
    assert_eq!(enc5(&c), want);
    let mut buf = BytesMut::new();
    encode_v(ProtocolVersion::V311, &c, &mut buf);
    assert_eq!(&buf[..], want);
    assert_eq!(dec(want), Ok(c.clone()));
    assert_eq!(dec5(want), Ok(c.clone()));
    let mut buf = BytesMut::from(want);
    assert_eq!(
        decode(&mut buf, Some(ProtocolVersion::V311), NO_LIMIT),
        Ok(Some(c))
    );
}

#[test]
fn connect_v5_minimal() {
    let want: &[u8] = &[
        0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0, 0, 1, b'c',
    ];
    let c = decode_connect_ok(want);
    assert_eq!(
        c,
        Connect {
            version: ProtocolVersion::V5,
            clean_session: true,
            keep_alive_s: 60,
            client_id: bs("c"),
            will: None,
            username: None,
            password: None,
            properties: None,
        }
    );
    assert_eq!(enc(&Packet::Connect(Box::new(c))), want);
}

#[test]
fn connect_v5_levels() {
    // MQTT/5 is v5 now; MQIsdp/5, MQTT/3 and MQTT/6+ stay unsupported.
    assert_eq!(
        decode_connect_ok(&connect5(0x02, &[0], &[])).version,
        ProtocolVersion::V5
    );
    for (name, level) in [
        (&b"MQIsdp"[..], 5u8),
        (b"MQTT", 3),
        (b"MQTT", 6),
        (b"MQTT", 7),
        (b"MQTT", 0x85),
    ] {
        assert_eq!(
            dec(&frame(
                0x10,
                &connect_body(name, level, 0x02, 60, &[0, 0, 1, b'c'])
            )),
            Err(DecodeError::UnsupportedProtocolLevel(level))
        );
    }
}

#[test]
fn connect_v5_password_without_username() {
    let c = connect5_ok(&connect5(0x42, &[0], &field(b"pw")));
    assert_eq!(c.username, None);
    assert_eq!(c.password.as_deref(), Some(&b"pw"[..]));
    // and it encodes back
    let bytes = enc(&Packet::Connect(Box::new(c)));
    assert_eq!(bytes, connect5(0x42, &[0], &field(b"pw")));
    // 3.1.1 still refuses it.
    assert_malformed(&connect_frame(
        b"MQTT",
        4,
        0x42,
        &cat(&[&field(b"c"), &field(b"pw")]),
    ));
}

#[test]
fn connect_v5_flag_rules() {
    // Reserved bit.
    assert_malformed5(&connect5(0x03, &[0], &[]));
    // Will QoS 3.
    assert_malformed5(&connect5(
        0x1e,
        &[0],
        &cat(&[&[0], &field(b"wt"), &field(b"wp")]),
    ));
    // Will QoS / retain without the will flag.
    for flags in [0x0au8, 0x12, 0x22] {
        assert_malformed5(&connect5(flags, &[0], &[]));
    }
    // Username flag without username, password flag without password.
    assert_malformed5(&connect5(0x82, &[0], &[]));
    assert_malformed5(&connect5(0x42, &[0], &[]));
}

#[test]
fn connect_v5_will_properties() {
    let will_props = block(&cat(&[
        &[0x18, 0, 0, 0, 30],
        &[0x02, 0, 0, 1, 0],
        &[0x03],
        &field(b"json"),
        &[0x08],
        &field(b"r/t"),
        &[0x09],
        &field(b"\x07"),
        &[0x26],
        &field(b"k"),
        &field(b"v"),
    ]));
    let bytes = connect5(
        0x06,
        &[0],
        &cat(&[&will_props, &field(b"wt"), &field(b"wp")]),
    );
    let c = connect5_ok(&bytes);
    let w = c.will.unwrap();
    assert_eq!(w.topic, "wt");
    assert_eq!(&w.payload[..], b"wp");
    assert_eq!(
        w.properties.as_deref(),
        Some(&Properties {
            will_delay_interval: Some(30),
            message_expiry_interval: Some(256),
            content_type: Some(bs("json")),
            response_topic: Some(bs("r/t")),
            correlation_data: Some(Bytes::from_static(b"\x07")),
            user_properties: vec![(bs("k"), bs("v"))],
            ..Properties::default()
        })
    );
    assert_eq!(c.properties, None);
    // A CONNECT-only property in the will is a protocol error, and a will
    // property in CONNECT's block too.
    assert_protocol5(&connect5(
        0x06,
        &[0],
        &cat(&[&block(&[0x11, 0, 0, 0, 1]), &field(b"wt"), &field(b"wp")]),
    ));
    assert_protocol5(&connect5(0x02, &block(&[0x18, 0, 0, 0, 1]), &[]));
    // The will property block is required with the will flag.
    assert_malformed5(&connect5(0x06, &[0], &cat(&[&field(b"wt"), &field(b"wp")])));
}

#[test]
fn connect_v5_authentication_data_needs_a_method() {
    let data = cat(&[&[0x16], &field(b"d")]);
    assert_eq!(
        dec5(&connect5(0x02, &block(&data), &[])),
        Err(DecodeError::Protocol(
            "authentication data without authentication method"
        ))
    );
    let both = cat(&[&data, &[0x15], &field(b"m")]);
    let c = connect5_ok(&connect5(0x02, &block(&both), &[]));
    let p = c.properties.unwrap();
    assert_eq!(p.authentication_method.as_deref(), Some("m"));
    assert_eq!(p.authentication_data.as_deref(), Some(&b"d"[..]));
    // A method alone is fine (the data is optional).
    connect5_ok(&connect5(0x02, &block(&cat(&[&[0x15], &field(b"m")])), &[]));
}

#[test]
fn connect_v5_truncated_bodies_are_malformed() {
    let will_props = block(&[0x18, 0, 0, 0, 30]);
    let body = connect_body(
        b"MQTT",
        5,
        0xee,
        10,
        &cat(&[
            &block(&[0x11, 0, 0, 0, 9]),
            &field(b"cid"),
            &will_props,
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
    let mut long = body.clone();
    long.push(0);
    assert_malformed(&frame(0x10, &long));
}

#[test]
fn connect_v5_bad_strings() {
    for s in BAD_STRINGS {
        assert_malformed5(&frame(
            0x10,
            &connect_body(b"MQTT", 5, 0x02, 60, &cat(&[&[0], &field(s)])),
        ));
        assert_malformed5(&connect5(0x80, &[0], &field(s)));
        assert_malformed5(&connect5(
            0x04,
            &[0],
            &cat(&[&[0], &field(s), &field(b"wp")]),
        ));
    }
}

// ---------------------------------------------------------------------------
// v5 CONNACK (section 3.2)
// ---------------------------------------------------------------------------

#[test]
fn connack_v5_byte_exact() {
    let plain: &[u8] = &[0x20, 3, 0, 0, 0];
    let p = round_trip5(plain);
    assert_eq!(
        p,
        Packet::ConnAckV5(ConnAckV5 {
            session_present: false,
            reason: 0,
            properties: None,
        })
    );
    let full: &[u8] = &[
        0x20, 12, // fixed header
        1, 0, // session present, success
        9, // property length
        0x12, 0, 1, b'x', // assigned client identifier "x"
        0x22, 0, 10, // topic alias maximum 10
        0x24, 1, // maximum QoS 1
    ];
    assert_eq!(
        round_trip5(full),
        Packet::ConnAckV5(ConnAckV5 {
            session_present: true,
            reason: 0,
            properties: bx(Properties {
                assigned_client_identifier: Some(bs("x")),
                topic_alias_maximum: Some(10),
                maximum_qos: Some(1),
                ..Properties::default()
            }),
        })
    );
    let refused: &[u8] = &[0x20, 3, 0, 0x8c, 0];
    assert_eq!(
        round_trip5(refused),
        Packet::ConnAckV5(ConnAckV5 {
            session_present: false,
            reason: reason::BAD_AUTHENTICATION_METHOD,
            properties: None,
        })
    );
    // ConnAckV5 is v5 whichever encoder writes it.
    assert_eq!(enc(&round_trip5(full)), full);
}

#[test]
fn connack_v5_errors() {
    for flags in [0x02u8, 0x80, 0xfe] {
        assert_malformed5(&[0x20, 3, flags, 0, 0]);
    }
    // The property length is not optional in a v5 CONNACK.
    assert_malformed5(&[0x20, 2, 0, 0]);
    assert_malformed5(&[0x20, 1, 0]);
    assert_malformed5(&[0x20, 4, 0, 0, 0, 0]);
}

#[test]
fn connack_encode_v_maps_return_codes() {
    for code in 0..=5u8 {
        let c = ConnectReturnCode::from_u8(code).unwrap();
        for sp in [false, true] {
            let p = Packet::ConnAck(ConnAck {
                session_present: sp,
                code: c,
            });
            let bytes = enc5(&p);
            assert_eq!(bytes, [0x20, 3, sp as u8, c.v5_reason(), 0]);
            assert_eq!(
                dec5(&bytes),
                Ok(Packet::ConnAckV5(ConnAckV5 {
                    session_present: sp,
                    reason: c.v5_reason(),
                    properties: None,
                }))
            );
        }
    }
}

// ---------------------------------------------------------------------------
// v5 PUBLISH (section 3.3)
// ---------------------------------------------------------------------------

#[test]
fn publish_v5_byte_exact() {
    let want: &[u8] = &[
        0x32, 27, // PUBLISH QoS 1
        0, 3, b'a', b'/', b'b', // topic
        0, 10, // packet id
        17, // property length
        0x01, 1, // payload format indicator
        0x02, 0, 0, 0, 60, // message expiry interval 60
        0x23, 0, 1, // topic alias 1
        0x26, 0, 1, b'k', 0, 1, b'v', // user property
        b'h', b'i', // payload
    ];
    let props = Properties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(60),
        topic_alias: Some(1),
        user_properties: vec![(bs("k"), bs("v"))],
        ..Properties::default()
    };
    let p = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: bs("a/b"),
        packet_id: 10,
        payload: Bytes::from_static(b"hi"),
        properties: bx(props.clone()),
    });
    assert_eq!(round_trip5(want), p);
    let mut buf = BytesMut::new();
    encode_publish_v5(
        &mut buf,
        "a/b",
        b"hi",
        QoS::AtLeastOnce,
        10,
        false,
        false,
        Some(&props),
    );
    assert_eq!(&buf[..], want);
    let off = publish_packet_id_offset(3, 27);
    assert_eq!(&want[off..off + 2], &[0, 10]);
    // encode() writes the 3.1.1 form: no properties.
    assert_eq!(
        enc(&p),
        [0x32, 9, 0, 3, b'a', b'/', b'b', 0, 10, b'h', b'i']
    );
}

#[test]
fn publish_v5_without_properties() {
    let want: &[u8] = &[0x30, 8, 0, 3, b'a', b'/', b'b', 0, b'h', b'i'];
    let p = round_trip5(want);
    assert_eq!(
        p,
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: bs("a/b"),
            packet_id: 0,
            payload: Bytes::from_static(b"hi"),
            properties: None,
        })
    );
    let mut buf = BytesMut::new();
    encode_publish_v5(
        &mut buf,
        "a/b",
        b"hi",
        QoS::AtMostOnce,
        0,
        false,
        false,
        None,
    );
    assert_eq!(&buf[..], want);
    // Some(empty) is the same as None.
    let mut buf = BytesMut::new();
    let empty = Properties::default();
    encode_publish_v5(
        &mut buf,
        "a/b",
        b"hi",
        QoS::AtMostOnce,
        0,
        false,
        false,
        Some(&empty),
    );
    assert_eq!(&buf[..], want);
    // Flags: DUP, QoS 2, RETAIN.
    let mut buf = BytesMut::new();
    encode_publish_v5(&mut buf, "t", b"", QoS::ExactlyOnce, 7, true, true, None);
    assert_eq!(&buf[..], &[0x3d, 6, 0, 1, b't', 0, 7, 0]);
    assert!(matches!(
        dec5(&buf),
        Ok(Packet::Publish(Publish {
            dup: true,
            retain: true,
            qos: QoS::ExactlyOnce,
            packet_id: 7,
            ..
        }))
    ));
}

#[test]
fn publish_v5_empty_topic_needs_a_topic_alias() {
    let with_alias = frame(0x30, &cat(&[&field(b""), &block(&[0x23, 0, 5]), b"x"]));
    let p = round_trip5(&with_alias);
    let Packet::Publish(p) = p else { panic!() };
    assert_eq!(p.topic, "");
    assert_eq!(p.properties.unwrap().topic_alias, Some(5));
    // QoS 1 too.
    round_trip5(&frame(
        0x32,
        &cat(&[&field(b""), &[0, 1], &block(&[0x23, 0, 5]), b"x"]),
    ));
    // Without an alias: protocol error, with or without other properties.
    for props in [&[0u8][..], &block(&[0x01, 1]), &block(&[0x26, 0, 0, 0, 0])] {
        assert_eq!(
            dec5(&frame(0x30, &cat(&[&field(b""), props, b"x"]))),
            Err(DecodeError::Protocol(
                "empty topic name without a topic alias"
            ))
        );
    }
    // A topic and an alias together are fine.
    round_trip5(&frame(
        0x30,
        &cat(&[&field(b"t"), &block(&[0x23, 0, 5]), b"x"]),
    ));
    // In 3.1.1 an empty topic stays an error whatever follows.
    assert_protocol(&with_alias);
}

#[test]
fn publish_v311_never_reads_properties() {
    // The same bytes are properties in v5 and payload in 3.1.1.
    let bytes = frame(0x30, &cat(&[&field(b"t"), &block(&[0x23, 0, 5]), b"x"]));
    let p = decode_publish_ok(&bytes);
    assert_eq!(p.properties, None);
    assert_eq!(&p.payload[..], &[3, 0x23, 0, 5, b'x']);
    let Ok(Packet::Publish(p)) = dec5(&bytes) else {
        panic!()
    };
    assert_eq!(p.properties.unwrap().topic_alias, Some(5));
    assert_eq!(&p.payload[..], b"x");
}

#[test]
fn publish_v5_topic_and_flag_errors() {
    for t in [&b"+"[..], b"#", b"a/+", b"a/#"] {
        assert_protocol5(&frame(0x30, &cat(&[&field(t), &[0], b"x"])));
    }
    assert_malformed5(&frame(0x36, &cat(&[&field(b"a"), &[0, 1], &[0]])));
    assert_malformed5(&frame(0x38, &cat(&[&field(b"a"), &[0]])));
    assert_protocol5(&frame(0x32, &cat(&[&field(b"a"), &[0, 0], &[0]])));
    // The property length is required: a QoS 0 PUBLISH with nothing after
    // the topic is malformed in v5.
    assert_malformed5(&frame(0x30, &field(b"a")));
    assert_malformed5(&frame(0x32, &cat(&[&field(b"a"), &[0, 1]])));
    for s in BAD_STRINGS {
        assert_malformed5(&frame(0x30, &cat(&[&field(s), &[0]])));
    }
}

#[test]
fn publish_v5_payload_and_properties_are_zero_copy() {
    let payload: Vec<u8> = (0..=255u8).cycle().take(500).collect();
    let props = block(&cat(&[&[0x03], &field(b"application/octet-stream")]));
    let bytes = frame(0x32, &cat(&[&field(b"z/y"), &[0, 1], &props, &payload]));
    let mut buf = BytesMut::with_capacity(2048);
    buf.extend_from_slice(&bytes);
    let start = buf.as_ptr() as usize;
    let end = start + buf.capacity();
    let Ok(Some(Packet::Publish(p))) = decode(&mut buf, V5, NO_LIMIT) else {
        panic!()
    };
    assert_eq!(&p.payload[..], &payload[..]);
    let inside = |ptr: usize| ptr >= start && ptr < end;
    assert!(inside(p.payload.as_ptr() as usize));
    let ct = p.properties.unwrap().content_type.unwrap();
    assert_eq!(ct, "application/octet-stream");
    assert!(inside(ct.as_ptr() as usize));
}

#[test]
fn publish_v5_large_property_block() {
    // A block over 127 bytes has a 2-byte length; over 16,383 a 3-byte one.
    for n in [100usize, 200, 5000, 20_000] {
        let mut props = Vec::new();
        let mut want = Vec::new();
        for i in 0..n / 10 {
            let k = format!("k{i:03}");
            props.push(0x26);
            props.extend(field(k.as_bytes()));
            props.extend(field(b"v"));
            want.push((bs(&k), bs("v")));
        }
        let bytes = frame(0x30, &cat(&[&field(b"t"), &block(&props), b"pl"]));
        let Packet::Publish(p) = round_trip5(&bytes) else {
            panic!()
        };
        assert_eq!(p.properties.as_ref().unwrap().user_properties, want);
        assert_eq!(&p.payload[..], b"pl");
        let mut buf = BytesMut::new();
        encode_publish_v5(
            &mut buf,
            "t",
            b"pl",
            QoS::AtMostOnce,
            0,
            false,
            false,
            p.properties.as_deref(),
        );
        assert_eq!(&buf[..], &bytes[..]);
    }
}

// ---------------------------------------------------------------------------
// v5 PUBACK, PUBREC, PUBREL, PUBCOMP (sections 3.4 to 3.7)
// ---------------------------------------------------------------------------

#[test]
fn acks_v5_short_forms_decode_as_plain_variants() {
    for (byte0, kind) in [
        (0x40u8, AckKind::PubAck),
        (0x50, AckKind::PubRec),
        (0x62, AckKind::PubRel),
        (0x70, AckKind::PubComp),
    ] {
        let plain = ack_variant(byte0, 0x0102);
        // Packet id only; with reason 0; with reason 0 and an empty block.
        for bytes in [
            &[byte0, 2, 1, 2][..],
            &[byte0, 3, 1, 2, 0],
            &[byte0, 4, 1, 2, 0, 0],
        ] {
            assert_eq!(dec5(bytes), Ok(plain.clone()), "{bytes:02x?}");
        }
        // The plain variant encodes in the shortest form.
        assert_eq!(enc5(&plain), [byte0, 2, 1, 2]);
        // An AckV5 with reason 0 and no properties too.
        let a = Packet::AckV5(AckV5 {
            kind,
            packet_id: 0x0102,
            reason: 0,
            properties: None,
        });
        assert_eq!(enc5(&a), [byte0, 2, 1, 2]);
        assert_eq!(enc(&a), [byte0, 2, 1, 2]);
        // Packet id 0, short bodies, trailing bytes.
        assert_protocol5(&[byte0, 2, 0, 0]);
        assert_protocol5(&[byte0, 3, 0, 0, 0]);
        assert_malformed5(&[byte0, 1, 0]);
        assert_malformed5(&[byte0, 0]);
        assert_malformed5(&[byte0, 5, 1, 2, 0, 0, 0]);
        assert_malformed5(&[byte0, 4, 1, 2, 0, 5]);
    }
}

#[test]
fn acks_v5_byte_exact() {
    let cases: Vec<(&[u8], Packet)> = vec![
        (
            &[0x40, 3, 0, 1, 0x10],
            Packet::AckV5(AckV5 {
                kind: AckKind::PubAck,
                packet_id: 1,
                reason: reason::NO_MATCHING_SUBSCRIBERS,
                properties: None,
            }),
        ),
        (
            &[0x40, 8, 0, 1, 0x87, 4, 0x1f, 0, 1, b'n'],
            Packet::AckV5(AckV5 {
                kind: AckKind::PubAck,
                packet_id: 1,
                reason: reason::NOT_AUTHORIZED,
                properties: bx(Properties {
                    reason_string: Some(bs("n")),
                    ..Properties::default()
                }),
            }),
        ),
        (
            &[0x50, 3, 0, 2, 0x91],
            Packet::AckV5(AckV5 {
                kind: AckKind::PubRec,
                packet_id: 2,
                reason: reason::PACKET_IDENTIFIER_IN_USE,
                properties: None,
            }),
        ),
        (
            &[0x62, 3, 0, 3, 0x92],
            Packet::AckV5(AckV5 {
                kind: AckKind::PubRel,
                packet_id: 3,
                reason: reason::PACKET_IDENTIFIER_NOT_FOUND,
                properties: None,
            }),
        ),
        (
            &[0x70, 10, 0xab, 0xcd, 0, 6, 0x26, 0, 1, b'k', 0, 0],
            Packet::AckV5(AckV5 {
                kind: AckKind::PubComp,
                packet_id: 0xabcd,
                reason: 0,
                properties: bx(Properties {
                    user_properties: vec![(bs("k"), bs(""))],
                    ..Properties::default()
                }),
            }),
        ),
    ];
    for (bytes, p) in cases {
        assert_eq!(round_trip5(bytes), p, "{bytes:02x?}");
        // V5 variants are v5 whichever encoder writes them.
        assert_eq!(enc(&p), bytes);
    }
    // An empty block after a reason code: re-encoded without it.
    assert_eq!(
        dec5(&[0x70, 4, 0, 4, 0x92, 0]),
        Ok(Packet::AckV5(AckV5 {
            kind: AckKind::PubComp,
            packet_id: 4,
            reason: 0x92,
            properties: None,
        }))
    );
    // In 3.1.1 the reason code is a trailing byte.
    assert_malformed(&[0x40, 3, 0, 1, 0x10]);
}

// ---------------------------------------------------------------------------
// v5 reason codes per packet
// ---------------------------------------------------------------------------

/// A packet name, its valid reason codes, and a frame builder for a code.
type ReasonTable = (&'static str, Vec<u8>, fn(u8) -> Vec<u8>);

/// The reason codes of each packet's table in chapter 3, copied by hand.
fn reason_tables() -> Vec<ReasonTable> {
    fn connack(c: u8) -> Vec<u8> {
        vec![0x20, 3, 0, c, 0]
    }
    fn puback(c: u8) -> Vec<u8> {
        vec![0x40, 3, 0, 1, c]
    }
    fn pubrec(c: u8) -> Vec<u8> {
        vec![0x50, 3, 0, 1, c]
    }
    fn pubrel(c: u8) -> Vec<u8> {
        vec![0x62, 3, 0, 1, c]
    }
    fn pubcomp(c: u8) -> Vec<u8> {
        vec![0x70, 3, 0, 1, c]
    }
    fn suback(c: u8) -> Vec<u8> {
        vec![0x90, 4, 0, 1, 0, c]
    }
    fn unsuback(c: u8) -> Vec<u8> {
        vec![0xb0, 4, 0, 1, 0, c]
    }
    fn disconnect(c: u8) -> Vec<u8> {
        vec![0xe0, 1, c]
    }
    fn auth(c: u8) -> Vec<u8> {
        vec![0xf0, 1, c]
    }
    let puback_codes = vec![0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
    vec![
        (
            "CONNACK",
            vec![
                0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x90,
                0x95, 0x97, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9f,
            ],
            connack,
        ),
        ("PUBACK", puback_codes.clone(), puback),
        ("PUBREC", puback_codes, pubrec),
        ("PUBREL", vec![0x00, 0x92], pubrel),
        ("PUBCOMP", vec![0x00, 0x92], pubcomp),
        (
            "SUBACK",
            vec![
                0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2,
            ],
            suback,
        ),
        (
            "UNSUBACK",
            vec![0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91],
            unsuback,
        ),
        (
            "DISCONNECT",
            vec![
                0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d, 0x8e, 0x8f, 0x90, 0x93,
                0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1,
                0xa2,
            ],
            disconnect,
        ),
        ("AUTH", vec![0x00, 0x18, 0x19], auth),
    ]
}

/// The reason code a decoded packet carries (0 for the plain variants).
fn reason_of(p: &Packet) -> u8 {
    match p {
        Packet::ConnAckV5(c) => c.reason,
        Packet::AckV5(a) => a.reason,
        Packet::SubAckV5(s) => s.reasons[0],
        Packet::UnsubAckV5(u) => u.reasons[0],
        Packet::DisconnectV5(d) => d.reason,
        Packet::Auth(a) => a.reason,
        Packet::PubAck(_)
        | Packet::PubRec(_)
        | Packet::PubRel(_)
        | Packet::PubComp(_)
        | Packet::Disconnect => 0,
        other => panic!("no reason code in {other:?}"),
    }
}

#[test]
fn every_reason_code_per_packet() {
    for (name, valid, build) in reason_tables() {
        for code in 0..=255u8 {
            let bytes = build(code);
            let r = dec5(&bytes);
            if valid.contains(&code) {
                let p = r.unwrap_or_else(|e| panic!("{name} {code:#04x}: {e}"));
                assert_eq!(p.name(), name);
                assert_eq!(reason_of(&p), code, "{name} {code:#04x}");
                // Re-encodes to a form that decodes the same.
                assert_eq!(dec5(&enc5(&p)), Ok(p), "{name} {code:#04x}");
            } else {
                assert_eq!(
                    r,
                    Err(DecodeError::Protocol(
                        "reason code not valid for this packet"
                    )),
                    "{name} {code:#04x}"
                );
            }
        }
    }
    // The public lists are the same tables.
    let lists: [&[u8]; 9] = [
        reason::CONNACK_CODES,
        reason::PUBACK_CODES,
        reason::PUBACK_CODES,
        reason::PUBREL_CODES,
        reason::PUBREL_CODES,
        reason::SUBACK_CODES,
        reason::UNSUBACK_CODES,
        reason::DISCONNECT_CODES,
        reason::AUTH_CODES,
    ];
    for ((name, valid, _), list) in reason_tables().into_iter().zip(lists) {
        assert_eq!(list, &valid[..], "{name}");
    }
    assert_eq!(AckKind::PubAck.reason_codes(), reason::PUBACK_CODES);
    assert_eq!(AckKind::PubRec.reason_codes(), reason::PUBACK_CODES);
    assert_eq!(AckKind::PubRel.reason_codes(), reason::PUBREL_CODES);
    assert_eq!(AckKind::PubComp.reason_codes(), reason::PUBREL_CODES);
}

#[test]
fn a_bad_reason_code_among_good_ones() {
    assert_protocol5(&[0x90, 6, 0, 1, 0, 0, 1, 0x10]);
    assert_protocol5(&[0xb0, 6, 0, 1, 0, 0, 0x11, 0x01]);
}

// ---------------------------------------------------------------------------
// v5 SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK (sections 3.8 to 3.11)
// ---------------------------------------------------------------------------

fn filter(f: &str, qos: QoS, no_local: bool, rap: bool, rh: u8) -> SubscribeFilter {
    SubscribeFilter {
        filter: bs(f),
        qos,
        no_local,
        retain_as_published: rap,
        retain_handling: rh,
    }
}

#[test]
fn subscribe_v5_byte_exact() {
    let want: &[u8] = &[
        0x82, 15, // fixed header
        0, 10, // packet id
        2, 0x0b, 10, // property length, subscription identifier 10
        0, 3, b'a', b'/', b'b', 0x2d, // QoS 1, no local, retain as published, handling 2
        0, 1, b'c', 0x12, // QoS 2, handling 1
    ];
    let s = Packet::Subscribe(Subscribe {
        packet_id: 10,
        filters: vec![
            filter("a/b", QoS::AtLeastOnce, true, true, 2),
            filter("c", QoS::ExactlyOnce, false, false, 1),
        ],
        properties: bx(Properties {
            subscription_identifiers: vec![10],
            ..Properties::default()
        }),
    });
    assert_eq!(round_trip5(want), s);
    // encode() writes the 3.1.1 form: QoS only, no properties.
    assert_eq!(
        enc(&s),
        [0x82, 12, 0, 10, 0, 3, b'a', b'/', b'b', 1, 0, 1, b'c', 2]
    );
}

#[test]
fn subscribe_v5_options() {
    for options in 0..=255u8 {
        let bytes = frame(0x82, &cat(&[&[0, 1, 0], &field(b"f"), &[options]]));
        let r = dec5(&bytes);
        if options & 0xc0 != 0 {
            assert_eq!(
                r,
                Err(DecodeError::Malformed("SUBSCRIBE reserved option bits")),
                "{options:#04x}"
            );
        } else if options & 0x03 == 3 {
            assert_eq!(
                r,
                Err(DecodeError::Protocol("SUBSCRIBE QoS 3")),
                "{options:#04x}"
            );
        } else if (options >> 4) & 0x03 == 3 {
            assert_eq!(
                r,
                Err(DecodeError::Protocol("SUBSCRIBE retain handling 3")),
                "{options:#04x}"
            );
        } else {
            let want = filter(
                "f",
                QoS::from_bits(options & 3).unwrap(),
                options & 0x04 != 0,
                options & 0x08 != 0,
                (options >> 4) & 3,
            );
            let Ok(Packet::Subscribe(s)) = r else {
                panic!("{options:#04x}: {r:?}")
            };
            assert_eq!(s.filters, [want], "{options:#04x}");
            assert_eq!(enc5(&Packet::Subscribe(s)), bytes, "{options:#04x}");
        }
    }
    // On the second filter too.
    assert_malformed5(&frame(
        0x82,
        &cat(&[&[0, 1, 0], &field(b"a"), &[0], &field(b"b"), &[0x40]]),
    ));
    assert_protocol5(&frame(
        0x82,
        &cat(&[&[0, 1, 0], &field(b"a"), &[0], &field(b"b"), &[0x30]]),
    ));
    // 3.1.1 still takes only the QoS bits.
    assert_malformed(&frame(0x82, &cat(&[&[0, 1], &field(b"a"), &[0x04]])));
}

#[test]
fn subscribe_v5_errors() {
    // No filter.
    assert_protocol5(&frame(0x82, &[0, 1, 0]));
    // Packet id 0.
    assert_protocol5(&frame(0x82, &cat(&[&[0, 0, 0], &field(b"a"), &[0]])));
    // No property length, or no options byte.
    assert_malformed5(&frame(0x82, &[0, 1]));
    assert_malformed5(&frame(0x82, &cat(&[&[0, 1, 0], &field(b"a")])));
    // Filters are not validated by the codec.
    for f in [&b"a/#/b"[..], b"", b"$share/g/+"] {
        assert!(matches!(
            dec5(&frame(0x82, &cat(&[&[0, 1, 0], &field(f), &[0x04]]))),
            Ok(Packet::Subscribe(_))
        ));
    }
    for s in BAD_STRINGS {
        assert_malformed5(&frame(0x82, &cat(&[&[0, 1, 0], &field(s), &[0]])));
    }
}

#[test]
fn suback_v5_byte_exact() {
    let want: &[u8] = &[0x90, 7, 0, 10, 0, 0x00, 0x01, 0x02, 0xa2];
    assert_eq!(
        round_trip5(want),
        Packet::SubAckV5(SubAckV5 {
            packet_id: 10,
            reasons: vec![0, 1, 2, 0xa2],
            properties: None,
        })
    );
    let with_reason: &[u8] = &[0x90, 8, 0, 10, 4, 0x1f, 0, 1, b'x', 0x8f];
    assert_eq!(
        round_trip5(with_reason),
        Packet::SubAckV5(SubAckV5 {
            packet_id: 10,
            reasons: vec![0x8f],
            properties: bx(Properties {
                reason_string: Some(bs("x")),
                ..Properties::default()
            }),
        })
    );
    // encode_v writes a 3.1.1 SubAck in v5 form; failure is 0x80.
    let s = Packet::SubAck(SubAck {
        packet_id: 10,
        codes: vec![
            SubAckCode::Granted(QoS::AtMostOnce),
            SubAckCode::Granted(QoS::ExactlyOnce),
            SubAckCode::Failure,
        ],
    });
    assert_eq!(enc5(&s), [0x90, 6, 0, 10, 0, 0, 2, 0x80]);
    // A v5 SUBACK is always SubAckV5; no property length is malformed.
    assert_malformed5(&[0x90, 2, 0, 1]);
    assert_protocol5(&[0x90, 4, 0, 0, 0, 0]);
}

#[test]
fn unsubscribe_v5_byte_exact() {
    let want: &[u8] = &[
        0xa2, 18, // fixed header
        0, 11, // packet id
        7, 0x26, 0, 1, b'k', 0, 1, b'v', // user property
        0, 3, b'a', b'/', b'b', // filter
        0, 1, b'c', // filter
    ];
    let u = Packet::Unsubscribe(Unsubscribe {
        packet_id: 11,
        filters: vec![bs("a/b"), bs("c")],
        properties: bx(Properties {
            user_properties: vec![(bs("k"), bs("v"))],
            ..Properties::default()
        }),
    });
    assert_eq!(round_trip5(want), u);
    assert_eq!(
        enc(&u),
        [0xa2, 10, 0, 11, 0, 3, b'a', b'/', b'b', 0, 1, b'c']
    );
    let plain: &[u8] = &[0xa2, 6, 0, 11, 0, 0, 1, b'c'];
    assert_eq!(
        round_trip5(plain),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 11,
            filters: vec![bs("c")],
            properties: None,
        })
    );
    assert_protocol5(&[0xa2, 3, 0, 11, 0]);
    assert_protocol5(&[0xa2, 6, 0, 0, 0, 0, 1, b'c']);
    assert_malformed5(&[0xa2, 2, 0, 11]);
}

#[test]
fn unsuback_v5_byte_exact() {
    let want: &[u8] = &[0xb0, 5, 0, 11, 0, 0x00, 0x11];
    assert_eq!(
        round_trip5(want),
        Packet::UnsubAckV5(UnsubAckV5 {
            packet_id: 11,
            reasons: vec![0, 0x11],
            properties: None,
        })
    );
    // A plain UnsubAck written as v5 has no reason codes, and decodes as an
    // UnsubAckV5 with none.
    let bytes = enc5(&Packet::UnsubAck(11));
    assert_eq!(bytes, [0xb0, 3, 0, 11, 0]);
    assert_eq!(
        dec5(&bytes),
        Ok(Packet::UnsubAckV5(UnsubAckV5 {
            packet_id: 11,
            reasons: vec![],
            properties: None,
        }))
    );
    // A v5 UNSUBACK is always UnsubAckV5: the 3.1.1 form lacks the block.
    assert_malformed5(&[0xb0, 2, 0, 11]);
}

// ---------------------------------------------------------------------------
// v5 DISCONNECT and AUTH (sections 3.14 and 3.15)
// ---------------------------------------------------------------------------

#[test]
fn disconnect_v5_byte_exact() {
    // Normal disconnection without properties is the plain variant, in any
    // of its three forms.
    for bytes in [&[0xe0u8, 0][..], &[0xe0, 1, 0], &[0xe0, 2, 0, 0]] {
        assert_eq!(dec5(bytes), Ok(Packet::Disconnect), "{bytes:02x?}");
    }
    assert_eq!(enc5(&Packet::Disconnect), [0xe0, 0]);
    let cases: Vec<(&[u8], Packet)> = vec![
        (
            &[0xe0, 1, 0x04],
            Packet::DisconnectV5(DisconnectV5 {
                reason: reason::DISCONNECT_WITH_WILL,
                properties: None,
            }),
        ),
        (
            &[0xe0, 7, 0x00, 5, 0x11, 0, 0, 0, 0],
            Packet::DisconnectV5(DisconnectV5 {
                reason: 0,
                properties: bx(Properties {
                    session_expiry_interval: Some(0),
                    ..Properties::default()
                }),
            }),
        ),
        (
            &[0xe0, 8, 0x9d, 6, 0x1c, 0, 3, b'h', b':', b'1'],
            Packet::DisconnectV5(DisconnectV5 {
                reason: reason::SERVER_MOVED,
                properties: bx(Properties {
                    server_reference: Some(bs("h:1")),
                    ..Properties::default()
                }),
            }),
        ),
    ];
    for (bytes, p) in cases {
        assert_eq!(round_trip5(bytes), p);
        assert_eq!(enc(&p), bytes);
    }
    let d = Packet::DisconnectV5(DisconnectV5 {
        reason: 0,
        properties: bx(Properties::default()),
    });
    assert_eq!(enc5(&d), [0xe0, 0]);
    // Trailing bytes after the block; block longer than the body.
    assert_malformed5(&[0xe0, 3, 0, 0, 0]);
    assert_malformed5(&[0xe0, 2, 0, 5]);
    // 3.1.1 DISCONNECT has no body.
    assert_malformed(&[0xe0, 1, 0]);
}

#[test]
fn auth_v5_byte_exact() {
    let cases: Vec<(&[u8], Packet)> = vec![
        (
            &[0xf0, 0],
            Packet::Auth(Auth {
                reason: 0,
                properties: None,
            }),
        ),
        (
            &[0xf0, 1, 0x19],
            Packet::Auth(Auth {
                reason: reason::REAUTHENTICATE,
                properties: None,
            }),
        ),
        (
            &[
                0xf0, 11,   // fixed header
                0x18, // continue authentication
                9,    // property length
                0x15, 0, 1, b'M', // authentication method
                0x16, 0, 2, 1, 2, // authentication data
            ],
            Packet::Auth(Auth {
                reason: reason::CONTINUE_AUTHENTICATION,
                properties: bx(Properties {
                    authentication_method: Some(bs("M")),
                    authentication_data: Some(Bytes::from_static(&[1, 2])),
                    ..Properties::default()
                }),
            }),
        ),
    ];
    for (bytes, p) in cases {
        assert_eq!(round_trip5(bytes), p);
        assert_eq!(enc(&p), bytes);
    }
    // Success in its long forms decodes as the same packet.
    assert_eq!(dec5(&[0xf0, 1, 0]), dec5(&[0xf0, 0]));
    assert_eq!(dec5(&[0xf0, 2, 0, 0]), dec5(&[0xf0, 0]));
    assert_malformed5(&[0xf0, 3, 0x18, 0, 0]);
}

#[test]
fn auth_only_in_v5() {
    let bytes = [0xf0, 1, 0x18];
    for version in [
        None,
        Some(ProtocolVersion::V31),
        Some(ProtocolVersion::V311),
    ] {
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(
            decode(&mut buf, version, NO_LIMIT),
            Err(DecodeError::Malformed("packet type 15 (AUTH) needs MQTT 5")),
            "{version:?}"
        );
    }
    assert!(matches!(dec5(&bytes), Ok(Packet::Auth(_))));
    for flags in 1..16u8 {
        assert_eq!(
            dec5(&[0xf0 | flags, 1, 0x18]),
            Err(DecodeError::Malformed("reserved fixed-header flags"))
        );
    }
}

// ---------------------------------------------------------------------------
// v5 framing
// ---------------------------------------------------------------------------

/// A minimal valid v5 body for each packet type other than PUBLISH.
fn valid_body_v5(packet_type: u8) -> Vec<u8> {
    match packet_type {
        1 => connect_body(b"MQTT", 5, 0x02, 60, &cat(&[&[0], &field(b"c")])),
        2 => vec![0, 0, 0],
        4..=7 => vec![0, 1],
        8 => cat(&[&[0, 1, 0], &field(b"a"), &[0]]),
        9 | 11 => vec![0, 1, 0, 0],
        10 => cat(&[&[0, 1, 0], &field(b"a")]),
        12..=15 => vec![],
        _ => unreachable!(),
    }
}

#[test]
fn v5_reserved_flags_for_every_packet_type() {
    for packet_type in 1u8..=15 {
        if packet_type == 3 {
            continue;
        }
        let want = if matches!(packet_type, 6 | 8 | 10) {
            0b0010
        } else {
            0
        };
        let body = valid_body_v5(packet_type);
        for flags in 0u8..16 {
            let r = dec5(&frame(packet_type << 4 | flags, &body));
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
    for flags in 0u8..16 {
        assert_malformed5(&frame(flags, &[]));
    }
}

#[test]
fn v5_every_type_decodes_to_the_right_variant() {
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
        (15, "AUTH"),
    ];
    for (t, name) in want {
        let flags = if matches!(t, 6 | 8 | 10) { 2 } else { 0 };
        let p = dec5(&frame(t << 4 | flags, &valid_body_v5(t))).unwrap();
        assert_eq!(p.name(), name);
    }
    assert!(matches!(
        dec5(&[0x20, 3, 0, 0, 0]),
        Ok(Packet::ConnAckV5(_))
    ));
    assert!(matches!(
        dec5(&[0x90, 4, 0, 1, 0, 0]),
        Ok(Packet::SubAckV5(_))
    ));
    assert!(matches!(
        dec5(&[0xb0, 4, 0, 1, 0, 0]),
        Ok(Packet::UnsubAckV5(_))
    ));
    assert_eq!(dec5(&[0xc0, 0]), Ok(Packet::PingReq));
    assert_eq!(dec5(&[0xd0, 0]), Ok(Packet::PingResp));
    assert_eq!(enc5(&Packet::PingReq), [0xc0, 0]);
    assert_eq!(enc5(&Packet::PingResp), [0xd0, 0]);
    assert_malformed5(&[0xc0, 1, 0]);
}

#[test]
fn v5_too_large_and_incomplete() {
    let f = frame(
        0x30,
        &cat(&[&field(b"t"), &block(&[0x23, 0, 1]), &[7u8; 100]]),
    );
    let n = f.len();
    let mut buf = BytesMut::from(&f[..]);
    assert_eq!(
        decode(&mut buf, V5, n - 1),
        Err(DecodeError::TooLarge {
            size: n,
            max: n - 1
        })
    );
    for cut in 0..n {
        let mut buf = BytesMut::from(&f[..cut]);
        assert_eq!(decode(&mut buf, V5, NO_LIMIT), Ok(None));
        assert_eq!(buf.len(), cut);
    }
    let mut buf = BytesMut::from(&f[..]);
    assert!(matches!(
        decode(&mut buf, V5, n),
        Ok(Some(Packet::Publish(_)))
    ));
}

#[test]
fn encode_ignores_v5_fields_for_shared_variants() {
    // encode() and encode_v(3.1.1) write 3.1.1 whatever the v5 fields hold.
    let props = bx(Properties {
        topic_alias: Some(3),
        ..Properties::default()
    });
    let p = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: bs("t"),
        packet_id: 0,
        payload: Bytes::from_static(b"x"),
        properties: props.clone(),
    });
    assert_eq!(enc(&p), [0x30, 4, 0, 1, b't', b'x']);
    for v in [ProtocolVersion::V31, ProtocolVersion::V311] {
        let mut buf = BytesMut::new();
        encode_v(v, &p, &mut buf);
        assert_eq!(&buf[..], &[0x30, 4, 0, 1, b't', b'x']);
    }
    let s = Packet::Subscribe(Subscribe {
        packet_id: 1,
        filters: vec![filter("a", QoS::AtLeastOnce, true, true, 2)],
        properties: props.clone(),
    });
    assert_eq!(enc(&s), [0x82, 6, 0, 1, 0, 1, b'a', 1]);
    let u = Packet::Unsubscribe(Unsubscribe {
        packet_id: 1,
        filters: vec![bs("a")],
        properties: props.clone(),
    });
    assert_eq!(enc(&u), [0xa2, 5, 0, 1, 0, 1, b'a']);
    // A 3.1.1 CONNECT ignores its (v5) properties.
    let c = Packet::Connect(Box::new(Connect {
        version: ProtocolVersion::V311,
        clean_session: true,
        keep_alive_s: 60,
        client_id: bs("c"),
        will: None,
        username: None,
        password: None,
        properties: bx(Properties {
            session_expiry_interval: Some(1),
            ..Properties::default()
        }),
    }));
    assert_eq!(
        enc(&c),
        [
            0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'c'
        ]
    );
}

#[test]
fn v5_back_to_back_packets() {
    let mut stream = Vec::new();
    stream.extend(frame(
        0x32,
        &cat(&[&field(b"a"), &[0, 7], &block(&[0x23, 0, 1]), b"hello"]),
    ));
    stream.extend([0x40, 3, 0, 7, 0x10]);
    stream.extend([0xe0, 1, 0x04]);
    stream.extend([0xf0, 0]);
    let mut buf = BytesMut::from(&stream[..]);
    let Ok(Some(Packet::Publish(p))) = decode(&mut buf, V5, NO_LIMIT) else {
        panic!()
    };
    assert_eq!(&p.payload[..], b"hello");
    assert!(matches!(
        decode(&mut buf, V5, NO_LIMIT),
        Ok(Some(Packet::AckV5(AckV5 { reason: 0x10, .. })))
    ));
    assert!(matches!(
        decode(&mut buf, V5, NO_LIMIT),
        Ok(Some(Packet::DisconnectV5(_)))
    ));
    assert!(matches!(
        decode(&mut buf, V5, NO_LIMIT),
        Ok(Some(Packet::Auth(_)))
    ));
    assert_eq!(decode(&mut buf, V5, NO_LIMIT), Ok(None));
}

// ---------------------------------------------------------------------------
// v5 property tests
// ---------------------------------------------------------------------------

/// Independent copy of table 2-4, by field: where each field may be set.
fn allowed_fields(w: Where) -> impl Fn(u8) -> bool {
    move |id| {
        samples()
            .iter()
            .find(|s| s.id == id)
            .is_some_and(|s| s.allowed.contains(&w))
    }
}

/// Arbitrary properties with every field possibly set, each with a value
/// valid for its type.
fn arb_any_properties() -> impl Strategy<Value = Properties> {
    fn o<T: std::fmt::Debug + Clone + 'static>(
        s: impl Strategy<Value = T> + 'static,
    ) -> BoxedStrategy<Option<T>> {
        prop::option::weighted(0.25, s).boxed()
    }
    let flag = || 0u8..=1;
    let a = (
        o(flag()),
        o(any::<u32>()),
        o(arb_string()),
        o(arb_string()),
        o(arb_bytes(8)),
        prop::collection::vec(1u32..=268_435_455, 0..3),
        o(any::<u32>()),
        o(arb_string()),
        o(any::<u16>()),
        o(arb_string()),
        o(arb_bytes(8)),
        o(flag()),
    );
    let b = (
        o(any::<u32>()),
        o(flag()),
        o(arb_string()),
        o(arb_string()),
        o(arb_string()),
        o(1u16..=u16::MAX),
        o(any::<u16>()),
        o(any::<u16>()),
        o(flag()),
        o(flag()),
        prop::collection::vec((arb_string(), arb_string()), 0..3),
        o(1u32..=u32::MAX),
    );
    let c = (o(flag()), o(flag()), o(flag()));
    (a, b, c).prop_map(|(a, b, c)| Properties {
        payload_format_indicator: a.0,
        message_expiry_interval: a.1,
        content_type: a.2,
        response_topic: a.3,
        correlation_data: a.4,
        subscription_identifiers: a.5,
        session_expiry_interval: a.6,
        assigned_client_identifier: a.7,
        server_keep_alive: a.8,
        authentication_method: a.9,
        authentication_data: a.10,
        request_problem_information: a.11,
        will_delay_interval: b.0,
        request_response_information: b.1,
        response_information: b.2,
        server_reference: b.3,
        reason_string: b.4,
        receive_maximum: b.5,
        topic_alias_maximum: b.6,
        topic_alias: b.7,
        maximum_qos: b.8,
        retain_available: b.9,
        user_properties: b.10,
        maximum_packet_size: b.11,
        wildcard_subscription_available: c.0,
        subscription_identifier_available: c.1,
        shared_subscription_available: c.2,
    })
}

/// Keeps only what may appear in `w` (and one subscription identifier in
/// SUBSCRIBE, authentication data only with a method in CONNECT); `None`
/// when nothing is left.
fn restrict(mut p: Properties, w: Where) -> Option<Box<Properties>> {
    let ok = allowed_fields(w);
    macro_rules! keep {
        ($($id:literal => $f:ident),* $(,)?) => {$(
            if !ok($id) {
                p.$f = Default::default();
            }
        )*};
    }
    keep!(
        0x01 => payload_format_indicator,
        0x02 => message_expiry_interval,
        0x03 => content_type,
        0x08 => response_topic,
        0x09 => correlation_data,
        0x0b => subscription_identifiers,
        0x11 => session_expiry_interval,
        0x12 => assigned_client_identifier,
        0x13 => server_keep_alive,
        0x15 => authentication_method,
        0x16 => authentication_data,
        0x17 => request_problem_information,
        0x18 => will_delay_interval,
        0x19 => request_response_information,
        0x1a => response_information,
        0x1c => server_reference,
        0x1f => reason_string,
        0x21 => receive_maximum,
        0x22 => topic_alias_maximum,
        0x23 => topic_alias,
        0x24 => maximum_qos,
        0x25 => retain_available,
        0x26 => user_properties,
        0x27 => maximum_packet_size,
        0x28 => wildcard_subscription_available,
        0x29 => subscription_identifier_available,
        0x2a => shared_subscription_available,
    );
    if w == Where::Subscribe {
        p.subscription_identifiers.truncate(1);
    }
    if w == Where::Connect && p.authentication_method.is_none() {
        p.authentication_data = None;
    }
    if p.is_empty() {
        None
    } else {
        Some(Box::new(p))
    }
}

fn arb_props(w: Where) -> impl Strategy<Value = Option<Box<Properties>>> {
    prop_oneof![
        1 => Just(None),
        3 => arb_any_properties().prop_map(move |p| restrict(p, w)),
    ]
}

fn arb_connect_v5() -> impl Strategy<Value = Connect> {
    let will = prop::option::of(
        (
            arb_topic(),
            arb_bytes(16),
            arb_qos(),
            any::<bool>(),
            arb_props(Where::Will),
        )
            .prop_map(|(topic, payload, qos, retain, properties)| Will {
                topic,
                payload,
                qos,
                retain,
                properties,
            }),
    );
    (
        any::<bool>(),
        any::<u16>(),
        arb_string(),
        will,
        prop::option::of(arb_string()),
        prop::option::of(arb_bytes(16)),
        arb_props(Where::Connect),
    )
        .prop_map(
            |(clean_session, keep_alive_s, client_id, will, username, password, properties)| {
                Connect {
                    version: ProtocolVersion::V5,
                    clean_session,
                    keep_alive_s,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                }
            },
        )
}

fn arb_publish_v5() -> impl Strategy<Value = Publish> {
    (
        arb_publish(),
        arb_props(Where::Publish),
        any::<bool>(),
        any::<u16>(),
    )
        .prop_map(|(mut p, mut properties, aliased, alias)| {
            if aliased {
                // An empty topic with an alias.
                properties.get_or_insert_with(Default::default).topic_alias = Some(alias);
                p.topic = ByteString::new();
            }
            p.properties = properties;
            p
        })
}

/// `(reason, properties)` with reason 0 and no properties folded into the
/// plain variant by `plain`.
fn ack_v5(
    kind: AckKind,
    packet_id: u16,
    reason: u8,
    properties: Option<Box<Properties>>,
) -> Packet {
    if reason == 0 && properties.is_none() {
        return match kind {
            AckKind::PubAck => Packet::PubAck(packet_id),
            AckKind::PubRec => Packet::PubRec(packet_id),
            AckKind::PubRel => Packet::PubRel(packet_id),
            AckKind::PubComp => Packet::PubComp(packet_id),
        };
    }
    Packet::AckV5(AckV5 {
        kind,
        packet_id,
        reason,
        properties,
    })
}

fn arb_ack_v5() -> impl Strategy<Value = Packet> {
    prop_oneof![
        Just((AckKind::PubAck, Where::PubAck)),
        Just((AckKind::PubRec, Where::PubRec)),
        Just((AckKind::PubRel, Where::PubRel)),
        Just((AckKind::PubComp, Where::PubComp)),
    ]
    .prop_flat_map(|(kind, w)| {
        (
            Just(kind),
            arb_packet_id(),
            prop::sample::select(kind.reason_codes()),
            arb_props(w),
        )
    })
    .prop_map(|(kind, id, reason, props)| ack_v5(kind, id, reason, props))
}

fn arb_packet_v5() -> impl Strategy<Value = Packet> {
    prop_oneof![
        arb_connect_v5().prop_map(|c| Packet::Connect(Box::new(c))),
        (
            any::<bool>(),
            prop::sample::select(reason::CONNACK_CODES),
            arb_props(Where::ConnAck)
        )
            .prop_map(|(session_present, reason, properties)| Packet::ConnAckV5(
                ConnAckV5 {
                    session_present,
                    reason,
                    properties
                }
            )),
        arb_publish_v5().prop_map(Packet::Publish),
        arb_ack_v5(),
        (
            arb_packet_id(),
            prop::collection::vec(
                (
                    arb_string(),
                    arb_qos(),
                    any::<bool>(),
                    any::<bool>(),
                    0u8..=2
                )
                    .prop_map(|(f, q, nl, rap, rh)| SubscribeFilter {
                        filter: f,
                        qos: q,
                        no_local: nl,
                        retain_as_published: rap,
                        retain_handling: rh,
                    }),
                1..5
            ),
            arb_props(Where::Subscribe)
        )
            .prop_map(
                |(packet_id, filters, properties)| Packet::Subscribe(Subscribe {
                    packet_id,
                    filters,
                    properties
                })
            ),
        (
            arb_packet_id(),
            prop::collection::vec(prop::sample::select(reason::SUBACK_CODES), 0..5),
            arb_props(Where::SubAck)
        )
            .prop_map(
                |(packet_id, reasons, properties)| Packet::SubAckV5(SubAckV5 {
                    packet_id,
                    reasons,
                    properties
                })
            ),
        (
            arb_packet_id(),
            prop::collection::vec(arb_string(), 1..5),
            arb_props(Where::Unsubscribe)
        )
            .prop_map(|(packet_id, filters, properties)| Packet::Unsubscribe(
                Unsubscribe {
                    packet_id,
                    filters,
                    properties
                }
            )),
        (
            arb_packet_id(),
            prop::collection::vec(prop::sample::select(reason::UNSUBACK_CODES), 0..5),
            arb_props(Where::UnsubAck)
        )
            .prop_map(
                |(packet_id, reasons, properties)| Packet::UnsubAckV5(UnsubAckV5 {
                    packet_id,
                    reasons,
                    properties
                })
            ),
        (
            prop::sample::select(reason::DISCONNECT_CODES),
            arb_props(Where::Disconnect)
        )
            .prop_map(
                |(reason, properties)| if reason == 0 && properties.is_none() {
                    Packet::Disconnect
                } else {
                    Packet::DisconnectV5(DisconnectV5 { reason, properties })
                }
            ),
        (
            prop::sample::select(reason::AUTH_CODES),
            arb_props(Where::Auth)
        )
            .prop_map(|(reason, properties)| Packet::Auth(Auth { reason, properties })),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn prop_round_trip_v5(p in arb_packet_v5()) {
        let mut buf = BytesMut::new();
        encode_v(ProtocolVersion::V5, &p, &mut buf);
        let len = buf.len();
        prop_assert_eq!(frame_len(&buf, NO_LIMIT), Ok(Some(len)));
        prop_assert_eq!(decode(&mut buf, V5, len), Ok(Some(p)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn prop_v5_only_variants_encode_the_same_either_way(p in arb_packet_v5()) {
        // V5-only variants (and CONNECT) need no version to be written.
        if matches!(
            p,
            Packet::Connect(_)
                | Packet::ConnAckV5(_)
                | Packet::AckV5(_)
                | Packet::SubAckV5(_)
                | Packet::UnsubAckV5(_)
                | Packet::DisconnectV5(_)
                | Packet::Auth(_)
        ) {
            prop_assert_eq!(enc(&p), enc5(&p));
        }
    }

    #[test]
    fn prop_round_trip_publish_v5_matches_encode_publish_v5(p in arb_publish_v5()) {
        let mut a = BytesMut::new();
        encode_v(ProtocolVersion::V5, &Packet::Publish(p.clone()), &mut a);
        let mut b = BytesMut::new();
        encode_publish_v5(
            &mut b, &p.topic, &p.payload, p.qos, p.packet_id, p.retain, p.dup,
            p.properties.as_deref(),
        );
        prop_assert_eq!(&a, &b);
        let plen = p.properties.as_deref().map_or(0, properties_len);
        let id_len = if p.qos == QoS::AtMostOnce { 0 } else { 2 };
        let remaining = 2 + p.topic.len() + id_len + vbi(plen).len() + plen + p.payload.len();
        prop_assert_eq!(1 + remaining_length_len(remaining) + remaining, a.len());
        if p.qos != QoS::AtMostOnce {
            let off = publish_packet_id_offset(p.topic.len(), remaining);
            prop_assert_eq!(&a[off..off + 2], &p.packet_id.to_be_bytes()[..]);
        }
    }

    #[test]
    fn prop_properties_len_matches_encoding(p in arb_any_properties()) {
        // Through a CONNACK, which writes any properties it is given.
        let len = properties_len(&p);
        let c = Packet::ConnAckV5(ConnAckV5 { session_present: false, reason: 0, properties: bx(p) });
        let bytes = enc5(&c);
        let remaining = 2 + vbi(len).len() + len;
        prop_assert_eq!(bytes.len(), 1 + rl(remaining).len() + remaining);
    }

    #[test]
    fn prop_properties_round_trip_in_every_place(p in arb_any_properties(), i in 0usize..14) {
        let w = EVERYWHERE[i];
        let props = restrict(p, w);
        let mut buf = BytesMut::new();
        put_block_for_test(&mut buf, props.as_deref());
        let bytes = w.frame(&buf);
        let got = dec5(&bytes).map_err(|e| TestCaseError::fail(format!("{w:?}: {e}")))?;
        let shortens = props.is_none() && w.shortens();
        prop_assert_eq!(w.props_of(&got), props.map(|b| *b));
        if shortens {
            prop_assert_eq!(dec5(&enc5(&got)), Ok(got));
        } else {
            prop_assert_eq!(enc5(&got), bytes);
        }
    }

    #[test]
    fn prop_stream_in_chunks_v5(
        packets in prop::collection::vec(arb_packet_v5(), 0..8),
        chunk in 1usize..64,
    ) {
        let mut stream = BytesMut::new();
        for p in &packets {
            encode_v(ProtocolVersion::V5, p, &mut stream);
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(p) = decode(&mut buf, V5, NO_LIMIT).unwrap() {
                got.push(p);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, packets);
    }

    #[test]
    fn prop_prefix_is_incomplete_v5(p in arb_packet_v5(), cut in any::<prop::sample::Index>()) {
        let bytes = enc5(&p);
        let cut = cut.index(bytes.len());
        let mut buf = BytesMut::from(&bytes[..cut]);
        prop_assert_eq!(decode(&mut buf, V5, NO_LIMIT), Ok(None));
        prop_assert_eq!(&buf[..], &bytes[..cut]);
    }

    #[test]
    fn prop_random_bytes_never_panic_v5(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        max in prop_oneof![Just(NO_LIMIT), 0usize..600],
    ) {
        drain_v(&mut BytesMut::from(&bytes[..]), V5, max);
    }

    #[test]
    fn prop_random_frames_never_panic_v5(
        byte0 in any::<u8>(),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let bytes = frame(byte0, &body);
        let mut buf = BytesMut::from(&bytes[..]);
        match decode(&mut buf, V5, NO_LIMIT) {
            Ok(Some(_)) => prop_assert!(buf.is_empty()),
            Ok(None) => prop_assert!(false, "complete frame reported incomplete"),
            Err(e) => prop_assert!(!matches!(e, DecodeError::TooLarge { .. }), "{:?}", e),
        }
        drain_v(&mut BytesMut::from(&bytes[..]), V5, NO_LIMIT);
    }

    #[test]
    fn prop_random_property_blocks_never_panic(
        i in 0usize..14,
        props in prop::collection::vec(
            prop_oneof![
                // Mostly real identifiers, so that values get parsed.
                3 => prop::sample::select(&PROPERTY_IDS[..]),
                1 => any::<u8>(),
            ]
            .prop_flat_map(|id| (Just(id), prop::collection::vec(any::<u8>(), 0..6))),
            0..6,
        ),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut raw = Vec::new();
        for (id, value) in props {
            raw.push(id);
            raw.extend(value);
        }
        let w = EVERYWHERE[i];
        // Exact block length, and one that is off.
        let bytes = w.frame(&block(&raw));
        drain_v(&mut BytesMut::from(&bytes[..]), V5, NO_LIMIT);
        let bad_len = cut.index(raw.len() + 8);
        let bytes = w.frame(&cat(&[&vbi(bad_len), &raw]));
        drain_v(&mut BytesMut::from(&bytes[..]), V5, NO_LIMIT);
    }

    #[test]
    fn prop_mutated_packets_never_panic_v5(
        p in arb_packet_v5(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = enc5(&p);
        for (i, x) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
        }
        drain_v(&mut BytesMut::from(&bytes[..]), V5, NO_LIMIT);
        // The same bytes on a connection of another version, or before CONNECT.
        drain_v(&mut BytesMut::from(&bytes[..]), Some(ProtocolVersion::V311), NO_LIMIT);
        drain(&mut BytesMut::from(&bytes[..]), NO_LIMIT);
    }
}

/// Writes a property block (length and properties) with the crate's encoder.
fn put_block_for_test(buf: &mut BytesMut, p: Option<&Properties>) {
    let (len, _) = super::properties::block_len(p);
    super::properties::put_block(buf, p, len);
}

// ----- forwarded v5 PUBLISH: the message's properties plus per-delivery ones

fn forwarded_base() -> Properties {
    Properties {
        payload_format_indicator: Some(1),
        content_type: Some("text/plain".into()),
        response_topic: Some("reply/here".into()),
        correlation_data: Some(Bytes::from_static(b"\x00\x01corr")),
        user_properties: vec![("b".into(), "2".into()), ("a".into(), "1".into())],
        ..Properties::default()
    }
}

#[test]
fn forwarded_publish_carries_base_and_extras() {
    let base = forwarded_base();
    let ids = [7u32, 300_000];
    let extras = PublishExtras {
        message_expiry: Some(42),
        topic_alias: Some(3),
        subscription_ids: &ids,
    };
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let mut buf = BytesMut::new();
        encode_publish_v5_with(
            &mut buf,
            "a/b",
            b"hello",
            qos,
            9,
            true,
            false,
            Some(&base),
            &extras,
        );
        assert_eq!(buf.len(), publish_v5_size(3, 5, qos, Some(&base), &extras));
        let p = match decode(&mut buf, Some(ProtocolVersion::V5), 1 << 20) {
            Ok(Some(Packet::Publish(p))) => p,
            other => panic!("{other:?}"),
        };
        assert!(buf.is_empty());
        assert_eq!(&*p.topic, "a/b");
        assert_eq!(&p.payload[..], b"hello");
        assert_eq!(p.qos, qos);
        assert!(p.retain);
        let props = p.properties.expect("properties");
        let want = Properties {
            message_expiry_interval: Some(42),
            topic_alias: Some(3),
            subscription_identifiers: ids.to_vec(),
            ..base.clone()
        };
        assert_eq!(*props, want, "user properties keep their order");
    }
}

#[test]
fn forwarded_publish_without_properties_has_an_empty_block() {
    let mut buf = BytesMut::new();
    let none = PublishExtras::default();
    encode_publish_v5_with(
        &mut buf,
        "t",
        b"x",
        QoS::AtMostOnce,
        0,
        false,
        false,
        None,
        &none,
    );
    // Fixed header, topic "t", property length 0, payload.
    assert_eq!(&buf[..], &[0x30, 5, 0, 1, b't', 0, b'x']);
    assert_eq!(publish_v5_size(1, 1, QoS::AtMostOnce, None, &none), 7);
}

#[test]
fn forwarded_publish_with_alias_only_has_an_empty_topic() {
    let mut buf = BytesMut::new();
    let extras = PublishExtras {
        topic_alias: Some(1),
        ..PublishExtras::default()
    };
    encode_publish_v5_with(
        &mut buf,
        "",
        b"x",
        QoS::AtMostOnce,
        0,
        false,
        false,
        None,
        &extras,
    );
    let p = match decode(&mut buf, Some(ProtocolVersion::V5), 1 << 20) {
        Ok(Some(Packet::Publish(p))) => p,
        other => panic!("{other:?}"),
    };
    assert!(p.topic.is_empty());
    assert_eq!(p.properties.and_then(|p| p.topic_alias), Some(1));
}

proptest! {
    #[test]
    fn prop_publish_v5_size_is_exact(
        topic in "[a-z/]{1,40}",
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        expiry in proptest::option::of(any::<u32>()),
        alias in proptest::option::of(1u16..),
        ids in proptest::collection::vec(1u32..268_435_455, 0..4),
        with_base in any::<bool>(),
    ) {
        let base = forwarded_base();
        let extras = PublishExtras { message_expiry: expiry, topic_alias: alias, subscription_ids: &ids };
        let b = with_base.then_some(&base);
        let mut buf = BytesMut::new();
        encode_publish_v5_with(&mut buf, &topic, &payload, QoS::AtLeastOnce, 1, false, true, b, &extras);
        prop_assert_eq!(buf.len(), publish_v5_size(topic.len(), payload.len(), QoS::AtLeastOnce, b, &extras));
        let decoded = decode(&mut buf, Some(ProtocolVersion::V5), 1 << 20);
        prop_assert!(matches!(decoded, Ok(Some(Packet::Publish(_)))));
    }
}
