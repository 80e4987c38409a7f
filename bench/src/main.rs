//! `corral-bench`: the five concurrency models measured side by side on this machine.
//!
//! ```text
//! corral-bench run   [--scenario a,b] [--model x,y] [--duration 1s] [--warmup 250ms]
//!                    [--connections 64] [--idle-connections 10000] [--workers N]
//!                    [--threads N] [--out DIR]
//! corral-bench serve --model M [--addr 127.0.0.1:8080] [--workers N] [--cpu N]
//! corral-bench soak  [--requests 1000000] [--connections 1000] [--out DIR]
//! corral-bench overload [--factor 2] [--work-us 1000] [--duration 5s] [--out DIR]
//! corral-bench slowloris [--connections 5000] [--duration 3s] [--out DIR]
//! ```

mod app;
mod http;
mod idle;
mod load;
mod metrics;
mod overload;
mod report;
mod scenario;
mod server;
mod slowloris;
mod soak;
mod svg;
mod wire;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral::Model;

use crate::report::Report;
use crate::scenario::{Scenario, Settings};

const USAGE: &str = "\
usage:
  corral-bench run   [--scenario keepalive,connect,heavy,hol,greedy,skew,idle] [--model single,...,stealing]
                     [--duration 1s] [--warmup 250ms] [--connections 64] [--idle-connections 10000]
                     [--idle-window 2s] [--workers N] [--threads N] [--hol-rate 2000] [--out DIR]
      runs each model against each scenario and writes DIR/report.md, report.json and SVG charts
      (default DIR: target/corral-report). With no options: the whole lab, about a minute on 2 cores.
  corral-bench serve --model M [--addr 127.0.0.1:0] [--workers N] [--cpu N] [--reply-timeout-ms T]
                     [--codel-target-ms T]
      serves the lab's HTTP app with one model until stdin closes (for wrk or your own client)
  corral-bench soak  [--requests 1000000] [--connections 1000] [--depth 4] [--out DIR]
      a long run with injected faults; reports sent, answered, refused, lost, misrouted, duplicated
  corral-bench overload [--factor 2] [--work-us 1000] [--duration 5s] [--out DIR]
      heavy requests open-loop at factor x the CPU pool's capacity, CoDel off and on: served p99,
      refusals, replies never sent
  corral-bench slowloris [--connections 5000] [--duration 3s] [--out DIR]
      a normal client's latency alone, then beside connections trickling their headers";

pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("serve") => server::ServerArgs::parse(&args[1..]).and_then(|a| server::serve(&a)),
        Some("soak") => soak::main(&args[1..]),
        Some("overload") => overload::main(&args[1..]),
        Some("slowloris") => slowloris::main(&args[1..]),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?}\n{USAGE}")),
        None => Err(USAGE.to_string()),
    };
    if let Err(e) = result {
        eprintln!("corral-bench: {e}");
        std::process::exit(2);
    }
}

/// `250ms`, `2s`, `1.5s`.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let bad = || format!("{v:?} is not a duration: write it like 500ms or 2s");
    let (num, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(bad());
    };
    let x: f64 = num.parse().map_err(|_| bad())?;
    if !x.is_finite() || x < 0.0 || x * scale > 86_400.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(x * scale))
}

pub fn parse_count(flag: &str, v: &str) -> Result<usize, String> {
    v.parse().map_err(|_| format!("{flag} takes a whole number, not {v:?}"))
}

fn run(args: &[String]) -> Result<(), String> {
    let mut st = Settings::defaults();
    let mut scenarios = Scenario::ALL.to_vec();
    let mut models = Model::ALL.to_vec();
    let mut out = PathBuf::from("target/corral-report");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().ok_or(format!("{a} needs a value (try --help)"))?;
        match a.as_str() {
            "--scenario" => scenarios = v.split(',').map(Scenario::parse).collect::<Result<_, _>>()?,
            "--model" => {
                models =
                    v.split(',').map(|m| m.parse::<Model>().map_err(|e| e.to_string())).collect::<Result<_, _>>()?
            }
            "--duration" => st.duration_ms = parse_duration(v)?.as_millis() as u64,
            "--warmup" => st.warmup_ms = parse_duration(v)?.as_millis() as u64,
            "--idle-window" => st.idle_window_ms = parse_duration(v)?.as_millis() as u64,
            "--connections" => st.connections = parse_count(a, v)?.max(1),
            "--idle-connections" => st.idle_connections = parse_count(a, v)?.max(1),
            "--workers" => st.workers = parse_count(a, v)?.max(1),
            "--threads" => st.threads = parse_count(a, v)?.max(1),
            "--hol-rate" => st.hol_rate = v.parse().map_err(|_| format!("--hol-rate takes requests/s, not {v:?}"))?,
            "--out" => out = PathBuf::from(v),
            other => return Err(format!("unknown option {other} (try --help)")),
        }
    }
    if st.duration_ms == 0 {
        return Err("--duration must be more than 0".into());
    }
    server::raise_nofile();
    let command = std::iter::once("corral-bench run".to_string()).chain(args.iter().cloned()).collect::<Vec<_>>();
    let total = scenarios.len() * models.len();
    eprintln!(
        "corral lab: {} scenarios x {} models on {} cores, {} ms each (+{} ms warm-up); report in {}",
        scenarios.len(),
        models.len(),
        cores(),
        st.duration_ms,
        st.warmup_ms,
        out.display()
    );
    let mut rows = Vec::new();
    let mut k = 0;
    for &s in &scenarios {
        for &m in &models {
            k += 1;
            let label = format!("[{k:>2}/{total}] {:<9} {:<21}", s.name(), m.name());
            let progress = Progress::start(label.clone());
            let row = scenario::run(s, m, &st);
            match &row.error {
                Some(e) => progress.finish(&format!("{label} failed: {e}")),
                None => progress.finish(&format!("{label} {}", report::format_value(s, row.value))),
            }
            rows.push(row);
        }
    }
    let report = Report::new(command.join(" "), st, rows);
    println!("\n{}", report.table());
    println!("Which model fits:");
    for f in &report.fits {
        println!("  {:<9} {}", f.scenario, f.summary);
    }
    println!("\nGoals:");
    for g in &report.goals {
        println!("  [{}] {}: {}", if g.met { "met" } else { "NOT met" }, g.goal, g.figure);
    }
    report.write(&out).map_err(|e| format!("cannot write the report to {}: {e}", out.display()))?;
    println!("\nreport: {}/report.md, report.json, *.svg", out.display());
    Ok(())
}

/// A progress line: on a terminal it ticks with the elapsed time; otherwise one line
/// per run.
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

    fn finish(self, line: &str) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker {
            t.thread().unpark();
            let _ = t.join();
            eprint!("\r\x1b[K");
        }
        eprintln!("{line}");
    }
}
