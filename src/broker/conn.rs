//! The shard's handle on a live connection: its write buffer, the socket's
//! write half, and how to close it. Shared (`Rc`) between the session that
//! owns the connection, the connection's reader task and its flush task, on
//! one core.
//!
//! Every packet for the client is appended to `out` during a loop turn. The
//! first append starts a flush task, which writes the whole buffer in one
//! syscall (batching), keeps writing while more was appended meanwhile, and
//! ends, parking the write half here again. An idle connection therefore has
//! no writer task at all (its memory is mostly its tasks). The shard never
//! writes to the socket itself.
//!
//! QoS 0 deliveries may also wait a little (`write_coalesce_us`): once a
//! core has started [`FLUSHES_BEFORE_COALESCING`] flushes within one window,
//! further QoS 0-only flushes on that core wait for the window's end, so
//! that one write carries every message that arrived meanwhile. Fan-out of
//! small messages costs the kernel about one microsecond per write on
//! loopback, whatever its size; this is what keeps the number of writes
//! below the number of deliveries. Anything else (acknowledgements, QoS 1/2,
//! CONNACK) is written at once, together with whatever waits.

use super::shard::ShardRef;
use bytes::BytesMut;
use monoio::io::AsyncWriteRentExt;
use monoio::net::tcp::TcpOwnedWriteHalf;
use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant};

/// QoS 0 flushes a core starts at once within one coalescing window; past
/// this, further QoS 0 flushes in the window wait for its end. Below 64
/// writes per window (6.4k per second per core with the default 10 ms)
/// nothing waits.
pub const FLUSHES_BEFORE_COALESCING: u32 = 64;

/// One core's QoS 0 write coalescing (thread-local: one per core).
///
/// A window begins with the first QoS 0 flush after the last one ended. Its
/// first [`FLUSHES_BEFORE_COALESCING`] flushes start at once; the clock is
/// read only after that, and a flush asked for within the window waits for
/// its end, when one timer starts every flush that waited. (Deferring every
/// flush of a busy window instead measured 10-25% more broker CPU per
/// delivery in the fan-out benchmark: the early writes spread the kernel's
/// work over the window.)
struct Coalescer {
    window: Duration,
    /// Start of the current window, and flushes asked for in it.
    window_start: Option<Instant>,
    flushes: u32,
    /// Connections whose QoS 0 output waits for the end of the window.
    waiting: Vec<Rc<ConnIo>>,
    timer_armed: bool,
}

thread_local! {
    static COALESCER: RefCell<Coalescer> = const {
        RefCell::new(Coalescer {
            window: Duration::ZERO,
            window_start: None,
            flushes: 0,
            waiting: Vec::new(),
            timer_armed: false,
        })
    };
}

/// Sets this core's coalescing window (zero: QoS 0 is written at once).
/// Called once per core thread at start.
pub fn set_write_coalescing(window: Duration) {
    COALESCER.with(|c| c.borrow_mut().window = window);
}

/// Decides whether `io`'s QoS 0 flush waits; if so it is queued (and the
/// window's timer armed) and `true` is returned.
fn coalesce(io: &Weak<ConnIo>) -> bool {
    COALESCER.with(|c| {
        let mut c = c.borrow_mut();
        if c.window.is_zero() {
            return false;
        }
        if c.flushes == 0 {
            c.window_start = Some(Instant::now());
        }
        c.flushes += 1;
        if c.flushes <= FLUSHES_BEFORE_COALESCING {
            return false;
        }
        let now = Instant::now();
        let start = *c.window_start.get_or_insert(now);
        if now >= start + c.window {
            // The window is over: this flush begins the next one.
            c.window_start = Some(now);
            c.flushes = 1;
            return false;
        }
        let Some(io) = io.upgrade() else {
            return false;
        };
        c.waiting.push(io);
        if !c.timer_armed {
            c.timer_armed = true;
            monoio::spawn(flush_waiting(start + c.window));
        }
        true
    })
}

/// At the window's end, starts the flushes that waited for it.
async fn flush_waiting(at: Instant) {
    monoio::time::sleep_until(at.into()).await;
    let mut waiting = COALESCER.with(|c| {
        let mut c = c.borrow_mut();
        c.timer_armed = false;
        std::mem::take(&mut c.waiting)
    });
    for io in waiting.drain(..) {
        io.coalescing.set(false);
        io.kick();
    }
    // Keep the list's capacity for the next window.
    COALESCER.with(|c| {
        let mut c = c.borrow_mut();
        if c.waiting.is_empty() {
            c.waiting = waiting;
        }
    });
}

/// A write buffer that grew past this is released after the burst.
const WRITE_SPARE_KEEP_BYTES: usize = 256 * 1024;

/// The socket's write half while no flush task runs, and who to tell about
/// progress (the session, for back-pressure).
pub struct Writer {
    pub half: TcpOwnedWriteHalf,
    pub owner: (ShardRef, usize, u64),
}

/// One connection's place in the process-wide connection count (the
/// `max_connections` limit is a total over all cores). Taken at accept,
/// given back on drop; travels with the socket when it changes core.
pub struct ConnSlot(Arc<AtomicUsize>);

impl ConnSlot {
    /// Takes a slot if fewer than `max` are taken.
    pub fn take(total: &Arc<AtomicUsize>, max: usize) -> Option<ConnSlot> {
        let mut cur = total.load(Ordering::Relaxed);
        loop {
            if cur >= max {
                return None;
            }
            match total.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(ConnSlot(total.clone())),
                Err(now) => cur = now,
            }
        }
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub struct ConnIo {
    /// What waits to be written. Between bursts it keeps the capacity of
    /// the last burst's buffer (one buffer per connection, not two).
    out: RefCell<BytesMut>,
    /// Parked write half: `Some` exactly while no flush task runs (and the
    /// connection has a socket: benchmarks and tests run without one).
    writer: RefCell<Option<Writer>>,
    flushing: Cell<bool>,
    /// The reader waiting, at close, for the flush task to end.
    flushed: Cell<Option<Waker>>,
    me: RefCell<Weak<ConnIo>>,
    closing: Cell<bool>,
    /// Publishers are paused because this connection's write buffer is over
    /// its limit: the flush task reports each completed write to the shard.
    congested: Cell<bool>,
    /// Queued QoS 0 output waits for the core's coalescing window.
    coalescing: Cell<bool>,
    fd: RawFd,
}

impl ConnIo {
    pub fn new(fd: RawFd) -> Self {
        ConnIo {
            out: RefCell::new(BytesMut::new()),
            writer: RefCell::new(None),
            flushing: Cell::new(false),
            flushed: Cell::new(None),
            me: RefCell::new(Weak::new()),
            closing: Cell::new(false),
            congested: Cell::new(false),
            coalescing: Cell::new(false),
            fd,
        }
    }

    /// Gives the connection its socket's write half; flushing starts with
    /// the next write (or now, if something is already waiting).
    pub fn attach(self: &Rc<Self>, writer: Writer) {
        *self.me.borrow_mut() = Rc::downgrade(self);
        *self.writer.borrow_mut() = Some(writer);
        self.kick();
    }

    /// Appends to the write buffer with `f`; starts a flush task if none runs.
    #[inline]
    pub fn write(&self, f: impl FnOnce(&mut BytesMut)) {
        f(&mut self.out.borrow_mut());
        self.kick();
    }

    /// Appends a QoS 0 delivery with `f`: like [`ConnIo::write`], except that
    /// while the core is busy the flush may wait for the coalescing window.
    #[inline]
    pub fn write_coalescing(&self, f: impl FnOnce(&mut BytesMut)) {
        f(&mut self.out.borrow_mut());
        if self.flushing.get() || self.coalescing.get() || self.writer.borrow().is_none() {
            return;
        }
        if coalesce(&self.me.borrow()) {
            self.coalescing.set(true);
        } else {
            self.kick();
        }
    }

    /// Starts a flush task if there is something to write and none runs.
    fn kick(&self) {
        if self.flushing.get() || self.out.borrow().is_empty() {
            return;
        }
        let Some(writer) = self.writer.borrow_mut().take() else {
            return;
        };
        let Some(me) = self.me.borrow().upgrade() else {
            *self.writer.borrow_mut() = Some(writer);
            return;
        };
        self.flushing.set(true);
        monoio::spawn(flush(me, writer));
    }

    /// Takes everything waiting to be written (benchmarks and tests that
    /// run a shard without sockets read the output this way).
    pub fn take_pending(&self) -> BytesMut {
        self.out.borrow_mut().split()
    }

    /// Bytes waiting to be written.
    pub fn pending_bytes(&self) -> usize {
        self.out.borrow().len()
    }

    pub fn set_congested(&self, congested: bool) {
        self.congested.set(congested);
    }

    pub fn is_congested(&self) -> bool {
        self.congested.get()
    }

    pub fn is_closing(&self) -> bool {
        self.closing.get()
    }

    /// Closes the connection from the broker side: the read side is shut
    /// down so the reader task ends (its pending read returns end-of-file, on
    /// io_uring and epoll alike); what is queued is still flushed. Safe to
    /// call twice. Called only while the reader task still owns the socket,
    /// so `fd` cannot have been reused.
    pub fn close(&self) {
        if !self.closing.replace(true) {
            // SAFETY: shutdown(2) on an fd this connection still owns (see above).
            unsafe {
                libc::shutdown(self.fd, libc::SHUT_RD);
            }
        }
    }

    /// Marks the connection finished without touching the socket (the reader
    /// has already ended); what is queued is still flushed.
    pub fn finish(&self) {
        self.closing.set(true);
        self.kick();
    }

    /// Shuts both directions down: a flush stuck on a peer that does not
    /// read gets an error and ends.
    pub fn abort(&self) {
        self.closing.set(true);
        // SAFETY: called by the reader task, which still owns the socket.
        unsafe {
            libc::shutdown(self.fd, libc::SHUT_RDWR);
        }
    }

    /// Ready once no flush task runs (registers `waker` otherwise).
    pub fn poll_flushed(&self, waker: &Waker) -> std::task::Poll<()> {
        if self.flushing.get() {
            self.flushed.set(Some(waker.clone()));
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    }

    /// Drops the parked write half (the connection is over).
    pub fn detach(&self) {
        self.writer.borrow_mut().take();
    }
}

/// Writes the buffer until it stays empty, then parks the write half again.
async fn flush(io: Rc<ConnIo>, writer: Writer) {
    let Writer { mut half, owner } = writer;
    // The second buffer: appends go to `out` while this one is written.
    let mut spare = BytesMut::new();
    let mut failed = false;
    loop {
        {
            let mut out = io.out.borrow_mut();
            if out.is_empty() {
                break;
            }
            std::mem::swap(&mut *out, &mut spare);
        }
        let (res, mut b) = half.write_all(std::mem::take(&mut spare)).await;
        b.clear();
        spare = if b.capacity() > WRITE_SPARE_KEEP_BYTES {
            BytesMut::new()
        } else {
            b
        };
        if res.is_err() {
            failed = true;
            io.close();
            io.out.borrow_mut().clear();
            break;
        }
        if io.is_congested() {
            let (shard, session, generation) = &owner;
            crate::transport::connection::with_shard(shard, |s| {
                s.now = std::time::Instant::now();
                s.write_progress(*session, *generation)
            });
        }
    }
    {
        // Keep one buffer for the next burst: `out` ends empty, and holds
        // no memory when the last swap gave it the fresh spare.
        let mut out = io.out.borrow_mut();
        if out.capacity() == 0 {
            *out = spare;
        }
    }
    io.flushing.set(false);
    if !failed && !io.is_closing() {
        *io.writer.borrow_mut() = Some(Writer { half, owner });
    }
    if let Some(w) = io.flushed.take() {
        w.wake();
    }
}
