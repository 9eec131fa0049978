//! Measurements of the load generator: counters (one set per thread, written
//! by that thread only, read by the reporter), the latency histogram and the
//! loss / duplicate / order tracker fed by the sequence numbers carried in
//! payloads. Owns no I/O.
//!
//! Payload layout when the payload is at least [`STAMP_BYTES`] long:
//! bytes 0..8 send time (ns since the Unix epoch, big endian), 8..12 the
//! publisher's client number, 12..16 its sequence number; the rest zeros.

use ahash::AHashMap;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of timestamp + publisher + sequence at the start of a payload.
pub const STAMP_BYTES: usize = 16;
/// Most gaps remembered per publisher before further ones count as lost outright.
const MISSING_TRACKED_MAX: usize = 100_000;

/// Names of the counters, in report order.
pub const COUNTER_NAMES: [&str; 10] = [
    "connect_succ",
    "connect_fail",
    "pub",
    "pub_succ",
    "recv",
    "conn_closed",
    "sub",
    "pub_fail",
    "sub_fail",
    "recv_aliased",
];

/// One thread's counters. Single writer (the owning thread), so increments
/// are a load and a store, not a locked read-modify-write.
#[derive(Default)]
pub struct Counters {
    values: [AtomicU64; COUNTER_NAMES.len()],
}

#[derive(Clone, Copy)]
pub enum Counter {
    ConnectSucc = 0,
    ConnectFail = 1,
    Pub = 2,
    PubSucc = 3,
    Recv = 4,
    ConnClosed = 5,
    Sub = 6,
    /// A QoS 1/2 publish whose MQTT 5 PUBACK / PUBREC / PUBCOMP carried a
    /// failure reason code (0x80 or above).
    PubFail = 7,
    /// A refused subscription (SUBACK 0x80, or an MQTT 5 failure reason).
    SubFail = 8,
    /// A received MQTT 5 PUBLISH whose topic came from a topic alias (empty
    /// topic): the broker's outgoing aliases at work.
    RecvAliased = 9,
}

impl Counters {
    #[inline]
    pub fn add(&self, c: Counter, n: u64) {
        let v = &self.values[c as usize];
        v.store(v.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    pub fn get(&self, c: usize) -> u64 {
        self.values[c].load(Ordering::Relaxed)
    }
}

/// Writes the stamp into the first 16 bytes of `payload`.
#[inline]
pub fn stamp(payload: &mut [u8], now_ns: u64, publisher: u32, seq: u32) {
    if let Some(head) = payload.get_mut(..STAMP_BYTES) {
        head[0..8].copy_from_slice(&now_ns.to_be_bytes());
        head[8..12].copy_from_slice(&publisher.to_be_bytes());
        head[12..16].copy_from_slice(&seq.to_be_bytes());
    }
}

/// Reads a stamp: (send time ns, publisher, sequence).
#[inline]
pub fn read_stamp(payload: &[u8]) -> Option<(u64, u32, u32)> {
    let head = payload.get(..STAMP_BYTES)?;
    let ts = u64::from_be_bytes(head[0..8].try_into().ok()?);
    let publisher = u32::from_be_bytes(head[8..12].try_into().ok()?);
    let seq = u32::from_be_bytes(head[12..16].try_into().ok()?);
    Some((ts, publisher, seq))
}

pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[derive(Default)]
struct Track {
    next: u32,
    missing: BTreeSet<u32>,
}

/// Per (subscriber, publisher) stream: what arrived, in what order.
#[derive(Default)]
pub struct SeqTracker {
    streams: AHashMap<(u32, u32), Track>,
    /// Messages that arrived exactly once (in or out of order).
    pub unique: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Gaps that could not be remembered (counted as lost).
    overflow_lost: u64,
}

impl SeqTracker {
    /// Records message `seq` of `publisher` seen by `subscriber`.
    pub fn record(&mut self, subscriber: u32, publisher: u32, seq: u32) {
        let t = self.streams.entry((subscriber, publisher)).or_default();
        if seq == t.next {
            t.next = seq.wrapping_add(1);
            self.unique += 1;
        } else if seq > t.next {
            for missing in t.next..seq {
                if t.missing.len() < MISSING_TRACKED_MAX {
                    t.missing.insert(missing);
                } else {
                    self.overflow_lost += 1;
                }
            }
            t.next = seq.wrapping_add(1);
            self.unique += 1;
        } else if t.missing.remove(&seq) {
            self.out_of_order += 1;
            self.unique += 1;
        } else {
            self.duplicated += 1;
        }
    }

    /// Gaps still open: messages after which a later one arrived but that
    /// never came (lost, as far as this subscriber can tell).
    pub fn gaps(&self) -> u64 {
        self.streams
            .values()
            .map(|t| t.missing.len() as u64)
            .sum::<u64>()
            + self.overflow_lost
    }

    pub fn merge(&mut self, other: SeqTracker) {
        self.unique += other.unique;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.overflow_lost += other.overflow_lost;
        for (k, t) in other.streams {
            self.streams.insert(k, t);
        }
    }
}

pub type Histogram = hdrhistogram::Histogram<u64>;

/// A latency histogram in microseconds, 1 µs to 100 s, 3 significant digits.
pub fn new_histogram() -> Histogram {
    // The bounds are constants that hdrhistogram accepts.
    hdrhistogram::Histogram::new_with_bounds(1, 100_000_000, 3).unwrap_or_else(|_| unreachable!())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trip() {
        let mut p = vec![0u8; 64];
        stamp(&mut p, 123_456_789, 7, 42);
        assert_eq!(read_stamp(&p), Some((123_456_789, 7, 42)));
        assert_eq!(read_stamp(&p[..15]), None);
    }

    #[test]
    fn tracker_counts_loss_duplicates_and_reordering() {
        let mut t = SeqTracker::default();
        for s in [0, 1, 2, 5, 3, 3, 6] {
            t.record(0, 1, s);
        }
        // 4 never came; 3 came late once and then again.
        assert_eq!(t.unique, 6);
        assert_eq!(t.out_of_order, 1);
        assert_eq!(t.duplicated, 1);
        assert_eq!(t.gaps(), 1);
        // Streams are per (subscriber, publisher).
        t.record(1, 1, 0);
        assert_eq!(t.unique, 7);
        assert_eq!(t.duplicated, 1);
    }
}
