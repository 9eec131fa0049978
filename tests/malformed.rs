//! Malformed and protocol-violating input on raw sockets. Every case checks
//! that the offending connection is closed (without a reply, unless the spec
//! asks for a CONNACK), that a well-behaved client connected before it still
//! publishes and receives, that a new client can connect afterwards, and that
//! the violation is logged at WARN. Every case runs with one and four cores.

mod common;
use common::*;
use ringmq::protocol::{self, Packet, ProtocolVersion, QoS as Q};
use std::io::Write;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);
/// How long the broker has to close a bad connection.
const CLOSE: Duration = Duration::from_secs(3);

// ----- helpers ------------------------------------------------------------------

/// A well-behaved raw client subscribed (QoS 1) to a topic of its own.
struct Good {
    c: Raw,
    topic: String,
    next_id: u16,
}

impl Good {
    fn new(port: u16, client_id: &str) -> Good {
        let mut c = Raw::connect(port);
        c.mqtt_connect(client_id, true, 60);
        let topic = format!("alive/{client_id}");
        c.send_packet(&subscribe_packet(1, &topic, Q::AtLeastOnce));
        match c.recv(T) {
            Some(Packet::SubAck(s)) => {
                assert_eq!(s.packet_id, 1);
                assert_eq!(s.codes, vec![protocol::SubAckCode::Granted(Q::AtLeastOnce)]);
            }
            other => panic!("{client_id}: expected SUBACK, got {other:?}"),
        }
        Good {
            c,
            topic,
            next_id: 10,
        }
    }

    /// Publishes QoS 1 to its own topic; expects the PUBACK and the message.
    fn round_trip(&mut self, what: &str) {
        self.next_id += 1;
        let id = self.next_id;
        let payload = format!("ping {id}");
        self.c.send_packet(&publish_packet(
            &self.topic,
            payload.as_bytes(),
            Q::AtLeastOnce,
            id,
            false,
        ));
        let (mut acked, mut got) = (false, false);
        while !(acked && got) {
            match self.c.recv(T) {
                Some(Packet::PubAck(x)) if x == id => acked = true,
                Some(Packet::Publish(p)) => {
                    assert_eq!(&*p.topic, self.topic, "{what}");
                    assert_eq!(&p.payload[..], payload.as_bytes(), "{what}");
                    if p.qos != Q::AtMostOnce {
                        self.c.send_packet(&Packet::PubAck(p.packet_id));
                    }
                    got = true;
                }
                other => panic!(
                    "{what}: round trip of {} failed (acked {acked}, got {got}): {other:?}",
                    self.topic
                ),
            }
        }
        // And the connection answers a ping.
        self.c.send_packet(&Packet::PingReq);
        assert_eq!(self.c.recv(T), Some(Packet::PingResp), "{what}: ping");
    }
}

fn warn_count(b: &Broker) -> usize {
    b.logs().lines().filter(|l| l.contains("WARN")).count()
}

/// Waits until the log holds more than `before` WARN lines.
fn wait_new_warn(b: &Broker, before: usize) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        if warn_count(b) > before {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Where in the connection the bad bytes are sent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// As the first bytes on the connection.
    First,
    /// After a valid CONNECT was accepted.
    AfterConnect,
}

/// What the broker must do with the bad connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// Close without sending anything.
    Close,
    /// Send exactly this CONNACK return code, then close.
    ConnAckThenClose(u8),
}

/// Runs one bad input against a fresh broker for each core count.
fn check_case(name: &str, extra_args: &[&str], phase: Phase, bytes: &[u8], expect: Expect) {
    for cores in CORE_COUNTS {
        let n: usize = cores.parse().unwrap();
        let mut args = vec!["--cores", cores];
        args.extend_from_slice(extra_args);
        let b = Broker::start(&args);
        let what = format!("{name} ({phase:?}, cores {cores})");
        let mut good = Good::new(b.port, &id_on_core("good", 0, n));
        good.round_trip(&format!("{what}: before"));
        let warns_before = warn_count(&b);

        let mut bad = Raw::connect(b.port);
        if phase == Phase::AfterConnect {
            bad.mqtt_connect(&id_on_core("bad", n - 1, n), true, 60);
        }
        bad.send(bytes);
        let got = bad.recv_bytes(CLOSE);
        assert!(
            bad.closed_within(Duration::from_millis(300)),
            "{what}: connection not closed; received {got:02x?}; logs:\n{}",
            b.logs()
        );
        match expect {
            Expect::Close => assert!(
                got.is_empty(),
                "{what}: expected a close without reply, got {got:02x?}"
            ),
            Expect::ConnAckThenClose(code) => assert_eq!(
                got,
                vec![0x20, 0x02, 0x00, code],
                "{what}: expected CONNACK {code:#04x} then close"
            ),
        }

        good.round_trip(&format!("{what}: after"));
        let mut fresh = Good::new(b.port, &id_on_core("fresh", n / 2, n));
        fresh.round_trip(&format!("{what}: new client"));
        // A refused client id (CONNACK 0x02) is a refusal, not a protocol
        // violation: the broker logs it at INFO.
        let violation = expect != Expect::ConnAckThenClose(0x02);
        assert!(
            !violation || wait_new_warn(&b, warns_before),
            "{what}: no WARN line logged; logs:\n{}",
            b.logs()
        );
    }
}

/// A fixed header plus body (remaining length < 128).
fn frame(byte0: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    let mut v = vec![byte0, body.len() as u8];
    v.extend_from_slice(body);
    v
}

/// A length-prefixed string field.
fn field(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(s);
    v
}

/// A CONNECT with the given protocol name, level and flags; `tail` follows
/// the client id (will, username, password fields).
fn connect_bytes(name: &[u8], level: u8, flags: u8, client_id: &str, tail: &[u8]) -> Vec<u8> {
    let mut body = field(name);
    body.push(level);
    body.push(flags);
    body.extend_from_slice(&[0, 60]);
    body.extend_from_slice(&field(client_id.as_bytes()));
    body.extend_from_slice(tail);
    frame(0x10, &body)
}

fn publish_body(topic: &[u8], packet_id: Option<u16>, payload: &[u8]) -> Vec<u8> {
    let mut body = field(topic);
    if let Some(id) = packet_id {
        body.extend_from_slice(&id.to_be_bytes());
    }
    body.extend_from_slice(payload);
    body
}

// ----- framing ----------------------------------------------------------------

#[test]
fn remaining_length_of_five_bytes() {
    let bytes = [0x30, 0xff, 0xff, 0xff, 0xff, 0x7f];
    check_case(
        "5-byte remaining length",
        &[],
        Phase::AfterConnect,
        &bytes,
        Expect::Close,
    );
    check_case(
        "5-byte remaining length",
        &[],
        Phase::First,
        &bytes,
        Expect::Close,
    );
}

#[test]
fn reserved_fixed_header_flags() {
    let subscribe_body = [0, 1, 0, 1, b'a', 0];
    for (name, bytes) in [
        ("PUBACK 0x41", frame(0x41, &[0, 1])),
        ("SUBSCRIBE 0x80", frame(0x80, &subscribe_body)),
        ("PINGREQ 0xc1", frame(0xc1, &[])),
        ("PUBREL 0x60", frame(0x60, &[0, 1])),
        ("UNSUBSCRIBE 0xa0", frame(0xa0, &[0, 1, 0, 1, b'a'])),
        ("DISCONNECT 0xe1", frame(0xe1, &[])),
    ] {
        check_case(name, &[], Phase::AfterConnect, &bytes, Expect::Close);
    }
}

#[test]
fn reserved_packet_types() {
    check_case(
        "packet type 0",
        &[],
        Phase::AfterConnect,
        &frame(0x00, &[]),
        Expect::Close,
    );
    check_case(
        "packet type 15",
        &[],
        Phase::AfterConnect,
        &frame(0xf0, &[]),
        Expect::Close,
    );
    check_case(
        "packet type 15 first",
        &[],
        Phase::First,
        &frame(0xf0, &[]),
        Expect::Close,
    );
}

// ----- PUBLISH ----------------------------------------------------------------

#[test]
fn publish_qos_3() {
    check_case(
        "PUBLISH QoS 3",
        &[],
        Phase::AfterConnect,
        &frame(0x36, &publish_body(b"a", Some(1), b"x")),
        Expect::Close,
    );
}

#[test]
fn publish_wildcard_topic() {
    for topic in [&b"a/+"[..], b"a/#", b"#", b"+"] {
        check_case(
            &format!("PUBLISH to {}", String::from_utf8_lossy(topic)),
            &[],
            Phase::AfterConnect,
            &frame(0x30, &publish_body(topic, None, b"x")),
            Expect::Close,
        );
    }
}

#[test]
fn publish_invalid_utf8_and_nul_topic() {
    check_case(
        "PUBLISH invalid UTF-8 topic",
        &[],
        Phase::AfterConnect,
        &frame(0x30, &publish_body(&[b'a', 0xc3, 0x28], None, b"x")),
        Expect::Close,
    );
    // A UTF-16 surrogate encoded in UTF-8 is not valid UTF-8 either.
    check_case(
        "PUBLISH surrogate in topic",
        &[],
        Phase::AfterConnect,
        &frame(0x30, &publish_body(&[b'a', 0xed, 0xa0, 0x80], None, b"x")),
        Expect::Close,
    );
    check_case(
        "PUBLISH U+0000 in topic",
        &[],
        Phase::AfterConnect,
        &frame(0x30, &publish_body(b"a\0b", None, b"x")),
        Expect::Close,
    );
}

#[test]
fn publish_qos1_packet_id_0() {
    check_case(
        "PUBLISH QoS 1 packet id 0",
        &[],
        Phase::AfterConnect,
        &frame(0x32, &publish_body(b"a", Some(0), b"x")),
        Expect::Close,
    );
    check_case(
        "PUBLISH QoS 2 packet id 0",
        &[],
        Phase::AfterConnect,
        &frame(0x34, &publish_body(b"a", Some(0), b"x")),
        Expect::Close,
    );
}

// ----- SUBSCRIBE ---------------------------------------------------------------

#[test]
fn subscribe_without_filter() {
    check_case(
        "SUBSCRIBE without filter",
        &[],
        Phase::AfterConnect,
        &frame(0x82, &[0, 1]),
        Expect::Close,
    );
}

#[test]
fn subscribe_reserved_option_bits() {
    for options in [0x04u8, 0x80, 0x03] {
        let mut body = vec![0, 1];
        body.extend_from_slice(&field(b"a/b"));
        body.push(options);
        check_case(
            &format!("SUBSCRIBE options {options:#04x}"),
            &[],
            Phase::AfterConnect,
            &frame(0x82, &body),
            Expect::Close,
        );
    }
}

#[test]
fn truncated_body() {
    // Remaining length 10, but the topic length field claims 20 bytes.
    let mut publish = vec![0x30, 10, 0, 20];
    publish.extend_from_slice(b"abcdefgh");
    check_case(
        "PUBLISH topic longer than body",
        &[],
        Phase::AfterConnect,
        &publish,
        Expect::Close,
    );
    // SUBSCRIBE: the filter length claims 50 bytes of a 10-byte body.
    let mut subscribe = vec![0x82, 10, 0, 1, 0, 50];
    subscribe.extend_from_slice(b"abcdef");
    check_case(
        "SUBSCRIBE filter longer than body",
        &[],
        Phase::AfterConnect,
        &subscribe,
        Expect::Close,
    );
    // PUBACK with remaining length 10: bytes after the packet id.
    check_case(
        "PUBACK with trailing bytes",
        &[],
        Phase::AfterConnect,
        &frame(0x40, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        Expect::Close,
    );
    // CONNECT whose client id length runs past the body.
    check_case(
        "CONNECT client id longer than body",
        &[],
        Phase::First,
        &frame(
            0x10,
            &[0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 40, b'x'],
        ),
        Expect::Close,
    );
}

// ----- CONNECT -----------------------------------------------------------------

#[test]
fn first_packet_not_connect() {
    check_case(
        "PINGREQ first",
        &[],
        Phase::First,
        &[0xc0, 0],
        Expect::Close,
    );
    check_case(
        "PUBLISH first",
        &[],
        Phase::First,
        &frame(0x30, &publish_body(b"a", None, b"x")),
        Expect::Close,
    );
}

#[test]
fn second_connect() {
    let mut b = bytes::BytesMut::new();
    protocol::encode(&connect_packet("second", true, 60, None), &mut b);
    check_case(
        "second CONNECT",
        &[],
        Phase::AfterConnect,
        &b,
        Expect::Close,
    );
}

#[test]
fn connect_reserved_flag() {
    check_case(
        "CONNECT reserved flag",
        &[],
        Phase::First,
        &connect_bytes(b"MQTT", 4, 0x03, "reserved", &[]),
        Expect::Close,
    );
}

#[test]
fn connect_will_qos_3() {
    let mut will = field(b"will/t");
    will.extend_from_slice(&field(b"bye"));
    check_case(
        "CONNECT will QoS 3",
        &[],
        Phase::First,
        &connect_bytes(b"MQTT", 4, 0x02 | 0x04 | 0x18, "willq3", &will),
        Expect::Close,
    );
}

#[test]
fn connect_password_without_username() {
    check_case(
        "CONNECT password without username",
        &[],
        Phase::First,
        &connect_bytes(b"MQTT", 4, 0x02 | 0x40, "pwonly", &field(b"secret")),
        Expect::Close,
    );
}

#[test]
fn unknown_protocol_name() {
    check_case(
        "protocol name MQTX",
        &[],
        Phase::First,
        &connect_bytes(b"MQTX", 4, 0x02, "mqtx", &[]),
        Expect::Close,
    );
}

#[test]
fn unsupported_protocol_levels() {
    // Level 5 (MQTT 5) is left to a later issue.
    for (name, level) in [(&b"MQTT"[..], 6u8), (b"MQTT", 7), (b"MQTT", 3)] {
        check_case(
            &format!("{} level {level}", String::from_utf8_lossy(name)),
            &[],
            Phase::First,
            &connect_bytes(name, level, 0x02, "level", &[]),
            Expect::ConnAckThenClose(0x01),
        );
    }
}

#[test]
fn mqtt31_accepted_and_works() {
    for cores in CORE_COUNTS {
        let n: usize = cores.parse().unwrap();
        let b = Broker::start(&["--cores", cores]);
        let mut good = Good::new(b.port, &id_on_core("good31", 0, n));
        let mut c = Raw::connect(b.port);
        c.send_packet(&Packet::Connect(Box::new(protocol::Connect {
            version: ProtocolVersion::V31,
            clean_session: true,
            keep_alive_s: 60,
            client_id: id_on_core("v31", n - 1, n).into(),
            will: None,
            username: None,
            password: None,
            properties: None,
        })));
        assert_eq!(
            c.recv(T),
            Some(Packet::ConnAck(protocol::ConnAck {
                session_present: false,
                code: protocol::ConnectReturnCode::Accepted,
            })),
            "cores {cores}"
        );
        c.send_packet(&subscribe_packet(3, "v31/#", Q::AtLeastOnce));
        match c.recv(T) {
            Some(Packet::SubAck(s)) => {
                assert_eq!(s.codes, vec![protocol::SubAckCode::Granted(Q::AtLeastOnce)])
            }
            other => panic!("cores {cores}: expected SUBACK, got {other:?}"),
        }
        // A 3.1.1 client publishes, the 3.1 client receives.
        good.c
            .send_packet(&publish_packet("v31/x", b"hi", Q::AtLeastOnce, 5, false));
        assert_eq!(good.c.recv(T), Some(Packet::PubAck(5)));
        match c.recv(T) {
            Some(Packet::Publish(p)) => {
                assert_eq!(&*p.topic, "v31/x");
                assert_eq!(&p.payload[..], b"hi");
                assert_eq!(p.qos, Q::AtLeastOnce);
                c.send_packet(&Packet::PubAck(p.packet_id));
            }
            other => panic!("cores {cores}: expected PUBLISH, got {other:?}"),
        }
        // The 3.1 client publishes to the 3.1.1 client.
        c.send_packet(&publish_packet(
            &good.topic,
            b"from31",
            Q::AtLeastOnce,
            9,
            false,
        ));
        assert_eq!(c.recv(T), Some(Packet::PubAck(9)), "cores {cores}");
        match good.c.recv(T) {
            Some(Packet::Publish(p)) => {
                assert_eq!(&*p.topic, good.topic);
                assert_eq!(&p.payload[..], b"from31");
                good.c.send_packet(&Packet::PubAck(p.packet_id));
            }
            other => panic!("cores {cores}: expected PUBLISH, got {other:?}"),
        }
        c.send_packet(&Packet::PingReq);
        assert_eq!(c.recv(T), Some(Packet::PingResp));
    }
}

#[test]
fn mqtt31_client_id_longer_than_23_bytes() {
    let long = "abcdefghijklmnopqrstuvwx"; // 24 bytes
    assert_eq!(long.len(), 24);
    check_case(
        "MQIsdp client id of 24 bytes",
        &[],
        Phase::First,
        &connect_bytes(b"MQIsdp", 3, 0x02, long, &[]),
        Expect::ConnAckThenClose(0x02),
    );
    // 23 bytes is accepted.
    for cores in CORE_COUNTS {
        let b = Broker::start(&["--cores", cores]);
        let mut c = Raw::connect(b.port);
        c.send(&connect_bytes(b"MQIsdp", 3, 0x02, &long[..23], &[]));
        assert_eq!(
            c.recv_bytes(Duration::from_millis(500)),
            vec![0x20, 0x02, 0x00, 0x00],
            "cores {cores}"
        );
        c.send_packet(&Packet::PingReq);
        assert_eq!(c.recv(T), Some(Packet::PingResp));
    }
}

// ----- limits --------------------------------------------------------------------

#[test]
fn packet_larger_than_max_packet_size() {
    // Only a fixed header claiming 1 MB: the broker must decide without the body.
    let header = [0x30, 0x80, 0x80, 0x40];
    for phase in [Phase::AfterConnect, Phase::First] {
        check_case(
            "1 MB fixed header",
            &["--max-packet-size", "1024"],
            phase,
            &header,
            Expect::Close,
        );
    }
    // A whole PUBLISH of 1025 bytes is refused, one of 1024 accepted.
    let publish_of = |total: usize| {
        // header 1 + 2 (remaining length) ; topic field 2 + 3 ; packet id 2
        let payload = vec![b'p'; total - 3 - 5 - 2];
        let mut b = bytes::BytesMut::new();
        protocol::encode(
            &publish_packet("big", &payload, Q::AtLeastOnce, 1, false),
            &mut b,
        );
        assert_eq!(b.len(), total);
        b.to_vec()
    };
    check_case(
        "PUBLISH of 1025 bytes",
        &["--max-packet-size", "1024"],
        Phase::AfterConnect,
        &publish_of(1025),
        Expect::Close,
    );
    for cores in CORE_COUNTS {
        let b = Broker::start(&["--cores", cores, "--max-packet-size", "1024"]);
        let mut c = Raw::connect(b.port);
        c.mqtt_connect("exactly-max", true, 60);
        c.send(&publish_of(1024));
        assert_eq!(c.recv(T), Some(Packet::PubAck(1)), "cores {cores}");
    }
}

#[test]
fn no_connect_within_connect_timeout() {
    let path = std::env::temp_dir().join(format!(
        "ringmq-malformed-connect-timeout-{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, "connect_timeout = 1\n").unwrap();
    let path_s = path.to_str().unwrap().to_string();
    for cores in CORE_COUNTS {
        let n: usize = cores.parse().unwrap();
        let b = Broker::start(&["--cores", cores, "--config", &path_s]);
        let mut good = Good::new(b.port, &id_on_core("good-ct", 0, n));
        // Silent, and a partial CONNECT (header and a few body bytes).
        let mut silent = Raw::connect(b.port);
        let mut partial = Raw::connect(b.port);
        partial.send(&[0x10, 20, 0, 4, b'M']);
        assert!(
            !silent.closed_within(Duration::from_millis(200)),
            "cores {cores}: closed before the connect timeout"
        );
        assert!(
            silent.closed_within(Duration::from_secs(5)),
            "cores {cores}: silent connection not closed; logs:\n{}",
            b.logs()
        );
        assert!(
            partial.closed_within(Duration::from_secs(5)),
            "cores {cores}: partial CONNECT not closed; logs:\n{}",
            b.logs()
        );
        // The client that did connect is past its deadline and still served.
        std::thread::sleep(Duration::from_millis(300));
        good.round_trip(&format!("connect timeout, cores {cores}"));
        let mut fresh = Good::new(b.port, &id_on_core("fresh-ct", n - 1, n));
        fresh.round_trip(&format!("connect timeout new client, cores {cores}"));
    }
    let _ = std::fs::remove_file(&path);
}

// ----- garbage -------------------------------------------------------------------

/// xorshift64*: a small seeded generator, so failures can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn random_garbage_never_crashes_the_broker() {
    for cores in CORE_COUNTS {
        let n: usize = cores.parse().unwrap();
        let b = Broker::start(&["--cores", cores]);
        let mut good = Good::new(b.port, &id_on_core("good-g", 0, n));
        let mut pinger = Raw::connect(b.port);
        pinger.mqtt_connect(&id_on_core("pinger", n - 1, n), true, 60);
        for seed in 1..=40u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let len = 1 + (rng.next() % 400) as usize;
            let mut buf = rng.bytes(len);
            // Half the buffers start with a plausible packet type byte.
            if seed % 2 == 0 {
                let types = [0x10, 0x30, 0x32, 0x34, 0x62, 0x82, 0xa2, 0xc0, 0xe0];
                buf[0] = types[(rng.next() % types.len() as u64) as usize];
            }
            let mut bad = Raw::connect(b.port);
            if seed % 3 != 0 {
                bad.mqtt_connect(&format!("garbage-{seed}"), true, 60);
            }
            // The broker may already have closed: write errors are fine.
            let _ = bad.stream.write_all(&buf);
            let _ = bad.recv_bytes(Duration::from_millis(20));
            drop(bad);
            pinger.send_packet(&Packet::PingReq);
            assert_eq!(
                pinger.recv(T),
                Some(Packet::PingResp),
                "cores {cores}: no PINGRESP after garbage seed {seed} ({buf:02x?}); logs:\n{}",
                b.logs()
            );
        }
        good.round_trip(&format!("garbage, cores {cores}"));
        let mut fresh = Good::new(b.port, &id_on_core("fresh-g", n / 2, n));
        fresh.round_trip(&format!("garbage new client, cores {cores}"));
        assert!(b.logs().contains("WARN"), "cores {cores}: no WARN logged");
    }
}
