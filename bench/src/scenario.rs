//! The scenarios: each drives one model's server with a workload and returns one
//! [`Row`] of figures.

use std::collections::BTreeMap;
use std::io;
use std::sync::OnceLock;
use std::time::Duration;

use corral::Model;
use serde::Serialize;

use crate::fleet::{self, Fleet};
use crate::http::get;
use crate::load::{self, Client, Outcome, Pace, Plan};
use crate::server::{per_worker, Observed, Server, ServerArgs, StopReport};
use crate::{idle, metrics};

/// What a scenario runs against: one of corral's models, or the fleet — the source's
/// fifth architecture, single-threaded processes behind a layer-4 balancer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Model(Model),
    Fleet(fleet::Kind),
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Model(m) => m.name(),
            Target::Fleet(k) => k.name(),
        }
    }

    /// The five models, then the fleets.
    pub fn all() -> Vec<Target> {
        Model::ALL.into_iter().map(Target::Model).chain(fleet::Kind::ALL.map(Target::Fleet)).collect()
    }

    pub fn parse(s: &str) -> Result<Target, String> {
        if let Some(k) = fleet::Kind::ALL.into_iter().find(|k| k.name() == s) {
            return Ok(Target::Fleet(k));
        }
        s.parse().map(Target::Model).map_err(|e: corral::Error| format!("{e}, or fleet-haproxy, fleet-dnat"))
    }
}

/// A started target.
enum Running {
    One(Server),
    Fleet(Fleet),
}

impl Running {
    fn observed(&self) -> &dyn Observed {
        match self {
            Running::One(s) => s,
            Running::Fleet(f) => f,
        }
    }

    fn stop(self) -> io::Result<StopReport> {
        match self {
            Running::One(s) => s.stop(),
            Running::Fleet(f) => f.stop(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    Keepalive,
    Connect,
    Heavy,
    Hol,
    /// Not in the grid: [`crate::greedy::lab`] runs issue 26's four greedy kinds against
    /// corral, corral-fifo and nginx, one row per kind and server.
    Greedy,
    Skew,
    Idle,
    /// Runs apart from the others ([`crate::synflood::run`]): two rows per model.
    Synflood,
    /// Not in the model x scenario grid: [`crate::backlog`] runs it once per backlog.
    Backlog,
}

/// The most rounds `idle` runs ([`Scenario::rounds`]).
pub const IDLE_ROUNDS: usize = 3;
/// The most rounds `hol` runs, and how much longer each is ([`Scenario::round_length`]).
pub const HOL_ROUNDS: usize = 5;
pub const HOL_LONGER: f64 = 2.5;

/// What a scenario's headline figure is.
pub struct Metric {
    pub label: &'static str,
    pub unit: &'static str,
    pub higher_is_better: bool,
    /// The smallest relative difference the measurement can tell apart, whatever the
    /// rounds say: two intervals closer than this are alike (see [`crate::rounds::ahead`]).
    pub resolution: f64,
}

impl Scenario {
    pub const ALL: [Scenario; 9] = [
        Scenario::Keepalive,
        Scenario::Connect,
        Scenario::Heavy,
        Scenario::Hol,
        Scenario::Greedy,
        Scenario::Skew,
        Scenario::Idle,
        Scenario::Synflood,
        Scenario::Backlog,
    ];

    /// Whether it runs every model in rounds and takes part in the grid's table, `best`
    /// sets, goals and charts (the others have their own module and report section).
    pub fn grid(self) -> bool {
        !matches!(self, Scenario::Backlog | Scenario::Synflood | Scenario::Greedy)
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Keepalive => "keepalive",
            Scenario::Connect => "connect",
            Scenario::Heavy => "heavy",
            Scenario::Hol => "hol",
            Scenario::Greedy => "greedy",
            Scenario::Skew => "skew",
            Scenario::Idle => "idle",
            Scenario::Synflood => "synflood",
            Scenario::Backlog => "backlog",
        }
    }

    pub fn parse(s: &str) -> Result<Scenario, String> {
        Scenario::ALL.into_iter().find(|x| x.name() == s).ok_or_else(|| {
            let names: Vec<_> = Scenario::ALL.iter().map(|x| x.name()).collect();
            format!("unknown scenario {s:?}: use one of {}", names.join(", "))
        })
    }

    /// Rounds this grid scenario runs: `--rounds`, except two. `idle` runs at most 3: idle
    /// memory comes out the same to the byte in every round and its CPU pools over the
    /// rounds' windows, so more rounds add nothing but 10,000 connections opened again
    /// (1 s each). `hol` runs at most 5, each [`HOL_LONGER`] times as long.
    pub fn rounds(self, st: &Settings) -> usize {
        match self {
            Scenario::Idle => st.rounds.min(IDLE_ROUNDS),
            Scenario::Hol => st.rounds.min(HOL_ROUNDS),
            _ => st.rounds,
        }
    }

    /// A round's warm-up and measured time: `--warmup` and `--duration`, except that
    /// `hol` measures [`HOL_LONGER`] times as long. Its figure is a latency tail behind
    /// 50 ms requests: a 100 ms window would cut it off (a light request queued longer is
    /// not answered in the window), and 2,000 light requests a second give a p99 of only
    /// 2 in 200.
    pub fn round_length(self, st: &Settings) -> (Duration, Duration) {
        let scale = if self == Scenario::Hol { HOL_LONGER } else { 1.0 };
        (Duration::from_millis(st.warmup_ms), Duration::from_millis(st.duration_ms).mul_f64(scale))
    }

    /// The workload, in the words of someone choosing a model.
    pub fn workload(self) -> &'static str {
        match self {
            Scenario::Keepalive => "I/O-bound: small requests on long-lived connections",
            Scenario::Connect => "connection churn: a new connection per request",
            Scenario::Heavy => "CPU-bound: 1 ms of work per request",
            Scenario::Hol => "mixed: light requests beside a client sending 50 ms requests",
            Scenario::Greedy => "four kinds of greedy client beside 32 polite ones, corral beside nginx",
            Scenario::Skew => "unequal connections: a few long-lived ones of very different cost",
            Scenario::Idle => "many idle keep-alive connections",
            Scenario::Synflood => "a SYN flood from forged sources beside clients connecting, SYN cookies on and off",
            Scenario::Backlog => "a burst of simultaneous connects while the workers are busy, per listen backlog",
        }
    }

    pub fn metric(self) -> Metric {
        let (label, unit, higher_is_better) = match self {
            Scenario::Keepalive => ("throughput", "req/s", true),
            Scenario::Connect => ("connections", "conn/s", true),
            Scenario::Heavy => ("throughput", "req/s", true),
            Scenario::Hol => ("light p99", "us", false),
            Scenario::Greedy => ("polite p99 with / without", "", false),
            Scenario::Skew => ("work done", "cores", true),
            Scenario::Idle => ("memory per connection", "bytes", false),
            Scenario::Synflood => ("legit connects", "", true),
            Scenario::Backlog => ("connect p99", "us", false),
        };
        // Resident memory moves in pages and allocator arenas: rounds of one model agree
        // to the byte, so intervals are points, and two models 2 bytes a connection apart
        // (a few pages over 10,000 connections) would rank. Rates and work done: across ten
        // runs of the lab the ratio of one model's median to the best one's moved by up to
        // 4-5% for the steadiest models (pool and reuseport in keep-alive and connect,
        // fleet-haproxy), so a difference under 5% is one the next run may reverse, and
        // the lab does not rank it (heavy: stealing 97-98.5% of the best, fleet-haproxy
        // 93-97%, each request 1 ms on every model). hol's latencies differ 1000-fold.
        let resolution = match self {
            Scenario::Idle => 0.02,
            Scenario::Keepalive | Scenario::Connect | Scenario::Heavy | Scenario::Skew => 0.05,
            _ => 0.0,
        };
        Metric { label, unit, higher_is_better, resolution }
    }
}

/// Everything one run can be repeated from (stated in the report).
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// Rounds per scenario: each model runs once per round, every model before the next
    /// round starts ([`crate::rounds`]).
    pub rounds: usize,
    /// Measured time of one round of one model.
    pub duration_ms: u64,
    pub warmup_ms: u64,
    /// Clients in `keepalive`; `connect` uses half, `hol` 32 light ones.
    pub connections: usize,
    pub idle_connections: usize,
    /// How long `idle` watches the server's CPU, over all rounds (shared among them).
    pub idle_window_ms: u64,
    /// Server I/O workers (and CPU threads for `stealing`).
    pub workers: usize,
    /// Load-generator threads.
    pub threads: usize,
    /// Open-loop rate of the light clients in `hol`, requests/s over all of them.
    pub hol_rate: f64,
    pub heavy_us: u64,
    pub hol_heavy_us: u64,
    pub skew_costs_us: Vec<u64>,
    /// The servers' connection I/O backend (`epoll`, `io_uring`, `auto`); a model
    /// without I/O workers (thread-per-connection) runs on epoll whatever is asked.
    pub backend: String,
    pub backlog: crate::backlog::Params,
    /// The greedy section's parameters (its durations are `duration_ms` and `warmup_ms`).
    pub greedy: crate::greedy::lab::Params,
}

impl Settings {
    pub fn defaults() -> Settings {
        let cores = crate::cores();
        Settings {
            rounds: 11,
            duration_ms: 100,
            warmup_ms: 50,
            connections: 64,
            idle_connections: 10_000,
            idle_window_ms: 2000,
            workers: cores,
            threads: cores.clamp(1, 4),
            hol_rate: 2000.0,
            heavy_us: 1000,
            hol_heavy_us: 50_000,
            skew_costs_us: vec![2000, 1000, 500, 200, 100, 50],
            backend: corral::Backend::from_env().name().to_string(),
            backlog: crate::backlog::Params::defaults(),
            greedy: crate::greedy::lab::Params::defaults(),
        }
    }

    fn plan(&self, s: Scenario, addr: std::net::SocketAddr, clients: Vec<Client>) -> Plan {
        let (warmup, duration) = s.round_length(self);
        Plan { addr, clients, warmup, duration, threads: self.threads, drain: Duration::ZERO }
    }
}

/// A row's named extras: figures, and labels that say which variant a row is where its
/// scenario has several per model (the greedy rows' `kind` and `server`). In JSON they
/// are one object (`"extra": {"kind": "pipelining", "share": 0.9}`); a name is either a
/// figure or a label, and a label wins if both are set. It reads as its figures (a map
/// of name to number), which is what every scenario but greedy has.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extra {
    pub figures: BTreeMap<String, f64>,
    pub labels: BTreeMap<String, String>,
}

impl Extra {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

impl std::ops::Deref for Extra {
    type Target = BTreeMap<String, f64>;
    fn deref(&self) -> &Self::Target {
        &self.figures
    }
}

impl std::ops::DerefMut for Extra {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.figures
    }
}

impl Serialize for Extra {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Numbers as before (NaN and infinities become null, as serde_json writes them).
        let mut all: BTreeMap<&str, serde_json::Value> =
            self.figures.iter().map(|(k, v)| (k.as_str(), serde_json::Value::from(*v))).collect();
        all.extend(self.labels.iter().map(|(k, v)| (k.as_str(), serde_json::Value::from(v.as_str()))));
        all.serialize(s)
    }
}

/// One model's figures in one scenario: one round's, or (in the report) the median of
/// its rounds ([`crate::rounds::combine`]).
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub scenario: String,
    pub model: String,
    /// The scenario's headline figure ([`Scenario::metric`]): the median over rounds.
    pub value: f64,
    /// Rounds the figure comes from.
    pub rounds: usize,
    /// The interval: the smallest and the largest round's figure.
    pub low: f64,
    pub high: f64,
    /// Each round's figure, in round order.
    pub values: Vec<f64>,
    /// Completed requests (or connections) per second of the measured clients.
    pub rate: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    /// The smallest and largest round's p50, p99 and p99.9.
    pub p50_range_us: [u64; 2],
    pub p99_range_us: [u64; 2],
    pub p999_range_us: [u64; 2],
    /// Over all rounds.
    pub ok: u64,
    pub errors: u64,
    /// Scenario-specific figures, named (and, for rows outside the grid, labels).
    pub extra: Extra,
    /// Why the model could not run the scenario.
    pub error: Option<String>,
}

impl Row {
    pub fn new(s: Scenario, target: &str, value: f64) -> Row {
        Row {
            scenario: s.name().into(),
            model: target.into(),
            value,
            rounds: 1,
            low: value,
            high: value,
            values: vec![value],
            rate: 0.0,
            p50_us: 0,
            p99_us: 0,
            p999_us: 0,
            p50_range_us: [0; 2],
            p99_range_us: [0; 2],
            p999_range_us: [0; 2],
            ok: 0,
            errors: 0,
            extra: Extra::default(),
            error: None,
        }
    }

    /// Rate, latency and counts of `group`.
    fn with_group(mut self, out: &Outcome, group: usize) -> Row {
        let g = &out.groups[group];
        self.rate = out.rate(group);
        self.p50_us = g.quantile_us(0.5);
        self.p99_us = g.quantile_us(0.99);
        self.p999_us = g.quantile_us(0.999);
        self.p50_range_us = [self.p50_us; 2];
        self.p99_range_us = [self.p99_us; 2];
        self.p999_range_us = [self.p999_us; 2];
        self.ok = g.ok;
        self.errors = g.errors;
        self
    }

    fn extra(mut self, name: &str, v: f64) -> Row {
        self.extra.insert(name.into(), v);
        self
    }
}

fn clients(n: usize, group: usize, path: &str, pace: Pace) -> Vec<Client> {
    (0..n).map(|_| Client { group, request: get(path, false), pace, reconnect_each: false }).collect()
}

/// Runs one round of `scenario` against a fresh server of `target`. A target that cannot run it (a
/// failure, not a figure) gets a row with no value and the error.
pub fn run(scenario: Scenario, target: Target, st: &Settings) -> Row {
    run_one(scenario, target, st).unwrap_or_else(|e| {
        let mut row = Row::new(scenario, target.name(), f64::NAN);
        row.error = Some(e.to_string());
        row
    })
}

/// The connections the fleet's balancer may hold (two descriptors each).
fn fleet_connections() -> usize {
    let hard = corral::os::nofile_limit().map(|(_, h)| h as usize).unwrap_or(1024);
    hard.saturating_sub(256) / 2
}

/// Whether a fleet can run here, asked once per kind (every round would ask again).
fn available(kind: fleet::Kind) -> Result<(), String> {
    static ASKED: [OnceLock<Result<(), String>>; 2] = [OnceLock::new(), OnceLock::new()];
    let i = fleet::Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
    ASKED[i].get_or_init(|| kind.available()).clone()
}

fn run_one(scenario: Scenario, target: Target, st: &Settings) -> io::Result<Row> {
    let running = match target {
        Target::Model(m) => Running::One(Server::start(&ServerArgs::new(m, st.workers))?),
        Target::Fleet(kind) => {
            available(kind).map_err(io::Error::other)?;
            Running::Fleet(Fleet::start(kind, st.workers, fleet_connections())?)
        }
    };
    let row = measure(scenario, target, st, running.observed())?;
    let row = match &running {
        Running::Fleet(f) => {
            let total = f.cpu_time().as_secs_f64();
            row.extra("processes", f.processes() as f64)
                .extra("balancer_cpu_fraction", f.balancer_cpu().as_secs_f64() / total.max(1e-9))
        }
        Running::One(_) => row,
    };
    running.stop()?;
    Ok(row)
}

fn measure(scenario: Scenario, target: Target, st: &Settings, server: &dyn Observed) -> io::Result<Row> {
    let model = target.name();
    let addr = server.addr();
    let closed = Pace::Closed { depth: 1 };
    let row = match scenario {
        Scenario::Keepalive => {
            let out = load::run(&st.plan(scenario, addr, clients(st.connections, 0, "/", closed)))?;
            let cpu_us = out.cpu.as_secs_f64() * 1e6 / out.all.max(1) as f64;
            let per: Vec<f64> = out.per_client.iter().map(|&n| n as f64).collect();
            Row::new(scenario, model, out.rate(0))
                .with_group(&out, 0)
                .extra("jain", metrics::jain(&per))
                .extra("generator_cpu_us_per_request", cpu_us)
                .extra("generator_capacity_per_s", crate::cores() as f64 * 1e6 / cpu_us.max(1e-3))
        }
        Scenario::Connect => {
            let n = (st.connections / 2).max(1);
            let cs = (0..n).map(|_| Client { group: 0, request: get("/", true), pace: closed, reconnect_each: true });
            let out = load::run(&st.plan(scenario, addr, cs.collect()))?;
            Row::new(scenario, model, out.rate(0)).with_group(&out, 0).extra("connects", out.connects as f64)
        }
        Scenario::Heavy => {
            let path = format!("/work?us={}", st.heavy_us);
            let out = load::run(&st.plan(scenario, addr, clients(4 * st.workers, 0, &path, closed)))?;
            let ideal = st.workers as f64 * 1e6 / st.heavy_us as f64;
            Row::new(scenario, model, out.rate(0))
                .with_group(&out, 0)
                .extra("ideal_per_s", ideal)
                .extra("of_ideal", out.rate(0) / ideal)
        }
        Scenario::Hol => {
            let light = Pace::Open { per_sec: st.hol_rate / 32.0 };
            // The light clients alone, for the goal's model (stealing) only: another
            // 375 ms per model and round would push `make demo` past three minutes.
            let alone = match target {
                Target::Model(Model::Stealing) => {
                    Some(load::run(&st.plan(scenario, addr, clients(32, 0, "/", light)))?)
                }
                _ => None,
            };
            let mut cs = clients(32, 0, "/", light);
            cs.extend(clients(1, 1, &format!("/work?us={}", st.hol_heavy_us), closed));
            let out = load::run(&st.plan(scenario, addr, cs))?;
            // A window in which no light request was answered has no p99; its latency is at
            // least the window (an empty histogram must not read as 0 us, the best figure).
            let p99_of = |o: &Outcome| match o.groups[0].ok {
                0 => o.window.as_micros() as u64,
                _ => o.groups[0].quantile_us(0.99),
            };
            let p99 = p99_of(&out);
            let row = Row::new(scenario, model, p99 as f64)
                .with_group(&out, 0)
                .extra("heavy_done", out.groups[1].ok as f64)
                .extra("light_done", out.groups[0].ok as f64)
                .extra("generator_late_sends", out.groups[0].late as f64)
                .extra("generator_late_max_us", out.groups[0].late_max_us as f64);
            match alone.as_ref().map(p99_of) {
                Some(base) => row
                    .extra("p99_without_heavy_us", base as f64)
                    .extra("p99_vs_without_heavy", p99 as f64 / base.max(1) as f64),
                None => row,
            }
        }
        Scenario::Skew => {
            let before = server.prometheus()?;
            let cs = st.skew_costs_us.iter().map(|us| Client {
                group: 0,
                request: get(&format!("/spin?us={us}"), false),
                pace: closed,
                reconnect_each: false,
            });
            let out = load::run(&st.plan(scenario, addr, cs.collect()))?;
            let after = server.prometheus()?;
            let delta = |m: &str| -> Vec<f64> {
                let (a, b) = (per_worker(&after, m), per_worker(&before, m));
                a.iter().zip(b.iter().chain(std::iter::repeat(&0.0))).map(|(x, y)| x - y).collect()
            };
            let work_us: f64 = out.per_client.iter().zip(&st.skew_costs_us).map(|(&n, &us)| n as f64 * us as f64).sum();
            Row::new(scenario, model, work_us / (out.window.as_secs_f64() * 1e6))
                .with_group(&out, 0)
                .extra("busy_cv", metrics::cv(&delta("corral_worker_busy_seconds_total")))
                .extra("requests_cv", metrics::cv(&delta("corral_worker_requests_total")))
        }
        Scenario::Idle => {
            let fits = match target {
                Target::Model(m) => idle::fits(m),
                Target::Fleet(_) => idle::fits(Model::Single).min(fleet_connections().saturating_sub(64)),
            };
            let n = st.idle_connections.min(fits);
            let window = crate::rounds::idle_window_ms(st.idle_window_ms, scenario.rounds(st));
            let m = idle::measure(server, n, Duration::from_millis(window))?;
            Row::new(scenario, model, m.bytes_per_connection)
                .extra("connections", m.connections as f64)
                .extra("idle_cpu_percent", m.cpu_percent)
                .extra("idle_cpu_seconds", m.cpu_seconds)
                .extra("idle_window_seconds", m.window_seconds)
                .extra("rss_before_bytes", m.rss_before as f64)
                .extra("rss_after_bytes", m.rss_after as f64)
        }
        Scenario::Synflood => {
            return Err(io::Error::other("synflood runs in namespaces of its own (synflood::run), not per server"))
        }
        Scenario::Backlog => return Err(io::Error::other("backlog runs once per backlog: see crate::backlog::run")),
        Scenario::Greedy => {
            return Err(io::Error::other("greedy runs its four kinds against corral and nginx: see crate::greedy::lab"))
        }
    };
    Ok(row)
}
