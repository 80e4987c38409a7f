//! Socket syscalls on raw fds: accept4, recv/send, socket options, `TCP_INFO`.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use socket2::{SockAddr, Socket, Type};

use super::{cvt, cvt_size};

/// Accepts one connection as non-blocking and close-on-exec, with its peer address.
pub fn accept4(listener: RawFd) -> io::Result<(OwnedFd, SocketAddr)> {
    let mut fd: RawFd = -1;
    // SAFETY: try_init hands us a zeroed sockaddr_storage and its length to fill.
    let ((), addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            fd = cvt(libc::accept4(listener, storage.cast(), len, libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC))?;
            Ok(())
        })?
    };
    // SAFETY: accept4 returned a new fd that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let peer = addr.as_socket().unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    Ok((owned, peer))
}

/// Makes sure `fd`'s open file is non-blocking, setting it back if someone cleared it
/// (one `fcntl` when it is already so). For sockets shared with other processes, whose
/// code may change the mode under us: a blocking listener would hang an accept loop.
pub fn ensure_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we hold; no memory is passed.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    }
    Ok(())
}

/// Reads into `buf`. `Ok(0)` is end of stream.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for writes of buf.len() bytes.
    cvt_size(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) })
}

/// Looks at what arrived without consuming it (`MSG_PEEK`). `Ok(0)` is end of stream.
pub fn recv_peek(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for writes of buf.len() bytes.
    cvt_size(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_PEEK) })
}

/// Reads into the spare capacity of `buf` (at least `min_room` bytes of it, reserved
/// here) and extends its length by what arrived; no zero-filling.
pub fn recv_append(fd: RawFd, buf: &mut Vec<u8>, min_room: usize) -> io::Result<usize> {
    buf.reserve(min_room);
    let room = buf.spare_capacity_mut();
    // SAFETY: `room` is writable, uninitialised memory of room.len() bytes; recv writes
    // at most that many and we mark exactly the written bytes as initialised.
    let n = cvt_size(unsafe { libc::recv(fd, room.as_mut_ptr().cast(), room.len(), 0) })?;
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// Writes from `buf` without raising `SIGPIPE` on a closed peer.
pub fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for reads of buf.len() bytes.
    cvt_size(unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) })
}

/// Sends FIN: the peer reads end-of-stream after the bytes already written.
pub fn shutdown_write(fd: RawFd) -> io::Result<()> {
    // SAFETY: no pointers.
    cvt(unsafe { libc::shutdown(fd, libc::SHUT_WR) }).map(|_| ())
}

/// `TCP_DEFER_ACCEPT`: the kernel completes an accept only once the client's first
/// data has arrived (or after about `secs` seconds), so a client-talks-first protocol
/// skips a wake-up per connection.
pub fn set_defer_accept(fd: RawFd, secs: u32) -> io::Result<()> {
    let v = secs.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: passes a pointer to a live c_int and its size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// Whether `fd` has `FD_CLOEXEC` set.
pub fn is_cloexec(fd: RawFd) -> io::Result<bool> {
    // SAFETY: F_GETFD takes no pointer.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    Ok(flags & libc::FD_CLOEXEC != 0)
}

/// A listening socket's accept queue as the kernel reports it in `TCP_INFO`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenQueue {
    /// Connections waiting to be accepted now (`tcpi_unacked` on a listener).
    pub len: u32,
    /// The queue's maximum, i.e. the effective backlog (`tcpi_sacked` on a listener).
    pub max: u32,
}

pub fn tcp_listen_queue(fd: RawFd) -> io::Result<ListenQueue> {
    let mut info = MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: info is a writable tcp_info of `len` bytes.
    cvt(unsafe { libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, info.as_mut_ptr().cast(), &mut len) })?;
    // SAFETY: zero-initialised and (partly) filled by the kernel; every field is plain data.
    let info = unsafe { info.assume_init() };
    Ok(ListenQueue { len: info.tcpi_unacked, max: info.tcpi_sacked })
}

/// Checks that `fd` is an open listening stream socket, without taking it.
pub fn check_listener(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFD on an arbitrary integer is harmless; it tells us the fd is open.
    cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    let mut ty: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: ty is a live c_int of `len` bytes.
    cvt(unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_TYPE, (&mut ty as *mut libc::c_int).cast(), &mut len)
    })?;
    let mut listening: libc::c_int = 0;
    // SAFETY: as above.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut listening as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    if Type::from(ty) != Type::STREAM || listening == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the fd is not a listening stream socket (call listen() on it first)",
        ));
    }
    Ok(())
}

/// Takes ownership of a listening socket the host bound (checked first; on error the
/// fd is left open and still the caller's).
pub fn adopt_listener(fd: std::os::fd::OwnedFd) -> io::Result<Socket> {
    check_listener(std::os::fd::AsRawFd::as_raw_fd(&fd))?;
    Ok(Socket::from(fd))
}

/// Waits until `fd` is readable or the timeout passes (`None`: no limit). An
/// interrupted wait returns `Ok(false)` so the caller can check for signals.
pub fn poll_readable(fd: RawFd, timeout: Option<std::time::Duration>) -> io::Result<bool> {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let ms = timeout.map_or(-1, |d| d.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int);
    // SAFETY: one live pollfd.
    match cvt(unsafe { libc::poll(&mut pfd, 1, ms) }) {
        Ok(n) => Ok(n > 0 && pfd.revents & libc::POLLIN != 0),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(e),
    }
}
