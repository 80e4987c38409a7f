//! `corral-bench tls-storm`: what a storm of new TLS connections does to the clients
//! already connected, with handshakes on the CPU pool (`tls_handshake_on_pool`, the
//! default) and inline on the I/O workers (issue 24, part 2).
//!
//! ```text
//! corral-bench tls-storm [--seconds 3] [--rounds 3] [--keepalive 50] [--stormers 4]
//!                        [--workers 2] [--backend epoll]
//! ```
//!
//! An engine in this process serves TLS 1.3 (an ECDSA P-256 certificate made at start)
//! with `hello` replies. `--keepalive` connections, each a thread with one request in
//! flight, complete their handshakes first and then measure each request's latency.
//! Beside them `--stormers` threads open connections as fast as the server answers:
//! each sends one recorded `ClientHello` and leaves once the server's first flight comes
//! back. The client thus pays no crypto for the storm, while the server does the whole
//! expensive part of a full handshake for each (the key exchange, the certificate's
//! signature): the storm is the server's, not the generator's. Each round runs the same
//! load alone, then with the storm, for both settings, the settings' order swapping
//! every round; the figures are medians over rounds.
//!
//! Printed, per setting: the keep-alive p50 / p99 / p99.9 and req/s alone and in the
//! storm, the storm's handshakes per second; then the judge line
//! `tls-storm-keepalive-p99 corral=<pool> corral-inline=<inline> ratio=<inline/pool> goal=1`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use corral::{Config, Engine, Handler, Request, Responder, Response};
use hdrhistogram::Histogram;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// `corral-bench tls-storm`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds each run measures (after a quarter second of warm-up).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Rounds: each runs both settings, alone and in the storm.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Established keep-alive connections whose latency is measured.
    #[arg(long, default_value_t = 50)]
    keepalive: usize,
    /// Threads opening new TLS connections back to back.
    #[arg(long, default_value_t = 4)]
    stormers: usize,
    /// The engine's I/O workers (its CPU pool has as many threads as there are cores).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// epoll or io_uring.
    #[arg(long, default_value = "epoll")]
    backend: String,
}

struct Hello;

impl Handler for Hello {
    fn handle(&self, _req: Request, res: Responder) {
        res.respond(Response::new(200).body(b"hello\n".to_vec()));
    }
}

/// What one run measured.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
    req_per_s: f64,
    handshakes_per_s: f64,
}

pub fn main(a: Args) -> Result<(), String> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).map_err(|e| e.to_string())?;
    let (cert, key) = (made.cert.pem(), made.signing_key.serialize_pem());
    let client = client_config(made.cert.der())?;
    let hello = client_hello(&client)?;
    let mut runs: [Vec<(Run, Run)>; 2] = [Vec::new(), Vec::new()];
    for round in 0..a.rounds {
        let order = if round % 2 == 0 { [true, false] } else { [false, true] };
        for on_pool in order {
            let cfg = Config::builder()
                .tls_pem(cert.clone(), key.clone())
                .tls_handshake_on_pool(on_pool)
                .io_workers(a.workers)
                .backend(a.backend.parse().map_err(|e| format!("--backend: {e}"))?)
                .build()
                .map_err(|e| e.to_string())?;
            let engine = Engine::serve(cfg, Hello).map_err(|e| e.to_string())?;
            let alone = measure(&a, engine.local_addr(), &client, None);
            let storm = measure(&a, engine.local_addr(), &client, Some(&hello));
            let st = engine.stats();
            engine.shutdown(Duration::from_secs(5)).map_err(|e| e.to_string())?;
            eprintln!(
                "round {round} {:<6} alone p99 {:>6} us  storm p99 {:>6} us  {:>6.0} handshakes/s  (pool flights {})",
                name(on_pool),
                alone.p99_us,
                storm.p99_us,
                storm.handshakes_per_s,
                st.tls.pool_flights
            );
            runs[usize::from(!on_pool)].push((alone, storm));
        }
    }
    let [pool, inline] = runs.map(|r| median_runs(&r));
    for (on_pool, (alone, storm)) in [(true, pool), (false, inline)] {
        println!(
            "{:<6} alone: p50 {} us p99 {} us p99.9 {} us {:.0} req/s | storm: p50 {} us p99 {} us p99.9 {} us \
             {:.0} req/s, {:.0} handshakes/s",
            name(on_pool),
            alone.p50_us,
            alone.p99_us,
            alone.p999_us,
            alone.req_per_s,
            storm.p50_us,
            storm.p99_us,
            storm.p999_us,
            storm.req_per_s,
            storm.handshakes_per_s
        );
    }
    let ratio = inline.1.p99_us as f64 / pool.1.p99_us.max(1) as f64;
    println!(
        "tls-storm-keepalive-p99 corral={}us corral-inline={}us ratio={ratio:.2} goal=1",
        pool.1.p99_us, inline.1.p99_us
    );
    Ok(())
}

fn name(on_pool: bool) -> &'static str {
    if on_pool {
        "pool"
    } else {
        "inline"
    }
}

/// Each figure's median over rounds (alone, storm), as the lab takes it.
fn median_runs(runs: &[(Run, Run)]) -> (Run, Run) {
    let pick = |f: &dyn Fn(&(Run, Run)) -> Run| {
        let all: Vec<Run> = runs.iter().map(f).collect();
        let median = |x: fn(&Run) -> f64| crate::rounds::median(&all.iter().map(x).collect::<Vec<_>>());
        Run {
            p50_us: median(|r| r.p50_us as f64) as u64,
            p99_us: median(|r| r.p99_us as f64) as u64,
            p999_us: median(|r| r.p999_us as f64) as u64,
            req_per_s: median(|r| r.req_per_s),
            handshakes_per_s: median(|r| r.handshakes_per_s),
        }
    };
    (pick(&|r| r.0), pick(&|r| r.1))
}

/// A TLS 1.3 client trusting `cert` only, offering AES-128-GCM first (as the TLS
/// benchmarks against nginx do).
fn client_config(cert: &rustls::pki_types::CertificateDer<'_>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone().into_owned()).map_err(|e| e.to_string())?;
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// One `ClientHello`, recorded once and sent by every storm connection.
fn client_hello(config: &Arc<ClientConfig>) -> Result<Vec<u8>, String> {
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let mut conn = ClientConnection::new(Arc::clone(config), name).map_err(|e| e.to_string())?;
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).map_err(|e| e.to_string())?;
    Ok(hello)
}

/// Runs the keep-alive clients for the configured time, beside the storm when `storm`
/// is its `ClientHello`.
fn measure(a: &Args, addr: SocketAddr, client: &Arc<ClientConfig>, storm: Option<&[u8]>) -> Run {
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let handshakes = Arc::new(AtomicU64::new(0));
    let keep: Vec<_> = (0..a.keepalive)
        .map(|_| {
            let (client, measuring, stop) = (Arc::clone(client), Arc::clone(&measuring), Arc::clone(&stop));
            thread::spawn(move || keepalive(addr, &client, &measuring, &stop))
        })
        .collect();
    let stormers: Vec<_> = storm
        .into_iter()
        .flat_map(|hello| (0..a.stormers).map(move |_| hello.to_vec()))
        .map(|hello| {
            let (measuring, stop, handshakes) = (Arc::clone(&measuring), Arc::clone(&stop), Arc::clone(&handshakes));
            thread::spawn(move || stormer(addr, &hello, &measuring, &stop, &handshakes))
        })
        .collect();
    thread::sleep(Duration::from_millis(250));
    measuring.store(true, Relaxed);
    let began = Instant::now();
    thread::sleep(Duration::from_secs_f64(a.seconds));
    stop.store(true, Relaxed);
    let secs = began.elapsed().as_secs_f64();
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    for t in keep {
        if let Ok(h) = t.join() {
            let _ = all.add(&h);
        }
    }
    for t in stormers {
        let _ = t.join();
    }
    Run {
        p50_us: all.value_at_quantile(0.5),
        p99_us: all.value_at_quantile(0.99),
        p999_us: all.value_at_quantile(0.999),
        req_per_s: all.len() as f64 / secs,
        handshakes_per_s: handshakes.load(Relaxed) as f64 / secs,
    }
}

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// One keep-alive client: handshakes, then asks and waits for each reply in turn,
/// recording the latency of those asked while `measuring`.
fn keepalive(
    addr: SocketAddr,
    client: &Arc<ClientConfig>,
    measuring: &AtomicBool,
    stop: &AtomicBool,
) -> Histogram<u64> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let Ok(sock) = TcpStream::connect(addr) else { return hist };
    let _ = sock.set_nodelay(true);
    let name = ServerName::try_from("localhost").expect("a valid name");
    let Ok(conn) = ClientConnection::new(Arc::clone(client), name) else { return hist };
    let mut s = StreamOwned::new(conn, sock);
    let mut buf = [0u8; 4096];
    while !stop.load(Relaxed) {
        let t = Instant::now();
        if s.write_all(REQUEST).is_err() || !read_reply(&mut s, &mut buf) {
            break;
        }
        if measuring.load(Relaxed) {
            let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
        }
    }
    hist
}

/// Reads one `hello` reply (its head and 6-byte body).
fn read_reply(s: &mut impl Read, buf: &mut [u8]) -> bool {
    let mut got = 0;
    loop {
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got += n,
        }
        if buf[..got].ends_with(b"\r\n\r\nhello\n") {
            return true;
        }
        if got == buf.len() {
            return false;
        }
    }
}

/// One storm thread: a connection, the recorded `ClientHello`, the server's first
/// flight, a reset (no TIME_WAIT left behind), and again.
fn stormer(addr: SocketAddr, hello: &[u8], measuring: &AtomicBool, stop: &AtomicBool, done: &AtomicU64) {
    let mut buf = [0u8; 8192];
    while !stop.load(Relaxed) {
        let Ok(mut s) = TcpStream::connect(addr) else { continue };
        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        if s.write_all(hello).is_err() {
            continue;
        }
        if matches!(s.read(&mut buf), Ok(n) if n > 0) && measuring.load(Relaxed) {
            done.fetch_add(1, Relaxed);
        }
    }
}
