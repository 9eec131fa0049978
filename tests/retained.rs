//! Retained messages through rumqttc, with one and four cores: store and
//! deliver to later subscribers, replace, clear, wildcard filters and the `$`
//! rule, QoS downgrade, the retain flag on live versus stored delivery, and
//! replication between cores (publisher, subscriber and topic home core all
//! different).
//!
//! A retained message is sequenced by its topic's home core and replicated
//! to the others, so a subscriber on a third core may in principle subscribe
//! before the replica arrives. [`retained_for`] retries with fresh clients
//! for up to ~1 s and prints (stderr) when a retry was needed; the report of
//! the test run says whether any was.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const T: Duration = Duration::from_secs(5);
/// How long a subscriber waits for (more) retained messages after its SUBACK.
const SETTLE: Duration = Duration::from_millis(200);
/// Fresh-client attempts allowed for replication (~1 s in all).
const ATTEMPTS: usize = 4;

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

/// Publishes and waits until the broker has handled it: PUBACK/PUBCOMP for
/// QoS 1/2; for QoS 0, the PUBACK of a QoS 1 publish sent after it on the
/// same connection (packets of one connection are handled in order).
async fn publish_done(c: &mut Client, topic: &str, qos: QoS, retain: bool, payload: &[u8]) {
    c.client
        .publish(topic, qos, retain, payload.to_vec())
        .await
        .unwrap();
    if qos == QoS::AtMostOnce {
        c.client
            .publish("fence/x", QoS::AtLeastOnce, false, "fence")
            .await
            .unwrap();
    }
    loop {
        match c.next(T).await {
            Some(Ok(Event::Incoming(Incoming::PubAck(_)))) => return,
            Some(Ok(Event::Incoming(Incoming::PubComp(_)))) => return,
            Some(Ok(_)) => {}
            other => panic!("publish to {topic} not acknowledged: {other:?}"),
        }
    }
}

/// A fresh clean client homed on `core` subscribes to `filter` at `qos` and
/// collects what arrives until nothing more for [`SETTLE`]. Retries with a
/// new client while `ok` rejects the result, up to [`ATTEMPTS`] times.
/// Returns the last result and the number of attempts it took.
async fn retained_for(
    port: u16,
    core: usize,
    cores: usize,
    filter: &str,
    qos: QoS,
    ok: impl Fn(&[rumqttc::Publish]) -> bool,
) -> (Vec<rumqttc::Publish>, usize) {
    let mut last = Vec::new();
    for attempt in 1..=ATTEMPTS {
        let prefix = format!("rsub{}", UNIQUE.fetch_add(1, Ordering::Relaxed));
        let (mut sub, _) = Client::connect(port, &id_on_core(&prefix, core, cores), true).await;
        let codes = sub.subscribe(filter, qos).await;
        assert_eq!(codes.len(), 1);
        let mut got = Vec::new();
        while let Some(p) = sub.publish_within(SETTLE).await {
            got.push(p);
        }
        sub.disconnect().await;
        if ok(&got) {
            if attempt > 1 {
                eprintln!(
                    "RETRY NEEDED: {filter} (cores {cores}, subscriber core {core}) \
                     was right only on attempt {attempt}"
                );
            }
            return (got, attempt);
        }
        last = got;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (last, ATTEMPTS)
}

/// topic → payload of the publishes.
fn by_topic(v: &[rumqttc::Publish]) -> BTreeMap<String, Vec<u8>> {
    v.iter()
        .map(|p| (p.topic.clone(), p.payload.to_vec()))
        .collect()
}

/// A topic under `prefix` whose retained home is `core`.
fn topic_on_core(prefix: &str, core: usize, cores: usize) -> String {
    id_on_core(prefix, core, cores)
}

#[tokio::test]
async fn retained_is_stored_and_delivered_later() {
    for cores in CORE_COUNTS {
        let n: usize = cores.parse().unwrap();
        let b = Broker::start(&["--cores", cores]);
        let (mut publ, _) = Client::connect(b.port, &id_on_core("rp", 0, n), true).await;
        // Topic home core differs from publisher and subscriber cores (n = 4).
        let topic = topic_on_core("r/stored", n / 2, n);
        publish_done(&mut publ, &topic, QoS::AtLeastOnce, true, b"v1").await;
        let (got, attempts) =
            retained_for(b.port, n - 1, n, &topic, QoS::AtLeastOnce, |g| g.len() == 1).await;
        assert_eq!(
            got.len(),
            1,
            "cores {cores}: {got:?} after {attempts} tries"
        );
        assert_eq!(got[0].topic, topic);
        assert_eq!(&got[0].payload[..], b"v1");
        assert!(got[0].retain, "cores {cores}: stored delivery has retain=0");
        assert_eq!(got[0].qos, QoS::AtLeastOnce);
        // Still there for the next subscriber (delivery does not consume it).
        let (again, _) =
            retained_for(b.port, 0, n, &topic, QoS::AtLeastOnce, |g| g.len() == 1).await;
        assert_eq!(by_topic(&again), by_topic(&got), "cores {cores}");
    }
}

#[tokio::test]
async fn newer_retained_replaces_older() {
    for cores in CORE_COUNTS {
        let n: usize = cores.parse().unwrap();
        let b = Broker::start(&["--cores", cores]);
        let (mut publ, _) = Client::connect(b.port, &id_on_core("rp", n - 1, n), true).await;
        let topic = topic_on_core("r/replace", 0, n);
        for v in ["v1", "v2", "v3"] {
            publish_done(&mut publ, &topic, QoS::AtLeastOnce, true, v.as_bytes()).await;
        }
        let (got, attempts) = retained_for(b.port, n / 2, n, &topic, QoS::AtLeastOnce, |g| {
            g.len() == 1 && &g[0].payload[..] == b"v3"
        })
        .await;
        let payloads: Vec<_> = got.iter().map(|p| p.payload.to_vec()).collect();
        assert_eq!(
            payloads,
            vec![b"v3".to_vec()],
            "cores {cores}: only the newest is kept ({attempts} tries)"
        );
        assert!(got[0].retain);
    }
}

#[tokio::test]
async fn empty_retained_payload_clears() {
    for cores in CORE_COUNTS {
        let n: usize = cores.parse().unwrap();
        let b = Broker::start(&["--cores", cores]);
        let (mut publ, _) = Client::connect(b.port, &id_on_core("rp", 0, n), true).await;
        let topic = topic_on_core("r/clear", n - 1, n);
        let other = topic_on_core("r/keep", n - 1, n);
        publish_done(&mut publ, &topic, QoS::AtLeastOnce, true, b"v1").await;
        publish_done(&mut publ, &other, QoS::AtLeastOnce, true, b"kept").await;
        // A live subscriber gets the empty message as an ordinary publish.
        let (mut live, _) = Client::connect(b.port, &id_on_core("live", n / 2, n), true).await;
        live.subscribe(&topic, QoS::AtLeastOnce).await;
        let first = live.publish_within(T).await.expect("retained v1");
        assert_eq!(&first.payload[..], b"v1");
        publish_done(&mut publ, &topic, QoS::AtLeastOnce, true, b"").await;
        let cleared = live
            .publish_within(T)
            .await
            .expect("empty publish delivered");
        assert!(cleared.payload.is_empty());
        assert!(!cleared.retain, "live delivery has retain=0");
        // A later subscriber gets nothing for the cleared topic.
        let (got, attempts) =
            retained_for(b.port, n / 2, n, &topic, QoS::AtLeastOnce, |g| g.is_empty()).await;
        assert!(
            got.is_empty(),
            "cores {cores}: cleared topic still delivered {got:?} ({attempts} tries)"
        );
        // Clearing one topic leaves the others.
        let (got, _) = retained_for(b.port, 0, n, "r/#", QoS::AtLeastOnce, |g| g.len() == 1).await;
        assert_eq!(
            by_topic(&got),
            BTreeMap::from([(other.clone(), b"kept".to_vec())]),
            "cores {cores}"
        );
        // Clearing a topic that has nothing retained is harmless.
        publish_done(&mut publ, "r/never", QoS::AtLeastOnce, true, b"").await;
        let (got, _) =
            retained_for(b.port, 0, n, "r/never", QoS::AtLeastOnce, |g| g.is_empty()).await;
        assert!(got.is_empty());
    }
}

#[tokio::test]
async fn retained_through_wildcards_and_dollar_rule() {
    for cores in CORE_COUNTS {
        let n: usize = cores.parse().unwrap();
        let b = Broker::start(&["--cores", cores, "--sys-interval", "0"]);
        let (mut publ, _) = Client::connect(b.port, &id_on_core("rp", 0, n), true).await;
        for (t, v) in [
            ("r/a", "A"),
            ("r/b/c", "BC"),
            ("r", "R"),
            ("$x/r", "DOLLAR"),
            ("other/z", "Z"),
        ] {
            publish_done(&mut publ, t, QoS::AtLeastOnce, true, v.as_bytes()).await;
        }
        let expect = |pairs: &[(&str, &str)]| -> BTreeMap<String, Vec<u8>> {
            pairs
                .iter()
                .map(|(t, v)| (t.to_string(), v.as_bytes().to_vec()))
                .collect()
        };
        for (filter, want) in [
            ("r/+", expect(&[("r/a", "A")])),
            ("r/#", expect(&[("r", "R"), ("r/a", "A"), ("r/b/c", "BC")])),
            ("r/+/c", expect(&[("r/b/c", "BC")])),
            ("+/a", expect(&[("r/a", "A")])),
            (
                "#",
                expect(&[("r", "R"), ("r/a", "A"), ("r/b/c", "BC"), ("other/z", "Z")]),
            ),
            ("+", expect(&[("r", "R")])),
            ("$x/#", expect(&[("$x/r", "DOLLAR")])),
            ("$x/+", expect(&[("$x/r", "DOLLAR")])),
        ] {
            for core in [0, n - 1] {
                let (got, attempts) =
                    retained_for(b.port, core, n, filter, QoS::AtLeastOnce, |g| {
                        by_topic(g) == want
                    })
                    .await;
                assert_eq!(
                    by_topic(&got),
                    want,
                    "cores {cores}, filter {filter}, subscriber core {core} ({attempts} tries)"
                );
                assert_eq!(got.len(), want.len(), "{filter}: duplicates in {got:?}");
                assert!(got.iter().all(|p| p.retain), "{filter}: retain flag");
            }
        }
    }
}

#[tokio::test]
async fn retained_delivered_at_min_qos() {
    for cores in CORE_COUNTS {
        let n: usize = cores.parse().unwrap();
        let b = Broker::start(&["--cores", cores]);
        let (mut publ, _) = Client::connect(b.port, &id_on_core("rp", 0, n), true).await;
        for (msg_qos, topic) in [
            (QoS::AtMostOnce, "rq/0"),
            (QoS::AtLeastOnce, "rq/1"),
            (QoS::ExactlyOnce, "rq/2"),
        ] {
            publish_done(&mut publ, topic, msg_qos, true, topic.as_bytes()).await;
        }
        let qos_of = |q: QoS| q as u8;
        for sub_qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let (got, attempts) =
                retained_for(b.port, n - 1, n, "rq/+", sub_qos, |g| g.len() == 3).await;
            assert_eq!(got.len(), 3, "cores {cores} ({attempts} tries): {got:?}");
            for p in &got {
                let msg_qos: u8 = p.topic[3..].parse().unwrap();
                assert_eq!(
                    qos_of(p.qos),
                    msg_qos.min(qos_of(sub_qos)),
                    "cores {cores}: {} subscribed at {sub_qos:?}",
                    p.topic
                );
                assert!(p.retain);
                assert_eq!(p.payload, p.topic.as_bytes());
            }
        }
    }
}

#[tokio::test]
async fn live_delivery_has_retain_false() {
    for cores in CORE_COUNTS {
        let n: usize = cores.parse().unwrap();
        let b = Broker::start(&["--cores", cores]);
        let (mut sub, _) = Client::connect(b.port, &id_on_core("rlive", n - 1, n), true).await;
        sub.subscribe("rl/#", QoS::AtLeastOnce).await;
        let (mut publ, _) = Client::connect(b.port, &id_on_core("rp", 0, n), true).await;
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let topic = format!("rl/{}", qos as u8);
            publish_done(&mut publ, &topic, qos, true, b"live").await;
            let p = sub.publish_within(T).await.expect("live delivery");
            assert_eq!(p.topic, topic);
            assert!(
                !p.retain,
                "cores {cores}: live delivery at {qos:?} has retain=1"
            );
        }
        // The stored copies are flagged when delivered to a new subscriber.
        let (got, attempts) =
            retained_for(b.port, 0, n, "rl/#", QoS::ExactlyOnce, |g| g.len() == 3).await;
        assert_eq!(got.len(), 3, "cores {cores} ({attempts} tries)");
        assert!(got.iter().all(|p| p.retain));
        // The live subscriber got each message once, and nothing more.
        assert!(
            sub.publish_within(Duration::from_millis(200))
                .await
                .is_none()
        );
    }
}

#[tokio::test]
async fn retained_replicated_across_cores() {
    let cores = "4";
    let n = 4;
    let b = Broker::start(&["--cores", cores]);
    let mut retries = 0;
    // Every publisher core; the subscriber and the topic's home on the others.
    for p in 0..n {
        let s = (p + 1) % n;
        let h = (p + 2) % n;
        let (mut publ, _) =
            Client::connect(b.port, &id_on_core(&format!("xp{p}"), p, n), true).await;
        let topic = topic_on_core(&format!("x/{p}"), h, n);
        assert_eq!(ringmq::broker::home_core(&topic, n), h);
        let payload = format!("from core {p}");
        publish_done(
            &mut publ,
            &topic,
            QoS::AtLeastOnce,
            true,
            payload.as_bytes(),
        )
        .await;
        for sub_core in [s, h, p] {
            let (got, attempts) =
                retained_for(b.port, sub_core, n, &topic, QoS::AtLeastOnce, |g| {
                    g.len() == 1
                })
                .await;
            retries += attempts - 1;
            assert_eq!(
                got.len(),
                1,
                "publisher core {p}, home {h}, subscriber core {sub_core}: {got:?}"
            );
            assert_eq!(got[0].payload, payload.as_bytes());
            assert!(got[0].retain);
        }
        // Replace it from another core: every core converges on the newest.
        let (mut publ2, _) =
            Client::connect(b.port, &id_on_core(&format!("xq{p}"), s, n), true).await;
        publish_done(&mut publ2, &topic, QoS::AtLeastOnce, true, b"newest").await;
        for sub_core in 0..n {
            let (got, attempts) =
                retained_for(b.port, sub_core, n, &topic, QoS::AtLeastOnce, |g| {
                    g.len() == 1 && &g[0].payload[..] == b"newest"
                })
                .await;
            retries += attempts - 1;
            assert_eq!(
                by_topic(&got),
                BTreeMap::from([(topic.clone(), b"newest".to_vec())]),
                "subscriber core {sub_core}"
            );
        }
    }
    eprintln!("retained_replicated_across_cores: {retries} retries needed");
}
