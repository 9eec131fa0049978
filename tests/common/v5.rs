//! MQTT 5 test helpers: a raw-socket v5 client that encodes with ringmq's v5
//! encoder and decodes the broker's replies as v5, packet builders, and a
//! rumqttc v5 client wrapper. Declared from a test file next to `common`:
//! `mod common; #[path = "common/v5.rs"] mod v5;`.
#![allow(dead_code)]

use crate::common::Broker;
use bytes::{Bytes, BytesMut};
use ringmq::protocol::{
    self, ConnAckV5, Connect, Packet, Properties, ProtocolVersion, Publish, QoS, Subscribe,
    SubscribeFilter, Unsubscribe, Will,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Longest wait for something that must happen.
pub const T: Duration = Duration::from_secs(5);
/// How long "nothing (more) arrives" is watched for.
pub const QUIET: Duration = Duration::from_millis(500);

pub fn start(cores: &str, extra: &[&str]) -> Broker {
    let mut args = vec!["--cores", cores];
    args.extend_from_slice(extra);
    Broker::start(&args)
}

pub fn cores_n(cores: &str) -> usize {
    cores.parse().unwrap()
}

// ----- packet builders -----------------------------------------------------------

pub fn props() -> Properties {
    Properties::default()
}

/// A v5 CONNECT; `properties` empty means no property block content.
pub fn connect_v5(
    client_id: &str,
    clean_start: bool,
    keep_alive_s: u16,
    properties: Properties,
    will: Option<Will>,
) -> Packet {
    Packet::Connect(Box::new(Connect {
        version: ProtocolVersion::V5,
        clean_session: clean_start,
        keep_alive_s,
        client_id: client_id.into(),
        will,
        username: None,
        password: None,
        properties: boxed(properties),
    }))
}

pub fn boxed(p: Properties) -> Option<Box<Properties>> {
    if p.is_empty() {
        None
    } else {
        Some(Box::new(p))
    }
}

pub fn will_v5(topic: &str, payload: &[u8], qos: QoS, retain: bool, p: Properties) -> Will {
    Will {
        topic: topic.into(),
        payload: Bytes::copy_from_slice(payload),
        qos,
        retain,
        properties: boxed(p),
    }
}

pub fn filter(f: &str, qos: QoS) -> SubscribeFilter {
    SubscribeFilter {
        filter: f.into(),
        qos,
        no_local: false,
        retain_as_published: false,
        retain_handling: 0,
    }
}

pub fn subscribe_v5(packet_id: u16, filters: Vec<SubscribeFilter>, sub_id: Option<u32>) -> Packet {
    let mut p = props();
    if let Some(id) = sub_id {
        p.subscription_identifiers.push(id);
    }
    Packet::Subscribe(Subscribe {
        packet_id,
        filters,
        properties: boxed(p),
    })
}

pub fn unsubscribe_v5(packet_id: u16, filters: &[&str]) -> Packet {
    Packet::Unsubscribe(Unsubscribe {
        packet_id,
        filters: filters.iter().map(|f| (*f).into()).collect(),
        properties: None,
    })
}

pub fn publish_v5(
    topic: &str,
    payload: &[u8],
    qos: QoS,
    packet_id: u16,
    retain: bool,
    p: Properties,
) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain,
        topic: topic.into(),
        packet_id,
        payload: Bytes::copy_from_slice(payload),
        properties: boxed(p),
    })
}

pub fn disconnect_v5(reason: u8, p: Properties) -> Packet {
    let properties = boxed(p);
    if reason == 0 && properties.is_none() {
        Packet::Disconnect
    } else {
        Packet::DisconnectV5(protocol::DisconnectV5 { reason, properties })
    }
}

/// Encodes `p` in v5 form.
pub fn bytes_v5(p: &Packet) -> Vec<u8> {
    let mut b = BytesMut::new();
    protocol::encode_v(ProtocolVersion::V5, p, &mut b);
    b.to_vec()
}

/// A complete frame from a first byte and a body (remaining length encoded).
pub fn frame(byte0: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![byte0];
    let mut len = body.len();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

// ----- raw v5 client -------------------------------------------------------------------

/// A raw-socket client that speaks MQTT 5: sends with the v5 encoder, decodes
/// what the broker sends as v5.
pub struct V5 {
    pub stream: TcpStream,
    buf: BytesMut,
}

impl V5 {
    pub fn connect(port: u16) -> V5 {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).unwrap();
        V5 {
            stream,
            buf: BytesMut::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        // The broker may already have closed; tests check that separately.
        let _ = self.stream.write_all(bytes);
    }

    pub fn send_packet(&mut self, p: &Packet) {
        let b = bytes_v5(p);
        self.send(&b);
    }

    /// The next packet, or None after `timeout` or if the connection closed.
    pub fn recv(&mut self, timeout: Duration) -> Option<Packet> {
        let deadline = Instant::now() + timeout;
        loop {
            match protocol::decode(&mut self.buf, Some(ProtocolVersion::V5), 1 << 28) {
                Ok(Some(p)) => return Some(p),
                Ok(None) => {}
                Err(e) => panic!("broker sent undecodable v5 bytes: {e}"),
            }
            if !self.fill(deadline) {
                return None;
            }
        }
    }

    /// Reads more bytes; false on timeout or close.
    fn fill(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        self.stream.set_read_timeout(Some(left)).unwrap();
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(_) => false,
        }
    }

    /// The raw bytes that arrive within `timeout` (until close or timeout).
    pub fn recv_bytes(&mut self, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        while self.fill(deadline) {}
        self.buf.split().to_vec()
    }

    /// The next packet, which must be a CONNACK.
    pub fn connack(&mut self) -> ConnAckV5 {
        match self.recv(T) {
            Some(Packet::ConnAckV5(a)) => a,
            other => panic!("expected v5 CONNACK, got {other:?}"),
        }
    }

    /// The next PUBLISH within `timeout`, answering PINGRESP-free: any other
    /// packet is a test failure.
    pub fn publish(&mut self, timeout: Duration) -> Option<Publish> {
        match self.recv(timeout) {
            Some(Packet::Publish(p)) => Some(p),
            None => None,
            Some(other) => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Expects a PUBLISH within T.
    pub fn expect_publish(&mut self) -> Publish {
        self.publish(T).expect("a PUBLISH")
    }

    /// Expects nothing for QUIET.
    pub fn expect_quiet(&mut self) {
        if let Some(p) = self.recv(QUIET) {
            panic!("expected nothing, got {p:?}");
        }
    }

    /// The SUBACK reason codes (and properties) of the next packet.
    pub fn suback(&mut self, packet_id: u16) -> protocol::SubAckV5 {
        match self.recv(T) {
            Some(Packet::SubAckV5(s)) => {
                assert_eq!(s.packet_id, packet_id);
                s
            }
            other => panic!("expected v5 SUBACK, got {other:?}"),
        }
    }

    pub fn unsuback(&mut self, packet_id: u16) -> protocol::UnsubAckV5 {
        match self.recv(T) {
            Some(Packet::UnsubAckV5(s)) => {
                assert_eq!(s.packet_id, packet_id);
                s
            }
            other => panic!("expected v5 UNSUBACK, got {other:?}"),
        }
    }

    /// SUBSCRIBE and return the SUBACK reason codes.
    pub fn subscribe(
        &mut self,
        packet_id: u16,
        filters: Vec<SubscribeFilter>,
        sub_id: Option<u32>,
    ) -> Vec<u8> {
        self.send_packet(&subscribe_v5(packet_id, filters, sub_id));
        self.suback(packet_id).reasons
    }

    /// SUBSCRIBE one filter, expecting it granted at `qos`.
    pub fn sub(&mut self, packet_id: u16, f: &str, qos: QoS) {
        let r = self.subscribe(packet_id, vec![filter(f, qos)], None);
        assert_eq!(r, vec![qos as u8], "SUBACK for {f}");
    }

    /// PUBLISH at QoS 0 without properties.
    pub fn pub0(&mut self, topic: &str, payload: &[u8]) {
        self.send_packet(&publish_v5(
            topic,
            payload,
            QoS::AtMostOnce,
            0,
            false,
            props(),
        ));
    }

    /// PUBLISH at QoS 1 and wait for its PUBACK (any reason).
    pub fn pub1(&mut self, topic: &str, payload: &[u8], packet_id: u16, p: Properties) {
        self.send_packet(&publish_v5(
            topic,
            payload,
            QoS::AtLeastOnce,
            packet_id,
            false,
            p,
        ));
        self.puback(packet_id);
    }

    /// The next packet is a PUBACK for `packet_id`; returns its reason.
    pub fn puback(&mut self, packet_id: u16) -> u8 {
        match self.recv(T) {
            Some(Packet::PubAck(id)) if id == packet_id => 0,
            Some(Packet::AckV5(a)) if a.packet_id == packet_id => a.reason,
            other => panic!("expected PUBACK {packet_id}, got {other:?}"),
        }
    }

    /// Waits for a DISCONNECT from the broker (other packets before it are
    /// skipped), then for the close; returns its reason code.
    pub fn expect_disconnect(&mut self, timeout: Duration) -> u8 {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Some(Packet::DisconnectV5(d)) => {
                    assert!(
                        self.closed_within(T),
                        "connection not closed after DISCONNECT"
                    );
                    return d.reason;
                }
                Some(Packet::Disconnect) => {
                    assert!(
                        self.closed_within(T),
                        "connection not closed after DISCONNECT"
                    );
                    return 0;
                }
                Some(_) => {}
                None => panic!("no DISCONNECT from the broker within {timeout:?}"),
            }
        }
    }

    /// True if the broker closes the connection within `timeout`.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return false;
                }
                Err(_) => return true,
            }
        }
    }
}

/// Connects a raw v5 client with `p` as CONNECT properties and expects
/// CONNACK success; returns the client and the CONNACK.
pub fn v5_with(
    b: &Broker,
    id: &str,
    clean_start: bool,
    p: Properties,
    will: Option<Will>,
) -> (V5, ConnAckV5) {
    let mut c = V5::connect(b.port);
    c.send_packet(&connect_v5(id, clean_start, 30, p, will));
    let a = c.connack();
    assert_eq!(
        a.reason,
        0,
        "CONNACK for {id:?}: {a:?}; logs:\n{}",
        b.logs()
    );
    (c, a)
}

/// A clean-start v5 client without CONNECT properties.
pub fn v5(b: &Broker, id: &str) -> V5 {
    v5_with(b, id, true, props(), None).0
}

/// A v5 client with a session that outlives the connection by `expiry_s`.
pub fn v5_session(b: &Broker, id: &str, clean_start: bool, expiry_s: u32) -> (V5, bool) {
    let mut p = props();
    p.session_expiry_interval = Some(expiry_s);
    let (c, a) = v5_with(b, id, clean_start, p, None);
    (c, a.session_present)
}

/// CONNACK properties, empty when there were none.
pub fn connack_props(a: &ConnAckV5) -> Properties {
    a.properties.as_deref().cloned().unwrap_or_default()
}

/// PUBLISH properties, empty when there were none.
pub fn publish_props(p: &Publish) -> Properties {
    p.properties.as_deref().cloned().unwrap_or_default()
}

// ----- rumqttc v5 client -----------------------------------------------------------------

use rumqttc::v5::Incoming;
pub use rumqttc::v5::mqttbytes::v5 as rv5;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};

/// A rumqttc v5 client whose event loop runs in a task.
pub struct RClient {
    pub client: AsyncClient,
    pub rx: tokio::sync::mpsc::UnboundedReceiver<Result<Event, String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn roptions(port: u16, id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o
}

impl RClient {
    /// Connects and waits for CONNACK; returns the client and the CONNACK.
    pub async fn connect(opts: MqttOptions) -> (RClient, rv5::ConnAck) {
        let (client, el) = AsyncClient::new(opts, 1000);
        let mut c = Self::spawn(client, el);
        let ack = loop {
            match c.next(T).await {
                Some(Ok(Event::Incoming(Incoming::ConnAck(a)))) => break a,
                Some(Ok(_)) => {}
                other => panic!("no CONNACK: {other:?}"),
            }
        };
        (c, ack)
    }

    fn spawn(client: AsyncClient, mut el: EventLoop) -> RClient {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(ev) => {
                        if tx.send(Ok(ev)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("{e:?}")));
                        return;
                    }
                }
            }
        });
        RClient { client, rx, task }
    }

    pub async fn next(&mut self, timeout: Duration) -> Option<Result<Event, String>> {
        tokio::time::timeout(timeout, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits for the SUBACK of the last subscribe; returns its reason codes.
    pub async fn suback(&mut self) -> rv5::SubAck {
        loop {
            match self.next(T).await {
                Some(Ok(Event::Incoming(Incoming::SubAck(s)))) => return s,
                Some(Ok(_)) => {}
                other => panic!("no SUBACK: {other:?}"),
            }
        }
    }

    /// The next PUBLISH within `timeout`.
    pub async fn publish_within(&mut self, timeout: Duration) -> Option<rv5::Publish> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(Ok(Event::Incoming(Incoming::Publish(p)))) => return Some(p),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    }
}
