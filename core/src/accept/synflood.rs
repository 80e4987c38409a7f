//! What the kernel's listen-queue settings and SYN counters say about this host: the
//! start-up warning when the host is unprotected against a SYN flood, and the log line
//! while one is under way. Both are pure here (values in, lines out); the engine reads
//! the sysctls at start and the monitor thread reads `/proc/net/netstat` once a tick.
//!
//! The kernel's rules (`tcp_conn_request`, `tcp_syn_flood_action` in
//! `net/ipv4/tcp_input.c`; `../shared/research/listen_queues.md`): each listener's SYN
//! queue and accept queue hold `min(backlog, net.core.somaxconn)`. A SYN that meets a
//! full SYN queue gets a cookie when `net.ipv4.tcp_syncookies` is 1 or 2
//! (`TCPReqQFullDoCookies`, `SyncookiesSent`) and is dropped when it is 0
//! (`TCPReqQFullDrop`). With cookies off, the kernel also refuses SYNs from clients it
//! has not talked to before once a listener holds three quarters of
//! `net.ipv4.tcp_max_syn_backlog` half-open; with cookies on that sysctl has no effect,
//! so it is only warned about then. With `tcp_syncookies = 2` every SYN is answered
//! with a cookie and counted as if the queue were full, so the counters say nothing
//! about a flood and nothing is logged (the kernel's own "Possible SYN flooding" line
//! is silent then too).
//!
//! The counters are per network namespace, not per listener: a flood on another
//! server's port shows here too, and the log line says so.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::sync::lock;
use crate::sys::TcpExt;

/// At most one flood line per engine in this many milliseconds.
pub(crate) const LOG_EVERY_MS: u64 = 10_000;
/// How often the monitor reads `/proc/net/netstat` for the flood watch.
pub(crate) const READ_EVERY_MS: u64 = 1_000;

/// The host's settings that decide how a SYN flood goes (`None`: unreadable).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Settings {
    /// `net.ipv4.tcp_syncookies`.
    pub syncookies: Option<u32>,
    /// `net.core.somaxconn`.
    pub somaxconn: Option<u32>,
    /// `net.ipv4.tcp_max_syn_backlog`.
    pub max_syn_backlog: Option<u32>,
}

impl Settings {
    /// Reads the three sysctls (this thread's network namespace).
    pub fn read() -> Settings {
        Settings {
            syncookies: crate::sys::sysctl("net.ipv4.tcp_syncookies"),
            somaxconn: crate::sys::somaxconn(),
            max_syn_backlog: crate::sys::sysctl("net.ipv4.tcp_max_syn_backlog"),
        }
    }
}

/// The start-up warnings for a host with `settings`, for listeners bound with
/// `backlog` (`None`: every listener was inherited, its backlog set by someone else).
/// Empty when the host is protected.
pub(crate) fn warnings(backlog: Option<u32>, s: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    // The queue each listener really has: the backlog after the somaxconn clamp.
    let effective = backlog.map(|b| s.somaxconn.map_or(b, |m| b.min(m)));
    if s.syncookies == Some(0) {
        let queue = effective.map_or(String::new(), |q| format!(" ({q} half-open connections per listener)"));
        out.push(format!(
            "net.ipv4.tcp_syncookies is 0: under a SYN flood the kernel drops every new connection once the SYN \
             queue{queue} is full, legitimate clients' too; set net.ipv4.tcp_syncookies=1"
        ));
    }
    if let (Some(b), Some(m)) = (backlog, s.somaxconn) {
        if b > m {
            out.push(format!(
                "backlog {b} is above net.core.somaxconn ({m}): the kernel clamps it, so each listener queues at most \
                 {m} connections (the stats' listen_queue_max); raise net.core.somaxconn to {b} for the full backlog"
            ));
        }
    }
    if let (Some(0), Some(q), Some(m)) = (s.syncookies, effective, s.max_syn_backlog) {
        // tcp_conn_request: without cookies, SYNs from unknown clients are dropped once
        // fewer than a quarter of tcp_max_syn_backlog's entries are left.
        let kept = m - m / 4;
        if kept < q {
            let needed = max_syn_backlog_for(q);
            out.push(format!(
                "net.ipv4.tcp_max_syn_backlog is {m}: with SYN cookies off the kernel keeps only about {kept} half-open \
                 connections from new clients per listener, fewer than the backlog of {q}; raise \
                 net.ipv4.tcp_max_syn_backlog to {needed} (or turn cookies on)"
            ));
        }
    }
    out
}

/// The smallest `net.ipv4.tcp_max_syn_backlog` whose three quarters (as the kernel
/// rounds: `m - m / 4`) hold `queue` half-open connections.
fn max_syn_backlog_for(queue: u32) -> u64 {
    // m - m / 4 = ceil(3m / 4) >= q  <=>  3m > 4(q - 1).
    u64::from(queue.max(1) - 1) * 4 / 3 + 1
}

/// Prints `line` on stderr (`corral: ...`) unless this process printed it already:
/// a process that starts many engines on one host warns once. True when it printed.
pub(crate) fn warn_once(line: &str) -> bool {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let new = lock(&SEEN).get_or_insert_with(HashSet::new).insert(line.to_owned());
    if new {
        eprintln!("corral: {line}");
    }
    new
}

/// Watches the kernel's SYN counters tick by tick and says when a flood is under way,
/// at most once per [`LOG_EVERY_MS`].
pub(crate) struct FloodWatch {
    /// "port 8080" or "ports 8080, 8443".
    ports: String,
    /// The counters at the last reading.
    last: TcpExt,
    /// The counters when the current window began, and when (ms).
    base: TcpExt,
    since_ms: u64,
    /// When the last line was logged (or a flood was judged not to be one).
    logged_ms: Option<u64>,
    /// When the next reading is due.
    next_ms: u64,
}

impl FloodWatch {
    /// A watch for an engine listening on `ports`, from the counters `now` at `now_ms`.
    pub fn new(ports: &[u16], now_ms: u64, now: TcpExt) -> FloodWatch {
        let mut ports: Vec<u16> = ports.to_vec();
        ports.sort_unstable();
        ports.dedup();
        let list = ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
        let ports = if ports.len() == 1 { format!("port {list}") } else { format!("ports {list}") };
        FloodWatch { ports, last: now, base: now, since_ms: now_ms, logged_ms: None, next_ms: now_ms + READ_EVERY_MS }
    }

    /// Whether a reading is due at `now_ms` (the monitor ticks far more often).
    pub fn due(&mut self, now_ms: u64) -> bool {
        if now_ms < self.next_ms {
            return false;
        }
        self.next_ms = now_ms + READ_EVERY_MS;
        true
    }

    /// Takes one reading of the counters; returns the line to log, if any.
    /// `syncookies` reads `net.ipv4.tcp_syncookies`; it is called only when the counters
    /// rose and a line may be due.
    pub fn observe(&mut self, now_ms: u64, now: TcpExt, syncookies: impl FnOnce() -> Option<u32>) -> Option<String> {
        let last = std::mem::replace(&mut self.last, now);
        let rose = now.syncookies_sent > last.syncookies_sent
            || now.req_q_full_do_cookies > last.req_q_full_do_cookies
            || now.req_q_full_drop > last.req_q_full_drop;
        let may_log = !matches!(self.logged_ms, Some(t) if now_ms.saturating_sub(t) < LOG_EVERY_MS);
        if !rose || !may_log {
            if !rose && may_log {
                // Quiet and nothing owed: the next flood's window starts here.
                (self.base, self.since_ms) = (now, now_ms);
            }
            return None;
        }
        let (d, secs) = (now.since(&self.base), (now_ms.saturating_sub(self.since_ms) + 500) / 1000);
        (self.base, self.since_ms, self.logged_ms) = (now, now_ms, Some(now_ms));
        let cookies = syncookies();
        if cookies == Some(2) {
            // Every SYN gets a cookie and counts as a full queue: no sign of a flood.
            return None;
        }
        flood_line(&self.ports, &d, secs.max(1), cookies)
    }
}

/// The flood line for the counters' change `d` over `secs` seconds.
fn flood_line(ports: &str, d: &TcpExt, secs: u64, syncookies: Option<u32>) -> Option<String> {
    let mut what = Vec::new();
    let cookies = d.syncookies_sent.max(d.req_q_full_do_cookies);
    if cookies > 0 {
        what.push(format!(
            "{} SYN cookies sent in the last {secs} s (net.ipv4.tcp_syncookies={} keeps legitimate clients connecting)",
            thousands(cookies),
            syncookies.unwrap_or(1)
        ));
    }
    if d.req_q_full_drop > 0 {
        what.push(format!(
            "{} SYNs dropped with the SYN queue full in the last {secs} s (net.ipv4.tcp_syncookies=0: legitimate \
             clients cannot connect either; set it to 1)",
            thousands(d.req_q_full_drop)
        ));
    }
    if what.is_empty() {
        return None;
    }
    Some(format!("SYN flood on this host while listening on {ports}: {}", what.join("; ")))
}

/// `12345678` as `12,345,678`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(syncookies: u32, somaxconn: u32, max_syn_backlog: u32) -> Settings {
        Settings { syncookies: Some(syncookies), somaxconn: Some(somaxconn), max_syn_backlog: Some(max_syn_backlog) }
    }

    #[test]
    fn a_protected_host_gets_no_warning() {
        assert!(warnings(Some(1024), &host(1, 4096, 2048)).is_empty());
        assert!(warnings(Some(4096), &host(1, 4096, 128)).is_empty(), "max_syn_backlog is moot with cookies on");
        assert!(warnings(Some(1024), &host(2, 4096, 128)).is_empty());
        assert!(warnings(Some(1024), &Settings::default()).is_empty(), "unreadable sysctls: nothing to say");
    }

    #[test]
    fn cookies_off_is_warned_with_the_queue_and_the_sysctl() {
        let w = warnings(Some(1024), &host(0, 4096, 2048));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("net.ipv4.tcp_syncookies is 0"), "{}", w[0]);
        assert!(w[0].contains("(1024 half-open connections per listener)"), "{}", w[0]);
        assert!(w[0].ends_with("set net.ipv4.tcp_syncookies=1"), "{}", w[0]);
        // Inherited listeners: no backlog of ours to speak of, cookies still matter.
        let w = warnings(None, &host(0, 4096, 128));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(!w[0].contains("half-open connections per listener"), "{}", w[0]);
    }

    #[test]
    fn a_backlog_above_somaxconn_says_the_effective_value_and_what_to_raise() {
        let w = warnings(Some(8192), &host(1, 4096, 2048));
        assert_eq!(
            w,
            vec!["backlog 8192 is above net.core.somaxconn (4096): the kernel clamps it, so each listener queues at \
                  most 4096 connections (the stats' listen_queue_max); raise net.core.somaxconn to 8192 for the full \
                  backlog"
                .to_string()]
        );
        assert!(warnings(Some(4096), &host(1, 4096, 2048)).is_empty(), "equal is not above");
        assert!(warnings(None, &host(1, 128, 2048)).is_empty(), "inherited listeners' backlog is not ours");
    }

    #[test]
    fn max_syn_backlog_is_warned_only_with_cookies_off_and_against_the_effective_backlog() {
        // 3/4 of 1024 = 768 < 1024: warned, and raising it to 1365 keeps 1365 - 341 = 1024.
        let w = warnings(Some(1024), &host(0, 4096, 1024));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[1].starts_with("net.ipv4.tcp_max_syn_backlog is 1024"), "{}", w[1]);
        assert!(w[1].contains("only about 768 half-open"), "{}", w[1]);
        assert!(w[1].contains("raise net.ipv4.tcp_max_syn_backlog to 1365"), "{}", w[1]);
        // 3/4 of 2048 = 1536 >= 1024: only the cookies line.
        assert_eq!(warnings(Some(1024), &host(0, 4096, 2048)).len(), 1);
        // The clamp counts: backlog 100000 is really somaxconn's 128, and 3/4 of 256 holds it.
        let w = warnings(Some(100_000), &host(0, 128, 256));
        assert_eq!(w.len(), 2, "cookies and somaxconn, not max_syn_backlog: {w:?}");
        assert!(w[0].contains("(128 half-open connections per listener)"), "{}", w[0]);
    }

    #[test]
    fn the_max_syn_backlog_asked_for_is_the_smallest_that_holds_the_queue() {
        for q in 1..20_000u32 {
            let m = max_syn_backlog_for(q);
            assert!(m - m / 4 >= u64::from(q), "{q}: {m}");
            assert!((m - 1) - (m - 1) / 4 < u64::from(q), "{q}: {} would do", m - 1);
        }
    }

    #[test]
    fn warn_once_prints_a_line_once_per_process() {
        assert!(warn_once("synflood test: this line is printed once"));
        assert!(!warn_once("synflood test: this line is printed once"));
    }

    fn cookies(sent: u64) -> TcpExt {
        TcpExt { syncookies_sent: sent, req_q_full_do_cookies: sent, ..TcpExt::default() }
    }

    #[test]
    fn a_flood_is_logged_at_once_then_at_most_every_ten_seconds_with_the_counts() {
        let mut w = FloodWatch::new(&[8080], 0, cookies(100));
        assert_eq!(w.observe(1_000, cookies(100), || panic!("quiet: no sysctl read")), None);
        let line = w.observe(2_000, cookies(12_445), || Some(1)).expect("a flood began");
        assert_eq!(
            line,
            "SYN flood on this host while listening on port 8080: 12,345 SYN cookies sent in the last 1 s \
             (net.ipv4.tcp_syncookies=1 keeps legitimate clients connecting)"
        );
        // Rising every second: quiet in the log until 10 s have passed, then the 10 s total.
        for t in 1..10u64 {
            assert_eq!(w.observe(2_000 + t * 1_000, cookies(12_445 + t * 1_000), || panic!("not due")), None);
        }
        let line = w.observe(12_000, cookies(22_445), || Some(1)).expect("still flooding");
        assert!(line.contains(": 10,000 SYN cookies sent in the last 10 s"), "{line}");
    }

    #[test]
    fn quiet_resets_the_window_and_drops_are_told_apart_from_cookies() {
        let mut w = FloodWatch::new(&[8443, 8080, 8080], 0, TcpExt::default());
        assert_eq!(w.observe(30_000, TcpExt::default(), || None), None);
        let drops = TcpExt { req_q_full_drop: 5_000, ..TcpExt::default() };
        let line = w.observe(31_000, drops, || Some(0)).expect("a flood with cookies off");
        assert_eq!(
            line,
            "SYN flood on this host while listening on ports 8080, 8443: 5,000 SYNs dropped with the SYN queue full \
             in the last 1 s (net.ipv4.tcp_syncookies=0: legitimate clients cannot connect either; set it to 1)"
        );
    }

    #[test]
    fn cookies_always_on_is_not_a_flood() {
        let mut w = FloodWatch::new(&[80], 0, TcpExt::default());
        assert_eq!(w.observe(1_000, cookies(50), || Some(2)), None);
        // Asked again only after the log period, not every tick.
        assert_eq!(w.observe(2_000, cookies(90), || panic!("not before 10 s")), None);
        assert_eq!(w.observe(11_000, cookies(500), || Some(2)), None);
    }

    #[test]
    fn readings_are_due_once_a_second() {
        let mut w = FloodWatch::new(&[80], 0, TcpExt::default());
        assert!(!w.due(999));
        assert!(w.due(1_000));
        assert!(!w.due(1_500));
        assert!(w.due(2_100));
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(
            [0, 999, 1_000, 12_345, 1_234_567].map(thousands),
            ["0", "999", "1,000", "12,345", "1,234,567"].map(String::from)
        );
    }
}
