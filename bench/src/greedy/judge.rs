//! `corral-bench greedy judge`: each greedy kind against corral and nginx side by side,
//! with the greedy client and without it, and one line per kind and server:
//!
//! ```text
//! <kind> <server> polite_p99_ratio=<r> share=<greedy share / fair share> spread=<max/min busy> throughput=<req/s>
//! ```
//!
//! followed by a table for people (lines starting with `#`, as are all other lines that
//! are not figures). A kind's servers are started together, fresh for that kind. Each
//! round runs every server in turn (the order rotating round by round), and on each the
//! polite clients alone ("without") and beside the greedy client ("with"), one right
//! after the other, the pair's order swapping every round: drift on the machine falls on
//! both halves of a pair alike. A figure is the median over rounds of the round's figure;
//! the p99 ratio is the median of each round's with / without, so a pair is compared
//! with itself.
//!
//! Per round, from the with and without runs ([`super::fair`]):
//! - polite p50 / p99: over all the polite clients' requests (light and heavy);
//! - capacity C: replies per second of all clients in the with run (the heavy kind:
//!   heavy replies only: its contended resource is the CPU pool, which light requests do
//!   not use);
//! - demands: each polite client's rate alone (its rate in the without run, in the same
//!   units); the greedy client's is unbounded;
//! - fair shares: max-min (water-filling) of C over those demands; `share` = the greedy
//!   client's rate / its fair share (1: it got exactly its due; the goal is at most 1.1).
//!   The slow reader's rate is the replies that reached its socket inside the window: 0
//!   once the server stops serving it, as it should when nobody reads;
//! - C/n (the table only): the greedy client's rate over an equal split of C, the share
//!   were every demand unbounded. When the polite clients alone nearly fill the server,
//!   the greedy client's fair share is C less what they ask for, a difference of two
//!   large numbers, so `share` swings from round to round; C/n does not;
//! - Jain: over got_i / fair_i for every client, the greedy one included (not the slow
//!   reader: it reads nothing, so what it got says nothing about how it was treated);
//! - spread: busiest / idlest worker over the with run's window ([`super::servers`]);
//! - throughput: replies per second of all clients in the with run.
//!
//! nginx has no heavy row: its configuration answers every path with `hello`, so there is
//! no CPU work to be greedy for; proxying `/work` to another server would measure that
//! server, not nginx. Its line says `n/a` and a `#` line says why. Goals are reported,
//! never asserted.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use corral::Model;

use super::drive::{self, Outcome, Plan, Tally};
use super::fair;
use super::kinds::{Kind, Load, POLITE_MAX};
use super::servers::{Running, Spec};
use crate::rounds::median;

/// `corral-bench greedy judge`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Measured time of each run, with and without the greedy client (seconds, or with a unit).
    #[arg(long, default_value = "1.5", value_parser = crate::parse_duration)]
    seconds: Duration,
    /// Warm-up before each measured run (connections open, requests flow, nothing counted).
    #[arg(long, default_value = "250ms", value_parser = crate::parse_duration)]
    warmup: Duration,
    /// Rounds: each runs every server with and without the greedy client.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    rounds: u32,
    /// Greedy kinds, comma-separated, by letter or name: a (pipelining), b (connections),
    /// c (heavy), d (slow-reader). Default: all.
    #[arg(long, value_delimiter = ',', value_parser = |s: &str| Kind::parse(s))]
    only: Vec<Kind>,
    /// Servers, comma-separated: corral, corral-fifo (corral without fair shares per
    /// client, first in, first out as before them), nginx.
    #[arg(long, value_delimiter = ',', default_value = "corral,corral-fifo,nginx", value_parser = ["corral", "corral-fifo", "nginx"])]
    servers: Vec<String>,
    /// corral's concurrency model.
    #[arg(long, default_value = "stealing", value_parser = crate::parse_model)]
    model: Model,
    /// corral's connection I/O, comma-separated to run several side by side (epoll is
    /// named `corral` in the lines, io_uring `corral-io_uring`).
    #[arg(long, value_delimiter = ',', default_value = "epoll", value_parser = ["epoll", "io_uring"])]
    backend: Vec<String>,
    /// corral's I/O workers (its CPU pool has as many threads).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    workers: u64,
    /// Polite clients, each from an address of its own.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=POLITE_MAX as u64))]
    polite: u64,
    /// What a light request costs the server inline on its I/O worker, microseconds
    /// (`/spin?us=N`; 0: `GET /`, hello). With hello on 2 shared cores the load
    /// generator is the bottleneck, not the server; a few tens of microseconds make the
    /// I/O workers the contended resource, which is what kinds a and b are about. nginx
    /// answers any path with hello, so the option changes corral's rows only.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    light_us: u64,
    /// CPU time of a heavy request (`/work?us=N`), microseconds.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    heavy_us: u64,
    /// Threads for the polite clients (each greedy client has one of its own).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    threads: u64,
    /// The nginx binary.
    #[arg(long, default_value = "/usr/sbin/nginx")]
    nginx: PathBuf,
    /// The peers' nginx configuration (`__DIR__` and `__PORT__` are filled in); the
    /// default is relative to the repository root.
    #[arg(long, default_value = "../shared/peers/nginx.conf")]
    nginx_conf: PathBuf,
}

/// The polite clients' every k-th request is heavy in the heavy kind.
const HEAVY_EVERY: usize = 8;
/// Issue 26's goals for a corral row: the polite clients' p99 with the greedy client at
/// most this times their p99 without it (and at most nginx's own ratio),
pub const RATIO_MAX: f64 = 1.25;
/// the greedy client at most this times its max-min fair share,
pub const SHARE_MAX: f64 = 1.1;
/// and the busiest worker's busy time at most this times the idlest's.
pub const SPREAD_MAX: f64 = 1.2;

/// What a judge measures with: the command's flags, or the lab's settings
/// ([`super::lab`]).
#[derive(Clone, Debug)]
pub struct Params {
    /// Measured time of each run, with and without the greedy client.
    pub seconds: Duration,
    /// Warm-up before each measured run.
    pub warmup: Duration,
    /// Rounds: each runs every server with and without the greedy client.
    pub rounds: u32,
    /// Polite clients, each from an address of its own.
    pub polite: usize,
    /// What a light request costs corral inline on its I/O worker, microseconds (0: hello).
    pub light_us: u64,
    /// CPU time of a heavy request, microseconds.
    pub heavy_us: u64,
    /// Threads for the polite clients.
    pub threads: usize,
}

impl Args {
    fn params(&self) -> Params {
        Params {
            seconds: self.seconds,
            warmup: self.warmup,
            rounds: self.rounds,
            polite: self.polite as usize,
            light_us: self.light_us,
            heavy_us: self.heavy_us,
            threads: self.threads as usize,
        }
    }
}

/// One server's figures in one round of one kind (latencies: the polite clients', in
/// microseconds; rates per second; the module docs say how each is made).
#[derive(Clone, Debug, Default)]
pub struct Round {
    pub p50_without: f64,
    pub p99_without: f64,
    pub p50_with: f64,
    pub p99_with: f64,
    pub p999_with: f64,
    pub ratio: f64,
    pub greedy_rate: f64,
    pub fair_rate: f64,
    pub share: f64,
    /// The greedy client's rate over an equal split of C among all clients: the share
    /// were every client's demand unbounded (less sensitive to the demands measured).
    pub equal_share: f64,
    pub jain: f64,
    pub spread: f64,
    pub throughput: f64,
    pub throughput_without: f64,
    /// Error replies and requests lost with a closed connection, in the with run.
    pub errors: f64,
    pub greedy_sent: f64,
}

impl Round {
    /// Field by field, the median of the rounds.
    fn median(rounds: &[Round]) -> Round {
        let m = |f: fn(&Round) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>());
        Round {
            p50_without: m(|r| r.p50_without),
            p99_without: m(|r| r.p99_without),
            p50_with: m(|r| r.p50_with),
            p99_with: m(|r| r.p99_with),
            p999_with: m(|r| r.p999_with),
            ratio: m(|r| r.ratio),
            greedy_rate: m(|r| r.greedy_rate),
            fair_rate: m(|r| r.fair_rate),
            share: m(|r| r.share),
            equal_share: m(|r| r.equal_share),
            jain: m(|r| r.jain),
            spread: m(|r| r.spread),
            throughput: m(|r| r.throughput),
            throughput_without: m(|r| r.throughput_without),
            errors: m(|r| r.errors),
            greedy_sent: m(|r| r.greedy_sent),
        }
    }
}

/// What a kind's row for one server came to.
pub enum Verdict {
    /// The median of the rounds, field by field, and the rounds in order.
    Figures {
        median: Round,
        rounds: Vec<Round>,
    },
    /// Why the server has no row for the kind (not installed, no such work).
    NotApplicable(String),
    Failed(String),
}

pub fn main(a: Args) -> Result<(), String> {
    if a.seconds.is_zero() {
        return Err("--seconds must be more than 0".into());
    }
    crate::server::raise_nofile();
    let kinds = if a.only.is_empty() { Kind::ALL.to_vec() } else { a.only.clone() };
    let specs = specs(&a);
    let p = a.params();
    let logs = log_dir("judge")?;
    let load = std::fs::read_to_string("/proc/loadavg").ok();
    println!(
        "# corral-bench greedy judge: {} round(s), {:.2} s per run after {:.2} s warm-up, medians; {} polite \
         clients; corral {} on {}, {} I/O workers; {} cores, load {}",
        a.rounds,
        a.seconds.as_secs_f64(),
        a.warmup.as_secs_f64(),
        a.polite,
        a.model.name(),
        a.backend.join("+"),
        a.workers,
        crate::cores(),
        load.as_deref().and_then(|l| l.split_whitespace().next()).unwrap_or("unknown")
    );
    for kind in kinds {
        let verdicts = judge_kind(&p, kind, &specs, &logs, &mut |line| eprintln!("{line}"));
        print_kind(kind, &specs, &verdicts);
    }
    let _ = std::fs::remove_dir_all(&logs);
    Ok(())
}

/// A fresh directory for the servers' logs and nginx's files (the caller removes it).
pub fn log_dir(what: &str) -> Result<PathBuf, String> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("corral-greedy-{what}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// The servers asked for: corral once per backend (and `corral-fifo`, without fair
/// shares, where asked), then nginx.
fn specs(a: &Args) -> Vec<Spec> {
    let mut out = Vec::new();
    for (name, fair) in [("corral", true), ("corral-fifo", false)] {
        if a.servers.iter().any(|s| s == name) {
            for b in &a.backend {
                out.push(Spec::Corral { model: a.model, backend: b.clone(), workers: a.workers as usize, fair });
            }
        }
    }
    if a.servers.iter().any(|s| s == "nginx") {
        out.push(Spec::Nginx { binary: a.nginx.clone(), conf: a.nginx_conf.clone() });
    }
    out
}

/// Every round of one kind on each of `specs`, started fresh for it; `progress` gets a
/// line per server and round.
pub fn judge_kind(
    p: &Params,
    kind: Kind,
    specs: &[Spec],
    logs: &Path,
    progress: &mut dyn FnMut(String),
) -> Vec<Verdict> {
    let mut verdicts: Vec<Option<Verdict>> = specs.iter().map(|s| skip(kind, s).map(Verdict::NotApplicable)).collect();
    let running: Vec<Option<Running>> = specs
        .iter()
        .zip(verdicts.iter_mut())
        .map(|(s, v)| match v {
            Some(_) => None,
            None => s.start(logs).map_err(|why| *v = Some(Verdict::Failed(why))).ok(),
        })
        .collect();
    let mut rounds: Vec<Vec<Round>> = vec![Vec::new(); specs.len()];
    for r in 0..p.rounds as usize {
        for k in 0..specs.len() {
            let i = (k + r) % specs.len();
            let (Some(server), None) = (&running[i], &verdicts[i]) else { continue };
            let label = specs[i].label();
            match measure(p, kind, server, r % 2 == 1) {
                Ok(fig) => {
                    progress(format!(
                        "[{}/{}] {} {label}: polite p99 {:.0} -> {:.0} us, share {:.2}, spread {:.2}, {:.0} req/s",
                        r + 1,
                        p.rounds,
                        kind.name(),
                        fig.p99_without,
                        fig.p99_with,
                        fig.share,
                        fig.spread,
                        fig.throughput
                    ));
                    rounds[i].push(fig);
                }
                Err(why) => {
                    progress(format!("[{}/{}] {} {label}: failed: {why}", r + 1, p.rounds, kind.name()));
                    verdicts[i] = Some(Verdict::Failed(why));
                }
            }
        }
    }
    drop(running);
    let figures = |rounds: Vec<Round>| Verdict::Figures { median: Round::median(&rounds), rounds };
    verdicts.into_iter().zip(rounds).map(|(v, r)| v.unwrap_or_else(|| figures(r))).collect()
}

/// Why `spec` has no row for `kind`, if it has none: nginx is not here, or the kind needs
/// CPU work nginx does not do.
pub fn skip(kind: Kind, spec: &Spec) -> Option<String> {
    if let Some(why) = spec.unavailable() {
        return Some(why);
    }
    (kind.pool_bound() && matches!(spec, Spec::Nginx { .. })).then(|| {
        "nginx answers every path with hello (no CPU work per request): there is no CPU pool to be greedy for".into()
    })
}

/// The light request's target: hello, or an inline spin of `us` microseconds.
fn light_path(us: u64) -> String {
    if us == 0 {
        "/".into()
    } else {
        format!("/spin?us={us}")
    }
}

/// One round on one server: the polite clients alone and beside the greedy client, in
/// the order `with_first` says.
fn measure(p: &Params, kind: Kind, server: &Running, with_first: bool) -> Result<Round, String> {
    let load = Load { polite: p.polite, heavy_every: HEAVY_EVERY, heavy_us: p.heavy_us };
    let plan = Plan {
        addr: server.addr(),
        clients: kind.polite(&load),
        light: crate::http::get(&light_path(p.light_us), false),
        heavy: crate::http::get(&load.heavy_path(), false),
        warmup: p.warmup,
        duration: p.seconds,
        threads: p.threads,
    };
    let alone = |plan: &Plan| drive::run(plan, |_, _| ()).map(|(o, ())| o);
    let mut with = plan.clone();
    with.clients.push(kind.greedy());
    let (without, (beside, busy)) = if with_first {
        let b = run_with(&with, server)?;
        (alone(&plan).map_err(|e| format!("the polite clients: {e}"))?, b)
    } else {
        let o = alone(&plan).map_err(|e| format!("the polite clients: {e}"))?;
        (o, run_with(&with, server)?)
    };
    Ok(figures(kind, &without, &beside, &busy))
}

/// The with run, and each worker's busy seconds over its window.
fn run_with(plan: &Plan, server: &Running) -> Result<(Outcome, Vec<f64>), String> {
    let (out, busy) = drive::run(plan, |from, end| {
        std::thread::sleep(from.saturating_duration_since(Instant::now()));
        let before = server.busy()?;
        std::thread::sleep(end.saturating_duration_since(Instant::now()));
        let after = server.busy()?;
        Ok::<_, String>(after.iter().zip(&before).map(|(x, y)| x - y).collect())
    })
    .map_err(|e| format!("the clients: {e}"))?;
    Ok((out, busy?))
}

/// What counts toward the contended resource: the CPU pool's replies in the heavy kind,
/// every reply otherwise.
fn units(kind: Kind, t: &Tally) -> f64 {
    (if kind.pool_bound() { t.heavy } else { t.light + t.heavy }) as f64
}

/// A round's figures (the module docs say how each is made).
fn figures(kind: Kind, without: &Outcome, with: &Outcome, busy: &[f64]) -> Round {
    let (w0, w1) = (without.window.as_secs_f64(), with.window.as_secs_f64());
    let n = without.per_client.len();
    let mut demands: Vec<f64> = without.per_client.iter().map(|t| units(kind, t) / w0).collect();
    demands.push(f64::INFINITY);
    let got: Vec<f64> = with.per_client.iter().map(|t| units(kind, t) / w1).collect();
    let capacity: f64 = got.iter().sum();
    let fair = fair::max_min(capacity, &demands);
    let [p50_without, p99_without, _] = polite_quantiles(without);
    let [p50_with, p99_with, p999_with] = polite_quantiles(with);
    let greedy = &with.per_client[n];
    // A client that reads nothing cannot be given its share: the slow reader's share
    // says what the server did for it, and Jain is over the polite clients alone.
    let in_jain = if kind.greedy().reads { n + 1 } else { n };
    let replies = |o: &Outcome| o.per_client.iter().map(|t| t.light + t.heavy).sum::<u64>() as f64;
    Round {
        p50_without,
        p99_without,
        p50_with,
        p99_with,
        p999_with,
        ratio: p99_with / p99_without,
        greedy_rate: got[n],
        fair_rate: fair[n],
        share: got[n] / fair[n],
        equal_share: got[n] / (capacity / (n + 1) as f64),
        jain: fair::normalised_jain(&got[..in_jain], &fair[..in_jain]),
        spread: fair::spread(busy),
        throughput: replies(with) / w1,
        throughput_without: replies(without) / w0,
        errors: with.per_client.iter().map(|t| t.errors).sum::<u64>() as f64,
        greedy_sent: greedy.sent as f64 / w1,
    }
}

/// The polite clients' p50, p99 and p99.9 in microseconds. With no polite reply in the
/// window, each is the window: a latency at least that long, not 0.
fn polite_quantiles(o: &Outcome) -> [f64; 3] {
    let h = o.latency.polite();
    if h.is_empty() {
        return [o.window.as_micros() as f64; 3];
    }
    [0.5, 0.99, 0.999].map(|q| h.value_at_quantile(q) as f64)
}

/// The judge's line for one kind and server.
fn line(kind: Kind, server: &str, v: &Verdict) -> String {
    match v {
        Verdict::Figures { median: f, .. } => format!(
            "{} {server} polite_p99_ratio={:.2} share={:.2} spread={:.2} throughput={:.0}",
            kind.name(),
            f.ratio,
            f.share,
            f.spread,
            f.throughput
        ),
        Verdict::NotApplicable(_) => {
            format!("{} {server} polite_p99_ratio=n/a share=n/a spread=n/a throughput=n/a", kind.name())
        }
        Verdict::Failed(_) => {
            format!("{} {server} polite_p99_ratio=failed share=failed spread=failed throughput=failed", kind.name())
        }
    }
}

fn print_kind(kind: Kind, specs: &[Spec], verdicts: &[Verdict]) {
    for (s, v) in specs.iter().zip(verdicts) {
        println!("{}", line(kind, &s.label(), v));
    }
    println!(
        "# {} ({}) {}: without -> with the greedy client; p50/p99 (us): the polite clients'; C/n: share of an \
         equal split; g.sent/s: the greedy client's requests written",
        kind.letter(),
        kind.name(),
        kind.describe()
    );
    println!(
        "# {:<16} {:>13} {:>13} {:>5} {:>8} {:>7} {:>6} {:>5} {:>5} {:>6} {:>17} {:>6} {:>8}",
        "server",
        "p50",
        "p99",
        "ratio",
        "greedy/s",
        "fair/s",
        "share",
        "C/n",
        "jain",
        "spread",
        "req/s",
        "errors",
        "g.sent/s"
    );
    let nginx = specs.iter().zip(verdicts).find_map(|(s, v)| match (s, v) {
        (Spec::Nginx { .. }, Verdict::Figures { median, .. }) => Some(median.ratio),
        _ => None,
    });
    for (s, v) in specs.iter().zip(verdicts) {
        match v {
            Verdict::Figures { median: f, .. } => {
                println!(
                    "# {:<16} {:>13} {:>13} {:>5.2} {:>8.0} {:>7.0} {:>6.2} {:>5.2} {:>5.3} {:>6.2} {:>17} {:>6.0} {:>8.0}",
                    s.label(),
                    format!("{:.0} -> {:.0}", f.p50_without, f.p50_with),
                    format!("{:.0} -> {:.0}", f.p99_without, f.p99_with),
                    f.ratio,
                    f.greedy_rate,
                    f.fair_rate,
                    f.share,
                    f.equal_share,
                    f.jain,
                    f.spread,
                    format!("{:.0} -> {:.0}", f.throughput_without, f.throughput),
                    f.errors,
                    f.greedy_sent
                );
                if matches!(s, Spec::Corral { .. }) {
                    let goals: Vec<String> = checks(f, nginx).iter().map(Check::to_string).collect();
                    println!("#   goals ({}): {}", s.label(), goals.join("; "));
                }
            }
            Verdict::NotApplicable(why) => println!("# {:<16} n/a: {why}", s.label()),
            Verdict::Failed(why) => println!("# {:<16} failed: {why}", s.label()),
        }
    }
}

/// What one of issue 26's goals compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compared {
    /// Polite p99 with the greedy client over without it, against [`RATIO_MAX`].
    Ratio,
    /// The same ratio against nginx's own on the same kind.
    RatioVsNginx,
    /// The greedy client's rate over its max-min fair share, against [`SHARE_MAX`].
    Share,
    /// The busiest worker's busy time over the idlest's, against [`SPREAD_MAX`].
    Spread,
}

/// One of issue 26's goals checked against a corral row: met when `figure <= limit`
/// (a figure that is not a number meets nothing).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Check {
    pub compared: Compared,
    pub figure: f64,
    pub limit: f64,
}

impl Check {
    pub fn met(&self) -> bool {
        self.figure <= self.limit
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, against) = match self.compared {
            Compared::Ratio => ("p99 ratio", ""),
            Compared::RatioVsNginx => ("p99 ratio", "nginx's "),
            Compared::Share => ("share", ""),
            Compared::Spread => ("spread", ""),
        };
        let mark = if self.met() { "met" } else { "NOT met" };
        write!(f, "{name} {:.2} <= {against}{:.2} {mark}", self.figure, self.limit)
    }
}

/// The issue's goals against a corral row (reported, never asserted); the comparison with
/// nginx only where nginx has a ratio for the kind.
pub fn checks(f: &Round, nginx_ratio: Option<f64>) -> Vec<Check> {
    let check = |compared, figure, limit| Check { compared, figure, limit };
    let mut out = vec![check(Compared::Ratio, f.ratio, RATIO_MAX)];
    out.extend(nginx_ratio.map(|n| check(Compared::RatioVsNginx, f.ratio, n)));
    out.push(check(Compared::Share, f.share, SHARE_MAX));
    out.push(check(Compared::Spread, f.spread, SPREAD_MAX));
    out
}

#[cfg(test)]
mod tests {
    use super::drive::Latency;
    use super::*;

    fn tally(light: u64, heavy: u64) -> Tally {
        Tally { light, heavy, errors: 0, sent: light + heavy }
    }

    #[test]
    fn a_greedy_client_that_takes_twice_its_due_reads_share_2() {
        // Two polite clients at 100/s each alone; with the greedy one, C = 300/s, the
        // polite ones get 50 each and the greedy 200: its fair share is 100.
        let window = Duration::from_secs(1);
        let without = Outcome { per_client: vec![tally(100, 0), tally(100, 0)], latency: Latency::default(), window };
        let with = Outcome {
            per_client: vec![tally(50, 0), tally(50, 0), tally(200, 0)],
            latency: Latency::default(),
            window,
        };
        let r = figures(Kind::Pipelining, &without, &with, &[1.0, 2.0]);
        assert_eq!((r.fair_rate, r.greedy_rate, r.share, r.equal_share), (100.0, 200.0, 2.0, 2.0));
        assert_eq!((r.throughput, r.spread), (300.0, 2.0));
        // x = [0.5, 0.5, 2]: (3)^2 / (3 * 4.5) = 2/3.
        assert!((r.jain - 2.0 / 3.0).abs() < 1e-12);
        // The heavy kind counts heavy replies only.
        let without = Outcome { per_client: vec![tally(700, 10), tally(700, 10)], latency: Latency::default(), window };
        let with = Outcome {
            per_client: vec![tally(700, 10), tally(700, 10), tally(0, 10)],
            latency: Latency::default(),
            window,
        };
        let r = figures(Kind::Heavy, &without, &with, &[1.0, 1.0]);
        assert_eq!((r.fair_rate, r.share, r.jain), (10.0, 1.0, 1.0));
        assert_eq!(r.throughput, 1430.0);
    }

    #[test]
    fn lines_have_the_issue_format() {
        let f = Round { ratio: 1.234, share: 0.9, spread: 1.05, throughput: 51234.4, ..Round::default() };
        assert_eq!(
            line(Kind::Connections, "corral", &Verdict::Figures { median: f.clone(), rounds: vec![f] }),
            "connections corral polite_p99_ratio=1.23 share=0.90 spread=1.05 throughput=51234"
        );
        assert!(line(Kind::Heavy, "nginx", &Verdict::NotApplicable("x".into())).ends_with("throughput=n/a"));
    }

    #[test]
    fn checks_compare_with_nginx_only_where_it_has_a_ratio() {
        let f = Round { ratio: 1.2, share: 1.5, spread: f64::NAN, ..Round::default() };
        let with = checks(&f, Some(1.1));
        let compared: Vec<Compared> = with.iter().map(|c| c.compared).collect();
        assert_eq!(compared, [Compared::Ratio, Compared::RatioVsNginx, Compared::Share, Compared::Spread]);
        let met: Vec<bool> = with.iter().map(Check::met).collect();
        assert_eq!(met, [true, false, false, false], "a spread that is not a number meets nothing");
        assert_eq!(with[1].to_string(), "p99 ratio 1.20 <= nginx's 1.10 NOT met");
        assert_eq!(checks(&f, None).len(), 3);
    }
}
