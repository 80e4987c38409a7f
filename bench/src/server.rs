//! The server side of the lab: `corral-bench serve` runs one model, and [`Server`]
//! starts that command as a child process, so the server's memory and CPU are its own
//! and the load generator cannot disturb them.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use corral::{Config, Engine, Handler, Mode, Model};
use serde::Serialize;

use crate::app::LabApp;

/// How the lab configures a model's engine (stated in the report).
#[derive(Clone, Debug, Serialize)]
pub struct ServerArgs {
    pub model: String,
    pub addr: SocketAddr,
    pub workers: usize,
    pub cpu_threads: usize,
    /// 0: the default (60 s).
    pub reply_timeout_ms: u64,
    /// CoDel target on the CPU-pool queue; 0: off.
    pub codel_target_ms: u64,
    /// Adaptive LIFO threshold on the CPU-pool queue; 0: off.
    pub lifo_threshold: usize,
    /// Each connection starts with a PROXY v2 header (behind the fleet's balancer).
    pub proxy_v2: bool,
    /// The listen backlog asked of the kernel (the `backlog` scenario varies it).
    pub backlog: u32,
    /// Fair shares per client (`fair_share`, the engine's default); off: first in, first
    /// out per connection and per job (`greedy judge` sets both side by side).
    pub fair_share: bool,
}

impl ServerArgs {
    pub fn new(model: Model, workers: usize) -> ServerArgs {
        ServerArgs {
            model: model.name().to_string(),
            addr: "127.0.0.1:0".parse().expect("valid"),
            workers,
            cpu_threads: workers,
            reply_timeout_ms: 0,
            codel_target_ms: 0,
            lifo_threshold: 0,
            proxy_v2: false,
            backlog: 4096,
            fair_share: true,
        }
    }

    fn to_args(&self) -> Vec<String> {
        vec![
            "serve".into(),
            "--model".into(),
            self.model.clone(),
            "--addr".into(),
            self.addr.to_string(),
            "--workers".into(),
            self.workers.to_string(),
            "--cpu".into(),
            self.cpu_threads.to_string(),
            "--reply-timeout-ms".into(),
            self.reply_timeout_ms.to_string(),
            "--codel-target-ms".into(),
            self.codel_target_ms.to_string(),
            "--lifo-threshold".into(),
            self.lifo_threshold.to_string(),
            "--backlog".into(),
            self.backlog.to_string(),
        ]
        .into_iter()
        .chain(self.proxy_v2.then(|| "--proxy-v2".to_string()))
        .chain((!self.fair_share).then(|| "--no-fair-share".to_string()))
        .collect()
    }

    /// The engine configuration: the model's own, plus limits that do not get in a
    /// benchmark's way (every client comes from loopback, so no per-IP cap; no renewal
    /// of long-lived connections; a backlog for bursts of connects).
    pub fn config(&self) -> corral::Result<Config> {
        let model: Model = self.model.parse()?;
        let mut b = Config::builder()
            .addr(self.addr)
            .model(model)
            .backlog(self.backlog)
            .max_connections_per_ip(0)
            .max_requests_per_connection(0)
            .fair_share(self.fair_share);
        // Each model takes only the thread counts it has (the others are refused).
        let applies = |name: &str| corral::options::find(name).is_some_and(|o| o.in_model(model));
        if applies("io_workers") {
            b = b.io_workers(self.workers);
        }
        if applies("cpu_threads") {
            b = b.cpu_threads(self.cpu_threads);
        }
        if self.reply_timeout_ms > 0 {
            b = b.reply_timeout(Duration::from_millis(self.reply_timeout_ms));
        }
        if self.codel_target_ms > 0 {
            b = b.codel_target(Some(Duration::from_millis(self.codel_target_ms)));
        }
        if self.lifo_threshold > 0 {
            b = b.lifo_threshold(self.lifo_threshold);
        }
        if self.proxy_v2 {
            b = b.proxy_protocol(corral::ProxyMode::V2);
        }
        b.build()
    }
}

/// `corral-bench serve`: the lab's HTTP app with one model, until stdin closes.
#[derive(clap::Args, Debug)]
pub struct ServeCli {
    /// The model: single, thread-per-connection, pool, reuseport, stealing.
    #[arg(long, value_parser = crate::parse_model)]
    model: Model,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// I/O workers (default: one per core; models with a worker count only).
    #[arg(long)]
    workers: Option<usize>,
    /// CPU-pool threads (default: as many as workers; the stealing model only).
    #[arg(long = "cpu")]
    cpu_threads: Option<usize>,
    /// Reply deadline in milliseconds (0: the default, 60 s).
    #[arg(long, default_value_t = 0)]
    reply_timeout_ms: u64,
    /// CoDel target on the CPU-pool queue in milliseconds (0: off).
    #[arg(long, default_value_t = 0)]
    codel_target_ms: u64,
    /// Adaptive LIFO threshold on the CPU-pool queue (0: off).
    #[arg(long, default_value_t = 0)]
    lifo_threshold: usize,
    /// Each connection starts with a PROXY v2 header from a balancer on loopback.
    #[arg(long)]
    proxy_v2: bool,
    /// Listen backlog asked of the kernel (clamped to net.core.somaxconn).
    #[arg(long, default_value_t = 4096)]
    backlog: u32,
    /// Turn off fair shares per client (first in, first out per connection and job).
    #[arg(long)]
    no_fair_share: bool,
}

impl ServeCli {
    pub fn args(self) -> ServerArgs {
        let workers = self.workers.unwrap_or_else(crate::cores);
        ServerArgs {
            model: self.model.name().to_string(),
            addr: self.addr,
            workers,
            cpu_threads: self.cpu_threads.unwrap_or(workers),
            reply_timeout_ms: self.reply_timeout_ms,
            codel_target_ms: self.codel_target_ms,
            lifo_threshold: self.lifo_threshold,
            proxy_v2: self.proxy_v2,
            backlog: self.backlog,
            fair_share: !self.no_fair_share,
        }
    }
}

/// What the child prints when it stops: its shutdown report and request count.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct StopReport {
    pub requests_framed: u64,
    pub replies: u64,
    pub requests_aborted: u64,
    pub handler_failures: u64,
    pub replies_timed_out: u64,
    pub connections_aborted: u64,
    pub clean: bool,
}

/// `corral-bench serve`: serves until stdin closes, then shuts down and prints a
/// [`StopReport`] as one JSON line.
pub fn serve(args: &ServerArgs) -> Result<(), String> {
    raise_nofile();
    crate::app::quiet_injected_panics();
    let app = Arc::new(LabApp::default());
    let cfg = args.config().map_err(|e| e.to_string())?;
    let engine =
        Arc::new(Engine::new(cfg, Mode::Serve(Arc::clone(&app) as Arc<dyn Handler>)).map_err(|e| e.to_string())?);
    let _ = app.engine.set(Arc::downgrade(&engine));
    engine.start().map_err(|e| e.to_string())?;
    println!("listening on http://{}", engine.local_addr());
    let _ = io::stdout().flush();
    let _ = io::stdin().read_to_end(&mut Vec::new());
    let report = engine.shutdown(Duration::from_secs(10)).map_err(|e| e.to_string())?;
    let st = engine.stats();
    let out = StopReport {
        requests_framed: st.requests(),
        replies: report.requests_completed,
        requests_aborted: report.requests_aborted,
        handler_failures: st.handler_failures,
        replies_timed_out: st.replies_timed_out,
        connections_aborted: report.connections_aborted,
        clean: report.clean,
    };
    println!("report {}", serde_json::to_string(&out).map_err(|e| e.to_string())?);
    Ok(())
}

/// Makes `backend` the servers' connection I/O: they are child processes, so it reaches
/// them as the default, through the environment (`corral::Backend::from_env`).
pub fn use_backend(backend: &str) {
    std::env::set_var("CORRAL_BACKEND", backend);
}

/// Raises the soft descriptor limit to the hard one (idle holds thousands of sockets).
pub fn raise_nofile() {
    if let Ok((_, hard)) = corral::os::nofile_limit() {
        let _ = corral::os::set_nofile_limit(hard);
    }
}

/// What the lab reads off a server under test: where it listens, its memory and its
/// CPU time (every process of it, a balancer included), and its stats text.
pub trait Observed {
    fn addr(&self) -> SocketAddr;
    fn resident_bytes(&self) -> u64;
    fn cpu_time(&self) -> Duration;
    fn prometheus(&self) -> io::Result<String>;
}

impl Observed for Server {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn resident_bytes(&self) -> u64 {
        Server::resident_bytes(self)
    }
    fn cpu_time(&self) -> Duration {
        Server::cpu_time(self)
    }
    fn prometheus(&self) -> io::Result<String> {
        Server::prometheus(self)
    }
}

/// A `corral-bench serve` child process.
pub struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    pub addr: SocketAddr,
    /// Its connections start with a PROXY v2 header (the lab's own too).
    proxy_v2: bool,
}

/// A PROXY v2 `LOCAL` header: the lab's own connections to a server behind a balancer.
const PROXY_V2_LOCAL: &[u8] = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";

impl Server {
    pub fn start(args: &ServerArgs) -> io::Result<Server> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(args.to_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let addr = line.trim().strip_prefix("listening on http://").and_then(|a| a.parse().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!("the {} server did not start (it said {line:?})", args.model)));
        };
        Ok(Server { child, stdin, stdout, addr, proxy_v2: args.proxy_v2 })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn resident_bytes(&self) -> u64 {
        corral::os::resident_bytes(self.pid()).unwrap_or(0)
    }

    pub fn cpu_time(&self) -> Duration {
        corral::os::cpu_time_of(self.pid()).unwrap_or_default()
    }

    /// The engine's stats, as Prometheus text.
    pub fn prometheus(&self) -> io::Result<String> {
        let mut s = TcpStream::connect(self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        if self.proxy_v2 {
            s.write_all(PROXY_V2_LOCAL)?;
        }
        s.write_all(b"GET /stats HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
    }

    /// Closes the child's stdin (it shuts down gracefully) and returns its report.
    pub fn stop(mut self) -> io::Result<StopReport> {
        drop(self.stdin.take());
        let mut report = None;
        let mut line = String::new();
        while self.stdout.read_line(&mut line)? > 0 {
            if let Some(json) = line.trim().strip_prefix("report ") {
                report = serde_json::from_str(json).ok();
            }
            line.clear();
        }
        let status = self.child.wait()?;
        report.ok_or_else(|| io::Error::other(format!("the server exited ({status}) without a report")))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Per-worker values of a Prometheus metric, e.g. `corral_worker_busy_seconds_total`.
pub fn per_worker(prometheus: &str, metric: &str) -> Vec<f64> {
    prometheus
        .lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with("{worker="))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()))
        .collect()
}
