//! Handing listening sockets to the next process, so a restart or deploy loses no
//! connection: the successor connects to a Unix socket the running engine offers,
//! receives the listening sockets (`SCM_RIGHTS`), starts serving them, and says so; only
//! then does the predecessor let go (it drains, and its stop no longer shuts the sockets
//! down: what waits in their queues is the successor's). Nothing is closed in between,
//! so the kernel's accept queues carry over whole.
//!
//! Wire: successor → `HELLO`; predecessor → `LISTENERS` with the descriptors attached;
//! successor, once serving → `READY`.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::ConfigBuilder;
use crate::error::{Error, ErrorKind, Result};
use crate::sys;

const HELLO: &[u8; 8] = b"CRLHELLO";
const LISTENERS: &[u8; 8] = b"CRLLSTNR";
const READY: &[u8; 8] = b"CRLREADY";
/// How often a successor looks for the offer while it is not up yet.
const OFFER_POLL: Duration = Duration::from_millis(10);

fn io_err(what: &str, e: std::io::Error) -> Error {
    Error::io(ErrorKind::Io, format!("hand-over: {what}"), e)
}

impl ConfigBuilder {
    /// Takes over the listening sockets a running engine offers at `path`
    /// ([`Engine::hand_over`](crate::Engine::hand_over)), waiting up to `timeout` for
    /// them. Once the engine built from this starts, the predecessor is told, and
    /// drains: no connection is lost or reset across the restart.
    pub fn listeners_from(mut self, path: impl AsRef<Path>, timeout: Duration) -> Result<Self> {
        let (fds, stream) = receive(path.as_ref(), timeout)?;
        self.inherit(fds, stream);
        Ok(self)
    }
}

/// The successor's side: takes the listening sockets offered at `path`. The returned
/// stream is kept until the engine serves them, then [`ready`] is sent on it.
fn receive(path: &Path, timeout: Duration) -> Result<(Vec<OwnedFd>, UnixStream)> {
    // The offer may not be up yet (the two processes start in either order): try again
    // until it is, or the time is up.
    // A timeout past what an Instant holds: a year is as good as forever here.
    let deadline =
        crate::sync::deadline_in(timeout).unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 86_400));
    let s = loop {
        match UnixStream::connect(path) {
            Ok(s) => break s,
            Err(e)
                if Instant::now() < deadline
                    && matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) =>
            {
                std::thread::sleep(OFFER_POLL);
            }
            Err(e) => {
                let what =
                    format!("cannot reach the running engine at {} (is it offering its listeners?)", path.display());
                return Err(io_err(&what, e));
            }
        }
    };
    s.set_read_timeout(Some(timeout)).map_err(|e| io_err("socket option", e))?;
    (&s).write_all(HELLO).map_err(|e| io_err("cannot greet the running engine", e))?;
    let mut buf = [0u8; 8];
    let (n, fds) = sys::recv_fds(&s, &mut buf).map_err(|e| io_err("cannot receive the listeners", e))?;
    if n != buf.len() || &buf != LISTENERS || fds.is_empty() {
        return Err(Error::new(ErrorKind::Io, "hand-over: the running engine sent no listeners"));
    }
    Ok((fds, s))
}

/// Tells the predecessor the successor serves (it may let go now).
pub(crate) fn ready(s: &UnixStream) {
    let _ = (&*s).write_all(READY);
}

/// The predecessor's side: offers `fds` at `path` to one successor and waits (up to
/// `timeout` in all) until it serves them. On error nothing was given up: the caller
/// serves on.
pub(crate) fn offer(path: &Path, fds: &[RawFd], timeout: Duration, on_successor: &dyn Fn()) -> Result<()> {
    // A timeout past what an Instant holds: a year is as good as forever here.
    let deadline =
        crate::sync::deadline_in(timeout).unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 86_400));
    let left = || deadline.saturating_duration_since(Instant::now());
    let _ = std::fs::remove_file(path); // a stale socket from an earlier run
    let l = UnixListener::bind(path)
        .map_err(|e| io_err(&format!("cannot offer the listeners at {}", path.display()), e))?;
    // Which file is ours: once done, it is removed only if no newer offer (the
    // successor's own, for the next restart) has replaced it at the same path.
    let ours = std::fs::metadata(path).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).ok();
    let result = (|| {
        if !sys::poll_readable(l.as_raw_fd(), Some(left())).map_err(|e| io_err("waiting for a successor", e))? {
            return Err(Error::new(ErrorKind::State, "hand-over: no successor came in time; still serving"));
        }
        let (s, _) = l.accept().map_err(|e| io_err("accepting the successor", e))?;
        s.set_read_timeout(Some(left().max(Duration::from_millis(1)))).map_err(|e| io_err("socket option", e))?;
        let mut hello = [0u8; 8];
        (&s).read_exact(&mut hello).map_err(|e| io_err("the successor did not greet", e))?;
        if &hello != HELLO {
            return Err(Error::new(ErrorKind::Io, "hand-over: what connected is not a corral successor"));
        }
        on_successor();
        sys::send_fds(&s, LISTENERS, fds).map_err(|e| io_err("cannot send the listeners", e))?;
        let mut ready = [0u8; 8];
        match (&s).read_exact(&mut ready) {
            Ok(()) if &ready == READY => Ok(()),
            Ok(()) => Err(Error::new(ErrorKind::Io, "hand-over: the successor said something else than ready")),
            Err(e) => Err(io_err("the successor did not start serving (still serving here)", e)),
        }
    })();
    let still_ours = std::fs::metadata(path).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).ok() == ours;
    if still_ours {
        let _ = std::fs::remove_file(path);
    }
    result
}
