//! MQTT 5 flow control through the real binary (docs/mqtt5.md, Flow
//! control): the client's Receive Maximum caps the broker's unacknowledged
//! sends to it, and the broker's Receive Maximum is enforced with DISCONNECT
//! 0x93. Publisher and subscriber sit on different cores where there are
//! several.

mod common;
#[path = "common/v5.rs"]
mod v5;

use common::{CORE_COUNTS, id_on_core};
use ringmq::protocol::{Packet, QoS as Q, reason};
use v5::*;

fn ids(prefix: &str, cores: &str) -> (String, String) {
    let n = cores_n(cores);
    (
        id_on_core(&format!("{prefix}-sub"), 0, n),
        id_on_core(&format!("{prefix}-pub"), n - 1, n),
    )
}

#[test]
fn client_receive_maximum_limits_unacked_sends() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, p_id) = ids("rmax", cores);
        let mut sp = props();
        sp.receive_maximum = Some(2);
        let (mut s, _) = v5_with(&b, &s_id, true, sp, None);
        s.sub(1, "rmax/t", Q::AtLeastOnce);
        let mut p = v5(&b, &p_id);
        for i in 1..=5u16 {
            p.pub1("rmax/t", format!("m{i}").as_bytes(), i, props());
        }
        // Exactly two until the subscriber acknowledges.
        let first = s.expect_publish();
        let second = s.expect_publish();
        assert_eq!(&first.payload[..], b"m1", "cores {cores}");
        assert_eq!(&second.payload[..], b"m2", "cores {cores}");
        s.expect_quiet();
        // One ack frees one slot.
        s.send_packet(&Packet::PubAck(first.packet_id));
        let third = s.expect_publish();
        assert_eq!(&third.payload[..], b"m3", "cores {cores}");
        s.expect_quiet();
        // Acking the rest lets the rest through, in order.
        s.send_packet(&Packet::PubAck(second.packet_id));
        s.send_packet(&Packet::PubAck(third.packet_id));
        for want in ["m4", "m5"] {
            let m = s.expect_publish();
            assert_eq!(&m.payload[..], want.as_bytes(), "cores {cores}");
            s.send_packet(&Packet::PubAck(m.packet_id));
        }
        s.expect_quiet();
    }
}

#[test]
fn client_receive_maximum_counts_qos2_until_pubcomp() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, p_id) = ids("rmax2", cores);
        let mut sp = props();
        sp.receive_maximum = Some(1);
        let (mut s, _) = v5_with(&b, &s_id, true, sp, None);
        s.sub(1, "rmax2/t", Q::ExactlyOnce);
        let mut p = v5(&b, &p_id);
        for i in 1..=2u16 {
            p.send_packet(&publish_v5(
                "rmax2/t",
                b"q2",
                Q::ExactlyOnce,
                i,
                false,
                props(),
            ));
            assert_eq!(p.recv(T), Some(Packet::PubRec(i)));
            p.send_packet(&Packet::PubRel(i));
            assert_eq!(p.recv(T), Some(Packet::PubComp(i)));
        }
        let m = s.expect_publish();
        s.expect_quiet();
        s.send_packet(&Packet::PubRec(m.packet_id));
        assert_eq!(s.recv(T), Some(Packet::PubRel(m.packet_id)));
        // Still in flight until PUBCOMP.
        s.expect_quiet();
        s.send_packet(&Packet::PubComp(m.packet_id));
        let m2 = s.expect_publish();
        assert_eq!(m2.qos, Q::ExactlyOnce, "cores {cores}");
    }
}

#[test]
fn broker_receive_maximum_is_enforced_with_0x93() {
    let b = start("1", &["--receive-maximum", "2"]);
    let mut c = v5(&b, "greedy");
    // QoS 1 is acknowledged at once: any number is fine.
    for i in 1..=5u16 {
        c.pub1("rm/t", b"q1", i, props());
    }
    // Two QoS 2 awaiting PUBREL are allowed, a third is one too many.
    for i in 10..=11u16 {
        c.send_packet(&publish_v5(
            "rm/t",
            b"q2",
            Q::ExactlyOnce,
            i,
            false,
            props(),
        ));
        match c.recv(T) {
            Some(Packet::PubRec(id)) => assert_eq!(id, i),
            Some(Packet::AckV5(a)) => assert_eq!(a.packet_id, i),
            other => panic!("expected PUBREC {i}, got {other:?}"),
        }
    }
    c.send_packet(&publish_v5(
        "rm/t",
        b"q2",
        Q::ExactlyOnce,
        12,
        false,
        props(),
    ));
    assert_eq!(c.expect_disconnect(T), reason::RECEIVE_MAXIMUM_EXCEEDED);
}

#[test]
fn broker_receive_maximum_frees_a_slot_on_pubrel() {
    let b = start("1", &["--receive-maximum", "1"]);
    let mut c = v5(&b, "polite");
    for i in 1..=4u16 {
        c.send_packet(&publish_v5(
            "rm/t",
            b"q2",
            Q::ExactlyOnce,
            i,
            false,
            props(),
        ));
        match c.recv(T) {
            Some(Packet::PubRec(id)) => assert_eq!(id, i),
            Some(Packet::AckV5(a)) => assert_eq!(a.packet_id, i),
            other => panic!("expected PUBREC {i}, got {other:?}"),
        }
        c.send_packet(&Packet::PubRel(i));
        assert_eq!(c.recv(T), Some(Packet::PubComp(i)));
    }
    c.send_packet(&Packet::PingReq);
    assert_eq!(c.recv(T), Some(Packet::PingResp));
}
