//! The servers `greedy judge` sets side by side, started on loopback ports of their own
//! and stopped when dropped, and how each one's per-worker busy time is read.
//!
//! corral: the lab's own server (`corral-bench serve`, [`crate::server::Server`]: `/` light,
//! `/work?us=N` on the CPU pool), with a chosen model, I/O backend and worker count. A
//! worker's busy time is the engine's `corral_worker_busy_seconds_total`: wall time not
//! parked (it includes time the worker was runnable but preempted, and the park under way
//! when it is read counts as busy until it ends).
//!
//! nginx: the anchor, run from `/work/shared/peers/nginx.conf` (2 worker processes,
//! `return 200 "hello\n"` for every path) with its `__DIR__` and `__PORT__` filled in, in
//! the foreground in a process group of its own ([`crate::peer::Peer`]). A worker's busy
//! time is its CPU time (utime + stime in /proc/PID/stat): a worker process has no
//! parked-time counter, and its CPU time is what it spent working.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use corral::Model;

use crate::peer::Peer;
use crate::server::{per_worker, Server, ServerArgs};

/// How long a server may take to answer its first request.
const START_LIMIT: Duration = Duration::from_secs(10);

/// A server to put in the judge.
#[derive(Clone, Debug, PartialEq)]
pub enum Spec {
    /// `fair`: the engine's fair shares per client (off: `corral-fifo`, as before them).
    Corral {
        model: Model,
        backend: String,
        workers: usize,
        fair: bool,
    },
    Nginx {
        binary: PathBuf,
        conf: PathBuf,
    },
}

impl Spec {
    /// The name in the judge's lines: `corral` on epoll, `corral-<backend>` otherwise.
    pub fn label(&self) -> String {
        match self {
            Spec::Corral { backend, fair, .. } => {
                let name = if *fair { "corral" } else { "corral-fifo" };
                if backend == "epoll" {
                    name.into()
                } else {
                    format!("{name}-{backend}")
                }
            }
            Spec::Nginx { .. } => "nginx".into(),
        }
    }

    /// Why this server cannot run here, if it cannot (nginx not installed, no config).
    pub fn unavailable(&self) -> Option<String> {
        let Spec::Nginx { binary, conf } = self else { return None };
        if !binary.is_file() {
            return Some(format!("{} is not installed (apt-get install nginx-light)", binary.display()));
        }
        (!conf.is_file()).then(|| format!("no nginx configuration at {} (pass --nginx-conf)", conf.display()))
    }

    pub fn start(&self, logs: &Path) -> Result<Running, String> {
        match self {
            Spec::Corral { model, backend, workers, fair } => {
                crate::server::use_backend(backend);
                let server = Server::start(&ServerArgs { fair_share: *fair, ..ServerArgs::new(*model, *workers) })
                    .map_err(|e| format!("the corral server did not start: {e}"))?;
                let running = Running::Corral(server);
                running.check_backend(backend)?;
                Ok(running)
            }
            Spec::Nginx { binary, conf } => start_nginx(binary, conf, logs),
        }
    }
}

/// A started server; dropping it stops it.
pub enum Running {
    Corral(Server),
    Nginx { peer: Peer, workers: Vec<u32> },
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        match self {
            Running::Corral(s) => s.addr,
            Running::Nginx { peer, .. } => SocketAddr::from(([127, 0, 0, 1], peer.port)),
        }
    }

    /// Each worker's busy seconds since it started: corral's I/O workers (not parked),
    /// nginx's worker processes (CPU time).
    pub fn busy(&self) -> Result<Vec<f64>, String> {
        match self {
            Running::Corral(s) => {
                let text = s.prometheus().map_err(|e| format!("cannot read corral's /stats: {e}"))?;
                Ok(per_worker(&text, "corral_worker_busy_seconds_total"))
            }
            Running::Nginx { workers, .. } => workers
                .iter()
                .map(|&p| {
                    corral::os::cpu_time_of(p)
                        .map(|t| t.as_secs_f64())
                        .map_err(|e| format!("cannot read nginx worker {p}'s CPU time: {e}"))
                })
                .collect(),
        }
    }

    /// A corral server asked for io_uring that fell back to epoll would be measured under
    /// the wrong name: refuse it, saying why.
    fn check_backend(&self, backend: &str) -> Result<(), String> {
        let Running::Corral(s) = self else { return Ok(()) };
        if backend != "io_uring" {
            return Ok(());
        }
        let text = s.prometheus().map_err(|e| format!("cannot read corral's /stats: {e}"))?;
        let on = text.lines().any(|l| l.starts_with("corral_io_uring ") && l.ends_with(" 1"));
        if on {
            Ok(())
        } else {
            Err("io_uring was asked for but the engine runs on epoll here (its log says why)".into())
        }
    }
}

/// nginx's configuration with its directory and port filled in.
fn nginx_conf(template: &str, dir: &Path, port: u16) -> String {
    template.replace("__DIR__", &dir.display().to_string()).replace("__PORT__", &port.to_string())
}

/// Starts nginx in the foreground and waits until it answers `GET /` and both of its
/// worker processes are there.
fn start_nginx(binary: &Path, conf: &Path, logs: &Path) -> Result<Running, String> {
    let template = std::fs::read_to_string(conf).map_err(|e| format!("cannot read {}: {e}", conf.display()))?;
    let mut written = Ok(());
    let mut peer = Peer::spawn("nginx", logs, |port| {
        let path = logs.join("nginx.conf");
        written = std::fs::write(&path, nginx_conf(&template, logs, port))
            .map_err(|e| format!("cannot write {}: {e}", path.display()));
        let mut c = Command::new(binary);
        // -e: the error log from the start (before the configuration is read, nginx
        // would open its compiled-in one, which may not be writable).
        c.arg("-c").arg(&path).arg("-e").arg(logs.join("nginx-error.log")).args(["-g", "daemon off;"]);
        c
    })?;
    written?;
    let deadline = Instant::now() + START_LIMIT;
    let addr = SocketAddr::from(([127, 0, 0, 1], peer.port));
    loop {
        if let Ok(Some(status)) = peer.child.try_wait() {
            return Err(format!(
                "nginx exited ({status}): {}",
                last_words(&[&logs.join("nginx-error.log"), &peer.log])
            ));
        }
        let workers: Vec<u32> =
            crate::upload::rss::tree(peer.child.id()).into_iter().filter(|&p| p != peer.child.id()).collect();
        if answers(addr) && !workers.is_empty() {
            return Ok(Running::Nginx { peer, workers });
        }
        if Instant::now() >= deadline {
            return Err(format!("nginx did not answer GET / on {addr} within {START_LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last line of the first of `logs` that has one.
fn last_words(logs: &[&Path]) -> String {
    let last =
        |p: &&Path| std::fs::read_to_string(p).ok()?.lines().rev().find(|l| !l.trim().is_empty()).map(String::from);
    logs.iter().find_map(last).unwrap_or_else(|| "no output".into())
}

/// Whether `GET /` at `addr` gets a 200.
fn answers(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(&crate::http::get("/", true)).is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    reply.starts_with(b"HTTP/1.1 200")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_conf_fills_its_directory_and_port() {
        let t = "pid __DIR__/nginx.pid;\nlisten 127.0.0.1:__PORT__ reuseport;";
        let c = nginx_conf(t, Path::new("/tmp/x"), 4242);
        assert_eq!(c, "pid /tmp/x/nginx.pid;\nlisten 127.0.0.1:4242 reuseport;");
    }

    #[test]
    fn labels_name_the_backend() {
        let corral = |b: &str| Spec::Corral { model: Model::Stealing, backend: b.into(), workers: 2, fair: true };
        assert_eq!(corral("epoll").label(), "corral");
        assert_eq!(corral("io_uring").label(), "corral-io_uring");
        let nginx = Spec::Nginx { binary: "/nonexistent/nginx".into(), conf: "/nonexistent.conf".into() };
        assert_eq!(nginx.label(), "nginx");
        assert!(nginx.unavailable().unwrap().contains("is not installed"));
    }
}
