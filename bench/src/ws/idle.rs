//! Idle websockets: opens many connections to a server, completes each handshake, and
//! holds them open without a message, to weigh what an idle websocket costs the server.
//!
//! Handshakes go one after another on blocking sockets (a few seconds for 10,000 on
//! loopback), so the server never sees more than one at a time in flight and its memory
//! afterwards is what the open connections hold, not a burst's transient buffers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::proto::{self, Failure, Rng};

/// How long one handshake may take before the run gives up.
const EACH: Duration = Duration::from_secs(10);

/// `n` open, idle websockets to `addr` at `path`; on a failure, how many were open and why.
pub fn open(addr: SocketAddr, path: &str, n: usize, limit: Duration) -> Result<Vec<TcpStream>, (usize, Failure)> {
    let deadline = Instant::now() + limit;
    let mut rng = Rng::new(n as u64);
    let mut open = Vec::with_capacity(n);
    let host = addr.to_string();
    for _ in 0..n {
        if Instant::now() >= deadline {
            let why = Failure::Connect(format!("only {} handshakes in {limit:?}", open.len()));
            return Err((open.len(), why));
        }
        match handshake(addr, &host, path, &mut rng, EACH) {
            Ok(s) => open.push(s),
            Err(f) => return Err((open.len(), f)),
        }
    }
    Ok(open)
}

/// One websocket to `addr` at `path`, its handshake done (blocking, `limit` per step).
pub fn handshake(
    addr: SocketAddr,
    host: &str,
    path: &str,
    rng: &mut Rng,
    limit: Duration,
) -> Result<TcpStream, Failure> {
    let mut s = TcpStream::connect_timeout(&addr, limit).map_err(|e| Failure::Connect(e.to_string()))?;
    s.set_read_timeout(Some(limit)).map_err(|e| Failure::Connect(e.to_string()))?;
    let (req, accept) = proto::handshake(host, path, rng);
    s.write_all(&req).map_err(|e| Failure::Closed(e.to_string()))?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    loop {
        let n = s.read(&mut chunk).map_err(|e| Failure::Closed(e.to_string()))?;
        if n == 0 {
            return Err(Failure::Closed("the server ended the connection during the handshake".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
        if proto::handshake_reply(&buf, &accept)?.is_some() {
            return Ok(s);
        }
    }
}
