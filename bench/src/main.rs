//! `corral-bench`: the five concurrency models measured side by side on this machine.
//!
//! ```text
//! corral-bench run   [--scenario a,b] [--model x,y] [--rounds 5] [--duration 250ms] [--warmup 100ms]
//!                    [--connections 64] [--idle-connections 10000] [--workers N]
//!                    [--threads N] [--backlog-burst 2000] [--nginx-conf PATH] [--out DIR]
//! corral-bench serve --model M [--addr 127.0.0.1:8080] [--workers N] [--cpu N]
//! corral-bench soak  [--requests 1000000] [--connections 1000] [--out DIR]
//! corral-bench overload [--factor 2] [--work-us 1000] [--duration 5s] [--out DIR]
//! corral-bench slowloris [--connections 5000] [--duration 3s] [--out DIR]
//! corral-bench upload --url URL [--scenario single|concurrent|echo] [--size 100MB] [--pid PID]
//! corral-bench upload judge [--rounds 3] [--seconds 2s] [--only a,b]
//! corral-bench ws load --url ws://HOST:PORT/PATH [--mode echo|broadcast] [--connections N] [--size 64]
//! corral-bench ws judge [--seconds 5] [--warmup 1] [--only a,b]
//! corral-bench greedy judge [--seconds 1.5] [--rounds 3] [--only a,b] [--servers corral,nginx]
//! ```
//! `corral-bench help` and `corral-bench <command> --help` list every flag (clap);
//! durations are seconds (`3`) or carry a unit (`500ms`, `2s`).

mod app;
mod backlog;
mod fleet;
mod greedy;
mod http;
mod idle;
mod load;
mod metrics;
mod overload;
mod peer;
mod report;
mod rounds;
mod scenario;
mod server;
mod slowloris;
mod soak;
mod svg;
mod synflood;
mod tls_storm;
mod upload;
mod wire;
mod ws;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use corral::Model;

use crate::report::Report;
use crate::scenario::{Scenario, Settings, Target};

/// The five concurrency models measured side by side on this machine.
#[derive(Parser, Debug)]
#[command(name = "corral-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs each model against each scenario, in interleaved rounds, and writes
    /// DIR/report.md, report.json and SVG charts. With no options: the whole lab, about
    /// three minutes on 2 cores.
    Run(RunArgs),
    /// Serves the lab's HTTP app with one model until stdin closes (for wrk or your own client).
    Serve(server::ServeCli),
    /// A long run with injected faults; reports sent, answered, refused, lost, misrouted, duplicated.
    Soak(soak::Args),
    /// Heavy requests open-loop at factor x the CPU pool's capacity, CoDel off and on:
    /// served p99, refusals, replies never sent.
    Overload(overload::Args),
    /// A normal client's latency alone, then beside connections trickling their headers.
    Slowloris(slowloris::Args),
    /// Request bodies into a server (one 100 MB upload, 64 x 1 MB, a 100 KB chunked echo):
    /// MB/s, requests/s, the server's memory; `upload judge` runs corral beside the peers.
    Upload(upload::Args),
    /// Websocket load (echo, broadcast; closed or open loop): msg/s, latency;
    /// `ws judge` runs corral beside Granian, uvicorn, ws and tokio-tungstenite.
    Ws(ws::Args),
    /// A greedy client (pipelining, many connections, heavy requests, a slow reader) beside
    /// polite ones: `greedy judge` runs corral beside nginx, with and without it.
    Greedy(greedy::Args),
    /// Keep-alive TLS clients' latency while a storm of new TLS connections arrives, with
    /// handshakes on the CPU pool and inline on the I/O workers.
    TlsStorm(tls_storm::Args),
    /// Runs inside a network namespace the lab made: one `synflood` row's measurement.
    #[command(hide = true)]
    SynfloodChild(synflood::ChildArgs),
}

/// `corral-bench run`.
#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Scenarios, comma-separated: keepalive, connect, heavy, hol, skew, idle, greedy
    /// (the four greedy kinds against corral, corral-fifo and nginx, whatever --model
    /// says; at most 5 rounds), synflood (single, reuseport and stealing with SYN cookies
    /// on and off, in network namespaces) and backlog (the stealing model only, once per
    /// listen backlog, whatever --model says; at most 2 rounds). Default: all.
    #[arg(long, value_delimiter = ',', value_parser = |s: &str| Scenario::parse(s))]
    scenario: Vec<Scenario>,
    /// Models, comma-separated: single, thread-per-connection, pool, reuseport, stealing, and
    /// the fleets, single-threaded processes behind a balancer: fleet-haproxy, fleet-dnat
    /// (nftables; each skipped, saying why, where it cannot run). Default: all.
    #[arg(long, value_delimiter = ',', value_parser = |s: &str| Target::parse(s))]
    model: Vec<Target>,
    /// Rounds per scenario: each model runs once per round, every model before the next
    /// round; a row is the median of its rounds, with an order-statistic interval around
    /// it (the 3rd smallest to the 3rd largest of 11 rounds; min-max up to 7). hol runs at
    /// most 5 rounds, idle at most 3.
    #[arg(long, default_value_t = 11, value_parser = clap::value_parser!(u64).range(1..=1000))]
    rounds: u64,
    /// Measured time per model per round (seconds, or with a unit: 500ms, 2s).
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    duration: Duration,
    /// Warm-up before each measured run (seconds, or with a unit).
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    warmup: Duration,
    /// Client connections in `keepalive` (`connect` uses half).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    connections: u64,
    /// Idle connections in `idle`.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    idle_connections: u64,
    /// How long `idle` watches the server's CPU, shared among the rounds (seconds, or with a unit).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    idle_window: Duration,
    /// Server I/O workers (and CPU threads for `stealing`; default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    workers: Option<u64>,
    /// Load-generator threads (default: cores, at most 4).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    threads: Option<u64>,
    /// Open-loop rate of the light clients in `hol`, requests/s over all of them.
    #[arg(long)]
    hol_rate: Option<f64>,
    /// The servers' connection I/O: epoll (the default), io_uring, or auto (io_uring where
    /// the probe passes). thread-per-connection has no I/O workers and stays on epoll.
    #[arg(long, value_parser = ["epoll", "io_uring", "auto"])]
    backend: Option<String>,
    /// Connects issued at once in `backlog`.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    backlog_burst: u64,
    /// The peers' nginx configuration for `greedy` (nginx is skipped, saying why, when it
    /// or /usr/sbin/nginx is missing); relative to the working directory.
    #[arg(long, default_value = "../shared/peers/nginx.conf")]
    nginx_conf: PathBuf,
    /// Where the report goes.
    #[arg(long, default_value = "target/corral-report")]
    out: PathBuf,
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn main() {
    let cli = Cli::parse();
    let command = std::env::args().collect::<Vec<_>>();
    let result = match cli.command {
        Command::Run(a) => run(a, &command),
        Command::Serve(a) => server::serve(&a.args()),
        Command::Soak(a) => soak::main(a),
        Command::Overload(a) => overload::main(a),
        Command::Slowloris(a) => slowloris::main(a),
        Command::Upload(a) => upload::main(a),
        Command::Ws(a) => ws::main(a),
        Command::Greedy(a) => greedy::main(a),
        Command::TlsStorm(a) => tls_storm::main(a),
        Command::SynfloodChild(a) => synflood::child(a),
    };
    if let Err(e) = result {
        eprintln!("corral-bench: {e}");
        std::process::exit(2);
    }
}

pub fn parse_model(s: &str) -> Result<Model, String> {
    s.parse().map_err(|e: corral::Error| e.to_string())
}

/// `250ms`, `2s`, `1.5s`, or a bare number of seconds (`3`).
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let bad = || format!("{v:?} is not a duration: write seconds (3) or a unit (500ms, 2s)");
    let (num, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else {
        (v, 1.0)
    };
    let x: f64 = num.parse().map_err(|_| bad())?;
    if !x.is_finite() || x < 0.0 || x * scale > 86_400.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(x * scale))
}

fn run(a: RunArgs, argv: &[String]) -> Result<(), String> {
    let mut st = Settings::defaults();
    let scenarios = if a.scenario.is_empty() { Scenario::ALL.to_vec() } else { a.scenario };
    let models = if a.model.is_empty() { Target::all() } else { a.model };
    let out = a.out;
    st.rounds = a.rounds as usize;
    st.duration_ms = a.duration.as_millis() as u64;
    st.warmup_ms = a.warmup.as_millis() as u64;
    st.idle_window_ms = a.idle_window.as_millis() as u64;
    st.connections = a.connections as usize;
    st.idle_connections = a.idle_connections as usize;
    st.backlog.burst = a.backlog_burst as usize;
    st.greedy.nginx_conf = a.nginx_conf;
    if let Some(n) = a.workers {
        st.workers = n as usize;
    }
    if let Some(n) = a.threads {
        st.threads = n as usize;
    }
    if let Some(r) = a.hol_rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(format!("--hol-rate must be a positive number of requests/s, not {r}"));
        }
        st.hol_rate = r;
    }
    if st.duration_ms == 0 {
        return Err("--duration must be more than 0".into());
    }
    if let Some(b) = a.backend {
        server::use_backend(&b);
        st.backend = b;
    }
    server::raise_nofile();
    let command = std::iter::once("corral-bench".to_string()).chain(argv.iter().skip(1).cloned()).collect::<Vec<_>>();
    let total: usize = scenarios.iter().filter(|s| s.grid()).map(|s| s.rounds(&st)).sum::<usize>() * models.len();
    eprintln!(
        "corral lab: {} scenarios x {} models x {} rounds on {} cores, {} ms each (+{} ms warm-up), backend {}; \
         report in {}",
        scenarios.len(),
        models.len(),
        st.rounds,
        cores(),
        st.duration_ms,
        st.warmup_ms,
        st.backend,
        out.display()
    );
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut k = 0;
    for &s in &scenarios {
        if s == Scenario::Synflood {
            rows.extend(synflood::run(&models, &st));
            continue;
        }
        if s == Scenario::Greedy {
            rows.extend(run_greedy(&st));
            continue;
        }
        if s == Scenario::Backlog {
            let progress = Progress::start(format!("backlog   {} backlogs, stealing", backlog::backlogs().len()));
            let done = backlog::run(&st);
            progress.finish(None);
            for row in &done {
                let b = row.extra.get("backlog").copied().unwrap_or(f64::NAN);
                let figure = report::format_value(s, row.value);
                match &row.error {
                    Some(e) => eprintln!("backlog   {b:<5} failed: {e}"),
                    None => eprintln!(
                        "backlog   {b:<5} connect p99 {figure} ({})",
                        report::format_range(s, row.low, row.high)
                    ),
                }
            }
            rows.extend(done);
            continue;
        }
        // Round r runs every model before round r + 1 starts, so drift (the machine's
        // other load, its clock, its caches) falls on every model alike; each round starts
        // one model later, so no model always follows the same one.
        let mut samples: Vec<Vec<scenario::Row>> = vec![Vec::new(); models.len()];
        let rounds = s.rounds(&st);
        for r in 0..rounds {
            for i in 0..models.len() {
                let j = (i + r) % models.len();
                let m = models[j];
                k += 1;
                if samples[j].last().is_some_and(|x| x.error.is_some()) {
                    continue; // failed in an earlier round: the row says why
                }
                let label = format!("[{k:>3}/{total}] {:<9} round {}/{} {:<21}", s.name(), r + 1, rounds, m.name());
                let progress = Progress::start(label.clone());
                let row = scenario::run(s, m, &st);
                progress.finish(row.error.as_ref().map(|e| format!("{label} failed: {e}")).as_deref());
                samples[j].push(row);
            }
        }
        for (m, done) in models.iter().zip(samples) {
            let row = rounds::combine(done);
            match &row.error {
                Some(e) => eprintln!("{:<9} {:<21} failed: {e}", s.name(), m.name()),
                None => eprintln!(
                    "{:<9} {:<21} {} ({}, {} rounds)",
                    s.name(),
                    m.name(),
                    report::format_value(s, row.value),
                    report::format_range(s, row.low, row.high),
                    row.rounds
                ),
            }
            rows.push(row);
        }
    }
    eprintln!("corral lab: {:.0} s", started.elapsed().as_secs_f64());
    let report = Report::new(command.join(" "), st, rows);
    println!("\n{}", report.table());
    println!("Which model fits:");
    for f in &report.fits {
        println!("  {:<9} {}", f.scenario, f.summary);
    }
    if let Some(v) = &report.backlog {
        println!("  {:<9} {}", "backlog", v.summary);
    }
    println!("\nGoals:");
    for g in &report.goals {
        println!("  [{}] {}: {}", g.verdict.mark(), g.goal, g.figure);
    }
    report.write(&out).map_err(|e| format!("cannot write the report to {}: {e}", out.display()))?;
    println!("\nreport: {}/report.md, report.json, *.svg", out.display());
    Ok(())
}

/// The `greedy` section: each kind against corral, corral-fifo and nginx, a line per row.
fn run_greedy(st: &Settings) -> Vec<scenario::Row> {
    let mut rows = Vec::new();
    for kind in greedy::kinds::Kind::ALL {
        let label =
            format!("greedy    {:<11} corral, corral-fifo, nginx, {} rounds", kind.name(), greedy::lab::rounds(st));
        let progress = Progress::start(label);
        let done = greedy::lab::run_kind(st, kind);
        progress.finish(None);
        for row in &done {
            eprintln!("{}", greedy::lab::line(row));
        }
        rows.extend(done);
    }
    rows
}

/// A progress line: on a terminal it ticks with the elapsed time and is then erased;
/// a line is printed for a run only when there is something to say (a failure).
struct Progress {
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(label: String) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = std::io::stderr().is_terminal().then(|| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let t = Instant::now();
                let spin = ['|', '/', '-', '\\'];
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    eprint!("\r{label} {} {:.1}s ", spin[i % 4], t.elapsed().as_secs_f64());
                    let _ = std::io::stderr().flush();
                    i += 1;
                    std::thread::park_timeout(Duration::from_millis(200));
                }
            })
        });
        Progress { stop, ticker }
    }

    fn finish(self, line: Option<&str>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker {
            t.thread().unpark();
            let _ = t.join();
            eprint!("\r\x1b[K");
        }
        if let Some(line) = line {
            eprintln!("{line}");
        }
    }
}
