//! The `synflood` scenario: legitimate clients connect while a flooder sends SYNs from
//! forged sources, with the kernel's SYN cookies on and off.
//!
//! Each row runs in a network namespace of its own (`corral_syn_<pid>_<n>`, only its
//! loopback up) so that the flood, the sysctl and the firewall rule touch nothing
//! outside it: the lab runs `ip netns exec NS corral-bench synflood-child ...`, and
//! that child sets `net.ipv4.tcp_syncookies` (a per-namespace sysctl), starts the
//! lab's server, adds an nftables rule dropping every packet to 127.128.0.0/9 as it
//! comes back in on loopback (the SYN-ACKs to the forged sources, which would otherwise
//! draw resets that free the queue), measures, and prints one JSON line. Invariants: the namespace is
//! deleted by a guard whatever happens (the nftables table lives inside it and goes
//! with it); namespaces left by a lab that was killed are deleted on the next run;
//! forged packets never leave the namespace, which has no interface but `lo`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use corral::Model;
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::scenario::{Row, Scenario, Settings, Target};
use crate::server::{Server, ServerArgs};
use crate::svg::{self, Bar};

/// The models the scenario runs (when selected), each with cookies on and off.
const MODELS: [Model; 3] = [Model::Single, Model::ReusePort, Model::Stealing];
/// Forged SYNs per second the flooder aims at (it reports what it reached).
const SYN_RATE: f64 = 80_000.0;
/// A legitimate connect counts when it is answered within this: one SYN retransmission
/// (the first comes after 1 s) may happen inside it.
const DEADLINE: Duration = Duration::from_millis(1500);
/// Legitimate clients, each connecting in a closed loop.
const CLIENTS: usize = 4;
/// The forged sources: 127.128.0.0/9, which nothing in the namespace uses.
const FORGED_NET: u32 = 0x7f80_0000;
const FORGED_MASK: u32 = 0x007f_ffff;

/// How long each part of a row runs, from the lab's `--duration`: 500 ms without the
/// flood and 1,250 ms with it at its default of 100 ms (a row is one run, not rounds, so
/// its p99s rest on thousands of connects).
#[derive(Clone, Copy, Debug)]
struct Plan {
    baseline: Duration,
    window: Duration,
}

impl Plan {
    fn of(st: &Settings) -> Plan {
        let d = st.duration_ms.max(20);
        Plan { baseline: Duration::from_millis(5 * d), window: Duration::from_millis(25 * d / 2) }
    }
}

/// What the child measured, as it prints it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Measured {
    pub syncookies: u8,
    pub syn_sent: u64,
    pub syn_rate: f64,
    pub attempts: u64,
    pub connected: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub base_attempts: u64,
    pub base_connected: u64,
    pub base_p50_us: u64,
    pub base_p99_us: u64,
    pub window_s: f64,
    /// TcpExt counters of the namespace over the flood (after minus before).
    pub counters: BTreeMap<String, u64>,
}

/// Runs the scenario for the selected models that it covers: one row per model and
/// cookie setting, or rows that say why it was skipped.
pub fn run(targets: &[Target], st: &Settings) -> Vec<Row> {
    let models: Vec<Model> = MODELS.into_iter().filter(|m| targets.contains(&Target::Model(*m))).collect();
    if models.is_empty() {
        return Vec::new();
    }
    let ready = available();
    remove_stale_namespaces();
    let plan = Plan::of(st);
    let mut rows = Vec::new();
    for (k, m) in models.iter().enumerate() {
        // Alternate which setting goes first, so neither always follows the other.
        let order = if k % 2 == 0 { [1, 0] } else { [0, 1] };
        for cookies in order {
            let row = match &ready {
                Ok(()) => one(*m, cookies, plan, st.workers),
                Err(why) => Err(io::Error::other(why.clone())),
            };
            let row = row.unwrap_or_else(|e| failed(*m, cookies, &e.to_string()));
            eprintln!("{}", progress_line(&row));
            rows.push(row);
        }
    }
    rows.sort_by_key(|r| (MODELS.iter().position(|m| m.name() == r.model), !cookies(r)));
    rows
}

fn failed(m: Model, cookies: u8, why: &str) -> Row {
    let mut row = Row::new(Scenario::Synflood, m.name(), f64::NAN);
    row.extra.insert("syncookies".into(), cookies as f64);
    row.error = Some(why.to_string());
    row
}

fn progress_line(r: &Row) -> String {
    let cookies = r.extra.get("syncookies").copied().unwrap_or(f64::NAN);
    match &r.error {
        Some(e) => format!("synflood  {:<21} cookies={cookies} failed: {e}", r.model),
        None => format!(
            "synflood  {:<21} cookies={cookies} legit connected {:.1}% at {:.0} SYN/s, p99 {} us ({:.2}x no flood)",
            r.model,
            100.0 * r.value,
            r.extra["syn_rate"],
            r.p99_us,
            r.extra["p99_vs_no_flood"]
        ),
    }
}

/// Whether namespaces and nftables work here (root, `ip`, `nft`).
fn available() -> Result<(), String> {
    let probe = Namespace::create(&format!("corral_syn_{}_probe", std::process::id()))
        .map_err(|e| format!("skipped: cannot make a network namespace here ({e}); needs root and iproute2"))?;
    let nft = Command::new("ip").args(["netns", "exec", &probe.name, "nft", "list", "tables"]).output();
    if !nft.is_ok_and(|o| o.status.success()) {
        return Err("skipped: nft does not run inside a network namespace here (install nftables)".into());
    }
    Ok(())
}

/// A network namespace of the lab's, deleted (with everything in it) when dropped.
struct Namespace {
    name: String,
}

fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).stdout(Stdio::null()).output()?;
    if out.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!("ip {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())))
}

impl Namespace {
    fn create(name: &str) -> io::Result<Namespace> {
        ip(&["netns", "add", name])?;
        let ns = Namespace { name: name.to_string() };
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = ip(&["netns", "delete", &self.name]);
    }
}

/// Deletes namespaces of lab runs that were killed: their names carry the pid, and
/// that process is gone.
fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("corral_syn_") else { continue };
        let pid = rest.split('_').next().unwrap_or("");
        if pid.parse::<u32>().is_ok_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
            let _ = ip(&["netns", "delete", name]);
        }
    }
}

/// One row: a fresh namespace, the child inside it, its figures.
fn one(m: Model, cookies: u8, plan: Plan, workers: usize) -> io::Result<Row> {
    use std::sync::atomic::AtomicUsize;
    static N: AtomicUsize = AtomicUsize::new(0);
    let ns = Namespace::create(&format!("corral_syn_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)))?;
    let exe = std::env::current_exe()?;
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(exe)
        .args(["synflood-child", "--model", m.name(), "--workers", &workers.to_string()])
        .args(["--cookies", &cookies.to_string(), "--rate", &SYN_RATE.to_string()])
        .args(["--baseline-ms", &plan.baseline.as_millis().to_string()])
        .args(["--window-ms", &plan.window.as_millis().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let watchdog = kill_after(child.id(), plan.baseline + plan.window + Duration::from_secs(30));
    let mut text = String::new();
    child.stdout.take().expect("piped").read_to_string(&mut text)?;
    let status = child.wait()?;
    drop(watchdog);
    let line = text.lines().find_map(|l| l.strip_prefix("synflood "));
    let Some(m_) = line.and_then(|l| serde_json::from_str::<Measured>(l).ok()) else {
        return Err(io::Error::other(format!("the synflood child exited ({status}) without figures")));
    };
    drop(ns);
    Ok(row(m, &m_))
}

/// Kills `pid` unless the returned sender is dropped within `limit` (a hung child must
/// not hang the lab).
fn kill_after(pid: u32, limit: Duration) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
    tx
}

fn row(m: Model, x: &Measured) -> Row {
    let success = x.connected as f64 / x.attempts.max(1) as f64;
    let mut r = Row::new(Scenario::Synflood, m.name(), success);
    r.rate = x.connected as f64 / x.window_s.max(1e-9);
    r.p50_us = x.p50_us;
    r.p99_us = x.p99_us;
    r.p999_us = x.p99_us;
    r.p50_range_us = [x.p50_us; 2];
    r.p99_range_us = [x.p99_us; 2];
    r.p999_range_us = [x.p99_us; 2];
    r.ok = x.connected;
    r.errors = x.attempts - x.connected;
    let c = |k: &str| x.counters.get(k).copied().unwrap_or(0) as f64;
    for (k, v) in [
        ("syncookies", x.syncookies as f64),
        ("legit_success", success),
        ("p99_vs_no_flood", x.p99_us as f64 / x.base_p99_us.max(1) as f64),
        ("syn_rate", x.syn_rate),
        ("syn_sent", x.syn_sent as f64),
        ("legit_attempts", x.attempts as f64),
        ("no_flood_p50_us", x.base_p50_us as f64),
        ("no_flood_p99_us", x.base_p99_us as f64),
        ("no_flood_success", x.base_connected as f64 / x.base_attempts.max(1) as f64),
        ("deadline_ms", DEADLINE.as_millis() as f64),
        ("synack_retrans", c("TCPSynRetrans")),
        ("syncookies_sent", c("SyncookiesSent")),
        ("syncookies_recv", c("SyncookiesRecv")),
        ("listen_drops", c("ListenDrops")),
    ] {
        r.extra.insert(k.into(), v);
    }
    r
}

/// `corral-bench synflood-child` (run by the lab inside the namespace).
#[derive(clap::Args, Debug)]
pub struct ChildArgs {
    #[arg(long, value_parser = crate::parse_model)]
    model: Model,
    #[arg(long)]
    workers: usize,
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=1))]
    cookies: u8,
    #[arg(long)]
    rate: f64,
    #[arg(long)]
    baseline_ms: u64,
    #[arg(long)]
    window_ms: u64,
}

/// The child's whole run; prints `synflood {json}`.
pub fn child(a: ChildArgs) -> Result<(), String> {
    let m = measure(&a).map_err(|e| format!("synflood ({} cookies={}): {e}", a.model.name(), a.cookies))?;
    println!("synflood {}", serde_json::to_string(&m).map_err(|e| e.to_string())?);
    Ok(())
}

fn measure(a: &ChildArgs) -> io::Result<Measured> {
    std::fs::write("/proc/sys/net/ipv4/tcp_syncookies", a.cookies.to_string())?;
    // Every legitimate client comes from 127.0.0.1: once the kernel had metrics for that
    // address it would count the peer "proven" and let its SYNs past the queue's
    // reserve, which real clients the server has not met before do not get.
    std::fs::write("/proc/sys/net/ipv4/tcp_no_metrics_save", "1")?;
    let server = Server::start(&ServerArgs::new(a.model, a.workers))?;
    drop_forged_replies()?;
    let SocketAddr::V4(addr) = server.addr else { return Err(io::Error::other("the server is not on IPv4")) };
    let base = legit(addr, Duration::from_millis(a.baseline_ms));
    let before = netstat()?;
    let flood = Flooder::start(addr, a.rate);
    queue_full(&before)?;
    let under = legit(addr, Duration::from_millis(a.window_ms));
    let (sent, rate) = flood.stop()?;
    let after = netstat()?;
    server.stop()?;
    let counters = after.iter().map(|(k, v)| (k.clone(), v.saturating_sub(before.get(k).copied().unwrap_or(0))));
    Ok(Measured {
        syncookies: a.cookies,
        syn_sent: sent,
        syn_rate: rate,
        attempts: under.attempts(),
        connected: under.connected,
        p50_us: under.quantile_us(0.5),
        p99_us: under.quantile_us(0.99),
        base_attempts: base.attempts(),
        base_connected: base.connected,
        base_p50_us: base.quantile_us(0.5),
        base_p99_us: base.quantile_us(0.99),
        window_s: a.window_ms as f64 / 1000.0,
        counters: counters.collect(),
    })
}

/// The rule that keeps the forged sources' SYN-ACKs from being answered (with resets
/// that would empty the queue): every packet to 127.128.0.0/9 is dropped as it comes
/// back in from loopback. Not on output: a SYN-ACK whose retransmission fails to send
/// makes the kernel discard the half-open connection after 1 s and count no
/// retransmission, where on a real network it is sent, retransmitted and held ~60 s.
fn drop_forged_replies() -> io::Result<()> {
    let rules = "table ip corral_synflood {\n  chain forged {\n    type filter hook prerouting priority -300; \
                 policy accept;\n    ip daddr 127.128.0.0/9 counter drop\n  }\n}\n";
    let mut nft = Command::new("nft").args(["-f", "-"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    nft.stdin.as_mut().expect("piped").write_all(rules.as_bytes())?;
    drop(nft.stdin.take());
    let out = nft.wait_with_output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!("nft refused the rule: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

/// This namespace's TcpExt counters (`/proc/net` is the reading process's namespace).
fn netstat() -> io::Result<BTreeMap<String, u64>> {
    let text = std::fs::read_to_string("/proc/net/netstat")?;
    let lines: Vec<&str> = text.lines().collect();
    let mut out = BTreeMap::new();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let (Some(("TcpExt", names)), Some((_, values))) = (names.split_once(": "), values.split_once(": ")) else {
            continue;
        };
        for (k, v) in names.split_whitespace().zip(values.split_whitespace()) {
            out.insert(k.to_string(), v.parse().unwrap_or(0));
        }
    }
    Ok(out)
}

/// Waits until the kernel reports the listener's SYN queue full (cookies sent, or SYNs
/// dropped), so that the clients measure a flood in force, not its first milliseconds.
fn queue_full(before: &BTreeMap<String, u64>) -> io::Result<()> {
    let grew =
        |now: &BTreeMap<String, u64>, k: &str| now.get(k).copied().unwrap_or(0) > before.get(k).copied().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = netstat()?;
        if grew(&now, "TCPReqQFullDoCookies") || grew(&now, "ListenDrops") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(io::Error::other("the flood did not fill the SYN queue within 5 s"));
        }
        // Polling a kernel counter until the flood has taken hold (setup, not a measurement).
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What the legitimate clients saw: each attempt's connect time (a failed one counts
/// as the deadline: its latency is at least that).
#[derive(Default)]
struct Legit {
    us: Vec<u64>,
    connected: u64,
}

impl Legit {
    fn attempts(&self) -> u64 {
        self.us.len() as u64
    }

    fn quantile_us(&self, q: f64) -> u64 {
        let mut s = self.us.clone();
        s.sort_unstable();
        let i = ((s.len() as f64 * q).ceil() as usize).clamp(1, s.len().max(1)) - 1;
        s.get(i).copied().unwrap_or(0)
    }
}

/// `CLIENTS` clients, each connecting, asking for `/` and reading the reply in a closed
/// loop for `window`; an attempt succeeds when the reply arrives within [`DEADLINE`].
fn legit(addr: SocketAddrV4, window: Duration) -> Legit {
    let end = Instant::now() + window;
    let parts: Vec<Legit> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..CLIENTS)
            .map(|_| {
                s.spawn(move || {
                    let mut l = Legit::default();
                    while Instant::now() < end {
                        let t = Instant::now();
                        match attempt(addr.into(), t) {
                            Some(connect) => {
                                l.us.push(connect.as_micros() as u64);
                                l.connected += 1;
                            }
                            None => l.us.push(DEADLINE.as_micros() as u64),
                        }
                    }
                    l
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    parts.into_iter().fold(Legit::default(), |mut a, b| {
        a.us.extend(b.us);
        a.connected += b.connected;
        a
    })
}

/// One connect and request; the connect time when the whole exchange fit the deadline.
fn attempt(addr: SocketAddr, t: Instant) -> Option<Duration> {
    let mut s = TcpStream::connect_timeout(&addr, DEADLINE).ok()?;
    let connect = t.elapsed();
    let left = DEADLINE.checked_sub(connect)?;
    s.set_read_timeout(Some(left.max(Duration::from_millis(1)))).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n").ok()?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).ok()?;
    (reply.starts_with(b"HTTP/1.1 200") && t.elapsed() <= DEADLINE).then_some(connect)
}

/// The flooder: a thread sending forged SYNs through a raw socket at a fixed rate.
struct Flooder {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<io::Result<(u64, f64)>>,
}

impl Flooder {
    fn start(dst: SocketAddrV4, rate: f64) -> Flooder {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        Flooder { stop, thread: std::thread::spawn(move || flood(dst, rate, &flag)) }
    }

    /// SYNs sent and the rate reached.
    fn stop(self) -> io::Result<(u64, f64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().map_err(|_| io::Error::other("the flooder panicked"))?
    }
}

fn flood(dst: SocketAddrV4, rate: f64, stop: &AtomicBool) -> io::Result<(u64, f64)> {
    // IPPROTO_RAW: the packet carries its own IP header (the kernel fills in the
    // header checksum and length).
    let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255)))?;
    let to = SockAddr::from(dst);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
    let t = Instant::now();
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let due = (t.elapsed().as_secs_f64() * rate) as u64;
        // At most a millisecond's worth before looking at the flag again.
        let batch_end = due.min(sent + (rate / 1000.0) as u64 + 1);
        while sent < batch_end {
            sock.send_to(&syn(&mut rng, dst), &to)?;
            sent += 1;
        }
        if sent >= due {
            // Pacing of the flood, not synchronisation.
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    Ok((sent, sent as f64 / t.elapsed().as_secs_f64().max(1e-9)))
}

/// xorshift64: random forged sources, ports and sequence numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// An IPv4 + TCP SYN from a random address in 127.128.0.0/9 and a random port.
fn syn(rng: &mut Rng, dst: SocketAddrV4) -> [u8; 40] {
    let r = rng.next();
    let src = Ipv4Addr::from(FORGED_NET | (r as u32 & FORGED_MASK));
    let sport = ((r >> 32) as u16).max(1024);
    let seq = (r >> 16) as u32;
    let mut p = [0u8; 40];
    p[..20].copy_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.ip().octets());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dst.port().to_be_bytes());
    p[24..28].copy_from_slice(&seq.to_be_bytes());
    p[32] = 5 << 4; // data offset: 5 words, no options
    p[33] = 0x02; // SYN
    p[34..36].copy_from_slice(&64240u16.to_be_bytes());
    let sum = tcp_checksum(&p[12..16], &p[16..20], &p[20..]);
    p[36..38].copy_from_slice(&sum.to_be_bytes());
    p
}

/// The TCP checksum over the pseudo-header and the segment.
fn tcp_checksum(src: &[u8], dst: &[u8], seg: &[u8]) -> u16 {
    let words = |b: &[u8]| b.chunks(2).map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0))).sum::<u32>();
    let mut sum = words(src) + words(dst) + 6 + seg.len() as u32 + words(seg);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The synflood rows, by model then cookies on first.
fn rows(all: &[Row]) -> Vec<&Row> {
    all.iter().filter(|r| r.scenario == Scenario::Synflood.name()).collect()
}

fn cookies(r: &Row) -> bool {
    r.extra.get("syncookies").is_some_and(|c| *c == 1.0)
}

/// The report's section: what a SYN flood does, with and without cookies, per model.
pub fn markdown(all: &[Row]) -> String {
    let rows = rows(all);
    if rows.is_empty() {
        return String::new();
    }
    let mut o = String::from("\n## SYN flood\n\n");
    let fig = |on: bool| {
        rows.iter().find(|r| r.model == Model::Stealing.name() && cookies(r) == on && r.error.is_none()).copied()
    };
    if let (Some(on), Some(off)) = (fig(true), fig(false)) {
        let _ = writeln!(
            o,
            "A SYN flood sends connection requests from forged addresses that never complete them, so the \
             server's queue of half-open connections fills and real clients' requests are dropped. With SYN \
             cookies on, the kernel keeps no state for a request once that queue is full, and {:.1}% of real \
             clients connected (p99 {:.1}x that without the flood) beside {:.0} forged SYNs/s; with cookies off \
             {:.1}% did.\n",
            100.0 * on.value,
            on.extra["p99_vs_no_flood"],
            on.extra["syn_rate"],
            100.0 * off.value
        );
    }
    let _ = writeln!(
        o,
        "Setup: one network namespace per row, on its own loopback; the lab's server (backlog 4096, otherwise \
         the model's defaults) inside it; a raw-socket flooder aiming at {SYN_RATE:.0} SYNs/s from random \
         addresses in 127.128.0.0/9 and random ports, whose SYN-ACKs nftables drops as they come back in on loopback (prerouting; dropped on output, a failed retransmission would end the half-open connection after 1 s); {CLIENTS} \
         clients connecting and fetching `/` in a closed loop, first without the flood, then once the kernel \
         reports the SYN queue full. A connect counts when its reply arrives within {} ms; a failed one \
         counts as {} ms in the latency figures. One run per row (`synflood.svg`).\n",
        DEADLINE.as_millis(),
        DEADLINE.as_millis()
    );
    o.push_str(
        "| model | syncookies | SYN/s reached | legit connected | connect p50 / p99 us | p99 without flood us | \
         p99 ratio | SYN-ACK retransmissions | cookies sent |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in rows {
        let on = if cookies(r) { 1 } else { 0 };
        if let Some(e) = &r.error {
            let _ = writeln!(o, "| {} | {on} | failed: {} | | | | | | |", r.model, e.replace('|', "/"));
            continue;
        }
        let x = |k: &str| r.extra.get(k).copied().unwrap_or(f64::NAN);
        let _ = writeln!(
            o,
            "| {} | {on} | {:.0} | {:.1}% ({} of {}) | {} / {} | {:.0} | {:.2}x | {:.0} | {:.0} |",
            r.model,
            x("syn_rate"),
            100.0 * r.value,
            r.ok,
            r.ok + r.errors,
            r.p50_us,
            r.p99_us,
            x("no_flood_p99_us"),
            x("p99_vs_no_flood"),
            x("synack_retrans"),
            x("syncookies_sent")
        );
    }
    o
}

/// The goals for stealing with cookies on (reported, not asserted).
pub fn goals(all: &[Row]) -> Vec<crate::report::Goal> {
    let on = rows(all).into_iter().find(|r| r.model == Model::Stealing.name() && cookies(r) && r.error.is_none());
    let Some(r) = on else { return Vec::new() };
    let ratio = r.extra["p99_vs_no_flood"];
    vec![
        crate::report::Goal::new(
            "synflood: >= 99% of legitimate connects succeed under stealing with SYN cookies on".into(),
            format!("{:.1}% ({} of {}) at {:.0} SYN/s", 100.0 * r.value, r.ok, r.ok + r.errors, r.extra["syn_rate"]),
            r.value >= 0.99,
        ),
        crate::report::Goal::new(
            "synflood: connect p99 under stealing with SYN cookies at most 3x its p99 without the flood".into(),
            format!("{ratio:.2}x ({} us vs {:.0} us)", r.p99_us, r.extra["no_flood_p99_us"]),
            ratio <= 3.0,
        ),
    ]
}

/// `synflood.svg`: the share of legitimate connects that succeeded, per model, cookies
/// on and off.
pub fn chart(dir: &Path, all: &[Row]) -> io::Result<()> {
    let rows = rows(all);
    if rows.is_empty() {
        return Ok(());
    }
    let mut models: Vec<&str> = rows.iter().map(|r| r.model.as_str()).collect();
    models.dedup();
    let series: Vec<(String, Vec<Bar>)> = [(true, "syncookies on"), (false, "syncookies off")]
        .into_iter()
        .map(|(on, name)| {
            let bars = models.iter().map(|m| {
                let v = rows.iter().find(|r| r.model == *m && cookies(r) == on).map_or(0.0, |r| r.value);
                let v = if v.is_nan() { 0.0 } else { v };
                Bar::new(v, v, v)
            });
            (name.to_string(), bars.collect())
        })
        .collect();
    let cats: Vec<String> = models.iter().map(|m| m.to_string()).collect();
    let title = "SYN flood: share of legitimate connects answered within the deadline";
    std::fs::write(dir.join("synflood.svg"), svg::grouped_bars(title, "connected (1 = all)", &cats, &series, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_syn_is_well_formed() {
        let dst = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080);
        let mut rng = Rng(1);
        for _ in 0..100 {
            let p = syn(&mut rng, dst);
            let src = u32::from_be_bytes([p[12], p[13], p[14], p[15]]);
            assert_eq!(src & !FORGED_MASK, FORGED_NET, "the source lies in 127.128.0.0/9");
            assert_eq!(u16::from_be_bytes([p[22], p[23]]), 8080);
            assert_eq!(p[33], 0x02, "SYN only");
            // A segment with its checksum in place sums to zero.
            assert_eq!(tcp_checksum(&p[12..16], &p[16..20], &p[20..]), 0);
        }
    }

    #[test]
    fn quantiles_of_connect_times() {
        let l = Legit { us: (1..=100).collect(), connected: 100 };
        assert_eq!((l.quantile_us(0.5), l.quantile_us(0.99)), (50, 99));
        assert_eq!(Legit::default().quantile_us(0.99), 0);
    }
}
