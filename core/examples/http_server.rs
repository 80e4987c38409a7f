//! An HTTP server on corral: `GET /` answers a short body inline; `GET /work?us=N`
//! spins the CPU for N microseconds as a heavy request (on the CPU pool); `GET /stats`
//! returns the live stats as Prometheus text; `GET /peer` answers the client's address
//! as the engine sees it; `GET /tls` what its TLS handshake agreed on (version, cipher
//! suite, SNI, ALPN) or `plain`; `POST /upload` (or `PUT`) reads a body of any size up to
//! `max_body` as it streams in, in bounded memory, and answers its size and FNV-1a
//! checksum (`curl -T big.iso http://127.0.0.1:8080/upload`); `GET /ws` is an echo
//! websocket (each message sent back as it came) and `GET /broadcast` a websocket whose
//! every message goes to all sockets connected there (a topic, fanned out in the
//! engine).
//!
//! ```text
//! cargo run --release --example http_server -- [--addr 127.0.0.1:8080] [--model stealing]
//!     [--workers N] [--cpu N] [--acceptors N] [--accept-batch N] [--acceptor-threads]
//!     [--defer-accept] [--oneshot] [--fd N]... [--proxy-protocol v1|v2|any]
//!     [--proxy-trusted CIDR,...] [--listeners-from PATH] [--offer-listeners PATH]
//!     [--tls-cert PATH --tls-key PATH] [--set NAME=VALUE]... [--seconds S] [--demo]
//! ```
//! (`--help` lists them; `--set` takes any option of the option table, e.g.
//! `--set max_connections_per_ip=0 --set idle_timeout=5s`.)
//! With `--tls-cert` and `--tls-key` (PEM files) every connection is TLS (`curl --cacert
//! ca.pem https://127.0.0.1:PORT/`), and it says `listening on https://...`.
//! With TLS, SIGHUP reads the certificate and key files again (new connections get them,
//! open ones keep theirs; a file that cannot be used is reported and the old ones serve on).
//! It prints its address and serves until SIGTERM or SIGINT (or for `--seconds`), then
//! drains for up to 5 s, prints the shutdown report and exits 0. Under a service manager:
//! socket-activated listeners (`LISTEN_FDS`) are served, as are `--fd N` ones (a
//! descriptor named both ways is taken once), and `NOTIFY_SOCKET` hears READY=1 once it
//! accepts and STOPPING=1 when it drains.
//!
//! `--demo` (what `make demo` runs): serve on a free loopback port, drive a short load
//! against itself from client threads (keep-alive, a new connection per request, and
//! 1 ms heavy requests, then a 64 MiB streamed upload checked byte for byte by its
//! checksum), print what it measured and the engine's own counters, stop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use clap::Parser;
use corral::options::{Front, Value};
use corral::ws::{Accept, Message, WebSocket, WsHandler};
use corral::{Body, Config, Cost, Engine, Handler, Mode, Model, Readiness, Request, Responder, Response};

/// `/ws`: every message comes back as it came.
struct Echo;

impl WsHandler for Echo {
    fn message(&self, ws: &WebSocket, msg: Message) {
        ws.send(&msg);
    }
}

/// `/broadcast`: every message goes to every socket there, the sender too.
struct Broadcast;

const ROOM: &str = "broadcast";

impl WsHandler for Broadcast {
    fn open(&self, ws: &WebSocket) {
        ws.subscribe(ROOM);
    }
    fn message(&self, ws: &WebSocket, msg: Message) {
        ws.publish(ROOM, &msg);
        ws.send(&msg);
    }
}

#[derive(Default)]
struct App {
    engine: OnceLock<Weak<Engine>>,
}

fn spin(us: u64) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_micros(us) {
        std::hint::spin_loop();
    }
}

impl Handler for App {
    fn cost(&self, req: &Request) -> Cost {
        match req.http().map(|h| h.path_only()) {
            Some("/work") => Cost::Heavy,
            _ => Cost::Light,
        }
    }

    /// Bodies stream: `/upload` reads them as they arrive; the other routes ignore
    /// theirs (dropped unread, the rest is discarded).
    fn streams_bodies(&self) -> bool {
        true
    }

    fn handle(&self, req: Request, res: Responder) {
        let Some(h) = req.http() else { return };
        if h.path_only() == "/upload" {
            if matches!(h.method(), "POST" | "PUT") {
                upload(req, res);
            } else {
                res.respond(Response::new(405).header("allow", "POST, PUT").body("POST or PUT a body to /upload\n"));
            }
            return;
        }
        if req.websocket().is_some() {
            let events: Arc<dyn WsHandler> = match h.path_only() {
                "/ws" => Arc::new(Echo),
                "/broadcast" => Arc::new(Broadcast),
                _ => return res.respond(Response::new(404).body("no websocket here: try /ws or /broadcast\n")),
            };
            let _ = res.upgrade(Accept::new(), events);
            return;
        }
        let reply = match h.path_only() {
            "/" => Response::new(200).header("content-type", "text/plain").body("hello\n"),
            "/work" => match h.query("us").unwrap_or("1000").parse::<u64>() {
                Ok(us) if us <= 10_000_000 => {
                    spin(us);
                    Response::new(200).header("content-type", "text/plain").body(format!("spun {us} us\n"))
                }
                _ => Response::new(400).body("us must be a whole number of microseconds up to 10000000\n"),
            },
            "/stats" => match self.engine.get().and_then(Weak::upgrade) {
                Some(e) => Response::new(200)
                    .header("content-type", "text/plain; version=0.0.4")
                    .body(e.stats().to_prometheus()),
                None => Response::new(503).body("starting\n"),
            },
            "/peer" => Response::new(200).header("content-type", "text/plain").body(format!("{}\n", req.peer())),
            "/tls" => Response::new(200).header("content-type", "text/plain").body(tls_line(&req)),
            _ => Response::new(404).body("not found\n"),
        };
        res.respond(reply);
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a (64-bit) over `data`, continued from `hash`: a checksum a client can compute
/// in a few lines to check an upload arrived intact.
fn fnv1a(hash: u64, data: &[u8]) -> u64 {
    data.iter().fold(hash, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

fn upload_reply(bytes: u64, hash: u64) -> Response {
    Response::new(200).header("content-type", "text/plain").body(format!("{bytes} bytes, fnv1a64 {hash:016x}\n"))
}

/// `POST /upload`. The handler runs on an I/O worker, which must not wait for the body:
/// a body still arriving goes to a thread of its own that reads it blocking (one
/// thread per upload in progress, so at most `max_connections`); one that came whole
/// with its head is answered at once.
fn upload(mut req: Request, res: Responder) {
    let Some(body) = req.take_body() else {
        let whole = req.bytes();
        return res.respond(upload_reply(whole.len() as u64, fnv1a(FNV_OFFSET, whole)));
    };
    let reader = std::thread::Builder::new().name("upload".into()).spawn(move || read_upload(body, res));
    if let Err(e) = reader {
        // The responder went with the closure: dropped unanswered, the client gets a 500.
        eprintln!("http_server: cannot start a thread for an upload ({e}); answered 500");
    }
}

/// Reads the body as it arrives (`Body` is a blocking `std::io::Read`), hashing each piece.
fn read_upload(mut body: Body, res: Responder) {
    let mut buf = vec![0u8; 64 * 1024];
    let (mut bytes, mut hash) = (0u64, FNV_OFFSET);
    loop {
        match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                bytes += n as u64;
                hash = fnv1a(hash, &buf[..n]);
            }
            // Too large (the engine answered 413), malformed (400), too slow (408), or
            // the client left: this reply is sent only in the last case's stead, if at all.
            Err(e) => return res.respond(Response::new(400).body(format!("upload failed: {e}\n"))),
        }
    }
    res.respond(upload_reply(bytes, hash));
}

fn main() {
    if let Err(e) = run() {
        eprintln!("http_server: {e}");
        std::process::exit(2);
    }
}

/// An HTTP server on corral: `GET /` inline, `GET /work?us=N` heavy, `GET /stats`
/// Prometheus text, `GET /peer` the client's address, `POST /upload` a streamed body's
/// size and checksum. Serves until SIGTERM/SIGINT (or for --seconds), then drains and
/// exits 0.
#[derive(Parser, Debug)]
#[command(name = "http_server", version)]
struct Args {
    /// Address to listen on (several allowed).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:0")]
    addr: Vec<SocketAddr>,
    /// Concurrency model: single, thread-per-connection, pool, reuseport, stealing.
    #[arg(long, value_parser = parse_model)]
    model: Option<Model>,
    /// I/O worker threads (default: one per core).
    #[arg(long, visible_alias = "io-workers", value_name = "N")]
    workers: Option<usize>,
    /// CPU-pool threads for heavy requests (default: one per core).
    #[arg(long = "cpu", visible_alias = "cpu-threads", value_name = "N")]
    cpu_threads: Option<usize>,
    /// Acceptors (default: min(cores, 4)).
    #[arg(long, value_name = "N")]
    acceptors: Option<usize>,
    /// Accepts per wake-up.
    #[arg(long, value_name = "N")]
    accept_batch: Option<usize>,
    /// Dedicated acceptor threads instead of acceptors inside the I/O workers.
    #[arg(long)]
    acceptor_threads: bool,
    /// TCP_DEFER_ACCEPT on the listeners.
    #[arg(long)]
    defer_accept: bool,
    /// EPOLLONESHOT registration instead of edge-triggered.
    #[arg(long)]
    oneshot: bool,
    /// Connection I/O: epoll, io_uring, or auto (io_uring if the probe passes, else epoll).
    #[arg(long, value_name = "BACKEND", value_parser = ["epoll", "io_uring", "auto"])]
    backend: Option<String>,
    /// Each connection starts with a PROXY header from a load balancer: v1, v2 or any.
    #[arg(long, value_name = "VERSION")]
    proxy_protocol: Option<String>,
    /// The balancers trusted to send the PROXY header (comma-separated CIDR blocks;
    /// default loopback).
    #[arg(long, value_name = "CIDR,...")]
    proxy_trusted: Option<String>,
    /// Take the listening sockets a running server offers at this Unix socket path
    /// (`--offer-listeners` there): a restart that loses no connection.
    #[arg(long, value_name = "PATH")]
    listeners_from: Option<std::path::PathBuf>,
    /// Offer this server's listening sockets at this Unix socket path; once a successor
    /// (`--listeners-from`) serves them, drain and exit 0.
    #[arg(long, value_name = "PATH")]
    offer_listeners: Option<std::path::PathBuf>,
    /// Serve this inherited listening socket (repeatable); with socket activation
    /// (LISTEN_FDS) those are served without it.
    #[arg(long, value_name = "N")]
    fd: Vec<i32>,
    /// Serve TLS with this PEM certificate chain (the server's certificate first); needs
    /// --tls-key.
    #[arg(long, value_name = "PATH", requires = "tls_key", conflicts_with = "demo")]
    tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert's certificate.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Any engine option of the option table, by name (repeatable): --set idle_timeout=5s.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    set: Vec<(String, String)>,
    /// Serve for this many seconds (a signal still stops it sooner).
    #[arg(long, value_name = "S")]
    seconds: Option<u64>,
    /// Serve on a free port, drive a short load against itself, print the figures, stop.
    #[arg(long)]
    demo: bool,
}

/// `GET /tls`: what the connection's TLS handshake agreed on, or that it is plain TCP.
fn tls_line(req: &Request) -> String {
    let Some(t) = req.tls() else { return "plain\n".into() };
    let alpn = t.alpn().map(String::from_utf8_lossy).unwrap_or_default();
    format!(
        "TLS {} {} sni={} alpn={} resumed={}\n",
        t.version().name(),
        t.cipher_suite(),
        t.sni().unwrap_or("-"),
        if alpn.is_empty() { "-".into() } else { alpn },
        t.resumed()
    )
}

fn parse_model(s: &str) -> Result<Model, String> {
    s.parse().map_err(|e: corral::Error| e.to_string())
}

fn parse_set(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("{s:?} is not NAME=VALUE"))
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    // Before any thread starts: they inherit the blocked set, so a termination signal
    // waits for `term.wait` whichever thread it is sent to.
    let term = match (args.demo, args.tls_cert.is_some()) {
        (true, _) => None,
        (false, true) => Some(corral::os::Termination::block_with_hangup()?),
        (false, false) => Some(corral::os::Termination::block()?),
    };
    let activated = corral::os::listen_fds()?;
    let inherited = !activated.is_empty() || !args.fd.is_empty() || args.listeners_from.is_some();
    let mut cfg = if inherited { Config::builder() } else { Config::builder().addrs(args.addr.iter().copied()) };
    let taken: Vec<i32> = activated.iter().map(|a| std::os::fd::AsRawFd::as_raw_fd(&a.fd)).collect();
    for a in activated {
        cfg = cfg.listener_fd(a.fd);
    }
    for &n in &args.fd {
        if !taken.contains(&n) {
            // SAFETY: `--fd N` is this program's contract: the descriptor was passed to it
            // to serve, and nothing else here owns it (activated ones are skipped above).
            cfg = cfg.listener_fd(unsafe { corral::os::take_inherited_fd(n) }?);
        }
    }
    if let Some(path) = &args.listeners_from {
        cfg = cfg.listeners_from(path, Duration::from_secs(30))?;
    }
    cfg = cfg.sd_notify(true);
    if let Some(m) = args.model {
        cfg = cfg.model(m);
    }
    if let Some(n) = args.workers {
        cfg = cfg.io_workers(n);
    }
    if let Some(n) = args.cpu_threads {
        cfg = cfg.cpu_threads(n);
    }
    if let Some(n) = args.acceptors {
        cfg = cfg.acceptors(n);
    }
    if let Some(n) = args.accept_batch {
        cfg = cfg.accept_batch(n);
    }
    if args.acceptor_threads {
        cfg = cfg.accept_in_workers(false);
    }
    if args.defer_accept {
        cfg = cfg.defer_accept(true);
    }
    if args.oneshot {
        cfg = cfg.readiness(Readiness::OneShot);
    }
    if let Some(v) = &args.backend {
        cfg.set(&Front::C, "backend", Value::Text(v))?;
    }
    if let Some(v) = &args.proxy_protocol {
        cfg.set(&Front::C, "proxy_protocol", Value::Text(v))?;
    }
    if let Some(v) = &args.proxy_trusted {
        cfg.set(&Front::C, "proxy_trusted", Value::Text(v))?;
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        cfg = cfg.tls_cert(cert.clone()).tls_key(key.clone());
    }
    for (name, value) in &args.set {
        cfg.set(&Front::C, name, Value::Text(value))?;
    }
    let (seconds, demo) = (args.seconds, args.demo);
    let scheme = if args.tls_cert.is_some() { "https" } else { "http" };
    let app = Arc::new(App::default());
    let engine = Arc::new(Engine::new(cfg.build()?, Mode::Serve(Arc::clone(&app) as Arc<dyn Handler>))?);
    let _ = app.engine.set(Arc::downgrade(&engine));
    engine.start()?;
    println!("listening on {scheme}://{}", engine.local_addr());
    let st = engine.stats();
    eprintln!(
        "http_server: serving on {}{}",
        st.backend,
        st.backend_note.map(|n| format!(" ({n})")).unwrap_or_default()
    );
    if demo {
        run_demo(&engine)?;
        let report = engine.shutdown(Duration::from_secs(5))?;
        println!("\nshutdown: {report:?}");
        return Ok(());
    }
    let term = term.map(Arc::new);
    if let (Some(path), Some(t)) = (args.offer_listeners.clone(), term.clone()) {
        let engine = Arc::clone(&engine);
        std::thread::spawn(move || loop {
            match engine.hand_over(&path, Duration::from_secs(3600)) {
                Ok(()) => {
                    eprintln!("http_server: a successor serves the listeners now");
                    t.raise();
                    return;
                }
                Err(e) if e.kind() == corral::ErrorKind::State => continue, // nobody came yet
                Err(e) => {
                    eprintln!("http_server: hand-over: {e}");
                    return;
                }
            }
        });
    }
    let until = seconds.map(|s| std::time::Instant::now() + Duration::from_secs(s));
    let left = || until.map(|u| u.saturating_duration_since(std::time::Instant::now()));
    while let Some(sig) = term.as_ref().and_then(|t| t.wait(left())) {
        if sig != corral::os::Termination::HANGUP {
            eprintln!("http_server: signal {sig}: draining");
            break;
        }
        match engine.reload_tls() {
            Ok(()) => eprintln!("http_server: SIGHUP: TLS certificates reloaded"),
            Err(e) => eprintln!("http_server: SIGHUP: TLS certificates not reloaded, the ones before serve on: {e}"),
        }
    }
    let report = engine.shutdown(Duration::from_secs(5))?;
    println!("{report:?}");
    Ok(())
}

/// One load phase's client-side result.
struct Phase {
    name: &'static str,
    requests: u64,
    errors: u64,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

impl Phase {
    fn percentile(&self, q: f64) -> u32 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        self.latencies_us[i]
    }
}

/// Reads one response's head and Content-Length body; false at end of stream.
fn read_reply(r: &mut BufReader<TcpStream>) -> std::io::Result<bool> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(false);
    }
    let mut len = 0usize;
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let h = line.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            if n.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(true)
}

/// `clients` threads send `path` for `dur`, on one connection each or a new one per request.
fn drive(addr: SocketAddr, name: &'static str, path: &str, clients: usize, dur: Duration, keep_alive: bool) -> Phase {
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let req = if keep_alive {
                format!("GET {path} HTTP/1.1\r\nHost: demo\r\n\r\n")
            } else {
                format!("GET {path} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")
            };
            std::thread::spawn(move || {
                let (mut ok, mut errors, mut lat) = (0u64, 0u64, Vec::new());
                let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
                while start.elapsed() < dur {
                    let t = Instant::now();
                    if conn.is_none() {
                        match TcpStream::connect(addr).and_then(|s| Ok((s.try_clone()?, BufReader::new(s)))) {
                            Ok(c) => conn = Some(c),
                            Err(_) => {
                                errors += 1;
                                continue;
                            }
                        }
                    }
                    let (w, r) = conn.as_mut().expect("connected above");
                    match w.write_all(req.as_bytes()).and_then(|_| read_reply(r)) {
                        Ok(true) => {
                            ok += 1;
                            lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        }
                        _ => errors += 1,
                    }
                    if !keep_alive {
                        conn = None;
                    }
                }
                (ok, errors, lat)
            })
        })
        .collect();
    let mut phase = Phase { name, requests: 0, errors: 0, elapsed: Duration::ZERO, latencies_us: Vec::new() };
    for t in threads {
        let (ok, errors, lat) = t.join().expect("client thread");
        phase.requests += ok;
        phase.errors += errors;
        phase.latencies_us.extend(lat);
    }
    phase.elapsed = start.elapsed();
    phase.latencies_us.sort_unstable();
    phase
}

/// Uploads `size` bytes to `/upload` (written from a second thread while the reply is
/// awaited), and checks the size and checksum the server answers.
fn demo_upload(addr: SocketAddr, size: usize) -> Result<(), Box<dyn std::error::Error>> {
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let want = format!("{size} bytes, fnv1a64 {:016x}\n", fnv1a(FNV_OFFSET, &data));
    let start = Instant::now();
    let mut conn = TcpStream::connect(addr)?;
    conn.write_all(format!("POST /upload HTTP/1.1\r\nHost: demo\r\nContent-Length: {size}\r\n\r\n").as_bytes())?;
    let mut writer = conn.try_clone()?;
    let sent = std::thread::spawn(move || writer.write_all(&data));
    let mut r = BufReader::new(conn);
    let mut head = String::new();
    let mut len = 0usize;
    while r.read_line(&mut head)? > 2 {
        if let Some(v) = head.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse()?;
        }
        head.clear();
    }
    let mut got = vec![0; len];
    r.read_exact(&mut got)?;
    sent.join().map_err(|_| "the upload's writer thread panicked")??;
    let got = String::from_utf8_lossy(&got);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "\nupload: {} MiB streamed in {secs:.2} s ({:.0} MiB/s): {}",
        size >> 20,
        (size >> 20) as f64 / secs,
        got.trim()
    );
    if got != want {
        return Err(format!("the upload came back as {got:?}, expected {want:?}").into());
    }
    Ok(())
}

fn run_demo(engine: &Engine) -> Result<(), Box<dyn std::error::Error>> {
    let addr = engine.local_addr();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let dur = Duration::from_secs(3);
    println!(
        "demo: {} model, {} I/O workers, {} CPU threads, {cores} cores; clients run in this process, \
         so they share the cores with the server",
        engine.config().model().name(),
        engine.config().io_workers(),
        engine.config().cpu_threads()
    );
    let phases = [
        drive(addr, "keep-alive GET /", "/", 32, dur, true),
        drive(addr, "new connection per GET /", "/", 16, dur, false),
        drive(addr, "heavy GET /work?us=1000", "/work?us=1000", 16, dur, true),
    ];
    println!("\n{:<28} {:>10} {:>8} {:>9} {:>9} {:>9}", "scenario", "req/s", "errors", "p50 us", "p99 us", "p99.9 us");
    for p in &phases {
        println!(
            "{:<28} {:>10.0} {:>8} {:>9} {:>9} {:>9}",
            p.name,
            p.requests as f64 / p.elapsed.as_secs_f64(),
            p.errors,
            p.percentile(0.5),
            p.percentile(0.99),
            p.percentile(0.999)
        );
    }
    println!("heavy ideal: {} req/s (cores x 1000)", cores * 1000);
    demo_upload(addr, 64 << 20)?;
    let st = engine.stats();
    println!("\nengine: {} accepted, {} replies, {} open", st.accepts(), st.replies, st.open_connections);
    for (i, w) in st.workers.iter().enumerate() {
        println!(
            "  worker {i}: {} requests, {} connections, {} stolen in {} steals, busy {:.2}s",
            w.requests,
            w.connections,
            w.stolen,
            w.steal_ops,
            w.busy.as_secs_f64()
        );
    }
    println!(
        "  cpu pool: {} heavy jobs run, {} stolen; latency light p99 {} us, heavy p99 {} us (framing to reply)",
        st.cpu.run, st.cpu.stolen, st.latency_light.p99, st.latency_heavy.p99
    );
    for (i, l) in st.listeners.iter().enumerate() {
        println!("  listener {i}: {} accepts, backlog {} (kernel queue now {})", l.accepts, l.queue_max, l.queue_len);
    }
    Ok(())
}
