//! The `backlog` scenario: a burst of simultaneous connects reaches a server whose I/O
//! workers are busy, once per listen backlog, to show where the kernel's accept queue
//! overflows and the clients fall back on their 1 s SYN retransmission.
//!
//! It does not fit the model x scenario grid, so it runs against the stealing model
//! only and gives one row per backlog (model `stealing`, the backlog in
//! `extra.backlog`), in interleaved rounds like the grid (each round runs every backlog,
//! starting one later), combined by [`crate::rounds::combine`]. The report keeps these
//! rows out of the grid's table, `best` sets and goals; they get their own section,
//! chart (`backlog.svg`) and [`Verdict`].
//!
//! One round for one backlog:
//! 1. a fresh `corral-bench serve --model stealing --backlog B`;
//! 2. the stall: one connection per I/O worker asks `/spin` (CPU burnt inline on the
//!    worker; the stealing model's acceptors live in its workers, so nothing accepts
//!    meanwhile), and the lab waits until the server has read each of those requests
//!    (their receive queues in `/proc/net/tcp` are empty);
//! 3. the burst: `burst` non-blocking connects issued back to back from one thread;
//!    each connection sends `GET /` once connected;
//! 4. every connection gets its reply, or the deadline passes.
//!
//! Invariants: a connection not connected by the deadline counts as the deadline (a
//! failure is never a fast connect); the kernel counters (`TCPSynRetrans` here,
//! `ListenOverflows`/`ListenDrops` from the server's stats) are per network namespace,
//! so other traffic on this host adds to them, never takes away.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use corral::Model;
use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};
use serde::Serialize;

use crate::scenario::{Row, Scenario, Settings};
use crate::server::{Server, ServerArgs};
use crate::svg::{self, Bar};

/// A connect that took this long waited for a retransmitted SYN (the first one is
/// resent after 1 s, `TCP_TIMEOUT_INIT`); a connect with no loss takes far less.
const RETRANSMITTED: Duration = Duration::from_millis(900);

/// The scenario's parameters (stated in the report's settings).
#[derive(Clone, Debug, Serialize)]
pub struct Params {
    /// Connects issued at once.
    pub burst: usize,
    /// CPU each I/O worker burns on its stall request.
    pub stall_ms: u64,
    /// How long a connection has to be answered, from its connect.
    pub deadline_ms: u64,
    /// Rounds per backlog: the lab's `--rounds`, at most this many.
    pub max_rounds: usize,
}

impl Params {
    pub fn defaults() -> Params {
        Params { burst: 2000, stall_ms: 200, deadline_ms: 1500, max_rounds: 2 }
    }
}

/// The backlogs measured: 16, 128, corral's default and this host's `somaxconn` (the
/// largest that takes effect), in order, each once.
pub fn backlogs() -> Vec<u32> {
    let mut b = vec![16, 128, default_backlog(), corral::os::somaxconn().unwrap_or(4096)];
    b.sort_unstable();
    b.dedup();
    b
}

/// corral's default backlog, read from its configuration.
fn default_backlog() -> u32 {
    let addr = "127.0.0.1:0".parse().expect("valid");
    corral::Config::builder().addr(addr).build().map(|c| c.backlog()).unwrap_or(1024)
}

/// Runs every backlog for the rounds the settings allow and returns one combined row
/// per backlog (a backlog that failed gets a row with its error).
pub fn run(st: &Settings) -> Vec<Row> {
    let list = backlogs();
    let rounds = st.rounds.clamp(1, st.backlog.max_rounds);
    let mut samples: Vec<Vec<Row>> = vec![Vec::new(); list.len()];
    for r in 0..rounds {
        for i in 0..list.len() {
            let j = (i + r) % list.len();
            if samples[j].last().is_some_and(|x| x.error.is_some()) {
                continue;
            }
            samples[j].push(one(list[j], st).unwrap_or_else(|e| failed(list[j], e)));
        }
    }
    samples.into_iter().map(combine).collect()
}

fn failed(backlog: u32, e: io::Error) -> Row {
    let mut row = Row::new(Scenario::Backlog, Model::Stealing.name(), f64::NAN);
    row.extra.insert("backlog".into(), backlog as f64);
    row.error = Some(e.to_string());
    row
}

/// The rounds' row, with `rounds_held` counting the rounds that held the burst.
fn combine(samples: Vec<Row>) -> Row {
    let held = samples.iter().filter(|r| r.extra.get("held") == Some(&1.0)).count();
    let mut row = crate::rounds::combine(samples);
    row.extra.remove("held");
    row.extra.insert("rounds_held".into(), held as f64);
    row
}

/// One round against a fresh server with `backlog`.
fn one(backlog: u32, st: &Settings) -> io::Result<Row> {
    let p = &st.backlog;
    let mut args = ServerArgs::new(Model::Stealing, st.workers);
    args.backlog = backlog;
    let server = Server::start(&args)?;
    let retrans_before = tcp_ext("TCPSynRetrans");
    let stall = Stall::start(server.addr, st.workers, p.stall_ms)?;
    let out = burst(server.addr, p.burst, Duration::from_millis(p.deadline_ms), stall)?;
    let syn_retrans = tcp_ext("TCPSynRetrans").zip(retrans_before).map(|(a, b)| a.saturating_sub(b));
    let stats = server.prometheus()?;
    server.stop()?;
    Ok(out.row(backlog, p.burst, syn_retrans, &stats))
}

/// The requests that keep every I/O worker busy, and when they were sent.
struct Stall {
    conns: Vec<TcpStream>,
    sent: Instant,
    /// How many the server had read (so a worker was spinning on each) before the burst.
    read: usize,
}

impl Stall {
    fn start(addr: SocketAddr, workers: usize, ms: u64) -> io::Result<Stall> {
        let req = format!("GET /spin?us={} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n", ms * 1000);
        let sent = Instant::now();
        let mut conns = Vec::new();
        for _ in 0..workers {
            let mut s = TcpStream::connect(addr)?;
            s.write_all(req.as_bytes())?;
            conns.push(s);
        }
        let ports: Vec<u16> = conns.iter().map(|c| c.local_addr().map(|a| a.port())).collect::<io::Result<_>>()?;
        // A worker reads a request and runs its light handler inline before it reads
        // anything else: an empty receive queue on the server's side means a worker is
        // spinning on it. Polled with a bound: a worker that never picks its request up
        // leaves `read` short, and the row says so.
        let until = Instant::now() + Duration::from_millis(ms.max(1000));
        let mut read = 0;
        while Instant::now() < until {
            read = ports.iter().filter(|&&p| unread_bytes(addr.port(), p) == Some(0)).count();
            if read == ports.len() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(Stall { conns, sent, read })
    }
}

/// The bytes waiting unread on the server's side of the loopback connection from
/// `client_port` to `server_port` (`/proc/net/tcp`); `None` when it is not listed.
fn unread_bytes(server_port: u16, client_port: u16) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let port = |field: &str| field.rsplit_once(':').and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (local, remote, queues) = (f.get(1)?, f.get(2)?, f.get(4)?);
        if port(local)? != server_port || port(remote)? != client_port {
            return None;
        }
        queues.split_once(':').and_then(|(_, rx)| u64::from_str_radix(rx, 16).ok())
    })
}

/// One `TcpExt` counter from `/proc/net/netstat`, by name.
fn tcp_ext(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let i = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// One burst connection.
struct Conn {
    stream: MioStream,
    started: Instant,
    connected: Option<Duration>,
    reply: Vec<u8>,
    answered: bool,
    done: bool,
}

/// What one burst measured.
struct Burst {
    /// Each connection's connect time (the deadline where it never connected).
    connect: Vec<Duration>,
    answered: usize,
    /// From the first connect to the last reply.
    span: Duration,
    /// Time to issue every connect.
    issue: Duration,
    /// From sending the stall requests to their first reply (`None`: none by the end).
    stall: Option<Duration>,
    stalled_workers: usize,
}

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n";

/// Issues `n` connects at once, then serves their events until each is answered or
/// `deadline` passes.
fn burst(addr: SocketAddr, n: usize, deadline: Duration, stall: Stall) -> io::Result<Burst> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut stall_conns = Vec::new();
    for (i, s) in stall.conns.into_iter().enumerate() {
        s.set_nonblocking(true)?;
        let mut m = MioStream::from_std(s);
        poll.registry().register(&mut m, Token(usize::MAX - i), Interest::READABLE)?;
        stall_conns.push(m);
    }
    let mut stall_end = None;
    let mut conns: Vec<Conn> = Vec::with_capacity(n);
    let start = Instant::now();
    let mut last = start;
    for i in 0..n {
        let started = Instant::now();
        let mut stream = MioStream::connect(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("connect {i} of the burst failed: {e}")))?;
        poll.registry().register(&mut stream, Token(i), Interest::READABLE | Interest::WRITABLE)?;
        conns.push(Conn { stream, started, connected: None, reply: Vec::new(), answered: false, done: false });
        // Connections the kernel has queued are connected now: look every so often, so
        // their connect time is not the whole burst's.
        if i % 32 == 31 {
            poll.poll(&mut events, Some(Duration::ZERO))?;
            on_events(&events, &mut conns, &mut stall_conns, &mut stall_end, &mut last);
        }
    }
    let issue = start.elapsed();
    let end = start + deadline;
    while conns.iter().any(|c| !c.done) {
        let now = Instant::now();
        if now >= end {
            break;
        }
        poll.poll(&mut events, Some(end - now))?;
        on_events(&events, &mut conns, &mut stall_conns, &mut stall_end, &mut last);
    }
    Ok(Burst {
        connect: conns.iter().map(|c| c.connected.unwrap_or(deadline)).collect(),
        answered: conns.iter().filter(|c| c.answered).count(),
        span: last - start,
        issue,
        stall: stall_end.map(|t: Instant| t - stall.sent),
        stalled_workers: stall.read,
    })
}

fn on_events(
    events: &Events,
    conns: &mut [Conn],
    stall_conns: &mut [MioStream],
    stall_end: &mut Option<Instant>,
    last: &mut Instant,
) {
    for ev in events {
        // Burst connections count up from 0, stall connections down from usize::MAX.
        let Token(i) = ev.token();
        match conns.get_mut(i) {
            Some(c) => {
                if c.step() {
                    *last = Instant::now();
                }
            }
            None => {
                // A stall request's reply: the worker that ran it is free again.
                if let Some(s) = stall_conns.get_mut(usize::MAX - i) {
                    let mut buf = [0u8; 512];
                    if s.read(&mut buf).is_ok_and(|k| k > 0) && stall_end.is_none() {
                        *stall_end = Some(Instant::now());
                    }
                }
            }
        }
    }
}

impl Conn {
    /// Moves the connection on after an event; true when it has just been answered.
    fn step(&mut self) -> bool {
        if self.done {
            return false;
        }
        if self.connected.is_none() {
            match self.stream.take_error() {
                Ok(None) if self.stream.peer_addr().is_ok() => {
                    self.connected = Some(self.started.elapsed());
                    if self.stream.write_all(REQUEST).is_err() {
                        self.done = true;
                        return false;
                    }
                }
                Ok(None) => return false, // not connected yet
                _ => {
                    self.done = true;
                    return false;
                }
            }
        }
        let mut buf = [0u8; 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.done = true;
                    self.answered = self.reply.starts_with(b"HTTP/1.1 200");
                    return self.answered;
                }
                Ok(k) => self.reply.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.done = true;
                    return false;
                }
            }
        }
    }
}

/// The value of every sample of `metric` in Prometheus text (one per listener for a
/// listener-scoped metric).
fn samples(prometheus: &str, metric: &str) -> Vec<f64> {
    prometheus
        .lines()
        .filter(|l| l.strip_prefix(metric).is_some_and(|r| r.starts_with(' ') || r.starts_with('{')))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()))
        .collect()
}

impl Burst {
    fn row(self, backlog: u32, n: usize, syn_retrans: Option<u64>, stats: &str) -> Row {
        let mut us: Vec<u64> = self.connect.iter().map(|d| d.as_micros() as u64).collect();
        us.sort_unstable();
        let q = |f: f64| us.get(((us.len() as f64 * f).ceil() as usize).saturating_sub(1)).copied().unwrap_or(0);
        let slow = self.connect.iter().filter(|d| **d >= RETRANSMITTED).count();
        let queues = samples(stats, "corral_listen_queue_max");
        let total = |m: &str| samples(stats, m).first().copied().unwrap_or(f64::NAN);
        let mut row = Row::new(Scenario::Backlog, Model::Stealing.name(), q(0.99) as f64);
        row.p50_us = q(0.5);
        row.p99_us = q(0.99);
        row.p999_us = q(0.999);
        row.p50_range_us = [row.p50_us; 2];
        row.p99_range_us = [row.p99_us; 2];
        row.p999_range_us = [row.p999_us; 2];
        row.ok = self.answered as u64;
        row.errors = (n - self.answered) as u64;
        row.rate = self.answered as f64 / self.span.as_secs_f64().max(1e-6);
        let held = self.answered == n && slow == 0;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        for (k, v) in [
            ("backlog", backlog as f64),
            ("effective_backlog", queues.iter().copied().fold(f64::NAN, f64::min)),
            ("listeners", queues.len() as f64),
            ("burst", n as f64),
            ("success", self.answered as f64 / n.max(1) as f64),
            ("retransmitted_or_failed", slow as f64),
            ("syn_retrans", syn_retrans.map_or(f64::NAN, |v| v as f64)),
            ("listen_overflows", total("corral_kernel_listen_overflows_total")),
            ("listen_drops", total("corral_kernel_listen_drops_total")),
            ("issue_ms", ms(self.issue)),
            ("stall_ms", self.stall.map_or(f64::NAN, ms)),
            ("stalled_workers", self.stalled_workers as f64),
            ("held", if held { 1.0 } else { 0.0 }),
        ] {
            row.extra.insert(k.into(), v);
        }
        row
    }
}

/// The scenario's verdict: the smallest backlog that held the burst, and corral's default.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub burst: usize,
    pub deadline_ms: u64,
    pub somaxconn: Option<u32>,
    pub default_backlog: u32,
    /// Listening sockets of the stealing model (one reuseport shard per worker), each
    /// with its own queue.
    pub listeners: usize,
    /// The smallest backlog whose every round held the burst (every connection answered
    /// within the deadline, none after a retransmitted SYN).
    pub smallest_holding: Option<u32>,
    /// `None`: the default was not measured (or failed).
    pub default_holds: Option<bool>,
    pub summary: String,
}

fn extra(r: &Row, k: &str) -> f64 {
    r.extra.get(k).copied().unwrap_or(f64::NAN)
}

fn holds(r: &Row) -> bool {
    r.error.is_none() && extra(r, "rounds_held") == r.rounds as f64
}

/// The rows of the scenario, smallest backlog first.
fn rows(all: &[Row]) -> Vec<&Row> {
    let mut rows: Vec<&Row> = all.iter().filter(|r| r.scenario == Scenario::Backlog.name()).collect();
    rows.sort_by(|a, b| extra(a, "backlog").total_cmp(&extra(b, "backlog")));
    rows
}

/// The verdict over `all` rows (`None` when the scenario did not run).
pub fn verdict(all: &[Row], st: &Settings) -> Option<Verdict> {
    let rows = rows(all);
    if rows.is_empty() {
        return None;
    }
    let default_backlog = default_backlog();
    let somaxconn = corral::os::somaxconn();
    let smallest = rows.iter().find(|r| holds(r)).map(|r| extra(r, "backlog") as u32);
    let default_row = rows.iter().find(|r| extra(r, "backlog") as u32 == default_backlog);
    let default_holds = default_row.filter(|r| r.error.is_none()).map(|r| holds(r));
    let listeners = rows.iter().map(|r| extra(r, "listeners")).find(|v| v.is_finite() && *v > 0.0).unwrap_or(1.0);
    let effective = default_row.map_or(f64::NAN, |r| extra(r, "effective_backlog"));
    let p = &st.backlog;
    let held = match smallest {
        Some(b) => format!("the smallest backlog that held it is {b}"),
        None => "no backlog measured held it".into(),
    };
    let default = match default_holds {
        Some(true) => format!("corral's default ({default_backlog}) holds it"),
        Some(false) => format!("corral's default ({default_backlog}) does not"),
        None => format!("corral's default ({default_backlog}) was not measured"),
    };
    let clamp = match somaxconn {
        Some(m) => format!("net.core.somaxconn is {m} here, so a backlog above {m} takes effect as {m}"),
        None => "net.core.somaxconn could not be read".into(),
    };
    let summary = format!(
        "a burst of {} connects while every I/O worker is busy for {} ms: {held} (every connection answered \
         within {} ms, none after a retransmitted SYN); {default} ({listeners:.0} listening sockets, one \
         reuseport shard per worker, each queueing {effective:.0}: {:.0} places for {} connects, split between \
         them by the kernel's hash); {clamp}",
        p.burst,
        p.stall_ms,
        p.deadline_ms,
        listeners * effective,
        p.burst
    );
    Some(Verdict {
        burst: p.burst,
        deadline_ms: p.deadline_ms,
        somaxconn,
        default_backlog,
        listeners: listeners as usize,
        smallest_holding: smallest,
        default_holds,
        summary,
    })
}

fn label(backlog: u32, v: &Verdict) -> String {
    match backlog {
        b if b == v.default_backlog => format!("{b} (default)"),
        b if Some(b) == v.somaxconn => format!("{b} (somaxconn)"),
        b => b.to_string(),
    }
}

/// The report's section: two sentences, the verdict and a table.
pub fn markdown(all: &[Row], v: &Verdict) -> String {
    let ms = |us: u64| format!("{:.1}", us as f64 / 1e3);
    let mut o = String::from("\n## Listen backlog\n\n");
    o.push_str(
        "When more connections arrive than a listening socket's accept queue holds (the backlog, clamped to \
         `somaxconn`) while the server is not accepting, Linux drops the extra SYNs (`ListenOverflows`) and \
         each of those clients waits for its SYN retransmission 1 s later (then 3 s): that is the cliff in \
         connect p99 below, and what \"set an appropriate backlog to avoid SYN queue overflow\" guards against. \
         So the backlog must hold the largest burst that can arrive while the server is busy, counted per \
         listening socket.\n\n",
    );
    o.push_str(&format!("Verdict: {}.\n\n", v.summary));
    o.push_str(
        "| backlog | effective x listeners | connect p50 ms | connect p99 ms (rounds) | answered | \
         retransmitted or failed | SYN retrans | ListenOverflows | rounds held |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in rows(all) {
        let b = extra(r, "backlog") as u32;
        if let Some(e) = &r.error {
            o.push_str(&format!("| {} | failed: {} | | | | | | | |\n", label(b, v), e.replace('|', "/")));
            continue;
        }
        o.push_str(&format!(
            "| {} | {:.0} x {:.0} | {} | {} ({}-{}) | {:.1}% | {:.0} | {:.0} | {:.0} | {:.0} of {} |\n",
            label(b, v),
            extra(r, "effective_backlog"),
            extra(r, "listeners"),
            ms(r.p50_us),
            ms(r.p99_us),
            ms(r.p99_range_us[0]),
            ms(r.p99_range_us[1]),
            100.0 * extra(r, "success"),
            extra(r, "retransmitted_or_failed"),
            extra(r, "syn_retrans"),
            extra(r, "listen_overflows"),
            extra(r, "rounds_held"),
            r.rounds
        ));
    }
    o.push_str(
        "\nMedians over rounds; a connection not connected by the deadline counts as the deadline. SYN \
         retransmissions (`TCPSynRetrans`, SYN and SYN-ACK) and `ListenOverflows` are the kernel's counters \
         for this network namespace, so other traffic on the host adds to them. Chart: `backlog.svg`.\n",
    );
    o
}

/// `backlog.svg`: connect p50 and p99 per backlog (log scale), error bars over rounds.
pub fn chart(all: &[Row], v: &Verdict) -> String {
    let rows: Vec<&Row> = rows(all).into_iter().filter(|r| r.error.is_none()).collect();
    let cats: Vec<String> = rows.iter().map(|r| label(extra(r, "backlog") as u32, v)).collect();
    let bar = |us: u64, [lo, hi]: [u64; 2]| Bar::new(us as f64, lo as f64, hi as f64);
    let series = vec![
        ("connect p50".to_string(), rows.iter().map(|r| bar(r.p50_us, r.p50_range_us)).collect()),
        ("connect p99".to_string(), rows.iter().map(|r| bar(r.p99_us, r.p99_range_us)).collect()),
    ];
    let title = format!("backlog: {} connects at once while the workers are busy (us, log scale)", v.burst);
    svg::grouped_bars(&title, "microseconds", &cats, &series, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_queues_parse() {
        let prom = "corral_listen_queue_max{listener=\"0\",addr=\"a\"} 16\n\
                    corral_listen_queue_max{listener=\"1\",addr=\"a\"} 16\n\
                    corral_kernel_listen_overflows_total 42\n\
                    corral_kernel_listen_overflows_totalx 1\n";
        assert_eq!(samples(prom, "corral_listen_queue_max"), vec![16.0, 16.0]);
        assert_eq!(samples(prom, "corral_kernel_listen_overflows_total"), vec![42.0]);
        assert!(tcp_ext("TCPSynRetrans").is_some(), "this host's /proc/net/netstat lists TCPSynRetrans");
        let b = backlogs();
        assert!(b.contains(&16) && b.contains(&default_backlog()) && b.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn the_verdict_names_the_smallest_backlog_that_held_every_round() {
        let row = |backlog: f64, held: f64| {
            let mut r = Row::new(Scenario::Backlog, "stealing", 1.0);
            r.rounds = 2;
            r.extra.insert("backlog".into(), backlog);
            r.extra.insert("rounds_held".into(), held);
            r.extra.insert("listeners".into(), 2.0);
            r
        };
        let d = default_backlog() as f64;
        let st = Settings::defaults();
        let v = verdict(&[row(d, 1.0), row(16.0, 0.0), row(4.0 * d, 2.0)], &st).unwrap();
        assert_eq!((v.smallest_holding, v.default_holds, v.listeners), (Some(4 * d as u32), Some(false), 2));
        assert!(v.summary.contains("does not"), "{}", v.summary);
        assert!(verdict(&[], &st).is_none());
    }
}
