//! The operating-system layer: the only module with `unsafe` and raw `libc` calls.
//!
//! Every syscall the engine makes sits behind a small safe type or function here
//! (epoll, io_uring, eventfd, accept4, read/send, `TCP_INFO`, resource limits, clocks), so the
//! rest of the crate is safe code that never sees a raw pointer. Functions return
//! `io::Result` carrying the OS errno; callers decide what an errno means.

mod epoll;
mod eventfd;
mod fdpass;
mod net;
mod proc;
mod service;
mod timerfd;
mod uring;

pub use epoll::{Epoll, Events, Interest};
pub use eventfd::EventFd;
pub use fdpass::{recv_fds, send_fds};
pub use net::{
    accept4, adopt_listener, check_listener, ensure_nonblocking, is_cloexec, poll_readable, recv, recv_append,
    recv_peek, send, set_defer_accept, shutdown_write, tcp_listen_queue, ListenQueue,
};
pub use proc::{
    cpu_time_of, nofile_limit, pin_thread, process_cpu_time, resident_bytes, set_nofile_limit, set_thread_slice,
    somaxconn, sysctl, thread_cpu_time, TcpExt,
};
pub use service::{listen_fds, monotonic_usec, notify, take_inherited_fd, ActivatedFd, Termination};
pub use timerfd::TimerFd;
pub use uring::{probe as probe_io_uring, Done, Op, Reaped, Received, Ring};

/// Converts a `-1` syscall return into the thread's `errno` as an `io::Error`.
fn cvt(ret: libc::c_int) -> std::io::Result<libc::c_int> {
    if ret == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_size(ret: libc::ssize_t) -> std::io::Result<usize> {
    if ret == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}
