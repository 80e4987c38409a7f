//! The client side of `greedy judge`: HTTP/1.1 clients on mio (edge-triggered), each
//! from a source address of its own, on a few threads.
//!
//! It is not [`crate::load`] because every client here must bind its sockets to its own
//! loopback address before connecting (the engine's per-client fairness is keyed on the
//! peer's IP, and loopback answers for all of 127/8), and because the slow reader writes
//! without ever reading, which the lab's clients cannot do. Framing and socket steps are
//! the lab's ([`crate::http`], [`crate::wire`]).
//!
//! A reading connection keeps `depth` requests in flight (closed loop): each reply sends
//! the next request at once, so a polite client (depth 1) is always backlogged. A reply
//! counts when it arrives inside the measured window; its latency runs from the moment
//! its request was queued. A non-reading connection writes requests until its socket
//! blocks, and again whenever it unblocks; what it got is the replies that arrived in its
//! socket during the window, counted by peeking (never reading, which would let the
//! server go on) at the window's start and end. Requests count as sent when written
//! inside the window: for the slow reader, that says whether the server kept reading.
//!
//! The polite clients share `threads` threads; each greedy client has a thread of its
//! own, so its replies never wait in line with the measured clients' inside the
//! generator (as the lab's heavy client in `hol` has, [`crate::load`]).

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

use crate::{http, wire};

/// One client: all its connections come from `source`.
#[derive(Clone, Debug)]
pub struct Client {
    pub source: Ipv4Addr,
    pub greedy: bool,
    pub connections: usize,
    /// Requests in flight on each connection (reading clients).
    pub depth: usize,
    /// Every `heavy_every`-th request of a connection is heavy (1: all of them; 0: none).
    pub heavy_every: usize,
    /// False: writes requests until the socket blocks and never reads a reply.
    pub reads: bool,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub addr: SocketAddr,
    pub clients: Vec<Client>,
    pub light: Vec<u8>,
    pub heavy: Vec<u8>,
    pub warmup: Duration,
    pub duration: Duration,
    /// Threads for the polite clients (each greedy client has one more of its own).
    pub threads: usize,
}

/// One client's count over the measured window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Tally {
    /// 2xx replies to light and to heavy requests.
    pub light: u64,
    pub heavy: u64,
    /// Other statuses, and requests lost with a connection the server closed.
    pub errors: u64,
    /// Requests queued for writing inside the window.
    pub sent: u64,
}

/// Latency by client kind (polite, greedy) and request class (light, heavy).
pub struct Latency {
    pub hist: [[Histogram<u64>; 2]; 2],
}

impl Default for Latency {
    fn default() -> Latency {
        let h = || Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
        Latency { hist: [[h(), h()], [h(), h()]] }
    }
}

impl Latency {
    fn merge(&mut self, other: &Latency) {
        for (a, b) in self.hist.iter_mut().flatten().zip(other.hist.iter().flatten()) {
            a.add(b).expect("same bounds");
        }
    }

    /// The polite clients' requests, light and heavy together.
    pub fn polite(&self) -> Histogram<u64> {
        let mut all = self.hist[0][0].clone();
        all.add(&self.hist[0][1]).expect("same bounds");
        all
    }
}

/// Everything a run measured.
pub struct Outcome {
    /// In the order of `Plan::clients`.
    pub per_client: Vec<Tally>,
    pub latency: Latency,
    pub window: Duration,
}

/// Runs `plan`; `during(measure_from, end)` runs on the calling thread meanwhile (to read
/// the server's counters at the window's edges) and its result comes back beside the
/// outcome.
pub fn run<T>(plan: &Plan, during: impl FnOnce(Instant, Instant) -> T) -> io::Result<(Outcome, T)> {
    let measure_from = Instant::now() + plan.warmup;
    let end = measure_from + plan.duration;
    let (parts, seen) = std::thread::scope(|s| {
        let handles: Vec<_> = partition(plan)
            .into_iter()
            .map(|mine| s.spawn(move || Driver::new(plan, mine, measure_from, end)?.run()))
            .collect();
        let seen = during(measure_from, end);
        let parts: Vec<io::Result<Part>> =
            handles.into_iter().map(|h| h.join().expect("client thread panicked")).collect();
        (parts, seen)
    });
    let mut out = Outcome {
        per_client: vec![Tally::default(); plan.clients.len()],
        latency: Latency::default(),
        window: plan.duration,
    };
    for part in parts {
        let part = part?;
        out.latency.merge(&part.latency);
        for (i, t) in part.tallies {
            out.per_client[i] = t;
        }
    }
    Ok((out, seen))
}

/// The polite clients dealt round the polite threads; each greedy client alone.
fn partition(plan: &Plan) -> Vec<Vec<usize>> {
    let polite: Vec<usize> = (0..plan.clients.len()).filter(|&i| !plan.clients[i].greedy).collect();
    let threads = plan.threads.clamp(1, polite.len().max(1));
    let mut parts: Vec<Vec<usize>> =
        (0..threads).map(|t| polite.iter().copied().skip(t).step_by(threads).collect()).collect();
    parts.extend((0..plan.clients.len()).filter(|&i| plan.clients[i].greedy).map(|i| vec![i]));
    parts.retain(|p| !p.is_empty());
    parts
}

/// A connection to `to` from `source` (any port), made non-blocking once connected.
/// Connecting waits (loopback answers at once unless the listen queue is full, and then
/// the client must wait anyway): std reports a non-blocking connect's EINPROGRESS with an
/// error kind that is not stable yet.
/// A client that does not read gets small fixed socket buffers: left to autotuning, its
/// own kernel would take megabytes of requests before its writes block, and the window
/// would measure that instead of whether the server stopped reading.
fn connect_from(source: Ipv4Addr, to: SocketAddr, reads: bool) -> io::Result<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    // Like wrk: a request goes out at once, not held back by Nagle behind the last one.
    s.set_nodelay(true)?;
    if !reads {
        s.set_send_buffer_size(SLOW_READER_BUFFER)?;
        s.set_recv_buffer_size(SLOW_READER_BUFFER)?;
    }
    s.bind(&SocketAddr::from((source, 0)).into())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind a client socket to {source}: {e}")))?;
    s.connect_timeout(&to.into(), CONNECT_LIMIT)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot connect from {source} to {to}: {e}")))?;
    s.set_nonblocking(true)?;
    Ok(TcpStream::from_std(s.into()))
}

/// One thread's share of the results.
struct Part {
    tallies: Vec<(usize, Tally)>,
    latency: Latency,
}

struct Conn {
    client: usize,
    /// Its client's place in this thread's tallies.
    slot: usize,
    stream: TcpStream,
    out: Vec<u8>,
    wpos: usize,
    rbuf: Vec<u8>,
    /// Queue times of the requests in flight, oldest first, and whether each is heavy.
    in_flight: VecDeque<(Instant, bool)>,
    /// Requests this connection has queued (picks which are heavy).
    seq: u64,
    /// A non-reading connection: the replies waiting in its socket when the window began.
    waiting_at_start: u64,
}

struct Driver<'a> {
    plan: &'a Plan,
    poll: Poll,
    conns: Vec<Conn>,
    /// (client, its tally), one per client of this thread.
    tallies: Vec<(usize, Tally)>,
    latency: Latency,
    measure_from: Instant,
    end: Instant,
}

/// How long a client may wait for its connection to be accepted by the kernel.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);
/// A non-reading connection's socket buffers, each way.
const SLOW_READER_BUFFER: usize = 64 << 10;
/// How many requests a non-reading connection queues at a time.
const BATCH: usize = 16;
/// The most a non-reading connection peeks at: more than its receive queue holds (its
/// buffer is fixed, but the kernel may queue past it by collapsing small segments).
const PEEK_MAX: usize = 4 << 20;

impl<'a> Driver<'a> {
    fn new(plan: &'a Plan, clients: Vec<usize>, measure_from: Instant, end: Instant) -> io::Result<Driver<'a>> {
        let poll = Poll::new()?;
        let mut conns = Vec::new();
        for (slot, &c) in clients.iter().enumerate() {
            for _ in 0..plan.clients[c].connections {
                let mut stream = connect_from(plan.clients[c].source, plan.addr, plan.clients[c].reads)?;
                let token = Token(conns.len());
                poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
                conns.push(Conn::new(c, slot, stream));
            }
        }
        let tallies = clients.iter().map(|&c| (c, Tally::default())).collect();
        Ok(Driver { plan, poll, conns, tallies, latency: Latency::default(), measure_from, end })
    }

    fn run(mut self) -> io::Result<Part> {
        // The instrument must not wait out a busy server thread's slice before it sends
        // or timestamps (best effort: kernels before 6.12 ignore it).
        let _ = corral::os::set_thread_slice(Duration::from_micros(100));
        for i in 0..self.conns.len() {
            self.start(i)?;
        }
        let mut events = Events::with_capacity(1024);
        let mut started = false;
        loop {
            let now = Instant::now();
            if now >= self.end {
                break;
            }
            if !started && now >= self.measure_from {
                started = true;
                for i in 0..self.conns.len() {
                    if !self.reads(i) {
                        self.conns[i].waiting_at_start = self.waiting(i);
                    }
                }
            }
            let until = if started { self.end } else { self.measure_from };
            match self.poll.poll(&mut events, Some(until - now)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                self.ready(ev.token().0)?;
            }
        }
        for i in 0..self.conns.len() {
            if !self.reads(i) {
                let got = self.waiting(i).saturating_sub(self.conns[i].waiting_at_start);
                self.tally(i).light += got;
            }
        }
        Ok(Part { tallies: self.tallies, latency: self.latency })
    }

    fn reads(&self, i: usize) -> bool {
        self.plan.clients[self.conns[i].client].reads
    }

    fn tally(&mut self, i: usize) -> &mut Tally {
        &mut self.tallies[self.conns[i].slot].1
    }

    /// A new connection's first requests.
    fn start(&mut self, i: usize) -> io::Result<()> {
        if self.reads(i) {
            self.refill(i);
            self.flush(i)
        } else {
            self.flood(i);
            Ok(())
        }
    }

    fn ready(&mut self, i: usize) -> io::Result<()> {
        if !self.reads(i) {
            self.flood(i);
            return Ok(());
        }
        self.flush(i)?;
        loop {
            let c = &mut self.conns[i];
            match wire::read_into(&mut c.stream, &mut c.rbuf, 16 * 1024) {
                Ok(0) => return self.reconnect(i),
                Ok(_) => self.replies(i)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.reconnect(i),
            }
        }
    }

    /// Queues requests up to the client's depth (the caller writes them).
    fn refill(&mut self, i: usize) {
        let depth = self.plan.clients[self.conns[i].client].depth;
        let now = Instant::now();
        while self.conns[i].in_flight.len() < depth {
            let heavy = self.queue(i);
            self.conns[i].in_flight.push_back((now, heavy));
        }
    }

    /// Appends the connection's next request to its output; whether it is heavy.
    fn queue(&mut self, i: usize) -> bool {
        let every = self.plan.clients[self.conns[i].client].heavy_every as u64;
        let c = &mut self.conns[i];
        c.seq += 1;
        let heavy = every > 0 && c.seq % every == 0;
        c.out.extend_from_slice(if heavy { &self.plan.heavy } else { &self.plan.light });
        let now = Instant::now();
        if now >= self.measure_from && now < self.end {
            self.tally(i).sent += 1;
        }
        heavy
    }

    fn flush(&mut self, i: usize) -> io::Result<()> {
        let c = &mut self.conns[i];
        if wire::write_out(&mut c.stream, &mut c.out, &mut c.wpos).is_err() {
            return self.reconnect(i);
        }
        Ok(())
    }

    /// The slow reader: writes batches of requests until the socket blocks (the next
    /// writable event brings it back) or the run ends. A write error ends its part.
    fn flood(&mut self, i: usize) {
        while Instant::now() < self.end {
            if self.conns[i].out.is_empty() {
                for _ in 0..BATCH {
                    self.queue(i);
                }
            }
            let c = &mut self.conns[i];
            match wire::write_out(&mut c.stream, &mut c.out, &mut c.wpos) {
                Ok(()) if c.out.is_empty() => {}
                _ => return,
            }
        }
    }

    /// Takes the whole replies out of the read buffer, counts them and sends the next.
    fn replies(&mut self, i: usize) -> io::Result<()> {
        let mut used = 0;
        loop {
            let head = match http::parse(&self.conns[i].rbuf[used..]) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(e) => return Err(io::Error::other(format!("the server's reply did not parse: {e}"))),
            };
            used += head.len;
            let now = Instant::now();
            let (sent, heavy) = self.conns[i].in_flight.pop_front().unwrap_or((now, false));
            if now >= self.measure_from && now < self.end {
                self.count(i, head.status, heavy, now - sent);
            }
            if head.close {
                self.conns[i].rbuf.clear();
                return self.reconnect(i);
            }
        }
        self.conns[i].rbuf.drain(..used);
        self.refill(i);
        self.flush(i)
    }

    fn count(&mut self, i: usize, status: u16, heavy: bool, latency: Duration) {
        let greedy = self.plan.clients[self.conns[i].client].greedy;
        let t = self.tally(i);
        if !(200..300).contains(&status) {
            t.errors += 1;
            return;
        }
        if heavy {
            t.heavy += 1;
        } else {
            t.light += 1;
        }
        let us = (latency.as_micros() as u64).clamp(1, 60_000_000);
        let _ = self.latency.hist[greedy as usize][heavy as usize].record(us);
    }

    /// The server closed the connection: what was in flight is lost (an error when in the
    /// window) and a new connection from the same source takes its place.
    fn reconnect(&mut self, i: usize) -> io::Result<()> {
        let now = Instant::now();
        let lost = self.conns[i].in_flight.len() as u64;
        if now >= self.measure_from && now < self.end {
            self.tally(i).errors += lost;
        }
        let _ = self.poll.registry().deregister(&mut self.conns[i].stream);
        let (client, slot) = (self.conns[i].client, self.conns[i].slot);
        let spec = &self.plan.clients[client];
        let mut stream = connect_from(spec.source, self.plan.addr, spec.reads)?;
        self.poll.registry().register(&mut stream, Token(i), Interest::READABLE | Interest::WRITABLE)?;
        self.conns[i] = Conn::new(client, slot, stream);
        self.start(i)
    }

    /// The whole replies waiting in a non-reading connection's socket, peeked at, so
    /// the server gets no room to go on.
    fn waiting(&self, i: usize) -> u64 {
        let mut buf = vec![0u8; PEEK_MAX];
        let n = self.conns[i].stream.peek(&mut buf).unwrap_or(0);
        let (mut used, mut count) = (0, 0);
        while let Ok(Some(h)) = http::parse(&buf[used..n]) {
            used += h.len;
            count += 1;
        }
        count
    }
}

impl Conn {
    fn new(client: usize, slot: usize, stream: TcpStream) -> Conn {
        Conn {
            client,
            slot,
            stream,
            out: Vec::new(),
            wpos: 0,
            rbuf: Vec::with_capacity(4096),
            in_flight: VecDeque::new(),
            // Each client's heavy requests fall at a different point of the cycle, so the
            // polite clients do not send theirs in step.
            seq: client as u64,
            waiting_at_start: 0,
        }
    }
}
