//! Back-pressure: a connected QoS 1 subscriber that is slower than its
//! publishers makes the broker stop reading them instead of dropping, so
//! nothing is lost and memory stays bounded; a stalled subscriber (no ack
//! for `--stall-timeout`) releases them and the drop policy applies; offline
//! sessions keep the drop policy. With --cores 1 and 4, publisher and
//! subscriber homed on different cores.

mod common;
use common::*;
use ringmq::protocol::{Packet, QoS as Q};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

/// Watches `$SYS/broker/{topic}` until `want` holds for its value (values
/// are published every `--sys-interval`); returns the last value seen.
fn sys_until(b: &Broker, id: &str, topic: &str, want: impl Fn(u64) -> bool) -> Option<u64> {
    let mut w = Raw::connect(b.port);
    w.mqtt_connect(id, true, 30);
    w.send_packet(&subscribe_packet(
        1,
        &format!("$SYS/broker/{topic}"),
        Q::AtMostOnce,
    ));
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(Packet::Publish(p)) = w.recv(Duration::from_millis(500)) {
            last = std::str::from_utf8(&p.payload)
                .ok()
                .and_then(|v| v.parse().ok());
            if last.is_some_and(&want) {
                break;
            }
        }
    }
    last
}

#[tokio::test]
async fn slow_subscriber_pauses_publisher_without_loss() {
    for cores in CORE_COUNTS {
        let n: usize = cores.parse().unwrap();
        let b = Broker::start(&[
            "--cores",
            cores,
            "--max-inflight",
            "4",
            "--max-queued-messages",
            "20",
            "--sys-interval",
            "1",
        ]);
        let sub_id = id_on_core("bp-sub", 0, n);
        let mut sub = Raw::connect(b.port);
        sub.mqtt_connect(&sub_id, true, 30);
        sub.send_packet(&subscribe_packet(1, "bp/#", Q::AtLeastOnce));
        assert!(matches!(sub.recv(T), Some(Packet::SubAck(_))));

        // rumqttc publishes 600 QoS 1 messages as fast as its window allows.
        let (publ, _) = Client::connect(b.port, &id_on_core("bp-pub", n - 1, n), true).await;
        let count = 600;
        let publisher = tokio::spawn(async move {
            for i in 0..count {
                publ.client
                    .publish("bp/x", QoS::AtLeastOnce, false, i.to_string())
                    .await
                    .unwrap();
            }
            publ
        });
        // The subscriber acks slowly: 1 ms per message, 30x slower than the publisher.
        let got = tokio::task::spawn_blocking(move || {
            let mut got = Vec::new();
            while got.len() < count {
                match sub.recv(T) {
                    Some(Packet::Publish(p)) => {
                        got.push(String::from_utf8(p.payload.to_vec()).unwrap());
                        std::thread::sleep(Duration::from_millis(1));
                        sub.send_packet(&Packet::PubAck(p.packet_id));
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            got
        })
        .await
        .unwrap();
        let _publ = publisher.await.unwrap();
        let want: Vec<String> = (0..count).map(|i| i.to_string()).collect();
        assert_eq!(got, want, "cores {cores}: every message, in order");
        // The retained $SYS value is at most one interval old: wait past it.
        std::thread::sleep(Duration::from_millis(1200));
        assert_eq!(
            sys_until(&b, "bp-sys-1", "publish/messages/dropped", |v| v == 0),
            Some(0),
            "cores {cores}"
        );
        let pauses = sys_until(&b, "bp-sys-2", "ringmq/backpressure/pauses", |v| v > 0).unwrap();
        assert!(pauses > 0, "cores {cores}: the publisher was paused");
    }
}

#[tokio::test]
async fn stalled_subscriber_releases_publisher_and_drops() {
    for cores in CORE_COUNTS {
        let n: usize = cores.parse().unwrap();
        let b = Broker::start(&[
            "--cores",
            cores,
            "--max-inflight",
            "2",
            "--max-queued-messages",
            "5",
            "--stall-timeout",
            "1",
            "--sys-interval",
            "1",
        ]);
        // A subscriber that never acks, and a healthy one on the same topic.
        let mut stalled = Raw::connect(b.port);
        stalled.mqtt_connect(&id_on_core("st-dead", 0, n), true, 0);
        stalled.send_packet(&subscribe_packet(1, "st/#", Q::AtLeastOnce));
        assert!(matches!(stalled.recv(T), Some(Packet::SubAck(_))));
        let (mut healthy, _) = Client::connect(b.port, &id_on_core("st-ok", 1 % n, n), true).await;
        healthy.subscribe("st/#", QoS::AtLeastOnce).await;

        // A small client window, so that the publisher is still sending when
        // the pause reaches it (and the drops after the stall are visible).
        let mut opts = options(b.port, &id_on_core("st-pub", n - 1, n), true);
        opts.set_inflight(5);
        let (publ, _) = Client::connect_with(opts).await;
        let count = 100;
        let started = Instant::now();
        for i in 0..count {
            publ.client
                .publish("st/x", QoS::AtLeastOnce, false, i.to_string())
                .await
                .unwrap();
        }
        // The publisher is paused by the dead subscriber, then released after
        // the stall timeout: the healthy subscriber still gets everything.
        let got = healthy.publishes(count, T).await;
        assert_eq!(
            got.len(),
            count,
            "cores {cores}: healthy subscriber got all"
        );
        assert!(
            started.elapsed() < Duration::from_secs(9),
            "released after the stall timeout"
        );
        let dropped = sys_until(&b, "st-sys", "ringmq/dropped/queue_full", |v| v > 0).unwrap();
        assert!(
            dropped > 0,
            "cores {cores}: the stalled subscriber's overflow is dropped"
        );
        assert!(
            b.wait_log("stalled", Duration::from_secs(2)),
            "stall is logged"
        );
        drop(stalled);
    }
}

#[tokio::test]
async fn offline_session_keeps_the_drop_policy() {
    for cores in CORE_COUNTS {
        let n: usize = cores.parse().unwrap();
        let b = Broker::start(&["--cores", cores, "--max-queued-messages", "5"]);
        let id = id_on_core("off-sub", 0, n);
        let (mut sub, _) = Client::connect(b.port, &id, false).await;
        sub.subscribe("off/#", QoS::AtLeastOnce).await;
        sub.disconnect().await;
        assert!(b.wait_log(&format!("client disconnected: {id}"), T));
        // Publishing 20 to an offline session never pauses the publisher.
        let (publ, _) = Client::connect(b.port, &id_on_core("off-pub", n - 1, n), true).await;
        let (mut live, _) = Client::connect(b.port, &id_on_core("off-live", 1 % n, n), true).await;
        live.subscribe("off/#", QoS::AtLeastOnce).await;
        for i in 0..20 {
            publ.client
                .publish("off/x", QoS::AtLeastOnce, false, i.to_string())
                .await
                .unwrap();
        }
        assert_eq!(live.publishes(20, T).await.len(), 20);
        let (mut back, present) = Client::connect(b.port, &id, false).await;
        assert!(present);
        let got: Vec<String> = back
            .publishes(20, Duration::from_secs(2))
            .await
            .iter()
            .map(|p| String::from_utf8(p.payload.to_vec()).unwrap())
            .collect();
        assert_eq!(
            got,
            ["0", "1", "2", "3", "4"],
            "cores {cores}: drop-new keeps the first 5"
        );
    }
}

#[tokio::test]
async fn slow_qos0_reader_pauses_publisher_without_loss() {
    for cores in CORE_COUNTS {
        let n: usize = cores.parse().unwrap();
        let dir = std::env::temp_dir().join(format!("ringmq-bp0-{}-{cores}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("ringmq.toml");
        std::fs::write(&conf, "max_write_buffer = 16384\nsys_interval = 1\n").unwrap();
        let b = Broker::start(&["--cores", cores, "--config", conf.to_str().unwrap()]);
        let mut sub = Raw::connect(b.port);
        sub.mqtt_connect(&id_on_core("bp0-sub", 0, n), true, 0);
        sub.send_packet(&subscribe_packet(1, "bp0/#", Q::AtMostOnce));
        assert!(matches!(sub.recv(T), Some(Packet::SubAck(_))));

        let (publ, _) = Client::connect(b.port, &id_on_core("bp0-pub", n - 1, n), true).await;
        let count = 2000;
        let payload = vec![7u8; 1024];
        let publisher = tokio::spawn(async move {
            for _ in 0..count {
                publ.client
                    .publish("bp0/x", QoS::AtMostOnce, false, payload.clone())
                    .await
                    .unwrap();
            }
            publ
        });
        // The subscriber reads slowly: 2 MB arrive in small sips.
        let got = tokio::task::spawn_blocking(move || {
            let mut got = 0;
            while got < count {
                match sub.recv(Duration::from_secs(5)) {
                    Some(Packet::Publish(p)) => {
                        assert_eq!(p.payload.len(), 1024);
                        got += 1;
                        if got % 20 == 0 {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            got
        })
        .await
        .unwrap();
        let _publ = publisher.await.unwrap();
        assert_eq!(got, count, "cores {cores}: every QoS 0 message arrived");
        std::thread::sleep(Duration::from_millis(1200));
        assert_eq!(
            sys_until(&b, "bp0-sys", "ringmq/dropped/write_buffer_full", |v| v
                == 0),
            Some(0)
        );
        assert!(sys_until(&b, "bp0-sys2", "ringmq/backpressure/pauses", |v| v > 0).unwrap() > 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
