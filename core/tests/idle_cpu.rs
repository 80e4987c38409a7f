//! An idle engine (all workers parked) uses close to no CPU. Its own test binary, so
//! no other test's threads count against it.

mod common;

use std::io::BufReader;
use std::time::{Duration, Instant};

use common::*;
use corral::{Config, Engine};

#[test]
fn an_idle_engine_uses_close_to_no_cpu() {
    let e = Engine::serve(Config::builder().io_workers(2).cpu_threads(2).build().unwrap(), TestApp).unwrap();
    // Some open, idle keep-alive connections, as a real idle server has.
    let mut conns = Vec::new();
    for _ in 0..8 {
        let mut s = connect(e.local_addr());
        get(&mut s, "/");
        assert_eq!(read_response(&mut BufReader::new(s.try_clone().unwrap())).unwrap().status, 200);
        conns.push(s);
    }
    let cpu0 = corral::os::process_cpu_time();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let cpu = corral::os::process_cpu_time() - cpu0;
    let wall = t0.elapsed();
    // Generous bound: a spinning worker would use ~100% of a core, this allows 2%.
    assert!(cpu < wall / 50, "idle engine used {cpu:?} of CPU over {wall:?}");
    e.shutdown(DEADLINE).unwrap();
}
