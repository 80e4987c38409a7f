//! Listeners and admission over real loopback sockets: reuseport shards, the shared
//! socket, secure defaults, bind errors, inherited listeners, the backlog, the
//! connection cap, timeouts, and handoff.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use common::*;
use corral::{Config, Engine, ErrorKind, ListenerStrategy, Model};

fn serve(cfg: corral::ConfigBuilder) -> Engine {
    Engine::serve(cfg.build().unwrap(), TestApp).unwrap()
}

fn hit(addr: SocketAddr, n: usize) {
    for _ in 0..n {
        let mut s = connect(addr);
        s.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        assert!(out.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&out));
    }
}

#[test]
fn reuseport_shards_all_accept() {
    for in_workers in [true, false] {
        let e = serve(Config::builder().acceptors(2).io_workers(2).accept_in_workers(in_workers));
        hit(e.local_addr(), 200);
        let st = e.stats();
        assert_eq!(st.listeners.len(), 2, "one socket per acceptor");
        assert_eq!(st.accepts(), 200);
        for l in &st.listeners {
            assert!(l.accepts > 0, "every shard accepted some (in_workers={in_workers}): {:?}", st.listeners);
        }
        e.shutdown(DEADLINE).unwrap();
    }
}

#[test]
fn shared_and_single_listeners_serve() {
    for strategy in [ListenerStrategy::Shared, ListenerStrategy::Single] {
        let e = serve(Config::builder().acceptors(2).listener(strategy).accept_in_workers(false));
        hit(e.local_addr(), 50);
        let st = e.stats();
        assert_eq!(st.listeners.len(), 1);
        assert_eq!(st.accepts(), 50);
        e.shutdown(DEADLINE).unwrap();
    }
}

#[test]
fn ipv6_loopback_and_several_addresses() {
    let Ok(probe) = TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here; skipping the IPv6 half");
        return;
    };
    drop(probe);
    let e = serve(Config::builder().addr("127.0.0.1:0".parse().unwrap()).addr("[::1]:0".parse().unwrap()));
    assert_eq!(e.local_addrs().len(), 2);
    for &a in e.local_addrs() {
        assert_eq!(get_once(a, "/").status, 200, "served on {a}");
    }
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn wildcard_is_refused_unless_allowed() {
    for a in ["0.0.0.0:0", "[::]:0"] {
        let err = Config::builder().addr(a.parse().unwrap()).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PublicAddress);
        assert!(err.to_string().contains("allow_public"), "the message says what to do: {err}");
        assert!(Config::builder().addr(a.parse().unwrap()).allow_public(true).build().is_ok());
    }
    assert!(Config::default().addrs()[0].ip().is_loopback(), "the default is loopback");
}

#[test]
fn bad_options_are_refused_with_their_name() {
    let err = Config::builder().io_workers(0).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.to_string().contains("io_workers"), "{err}");
    let err = Config::builder().header_timeout(Duration::ZERO).build().unwrap_err();
    assert!(err.to_string().contains("header_timeout"), "{err}");
}

#[test]
fn a_port_in_use_is_a_clear_bind_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = Engine::serve(Config::builder().addr(addr).build().unwrap(), TestApp).err().expect("bind fails");
    assert_eq!(err.kind(), ErrorKind::Bind);
    assert_eq!(err.raw_os_error(), Some(libc_eaddrinuse()));
    assert!(err.to_string().contains("in use"), "{err}");
}

fn libc_eaddrinuse() -> i32 {
    std::io::Error::from(std::io::ErrorKind::AddrInUse).raw_os_error().unwrap_or(98)
}

#[test]
fn an_inherited_listening_fd_is_served() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let e = serve(Config::builder().listener_fd(OwnedFd::from(l)).acceptors(2).io_workers(2));
    assert_eq!(e.local_addrs(), &[addr]);
    hit(addr, 20);
    e.shutdown(DEADLINE).unwrap();
}

/// The socket is shared with another holder (a supervisor, the next worker) that makes
/// it blocking again (Python's `socket.dup()` does): the engine's accept loops must not
/// hang on an empty queue, and a shutdown leaves the other holder's socket listening.
#[test]
fn a_shared_listener_made_blocking_by_its_other_holder_still_serves_and_survives_shutdown() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let ours = l.try_clone().unwrap();
    let e = serve(Config::builder().listener_fd(OwnedFd::from(ours)).io_workers(2));
    l.set_nonblocking(false).unwrap(); // the other holder, after the engine set it up
    for _ in 0..20 {
        assert_eq!(get_once(addr, "/").status, 200);
    }
    e.shutdown(DEADLINE).unwrap();
    // Still listening for the other holder: a connection waits in its queue.
    let waiting = TcpStream::connect(addr).expect("the shared socket still listens");
    let (accepted, _) = l.accept().unwrap();
    drop((waiting, accepted));
}

#[test]
fn a_non_listening_fd_is_refused_and_left_open() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let fd = client.as_raw_fd();
    let err = Config::builder().listener_fd(OwnedFd::from(client.try_clone().unwrap())).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.message().contains("cannot be used"), "{err}");
    assert!(corral::os::is_cloexec(fd).is_ok(), "the caller's own socket is untouched");
    drop(client);
}

#[test]
fn the_effective_backlog_is_reported() {
    let e = serve(Config::builder().backlog(100).acceptors(1));
    let st = e.stats();
    let max = corral::os::somaxconn().unwrap_or(4096).min(100);
    assert_eq!(st.listeners[0].queue_max, max);
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn connection_over_the_cap_waits_in_the_backlog() {
    for model in [Model::Stealing, Model::Pool] {
        let mut b = Config::builder().model(model).max_connections(2).io_workers(1);
        if model == Model::Stealing {
            b = b.acceptors(1); // the pool model has one acceptor of its own
        }
        let e = serve(b);
        let addr = e.local_addr();
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = connect(addr);
            get(&mut s, "/");
            let mut r = BufReader::new(s.try_clone().unwrap());
            assert_eq!(read_response(&mut r).unwrap().status, 200);
            held.push(s);
        }
        let mut third = connect(addr);
        get(&mut third, "/");
        wait_until("the third connection waits in the kernel queue", || e.stats().listeners[0].queue_len == 1);
        assert!(silent_for(&third, Duration::from_millis(300)), "not served while at the cap ({model:?})");
        assert!(e.stats().listeners[0].pauses >= 1);
        drop(held.pop());
        let resp = read_response(&mut BufReader::new(third)).expect("served once another closed");
        assert_eq!(resp.status, 200);
        e.shutdown(DEADLINE).unwrap();
    }
}

#[test]
fn idle_and_header_timeouts_close_connections() {
    let e = serve(
        Config::builder()
            .io_workers(1)
            .idle_timeout(Duration::from_millis(300))
            .header_timeout(Duration::from_millis(300)),
    );
    let addr = e.local_addr();
    // Idle after one request.
    let mut idle = connect(addr);
    get(&mut idle, "/");
    let mut r = BufReader::new(idle.try_clone().unwrap());
    assert_eq!(read_response(&mut r).unwrap().status, 200);
    // A head that never completes (slowloris).
    let mut slow = connect(addr);
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    // Nothing at all.
    let silent = connect(addr);
    assert!(read_response(&mut r).is_none(), "idle connection closed");
    let mut rest = Vec::new();
    assert_eq!(slow.read_to_end(&mut rest).unwrap_or(0), 0, "slowloris closed without a reply");
    assert_eq!((&silent).read_to_end(&mut rest).unwrap_or(0), 0, "silent connection closed");
    wait_until("timeouts counted", || e.stats().connections_timed_out == 3);
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn handoff_gives_the_caller_open_connected_cloexec_fds() {
    let e = Engine::handoff(Config::builder().acceptors(2).build().unwrap()).unwrap();
    let addr = e.local_addr();
    let clients: Vec<TcpStream> = (0..5).map(|_| connect(addr)).collect();
    let mut got = Vec::new();
    while got.len() < 5 {
        assert!(e.wait_readable(Some(DEADLINE)).unwrap(), "the notify fd turns readable");
        got.extend(e.take(16).unwrap());
    }
    assert!(!e.wait_readable(Some(Duration::ZERO)).unwrap(), "drained: the notify fd is reset");
    for a in got {
        let fd = a.fd.as_raw_fd();
        assert!(corral::os::is_cloexec(fd).unwrap(), "close-on-exec");
        let mut s = TcpStream::from(a.fd);
        let client = clients.iter().find(|c| c.local_addr().unwrap() == a.peer).expect("peer is a client");
        s.set_nonblocking(false).unwrap();
        s.write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        (&*client).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi", "connected to that client");
    }
    assert_eq!(e.take(1).unwrap().len(), 0);
    let report = e.shutdown(DEADLINE).unwrap();
    assert_eq!(report.handoff_unclaimed, 0);
}

#[test]
fn handoff_queue_is_bounded_and_calls_are_mode_checked() {
    let e = Engine::handoff(Config::builder().handoff_capacity(2).acceptors(1).build().unwrap()).unwrap();
    let addr = e.local_addr();
    let _clients: Vec<TcpStream> = (0..3).map(|_| connect(addr)).collect();
    wait_until("two queued, one in the backlog", || {
        let st = e.stats();
        st.handoff_queued == 2 && st.listeners[0].queue_len == 1
    });
    assert_eq!(e.take(10).unwrap().len(), 2);
    wait_until("the third is accepted once there is room", || e.stats().handoff_queued == 1);
    let report = e.shutdown(DEADLINE).unwrap();
    assert_eq!(report.handoff_unclaimed, 1);

    let serving = serve(Config::builder());
    assert_eq!(serving.take(1).unwrap_err().kind(), ErrorKind::WrongMode);
    assert_eq!(serving.notify_fd().unwrap_err().kind(), ErrorKind::WrongMode);
}

#[test]
fn lifecycle_errors() {
    let e = serve(Config::builder());
    assert_eq!(e.start().unwrap_err().kind(), ErrorKind::State, "already started");
    e.shutdown(DEADLINE).unwrap();
    assert_eq!(e.shutdown(DEADLINE).unwrap_err().kind(), ErrorKind::State, "double shutdown");
    // After shutdown the port no longer accepts.
    assert!(TcpStream::connect(e.local_addr()).is_err());
}

#[test]
fn defer_accept_serves_clients_that_speak_first() {
    let e = serve(Config::builder().defer_accept(true).acceptors(2).io_workers(2));
    hit(e.local_addr(), 50);
    assert_eq!(e.stats().accepts(), 50);
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn the_per_ip_cap_refuses_connection_n_plus_one() {
    // Loopback is not capped by default (per_ip_scope = "public"): count every source.
    let e = serve(Config::builder().io_workers(2).max_connections_per_ip(2).per_ip_all(true));
    let addr = e.local_addr();
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = connect(addr);
        get(&mut s, "/");
        assert_eq!(read_response(&mut BufReader::new(s.try_clone().unwrap())).unwrap().status, 200);
        held.push(s);
    }
    // The third from the same IP is accepted and closed at once, without a reply.
    let mut third = connect(addr);
    // The server may close it before (write fails) or after (read ends) the request.
    let _ = third.write_all(b"GET / HTTP/1.1\r\n\r\n");
    let mut out = Vec::new();
    let _ = third.read_to_end(&mut out);
    assert!(out.is_empty(), "refused without a reply");
    wait_until("the refusal is counted", || e.stats().connections_refused_per_ip == 1);
    // Room again once one closes.
    drop(held.pop());
    wait_until("the closed one is counted out", || e.stats().open_connections == 1);
    assert_eq!(get_once(addr, "/").status, 200);
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn the_accept_rate_limit_holds_connections_in_the_backlog_then_admits_them() {
    let e = serve(Config::builder().acceptors(1).io_workers(1).max_accept_rate(2));
    let addr = e.local_addr();
    let clients: Vec<TcpStream> = (0..6).map(|_| connect(addr)).collect();
    wait_until("the limit pauses accepting while connections wait", || {
        let l = &e.stats().listeners[0];
        l.throttled >= 1 && l.queue_len >= 1
    });
    wait_until("every connection is admitted in time", || e.stats().accepts() == 6);
    for mut c in clients {
        get(&mut c, "/");
        assert_eq!(read_response(&mut BufReader::new(c)).unwrap().status, 200);
    }
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn many_connections_from_loopback_are_not_capped_by_default() {
    // `wrk -c5000` from one address collapsed against a per-IP cap of 1024 that counted
    // loopback: the default cap counts public sources only (per_ip_scope = "public").
    const N: usize = 1100;
    let (_, hard) = corral::os::nofile_limit().unwrap();
    corral::os::set_nofile_limit(hard.min(16_384)).unwrap();
    assert!(corral::os::nofile_limit().unwrap().0 as usize > 2 * N + 64, "needs RLIMIT_NOFILE > {}", 2 * N + 64);
    let e = serve(Config::builder().io_workers(2));
    assert_eq!(e.config().limits().max_connections_per_ip, 1024, "the cap is on");
    let addr = e.local_addr();
    let mut held = Vec::with_capacity(N);
    for _ in 0..N {
        let mut s = connect(addr);
        get(&mut s, "/");
        held.push(s);
    }
    for s in &held {
        assert_eq!(read_response(&mut BufReader::new(s.try_clone().unwrap())).unwrap().status, 200);
    }
    assert_eq!(e.stats().connections_refused_per_ip, 0);
    assert_eq!(e.stats().open_connections, N);
    drop(held);
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn tcp_nodelay_reaches_every_accepted_socket_and_can_be_turned_off() {
    for (on, b) in [(true, Config::builder()), (false, Config::builder().tcp_nodelay(false))] {
        let e = Engine::handoff(b.build().unwrap()).unwrap();
        let _client = connect(e.local_addr());
        let mut got = Vec::new();
        wait_until("the connection is queued for the host", || {
            got.extend(e.take(1).unwrap());
            !got.is_empty()
        });
        let sock = TcpStream::from(got.pop().unwrap().fd);
        assert_eq!(sock.nodelay().unwrap(), on);
        e.shutdown(DEADLINE).unwrap();
    }
}
