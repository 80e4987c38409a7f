//! Descriptor exhaustion: in a child process with `RLIMIT_NOFILE` lowered, a flood of
//! connections. The engine survives, counts its pauses, does not spin, and serves again
//! once descriptors free up.
//!
//! The test re-runs its own binary as the child (`CORRAL_FD_CHILD=1`), so the flood's
//! client sockets live in this process and only the engine's count against the limit.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use corral::{Config, Engine, Handler, Request, Responder, Response};

const CHILD_ENV: &str = "CORRAL_FD_CHILD";

/// The child's handler reports the engine's own counters.
struct Reporter(std::sync::OnceLock<std::sync::Weak<Engine>>);

impl Handler for Reporter {
    fn handle(&self, _req: Request, res: Responder) {
        let e = self.0.get().and_then(|w| w.upgrade()).expect("engine is set");
        let st = e.stats();
        let fd_exhausted: u64 = st.listeners.iter().map(|l| l.fd_exhausted).sum();
        let pauses: u64 = st.listeners.iter().map(|l| l.pauses).sum();
        res.respond(Response::new(200).body(format!("{fd_exhausted} {pauses}")));
    }
}

fn child() {
    corral::os::set_nofile_limit(64).expect("lower RLIMIT_NOFILE");
    let app = std::sync::Arc::new(Reporter(Default::default()));
    let cfg = Config::builder().io_workers(2).cpu_threads(1).acceptors(2).max_connections(10_000).build().unwrap();
    let e = std::sync::Arc::new(
        Engine::new(cfg, corral::Mode::Serve(std::sync::Arc::clone(&app) as std::sync::Arc<dyn Handler>)).unwrap(),
    );
    let _ = app.0.set(std::sync::Arc::downgrade(&e));
    e.start().unwrap();
    println!("{}", e.local_addr());
    // Serve until the parent closes our stdin.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

fn report(addr: SocketAddr) -> (u64, u64) {
    let mut s = connect(addr);
    s.write_all(b"GET /stats HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
    let resp = read_response(&mut BufReader::new(s)).expect("the child serves");
    let t = resp.text();
    let v: Vec<u64> = t.split_whitespace().map(|x| x.parse().unwrap()).collect();
    (v[0], v[1])
}

#[test]
fn descriptor_exhaustion_pauses_without_spinning_and_recovers() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        return;
    }
    let mut proc = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "descriptor_exhaustion_pauses_without_spinning_and_recovers",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(proc.stdout.take().unwrap());
    let addr: SocketAddr = loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "the child printed its address");
        // libtest may print "test NAME ... " before our output on the same line.
        if let Some(Ok(a)) = line.split_whitespace().last().map(str::parse) {
            break a;
        }
    };
    let pid = proc.id();
    // Flood: far more connections than the child has descriptors.
    let flood: Vec<TcpStream> = (0..200).filter_map(|_| TcpStream::connect(addr).ok()).collect();
    assert!(flood.len() > 100, "the backlog took the flood");
    wait_until("the child uses up its descriptors", || open_fds(pid) >= 60);
    // Sit in exhaustion for a while and measure the child's CPU meanwhile.
    let cpu_before = corral::os::cpu_time_of(pid).unwrap();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    let used = corral::os::cpu_time_of(pid).unwrap().saturating_sub(cpu_before);
    let wall = t0.elapsed();
    assert!(used < wall / 4, "no spinning while starved: {used:?} of CPU over {wall:?}");
    // Free the descriptors: the child closes what it accepted and accepts the rest.
    drop(flood);
    let (exhausted, pauses) = report(addr);
    assert!(exhausted > 0, "the child ran out of descriptors");
    assert!(pauses > 0, "and paused accepting");
    // Served again, repeatedly.
    for _ in 0..20 {
        assert_eq!(get_once(addr, "/").status, 200);
    }
    drop(proc.stdin.take());
    assert!(proc.wait().unwrap().success());
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}
