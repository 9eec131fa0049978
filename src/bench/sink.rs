//! `ringmq-bench sink`: a TCP server that answers CONNECT with CONNACK and
//! then only reads, counting PUBLISH frames. It measures what the generator
//! can offer when the broker is not the bottleneck. One thread per
//! connection (std I/O): it is a measuring device, not a broker.

use super::SinkArgs;
use crate::protocol::{self, Packet};
use bytes::BytesMut;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub fn run(args: &SinkArgs) -> i32 {
    let listener = match TcpListener::bind(args.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ringmq-bench sink: listen {}: {e}", args.listen);
            return 1;
        }
    };
    eprintln!("sink listening on {}", args.listen);
    let frames = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    {
        let (frames, bytes) = (frames.clone(), bytes.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (frames, bytes) = (frames.clone(), bytes.clone());
                std::thread::spawn(move || serve(stream, &frames, &bytes));
            }
        });
    }
    let started = Instant::now();
    let mut last = 0;
    // The rate counts from the first second that saw traffic to the last.
    let mut first_frame_at: Option<(Instant, u64)> = None;
    let mut last_frame_at = (Instant::now(), 0u64);
    while started.elapsed() < Duration::from_secs(args.duration) {
        std::thread::sleep(Duration::from_secs(1));
        let now = frames.load(Ordering::Relaxed);
        if first_frame_at.is_none() && now > 0 {
            first_frame_at = Some((Instant::now(), now));
        }
        if now != last {
            last_frame_at = (Instant::now(), now);
        }
        eprintln!(
            "{}s recv total={now} rate={}/sec",
            started.elapsed().as_secs(),
            now - last
        );
        last = now;
    }
    let total = frames.load(Ordering::Relaxed);
    let (from, base) = first_frame_at.unwrap_or((Instant::now(), 0));
    let (to, top) = last_frame_at;
    let secs = to.saturating_duration_since(from).as_secs_f64();
    let rate = if secs > 0.0 {
        (top - base) as f64 / secs
    } else {
        0.0
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({"kind": "sink", "frames": total, "bytes": bytes.load(Ordering::Relaxed), "rate": rate})
        );
    } else {
        println!("sink: {total} frames, {rate:.0} frames/sec");
    }
    0
}

fn serve(mut stream: std::net::TcpStream, frames: &AtomicU64, bytes: &AtomicU64) {
    let mut buf = BytesMut::with_capacity(1 << 20);
    let mut chunk = vec![0u8; 1 << 20];
    // CONNECT → CONNACK.
    loop {
        match protocol::decode(&mut buf, None, usize::MAX) {
            Ok(Some(Packet::Connect(_))) => break,
            Ok(Some(_)) | Err(_) => return,
            Ok(None) => {}
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    if stream.write_all(&[0x20, 2, 0, 0]).is_err() {
        return;
    }
    // Then only read: walk the frame headers to count packets.
    let mut carry = buf.to_vec();
    loop {
        let mut pos = 0;
        let mut n = 0u64;
        while let Ok(Some(len)) = protocol::frame_len(&carry[pos..], usize::MAX) {
            if carry.len() - pos < len {
                break;
            }
            pos += len;
            n += 1;
        }
        frames.fetch_add(n, Ordering::Relaxed);
        carry.drain(..pos);
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(r) => {
                bytes.fetch_add(r as u64, Ordering::Relaxed);
                carry.extend_from_slice(&chunk[..r]);
            }
        }
    }
}
