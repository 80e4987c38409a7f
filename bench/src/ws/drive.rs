//! Drives N websocket connections from a few threads: each thread owns a share of the
//! connections on its own mio poll (edge-triggered, non-blocking sockets, no runtime).
//!
//! A run has two phases. First every connection connects and completes its handshake;
//! then all threads start together (two barriers with the caller) and send for the
//! warm-up plus the measured window. A message is counted when it *arrives* inside the
//! window; its latency is measured only on its sender, from the time it was sent (closed
//! loop) or was due (open loop: a send that could not go out on time still counts from
//! its due time, so a server that falls behind cannot hide its queue).
//!
//! Each connection's own messages come back in the order it sent them (echo: from its
//! peer; broadcast: as one of every client's deliveries), so the times of its messages
//! in flight are a queue; a message that is not the next one expected fails the run.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::proto::{self, Failure, Head, Rng, TAG};
use crate::wire;

/// The open-loop send timer's token (connections use their index in the thread).
const TIMER: Token = Token(usize::MAX);
/// How long the connect-and-handshake phase may take.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(30);
/// Open loop: a send due while this much is still unwritten on its connection is not
/// queued (it is counted as `unsent`): the client's memory stays bounded.
const MAX_BACKLOG: usize = 8 << 20;

/// echo: each message comes back to its sender. broadcast: each message goes to every client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Echo,
    Broadcast,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Broadcast => "broadcast",
        }
    }
}

/// How senders pace their messages.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Each sender keeps this many of its own messages in flight (1: send, wait, repeat).
    Closed { window: usize },
    /// Messages go out at this total rate over all senders, whatever comes back.
    Open { per_sec: f64 },
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub addr: SocketAddr,
    /// The request target of the handshake (`/ws`).
    pub path: String,
    pub mode: Mode,
    pub pace: Pace,
    pub connections: usize,
    /// The first `senders` connections send; the others only receive (broadcast).
    pub senders: usize,
    /// Bytes per message (at least the 16-byte tag).
    pub size: usize,
    pub text: bool,
    pub warmup: Duration,
    pub duration: Duration,
    pub threads: usize,
}

/// What a run measured, over the window.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Messages sent.
    pub sent: u64,
    /// Messages received, over every connection (broadcast: each delivery counts).
    pub received: u64,
    /// Microseconds from each sender's send (or due) time to its own message's return.
    pub latency: Histogram<u64>,
    pub window: Duration,
    /// Open loop: sends skipped because the connection's backlog was full.
    pub unsent: u64,
    /// Messages still owed to their senders when the run ended.
    pub in_flight: u64,
    /// How long connecting and the handshakes took.
    pub setup: Duration,
    /// The first failure; a run with one has no valid figure.
    pub failure: Option<Failure>,
}

impl Outcome {
    pub fn msg_per_s(&self) -> f64 {
        self.received as f64 / self.window.as_secs_f64().max(1e-9)
    }

    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.latency.is_empty() {
            0
        } else {
            self.latency.value_at_quantile(q)
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// Runs `plan`; an error only if the client itself cannot (no poll, no timer).
pub fn run(plan: &Plan) -> io::Result<Outcome> {
    let threads = plan.threads.clamp(1, plan.connections.max(1));
    let ready = Barrier::new(threads + 1);
    let go = Barrier::new(threads + 1);
    let start: Mutex<Option<Instant>> = Mutex::new(None);
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    let (parts, setup) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let ids: Vec<usize> = (t..plan.connections).step_by(threads).collect();
                let (ready, go, start, stop) = (&ready, &go, &start, &stop);
                s.spawn(move || -> io::Result<Part> {
                    let mut d = Driver::new(plan, ids, stop)?;
                    let shook = d.handshakes();
                    ready.wait();
                    go.wait();
                    let at = start.lock().unwrap_or_else(|e| e.into_inner()).expect("set before go");
                    match shook {
                        Ok(()) => d.measure(at),
                        Err(f) => Ok(d.failed(f)),
                    }
                })
            })
            .collect();
        ready.wait();
        let setup = t0.elapsed();
        *start.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        go.wait();
        let parts: Vec<io::Result<Part>> =
            handles.into_iter().map(|h| h.join().expect("websocket load thread panicked")).collect();
        (parts, setup)
    });
    let mut out = Outcome {
        sent: 0,
        received: 0,
        latency: histogram(),
        window: plan.duration,
        unsent: 0,
        in_flight: 0,
        setup,
        failure: None,
    };
    for p in parts {
        let p = p?;
        out.sent += p.sent;
        out.received += p.received;
        out.unsent += p.unsent;
        out.in_flight += p.in_flight;
        out.latency.add(&p.latency).expect("same bounds");
        if out.failure.is_none() {
            out.failure = p.failure;
        }
    }
    Ok(out)
}

/// One thread's share of the results.
struct Part {
    sent: u64,
    received: u64,
    unsent: u64,
    in_flight: u64,
    latency: Histogram<u64>,
    failure: Option<Failure>,
}

/// A message being received (it may come in fragments).
struct Incoming {
    opcode: u8,
    len: usize,
    /// Its first bytes, up to the tag.
    head: Vec<u8>,
}

struct Conn {
    /// The run-wide connection number (in every tag it sends).
    id: u32,
    stream: TcpStream,
    /// Before the handshake reply: the accept value it must carry.
    accept: Option<String>,
    out: Vec<u8>,
    wpos: usize,
    rbuf: Vec<u8>,
    sender: bool,
    next_seq: u32,
    /// Sequence numbers and send (or due) times of its messages not yet back.
    in_flight: VecDeque<(u32, Instant)>,
    next_due: Instant,
    interval: Duration,
    incoming: Option<Incoming>,
}

struct Driver<'a> {
    plan: &'a Plan,
    poll: Poll,
    timer: corral::os::TimerFd,
    conns: Vec<Conn>,
    rng: Rng,
    /// The message sent, its tag rewritten per send.
    payload: Vec<u8>,
    opcode: u8,
    stop: &'a AtomicBool,
    measure_from: Instant,
    end: Instant,
    part: Part,
}

impl<'a> Driver<'a> {
    fn new(plan: &'a Plan, ids: Vec<usize>, stop: &'a AtomicBool) -> io::Result<Driver<'a>> {
        let poll = Poll::new()?;
        let timer = corral::os::TimerFd::new()?;
        poll.registry().register(&mut SourceFd(&timer.as_raw_fd()), TIMER, Interest::READABLE)?;
        let mut rng = Rng::new(ids.first().copied().unwrap_or(0) as u64);
        let host = plan.addr.to_string();
        let mut conns = Vec::with_capacity(ids.len());
        for (k, id) in ids.into_iter().enumerate() {
            let mut stream = TcpStream::connect(plan.addr)?;
            stream.set_nodelay(true)?;
            poll.registry().register(&mut stream, Token(k), Interest::READABLE | Interest::WRITABLE)?;
            let (request, accept) = proto::handshake(&host, &plan.path, &mut rng);
            conns.push(Conn {
                id: id as u32,
                stream,
                accept: Some(accept),
                out: request,
                wpos: 0,
                rbuf: Vec::with_capacity(4096),
                sender: id < plan.senders,
                next_seq: 0,
                in_flight: VecDeque::new(),
                next_due: Instant::now(),
                interval: Duration::ZERO,
                incoming: None,
            });
        }
        let mut payload = vec![b'x'; plan.size.max(TAG)];
        payload[..TAG].copy_from_slice(b"0000000000000000");
        let now = Instant::now();
        let part = Part { sent: 0, received: 0, unsent: 0, in_flight: 0, latency: histogram(), failure: None };
        let opcode = if plan.text { proto::OP_TEXT } else { proto::OP_BINARY };
        Ok(Driver { plan, poll, timer, conns, rng, payload, opcode, stop, measure_from: now, end: now, part })
    }

    fn failed(mut self, f: Failure) -> Part {
        self.stop.store(true, Ordering::Relaxed);
        self.part.failure = Some(f);
        self.part
    }

    /// Connects every connection and completes its handshake (or fails).
    fn handshakes(&mut self) -> Result<(), Failure> {
        let deadline = Instant::now() + HANDSHAKE_LIMIT;
        let mut events = Events::with_capacity(1024);
        while self.conns.iter().any(|c| c.accept.is_some()) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let n = self.conns.iter().filter(|c| c.accept.is_some()).count();
                return Err(Failure::Connect(format!("{n} handshake(s) not done after {HANDSHAKE_LIMIT:?}")));
            }
            self.wait(&mut events, left).map_err(|e| Failure::Connect(e.to_string()))?;
            for ev in events.iter() {
                if ev.token() != TIMER {
                    self.shake(ev.token().0)?;
                }
            }
        }
        Ok(())
    }

    fn wait(&mut self, events: &mut Events, limit: Duration) -> io::Result<()> {
        match self.poll.poll(events, Some(limit)) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(e),
            _ => Ok(()),
        }
    }

    fn shake(&mut self, i: usize) -> Result<(), Failure> {
        let c = &mut self.conns[i];
        let Some(accept) = c.accept.as_ref() else { return Ok(()) };
        match wire::connected(&c.stream) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => return Err(Failure::Connect(e.to_string())),
        }
        wire::write_out(&mut c.stream, &mut c.out, &mut c.wpos).map_err(|e| Failure::Closed(e.to_string()))?;
        loop {
            match wire::read_into(&mut c.stream, &mut c.rbuf, 4096) {
                Ok(0) => return Err(Failure::Closed("the server ended the connection during the handshake".into())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::Closed(e.to_string())),
            }
            if let Some(len) = proto::handshake_reply(&c.rbuf, accept)? {
                c.rbuf.drain(..len);
                c.accept = None;
                return Ok(());
            }
        }
    }

    /// The send phase, from `start`.
    fn measure(mut self, start: Instant) -> io::Result<Part> {
        let _ = corral::os::set_thread_slice(Duration::from_micros(100));
        self.measure_from = start + self.plan.warmup;
        self.end = self.measure_from + self.plan.duration;
        if let Err(f) = self.begin(start) {
            return Ok(self.failed(f));
        }
        let mut events = Events::with_capacity(1024);
        while Instant::now() < self.end && !self.stop.load(Ordering::Relaxed) {
            let wake = self.send_due();
            if wake < self.end {
                self.timer.set(wake.saturating_duration_since(Instant::now()))?;
            }
            self.wait(&mut events, self.end.saturating_duration_since(Instant::now()))?;
            for ev in events.iter() {
                if ev.token() == TIMER {
                    self.timer.drain();
                } else if let Err(f) = self.ready(ev.token().0) {
                    return Ok(self.failed(f));
                }
            }
        }
        self.part.in_flight = self.conns.iter().map(|c| c.in_flight.len() as u64).sum();
        Ok(self.part)
    }

    /// Sets each sender's pace and sends the closed-loop windows.
    fn begin(&mut self, start: Instant) -> Result<(), Failure> {
        let senders = self.plan.senders.clamp(1, self.plan.connections) as f64;
        let n = self.conns.len().max(1) as u32;
        for i in 0..self.conns.len() {
            // Frames that came with the handshake reply had no event of their own.
            self.frames(i, start)?;
            if !self.conns[i].sender {
                continue;
            }
            match self.plan.pace {
                Pace::Closed { window } => {
                    for _ in 0..window.max(1) {
                        self.send(i, start);
                    }
                    self.flush(i)?;
                }
                Pace::Open { per_sec } => {
                    let interval = Duration::from_secs_f64(senders / per_sec.max(1e-3));
                    // Spread the senders' phases so they do not send in lockstep.
                    self.conns[i].interval = interval;
                    self.conns[i].next_due = start + interval * (i as u32) / n;
                }
            }
        }
        Ok(())
    }

    /// Open loop: sends what is due; returns when the next send is due.
    fn send_due(&mut self) -> Instant {
        let mut wake = self.end;
        if !matches!(self.plan.pace, Pace::Open { .. }) {
            return wake;
        }
        let now = Instant::now();
        for i in 0..self.conns.len() {
            if !self.conns[i].sender {
                continue;
            }
            let mut queued = false;
            while self.conns[i].next_due <= now {
                let due = self.conns[i].next_due;
                let interval = self.conns[i].interval;
                self.conns[i].next_due += interval;
                let c = &self.conns[i];
                if c.out.len() - c.wpos > MAX_BACKLOG {
                    if self.counted(now) {
                        self.part.unsent += 1;
                    }
                } else {
                    self.send(i, due);
                    queued = true;
                }
            }
            if queued {
                // A write failure shows again on the connection's next event, which fails the run.
                let _ = self.flush(i);
            }
            wake = wake.min(self.conns[i].next_due);
        }
        wake
    }

    fn counted(&self, t: Instant) -> bool {
        t >= self.measure_from && t < self.end
    }

    /// Queues the connection's next message, stamped `at` (written out by `flush`).
    fn send(&mut self, i: usize, at: Instant) {
        let c = &mut self.conns[i];
        let seq = c.next_seq;
        c.next_seq = c.next_seq.wrapping_add(1);
        self.payload[..TAG].copy_from_slice(&proto::tag(c.id, seq));
        proto::frame(&mut c.out, self.opcode, &self.payload, self.rng.next() as u32);
        c.in_flight.push_back((seq, at));
        if self.counted(Instant::now()) {
            self.part.sent += 1;
        }
    }

    fn flush(&mut self, i: usize) -> Result<(), Failure> {
        let c = &mut self.conns[i];
        wire::write_out(&mut c.stream, &mut c.out, &mut c.wpos).map_err(|e| closed(c, e))
    }

    fn ready(&mut self, i: usize) -> Result<(), Failure> {
        self.flush(i)?;
        loop {
            let c = &mut self.conns[i];
            match wire::read_into(&mut c.stream, &mut c.rbuf, 64 * 1024) {
                Ok(0) => return Err(closed(c, io::ErrorKind::UnexpectedEof.into())),
                Ok(_) => self.frames(i, Instant::now())?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return self.flush(i),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(closed(c, e)),
            }
        }
    }

    /// Takes every whole frame out of the connection's read buffer.
    fn frames(&mut self, i: usize, now: Instant) -> Result<(), Failure> {
        let mut used = 0;
        while let Some(h) = proto::frame_head(&self.conns[i].rbuf[used..])? {
            let end = used + h.offset + h.len;
            if self.conns[i].rbuf.len() < end {
                break;
            }
            let payload_at = used + h.offset;
            used = end;
            if h.opcode >= proto::OP_CLOSE {
                self.control(i, &h, payload_at)?;
            } else if let Some(m) = self.fragment(i, &h, payload_at)? {
                self.message(i, m, now)?;
            }
        }
        self.conns[i].rbuf.drain(..used);
        Ok(())
    }

    fn control(&mut self, i: usize, h: &Head, at: usize) -> Result<(), Failure> {
        let c = &mut self.conns[i];
        match h.opcode {
            proto::OP_PING => {
                let body = c.rbuf[at..at + h.len].to_vec();
                proto::frame(&mut c.out, proto::OP_PONG, &body, self.rng.next() as u32);
                Ok(())
            }
            proto::OP_PONG => Ok(()),
            proto::OP_CLOSE => {
                let code = c.rbuf.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
                let sent = c.next_seq;
                Err(Failure::Closed(format!("the server sent close (code {code:?}) after {sent} message(s) went out")))
            }
            op => Err(Failure::Protocol(format!("unknown control opcode 0x{op:x}"))),
        }
    }

    /// Adds a data frame to the message it belongs to; the message once whole.
    fn fragment(&mut self, i: usize, h: &Head, at: usize) -> Result<Option<Incoming>, Failure> {
        let c = &mut self.conns[i];
        let mut m = match (h.opcode, c.incoming.take()) {
            (proto::OP_CONT, Some(m)) => m,
            (proto::OP_CONT, None) => return Err(Failure::Protocol("a continuation frame with no message".into())),
            (_, Some(_)) => return Err(Failure::Protocol("a new message inside a fragmented one".into())),
            (op, None) => Incoming { opcode: op, len: 0, head: Vec::with_capacity(TAG) },
        };
        m.len += h.len;
        let take = (TAG - m.head.len()).min(h.len);
        m.head.extend_from_slice(&c.rbuf[at..at + take]);
        if h.fin {
            return Ok(Some(m));
        }
        c.incoming = Some(m);
        Ok(None)
    }

    /// A whole message: counted; if it is this connection's own, it closes the loop.
    fn message(&mut self, i: usize, m: Incoming, now: Instant) -> Result<(), Failure> {
        let c = &mut self.conns[i];
        if m.opcode != self.opcode || m.len != self.payload.len() {
            return Err(Failure::Mismatch(format!(
                "a message of {} bytes, opcode {}; sent {} bytes, opcode {}",
                m.len,
                m.opcode,
                self.payload.len(),
                self.opcode
            )));
        }
        let Some((from, seq)) = proto::parse_tag(&m.head) else {
            return Err(Failure::Mismatch(format!("no tag at the start: {:?}", String::from_utf8_lossy(&m.head))));
        };
        let counted = now >= self.measure_from && now < self.end;
        if counted {
            self.part.received += 1;
        }
        if from != c.id {
            if self.plan.mode == Mode::Echo {
                return Err(Failure::Mismatch(format!("connection {} got connection {from}'s message", c.id)));
            }
            return Ok(());
        }
        match c.in_flight.pop_front() {
            Some((s, at)) if s == seq => {
                if counted {
                    let us = now.saturating_duration_since(at).as_micros() as u64;
                    let _ = self.part.latency.record(us.clamp(1, 60_000_000));
                }
            }
            expected => {
                let want = expected.map(|(s, _)| s);
                return Err(Failure::Mismatch(format!("connection {} expected its message {want:?}, got {seq}", c.id)));
            }
        }
        if let Pace::Closed { .. } = self.plan.pace {
            if now < self.end {
                self.send(i, now);
            }
        }
        Ok(())
    }
}

fn closed(c: &Conn, e: io::Error) -> Failure {
    let how = if e.kind() == io::ErrorKind::UnexpectedEof { "the server ended it".to_string() } else { e.to_string() };
    Failure::Closed(format!("connection {}: {how} after {} message(s) went out", c.id, c.next_seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream as StdStream};
    use std::sync::Arc;

    /// A small websocket server, a thread per connection: `/ws` echoes, `/short` echoes
    /// one byte less, `/broadcast` sends to every client; other paths answer 404.
    fn server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let room: Arc<Mutex<Vec<StdStream>>> = Arc::default();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let room = Arc::clone(&room);
                std::thread::spawn(move || serve(s, &room));
            }
        });
        addr
    }

    fn serve(mut s: StdStream, room: &Mutex<Vec<StdStream>>) {
        s.set_nodelay(true).unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut b).unwrap_or(0) == 0 {
                return;
            }
            head.push(b[0]);
        }
        let text = String::from_utf8(head).unwrap();
        let path = text.split(' ').nth(1).unwrap().to_string();
        let key = text.lines().find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ")).unwrap();
        if !["/ws", "/short", "/broadcast"].contains(&path.as_str()) {
            let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
            return;
        }
        let reply =
            format!("HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: {}\r\n\r\n", proto::accept_for(key));
        s.write_all(reply.as_bytes()).unwrap();
        if path == "/broadcast" {
            room.lock().unwrap().push(s.try_clone().unwrap());
        }
        while let Some((op, mut payload)) = read_frame(&mut s) {
            if path == "/short" {
                payload.pop();
            }
            let mut out = vec![0x80 | op];
            match payload.len() {
                n if n < 126 => out.push(n as u8),
                n => {
                    out.push(126);
                    out.extend_from_slice(&(n as u16).to_be_bytes());
                }
            }
            out.extend_from_slice(&payload);
            if path == "/broadcast" {
                for c in room.lock().unwrap().iter_mut() {
                    let _ = c.write_all(&out);
                }
            } else if s.write_all(&out).is_err() {
                return;
            }
        }
    }

    /// One masked client frame (at most 64 KiB), unmasked.
    fn read_frame(s: &mut StdStream) -> Option<(u8, Vec<u8>)> {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).ok()?;
        let len = match h[1] & 0x7F {
            126 => {
                let mut l = [0u8; 2];
                s.read_exact(&mut l).ok()?;
                u16::from_be_bytes(l) as usize
            }
            n => n as usize,
        };
        let mut key = [0u8; 4];
        s.read_exact(&mut key).ok()?;
        let mut p = vec![0u8; len];
        s.read_exact(&mut p).ok()?;
        p.iter_mut().enumerate().for_each(|(i, b)| *b ^= key[i % 4]);
        Some((h[0] & 0x0F, p))
    }

    fn plan(addr: SocketAddr, path: &str, mode: Mode, pace: Pace) -> Plan {
        Plan {
            addr,
            path: path.into(),
            mode,
            pace,
            connections: 8,
            senders: 8,
            size: 200,
            text: false,
            warmup: Duration::from_millis(50),
            duration: Duration::from_millis(300),
            threads: 2,
        }
    }

    #[test]
    fn echo_closed_and_open_loop_count_every_message() {
        let addr = server();
        let o = run(&plan(addr, "/ws", Mode::Echo, Pace::Closed { window: 2 })).unwrap();
        assert_eq!(o.failure, None);
        assert!(o.received > 8 && o.msg_per_s() > 0.0, "{o:?}");
        assert_eq!(o.latency.len(), o.received, "every echo is its sender's own, with a latency");
        let mut p = plan(addr, "/ws", Mode::Echo, Pace::Open { per_sec: 2000.0 });
        p.text = true;
        let o = run(&p).unwrap();
        assert_eq!(o.failure, None);
        // 2000/s for 0.3 s: 600 due; allow the busy machine its slack.
        assert!((300..=700).contains(&o.sent), "{o:?}");
    }

    #[test]
    fn broadcast_counts_every_delivery() {
        let addr = server();
        let mut p = plan(addr, "/broadcast", Mode::Broadcast, Pace::Closed { window: 4 });
        p.senders = 2;
        let o = run(&p).unwrap();
        assert_eq!(o.failure, None);
        // Each message reaches all 8 clients; only its sender times it.
        assert!(o.received + 8 * 16 >= 8 * o.latency.len(), "{o:?}");
        assert!(!o.latency.is_empty());
    }

    #[test]
    fn a_wrong_message_or_route_fails_the_run() {
        let addr = server();
        let o = run(&plan(addr, "/short", Mode::Echo, Pace::Closed { window: 1 })).unwrap();
        assert!(matches!(o.failure, Some(Failure::Mismatch(_))), "{o:?}");
        let o = run(&plan(addr, "/none", Mode::Echo, Pace::Closed { window: 1 })).unwrap();
        assert_eq!(o.failure, Some(Failure::Refused(404)));
    }
}
