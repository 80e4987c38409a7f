//! Websockets end to end on loopback: the handshake and its refusals, echo, ping and
//! the close handshake, protocol errors, topics, back-pressure and drain, keep-alive
//! pings, shutdown's 1001 and a panicking handler. The client here is a small one of
//! its own (masked frames, raw bytes where a test breaks the protocol); the Autobahn
//! families run against the example server in tests/ws/ (a third-party view).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{connect, DEADLINE};
use corral::ws::{Accept, Message, SendStatus, WebSocket, WsHandler};
use corral::{Config, Engine, Handler, Request, Responder, Response};

/// A test client: one websocket (or the refusal of one).
struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn handshake(addr: SocketAddr, path: &str, extra: &str) -> (Client, Head) {
    let s = connect(addr);
    let mut w = s.try_clone().unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
    );
    let extra_has_version = extra.to_ascii_lowercase().contains("sec-websocket-version");
    let req = if extra_has_version { req } else { req.replace("\r\n\r\n", "\r\nSec-WebSocket-Version: 13\r\n\r\n") };
    w.write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split_whitespace().nth(1).expect("status line").parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':').unwrap();
        headers.push((n.trim().to_owned(), v.trim().to_owned()));
    }
    (Client { r, w }, Head { status, headers })
}

fn open(addr: SocketAddr, path: &str) -> Client {
    let (c, head) = handshake(addr, path, "");
    assert_eq!(head.status, 101, "the upgrade is accepted");
    assert_eq!(head.header("sec-websocket-accept"), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "RFC 6455's sample");
    c
}

impl Client {
    /// Sends one frame, masked unless `unmasked`.
    fn frame(&mut self, first: u8, payload: &[u8], unmasked: bool) {
        let mut f = vec![first];
        let mask_bit = if unmasked { 0 } else { 0x80 };
        match payload.len() {
            n if n < 126 => f.push(mask_bit | n as u8),
            n if n < 65536 => {
                f.push(mask_bit | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(mask_bit | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if unmasked {
            f.extend_from_slice(payload);
        } else {
            let mask = [0x12, 0x34, 0x56, 0x78];
            f.extend_from_slice(&mask);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        self.w.write_all(&f).unwrap();
    }

    fn text(&mut self, s: &str) {
        self.frame(0x81, s.as_bytes(), false);
    }

    /// Reads one frame: (opcode, payload); `None` at the end of the stream.
    fn recv(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut h = [0u8; 2];
        if self.r.read_exact(&mut h).is_err() {
            return None;
        }
        assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
        let len = match h[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.r.read_exact(&mut b).unwrap();
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                self.r.read_exact(&mut b).unwrap();
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        self.r.read_exact(&mut payload).unwrap();
        Some((h[0] & 0x0f, payload))
    }

    /// Reads frames until a close frame; its code.
    fn close_code(&mut self) -> Option<u16> {
        loop {
            let (op, p) = self.recv()?;
            if op == 8 {
                return Some(if p.len() >= 2 { u16::from_be_bytes([p[0], p[1]]) } else { 1005 });
            }
        }
    }

    /// True once the server has closed the TCP connection.
    fn at_eof(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.r.read(&mut b), Ok(0) | Err(_))
    }
}

/// What the test handlers saw.
#[derive(Debug, PartialEq)]
enum Seen {
    Open,
    Message(Message),
    Drain,
    Close(u16),
}

/// Echoes messages; reports events; `send_on_open` fills the socket on open.
struct Events {
    seen: Mutex<Sender<Seen>>,
    send_on_open: Option<usize>,
    statuses: Mutex<Vec<SendStatus>>,
    topic: Option<&'static str>,
}

impl WsHandler for Events {
    fn open(&self, ws: &WebSocket) {
        if let Some(t) = self.topic {
            assert!(ws.subscribe(t));
        }
        if let Some(n) = self.send_on_open {
            let chunk = vec![7u8; 16 << 10];
            let mut st = self.statuses.lock().unwrap();
            for _ in 0..n {
                st.push(ws.send_binary(&chunk));
            }
        }
        let _ = self.seen.lock().unwrap().send(Seen::Open);
    }
    fn message(&self, ws: &WebSocket, msg: Message) {
        if msg == Message::Text("panic".into()) {
            panic!("a handler bug");
        }
        ws.send(&msg);
        let _ = self.seen.lock().unwrap().send(Seen::Message(msg));
    }
    fn drain(&self, _ws: &WebSocket) {
        let _ = self.seen.lock().unwrap().send(Seen::Drain);
    }
    fn close(&self, _ws: &WebSocket, code: u16, _reason: &str) {
        let _ = self.seen.lock().unwrap().send(Seen::Close(code));
    }
}

struct App {
    events: Arc<Events>,
}

impl Handler for App {
    fn handle(&self, req: Request, res: Responder) {
        if req.websocket().is_none() || req.http().map(|h| h.path_only()) != Some("/ws") {
            return res.respond(Response::new(404).body("no websocket here\n"));
        }
        let mut accept = Accept::new();
        if let Some(p) = req.websocket().and_then(|o| o.protocols().iter().find(|p| *p == "chat")) {
            accept = accept.protocol(p.clone());
        }
        res.upgrade(accept, self.events.clone()).expect("an offer can be accepted");
    }
}

fn serve(
    config: Config,
    send_on_open: Option<usize>,
    topic: Option<&'static str>,
) -> (Engine, std::sync::mpsc::Receiver<Seen>) {
    let (tx, rx) = channel();
    let events = Arc::new(Events { seen: Mutex::new(tx), send_on_open, statuses: Mutex::new(Vec::new()), topic });
    let engine = Engine::serve(config, App { events }).unwrap();
    (engine, rx)
}

fn next(rx: &std::sync::mpsc::Receiver<Seen>) -> Seen {
    rx.recv_timeout(DEADLINE).expect("an event in time")
}

#[test]
fn echo_ping_and_the_close_handshake() {
    let (engine, rx) = serve(Config::default(), None, None);
    let mut c = open(engine.local_addr(), "/ws");
    assert_eq!(next(&rx), Seen::Open);
    c.text("hello");
    assert_eq!(c.recv(), Some((1, b"hello".to_vec())));
    let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    c.frame(0x82, &big, false);
    assert_eq!(c.recv(), Some((2, big.clone())), "a 200 KB binary message comes back whole");
    // A fragmented text message with a ping between its fragments.
    c.frame(0x01, b"frag", false);
    c.frame(0x89, b"are you there", false);
    c.frame(0x80, b"mented", false);
    assert_eq!(c.recv(), Some((10, b"are you there".to_vec())), "the pong answers at once");
    assert_eq!(c.recv(), Some((1, b"fragmented".to_vec())));
    c.frame(0x88, &[0x03, 0xe8, b'b', b'y', b'e'], false);
    assert_eq!(c.close_code(), Some(1000), "the close is answered with the client's code");
    assert!(c.at_eof(), "and the server closes the TCP connection");
    let mut codes = Vec::new();
    while let Ok(s) = rx.recv_timeout(DEADLINE) {
        if let Seen::Close(code) = s {
            codes.push(code);
            break;
        }
    }
    assert_eq!(codes, vec![1000]);
    let ws = engine.stats().ws;
    assert_eq!((ws.opened, ws.closed, ws.messages_in, ws.messages_out), (1, 1, 3, 3));
    assert_eq!(ws.bytes_in, 5 + 200_000 + 10);
}

#[test]
fn bad_handshakes_are_refused_with_what_to_send() {
    let (engine, _rx) = serve(Config::default(), None, None);
    let addr = engine.local_addr();
    let (_c, head) = handshake(addr, "/ws", "Sec-WebSocket-Version: 8\r\n");
    assert_eq!(head.status, 426);
    assert_eq!(head.header("sec-websocket-version"), Some("13"));
    // No key: rewrite the request by hand.
    let mut s = connect(addr);
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let resp = common::read_response(&mut r).expect("a reply");
    assert_eq!(resp.status, 400);
    assert!(
        resp.text().to_ascii_lowercase().contains("sec-websocket-key"),
        "the body says what is missing: {}",
        resp.text()
    );
    // A plain request to the same path reaches the handler as any request.
    let mut s = connect(addr);
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let resp = common::read_response(&mut BufReader::new(s)).expect("a reply");
    assert_eq!(resp.status, 404);
    assert_eq!(engine.stats().ws.refused, 2);
}

#[test]
fn the_subprotocol_the_handler_chose_is_answered() {
    let (engine, _rx) = serve(Config::default(), None, None);
    let (_c, head) = handshake(engine.local_addr(), "/ws", "Sec-WebSocket-Protocol: v2, chat\r\n");
    assert_eq!(head.status, 101);
    assert_eq!(head.header("sec-websocket-protocol"), Some("chat"));
}

#[test]
fn a_protocol_error_closes_that_socket_with_1002_and_no_other() {
    let (engine, rx) = serve(Config::default(), None, None);
    let addr = engine.local_addr();
    let mut good = open(addr, "/ws");
    let mut bad = open(addr, "/ws");
    bad.frame(0x81, b"not masked", true);
    assert_eq!(bad.close_code(), Some(1002));
    assert!(bad.at_eof());
    let mut bad = open(addr, "/ws");
    bad.frame(0x81, &[0xff, 0xfe], false);
    assert_eq!(bad.close_code(), Some(1007), "invalid UTF-8 in a text message");
    good.text("still here");
    assert_eq!(good.recv(), Some((1, b"still here".to_vec())));
    drop(rx);
    assert_eq!(engine.stats().ws.failed, 2);
}

#[test]
fn a_message_over_the_limit_closes_with_1009() {
    let config = Config::builder().ws_max_message(1000).build().unwrap();
    let (engine, _rx) = serve(config, None, None);
    let mut c = open(engine.local_addr(), "/ws");
    c.frame(0x82, &[1u8; 1001], false);
    assert_eq!(c.close_code(), Some(1009));
}

#[test]
fn a_panicking_handler_closes_its_socket_with_1011() {
    let (engine, _rx) = serve(Config::default(), None, None);
    let mut c = open(engine.local_addr(), "/ws");
    c.text("panic");
    assert_eq!(c.close_code(), Some(1011));
    let mut other = open(engine.local_addr(), "/ws");
    other.text("fine");
    assert_eq!(other.recv(), Some((1, b"fine".to_vec())));
}

#[test]
fn a_publish_reaches_every_subscriber_on_every_worker() {
    let config = Config::builder().io_workers(2).build().unwrap();
    let (engine, rx) = serve(config, None, Some("news"));
    let mut clients: Vec<Client> = (0..6).map(|_| open(engine.local_addr(), "/ws")).collect();
    for _ in 0..6 {
        assert_eq!(next(&rx), Seen::Open);
    }
    assert_eq!(engine.subscribers("news"), 6);
    assert_eq!(engine.publish("news", &Message::Text("extra".into())), 6);
    for c in &mut clients {
        assert_eq!(c.recv(), Some((1, b"extra".to_vec())));
    }
    // A closed socket leaves its topics.
    let mut last = clients.pop().unwrap();
    last.frame(0x88, &[0x03, 0xe8], false);
    assert_eq!(last.close_code(), Some(1000));
    assert!(last.at_eof());
    while next(&rx) != Seen::Close(1000) {}
    assert_eq!(engine.subscribers("news"), 5);
    assert_eq!(engine.publish("news", &Message::Binary(vec![1, 2, 3])), 5);
}

#[test]
fn sends_past_the_limit_say_so_and_drain_follows_when_written() {
    let config = Config::builder().ws_max_backpressure(64 << 10).build().unwrap();
    let (tx, rx) = channel();
    let events =
        Arc::new(Events { seen: Mutex::new(tx), send_on_open: Some(8), statuses: Mutex::new(Vec::new()), topic: None });
    let engine = Engine::serve(config, App { events: events.clone() }).unwrap();
    let mut c = open(engine.local_addr(), "/ws");
    assert_eq!(next(&rx), Seen::Open);
    let statuses = events.statuses.lock().unwrap().clone();
    // In `open` nothing is written yet: the 101 and three 16 KiB messages fit under
    // 64 KiB, the fourth crosses it, and the rest are dropped.
    assert!(matches!(statuses[..3], [SendStatus::Sent(_), SendStatus::Sent(_), SendStatus::Sent(_)]), "{statuses:?}");
    assert_eq!(statuses[3], SendStatus::Backpressure, "{statuses:?}");
    assert!(statuses[4..].iter().all(|s| *s == SendStatus::Dropped), "{statuses:?}");
    for _ in 0..4 {
        assert_eq!(c.recv().map(|(op, p)| (op, p.len())), Some((2, 16 << 10)));
    }
    assert_eq!(next(&rx), Seen::Drain);
    assert_eq!(engine.stats().ws.dropped, 4);
}

#[test]
fn a_client_that_does_not_answer_pings_is_closed_with_1011() {
    let config = Config::builder()
        .ws_ping_interval(Duration::from_millis(200))
        .ws_ping_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let (engine, _rx) = serve(config, None, None);
    let mut c = open(engine.local_addr(), "/ws");
    assert_eq!(c.recv().map(|(op, _)| op), Some(9), "a keep-alive ping");
    // An answered ping keeps it open: the next one comes.
    c.frame(0x8a, b"", false);
    assert_eq!(c.recv().map(|(op, _)| op), Some(9));
    assert_eq!(c.close_code(), Some(1011), "unanswered");
}

#[test]
fn shutdown_closes_open_websockets_with_1001() {
    let (engine, rx) = serve(Config::default(), None, None);
    let mut c = open(engine.local_addr(), "/ws");
    assert_eq!(next(&rx), Seen::Open);
    let closer = std::thread::spawn(move || {
        assert_eq!(c.close_code(), Some(1001));
        c.frame(0x88, &[0x03, 0xe9], false);
        c.at_eof()
    });
    let report = engine.shutdown(DEADLINE).unwrap();
    assert!(closer.join().unwrap(), "the server closed after the handshake");
    assert!(report.clean, "{report:?}");
}

#[test]
fn a_socket_with_no_message_for_ws_idle_timeout_is_closed_with_1001() {
    let config = Config::builder().ws_idle_timeout(Duration::from_millis(300)).build().unwrap();
    let (engine, rx) = serve(config, None, None);
    let mut c = open(engine.local_addr(), "/ws");
    assert_eq!(next(&rx), Seen::Open);
    c.text("one");
    assert_eq!(c.recv(), Some((1, b"one".to_vec())));
    // A ping is not a message: it does not keep the socket from idling.
    c.frame(0x89, b"", false);
    assert_eq!(c.recv().map(|(op, _)| op), Some(10));
    assert_eq!(c.close_code(), Some(1001));
    c.frame(0x88, &[0x03, 0xe9], false);
    assert!(c.at_eof());
}

/// Says which generation serves it, on open.
struct Generation(u64);

impl WsHandler for Generation {
    fn open(&self, ws: &WebSocket) {
        ws.send_text(&format!("generation {}", self.0));
    }
    fn message(&self, ws: &WebSocket, msg: Message) {
        ws.send(&msg);
    }
}

fn generation(cfg: corral::ConfigBuilder, gen: u64) -> Engine {
    Engine::serve(
        cfg.build().unwrap(),
        corral::handler_fn(move |_req, res| {
            let _ = res.upgrade(Accept::new(), Arc::new(Generation(gen)));
        }),
    )
    .unwrap()
}

#[test]
fn a_hand_over_closes_open_websockets_with_1001_and_new_ones_reach_the_successor() {
    let dir = std::env::temp_dir().join(format!("corral-ws-handover-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("listeners.sock");
    let old = generation(Config::builder().addr("127.0.0.1:0".parse().unwrap()), 1);
    let addr = old.local_addr();
    let mut before = open(addr, "/ws");
    assert_eq!(before.recv(), Some((1, b"generation 1".to_vec())));
    let next = {
        let path = path.clone();
        std::thread::spawn(move || generation(Config::builder().listeners_from(&path, DEADLINE).unwrap(), 2))
    };
    old.hand_over(&path, DEADLINE).expect("hand over");
    let new = next.join().unwrap();
    let closer = std::thread::spawn(move || {
        assert_eq!(before.close_code(), Some(1001), "the old generation says it is going away");
        before.frame(0x88, &[0x03, 0xe9], false);
        before.at_eof()
    });
    let report = old.shutdown(DEADLINE).unwrap();
    assert!(closer.join().unwrap() && report.clean, "{report:?}");
    let mut after = open(addr, "/ws");
    assert_eq!(after.recv(), Some((1, b"generation 2".to_vec())), "a new websocket reaches the successor");
    after.text("still echoing");
    assert_eq!(after.recv(), Some((1, b"still echoing".to_vec())));
    drop(after); // (else the successor's shutdown waits for its close answer, up to ws_ping_timeout)
    new.shutdown(DEADLINE).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
