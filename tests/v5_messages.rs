//! MQTT 5 messages through the real binary (docs/mqtt5.md, Will and
//! Messages): will delay and will properties, DISCONNECT with and without
//! the will, message expiry, properties forwarded unchanged, topic aliases
//! both ways, the client's Maximum Packet Size, PUBACK 0x10, and 3.1.1 and
//! 5 clients sharing topics (a 3.1.1 client never sees a property block).
//! Publisher and subscriber sit on different cores where there are several.

mod common;
#[path = "common/v5.rs"]
mod v5;

use bytes::Bytes;
use common::{Broker, CORE_COUNTS, Raw, id_on_core, publish_packet, subscribe_packet};
use ringmq::protocol::{AckKind, Packet, Properties, QoS as Q, reason};
use std::time::{Duration, Instant};
use v5::*;

/// Client ids for a subscriber on core 0 and a publisher on the last core.
fn ids(prefix: &str, cores: &str) -> (String, String) {
    let n = cores_n(cores);
    (
        id_on_core(&format!("{prefix}-sub"), 0, n),
        id_on_core(&format!("{prefix}-pub"), n - 1, n),
    )
}

/// Every forwarded message property except the expiry.
fn message_props() -> Properties {
    let mut p = props();
    p.payload_format_indicator = Some(1);
    p.content_type = Some("text/plain; charset=utf-8".into());
    p.response_topic = Some("reply/to/me".into());
    p.correlation_data = Some(Bytes::from_static(b"\x00\x01corr\xff"));
    p.user_properties = vec![
        ("k".into(), "1".into()),
        ("a".into(), "x".into()),
        ("k".into(), "2".into()),
        ("".into(), "empty key".into()),
    ];
    p
}

// ----- will --------------------------------------------------------------------------------

fn will_client(b: &Broker, id: &str, expiry_s: u32, delay_s: Option<u32>, topic: &str) -> V5 {
    let mut wp = props();
    wp.will_delay_interval = delay_s;
    let w = will_v5(topic, b"gone", Q::AtLeastOnce, false, wp);
    let mut p = props();
    p.session_expiry_interval = Some(expiry_s);
    v5_with(b, id, true, p, Some(w)).0
}

#[test]
fn will_delay_not_sent_when_the_client_reconnects_in_time() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, w_id) = ids("wd-back", cores);
        let mut s = v5(&b, &s_id);
        s.sub(1, "wd/back", Q::AtLeastOnce);
        let w = will_client(&b, &w_id, 30, Some(2), "wd/back");
        drop(w); // network failure: the will is due in 2 s
        std::thread::sleep(Duration::from_millis(200));
        let (w, present) = v5_session(&b, &w_id, false, 30);
        assert!(present, "cores {cores}");
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Some(p) = s.recv(Duration::from_millis(200)) {
                panic!("cores {cores}: will sent although the client came back: {p:?}");
            }
        }
        drop(w);
    }
}

#[test]
fn will_delay_is_waited_for() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, w_id) = ids("wd-wait", cores);
        let mut s = v5(&b, &s_id);
        s.sub(1, "wd/wait", Q::AtLeastOnce);
        let w = will_client(&b, &w_id, 60, Some(2), "wd/wait");
        drop(w);
        // Not before about 2 s, then it comes.
        assert_eq!(
            s.recv(Duration::from_millis(1200)),
            None,
            "cores {cores}: early"
        );
        let m = s.expect_publish();
        assert_eq!(&m.payload[..], b"gone");
        assert_eq!(&m.topic[..], "wd/wait");
    }
}

#[test]
fn will_sent_at_session_end_when_that_comes_before_the_delay() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, w_id) = ids("wd-end", cores);
        let mut s = v5(&b, &s_id);
        s.sub(1, "wd/end", Q::AtLeastOnce);
        // Session expiry 1 s, will delay 60 s: the session ends first.
        let w = will_client(&b, &w_id, 1, Some(60), "wd/end");
        drop(w);
        let m = s.publish(Duration::from_secs(4));
        let m = m.unwrap_or_else(|| panic!("cores {cores}: no will at session end"));
        assert_eq!(&m.payload[..], b"gone");
    }
}

#[test]
fn will_properties_are_published_with_the_will() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, w_id) = ids("wprops", cores);
        let mut s = v5(&b, &s_id);
        s.sub(1, "wp/t", Q::AtLeastOnce);
        // (The will's Message Expiry Interval: tests/v5_pending.rs.)
        let wp = message_props();
        let w = will_v5("wp/t", b"bye", Q::AtLeastOnce, false, wp.clone());
        let (c, _) = v5_with(&b, &w_id, true, props(), Some(w));
        drop(c);
        let m = s.expect_publish();
        assert_eq!(&m.payload[..], b"bye");
        assert_eq!(publish_props(&m), wp, "cores {cores}");
    }
}

#[test]
fn disconnect_0x04_publishes_the_will_0x00_discards_it() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, w_id) = ids("wdisc", cores);
        let mut s = v5(&b, &s_id);
        s.sub(1, "wdisc/t", Q::AtLeastOnce);

        let mut w = will_client(&b, &w_id, 0, None, "wdisc/t");
        w.send_packet(&disconnect_v5(reason::DISCONNECT_WITH_WILL, props()));
        assert!(w.closed_within(T));
        let m = s.publish(T);
        assert!(
            m.is_some(),
            "cores {cores}: DISCONNECT 0x04 did not publish the will"
        );

        let mut w = will_client(&b, &w_id, 0, None, "wdisc/t");
        w.send_packet(&disconnect_v5(reason::NORMAL_DISCONNECTION, props()));
        assert!(w.closed_within(T));
        assert_eq!(s.recv(Duration::from_secs(1)), None, "cores {cores}");

        // Another non-zero reason publishes it too.
        let mut w = will_client(&b, &w_id, 0, None, "wdisc/t");
        w.send_packet(&disconnect_v5(reason::UNSPECIFIED_ERROR, props()));
        assert!(w.closed_within(T));
        assert!(s.publish(T).is_some(), "cores {cores}: DISCONNECT 0x80");
    }
}

// ----- properties and expiry ---------------------------------------------------------------

#[test]
fn message_properties_forwarded_unchanged_and_in_order() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, p_id) = ids("mprops", cores);
        let mut s = v5(&b, &s_id);
        s.sub(1, "mp/+", Q::AtLeastOnce);
        let mut p = v5(&b, &p_id);
        for qos in [Q::AtMostOnce, Q::AtLeastOnce, Q::ExactlyOnce] {
            let pid = if qos == Q::AtMostOnce { 0 } else { 5 };
            p.send_packet(&publish_v5(
                "mp/a",
                b"body",
                qos,
                pid,
                false,
                message_props(),
            ));
            match qos {
                Q::AtMostOnce => {}
                Q::AtLeastOnce => assert_eq!(p.puback(5), 0),
                Q::ExactlyOnce => {
                    assert_eq!(p.recv(T), Some(Packet::PubRec(5)));
                    p.send_packet(&Packet::PubRel(5));
                    assert_eq!(p.recv(T), Some(Packet::PubComp(5)));
                }
            }
            let m = s.expect_publish();
            assert_eq!(&m.payload[..], b"body");
            assert_eq!(publish_props(&m), message_props(), "cores {cores} {qos:?}");
            match qos {
                Q::AtMostOnce => {}
                Q::AtLeastOnce => s.send_packet(&Packet::PubAck(m.packet_id)),
                Q::ExactlyOnce => {
                    s.send_packet(&Packet::PubRec(m.packet_id));
                    assert!(matches!(s.recv(T), Some(Packet::PubRel(_))));
                    s.send_packet(&Packet::PubComp(m.packet_id));
                }
            }
        }
    }
}

#[test]
fn message_expiry_counts_down_while_queued() {
    // (That the forwarded interval never exceeds the sent one: the exact
    // bound is in tests/v5_pending.rs.)
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, p_id) = ids("mexp", cores);
        let (mut s, _) = v5_session(&b, &s_id, true, 60);
        s.sub(1, "mexp/t", Q::AtLeastOnce);
        drop(s);
        let mut p = v5(&b, &p_id);
        let mut e = props();
        e.message_expiry_interval = Some(10);
        p.pub1("mexp/t", b"queued", 2, e);
        std::thread::sleep(Duration::from_millis(2200));
        let (mut s, present) = v5_session(&b, &s_id, false, 60);
        assert!(present);
        let m = s.expect_publish();
        assert_eq!(&m.payload[..], b"queued");
        let got = publish_props(&m).message_expiry_interval;
        assert!(matches!(got, Some(5..=9)), "cores {cores}: {got:?}");
    }
}

#[test]
fn expired_queued_messages_are_never_delivered() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, p_id) = ids("mexpd", cores);
        let old_id = format!("{s_id}-311");
        let (mut s, _) = v5_session(&b, &s_id, true, 60);
        s.sub(1, "mexpd/t", Q::AtLeastOnce);
        drop(s);
        // A 3.1.1 persistent subscriber: expiry applies to it too.
        let mut old = Raw::connect(b.port);
        old.mqtt_connect(&old_id, false, 30);
        old.send_packet(&subscribe_packet(1, "mexpd/t", Q::AtLeastOnce));
        assert!(matches!(old.recv(T), Some(Packet::SubAck(_))));
        drop(old);

        let mut p = v5(&b, &p_id);
        let mut short = props();
        short.message_expiry_interval = Some(1);
        p.pub1("mexpd/t", b"expires", 1, short);
        let mut long = props();
        long.message_expiry_interval = Some(100);
        p.pub1("mexpd/t", b"survives", 2, long);
        std::thread::sleep(Duration::from_millis(2500));

        let (mut s, present) = v5_session(&b, &s_id, false, 60);
        assert!(present);
        let m = s.expect_publish();
        assert_eq!(&m.payload[..], b"survives", "cores {cores}");
        s.expect_quiet();

        let mut old = Raw::connect(b.port);
        assert!(old.mqtt_connect(&old_id, false, 30));
        match old.recv(T) {
            Some(Packet::Publish(m)) => assert_eq!(&m.payload[..], b"survives", "cores {cores}"),
            other => panic!("cores {cores}: 3.1.1 expected the live message, got {other:?}"),
        }
        assert_eq!(old.recv(QUIET), None);
    }
}

#[test]
fn retained_messages_expire() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, p_id) = ids("rexp", cores);
        let mut p = v5(&b, &p_id);
        let mut short = props();
        short.message_expiry_interval = Some(1);
        p.send_packet(&publish_v5(
            "rexp/short",
            b"s",
            Q::AtLeastOnce,
            1,
            true,
            short,
        ));
        p.puback(1);
        let mut long = props();
        long.message_expiry_interval = Some(100);
        p.send_packet(&publish_v5(
            "rexp/long",
            b"l",
            Q::AtLeastOnce,
            2,
            true,
            long,
        ));
        p.puback(2);
        std::thread::sleep(Duration::from_millis(2500));
        let mut s = v5(&b, &s_id);
        s.sub(1, "rexp/#", Q::AtLeastOnce);
        let m = s.expect_publish();
        assert_eq!(&m.topic[..], "rexp/long", "cores {cores}");
        assert!(m.retain);
        let got = publish_props(&m).message_expiry_interval;
        assert!(matches!(got, Some(90..=98)), "cores {cores}: {got:?}");
        s.expect_quiet();
    }
}

// ----- topic aliases ---------------------------------------------------------------------------

#[test]
fn inbound_topic_alias_resolves_to_its_topic() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, p_id) = ids("alias-in", cores);
        let mut s = v5(&b, &s_id);
        s.sub(1, "ain/#", Q::AtMostOnce);
        let mut old = Raw::connect(b.port);
        old.mqtt_connect(&format!("{s_id}-311"), true, 30);
        old.send_packet(&subscribe_packet(1, "ain/#", Q::AtMostOnce));
        assert!(matches!(old.recv(T), Some(Packet::SubAck(_))));

        let mut p = v5(&b, &p_id);
        let mut a = props();
        a.topic_alias = Some(3);
        p.send_packet(&publish_v5(
            "ain/x",
            b"1",
            Q::AtMostOnce,
            0,
            false,
            a.clone(),
        ));
        p.send_packet(&publish_v5("", b"2", Q::AtMostOnce, 0, false, a.clone()));
        // Redefining the alias.
        p.send_packet(&publish_v5(
            "ain/y",
            b"3",
            Q::AtMostOnce,
            0,
            false,
            a.clone(),
        ));
        p.send_packet(&publish_v5("", b"4", Q::AtMostOnce, 0, false, a));
        for (payload, topic) in [
            ("1", "ain/x"),
            ("2", "ain/x"),
            ("3", "ain/y"),
            ("4", "ain/y"),
        ] {
            let m = s.expect_publish();
            assert_eq!((&m.payload[..], &m.topic[..]), (payload.as_bytes(), topic));
            assert_eq!(publish_props(&m).topic_alias, None, "alias not forwarded");
            match old.recv(T) {
                Some(Packet::Publish(m)) => {
                    assert_eq!((&m.payload[..], &m.topic[..]), (payload.as_bytes(), topic))
                }
                other => panic!("3.1.1 subscriber: {other:?}"),
            }
        }
    }
}

fn alias_publish(b: &Broker, id: &str, topic: &str, alias: u16) -> u8 {
    let mut c = v5(b, id);
    let mut a = props();
    a.topic_alias = Some(alias);
    c.send_packet(&publish_v5(topic, b"x", Q::AtMostOnce, 0, false, a));
    c.expect_disconnect(T)
}

#[test]
fn inbound_topic_alias_0_or_above_maximum_is_0x94() {
    let b = Broker::start(&["--max-topic-alias", "2"]);
    assert_eq!(
        alias_publish(&b, "a0", "t/a", 0),
        reason::TOPIC_ALIAS_INVALID
    );
    assert_eq!(
        alias_publish(&b, "a3", "t/a", 3),
        reason::TOPIC_ALIAS_INVALID
    );
    // Unknown alias with an empty topic: protocol error.
    assert_eq!(alias_publish(&b, "a1", "", 1), reason::PROTOCOL_ERROR);
    // With aliases turned off every alias is above the maximum.
    let b = Broker::start(&["--max-topic-alias", "0"]);
    assert_eq!(
        alias_publish(&b, "off", "t/a", 1),
        reason::TOPIC_ALIAS_INVALID
    );
}

#[test]
fn outbound_topic_alias_when_the_client_allows_it() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, p_id) = ids("alias-out", cores);
        let mut sp = props();
        sp.topic_alias_maximum = Some(2);
        let (mut s, _) = v5_with(&b, &s_id, true, sp, None);
        s.sub(1, "aout/#", Q::AtMostOnce);
        let mut plain = v5(&b, &format!("{s_id}-plain"));
        plain.sub(1, "aout/#", Q::AtMostOnce);
        let mut p = v5(&b, &p_id);
        let topics = [
            "aout/1", "aout/1", "aout/2", "aout/3", "aout/1", "aout/2", "aout/3",
        ];
        for (i, t) in topics.iter().enumerate() {
            p.pub0(t, i.to_string().as_bytes());
        }
        let mut alias_of = std::collections::HashMap::new();
        for (i, t) in topics.iter().enumerate() {
            let m = s.expect_publish();
            assert_eq!(&m.payload[..], i.to_string().as_bytes(), "cores {cores}");
            let alias = publish_props(&m).topic_alias;
            match (*t, alias_of.get(t)) {
                ("aout/3", _) => {
                    assert_eq!(&m.topic[..], "aout/3", "cores {cores} #{i}");
                    assert_eq!(
                        alias, None,
                        "cores {cores}: a third alias above the maximum 2"
                    );
                }
                (_, None) => {
                    assert_eq!(&m.topic[..], *t, "cores {cores} #{i}");
                    let a = alias.unwrap_or_else(|| panic!("cores {cores}: #{i} without alias"));
                    assert!((1..=2).contains(&a), "alias {a}");
                    assert!(!alias_of.values().any(|&v| v == a), "alias {a} reused");
                    alias_of.insert(*t, a);
                }
                (_, Some(&a)) => {
                    assert_eq!(&m.topic[..], "", "cores {cores}: #{i} repeats its topic");
                    assert_eq!(alias, Some(a), "cores {cores} #{i}");
                }
            }
            let m = plain.expect_publish();
            assert_eq!(&m.topic[..], *t);
            assert_eq!(publish_props(&m).topic_alias, None);
        }
    }
}

// ----- the client's Maximum Packet Size ------------------------------------------------------

#[test]
fn client_maximum_packet_size_is_respected() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, p_id) = ids("cmax", cores);
        let mut sp = props();
        sp.maximum_packet_size = Some(256);
        let (mut s, _) = v5_with(&b, &s_id, true, sp, None);
        s.sub(1, "cmax/t", Q::AtLeastOnce);
        let mut big_ok = v5(&b, &format!("{s_id}-big"));
        big_ok.sub(1, "cmax/t", Q::AtLeastOnce);
        let mut p = v5(&b, &p_id);
        p.pub1("cmax/t", b"small-1", 1, props());
        p.pub1("cmax/t", &[b'x'; 1000], 2, props());
        p.pub1("cmax/t", b"small-2", 3, props());
        for want in [&b"small-1"[..], b"small-2"] {
            let m = s.expect_publish();
            assert_eq!(&m.payload[..], want, "cores {cores}");
            s.send_packet(&Packet::PubAck(m.packet_id));
        }
        s.expect_quiet();
        for n in [7, 1000, 7] {
            let m = big_ok.expect_publish();
            assert_eq!(m.payload.len(), n, "cores {cores}");
            big_ok.send_packet(&Packet::PubAck(m.packet_id));
        }
        // The connection of the limited client is intact.
        s.send_packet(&Packet::PingReq);
        assert_eq!(s.recv(T), Some(Packet::PingResp));
    }
}

// ----- PUBACK / PUBREC 0x10 ------------------------------------------------------------------

#[test]
fn no_matching_subscribers_is_0x10() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, p_id) = ids("nomatch", cores);
        let mut p = v5(&b, &p_id);
        p.send_packet(&publish_v5("nm/t", b"x", Q::AtLeastOnce, 1, false, props()));
        assert_eq!(
            p.puback(1),
            reason::NO_MATCHING_SUBSCRIBERS,
            "cores {cores}"
        );
        p.send_packet(&publish_v5("nm/t", b"x", Q::ExactlyOnce, 2, false, props()));
        match p.recv(T) {
            Some(Packet::AckV5(a)) => {
                assert_eq!((a.kind, a.packet_id), (AckKind::PubRec, 2));
                assert_eq!(a.reason, reason::NO_MATCHING_SUBSCRIBERS, "cores {cores}");
            }
            other => panic!("cores {cores}: expected PUBREC 0x10, got {other:?}"),
        }
        p.send_packet(&Packet::PubRel(2));
        assert_eq!(p.recv(T), Some(Packet::PubComp(2)));

        // A subscriber on another core: success.
        let mut s = v5(&b, &s_id);
        s.sub(1, "nm/t", Q::AtLeastOnce);
        p.send_packet(&publish_v5("nm/t", b"x", Q::AtLeastOnce, 3, false, props()));
        assert_eq!(p.puback(3), 0, "cores {cores}");
    }
}

// ----- 3.1.1 and 5 together --------------------------------------------------------------------

#[test]
fn v311_publisher_to_v5_subscriber() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, p_id) = ids("mix-up", cores);
        let mut s = v5(&b, &s_id);
        s.sub(1, "mix/up", Q::AtLeastOnce);
        let mut p = Raw::connect(b.port);
        p.mqtt_connect(&p_id, true, 30);
        p.send_packet(&publish_packet(
            "mix/up",
            b"from 3.1.1",
            Q::AtLeastOnce,
            9,
            false,
        ));
        assert_eq!(p.recv(T), Some(Packet::PubAck(9)));
        let m = s.expect_publish();
        assert_eq!(&m.payload[..], b"from 3.1.1");
        assert_eq!(m.qos, Q::AtLeastOnce);
        assert_eq!(publish_props(&m), props(), "cores {cores}");
    }
}

#[test]
fn v5_properties_never_reach_a_v311_client() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, p_id) = ids("mix-down", cores);
        let mut old = Raw::connect(b.port);
        old.mqtt_connect(&s_id, true, 30);
        old.send_packet(&subscribe_packet(1, "mix/#", Q::AtLeastOnce));
        assert!(matches!(old.recv(T), Some(Packet::SubAck(_))));

        let mut p = v5(&b, &p_id);
        let mut all = message_props();
        all.message_expiry_interval = Some(100);
        all.topic_alias = Some(1);
        p.send_packet(&publish_v5(
            "mix/q0",
            b"pl",
            Q::AtMostOnce,
            0,
            false,
            all.clone(),
        ));
        // Exact bytes: fixed header, topic, payload; no property block.
        let want = frame(0x30, b"\x00\x06mix/q0pl");
        let got = old.recv_bytes(QUIET);
        assert_eq!(got, want, "cores {cores}: 3.1.1 QoS 0 PUBLISH");

        // By alias alone: the 3.1.1 client gets the topic.
        let mut a = props();
        a.topic_alias = Some(1);
        p.send_packet(&publish_v5("", b"al", Q::AtMostOnce, 0, false, a));
        assert_eq!(
            old.recv_bytes(QUIET),
            frame(0x30, b"\x00\x06mix/q0al"),
            "cores {cores}"
        );

        all.topic_alias = None;
        p.pub1("mix/q1", b"pl", 7, all);
        let got = old.recv_bytes(QUIET);
        assert_eq!(got.len(), 2 + 8 + 2 + 2, "cores {cores}: {got:x?}");
        assert_eq!(
            &got[..10],
            b"\x32\x0c\x00\x06mix/q1",
            "cores {cores}: {got:x?}"
        );
        assert_eq!(&got[12..], b"pl", "cores {cores}: {got:x?}");
        old.send_packet(&Packet::PubAck(u16::from_be_bytes([got[10], got[11]])));
    }
}

// ----- with a real MQTT 5 client (rumqttc) ---------------------------------------------------

use rumqttc::v5::mqttbytes::QoS as RQ;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_v5_properties_round_trip() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, p_id) = ids("rq-props", cores);
        let (mut s, ack) = RClient::connect(roptions(b.port, &s_id)).await;
        assert_eq!(ack.code, rv5::ConnectReturnCode::Success);
        let cp = ack.properties.expect("CONNACK properties");
        assert_eq!(cp.receive_max, Some(1024));
        assert_eq!(cp.topic_alias_max, Some(1024));
        s.client.subscribe("rq/+", RQ::AtLeastOnce).await.unwrap();
        s.suback().await;
        let (p, _) = RClient::connect(roptions(b.port, &p_id)).await;
        let props = rv5::PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: None,
            topic_alias: None,
            response_topic: Some("rq/reply".into()),
            correlation_data: Some(Bytes::from_static(b"id-42")),
            user_properties: vec![("b".into(), "2".into()), ("a".into(), "1".into())],
            subscription_identifiers: vec![],
            content_type: Some("application/json".into()),
        };
        p.client
            .publish_with_properties("rq/t", RQ::AtLeastOnce, false, "{}", props.clone())
            .await
            .unwrap();
        let m = s.publish_within(T).await.expect("PUBLISH");
        assert_eq!(&m.topic[..], b"rq/t");
        assert_eq!(&m.payload[..], b"{}");
        assert_eq!(m.properties, Some(props), "cores {cores}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_v311_and_v5_clients_exchange_messages() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (v5_id, v4_id) = ids("rq-mix", cores);
        let (mut new, _) = RClient::connect(roptions(b.port, &v5_id)).await;
        new.client
            .subscribe("rmix/to5", RQ::AtLeastOnce)
            .await
            .unwrap();
        new.suback().await;
        let (mut old, _) = common::Client::connect(b.port, &v4_id, true).await;
        old.subscribe("rmix/to4", common::QoS::AtLeastOnce).await;

        old.client
            .publish("rmix/to5", common::QoS::AtLeastOnce, false, "hello five")
            .await
            .unwrap();
        let m = new.publish_within(T).await.expect("3.1.1 -> 5");
        assert_eq!(&m.payload[..], b"hello five", "cores {cores}");

        let pp = rv5::PublishProperties {
            user_properties: vec![("only".into(), "v5".into())],
            content_type: Some("text/plain".into()),
            ..Default::default()
        };
        new.client
            .publish_with_properties("rmix/to4", RQ::AtLeastOnce, false, "hello four", pp)
            .await
            .unwrap();
        let m = old.publish_within(T).await.expect("5 -> 3.1.1");
        assert_eq!(&m.payload[..], b"hello four", "cores {cores}");
        assert_eq!(m.topic, "rmix/to4");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_v5_resolves_the_brokers_topic_aliases() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, p_id) = ids("rq-alias", cores);
        let mut o = roptions(b.port, &s_id);
        o.set_topic_alias_max(Some(2));
        let (mut s, _) = RClient::connect(o).await;
        s.client.subscribe("rqa/#", RQ::AtMostOnce).await.unwrap();
        s.suback().await;
        let (p, _) = RClient::connect(roptions(b.port, &p_id)).await;
        let topics = ["rqa/1", "rqa/2", "rqa/1", "rqa/3", "rqa/2", "rqa/1"];
        for (i, t) in topics.iter().enumerate() {
            p.client
                .publish(*t, RQ::AtMostOnce, false, i.to_string())
                .await
                .unwrap();
        }
        // rumqttc reports a PUBLISH before it resolves its alias (it checks
        // that the alias is known, else it is a protocol error and the
        // connection ends): resolve here the same way.
        let mut known = std::collections::HashMap::new();
        for (i, t) in topics.iter().enumerate() {
            let m = s.publish_within(T).await.expect("PUBLISH");
            assert_eq!(&m.payload[..], i.to_string().as_bytes(), "cores {cores}");
            let alias = m.properties.and_then(|p| p.topic_alias);
            let topic = match alias {
                Some(a) if m.topic.is_empty() => known.get(&a).cloned().expect("known alias"),
                Some(a) => {
                    known.insert(a, m.topic.clone());
                    m.topic.clone()
                }
                None => m.topic.clone(),
            };
            assert_eq!(&topic[..], t.as_bytes(), "cores {cores} #{i}");
            if *t == "rqa/3" {
                assert_eq!(alias, None, "cores {cores}: only 2 aliases allowed");
            } else {
                assert!(alias.is_some(), "cores {cores} #{i}: no alias");
            }
        }
        // Still connected: the aliases were valid for rumqttc.
        s.client
            .subscribe("rqa/more", RQ::AtMostOnce)
            .await
            .unwrap();
        s.suback().await;
    }
}

// ----- limits on what clients publish -----------------------------------------------------

#[test]
fn retained_publish_when_retain_unavailable_is_0x9a() {
    let b = start("1", &["--retain-available", "false"]);
    let mut c = v5(&b, "retainer");
    c.send_packet(&publish_v5("nr/t", b"r", Q::AtMostOnce, 0, true, props()));
    assert_eq!(c.expect_disconnect(T), reason::RETAIN_NOT_SUPPORTED);
}

#[test]
fn publish_above_maximum_qos_is_0x9b() {
    let b = start("1", &["--max-qos", "1"]);
    let mut c = v5(&b, "qos-high");
    c.pub1("mq/t", b"ok", 1, props());
    c.send_packet(&publish_v5(
        "mq/t",
        b"q2",
        Q::ExactlyOnce,
        2,
        false,
        props(),
    ));
    assert_eq!(c.expect_disconnect(T), reason::QOS_NOT_SUPPORTED);
}

// ----- $SYS counters ------------------------------------------------------------------------

/// Watches `$SYS/broker/{topic}` until its value is at least `min`; returns
/// the last value seen.
fn sys_at_least(b: &Broker, topic: &str, min: u64) -> Option<u64> {
    let mut w = v5(b, &format!("sys-watch-{}", topic.replace('/', "-")));
    w.sub(1, &format!("$SYS/broker/{topic}"), Q::AtMostOnce);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(Packet::Publish(p)) = w.recv(Duration::from_millis(300)) {
            last = std::str::from_utf8(&p.payload)
                .ok()
                .and_then(|v| v.parse().ok());
            if last.is_some_and(|v| v >= min) {
                break;
            }
        }
    }
    last
}

#[test]
fn dropped_too_large_and_expired_are_counted() {
    for cores in CORE_COUNTS {
        let b = start(cores, &["--sys-interval", "1"]);
        let (s_id, p_id) = ids("sysdrop", cores);
        let mut sp = props();
        sp.maximum_packet_size = Some(128);
        sp.session_expiry_interval = Some(60);
        let (mut s, _) = v5_with(&b, &s_id, true, sp, None);
        s.sub(1, "sysdrop/t", Q::AtLeastOnce);
        let mut p = v5(&b, &p_id);
        p.pub1("sysdrop/t", &[0u8; 500], 1, props());
        s.expect_quiet();
        let got = sys_at_least(&b, "ringmq/dropped/too_large", 1);
        assert_eq!(got, Some(1), "cores {cores}: too_large");

        drop(s);
        let mut e = props();
        e.message_expiry_interval = Some(1);
        p.pub1("sysdrop/t", b"short", 2, e);
        std::thread::sleep(Duration::from_millis(2200));
        let mut sp = props();
        sp.session_expiry_interval = Some(60);
        let (mut s, a) = v5_with(&b, &s_id, false, sp, None);
        assert!(a.session_present);
        s.expect_quiet();
        let got = sys_at_least(&b, "ringmq/dropped/expired", 1);
        assert_eq!(got, Some(1), "cores {cores}: expired");
    }
}

#[test]
fn outbound_topic_aliases_start_over_on_a_new_connection() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let (s_id, p_id) = ids("alias-new", cores);
        let mut sp = props();
        sp.topic_alias_maximum = Some(4);
        sp.session_expiry_interval = Some(60);
        let (mut s, _) = v5_with(&b, &s_id, true, sp.clone(), None);
        s.sub(1, "anew/t", Q::AtLeastOnce);
        let mut p = v5(&b, &p_id);
        p.pub1("anew/t", b"1", 1, props());
        let m = s.expect_publish();
        assert_eq!(&m.topic[..], "anew/t");
        assert!(publish_props(&m).topic_alias.is_some());
        s.send_packet(&Packet::PubAck(m.packet_id));
        p.pub1("anew/t", b"2", 2, props());
        let m = s.expect_publish();
        assert_eq!(&m.topic[..], "", "cores {cores}: alias not used");
        s.send_packet(&Packet::PubAck(m.packet_id));
        drop(s);
        // Queued while offline, delivered on a new connection: the topic is
        // sent again (the new connection knows no alias).
        p.pub1("anew/t", b"3", 3, props());
        let (mut s, a) = v5_with(&b, &s_id, false, sp, None);
        assert!(a.session_present);
        let m = s.expect_publish();
        assert_eq!(&m.payload[..], b"3");
        assert_eq!(
            &m.topic[..],
            "anew/t",
            "cores {cores}: alias of the old connection"
        );
    }
}

#[test]
fn client_maximum_packet_size_applies_to_retained_messages() {
    let b = start("1", &[]);
    let mut p = v5(&b, "ret-big-pub");
    p.send_packet(&publish_v5(
        "rbig/small",
        b"s",
        Q::AtLeastOnce,
        1,
        true,
        props(),
    ));
    p.puback(1);
    p.send_packet(&publish_v5(
        "rbig/large",
        &[1u8; 600],
        Q::AtLeastOnce,
        2,
        true,
        props(),
    ));
    p.puback(2);
    let mut sp = props();
    sp.maximum_packet_size = Some(200);
    let (mut s, _) = v5_with(&b, "ret-big-sub", true, sp, None);
    s.sub(1, "rbig/#", Q::AtMostOnce);
    let m = s.expect_publish();
    assert_eq!(&m.topic[..], "rbig/small");
    s.expect_quiet();
}
