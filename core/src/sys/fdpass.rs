//! Passing descriptors between processes over a Unix stream socket (`SCM_RIGHTS`), for
//! handing listening sockets from one process to the next.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// Most descriptors one message carries.
pub const MAX_FDS: usize = 64;

/// Sends `data` (at least one byte) with `fds` attached.
pub fn send_fds(sock: &UnixStream, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    if data.is_empty() || fds.len() > MAX_FDS {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "one to 64 descriptors with a non-empty message"));
    }
    let space = cmsg_space(fds.len());
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    // SAFETY: the header points at `iov` and `control`, which live across the sendmsg
    // call; the control buffer has room for one SCM_RIGHTS message of `fds.len()`.
    unsafe {
        let msg = header(&mut iov, &mut control);
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast::<RawFd>(), fds.len());
        let n = super::cvt_size(libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL))?;
        if n != data.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "the descriptor message was cut short"));
        }
    }
    Ok(())
}

/// Receives one message of up to `buf.len()` bytes and the descriptors attached to it
/// (made close-on-exec). `Ok((0, []))` at the end of the stream.
pub fn recv_fds(sock: &UnixStream, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let space = cmsg_space(MAX_FDS);
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut fds = Vec::new();
    // SAFETY: as in send_fds; the kernel writes at most `space` control bytes and
    // `buf.len()` data bytes; each descriptor it hands over is new and ours alone.
    unsafe {
        let mut msg = header(&mut iov, &mut control);
        let n = super::cvt_size(libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC))?;
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "more descriptors were sent than one message takes",
            ));
        }
        Ok((n, fds))
    }
}

/// A message header over one data buffer and a control buffer.
///
/// # Safety
/// The returned header points at `iov` and `control`: both must outlive its use.
unsafe fn header(iov: &mut libc::iovec, control: &mut [u8]) -> libc::msghdr {
    // SAFETY: msghdr is plain data; zeroed is its empty value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() as _;
    msg
}

fn cmsg_space(n: usize) -> usize {
    // SAFETY: CMSG_SPACE only computes a size.
    unsafe { libc::CMSG_SPACE((n * std::mem::size_of::<RawFd>()) as u32) as usize }
}
