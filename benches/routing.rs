//! Cross-core mailbox throughput (one producer core, one consumer core) and
//! fan-out routing of one publish to 1k and 100k subscribers on a shard.
//! Run: `cargo bench --bench routing`.

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringmq::broker::conn::ConnIo;
use ringmq::broker::mailbox::{self, Outbox, Receiver};
use ringmq::broker::shard::Shard;
use ringmq::broker::{Message, ShardMsg};
use ringmq::config::Config;
use ringmq::protocol::{
    Connect, Packet, ProtocolVersion, Publish, QoS, Subscribe, SubscribeFilter,
};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn message() -> Message {
    Message::new(
        "fan/out".into(),
        Bytes::from(vec![1u8; 64]),
        QoS::AtMostOnce,
        false,
    )
}

fn bench_mailbox(c: &mut Criterion) {
    let boxes = mailbox::mailboxes(2);
    let seen = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (boxes, seen, stop) = (boxes.clone(), seen.clone(), stop.clone());
        std::thread::spawn(move || {
            let rx = Receiver::new(1, boxes);
            while !stop.load(Ordering::Relaxed) {
                let mut n = 0u64;
                rx.drain(64, |_, batch| n += batch.len() as u64);
                if n > 0 {
                    seen.fetch_add(n, Ordering::Relaxed);
                } else {
                    std::hint::spin_loop();
                }
            }
        })
    };
    let mut outbox = Outbox::new(0, boxes);
    let msg = message();
    let mut g = c.benchmark_group("mailbox");
    g.throughput(Throughput::Elements(1));
    g.bench_function("publish_msgs_batched_64", |b| {
        b.iter_custom(|iters| {
            let target = seen.load(Ordering::Relaxed) + iters;
            let start = Instant::now();
            for i in 0..iters {
                outbox.push(
                    1,
                    ShardMsg::Publish {
                        msg: msg.clone(),
                        origin: None,
                    },
                );
                if i % 64 == 63 {
                    while outbox.flush() {
                        std::hint::spin_loop();
                    }
                }
            }
            while outbox.flush() {
                std::hint::spin_loop();
            }
            while seen.load(Ordering::Relaxed) < target {
                std::hint::spin_loop();
            }
            start.elapsed()
        })
    });
    g.finish();
    stop.store(true, Ordering::Relaxed);
    let _ = consumer.join();
}

/// A one-core shard with `n` QoS 0 subscribers of `fan/out` and one publisher.
fn shard_with_subscribers(n: usize) -> (Shard, Vec<Rc<ConnIo>>, (usize, u64)) {
    let config = Arc::new(Config {
        cores: 1,
        ..Config::default()
    });
    let mut shard = Shard::new(0, config, Outbox::new(0, mailbox::mailboxes(1)));
    let peer = "127.0.0.1:1".parse().unwrap();
    let connect = |shard: &mut Shard, id: String| {
        let io = Rc::new(ConnIo::new(-1));
        let c = Connect {
            version: ProtocolVersion::V311,
            clean_session: true,
            keep_alive_s: 0,
            client_id: id.into(),
            will: None,
            username: None,
            password: None,
            properties: None,
        };
        let key = shard.connect(io.clone(), Box::new(c), peer, false).unwrap();
        (io, key)
    };
    let mut ios = Vec::with_capacity(n);
    for i in 0..n {
        let (io, (k, generation)) = connect(&mut shard, format!("sub-{i}"));
        let sub = Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![SubscribeFilter {
                filter: "fan/out".into(),
                qos: QoS::AtMostOnce,
                no_local: false,
                retain_as_published: false,
                retain_handling: 0,
            }],
            properties: None,
        });
        let _ = shard.handle(k, generation, sub);
        io.take_pending();
        ios.push(io);
    }
    let (_, publisher) = connect(&mut shard, "publisher".into());
    (shard, ios, publisher)
}

fn bench_fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout_qos0");
    g.sample_size(10);
    for n in [1_000usize, 100_000] {
        let (mut shard, ios, (pk, pgen)) = shard_with_subscribers(n);
        let publish = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "fan/out".into(),
            packet_id: 0,
            payload: Bytes::from(vec![1u8; 64]),
            properties: None,
        };
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("one_publish_to_{n}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let _ = shard.handle(pk, pgen, Packet::Publish(publish.clone()));
                    total += start.elapsed();
                    for io in &ios {
                        io.take_pending();
                    }
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_mailbox, bench_fanout);
criterion_main!(benches);
