//! Protocol levels on one listener: MQTT 3.1.1 and 5.0 clients are served
//! side by side, each in its own wire format, on the same topics.

mod common;
use bytes::BytesMut;
use common::*;
use ringmq::protocol::{self, Packet, ProtocolVersion, QoS};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Reads one v5 packet from `s` within `timeout`.
fn recv_v5(s: &mut TcpStream, buf: &mut BytesMut, timeout: Duration) -> Option<Packet> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(p) = protocol::decode(buf, Some(ProtocolVersion::V5), 1 << 20).expect("decode")
        {
            return Some(p);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        s.set_read_timeout(Some(left)).unwrap();
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[test]
fn mqtt5_and_mqtt311_clients_share_a_topic() {
    for cores in CORE_COUNTS {
        let b = Broker::start(&["--cores", cores]);
        let n: usize = cores.parse().unwrap();
        // A v5 subscriber and a 3.1.1 publisher on different cores.
        let mut v5 = TcpStream::connect(("127.0.0.1", b.port)).unwrap();
        // CONNECT "MQTT" level 5, clean start, keepalive 30, no properties.
        let id = id_on_core("v5-sub", 0, n);
        let mut connect = vec![0x10, 0];
        connect.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 30, 0]);
        connect.extend_from_slice(&(id.len() as u16).to_be_bytes());
        connect.extend_from_slice(id.as_bytes());
        connect[1] = (connect.len() - 2) as u8;
        v5.write_all(&connect).unwrap();
        let mut buf = BytesMut::new();
        match recv_v5(&mut v5, &mut buf, Duration::from_secs(3)) {
            Some(Packet::ConnAckV5(a)) => {
                assert_eq!(a.reason, 0, "cores {cores}: v5 CONNACK success");
                let p = a.properties.expect("CONNACK properties");
                assert_eq!(p.receive_maximum, Some(1024));
                assert_eq!(p.maximum_packet_size, Some(1024 * 1024));
            }
            other => panic!("cores {cores}: expected v5 CONNACK, got {other:?}"),
        }
        // SUBSCRIBE id 1, no properties, "mixed/t" with QoS 1.
        let mut sub = vec![0x82, 0, 0, 1, 0, 0, 7];
        sub.extend_from_slice(b"mixed/t");
        sub.push(1);
        sub[1] = (sub.len() - 2) as u8;
        v5.write_all(&sub).unwrap();
        match recv_v5(&mut v5, &mut buf, Duration::from_secs(3)) {
            Some(Packet::SubAckV5(s)) => assert_eq!(s.reasons, vec![1]),
            Some(Packet::SubAck(s)) => {
                assert_eq!(
                    s.codes,
                    vec![protocol::SubAckCode::Granted(QoS::AtLeastOnce)]
                )
            }
            other => panic!("cores {cores}: expected SUBACK, got {other:?}"),
        }
        let mut v4 = Raw::connect(b.port);
        v4.mqtt_connect(&id_on_core("v4-pub", n - 1, n), true, 30);
        v4.send_packet(&Packet::Publish(protocol::Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "mixed/t".into(),
            packet_id: 7,
            payload: bytes::Bytes::from_static(b"from 3.1.1"),
            properties: None,
        }));
        assert_eq!(v4.recv(Duration::from_secs(3)), Some(Packet::PubAck(7)));
        match recv_v5(&mut v5, &mut buf, Duration::from_secs(3)) {
            Some(Packet::Publish(p)) => {
                assert_eq!(&*p.topic, "mixed/t");
                assert_eq!(&p.payload[..], b"from 3.1.1");
                assert_eq!(p.qos, QoS::AtLeastOnce);
                assert_eq!(p.properties, None, "a 3.1.1 message has no properties");
            }
            other => panic!("cores {cores}: expected PUBLISH, got {other:?}"),
        }
    }
}
