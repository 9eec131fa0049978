//! Publish/subscribe through rumqttc: QoS 0/1/2 both ways, wildcards, the `$`
//! rule, QoS downgrade, ordering, unsubscribe, across one and four cores.

mod common;
use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn qos_levels_deliver_and_downgrade() {
    for cores in CORE_COUNTS {
        let b = Broker::start(&["--cores", cores]);
        let n = cores.parse().unwrap();
        for (sub_qos, pub_qos, want) in [
            (QoS::AtMostOnce, QoS::AtMostOnce, QoS::AtMostOnce),
            (QoS::AtLeastOnce, QoS::AtLeastOnce, QoS::AtLeastOnce),
            (QoS::ExactlyOnce, QoS::ExactlyOnce, QoS::ExactlyOnce),
            (QoS::AtMostOnce, QoS::ExactlyOnce, QoS::AtMostOnce),
            (QoS::AtLeastOnce, QoS::ExactlyOnce, QoS::AtLeastOnce),
            (QoS::ExactlyOnce, QoS::AtLeastOnce, QoS::AtLeastOnce),
        ] {
            // Subscriber and publisher homed on different cores when n > 1.
            let (mut sub, _) = Client::connect(b.port, &id_on_core("qs", 0, n), true).await;
            let (publ, _) = Client::connect(b.port, &id_on_core("qp", n - 1, n), true).await;
            let topic = format!("q/{}/{}", sub_qos as u8, pub_qos as u8);
            sub.subscribe(&topic, sub_qos).await;
            publ.client
                .publish(&topic, pub_qos, false, "hello")
                .await
                .unwrap();
            let p = sub.publish_within(T).await.expect("delivered");
            assert_eq!(p.topic, topic);
            assert_eq!(&p.payload[..], b"hello");
            assert_eq!(p.qos, want, "cores {cores} sub {sub_qos:?} pub {pub_qos:?}");
            assert!(!p.retain);
            sub.disconnect().await;
        }
    }
}

#[tokio::test]
async fn wildcards_and_dollar_topics() {
    for cores in CORE_COUNTS {
        let b = Broker::start(&["--cores", cores]);
        let (mut plus, _) = Client::connect(b.port, "w-plus", true).await;
        let (mut hash, _) = Client::connect(b.port, "w-hash", true).await;
        let (mut all, _) = Client::connect(b.port, "w-all", true).await;
        let (mut dollar, _) = Client::connect(b.port, "w-dollar", true).await;
        plus.subscribe("a/+/c", QoS::AtLeastOnce).await;
        hash.subscribe("a/#", QoS::AtLeastOnce).await;
        all.subscribe("#", QoS::AtLeastOnce).await;
        dollar.subscribe("$app/#", QoS::AtLeastOnce).await;
        let (publ, _) = Client::connect(b.port, "w-pub", true).await;
        for t in ["a/b/c", "a", "a/x/y", "$app/z"] {
            publ.client
                .publish(t, QoS::AtLeastOnce, false, t)
                .await
                .unwrap();
        }
        let topics = |v: Vec<rumqttc::Publish>| v.into_iter().map(|p| p.topic).collect::<Vec<_>>();
        assert_eq!(topics(plus.publishes(1, T).await), ["a/b/c"]);
        assert_eq!(topics(hash.publishes(3, T).await), ["a/b/c", "a", "a/x/y"]);
        // `#` does not match `$app/z`.
        assert_eq!(topics(all.publishes(3, T).await), ["a/b/c", "a", "a/x/y"]);
        assert_eq!(topics(dollar.publishes(1, T).await), ["$app/z"]);
        assert!(
            all.publish_within(Duration::from_millis(300))
                .await
                .is_none()
        );
        assert!(
            plus.publish_within(Duration::from_millis(100))
                .await
                .is_none()
        );
    }
}

#[tokio::test]
async fn per_publisher_order_is_kept_across_cores() {
    for cores in CORE_COUNTS {
        let b = Broker::start(&["--cores", cores, "--max-inflight", "20"]);
        let n: usize = cores.parse().unwrap();
        let (mut sub, _) = Client::connect(b.port, &id_on_core("os", 0, n), true).await;
        sub.subscribe("order/#", QoS::AtLeastOnce).await;
        let (publ, _) = Client::connect(b.port, &id_on_core("op", n - 1, n), true).await;
        let count = 500;
        let publisher = tokio::spawn(async move {
            for i in 0..count {
                publ.client
                    .publish("order/x", QoS::AtLeastOnce, false, i.to_string())
                    .await
                    .unwrap();
            }
            publ
        });
        let got = sub.publishes(count, Duration::from_secs(20)).await;
        let _publ = publisher.await.unwrap();
        let seq: Vec<usize> = got
            .iter()
            .map(|p| std::str::from_utf8(&p.payload).unwrap().parse().unwrap())
            .collect();
        assert_eq!(seq, (0..count).collect::<Vec<_>>(), "cores {cores}");
    }
}

#[tokio::test]
async fn unsubscribe_stops_delivery_and_overlaps_deliver_once() {
    for cores in CORE_COUNTS {
        let b = Broker::start(&["--cores", cores]);
        let (mut sub, _) = Client::connect(b.port, "u-sub", true).await;
        sub.subscribe("u/+", QoS::AtMostOnce).await;
        sub.subscribe("u/#", QoS::AtLeastOnce).await;
        let (publ, _) = Client::connect(b.port, "u-pub", true).await;
        publ.client
            .publish("u/1", QoS::AtLeastOnce, false, "one")
            .await
            .unwrap();
        let p = sub.publish_within(T).await.expect("delivered");
        // Overlapping subscriptions: one copy, at the highest granted QoS.
        assert_eq!(p.qos, QoS::AtLeastOnce);
        assert!(
            sub.publish_within(Duration::from_millis(300))
                .await
                .is_none()
        );
        sub.client.unsubscribe("u/#").await.unwrap();
        sub.client.unsubscribe("u/+").await.unwrap();
        let mut unsubacks = 0;
        while unsubacks < 2 {
            match sub.next(T).await {
                Some(Ok(Event::Incoming(Incoming::UnsubAck(_)))) => unsubacks += 1,
                Some(Ok(_)) => {}
                other => panic!("no UNSUBACK: {other:?}"),
            }
        }
        publ.client
            .publish("u/1", QoS::AtLeastOnce, false, "two")
            .await
            .unwrap();
        assert!(
            sub.publish_within(Duration::from_millis(500))
                .await
                .is_none()
        );
    }
}

#[test]
fn invalid_filter_gets_suback_failure() {
    // rumqttc refuses to send an invalid filter, so this one is raw bytes.
    use ringmq::protocol::{Packet, QoS as Q, SubAckCode, Subscribe, SubscribeFilter};
    let b = Broker::start(&["--cores", "1"]);
    let mut c = Raw::connect(b.port);
    c.mqtt_connect("bad-filter", true, 30);
    let filters = ["a/#/b", "a/#", "a+", "$share/g", "+/x"];
    c.send_packet(&Packet::Subscribe(Subscribe {
        packet_id: 7,
        filters: filters
            .iter()
            .map(|f| SubscribeFilter {
                filter: (*f).into(),
                qos: Q::AtLeastOnce,
                no_local: false,
                retain_as_published: false,
                retain_handling: 0,
            })
            .collect(),
        properties: None,
    }));
    match c.recv(T) {
        Some(Packet::SubAck(s)) => {
            assert_eq!(s.packet_id, 7);
            assert_eq!(
                s.codes,
                vec![
                    SubAckCode::Failure,
                    SubAckCode::Granted(Q::AtLeastOnce),
                    SubAckCode::Failure,
                    SubAckCode::Failure,
                    SubAckCode::Granted(Q::AtLeastOnce),
                ]
            );
        }
        other => panic!("expected SUBACK, got {other:?}"),
    }
    // The connection stays usable.
    c.send_packet(&Packet::PingReq);
    assert_eq!(c.recv(T), Some(Packet::PingResp));
}

#[test]
fn packets_split_across_reads_arrive_intact() {
    // Regression: a frame that arrives in pieces must be reassembled, not
    // overwritten by the next read.
    use ringmq::protocol::{Packet, QoS as Q};
    for cores in CORE_COUNTS {
        let b = Broker::start(&["--cores", cores]);
        let mut sub = Raw::connect(b.port);
        sub.mqtt_connect("split-sub", true, 30);
        sub.send_packet(&subscribe_packet(1, "split/#", Q::AtLeastOnce));
        assert!(matches!(sub.recv(T), Some(Packet::SubAck(_))));
        let mut publ = Raw::connect(b.port);
        publ.mqtt_connect("split-pub", true, 30);
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for (i, payload) in [b"small payload".to_vec(), big.clone()]
            .into_iter()
            .enumerate()
        {
            let mut bytes = bytes::BytesMut::new();
            ringmq::protocol::encode(
                &publish_packet("split/x", &payload, Q::AtLeastOnce, 10 + i as u16, false),
                &mut bytes,
            );
            // Byte by byte for the header, then in uneven pieces.
            let (head, rest) = bytes.split_at(5);
            for byte in head {
                publ.send(&[*byte]);
                std::thread::sleep(Duration::from_millis(5));
            }
            for piece in rest.chunks(7919) {
                publ.send(piece);
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(publ.recv(T), Some(Packet::PubAck(10 + i as u16)));
            match sub.recv(T) {
                Some(Packet::Publish(p)) => {
                    assert_eq!(&*p.topic, "split/x");
                    assert!(
                        p.payload == payload,
                        "payload {i} corrupted (cores {cores})"
                    );
                    sub.send_packet(&Packet::PubAck(p.packet_id));
                }
                other => panic!("expected PUBLISH, got {other:?}"),
            }
        }
    }
}

/// A connection quiet for over a second waits for data without a read
/// buffer; what it sends after that (a ping, then a PUBLISH larger than the
/// idle buffer, split across two writes) must be read whole, on io_uring and
/// epoll (`.ci/run` runs this file on both), and a subscriber quiet as long
/// still gets its delivery.
#[test]
fn quiet_connections_still_read_and_receive() {
    use ringmq::protocol;
    let io = std::env::var("RINGMQ_TEST_IO").unwrap_or_else(|_| "auto".into());
    {
        let b = Broker::start(&["--cores", "2"]);
        let mut sub = Raw::connect(b.port);
        sub.mqtt_connect(&id_on_core("quiet-s", 0, 2), true, 60);
        sub.send_packet(&subscribe_packet(1, "quiet/t", protocol::QoS::AtLeastOnce));
        assert!(matches!(sub.recv(T), Some(protocol::Packet::SubAck(_))));
        let mut publ = Raw::connect(b.port);
        publ.mqtt_connect(&id_on_core("quiet-p", 1, 2), true, 60);
        std::thread::sleep(Duration::from_millis(1300));
        publ.send(&[0xC0, 0]);
        assert!(
            matches!(publ.recv(T), Some(protocol::Packet::PingResp)),
            "{io}: PINGRESP after a quiet second"
        );
        std::thread::sleep(Duration::from_millis(1300));
        let payload = vec![7u8; 3000];
        let mut bytes = bytes::BytesMut::new();
        protocol::encode(
            &publish_packet("quiet/t", &payload, protocol::QoS::AtLeastOnce, 9, false),
            &mut bytes,
        );
        let (head, tail) = bytes.split_at(10);
        publ.send(head);
        std::thread::sleep(Duration::from_millis(100));
        publ.send(tail);
        assert!(
            matches!(publ.recv(T), Some(protocol::Packet::PubAck(9))),
            "{io}: PUBACK for a PUBLISH sent after a quiet second"
        );
        match sub.recv(T) {
            Some(protocol::Packet::Publish(p)) => {
                assert_eq!(&p.payload[..], &payload[..], "{io}");
            }
            other => panic!("{io}: expected the PUBLISH, got {other:?}"),
        }
    }
}

/// QoS 0 deliveries that wait for the coalescing window (made long here so
/// that most of them do) all arrive, in order, and a QoS 1 message after them
/// is written at once together with what waited, still behind it.
#[test]
fn coalesced_qos0_deliveries_arrive_in_order() {
    use ringmq::protocol::{self, Packet};
    const SUBSCRIBERS: usize = 150;
    const QOS0: usize = 20;
    let b = Broker::start(&["--cores", "2", "--write-coalesce-us", "50000"]);
    let mut subs: Vec<Raw> = (0..SUBSCRIBERS)
        .map(|i| {
            let mut s = Raw::connect(b.port);
            s.mqtt_connect(&id_on_core(&format!("co-s{i}-"), i % 2, 2), true, 60);
            s.send_packet(&subscribe_packet(1, "co/t", protocol::QoS::AtLeastOnce));
            assert!(matches!(s.recv(T), Some(Packet::SubAck(_))));
            s
        })
        .collect();
    let mut publ = Raw::connect(b.port);
    publ.mqtt_connect(&id_on_core("co-p", 0, 2), true, 60);
    let expect_qos0 = |subs: &mut Vec<Raw>, range: std::ops::Range<usize>| {
        for (i, s) in subs.iter_mut().enumerate() {
            for n in range.clone() {
                match s.recv(T) {
                    Some(Packet::Publish(p)) => {
                        assert_eq!(p.qos, protocol::QoS::AtMostOnce);
                        assert_eq!(&p.payload[..], format!("m{n}").as_bytes(), "subscriber {i}");
                    }
                    other => panic!("subscriber {i}: expected m{n}, got {other:?}"),
                }
            }
        }
    };
    let send_qos0 = |publ: &mut Raw, range: std::ops::Range<usize>| {
        for n in range {
            let payload = format!("m{n}");
            let p = publish_packet(
                "co/t",
                payload.as_bytes(),
                protocol::QoS::AtMostOnce,
                0,
                false,
            );
            publ.send_packet(&p);
        }
    };
    // QoS 0 only: most flushes wait for the window's timer.
    send_qos0(&mut publ, 0..QOS0);
    expect_qos0(&mut subs, 0..QOS0);
    // QoS 0 then QoS 1: the QoS 1 delivery carries what waited.
    send_qos0(&mut publ, QOS0..2 * QOS0);
    publ.send_packet(&publish_packet(
        "co/t",
        b"last",
        protocol::QoS::AtLeastOnce,
        7,
        false,
    ));
    assert!(matches!(publ.recv(T), Some(Packet::PubAck(7))));
    expect_qos0(&mut subs, QOS0..2 * QOS0);
    for (i, s) in subs.iter_mut().enumerate() {
        match s.recv(T) {
            Some(Packet::Publish(p)) => {
                assert_eq!(p.qos, protocol::QoS::AtLeastOnce, "subscriber {i}");
                assert_eq!(&p.payload[..], b"last", "subscriber {i}");
            }
            other => panic!("subscriber {i}: expected the QoS 1 message, got {other:?}"),
        }
    }
}
