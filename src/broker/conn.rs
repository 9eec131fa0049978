//! The shard's handle on a live connection: its write buffer, the waker of
//! its writer task, and how to close it. Shared (`Rc`) between the session
//! that owns the connection and the connection's writer task, on one core.
//!
//! Every packet for the client is appended to `out` during a loop turn; the
//! writer task wakes once and writes it all in one syscall (batching). The
//! shard never writes to the socket itself.

use bytes::BytesMut;
use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Waker;

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
    out: RefCell<BytesMut>,
    writer: Cell<Option<Waker>>,
    closing: Cell<bool>,
    /// Publishers are paused because this connection's write buffer is over
    /// its limit: the writer reports each completed write to the shard.
    congested: Cell<bool>,
    fd: RawFd,
}

impl ConnIo {
    pub fn new(fd: RawFd) -> Self {
        ConnIo {
            out: RefCell::new(BytesMut::new()),
            writer: Cell::new(None),
            closing: Cell::new(false),
            congested: Cell::new(false),
            fd,
        }
    }

    /// Appends to the write buffer with `f` and wakes the writer.
    #[inline]
    pub fn write(&self, f: impl FnOnce(&mut BytesMut)) {
        f(&mut self.out.borrow_mut());
        if let Some(w) = self.writer.take() {
            w.wake();
        }
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
    /// io_uring and epoll alike), and the writer flushes what is queued and
    /// stops. Safe to call twice. Called only while the reader task still
    /// owns the socket, so `fd` cannot have been reused.
    pub fn close(&self) {
        if !self.closing.replace(true) {
            // SAFETY: shutdown(2) on an fd this connection still owns (see above).
            unsafe {
                libc::shutdown(self.fd, libc::SHUT_RD);
            }
        }
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }

    /// Marks the connection finished without touching the socket (the reader
    /// has already ended); the writer flushes and stops.
    pub fn finish(&self) {
        self.closing.set(true);
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }

    /// Shuts both directions down: a writer stuck on a peer that does not
    /// read gets an error and ends.
    pub fn abort(&self) {
        self.closing.set(true);
        // SAFETY: called by the reader task, which still owns the socket.
        unsafe {
            libc::shutdown(self.fd, libc::SHUT_RDWR);
        }
    }

    /// Writer side: swaps the write buffer with `spare` (empty) when there is
    /// something to write. `Ready(false)`: closing and nothing left.
    pub fn poll_take(&self, spare: &mut BytesMut, waker: &Waker) -> std::task::Poll<bool> {
        let mut out = self.out.borrow_mut();
        if !out.is_empty() {
            std::mem::swap(&mut *out, spare);
            return std::task::Poll::Ready(true);
        }
        if self.closing.get() {
            return std::task::Poll::Ready(false);
        }
        self.writer.set(Some(waker.clone()));
        std::task::Poll::Pending
    }
}
