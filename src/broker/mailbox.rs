//! Cross-core mailboxes: one bounded lock-free queue per (sender, receiver)
//! core pair, carrying batches of [`ShardMsg`]. The only way one core talks
//! to another.
//!
//! Owns: the queues and the wake-up protocol. Must not: look inside messages.
//!
//! Wake-up: a sender pushes a batch, then sets the receiver's `notified` flag;
//! only the sender that flips it from false to true wakes the receiver's
//! mailbox task (a cross-thread wake through monoio's `sync` feature). The
//! receiver clears the flag before it drains, so a push after the clear is
//! seen on the next turn and a busy receiver is never woken twice.

use super::ShardMsg;
use atomic_waker::AtomicWaker;
use crossbeam_queue::ArrayQueue;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

/// Batches one (sender, receiver) queue holds before the sender has to wait.
/// A batch is everything one loop turn produced for that core, so this is
/// many messages; when full the sender keeps the batch and retries.
pub const MAILBOX_BATCHES_MAX: usize = 1024;

/// The most messages a new pending batch has room for before it grows.
const BATCH_START_CAPACITY_MAX: usize = 256;

/// Inbox of one core: a queue per sending core plus the wake-up state.
pub struct Inbox {
    queues: Vec<ArrayQueue<Vec<ShardMsg>>>,
    notified: AtomicBool,
    waker: AtomicWaker,
}

/// All inboxes, shared by every core.
pub type Mailboxes = Arc<Vec<Inbox>>;

/// Creates the inboxes of `cores` cores.
pub fn mailboxes(cores: usize) -> Mailboxes {
    Arc::new(
        (0..cores)
            .map(|_| Inbox {
                queues: (0..cores)
                    .map(|_| ArrayQueue::new(MAILBOX_BATCHES_MAX))
                    .collect(),
                notified: AtomicBool::new(false),
                waker: AtomicWaker::new(),
            })
            .collect(),
    )
}

/// The sending side kept by one core: a pending batch per destination.
pub struct Outbox {
    me: usize,
    boxes: Mailboxes,
    pending: Vec<Vec<ShardMsg>>,
    /// True when some batch is waiting (skip the scan when nothing is).
    dirty: bool,
}

impl Outbox {
    pub fn new(me: usize, boxes: Mailboxes) -> Self {
        let cores = boxes.len();
        Outbox {
            me,
            boxes,
            pending: (0..cores).map(|_| Vec::new()).collect(),
            dirty: false,
        }
    }

    pub fn cores(&self) -> usize {
        self.pending.len()
    }

    /// Queues `msg` for core `to`; it leaves on the next [`Outbox::flush`].
    pub fn push(&mut self, to: usize, msg: ShardMsg) {
        debug_assert_ne!(to, self.me, "a core does not mail itself");
        if let Some(batch) = self.pending.get_mut(to) {
            batch.push(msg);
            self.dirty = true;
        }
    }

    /// Hands every pending batch to its receiver. Returns true if some
    /// receiver's queue was full and a batch is still waiting here.
    pub fn flush(&mut self) -> bool {
        if !self.dirty {
            return false;
        }
        let mut left = false;
        for (to, batch) in self.pending.iter_mut().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let inbox = &self.boxes[to];
            // The next batch starts at this one's length, not its capacity:
            // a capacity carried over from one burst would make every later
            // one-message batch as large as the burst (with up to
            // MAILBOX_BATCHES_MAX of them queued).
            // The new batch is allocated only once this one has left (a full
            // queue gives it back, and it stays pending as it is).
            let cap = batch.len().min(BATCH_START_CAPACITY_MAX);
            match inbox.queues[self.me].push(std::mem::take(batch)) {
                Ok(()) => {
                    *batch = Vec::with_capacity(cap);
                    if !inbox.notified.swap(true, Ordering::AcqRel) {
                        inbox.waker.wake();
                    }
                }
                Err(back) => {
                    *batch = back;
                    left = true;
                }
            }
        }
        self.dirty = left;
        left
    }
}

/// The receiving side kept by one core.
pub struct Receiver {
    me: usize,
    boxes: Mailboxes,
}

impl Receiver {
    pub fn new(me: usize, boxes: Mailboxes) -> Self {
        Receiver { me, boxes }
    }

    /// Ready when some sender has flagged this core since the last call.
    pub fn poll_notified(&self, cx: &mut Context<'_>) -> Poll<()> {
        let inbox = &self.boxes[self.me];
        inbox.waker.register(cx.waker());
        if inbox.notified.swap(false, Ordering::AcqRel) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Takes up to `batches_max` batches, round-robin over senders so one
    /// busy core cannot starve the others. Returns the number taken.
    pub fn drain(&self, batches_max: usize, mut handle: impl FnMut(usize, Vec<ShardMsg>)) -> usize {
        let inbox = &self.boxes[self.me];
        let mut taken = 0;
        loop {
            let mut any = false;
            for (from, q) in inbox.queues.iter().enumerate() {
                if taken >= batches_max {
                    return taken;
                }
                if let Some(batch) = q.pop() {
                    any = true;
                    taken += 1;
                    handle(from, batch);
                }
            }
            if !any {
                return taken;
            }
        }
    }

    /// Marks this core notified again (more batches were left after a bounded drain).
    pub fn renotify(&self) {
        self.boxes[self.me].notified.store(true, Ordering::Release);
    }
}

/// Flags and wakes every core (used by the main thread to stop them).
pub fn notify_all(boxes: &Mailboxes) {
    for inbox in boxes.iter() {
        inbox.notified.store(true, Ordering::Release);
        inbox.waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(batch: &[ShardMsg]) -> Vec<u64> {
        batch
            .iter()
            .map(|m| match m {
                ShardMsg::IndexAck { token } => *token,
                _ => u64::MAX,
            })
            .collect()
    }

    #[test]
    fn batches_arrive_whole_and_in_order() {
        let boxes = mailboxes(2);
        let mut out = Outbox::new(0, boxes.clone());
        let rx = Receiver::new(1, boxes);
        for token in 0..3 {
            out.push(1, ShardMsg::IndexAck { token });
        }
        assert!(!out.flush());
        out.push(1, ShardMsg::IndexAck { token: 3 });
        assert!(!out.flush());
        let mut got = Vec::new();
        assert_eq!(rx.drain(64, |from, b| got.push((from, tokens(&b)))), 2);
        assert_eq!(got, vec![(0, vec![0, 1, 2]), (0, vec![3])]);
    }

    #[test]
    fn a_burst_does_not_size_later_batches() {
        let boxes = mailboxes(2);
        let mut out = Outbox::new(0, boxes.clone());
        for token in 0..200 {
            out.push(1, ShardMsg::IndexAck { token });
        }
        out.flush();
        out.push(1, ShardMsg::IndexAck { token: 200 });
        out.flush();
        // The batch now pending was sized by the one-message batch before
        // it, not by the 200-message burst.
        assert!(
            out.pending[1].capacity() < 8,
            "{}",
            out.pending[1].capacity()
        );
        out.push(1, ShardMsg::IndexAck { token: 201 });
        out.flush();
        let rx = Receiver::new(1, out.boxes.clone());
        let mut sizes = Vec::new();
        rx.drain(64, |_, b| sizes.push(b.len()));
        assert_eq!(sizes, vec![200, 1, 1]);
    }

    #[test]
    fn a_full_queue_keeps_the_batch_for_the_next_flush() {
        let boxes = mailboxes(2);
        let mut out = Outbox::new(0, boxes.clone());
        for token in 0..MAILBOX_BATCHES_MAX as u64 {
            out.push(1, ShardMsg::IndexAck { token });
            assert!(!out.flush());
        }
        out.push(1, ShardMsg::IndexAck { token: 9999 });
        assert!(out.flush(), "the queue is full: the batch stays here");
        let rx = Receiver::new(1, boxes);
        assert_eq!(rx.drain(1, |_, _| {}), 1);
        assert!(!out.flush());
        let mut last = Vec::new();
        while rx.drain(64, |_, b| last = tokens(&b)) > 0 {}
        assert_eq!(last, vec![9999]);
    }
}
