//! Behind a real HAProxy (`mode tcp`, `send-proxy` and `send-proxy-v2`, started by the
//! test on loopback ports): the handler sees the client's address and port, not
//! HAProxy's. `make test` installs haproxy where it may (`make sysdeps`).

mod common;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};

use common::*;
use corral::{handler_fn, Config, Engine, ProxyMode, Response};

fn haproxy(backend: SocketAddr, v1_port: u16, v2_port: u16, dir: &std::path::Path) -> Haproxy {
    let cfg = format!(
        "global\n  maxconn 256\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
         frontend v1\n  bind 127.0.0.1:{v1_port}\n  default_backend corral_v1\n\
         frontend v2\n  bind 127.0.0.1:{v2_port}\n  default_backend corral_v2\n\
         backend corral_v1\n  server s1 {backend} send-proxy\n\
         backend corral_v2\n  server s1 {backend} send-proxy-v2\n"
    );
    Haproxy::start(&cfg, dir)
}

#[test]
fn behind_haproxy_the_handler_sees_the_client_with_v1_and_v2() {
    let e = Engine::serve(
        Config::builder().io_workers(2).proxy_protocol(ProxyMode::Any).build().unwrap(),
        handler_fn(|req, res| {
            let v = req.proxy().map_or(0, |p| p.version);
            res.respond(Response::new(200).body(format!("{} v{v}", req.peer())))
        }),
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("corral-haproxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (p1, p2) = (free_port(), free_port());
    let _h = haproxy(e.local_addr(), p1, p2, &dir);
    for (port, version) in [(p1, "v1"), (p2, "v2")] {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        wait_until("haproxy listens", || TcpStream::connect(addr).is_ok());
        for _ in 0..5 {
            let mut s = connect(addr);
            let me = s.local_addr().unwrap();
            write!(s, "GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            let body = read_response(&mut BufReader::new(s)).expect("an answer through haproxy").text();
            assert_eq!(body, format!("{me} {version}"), "the client as corral saw it through haproxy");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(e.stats().proxy_bad_headers, 0);
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn behind_haproxy_the_handoff_host_gets_the_client_and_only_its_bytes() {
    let e = Engine::handoff(Config::builder().proxy_protocol(ProxyMode::Any).build().unwrap()).unwrap();
    let dir = std::env::temp_dir().join(format!("corral-haproxy-handoff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (p1, p2) = (free_port(), free_port());
    let _h = haproxy(e.local_addr(), p1, p2, &dir);
    for port in [p1, p2] {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        wait_until("haproxy listens", || TcpStream::connect(addr).is_ok());
        let mut s = connect(addr);
        let me = s.local_addr().unwrap();
        s.write_all(b"hello").unwrap();
        // The probe above came through haproxy too: the host gets it (its client's
        // address, never haproxy's) before or after ours.
        let mut taken = Vec::new();
        wait_until("our connection for the host", || {
            taken.extend(e.take(8).unwrap());
            taken.iter().any(|a| a.peer == me)
        });
        let a = taken.into_iter().find(|a| a.peer == me).unwrap();
        let host = TcpStream::from(a.fd);
        host.set_nonblocking(false).unwrap();
        host.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut got = [0u8; 5];
        std::io::Read::read_exact(&mut &host, &mut got).unwrap();
        assert_eq!(&got, b"hello", "the header was read off the socket");
    }
    let _ = std::fs::remove_dir_all(&dir);
    e.shutdown(DEADLINE).unwrap();
}
