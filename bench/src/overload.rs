//! `corral-bench overload`: heavy requests arriving at a multiple of what the CPU pool
//! can serve, open-loop (so the queue is not hidden), with CoDel on and off side by
//! side. Reports the p99 of the requests that were served, how many got an explicit
//! refusal (503), and how many got nothing at all once the senders stopped and every
//! reply still owed had been waited for.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use corral::Model;
use serde::Serialize;

use crate::http::get;
use crate::load::{self, Client, Pace, Plan};
use crate::server::{Server, ServerArgs};

#[derive(Clone, Debug, Serialize)]
pub struct OverloadRow {
    pub codel_target_ms: u64,
    pub lifo_threshold: usize,
    pub offered_per_s: f64,
    pub capacity_per_s: f64,
    pub served_per_s: f64,
    /// Served after the window, while every reply still owed was waited for.
    pub served_after: u64,
    pub served_p50_us: u64,
    pub served_p99_us: u64,
    pub served_p999_us: u64,
    pub refused: u64,
    pub other_errors: u64,
    pub unanswered: u64,
}

/// `corral-bench overload`: heavy requests open-loop past the CPU pool's capacity.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Offered load as a multiple of the CPU pool's capacity.
    #[arg(long, default_value_t = 2.0)]
    factor: f64,
    /// How long each run offers load (seconds, or with a unit: 500ms, 2s).
    #[arg(long, default_value = "5s", value_parser = crate::parse_duration)]
    duration: Duration,
    /// CPU time of each heavy request, in microseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    work_us: u64,
    /// CPU-pool threads (default: cores - 1: one core is left to the I/O workers and to
    /// the load generator that shares the machine).
    #[arg(long)]
    cpu_threads: Option<usize>,
    /// Where the report goes.
    #[arg(long, default_value = "target/corral-report/overload")]
    out: PathBuf,
}

pub fn main(a: Args) -> Result<(), String> {
    if !(a.factor.is_finite() && a.factor > 0.0) {
        return Err(format!("--factor must be a positive number, not {}", a.factor));
    }
    let (factor, seconds, work_us, out) = (a.factor, a.duration, a.work_us, a.out);
    let cpu_threads = a.cpu_threads.unwrap_or(crate::cores().saturating_sub(1)).max(1);
    crate::server::raise_nofile();
    let capacity = cpu_threads as f64 * 1e6 / work_us as f64;
    let offered = capacity * factor;
    let mut rows = Vec::new();
    for (codel, lifo) in [(0, 0), (5, 0), (5, 4 * cpu_threads)] {
        let r =
            run(codel, lifo, cpu_threads, offered, capacity, seconds, work_us).map_err(|e| format!("overload: {e}"))?;
        eprintln!(
            "codel {:>2} ms, lifo {:>2}: served {:>6.0}/s p99 {:>8} us, refused {:>6}, unanswered {}",
            codel, lifo, r.served_per_s, r.served_p99_us, r.refused, r.unanswered
        );
        rows.push(r);
    }
    let md = markdown(&rows, cpu_threads, work_us, seconds);
    print!("{md}");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    std::fs::write(out.join("overload.md"), &md).map_err(|e| e.to_string())?;
    std::fs::write(out.join("overload.json"), serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn run(
    codel_ms: u64,
    lifo: usize,
    cpu_threads: usize,
    offered: f64,
    capacity: f64,
    window: Duration,
    work_us: u64,
) -> std::io::Result<OverloadRow> {
    let mut args = ServerArgs::new(Model::Stealing, crate::cores());
    args.cpu_threads = cpu_threads;
    args.codel_target_ms = codel_ms;
    args.lifo_threshold = lifo;
    let server = Server::start(&args)?;
    let clients = 64;
    let per = offered / clients as f64;
    let path = format!("/work?us={work_us}");
    let plan = Plan {
        addr: server.addr,
        clients: (0..clients)
            .map(|_| Client {
                group: 0,
                request: get(&path, false),
                pace: Pace::Open { per_sec: per },
                reconnect_each: false,
            })
            .collect(),
        warmup: Duration::from_millis(500),
        duration: window,
        threads: crate::cores().clamp(1, 4),
        drain: Duration::from_secs(120),
    };
    let out = load::run(&plan)?;
    server.stop()?;
    let g = &out.groups[0];
    Ok(OverloadRow {
        codel_target_ms: codel_ms,
        lifo_threshold: lifo,
        offered_per_s: offered,
        capacity_per_s: capacity,
        served_per_s: out.rate(0),
        served_after: g.drained,
        served_p50_us: g.quantile_us(0.5),
        served_p99_us: g.quantile_us(0.99),
        served_p999_us: g.quantile_us(0.999),
        refused: g.refused,
        other_errors: g.errors.saturating_sub(g.refused + g.unanswered),
        unanswered: g.unanswered,
    })
}

fn markdown(rows: &[OverloadRow], cpu_threads: usize, work_us: u64, window: Duration) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# corral overload\n\nHeavy requests of {work_us} us of CPU, open-loop at {:.0}/s against a capacity of \
         {:.0}/s ({cpu_threads} CPU threads; the rest of the cores serve I/O and run the load generator), over {:.1} s plus 0.5 s of warm-up; then the senders stop and every reply \
         still owed is waited for.\n",
        rows[0].offered_per_s,
        rows[0].capacity_per_s,
        window.as_secs_f64()
    );
    let _ = writeln!(
        o,
        "| CoDel target | adaptive LIFO | served/s | served p50 | served p99 | served p99.9 | served after the window | refused (503) | other errors | never answered |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for r in rows {
        let codel = if r.codel_target_ms == 0 { "off".to_string() } else { format!("{} ms", r.codel_target_ms) };
        let lifo = if r.lifo_threshold == 0 { "off".to_string() } else { format!("above {}", r.lifo_threshold) };
        let _ = writeln!(
            o,
            "| {codel} | {lifo} | {:.0} | {:.1} ms | {:.1} ms | {:.1} ms | {} | {} | {} | {} |",
            r.served_per_s,
            r.served_p50_us as f64 / 1000.0,
            r.served_p99_us as f64 / 1000.0,
            r.served_p999_us as f64 / 1000.0,
            r.served_after,
            r.refused,
            r.other_errors,
            r.unanswered
        );
    }
    o
}
