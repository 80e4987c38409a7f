//! `corral-bench upload judge`: corral's fronts beside the servers its upload goals name,
//! all started here on loopback (free ports), the same app under each (bench/upload/):
//!
//! | server | command |
//! | --- | --- |
//! | corral-asgi / corral-wsgi | `python -m corral --interface asgi\|wsgi` |
//! | granian-asgi / granian-wsgi | `granian --interface asgi\|wsgi --workers 1` |
//! | uvicorn | `uvicorn --http httptools --loop uvloop` |
//! | corral-fetch | `corral.serve({ fetch })`, the app reading `req.body` to its end |
//! | node-http | Node's `http.createServer`, the listener reading the body |
//!
//! Every scenario runs on every server in each round, the order rotating round by round;
//! a figure is the median of the rounds, or `failed(<why>)` if any round failed. The
//! memory scenarios run last, once, each on a server started for it alone. Each comparison is one line,
//! `<name> corral=<figure> <peer>=<figure> ratio=<r> goal=<g>`, where the ratio is the
//! better-is-higher factor: corral / peer for throughput, bound / corral's growth for
//! memory. Goals are reported, never asserted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::wire::{Conn, Failure, Target, Upload};
use super::{mib, parse_size, run, size_name, Outcome, Plan, Scenario, MIB};

/// `corral-bench upload judge`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Rounds: each runs every scenario on every server.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// How long each concurrent and echo run keeps uploading (seconds, or with a unit).
    #[arg(long, default_value = "2s", value_parser = crate::parse_duration)]
    seconds: Duration,
    /// The repository root (the apps are in its bench/upload/).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// The Python virtual environment with corral (`make py-build`); the peers are
    /// installed into it from bench/upload/requirements.txt when missing.
    #[arg(long, default_value = ".venv")]
    venv: PathBuf,
    /// Only these servers, comma-separated: corral-asgi, corral-wsgi, granian-asgi,
    /// granian-wsgi, uvicorn, corral-fetch, node-http (default: all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The one-connection upload.
    #[arg(long, default_value = "100MB", value_parser = parse_size)]
    single_size: u64,
    /// Each body of the concurrent uploads.
    #[arg(long, default_value = "1MB", value_parser = parse_size)]
    concurrent_size: u64,
    /// Connections of the concurrent, echo and memory scenarios.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    connections: u64,
    /// The echoed body (sent chunked).
    #[arg(long, default_value = "100KB", value_parser = parse_size)]
    echo_size: u64,
    /// The echoed body's chunk size.
    #[arg(long, default_value = "16KiB", value_parser = parse_size)]
    echo_chunk: u64,
    /// What each connection uploads at once in the memory scenario (0: skip it).
    #[arg(long, default_value = "100MB", value_parser = parse_size)]
    rss_size: u64,
    /// The single upload whose memory must stay flat (0: skip it).
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    huge_size: u64,
    /// The engine's body_window, for the memory bound: connections x window + 16 MiB.
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    window: u64,
    /// Measure the peers' memory too (as long again as corral's memory scenarios).
    #[arg(long)]
    rss_peers: bool,
}

/// Where things are.
struct Ctx {
    apps: PathBuf,
    venv_bin: PathBuf,
    node_binding: PathBuf,
}

/// One server of the judge.
#[derive(Clone, Copy)]
struct Spec {
    name: &'static str,
    /// What a comparison line calls it.
    label: &'static str,
}

const SERVERS: [Spec; 7] = [
    Spec { name: "corral-asgi", label: "corral" },
    Spec { name: "corral-wsgi", label: "corral" },
    Spec { name: "corral-fetch", label: "corral" },
    Spec { name: "granian-asgi", label: "granian" },
    Spec { name: "granian-wsgi", label: "granian" },
    Spec { name: "uvicorn", label: "uvicorn" },
    Spec { name: "node-http", label: "node-http" },
];

fn spec(name: &str) -> Spec {
    *SERVERS.iter().find(|s| s.name == name).expect("a known server")
}

impl Ctx {
    fn command(&self, name: &str, port: u16) -> Command {
        let py = self.venv_bin.join("python");
        let port = port.to_string();
        let mut c = match name {
            "corral-asgi" | "corral-wsgi" => {
                let iface = &name["corral-".len()..];
                let mut c = Command::new(&py);
                c.args(["-m", "corral", "--interface", iface, "--host", "127.0.0.1", "--port", &port])
                    .arg(format!("{iface}_app:app"));
                c
            }
            "granian-asgi" | "granian-wsgi" => {
                let iface = &name["granian-".len()..];
                let mut c = Command::new(self.venv_bin.join("granian"));
                c.args(["--interface", iface, "--host", "127.0.0.1", "--port", &port, "--workers", "1", "--no-ws"])
                    .args(["--log-level", "warning"])
                    .arg(format!("{iface}_app:app"));
                c
            }
            "uvicorn" => {
                let mut c = Command::new(self.venv_bin.join("uvicorn"));
                c.args(["--host", "127.0.0.1", "--port", &port, "--http", "httptools", "--loop", "uvloop"]).args([
                    "--log-level",
                    "warning",
                    "--no-access-log",
                    "asgi_app:app",
                ]);
                c
            }
            "corral-fetch" => {
                let mut c = Command::new("node");
                c.args(["node_fetch.js", &port]).env("CORRAL_NODE", &self.node_binding);
                c
            }
            "node-http" => {
                let mut c = Command::new("node");
                c.args(["node_http.js", &port]);
                c
            }
            other => unreachable!("no server {other}"),
        };
        c.current_dir(&self.apps);
        c
    }
}

/// A server this judge started: stopped (its whole process group) when dropped.
/// A started peer; the judge's own view of it.
type Running = crate::peer::Peer;

impl Running {
    fn url(&self, path: &str) -> Target {
        Target::parse(&format!("http://127.0.0.1:{}{path}", self.port)).expect("a loopback URL")
    }
}

fn last_line(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim().to_string()
}

/// Starts `name` and waits (polling, 30 s at most) until `GET /` answers 200.
fn start(ctx: &Ctx, name: &'static str, logs: &Path) -> Result<Running, String> {
    let mut r = Running::spawn(name, logs, |port| ctx.command(name, port))?;
    let probe = Upload { method: "GET", size: 0, chunk: None, expect_echo: false, expect_count: false };
    let target = r.url("/");
    let body = super::wire::BodyWriter::new(&target, &probe);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = r.child.try_wait() {
            return Err(format!("exited ({status}): {}", last_line(&r.log)));
        }
        if let Ok(mut c) = Conn::open(target.addr) {
            if c.upload(&body, &probe).is_ok() {
                return Ok(r);
            }
        }
        if Instant::now() >= deadline {
            r.signal_group("-KILL");
            return Err(format!("no answer to GET / within 30 s: {}", last_line(&r.log)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How a figure reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    MbPerS,
    ReqPerS,
}

impl Unit {
    fn of(self, o: &Outcome) -> f64 {
        match self {
            Unit::MbPerS => o.mb_per_s(),
            Unit::ReqPerS => o.req_per_s(),
        }
    }

    fn show(self, v: f64) -> String {
        match self {
            Unit::MbPerS => format!("{v:.1}MB/s"),
            Unit::ReqPerS => format!("{v:.0}req/s"),
        }
    }
}

/// The peers a corral front is compared with, each with its goal (corral / peer).
type Peers = Vec<(&'static str, Option<f64>)>;

/// One scenario on some servers, and the comparisons it prints.
struct Case {
    name: String,
    plan: Plan,
    unit: Unit,
    /// corral's server first, then the peers, each with its goal.
    corral: &'static str,
    peers: Peers,
}

impl Case {
    fn servers(&self) -> Vec<&'static str> {
        std::iter::once(self.corral).chain(self.peers.iter().map(|p| p.0)).collect()
    }
}

/// A server's figure over the rounds: the median, or its first failure.
fn summary(runs: &[Result<f64, Failure>]) -> Result<f64, String> {
    if let Some(Err(f)) = runs.iter().find(|r| r.is_err()) {
        return Err(f.tag());
    }
    let mut v: Vec<f64> = runs.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    if v.is_empty() {
        return Err("not-run".into());
    }
    v.sort_by(f64::total_cmp);
    Ok(v[(v.len() - 1) / 2])
}

/// `<name> corral=<figure> <peer>=<figure> ratio=<r> goal=<g>`.
pub fn line(
    name: &str,
    corral: &Result<String, String>,
    peer: &str,
    theirs: &Result<String, String>,
    ratio: Option<f64>,
    goal: Option<f64>,
) -> String {
    let fig = |r: &Result<String, String>| match r {
        Ok(s) => s.clone(),
        Err(why) => format!("failed({why})"),
    };
    let ratio = match ratio {
        Some(r) if r.is_finite() => format!("{r:.2}"),
        Some(_) => "inf".into(),
        None => "-".into(),
    };
    let goal = goal.map_or("none".to_string(), |g| g.to_string());
    format!("{name} corral={} {peer}={} ratio={ratio} goal={goal}", fig(corral), fig(theirs))
}

pub fn main(a: Args) -> Result<(), String> {
    let root = a.root.canonicalize().map_err(|e| format!("--root {}: {e}", a.root.display()))?;
    let apps = root.join("bench").join("upload");
    if !apps.join("asgi_app.py").is_file() {
        return Err(format!(
            "no bench/upload/asgi_app.py under {}: run from the repository root or pass --root",
            root.display()
        ));
    }
    let venv = if a.venv.is_absolute() { a.venv.clone() } else { root.join(&a.venv) };
    let ctx = Ctx { apps: apps.clone(), venv_bin: venv.join("bin"), node_binding: root.join("bindings").join("node") };
    crate::server::raise_nofile();
    let wanted: Vec<&'static str> =
        SERVERS.iter().map(|s| s.name).filter(|n| a.only.is_empty() || a.only.iter().any(|o| o == n)).collect();
    if let Some(bad) = a.only.iter().find(|o| !SERVERS.iter().any(|s| s.name == o.as_str())) {
        let names: Vec<&str> = SERVERS.iter().map(|s| s.name).collect();
        return Err(format!("--only {bad:?}: no such server; the servers are {}", names.join(", ")));
    }
    let versions = prepare(&ctx, &wanted, &apps);
    let logs = std::env::temp_dir().join(format!("corral-upload-judge-{}", std::process::id()));
    std::fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;

    let mut running: HashMap<&'static str, Running> = HashMap::new();
    let mut not_started: HashMap<&'static str, String> = HashMap::new();
    for &name in &wanted {
        match start(&ctx, name, &logs) {
            Ok(r) => {
                running.insert(name, r);
            }
            Err(why) => {
                println!("# {name}: did not start: {why}");
                not_started.insert(name, why);
            }
        }
    }
    // Other work on the machine moves every figure: say how busy it was at the start.
    let load =
        std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split_whitespace().next().map(str::to_string));
    println!(
        "# corral-bench upload judge: {} round(s), {:.1} s per concurrent/echo run, medians; {} cores, load {}; {versions}",
        a.rounds,
        a.seconds.as_secs_f64(),
        crate::cores(),
        load.as_deref().unwrap_or("unknown")
    );

    let cases = cases(&a);
    // Warm each server: one body of the concurrent size, not counted.
    for r in running.values() {
        let mut p = Plan::new(r.url("/up"), Scenario::Single);
        p.upload.size = a.concurrent_size;
        let _ = run(&p);
    }
    let mut runs: HashMap<(usize, &'static str), Vec<Result<f64, Failure>>> = HashMap::new();
    for round in 0..a.rounds as usize {
        for (ci, case) in cases.iter().enumerate() {
            let mut order = case.servers();
            let k = round % order.len();
            order.rotate_left(k);
            for name in order {
                let Some(r) = running.get(name) else { continue };
                let mut plan = case.plan.clone();
                plan.target = r.url(&case.plan.target.path);
                let o = run(&plan);
                let fig = match &o.failure {
                    Some(f) => {
                        eprintln!("[{}/{}] {} {name}: failed: {f}", round + 1, a.rounds, case.name);
                        Err(f.clone())
                    }
                    None => {
                        let v = case.unit.of(&o);
                        eprintln!("[{}/{}] {} {name}: {}", round + 1, a.rounds, case.name, case.unit.show(v));
                        Ok(v)
                    }
                };
                runs.entry((ci, name)).or_default().push(fig);
            }
        }
    }
    let figure = |ci: usize, name: &str| -> Result<f64, String> {
        if let Some(why) = not_started.get(name) {
            let _ = why;
            return Err("not-started".into());
        }
        match runs.get(&(ci, name)) {
            Some(v) => summary(v),
            None => Err("not-run".into()),
        }
    };
    let mut lines = Vec::new();
    for (ci, case) in cases.iter().enumerate() {
        if !wanted.contains(&case.corral) {
            continue;
        }
        let ours = figure(ci, case.corral);
        for &(peer, goal) in &case.peers {
            if !wanted.contains(&peer) {
                continue;
            }
            let theirs = figure(ci, peer);
            let ratio = match (&ours, &theirs) {
                (Ok(x), Ok(y)) if *y > 0.0 => Some(x / y),
                _ => None,
            };
            let show = |r: &Result<f64, String>| r.as_ref().map(|v| case.unit.show(*v)).map_err(Clone::clone);
            lines.push(line(&case.name, &show(&ours), spec(peer).label, &show(&theirs), ratio, goal));
        }
    }
    for l in &lines {
        println!("{l}");
    }
    let after: Vec<String> = SERVERS
        .iter()
        .filter_map(|s| running.get(s.name).map(|r| (s.name, r)))
        .map(|(n, r)| {
            format!(
                "{n} {:.1}",
                mib(super::rss::tree(r.child.id()).iter().filter_map(|&p| super::rss::status_bytes(p, "VmRSS")).sum())
            )
        })
        .collect();
    println!("# RSS after the rounds (MiB, process tree): {}", after.join(", "));
    drop(running);
    for l in memory(&a, &ctx, &wanted, &logs) {
        println!("{l}");
    }
    let _ = std::fs::remove_dir_all(&logs);
    Ok(())
}

/// The throughput scenarios.
fn cases(a: &Args) -> Vec<Case> {
    let dummy = Target::parse("http://127.0.0.1:1/").expect("valid");
    let plan = |scenario: Scenario, path: &str, size: u64| {
        let mut p = Plan::new(dummy.with_path(path), scenario);
        p.upload.size = size;
        p.upload.expect_count = scenario != Scenario::Echo;
        if scenario != Scenario::Single {
            p.connections = a.connections as usize;
            p.duration = a.seconds;
        }
        if scenario == Scenario::Echo {
            p.upload.chunk = Some(a.echo_chunk.max(1) as usize);
        }
        p
    };
    let single = size_name(a.single_size);
    let many = format!("{}x{}", a.connections, size_name(a.concurrent_size));
    let echo = format!("{}-chunked", size_name(a.echo_size));
    let fronts: [(&str, &'static str, Peers); 3] = [
        ("asgi", "corral-asgi", vec![("granian-asgi", Some(1.5)), ("uvicorn", Some(2.0))]),
        ("wsgi", "corral-wsgi", vec![("granian-wsgi", Some(1.5))]),
        ("node", "corral-fetch", vec![("node-http", Some(1.2))]),
    ];
    let mut out = Vec::new();
    for (front, corral, peers) in &fronts {
        out.push(Case {
            name: format!("{front}-upload-{single}"),
            plan: plan(Scenario::Single, "/up", a.single_size),
            unit: Unit::MbPerS,
            corral,
            peers: peers.clone(),
        });
        out.push(Case {
            name: format!("{front}-upload-{many}"),
            plan: plan(Scenario::Concurrent, "/up", a.concurrent_size),
            unit: Unit::MbPerS,
            corral,
            peers: peers.clone(),
        });
    }
    // Granian's own "100 KB chunked echo": the goal is against Granian ASGI; the rest
    // are for reference.
    for (front, corral, peers) in fronts {
        let peers = peers.into_iter().map(|(p, _)| (p, (p == "granian-asgi").then_some(1.5))).collect();
        out.push(Case {
            name: format!("{front}-echo-{echo}"),
            plan: plan(Scenario::Echo, "/echo", a.echo_size),
            unit: Unit::ReqPerS,
            corral,
            peers,
        });
    }
    out
}

/// The memory scenarios: `connections` uploads of `rss_size` at once, then one of
/// `huge_size`, each on a freshly started corral front (and peer, with --rss-peers),
/// against the bound connections x window + 16 MiB.
fn memory(a: &Args, ctx: &Ctx, wanted: &[&'static str], logs: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let fronts = [
        ("asgi", "corral-asgi", ["granian-asgi", "uvicorn"].as_slice()),
        ("wsgi", "corral-wsgi", &["granian-wsgi"]),
        ("node", "corral-fetch", &["node-http"]),
    ];
    let runs = [(a.connections as usize, a.rss_size), (1, a.huge_size)];
    for (front, corral, peers) in fronts {
        for &(conns, size) in &runs {
            if size == 0 || !wanted.contains(&corral) {
                continue;
            }
            let name = if conns == 1 {
                format!("{front}-rss-{}", size_name(size))
            } else {
                format!("{front}-rss-{conns}x{}", size_name(size))
            };
            let bound = conns as u64 * a.window + 16 * MIB;
            // A server of its own, started for this upload alone: one that served the
            // rounds keeps freed memory in its allocator, which would hide the growth.
            let measure = |server: &'static str| -> Result<(u64, String), String> {
                let r = start(ctx, server, logs).map_err(|why| {
                    println!("# {name} {server}: did not start: {why}");
                    "not-started".to_string()
                })?;
                let mut p = Plan::new(r.url("/up"), Scenario::Concurrent);
                p.connections = conns;
                p.upload.size = size;
                p.upload.expect_count = true;
                p.duration = Duration::ZERO;
                p.pid = Some(r.child.id());
                let o = run(&p);
                let rss = o.rss.as_ref().ok_or("no-proc")?;
                let note = format!(
                    "# {name} {server}: RSS start {:.1} MiB, peak {:.1} MiB ({}, {} process(es)), {:.1} MB/s{}",
                    mib(rss.start),
                    mib(rss.peak),
                    rss.how,
                    rss.processes,
                    o.mb_per_s(),
                    o.failure.as_ref().map(|f| format!(", failed: {f}")).unwrap_or_default()
                );
                eprintln!("{}", &note[2..]);
                match o.failure {
                    Some(f) => Err(f.tag()),
                    None => Ok((rss.growth, note)),
                }
            };
            let ours = measure(corral);
            let show = |r: &Result<(u64, String), String>| {
                r.as_ref().map(|(g, _)| format!("+{:.1}MiB", mib(*g))).map_err(Clone::clone)
            };
            let mut notes = Vec::new();
            if let Ok((_, n)) = &ours {
                notes.push(n.clone());
            }
            let ratio = ours.as_ref().ok().map(|(g, _)| bound as f64 / *g as f64);
            out.push(line(&name, &show(&ours), "bound", &Ok(format!("{:.1}MiB", mib(bound))), ratio, Some(1.0)));
            if a.rss_peers {
                for &peer in peers.iter().filter(|p| wanted.contains(p)) {
                    let theirs = measure(peer);
                    if let Ok((_, n)) = &theirs {
                        notes.push(n.clone());
                    }
                    let ratio = match (&ours, &theirs) {
                        (Ok((x, _)), Ok((y, _))) => Some(*y as f64 / *x as f64),
                        _ => None,
                    };
                    out.push(line(&name, &show(&ours), spec(peer).label, &show(&theirs), ratio, None));
                }
            }
            out.extend(notes);
        }
    }
    out
}

/// Installs the pinned Python peers when missing; says which versions run.
fn prepare(ctx: &Ctx, wanted: &[&str], apps: &Path) -> String {
    let mut said = Vec::new();
    let py = ctx.venv_bin.join("python");
    let needs_python = wanted.iter().any(|n| !n.contains("fetch") && !n.contains("node"));
    if needs_python {
        if !py.is_file() {
            println!(
                "# no Python at {}: make py-env py-build creates it (the Python servers will not start)",
                py.display()
            );
        } else {
            let req = apps.join("requirements.txt");
            // Which pins the venv does not satisfy.
            let check = "import sys, importlib.metadata as m\n\
                         for l in open(sys.argv[1]):\n    l = l.split('#')[0].strip()\n    \
                         if not l: continue\n    n, v = l.split('==')\n    \
                         try:\n        ok = m.version(n) == v\n    except m.PackageNotFoundError:\n        ok = False\n    \
                         if not ok: print(l)";
            let missing = Command::new(&py).args(["-c", check]).arg(&req).output();
            let missing = missing.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
            if !missing.is_empty() {
                eprintln!(
                    "installing the pinned peers into {}: {}",
                    ctx.venv_bin.display(),
                    missing.replace('\n', ", ")
                );
                let ok = Command::new(&py).args(["-m", "pip", "install", "-q", "-r"]).arg(&req).status();
                if !ok.is_ok_and(|s| s.success()) {
                    println!("# pip could not install {}: the peers that need it will not start", req.display());
                }
            }
            let v = Command::new(&py)
                .args(["-c", "import importlib.metadata as m\nfor n in ('granian','uvicorn','httptools','uvloop'):\n    try: print(n, m.version(n))\n    except Exception: pass"])
                .output();
            if let Ok(o) = v {
                said.extend(String::from_utf8_lossy(&o.stdout).lines().map(str::to_string));
            }
        }
    }
    if wanted.iter().any(|n| n.contains("fetch") || n.contains("node")) {
        match Command::new("node").arg("--version").output() {
            Ok(o) => said.push(format!("node {}", String::from_utf8_lossy(&o.stdout).trim())),
            Err(e) => println!("# no node on PATH ({e}): the Node servers will not start"),
        }
    }
    said.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_judged_form() {
        let l = line(
            "asgi-upload-100MB",
            &Ok("812.3MB/s".into()),
            "granian",
            &Ok("401.2MB/s".into()),
            Some(812.3 / 401.2),
            Some(1.5),
        );
        assert_eq!(l, "asgi-upload-100MB corral=812.3MB/s granian=401.2MB/s ratio=2.02 goal=1.5");
        let l = line("asgi-upload-100MB", &Err("413".into()), "uvicorn", &Ok("1.0MB/s".into()), None, Some(2.0));
        assert_eq!(l, "asgi-upload-100MB corral=failed(413) uvicorn=1.0MB/s ratio=- goal=2");
        let l =
            line("node-echo-100KB-chunked", &Ok("1req/s".into()), "node-http", &Ok("1req/s".into()), Some(1.0), None);
        assert!(l.ends_with("ratio=1.00 goal=none"), "{l}");
    }

    #[test]
    fn a_failed_round_fails_the_figure_and_medians_otherwise() {
        assert_eq!(summary(&[Ok(3.0), Ok(1.0), Ok(2.0)]), Ok(2.0));
        assert_eq!(summary(&[Ok(3.0), Ok(1.0)]), Ok(1.0));
        assert_eq!(summary(&[Ok(3.0), Err(Failure::Status(413, String::new()))]), Err("413".into()));
        assert_eq!(summary(&[]), Err("not-run".into()));
    }

    #[test]
    fn the_cases_name_the_issue_scenarios_and_goals() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            a: Args,
        }
        let a = Cli::parse_from(["judge"]).a;
        let cs = cases(&a);
        let names: Vec<&str> = cs.iter().map(|c| c.name.as_str()).collect();
        for n in ["asgi-upload-100MB", "wsgi-upload-64x1MB", "node-upload-100MB", "asgi-echo-100KB-chunked"] {
            assert!(names.contains(&n), "{names:?}");
        }
        let asgi = cs.iter().find(|c| c.name == "asgi-upload-100MB").unwrap();
        assert_eq!(asgi.peers, vec![("granian-asgi", Some(1.5)), ("uvicorn", Some(2.0))]);
        let echo = cs.iter().find(|c| c.name == "asgi-echo-100KB-chunked").unwrap();
        assert_eq!((echo.plan.upload.chunk, echo.plan.connections), (Some(16 << 10), 64));
        assert!(echo.plan.upload.expect_echo);
    }
}
