//! Sessions through the real binary: persistent vs clean sessions, client id
//! rules, re-delivery after reconnect (DUP, PUBREL), QoS 2 exactly-once both
//! ways, takeover, keepalive, wills, the inflight window and the bounded
//! session queue, and a stalled subscriber. Every test runs with one core and
//! with four, with interacting clients homed on different cores.

mod common;
use bytes::{Bytes, BytesMut};
use common::{
    Broker, CORE_COUNTS, Client, Event, Incoming, Raw, connect_packet, id_on_core, publish_packet,
    subscribe_packet,
};
use ringmq::protocol::{
    self, ConnAck, ConnectReturnCode, Packet, Publish, QoS as Q, SubAckCode, Subscribe,
    SubscribeFilter, Will,
};
use std::time::{Duration, Instant};

/// Longest wait for something that must happen.
const T: Duration = Duration::from_secs(5);
/// How long "nothing more arrives" is watched for.
const QUIET: Duration = Duration::from_millis(500);

// ----- helpers -----------------------------------------------------------------

fn cores_n(cores: &str) -> usize {
    cores.parse().unwrap()
}

fn start(cores: &str, extra: &[&str]) -> Broker {
    let mut args = vec!["--cores", cores];
    args.extend_from_slice(extra);
    Broker::start(&args)
}

fn connack(c: &mut Raw) -> ConnAck {
    match c.recv(T) {
        Some(Packet::ConnAck(a)) => a,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// A raw client, CONNACK accepted; returns it with session present.
fn raw(b: &Broker, id: &str, clean: bool, keep_alive_s: u16) -> (Raw, bool) {
    raw_connect(b, id, clean, keep_alive_s, None)
}

fn raw_connect(
    b: &Broker,
    id: &str,
    clean: bool,
    keep_alive_s: u16,
    will: Option<Will>,
) -> (Raw, bool) {
    let mut c = Raw::connect(b.port);
    c.send_packet(&connect_packet(id, clean, keep_alive_s, will));
    let a = connack(&mut c);
    assert_eq!(
        a.code,
        ConnectReturnCode::Accepted,
        "CONNACK for {id:?}; logs:\n{}",
        b.logs()
    );
    (c, a.session_present)
}

fn will(topic: &str, payload: &'static [u8], qos: Q, retain: bool) -> Will {
    Will {
        topic: topic.into(),
        payload: Bytes::from_static(payload),
        qos,
        retain,
        properties: None,
    }
}

/// SUBSCRIBE one filter and expect its SUBACK granting `qos`.
fn subscribe(c: &mut Raw, packet_id: u16, filter: &str, qos: Q) {
    c.send_packet(&subscribe_packet(packet_id, filter, qos));
    match c.recv(T) {
        Some(Packet::SubAck(s)) => {
            assert_eq!(s.packet_id, packet_id);
            assert_eq!(s.codes, vec![SubAckCode::Granted(qos)], "{filter}");
        }
        other => panic!("expected SUBACK for {filter}, got {other:?}"),
    }
}

/// PINGREQ/PINGRESP: every packet sent before has been handled. Only for
/// clients without subscriptions (nothing else may arrive first).
fn sync(c: &mut Raw, timeout: Duration) {
    c.send_packet(&Packet::PingReq);
    assert_eq!(c.recv(timeout), Some(Packet::PingResp));
}

/// QoS 1 PUBLISH, waits for its PUBACK (the broker has routed it).
fn pub1(c: &mut Raw, topic: &str, payload: &[u8], packet_id: u16) {
    c.send_packet(&publish_packet(
        topic,
        payload,
        Q::AtLeastOnce,
        packet_id,
        false,
    ));
    assert_eq!(c.recv(T), Some(Packet::PubAck(packet_id)), "PUBACK");
}

/// QoS 2 PUBLISH with the whole publisher-side handshake.
fn pub2(c: &mut Raw, topic: &str, payload: &[u8], packet_id: u16) {
    c.send_packet(&publish_packet(
        topic,
        payload,
        Q::ExactlyOnce,
        packet_id,
        false,
    ));
    assert_eq!(c.recv(T), Some(Packet::PubRec(packet_id)), "PUBREC");
    c.send_packet(&Packet::PubRel(packet_id));
    assert_eq!(c.recv(T), Some(Packet::PubComp(packet_id)), "PUBCOMP");
}

/// The next packet, which must be a PUBLISH.
fn next_publish(c: &mut Raw, what: &str) -> Publish {
    match c.recv(T) {
        Some(Packet::Publish(p)) => p,
        other => panic!("{what}: expected PUBLISH, got {other:?}"),
    }
}

/// Nothing arrives within `d`.
fn quiet(c: &mut Raw, d: Duration, what: &str) {
    let got = c.recv(d);
    assert!(got.is_none(), "{what}: unexpected {got:?}");
}

fn text(p: &Publish) -> String {
    String::from_utf8_lossy(&p.payload).into_owned()
}

fn disconnect_needle(id: &str) -> String {
    format!("client disconnected: {id} (")
}

/// Waits until the broker has logged `n` ends of connections of `id`.
fn wait_disconnects(b: &Broker, id: &str, n: usize) {
    let needle = disconnect_needle(id);
    let deadline = Instant::now() + T;
    while b.logs().matches(&needle).count() < n {
        assert!(
            Instant::now() < deadline,
            "broker did not log {n} disconnects of {id}; logs:\n{}",
            b.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn wait_disconnects_async(b: &Broker, id: &str, n: usize) {
    let needle = disconnect_needle(id);
    let deadline = Instant::now() + T;
    while b.logs().matches(&needle).count() < n {
        assert!(
            Instant::now() < deadline,
            "broker did not log {n} disconnects of {id}; logs:\n{}",
            b.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Receives QoS 1 PUBLISHes, acknowledging each, until none arrives for
/// `QUIET` (plus a margin); returns their payloads.
fn drain_acking(c: &mut Raw) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        match c.recv(QUIET + Duration::from_millis(200)) {
            Some(Packet::Publish(p)) => {
                assert!(!p.dup, "unexpected DUP on {p:?}");
                assert_eq!(p.qos, Q::AtLeastOnce);
                c.send_packet(&Packet::PubAck(p.packet_id));
                got.push(text(&p));
            }
            None => return got,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
}

/// A raw client subscribed (QoS 0) to the `$SYS/broker/{name}` topics.
fn sys_watcher(b: &Broker, id: &str, names: &[&str]) -> Raw {
    let (mut c, _) = raw(b, id, true, 0);
    c.send_packet(&Packet::Subscribe(Subscribe {
        packet_id: 1,
        filters: names
            .iter()
            .map(|n| SubscribeFilter {
                filter: format!("$SYS/broker/{n}").into(),
                qos: Q::AtMostOnce,
                no_local: false,
                retain_as_published: false,
                retain_handling: 0,
            })
            .collect(),
        properties: None,
    }));
    c
}

/// Reads `$SYS` updates until every `(name, ok)` holds for the latest value
/// of `$SYS/broker/{name}`; panics with the latest values after `timeout`.
fn sys_until(c: &mut Raw, want: &[(&str, &dyn Fn(u64) -> bool)], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut latest: Vec<Option<u64>> = vec![None; want.len()];
    loop {
        if want
            .iter()
            .zip(&latest)
            .all(|((_, ok), v)| v.is_some_and(ok))
        {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match c.recv(left) {
            Some(Packet::Publish(p)) => {
                for (i, (name, _)) in want.iter().enumerate() {
                    if *p.topic == *format!("$SYS/broker/{name}") {
                        latest[i] = text(&p).parse().ok();
                    }
                }
            }
            Some(Packet::SubAck(_)) => {}
            Some(other) => panic!("$SYS watcher: unexpected {other:?}"),
            None => panic!(
                "$SYS values not reached within {timeout:?}: {:?} = {latest:?}",
                want.iter().map(|w| w.0).collect::<Vec<_>>()
            ),
        }
    }
}

fn set_rcvbuf(c: &Raw, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt on a socket this test owns, with a valid int.
    let r = unsafe {
        libc::setsockopt(
            c.stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &bytes as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt SO_RCVBUF");
}

// ----- 1. persistent and clean sessions -----------------------------------------

/// rumqttc subscriber with clean session 0: its subscription survives a
/// disconnect; QoS 1 and 2 published meanwhile arrive on reconnect, in order,
/// with session present; QoS 0 published meanwhile does not.
#[tokio::test]
async fn persistent_session_keeps_subscription_and_queues_qos1_qos2_only() {
    use common::QoS;
    for cores in CORE_COUNTS {
        let n = cores_n(cores);
        let b = start(cores, &[]);
        let sid = id_on_core("ps-sub", 0, n);
        let (mut sub, present) = Client::connect(b.port, &sid, false).await;
        assert!(!present, "cores {cores}: a new id has no session");
        sub.subscribe("ps/#", QoS::ExactlyOnce).await;
        sub.disconnect().await;
        wait_disconnects_async(&b, &sid, 1).await;

        let (mut publ, _) = Client::connect(b.port, &id_on_core("ps-pub", n - 1, n), true).await;
        let sends = [
            ("ps/a", "m0", QoS::AtLeastOnce),
            ("ps/b", "z0", QoS::AtMostOnce),
            ("ps/c", "m1", QoS::ExactlyOnce),
            ("ps/b", "z1", QoS::AtMostOnce),
            ("ps/a", "m2", QoS::AtLeastOnce),
            ("ps/c", "m3", QoS::ExactlyOnce),
        ];
        for (topic, payload, qos) in sends {
            publ.client
                .publish(topic, qos, false, payload)
                .await
                .unwrap();
        }
        // Two PUBACKs and two PUBCOMPs: the broker has routed all six (one
        // connection, handled in order).
        let (mut acks, mut comps) = (0, 0);
        while acks < 2 || comps < 2 {
            match publ.next(T).await {
                Some(Ok(Event::Incoming(Incoming::PubAck(_)))) => acks += 1,
                Some(Ok(Event::Incoming(Incoming::PubComp(_)))) => comps += 1,
                Some(Ok(_)) => {}
                other => panic!("publisher: {other:?}"),
            }
        }

        let (mut sub, present) = Client::connect(b.port, &sid, false).await;
        assert!(present, "cores {cores}: session present on reconnect");
        let got: Vec<(String, String, QoS)> = sub
            .publishes(4, T)
            .await
            .into_iter()
            .map(|p| {
                (
                    p.topic,
                    String::from_utf8_lossy(&p.payload).into_owned(),
                    p.qos,
                )
            })
            .collect();
        let want: Vec<(String, String, QoS)> = [
            ("ps/a", "m0", QoS::AtLeastOnce),
            ("ps/c", "m1", QoS::ExactlyOnce),
            ("ps/a", "m2", QoS::AtLeastOnce),
            ("ps/c", "m3", QoS::ExactlyOnce),
        ]
        .into_iter()
        .map(|(t, p, q)| (t.to_string(), p.to_string(), q))
        .collect();
        assert_eq!(got, want, "cores {cores}: queued QoS 1/2, in order");
        let extra = sub.publish_within(QUIET).await;
        assert!(
            extra.is_none(),
            "cores {cores}: QoS 0 published offline was delivered: {extra:?}"
        );

        // The subscription was kept: a live publish arrives without SUBSCRIBE.
        publ.client
            .publish("ps/live", QoS::AtLeastOnce, false, "live")
            .await
            .unwrap();
        let p = sub.publish_within(T).await.expect("live publish delivered");
        assert_eq!(p.topic, "ps/live");
        assert_eq!(&p.payload[..], b"live");
        sub.disconnect().await;
    }
}

/// Clean session 1: nothing survives the connection (no session present, no
/// queued message, no subscription), not even for a later clean-0 connect.
#[test]
fn clean_session_discards_everything() {
    for cores in CORE_COUNTS {
        let n = cores_n(cores);
        let b = start(cores, &[]);
        let sid = id_on_core("cs-sub", 0, n);
        let (mut publ, _) = raw(&b, &id_on_core("cs-pub", n - 1, n), true, 0);
        let (mut s, present) = raw(&b, &sid, true, 0);
        assert!(!present);
        subscribe(&mut s, 1, "cs/#", Q::AtLeastOnce);
        pub1(&mut publ, "cs/x", b"live", 1);
        let p = next_publish(&mut s, "live delivery");
        assert_eq!(text(&p), "live");
        s.send_packet(&Packet::PubAck(p.packet_id));
        s.send_packet(&Packet::Disconnect);
        drop(s);
        wait_disconnects(&b, &sid, 1);

        pub1(&mut publ, "cs/x", b"offline", 2);
        let (mut s, present) = raw(&b, &sid, true, 0);
        assert!(
            !present,
            "cores {cores}: clean session has no session present"
        );
        quiet(&mut s, QUIET, "message published before a clean reconnect");
        pub1(&mut publ, "cs/x", b"after", 3);
        quiet(&mut s, QUIET, "the clean session's subscription survived");
        s.send_packet(&Packet::Disconnect);
        drop(s);
        wait_disconnects(&b, &sid, 2);

        let (mut s, present) = raw(&b, &sid, false, 0);
        assert!(
            !present,
            "cores {cores}: a clean session left a session behind"
        );
        quiet(&mut s, QUIET, "persistent connect after clean sessions");
    }
}

/// A persistent session reconnecting with clean session 1 loses its queue
/// and its subscriptions (session present 0), and nothing is left after.
#[test]
fn persistent_session_reconnecting_clean_is_discarded() {
    for cores in CORE_COUNTS {
        let n = cores_n(cores);
        let b = start(cores, &[]);
        let sid = id_on_core("pc-sub", n - 1, n);
        let (mut publ, _) = raw(&b, &id_on_core("pc-pub", 0, n), true, 0);
        let (mut s, present) = raw(&b, &sid, false, 0);
        assert!(!present);
        subscribe(&mut s, 1, "pc/#", Q::AtLeastOnce);
        s.send_packet(&Packet::Disconnect);
        drop(s);
        wait_disconnects(&b, &sid, 1);
        pub1(&mut publ, "pc/x", b"queued", 1);

        let (mut s, present) = raw(&b, &sid, true, 0);
        assert!(
            !present,
            "cores {cores}: clean=1 must not resume the session"
        );
        quiet(&mut s, QUIET, "queued message delivered to a clean session");
        pub1(&mut publ, "pc/x", b"live", 2);
        quiet(&mut s, QUIET, "old subscription still active");
        s.send_packet(&Packet::Disconnect);
        drop(s);
        wait_disconnects(&b, &sid, 2);

        let (mut s, present) = raw(&b, &sid, false, 0);
        assert!(!present, "cores {cores}: the discarded session came back");
        quiet(&mut s, QUIET, "after the discarded session");
    }
}

// ----- 2. client id rules ---------------------------------------------------------

#[test]
fn empty_client_id_rules() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        // Two clients with empty ids and clean session: both accepted, with
        // distinct assigned ids (neither takes the other over).
        let (mut a, present_a) = raw(&b, "", true, 0);
        let (mut c, present_c) = raw(&b, "", true, 0);
        assert!(!present_a && !present_c);
        subscribe(&mut a, 1, "anon/t", Q::AtLeastOnce);
        subscribe(&mut c, 1, "anon/t", Q::AtLeastOnce);
        // A publishes to itself (and to C).
        a.send_packet(&publish_packet("anon/t", b"self", Q::AtLeastOnce, 9, false));
        let mut got_puback = false;
        let mut got_publish = false;
        for _ in 0..2 {
            match a.recv(T) {
                Some(Packet::PubAck(9)) => got_puback = true,
                Some(Packet::Publish(p)) => {
                    assert_eq!(text(&p), "self");
                    a.send_packet(&Packet::PubAck(p.packet_id));
                    got_publish = true;
                }
                other => panic!("cores {cores}: unexpected {other:?}"),
            }
        }
        assert!(got_puback && got_publish);
        let p = next_publish(&mut c, "second anonymous client");
        assert_eq!(text(&p), "self");
        assert!(!a.closed_within(Duration::from_millis(200)));

        // Empty id with clean session 0: CONNACK 0x02, then the broker closes.
        let mut r = Raw::connect(b.port);
        r.send_packet(&connect_packet("", false, 0, None));
        let ack = connack(&mut r);
        assert_eq!(ack.code, ConnectReturnCode::IdentifierRejected);
        assert!(!ack.session_present);
        assert!(
            r.closed_within(T),
            "cores {cores}: refused socket not closed"
        );
    }
}

// ----- 3. re-delivery after reconnect -------------------------------------------

#[test]
fn unacked_qos1_is_resent_with_dup_on_reconnect() {
    for cores in CORE_COUNTS {
        let n = cores_n(cores);
        let b = start(cores, &[]);
        let sid = id_on_core("rd1-sub", 0, n);
        let (mut s, _) = raw(&b, &sid, false, 0);
        subscribe(&mut s, 1, "rd1/#", Q::AtLeastOnce);
        let (mut publ, _) = raw(&b, &id_on_core("rd1-pub", n - 1, n), true, 0);
        pub1(&mut publ, "rd1/x", b"a", 1);
        pub1(&mut publ, "rd1/x", b"b", 2);
        let first = next_publish(&mut s, "a");
        let second = next_publish(&mut s, "b");
        for (p, want) in [(&first, "a"), (&second, "b")] {
            assert_eq!(text(p), want);
            assert_eq!(p.qos, Q::AtLeastOnce);
            assert!(!p.dup);
        }
        assert_ne!(first.packet_id, second.packet_id);
        // Drop the TCP connection without PUBACK.
        drop(s);
        wait_disconnects(&b, &sid, 1);
        pub1(&mut publ, "rd1/x", b"c", 3);

        let (mut s, present) = raw(&b, &sid, false, 0);
        assert!(present, "cores {cores}: session present");
        for (orig, want) in [(&first, "a"), (&second, "b")] {
            let p = next_publish(&mut s, "re-sent");
            assert_eq!(p.packet_id, orig.packet_id, "cores {cores}: same packet id");
            assert!(p.dup, "cores {cores}: re-sent PUBLISH has DUP: {p:?}");
            assert_eq!(p.qos, Q::AtLeastOnce);
            assert_eq!(text(&p), want);
        }
        let c = next_publish(&mut s, "queued while offline");
        assert_eq!(text(&c), "c");
        assert!(!c.dup);
        assert!(c.packet_id != first.packet_id && c.packet_id != second.packet_id);
        for id in [first.packet_id, second.packet_id, c.packet_id] {
            s.send_packet(&Packet::PubAck(id));
        }
        quiet(&mut s, QUIET, "after the re-sent messages");

        // Once acknowledged, nothing is re-sent on the next reconnect.
        s.send_packet(&Packet::Disconnect);
        drop(s);
        wait_disconnects(&b, &sid, 2);
        let (mut s, present) = raw(&b, &sid, false, 0);
        assert!(present);
        quiet(&mut s, QUIET, "acknowledged messages re-sent");
    }
}

#[test]
fn unfinished_qos2_resends_pubrel_or_publish_on_reconnect() {
    for cores in CORE_COUNTS {
        let n = cores_n(cores);
        let b = start(cores, &[]);
        let sid = id_on_core("rd2-sub", n - 1, n);
        let (mut s, _) = raw(&b, &sid, false, 0);
        subscribe(&mut s, 1, "rd2/#", Q::ExactlyOnce);
        let (mut publ, _) = raw(&b, &id_on_core("rd2-pub", 0, n), true, 0);

        // PUBREC sent, PUBCOMP not: the broker re-sends PUBREL.
        pub2(&mut publ, "rd2/x", b"two", 1);
        let p = next_publish(&mut s, "qos 2");
        assert_eq!(
            (p.qos, p.dup, text(&p).as_str()),
            (Q::ExactlyOnce, false, "two")
        );
        s.send_packet(&Packet::PubRec(p.packet_id));
        assert_eq!(s.recv(T), Some(Packet::PubRel(p.packet_id)));
        drop(s);
        wait_disconnects(&b, &sid, 1);
        let (mut s, present) = raw(&b, &sid, false, 0);
        assert!(present);
        assert_eq!(
            s.recv(T),
            Some(Packet::PubRel(p.packet_id)),
            "cores {cores}: PUBREL re-sent first with the same id"
        );
        s.send_packet(&Packet::PubComp(p.packet_id));
        quiet(&mut s, QUIET, "after PUBCOMP");

        // No PUBREC at all: the PUBLISH itself is re-sent with DUP.
        pub2(&mut publ, "rd2/y", b"three", 2);
        let q = next_publish(&mut s, "second qos 2");
        assert_eq!(
            (q.qos, q.dup, text(&q).as_str()),
            (Q::ExactlyOnce, false, "three")
        );
        drop(s);
        wait_disconnects(&b, &sid, 2);
        let (mut s, present) = raw(&b, &sid, false, 0);
        assert!(present);
        let r = next_publish(&mut s, "re-sent qos 2");
        assert_eq!(r.packet_id, q.packet_id);
        assert!(r.dup, "cores {cores}: DUP on re-sent QoS 2 PUBLISH");
        assert_eq!((r.qos, text(&r).as_str()), (Q::ExactlyOnce, "three"));
        s.send_packet(&Packet::PubRec(r.packet_id));
        assert_eq!(s.recv(T), Some(Packet::PubRel(r.packet_id)));
        s.send_packet(&Packet::PubComp(r.packet_id));
        quiet(&mut s, QUIET, "after the completed handshake");
    }
}

// ----- 4. QoS 2 both ways -----------------------------------------------------------

#[test]
fn qos2_inbound_is_routed_exactly_once() {
    for cores in CORE_COUNTS {
        let n = cores_n(cores);
        let b = start(cores, &[]);
        let (mut s, _) = raw(&b, &id_on_core("eo-sub", 0, n), true, 0);
        subscribe(&mut s, 1, "eo/#", Q::AtLeastOnce);
        let (mut publ, _) = raw(&b, &id_on_core("eo-pub", n - 1, n), true, 0);
        let first = publish_packet("eo/x", b"once", Q::ExactlyOnce, 7, false);
        publ.send_packet(&first);
        assert_eq!(publ.recv(T), Some(Packet::PubRec(7)));
        let Packet::Publish(mut again) = first else {
            unreachable!()
        };
        again.dup = true;
        publ.send_packet(&Packet::Publish(again));
        assert_eq!(
            publ.recv(T),
            Some(Packet::PubRec(7)),
            "a re-sent QoS 2 PUBLISH is acknowledged again"
        );
        publ.send_packet(&Packet::PubRel(7));
        assert_eq!(publ.recv(T), Some(Packet::PubComp(7)));

        let p = next_publish(&mut s, "exactly once");
        assert_eq!(text(&p), "once");
        s.send_packet(&Packet::PubAck(p.packet_id));
        quiet(&mut s, QUIET, "QoS 2 PUBLISH routed twice");

        // After PUBREL the id is free again: a new message with it is routed.
        pub2(&mut publ, "eo/x", b"again", 7);
        let p = next_publish(&mut s, "packet id reused after PUBCOMP");
        assert_eq!(text(&p), "again");
        s.send_packet(&Packet::PubAck(p.packet_id));
        quiet(&mut s, QUIET, "after the second message");

        // A persistent publisher that lost its connection after PUBREC
        // re-sends the PUBLISH (DUP) on reconnect: acknowledged, not routed again.
        let pid = id_on_core("eo-ppub", n - 1, n);
        let (mut pp, _) = raw(&b, &pid, false, 0);
        pp.send_packet(&publish_packet("eo/x", b"across", Q::ExactlyOnce, 9, false));
        assert_eq!(pp.recv(T), Some(Packet::PubRec(9)));
        drop(pp);
        wait_disconnects(&b, &pid, 1);
        let p = next_publish(&mut s, "first send of the persistent publisher");
        assert_eq!(text(&p), "across");
        s.send_packet(&Packet::PubAck(p.packet_id));
        let (mut pp, present) = raw(&b, &pid, false, 0);
        assert!(present);
        pp.send_packet(&Packet::Publish(Publish {
            dup: true,
            qos: Q::ExactlyOnce,
            retain: false,
            topic: "eo/x".into(),
            packet_id: 9,
            payload: Bytes::from_static(b"across"),
            properties: None,
        }));
        assert_eq!(pp.recv(T), Some(Packet::PubRec(9)));
        pp.send_packet(&Packet::PubRel(9));
        assert_eq!(pp.recv(T), Some(Packet::PubComp(9)));
        quiet(
            &mut s,
            QUIET,
            "QoS 2 PUBLISH re-sent after reconnect was routed again",
        );
    }
}

/// QoS 2 to a raw subscriber: PUBLISH, PUBREC, PUBREL, PUBCOMP. With a
/// window of 1 the next message waits for PUBCOMP (not just PUBREC).
#[test]
fn qos2_outbound_full_handshake() {
    for cores in CORE_COUNTS {
        let n = cores_n(cores);
        let b = start(cores, &["--max-inflight", "1"]);
        let (mut s, _) = raw(&b, &id_on_core("oh-sub", n - 1, n), true, 0);
        subscribe(&mut s, 1, "oh/#", Q::ExactlyOnce);
        let (mut publ, _) = raw(&b, &id_on_core("oh-pub", 0, n), true, 0);
        pub2(&mut publ, "oh/x", b"first", 1);
        pub2(&mut publ, "oh/x", b"second", 2);

        let p = next_publish(&mut s, "first");
        assert_eq!(
            (p.qos, p.dup, text(&p).as_str()),
            (Q::ExactlyOnce, false, "first")
        );
        quiet(&mut s, Duration::from_millis(300), "window of 1 is full");
        s.send_packet(&Packet::PubRec(p.packet_id));
        assert_eq!(s.recv(T), Some(Packet::PubRel(p.packet_id)));
        quiet(
            &mut s,
            Duration::from_millis(300),
            "window freed before PUBCOMP",
        );
        s.send_packet(&Packet::PubComp(p.packet_id));

        let q = next_publish(&mut s, "second, after PUBCOMP");
        assert_eq!(
            (q.qos, q.dup, text(&q).as_str()),
            (Q::ExactlyOnce, false, "second")
        );
        s.send_packet(&Packet::PubRec(q.packet_id));
        assert_eq!(s.recv(T), Some(Packet::PubRel(q.packet_id)));
        s.send_packet(&Packet::PubComp(q.packet_id));
        quiet(&mut s, QUIET, "after both handshakes");
    }
}

// ----- 5. takeover --------------------------------------------------------------

#[test]
fn takeover_closes_first_publishes_its_will_and_keeps_session() {
    for cores in CORE_COUNTS {
        let n = cores_n(cores);
        let b = start(cores, &[]);
        let (mut publ, _) = raw(&b, &id_on_core("tk-pub", 0, n), true, 0);
        // One client id homed on every core; the TCP connections land wherever
        // the kernel puts them and are handed to the home core.
        for home in 0..n {
            let id = id_on_core(&format!("tk{home}"), home, n);
            let will_topic = format!("tk/will/{home}");
            let data_topic = format!("tk/data/{home}");
            let (mut w, _) = raw(
                &b,
                &id_on_core(&format!("tkw{home}"), (home + 1) % n, n),
                true,
                0,
            );
            subscribe(&mut w, 1, &will_topic, Q::AtLeastOnce);

            let (mut a, present) = raw_connect(
                &b,
                &id,
                false,
                0,
                Some(will(&will_topic, b"A", Q::AtLeastOnce, false)),
            );
            assert!(!present);
            subscribe(&mut a, 1, &data_topic, Q::AtLeastOnce);

            let (mut second, present) = raw_connect(
                &b,
                &id,
                false,
                0,
                Some(will(&will_topic, b"B", Q::AtLeastOnce, false)),
            );
            assert!(present, "cores {cores} {id}: session survives takeover");
            assert!(
                a.closed_within(T),
                "cores {cores} {id}: first connection not closed by the broker"
            );
            let p = next_publish(&mut w, "will of the first connection");
            assert_eq!(text(&p), "A", "cores {cores} {id}");
            w.send_packet(&Packet::PubAck(p.packet_id));
            quiet(&mut w, Duration::from_millis(300), "only the first will");
            assert!(
                b.wait_log(&format!("client {id} taken over"), T),
                "no takeover log for {id}"
            );

            // The subscription made by the first connection serves the second.
            pub1(&mut publ, &data_topic, b"to-second", 1);
            let p = next_publish(&mut second, "subscription after takeover");
            assert_eq!(text(&p), "to-second");
            second.send_packet(&Packet::PubAck(p.packet_id));

            // A third, clean, connection: takes over too (second's will) and
            // starts without the session.
            let (mut third, present) = raw(&b, &id, true, 0);
            assert!(!present, "cores {cores} {id}: clean takeover");
            assert!(second.closed_within(T), "second connection not closed");
            let p = next_publish(&mut w, "will of the second connection");
            assert_eq!(text(&p), "B");
            w.send_packet(&Packet::PubAck(p.packet_id));
            pub1(&mut publ, &data_topic, b"to-third", 2);
            quiet(&mut third, QUIET, "clean takeover kept the subscription");
            third.send_packet(&Packet::Disconnect);
            quiet(&mut w, Duration::from_millis(300), "third has no will");
        }
    }
}

// ----- 6. keepalive ------------------------------------------------------------

#[test]
fn silent_client_is_closed_after_keepalive_and_its_will_published() {
    for cores in CORE_COUNTS {
        let n = cores_n(cores);
        let b = start(cores, &[]);
        let (mut w, _) = raw(&b, &id_on_core("ka-w", 0, n), true, 0);
        subscribe(&mut w, 1, "ka/will", Q::AtLeastOnce);
        let kid = id_on_core("ka-silent", n - 1, n);
        let (mut k, _) = raw_connect(
            &b,
            &kid,
            true,
            1,
            Some(will("ka/will", b"ka-gone", Q::AtLeastOnce, false)),
        );
        let t0 = Instant::now();
        assert!(
            !k.closed_within(Duration::from_millis(1000)),
            "cores {cores}: closed before 1 s of a 1 s keepalive"
        );
        let left = Duration::from_secs(4).saturating_sub(t0.elapsed());
        assert!(
            k.closed_within(left),
            "cores {cores}: silent client not closed within 4 s; logs:\n{}",
            b.logs()
        );
        let closed_after = t0.elapsed();
        assert!(closed_after >= Duration::from_millis(1000));
        let p = next_publish(&mut w, "keepalive will");
        assert_eq!(
            (p.topic.as_ref(), text(&p).as_str()),
            ("ka/will", "ka-gone")
        );
        w.send_packet(&Packet::PubAck(p.packet_id));
        // The log is read by another thread: wait for the line, don't race it.
        assert!(
            b.wait_log(&format!("client {kid} keepalive timeout"), T),
            "cores {cores}: no keepalive log for {kid}"
        );
    }
}

#[test]
fn pinging_client_stays_connected() {
    for cores in CORE_COUNTS {
        let n = cores_n(cores);
        let b = start(cores, &[]);
        let (mut w, _) = raw(&b, &id_on_core("kp-w", 0, n), true, 0);
        subscribe(&mut w, 1, "kp/will", Q::AtLeastOnce);
        let (mut k, _) = raw_connect(
            &b,
            &id_on_core("kp-pinger", n - 1, n),
            true,
            1,
            Some(will("kp/will", b"kp-gone", Q::AtLeastOnce, false)),
        );
        let t0 = Instant::now();
        let mut pings = 0;
        while t0.elapsed() < Duration::from_secs(3) {
            let sent = Instant::now();
            k.send_packet(&Packet::PingReq);
            assert_eq!(
                k.recv(Duration::from_secs(1)),
                Some(Packet::PingResp),
                "cores {cores}: ping {pings} unanswered"
            );
            pings += 1;
            std::thread::sleep(Duration::from_millis(500).saturating_sub(sent.elapsed()));
        }
        assert!(pings >= 5);
        sync(&mut k, T);
        quiet(&mut w, Duration::from_millis(200), "pinging client's will");
    }
}

#[test]
fn max_keepalive_refuses_larger_or_zero() {
    for cores in CORE_COUNTS {
        let b = start(cores, &["--max-keepalive", "10"]);
        for ka in [60u16, 0, 11] {
            let mut c = Raw::connect(b.port);
            c.send_packet(&connect_packet(&format!("mk-{ka}"), true, ka, None));
            let a = connack(&mut c);
            assert_eq!(
                a.code,
                ConnectReturnCode::IdentifierRejected,
                "cores {cores}: keepalive {ka}"
            );
            assert!(c.closed_within(T), "refused connection not closed");
        }
        for ka in [10u16, 1] {
            let (mut c, _) = raw(&b, &format!("mk-ok-{ka}"), true, ka);
            sync(&mut c, T);
        }
    }
}

// ----- 7. wills ------------------------------------------------------------------

#[test]
fn will_on_socket_close_and_protocol_error_not_on_disconnect() {
    for cores in CORE_COUNTS {
        let n = cores_n(cores);
        let b = start(cores, &[]);
        let (mut w, _) = raw(&b, &id_on_core("wl-w", 0, n), true, 0);
        subscribe(&mut w, 1, "will/#", Q::AtLeastOnce);
        let expect_will = |w: &mut Raw, topic: &str, payload: &str| {
            let p = next_publish(w, topic);
            assert_eq!((p.topic.as_ref(), text(&p).as_str()), (topic, payload));
            assert!(!p.retain);
            w.send_packet(&Packet::PubAck(p.packet_id));
        };

        // The TCP stream just dropped.
        let (d, _) = raw_connect(
            &b,
            &id_on_core("wl-drop", n - 1, n),
            true,
            0,
            Some(will("will/drop", b"dropped", Q::AtLeastOnce, false)),
        );
        drop(d);
        expect_will(&mut w, "will/drop", "dropped");

        // Malformed packets: the broker closes and publishes the will.
        let bad: [&[u8]; 3] = [
            // PUBLISH whose topic length runs past the packet.
            &[0x30, 0x02, 0x00, 0x05],
            // PUBLISH with an empty topic.
            &[0x30, 0x02, 0x00, 0x00],
            // PUBLISH with QoS 3 (flags 0x06).
            &[0x36, 0x07, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01],
        ];
        for (i, bytes) in bad.iter().enumerate() {
            let topic = format!("will/proto/{i}");
            let (mut e, _) = raw_connect(
                &b,
                &id_on_core(&format!("wl-bad{i}"), (i + 1) % n, n),
                true,
                0,
                Some(will(&topic, b"bad", Q::AtLeastOnce, false)),
            );
            e.send(bytes);
            assert!(
                e.closed_within(T),
                "cores {cores}: malformed packet {bytes:02x?} did not close"
            );
            expect_will(&mut w, &topic, "bad");
        }

        // DISCONNECT discards the will.
        let cid = id_on_core("wl-clean", n - 1, n);
        let (mut c, _) = raw_connect(
            &b,
            &cid,
            true,
            0,
            Some(will("will/clean", b"should-not", Q::AtLeastOnce, false)),
        );
        c.send_packet(&Packet::Disconnect);
        drop(c);
        wait_disconnects(&b, &cid, 1);
        quiet(&mut w, QUIET, "will published after DISCONNECT");
    }
}

#[test]
fn retained_will_reaches_later_subscribers() {
    for cores in CORE_COUNTS {
        let n = cores_n(cores);
        let b = start(cores, &[]);
        let (mut w, _) = raw(&b, &id_on_core("rw-w", 0, n), true, 0);
        subscribe(&mut w, 1, "rw/#", Q::AtLeastOnce);
        let (d, _) = raw_connect(
            &b,
            &id_on_core("rw-dying", n - 1, n),
            true,
            0,
            Some(will("rw/status", b"offline", Q::AtLeastOnce, true)),
        );
        drop(d);
        // An existing subscriber gets it as a live message (retain 0).
        let p = next_publish(&mut w, "will to existing subscriber");
        assert_eq!(
            (p.topic.as_ref(), text(&p).as_str()),
            ("rw/status", "offline")
        );
        assert!(!p.retain);
        w.send_packet(&Packet::PubAck(p.packet_id));

        // A later subscriber gets the retained will (retain 1). The retained
        // store is replicated between cores asynchronously: retry briefly.
        let deadline = Instant::now() + T;
        let mut attempt = 0;
        let got = loop {
            attempt += 1;
            let core = attempt % n;
            let (mut l, _) = raw(
                &b,
                &id_on_core(&format!("rw-late{attempt}"), core, n),
                true,
                0,
            );
            subscribe(&mut l, 1, "rw/status", Q::AtLeastOnce);
            match l.recv(Duration::from_millis(500)) {
                Some(Packet::Publish(p)) => break p,
                None if Instant::now() < deadline => continue,
                other => panic!("cores {cores}: no retained will: {other:?}"),
            }
        };
        assert_eq!(text(&got), "offline");
        assert!(got.retain, "cores {cores}: retained will has retain 1");
        assert_eq!(got.qos, Q::AtLeastOnce);
    }
}

// ----- 8. inflight window and bounded queue ----------------------------------------

fn window_and_queue(policy: &str, want_live: &[&str], want_offline: &[&str]) {
    for cores in CORE_COUNTS {
        let n = cores_n(cores);
        let b = start(
            cores,
            &[
                "--max-inflight",
                "2",
                "--max-queued-messages",
                "3",
                "--queue-full-policy",
                policy,
                // The drop policy of a connected session, as without back-pressure
                // (tests/backpressure.rs covers the default).
                "--backpressure",
                "false",
                "--sys-interval",
                "1",
            ],
        );
        let (mut s, _) = raw(&b, &id_on_core("win-sub", 0, n), true, 0);
        subscribe(&mut s, 1, "win/#", Q::AtLeastOnce);
        let (mut publ, _) = raw(&b, &id_on_core("win-pub", n - 1, n), true, 0);
        for i in 0..10u16 {
            pub1(&mut publ, "win/x", i.to_string().as_bytes(), i + 1);
        }
        let first = next_publish(&mut s, "window 1/2");
        let second = next_publish(&mut s, "window 2/2");
        quiet(&mut s, QUIET, "more than the inflight window (2)");
        let mut got = vec![text(&first), text(&second)];
        for p in [&first, &second] {
            assert_eq!(p.qos, Q::AtLeastOnce);
            s.send_packet(&Packet::PubAck(p.packet_id));
        }
        got.extend(drain_acking(&mut s));
        assert_eq!(got, want_live, "cores {cores} policy {policy}");

        // 10 published, 2 inflight, 3 queued: 5 dropped.
        let mut sys = sys_watcher(
            &b,
            &id_on_core("win-sys", 1 % n, n),
            &["publish/messages/dropped", "ringmq/dropped/queue_full"],
        );
        sys_until(
            &mut sys,
            &[
                ("publish/messages/dropped", &|v| v == 5),
                ("ringmq/dropped/queue_full", &|v| v == 5),
            ],
            T,
        );
        drop(sys);

        // An offline persistent session keeps at most 3 messages.
        let oid = id_on_core("win-off", 1 % n, n);
        let (mut o, _) = raw(&b, &oid, false, 0);
        subscribe(&mut o, 1, "off/#", Q::AtLeastOnce);
        o.send_packet(&Packet::Disconnect);
        drop(o);
        wait_disconnects(&b, &oid, 1);
        for i in 0..10u16 {
            pub1(&mut publ, "off/x", i.to_string().as_bytes(), i + 100);
        }
        let (mut o, present) = raw(&b, &oid, false, 0);
        assert!(present);
        assert_eq!(
            drain_acking(&mut o),
            want_offline,
            "cores {cores} policy {policy}: offline queue"
        );
    }
}

#[test]
fn inflight_window_and_bounded_queue_drop_new() {
    window_and_queue("drop-new", &["0", "1", "2", "3", "4"], &["0", "1", "2"]);
}

#[test]
fn inflight_window_and_bounded_queue_drop_old() {
    window_and_queue("drop-old", &["0", "1", "7", "8", "9"], &["7", "8", "9"]);
}

/// A packet that arrives in two TCP segments must be reassembled. The
/// stalled-subscriber flood below depends on it (1 KiB PUBLISHes written in
/// 100 KiB bursts straddle reads); this is its smallest reproduction, for
/// the CONNECT phase and for a served connection.
#[test]
fn packet_split_across_reads_is_reassembled() {
    for cores in CORE_COUNTS {
        let b = start(cores, &[]);
        let gap = Duration::from_millis(200);

        // CONNECT in two writes.
        let mut c = Raw::connect(b.port);
        let mut bytes = BytesMut::new();
        protocol::encode(&connect_packet("split-connect", true, 0, None), &mut bytes);
        c.send(&bytes[..3]);
        std::thread::sleep(gap);
        c.send(&bytes[3..]);
        match c.recv(T) {
            Some(Packet::ConnAck(a)) => assert_eq!(a.code, ConnectReturnCode::Accepted),
            other => panic!(
                "cores {cores}: split CONNECT: expected CONNACK, got {other:?}; logs:\n{}",
                b.logs()
            ),
        }

        // QoS 1 PUBLISH in two writes, to the client itself.
        subscribe(&mut c, 1, "split/t", Q::AtLeastOnce);
        let mut bytes = BytesMut::new();
        protocol::encode(
            &publish_packet("split/t", &[b'p'; 300], Q::AtLeastOnce, 5, false),
            &mut bytes,
        );
        c.send(&bytes[..4]);
        std::thread::sleep(gap);
        c.send(&bytes[4..]);
        let mut got = Vec::new();
        for _ in 0..2 {
            match c.recv(T) {
                Some(p) => got.push(p),
                None => panic!(
                    "cores {cores}: split PUBLISH: got {got:?} then nothing; logs:\n{}",
                    b.logs()
                ),
            }
        }
        assert!(got.contains(&Packet::PubAck(5)), "cores {cores}: {got:?}");
        assert!(
            got.iter()
                .any(|p| matches!(p, Packet::Publish(p) if p.payload.len() == 300)),
            "cores {cores}: {got:?}"
        );
    }
}

// ----- 9. a stalled subscriber -----------------------------------------------------

#[test]
fn stalled_subscriber_does_not_block_others() {
    const FLOOD: usize = 20_000;
    const BATCH: usize = 100;
    for cores in CORE_COUNTS {
        let n = cores_n(cores);
        // The stalled subscriber holds the publisher (back-pressure) until it is
        // declared stalled: 1 s here instead of the default 5 s, which would
        // race this test's 5 s timeouts.
        let b = start(cores, &["--sys-interval", "1", "--stall-timeout", "1"]);
        // Never reads after its SUBACK; a small receive buffer fills quickly.
        let (mut stalled, _) = raw(&b, &id_on_core("st-stall", 0, n), true, 0);
        set_rcvbuf(&stalled, 4096);
        subscribe(&mut stalled, 1, "stall/#", Q::AtMostOnce);
        let (mut normal, _) = raw(&b, &id_on_core("st-normal", 1 % n, n), true, 0);
        subscribe(&mut normal, 1, "stall/#", Q::AtLeastOnce);
        let mut sys = sys_watcher(
            &b,
            &id_on_core("st-sys", 2 % n, n),
            &["ringmq/dropped/write_buffer_full"],
        );

        let reader = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut flood = 0usize;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match normal.recv(left) {
                    Some(Packet::Publish(p)) if &*p.topic == "stall/end" => {
                        normal.send_packet(&Packet::PubAck(p.packet_id));
                        return (flood, true);
                    }
                    Some(Packet::Publish(_)) => flood += 1,
                    Some(other) => panic!("normal subscriber: unexpected {other:?}"),
                    None => return (flood, false),
                }
            }
        });

        let (mut publ, _) = raw(&b, &id_on_core("st-pub", n - 1, n), true, 0);
        let payload = vec![b'x'; 1024];
        let mut max_rss_kib = 0;
        let mut buf = BytesMut::new();
        for batch in 0..FLOOD / BATCH {
            buf.clear();
            for i in 0..BATCH {
                let topic = format!("stall/{}", (batch * BATCH + i) % 8);
                protocol::encode_publish(
                    &mut buf,
                    &topic,
                    &payload,
                    Q::AtMostOnce,
                    0,
                    false,
                    false,
                );
            }
            if let Err(e) = std::io::Write::write_all(&mut publ.stream, &buf) {
                panic!(
                    "cores {cores}: publisher write failed at batch {batch}: {e}; logs:\n{}",
                    b.logs()
                );
            }
            if batch % 10 == 0 {
                max_rss_kib = max_rss_kib.max(b.rss_kib());
            }
        }
        // The broker has read the whole flood (the publisher was not blocked).
        sync(&mut publ, Duration::from_secs(15));
        pub1(&mut publ, "stall/end", b"end", 1);
        let (flood, saw_end) = reader.join().unwrap();
        max_rss_kib = max_rss_kib.max(b.rss_kib());
        assert!(
            saw_end,
            "cores {cores}: the normal subscriber was blocked ({flood} of {FLOOD} received)"
        );
        assert!(
            flood > 0,
            "cores {cores}: normal subscriber got no flood message"
        );
        assert!(
            max_rss_kib < 200 * 1024,
            "cores {cores}: broker RSS reached {max_rss_kib} KiB"
        );
        sys_until(
            &mut sys,
            &[("ringmq/dropped/write_buffer_full", &|v| v > 0)],
            T,
        );
        eprintln!(
            "cores {cores}: normal subscriber got {flood}/{FLOOD}, max RSS {max_rss_kib} KiB"
        );
        // Keep the stalled client connected (and unread) until here.
        drop(stalled);
    }
}
