//! Graceful shutdown under load: every request that was read gets exactly one reply, or
//! its connection is closed; the report's counts match what the clients saw.

mod common;

use std::io::{BufReader, Write};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use corral::{Config, Engine};

#[test]
fn shutdown_under_load_loses_nothing() {
    let e = Engine::serve(Config::builder().io_workers(2).cpu_threads(2).build().unwrap(), TestApp).unwrap();
    let addr = e.local_addr();
    let answered = Arc::new(AtomicU64::new(0));
    let started = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..12)
        .map(|i| {
            let answered = Arc::clone(&answered);
            let started = Arc::clone(&started);
            std::thread::spawn(move || {
                let mut s = connect(addr);
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut mine = 0u64;
                loop {
                    let path = if i % 2 == 0 { "/work?us=2000" } else { "/seq" };
                    if s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()).is_err() {
                        return mine;
                    }
                    match read_response(&mut r) {
                        Some(resp) => {
                            assert_eq!(resp.status, 200, "only real replies, never an error");
                            if path == "/seq" {
                                assert_eq!(resp.text(), mine.to_string(), "one reply per request, in order");
                            }
                            mine += 1;
                            if mine == 1 {
                                started.fetch_add(1, SeqCst);
                            }
                            answered.fetch_add(1, SeqCst);
                        }
                        None => return mine,
                    }
                }
            })
        })
        .collect();
    wait_until("every client is served and load is running", || {
        started.load(SeqCst) == 12 && answered.load(SeqCst) >= 300
    });
    let report = e.shutdown(DEADLINE).unwrap();
    let seen: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert!(report.clean, "all connections finished before the deadline: {report:?}");
    assert_eq!(report.requests_completed, seen, "the report matches what clients received");
    assert_eq!(report.requests_aborted, 0, "in-flight requests finished: {report:?}");
    assert_eq!(report.connections_closed, 12);
    assert_eq!(report.connections_aborted, 0);
}

#[test]
fn a_deadline_too_short_aborts_and_says_so() {
    let e = Engine::serve(Config::builder().io_workers(1).cpu_threads(1).build().unwrap(), TestApp).unwrap();
    let mut s = connect(e.local_addr());
    get(&mut s, "/work?us=1500000");
    wait_until("the heavy request is running", || e.stats().cpu.submitted == 1);
    let report = e.shutdown(Duration::from_millis(50)).unwrap();
    assert!(!report.clean);
    assert_eq!(report.connections_aborted, 1);
    assert_eq!(report.requests_aborted, 1);
    assert!(read_response(&mut BufReader::new(s)).is_none(), "the client sees the close");
}

/// A keep-alive client that sends its next request once the drain has begun gets it
/// answered (with `connection: close`), also when replies come from another thread
/// (a front's host thread), and the connection then closes.
#[test]
fn a_request_sent_during_the_drain_is_answered_and_says_close() {
    use std::sync::mpsc;
    let (tx, rx) = mpsc::channel::<corral::Responder>();
    let tx = std::sync::Mutex::new(tx);
    let host = std::thread::spawn(move || {
        for res in rx {
            res.respond(corral::Response::new(200).body("from the host"));
        }
    });
    let e = Engine::serve(
        Config::builder().io_workers(2).build().unwrap(),
        corral::handler_fn(move |_req, res| tx.lock().unwrap().send(res).unwrap()),
    )
    .unwrap();
    let addr = e.local_addr();
    let mut s = connect(addr);
    let mut r = BufReader::new(s.try_clone().unwrap());
    get(&mut s, "/");
    assert_eq!(read_response(&mut r).unwrap().text(), "from the host");
    let e = Arc::new(e);
    let closer = {
        let e = Arc::clone(&e);
        std::thread::spawn(move || e.shutdown(DEADLINE).unwrap())
    };
    // Once a new connection is refused the engine no longer accepts, and drains.
    wait_until("the engine stops accepting", || std::net::TcpStream::connect(addr).is_err());
    get(&mut s, "/");
    let resp = read_response(&mut r).expect("the request sent during the drain is answered");
    // Framed once the drain began, the reply says `connection: close`; framed in the
    // instant between the listeners stopping and the drain, it does not, and the idle
    // connection is closed after the drain's grace instead. Either way: answered, then
    // closed.
    assert_eq!(resp.status, 200);
    assert!(matches!(resp.header("connection"), Some("close") | None), "{:?}", resp.headers);
    assert!(read_response(&mut r).is_none(), "then the connection closes");
    let report = closer.join().unwrap();
    assert!(report.clean, "{report:?}");
    drop(e);
    host.join().unwrap();
}
