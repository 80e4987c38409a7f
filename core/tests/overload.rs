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
