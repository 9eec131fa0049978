//! MQTT 5 connections through the real binary (docs/mqtt5.md, CONNACK,
//! Sessions, Enhanced authentication, Problem and response information):
//! CONNACK properties taken from the configuration, CONNECT refusals, session
//! expiry and Clean Start, and the reason codes of the broker's DISCONNECT.

mod common;
#[path = "common/v5.rs"]
mod v5;

use common::{Broker, CORE_COUNTS, Raw, connect_packet, id_on_core};
use ringmq::protocol::{Packet, QoS as Q, reason};
use std::time::Duration;
use v5::*;

// ----- CONNACK properties ---------------------------------------------------------------

#[test]
fn connack_properties_with_default_config() {
    let b = Broker::start(&[]);
    let (_c, a) = v5_with(&b, "defaults", true, props(), None);
    assert!(!a.session_present);
    let p = connack_props(&a);
    assert_eq!(p.receive_maximum, Some(1024), "{p:?}");
    assert_eq!(p.maximum_qos, None, "maximum QoS only when below 2: {p:?}");
    assert_eq!(p.retain_available, Some(1), "{p:?}");
    assert_eq!(p.maximum_packet_size, Some(1024 * 1024), "{p:?}");
    assert_eq!(p.topic_alias_maximum, Some(1024), "{p:?}");
    assert_eq!(p.wildcard_subscription_available, Some(1), "{p:?}");
    assert_eq!(p.subscription_identifier_available, Some(1), "{p:?}");
    assert_eq!(p.shared_subscription_available, Some(1), "{p:?}");
    assert_eq!(p.assigned_client_identifier, None, "{p:?}");
    assert_eq!(p.server_keep_alive, None, "{p:?}");
    assert_eq!(p.session_expiry_interval, None, "{p:?}");
    assert_eq!(p.response_information, None, "{p:?}");
    assert_eq!(p.reason_string, None, "{p:?}");
}

#[test]
fn connack_properties_follow_the_flags() {
    let b = Broker::start(&[
        "--receive-maximum",
        "7",
        "--max-qos",
        "1",
        "--retain-available",
        "false",
        "--max-packet-size",
        "4096",
        "--max-topic-alias",
        "0",
        "--wildcard-subscriptions",
        "false",
        "--subscription-identifiers",
        "false",
        "--shared-subscriptions",
        "false",
    ]);
    let (_c, a) = v5_with(&b, "flags", true, props(), None);
    let p = connack_props(&a);
    assert_eq!(p.receive_maximum, Some(7), "{p:?}");
    assert_eq!(p.maximum_qos, Some(1), "{p:?}");
    assert_eq!(p.retain_available, Some(0), "{p:?}");
    assert_eq!(p.maximum_packet_size, Some(4096), "{p:?}");
    assert_eq!(p.topic_alias_maximum, None, "absent when 0: {p:?}");
    assert_eq!(p.wildcard_subscription_available, Some(0), "{p:?}");
    assert_eq!(p.subscription_identifier_available, Some(0), "{p:?}");
    assert_eq!(p.shared_subscription_available, Some(0), "{p:?}");

    let b = Broker::start(&["--max-qos", "0", "--max-topic-alias", "3"]);
    let (_c, a) = v5_with(&b, "qos0", true, props(), None);
    let p = connack_props(&a);
    assert_eq!(p.maximum_qos, Some(0), "{p:?}");
    assert_eq!(p.topic_alias_maximum, Some(3), "{p:?}");
}

#[test]
fn assigned_client_identifier_for_an_empty_client_id() {
    let b = Broker::start(&[]);
    let (mut c1, a1) = v5_with(&b, "", true, props(), None);
    let (_c2, a2) = v5_with(&b, "", true, props(), None);
    let id1 = connack_props(&a1)
        .assigned_client_identifier
        .expect("assigned id");
    let id2 = connack_props(&a2)
        .assigned_client_identifier
        .expect("assigned id");
    assert!(!id1.is_empty());
    assert_ne!(id1, id2, "two clients got the same assigned id");
    // The assigned identifier is the client's: another connection with it
    // takes the session over.
    let _c3 = v5(&b, &id1);
    assert_eq!(c1.expect_disconnect(T), reason::SESSION_TAKEN_OVER);
}

#[test]
fn server_keep_alive_when_above_max_keepalive_or_zero() {
    let b = Broker::start(&["--max-keepalive", "10"]);
    for (ka, want) in [(0u16, Some(10u16)), (60, Some(10)), (10, None), (5, None)] {
        let mut c = V5::connect(b.port);
        c.send_packet(&connect_v5(&format!("ka-{ka}"), true, ka, props(), None));
        let a = c.connack();
        assert_eq!(a.reason, 0, "keepalive {ka}: {a:?}");
        assert_eq!(
            connack_props(&a).server_keep_alive,
            want,
            "keepalive {ka}: {a:?}"
        );
    }
    // A 3.1.1 client cannot be told another value: refused with 0x02.
    let mut old = Raw::connect(b.port);
    old.send_packet(&connect_packet("old-ka", true, 60, None));
    match old.recv(T) {
        Some(Packet::ConnAck(a)) => assert_eq!(a.code as u8, 2, "{a:?}"),
        other => panic!("expected CONNACK 0x02, got {other:?}"),
    }
}

#[test]
fn server_keep_alive_is_enforced_with_0x8d() {
    // The client asks for 60 s, the broker grants 1 s and holds it to that.
    let b = Broker::start(&["--max-keepalive", "1"]);
    let mut c = V5::connect(b.port);
    c.send_packet(&connect_v5("slow-ka", true, 60, props(), None));
    let a = c.connack();
    assert_eq!(connack_props(&a).server_keep_alive, Some(1), "{a:?}");
    assert_eq!(c.expect_disconnect(T), reason::KEEP_ALIVE_TIMEOUT);
}

#[test]
fn session_expiry_capped_by_max_session_expiry() {
    let b = Broker::start(&["--max-session-expiry", "10"]);
    for (asked, want) in [
        (100u32, Some(10u32)),
        (u32::MAX, Some(10)),
        (10, None),
        (5, None),
        (0, None),
    ] {
        let mut p = props();
        p.session_expiry_interval = Some(asked);
        let (_c, a) = v5_with(&b, &format!("exp-{asked}"), true, p, None);
        assert_eq!(
            connack_props(&a).session_expiry_interval,
            want,
            "asked {asked}: {a:?}"
        );
    }
}

#[test]
fn response_information_when_requested_and_configured() {
    let b = Broker::start(&["--response-information", "replies/"]);
    let mut p = props();
    p.request_response_information = Some(1);
    let (_c, a) = v5_with(&b, "asker", true, p, None);
    assert_eq!(
        connack_props(&a).response_information.as_deref(),
        Some("replies/asker"),
        "{a:?}"
    );
    // Not requested: not sent.
    let (_c, a) = v5_with(&b, "quiet", true, props(), None);
    assert_eq!(connack_props(&a).response_information, None, "{a:?}");
    let mut p = props();
    p.request_response_information = Some(0);
    let (_c, a) = v5_with(&b, "quiet0", true, p, None);
    assert_eq!(connack_props(&a).response_information, None, "{a:?}");
    // Requested but not configured: not sent.
    let b = Broker::start(&[]);
    let mut p = props();
    p.request_response_information = Some(1);
    let (_c, a) = v5_with(&b, "asker", true, p, None);
    assert_eq!(connack_props(&a).response_information, None, "{a:?}");
}

// ----- CONNECT refusals ----------------------------------------------------------------------

/// CONNECT, expect a CONNACK with `want` and then the close.
fn refused(b: &Broker, p: &Packet, want: u8) {
    let mut c = V5::connect(b.port);
    c.send_packet(p);
    let a = c.connack();
    assert_eq!(a.reason, want, "{a:?}");
    assert!(!a.session_present);
    assert!(c.closed_within(T), "not closed after CONNACK {want:#x}");
}

#[test]
fn authentication_method_is_refused_with_0x8c() {
    let b = Broker::start(&[]);
    let mut p = props();
    p.authentication_method = Some("SCRAM-SHA-256".into());
    p.authentication_data = Some(bytes::Bytes::from_static(b"client-first"));
    refused(
        &b,
        &connect_v5("auth", true, 30, p, None),
        reason::BAD_AUTHENTICATION_METHOD,
    );
    // The broker still serves others.
    let mut c = v5(&b, "after-auth");
    c.send_packet(&Packet::PingReq);
    assert_eq!(c.recv(T), Some(Packet::PingResp));
}

#[test]
fn auth_packet_without_enhanced_authentication_is_0x82() {
    let b = Broker::start(&[]);
    let mut c = v5(&b, "auth-pkt");
    // AUTH, reason 0x18 continue authentication, no properties.
    c.send(&[0xf0, 1, 0x18]);
    assert_eq!(c.expect_disconnect(T), reason::PROTOCOL_ERROR);
}

#[test]
fn will_breaking_retain_or_qos_limits_is_refused() {
    let b = Broker::start(&["--retain-available", "false", "--max-qos", "1"]);
    let w = will_v5("w/t", b"x", Q::AtMostOnce, true, props());
    refused(
        &b,
        &connect_v5("will-retain", true, 30, props(), Some(w)),
        reason::RETAIN_NOT_SUPPORTED,
    );
    let w = will_v5("w/t", b"x", Q::ExactlyOnce, false, props());
    refused(
        &b,
        &connect_v5("will-qos", true, 30, props(), Some(w)),
        reason::QOS_NOT_SUPPORTED,
    );
    // Within the limits it is accepted.
    let w = will_v5("w/t", b"x", Q::AtLeastOnce, false, props());
    let (_c, _) = v5_with(&b, "will-ok", true, props(), Some(w));
}

// ----- sessions ---------------------------------------------------------------------------------

#[test]
fn session_expiry_0_ends_the_session_at_close() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (mut c, present) = v5_session(&b, "exp0", false, 0);
        assert!(!present);
        c.sub(1, "exp0/t", Q::AtLeastOnce);
        c.send_packet(&Packet::Disconnect);
        assert!(c.closed_within(T));
        let (_c, present) = v5_session(&b, "exp0", false, 0);
        assert!(!present, "cores {cores}: expiry 0 session survived");
    }
}

#[test]
fn session_expiry_n_keeps_the_session_then_removes_it_with_its_queue() {
    for cores in CORE_COUNTS {
        let n = cores_n(cores);
        let b = start(cores, &[]);
        let sub_id = id_on_core("expn-sub", 0, n);
        let pub_id = id_on_core("expn-pub", n - 1, n);
        let (mut s, _) = v5_session(&b, &sub_id, true, 2);
        s.sub(1, "expn/t", Q::AtLeastOnce);
        s.send_packet(&Packet::Disconnect);
        assert!(s.closed_within(T));
        let mut p = v5(&b, &pub_id);
        p.pub1("expn/t", b"kept", 1, props());

        // Back within the interval: the session and its queue are there.
        let (mut s, present) = v5_session(&b, &sub_id, false, 2);
        assert!(present, "cores {cores}: session gone before its expiry");
        let m = s.expect_publish();
        assert_eq!(&m.payload[..], b"kept");
        s.send_packet(&Packet::PubAck(m.packet_id));
        s.send_packet(&Packet::Disconnect);
        assert!(s.closed_within(T));

        // Offline longer than the interval: removed, queue included.
        p.pub1("expn/t", b"lost", 2, props());
        std::thread::sleep(Duration::from_millis(3500));
        let (mut s, present) = v5_session(&b, &sub_id, false, 2);
        assert!(!present, "cores {cores}: session outlived its expiry");
        s.expect_quiet();
        // The subscription went with it.
        p.pub1("expn/t", b"after", 3, props());
        s.expect_quiet();
    }
}

#[test]
fn session_expiry_ffffffff_never_expires() {
    for cores in CORE_COUNTS {
        let n = cores_n(cores);
        let b = start(cores, &["--max-session-expiry", "4294967295"]);
        let sub_id = id_on_core("forever-sub", 0, n);
        let pub_id = id_on_core("forever-pub", n - 1, n);
        let mut pr = props();
        pr.session_expiry_interval = Some(u32::MAX);
        let (mut s, a) = v5_with(&b, &sub_id, true, pr.clone(), None);
        assert_eq!(
            connack_props(&a).session_expiry_interval,
            None,
            "not capped"
        );
        s.sub(1, "forever/t", Q::AtLeastOnce);
        drop(s);
        let mut p = v5(&b, &pub_id);
        p.pub1("forever/t", b"still", 1, props());
        std::thread::sleep(Duration::from_millis(2500));
        let (mut s, a) = v5_with(&b, &sub_id, false, pr, None);
        assert!(a.session_present, "cores {cores}");
        assert_eq!(&s.expect_publish().payload[..], b"still");
    }
}

#[test]
fn disconnect_may_change_the_session_expiry() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        // 60 -> 0 on DISCONNECT: the session ends now.
        let (mut c, _) = v5_session(&b, "chg-a", true, 60);
        c.sub(1, "chg/a", Q::AtLeastOnce);
        let mut d = props();
        d.session_expiry_interval = Some(0);
        c.send_packet(&disconnect_v5(0, d));
        assert!(c.closed_within(T));
        let (_c, present) = v5_session(&b, "chg-a", false, 60);
        assert!(!present, "cores {cores}: DISCONNECT expiry 0 ignored");

        // 1 -> 60 on DISCONNECT: the session outlives the original 1 s.
        let (mut c, _) = v5_session(&b, "chg-b", true, 1);
        c.sub(1, "chg/b", Q::AtLeastOnce);
        let mut d = props();
        d.session_expiry_interval = Some(60);
        c.send_packet(&disconnect_v5(0, d));
        assert!(c.closed_within(T));
        std::thread::sleep(Duration::from_millis(2500));
        let (_c, present) = v5_session(&b, "chg-b", false, 60);
        assert!(present, "cores {cores}: DISCONNECT expiry 60 ignored");
    }
}

#[test]
fn disconnect_expiry_from_0_to_nonzero_is_protocol_error_0x82() {
    let b = Broker::start(&[]);
    let mut c = v5(&b, "zero-to-n");
    let mut d = props();
    d.session_expiry_interval = Some(30);
    c.send_packet(&disconnect_v5(0, d));
    assert_eq!(c.expect_disconnect(T), reason::PROTOCOL_ERROR);
    // The session did not become persistent.
    let (_c, present) = v5_session(&b, "zero-to-n", false, 30);
    assert!(!present);
}

#[test]
fn clean_start_discards_the_session() {
    for cores in CORE_COUNTS {
        let n = cores_n(cores);
        let b = start(cores, &[]);
        let sub_id = id_on_core("clean-sub", 0, n);
        let pub_id = id_on_core("clean-pub", n - 1, n);
        let (mut s, _) = v5_session(&b, &sub_id, true, 60);
        s.sub(1, "clean/t", Q::AtLeastOnce);
        drop(s);
        let mut p = v5(&b, &pub_id);
        p.pub1("clean/t", b"queued", 1, props());
        let (mut s, present) = v5_session(&b, &sub_id, true, 60);
        assert!(!present, "cores {cores}: clean start resumed the session");
        s.expect_quiet();
        p.pub1("clean/t", b"new", 2, props());
        s.expect_quiet();
        drop(s);
        // Clean start 0 resumes (the clean-started session, no subscription).
        let (_s, present) = v5_session(&b, &sub_id, false, 60);
        assert!(present);
    }
}

// ----- server DISCONNECT reason codes ------------------------------------------------

#[test]
fn takeover_is_disconnect_0x8e() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let mut first = v5(&b, "taken");
        let _second = v5(&b, "taken");
        assert_eq!(
            first.expect_disconnect(T),
            reason::SESSION_TAKEN_OVER,
            "cores {cores}"
        );
    }
}

#[test]
fn keepalive_timeout_is_disconnect_0x8d() {
    let b = Broker::start(&[]);
    let mut c = V5::connect(b.port);
    c.send_packet(&connect_v5("silent", true, 1, props(), None));
    assert_eq!(c.connack().reason, 0);
    assert_eq!(c.expect_disconnect(T), reason::KEEP_ALIVE_TIMEOUT);
}

#[test]
fn malformed_properties_are_disconnect_0x81() {
    let b = Broker::start(&[]);
    // PUBLISH QoS 0 "m/t" whose property length runs past the packet.
    let mut c = v5(&b, "mal-len");
    c.send(&frame(0x30, &[0, 3, b'm', b'/', b't', 9, 0x01, 1]));
    assert_eq!(c.expect_disconnect(T), reason::MALFORMED_PACKET);
    // PUBLISH with an unknown property identifier 0x7F.
    let mut c = v5(&b, "mal-id");
    c.send(&frame(0x30, &[0, 3, b'm', b'/', b't', 2, 0x7f, 0, b'x']));
    assert_eq!(c.expect_disconnect(T), reason::MALFORMED_PACKET);
    // A good client is unaffected.
    let mut g = v5(&b, "good");
    g.send_packet(&Packet::PingReq);
    assert_eq!(g.recv(T), Some(Packet::PingResp));
}

#[test]
fn protocol_violations_in_properties_are_disconnect_0x82() {
    let b = Broker::start(&[]);
    // Payload Format Indicator twice.
    let mut c = v5(&b, "dup-prop");
    c.send(&frame(
        0x30,
        &[0, 3, b'm', b'/', b't', 4, 0x01, 1, 0x01, 1, b'x'],
    ));
    assert_eq!(c.expect_disconnect(T), reason::PROTOCOL_ERROR);
    // A CONNACK-only property (Maximum QoS) in a PUBLISH.
    let mut c = v5(&b, "wrong-prop");
    c.send(&frame(0x30, &[0, 3, b'm', b'/', b't', 2, 0x24, 0, b'x']));
    assert_eq!(c.expect_disconnect(T), reason::PROTOCOL_ERROR);
    // Payload Format Indicator 2.
    let mut c = v5(&b, "bad-value");
    c.send(&frame(0x30, &[0, 3, b'm', b'/', b't', 2, 0x01, 2, b'x']));
    assert_eq!(c.expect_disconnect(T), reason::PROTOCOL_ERROR);
}

#[test]
fn oversize_packet_is_disconnect_0x95() {
    let b = Broker::start(&["--max-packet-size", "1024"]);
    let mut c = v5(&b, "big");
    c.pub0("big/t", &[7u8; 2000]);
    assert_eq!(c.expect_disconnect(T), reason::PACKET_TOO_LARGE);
}

#[test]
fn sigterm_is_disconnect_0x8b() {
    let mut b = Broker::start(&["--cores", "2"]);
    let mut cs: Vec<V5> = (0..4).map(|i| v5(&b, &format!("down-{i}"))).collect();
    let status = b.terminate();
    assert!(status.success(), "{status:?}");
    for c in &mut cs {
        assert_eq!(c.expect_disconnect(T), reason::SERVER_SHUTTING_DOWN);
    }
}

/// A v5 CONNECT frame for client id "bad" with `props` as the raw property
/// block (its length byte included).
fn connect_with_raw_props(props: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 30];
    body.extend_from_slice(props);
    body.extend_from_slice(&[0, 3, b'b', b'a', b'd']);
    frame(0x10, &body)
}

/// A bad CONNECT is never accepted: either a CONNACK with `want`, or a close
/// without one.
fn bad_connect(b: &Broker, bytes: &[u8], want: u8) {
    let mut c = V5::connect(b.port);
    c.send(bytes);
    match c.recv(T) {
        Some(Packet::ConnAckV5(a)) => {
            assert_eq!(a.reason, want, "{a:?}");
            assert!(c.closed_within(T));
        }
        None => {}
        other => panic!("expected CONNACK {want:#x} or close, got {other:?}"),
    }
}

#[test]
fn malformed_connect_properties_are_refused() {
    let b = Broker::start(&[]);
    // Receive Maximum 0.
    bad_connect(
        &b,
        &connect_with_raw_props(&[3, 0x21, 0, 0]),
        reason::PROTOCOL_ERROR,
    );
    // Session Expiry Interval twice.
    bad_connect(
        &b,
        &connect_with_raw_props(&[10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2]),
        reason::PROTOCOL_ERROR,
    );
    // Property block longer than the packet.
    bad_connect(
        &b,
        &connect_with_raw_props(&[40, 0x21, 0, 1]),
        reason::MALFORMED_PACKET,
    );
    // A PUBLISH-only property (Topic Alias) in CONNECT.
    bad_connect(
        &b,
        &connect_with_raw_props(&[3, 0x23, 0, 1]),
        reason::PROTOCOL_ERROR,
    );
    // The broker still accepts good clients.
    let _ok = v5(&b, "ok-after");
}

#[test]
fn bad_subscription_options_are_disconnect_0x81_or_0x82() {
    let b = Broker::start(&[]);
    // SUBSCRIBE id 1, no properties, "a/b" with reserved option bits set.
    let mut c = v5(&b, "sub-reserved");
    c.send(&frame(0x82, &[0, 1, 0, 0, 3, b'a', b'/', b'b', 0xc0]));
    assert_eq!(c.expect_disconnect(T), reason::MALFORMED_PACKET);
    // Retain Handling 3 and QoS 3 are protocol errors.
    let mut c = v5(&b, "sub-rh3");
    c.send(&frame(0x82, &[0, 1, 0, 0, 3, b'a', b'/', b'b', 0x30]));
    assert_eq!(c.expect_disconnect(T), reason::PROTOCOL_ERROR);
    let mut c = v5(&b, "sub-qos3");
    c.send(&frame(0x82, &[0, 1, 0, 0, 3, b'a', b'/', b'b', 0x03]));
    assert_eq!(c.expect_disconnect(T), reason::PROTOCOL_ERROR);
    // Subscription Identifier 0.
    let mut c = v5(&b, "sub-id0");
    c.send(&frame(0x82, &[0, 1, 2, 0x0b, 0, 0, 3, b'a', b'/', b'b', 0]));
    assert_eq!(c.expect_disconnect(T), reason::PROTOCOL_ERROR);
}

#[test]
fn v311_and_v5_share_a_session() {
    for cores in CORE_COUNTS {
        let n = cores_n(cores);
        let b = start(cores, &[]);
        let id = id_on_core("shared-session", 0, n);
        let pub_id = id_on_core("shared-session-pub", n - 1, n);
        let (mut s, _) = v5_session(&b, &id, true, 60);
        s.sub(1, "ss/t", Q::AtLeastOnce);
        drop(s);
        let mut p = v5(&b, &pub_id);
        p.pub1("ss/t", b"for either", 1, props());
        // A 3.1.1 client resumes the v5 session.
        let mut old = Raw::connect(b.port);
        assert!(old.mqtt_connect(&id, false, 30), "cores {cores}");
        match old.recv(T) {
            Some(Packet::Publish(m)) => {
                assert_eq!(&m.payload[..], b"for either");
                old.send_packet(&Packet::PubAck(m.packet_id));
            }
            other => panic!("cores {cores}: expected the queued message, got {other:?}"),
        }
        // A v5 client takes it over from the 3.1.1 one, and back.
        let (mut s, present) = v5_session(&b, &id, false, 60);
        assert!(present, "cores {cores}");
        assert!(old.closed_within(T));
        let mut old = Raw::connect(b.port);
        assert!(old.mqtt_connect(&id, false, 30));
        assert_eq!(
            s.expect_disconnect(T),
            reason::SESSION_TAKEN_OVER,
            "cores {cores}"
        );
    }
}
