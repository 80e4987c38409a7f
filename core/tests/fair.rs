//! Fair shares per client, on real loopback sockets: the CPU pool serves clients by
//! deficit round robin (a polite client's heavy request does not wait behind a greedy
//! client's queue), and the per-client rate limit answers 429 with Retry-After,
//! keyed on the source address or on the `client_key_header` token.
//!
//! Clients come from distinct loopback addresses (127.0.0.2, .3, ...): a client is its
//! address unless a request names it.

mod common;

use std::io::{BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::{Arc, Condvar, Mutex};

use common::*;
use corral::{Config, Cost, Engine, Handler, Request, Responder, Response};
use socket2::{Domain, Socket, Type};

/// A connection from loopback address 127.0.0.`host`.
fn connect_from(host: u8, addr: SocketAddr) -> TcpStream {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, host), 0).into()).expect("bind a loopback source");
    s.connect(&addr.into()).expect("connect");
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Heavy requests wait for the gate to open (so the test decides what is queued
/// before anything runs), spin 2 ms, and record whose they were, in the order the pool
/// ran them.
struct Recorder {
    ran: Mutex<Vec<String>>,
    open: Mutex<bool>,
    opened: Condvar,
}

impl Handler for Recorder {
    fn cost(&self, _req: &Request) -> Cost {
        Cost::Heavy
    }
    fn handle(&self, req: Request, res: Responder) {
        let who = req.http().and_then(|h| h.query("who")).unwrap_or("?").to_string();
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        drop(open);
        spin(2000);
        self.ran.lock().unwrap().push(who);
        res.respond(Response::new(200).body("ok\n"));
    }
}

/// Client .2 queues 24 heavy requests (pipelined on 4 connections) on a one-thread
/// pool whose first job holds the thread; then clients .3 and .4 send one each; then
/// the gate opens. Returns the order of service.
fn greedy_then_polite(fair: bool) -> Vec<String> {
    let cfg = Config::builder().io_workers(1).cpu_threads(1).fair_share(fair).build().unwrap();
    let app = Arc::new(Recorder { ran: Mutex::new(Vec::new()), open: Mutex::new(false), opened: Condvar::new() });
    let e = Engine::serve(cfg, Arc::clone(&app)).unwrap();
    let addr = e.local_addr();
    let mut greedy: Vec<TcpStream> = (0..4).map(|_| connect_from(2, addr)).collect();
    for s in &mut greedy {
        for _ in 0..6 {
            get(s, "/work?who=greedy");
        }
    }
    // One job holds the thread, the other 23 wait.
    wait_until("the greedy client's requests are queued", || e.stats().cpu.queued == 23);
    let mut polite: Vec<TcpStream> = [3, 4].iter().map(|&h| connect_from(h, addr)).collect();
    for (s, who) in polite.iter_mut().zip(["polite3", "polite4"]) {
        get(s, &format!("/work?who={who}"));
    }
    wait_until("the polite requests are queued", || e.stats().cpu.queued == 25);
    *app.open.lock().unwrap() = true;
    app.opened.notify_all();
    let expected = polite.into_iter().map(|s| (s, 1)).chain(greedy.into_iter().map(|s| (s, 6)));
    for (s, n) in expected {
        let mut r = BufReader::new(s);
        for _ in 0..n {
            assert_eq!(read_response(&mut r).expect("every request is answered").status, 200);
        }
    }
    e.shutdown(DEADLINE).unwrap();
    let ran = app.ran.lock().unwrap().clone();
    assert_eq!(ran.len(), 26, "every request ran once: {ran:?}");
    ran
}

fn position(order: &[String], who: &str) -> usize {
    order.iter().position(|w| w == who).unwrap_or_else(|| panic!("{who} ran: {order:?}"))
}

#[test]
fn a_polite_heavy_request_waits_for_a_quantum_not_for_the_greedy_queue() {
    let order = greedy_then_polite(true);
    // 23 greedy requests and then 2 polite ones wait while one greedy request holds
    // the thread: each polite one runs after at most one more greedy one (a quantum is
    // about one request), not after the 23.
    assert!(position(&order, "polite3") <= 3, "{order:?}");
    assert!(position(&order, "polite4") <= 3, "{order:?}");
}

#[test]
fn without_fair_shares_the_queue_is_first_in_first_out() {
    // The control: the same arrivals served in arrival order leave the polite requests
    // at the end, so the test above measures the fair queue, not luck.
    let order = greedy_then_polite(false);
    assert!(position(&order, "polite3") >= 24, "{order:?}");
    assert!(position(&order, "polite4") >= 24, "{order:?}");
}

fn send(s: &mut TcpStream, token: Option<&str>) {
    let key = token.map(|t| format!("X-Api-Key: {t}\r\n")).unwrap_or_default();
    write!(s, "GET / HTTP/1.1\r\nHost: t\r\n{key}\r\n").unwrap();
}

/// `n` requests on one connection from 127.0.0.`host`, pipelined; their statuses.
fn burst(addr: SocketAddr, host: u8, token: Option<&str>, n: usize) -> Vec<(u16, Option<String>)> {
    let mut s = connect_from(host, addr);
    for _ in 0..n {
        send(&mut s, token);
    }
    let mut r = BufReader::new(s);
    (0..n)
        .map(|_| {
            let resp = read_response(&mut r).expect("every request is answered");
            (resp.status, resp.header("retry-after").map(str::to_string))
        })
        .collect()
}

#[test]
fn over_its_rate_a_client_gets_429_with_retry_after_and_others_do_not() {
    // One a minute on average, 2 more at once: 3 pass, the rest are refused, whatever
    // the machine's speed.
    let cfg = Config::builder().io_workers(2).rate_limit(1).rate_burst(2).build().unwrap();
    let e = Engine::serve(cfg, TestApp).unwrap();
    let addr = e.local_addr();
    let got = burst(addr, 2, None, 6);
    let statuses: Vec<u16> = got.iter().map(|g| g.0).collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);
    for (_, retry) in &got[3..] {
        let secs: u64 = retry.as_deref().expect("a 429 says when to retry").parse().expect("whole seconds");
        assert!((1..=1).contains(&secs), "one request a second: retry within a second, said {secs}");
    }
    // Another address is another client, with its own burst.
    assert!(burst(addr, 3, None, 3).iter().all(|g| g.0 == 200));
    let st = e.stats();
    assert_eq!(st.requests_rate_limited, 3);
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn a_client_key_header_names_the_client_across_addresses() {
    let cfg = Config::builder()
        .io_workers(2)
        .rate_limit(1)
        .rate_burst(1)
        .client_key_header("X-Api-Key".into())
        .build()
        .unwrap();
    let e = Engine::serve(cfg, TestApp).unwrap();
    let addr = e.local_addr();
    // Token "a" from two addresses is one client: 2 pass in all.
    assert_eq!(burst(addr, 2, Some("a"), 2).iter().filter(|g| g.0 == 200).count(), 2);
    assert_eq!(burst(addr, 3, Some("a"), 1)[0].0, 429, "same token, other address: same client");
    // Token "b" from the first address is another client.
    assert_eq!(burst(addr, 2, Some("b"), 2).iter().filter(|g| g.0 == 200).count(), 2);
    e.shutdown(DEADLINE).unwrap();
}
