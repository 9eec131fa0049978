//! TCP listeners: for every configured address, one socket per core bound
//! with SO_REUSEPORT so the kernel spreads connections over the cores.
//! Sockets are created on the main thread (so a bad address fails before
//! any core starts) and handed to the cores as std listeners.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, TcpListener};

/// Listen backlog per socket.
const BACKLOG: i32 = 4096;

/// Connections over `max_connections` that one core keeps open at a time to
/// answer their CONNECT with "quota exceeded" / "server unavailable";
/// beyond these, excess connections are closed at once.
const REFUSING_MAX: usize = 64;

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Fails if something already listens on `addr`. SO_REUSEPORT would
/// otherwise let a second broker (or a leftover one) share the port and
/// silently take part of the connections; a socket without it cannot bind
/// where another listens, whatever that one's options.
fn ensure_free(addr: SocketAddr) -> io::Result<()> {
    // A broker that has just exited can hold its listener for a moment
    // longer (io_uring tears its ring down asynchronously, with the pending
    // accepts): a restart retries for up to a second before giving up.
    const RETRIES: u32 = 20;
    for attempt in 0.. {
        let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        probe.set_reuse_address(true)?;
        if addr.is_ipv6() {
            probe.set_only_v6(true)?;
        }
        match probe.bind(&addr.into()) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempt < RETRIES => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                return Err(io::Error::new(
                    e.kind(),
                    "address already in use (is another broker listening there?)",
                ));
            }
            other => return other,
        }
    }
    Ok(())
}

/// Binds `cores` listeners on each address. Port 0 is resolved by the first
/// socket and reused for the others. Returns, per core, its listeners, and
/// the bound addresses.
pub fn bind_all(
    addrs: &[SocketAddr],
    cores: usize,
) -> io::Result<(Vec<Vec<TcpListener>>, Vec<SocketAddr>)> {
    let mut per_core: Vec<Vec<TcpListener>> = (0..cores).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    for &addr in addrs {
        if addr.port() != 0 {
            ensure_free(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("listen {addr}: {e}")))?;
        }
        let first =
            bind_one(addr).map_err(|e| io::Error::new(e.kind(), format!("listen {addr}: {e}")))?;
        let actual = first.local_addr()?;
        bound.push(actual);
        per_core[0].push(first);
        for listeners in per_core.iter_mut().skip(1) {
            listeners.push(
                bind_one(actual)
                    .map_err(|e| io::Error::new(e.kind(), format!("listen {actual}: {e}")))?,
            );
        }
    }
    Ok((per_core, bound))
}

/// Accepts connections on one core's listener until cancelled (shutdown).
pub async fn accept_loop(
    shard: crate::broker::shard::ShardRef,
    listener: monoio::net::TcpListener,
    cancel: monoio::io::CancelHandle,
) {
    let (max, total) = {
        let s = shard.borrow();
        (s.config.connections_max, s.connections_total.clone())
    };
    loop {
        let (stream, peer) = match listener.cancelable_accept(cancel.clone()).await {
            Ok(x) => x,
            Err(e) => {
                if shard.borrow().shutting_down {
                    return;
                }
                // EMFILE and friends: back off instead of spinning.
                log::warn!("accept: {e}");
                monoio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let mut s = shard.borrow_mut();
        if s.shutting_down {
            return;
        }
        let slot = crate::broker::conn::ConnSlot::take(&total, max);
        if slot.is_none() {
            // Over the limit: read its CONNECT (briefly) to answer with a
            // CONNACK that says why, unless too many are being refused already.
            if s.refusing >= REFUSING_MAX {
                log::warn!("{peer}: connection limit ({max}) reached: closing");
                continue;
            }
            log::warn!("{peer}: connection limit ({max}) reached: refusing its CONNECT");
            s.refusing += 1;
        }
        s.connections += 1;
        drop(s);
        monoio::spawn(super::connection::run(shard.clone(), stream, peer, slot));
    }
}
