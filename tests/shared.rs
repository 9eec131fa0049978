//! Shared subscriptions `$share/{group}/{filter}`, with one and four cores:
//! each message reaches exactly one member of each group, spread over the
//! members, while other groups and plain subscribers get every message;
//! after a member unsubscribes the others get everything; invalid shared
//! filters get a SUBACK failure.

mod common;
use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);
const COUNT: usize = 60;

/// Drains every client's PUBLISHes until `complete` says the counts are
/// reached (or 6 s passed), then 300 ms longer to catch duplicates and
/// strays. Returns the payloads (message numbers) each client received.
async fn collect(
    clients: &mut [&mut Client],
    complete: impl Fn(&[Vec<usize>]) -> bool,
) -> Vec<Vec<usize>> {
    let mut got: Vec<Vec<usize>> = vec![Vec::new(); clients.len()];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    let mut settle_until: Option<tokio::time::Instant> = None;
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline || settle_until.is_some_and(|s| now >= s) {
            return got;
        }
        for (i, c) in clients.iter_mut().enumerate() {
            while let Some(p) = c.publish_within(Duration::from_millis(10)).await {
                assert_eq!(p.qos, QoS::AtLeastOnce, "{p:?}");
                assert!(!p.retain);
                got[i].push(std::str::from_utf8(&p.payload).unwrap().parse().unwrap());
            }
        }
        if settle_until.is_none() && complete(&got) {
            settle_until = Some(tokio::time::Instant::now() + Duration::from_millis(300));
        }
    }
}

fn sorted(mut v: Vec<usize>) -> Vec<usize> {
    v.sort_unstable();
    v
}

async fn publish_range(publ: &mut Client, topic: &str, range: std::ops::Range<usize>) {
    let n = range.len();
    for i in range {
        publ.client
            .publish(topic, QoS::AtLeastOnce, false, i.to_string())
            .await
            .unwrap();
    }
    let mut acks = 0;
    while acks < n {
        match publ.next(T).await {
            Some(Ok(Event::Incoming(Incoming::PubAck(_)))) => acks += 1,
            Some(Ok(_)) => {}
            other => panic!("publish not acknowledged ({acks}/{n}): {other:?}"),
        }
    }
}

#[tokio::test]
async fn each_message_reaches_one_member_per_group() {
    for cores in CORE_COUNTS {
        let n: usize = cores.parse().unwrap();
        let b = Broker::start(&["--cores", cores]);
        let mut g1 = Vec::new();
        for (k, core) in [0, 1, 2].into_iter().enumerate() {
            let id = id_on_core(&format!("g1m{k}"), core % n, n);
            let (mut c, _) = Client::connect(b.port, &id, true).await;
            let codes = c.subscribe("$share/g1/sh/t", QoS::AtLeastOnce).await;
            assert_eq!(
                codes,
                vec![rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce)]
            );
            g1.push(c);
        }
        let (mut g2, _) = Client::connect(b.port, &id_on_core("g2m", 3 % n, n), true).await;
        g2.subscribe("$share/g2/sh/t", QoS::AtLeastOnce).await;
        let (mut plain, _) = Client::connect(b.port, &id_on_core("plain", n - 1, n), true).await;
        plain.subscribe("sh/t", QoS::AtLeastOnce).await;
        let (mut publ, _) = Client::connect(b.port, &id_on_core("shp", 1 % n, n), true).await;

        publish_range(&mut publ, "sh/t", 0..COUNT).await;
        let [m0, m1, m2] = &mut g1[..] else {
            unreachable!()
        };
        let got = collect(&mut [m0, m1, m2, &mut g2, &mut plain], |g| {
            g[0].len() + g[1].len() + g[2].len() >= COUNT
                && g[3].len() >= COUNT
                && g[4].len() >= COUNT
        })
        .await;
        let g1_union = sorted(got[0..3].concat());
        assert_eq!(
            g1_union,
            (0..COUNT).collect::<Vec<_>>(),
            "cores {cores}: g1 must get each message exactly once; per member {:?}",
            got[0..3].iter().map(|v| v.len()).collect::<Vec<_>>()
        );
        for (k, v) in got[0..3].iter().enumerate() {
            assert!(
                !v.is_empty(),
                "cores {cores}: g1 member {k} got nothing; per member {:?}",
                got[0..3].iter().map(|v| v.len()).collect::<Vec<_>>()
            );
        }
        assert_eq!(
            sorted(got[3].clone()),
            (0..COUNT).collect::<Vec<_>>(),
            "cores {cores}: the only g2 member gets all"
        );
        assert_eq!(
            sorted(got[4].clone()),
            (0..COUNT).collect::<Vec<_>>(),
            "cores {cores}: the plain subscriber gets all"
        );
        eprintln!(
            "cores {cores}: g1 spread {:?}",
            got[0..3].iter().map(|v| v.len()).collect::<Vec<_>>()
        );

        // One g1 member leaves: the other two share everything.
        g1[1].client.unsubscribe("$share/g1/sh/t").await.unwrap();
        loop {
            match g1[1].next(T).await {
                Some(Ok(Event::Incoming(Incoming::UnsubAck(_)))) => break,
                Some(Ok(_)) => {}
                other => panic!("no UNSUBACK: {other:?}"),
            }
        }
        publish_range(&mut publ, "sh/t", COUNT..2 * COUNT).await;
        let [m0, m1, m2] = &mut g1[..] else {
            unreachable!()
        };
        let got = collect(&mut [m0, m2, m1, &mut g2, &mut plain], |g| {
            g[0].len() + g[1].len() >= COUNT && g[3].len() >= COUNT && g[4].len() >= COUNT
        })
        .await;
        assert_eq!(
            sorted(got[0..2].concat()),
            (COUNT..2 * COUNT).collect::<Vec<_>>(),
            "cores {cores}: remaining g1 members must get each message exactly once; \
             per member {:?}",
            got[0..2].iter().map(|v| v.len()).collect::<Vec<_>>()
        );
        assert!(
            got[2].is_empty(),
            "cores {cores}: the member that unsubscribed still got {:?}",
            got[2]
        );
        assert_eq!(
            sorted(got[3].clone()),
            (COUNT..2 * COUNT).collect::<Vec<_>>(),
            "cores {cores}: g2 after the unsubscribe"
        );
        assert_eq!(
            sorted(got[4].clone()),
            (COUNT..2 * COUNT).collect::<Vec<_>>(),
            "cores {cores}: plain subscriber after the unsubscribe"
        );
    }
}

#[test]
fn invalid_shared_filters_get_suback_failure() {
    use ringmq::protocol::{Packet, QoS as Q, SubAckCode, Subscribe, SubscribeFilter};
    for cores in CORE_COUNTS {
        let b = Broker::start(&["--cores", cores]);
        let mut c = Raw::connect(b.port);
        c.mqtt_connect("bad-share", true, 30);
        let cases = [
            ("$share/g", SubAckCode::Failure),
            ("$share//x", SubAckCode::Failure),
            ("$share/g/", SubAckCode::Failure),
            ("$share/g+/x", SubAckCode::Failure),
            ("$share/g#/x", SubAckCode::Failure),
            ("$share/g/a/#/b", SubAckCode::Failure),
            ("$share/g/x/#", SubAckCode::Granted(Q::AtLeastOnce)),
        ];
        c.send_packet(&Packet::Subscribe(Subscribe {
            packet_id: 9,
            filters: cases
                .iter()
                .map(|(f, _)| SubscribeFilter {
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
                assert_eq!(s.packet_id, 9);
                assert_eq!(
                    s.codes,
                    cases.iter().map(|(_, c)| *c).collect::<Vec<_>>(),
                    "cores {cores}: {:?}",
                    cases.iter().map(|(f, _)| *f).collect::<Vec<_>>()
                );
            }
            other => panic!("cores {cores}: expected SUBACK, got {other:?}"),
        }
        // Each one alone, too.
        for (i, (f, code)) in cases.iter().enumerate() {
            c.send_packet(&subscribe_packet(20 + i as u16, f, Q::AtMostOnce));
            match c.recv(T) {
                Some(Packet::SubAck(s)) => {
                    let want = match code {
                        SubAckCode::Failure => SubAckCode::Failure,
                        SubAckCode::Granted(_) => SubAckCode::Granted(Q::AtMostOnce),
                    };
                    assert_eq!(s.codes, vec![want], "cores {cores}: {f}");
                }
                other => panic!("cores {cores}: {f}: expected SUBACK, got {other:?}"),
            }
        }
        // The connection stays usable, and the valid one delivers.
        let mut p = Raw::connect(b.port);
        p.mqtt_connect("share-pub", true, 30);
        p.send_packet(&publish_packet("x/y", b"m", Q::AtLeastOnce, 1, false));
        assert_eq!(p.recv(T), Some(Packet::PubAck(1)));
        match c.recv(T) {
            Some(Packet::Publish(m)) => {
                assert_eq!(&*m.topic, "x/y");
                assert_eq!(&m.payload[..], b"m");
            }
            other => panic!("cores {cores}: expected the shared delivery, got {other:?}"),
        }
        c.send_packet(&Packet::PingReq);
        assert_eq!(c.recv(T), Some(Packet::PingResp));
    }
}
