//! `$SYS/broker/...` statistics, as mosquitto publishes them. Every core sends
//! its counters to core 0 each interval; core 0 sums the latest of each and
//! publishes them as retained QoS 0 messages.

use super::shard::Shard;
use super::{Message, ShardMsg, ShardStats};
use crate::protocol::QoS;
use bytes::Bytes;
use bytestring::ByteString;
use std::time::Instant;

pub struct SysState {
    /// Latest counters of each core (core 0 only).
    latest: Vec<ShardStats>,
    started: Instant,
}

impl SysState {
    pub fn new(cores: usize) -> Self {
        SysState {
            latest: vec![ShardStats::default(); cores],
            started: Instant::now(),
        }
    }

    pub fn record(&mut self, core: usize, stats: ShardStats) {
        if let Some(slot) = self.latest.get_mut(core) {
            *slot = stats;
        }
    }
}

impl Shard {
    /// Called every `sys_interval`: core 0 publishes, the others report.
    pub fn sys_tick(&mut self) {
        let mut stats = self.stats;
        stats.retained = self.retained.len() as u64;
        if self.id != 0 {
            self.outbox.push(0, ShardMsg::Stats(stats));
            return;
        }
        self.sys.record(0, stats);
        let mut total = ShardStats::default();
        for s in &self.sys.latest {
            total += *s;
        }
        let uptime = format!("{} seconds", self.sys.started.elapsed().as_secs());
        let dropped = total.dropped_queue_full
            + total.dropped_write_buffer_full
            + total.dropped_too_large
            + total.dropped_expired;
        let topics: [(&str, String); 14] = [
            (
                "version",
                format!("ringmq version {}", env!("CARGO_PKG_VERSION")),
            ),
            ("uptime", uptime),
            ("clients/connected", total.clients_connected.to_string()),
            ("clients/total", total.sessions.to_string()),
            ("subscriptions/count", total.subscriptions.to_string()),
            ("retained messages/count", total.retained.to_string()),
            ("messages/received", total.messages_received.to_string()),
            ("messages/sent", total.messages_sent.to_string()),
            ("publish/messages/dropped", dropped.to_string()),
            (
                "ringmq/dropped/queue_full",
                total.dropped_queue_full.to_string(),
            ),
            (
                "ringmq/dropped/write_buffer_full",
                total.dropped_write_buffer_full.to_string(),
            ),
            (
                "ringmq/dropped/too_large",
                total.dropped_too_large.to_string(),
            ),
            ("ringmq/dropped/expired", total.dropped_expired.to_string()),
            (
                "ringmq/backpressure/pauses",
                total.publisher_pauses.to_string(),
            ),
        ];
        for (topic, value) in topics {
            self.publish(sys_message(topic, value), None);
        }
    }
}

fn sys_message(topic: &str, value: String) -> Message {
    Message::new(
        ByteString::from(format!("$SYS/broker/{topic}")),
        Bytes::from(value),
        QoS::AtMostOnce,
        true,
    )
}
