//! Starting and stopping the broker: binds the listeners, starts one thread
//! per core, each running a monoio runtime (io_uring, or epoll where io_uring
//! is refused) with its shard, accept loops, mailbox task and ticker; and
//! stops them all on request (SIGINT/SIGTERM in `main`).

use crate::broker::mailbox::{self, Mailboxes, Outbox, Receiver};
use crate::broker::shard::{Shard, ShardRef};
use crate::config::{Config, IoMode};
use crate::transport::connection::with_shard;
use crate::transport::tcp;
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Batches one mailbox turn takes before yielding to connections.
const MAIL_BATCHES_PER_TURN: usize = 64;
/// How long shutdown waits for connections to flush and close.
const SHUTDOWN_DRAIN_MAX: Duration = Duration::from_secs(2);

/// A running broker.
pub struct Server {
    threads: Vec<JoinHandle<()>>,
    boxes: Mailboxes,
    stop: Arc<AtomicBool>,
    /// The bound listen addresses (port 0 resolved).
    pub local_addrs: Vec<SocketAddr>,
    /// The io driver in use.
    pub io: IoMode,
}

/// Resolves `auto` and checks that `uring` is possible.
fn resolve_io(mode: IoMode) -> io::Result<IoMode> {
    let uring = monoio::utils::detect_uring();
    match mode {
        IoMode::Auto if uring => Ok(IoMode::Uring),
        IoMode::Auto | IoMode::Epoll => Ok(IoMode::Epoll),
        IoMode::Uring if uring => Ok(IoMode::Uring),
        IoMode::Uring => Err(io::Error::other(
            "io_uring is not available here (kernel or seccomp refuses it); use --io epoll or auto",
        )),
    }
}

/// Binds and starts every core. Returns once all listeners are bound.
pub fn start(config: Config) -> io::Result<Server> {
    let io_mode = resolve_io(config.io)?;
    let cores = config.cores;
    let (listeners, local_addrs) = tcp::bind_all(&config.listen, cores)?;
    let driver = match (config.io, io_mode) {
        (IoMode::Auto, IoMode::Epoll) => "epoll (io_uring unavailable)",
        (_, IoMode::Uring) => "io_uring",
        _ => "epoll",
    };
    log::info!(
        "ringmq {} starting: {cores} cores, io {driver}",
        env!("CARGO_PKG_VERSION")
    );
    for addr in &local_addrs {
        log::info!("listening on {addr}");
    }
    log::info!("no authentication configured: every client is accepted");
    let boxes = mailbox::mailboxes(cores);
    let stop = Arc::new(AtomicBool::new(false));
    let connections_total = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let config = Arc::new(config);
    let mut threads = Vec::with_capacity(cores);
    for (id, ls) in listeners.into_iter().enumerate() {
        let (config, boxes, stop) = (config.clone(), boxes.clone(), stop.clone());
        let total = connections_total.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("ringmq-core-{id}"))
                .spawn(move || core_main(id, config, boxes, ls, stop, io_mode, total))?,
        );
    }
    Ok(Server {
        threads,
        boxes,
        stop,
        local_addrs,
        io: io_mode,
    })
}

impl Server {
    /// Asks every core to close its connections and exit.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        mailbox::notify_all(&self.boxes);
    }

    /// Waits for every core to exit.
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn pin_to_cpu(id: usize) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET indexes within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(id % cpus, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn core_main(
    id: usize,
    config: Arc<Config>,
    boxes: Mailboxes,
    listeners: Vec<std::net::TcpListener>,
    stop: Arc<AtomicBool>,
    io_mode: IoMode,
    connections_total: Arc<std::sync::atomic::AtomicUsize>,
) {
    pin_to_cpu(id);
    type Rt = monoio::FusionRuntime<
        monoio::time::TimeDriver<monoio::IoUringDriver>,
        monoio::time::TimeDriver<monoio::LegacyDriver>,
    >;
    let rt: io::Result<Rt> = match io_mode {
        IoMode::Uring => monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .with_entries(4096)
            .enable_timer()
            .build()
            .map(Into::into),
        _ => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(Into::into),
    };
    let mut rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("core {id}: cannot start runtime: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(core_async(
        id,
        config,
        boxes,
        listeners,
        stop,
        connections_total,
    ));
}

async fn core_async(
    id: usize,
    config: Arc<Config>,
    boxes: Mailboxes,
    listeners: Vec<std::net::TcpListener>,
    stop: Arc<AtomicBool>,
    connections_total: Arc<std::sync::atomic::AtomicUsize>,
) {
    let sys_interval_s = config.sys_interval_s;
    crate::broker::conn::set_write_coalescing(Duration::from_micros(config.write_coalesce_us));
    let shard: ShardRef = Rc::new(RefCell::new(Shard::new(
        id,
        config,
        Outbox::new(id, boxes.clone()),
    )));
    shard.borrow_mut().connections_total = connections_total;
    let canceller = monoio::io::Canceller::new();
    for l in listeners {
        match monoio::net::TcpListener::from_std(l) {
            Ok(l) => {
                monoio::spawn(tcp::accept_loop(shard.clone(), l, canceller.handle()));
            }
            Err(e) => log::error!("core {id}: listener: {e}"),
        }
    }
    shard.borrow_mut().accept_cancel = Some(canceller);
    monoio::spawn(ticker(shard.clone(), sys_interval_s));
    mailbox_loop(&shard, Receiver::new(id, boxes), &stop).await;

    with_shard(&shard, |s| {
        s.shutting_down = true;
        if let Some(c) = s.accept_cancel.take() {
            c.cancel();
        }
        s.close_all();
    });
    let deadline = Instant::now() + SHUTDOWN_DRAIN_MAX;
    while shard.borrow().connections > 0 && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = shard.borrow();
    log::debug!("core {id} stopped: {:?}", s.stats);
}

/// Drains the mailbox in bounded turns until the server stops.
async fn mailbox_loop(shard: &ShardRef, rx: Receiver, stop: &AtomicBool) {
    loop {
        std::future::poll_fn(|cx| rx.poll_notified(cx)).await;
        if stop.load(Ordering::Acquire) {
            return;
        }
        let taken = with_shard(shard, |s| {
            rx.drain(MAIL_BATCHES_PER_TURN, |from, batch| {
                s.handle_mail(from, batch, shard)
            })
        });
        if taken >= MAIL_BATCHES_PER_TURN {
            // More may be waiting: come back after the connections had a turn.
            rx.renotify();
            yield_now().await;
        }
    }
}

/// Messages a core may have handled in the last second and still count as
/// quiet: a quiet core gives its allocator's free memory back.
const QUIET_CORE_MESSAGES: u64 = 10_000;

/// Returns the calling core's free allocator memory to the OS. Freed pages
/// are purged at once (see `main`), but a block freed by another core (a
/// connection handed over at CONNECT) only comes back to its page when the
/// owning core allocates from it again, which a quiet core may never do:
/// with 19,000 idle connections on 2 cores this held ~0.2 KiB each
/// (measured with mimalloc 3.x; ~0.1-0.2 with 2.x).
fn collect_free_memory() {
    // SAFETY: mi_collect has no preconditions; it only touches this thread's heap.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// Once a second: keepalive, CONNECT deadlines, stalled subscribers, session
/// expiry and delayed wills, and on a quiet core the allocator's free
/// memory; every `sys_interval_s`: `$SYS` counters.
async fn ticker(shard: ShardRef, sys_interval_s: u64) {
    let mut seconds: u64 = 0;
    let mut messages_before = 0;
    loop {
        monoio::time::sleep(Duration::from_secs(1)).await;
        seconds += 1;
        let done = with_shard(&shard, |s| {
            if s.shutting_down {
                return true;
            }
            let now = Instant::now();
            s.check_keepalive(now);
            s.check_connect_deadlines(now);
            s.now = now;
            s.check_stalled(now);
            s.check_timers(now);
            if sys_interval_s > 0 && seconds.is_multiple_of(sys_interval_s) {
                s.sys_tick();
            }
            let messages = s.stats.messages_received + s.stats.messages_sent;
            if messages - messages_before < QUIET_CORE_MESSAGES {
                collect_free_memory();
            }
            messages_before = messages;
            false
        });
        if done {
            return;
        }
    }
}

/// Lets every other ready task run once.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}
