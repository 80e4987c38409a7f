//! The `idle` scenario: open many keep-alive connections, make one request on each (so
//! the server has seen each one through), then leave them idle and look at the server
//! process: resident memory per connection, and CPU while nothing happens.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::http;
use crate::server::Observed;

/// Connections per loopback source address: below the ephemeral port range
/// (`net.ipv4.ip_local_port_range`, about 28,000 ports by default).
const PER_SOURCE: usize = 20_000;
const CONNECTING_THREADS: usize = 4;

/// How many connections the server's descriptor limit lets `model` hold: a
/// thread-per-connection worker has an epoll and an eventfd of its own beside the socket.
pub fn fits(model: corral::Model) -> usize {
    let hard = corral::os::nofile_limit().map(|(_, h)| h as usize).unwrap_or(1024);
    let per_conn = if model == corral::Model::ThreadPerConnection { 3 } else { 1 };
    hard.saturating_sub(256) / per_conn
}

pub struct IdleFigures {
    pub connections: usize,
    pub rss_before: u64,
    pub rss_after: u64,
    pub bytes_per_connection: f64,
    pub cpu_percent: f64,
    /// The server's CPU time over the window, and the window (seconds).
    pub cpu_seconds: f64,
    pub window_seconds: f64,
}

/// The source address for connection `i`: 127.0.0.1 for the first `PER_SOURCE`, then
/// 127.0.0.2, … (all of 127.0.0.0/8 is loopback on Linux).
fn source(i: usize) -> IpAddr {
    let k = (i / PER_SOURCE) as u32 + 1;
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 0)) + k))
}

fn open(addr: SocketAddr, i: usize) -> io::Result<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    if i >= PER_SOURCE {
        s.bind(&SocketAddr::new(source(i), 0).into())?;
    }
    s.connect(&addr.into())?;
    let mut s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(&http::get("/", false))?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed an idle connection early"));
        }
        buf.extend_from_slice(&chunk[..n]);
        match http::parse(&buf) {
            Ok(Some(_)) => return Ok(s),
            Ok(None) => {}
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }
}

pub fn measure(server: &dyn Observed, n: usize, window: Duration) -> io::Result<IdleFigures> {
    let addr = server.addr();
    // One connection first, so the server's first-request allocations are not counted.
    drop(open(addr, 0)?);
    let rss_before = server.resident_bytes();
    let per = n.div_ceil(CONNECTING_THREADS);
    let conns: Vec<TcpStream> = std::thread::scope(|s| {
        let parts: Vec<_> = (0..CONNECTING_THREADS)
            .map(|t| s.spawn(move || (t * per..((t + 1) * per).min(n)).map(|i| open(addr, i)).collect::<Vec<_>>()))
            .collect();
        parts.into_iter().flat_map(|p| p.join().expect("connecting thread panicked")).collect::<io::Result<_>>()
    })?;
    let rss_after = server.resident_bytes();
    let cpu0 = server.cpu_time();
    let t0 = Instant::now();
    // A measurement window, not synchronisation: the server is left alone for it.
    std::thread::sleep(window);
    let cpu = server.cpu_time().saturating_sub(cpu0);
    let elapsed = t0.elapsed();
    drop(conns);
    Ok(IdleFigures {
        connections: n,
        rss_before,
        rss_after,
        bytes_per_connection: rss_after.saturating_sub(rss_before) as f64 / n.max(1) as f64,
        cpu_percent: cpu.as_secs_f64() / elapsed.as_secs_f64() * 100.0,
        cpu_seconds: cpu.as_secs_f64(),
        window_seconds: elapsed.as_secs_f64(),
    })
}
