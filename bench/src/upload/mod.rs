//! `corral-bench upload`: request bodies pushed into a server as fast as it takes them.
//!
//! ```text
//! corral-bench upload --url http://127.0.0.1:8000/ --scenario single      # one 100 MB upload: MB/s
//! corral-bench upload --url ... --scenario concurrent                      # 64 connections, 1 MB each, for 2 s: MB/s
//! corral-bench upload --url http://.../echo --scenario echo                # 64 x 100 KB chunked, echoed: requests/s
//! corral-bench upload --url ... --scenario concurrent --size 100MB --seconds 0 --pid PID   # + the server's RSS growth
//! corral-bench upload judge [--rounds 3] [--seconds 2]                     # corral beside Granian, uvicorn, Node http
//! ```
//!
//! The client ([`run`]) is std threads on blocking sockets, one per connection; each
//! body is written from one fixed buffer, so a 1 GiB upload holds 256 KiB. Every
//! connection starts at once (a barrier); throughput is what was acknowledged (2xx
//! replies) over the time from the start to the last reply. The judge is in [`judge`].

pub mod judge;
pub mod rss;
pub mod wire;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use self::rss::Rss;
use self::wire::{BodyWriter, Conn, Failure, Target, Upload};

pub const MB: f64 = 1e6;
pub const MIB: u64 = 1 << 20;

/// What a run measures, and its defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// One connection, one body (default 100 MB): MB/s.
    Single,
    /// N connections (default 64) uploading bodies (default 1 MB) for --seconds (0: one
    /// each): MB/s over all of them.
    Concurrent,
    /// N connections (default 64) POSTing chunked bodies (default 100 KB) that the app
    /// echoes, for --seconds: requests/s.
    Echo,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Single => "single",
            Scenario::Concurrent => "concurrent",
            Scenario::Echo => "echo",
        }
    }
}

/// `corral-bench upload`.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    judge: Option<Sub>,
    /// The server: http://host:port/path (the path the uploads POST to).
    #[arg(long)]
    url: Option<String>,
    /// single, concurrent or echo.
    #[arg(long, value_enum, default_value = "single")]
    scenario: Scenario,
    /// Body size per request: bytes, or with a unit (100KB, 1MB, 100MB, 64KiB, 1GiB).
    #[arg(long, value_parser = parse_size)]
    size: Option<u64>,
    /// Connections (single: 1; otherwise 64).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    connections: Option<u64>,
    /// How long each connection keeps uploading, one body after another (0: one body
    /// each). Default 2 s for concurrent and echo; single sends one body.
    #[arg(long, value_parser = crate::parse_duration)]
    seconds: Option<Duration>,
    /// Send bodies with Transfer-Encoding: chunked in chunks of this size (echo: 16KiB).
    #[arg(long, value_parser = parse_size)]
    chunk: Option<u64>,
    /// Send Content-Length bodies even for echo.
    #[arg(long, conflicts_with = "chunk")]
    no_chunked: bool,
    /// Check that the app answers the byte count it read (the judge's apps do).
    #[arg(long)]
    expect_count: bool,
    /// The server's process id: report its resident memory growth (with its children).
    #[arg(long)]
    pid: Option<u32>,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    /// Starts corral's fronts and the peers (Granian, uvicorn, Node http) on loopback,
    /// runs every scenario alternating servers round by round, and prints one line per
    /// comparison: `<name> corral=<figure> <peer>=<figure> ratio=<r> goal=<g>`.
    Judge(judge::Args),
}

/// A run of the client.
#[derive(Clone, Debug)]
pub struct Plan {
    pub target: Target,
    pub scenario: Scenario,
    pub upload: Upload,
    pub connections: usize,
    /// Keep uploading until this much time has passed (zero: one body per connection).
    pub duration: Duration,
    pub pid: Option<u32>,
}

impl Plan {
    /// The scenario's defaults (the issue's figures) against `target`.
    pub fn new(target: Target, scenario: Scenario) -> Plan {
        let (size, connections, secs, chunk) = match scenario {
            Scenario::Single => (100_000_000, 1, 0.0, None),
            Scenario::Concurrent => (1_000_000, 64, 2.0, None),
            Scenario::Echo => (100_000, 64, 2.0, Some(16 << 10)),
        };
        let upload =
            Upload { method: "POST", size, chunk, expect_echo: scenario == Scenario::Echo, expect_count: false };
        Plan { target, scenario, upload, connections, duration: Duration::from_secs_f64(secs), pid: None }
    }
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Requests answered 2xx (and passing their check).
    pub requests: u64,
    /// Body bytes of those requests.
    pub bytes: u64,
    /// From the start to the last reply.
    pub elapsed: Duration,
    /// The first failure, if any request failed (the run stops at it).
    pub failure: Option<Failure>,
    pub rss: Option<Rss>,
}

impl Outcome {
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / MB / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn req_per_s(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `plan`: every connection opens, then all start together.
pub fn run(plan: &Plan) -> Outcome {
    let body = BodyWriter::new(&plan.target, &plan.upload);
    let n = plan.connections.max(1);
    let barrier = Barrier::new(n + 1);
    let stop = AtomicBool::new(false);
    let first_failure: Mutex<Option<Failure>> = Mutex::new(None);
    let fail = |f: Failure| {
        stop.store(true, Ordering::Relaxed);
        first_failure.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(f);
    };
    let mut watch = None;
    let (start, finished): (Instant, Vec<(u64, Option<Instant>)>) = std::thread::scope(|s| {
        let threads: Vec<_> = (0..n)
            .map(|_| {
                let (body, barrier, stop, fail) = (&body, &barrier, &stop, &fail);
                s.spawn(move || {
                    let mut conn = Conn::open(plan.target.addr);
                    barrier.wait();
                    let start = Instant::now();
                    let (mut done, mut last) = (0u64, None);
                    loop {
                        let c = match conn.as_mut() {
                            Ok(c) => c,
                            Err(e) => {
                                fail(e.clone());
                                break;
                            }
                        };
                        match c.upload(body, &plan.upload) {
                            Ok(reply) => {
                                done += 1;
                                last = Some(Instant::now());
                                if reply.close {
                                    conn = Conn::open(plan.target.addr);
                                }
                            }
                            Err(e) => {
                                fail(e);
                                break;
                            }
                        }
                        if stop.load(Ordering::Relaxed) || start.elapsed() >= plan.duration {
                            break;
                        }
                    }
                    (done, last)
                })
            })
            .collect();
        if let Some(pid) = plan.pid {
            watch = Some(rss::Watch::start(pid));
        }
        barrier.wait();
        let start = Instant::now();
        (start, threads.into_iter().map(|t| t.join().expect("upload thread panicked")).collect())
    });
    let rss = match watch {
        Some(Ok(w)) => Some(w.finish()),
        Some(Err(e)) => {
            eprintln!("corral-bench upload: no memory figure: {e}");
            None
        }
        None => None,
    };
    let requests: u64 = finished.iter().map(|(d, _)| d).sum();
    let end = finished.iter().filter_map(|(_, l)| *l).max().unwrap_or(start);
    Outcome {
        requests,
        bytes: requests * plan.upload.size,
        elapsed: end.saturating_duration_since(start),
        failure: first_failure.into_inner().unwrap_or_else(|e| e.into_inner()),
        rss,
    }
}

/// `100MB`, `100KB`, `1GB` (decimal), `64KiB`, `1MiB`, `1GiB` (binary), or bytes.
pub fn parse_size(v: &str) -> Result<u64, String> {
    let t = v.trim();
    let units: [(&str, u64); 7] = [
        ("KiB", 1 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
        ("KB", 1_000),
        ("MB", 1_000_000),
        ("GB", 1_000_000_000),
        ("B", 1),
    ];
    let (num, scale) = units.iter().find_map(|&(u, s)| t.strip_suffix(u).map(|n| (n, s))).unwrap_or((t, 1));
    let bad = || format!("{v:?} is not a size: write bytes (1000) or a unit (100KB, 100MB, 64KiB, 1GiB)");
    let x: f64 = num.trim().parse().map_err(|_| bad())?;
    if !x.is_finite() || x < 0.0 || x * scale as f64 > (1u64 << 50) as f64 {
        return Err(bad());
    }
    Ok((x * scale as f64).round() as u64)
}

/// A size as the scenario names write it: `100MB`, `1GiB`, `100KB`, or bytes.
pub fn size_name(n: u64) -> String {
    for (u, s) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= s && n % s == 0 && n % 1000 != 0 {
            return format!("{}{u}", n / s);
        }
    }
    for (u, s) in [("GB", 1_000_000_000u64), ("MB", 1_000_000), ("KB", 1_000)] {
        if n >= s && n % s == 0 {
            return format!("{}{u}", n / s);
        }
    }
    format!("{n}B")
}

fn mib(b: u64) -> f64 {
    b as f64 / MIB as f64
}

pub fn main(a: Args) -> Result<(), String> {
    if let Some(Sub::Judge(j)) = a.judge {
        return judge::main(j);
    }
    let url = a.url.ok_or("give the server with --url http://host:port/path (or run `corral-bench upload judge`)")?;
    let mut plan = Plan::new(Target::parse(&url)?, a.scenario);
    if let Some(s) = a.size {
        plan.upload.size = s;
    }
    if let Some(c) = a.connections {
        plan.connections = c as usize;
    }
    if let Some(d) = a.seconds {
        plan.duration = d;
    }
    if let Some(c) = a.chunk {
        if c == 0 || c > 1 << 30 {
            return Err(format!("--chunk must be 1 byte to 1 GiB, not {c}"));
        }
        plan.upload.chunk = Some(c as usize);
    }
    if a.no_chunked {
        plan.upload.chunk = None;
    }
    plan.upload.expect_count = a.expect_count;
    plan.pid = a.pid;
    crate::server::raise_nofile();
    let o = run(&plan);
    let framing = match plan.upload.chunk {
        Some(c) => format!("chunked ({} chunks)", size_name(c as u64)),
        None => "Content-Length".into(),
    };
    println!(
        "{} {}: {} connection(s), {} bodies ({framing}), {} answered in {:.3} s",
        plan.scenario.name(),
        url,
        plan.connections,
        size_name(plan.upload.size),
        o.requests,
        o.elapsed.as_secs_f64()
    );
    if let Some(f) = o.failure {
        return Err(format!("{} {url} failed: {f}", plan.scenario.name()));
    }
    match plan.scenario {
        Scenario::Echo => println!("{:.0} requests/s ({:.1} MB/s up)", o.req_per_s(), o.mb_per_s()),
        _ => println!("{:.1} MB/s ({:.1} requests/s)", o.mb_per_s(), o.req_per_s()),
    }
    if let Some(r) = &o.rss {
        println!(
            "server RSS ({} process(es)): start {:.1} MiB, peak {:.1} MiB, growth {:.1} MiB ({})",
            r.processes,
            mib(r.start),
            mib(r.peak),
            mib(r.growth),
            r.how
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use corral::{Body, BodyRead, Config, Cost, Engine, Handler, Mode, Request, Responder, Response};

    /// corral itself, streaming: `/echo` answers the body, `/refuse` answers 413
    /// without reading, anything else reads to the end and answers the count.
    struct Counter;

    fn drain(mut body: Body, echo: bool) -> Result<(u64, Vec<u8>), String> {
        let (mut n, mut out) = (0u64, Vec::new());
        loop {
            match body.read_blocking(None) {
                BodyRead::Data(d) => {
                    n += d.len() as u64;
                    if echo {
                        out.extend_from_slice(&d);
                    }
                }
                BodyRead::End => return Ok((n, out)),
                BodyRead::Failed(e) => return Err(e.to_string()),
                BodyRead::Pending => return Err("pending on a blocking read".into()),
            }
        }
    }

    impl Handler for Counter {
        fn cost(&self, _: &Request) -> Cost {
            Cost::Heavy
        }
        fn streams_bodies(&self) -> bool {
            true
        }
        fn handle(&self, mut req: Request, res: Responder) {
            let path = req.http().map(|h| h.path_only().to_string()).unwrap_or_default();
            if path == "/refuse" {
                res.respond(Response::new(413).body("too large\n"));
                return;
            }
            let echo = path == "/echo";
            let got = match req.take_body() {
                Some(b) => drain(b, echo),
                None => Ok((req.bytes().len() as u64, req.bytes().to_vec())),
            };
            res.respond(match got {
                Ok((_, bytes)) if echo => Response::new(200).body(bytes),
                Ok((n, _)) => Response::new(200).body(n.to_string()),
                Err(e) => Response::new(500).body(e),
            });
        }
    }

    fn server() -> Arc<Engine> {
        let cfg = Config::builder()
            .addr("127.0.0.1:0".parse().unwrap())
            .model(corral::Model::Stealing)
            .io_workers(1)
            .cpu_threads(4)
            .build()
            .unwrap();
        let e = Arc::new(Engine::new(cfg, Mode::Serve(Arc::new(Counter))).unwrap());
        e.start().unwrap();
        e
    }

    fn plan(e: &Engine, path: &str, scenario: Scenario) -> Plan {
        let mut p = Plan::new(Target::parse(&format!("http://{}{path}", e.local_addr())).unwrap(), scenario);
        p.upload.expect_count = scenario != Scenario::Echo;
        p
    }

    #[test]
    fn uploads_are_counted_whole_by_a_streaming_corral() {
        let e = server();
        let mut p = plan(&e, "/up", Scenario::Single);
        p.upload.size = 5_000_000;
        p.pid = Some(std::process::id());
        let o = run(&p);
        assert_eq!(o.failure, None);
        assert_eq!((o.requests, o.bytes), (1, 5_000_000));
        assert!(o.mb_per_s() > 0.0 && o.elapsed > Duration::ZERO);
        assert!(o.rss.as_ref().is_some_and(|r| r.peak >= r.start), "{:?}", o.rss);

        let mut p = plan(&e, "/up", Scenario::Concurrent);
        p.connections = 8;
        p.upload.size = 300_000;
        p.duration = Duration::from_millis(200);
        p.upload.chunk = Some(7000);
        let o = run(&p);
        assert_eq!(o.failure, None);
        assert!(o.requests >= 8, "every connection uploads at least once: {o:?}");
        assert_eq!(o.bytes, o.requests * 300_000);

        let mut p = plan(&e, "/echo", Scenario::Echo);
        p.connections = 4;
        p.duration = Duration::from_millis(100);
        let o = run(&p);
        assert_eq!(o.failure, None);
        assert!(o.requests >= 4 && o.req_per_s() > 0.0);
        e.shutdown(Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn a_refusal_or_a_short_count_is_a_failure_not_a_figure() {
        let e = server();
        let mut p = plan(&e, "/refuse", Scenario::Single);
        p.upload.size = 20_000_000;
        let o = run(&p);
        assert_eq!(o.failure.as_ref().map(Failure::tag).as_deref(), Some("413"), "{o:?}");
        assert_eq!(o.requests, 0);
        // The echo route answers the bytes, not their count: the check catches it.
        let mut p = plan(&e, "/echo", Scenario::Single);
        p.upload.size = 1000;
        let o = run(&p);
        assert!(matches!(o.failure, Some(Failure::Malformed(_))), "{o:?}");
        // Nothing listening.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        drop(l);
        let o = run(&Plan::new(Target::parse(&url).unwrap(), Scenario::Single));
        assert_eq!(o.failure.as_ref().map(Failure::tag).as_deref(), Some("refused"), "{o:?}");
        e.shutdown(Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn sizes_parse_and_name_round_trip() {
        assert_eq!(parse_size("100MB"), Ok(100_000_000));
        assert_eq!(parse_size("100KB"), Ok(100_000));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1.5MB"), Ok(1_500_000));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
        assert!(parse_size("-1MB").is_err());
        for (n, s) in
            [(100_000_000, "100MB"), (1 << 30, "1GiB"), (100_000, "100KB"), (65_536, "64KiB"), (1234, "1234B")]
        {
            assert_eq!(size_name(n), s);
            assert_eq!(parse_size(s), Ok(n));
        }
    }
}
