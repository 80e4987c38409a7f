//! Retiring one engine of a SO_REUSEPORT group (the shutdown of one process of several
//! on a port): what its accept queue holds at that moment. Each case runs in a network
//! namespace of its own (made by the test; `tcp_migrate_req` is per namespace). With
//! `net.ipv4.tcp_migrate_req=1` the kernel moves the queued connections to a surviving
//! listener and every client is answered; with it off they are reset, which the test
//! measures and reports (what remains without the sysctl).

mod common;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::process::Command;

use common::*;
use corral::{handler_fn, Config, Engine, ListenerStrategy, Response};

/// Runs `f` on a thread in a new network namespace (loopback up, `tcp_migrate_req` as
/// given). None, with a line saying why, where namespaces cannot be made (not root).
fn in_namespace<T: Send + 'static>(migrate: bool, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    std::thread::spawn(move || {
        // SAFETY: unshare(2) with CLONE_NEWNET moves only this thread (and what it
        // spawns from now on) into a new network namespace; no memory is passed.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            eprintln!("retire: cannot make a network namespace ({}); skipped", std::io::Error::last_os_error());
            return None;
        }
        let up = Command::new("ip").args(["link", "set", "lo", "up"]).status().expect("run ip");
        assert!(up.success(), "ip link set lo up");
        std::fs::write("/proc/sys/net/ipv4/tcp_migrate_req", if migrate { "1" } else { "0" }).unwrap();
        let now = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req").unwrap();
        assert_eq!(now.trim(), if migrate { "1" } else { "0" });
        Some(f())
    })
    .join()
    .unwrap()
}

fn engine(cfg: corral::ConfigBuilder, who: &'static str) -> Engine {
    Engine::serve(
        cfg.listener(ListenerStrategy::ReusePort).io_workers(1).build().unwrap(),
        handler_fn(move |_req, res| res.respond(Response::new(200).body(who))),
    )
    .unwrap()
}

#[derive(Debug, PartialEq)]
struct Outcome {
    clients: usize,
    /// Answered by the engine that stays.
    by_survivor: usize,
    /// Answered before the retirement by the one that goes.
    by_retired: usize,
    /// Reset or closed unanswered.
    lost: usize,
}

/// Two engines share a port; the one to retire accepts one connection and then sits at
/// its connection cap, so connections the kernel gives its socket wait in the queue.
/// Then it shuts down.
fn retire_one_of_two() -> Outcome {
    let survivor = engine(Config::builder().addr("127.0.0.1:0".parse().unwrap()), "survivor");
    let addr = survivor.local_addr();
    let retiring = engine(Config::builder().addr(addr).acceptors(1).max_connections(1), "retiring");
    const N: usize = 40;
    let mut clients = Vec::new();
    for _ in 0..N {
        let mut s = connect(addr);
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        clients.push(s);
    }
    // Everything is answered except what waits in the retiring engine's queue.
    let queued = || retiring.stats().listeners.iter().map(|l| l.queue_len as usize).sum::<usize>();
    let mut answered: Vec<Option<String>> = vec![None; N];
    let mut readers: Vec<BufReader<TcpStream>> =
        clients.iter().map(|s| BufReader::new(s.try_clone().unwrap())).collect();
    wait_until("all but the queued answered", || {
        for (i, r) in readers.iter_mut().enumerate() {
            if answered[i].is_none() && silent_for_not(r.get_ref()) {
                answered[i] = read_response(r).map(|r| r.text());
            }
        }
        answered.iter().filter(|a| a.is_some()).count() + queued() == N
    });
    let waiting = queued();
    assert!(waiting > 0, "the kernel gave the capped engine's socket some of {N} connections");
    let by_retired = answered.iter().filter(|a| a.as_deref() == Some("retiring")).count();
    retiring.shutdown(DEADLINE).unwrap();
    let mut by_survivor = answered.iter().filter(|a| a.as_deref() == Some("survivor")).count();
    let mut lost = 0;
    for (i, r) in readers.iter_mut().enumerate() {
        if answered[i].is_some() {
            continue;
        }
        match read_response(r).map(|r| r.text()) {
            Some(t) if t == "survivor" => by_survivor += 1,
            Some(other) => panic!("answered by {other} after it retired"),
            None => lost += 1,
        }
    }
    survivor.shutdown(DEADLINE).unwrap();
    Outcome { clients: N, by_survivor, by_retired, lost }
}

/// True if `s` has bytes to read now (the answer arrived), without blocking.
fn silent_for_not(s: &TcpStream) -> bool {
    !silent_for(s, std::time::Duration::from_millis(1))
}

#[test]
fn with_tcp_migrate_req_on_the_queued_connections_move_to_the_survivor() {
    let Some(o) = in_namespace(true, retire_one_of_two) else { return };
    eprintln!("retire, tcp_migrate_req=1: {o:?}");
    assert_eq!(o.lost, 0, "nothing reset: {o:?}");
    assert_eq!(o.by_survivor + o.by_retired, o.clients);
}

#[test]
fn with_tcp_migrate_req_off_the_queued_connections_are_reset_and_counted() {
    let Some(o) = in_namespace(false, retire_one_of_two) else { return };
    eprintln!("retire, tcp_migrate_req=0: {o:?}");
    // Without the sysctl the kernel resets a closed listener's queue: that is what remains.
    assert!(o.lost > 0, "the queued ones are lost without the sysctl: {o:?}");
    assert_eq!(o.by_survivor + o.by_retired + o.lost, o.clients, "every client answered or reset, none left hanging");
}
