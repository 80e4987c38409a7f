//! `corral-bench slowloris`: a normal client's latency alone, then beside thousands of
//! connections that trickle a request head a header line at a time and never finish it.
//! The header timeout bounds how long they are held; until then they must cost the
//! server little memory and no service to the normal client.

use std::fmt::Write as _;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corral::Model;
use serde::Serialize;

use crate::http::get;
use crate::load::{self, Client, Group, Pace, Plan};
use crate::server::{Server, ServerArgs};

#[derive(Clone, Debug, Serialize)]
pub struct SlowlorisReport {
    pub slowloris: usize,
    /// Still open (their last trickled line written) when the measurement ended.
    pub slowloris_open_at_end: usize,
    pub rate_per_s: f64,
    pub alone_p50_us: u64,
    pub alone_p99_us: u64,
    pub beside_p50_us: u64,
    pub beside_p99_us: u64,
    pub p99_ratio: f64,
    pub errors: u64,
    pub server_bytes_per_slowloris: f64,
}

fn open_slow(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr)?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: slow\r\n")?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// `corral-bench slowloris`: a normal client's latency beside trickling connections.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Connections trickling their headers.
    #[arg(long, default_value_t = 5000)]
    connections: usize,
    /// How long each window measures (seconds, or with a unit: 500ms, 2s).
    #[arg(long, default_value = "3s", value_parser = crate::parse_duration)]
    duration: Duration,
    /// Where the report goes.
    #[arg(long, default_value = "target/corral-report/slowloris")]
    out: PathBuf,
}

pub fn main(a: Args) -> Result<(), String> {
    let (n, window, out) = (a.connections, a.duration, a.out);
    crate::server::raise_nofile();
    let r = run(n, window).map_err(|e| format!("slowloris: {e}"))?;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# corral slowloris\n\nA normal client: 8 connections, open-loop at {:.0} requests/s, {:.1} s alone, then {:.1} s \
         beside {} connections that send a request line and then one header line per connection per second (spread evenly), never \
         the end of the head (the header timeout, 10 s by default, closes them later).\n",
        r.rate_per_s,
        window.as_secs_f64(),
        window.as_secs_f64(),
        r.slowloris
    );
    let _ = writeln!(md, "| | normal client p50 | normal client p99 |\n| --- | ---: | ---: |");
    let _ = writeln!(md, "| alone | {} us | {} us |", r.alone_p50_us, r.alone_p99_us);
    let _ = writeln!(md, "| beside {} slowloris | {} us | {} us |", r.slowloris, r.beside_p50_us, r.beside_p99_us);
    let _ = writeln!(
        md,
        "\np99 beside / alone: **{:.2}x**; normal-client errors: {}; slowloris still open at the end: {}; server memory \
         per slowloris connection: {:.0} bytes.",
        r.p99_ratio, r.errors, r.slowloris_open_at_end, r.server_bytes_per_slowloris
    );
    print!("{md}");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    std::fs::write(out.join("slowloris.md"), &md).map_err(|e| e.to_string())?;
    std::fs::write(out.join("slowloris.json"), serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn run(n: usize, window: Duration) -> std::io::Result<SlowlorisReport> {
    let server = Server::start(&ServerArgs::new(Model::Stealing, crate::cores()))?;
    let rate = 2000.0;
    let plan = Plan {
        addr: server.addr,
        clients: (0..8)
            .map(|_| Client {
                group: 0,
                request: get("/", false),
                pace: Pace::Open { per_sec: rate / 8.0 },
                reconnect_each: false,
            })
            .collect(),
        warmup: Duration::from_millis(250),
        duration: window,
        threads: 1,
        drain: Duration::from_secs(10),
    };
    let alone = load::run(&plan)?;
    let rss0 = server.resident_bytes();
    let addr = server.addr;
    let slow: Vec<TcpStream> = std::thread::scope(|s| {
        let per = n.div_ceil(4);
        let parts: Vec<_> = (0..4)
            .map(|t| s.spawn(move || (t * per..((t + 1) * per).min(n)).map(|_| open_slow(addr)).collect::<Vec<_>>()))
            .collect();
        parts.into_iter().flat_map(|p| p.join().expect("connecting thread")).collect::<std::io::Result<_>>()
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let trickler = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut slow = slow;
            let mut open = vec![true; slow.len()];
            // A line per connection per second, spread evenly over the second (100 slices
            // of 10 ms) as independent attackers would be.
            let slices = 100;
            let per = slow.len().div_ceil(slices).max(1);
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                let from = (k % slices) * per;
                for (s, o) in slow.iter_mut().zip(open.iter_mut()).skip(from).take(per) {
                    if *o && !matches!(s.write(b"x-slow: 1\r\n"), Ok(n) if n > 0) {
                        *o = false;
                    }
                }
                k += 1;
                // Pacing of the attack, not synchronisation.
                std::thread::sleep(Duration::from_millis(10));
            }
            open.iter().filter(|o| **o).count()
        })
    };
    let beside = load::run(&plan)?;
    let rss1 = server.resident_bytes();
    stop.store(true, Ordering::Relaxed);
    let open_at_end = trickler.join().expect("trickler thread");
    server.stop()?;
    let p99 = |g: &Group| g.quantile_us(0.99);
    Ok(SlowlorisReport {
        slowloris: n,
        slowloris_open_at_end: open_at_end,
        rate_per_s: rate,
        alone_p50_us: alone.groups[0].quantile_us(0.5),
        alone_p99_us: p99(&alone.groups[0]),
        beside_p50_us: beside.groups[0].quantile_us(0.5),
        beside_p99_us: p99(&beside.groups[0]),
        p99_ratio: p99(&beside.groups[0]) as f64 / p99(&alone.groups[0]).max(1) as f64,
        errors: alone.groups[0].errors + beside.groups[0].errors,
        server_bytes_per_slowloris: rss1.saturating_sub(rss0) as f64 / n.max(1) as f64,
    })
}
