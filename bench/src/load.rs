//! The load generator: many HTTP/1.1 clients on a few threads (mio, edge-triggered),
//! closed-loop (a fixed number of requests in flight per client) or open-loop (a fixed
//! arrival rate whatever the replies do: a server that falls behind cannot hide its
//! queue, the requests pile up on its connections). Latencies go into HDR histograms per
//! client group; completions are counted per client.
//!
//! A latency runs from the moment the generator hands the request to its connection
//! (queued behind a connect or a full socket buffer, it waits on the server's account)
//! to the whole response. An open-loop send the generator itself makes late is not
//! charged to the server but counted apart ([`Group::late`]): on a 2-core VM shared with
//! the server, the generator's own thread is sometimes not running when a request falls
//! due. There, a thread spinning alone on each vCPU, with nothing else on the machine,
//! loses the CPU for 1-6 ms about once a second while the guest's scheduler sees it run
//! throughout (the hypervisor's, not the guest's): timed from the due time, every request
//! due in such a gap read as that late, and one gap in `hol`'s 250 ms window (~500 light
//! requests, p99 the 5th slowest) was enough to move a round's p99 from 200 us to 3 ms.
//!
//! Each generator thread is pinned to one CPU (thread t to the t-th it may use). Left to
//! the scheduler, the two threads now and then shared one core and left the other to a
//! one-threaded server, which then served 145k req/s on keep-alive instead of 93k: its
//! rounds split between the two, and the median of 21 rounds was 95k in one run and
//! 123k in the next. Pinned, its rounds ran 72-96k.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::os::fd::AsRawFd;

/// The open-loop send timer's token (clients use their index).
const TIMER: Token = Token(usize::MAX);

use crate::{http, wire};

/// How a client paces its requests.
#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// Keep `depth` requests in flight (1: one at a time; more: pipelined).
    Closed { depth: usize },
    /// Send at a fixed rate whatever the replies do (pipelining when they lag).
    Open { per_sec: f64 },
}

/// One client: a connection (or, with `reconnect_each`, a new one per request).
#[derive(Clone, Debug)]
pub struct Client {
    /// Latency histograms and counts are kept per group.
    pub group: usize,
    pub request: Vec<u8>,
    pub pace: Pace,
    /// A new connection per request (the request should ask for `Connection: close`);
    /// latency then includes the connect.
    pub reconnect_each: bool,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub addr: SocketAddr,
    pub clients: Vec<Client>,
    /// Run, but do not count, for this long first.
    pub warmup: Duration,
    pub duration: Duration,
    pub threads: usize,
    /// After the window: stop sending and wait up to this long for every reply still
    /// owed (zero: stop at once). What never comes is counted as `unanswered`.
    pub drain: Duration,
}

/// One group's results over the measured window.
#[derive(Clone, Debug)]
pub struct Group {
    /// Microseconds, from handing the request to its connection to the whole response.
    pub latency: Histogram<u64>,
    /// Responses with a 2xx status.
    pub ok: u64,
    /// Other statuses, and requests lost to a connection error.
    pub errors: u64,
    /// Of the errors: explicit refusals (HTTP 503).
    pub refused: u64,
    /// Replies still owed when the drain ran out (or the connection ended without them).
    pub unanswered: u64,
    /// 2xx replies that came in the drain, after the window.
    pub drained: u64,
    /// Open-loop sends in the window that the generator made more than [`LATE`] after
    /// they were due (its thread was not running), and the latest of them.
    pub late: u64,
    pub late_max_us: u64,
}

/// An open-loop send this much after its due time is counted as the generator's.
pub const LATE: Duration = Duration::from_millis(1);

impl Group {
    fn new() -> Group {
        Group {
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            ok: 0,
            errors: 0,
            refused: 0,
            unanswered: 0,
            drained: 0,
            late: 0,
            late_max_us: 0,
        }
    }

    fn merge(&mut self, other: &Group) {
        self.latency.add(&other.latency).expect("same bounds");
        self.ok += other.ok;
        self.errors += other.errors;
        self.refused += other.refused;
        self.unanswered += other.unanswered;
        self.drained += other.drained;
        self.late += other.late;
        self.late_max_us = self.late_max_us.max(other.late_max_us);
    }

    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.latency.is_empty() {
            0
        } else {
            self.latency.value_at_quantile(q)
        }
    }
}

/// Everything a run measured.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub groups: Vec<Group>,
    /// 2xx responses per client, in the order of `Plan::clients`.
    pub per_client: Vec<u64>,
    /// The measured window.
    pub window: Duration,
    /// Connections opened in the window.
    pub connects: u64,
    /// Responses over the whole run, warm-up included (what `cpu` paid for).
    pub all: u64,
    /// CPU time the generator's threads used over the whole run.
    pub cpu: Duration,
}

impl Outcome {
    pub fn rate(&self, group: usize) -> f64 {
        self.groups[group].ok as f64 / self.window.as_secs_f64()
    }
}

/// Runs `plan` to the end and returns what it measured.
pub fn run(plan: &Plan) -> io::Result<Outcome> {
    let groups = plan.clients.iter().map(|c| c.group).max().map_or(0, |g| g + 1);
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let parts = partition(plan);
    let results: Vec<io::Result<Part>> = std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .into_iter()
            .enumerate()
            .map(|(t, clients)| {
                s.spawn(move || {
                    // Best effort: a generator thread left where the scheduler puts it is
                    // a placement the server's threads then differ by from round to round.
                    let _ = corral::os::pin_thread(t);
                    Driver::new(plan.addr, clients, groups, measure_from, end)?.run(plan.drain)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("generator thread panicked")).collect()
    });
    let mut out = Outcome {
        groups: (0..groups).map(|_| Group::new()).collect(),
        per_client: vec![0; plan.clients.len()],
        window: plan.duration,
        connects: 0,
        all: 0,
        cpu: Duration::ZERO,
    };
    for part in results {
        let part = part?;
        for (g, pg) in out.groups.iter_mut().zip(&part.groups) {
            g.merge(pg);
        }
        for (i, n) in part.per_client {
            out.per_client[i] = n;
        }
        out.connects += part.connects;
        out.all += part.all;
        out.cpu += part.cpu;
    }
    Ok(out)
}

/// Group 0's clients are spread over `plan.threads` threads; every other group (the
/// greedy or heavy client beside the measured ones) gets a thread of its own, so its
/// replies do not delay the measured clients' next requests inside the generator.
fn partition(plan: &Plan) -> Vec<Vec<(usize, Client)>> {
    let main: Vec<(usize, Client)> = plan.clients.iter().cloned().enumerate().filter(|(_, c)| c.group == 0).collect();
    let threads = plan.threads.clamp(1, main.len().max(1));
    let mut parts: Vec<Vec<(usize, Client)>> =
        (0..threads).map(|t| main.iter().skip(t).step_by(threads).cloned().collect()).collect();
    let others = plan.clients.iter().map(|c| c.group).filter(|&g| g != 0).max().unwrap_or(0);
    for g in 1..=others {
        parts.push(plan.clients.iter().cloned().enumerate().filter(|(_, c)| c.group == g).collect());
    }
    parts.retain(|p| !p.is_empty());
    parts
}

/// One thread's share of the results.
struct Part {
    groups: Vec<Group>,
    per_client: Vec<(usize, u64)>,
    connects: u64,
    all: u64,
    cpu: Duration,
}

struct Conn {
    index: usize,
    spec: Client,
    stream: Option<TcpStream>,
    connected: bool,
    out: Vec<u8>,
    wpos: usize,
    rbuf: Vec<u8>,
    /// When the requests in flight were handed to the connection, oldest first.
    in_flight: VecDeque<Instant>,
    /// Open loop: when the next request is due.
    next_due: Instant,
    interval: Duration,
    /// A connect failed (ports or descriptors ran out): try again then.
    retry_at: Option<Instant>,
    ok: u64,
}

struct Driver {
    addr: SocketAddr,
    poll: Poll,
    /// Wakes the loop when an open-loop request is due, to the microsecond
    /// (`epoll_wait`'s timeout has only milliseconds, which would make every send late).
    timer: corral::os::TimerFd,
    conns: Vec<Conn>,
    groups: Vec<Group>,
    measure_from: Instant,
    end: Instant,
    connects: u64,
    all: u64,
    /// In the drain after the window: replies are still counted, nothing is sent.
    draining: bool,
}

impl Driver {
    fn new(
        addr: SocketAddr,
        clients: Vec<(usize, Client)>,
        groups: usize,
        measure_from: Instant,
        end: Instant,
    ) -> io::Result<Driver> {
        let now = Instant::now();
        let n = clients.len().max(1) as u32;
        let conns = clients
            .into_iter()
            .enumerate()
            .map(|(k, (index, spec))| {
                let interval = match spec.pace {
                    Pace::Open { per_sec } => Duration::from_secs_f64(1.0 / per_sec.max(1e-3)),
                    Pace::Closed { .. } => Duration::ZERO,
                };
                // Spread the open-loop clients' phases so they do not send in lockstep.
                let phase = interval * (k as u32) / n;
                Conn {
                    index,
                    spec,
                    stream: None,
                    connected: false,
                    out: Vec::new(),
                    wpos: 0,
                    rbuf: Vec::with_capacity(4096),
                    in_flight: VecDeque::new(),
                    next_due: now + phase,
                    interval,
                    retry_at: None,
                    ok: 0,
                }
            })
            .collect();
        let poll = Poll::new()?;
        let timer = corral::os::TimerFd::new()?;
        poll.registry().register(&mut SourceFd(&timer.as_raw_fd()), TIMER, Interest::READABLE)?;
        Ok(Driver {
            addr,
            poll,
            timer,
            conns,
            groups: (0..groups).map(|_| Group::new()).collect(),
            measure_from,
            end,
            connects: 0,
            all: 0,
            draining: false,
        })
    }

    fn run(mut self, drain: Duration) -> io::Result<Part> {
        // The instrument must not wait out a busy server thread's slice before it sends
        // or timestamps (best effort: kernels before 6.12 ignore it).
        let _ = corral::os::set_thread_slice(Duration::from_micros(100));
        let cpu0 = corral::os::thread_cpu_time();
        for i in 0..self.conns.len() {
            if matches!(self.conns[i].spec.pace, Pace::Closed { .. }) {
                self.refill(i, Instant::now())?;
            }
        }
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            if now >= self.end {
                break;
            }
            let mut wake = self.end;
            for i in 0..self.conns.len() {
                if let Some(t) = self.conns[i].retry_at {
                    if t <= now {
                        self.conns[i].retry_at = None;
                        self.refill(i, now)?;
                    } else {
                        wake = wake.min(t);
                    }
                }
                if let Pace::Open { .. } = self.conns[i].spec.pace {
                    while self.conns[i].next_due <= now {
                        let due = self.conns[i].next_due;
                        let interval = self.conns[i].interval;
                        self.conns[i].next_due += interval;
                        let _ = self.send(i, due);
                    }
                    wake = wake.min(self.conns[i].next_due);
                }
            }
            let wait = wake.saturating_duration_since(Instant::now());
            if wake < self.end {
                self.timer.set(wait)?;
            }
            match self.poll.poll(&mut events, Some(self.end.saturating_duration_since(Instant::now()))) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                if ev.token() == TIMER {
                    self.timer.drain();
                } else {
                    self.ready(ev.token().0)?;
                }
            }
        }
        if !drain.is_zero() {
            self.drain(drain, &mut events)?;
        }
        let per_client = self.conns.iter().map(|c| (c.index, c.ok)).collect();
        Ok(Part {
            groups: self.groups,
            per_client,
            connects: self.connects,
            all: self.all,
            cpu: corral::os::thread_cpu_time().saturating_sub(cpu0),
        })
    }

    fn counted(&self, t: Instant) -> bool {
        t >= self.measure_from && t < self.end
    }

    /// Sends nothing more and reads until every reply owed has come, or `limit` passes.
    /// Replies that come are counted by status (their latency is not recorded: they
    /// are outside the window); those that never come are `unanswered`.
    fn drain(&mut self, limit: Duration, events: &mut Events) -> io::Result<()> {
        for c in &mut self.conns {
            c.spec.pace = Pace::Closed { depth: 0 };
            c.spec.reconnect_each = false;
        }
        self.draining = true;
        let until = Instant::now() + limit;
        while self.conns.iter().any(|c| !c.in_flight.is_empty()) && Instant::now() < until {
            match self.poll.poll(events, Some(until.saturating_duration_since(Instant::now()))) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                if ev.token() != TIMER {
                    self.ready(ev.token().0)?;
                }
            }
        }
        for c in &self.conns {
            self.groups[c.spec.group].unanswered += c.in_flight.len() as u64;
        }
        Ok(())
    }

    /// Closed loop: tops the client up to its depth, sent now.
    fn refill(&mut self, i: usize, now: Instant) -> io::Result<()> {
        let Pace::Closed { depth } = self.conns[i].spec.pace else { return Ok(()) };
        while self.conns[i].in_flight.len() < depth {
            if self.send(i, now).is_err() {
                break;
            }
            if self.conns[i].spec.reconnect_each {
                break;
            }
        }
        Ok(())
    }

    /// Queues one request that fell due at `due`, connecting first if needed; its
    /// latency counts from now, and a send later than [`LATE`] is counted as the
    /// generator's. A failed connect counts the request as an error and retries 10 ms later.
    fn send(&mut self, i: usize, due: Instant) -> io::Result<()> {
        if self.conns[i].stream.is_none() && self.connect(i).is_err() {
            if self.counted(Instant::now()) {
                self.groups[self.conns[i].spec.group].errors += 1;
            }
            self.conns[i].retry_at = Some(Instant::now() + Duration::from_millis(10));
            return Err(io::Error::other("connect failed"));
        }
        let now = Instant::now();
        let late = now.saturating_duration_since(due);
        if late > LATE && self.counted(now) {
            let g = &mut self.groups[self.conns[i].spec.group];
            g.late += 1;
            g.late_max_us = g.late_max_us.max(late.as_micros() as u64);
        }
        let c = &mut self.conns[i];
        c.in_flight.push_back(now);
        c.out.extend_from_slice(&c.spec.request);
        if c.connected {
            self.flush(i);
        }
        Ok(())
    }

    fn connect(&mut self, i: usize) -> io::Result<()> {
        let mut s = TcpStream::connect(self.addr)?;
        // Like wrk: a request goes out at once, not held back by Nagle behind the last one.
        s.set_nodelay(true)?;
        self.poll.registry().register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)?;
        let c = &mut self.conns[i];
        c.stream = Some(s);
        c.connected = false;
        if self.measure_from <= Instant::now() {
            self.connects += 1;
        }
        Ok(())
    }

    /// Writes what is pending; a write error drops the connection.
    fn flush(&mut self, i: usize) {
        let c = &mut self.conns[i];
        let Some(s) = c.stream.as_mut() else { return };
        if wire::write_out(s, &mut c.out, &mut c.wpos).is_err() {
            self.drop_conn(i);
        }
    }

    fn ready(&mut self, i: usize) -> io::Result<()> {
        if self.conns[i].stream.is_none() {
            return Ok(());
        }
        if !self.conns[i].connected {
            match wire::connected(self.conns[i].stream.as_ref().expect("checked")) {
                Ok(true) => self.conns[i].connected = true,
                Ok(false) => return Ok(()),
                Err(_) => {
                    self.drop_conn(i);
                    return self.refill(i, Instant::now());
                }
            }
        }
        self.flush(i);
        loop {
            let c = &mut self.conns[i];
            let Some(s) = c.stream.as_mut() else { return Ok(()) };
            match wire::read_into(s, &mut c.rbuf, 16 * 1024) {
                Ok(0) => {
                    self.drop_conn(i);
                    return self.refill(i, Instant::now());
                }
                Ok(_) => {
                    if !self.responses(i)? {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.drop_conn(i);
                    return self.refill(i, Instant::now());
                }
            }
        }
    }

    /// Takes the whole responses out of the read buffer. False if the connection ended.
    fn responses(&mut self, i: usize) -> io::Result<bool> {
        let mut used = 0;
        loop {
            let parsed = http::parse(&self.conns[i].rbuf[used..]);
            let head = match parsed {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(_) => {
                    self.drop_conn(i);
                    self.refill(i, Instant::now())?;
                    return Ok(false);
                }
            };
            used += head.len;
            let now = Instant::now();
            let sent = self.conns[i].in_flight.pop_front().unwrap_or(now);
            self.all += 1;
            if self.counted(now) || self.draining {
                let g = &mut self.groups[self.conns[i].spec.group];
                if (200..300).contains(&head.status) {
                    if self.draining {
                        g.drained += 1;
                    } else {
                        g.ok += 1;
                        self.conns[i].ok += 1;
                        let us = now.saturating_duration_since(sent).as_micros() as u64;
                        let _ = g.latency.record(us.clamp(1, 60_000_000));
                    }
                } else {
                    g.errors += 1;
                    if head.status == 503 {
                        g.refused += 1;
                    }
                }
            }
            if head.close || self.conns[i].spec.reconnect_each {
                self.conns[i].rbuf.clear();
                self.drop_conn(i);
                self.refill(i, now)?;
                return Ok(false);
            }
            self.refill(i, now)?;
        }
        self.conns[i].rbuf.drain(..used);
        Ok(true)
    }

    /// Closes the connection; its requests in flight count as errors. Open-loop
    /// clients reconnect on their next send, closed-loop ones at their refill.
    fn drop_conn(&mut self, i: usize) {
        let now = Instant::now();
        let lost = self.conns[i].in_flight.len() as u64;
        if let Some(mut s) = self.conns[i].stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        let c = &mut self.conns[i];
        c.connected = false;
        c.in_flight.clear();
        c.out.clear();
        c.wpos = 0;
        c.rbuf.clear();
        if self.counted(now) || self.draining {
            let g = &mut self.groups[self.conns[i].spec.group];
            g.errors += lost;
            g.unanswered += lost;
        }
    }
}
