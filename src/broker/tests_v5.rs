//! MQTT 5 delivery rules checked on shards without sockets: subscription
//! options and identifiers, message expiry, session expiry and delayed wills,
//! topic aliases, and the client's limits. The bytes a client would receive
//! are read from its `ConnIo` and decoded as v5.

use super::conn::ConnIo;
use super::shard::CloseReason;
use super::tests::Cluster;
use crate::protocol::{
    self, Connect, Packet, Properties, ProtocolVersion, Publish, QoS, Subscribe, SubscribeFilter,
    Will,
};
use bytes::{Bytes, BytesMut};
use std::rc::Rc;
use std::time::Duration;

fn v5_connect(
    c: &Cluster,
    id: &str,
    props: Properties,
    will: Option<Will>,
) -> (usize, u64, Rc<ConnIo>) {
    let io = Rc::new(ConnIo::new(-1));
    let connect = Connect {
        version: ProtocolVersion::V5,
        clean_session: false,
        keep_alive_s: 0,
        client_id: id.into(),
        will,
        username: None,
        password: None,
        properties: Some(Box::new(props)),
    };
    let peer = "127.0.0.1:9".parse().unwrap();
    let (k, g) = c.shards[0]
        .borrow_mut()
        .connect(io.clone(), Box::new(connect), peer, false)
        .unwrap();
    (k, g, io)
}

/// Every packet written to `io` since the last call.
fn received(io: &ConnIo) -> Vec<Packet> {
    let mut buf: BytesMut = io.take_pending();
    let mut out = Vec::new();
    while let Some(p) = protocol::decode(&mut buf, Some(ProtocolVersion::V5), 1 << 20).unwrap() {
        out.push(p);
    }
    out
}

fn publishes(io: &ConnIo) -> Vec<Publish> {
    received(io)
        .into_iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn sub(c: &Cluster, key: (usize, u64), f: SubscribeFilter, id: Option<u32>) {
    let p = Packet::Subscribe(Subscribe {
        packet_id: 1,
        filters: vec![f],
        properties: id.map(|id| {
            Box::new(Properties {
                subscription_identifiers: vec![id],
                ..Properties::default()
            })
        }),
    });
    let _ = c.shards[0].borrow_mut().handle(key.0, key.1, p);
}

fn filter(f: &str, qos: QoS) -> SubscribeFilter {
    SubscribeFilter {
        filter: f.into(),
        qos,
        no_local: false,
        retain_as_published: false,
        retain_handling: 0,
    }
}

fn publish(
    c: &Cluster,
    key: (usize, u64),
    topic: &str,
    qos: QoS,
    retain: bool,
    props: Option<Properties>,
) {
    let p = Packet::Publish(Publish {
        dup: false,
        qos,
        retain,
        topic: topic.into(),
        packet_id: if qos == QoS::AtMostOnce { 0 } else { 77 },
        payload: Bytes::from_static(b"payload"),
        properties: props.map(Box::new),
    });
    assert!(c.shards[0].borrow_mut().handle(key.0, key.1, p).is_ok());
}

#[test]
fn overlapping_subscriptions_give_one_copy_with_every_identifier() {
    let c = Cluster::new(1);
    let (s, sg, sio) = v5_connect(&c, "s", Properties::default(), None);
    let (p, pg, _) = v5_connect(&c, "p", Properties::default(), None);
    sub(&c, (s, sg), filter("a/+", QoS::AtMostOnce), Some(5));
    sub(&c, (s, sg), filter("a/#", QoS::AtLeastOnce), Some(9));
    sub(&c, (s, sg), filter("#", QoS::AtMostOnce), None);
    received(&sio);
    publish(&c, (p, pg), "a/b", QoS::AtLeastOnce, false, None);
    let got = publishes(&sio);
    assert_eq!(got.len(), 1, "one copy: {got:?}");
    assert_eq!(got[0].qos, QoS::AtLeastOnce, "the highest granted QoS");
    let mut ids = got[0]
        .properties
        .as_ref()
        .unwrap()
        .subscription_identifiers
        .clone();
    ids.sort();
    assert_eq!(ids, vec![5, 9]);
}

#[test]
fn no_local_skips_only_the_publisher() {
    let c = Cluster::new(1);
    let (a, ag, aio) = v5_connect(&c, "a", Properties::default(), None);
    let (b, bg, bio) = v5_connect(&c, "b", Properties::default(), None);
    for key in [(a, ag), (b, bg)] {
        let mut f = filter("chat/room", QoS::AtMostOnce);
        f.no_local = true;
        sub(&c, key, f, None);
    }
    received(&aio);
    received(&bio);
    publish(&c, (a, ag), "chat/room", QoS::AtMostOnce, false, None);
    assert!(publishes(&aio).is_empty(), "no echo to the publisher");
    assert_eq!(publishes(&bio).len(), 1);
}

#[test]
fn retain_as_published_keeps_the_flag() {
    let c = Cluster::new(1);
    let (a, ag, aio) = v5_connect(&c, "a", Properties::default(), None);
    let (b, bg, bio) = v5_connect(&c, "b", Properties::default(), None);
    let (p, pg, _) = v5_connect(&c, "p", Properties::default(), None);
    let mut keep = filter("r/t", QoS::AtMostOnce);
    keep.retain_as_published = true;
    sub(&c, (a, ag), keep, None);
    sub(&c, (b, bg), filter("r/t", QoS::AtMostOnce), None);
    received(&aio);
    received(&bio);
    publish(&c, (p, pg), "r/t", QoS::AtMostOnce, true, None);
    assert!(publishes(&aio)[0].retain);
    assert!(!publishes(&bio)[0].retain);
}

#[test]
fn retain_handling_1_sends_only_for_a_new_subscription_and_2_never() {
    let c = Cluster::new(1);
    let (p, pg, _) = v5_connect(&c, "p", Properties::default(), None);
    publish(&c, (p, pg), "keep/t", QoS::AtMostOnce, true, None);
    let (s, sg, sio) = v5_connect(&c, "s", Properties::default(), None);
    received(&sio);
    let mut once = filter("keep/t", QoS::AtMostOnce);
    once.retain_handling = 1;
    sub(&c, (s, sg), once.clone(), None);
    assert_eq!(publishes(&sio).len(), 1, "new subscription: retained sent");
    sub(&c, (s, sg), once, None);
    assert_eq!(publishes(&sio).len(), 0, "existing subscription: not again");
    let mut never = filter("keep/#", QoS::AtMostOnce);
    never.retain_handling = 2;
    sub(&c, (s, sg), never, None);
    assert_eq!(publishes(&sio).len(), 0);
}

#[test]
fn properties_are_forwarded_and_expiry_counts_down() {
    let c = Cluster::new(1);
    let persistent = Properties {
        session_expiry_interval: Some(600),
        ..Properties::default()
    };
    let (s, sg, sio) = v5_connect(&c, "s", persistent, None);
    let (p, pg, _) = v5_connect(&c, "p", Properties::default(), None);
    sub(&c, (s, sg), filter("req/t", QoS::AtLeastOnce), None);
    received(&sio);
    let props = Properties {
        content_type: Some("application/json".into()),
        response_topic: Some("resp/1".into()),
        correlation_data: Some(Bytes::from_static(b"id-1")),
        user_properties: vec![("z".into(), "1".into()), ("a".into(), "2".into())],
        message_expiry_interval: Some(60),
        payload_format_indicator: Some(1),
        ..Properties::default()
    };
    publish(
        &c,
        (p, pg),
        "req/t",
        QoS::AtLeastOnce,
        false,
        Some(props.clone()),
    );
    let got = publishes(&sio);
    let fwd = got[0].properties.as_deref().unwrap();
    assert_eq!(fwd.content_type, props.content_type);
    assert_eq!(fwd.response_topic, props.response_topic);
    assert_eq!(fwd.correlation_data, props.correlation_data);
    assert_eq!(fwd.user_properties, props.user_properties, "in order");
    assert_eq!(fwd.payload_format_indicator, Some(1));
    assert_eq!(fwd.message_expiry_interval, Some(60));

    // Offline: the message waits 20 s, then is forwarded with 40 s left.
    c.shards[0].borrow_mut().drop_link(s, sg, CloseReason::Eof);
    publish(&c, (p, pg), "req/t", QoS::AtLeastOnce, false, Some(props));
    c.shards[0].borrow_mut().now += Duration::from_secs(20);
    let (_, _, sio) = v5_connect(&c, "s", Properties::default(), None);
    let got = publishes(&sio);
    let fresh: Vec<_> = got.iter().filter(|p| !p.dup).collect();
    assert_eq!(fresh.len(), 1, "{got:?}");
    let left = fresh[0]
        .properties
        .as_ref()
        .unwrap()
        .message_expiry_interval;
    assert_eq!(left, Some(40));
}

#[test]
fn expired_queued_messages_are_never_delivered() {
    let c = Cluster::new(1);
    let (s, sg, _) = v5_connect(
        &c,
        "s",
        Properties {
            session_expiry_interval: Some(600),
            ..Default::default()
        },
        None,
    );
    let (p, pg, _) = v5_connect(&c, "p", Properties::default(), None);
    sub(&c, (s, sg), filter("x/t", QoS::AtLeastOnce), None);
    c.shards[0].borrow_mut().drop_link(s, sg, CloseReason::Eof);
    let short = Properties {
        message_expiry_interval: Some(5),
        ..Properties::default()
    };
    publish(&c, (p, pg), "x/t", QoS::AtLeastOnce, false, Some(short));
    publish(&c, (p, pg), "x/t", QoS::AtLeastOnce, false, None);
    c.shards[0].borrow_mut().now += Duration::from_secs(6);
    let (_, _, sio) = v5_connect(&c, "s", Properties::default(), None);
    let got = publishes(&sio);
    assert_eq!(got.len(), 1, "only the message without expiry: {got:?}");
    assert!(
        got[0]
            .properties
            .as_ref()
            .is_none_or(|p| p.message_expiry_interval.is_none())
    );
    assert_eq!(c.shards[0].borrow().stats.dropped_expired, 1);
}

#[test]
fn session_expiry_removes_the_session_and_its_queue() {
    let c = Cluster::new(1);
    let props = Properties {
        session_expiry_interval: Some(10),
        ..Properties::default()
    };
    let (s, sg, _) = v5_connect(&c, "s", props, None);
    sub(&c, (s, sg), filter("e/t", QoS::AtLeastOnce), None);
    let t0 = c.shards[0].borrow().now;
    c.shards[0].borrow_mut().drop_link(s, sg, CloseReason::Eof);
    c.shards[0]
        .borrow_mut()
        .check_timers(t0 + Duration::from_secs(9));
    assert!(
        {
            let sh = c.shards[0].borrow();
            sh.by_client_id.contains("s", &sh.sessions)
        },
        "not yet"
    );
    c.shards[0]
        .borrow_mut()
        .check_timers(t0 + Duration::from_secs(11));
    let shard = c.shards[0].borrow();
    assert!(
        !shard.by_client_id.contains("s", &shard.sessions),
        "expired"
    );
    assert_eq!(shard.stats.subscriptions, 0);
}

#[test]
fn delayed_will_waits_and_a_reconnect_cancels_it() {
    let c = Cluster::new(1);
    let (w, wg, wio) = v5_connect(&c, "watcher", Properties::default(), None);
    sub(&c, (w, wg), filter("will/#", QoS::AtMostOnce), None);
    received(&wio);
    let will = || Will {
        topic: "will/dev".into(),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Some(Box::new(Properties {
            will_delay_interval: Some(5),
            user_properties: vec![("k".into(), "v".into())],
            ..Properties::default()
        })),
    };
    let expiry = Properties {
        session_expiry_interval: Some(100),
        ..Properties::default()
    };
    // Reconnects after 2 s: no will.
    let (d, dg, _) = v5_connect(&c, "dev", expiry.clone(), Some(will()));
    let t0 = c.shards[0].borrow().now;
    c.shards[0].borrow_mut().drop_link(d, dg, CloseReason::Eof);
    c.shards[0]
        .borrow_mut()
        .check_timers(t0 + Duration::from_secs(2));
    let (d, dg, _) = v5_connect(&c, "dev", expiry, Some(will()));
    c.shards[0]
        .borrow_mut()
        .check_timers(t0 + Duration::from_secs(10));
    assert!(publishes(&wio).is_empty(), "reconnected in time");
    // Stays away: the will comes after 5 s, with its properties.
    c.shards[0].borrow_mut().drop_link(d, dg, CloseReason::Eof);
    let t1 = c.shards[0].borrow().now;
    c.shards[0]
        .borrow_mut()
        .check_timers(t1 + Duration::from_secs(4));
    assert!(publishes(&wio).is_empty(), "delay not over");
    c.shards[0]
        .borrow_mut()
        .check_timers(t1 + Duration::from_secs(6));
    let got = publishes(&wio);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].payload[..], b"gone");
    assert_eq!(
        got[0].properties.as_ref().unwrap().user_properties,
        vec![("k".into(), "v".into())]
    );
}

#[test]
fn outgoing_topic_aliases_up_to_the_clients_maximum() {
    let c = Cluster::new(1);
    let props = Properties {
        topic_alias_maximum: Some(1),
        ..Properties::default()
    };
    let (s, sg, sio) = v5_connect(&c, "s", props, None);
    let (p, pg, _) = v5_connect(&c, "p", Properties::default(), None);
    sub(&c, (s, sg), filter("al/#", QoS::AtMostOnce), None);
    received(&sio);
    publish(&c, (p, pg), "al/one", QoS::AtMostOnce, false, None);
    publish(&c, (p, pg), "al/one", QoS::AtMostOnce, false, None);
    publish(&c, (p, pg), "al/two", QoS::AtMostOnce, false, None);
    let got = publishes(&sio);
    let alias = |p: &Publish| p.properties.as_ref().and_then(|x| x.topic_alias);
    assert_eq!((&*got[0].topic, alias(&got[0])), ("al/one", Some(1)));
    assert_eq!((&*got[1].topic, alias(&got[1])), ("", Some(1)));
    assert_eq!(
        (&*got[2].topic, alias(&got[2])),
        ("al/two", None),
        "maximum reached"
    );
}

#[test]
fn client_limits_receive_maximum_and_packet_size() {
    let c = Cluster::new(1);
    let props = Properties {
        receive_maximum: Some(2),
        maximum_packet_size: Some(64),
        ..Properties::default()
    };
    let (s, sg, sio) = v5_connect(&c, "s", props, None);
    let (p, pg, _) = v5_connect(&c, "p", Properties::default(), None);
    sub(&c, (s, sg), filter("lim/#", QoS::AtLeastOnce), None);
    received(&sio);
    for _ in 0..3 {
        publish(&c, (p, pg), "lim/t", QoS::AtLeastOnce, false, None);
    }
    assert_eq!(publishes(&sio).len(), 2, "Receive Maximum 2");
    assert_eq!(c.shards[0].borrow().sessions[s].queued(), 1);
    // A message above 64 bytes is not sent to this client.
    let big = Properties {
        user_properties: vec![("k".into(), "v".repeat(80).into())],
        ..Properties::default()
    };
    publish(&c, (p, pg), "lim/big", QoS::AtMostOnce, false, Some(big));
    assert!(publishes(&sio).is_empty());
    assert_eq!(c.shards[0].borrow().stats.dropped_too_large, 1);
}

#[test]
fn puback_says_no_matching_subscribers() {
    let c = Cluster::new(1);
    let (p, pg, pio) = v5_connect(&c, "p", Properties::default(), None);
    received(&pio);
    publish(&c, (p, pg), "nobody/here", QoS::AtLeastOnce, false, None);
    match received(&pio).as_slice() {
        [Packet::AckV5(a)] => assert_eq!(a.reason, 0x10),
        other => panic!("{other:?}"),
    }
}

#[test]
fn reconnecting_often_does_not_grow_the_timer_heap() {
    let c = Cluster::new(1);
    let props = Properties {
        session_expiry_interval: Some(u32::MAX - 1),
        ..Properties::default()
    };
    for _ in 0..1000 {
        let (s, sg, _) = v5_connect(&c, "often", props.clone(), None);
        c.shards[0].borrow_mut().drop_link(s, sg, CloseReason::Eof);
    }
    let shard = c.shards[0].borrow();
    // One live deadline (the last disconnect's); stale ones are compacted.
    assert!(shard.timer_count() <= 2 * shard.sessions.len() + 64 + 1);
    assert!(shard.by_client_id.contains("often", &shard.sessions));
}
