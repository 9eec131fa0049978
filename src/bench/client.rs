//! One generator thread and its clients. Each client is three small tasks
//! over one socket: the reader (decodes, counts, acks), the writer (flushes
//! the client's buffer once per wake-up) and, for publishers, the producer
//! (appends PUBLISHes while the QoS 0 buffer or the QoS 1/2 window has room).
//!
//! Stopping never drops a read in flight: the stopper task writes DISCONNECT
//! through the writer, which then shuts the socket down, and the pending read
//! returns end-of-file.
//!
//! The tasks are generic over the stream (TCP, or rustls over TCP), so each
//! transport is its own monomorphic code and plain TCP pays nothing for TLS.
//! WebSocket is a framing step on each read and on each flush (one branch per
//! syscall on plain TCP). The MQTT version decides the CONNECT, the decoding
//! of everything the server sends and the PUBLISH encoder.

use super::stats::{self, Counter, Counters, Histogram, SeqTracker};
use super::stream::{ReadHalf, WriteHalf};
use super::ws::{WsReader, WsWriter};
use super::{Plan, Role, ThreadResult};
use crate::protocol::{
    self, AckKind, Connect, Packet, Properties, ProtocolVersion, QoS, Subscribe, SubscribeFilter,
    reason,
};
use bytes::BytesMut;
use monoio::io::Splitable;
use monoio::net::TcpStream;
use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// A QoS 0 producer refills the buffer while less than this is waiting.
const QOS0_BUFFER_BYTES: usize = 64 * 1024;
/// At most this many PUBLISHes are appended per producer turn.
const PUBLISH_BATCH_MAX: usize = 1024;
/// Largest read a busy client grows to.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// A client's first reads: an idle client (`conn`) holds no more than this,
/// so that tens of thousands of them cost the tool megabytes, not gigabytes
/// (whose page faults used to be half of its CPU while connecting).
const READ_CHUNK_MIN_BYTES: usize = 1024;

/// State one client's tasks share (one thread, so `Cell`s).
struct Shared {
    out: RefCell<BytesMut>,
    writer: Cell<Option<Waker>>,
    producer: Cell<Option<Waker>>,
    inflight: Cell<usize>,
    /// The QoS 1/2 window: -F, lowered to the server's MQTT 5 Receive Maximum.
    inflight_max: Cell<usize>,
    stopping: Cell<bool>,
    fd: RawFd,
    /// WebSocket only: payloads of pings the writer must answer.
    pings: RefCell<Vec<Vec<u8>>>,
}

impl Shared {
    fn new(fd: RawFd, inflight_max: usize) -> Self {
        Shared {
            out: RefCell::new(BytesMut::new()),
            writer: Cell::new(None),
            producer: Cell::new(None),
            inflight: Cell::new(0),
            inflight_max: Cell::new(inflight_max),
            stopping: Cell::new(false),
            fd,
            pings: RefCell::new(Vec::new()),
        }
    }

    fn wake_writer(&self) {
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }

    fn write(&self, f: impl FnOnce(&mut BytesMut)) {
        f(&mut self.out.borrow_mut());
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }

    fn wake_producer(&self) {
        if let Some(w) = self.producer.take() {
            w.wake();
        }
    }

    /// Asks the client to send DISCONNECT and close.
    fn stop(&self) {
        self.stopping.set(true);
        if let Some(w) = self.writer.take() {
            w.wake();
        }
        self.wake_producer();
    }
}

struct ThreadCtx {
    plan: Arc<Plan>,
    counters: Arc<Counters>,
    latency_us: RefCell<Histogram>,
    seq: RefCell<SeqTracker>,
    clients: RefCell<Vec<Rc<Shared>>>,
    publishers_done: Cell<usize>,
    finished: Cell<bool>,
    /// A server DISCONNECT was already reported on this thread.
    told_disconnect: Cell<bool>,
}

/// Runs the clients of thread `t` (clients t, t + cores, ...) to the end.
pub fn thread_main(
    t: usize,
    cores: usize,
    plan: Arc<Plan>,
    counters: Arc<Counters>,
) -> ThreadResult {
    let rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .with_entries(4096)
        .enable_timer()
        .build();
    let mut rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ringmq-bench: thread {t}: cannot start runtime: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(run_thread(t, cores, plan, counters))
}

async fn run_thread(
    t: usize,
    cores: usize,
    plan: Arc<Plan>,
    counters: Arc<Counters>,
) -> ThreadResult {
    let ctx = Rc::new(ThreadCtx {
        plan: plan.clone(),
        counters,
        latency_us: RefCell::new(stats::new_histogram()),
        seq: RefCell::new(SeqTracker::default()),
        clients: RefCell::new(Vec::new()),
        publishers_done: Cell::new(0),
        finished: Cell::new(false),
        told_disconnect: Cell::new(false),
    });
    monoio::spawn(stopper(ctx.clone()));
    let gap = match plan.common.conn_rate {
        Some(r) if r > 0 => Duration::from_nanos(1_000_000_000 / r),
        _ => Duration::from_millis(plan.common.interval_ms),
    };
    let start = Instant::now();
    let mut handles = Vec::new();
    for idx in (t..plan.common.count).step_by(cores) {
        let at = start + gap * idx as u32;
        let now = Instant::now();
        if at > now {
            monoio::time::sleep(at - now).await;
        }
        if plan.stop.load(Ordering::Acquire) {
            break;
        }
        handles.push(monoio::spawn(client_main(ctx.clone(), idx)));
    }
    for h in handles {
        h.await;
    }
    ctx.finished.set(true);
    ThreadResult {
        latency_us: ctx.latency_us.replace(stats::new_histogram()),
        seq: ctx.seq.replace(SeqTracker::default()),
        publishers_done: ctx.publishers_done.get(),
    }
}

/// Watches the global stop flag and stops every client of this thread.
async fn stopper(ctx: Rc<ThreadCtx>) {
    loop {
        monoio::time::sleep(Duration::from_millis(20)).await;
        if ctx.finished.get() {
            return;
        }
        if ctx.plan.stop.load(Ordering::Acquire) {
            for c in ctx.clients.borrow().iter() {
                c.stop();
            }
            // Clients still connecting see the flag when they register.
        }
    }
}

async fn connect_tcp(broker: SocketAddr, ifaddr: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(local) = ifaddr else {
        return TcpStream::connect_addr(broker).await;
    };
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(broker), Type::STREAM, None)?;
    if local.is_ipv4() {
        // The port is chosen at connect, for the whole 4-tuple, not at bind
        // among every socket bound to `local`: connections to one broker
        // from many local addresses then share the port range.
        let one: libc::c_int = 1;
        // SAFETY: setsockopt on a socket this function owns, with a c_int.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    socket.bind(&SocketAddr::new(local, 0).into())?;
    socket.set_nonblocking(true)?;
    match socket.connect(&broker.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream::from_std(std::net::TcpStream::from(socket))?;
    stream.writable(false).await?;
    // SAFETY: `stream` owns this fd for the duration of the borrow.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    if let Some(e) = socket2::SockRef::from(&fd).take_error()? {
        return Err(e);
    }
    Ok(stream)
}

fn expand(template: &str, number: usize, client_id: &str, username: &str) -> String {
    template
        .replace("%i", &number.to_string())
        .replace("%c", client_id)
        .replace("%u", username)
}

/// The CONNECT of one client: its version, and for MQTT 5 the Session
/// Expiry Interval of `-x`.
fn connect_packet(plan: &Plan, client_id: &str) -> Packet {
    let c = &plan.common;
    let v5 = plan.version == ProtocolVersion::V5;
    let properties = (v5 && (c.session_expiry > 0 || c.topic_alias_maximum > 0)).then(|| {
        Box::new(Properties {
            session_expiry_interval: (c.session_expiry > 0).then_some(c.session_expiry),
            topic_alias_maximum: (c.topic_alias_maximum > 0).then_some(c.topic_alias_maximum),
            ..Default::default()
        })
    });
    Packet::Connect(Box::new(Connect {
        version: plan.version,
        clean_session: c.clean,
        keep_alive_s: c.keepalive,
        client_id: client_id.into(),
        will: None,
        username: c.username.as_deref().map(Into::into),
        password: c
            .password
            .as_ref()
            .map(|p| bytes::Bytes::from(p.clone().into_bytes())),
        properties,
    }))
}

/// Counts a failed connect and says why (the first failure of each thread).
fn connect_failed(ctx: &ThreadCtx, idx: usize, why: &str) {
    if idx == 0 || ctx.counters.get(Counter::ConnectFail as usize) == 0 {
        eprintln!("ringmq-bench: {}: {why}", ctx.plan.broker);
    }
    ctx.counters.add(Counter::ConnectFail, 1);
}

async fn client_main(ctx: Rc<ThreadCtx>, idx: usize) {
    let plan = ctx.plan.clone();
    let c = &plan.common;
    let ifaddr = (!c.ifaddr.is_empty()).then(|| c.ifaddr[idx % c.ifaddr.len()]);
    let stream = match connect_tcp(plan.broker, ifaddr).await {
        Ok(s) => s,
        Err(e) => return connect_failed(&ctx, idx, &format!("connect: {e}")),
    };
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    match &plan.tls {
        None => {
            let (reader, writer) = stream.into_split();
            session(ctx, idx, reader, writer, fd).await
        }
        Some(tls) => {
            let connected =
                super::stream::tls_connect(stream, tls.config.clone(), tls.server_name.clone());
            match connected.await {
                Ok((reader, writer)) => session(ctx, idx, reader, writer, fd).await,
                Err(e) => connect_failed(&ctx, idx, &format!("TLS handshake: {e}")),
            }
        }
    }
}

/// One client over an established stream (`fd` is its socket): WebSocket
/// handshake if asked, CONNECT, then the role's work until the end.
async fn session<R, W>(ctx: Rc<ThreadCtx>, idx: usize, mut reader: R, mut writer: W, fd: RawFd)
where
    R: ReadHalf + 'static,
    W: WriteHalf + 'static,
{
    let plan = ctx.plan.clone();
    let c = &plan.common;
    let mut input = Input {
        buf: BytesMut::new(),
        chunk: READ_CHUNK_MIN_BYTES,
        ws: None,
        ws_closed: false,
    };
    if let Some(ws) = &plan.ws {
        match super::ws::client_handshake(&mut reader, &mut writer, &ws.host, &ws.path).await {
            Ok(rest) => input.ws = Some(WsReader::new(rest)),
            Err(e) => return connect_failed(&ctx, idx, &e),
        }
    }
    let number = c.start_number + idx;
    let client_id = format!("{}_bench_{}_{}", c.prefix, plan.role.kind(), number);
    let window = match plan.role {
        Role::Pub { inflight, .. } => inflight,
        _ => 1,
    };
    let shared = Rc::new(Shared::new(fd, window));
    ctx.clients.borrow_mut().push(shared.clone());
    if plan.stop.load(Ordering::Acquire) {
        shared.stop();
    }
    let version = plan.version;
    shared.write(|b| protocol::encode(&connect_packet(&plan, &client_id), b));
    let ws_writer = plan.ws.as_ref().map(|_| WsWriter::default());
    let writer_task = monoio::spawn(write_loop(writer, shared.clone(), ws_writer));
    // CONNACK first.
    let accepted = loop {
        match protocol::decode(&mut input.buf, Some(version), usize::MAX) {
            Ok(Some(Packet::ConnAck(a))) if a.code == protocol::ConnectReturnCode::Accepted => {
                break Ok(None);
            }
            Ok(Some(Packet::ConnAck(a))) => break Err(format!("CONNACK refused: {:?}", a.code)),
            Ok(Some(Packet::ConnAckV5(a))) if a.reason == reason::SUCCESS => {
                break Ok(a.properties.and_then(|p| p.receive_maximum));
            }
            Ok(Some(Packet::ConnAckV5(a))) => {
                break Err(format!(
                    "CONNACK reason 0x{:02x} ({})",
                    a.reason,
                    reason::name(a.reason)
                ));
            }
            Ok(Some(p)) => break Err(format!("expected CONNACK, got {}", p.name())),
            Err(e) => break Err(format!("bad CONNACK: {e}")),
            Ok(None) => {}
        }
        if let Err(e) = input.read_more(&mut reader, &shared).await {
            break Err(format!("no CONNACK: {e}"));
        }
    };
    let receive_maximum = match accepted {
        Ok(r) => r,
        Err(e) => {
            connect_failed(&ctx, idx, &e);
            shared.stop();
            writer_task.await;
            return;
        }
    };
    if let Some(r) = receive_maximum {
        shared.inflight_max.set(window.min(r as usize).max(1));
    }
    ctx.counters.add(Counter::ConnectSucc, 1);
    let username = c.username.clone().unwrap_or_default();
    let mut producer = None;
    match &plan.role {
        Role::Sub { topic, qos } => {
            let filter = expand(topic, number, &client_id, &username);
            let qos = QoS::from_bits(*qos).unwrap_or(QoS::AtMostOnce);
            shared.write(|b| {
                protocol::encode_v(
                    version,
                    &Packet::Subscribe(Subscribe {
                        packet_id: 1,
                        filters: vec![SubscribeFilter {
                            filter: filter.into(),
                            qos,
                            no_local: false,
                            retain_as_published: false,
                            retain_handling: 0,
                        }],
                        properties: None,
                    }),
                    b,
                )
            });
        }
        Role::Pub { topic, .. } => {
            let topic = expand(topic, number, &client_id, &username);
            producer = Some(monoio::spawn(produce(
                ctx.clone(),
                shared.clone(),
                number,
                topic,
            )));
        }
        Role::Conn => {}
    }
    if c.keepalive > 0 {
        monoio::spawn(pinger(
            shared.clone(),
            Duration::from_secs(c.keepalive as u64),
        ));
    }
    let subscriber = idx as u32;
    loop {
        if !handle_frames(&ctx, &shared, &mut input.buf, subscriber) {
            break;
        }
        if input.read_more(&mut reader, &shared).await.is_err() {
            break;
        }
    }
    shared.stop();
    if let Some(p) = producer {
        p.await;
    }
    writer_task.await;
    ctx.counters.add(Counter::ConnClosed, 1);
}

/// The reading side of a client: MQTT bytes in `buf`, unframed first when
/// the client speaks WebSocket.
struct Input {
    buf: BytesMut,
    /// How much the next read asks for (grows while reads fill it).
    chunk: usize,
    ws: Option<WsReader>,
    /// The server sent a WebSocket close frame.
    ws_closed: bool,
}

impl Input {
    /// Reads more MQTT bytes; `Err` says why the stream ended.
    async fn read_more<R: ReadHalf>(
        &mut self,
        reader: &mut R,
        shared: &Shared,
    ) -> Result<(), String> {
        let Some(ws) = &mut self.ws else {
            let before = self.buf.len();
            return match reader.read_append(&mut self.buf, self.chunk).await {
                Ok(0) => Err("connection closed by the server".into()),
                Ok(n) => {
                    // A read that filled what was free: read more at a time.
                    if before + n == self.buf.capacity() {
                        self.chunk = (self.chunk * 4).min(READ_CHUNK_BYTES);
                    }
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            };
        };
        if self.ws_closed {
            return Err("WebSocket closed by the server".into());
        }
        match reader.read_append(&mut ws.raw, READ_CHUNK_BYTES).await {
            Ok(0) => return Err("connection closed by the server".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
        let mut pings = shared.pings.borrow_mut();
        self.ws_closed = !ws.decode(&mut self.buf, &mut pings)?;
        if !pings.is_empty() {
            drop(pings);
            shared.wake_writer();
        }
        Ok(())
    }
}

/// Ends a QoS 1/2 flow: the window has one more free slot.
fn publish_acked(ctx: &ThreadCtx, shared: &Shared, ok: bool) {
    let c = if ok {
        Counter::PubSucc
    } else {
        Counter::PubFail
    };
    ctx.counters.add(c, 1);
    shared.inflight.set(shared.inflight.get().saturating_sub(1));
    shared.wake_producer();
}

/// Handles every complete packet in `buf`; false if the connection must end.
fn handle_frames(ctx: &ThreadCtx, shared: &Shared, buf: &mut BytesMut, subscriber: u32) -> bool {
    let version = ctx.plan.version;
    let now = stats::now_ns();
    let mut latency = ctx.latency_us.borrow_mut();
    let mut seq = ctx.seq.borrow_mut();
    loop {
        let packet = match protocol::decode(buf, Some(version), usize::MAX) {
            Ok(Some(p)) => p,
            Ok(None) => return true,
            Err(e) => {
                eprintln!("ringmq-bench: broker sent a bad packet: {e}");
                return false;
            }
        };
        match packet {
            Packet::Publish(p) => {
                ctx.counters.add(Counter::Recv, 1);
                if p.topic.is_empty() {
                    ctx.counters.add(Counter::RecvAliased, 1);
                }
                if let Some((sent_ns, publisher, n)) = stats::read_stamp(&p.payload) {
                    let _ = latency.record((now.saturating_sub(sent_ns) / 1000).max(1));
                    seq.record(subscriber, publisher, n);
                }
                match p.qos {
                    QoS::AtMostOnce => {}
                    QoS::AtLeastOnce => {
                        shared.write(|b| protocol::encode(&Packet::PubAck(p.packet_id), b))
                    }
                    QoS::ExactlyOnce => {
                        shared.write(|b| protocol::encode(&Packet::PubRec(p.packet_id), b))
                    }
                }
            }
            Packet::PubAck(_) | Packet::PubComp(_) => publish_acked(ctx, shared, true),
            Packet::PubRec(id) => shared.write(|b| protocol::encode(&Packet::PubRel(id), b)),
            Packet::PubRel(id) => shared.write(|b| protocol::encode(&Packet::PubComp(id), b)),
            // MQTT 5 acknowledgements with a reason code (e.g. 0x10 No
            // matching subscribers, a success) or properties.
            Packet::AckV5(a) => {
                let ok = a.reason < reason::UNSPECIFIED_ERROR;
                match a.kind {
                    AckKind::PubAck | AckKind::PubComp => publish_acked(ctx, shared, ok),
                    // A failed PUBREC ends the QoS 2 flow (no PUBREL).
                    AckKind::PubRec if ok => {
                        shared.write(|b| protocol::encode(&Packet::PubRel(a.packet_id), b))
                    }
                    AckKind::PubRec => publish_acked(ctx, shared, false),
                    AckKind::PubRel => {
                        shared.write(|b| protocol::encode(&Packet::PubComp(a.packet_id), b))
                    }
                }
            }
            Packet::SubAck(s) => {
                let refused = s.codes.contains(&protocol::SubAckCode::Failure);
                ctx.counters.add(
                    if refused {
                        Counter::SubFail
                    } else {
                        Counter::Sub
                    },
                    1,
                );
            }
            Packet::SubAckV5(s) => {
                let refused = s.reasons.iter().any(|r| *r >= reason::UNSPECIFIED_ERROR);
                ctx.counters.add(
                    if refused {
                        Counter::SubFail
                    } else {
                        Counter::Sub
                    },
                    1,
                );
            }
            Packet::Disconnect => return false,
            Packet::DisconnectV5(d) => {
                if !ctx.told_disconnect.replace(true) {
                    eprintln!(
                        "ringmq-bench: server sent DISCONNECT reason 0x{:02x} ({})",
                        d.reason,
                        reason::name(d.reason)
                    );
                }
                return false;
            }
            _ => {}
        }
    }
}

/// Flushes the client's buffer (as one WebSocket binary frame when `ws`);
/// on stop, sends DISCONNECT and shuts the socket.
async fn write_loop<W: WriteHalf>(mut w: W, shared: Rc<Shared>, mut ws: Option<WsWriter>) {
    let mut spare = BytesMut::new();
    let mut framed = BytesMut::new();
    loop {
        let ready = std::future::poll_fn(|cx| {
            let mut out = shared.out.borrow_mut();
            if !out.is_empty() || (ws.is_some() && !shared.pings.borrow().is_empty()) {
                std::mem::swap(&mut *out, &mut spare);
                return Poll::Ready(true);
            }
            if shared.stopping.get() {
                return Poll::Ready(false);
            }
            shared.writer.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await;
        let Some(ws) = &mut ws else {
            if !ready {
                let (_, _) = w.write_all(BytesMut::from(&[0xe0, 0][..])).await;
                break;
            }
            let (res, mut b) = w.write_all(std::mem::take(&mut spare)).await;
            b.clear();
            spare = b;
            shared.wake_producer();
            if res.is_err() {
                break;
            }
            continue;
        };
        framed.clear();
        let mut framing = Ok(());
        for ping in shared.pings.borrow_mut().drain(..) {
            framing = framing.and_then(|_| ws.pong(&ping, &mut framed));
        }
        if !ready {
            let _ = framing
                .and_then(|_| ws.binary(&[0xe0, 0], &mut framed))
                .and_then(|_| ws.close(&mut framed));
            let (_, _) = w.write_all(std::mem::take(&mut framed)).await;
            break;
        }
        if !spare.is_empty() {
            framing = framing.and_then(|_| ws.binary(&spare, &mut framed));
        }
        spare.clear();
        if let Err(e) = framing {
            eprintln!("ringmq-bench: {e}");
            break;
        }
        let (res, b) = w.write_all(std::mem::take(&mut framed)).await;
        framed = b;
        shared.wake_producer();
        if res.is_err() {
            break;
        }
    }
    // TLS: send close_notify (a plain TCP stream shuts its write side).
    w.shutdown().await;
    // SAFETY: the client task still owns the read half, so `fd` is open.
    unsafe {
        libc::shutdown(shared.fd, libc::SHUT_RDWR);
    }
}

async fn pinger(shared: Rc<Shared>, every: Duration) {
    loop {
        monoio::time::sleep(every).await;
        if shared.stopping.get() {
            return;
        }
        shared.write(|b| protocol::encode(&Packet::PingReq, b));
    }
}

/// Takes up to `want` messages from the global `-L` budget.
fn take_budget(plan: &Plan, want: u64) -> u64 {
    let Some(left) = &plan.remaining else {
        return want;
    };
    let mut cur = left.load(Ordering::Relaxed);
    loop {
        let n = cur.min(want);
        if n == 0 {
            return 0;
        }
        match left.compare_exchange_weak(cur, cur - n, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return n,
            Err(now) => cur = now,
        }
    }
}

/// A producer's PUBLISH (its topic, QoS, retain flag and payload size never
/// change), encoded once by the codec in the connection's version. Each
/// message is a copy with its stamp and packet id patched in: no encoder call
/// and no version branch per message (DESIGN: encode once, patch the id).
struct Template {
    bytes: Vec<u8>,
    /// Where the payload starts.
    payload_at: usize,
    /// Where the packet id is (QoS 1/2).
    packet_id_at: Option<usize>,
}

impl Template {
    fn new(version: ProtocolVersion, topic: &str, size: usize, qos: QoS, retain: bool) -> Self {
        let payload = vec![0u8; size];
        let mut b = BytesMut::new();
        let v5 = version == ProtocolVersion::V5;
        if v5 {
            protocol::encode_publish_v5(&mut b, topic, &payload, qos, 1, retain, false, None);
        } else {
            protocol::encode_publish(&mut b, topic, &payload, qos, 1, retain, false);
        }
        let payload_at = b.len() - size;
        // The packet id ends the variable header; in v5 the (empty, one
        // byte) property block follows it.
        let packet_id_at = (qos != QoS::AtMostOnce).then(|| payload_at - 2 - usize::from(v5));
        Template {
            bytes: b.to_vec(),
            payload_at,
            packet_id_at,
        }
    }

    /// Appends one copy with this stamp and packet id.
    #[inline]
    fn put(&self, b: &mut BytesMut, now_ns: u64, publisher: u32, seq: u32, packet_id: u16) {
        let at = b.len();
        b.extend_from_slice(&self.bytes);
        if let Some(payload) = b.get_mut(at + self.payload_at..) {
            stats::stamp(payload, now_ns, publisher, seq);
        }
        if let Some(id_at) = self.packet_id_at
            && let Some(id) = b.get_mut(at + id_at..at + id_at + 2)
        {
            id.copy_from_slice(&packet_id.to_be_bytes());
        }
    }
}

/// The publishing side of a `pub` client.
async fn produce(ctx: Rc<ThreadCtx>, shared: Rc<Shared>, number: usize, topic: String) {
    let Role::Pub {
        size,
        qos,
        interval_of_msg_ms,
        retain,
        ..
    } = ctx.plan.role.clone()
    else {
        return;
    };
    let qos = QoS::from_bits(qos).unwrap_or(QoS::AtMostOnce);
    let template = Template::new(ctx.plan.version, &topic, size, qos, retain);
    let publisher = number as u32;
    let mut seq: u32 = 0;
    let mut packet_id: u16 = 0;
    let interval = Duration::from_millis(interval_of_msg_ms);
    let started = Instant::now();
    let mut sent_total: u64 = 0;
    loop {
        // Wait for room: buffer space for QoS 0, window space for QoS 1/2.
        std::future::poll_fn(|cx| {
            let room = if qos == QoS::AtMostOnce {
                shared.out.borrow().len() < QOS0_BUFFER_BYTES
            } else {
                shared.inflight.get() < shared.inflight_max.get()
            };
            if room || shared.stopping.get() {
                Poll::Ready(())
            } else {
                shared.producer.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await;
        if shared.stopping.get() {
            break;
        }
        let want = if interval.is_zero() {
            if qos == QoS::AtMostOnce {
                let per = template.bytes.len().max(1);
                ((QOS0_BUFFER_BYTES / per).clamp(1, PUBLISH_BATCH_MAX)) as u64
            } else {
                shared
                    .inflight_max
                    .get()
                    .saturating_sub(shared.inflight.get()) as u64
            }
        } else {
            1
        };
        let n = take_budget(&ctx.plan, want);
        if n == 0 {
            break;
        }
        let now = stats::now_ns();
        shared.write(|b| {
            b.reserve(n as usize * template.bytes.len());
            for _ in 0..n {
                if qos != QoS::AtMostOnce {
                    packet_id = if packet_id == u16::MAX {
                        1
                    } else {
                        packet_id + 1
                    };
                }
                template.put(b, now, publisher, seq, packet_id);
                seq = seq.wrapping_add(1);
            }
        });
        if qos != QoS::AtMostOnce {
            shared.inflight.set(shared.inflight.get() + n as usize);
        }
        ctx.counters.add(Counter::Pub, n);
        sent_total += n;
        if !interval.is_zero() {
            let next = started + Duration::from_nanos(interval.as_nanos() as u64 * sent_total);
            let now = Instant::now();
            if next > now {
                monoio::time::sleep(next - now).await;
            }
        }
    }
    // Budget spent: wait for the last acks, then leave.
    if !shared.stopping.get() {
        std::future::poll_fn(|cx| {
            if shared.inflight.get() == 0 || shared.stopping.get() {
                Poll::Ready(())
            } else {
                shared.producer.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await;
        ctx.publishers_done.set(ctx.publishers_done.get() + 1);
        shared.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn plan(args: &[&str]) -> Plan {
        let cli =
            super::super::BenchCli::parse_from(["ringmq-bench", "conn"].iter().chain(args.iter()));
        let super::super::Cmd::Conn(common) = cli.cmd else {
            unreachable!()
        };
        let version = match common.version {
            3 => ProtocolVersion::V31,
            5 => ProtocolVersion::V5,
            _ => ProtocolVersion::V311,
        };
        Plan {
            common,
            role: Role::Conn,
            broker: "127.0.0.1:1883".parse().unwrap(),
            version,
            tls: None,
            ws: None,
            remaining: None,
            stop: Default::default(),
        }
    }

    fn connect_of(args: &[&str]) -> Connect {
        let mut b = BytesMut::new();
        protocol::encode(&connect_packet(&plan(args), "id"), &mut b);
        match protocol::decode(&mut b, None, usize::MAX) {
            Ok(Some(Packet::Connect(c))) => *c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn connect_carries_version_and_session_expiry() {
        let c = connect_of(&["-V", "5", "-x", "3600", "-C", "false"]);
        assert_eq!(c.version, ProtocolVersion::V5);
        assert!(!c.clean_session);
        let p = c.properties.expect("v5 properties");
        assert_eq!(p.session_expiry_interval, Some(3600));
        // No -x: no property; -x is MQTT 5 only.
        assert!(connect_of(&["-V", "5"]).properties.is_none());
        let c = connect_of(&["-V", "4", "-x", "60"]);
        assert_eq!(c.version, ProtocolVersion::V311);
        assert!(c.properties.is_none());
        assert_eq!(connect_of(&["-V", "3"]).version, ProtocolVersion::V31);
    }

    #[test]
    fn publish_template_copies_decode_with_their_stamp_and_id() {
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                for size in [0, 10, 16, 64, 200] {
                    let t = Template::new(version, "t/1", size, qos, true);
                    let mut b = BytesMut::new();
                    t.put(&mut b, 123_456, 7, 42, 300);
                    t.put(&mut b, 123_457, 7, 43, 301);
                    for (seq, id) in [(42, 300), (43, 301)] {
                        let Ok(Some(Packet::Publish(p))) =
                            protocol::decode(&mut b, Some(version), usize::MAX)
                        else {
                            panic!("{version:?} {qos:?} {size}: not a PUBLISH");
                        };
                        assert_eq!(p.topic, "t/1");
                        assert_eq!((p.qos, p.retain, p.dup), (qos, true, false));
                        assert_eq!(p.packet_id, if qos == QoS::AtMostOnce { 0 } else { id });
                        assert_eq!(p.payload.len(), size);
                        if size >= stats::STAMP_BYTES {
                            let stamp = stats::read_stamp(&p.payload);
                            assert_eq!(stamp, Some((123_456 + seq as u64 - 42, 7, seq)));
                        }
                    }
                    assert!(b.is_empty());
                }
            }
        }
    }

    #[test]
    fn emqtt_bench_style_boolean_flags() {
        let p = plan(&["-S", "--ws"]);
        assert!(p.common.ssl && p.common.ws);
        assert_eq!(p.common.ws_path, "/mqtt");
        let p = plan(&["-S", "false", "--ws", "true", "-c", "3"]);
        assert!(!p.common.ssl && p.common.ws);
        assert_eq!(p.common.count, 3);
        assert!(!plan(&[]).common.ssl);
    }
}
