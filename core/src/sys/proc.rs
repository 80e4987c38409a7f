//! Process-level facts: descriptor limits, CPU clocks, sysctls (`somaxconn`,
//! `tcp_syncookies`), and the kernel's listen-queue and SYN-cookie counters.

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

/// Reads clock `id`; an error where the clock is gone (another process's, once it exits).
fn read_clock(id: libc::clockid_t) -> io::Result<Duration> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a live timespec.
    cvt(unsafe { libc::clock_gettime(id, &mut ts) })?;
    Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// Reads one of this thread's or process's own clocks, which always exist on Linux.
fn clock(id: libc::clockid_t) -> Duration {
    read_clock(id).unwrap_or_default()
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
    sysctl("net.core.somaxconn")
}

/// A numeric sysctl by its dotted name (`net.ipv4.tcp_syncookies`), read from
/// `/proc/sys` (the calling thread's network namespace for `net.*`).
pub fn sysctl(name: &str) -> Option<u32> {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The kernel's `TcpExt` counters about listen queues and SYN floods, from
/// `/proc/net/netstat`. They are per network namespace, not per socket: every listener
/// in the namespace (other servers' too) adds to them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpExt {
    /// `ListenOverflows`: handshakes dropped because an accept queue was full.
    pub listen_overflows: u64,
    /// `ListenDrops`: all drops at listen sockets (includes overflows).
    pub listen_drops: u64,
    /// `SyncookiesSent`: SYN-ACKs that carried a cookie instead of a queued request.
    pub syncookies_sent: u64,
    /// `SyncookiesRecv`: valid cookies that came back (connections made from them).
    pub syncookies_recv: u64,
    /// `SyncookiesFailed`: returning ACKs whose cookie did not check out.
    pub syncookies_failed: u64,
    /// `TCPReqQFullDoCookies`: SYNs met by a full SYN queue and answered with a cookie.
    pub req_q_full_do_cookies: u64,
    /// `TCPReqQFullDrop`: SYNs met by a full SYN queue and dropped (cookies off).
    pub req_q_full_drop: u64,
}

impl TcpExt {
    /// Each counter's change since `start` (zero where it went backwards).
    pub fn since(&self, start: &TcpExt) -> TcpExt {
        TcpExt {
            listen_overflows: self.listen_overflows.saturating_sub(start.listen_overflows),
            listen_drops: self.listen_drops.saturating_sub(start.listen_drops),
            syncookies_sent: self.syncookies_sent.saturating_sub(start.syncookies_sent),
            syncookies_recv: self.syncookies_recv.saturating_sub(start.syncookies_recv),
            syncookies_failed: self.syncookies_failed.saturating_sub(start.syncookies_failed),
            req_q_full_do_cookies: self.req_q_full_do_cookies.saturating_sub(start.req_q_full_do_cookies),
            req_q_full_drop: self.req_q_full_drop.saturating_sub(start.req_q_full_drop),
        }
    }

    /// Parses the text of `/proc/net/netstat`: pairs of lines, a header of names then a
    /// line of values, each starting with its group (`TcpExt:`). Counters this kernel
    /// does not have stay 0; `None` when there is no `TcpExt` pair or a value is not a
    /// number.
    pub fn parse(text: &str) -> Option<TcpExt> {
        let mut lines = text.lines();
        while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
            let (Some(names), Some(values)) = (names.strip_prefix("TcpExt:"), values.strip_prefix("TcpExt:")) else {
                continue;
            };
            let mut out = TcpExt::default();
            for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
                let field = match n {
                    "ListenOverflows" => &mut out.listen_overflows,
                    "ListenDrops" => &mut out.listen_drops,
                    "SyncookiesSent" => &mut out.syncookies_sent,
                    "SyncookiesRecv" => &mut out.syncookies_recv,
                    "SyncookiesFailed" => &mut out.syncookies_failed,
                    "TCPReqQFullDoCookies" => &mut out.req_q_full_do_cookies,
                    "TCPReqQFullDrop" => &mut out.req_q_full_drop,
                    _ => continue,
                };
                *field = v.parse().ok()?;
            }
            return Some(out);
        }
        None
    }

    /// Reads `/proc/net/netstat` once (the calling thread's network namespace).
    pub fn read() -> Option<TcpExt> {
        TcpExt::parse(&std::fs::read_to_string("/proc/net/netstat").ok()?)
    }
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

/// CPU time (user + system, all threads) used so far by process `pid`, to the
/// nanosecond from its CPU-time clock; where that clock is refused, from
/// `/proc/<pid>/stat` in clock ticks (10 ms: an idle server's 2 s window then reads 0,
/// 0.5 or 1% of a core and nothing between).
pub fn cpu_time_of(pid: u32) -> io::Result<Duration> {
    let mut id: libc::clockid_t = 0;
    // SAFETY: id is a live local the call writes; a pid that is gone or not ours is an
    // error return (the error number itself, not -1), not undefined behaviour.
    if unsafe { libc::clock_getcpuclockid(pid as libc::pid_t, &mut id) } == 0 {
        if let Ok(t) = read_clock(id) {
            return Ok(t);
        }
    }
    cpu_ticks_of(pid)
}

/// [`cpu_time_of`] from `/proc/<pid>/stat` (clock ticks).
fn cpu_ticks_of(pid: u32) -> io::Result<Duration> {
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

/// Pins the calling thread to one CPU: the `nth` (modulo their count) of the CPUs it may
/// run on now, so pinning threads 0, 1, 2 ... spreads them over a restricted cpuset as
/// over the whole machine. Returns the CPU's number.
pub fn pin_thread(nth: usize) -> io::Result<usize> {
    // SAFETY: cpu_set_t is plain bits; all zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: set is a live cpu_set_t of `size` bytes; pid 0 is this thread.
    cvt(unsafe { libc::sched_getaffinity(0, size, &mut set) })?;
    // SAFETY: CPU_ISSET reads one bit of the live set, c below CPU_SETSIZE.
    let allowed: Vec<usize> =
        (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect();
    let Some(&cpu) = allowed.get(nth % allowed.len().max(1)) else {
        return Err(io::Error::other("this thread may run on no CPU"));
    };
    // SAFETY: as above; CPU_ZERO and CPU_SET write within the set.
    unsafe {
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
    }
    // SAFETY: set is a live cpu_set_t of `size` bytes; pid 0 is this thread.
    cvt(unsafe { libc::sched_setaffinity(0, size, &set) })?;
    Ok(cpu)
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

#[cfg(test)]
mod tests {
    use super::TcpExt;
    use std::time::Duration;

    #[test]
    fn a_pinned_thread_runs_on_the_cpu_it_was_given_only() {
        std::thread::spawn(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let cpu = super::pin_thread(cores + 1).expect("pinning to an allowed CPU");
            // SAFETY: sched_getcpu takes nothing.
            assert_eq!(unsafe { libc::sched_getcpu() }, cpu as i32);
            assert_eq!(std::thread::available_parallelism().unwrap().get(), 1);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn another_process_cpu_time_reads_to_the_nanosecond_and_agrees_with_its_ticks() {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        // The shell burns some CPU, says so, and waits: from then on its CPU time stands
        // still, so both readings see the same total.
        let mut child = Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo done; read _"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "done");
        let clock = super::cpu_time_of(child.id()).unwrap();
        let ticks = super::cpu_ticks_of(child.id()).unwrap();
        drop(child.stdin.take());
        child.wait().unwrap();
        // The clock is not a multiple of a 10 ms tick (a 1-in-10^7 coincidence aside),
        // and the two agree to within the ticks' rounding.
        assert!(clock > Duration::ZERO && clock.subsec_nanos() % 10_000_000 != 0, "{clock:?}");
        let gap = if clock > ticks { clock - ticks } else { ticks - clock };
        assert!(gap <= Duration::from_millis(20), "clock {clock:?} vs ticks {ticks:?}");
    }

    /// Trimmed from a Linux 6.x `/proc/net/netstat` (the real lines hold ~120 names).
    const SAMPLE: &str = "\
TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed EmbryonicRsts ListenOverflows ListenDrops TCPReqQFullDoCookies TCPReqQFullDrop TCPRcvQDrop
TcpExt: 521589 10409 3 0 11 672073 521594 672062 0
IpExt: InNoRoutes InTruncatedPkts InMcastPkts ListenDrops
IpExt: 0 0 7 99
";

    #[test]
    fn parses_the_tcp_ext_pair_of_proc_net_netstat() {
        let c = TcpExt::parse(SAMPLE).unwrap();
        assert_eq!(
            c,
            TcpExt {
                listen_overflows: 11,
                listen_drops: 672_073,
                syncookies_sent: 521_589,
                syncookies_recv: 10_409,
                syncookies_failed: 3,
                req_q_full_do_cookies: 521_594,
                req_q_full_drop: 672_062,
            }
        );
    }

    #[test]
    fn finds_tcp_ext_after_other_groups_and_leaves_missing_counters_at_zero() {
        let text = "IpExt: InNoRoutes ListenDrops\nIpExt: 5 99\nTcpExt: ListenDrops SyncookiesSent\nTcpExt: 4 2\n";
        assert_eq!(TcpExt::parse(text), Some(TcpExt { listen_drops: 4, syncookies_sent: 2, ..TcpExt::default() }));
    }

    #[test]
    fn refuses_text_without_tcp_ext_or_with_a_bad_value() {
        assert_eq!(TcpExt::parse(""), None);
        assert_eq!(TcpExt::parse("IpExt: InNoRoutes\nIpExt: 0\n"), None);
        assert_eq!(TcpExt::parse("TcpExt: SyncookiesSent\nTcpExt: lots\n"), None);
    }

    #[test]
    fn since_is_the_change_and_never_negative() {
        let start = TcpExt { syncookies_sent: 10, listen_drops: 5, ..TcpExt::default() };
        let now = TcpExt { syncookies_sent: 25, listen_drops: 3, ..TcpExt::default() };
        assert_eq!(now.since(&start), TcpExt { syncookies_sent: 15, ..TcpExt::default() });
    }

    #[test]
    fn this_hosts_netstat_parses() {
        if std::path::Path::new("/proc/net/netstat").exists() {
            assert!(TcpExt::read().is_some(), "/proc/net/netstat has a TcpExt pair");
        }
    }
}
