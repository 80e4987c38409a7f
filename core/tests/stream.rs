//! Streamed replies over real loopback sockets: chunked and length-framed bodies sent
//! in parts from another thread, per-connection order with the replies after them,
//! back-pressure from a client that does not read, and a client that leaves.

mod common;

use std::io::{BufReader, Read, Write};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use corral::{handler_fn, Config, Engine, Request, Responder, Response, Sent, StreamError};

/// Streams the parts `/stream?n=N` asks for from a thread of its own; `/len?n=N`
/// declares a length of N and sends more; `/short` declares 10 and sends 3; `/drop`
/// drops its stream after one part; anything else answers whole with its seq.
fn app(req: Request, res: Responder) {
    let h = req.http().unwrap();
    let n: usize = h.query("n").and_then(|v| v.parse().ok()).unwrap_or(5);
    let path = h.path_only().to_string();
    let head = Response::new(200).header("content-type", "text/plain");
    match path.as_str() {
        "/stream" => {
            std::thread::spawn(move || {
                let mut s = res.stream(&head, None).unwrap();
                for i in 0..n {
                    s.send(format!("part {i};").as_bytes()).unwrap();
                }
                s.finish().unwrap();
            });
        }
        "/len" => {
            let mut s = res.stream(&head, Some(n as u64)).unwrap();
            s.send(&vec![b'x'; n + 7]).unwrap();
            s.finish().unwrap();
        }
        "/short" => {
            let mut s = res.stream(&head, Some(10)).unwrap();
            s.send(b"abc").unwrap();
            assert_eq!(s.finish(), Err(StreamError::Short { missing: 7 }));
        }
        "/drop" => {
            let mut s = res.stream(&head, None).unwrap();
            s.send(b"first").unwrap();
        }
        _ => res.respond(Response::new(200).body(format!("seq {}", req.seq()))),
    }
}

fn engine() -> Engine {
    Engine::serve(Config::builder().io_workers(2).build().unwrap(), handler_fn(app)).unwrap()
}

#[test]
fn a_stream_is_chunked_and_the_replies_after_it_wait_their_turn() {
    let e = engine();
    let mut s = connect(e.local_addr());
    s.write_all(b"GET /stream?n=50 HTTP/1.1\r\nHost: t\r\n\r\nGET /x HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let first = read_response(&mut r).unwrap();
    assert_eq!(first.header("transfer-encoding"), Some("chunked"));
    assert_eq!(first.header("content-length"), None);
    let want: String = (0..50).map(|i| format!("part {i};")).collect();
    assert_eq!(first.text(), want);
    assert_eq!(read_response(&mut r).unwrap().text(), "seq 1", "the next reply comes after the stream's end");
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn a_declared_length_is_kept_to_and_a_short_body_closes_the_connection() {
    let e = engine();
    let mut s = connect(e.local_addr());
    s.write_all(b"GET /len?n=1000 HTTP/1.1\r\nHost: t\r\n\r\nGET /x HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let resp = read_response(&mut r).unwrap();
    assert_eq!(resp.header("content-length"), Some("1000"));
    assert_eq!(resp.body, vec![b'x'; 1000], "bytes past the declared length are not sent");
    assert_eq!(read_response(&mut r).unwrap().text(), "seq 1");

    let mut s = connect(e.local_addr());
    s.write_all(b"GET /short HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("content-length: 10\r\n") && text.ends_with("\r\n\r\nabc"), "{text:?}");
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn http10_streams_until_close_and_a_dropped_stream_cuts_the_body() {
    let e = engine();
    let mut s = connect(e.local_addr());
    s.write_all(b"GET /stream?n=3 HTTP/1.0\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n") && text.contains("connection: close\r\n"), "{text:?}");
    assert!(!text.contains("transfer-encoding") && text.ends_with("\r\n\r\npart 0;part 1;part 2;"), "{text:?}");

    let mut s = connect(e.local_addr());
    s.write_all(b"GET /drop HTTP/1.1\r\nHost: t\r\n\r\nGET /x HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.ends_with("\r\n\r\n5\r\nfirst\r\n"), "the body stops without its last chunk: {text:?}");
    assert!(!text.contains("seq 1"), "nothing is written after a broken stream: {text:?}");
    e.shutdown(DEADLINE).unwrap();
}

/// A producer that honours `Full`: it waits for `when_writable` before sending more.
fn produce(res: Responder, total: usize, chunk: usize, report: mpsc::Sender<&'static str>) {
    std::thread::spawn(move || {
        let mut s = res.stream(&Response::new(200), Some(total as u64)).unwrap();
        let mut sent = 0;
        while sent < total {
            let n = chunk.min(total - sent);
            let part: Vec<u8> = (sent..sent + n).map(|i| (i % 251) as u8).collect();
            sent += n;
            match s.send(&part) {
                Ok(Sent::Ready) => {}
                Ok(Sent::Full) => {
                    let _ = report.send("full");
                    let (tx, rx) = mpsc::channel();
                    s.when_writable(move || {
                        let _ = tx.send(());
                    });
                    rx.recv_timeout(DEADLINE).expect("woken once there is room");
                }
                Err(e) => {
                    let _ = report.send(if e == StreamError::Gone { "gone" } else { "error" });
                    return;
                }
            }
        }
        let _ = report.send(if s.finish().is_ok() { "done" } else { "error" });
    });
}

#[test]
fn a_client_that_does_not_read_holds_the_producer_back() {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let total = 32 << 20;
    let cfg = Config::builder().io_workers(2).write_high_water(64 << 10).build().unwrap();
    let e = Engine::serve(cfg, handler_fn(move |_req, res| produce(res, total, 16 << 10, tx.lock().unwrap().clone())))
        .unwrap();
    let mut s = connect(e.local_addr());
    get(&mut s, "/");
    // The client reads nothing until the producer has been told to wait.
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), "full");
    let mut r = BufReader::new(s);
    let resp = read_response(&mut r).unwrap();
    assert_eq!(resp.body.len(), total);
    assert!(resp.body.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8), "every byte in order");
    assert_eq!(rx.iter().find(|m| *m != "full"), Some("done"));
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn a_client_that_leaves_ends_the_stream_and_wakes_a_waiting_handler() {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let cfg = Config::builder().io_workers(2).write_high_water(64 << 10).build().unwrap();
    let e = Engine::serve(
        cfg,
        handler_fn(move |req, res| {
            let tx = tx.lock().unwrap().clone();
            if req.http().unwrap().path_only() == "/poll" {
                // A long poll: nothing to send until the client goes.
                let (gone_tx, gone_rx) = mpsc::channel();
                res.when_gone(move || {
                    let _ = gone_tx.send(());
                });
                std::thread::spawn(move || {
                    gone_rx.recv_timeout(DEADLINE).expect("told the client left");
                    let _ = tx.send("left");
                    drop(res);
                });
            } else {
                produce(res, usize::MAX >> 1, 16 << 10, tx);
            }
        }),
    )
    .unwrap();
    let mut s = connect(e.local_addr());
    get(&mut s, "/");
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), "full");
    let mut some = [0u8; 4096];
    s.read_exact(&mut some).unwrap();
    drop(s);
    assert_eq!(rx.iter().find(|m| *m != "full"), Some("gone"), "the producer learns the client left");

    let mut s = connect(e.local_addr());
    get(&mut s, "/poll");
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), "left");
    drop(s);
    e.shutdown(Duration::from_secs(10)).unwrap();
}
