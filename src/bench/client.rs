//! One generator thread and its clients. Each client is three small tasks
//! over one socket: the reader (decodes, counts, acks), the writer (flushes
//! the client's buffer once per wake-up) and, for publishers, the producer
//! (appends PUBLISHes while the QoS 0 buffer or the QoS 1/2 window has room).
//!
//! Stopping never drops a read in flight: the stopper task writes DISCONNECT
//! through the writer, which then shuts the socket down, and the pending read
//! returns end-of-file.

use super::stats::{self, Counter, Counters, Histogram, SeqTracker};
use super::{Plan, Role, ThreadResult};
use crate::protocol::{self, Connect, Packet, ProtocolVersion, QoS, Subscribe, SubscribeFilter};
use bytes::BytesMut;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, Splitable};
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
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// State one client's tasks share (one thread, so `Cell`s).
struct Shared {
    out: RefCell<BytesMut>,
    writer: Cell<Option<Waker>>,
    producer: Cell<Option<Waker>>,
    inflight: Cell<usize>,
    stopping: Cell<bool>,
    fd: RawFd,
}

impl Shared {
    fn new(fd: RawFd) -> Self {
        Shared {
            out: RefCell::new(BytesMut::with_capacity(QOS0_BUFFER_BYTES)),
            writer: Cell::new(None),
            producer: Cell::new(None),
            inflight: Cell::new(0),
            stopping: Cell::new(false),
            fd,
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

async fn client_main(ctx: Rc<ThreadCtx>, idx: usize) {
    let plan = ctx.plan.clone();
    let c = &plan.common;
    let number = c.start_number + idx;
    let client_id = format!("{}_bench_{}_{}", c.prefix, plan.role.kind(), number);
    let ifaddr = (!c.ifaddr.is_empty()).then(|| c.ifaddr[idx % c.ifaddr.len()]);
    let mut stream = match connect_tcp(plan.broker, ifaddr).await {
        Ok(s) => s,
        Err(e) => {
            if idx == 0 || ctx.counters.get(Counter::ConnectFail as usize) == 0 {
                eprintln!("ringmq-bench: connect {}: {e}", plan.broker);
            }
            ctx.counters.add(Counter::ConnectFail, 1);
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let shared = Rc::new(Shared::new(stream.as_raw_fd()));
    ctx.clients.borrow_mut().push(shared.clone());
    if plan.stop.load(Ordering::Acquire) {
        shared.stop();
    }
    let connect = Packet::Connect(Box::new(Connect {
        version: if c.version == 3 {
            ProtocolVersion::V31
        } else {
            ProtocolVersion::V311
        },
        clean_session: c.clean,
        keep_alive_s: c.keepalive,
        client_id: client_id.as_str().into(),
        will: None,
        username: c.username.as_deref().map(Into::into),
        password: c
            .password
            .as_ref()
            .map(|p| bytes::Bytes::from(p.clone().into_bytes())),
        properties: None,
    }));
    let mut out = BytesMut::new();
    protocol::encode(&connect, &mut out);
    let (res, _) = stream.write_all(out).await;
    if res.is_err() {
        ctx.counters.add(Counter::ConnectFail, 1);
        return;
    }
    let (mut reader, writer) = stream.into_split();
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    // CONNACK first.
    let accepted = loop {
        match protocol::decode(&mut buf, Some(ProtocolVersion::V311), usize::MAX) {
            Ok(Some(Packet::ConnAck(a))) => break a.code == protocol::ConnectReturnCode::Accepted,
            Ok(Some(_)) | Err(_) => break false,
            Ok(None) => {}
        }
        if !read_more(&mut reader, &mut buf).await {
            break false;
        }
    };
    if !accepted {
        ctx.counters.add(Counter::ConnectFail, 1);
        return;
    }
    ctx.counters.add(Counter::ConnectSucc, 1);
    let writer_task = monoio::spawn(write_loop(writer, shared.clone()));
    let username = c.username.clone().unwrap_or_default();
    let mut producer = None;
    match &plan.role {
        Role::Sub { topic, qos } => {
            let filter = expand(topic, number, &client_id, &username);
            let qos = QoS::from_bits(*qos).unwrap_or(QoS::AtMostOnce);
            shared.write(|b| {
                protocol::encode(
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
        if !handle_frames(&ctx, &shared, &mut buf, subscriber) {
            break;
        }
        if !read_more(&mut reader, &mut buf).await {
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

async fn read_more<R: AsyncReadRent>(reader: &mut R, buf: &mut BytesMut) -> bool {
    if buf.capacity() - buf.len() < READ_CHUNK_BYTES / 4 {
        buf.reserve(READ_CHUNK_BYTES);
    }
    // monoio reads into the start of a BytesMut: read into the spare part.
    let len = buf.len();
    let (res, slice) = reader.read(std::mem::take(buf).slice_mut(len..)).await;
    *buf = slice.into_inner();
    matches!(res, Ok(n) if n > 0)
}

/// Handles every complete packet in `buf`; false if the connection must end.
fn handle_frames(ctx: &ThreadCtx, shared: &Shared, buf: &mut BytesMut, subscriber: u32) -> bool {
    let now = stats::now_ns();
    let mut latency = ctx.latency_us.borrow_mut();
    let mut seq = ctx.seq.borrow_mut();
    loop {
        let packet = match protocol::decode(buf, Some(ProtocolVersion::V311), usize::MAX) {
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
            Packet::PubAck(_) | Packet::PubComp(_) => {
                ctx.counters.add(Counter::PubSucc, 1);
                shared.inflight.set(shared.inflight.get().saturating_sub(1));
                shared.wake_producer();
            }
            Packet::PubRec(id) => shared.write(|b| protocol::encode(&Packet::PubRel(id), b)),
            Packet::PubRel(id) => shared.write(|b| protocol::encode(&Packet::PubComp(id), b)),
            Packet::SubAck(_) => ctx.counters.add(Counter::Sub, 1),
            _ => {}
        }
    }
}

/// Flushes the client's buffer; on stop, sends DISCONNECT and shuts the socket.
async fn write_loop(mut w: monoio::net::tcp::TcpOwnedWriteHalf, shared: Rc<Shared>) {
    let mut spare = BytesMut::with_capacity(QOS0_BUFFER_BYTES);
    loop {
        let ready = std::future::poll_fn(|cx| {
            let mut out = shared.out.borrow_mut();
            if !out.is_empty() {
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
        if !ready {
            let (_, _) = w.write_all(vec![0xe0, 0]).await;
            break;
        }
        let (res, mut b) = w.write_all(std::mem::take(&mut spare)).await;
        b.clear();
        spare = b;
        shared.wake_producer();
        if res.is_err() {
            break;
        }
    }
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

/// The publishing side of a `pub` client.
async fn produce(ctx: Rc<ThreadCtx>, shared: Rc<Shared>, number: usize, topic: String) {
    let Role::Pub {
        size,
        qos,
        interval_of_msg_ms,
        inflight,
        retain,
        ..
    } = ctx.plan.role.clone()
    else {
        return;
    };
    let qos = QoS::from_bits(qos).unwrap_or(QoS::AtMostOnce);
    let mut payload = vec![0u8; size];
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
                shared.inflight.get() < inflight
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
                let per = (2 + topic.len() + size + 5).max(1);
                ((QOS0_BUFFER_BYTES / per).clamp(1, PUBLISH_BATCH_MAX)) as u64
            } else {
                (inflight - shared.inflight.get()) as u64
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
            for _ in 0..n {
                stats::stamp(&mut payload, now, publisher, seq);
                seq = seq.wrapping_add(1);
                if qos != QoS::AtMostOnce {
                    packet_id = if packet_id == u16::MAX {
                        1
                    } else {
                        packet_id + 1
                    };
                }
                protocol::encode_publish(b, &topic, &payload, qos, packet_id, retain, false);
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
