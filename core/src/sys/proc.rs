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

/// Resident memory of process `pid` in bytes (`VmRSS` in `/proc/<pid>/status`).
pub fn resident_bytes(pid: u32) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no VmRSS line in /proc/{pid}/status")))
}

/// CPU time (user + system, all threads) used so far by process `pid`.
pub fn cpu_time_of(pid: u32) -> io::Result<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let field = |i: usize| rest.split_whitespace().nth(i).and_then(|v| v.parse::<u64>().ok());
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let (Some(user), Some(system)) = (field(11), field(12)) else {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("unexpected /proc/{pid}/stat format")));
    };
    // SAFETY: sysconf has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_nanos((user + system).saturating_mul(1_000_000_000 / ticks)))
}

/// Asks the scheduler for a short time slice for the calling thread (EEVDF custom
/// slice, Linux 6.12 and later; `sched_runtime` of a `SCHED_OTHER` thread): a thread
/// that wakes with a shorter slice than the one running preempts it at once instead of
/// waiting out that thread's slice. Older kernels ignore or refuse it; either is fine.
pub fn set_thread_slice(slice: Duration) -> io::Result<()> {
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    // SAFETY: getpriority takes plain integers (errno is not needed: nice is in range).
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        nice,
        priority: 0,
        runtime: slice.as_nanos() as u64,
        deadline: 0,
        period: 0,
    };
    // SAFETY: attr is a live sched_attr of the size it declares; pid 0 is this thread.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    cvt(r as libc::c_int).map(|_| ())
}
