//! Serving over real loopback sockets: HTTP keep-alive and pipelining, ordering of
//! mixed light/heavy replies, the CPU pool keeping light requests responsive, framers
//! end to end, bad input, handler failures, and replies completed from other threads.

mod common;

use std::io::{BufReader, Read, Write};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use common::*;
use corral::{handler_fn, Config, Cost, Engine, Handler, Protocol, Request, Responder, Response};

fn engine(cfg: corral::ConfigBuilder) -> Engine {
    Engine::serve(cfg.build().unwrap(), TestApp).unwrap()
}

#[test]
fn keep_alive_requests_on_one_connection() {
    let e = engine(Config::builder().io_workers(2).cpu_threads(1));
    let mut s = connect(e.local_addr());
    let mut r = BufReader::new(s.try_clone().unwrap());
    for _ in 0..50 {
        get(&mut s, "/");
        let resp = read_response(&mut r).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), "hello\n");
    }
    let stats = e.stats();
    assert_eq!(stats.requests(), 50);
    assert_eq!(stats.accepts(), 1);
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn pipelined_light_and_heavy_come_back_in_order() {
    let e = engine(Config::builder().io_workers(2).cpu_threads(2));
    let mut s = connect(e.local_addr());
    let mut batch = String::new();
    let paths: Vec<String> =
        (0..40).map(|i| if i % 3 == 0 { format!("/work?us={}", 3000 - i * 50) } else { "/seq".to_string() }).collect();
    for p in &paths {
        batch += &format!("GET {p} HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    s.write_all(batch.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    for (i, p) in paths.iter().enumerate() {
        let resp = read_response(&mut r).unwrap();
        if p.starts_with("/work") {
            assert_eq!(resp.text(), format!("worked {}\n", 3000 - i * 50), "reply {i}");
        } else {
            assert_eq!(resp.text(), i.to_string(), "reply {i}");
        }
    }
    let st = e.stats();
    assert_eq!(st.cpu.submitted, 14, "heavy requests went to the CPU pool: {:?}", st.cpu);
    e.shutdown(DEADLINE).unwrap();
}

/// A handler whose heavy requests block until released: it holds every CPU thread.
struct Blocker {
    entered: Mutex<mpsc::Sender<()>>,
    release: Arc<Barrier>,
}

impl Handler for Blocker {
    fn cost(&self, req: &Request) -> Cost {
        if req.http().is_some_and(|h| h.path_only() == "/block") {
            Cost::Heavy
        } else {
            Cost::Light
        }
    }
    fn handle(&self, req: Request, res: Responder) {
        if req.http().is_some_and(|h| h.path_only() == "/block") {
            self.entered.lock().unwrap().send(()).unwrap();
            self.release.wait();
        }
        res.respond("ok");
    }
}

#[test]
fn heavy_requests_holding_the_cpu_pool_do_not_stop_light_ones() {
    let (tx, rx) = mpsc::channel();
    let release = Arc::new(Barrier::new(3));
    let app = Blocker { entered: Mutex::new(tx), release: Arc::clone(&release) };
    let e = Engine::serve(Config::builder().io_workers(2).cpu_threads(2).build().unwrap(), app).unwrap();
    let addr = e.local_addr();
    let mut heavy = Vec::new();
    for _ in 0..2 {
        let mut s = connect(addr);
        get(&mut s, "/block");
        heavy.push(s);
    }
    rx.recv_timeout(DEADLINE).unwrap();
    rx.recv_timeout(DEADLINE).unwrap();
    // Both CPU threads are held; light requests on other connections still answer.
    for _ in 0..10 {
        let resp = get_once(addr, "/");
        assert_eq!(resp.status, 200);
    }
    release.wait();
    for s in heavy {
        assert_eq!(read_response(&mut BufReader::new(s)).unwrap().status, 200);
    }
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn responder_completed_later_from_another_thread() {
    let (tx, rx) = mpsc::channel::<Responder>();
    let tx = Mutex::new(tx);
    let e = Engine::serve(
        Config::builder().io_workers(1).build().unwrap(),
        handler_fn(move |_req, res| tx.lock().unwrap().send(res).unwrap()),
    )
    .unwrap();
    let mut s = connect(e.local_addr());
    get(&mut s, "/a");
    get(&mut s, "/b");
    let first = rx.recv_timeout(DEADLINE).unwrap();
    let second = rx.recv_timeout(DEADLINE).unwrap();
    // Answer out of order, from a thread the engine does not know.
    std::thread::spawn(move || {
        second.respond(Response::new(200).body("second"));
        first.respond(Response::new(200).body("first"));
    })
    .join()
    .unwrap();
    let mut r = BufReader::new(s);
    assert_eq!(read_response(&mut r).unwrap().text(), "first");
    assert_eq!(read_response(&mut r).unwrap().text(), "second");
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn panics_and_dropped_responders_get_500_and_the_engine_lives() {
    let e = engine(Config::builder().io_workers(1).cpu_threads(1));
    let mut s = connect(e.local_addr());
    let mut r = BufReader::new(s.try_clone().unwrap());
    get(&mut s, "/panic");
    assert_eq!(read_response(&mut r).unwrap().status, 500);
    get(&mut s, "/drop");
    assert_eq!(read_response(&mut r).unwrap().status, 500);
    get(&mut s, "/");
    assert_eq!(read_response(&mut r).unwrap().status, 200, "same connection still served");
    let st = e.stats();
    assert_eq!(st.handler_panics, 1);
    assert_eq!(st.handler_failures, 2);
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn bad_http_gets_400_then_close() {
    let e = engine(Config::builder().io_workers(1));
    let mut s = connect(e.local_addr());
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nNOT HTTP AT ALL\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    assert_eq!(read_response(&mut r).unwrap().status, 200, "the good request before is answered");
    let bad = read_response(&mut r).unwrap();
    assert_eq!(bad.status, 400);
    assert_eq!(bad.header("connection"), Some("close"));
    assert!(read_response(&mut r).is_none(), "then closed");
    assert_eq!(e.stats().requests_rejected, 1);
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn oversized_body_gets_413() {
    let e = engine(Config::builder().io_workers(1).max_frame(1000));
    let mut s = connect(e.local_addr());
    s.write_all(b"POST /echo HTTP/1.1\r\nContent-Length: 5000\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    assert_eq!(read_response(&mut r).unwrap().status, 413);
    assert!(read_response(&mut r).is_none());
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn chunked_body_and_expect_continue() {
    let e = engine(Config::builder().io_workers(1));
    let mut s = connect(e.local_addr());
    s.write_all(b"POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n").unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    assert_eq!(read_response(&mut r).unwrap().text(), "hello");
    assert_eq!(read_response(&mut r).unwrap().text(), "abcde");
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn connection_close_and_http10() {
    let e = engine(Config::builder().io_workers(1));
    let mut s = connect(e.local_addr());
    s.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let resp = read_response(&mut r).unwrap();
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(read_response(&mut r).is_none());
    let mut s = connect(e.local_addr());
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.0 200 OK\r\n"), "{out}");
    e.shutdown(DEADLINE).unwrap();
}

fn echo_engine(p: Protocol, max_frame: usize) -> Engine {
    engine(Config::builder().io_workers(2).protocol(p).max_frame(max_frame))
}

#[test]
fn lines_framer_end_to_end() {
    let e = echo_engine(Protocol::Lines, 16);
    let mut s = connect(e.local_addr());
    s.write_all(b"one\r\ntwo\nthr").unwrap();
    s.write_all(b"ee\n").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    for want in ["ONE\n", "TWO\n", "THREE\n"] {
        line.clear();
        std::io::BufRead::read_line(&mut r, &mut line).unwrap();
        assert_eq!(line, want);
    }
    s.write_all(&[b'x'; 40]).unwrap();
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "an over-long line closes the connection without a reply");
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn length_framer_end_to_end() {
    let e = echo_engine(Protocol::Length, 64);
    let mut s = connect(e.local_addr());
    for msg in [&b"abc"[..], b"", b"hello world"] {
        s.write_all(&(msg.len() as u32).to_be_bytes()).unwrap();
        s.write_all(msg).unwrap();
    }
    for msg in [&b"ABC"[..], b"", b"HELLO WORLD"] {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut body = vec![0; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut body).unwrap();
        assert_eq!(body, msg);
    }
    s.write_all(&1000u32.to_be_bytes()).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "an oversized frame is refused by closing");
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn raw_framer_end_to_end() {
    let e = echo_engine(Protocol::Raw, 64);
    let mut s = connect(e.local_addr());
    s.write_all(b"abc").unwrap();
    let mut got = [0u8; 3];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ABC");
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn many_concurrent_clients() {
    let e = engine(Config::builder().io_workers(2).cpu_threads(2));
    let addr = e.local_addr();
    let threads: Vec<_> = (0..16)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = connect(addr);
                let mut r = BufReader::new(s.try_clone().unwrap());
                for k in 0..100 {
                    let path = if (i + k) % 10 == 0 { "/work?us=200" } else { "/" };
                    get(&mut s, path);
                    assert_eq!(read_response(&mut r).unwrap().status, 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let st = e.stats();
    assert_eq!(st.requests(), 1600);
    assert_eq!(st.replies, 1600);
    let report = e.shutdown(DEADLINE).unwrap();
    assert_eq!(report.requests_completed, 1600);
    assert_eq!(report.requests_aborted, 0);
    let _ = Duration::ZERO;
}

/// Holds every responder until the test releases them.
struct Parked(Mutex<mpsc::Sender<Responder>>);

impl Handler for Parked {
    fn handle(&self, _req: Request, res: Responder) {
        self.0.lock().unwrap().send(res).unwrap();
    }
}

#[test]
fn in_flight_cap_stops_reading_until_replies_go_out() {
    let (tx, rx) = mpsc::channel();
    let cfg = Config::builder().io_workers(1).max_in_flight(2).build().unwrap();
    let e = Engine::serve(cfg, Parked(Mutex::new(tx))).unwrap();
    let mut s = connect(e.local_addr());
    s.write_all("GET / HTTP/1.1\r\n\r\n".repeat(10).as_bytes()).unwrap();
    let first: Vec<Responder> = (0..2).map(|_| rx.recv_timeout(DEADLINE).unwrap()).collect();
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "no third request is framed at the cap");
    assert_eq!(e.stats().requests(), 2);
    for (i, r) in first.into_iter().enumerate() {
        r.respond(Response::new(200).body(i.to_string()));
    }
    let mut rest = Vec::new();
    for i in 2..10 {
        let r = rx.recv_timeout(DEADLINE).unwrap();
        assert_eq!(r.seq(), i);
        rest.push(r);
        if rest.len() == 2 {
            for r in rest.drain(..) {
                let seq = r.seq();
                r.respond(Response::new(200).body(seq.to_string()));
            }
        }
    }
    let mut r = BufReader::new(s);
    for i in 0..10 {
        assert_eq!(read_response(&mut r).unwrap().text(), i.to_string());
    }
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn a_peer_that_does_not_read_stops_being_read() {
    const N: usize = 400; // 400 x 64 KiB replies: far more than loopback socket buffers hold
    let big = handler_fn(|_req, res| res.respond(Response::new(200).body(vec![b'x'; 64 << 10])));
    let e = Engine::serve(Config::builder().io_workers(1).build().unwrap(), big).unwrap();
    let mut s = connect(e.local_addr());
    s.write_all("GET / HTTP/1.1\r\n\r\n".repeat(N).as_bytes()).unwrap();
    // Let the server run until its writes block; without back-pressure it would frame
    // all N requests at once.
    wait_until("the server frames some requests", || e.stats().requests() > 0);
    let mut last = 0;
    wait_until("the server stops making progress", || {
        let now = e.stats().requests();
        let stable = now == last;
        last = now;
        std::thread::sleep(Duration::from_millis(100));
        stable
    });
    let framed = e.stats().requests();
    assert!(framed < N as u64, "requests are not read while replies are unread: {framed} framed");
    let mut r = BufReader::new(s);
    for _ in 0..N {
        assert_eq!(read_response(&mut r).unwrap().body.len(), 64 << 10);
    }
    assert_eq!(e.stats().requests(), N as u64);
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn a_request_followed_at_once_by_a_half_close_is_answered_then_closed() {
    let e = engine(Config::builder().io_workers(1));
    for _ in 0..50 {
        let mut s = connect(e.local_addr());
        // The FIN is on its way before the server reads the request.
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        assert!(out.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&out));
    }
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn a_connection_is_closed_after_max_requests_and_the_last_reply_says_so() {
    let e = engine(Config::builder().io_workers(1).max_requests_per_connection(3));
    let mut s = connect(e.local_addr());
    s.write_all("GET /seq HTTP/1.1\r\n\r\n".repeat(5).as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    for i in 0..3 {
        let resp = read_response(&mut r).unwrap();
        assert_eq!(resp.text(), i.to_string());
        assert_eq!(resp.header("connection"), if i == 2 { Some("close") } else { None });
    }
    assert!(read_response(&mut r).is_none(), "closed after the third");
    e.shutdown(DEADLINE).unwrap();
}

/// A handler that queues for a thread of its own learns where it runs (`on_io_worker`)
/// and is told when an I/O worker's round ends, after the requests it framed: here the
/// "host" is woken only by `end_of_round`, and every request is still answered.
#[test]
fn end_of_round_follows_requests_handled_on_an_io_worker() {
    struct Queued {
        queue: Mutex<Vec<Responder>>,
        tx: Mutex<mpsc::Sender<Vec<Responder>>>,
        heavy_on_worker: std::sync::atomic::AtomicBool,
    }
    impl Handler for Queued {
        fn cost(&self, req: &Request) -> Cost {
            if req.http().is_some_and(|h| h.path_only() == "/heavy") {
                Cost::Heavy
            } else {
                Cost::Light
            }
        }
        fn handle(&self, req: Request, res: Responder) {
            if req.http().is_some_and(|h| h.path_only() == "/heavy") {
                self.heavy_on_worker.store(corral::on_io_worker(), std::sync::atomic::Ordering::SeqCst);
                return res.respond(Response::new(200).body("heavy"));
            }
            assert!(corral::on_io_worker(), "light requests are handled on an I/O worker");
            self.queue.lock().unwrap().push(res); // no wake-up here
        }
        fn end_of_round(&self) {
            let batch = std::mem::take(&mut *self.queue.lock().unwrap());
            if !batch.is_empty() {
                self.tx.lock().unwrap().send(batch).unwrap();
            }
        }
    }
    let (tx, rx) = mpsc::channel::<Vec<Responder>>();
    let host = std::thread::spawn(move || {
        for batch in rx {
            for res in batch {
                res.respond(Response::new(200).body("queued"));
            }
        }
    });
    let app = Arc::new(Queued {
        queue: Mutex::new(Vec::new()),
        tx: Mutex::new(tx),
        heavy_on_worker: std::sync::atomic::AtomicBool::new(true),
    });
    let e = Engine::serve(Config::builder().io_workers(2).cpu_threads(1).build().unwrap(), Arc::clone(&app)).unwrap();
    let mut s = connect(e.local_addr());
    let mut r = BufReader::new(s.try_clone().unwrap());
    for _ in 0..20 {
        get(&mut s, "/");
        assert_eq!(read_response(&mut r).unwrap().text(), "queued");
    }
    get(&mut s, "/heavy");
    assert_eq!(read_response(&mut r).unwrap().text(), "heavy");
    assert!(!app.heavy_on_worker.load(std::sync::atomic::Ordering::SeqCst), "the CPU pool is not an I/O worker");
    e.shutdown(DEADLINE).unwrap();
    drop(app);
    drop(e);
    host.join().unwrap();
}
