//! MQTT 5 subscriptions through the real binary (docs/mqtt5.md,
//! Subscriptions, Problem information): No Local, Retain As Published, Retain
//! Handling, subscription identifiers, SUBACK and UNSUBACK reason codes
//! (including the features turned off by flags), and Request Problem
//! Information 0.

mod common;
#[path = "common/v5.rs"]
mod v5;

use common::{CORE_COUNTS, id_on_core};
use ringmq::protocol::{Packet, QoS as Q, SubscribeFilter, reason};
use v5::*;

fn ids(prefix: &str, cores: &str) -> (String, String) {
    let n = cores_n(cores);
    (
        id_on_core(&format!("{prefix}-sub"), 0, n),
        id_on_core(&format!("{prefix}-pub"), n - 1, n),
    )
}

fn opts(f: &str, qos: Q, no_local: bool, rap: bool, rh: u8) -> SubscribeFilter {
    SubscribeFilter {
        filter: f.into(),
        qos,
        no_local,
        retain_as_published: rap,
        retain_handling: rh,
    }
}

// ----- subscription options -----------------------------------------------------------------

#[test]
fn no_local_keeps_own_messages_away() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (a_id, o_id) = ids("nolocal", cores);
        let mut a = v5(&b, &a_id);
        let r = a.subscribe(1, vec![opts("nl/t", Q::AtLeastOnce, true, false, 0)], None);
        assert_eq!(r, vec![1]);
        let mut other = v5(&b, &o_id);
        other.sub(1, "nl/t", Q::AtLeastOnce);
        a.pub1("nl/t", b"mine", 1, props());
        let m = other.expect_publish();
        assert_eq!(&m.payload[..], b"mine");
        other.send_packet(&Packet::PubAck(m.packet_id));
        a.expect_quiet();
        // Others' messages still arrive.
        let mut third = v5(&b, &format!("{o_id}-3"));
        third.pub1("nl/t", b"theirs", 2, props());
        assert_eq!(&a.expect_publish().payload[..], b"theirs", "cores {cores}");
    }
}

#[test]
fn no_local_on_a_shared_subscription_is_0x82() {
    let b = start("1", &[]);
    let mut a = v5(&b, "nl-shared");
    a.send_packet(&subscribe_v5(
        1,
        vec![opts("$share/g/nl", Q::AtMostOnce, true, false, 0)],
        None,
    ));
    assert_eq!(a.expect_disconnect(T), reason::PROTOCOL_ERROR);
}

#[test]
fn retain_as_published_keeps_the_retain_flag() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, p_id) = ids("rap", cores);
        let mut keep = v5(&b, &s_id);
        keep.subscribe(1, vec![opts("rap/t", Q::AtMostOnce, false, true, 0)], None);
        let mut clear = v5(&b, &format!("{s_id}-clear"));
        clear.subscribe(1, vec![opts("rap/t", Q::AtMostOnce, false, false, 0)], None);
        let mut p = v5(&b, &p_id);
        p.send_packet(&publish_v5("rap/t", b"r", Q::AtMostOnce, 0, true, props()));
        assert!(
            keep.expect_publish().retain,
            "cores {cores}: RAP 1 cleared RETAIN"
        );
        assert!(
            !clear.expect_publish().retain,
            "cores {cores}: RAP 0 kept RETAIN"
        );
        p.pub0("rap/t", b"n");
        assert!(!keep.expect_publish().retain);
        assert!(!clear.expect_publish().retain);
    }
}

#[test]
fn retain_handling_0_1_2() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, p_id) = ids("rh", cores);
        let mut p = v5(&b, &p_id);
        p.send_packet(&publish_v5(
            "rh/t",
            b"kept",
            Q::AtLeastOnce,
            1,
            true,
            props(),
        ));
        p.puback(1);
        for (rh, first, again) in [(0u8, true, true), (1, true, false), (2, false, false)] {
            let mut s = v5(&b, &format!("{s_id}-{rh}"));
            let f = || vec![opts("rh/t", Q::AtMostOnce, false, false, rh)];
            assert_eq!(s.subscribe(1, f(), None), vec![0]);
            match s.recv(QUIET) {
                Some(Packet::Publish(m)) if first => {
                    assert_eq!(&m.payload[..], b"kept");
                    assert!(m.retain);
                }
                None if !first => {}
                other => panic!("cores {cores}: rh {rh} first subscribe: {other:?}"),
            }
            // The same subscription again.
            assert_eq!(s.subscribe(2, f(), None), vec![0]);
            match s.recv(QUIET) {
                Some(Packet::Publish(m)) if again => assert_eq!(&m.payload[..], b"kept"),
                None if !again => {}
                other => panic!("cores {cores}: rh {rh} repeated subscribe: {other:?}"),
            }
        }
    }
}

#[test]
fn subscription_identifiers_are_delivered() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, p_id) = ids("subid", cores);
        let mut s = v5(&b, &s_id);
        assert_eq!(
            s.subscribe(1, vec![filter("sid/+", Q::AtMostOnce)], Some(5)),
            vec![0]
        );
        assert_eq!(
            s.subscribe(2, vec![filter("sid/a", Q::AtLeastOnce)], Some(268_435_455)),
            vec![1]
        );
        assert_eq!(
            s.subscribe(3, vec![filter("sid/#", Q::AtMostOnce)], None),
            vec![0]
        );
        let mut p = v5(&b, &p_id);

        // sid/a matches all three: one copy, highest QoS, both identifiers.
        p.pub1("sid/a", b"a", 1, props());
        let m = s.expect_publish();
        assert_eq!(m.qos, Q::AtLeastOnce, "cores {cores}");
        let mut got = publish_props(&m).subscription_identifiers;
        got.sort_unstable();
        assert_eq!(got, vec![5, 268_435_455], "cores {cores}");
        s.send_packet(&Packet::PubAck(m.packet_id));
        s.expect_quiet();

        // sid/b matches sid/+ (id 5) and sid/# (no id).
        p.pub1("sid/b", b"b", 2, props());
        let m = s.expect_publish();
        assert_eq!(
            publish_props(&m).subscription_identifiers,
            vec![5],
            "cores {cores}"
        );
        s.expect_quiet();

        // sid/x/y matches only sid/# (no id).
        p.pub1("sid/x/y", b"c", 3, props());
        let m = s.expect_publish();
        assert!(publish_props(&m).subscription_identifiers.is_empty());
    }
}

#[test]
fn subscription_identifier_of_a_retained_message() {
    let b = start("1", &[]);
    let mut p = v5(&b, "sidr-pub");
    p.send_packet(&publish_v5(
        "sidr/t",
        b"r",
        Q::AtLeastOnce,
        1,
        true,
        props(),
    ));
    p.puback(1);
    let mut s = v5(&b, "sidr-sub");
    s.subscribe(1, vec![filter("sidr/#", Q::AtMostOnce)], Some(77));
    let m = s.expect_publish();
    assert!(m.retain);
    assert_eq!(publish_props(&m).subscription_identifiers, vec![77]);
}

// ----- SUBACK and UNSUBACK reason codes ------------------------------------------------------

#[test]
fn suback_reason_codes() {
    let b = start("1", &["--max-qos", "1"]);
    let mut s = v5(&b, "suback");
    let r = s.subscribe(
        1,
        vec![
            filter("ok/0", Q::AtMostOnce),
            filter("bad/#/x", Q::AtMostOnce),
            filter("ok/2", Q::ExactlyOnce),
            filter("bad/a+", Q::AtLeastOnce),
            filter("ok/1", Q::AtLeastOnce),
        ],
        None,
    );
    assert_eq!(
        r,
        vec![
            0,
            reason::TOPIC_FILTER_INVALID,
            1,
            reason::TOPIC_FILTER_INVALID,
            1
        ]
    );
}

#[test]
fn suback_0x91_packet_identifier_in_use() {
    let b = start("1", &[]);
    let mut s = v5(&b, "pid-in-use");
    // A QoS 2 PUBLISH with packet id 7 awaits its PUBREL.
    s.send_packet(&publish_v5(
        "piu/t",
        b"x",
        Q::ExactlyOnce,
        7,
        false,
        props(),
    ));
    match s.recv(T) {
        Some(Packet::PubRec(7)) => {}
        Some(Packet::AckV5(a)) if a.packet_id == 7 => {}
        other => panic!("expected PUBREC 7, got {other:?}"),
    }
    assert_eq!(
        s.subscribe(7, vec![filter("piu/a", Q::AtMostOnce)], None),
        vec![reason::PACKET_IDENTIFIER_IN_USE]
    );
    s.send_packet(&unsubscribe_v5(7, &["piu/a"]));
    assert_eq!(
        s.unsuback(7).reasons,
        vec![reason::PACKET_IDENTIFIER_IN_USE]
    );
}

#[test]
fn suback_codes_for_features_turned_off() {
    let b = start(
        "1",
        &[
            "--shared-subscriptions",
            "false",
            "--wildcard-subscriptions",
            "false",
        ],
    );
    let mut s = v5(&b, "off");
    let r = s.subscribe(
        1,
        vec![
            filter("$share/g/t", Q::AtMostOnce),
            filter("w/+", Q::AtMostOnce),
            filter("#", Q::AtMostOnce),
            filter("plain/t", Q::AtLeastOnce),
        ],
        None,
    );
    assert_eq!(
        r,
        vec![
            reason::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
            reason::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
            reason::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
            1
        ]
    );
}

#[test]
fn subscription_identifier_when_turned_off_is_0xa1() {
    let b = start("1", &["--subscription-identifiers", "false"]);
    let mut s = v5(&b, "sid-off");
    s.send_packet(&subscribe_v5(
        1,
        vec![filter("t/a", Q::AtMostOnce)],
        Some(3),
    ));
    // docs/mqtt5.md lists 0xA1 both as a SUBACK code and as a DISCONNECT
    // reason; either answer is accepted.
    match s.recv(T) {
        Some(Packet::SubAckV5(a)) => {
            assert_eq!(
                a.reasons,
                vec![reason::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED]
            )
        }
        Some(Packet::DisconnectV5(d)) => {
            assert_eq!(d.reason, reason::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED)
        }
        other => panic!("expected SUBACK or DISCONNECT 0xA1, got {other:?}"),
    }
}

#[test]
fn unsuback_reason_codes() {
    let b = start("1", &[]);
    let mut s = v5(&b, "unsub");
    s.sub(1, "u/a", Q::AtMostOnce);
    s.send_packet(&unsubscribe_v5(2, &["u/a", "u/never", "u/#/bad", "u/a"]));
    assert_eq!(
        s.unsuback(2).reasons,
        vec![
            0,
            reason::NO_SUBSCRIPTION_EXISTED,
            reason::TOPIC_FILTER_INVALID,
            reason::NO_SUBSCRIPTION_EXISTED
        ]
    );
}

// ----- problem information -----------------------------------------------------------------

#[test]
fn reason_string_only_when_problem_information_is_wanted() {
    let b = start("1", &[]);
    // Default (1): a failed SUBACK says why.
    let mut s = v5(&b, "rpi-1");
    s.send_packet(&subscribe_v5(1, vec![filter("a/#/b", Q::AtMostOnce)], None));
    let a = s.suback(1);
    assert_eq!(a.reasons, vec![reason::TOPIC_FILTER_INVALID]);
    let why = a.properties.as_ref().and_then(|p| p.reason_string.clone());
    assert!(
        why.is_some_and(|w| !w.is_empty()),
        "no reason string: {a:?}"
    );

    // Request Problem Information 0: no reason string, no user property.
    let mut p = props();
    p.request_problem_information = Some(0);
    let (mut s, _) = v5_with(&b, "rpi-0", true, p, None);
    s.send_packet(&subscribe_v5(1, vec![filter("a/#/b", Q::AtMostOnce)], None));
    let a = s.suback(1);
    assert_eq!(a.reasons, vec![reason::TOPIC_FILTER_INVALID]);
    assert!(
        a.properties
            .as_ref()
            .is_none_or(|p| p.reason_string.is_none() && p.user_properties.is_empty()),
        "{a:?}"
    );
    s.send_packet(&unsubscribe_v5(2, &["never/subscribed"]));
    let a = s.unsuback(2);
    assert_eq!(a.reasons, vec![reason::NO_SUBSCRIPTION_EXISTED]);
    assert!(a.properties.is_none(), "{a:?}");
    // PUBACK 0x10 without a reason string.
    s.send_packet(&publish_v5(
        "nobody/here",
        b"x",
        Q::AtLeastOnce,
        3,
        false,
        props(),
    ));
    match s.recv(T) {
        Some(Packet::AckV5(a)) => {
            assert_eq!(a.reason, reason::NO_MATCHING_SUBSCRIBERS);
            assert!(a.properties.is_none(), "{a:?}");
        }
        other => panic!("expected PUBACK 0x10, got {other:?}"),
    }
}
