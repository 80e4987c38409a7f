//! A peer server the judges (`upload judge`, `ws judge`) start and stop: a child process
//! in a process group of its own, on a free loopback port, its output in a log file.
//! Dropping it stops the whole group (workers a server forked included): SIGTERM, up to
//! 10 s to exit, then SIGKILL for whatever is left.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound and released: the caller's server takes it next).
pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) struct Peer {
    pub child: Child,
    pub port: u16,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl Peer {
    /// Runs `command(port)` on a free port, its output in `logs/<name>.log`; readiness
    /// is the caller's to wait for.
    pub fn spawn(name: &str, logs: &Path, command: impl FnOnce(u16) -> Command) -> Result<Peer, String> {
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let log = logs.join(format!("{name}.log"));
        let out = File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = command(port);
        cmd.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        let child = cmd.spawn().map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
        Ok(Peer { child, port, log })
    }

    /// Sends `sig` (as `kill` spells it: `-TERM`) to the whole process group.
    pub fn signal_group(&self, sig: &str) {
        let _ = Command::new("kill").args([sig, "--", &format!("-{}", self.child.id())]).stderr(Stdio::null()).status();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal_group("-TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // Whatever of the group is left (a worker process) goes too.
        self.signal_group("-KILL");
        let _ = self.child.wait();
    }
}
