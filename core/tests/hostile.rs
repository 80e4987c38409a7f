//! Hostile clients are bounded while normal clients are served: slowloris connections
//! trickling headers are closed at the header deadline, and a peer that never reads
//! its replies stops being read and is closed at the idle deadline.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use corral::{handler_fn, Config, Engine, Response};

#[test]
fn slowloris_connections_are_closed_at_the_deadline_while_a_normal_client_is_served() {
    let cfg = Config::builder().io_workers(2).header_timeout(Duration::from_millis(800)).build().unwrap();
    let e = Engine::serve(cfg, TestApp).unwrap();
    let addr = e.local_addr();
    // 200 connections that send a head byte by byte and never finish it.
    let mut slow: Vec<TcpStream> = (0..200).map(|_| connect(addr)).collect();
    for s in &mut slow {
        s.write_all(b"GET / HTTP/1.1\r\nX-Slow: ").unwrap();
    }
    // A normal client is served meanwhile, many times.
    let mut normal = connect(addr);
    let mut r = BufReader::new(normal.try_clone().unwrap());
    for _ in 0..50 {
        get(&mut normal, "/");
        assert_eq!(read_response(&mut r).unwrap().status, 200);
    }
    // Keep trickling: the header deadline counts from the first byte of the head, so
    // trickling does not extend it.
    for s in &mut slow {
        let _ = s.write_all(b"a");
    }
    let t0 = Instant::now();
    for s in &mut slow {
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest); // EOF (or reset) once closed
        assert!(rest.is_empty(), "closed without a reply");
    }
    assert!(t0.elapsed() < DEADLINE, "every slowloris connection was closed");
    wait_until("all 200 timeouts counted", || e.stats().connections_timed_out >= 200);
    get(&mut normal, "/");
    assert_eq!(read_response(&mut r).unwrap().status, 200, "the normal client is still served");
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn a_peer_that_never_reads_is_closed_at_the_idle_deadline() {
    let big = handler_fn(|_req, res| res.respond(Response::new(200).body(vec![b'x'; 256 << 10])));
    let cfg = Config::builder().io_workers(1).idle_timeout(Duration::from_millis(500)).build().unwrap();
    let e = Engine::serve(cfg, big).unwrap();
    let addr = e.local_addr();
    let mut reader_never = connect(addr);
    reader_never.write_all("GET / HTTP/1.1\r\n\r\n".repeat(200).as_bytes()).unwrap();
    // Replies pile up in the socket buffers; the server stops reading this peer and,
    // with no progress for the idle timeout, closes it.
    wait_until("the non-reading peer is closed", || e.stats().connections_timed_out == 1);
    assert!(e.stats().requests() < 200, "its requests stopped being read");
    // Meanwhile a normal client is served.
    let mut normal = connect(addr);
    get(&mut normal, "/");
    assert_eq!(read_response(&mut BufReader::new(normal)).unwrap().body.len(), 256 << 10);
    drop(reader_never);
    e.shutdown(DEADLINE).unwrap();
}
