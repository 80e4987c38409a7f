//! The PROXY protocol over real loopback sockets: v1 and v2 headers give the handler the
//! client's address (and v2's TLVs), bytes after the header are the request, LOCAL
//! health checks are served with the socket's address, a bad header closes only that
//! connection, an untrusted source is refused unread, a slow header meets the header
//! deadline, and the per-IP cap counts the header's client, not the balancer.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use corral::{handler_fn, Config, ConfigBuilder, Engine, ProxyMode, Request, Responder, Response};

/// Answers the client address the engine saw, and the PROXY authority TLV if any.
fn app(req: Request, res: Responder) {
    let authority = req.proxy().and_then(|p| p.authority()).unwrap_or("-").to_string();
    res.respond(Response::new(200).body(format!("{} {authority}", req.peer())));
}

fn engine(cfg: ConfigBuilder) -> Engine {
    Engine::serve(cfg.io_workers(2).build().unwrap(), handler_fn(app)).unwrap()
}

fn v2(command: u8, src: [u8; 4], sport: u16, tlvs: &[u8]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x20 | command);
    h.push(0x11);
    h.extend_from_slice(&((12 + tlvs.len()) as u16).to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&[10, 0, 0, 1]);
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&80u16.to_be_bytes());
    h.extend_from_slice(tlvs);
    h
}

/// Sends `preamble` and a GET in one write; the answer's body, or None if the
/// connection was closed without one.
fn ask(e: &Engine, preamble: &[u8]) -> Option<String> {
    let mut s = connect(e.local_addr());
    let mut out = preamble.to_vec();
    out.extend_from_slice(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    s.write_all(&out).unwrap();
    read_response(&mut BufReader::new(s)).map(|r| r.text())
}

fn closed_unanswered(mut s: TcpStream) -> bool {
    let mut b = Vec::new();
    matches!(s.read_to_end(&mut b), Ok(0)) || b.is_empty()
}

#[test]
fn v1_and_v2_headers_name_the_client_and_local_is_the_socket() {
    let e = engine(Config::builder().proxy_protocol(ProxyMode::Any));
    let got = ask(&e, b"PROXY TCP4 198.51.100.2 10.0.0.1 4242 80\r\n").unwrap();
    assert_eq!(got, "198.51.100.2:4242 -");
    let got =
        ask(&e, &v2(1, [203, 0, 113, 7], 12345, &[0x02, 0, 7, b'e', b'x', b'.', b'c', b'o', b'm', b'!'])).unwrap();
    assert_eq!(got, "203.0.113.7:12345 ex.com!");
    let got = ask(&e, &v2(0, [203, 0, 113, 7], 12345, &[])).unwrap();
    assert!(got.starts_with("127.0.0.1:"), "LOCAL: the socket's own peer, not the header's: {got}");
    // The header in pieces, then the request in pieces: the same answer.
    let mut s = connect(e.local_addr());
    for part in [&b"PROXY TCP4 198.51"[..], b".100.9 10.0.0.1 1 80\r\nGET / HT", b"TP/1.1\r\nHost: t\r\n\r\n"] {
        s.write_all(part).unwrap();
        s.flush().unwrap();
    }
    assert_eq!(read_response(&mut BufReader::new(s)).unwrap().text(), "198.51.100.9:1 -");
    assert_eq!(e.stats().proxy_bad_headers, 0);
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn a_bad_or_missing_header_closes_only_that_connection() {
    let e = engine(Config::builder().proxy_protocol(ProxyMode::V2).header_timeout(Duration::from_millis(500)));
    assert_eq!(ask(&e, b""), None, "a request with no header is not served");
    assert_eq!(ask(&e, b"PROXY TCP4 198.51.100.2 10.0.0.1 4242 80\r\n"), None, "v1 on a v2 listener");
    let mut truncated = v2(1, [203, 0, 113, 7], 1, &[]);
    truncated[15] = 200; // claims more address bytes than follow before the request
    assert_eq!(ask(&e, &truncated[..20]), None, "an unfinished header waits only until the header deadline");
    assert!(ask(&e, &v2(1, [203, 0, 113, 7], 2, &[])).unwrap().starts_with("203.0.113.7:2"), "the engine lives on");
    wait_until("the bad headers are counted", || e.stats().proxy_bad_headers >= 2);
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn an_untrusted_source_is_refused_unread_and_a_slow_header_meets_the_deadline() {
    let e =
        engine(Config::builder().proxy_protocol(ProxyMode::Any).proxy_trusted(vec!["192.0.2.0/24".parse().unwrap()]));
    let mut s = connect(e.local_addr());
    s.write_all(b"PROXY TCP4 198.51.100.2 10.0.0.1 4242 80\r\nGET / HTTP/1.1\r\n\r\n").unwrap();
    assert!(closed_unanswered(s), "loopback is not a trusted balancer here");
    wait_until("the refusal is counted", || e.stats().proxy_untrusted == 1);
    e.shutdown(DEADLINE).unwrap();

    let e = engine(Config::builder().proxy_protocol(ProxyMode::V1).header_timeout(Duration::from_millis(300)));
    let mut s = connect(e.local_addr());
    s.write_all(b"PROXY TCP4 198.51").unwrap();
    assert!(closed_unanswered(s), "closed at the header deadline");
    wait_until("counted as a timeout", || e.stats().connections_timed_out == 1);
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn the_per_ip_cap_counts_the_headers_client() {
    let mut cfg = Config::builder().proxy_protocol(ProxyMode::V1).max_connections_per_ip(1);
    cfg.set(&corral::options::Front::RUST, "per_ip_scope", corral::options::Value::Text("all")).unwrap();
    let e = engine(cfg);
    let open = |src: &str| {
        let mut s = connect(e.local_addr());
        write!(s, "PROXY TCP4 {src} 10.0.0.1 1000 80\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        (s, read_response(&mut r).map(|r| r.text()))
    };
    let (_a, first) = open("198.51.100.2");
    assert!(first.is_some(), "the first connection from a client");
    let (_b, other) = open("198.51.100.3");
    assert!(other.is_some(), "another client behind the same balancer");
    let (_c, second) = open("198.51.100.2");
    assert_eq!(second, None, "a second connection from the first client is over its cap");
    assert_eq!(e.stats().connections_refused_per_ip, 1);
    e.shutdown(DEADLINE).unwrap();
}

/// A handoff engine with a PROXY header expected: what the host takes.
fn handoff(cfg: ConfigBuilder) -> Engine {
    Engine::handoff(cfg.build().unwrap()).unwrap()
}

fn take_one(e: &Engine) -> corral::Accepted {
    wait_until("a connection for the host", || e.wait_readable(Some(Duration::from_millis(50))).unwrap());
    e.take(1).unwrap().pop().expect("one connection")
}

/// Reads what the host's fd has, until `n` bytes.
fn read_n(a: &corral::Accepted, n: usize) -> Vec<u8> {
    let s = TcpStream::from(a.fd.try_clone().unwrap());
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut got = vec![0u8; n];
    (&s).read_exact(&mut got).unwrap();
    got
}

#[test]
fn handoff_reads_exactly_the_header_and_names_the_client() {
    let e = handoff(Config::builder().proxy_protocol(ProxyMode::Any));
    // v1, with the client's bytes in the same write: the host reads only those.
    let mut s = connect(e.local_addr());
    s.write_all(b"PROXY TCP4 198.51.100.2 10.0.0.1 4242 80\r\nhello").unwrap();
    let a = take_one(&e);
    assert_eq!(a.peer.to_string(), "198.51.100.2:4242");
    let h = a.proxy.as_ref().expect("the header");
    assert_eq!((h.version, h.destination.map(|d| d.to_string())), (1, Some("10.0.0.1:80".into())));
    assert_eq!(read_n(&a, 5), b"hello");
    // v2 in two parts (the second after the host could have looked): it waits, whole.
    let mut s2 = connect(e.local_addr());
    let header = v2(1, [203, 0, 113, 7], 12345, &[0x02, 0, 6, b'e', b'x', b'.', b'o', b'r', b'g']);
    s2.write_all(&header[..10]).unwrap();
    assert!(
        !e.wait_readable(Some(Duration::from_millis(100))).unwrap(),
        "nothing for the host before the header is whole"
    );
    s2.write_all(&header[10..]).unwrap();
    s2.write_all(b"after").unwrap();
    let b = take_one(&e);
    assert_eq!(b.peer.to_string(), "203.0.113.7:12345");
    assert_eq!(b.proxy.as_ref().unwrap().authority(), Some("ex.org"));
    assert_eq!(read_n(&b, 5), b"after");
    // LOCAL (a health check): the socket's own addresses.
    let mut s3 = connect(e.local_addr());
    s3.write_all(&v2(0, [0, 0, 0, 0], 0, &[])).unwrap();
    let c = take_one(&e);
    assert_eq!(c.peer, s3.local_addr().unwrap());
    assert_eq!(c.proxy.as_ref().unwrap().source, None);
    drop((s, s2, s3));
    assert_eq!(e.stats().proxy_bad_headers, 0);
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn handoff_refuses_a_bad_late_or_untrusted_header_before_the_host_sees_it() {
    let e = handoff(Config::builder().proxy_protocol(ProxyMode::V1).header_timeout(Duration::from_millis(300)));
    let mut bad = connect(e.local_addr());
    bad.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert!(closed_unanswered(bad), "no header: closed");
    let mut late = connect(e.local_addr());
    late.write_all(b"PROXY TCP4 198.51").unwrap();
    assert!(closed_unanswered(late), "closed at the header deadline");
    wait_until("both counted", || e.stats().proxy_bad_headers == 2);
    assert!(e.take(10).unwrap().is_empty(), "the host got neither");
    e.shutdown(DEADLINE).unwrap();

    let e =
        handoff(Config::builder().proxy_protocol(ProxyMode::V1).proxy_trusted(vec!["192.0.2.0/24".parse().unwrap()]));
    let mut s = connect(e.local_addr());
    s.write_all(b"PROXY TCP4 198.51.100.2 10.0.0.1 4242 80\r\n").unwrap();
    assert!(closed_unanswered(s), "loopback is not a trusted balancer here");
    wait_until("the refusal is counted", || e.stats().proxy_untrusted == 1);
    assert!(e.take(10).unwrap().is_empty());
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn handoff_reads_a_v2_header_with_long_tlvs_and_refuses_one_that_stops_halfway() {
    let e = handoff(Config::builder().proxy_protocol(ProxyMode::V2));
    // A vendor TLV of 1,000 bytes: longer than the first look.
    let mut tlv = vec![0xE0, (1000u16 >> 8) as u8, (1000u16 & 0xff) as u8];
    tlv.extend(std::iter::repeat_n(7u8, 1000));
    let mut s = connect(e.local_addr());
    s.write_all(&v2(1, [203, 0, 113, 8], 9, &tlv)).unwrap();
    s.write_all(b"rest").unwrap();
    let a = take_one(&e);
    assert_eq!(a.peer.to_string(), "203.0.113.8:9");
    assert_eq!(a.proxy.as_ref().unwrap().tlv(0xE0).map(<[u8]>::len), Some(1000));
    assert_eq!(read_n(&a, 4), b"rest");
    // Half a header, then the client leaves: refused at once, not at the deadline.
    let mut half = connect(e.local_addr());
    half.write_all(&v2(1, [203, 0, 113, 9], 9, &[])[..10]).unwrap();
    half.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(closed_unanswered(half));
    wait_until("counted", || e.stats().proxy_bad_headers == 1);
    e.shutdown(DEADLINE).unwrap();
}
