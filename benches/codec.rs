//! Codec micro-benchmarks: PUBLISH decode/encode (64 B and 4 KiB payloads)
//! and CONNECT decode. Run: `cargo bench --bench codec`.

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ringmq::protocol::{self, Connect, Packet, ProtocolVersion, QoS};
use std::hint::black_box;

fn publish_bytes(payload: usize, qos: QoS) -> BytesMut {
    let mut b = BytesMut::new();
    protocol::encode_publish(
        &mut b,
        "devices/12345/telemetry",
        &vec![7u8; payload],
        qos,
        42,
        false,
        false,
    );
    b
}

fn bench_publish(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish_v311");
    for (name, size) in [("64B", 64), ("4KiB", 4096)] {
        let frame = publish_bytes(size, QoS::AtLeastOnce);
        g.throughput(Throughput::Elements(1));
        // The copy of the frame is made outside the timed part; decode itself
        // slices the buffer without copying the payload.
        g.bench_function(format!("decode_{name}"), |b| {
            b.iter_batched_ref(
                || frame.clone(),
                |buf| {
                    black_box(protocol::decode(buf, Some(ProtocolVersion::V311), 1 << 20).unwrap())
                },
                BatchSize::SmallInput,
            )
        });
        let payload = vec![7u8; size];
        let mut out = BytesMut::with_capacity(1 << 20);
        g.bench_function(format!("encode_{name}"), |b| {
            b.iter(|| {
                if out.len() > (1 << 19) {
                    out.clear();
                }
                protocol::encode_publish(
                    &mut out,
                    "devices/12345/telemetry",
                    black_box(&payload),
                    QoS::AtLeastOnce,
                    42,
                    false,
                    false,
                );
            })
        });
    }
    g.finish();
}

fn bench_connect(c: &mut Criterion) {
    let mut frame = BytesMut::new();
    protocol::encode(
        &Packet::Connect(Box::new(Connect {
            version: ProtocolVersion::V311,
            clean_session: false,
            keep_alive_s: 60,
            client_id: "client_id_test_10007".into(),
            will: Some(protocol::Will {
                topic: "status/10007".into(),
                payload: Bytes::from_static(b"offline"),
                qos: QoS::AtLeastOnce,
                retain: true,
                properties: None,
            }),
            username: Some("user".into()),
            password: Some(Bytes::from_static(b"secret")),
            properties: None,
        })),
        &mut frame,
    );
    c.bench_function("connect_v311/decode", |b| {
        b.iter_batched_ref(
            || frame.clone(),
            |buf| black_box(protocol::decode(buf, None, 1 << 20).unwrap()),
            BatchSize::SmallInput,
        )
    });
}

/// MQTT 5 PUBLISH: without properties, and with the common ones (message
/// expiry, content type, one user property).
fn bench_publish_v5(c: &mut Criterion) {
    let props = ringmq::protocol::Properties {
        message_expiry_interval: Some(3600),
        content_type: Some("application/json".into()),
        user_properties: vec![("trace".into(), "abc123".into())],
        ..Default::default()
    };
    let mut g = c.benchmark_group("publish_v5");
    for (name, size) in [("64B", 64), ("4KiB", 4096)] {
        let payload = vec![7u8; size];
        for (label, p) in [("", None), ("_props", Some(&props))] {
            let mut frame = BytesMut::new();
            protocol::encode_publish_v5(
                &mut frame,
                "devices/12345/telemetry",
                &payload,
                QoS::AtLeastOnce,
                42,
                false,
                false,
                p,
            );
            g.throughput(Throughput::Elements(1));
            g.bench_function(format!("decode_{name}{label}"), |b| {
                b.iter_batched_ref(
                    || frame.clone(),
                    |buf| {
                        black_box(
                            protocol::decode(buf, Some(ProtocolVersion::V5), 1 << 20).unwrap(),
                        )
                    },
                    BatchSize::SmallInput,
                )
            });
            let mut out = BytesMut::with_capacity(1 << 20);
            g.bench_function(format!("encode_{name}{label}"), |b| {
                b.iter(|| {
                    if out.len() > (1 << 19) {
                        out.clear();
                    }
                    protocol::encode_publish_v5(
                        &mut out,
                        "devices/12345/telemetry",
                        black_box(&payload),
                        QoS::AtLeastOnce,
                        42,
                        false,
                        false,
                        p,
                    );
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_publish, bench_publish_v5, bench_connect);
criterion_main!(benches);
