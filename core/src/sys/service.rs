//! Living under a service manager (systemd and compatible ones): socket activation
//! (`sd_listen_fds(3)`), readiness notification (`sd_notify(3)`), and the termination
//! signals a manager stops a service with.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// The first descriptor a service manager passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// One socket passed by the service manager, with its `LISTEN_FDNAMES` name if it has one.
#[derive(Debug)]
pub struct ActivatedFd {
    pub fd: OwnedFd,
    pub name: Option<String>,
}

/// The sockets passed by socket activation: `LISTEN_FDS` descriptors from fd 3, if
/// `LISTEN_PID` is this process (otherwise they were meant for a parent, and none are
/// taken). The variables are removed, so children do not take the sockets again, and
/// the descriptors made close-on-exec. Call it once, early, before starting threads
/// that read the environment. Empty when the process was not socket-activated.
pub fn listen_fds() -> io::Result<Vec<ActivatedFd>> {
    let pid = std::env::var("LISTEN_PID").ok();
    let count = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(v);
    }
    let (Some(pid), Some(count)) = (pid, count) else { return Ok(Vec::new()) };
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(Vec::new());
    }
    let n: RawFd = count.trim().parse().map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("LISTEN_FDS={count:?} is not a number of descriptors"))
    })?;
    if !(0..=4096).contains(&n) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("LISTEN_FDS={n} is out of range (0 to 4096)")));
    }
    let mut names = names.as_deref().unwrap_or("").split(':').map(str::to_owned);
    let mut out = Vec::with_capacity(n as usize);
    for fd in LISTEN_FDS_START..LISTEN_FDS_START + n {
        set_cloexec(fd).map_err(|e| {
            io::Error::new(e.kind(), format!("LISTEN_FDS names descriptor {fd}, which is not open: {e}"))
        })?;
        // SAFETY: the service manager passed `fd` to this process for it to own (it is
        // open, checked above, and LISTEN_PID names us); nothing else in the process
        // owns it, and the variables naming it are gone, so it is taken once.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = names.next().filter(|s| !s.is_empty());
        out.push(ActivatedFd { fd: owned, name });
    }
    Ok(out)
}

/// Takes an inherited listening socket by its number (`--fd N`): checks that it is an
/// open listening stream socket and makes it close-on-exec.
///
/// # Safety
/// `fd` must have been passed to this process for it to own (inherited across exec, as
/// a supervisor or service manager does), and nothing else in the process may own or
/// close it: the returned `OwnedFd` closes it when dropped.
pub unsafe fn take_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    super::net::check_listener(fd)
        .map_err(|e| io::Error::new(e.kind(), format!("descriptor {fd} is not a listening socket: {e}")))?;
    set_cloexec(fd)?;
    // SAFETY: the caller gives us the descriptor to own (see the function's contract).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets close-on-exec on `fd` (fails if it is not open), so a descriptor this process
/// inherited is not passed on to the programs it runs.
fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD read and set a descriptor's flags; no memory is passed, and
    // a closed descriptor makes them fail.
    let flags = super::cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    super::cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) })?;
    Ok(())
}

/// Tells the service manager a state change (`READY=1`, `STOPPING=1`, `RELOADING=1`,
/// `STATUS=...`) on the datagram socket in `NOTIFY_SOCKET` (a path, or `@name` for the
/// abstract namespace). `Ok(false)` when no manager listens (the variable is unset).
pub fn notify(state: &str) -> io::Result<bool> {
    use std::os::unix::net::UnixDatagram;
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else { return Ok(false) };
    let sock = UnixDatagram::unbound()?;
    let bytes = target.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), std::path::Path::new(&target))?;
    }
    Ok(true)
}

/// CLOCK_MONOTONIC in microseconds (what `RELOADING=1` carries as `MONOTONIC_USEC`).
pub fn monotonic_usec() -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as u64 * 1_000_000 + t.tv_nsec as u64 / 1_000
}

/// SIGTERM and SIGINT, blocked so that they are waited for instead of delivered.
/// Make it before starting threads: they inherit the blocked set, so the signal stays
/// pending until [`Termination::wait`] takes it, whichever thread it was sent to.
pub struct Termination {
    set: libc::sigset_t,
}

impl Termination {
    /// SIGHUP's number, as [`wait`](Termination::wait) returns it after
    /// [`block_with_hangup`](Termination::block_with_hangup).
    pub const HANGUP: i32 = libc::SIGHUP;

    pub fn block() -> io::Result<Termination> {
        Termination::block_these(&[libc::SIGTERM, libc::SIGINT])
    }

    /// As [`block`](Termination::block), and SIGHUP too (by convention "read your files
    /// again", a certificate renewal's signal): `wait` returns [`Termination::HANGUP`]
    /// for it, and the caller waits again.
    pub fn block_with_hangup() -> io::Result<Termination> {
        Termination::block_these(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP])
    }

    fn block_these(signals: &[i32]) -> io::Result<Termination> {
        // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it, and
        // pthread_sigmask reads it and writes no old mask (null).
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &sig in signals {
                libc::sigaddset(&mut set, sig);
            }
            let r = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if r != 0 {
                return Err(io::Error::from_raw_os_error(r));
            }
            Ok(Termination { set })
        }
    }

    /// Sends this process SIGTERM, so that [`Termination::wait`] returns (from another
    /// thread: a hand-over that completed, say).
    pub fn raise(&self) {
        // SAFETY: kill(2) on our own pid with a signal we block and wait for.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGTERM);
        }
    }

    /// Waits for SIGTERM or SIGINT (or SIGHUP, if blocked), up to `timeout` (forever
    /// with `None`); the signal's number, or `None` once the time is up.
    pub fn wait(&self, timeout: Option<Duration>) -> Option<i32> {
        loop {
            let ts = timeout.map(|t| libc::timespec {
                tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: t.subsec_nanos() as libc::c_long,
            });
            let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: `set` was initialised in `block`; a null info pointer is allowed;
            // `tsp` is null or points at a timespec that lives across the call.
            let r = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), tsp) };
            if r > 0 {
                return Some(r);
            }
            match io::Error::last_os_error().raw_os_error() {
                // Interrupted by another signal: wait again (the deadline restarts,
                // which only lengthens a wait that was already a bound, not a promise).
                Some(libc::EINTR) => continue,
                _ => return None,
            }
        }
    }
}
