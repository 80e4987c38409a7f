//! Process-level facts: descriptor limits, CPU clocks, `somaxconn`, and the kernel's
//! listen-drop counters.

use std::io;
use std::time::Duration;

use super::cvt;

/// The soft and hard `RLIMIT_NOFILE`.
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: r is a live rlimit.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) })?;
    Ok((r.rlim_cur, r.rlim_max))
}

/// Sets the soft `RLIMIT_NOFILE` (the hard limit is kept).
pub fn set_nofile_limit(soft: u64) -> io::Result<()> {
    let (_, hard) = nofile_limit()?;
    let r = libc::rlimit { rlim_cur: soft.min(hard), rlim_max: hard };
    // SAFETY: r is a live rlimit.
    cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) }).map(|_| ())
}

fn clock(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a live timespec; the clock ids used here always exist on Linux.
    unsafe { libc::clock_gettime(id, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time used by the calling thread.
pub fn thread_cpu_time() -> Duration {
    clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time used by the whole process (all threads).
pub fn process_cpu_time() -> Duration {
    clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// `net.core.somaxconn`, the kernel's clamp on every listen backlog.
pub fn somaxconn() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn").ok()?.trim().parse().ok()
}

/// The kernel's system-wide (per network namespace) listen-queue drop counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenDrops {
    /// Handshakes dropped because an accept queue was full.
    pub overflows: u64,
    /// All drops at listen sockets (includes overflows).
    pub drops: u64,
}

/// Reads `ListenOverflows` and `ListenDrops` from `/proc/net/netstat`.
pub fn listen_drop_counters() -> Option<ListenDrops> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if !names.starts_with("TcpExt:") {
            continue;
        }
        let mut out = ListenDrops::default();
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            match n {
                "ListenOverflows" => out.overflows = v.parse().ok()?,
                "ListenDrops" => out.drops = v.parse().ok()?,
                _ => {}
            }
        }
        return Some(out);
    }
    None
}
