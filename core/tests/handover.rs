//! Restarts under load without losing a request: an engine hands its listening sockets
//! to the next one (as a new process would take them) twenty times while keep-alive
//! clients and new-connection-per-request clients run; every request gets its reply,
//! none is refused or reset, and every generation served.

mod common;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use common::*;
use corral::{handler_fn, Config, ConfigBuilder, Engine, Response};

fn generation(cfg: ConfigBuilder, gen: u64) -> Engine {
    Engine::serve(
        cfg.io_workers(2).build().unwrap(),
        handler_fn(move |_req, res| res.respond(Response::new(200).body(gen.to_string()))),
    )
    .unwrap()
}

#[derive(Default)]
struct Tally {
    answered: AtomicU64,
    failed: AtomicU64,
    seen: Mutex<std::collections::BTreeSet<u64>>,
}

/// One client: keep-alive (reconnecting when a reply says `connection: close`) or a
/// new connection per request. A request sent and not answered is a failure.
fn client(addr: SocketAddr, keep_alive: bool, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
    while !stop.load(SeqCst) {
        let (s, r) = match conn.as_mut() {
            Some(c) => c,
            None => match TcpStream::connect(addr) {
                Ok(s) => {
                    s.set_read_timeout(Some(DEADLINE)).unwrap();
                    let r = BufReader::new(s.try_clone().unwrap());
                    conn.insert((s, r))
                }
                Err(_) => {
                    tally.failed.fetch_add(1, SeqCst);
                    continue;
                }
            },
        };
        let close = if keep_alive { "" } else { "Connection: close\r\n" };
        let sent = write!(s, "GET / HTTP/1.1\r\nHost: t\r\n{close}\r\n").is_ok();
        match read_response(r).filter(|_| sent) {
            Some(resp) if resp.status == 200 => {
                tally.answered.fetch_add(1, SeqCst);
                tally.seen.lock().unwrap().insert(resp.text().parse().unwrap());
                if !keep_alive || resp.header("connection") == Some("close") {
                    conn = None;
                }
            }
            _ => {
                tally.failed.fetch_add(1, SeqCst);
                conn = None;
            }
        }
    }
}

#[test]
fn twenty_hand_overs_under_load_lose_nothing() {
    let dir = std::env::temp_dir().join(format!("corral-handover-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("listeners.sock");
    let mut current = generation(Config::builder().addr("127.0.0.1:0".parse().unwrap()), 0);
    let addr = current.local_addr();
    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (stop, tally) = (Arc::clone(&stop), Arc::clone(&tally));
            std::thread::spawn(move || client(addr, i % 2 == 0, stop, tally))
        })
        .collect();
    for gen in 1..=20u64 {
        let before = tally.answered.load(SeqCst);
        wait_until("the clients are served by this generation", || tally.answered.load(SeqCst) >= before + 50);
        let next = {
            let path = path.clone();
            std::thread::spawn(move || {
                let cfg = Config::builder().listeners_from(&path, DEADLINE).expect("take the listeners");
                generation(cfg, gen)
            })
        };
        current.hand_over(&path, DEADLINE).expect("hand over");
        let report = current.shutdown(DEADLINE).unwrap();
        assert!(report.clean && report.requests_aborted == 0, "generation {}: {report:?}", gen - 1);
        current = next.join().unwrap();
        assert_eq!(current.local_addr(), addr, "the same socket serves on");
    }
    let before = tally.answered.load(SeqCst);
    wait_until("the last generation serves", || tally.answered.load(SeqCst) >= before + 50);
    stop.store(true, SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    current.shutdown(DEADLINE).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(tally.failed.load(SeqCst), 0, "no request failed across 20 restarts");
    assert_eq!(tally.seen.lock().unwrap().len(), 21, "every generation served: {:?}", tally.seen.lock().unwrap());
}
