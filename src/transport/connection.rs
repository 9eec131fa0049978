//! The tasks of one client connection.
//!
//! 1. CONNECT phase ([`run`]): read until a CONNECT is decoded (a deadline
//!    task shuts the socket if none comes in time), then either serve it here
//!    or, if its client id's home is another core, hand the raw fd and the
//!    bytes read so far to that core ([`adopt`] runs there). No I/O op is in
//!    flight when the fd leaves.
//! 2. Serving ([`serve`]): a reader task (this one) decodes every complete
//!    packet of each read and hands it to the shard; a writer task writes the
//!    connection's buffer whenever the shard has appended to it, so all the
//!    packets of a loop turn leave in one write.
//!
//! Closing never drops a read in flight (io_uring may still complete it):
//! the shard shuts the socket's read side and the read returns end-of-file.

use crate::broker::conn::{ConnIo, ConnSlot, Writer};
use crate::broker::handle::{Flow, Held};
use crate::broker::shard::{CloseReason, Shard, ShardRef};
use crate::broker::{Adopted, ShardMsg, home_core};
use crate::protocol::{self, Connect, ConnectReturnCode, DecodeError, Packet, ProtocolVersion};
use bytes::BytesMut;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, Splitable};
use monoio::net::TcpStream;
use monoio::net::tcp::TcpOwnedReadHalf;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Smallest read buffer (an idle connection's): PINGREQs and acks; a larger
/// frame gets room for itself from its header.
const READ_MIN_BYTES: usize = 128;
/// Largest read buffer a busy connection grows to (frames larger than this
/// get a buffer of their own size).
const READ_MAX_BYTES: usize = 64 * 1024;
/// A read that waited at least this long marks the connection as quiet: its
/// next wait is for readability, with no buffer (see [`WaitReadable`]).
const QUIET_AFTER: Duration = Duration::from_secs(1);
/// How long a closing connection may take to flush before it is aborted.
const CLOSE_FLUSH_MAX: Duration = Duration::from_secs(5);

/// Runs `f` on the shard, then sends what it queued for other cores.
pub fn with_shard<R>(shard: &ShardRef, f: impl FnOnce(&mut Shard) -> R) -> R {
    let mut s = shard.borrow_mut();
    let r = f(&mut s);
    if s.outbox.flush() {
        drop(s);
        schedule_outbox_retry(shard);
    }
    r
}

/// A receiver's queue was full: retry the flush shortly, once per core.
fn schedule_outbox_retry(shard: &ShardRef) {
    {
        let mut s = shard.borrow_mut();
        if s.outbox_retrying {
            return;
        }
        s.outbox_retrying = true;
    }
    let shard = shard.clone();
    monoio::spawn(async move {
        loop {
            monoio::time::sleep(Duration::from_millis(1)).await;
            let mut s = shard.borrow_mut();
            if !s.outbox.flush() {
                s.outbox_retrying = false;
                return;
            }
        }
    });
}

/// How long a connection over `max_connections` may take to send the
/// CONNECT it is refused.
const REFUSE_WITHIN: Duration = Duration::from_secs(2);

/// One connection over the limit being refused (`Shard::refusing`).
struct Refusing(ShardRef);

impl Drop for Refusing {
    fn drop(&mut self) {
        self.0.borrow_mut().refusing -= 1;
    }
}

/// Keeps the connection count of a core accurate whatever path a task ends by.
struct Counted(ShardRef);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.borrow_mut().connections -= 1;
    }
}

/// Registers a socket waiting for CONNECT with the shard, whose ticker shuts
/// it down at the deadline (and `close_all` at shutdown). Unregistered on
/// drop, which happens before the socket is closed or moved, so the shard
/// never shuts down an fd that has been reused.
struct ConnectDeadline {
    shard: ShardRef,
    key: usize,
}

impl ConnectDeadline {
    fn arm(shard: &ShardRef, fd: RawFd, timeout: Duration) -> Self {
        let key = shard
            .borrow_mut()
            .connecting
            .insert((fd, Instant::now() + timeout));
        ConnectDeadline {
            shard: shard.clone(),
            key,
        }
    }
}

impl Drop for ConnectDeadline {
    fn drop(&mut self) {
        self.shard.borrow_mut().connecting.try_remove(self.key);
    }
}

/// An accepted connection: CONNECT phase, then serve here or hand over.
/// `slot` is `None` for a connection over `max_connections`: its CONNECT is
/// read (within `REFUSE_WITHIN`) only to be answered with CONNACK 0x97
/// (quota exceeded; 0x03 server unavailable before v5).
pub async fn run(shard: ShardRef, mut stream: TcpStream, peer: SocketAddr, slot: Option<ConnSlot>) {
    let counted = Counted(shard.clone());
    let _refusing = slot.is_none().then(|| Refusing(shard.clone()));
    let (me, cores, packet_max, mut connect_timeout) = {
        let s = shard.borrow();
        (
            s.id,
            s.cores,
            s.config.packet_size_max_bytes,
            Duration::from_secs(s.config.connect_timeout_s),
        )
    };
    if slot.is_none() {
        connect_timeout = connect_timeout.min(REFUSE_WITHIN);
    }
    let deadline = ConnectDeadline::arm(&shard, stream.as_raw_fd(), connect_timeout);
    let mut buf = BytesMut::new();
    let mut read_size = READ_MIN_BYTES;
    let mut connect = loop {
        match protocol::decode(&mut buf, None, packet_max) {
            Ok(Some(Packet::Connect(c))) => break c,
            Ok(Some(p)) => {
                log::warn!("{peer}: first packet is {}, not CONNECT: closing", p.name());
                return;
            }
            Ok(None) => {}
            Err(DecodeError::UnsupportedProtocolLevel(level)) => {
                log::warn!("{peer}: unsupported protocol level {level}: CONNACK 0x01");
                refuse(
                    &mut stream,
                    ProtocolVersion::V311,
                    ConnectReturnCode::UnacceptableProtocolVersion as u8,
                )
                .await;
                return;
            }
            Err(e) => {
                log::warn!("{peer}: {e} in CONNECT: closing");
                return;
            }
        }
        let got = read_more(&mut stream, &mut buf, &mut read_size, packet_max).await;
        if !matches!(got, Ok(n) if n > 0) {
            return;
        }
    };
    let Some(slot) = slot else {
        let code = if connect.version == ProtocolVersion::V5 {
            protocol::reason::QUOTA_EXCEEDED
        } else {
            ConnectReturnCode::ServerUnavailable as u8
        };
        log::info!("{peer}: over max_connections: CONNACK {code:#04x}");
        refuse(&mut stream, connect.version, code).await;
        return;
    };
    let assigned = connect.client_id.is_empty();
    if assigned {
        // 3.1.1 allows an empty id only with a clean session; v5 always
        // (the id is assigned and told in the CONNACK).
        if !connect.clean_session && connect.version != ProtocolVersion::V5 {
            log::warn!("{peer}: empty client id with clean session 0: CONNACK 0x02");
            refuse(
                &mut stream,
                connect.version,
                ConnectReturnCode::IdentifierRejected as u8,
            )
            .await;
            return;
        }
        connect.client_id = shard.borrow_mut().assign_client_id();
    }
    drop(deadline);
    let home = home_core(&connect.client_id, cores);
    if home == me {
        // A task of its own: the connection then lives in a future of
        // serve's size, not one that also holds the CONNECT phase's state.
        monoio::spawn(serve(
            shard,
            stream,
            buf,
            (connect, assigned),
            peer,
            (counted, slot),
        ));
        return;
    }
    // Hand over: no op is in flight on the socket (the last read completed).
    // SAFETY: `into_raw_fd` gives up monoio's ownership of a valid socket.
    let fd = unsafe { OwnedFd::from_raw_fd(stream.into_raw_fd()) };
    with_shard(&shard, |s| {
        s.outbox.push(
            home,
            ShardMsg::Adopt(Box::new(Adopted {
                fd,
                buf,
                connect,
                peer,
                slot,
            })),
        )
    });
    drop(counted);
}

/// On the home core: takes over a connection handed over by another core.
/// Called from the mailbox task while the shard is borrowed: only spawns.
pub fn adopt(shard: &ShardRef, a: Adopted) {
    let stream = match TcpStream::from_std(std::net::TcpStream::from(a.fd)) {
        Ok(s) => s,
        Err(e) => {
            log::warn!("{}: cannot adopt connection: {e}", a.peer);
            return;
        }
    };
    let counted = Counted(shard.clone());
    monoio::spawn(serve(
        shard.clone(),
        stream,
        a.buf,
        (a.connect, false),
        a.peer,
        (counted, a.slot),
    ));
}

/// Writes a refusing CONNACK in the client's version: a 3.1.1 return code,
/// or a v5 reason code (with an empty property block).
async fn refuse(stream: &mut TcpStream, version: ProtocolVersion, code: u8) {
    let bytes = if version == ProtocolVersion::V5 {
        vec![0x20, 3, 0, code, 0]
    } else {
        vec![0x20, 2, 0, code]
    };
    let _ = stream.write_all(bytes).await;
}

/// Reads once more into `buf`, with room for the whole frame being
/// assembled. Returns the bytes read (0: end-of-file).
///
/// `size` adapts the read to the connection's traffic: a read that fills the
/// buffer grows it (up to `READ_MAX_BYTES`), small reads shrink it back to
/// `READ_MIN_BYTES`, and a quiet connection gives its large buffer back, so
/// that an idle connection holds well under a kilobyte of buffer.
/// (A plain `fn` returning an `async move` block, for its size: see [`served`].)
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn read_more<'a, R: AsyncReadRent>(
    stream: &'a mut R,
    buf: &'a mut BytesMut,
    size: &'a mut usize,
    packet_max: usize,
) -> impl std::future::Future<Output = std::io::Result<usize>> + 'a {
    async move {
        if buf.is_empty() && *size == READ_MIN_BYTES && buf.capacity() > 4 * READ_MIN_BYTES {
            *buf = BytesMut::new();
        }
        let frame_rest = match protocol::frame_len(buf, packet_max) {
            Ok(Some(n)) if n > buf.len() => n - buf.len(),
            _ => 0,
        };
        let want = (*size).max(frame_rest);
        if buf.capacity() - buf.len() < want {
            buf.reserve(want);
        }
        let spare = buf.capacity() - buf.len();
        // monoio reads into the start of a BytesMut; a slice from `len` keeps the
        // bytes of a partial frame and appends after them.
        let len = buf.len();
        let (res, slice) = stream.read(std::mem::take(buf).slice_mut(len..)).await;
        *buf = slice.into_inner();
        if let Ok(n) = res {
            if n == spare {
                *size = (*size * 4).min(READ_MAX_BYTES);
            } else if n < *size / 4 {
                *size = (*size / 2).max(READ_MIN_BYTES);
            }
        }
        res
    }
}

/// Serves an accepted CONNECT on its home core until the connection ends.
async fn serve(
    shard: ShardRef,
    mut stream: TcpStream,
    buf: BytesMut,
    (connect, assigned): (Box<Connect>, bool),
    peer: SocketAddr,
    counted: (Counted, ConnSlot),
) {
    let _ = stream.set_nodelay(true);
    let io = Rc::new(ConnIo::new(stream.as_raw_fd()));
    let version = connect.version;
    let client_id = bytestring::ByteString::from(&*connect.client_id);
    let accepted = with_shard(&shard, |s| s.connect(io.clone(), connect, peer, assigned));
    let (session, generation) = match accepted {
        Ok(x) => x,
        Err(refused) => {
            match refused.connack_code(version) {
                Some(code) => {
                    log::info!(
                        "client {client_id} ({peer}) refused: CONNACK {code:#04x} {}",
                        protocol::reason::name(refused.v5_code())
                    );
                    refuse(&mut stream, version, code).await;
                }
                None => log::warn!("client {client_id} ({peer}): {refused:?}: closing"),
            }
            drop(counted);
            return;
        }
    };
    let (reader, writer) = stream.into_split();
    io.attach(Writer {
        half: writer,
        owner: (shard.clone(), session, generation),
    });
    // The connection's long life is a task of its own, holding only what
    // reading needs: this CONNECT-phase future (peer, client id, the
    // stream before the split, the refusal paths) ends here.
    let (counted, slot) = counted;
    let conn = Conn {
        counted,
        _slot: slot,
        session,
        generation,
        version,
    };
    monoio::spawn(served(conn, reader, buf, io));
}

/// A connection from its CONNACK to its close: the read loop, the session's
/// end, and a bounded flush of what is left to write.
///
/// A plain `fn` returning an `async move` block: an `async fn` keeps its
/// arguments twice in its future (once as arguments, once as locals), and
/// this future is most of an idle connection's memory.
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn served(
    conn: Conn,
    mut reader: TcpOwnedReadHalf,
    mut buf: BytesMut,
    io: Rc<ConnIo>,
) -> impl std::future::Future<Output = ()> {
    async move {
        let reason = conn.read_loop(&mut reader, &mut buf).await;
        drop(buf);
        with_shard(conn.shard(), |s| {
            s.drop_link(conn.session, conn.generation, reason)
        });
        // Boxed: the close phase runs once, and its futures (a monoio sleep
        // alone is 640 bytes) would otherwise be room in every idle
        // connection's task.
        Box::pin(close_flushed(&io)).await;
        drop(reader);
        drop(conn);
    }
}

/// Flushes what is left to write, for at most `CLOSE_FLUSH_MAX`, then
/// releases the write half.
async fn close_flushed(io: &ConnIo) {
    io.finish();
    let flush_deadline = monoio::time::sleep(CLOSE_FLUSH_MAX);
    let flushed = std::future::poll_fn(|cx| io.poll_flushed(cx.waker()));
    monoio::select! {
        _ = flushed => {}
        _ = flush_deadline => {
            io.abort();
            std::future::poll_fn(|cx| io.poll_flushed(cx.waker())).await;
        }
    }
    io.detach();
}

/// A session's client id, for a log line (not kept in the connection task).
fn client_id(s: &Shard, session: usize) -> &str {
    s.sessions.get(session).map_or("?", |x| &x.client_id)
}

/// A read half that can wait until its socket has data without giving the
/// kernel a buffer to fill: a quiet connection then holds no read buffer
/// while it waits (an io_uring poll instead of a read; one extra operation,
/// paid only by connections that were quiet for [`QUIET_AFTER`]).
pub trait WaitReadable {
    fn wait_readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + '_;
}

impl WaitReadable for TcpOwnedReadHalf {
    fn wait_readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + '_ {
        // SAFETY: monoio's split halves share the stream through an
        // `UnsafeCell` and each half borrows it for its own operations (its
        // own `read` does the same); `readable` takes `&self` and only reads
        // the fd, which the write half never replaces.
        let stream: &TcpStream = unsafe { &*self.0.get() };
        stream.readable(true)
    }
}

/// What the reader does next after processing the buffered bytes.
enum Step {
    NeedMore,
    Close(CloseReason),
    /// Boxed: the connection task's future reserves room for every state
    /// it can await in, and this one is rare.
    Wait(Box<(Vec<u64>, Held)>),
    /// A congested subscriber paused this publisher: read nothing more
    /// (the unprocessed bytes stay in the buffer) until it is resumed.
    Paused,
}

/// The reader side of a served connection. It holds the connection's place
/// in the core's and the process's connection counts (given back when it is
/// dropped, after the socket), and reaches the shard through the first.
struct Conn {
    counted: Counted,
    _slot: ConnSlot,
    session: usize,
    generation: u64,
    version: ProtocolVersion,
}

impl Conn {
    fn shard(&self) -> &ShardRef {
        &self.counted.0
    }

    /// (A plain `fn` returning an `async move` block, for its size: see [`served`].)
    #[allow(clippy::manual_async_fn)] // on purpose: see above
    fn read_loop<'a, R: AsyncReadRent + WaitReadable>(
        &'a self,
        reader: &'a mut R,
        buf: &'a mut BytesMut,
    ) -> impl std::future::Future<Output = CloseReason> + 'a {
        async move {
            let mut read_size = READ_MIN_BYTES;
            // A connection starts quiet: most of a large fleet's connections
            // are idle after their first packets.
            let mut quiet = true;
            loop {
                loop {
                    match with_shard(self.shard(), |s| self.process(s, buf)) {
                        Step::NeedMore => break,
                        Step::Close(reason) => return reason,
                        Step::Wait(wait) => {
                            std::future::poll_fn(|cx| {
                                if self.shard().borrow_mut().acks_done(&wait.0, cx.waker()) {
                                    std::task::Poll::Ready(())
                                } else {
                                    std::task::Poll::Pending
                                }
                            })
                            .await;
                            let (_, held) = *wait;
                            with_shard(self.shard(), |s| {
                                s.complete(self.session, self.generation, held)
                            });
                        }
                        Step::Paused => {
                            std::future::poll_fn(|cx| {
                                let mut s = self.shard().borrow_mut();
                                if s.publisher_paused(self.session, self.generation, cx.waker()) {
                                    std::task::Poll::Pending
                                } else {
                                    std::task::Poll::Ready(())
                                }
                            })
                            .await;
                        }
                    }
                }
                if quiet && buf.is_empty() && read_size == READ_MIN_BYTES {
                    // Wait holding no buffer: an idle connection's read
                    // buffer is most of what it holds besides its task.
                    *buf = BytesMut::new();
                    if reader.wait_readable().await.is_err() {
                        return CloseReason::Io;
                    }
                }
                let packet_max = self.shard().borrow().config.packet_size_max_bytes;
                match read_more(reader, buf, &mut read_size, packet_max).await {
                    Ok(0) => return CloseReason::Eof,
                    Ok(_) => {
                        let silent = self
                            .shard()
                            .borrow_mut()
                            .touch(self.session, Instant::now());
                        quiet = silent >= QUIET_AFTER;
                    }
                    Err(_) => return CloseReason::Io,
                }
            }
        }
    }

    /// Decodes and handles every complete packet in `buf`.
    fn process(&self, s: &mut Shard, buf: &mut BytesMut) -> Step {
        let packet_max = s.config.packet_size_max_bytes;
        loop {
            match s.sessions.get(self.session) {
                Some(x) if x.generation == self.generation && x.link.is_some() => {
                    if x.paused > 0 {
                        return Step::Paused;
                    }
                }
                _ => return Step::Close(CloseReason::Takeover),
            }
            match protocol::decode(buf, Some(self.version), packet_max) {
                Ok(Some(p)) => match s.handle(self.session, self.generation, p) {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Disconnect) => return Step::Close(CloseReason::ClientDisconnect),
                    Ok(Flow::Wait(tokens, held)) => return Step::Wait(Box::new((tokens, held))),
                    Err(reason) => {
                        log::warn!("client {}: {reason:?}: closing", client_id(s, self.session));
                        return Step::Close(reason);
                    }
                },
                Ok(None) => return Step::NeedMore,
                Err(e) => {
                    log::warn!("client {}: {e}: closing", client_id(s, self.session));
                    return Step::Close(CloseReason::from_decode(&e));
                }
            }
        }
    }
}
