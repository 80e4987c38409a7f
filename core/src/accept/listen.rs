//! Binding: how listening sockets are laid out over the acceptors.
//!
//! - `ReusePort`: one socket per acceptor and address, all bound with `SO_REUSEPORT`,
//!   so the kernel spreads connections over acceptors by flow hash (nginx `reuseport`).
//! - `Shared`: one socket per address that every acceptor waits on with
//!   `EPOLLEXCLUSIVE`, so one of them is woken per connection.
//! - `Single`: one socket per address and one acceptor.
//!
//! The backlog is set explicitly; the kernel clamps it to `somaxconn`, and the
//! effective value is reported (read back from `TCP_INFO`).

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use socket2::{Domain, Protocol as SockProtocol, Socket, Type};

use crate::config::{Config, ListenerStrategy};
use crate::error::{Error, ErrorKind, Result};
use crate::sys;

/// Per-listener counters, updated by the acceptor that owns the socket.
#[derive(Default, Debug)]
pub(crate) struct ListenerCounters {
    pub accepts: AtomicU64,
    /// Times accepting paused: descriptors exhausted, or at a connection/queue cap.
    pub pauses: AtomicU64,
    /// Descriptor-exhaustion errors (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`).
    pub fd_exhausted: AtomicU64,
    /// Transient accept errors that were skipped (`ECONNABORTED`, `EPROTO`, ...).
    pub errors: AtomicU64,
    /// Pauses for the accept-rate limit.
    pub throttled: AtomicU64,
}

/// One bound, listening socket.
pub(crate) struct Listener {
    sock: Arc<Socket>,
    pub addr: SocketAddr,
    pub counters: ListenerCounters,
    /// Inherited (`listener_fd`): the socket is shared with other processes, so
    /// stopping only closes this engine's descriptor; it never shuts the socket down.
    shared: std::sync::atomic::AtomicBool,
}

impl Listener {
    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Stops listening: the kernel resets connections still in the backlog, so clients
    /// see a refusal at once instead of waiting on a socket nobody will accept from. An
    /// inherited socket is left alone: another process (a supervisor, the worker that
    /// replaces this one) holds it too, and connections queued there are its to accept.
    pub fn stop(&self) {
        if !self.is_shared() {
            let _ = self.sock.shutdown(std::net::Shutdown::Read);
        }
    }

    /// Inherited: other processes may accept from this socket too.
    pub fn is_shared(&self) -> bool {
        self.shared.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Another process holds the socket from now on (it was handed over).
    pub fn mark_shared(&self) {
        self.shared.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn queue(&self) -> sys::ListenQueue {
        sys::tcp_listen_queue(self.fd()).unwrap_or_default()
    }
}

/// The listeners and which acceptor waits on which.
pub(crate) struct Bound {
    pub listeners: Vec<Arc<Listener>>,
    /// For each acceptor, the indices of the listeners it accepts on.
    pub per_acceptor: Vec<Vec<usize>>,
    /// Whether acceptors share sockets (and so must register with `EPOLLEXCLUSIVE`).
    pub exclusive: bool,
}

/// Seconds the kernel holds a connection that has sent nothing, with `defer_accept`.
const DEFER_ACCEPT_SECS: u32 = 10;

fn bind_one(addr: SocketAddr, config: &Config, reuse_port: bool) -> Result<Socket> {
    let (backlog, defer, nodelay) = (config.backlog, config.defer_accept, config.tcp_nodelay);
    let what = |e| Error::io(ErrorKind::Bind, format!("cannot listen on {addr}"), e);
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(SockProtocol::TCP)).map_err(what)?;
    sock.set_reuse_address(true).map_err(what)?;
    if reuse_port {
        sock.set_reuse_port(true).map_err(what)?;
    }
    if addr.is_ipv6() {
        // `::1` must not also grab the IPv4 port; list both addresses to serve both.
        sock.set_only_v6(true).map_err(what)?;
    }
    sock.set_nonblocking(true).map_err(what)?;
    // Accepted sockets inherit TCP_NODELAY, which saves a setsockopt per connection.
    sock.set_nodelay(nodelay).map_err(what)?;
    if defer {
        sys::set_defer_accept(std::os::fd::AsRawFd::as_raw_fd(&sock), DEFER_ACCEPT_SECS).map_err(what)?;
    }
    sock.bind(&addr.into()).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            format!("cannot listen on {addr}: the address is in use by another socket; pick another port or stop the other server")
        } else {
            format!("cannot listen on {addr}")
        };
        Error::io(ErrorKind::Bind, hint, e)
    })?;
    sock.listen(backlog.min(i32::MAX as u32) as i32).map_err(what)?;
    Ok(sock)
}

fn listener(sock: Socket) -> Result<Arc<Listener>> {
    let addr = sock
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or_else(|| Error::new(ErrorKind::Bind, "listening socket has no IP address"))?;
    Ok(Arc::new(Listener { sock: Arc::new(sock), addr, counters: ListenerCounters::default(), shared: false.into() }))
}

/// Binds every configured address (and adopts inherited sockets) for `acceptors`
/// acceptors under `strategy`.
pub(crate) fn bind(config: &Config, strategy: ListenerStrategy, acceptors: usize) -> Result<Bound> {
    let acceptors = if strategy == ListenerStrategy::Single { 1 } else { acceptors };
    let mut listeners = Vec::new();
    let mut per_acceptor = vec![Vec::new(); acceptors];
    for &addr in &config.addrs {
        match strategy {
            ListenerStrategy::ReusePort => {
                // The first shard picks the port (port 0 means "any"); the others join it.
                let first = bind_one(addr, config, true)?;
                let port = listener(first)?;
                let fixed = port.addr;
                per_acceptor[0].push(listeners.len());
                listeners.push(port);
                for slot in per_acceptor.iter_mut().skip(1) {
                    let shard = listener(bind_one(fixed, config, true)?)?;
                    slot.push(listeners.len());
                    listeners.push(shard);
                }
            }
            ListenerStrategy::Shared | ListenerStrategy::Single => {
                let l = listener(bind_one(addr, config, false)?)?;
                for slot in per_acceptor.iter_mut() {
                    slot.push(listeners.len());
                }
                listeners.push(l);
            }
        }
    }
    // A host-provided socket is shared by every acceptor.
    for sock in &config.inherited {
        let addr = sock
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .ok_or_else(|| Error::new(ErrorKind::Bind, "inherited listener has no IP address"))?;
        sock.set_nonblocking(true)
            .map_err(|e| Error::io(ErrorKind::Io, "cannot make the inherited listener non-blocking", e))?;
        let _ = sock.set_nodelay(config.tcp_nodelay);
        let l = Arc::new(Listener { sock: Arc::clone(sock), addr, counters: Default::default(), shared: true.into() });
        for slot in per_acceptor.iter_mut() {
            slot.push(listeners.len());
        }
        listeners.push(l);
    }
    let exclusive = acceptors > 1 && per_acceptor.iter().skip(1).any(|s| s.iter().any(|i| per_acceptor[0].contains(i)));
    Ok(Bound { listeners, per_acceptor, exclusive })
}

impl ListenerCounters {
    pub fn accepted(&self) {
        self.accepts.fetch_add(1, Relaxed);
    }
}
