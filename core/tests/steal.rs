//! Work stealing, shown deterministically with latches: while one worker is held inside
//! a handler, connections that become ready on it are served by the other (epoll; on
//! io_uring they wait for their home worker, which this checks instead).

mod common;

use std::collections::HashMap;
use std::io::BufReader;
use std::net::TcpStream;
use std::sync::mpsc;
use std::sync::Mutex;

use common::*;
use corral::{Config, Engine, Handler, Request, Responder, Response};

struct Holder {
    held: Mutex<mpsc::Sender<usize>>,
    release: Mutex<mpsc::Receiver<()>>,
}

impl Handler for Holder {
    fn handle(&self, req: Request, res: Responder) {
        match req.http().map(|h| h.path_only()) {
            Some("/hold") => {
                self.held.lock().unwrap().send(req.worker()).unwrap();
                // Hold this worker until the test says so.
                self.release.lock().unwrap().recv().unwrap();
                res.respond(Response::new(200).body("released"));
            }
            _ => res.respond(Response::new(200).body(req.worker().to_string())),
        }
    }
}

fn ask_worker(s: &mut TcpStream, r: &mut BufReader<TcpStream>) -> usize {
    get(s, "/worker");
    read_response(r).expect("a reply").text().parse().unwrap()
}

#[test]
fn a_held_worker_s_ready_connections_are_served_by_another() {
    for in_workers in [true, false] {
        let (held_tx, held_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        let app = Holder { held: Mutex::new(held_tx), release: Mutex::new(release_rx) };
        let cfg = Config::builder().io_workers(2).acceptors(2).cpu_threads(1).accept_in_workers(in_workers);
        let e = Engine::serve(cfg.build().unwrap(), app).unwrap();
        let addr = e.local_addr();

        // Open connections until some worker is home to at least two (the first request
        // of a connection runs on its home worker).
        let mut by_home: HashMap<usize, Vec<(TcpStream, BufReader<TcpStream>)>> = HashMap::new();
        for _ in 0..64 {
            let mut s = connect(addr);
            let mut r = BufReader::new(s.try_clone().unwrap());
            let home = ask_worker(&mut s, &mut r);
            by_home.entry(home).or_default().push((s, r));
            if by_home.values().any(|v| v.len() >= 2) {
                break;
            }
        }
        let (&home, conns) = by_home.iter_mut().find(|(_, v)| v.len() >= 2).expect("two connections share a worker");
        let (mut blocker, mut blocker_r) = conns.pop().unwrap();
        let (mut victim, mut victim_r) = conns.pop().unwrap();

        get(&mut blocker, "/hold");
        let held = held_rx.recv_timeout(DEADLINE).expect("the hold request runs");
        assert_eq!(held, home, "a connection's requests run on its home worker while it is free");
        let stolen_before = e.stats().stolen();

        if e.stats().backend == "io_uring" {
            // On io_uring a connection's I/O is its home ring's, which only the home
            // worker's thread drives (ARCHITECTURE, "io_uring"): the victim waits for
            // its home, and is served, in order, once the home is free.
            eprintln!("io_uring: a held worker's connections wait for it (no readiness takeover)");
            get(&mut victim, "/worker");
            assert!(silent_for(&victim, std::time::Duration::from_millis(200)), "waits while its home is held");
            release_tx.send(()).unwrap();
            assert_eq!(read_response(&mut blocker_r).unwrap().text(), "released");
            // Served once its home reaps its ring again (by the home, or by a sibling
            // that steals the turn from the home's deque then).
            let served_by: usize =
                read_response(&mut victim_r).expect("served after the release").text().parse().unwrap();
            assert!(served_by < 2, "served by worker {served_by}");
            e.shutdown(DEADLINE).unwrap();
            continue;
        }
        // The victim's home is held: its request must be served by the other worker.
        let served_by = ask_worker(&mut victim, &mut victim_r);
        assert_ne!(served_by, home, "served by a sibling while the home worker is held (in_workers={in_workers})");
        let st = e.stats();
        assert!(st.stolen() > stolen_before, "steal counters rose: {:?}", st.workers);
        assert!(st.workers[served_by].steal_ops > 0);

        release_tx.send(()).unwrap();
        assert_eq!(read_response(&mut blocker_r).unwrap().text(), "released");
        e.shutdown(DEADLINE).unwrap();
    }
}
