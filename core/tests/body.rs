//! Streamed request bodies over real loopback sockets: uploads far over `max_frame`
//! read as they arrive (blocking reader, callback reader), chunked bodies with
//! trailers, flow control that holds a client back while the handler does not read,
//! `Expect: 100-continue` answered only when the handler reads, early replies (the rest
//! discarded, or the connection closed when it is long), `max_body`, slow bodies cut
//! with 408, and pipelined requests after a streamed one.

mod common;

use std::io::{BufReader, Read, Write};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::*;
use corral::{Body, BodyError, BodyRead, Config, Engine, Handler, Request, Responder, Response};

/// Routes: `/count` reads the body on a thread and answers its length, a checksum and
/// its trailers; `/callback` reads it from `when_ready` callbacks only; `/early`
/// answers 401 without reading; `/hold` parks the body until the test sends a word on
/// `release`; anything else answers how its body came.
struct App {
    held: Mutex<Option<mpsc::Receiver<()>>>,
}

fn summary(n: u64, sum: u64, trailers: &[(String, Vec<u8>)]) -> String {
    let t: Vec<String> = trailers.iter().map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v))).collect();
    format!("n={n} sum={sum} trailers={}", t.join(","))
}

fn read_all(mut body: Body, res: Responder) {
    let (mut n, mut sum) = (0u64, 0u64);
    loop {
        match body.read_blocking(None) {
            BodyRead::Data(d) => {
                n += d.len() as u64;
                sum = d.iter().fold(sum, |s, &b| s.wrapping_add(b as u64));
            }
            BodyRead::End => break,
            BodyRead::Failed(e) => {
                res.respond(Response::new(500).body(format!("failed: {e}")));
                return;
            }
            BodyRead::Pending => unreachable!("a blocking read off the I/O workers waits"),
        }
    }
    res.respond(Response::new(200).body(summary(n, sum, &body.trailers())));
}

/// A body read with callbacks only: each `when_ready` takes what is there and asks
/// again. `when_ready` may call back at once (data already there), so the body is out
/// of the state while it registers: a callback that finds it out sets `kicked`, and
/// the registering side runs the pump again once it has put the body back.
struct Pumped {
    body: Option<Body>,
    res: Option<Responder>,
    n: u64,
    sum: u64,
    kicked: bool,
}

fn pump(state: Arc<Mutex<Pumped>>) {
    let mut s = state.lock().unwrap();
    if s.body.is_none() {
        s.kicked = true;
        return;
    }
    loop {
        let read = s.body.as_mut().unwrap().try_read();
        match read {
            BodyRead::Data(d) => {
                s.n += d.len() as u64;
                s.sum = d.iter().fold(s.sum, |a, &b| a.wrapping_add(b as u64));
            }
            BodyRead::Pending => {
                let body = s.body.take().unwrap();
                drop(s);
                let again = Arc::clone(&state);
                body.when_ready(move || pump(again));
                let mut s = state.lock().unwrap();
                s.body = Some(body);
                if std::mem::take(&mut s.kicked) {
                    drop(s);
                    pump(state);
                }
                return;
            }
            BodyRead::End => {
                let text = summary(s.n, s.sum, &s.body.as_ref().unwrap().trailers());
                s.res.take().unwrap().respond(Response::new(200).body(text));
                return;
            }
            BodyRead::Failed(e) => {
                s.res.take().unwrap().respond(Response::new(500).body(format!("failed: {e}")));
                return;
            }
        }
    }
}

impl Handler for App {
    fn streams_bodies(&self) -> bool {
        true
    }
    fn handle(&self, mut req: Request, res: Responder) {
        let path = req.http().unwrap().path_only().to_string();
        match (path.as_str(), req.take_body()) {
            ("/count", Some(body)) => {
                std::thread::spawn(move || read_all(body, res));
            }
            ("/callback", Some(body)) => {
                pump(Arc::new(Mutex::new(Pumped { body: Some(body), res: Some(res), n: 0, sum: 0, kicked: false })))
            }
            ("/think", Some(mut body)) => {
                // A handler that takes a while once it has the body.
                std::thread::spawn(move || {
                    let n = body.read_to_end(1 << 30).map(|b| b.len()).unwrap_or(0);
                    std::thread::sleep(Duration::from_millis(300));
                    res.respond(Response::new(200).body(format!("n={n}")));
                });
            }
            ("/early", _) => res.respond(Response::new(401).body("no\n")),
            ("/hold", Some(body)) => {
                let release = self.held.lock().unwrap().take().expect("one /hold per test");
                std::thread::spawn(move || {
                    release.recv().unwrap();
                    read_all(body, res)
                });
            }
            (_, Some(_)) => res.respond(Response::new(200).body("streamed")),
            (_, None) => res.respond(Response::new(200).body(format!("whole {}", req.bytes().len()))),
        }
    }
}

fn engine_with(b: corral::ConfigBuilder) -> (Engine, mpsc::Sender<()>) {
    let (tx, rx) = mpsc::channel();
    let app = App { held: Mutex::new(Some(rx)) };
    (Engine::serve(b.io_workers(2).build().unwrap(), app).unwrap(), tx)
}

fn engine() -> (Engine, mpsc::Sender<()>) {
    engine_with(Config::builder())
}

/// Deterministic bytes, and their checksum.
fn payload(n: usize) -> (Vec<u8>, u64) {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let sum = data.iter().fold(0u64, |s, &b| s.wrapping_add(b as u64));
    (data, sum)
}

fn chunked(data: &[u8], chunk: usize, trailers: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for c in data.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("0\r\n{trailers}\r\n").as_bytes());
    out
}

/// Writes `bytes` on a thread of its own (the server may answer before it is all
/// read); returns how the write ended.
fn send_in_background(s: &std::net::TcpStream, bytes: Vec<u8>) -> std::thread::JoinHandle<std::io::Result<()>> {
    let mut w = s.try_clone().unwrap();
    std::thread::spawn(move || w.write_all(&bytes))
}

#[test]
fn a_large_upload_streams_to_a_blocking_reader() {
    let (e, _) = engine();
    let (data, sum) = payload(8 << 20);
    let mut s = connect(e.local_addr());
    let head = format!("POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", data.len());
    s.write_all(head.as_bytes()).unwrap();
    let writer = send_in_background(&s, data);
    let r = read_response(&mut BufReader::new(s)).unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!((r.status, r.text()), (200, format!("n={} sum={sum} trailers=", 8 << 20)));
    let st = e.stats();
    assert_eq!(st.body_bytes_in, 8 << 20);
    assert_eq!(st.bodies_streamed, 1);
}

#[test]
fn a_chunked_upload_brings_its_trailers_to_a_callback_reader() {
    let (e, _) = engine();
    let (data, sum) = payload(3 << 20);
    let mut s = connect(e.local_addr());
    s.write_all(b"POST /callback HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    let writer = send_in_background(&s, chunked(&data, 10_000, "Digest: abc\r\n"));
    let r = read_response(&mut BufReader::new(s)).unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!((r.status, r.text()), (200, format!("n={} sum={sum} trailers=Digest=abc", 3 << 20)));
}

#[test]
fn small_bodies_that_are_in_come_whole() {
    let (e, _) = engine();
    let mut s = connect(e.local_addr());
    s.write_all(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789").unwrap();
    s.write_all(b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    assert_eq!(read_response(&mut r).unwrap().text(), "whole 10");
    assert_eq!(read_response(&mut r).unwrap().text(), "whole 3");
    assert_eq!(e.stats().bodies_streamed, 0);
}

#[test]
fn a_request_after_a_streamed_one_keeps_its_place() {
    let (e, _) = engine();
    let (data, sum) = payload(300 << 10);
    let mut wire = format!("POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", data.len()).into_bytes();
    wire.extend_from_slice(&data);
    wire.extend_from_slice(b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n");
    let s = connect(e.local_addr());
    let writer = send_in_background(&s, wire);
    let mut r = BufReader::new(s);
    assert_eq!(read_response(&mut r).unwrap().text(), format!("n={} sum={sum} trailers=", 300 << 10));
    assert_eq!(read_response(&mut r).unwrap().text(), "whole 0");
    writer.join().unwrap().unwrap();
}

#[test]
fn the_window_holds_the_client_back_until_the_handler_reads() {
    let (e, release) = engine();
    let (data, sum) = payload(16 << 20);
    let mut s = connect(e.local_addr());
    let head = format!("POST /hold HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", data.len());
    s.write_all(head.as_bytes()).unwrap();
    let writer = send_in_background(&s, data);
    wait_until("the first window to be delivered", || e.stats().body_bytes_in >= 64 << 10);
    // While nothing is taken, the engine reads no more than the window (the rest waits
    // in the kernel's buffers and the client's).
    let window = 64 << 10;
    let deadline = std::time::Instant::now() + Duration::from_millis(500);
    while std::time::Instant::now() < deadline {
        assert!(e.stats().body_bytes_in <= window, "read past the window: {}", e.stats().body_bytes_in);
        std::thread::yield_now();
    }
    release.send(()).unwrap();
    let r = read_response(&mut BufReader::new(s)).unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(r.text(), format!("n={} sum={sum} trailers=", 16 << 20));
}

#[test]
fn continue_is_sent_when_the_handler_reads_and_never_for_an_early_reply() {
    let (e, _) = engine();
    let mut s = connect(e.local_addr());
    s.write_all(b"POST /count HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 100000\r\n\r\n").unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    let (data, sum) = payload(100_000);
    s.write_all(&data).unwrap();
    let r = read_response(&mut BufReader::new(s)).unwrap();
    assert_eq!(r.text(), format!("n=100000 sum={sum} trailers="));

    let mut s = connect(e.local_addr());
    s.write_all(b"POST /early HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 100000\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
}

#[test]
fn an_early_reply_discards_a_short_rest_and_closes_on_a_long_one() {
    let (e, _) = engine();
    let (data, _) = payload(200 << 10);
    let mut wire = format!("POST /early HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", data.len()).into_bytes();
    wire.extend_from_slice(&data);
    wire.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n");
    let s = connect(e.local_addr());
    let writer = send_in_background(&s, wire);
    let mut r = BufReader::new(s);
    assert_eq!(read_response(&mut r).unwrap().status, 401);
    assert_eq!(read_response(&mut r).unwrap().text(), "whole 0", "the connection goes on after the discarded rest");
    writer.join().unwrap().unwrap();

    let (data, _) = payload(8 << 20);
    let mut s = connect(e.local_addr());
    let head = format!("POST /early HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", data.len());
    s.write_all(head.as_bytes()).unwrap();
    let writer = send_in_background(&s, data);
    let mut r = BufReader::new(s);
    assert_eq!(read_response(&mut r).unwrap().status, 401);
    assert!(read_response(&mut r).is_none(), "a long rest closes the connection");
    let _ = writer.join().unwrap(); // the server stopped reading: the write may fail
}

#[test]
fn max_body_refuses_before_the_handler_and_while_chunks_arrive() {
    let (e, _) = engine_with(Config::builder().max_body(100_000));
    let mut s = connect(e.local_addr());
    s.write_all(b"POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 100001\r\n\r\n").unwrap();
    let r = read_response(&mut BufReader::new(s)).unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(e.stats().bodies_streamed, 0, "refused on Content-Length, nothing dispatched");
    assert_eq!(e.stats().bodies_too_large, 1);

    let (data, _) = payload(300_000);
    let mut s = connect(e.local_addr());
    s.write_all(b"POST /count HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    let writer = send_in_background(&s, chunked(&data, 8192, ""));
    let mut r = BufReader::new(s);
    assert_eq!(read_response(&mut r).unwrap().status, 413);
    assert!(read_response(&mut r).is_none());
    let _ = writer.join().unwrap();
    assert_eq!(e.stats().bodies_too_large, 2);
}

#[test]
fn a_body_that_trickles_is_cut_with_408() {
    let b = Config::builder().body_timeout(Duration::from_millis(300)).min_body_rate(100_000);
    let (e, _) = engine_with(b);
    let mut s = connect(e.local_addr());
    s.write_all(b"POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n0123456789").unwrap();
    let mut r = BufReader::new(s);
    let resp = read_response(&mut r).unwrap();
    assert_eq!(resp.status, 408);
    assert!(read_response(&mut r).is_none());
    assert_eq!(e.stats().bodies_too_slow, 1);
}

#[test]
fn the_reply_deadline_counts_from_the_end_of_the_body() {
    // The upload itself takes longer than reply_timeout (a slow client: the pause is the
    // scenario); the handler then has its whole reply_timeout.
    let b = Config::builder().reply_timeout(Duration::from_millis(500)).min_body_rate(0);
    let (e, _) = engine_with(b);
    let mut s = connect(e.local_addr());
    s.write_all(b"POST /think HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n").unwrap();
    s.write_all(&[7u8; 50_000]).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    s.write_all(&[7u8; 50_000]).unwrap();
    let r = read_response(&mut BufReader::new(s)).unwrap();
    assert_eq!((r.status, r.text()), (200, "n=100000".to_string()));
    assert_eq!(e.stats().replies_timed_out, 0);
}

#[test]
fn a_client_that_leaves_mid_body_fails_the_read() {
    struct Probe(mpsc::Sender<BodyRead>);
    impl Handler for Probe {
        fn streams_bodies(&self) -> bool {
            true
        }
        fn handle(&self, mut req: Request, res: Responder) {
            let mut body = req.take_body().unwrap();
            let tx = self.0.clone();
            std::thread::spawn(move || loop {
                match body.read_blocking(None) {
                    BodyRead::Data(_) => {}
                    other => {
                        tx.send(other).unwrap();
                        drop(res);
                        return;
                    }
                }
            });
        }
    }
    let (tx, rx) = mpsc::channel();
    let e = Engine::serve(Config::builder().io_workers(1).build().unwrap(), Probe(tx)).unwrap();
    let mut s = connect(e.local_addr());
    s.write_all(b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\nabc").unwrap();
    drop(s);
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), BodyRead::Failed(BodyError::Closed));
}
