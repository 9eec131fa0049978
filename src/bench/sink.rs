//! `ringmq-bench sink`: a server that answers CONNECT with CONNACK (in the
//! client's MQTT version: 3.1, 3.1.1 or 5) and then only reads, counting
//! PUBLISH frames. It measures what the generator can offer when the broker
//! is not the bottleneck. One thread per connection (std I/O): it is a
//! measuring device, not a broker.
//!
//! It speaks every transport the generator does, so each one is testable
//! without another broker: TLS (`-S`, mutual with `--cacertfile`) through
//! rustls' blocking `StreamOwned`, WebSocket (`--ws`) through tungstenite's
//! server side, and both. With `--ack` it decodes every packet and answers
//! like a broker with no subscribers (QoS 1/2 flows, SUBACK, PINGRESP).

use super::SinkArgs;
use crate::protocol::{
    self, AckKind, AckV5, ConnAck, ConnectReturnCode, Packet, ProtocolVersion, QoS, SubAck,
    SubAckCode, reason,
};
use bytes::{Bytes, BytesMut};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::{HeaderValue, StatusCode};
use tungstenite::{Message, WebSocket};

/// Connection errors printed in full; the rest are only counted.
const ERRORS_PRINTED_MAX: u64 = 5;

#[derive(Default)]
struct SinkStats {
    frames: AtomicU64,
    bytes: AtomicU64,
    publishes: AtomicU64,
    connections: AtomicU64,
    connections_v5: AtomicU64,
    /// Connections that ended in a TLS, WebSocket or MQTT decoding error.
    failed: AtomicU64,
}

impl SinkStats {
    fn failed(&self, why: String) {
        if self.failed.fetch_add(1, Ordering::Relaxed) < ERRORS_PRINTED_MAX {
            eprintln!("ringmq-bench sink: {why}");
        }
    }
}

/// How each connection is served.
struct ServeCfg {
    tls: Option<Arc<ServerConfig>>,
    /// `--ws`: the accepted path.
    ws_path: Option<String>,
    ack: bool,
}

pub fn run(args: &SinkArgs) -> i32 {
    let tls = if args.ssl {
        let (Some(cert), Some(key)) = (&args.certfile, &args.keyfile) else {
            eprintln!("ringmq-bench sink: -S needs --certfile and --keyfile");
            return 2;
        };
        match super::tls::server_config(cert, key, args.cacertfile.as_deref()) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("ringmq-bench sink: {e}");
                return 2;
            }
        }
    } else {
        if args.certfile.is_some() || args.keyfile.is_some() || args.cacertfile.is_some() {
            eprintln!("ringmq-bench sink: --certfile/--keyfile/--cacertfile need -S");
            return 2;
        }
        None
    };
    let listener = match TcpListener::bind(args.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ringmq-bench sink: listen {}: {e}", args.listen);
            return 1;
        }
    };
    let bound = listener.local_addr().unwrap_or(args.listen);
    eprintln!("sink listening on {bound}");
    let cfg = Arc::new(ServeCfg {
        tls,
        ws_path: args.ws.then(|| args.ws_path.clone()),
        ack: args.ack,
    });
    let stats = Arc::new(SinkStats::default());
    {
        let stats = stats.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (cfg, stats) = (cfg.clone(), stats.clone());
                std::thread::spawn(move || serve_conn(stream, &cfg, &stats));
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
        let now = stats.frames.load(Ordering::Relaxed);
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
    let total = stats.frames.load(Ordering::Relaxed);
    let (from, base) = first_frame_at.unwrap_or((Instant::now(), 0));
    let (to, top) = last_frame_at;
    let secs = to.saturating_duration_since(from).as_secs_f64();
    let rate = if secs > 0.0 {
        (top - base) as f64 / secs
    } else {
        0.0
    };
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "kind": "sink",
                "frames": total,
                "bytes": get(&stats.bytes),
                "rate": rate,
                "publishes": get(&stats.publishes),
                "connections": get(&stats.connections),
                "connections_v5": get(&stats.connections_v5),
                "failed": get(&stats.failed),
            })
        );
    } else {
        println!(
            "sink: {total} frames ({} PUBLISH), {rate:.0} frames/sec, {} connections, {} failed",
            get(&stats.publishes),
            get(&stats.connections),
            get(&stats.failed)
        );
    }
    0
}

fn serve_conn(tcp: TcpStream, cfg: &ServeCfg, stats: &SinkStats) {
    let peer = tcp
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let _ = tcp.set_nodelay(true);
    let Some(tls) = &cfg.tls else {
        return serve_ws_or_mqtt(tcp, cfg, stats, peer);
    };
    let conn = match ServerConnection::new(tls.clone()) {
        Ok(c) => c,
        Err(e) => return stats.failed(format!("TLS from {peer}: {e}")),
    };
    let mut stream = StreamOwned::new(conn, tcp);
    // Handshake first, so that a refused client certificate is reported as such.
    while stream.conn.is_handshaking() {
        if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
            return stats.failed(format!("TLS handshake from {peer}: {e}"));
        }
    }
    serve_ws_or_mqtt(stream, cfg, stats, peer)
}

fn serve_ws_or_mqtt<S: Read + Write>(s: S, cfg: &ServeCfg, stats: &SinkStats, peer: SocketAddr) {
    let Some(path) = &cfg.ws_path else {
        return serve(s, cfg.ack, stats, peer);
    };
    // The result type is tungstenite's callback signature.
    #[allow(clippy::result_large_err)]
    let check = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let refuse = |status: StatusCode, why: String| {
            let mut r = ErrorResponse::new(Some(why));
            *r.status_mut() = status;
            r
        };
        if req.uri().path() != path {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                format!("no WebSocket endpoint at {}", req.uri().path()),
            ));
        }
        // MQTT over WebSocket: subprotocol "mqtt" ("mqttv3.1" from old clients).
        let offered = req
            .headers()
            .get_all("Sec-WebSocket-Protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .find(|p| *p == "mqtt" || *p == "mqttv3.1");
        let Some(chosen) = offered else {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "no \"mqtt\" WebSocket subprotocol offered".into(),
            ));
        };
        resp.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(if chosen == "mqtt" { "mqtt" } else { "mqttv3.1" }),
        );
        Ok(resp)
    };
    match tungstenite::accept_hdr(s, check) {
        Ok(ws) => serve(
            WsIo {
                ws,
                pending: Bytes::new(),
            },
            cfg.ack,
            stats,
            peer,
        ),
        Err(e) => stats.failed(format!("WebSocket handshake from {peer}: {e}")),
    }
}

/// A tungstenite WebSocket as a byte stream: the payloads of binary
/// messages in, one binary message per write out.
struct WsIo<S> {
    ws: WebSocket<S>,
    pending: Bytes,
}

impl<S: Read + Write> Read for WsIo<S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pending.is_empty() {
            match self.ws.read() {
                Ok(Message::Binary(b)) => self.pending = b,
                Ok(Message::Text(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "WebSocket text frame: MQTT travels in binary frames",
                    ));
                }
                Ok(Message::Close(_)) => return Ok(0),
                // Pings are answered by tungstenite.
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return Ok(0);
                }
                Err(tungstenite::Error::Io(e)) => return Err(e),
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
            }
        }
        let n = out.len().min(self.pending.len());
        let chunk = self.pending.split_to(n);
        if let Some(dst) = out.get_mut(..n) {
            dst.copy_from_slice(&chunk);
        }
        Ok(n)
    }
}

impl<S: Read + Write> Write for WsIo<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.ws
            .send(Message::binary(Bytes::copy_from_slice(buf)))
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.ws.flush().map_err(|e| io::Error::other(e.to_string()))
    }
}

fn read_some<S: Read>(s: &mut S, chunk: &mut [u8], into: &mut BytesMut, stats: &SinkStats) -> bool {
    match s.read(chunk) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
            into.extend_from_slice(chunk.get(..n).unwrap_or_default());
            true
        }
    }
}

fn serve<S: Read + Write>(mut stream: S, ack: bool, stats: &SinkStats, peer: SocketAddr) {
    let mut buf = BytesMut::with_capacity(1 << 20);
    let mut chunk = vec![0u8; 1 << 20];
    // CONNECT → CONNACK.
    let version = loop {
        match protocol::decode(&mut buf, None, usize::MAX) {
            Ok(Some(Packet::Connect(c))) => break c.version,
            Ok(Some(p)) => return stats.failed(format!("{peer}: {} before CONNECT", p.name())),
            Err(e) => return stats.failed(format!("{peer}: bad CONNECT: {e}")),
            Ok(None) => {}
        }
        if !read_some(&mut stream, &mut chunk, &mut buf, stats) {
            return;
        }
    };
    stats.connections.fetch_add(1, Ordering::Relaxed);
    if version == ProtocolVersion::V5 {
        stats.connections_v5.fetch_add(1, Ordering::Relaxed);
    }
    let mut out = BytesMut::new();
    let connack = Packet::ConnAck(ConnAck {
        session_present: false,
        code: ConnectReturnCode::Accepted,
    });
    protocol::encode_v(version, &connack, &mut out);
    if stream.write_all(&out).and_then(|_| stream.flush()).is_err() {
        return;
    }
    if ack {
        return serve_acking(stream, buf, chunk, version, stats, peer);
    }
    // Then only read: walk the frame headers to count packets.
    let mut carry = buf.to_vec();
    loop {
        let mut pos = 0;
        let (mut n, mut publishes) = (0u64, 0u64);
        while let Some(rest) = carry.get(pos..)
            && let Ok(Some(len)) = protocol::frame_len(rest, usize::MAX)
            && rest.len() >= len
        {
            if rest.first().is_some_and(|b| b >> 4 == 3) {
                publishes += 1;
            }
            pos += len;
            n += 1;
        }
        stats.frames.fetch_add(n, Ordering::Relaxed);
        stats.publishes.fetch_add(publishes, Ordering::Relaxed);
        carry.drain(..pos);
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(r) => {
                stats.bytes.fetch_add(r as u64, Ordering::Relaxed);
                carry.extend_from_slice(chunk.get(..r).unwrap_or_default());
            }
        }
    }
}

/// `--ack`: decode everything in `version` and answer like a broker whose
/// topics have no subscribers.
fn serve_acking<S: Read + Write>(
    mut stream: S,
    mut buf: BytesMut,
    mut chunk: Vec<u8>,
    version: ProtocolVersion,
    stats: &SinkStats,
    peer: SocketAddr,
) {
    let v5 = version == ProtocolVersion::V5;
    // MQTT 5 PUBACK / PUBREC carry 0x10: accepted, nobody subscribed.
    let ack = |kind: AckKind, packet_id: u16| {
        if v5 {
            Packet::AckV5(AckV5 {
                kind,
                packet_id,
                reason: reason::NO_MATCHING_SUBSCRIBERS,
                properties: None,
            })
        } else if kind == AckKind::PubAck {
            Packet::PubAck(packet_id)
        } else {
            Packet::PubRec(packet_id)
        }
    };
    let mut replies = BytesMut::new();
    loop {
        let mut n = 0u64;
        let mut open = true;
        loop {
            let packet = match protocol::decode(&mut buf, Some(version), usize::MAX) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    stats.frames.fetch_add(n, Ordering::Relaxed);
                    return stats.failed(format!("{peer}: undecodable packet: {e}"));
                }
            };
            n += 1;
            let reply = match packet {
                Packet::Publish(p) => {
                    stats.publishes.fetch_add(1, Ordering::Relaxed);
                    match p.qos {
                        QoS::AtMostOnce => None,
                        QoS::AtLeastOnce => Some(ack(AckKind::PubAck, p.packet_id)),
                        QoS::ExactlyOnce => Some(ack(AckKind::PubRec, p.packet_id)),
                    }
                }
                Packet::PubRel(id) => Some(Packet::PubComp(id)),
                Packet::AckV5(a) if a.kind == AckKind::PubRel => Some(Packet::PubComp(a.packet_id)),
                Packet::Subscribe(s) => Some(Packet::SubAck(SubAck {
                    packet_id: s.packet_id,
                    codes: s
                        .filters
                        .iter()
                        .map(|f| SubAckCode::Granted(f.qos))
                        .collect(),
                })),
                Packet::PingReq => Some(Packet::PingResp),
                Packet::Disconnect | Packet::DisconnectV5(_) => {
                    open = false;
                    break;
                }
                _ => None,
            };
            if let Some(r) = reply {
                protocol::encode_v(version, &r, &mut replies);
            }
        }
        stats.frames.fetch_add(n, Ordering::Relaxed);
        if !replies.is_empty() {
            if stream
                .write_all(&replies)
                .and_then(|_| stream.flush())
                .is_err()
            {
                return;
            }
            replies.clear();
        }
        if !open || !read_some(&mut stream, &mut chunk, &mut buf, stats) {
            return;
        }
    }
}
