//! Cross-core routing checked without sockets: several shards in one thread,
//! their mailboxes pumped by hand, so the tests can see exactly which core
//! received which message.

use super::ShardMsg;
use super::conn::ConnIo;
use super::mailbox::{self, Outbox, Receiver};
use super::shard::{Shard, ShardRef};
use crate::config::Config;
use crate::protocol::{Connect, Packet, ProtocolVersion, Publish, QoS, Subscribe, SubscribeFilter};
use bytes::Bytes;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

pub(super) struct Cluster {
    pub(super) shards: Vec<ShardRef>,
    receivers: Vec<Receiver>,
}

/// What arrived at each core during one pump, by kind.
#[derive(Default, Debug, PartialEq, Eq)]
pub(super) struct Seen {
    publishes: usize,
    index_adds: usize,
    index_removes: usize,
}

impl Cluster {
    pub(super) fn new(cores: usize) -> Cluster {
        let config = Arc::new(Config {
            cores,
            ..Config::default()
        });
        let boxes = mailbox::mailboxes(cores);
        Cluster {
            shards: (0..cores)
                .map(|i| {
                    Rc::new(RefCell::new(Shard::new(
                        i,
                        config.clone(),
                        Outbox::new(i, boxes.clone()),
                    )))
                })
                .collect(),
            receivers: (0..cores)
                .map(|i| Receiver::new(i, boxes.clone()))
                .collect(),
        }
    }

    /// Delivers mail until no core has anything left; counts what each got.
    pub(super) fn pump(&self) -> Vec<Seen> {
        let mut seen: Vec<Seen> = self.shards.iter().map(|_| Seen::default()).collect();
        loop {
            let mut moved = 0;
            for s in &self.shards {
                s.borrow_mut().outbox.flush();
            }
            for (i, rx) in self.receivers.iter().enumerate() {
                let shard = &self.shards[i];
                moved += rx.drain(usize::MAX, |from, batch| {
                    for m in &batch {
                        match m {
                            ShardMsg::Publish { .. } => seen[i].publishes += 1,
                            ShardMsg::IndexAdd { .. } => seen[i].index_adds += 1,
                            ShardMsg::IndexRemove { .. } => seen[i].index_removes += 1,
                            _ => {}
                        }
                    }
                    shard.borrow_mut().handle_mail(from, batch, shard);
                });
            }
            if moved == 0 {
                return seen;
            }
        }
    }

    /// Connects a client on `core` (tests choose the core directly).
    fn connect(&self, core: usize, id: &str) -> (usize, u64, Rc<ConnIo>) {
        self.connect_with(core, id, true)
    }

    fn connect_with(&self, core: usize, id: &str, clean: bool) -> (usize, u64, Rc<ConnIo>) {
        let io = Rc::new(ConnIo::new(-1));
        let c = Connect {
            version: ProtocolVersion::V311,
            clean_session: clean,
            keep_alive_s: 0,
            client_id: id.into(),
            will: None,
            username: None,
            password: None,
            properties: None,
        };
        let peer = "127.0.0.1:9".parse().unwrap();
        let (k, g) = self.shards[core]
            .borrow_mut()
            .connect(io.clone(), Box::new(c), peer, false)
            .unwrap();
        io.take_pending();
        (k, g, io)
    }

    fn subscribe(&self, core: usize, key: (usize, u64), filter: &str) {
        let p = Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![SubscribeFilter {
                filter: filter.into(),
                qos: QoS::AtMostOnce,
                no_local: false,
                retain_as_published: false,
                retain_handling: 0,
            }],
            properties: None,
        });
        let _ = self.shards[core].borrow_mut().handle(key.0, key.1, p);
    }

    fn publish(&self, core: usize, key: (usize, u64), topic: &str) {
        let p = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: topic.into(),
            packet_id: 0,
            payload: Bytes::from_static(b"x"),
            properties: None,
        });
        let _ = self.shards[core].borrow_mut().handle(key.0, key.1, p);
    }
}

#[test]
fn publish_goes_only_to_matching_cores_once_each() {
    let c = Cluster::new(3);
    let (a, ag, _) = c.connect(0, "a");
    let (b, bg, _) = c.connect(0, "b");
    let (x, xg, _) = c.connect(1, "x");
    let (p, pg, _) = c.connect(2, "p");
    c.subscribe(0, (a, ag), "a/+");
    c.subscribe(0, (b, bg), "a/#");
    c.subscribe(1, (x, xg), "x/#");
    let seen = c.pump();
    // Core 0's first subscriber of each filter is announced once per other core.
    assert_eq!(seen[1].index_adds, 2);
    assert_eq!(seen[2].index_adds, 3);

    c.publish(2, (p, pg), "a/b");
    let seen = c.pump();
    // Two filters on core 0 match: still one message to core 0, none to core 1.
    assert_eq!(seen[0].publishes, 1);
    assert_eq!(seen[1].publishes, 0);
    assert_eq!(
        c.shards[0].borrow().stats.messages_sent,
        2,
        "a and b each got it once"
    );

    c.publish(2, (p, pg), "nobody/listens");
    let seen = c.pump();
    assert_eq!(seen.iter().map(|s| s.publishes).sum::<usize>(), 0);
}

#[test]
fn last_unsubscribe_removes_the_core_from_the_index() {
    let c = Cluster::new(2);
    let (s, sg, _) = c.connect(0, "s");
    let (t, tg, _) = c.connect(0, "t");
    let (p, pg, _) = c.connect(1, "p");
    c.subscribe(0, (s, sg), "k/1");
    c.subscribe(0, (t, tg), "k/1");
    let seen = c.pump();
    assert_eq!(
        seen[1].index_adds, 1,
        "only the first local subscriber is announced"
    );
    let unsub = |key: (usize, u64)| {
        let u = Packet::Unsubscribe(crate::protocol::Unsubscribe {
            packet_id: 2,
            filters: vec!["k/1".into()],
            properties: None,
        });
        let _ = c.shards[0].borrow_mut().handle(key.0, key.1, u);
    };
    unsub((s, sg));
    assert_eq!(c.pump()[1].index_removes, 0, "t still subscribed");
    unsub((t, tg));
    assert_eq!(c.pump()[1].index_removes, 1);
    c.publish(1, (p, pg), "k/1");
    assert_eq!(c.pump()[0].publishes, 0, "core 0 left the index");
}

#[test]
fn retained_messages_replicate_to_every_core_in_one_order() {
    let c = Cluster::new(3);
    let (p0, g0, _) = c.connect(0, "p0");
    let (p2, g2, _) = c.connect(2, "p2");
    let retained = |core: usize, key: (usize, u64), payload: &'static [u8]| {
        let p = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: true,
            topic: "r/t".into(),
            packet_id: 0,
            payload: Bytes::from_static(payload),
            properties: None,
        });
        let _ = c.shards[core].borrow_mut().handle(key.0, key.1, p);
    };
    // Two publishers on different cores race on one topic; every replica ends equal.
    retained(0, (p0, g0), b"from-0");
    retained(2, (p2, g2), b"from-2");
    c.pump();
    let values: Vec<Option<Bytes>> = c
        .shards
        .iter()
        .map(|s| s.borrow().retained.get("r/t").map(|m| m.payload.clone()))
        .collect();
    assert!(values[0].is_some());
    assert!(values.iter().all(|v| v == &values[0]), "{values:?}");
    // An empty retained payload clears it everywhere.
    retained(2, (p2, g2), b"");
    c.pump();
    assert!(
        c.shards
            .iter()
            .all(|s| s.borrow().retained.get("r/t").is_none())
    );
}

#[test]
fn offline_sessions_queueing_one_message_share_one_copy() {
    let c = Cluster::new(1);
    let mut keys = Vec::new();
    for i in 0..3 {
        let (k, g, _) = c.connect_with(0, &format!("offline-{i}"), false);
        let sub = Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![SubscribeFilter {
                filter: "q/t".into(),
                qos: QoS::AtLeastOnce,
                no_local: false,
                retain_as_published: false,
                retain_handling: 0,
            }],
            properties: None,
        });
        let _ = c.shards[0].borrow_mut().handle(k, g, sub);
        c.shards[0]
            .borrow_mut()
            .drop_link(k, g, super::shard::CloseReason::Eof);
        keys.push(k);
    }
    let (p, pg, _) = c.connect(0, "publisher");
    let payload = Bytes::from(vec![9u8; 64]);
    let publish = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "q/t".into(),
        packet_id: 1,
        payload: payload.clone(),
        properties: None,
    });
    let _ = c.shards[0].borrow_mut().handle(p, pg, publish);
    let shard = c.shards[0].borrow();
    let queued: Vec<&crate::broker::Message> = keys
        .iter()
        .map(|k| {
            shard.sessions[*k]
                .queue_front()
                .expect("queued while offline")
        })
        .collect();
    // One owned copy (not a slice of the publisher's buffer), shared by all three.
    assert_ne!(queued[0].payload.as_ptr(), payload.as_ptr());
    assert!(
        queued
            .iter()
            .all(|m| m.payload.as_ptr() == queued[0].payload.as_ptr())
    );
    assert!(queued.iter().all(|m| m.payload == payload));
}
