//! Overload shedding on the CPU-pool queue: with a standing queue, CoDel refuses the
//! requests that waited too long with an explicit 503 at dequeue; none is lost or left
//! to time out silently.

mod common;

use std::io::BufReader;
use std::time::Duration;

use common::*;
use corral::{Config, Engine};

#[test]
fn a_standing_queue_sheds_with_503_and_every_request_is_answered() {
    const N: usize = 60;
    let cfg = Config::builder()
        .io_workers(2)
        .cpu_threads(1)
        .codel_target(Some(Duration::from_millis(5)))
        .codel_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let e = Engine::serve(cfg, TestApp).unwrap();
    let addr = e.local_addr();
    // 60 heavy requests of 20 ms each at once, on one CPU thread: a 1.2 s standing queue.
    let mut conns: Vec<_> = (0..N)
        .map(|_| {
            let mut s = connect(addr);
            get(&mut s, "/work?us=20000");
            s
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for s in conns.drain(..) {
        let resp = read_response(&mut BufReader::new(s)).expect("every request gets an answer");
        match resp.status {
            200 => ok += 1,
            503 => {
                assert_eq!(resp.header("retry-after"), Some("1"));
                refused += 1
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok + refused, N);
    assert!(ok > 0, "the queue served while it was short");
    assert!(refused > 0, "and shed once it stood");
    let st = e.stats();
    assert_eq!(st.cpu.shed, refused as u64, "each refusal is counted");
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn codel_can_be_turned_off() {
    let cfg = Config::builder().io_workers(1).cpu_threads(1).codel_target(None).build().unwrap();
    let e = Engine::serve(cfg, TestApp).unwrap();
    let conns: Vec<_> = (0..10)
        .map(|_| {
            let mut s = connect(e.local_addr());
            get(&mut s, "/work?us=20000");
            s
        })
        .collect();
    for s in conns {
        assert_eq!(read_response(&mut BufReader::new(s)).unwrap().status, 200);
    }
    assert_eq!(e.stats().cpu.shed, 0);
    e.shutdown(DEADLINE).unwrap();
}

/// Heavy requests whose handler records the order it ran them in; `/block` holds the
/// only CPU thread until released.
#[derive(Default)]
struct OrderApp {
    ran: std::sync::Mutex<Vec<u32>>,
    gate: std::sync::Mutex<bool>,
    open: std::sync::Condvar,
    blocked: std::sync::atomic::AtomicBool,
}

impl corral::Handler for OrderApp {
    fn cost(&self, _req: &corral::Request) -> corral::Cost {
        corral::Cost::Heavy
    }
    fn handle(&self, req: corral::Request, res: corral::Responder) {
        let h = req.http().expect("http");
        if h.path_only() == "/block" {
            self.blocked.store(true, std::sync::atomic::Ordering::SeqCst);
            let mut g = self.gate.lock().unwrap();
            while !*g {
                g = self.open.wait(g).unwrap();
            }
        } else {
            self.ran.lock().unwrap().push(h.query("n").unwrap().parse().unwrap());
        }
        res.respond(corral::Response::new(200).body("ok\n"));
    }
}

#[test]
fn above_the_fill_threshold_the_newest_jobs_run_first() {
    let app = std::sync::Arc::new(OrderApp::default());
    let cfg = Config::builder().io_workers(1).cpu_threads(1).lifo_threshold(3).build().unwrap();
    let e = Engine::serve(cfg, std::sync::Arc::clone(&app)).unwrap();
    let addr = e.local_addr();
    let mut blocker = connect(addr);
    get(&mut blocker, "/block");
    wait_until("the CPU thread is held", || app.blocked.load(std::sync::atomic::Ordering::SeqCst));
    // Seven jobs, queued one after another while the only CPU thread is held.
    let conns: Vec<_> = (1..=7)
        .map(|n| {
            let mut s = connect(addr);
            get(&mut s, &format!("/job?n={n}"));
            wait_until("the job is queued", || e.stats().cpu.queued == n);
            s
        })
        .collect();
    let st = e.stats();
    assert!(st.cpu.lifo, "jobs wait on the LIFO stack");
    *app.gate.lock().unwrap() = true;
    app.open.notify_all();
    for s in std::iter::once(blocker).chain(conns) {
        assert_eq!(read_response(&mut BufReader::new(s)).unwrap().status, 200);
    }
    // Jobs 1-3 were queued below the threshold (first in, first out); 4-7 above it.
    assert_eq!(*app.ran.lock().unwrap(), vec![7, 6, 5, 4, 1, 2, 3]);
    let st = e.stats();
    assert_eq!((st.cpu.lifo_served, st.cpu.lifo), (4, false));
    assert!(st.to_prometheus().contains("corral_cpu_lifo_served_total 4"));
    e.shutdown(DEADLINE).unwrap();
}
