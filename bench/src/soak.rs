//! `corral-bench soak`: a long run with injected faults that checks every reply.
//!
//! Each request carries an id that its reply must echo (`x-id`). Clients pipeline a
//! few requests per connection and, now and then, inject a fault: a reset in the middle
//! of a request, a half-closed socket, a slow reader, a handler that panics, a handler
//! that never answers (the engine answers at `reply_timeout`). At the end the server is
//! shut down gracefully while the load is still running.
//!
//! Books: *sent* requests are whole requests written; *answered* got their own 2xx
//! reply; *refused* got an explicit error (500 for a panic, 504 past the reply deadline,
//! 503 when shed); *misrouted* replies carried another request's id; *duplicated* ids
//! came back twice. A request that got no reply is *lost* if the server framed it (the
//! server's own count says how many it framed), and *unread at shutdown* if the server
//! closed the connection without reading it (a client may retry those safely).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use serde::Serialize;

use crate::server::{Server, ServerArgs};
use crate::{http, wire};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Echo,
    Heavy,
    Panic,
    Never,
    SlowRead,
    HalfClose,
}

const KINDS: [Kind; 6] = [Kind::Echo, Kind::Heavy, Kind::Panic, Kind::Never, Kind::SlowRead, Kind::HalfClose];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Echo => "echo (light)",
            Kind::Heavy => "echo on the CPU pool",
            Kind::Panic => "handler panics",
            Kind::Never => "handler never answers",
            Kind::SlowRead => "slow reader (256 KiB reply)",
            Kind::HalfClose => "half-closed after sending",
        }
    }

    fn path(self, id: u64) -> String {
        match self {
            Kind::Echo | Kind::HalfClose => format!("/echo?id={id}"),
            Kind::Heavy => format!("/echo?id={id}&us=200"),
            Kind::Panic => format!("/panic?id={id}"),
            Kind::Never => format!("/never?id={id}"),
            Kind::SlowRead => format!("/echo?id={id}&size=262144"),
        }
    }

    /// The explicit error status this kind is answered with, if it is not a 2xx.
    fn refusal(self) -> Option<u16> {
        match self {
            Kind::Panic => Some(500),
            Kind::Never => Some(504),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct KindBook {
    pub kind: String,
    pub sent: u64,
    pub answered: u64,
    pub refused: u64,
    pub unanswered: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SoakReport {
    /// The server's connection I/O backend.
    pub backend: String,
    pub connections: usize,
    pub depth: usize,
    pub seconds: f64,
    pub sent: u64,
    pub answered: u64,
    pub refused: u64,
    pub unanswered: u64,
    pub misrouted: u64,
    pub duplicated: u64,
    pub unexpected_status: u64,
    pub resets_injected: u64,
    pub server_framed: u64,
    pub server_aborted: u64,
    pub server_shutdown_clean: bool,
    /// Framed by the server but never answered to the client.
    pub lost: u64,
    /// Sent but closed unread by the server at shutdown (safe to retry).
    pub unread_at_shutdown: u64,
    pub per_kind: Vec<KindBook>,
}

/// A small deterministic generator (xorshift64*), so a soak can be repeated.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// True with probability `per_million` / 1,000,000.
    fn chance(&mut self, per_million: u64) -> bool {
        self.next() % 1_000_000 < per_million
    }
}

#[derive(PartialEq, Eq)]
enum Mode {
    Normal,
    /// Reads at most `SLOW_CHUNK` per tick until the big reply is in.
    Slow,
    /// Sent one request and shut down its write side: expects the reply, then EOF.
    HalfClosed,
}

const SLOW_CHUNK: usize = 16 * 1024;
const TICK: Duration = Duration::from_millis(5);

struct Conn {
    stream: Option<TcpStream>,
    connected: bool,
    mode: Mode,
    in_flight: VecDeque<(u64, Kind)>,
    out: Vec<u8>,
    wpos: usize,
    rbuf: Vec<u8>,
}

struct Soak {
    addr: SocketAddr,
    poll: Poll,
    conns: Vec<Conn>,
    rng: Rng,
    depth: usize,
    target: u64,
    next_id: u64,
    seen: Vec<bool>,
    books: Vec<KindBook>,
    r: SoakReport,
    draining: bool,
}

fn book_index(k: Kind) -> usize {
    KINDS.iter().position(|x| *x == k).expect("listed")
}

impl Soak {
    fn connect(&mut self, i: usize) {
        if self.draining {
            return;
        }
        // A failed connect is retried at the next tick.
        if let Ok(mut s) = TcpStream::connect(self.addr) {
            let _ = s.set_nodelay(true);
            if self.poll.registry().register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE).is_ok() {
                let c = &mut self.conns[i];
                c.stream = Some(s);
                c.connected = false;
                c.mode = Mode::Normal;
            }
        }
    }

    fn queue(&mut self, i: usize, kind: Kind) {
        let id = self.next_id;
        self.next_id += 1;
        if id as usize >= self.seen.len() {
            self.seen.resize(id as usize * 2, false);
        }
        let req = http::get(&kind.path(id), false);
        let c = &mut self.conns[i];
        c.out.extend_from_slice(&req);
        c.in_flight.push_back((id, kind));
        self.r.sent += 1;
        self.books[book_index(kind)].sent += 1;
    }

    /// Tops a connection up with new requests, or injects a connection-level fault.
    fn refill(&mut self, i: usize) {
        if self.conns[i].stream.is_none() || !self.conns[i].connected || self.conns[i].mode != Mode::Normal {
            return;
        }
        let want_more = self.r.sent < self.target || self.draining;
        if !want_more {
            return;
        }
        if self.conns[i].in_flight.is_empty() && !self.draining {
            if self.rng.chance(1_000) {
                return self.inject_reset(i);
            }
            if self.rng.chance(1_000) {
                self.queue(i, Kind::HalfClose);
                self.flush(i);
                if let Some(s) = self.conns[i].stream.as_ref() {
                    let _ = s.shutdown(Shutdown::Write);
                }
                self.conns[i].mode = Mode::HalfClosed;
                return;
            }
            if self.rng.chance(500) {
                self.queue(i, Kind::SlowRead);
                self.conns[i].mode = Mode::Slow;
                self.flush(i);
                return;
            }
        }
        while self.conns[i].in_flight.len() < self.depth {
            let kind = if self.rng.chance(200) {
                Kind::Never
            } else if self.rng.chance(500) {
                Kind::Panic
            } else if self.rng.chance(50_000) {
                Kind::Heavy
            } else {
                Kind::Echo
            };
            self.queue(i, kind);
        }
        self.flush(i);
    }

    /// Half a request, then a reset (SO_LINGER 0): the server must forget it.
    fn inject_reset(&mut self, i: usize) {
        if let Some(s) = self.conns[i].stream.take() {
            let _ = (&s).write(b"GET /echo?id=0 HTTP/1.1\r\nHo");
            let sock = socket2::SockRef::from(&s);
            let _ = sock.set_linger(Some(Duration::ZERO));
            drop(s);
        }
        self.r.resets_injected += 1;
        self.reset_state(i);
        self.connect(i);
    }

    fn reset_state(&mut self, i: usize) {
        let c = &mut self.conns[i];
        c.connected = false;
        c.mode = Mode::Normal;
        c.out.clear();
        c.wpos = 0;
        c.rbuf.clear();
        for (_, kind) in c.in_flight.drain(..) {
            self.books[book_index(kind)].unanswered += 1;
            self.r.unanswered += 1;
        }
    }

    fn flush(&mut self, i: usize) {
        let c = &mut self.conns[i];
        let Some(s) = c.stream.as_mut() else { return };
        if c.connected && wire::write_out(s, &mut c.out, &mut c.wpos).is_err() {
            self.lose(i);
        }
    }

    /// The connection ended: its unanswered requests are booked, and it reconnects.
    fn lose(&mut self, i: usize) {
        if let Some(mut s) = self.conns[i].stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        self.reset_state(i);
        self.connect(i);
    }

    fn ready(&mut self, i: usize, tick: bool) {
        let Some(s) = self.conns[i].stream.as_ref() else { return };
        if !self.conns[i].connected {
            match wire::connected(s) {
                Ok(true) => self.conns[i].connected = true,
                Ok(false) => return,
                Err(_) => return self.lose(i),
            }
            self.refill(i);
        }
        self.flush(i);
        // A slow reader reads a chunk per tick and nothing on events.
        let mut budget = match (self.conns[i].mode == Mode::Slow, tick) {
            (true, false) => 0,
            (true, true) => SLOW_CHUNK,
            (false, _) => usize::MAX,
        };
        while budget > 0 {
            let c = &mut self.conns[i];
            let Some(s) = c.stream.as_mut() else { return };
            match wire::read_into(s, &mut c.rbuf, budget.min(64 * 1024)) {
                Ok(0) => {
                    self.responses(i);
                    return self.lose(i);
                }
                Ok(n) => {
                    if budget != usize::MAX {
                        budget -= n;
                    }
                    if !self.responses(i) {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.responses(i);
                    return self.lose(i);
                }
            }
        }
    }

    /// Checks every whole reply in the buffer against the request it answers. False if
    /// the connection was dropped.
    fn responses(&mut self, i: usize) -> bool {
        let mut used = 0;
        loop {
            let head = match http::parse(&self.conns[i].rbuf[used..]) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(_) => {
                    self.r.unexpected_status += 1;
                    self.lose(i);
                    return false;
                }
            };
            used += head.len;
            let Some((id, kind)) = self.conns[i].in_flight.pop_front() else {
                self.r.unexpected_status += 1;
                continue;
            };
            let book = &mut self.books[book_index(kind)];
            match (head.status, kind.refusal()) {
                (200, None) => match head.id {
                    Some(got) if got == id => {
                        if std::mem::replace(&mut self.seen[id as usize], true) {
                            self.r.duplicated += 1;
                        }
                        book.answered += 1;
                        self.r.answered += 1;
                    }
                    Some(got) if (got as usize) < self.seen.len() && self.seen[got as usize] => {
                        self.r.duplicated += 1;
                        book.unanswered += 1;
                        self.r.unanswered += 1;
                    }
                    _ => {
                        self.r.misrouted += 1;
                        book.unanswered += 1;
                        self.r.unanswered += 1;
                    }
                },
                (status, expected) if Some(status) == expected || status == 503 => {
                    book.refused += 1;
                    self.r.refused += 1;
                }
                _ => {
                    self.r.unexpected_status += 1;
                    book.unanswered += 1;
                    self.r.unanswered += 1;
                }
            }
            if kind == Kind::SlowRead && self.conns[i].mode == Mode::Slow {
                self.conns[i].mode = Mode::Normal;
            }
        }
        self.conns[i].rbuf.drain(..used);
        if self.conns[i].mode != Mode::HalfClosed {
            self.refill(i);
        }
        true
    }
}

/// `corral-bench soak`: a long run with injected faults.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Requests to send in all.
    #[arg(long, default_value_t = 1_000_000)]
    requests: u64,
    /// Client connections.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    connections: u64,
    /// Requests in flight per connection (1 to 64).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    depth: u64,
    /// The server's connection I/O: epoll (the default), io_uring, or auto.
    #[arg(long, value_parser = ["epoll", "io_uring", "auto"])]
    backend: Option<String>,
    /// Where the report goes.
    #[arg(long, default_value = "target/corral-report/soak")]
    out: PathBuf,
}

pub fn main(a: Args) -> Result<(), String> {
    let (requests, connections, depth, out) = (a.requests, a.connections as usize, a.depth as usize, a.out);
    if let Some(b) = &a.backend {
        crate::server::use_backend(b);
    }
    crate::server::raise_nofile();
    let report = run(requests, connections, depth).map_err(|e| format!("soak: {e}"))?;
    let md = markdown(&report);
    print!("{md}");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    std::fs::write(out.join("soak.md"), &md).map_err(|e| e.to_string())?;
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(out.join("soak.json"), json).map_err(|e| e.to_string())?;
    eprintln!("soak report: {}/soak.md, soak.json", out.display());
    if report.lost + report.misrouted + report.duplicated > 0 {
        return Err("requests were lost, misrouted or duplicated (see the report)".into());
    }
    Ok(())
}

fn run(target: u64, connections: usize, depth: usize) -> io::Result<SoakReport> {
    let mut args = ServerArgs::new(corral::Model::Stealing, crate::cores());
    args.reply_timeout_ms = 1000;
    let server = Server::start(&args)?;
    let mut soak = Soak {
        addr: server.addr,
        poll: Poll::new()?,
        conns: (0..connections)
            .map(|_| Conn {
                stream: None,
                connected: false,
                mode: Mode::Normal,
                in_flight: VecDeque::new(),
                out: Vec::new(),
                wpos: 0,
                rbuf: Vec::new(),
            })
            .collect(),
        rng: Rng(0x9e37_79b9_7f4a_7c15),
        depth,
        target,
        next_id: 1,
        seen: vec![false; (target + target / 4 + 1_000_000) as usize],
        books: KINDS.iter().map(|k| KindBook { kind: k.name().into(), ..KindBook::default() }).collect(),
        r: SoakReport {
            backend: corral::Backend::from_env().name().to_string(),
            connections,
            depth,
            ..SoakReport::default()
        },
        draining: false,
    };
    let start = Instant::now();
    for i in 0..connections {
        soak.connect(i);
    }
    let mut events = Events::with_capacity(4096);
    let mut last_tick = Instant::now();
    let mut stopping: Option<std::thread::JoinHandle<io::Result<crate::server::StopReport>>> = None;
    let mut server = Some(server);
    loop {
        soak.poll.poll(&mut events, Some(TICK))?;
        for ev in events.iter() {
            soak.ready(ev.token().0, false);
        }
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            for i in 0..connections {
                if soak.conns[i].stream.is_none() {
                    soak.connect(i);
                } else if soak.conns[i].mode == Mode::Slow {
                    soak.ready(i, true);
                }
            }
        }
        // The target reached: shut the server down gracefully while the load goes on.
        if stopping.is_none() && soak.r.sent >= target {
            soak.draining = true;
            let s = server.take().expect("stopped once");
            stopping = Some(std::thread::spawn(move || s.stop()));
        }
        if soak.draining && soak.conns.iter().all(|c| c.stream.is_none()) {
            break;
        }
        if soak.draining && overdue(start, target) {
            return Err(io::Error::other("connections still open long after the server's shutdown deadline"));
        }
    }
    let stop = stopping.expect("draining").join().expect("stop thread panicked")?;
    let mut r = soak.r;
    r.seconds = start.elapsed().as_secs_f64();
    r.per_kind = soak.books;
    r.server_framed = stop.requests_framed;
    r.server_aborted = stop.requests_aborted;
    r.server_shutdown_clean = stop.clean;
    let received = r.answered + r.refused + r.misrouted + r.duplicated;
    r.lost = stop.requests_framed.saturating_sub(received);
    r.unread_at_shutdown = r.sent.saturating_sub(stop.requests_framed);
    Ok(r)
}

/// A generous bound for the whole soak (the shutdown deadline is 10 s).
fn overdue(start: Instant, target: u64) -> bool {
    start.elapsed() > Duration::from_secs(120 + target / 5_000)
}

fn markdown(r: &SoakReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# corral soak\n\n{} connections, {} requests in flight each, {:.1} s, then a graceful shutdown under load \
         (backend {}).\n",
        r.connections, r.depth, r.seconds, r.backend
    );
    let _ = writeln!(o, "| requests | count |\n| --- | ---: |");
    for (k, v) in [
        ("sent", r.sent),
        ("answered (own id echoed)", r.answered),
        ("refused with an explicit error (500 panic, 504 deadline, 503 shed)", r.refused),
        ("unread at shutdown (closed unread: safe to retry)", r.unread_at_shutdown),
        ("**lost** (framed by the server, never answered)", r.lost),
        ("**misrouted** (another request's id)", r.misrouted),
        ("**duplicated**", r.duplicated),
        ("unexpected status", r.unexpected_status),
        ("resets injected mid-request (not requests)", r.resets_injected),
        ("server: framed", r.server_framed),
        ("server: aborted at shutdown", r.server_aborted),
    ] {
        let _ = writeln!(o, "| {k} | {v} |");
    }
    let _ = writeln!(o, "\nServer shutdown clean: {}.\n", r.server_shutdown_clean);
    let _ =
        writeln!(o, "| fault / kind | sent | answered | refused | unanswered |\n| --- | ---: | ---: | ---: | ---: |");
    for b in &r.per_kind {
        let _ = writeln!(o, "| {} | {} | {} | {} | {} |", b.kind, b.sent, b.answered, b.refused, b.unanswered);
    }
    o
}
