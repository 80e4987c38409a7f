//! Socket steps both clients (the load generator and the soak) take on a non-blocking
//! mio stream: is a connect done, write out what is pending, read what has arrived.

use std::io::{self, Read, Write};

use mio::net::TcpStream;

/// A non-blocking connect's outcome, asked after a writable event: `Ok(true)` done,
/// `Ok(false)` still under way, `Err` failed.
pub fn connected(s: &TcpStream) -> io::Result<bool> {
    if let Some(e) = s.take_error()? {
        return Err(e);
    }
    match s.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes `out[*wpos..]` until it is all gone (then clears `out`) or the socket would
/// block. A write error, or a socket that takes nothing, is an error.
pub fn write_out(s: &mut TcpStream, out: &mut Vec<u8>, wpos: &mut usize) -> io::Result<()> {
    while *wpos < out.len() {
        match s.write(&out[*wpos..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *wpos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    out.clear();
    *wpos = 0;
    Ok(())
}

/// Reads at most `max` bytes onto the end of `buf`; what `read` returned.
pub fn read_into(s: &mut TcpStream, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    let len = buf.len();
    buf.resize(len + max, 0);
    let r = s.read(&mut buf[len..]);
    buf.truncate(len + *r.as_ref().unwrap_or(&0));
    r
}
