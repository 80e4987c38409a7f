//! `corral-bench ws judge`: corral's websocket fronts beside the servers the websocket
//! goals name, all started here on loopback (free ports), the same app under each
//! (bench/ws/):
//!
//! | server | command |
//! | --- | --- |
//! | corral-asgi | `python -m corral --interface asgi asgi_app:app` (the repository's .venv) |
//! | granian-asgi | `granian --interface asgi --workers 1 asgi_app:app` (bench/ws/.venv) |
//! | uvicorn | `uvicorn --http httptools --loop uvloop --ws websockets-sansio asgi_app:app` |
//! | corral-fetch | `node node_fetch.js` (corral.serve({ fetch, websocket })) |
//! | corral-threads | `corral.threads({ module: 'node_ws.js', threads: 2 })` |
//! | node-ws | `node node_ws.js` (the `ws` package, bench/ws/node_modules) |
//! | corral-rust | corral's example server (`http_server`), route /ws |
//! | tungstenite | bench/ws/tungstenite (tokio-tungstenite) |
//!
//! Every comparison runs each of its servers once per round, the order rotating round by
//! round; a figure is the median of the rounds. A corral side that does not start, or
//! does not complete a websocket handshake (its API is not built yet), is
//! `corral=unavailable`, its reason on a `#` line; a peer that fails is `failed(<why>)`.
//! The idle-memory comparison runs last, on servers started for it alone. Goals are
//! reported, never asserted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::drive::{self, Mode, Pace, Plan};
use super::idle;
use super::proto::{Failure, Rng};

/// How long a server may take to answer its first websocket handshake.
const START_LIMIT: Duration = Duration::from_secs(30);
/// The idle-memory goal: bytes of server memory per open, idle websocket.
const IDLE_BOUND: u64 = 4096;

/// `corral-bench ws judge`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Each measured run (seconds, or with a unit).
    #[arg(long, default_value = "5", value_parser = crate::parse_duration)]
    seconds: Duration,
    /// The warm-up before each measured run.
    #[arg(long, default_value = "1", value_parser = crate::parse_duration)]
    warmup: Duration,
    /// Rounds: each runs every comparison on each of its servers.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// The repository root (the apps are in its bench/ws/).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// The Python environment with corral (`make py-env py-build`), for corral's ASGI side.
    #[arg(long, default_value = ".venv")]
    venv: PathBuf,
    /// The peers' Python environment: created and filled from bench/ws/requirements.txt
    /// when missing or out of date.
    #[arg(long, default_value = "bench/ws/.venv")]
    peers_venv: PathBuf,
    /// Only these comparisons, comma-separated (default: all): python-asgi-echo-64B,
    /// python-asgi-echo-16KiB, python-broadcast, node-fetch-echo, node-threads-ws,
    /// node-publish-1000, rust-echo, rust-idle-ws.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Idle websockets opened for the memory comparison.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    idle: u64,
    /// Load-client threads (default: cores, at most 4).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: Option<u64>,
}

/// Where things are.
struct Ctx {
    apps: PathBuf,
    venv_bin: PathBuf,
    peers_bin: PathBuf,
    node_binding: PathBuf,
    target: PathBuf,
}

/// What a comparison line calls each server; corral's own are `corral`.
const SERVERS: [(&str, &str); 8] = [
    ("corral-asgi", "corral"),
    ("granian-asgi", "granian"),
    ("uvicorn", "uvicorn"),
    ("corral-fetch", "corral"),
    ("corral-threads", "corral"),
    ("node-ws", "ws"),
    ("corral-rust", "corral"),
    ("tungstenite", "tungstenite"),
];

fn label(server: &str) -> &'static str {
    SERVERS.iter().find(|s| s.0 == server).map_or("?", |s| s.1)
}

fn is_corral(server: &str) -> bool {
    server.starts_with("corral-")
}

impl Ctx {
    fn command(&self, name: &str, port: u16) -> Command {
        let port = port.to_string();
        let mut c = match name {
            "corral-asgi" => {
                let mut c = Command::new(self.venv_bin.join("python"));
                c.args(["-m", "corral", "--interface", "asgi", "--host", "127.0.0.1", "--port", &port, "asgi_app:app"]);
                c
            }
            "granian-asgi" => {
                let mut c = Command::new(self.peers_bin.join("granian"));
                c.args(["--interface", "asgi", "--host", "127.0.0.1", "--port", &port, "--workers", "1"]).args([
                    "--log-level",
                    "warning",
                    "asgi_app:app",
                ]);
                c
            }
            "uvicorn" => {
                let mut c = Command::new(self.peers_bin.join("uvicorn"));
                c.args(["--host", "127.0.0.1", "--port", &port, "--http", "httptools", "--loop", "uvloop"]).args([
                    "--ws",
                    "websockets-sansio",
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
            "corral-threads" => {
                let code = format!(
                    "require({:?}).threads({{ module: {:?}, threads: 2, host: '127.0.0.1', port: {port} }})\
                     .catch((e) => {{ console.error(e); process.exit(1) }})",
                    self.node_binding,
                    self.apps.join("node_ws.js")
                );
                let mut c = Command::new("node");
                c.args(["-e", &code]);
                c
            }
            "node-ws" => {
                let mut c = Command::new("node");
                c.args(["node_ws.js", &port]);
                c
            }
            "corral-rust" => {
                let mut c = Command::new(self.target.join("release").join("examples").join("http_server"));
                c.args(["--addr", &format!("127.0.0.1:{port}")]);
                c
            }
            "tungstenite" => {
                let mut c = Command::new(self.target.join("release").join("ws_tungstenite_peer"));
                c.arg(&port);
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
    fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The resident memory of the server and its descendants.
    fn rss(&self) -> u64 {
        let rss = crate::upload::rss::tree(self.child.id());
        rss.iter().filter_map(|&p| crate::upload::rss::status_bytes(p, "VmRSS")).sum()
    }
}

/// Why a server stopped, from its log: the last line that names an error (`Error: ...`,
/// `ModuleNotFoundError: ...`; Node ends its report with its version, which says nothing),
/// else the last line; at most 300 characters.
fn reason(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let names_error = |l: &&&str| {
        l.split_once(':')
            .is_some_and(|(kind, _)| !kind.contains(' ') && (kind.ends_with("Error") || kind.ends_with("Exception")))
    };
    let line = lines.iter().rev().find(names_error).or(lines.last()).copied().unwrap_or("no output");
    line.chars().take(300).collect()
}

/// Starts `name` and polls (every 100 ms, `START_LIMIT` at most) until a websocket
/// handshake on /ws succeeds. A server that answers the handshake with another status
/// is up but has no websocket there: that is final, not worth waiting out.
fn start(ctx: &Ctx, name: &str, logs: &Path) -> Result<Running, String> {
    let mut r = Running::spawn(name, logs, |port| ctx.command(name, port))?;
    let port = r.port;
    let deadline = Instant::now() + START_LIMIT;
    let mut rng = Rng::new(port as u64);
    let host = r.addr().to_string();
    loop {
        if let Ok(Some(status)) = r.child.try_wait() {
            return Err(format!("exited ({status}): {}", reason(&r.log)));
        }
        let last = match idle::handshake(r.addr(), &host, "/ws", &mut rng, Duration::from_secs(5)) {
            Ok(_) => return Ok(r),
            Err(f @ (Failure::Refused(_) | Failure::Protocol(_))) => return Err(f.to_string()),
            Err(f) => f,
        };
        if Instant::now() >= deadline {
            return Err(format!("no websocket handshake on /ws within {START_LIMIT:?} ({last}): {}", reason(&r.log)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One comparison: a load plan run on corral's server and on each peer.
struct Case {
    name: &'static str,
    plan: Plan,
    corral: &'static str,
    /// The peers, each with its goal (corral / peer).
    peers: Vec<(&'static str, f64)>,
}

impl Case {
    fn servers(&self) -> Vec<&'static str> {
        std::iter::once(self.corral).chain(self.peers.iter().map(|p| p.0)).collect()
    }
}

/// The throughput comparisons (the issue's).
fn cases(a: &Args) -> Vec<Case> {
    let plan = |mode: Mode, path: &str, connections: usize, senders: usize, size: usize, window: usize| Plan {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
        path: path.into(),
        mode,
        pace: Pace::Closed { window },
        connections,
        senders,
        size,
        text: false,
        warmup: a.warmup,
        duration: a.seconds,
        threads: a.threads.map_or_else(super::default_threads, |t| t as usize),
    };
    let echo = |size| plan(Mode::Echo, "/ws", 100, 100, size, 1);
    vec![
        Case {
            name: "python-asgi-echo-64B",
            plan: echo(64),
            corral: "corral-asgi",
            peers: vec![("granian-asgi", 2.0), ("uvicorn", 3.0)],
        },
        Case {
            name: "python-asgi-echo-16KiB",
            plan: echo(16 << 10),
            corral: "corral-asgi",
            peers: vec![("granian-asgi", 2.0), ("uvicorn", 3.0)],
        },
        // Granian's benchmark: 16 clients, small messages, every one to every client.
        Case {
            name: "python-broadcast",
            plan: plan(Mode::Broadcast, "/broadcast", 16, 16, 16, 16),
            corral: "corral-asgi",
            peers: vec![("granian-asgi", 2.0)],
        },
        Case { name: "node-fetch-echo", plan: echo(64), corral: "corral-fetch", peers: vec![("node-ws", 4.0)] },
        Case { name: "node-threads-ws", plan: echo(64), corral: "corral-threads", peers: vec![("node-ws", 1.6)] },
        // One publisher, 1000 subscribers: the fan-out is the work.
        Case {
            name: "node-publish-1000",
            plan: plan(Mode::Broadcast, "/pub", 1000, 1, 64, 16),
            corral: "corral-fetch",
            peers: vec![("node-ws", 4.0)],
        },
        Case { name: "rust-echo", plan: echo(64), corral: "corral-rust", peers: vec![("tungstenite", 1.0)] },
    ]
}

const IDLE_CASE: &str = "rust-idle-ws";

/// A server's figure: measured, failed, or (corral) not there to measure.
#[derive(Clone, Debug, PartialEq)]
enum Figure {
    Value(f64),
    Failed(String),
    Unavailable,
}

/// `<name> corral=<figure> <peer>=<figure> ratio=<r> goal=<g>`.
fn line(name: &str, ours: &str, peer: &str, theirs: &str, ratio: Option<f64>, goal: Option<f64>) -> String {
    let ratio = ratio.filter(|r| r.is_finite()).map_or("-".to_string(), |r| format!("{r:.2}"));
    let goal = goal.map_or("none".to_string(), |g| g.to_string());
    format!("{name} corral={ours} {peer}={theirs} ratio={ratio} goal={goal}")
}

fn show(f: &Figure, unit: impl Fn(f64) -> String) -> String {
    match f {
        Figure::Value(v) => unit(*v),
        Figure::Failed(why) => format!("failed({why})"),
        Figure::Unavailable => "unavailable".into(),
    }
}

/// The median of a server's rounds, or its first failure.
fn median(runs: &[Figure]) -> Figure {
    if let Some(f) = runs.iter().find(|f| !matches!(f, Figure::Value(_))) {
        return f.clone();
    }
    let mut v: Vec<f64> = runs.iter().filter_map(|f| if let Figure::Value(x) = f { Some(*x) } else { None }).collect();
    if v.is_empty() {
        return Figure::Failed("not-run".into());
    }
    v.sort_by(f64::total_cmp);
    Figure::Value(v[(v.len() - 1) / 2])
}

pub fn main(a: Args) -> Result<(), String> {
    let root = a.root.canonicalize().map_err(|e| format!("--root {}: {e}", a.root.display()))?;
    let apps = root.join("bench").join("ws");
    if !apps.join("asgi_app.py").is_file() {
        return Err(format!(
            "no bench/ws/asgi_app.py under {}: run from the repository root or pass --root",
            root.display()
        ));
    }
    let abs = |p: &PathBuf| if p.is_absolute() { p.clone() } else { root.join(p) };
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |t| abs(&PathBuf::from(t)));
    let ctx = Ctx {
        apps: apps.clone(),
        venv_bin: abs(&a.venv).join("bin"),
        peers_bin: abs(&a.peers_venv).join("bin"),
        node_binding: root.join("bindings").join("node"),
        target,
    };
    let all = cases(&a);
    let known: Vec<&str> = all.iter().map(|c| c.name).chain([IDLE_CASE]).collect();
    if let Some(bad) = a.only.iter().find(|o| !known.contains(&o.as_str())) {
        return Err(format!("--only {bad:?}: no such comparison; they are {}", known.join(", ")));
    }
    let wanted = |n: &str| a.only.is_empty() || a.only.iter().any(|o| o == n);
    let cases: Vec<Case> = all.into_iter().filter(|c| wanted(c.name)).collect();
    let mut servers: Vec<&'static str> =
        SERVERS.iter().map(|s| s.0).filter(|s| cases.iter().any(|c| c.servers().contains(s))).collect();
    let idle_wanted = wanted(IDLE_CASE);
    let mut build_for = servers.clone();
    if idle_wanted {
        build_for.extend(["corral-rust", "tungstenite"]);
    }
    crate::server::raise_nofile();
    let versions = prepare(&ctx, &root, &build_for);
    let logs = std::env::temp_dir().join(format!("corral-ws-judge-{}", std::process::id()));
    std::fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;

    let mut running: HashMap<&'static str, Running> = HashMap::new();
    let mut down: HashMap<&'static str, String> = HashMap::new();
    for &name in &servers {
        match start(&ctx, name, &logs) {
            Ok(r) => {
                running.insert(name, r);
            }
            Err(why) => {
                let state = if is_corral(name) { "unavailable" } else { "did not start" };
                println!("# {name} {state}: {why}");
                down.insert(name, why);
            }
        }
    }
    servers.retain(|s| running.contains_key(s));
    let load =
        std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split_whitespace().next().map(str::to_string));
    println!(
        "# corral-bench ws judge: {} round(s), {:.1} s per run after {:.1} s warm-up, medians; {} cores, load {}; {versions}",
        a.rounds,
        a.seconds.as_secs_f64(),
        a.warmup.as_secs_f64(),
        crate::cores(),
        load.as_deref().unwrap_or("unknown")
    );
    let runs = rounds(&a, &cases, &running);
    for case in &cases {
        let figure = |server: &str| -> Figure {
            if down.contains_key(server) {
                return if is_corral(server) { Figure::Unavailable } else { Figure::Failed("not-started".into()) };
            }
            runs.get(&(case.name, server)).map_or(Figure::Failed("not-run".into()), |r| median(r))
        };
        let ours = figure(case.corral);
        for &(peer, goal) in &case.peers {
            let theirs = figure(peer);
            let ratio = match (&ours, &theirs) {
                (Figure::Value(x), Figure::Value(y)) if *y > 0.0 => Some(x / y),
                _ => None,
            };
            let unit = |v: f64| format!("{v:.0}msg/s");
            println!("{}", line(case.name, &show(&ours, unit), label(peer), &show(&theirs, unit), ratio, Some(goal)));
        }
    }
    drop(running);
    if idle_wanted {
        for l in idle_memory(&a, &ctx, &logs) {
            println!("{l}");
        }
    }
    let _ = std::fs::remove_dir_all(&logs);
    Ok(())
}

/// Runs every case on each of its running servers, once per round, rotating the order.
fn rounds(
    a: &Args,
    cases: &[Case],
    running: &HashMap<&'static str, Running>,
) -> HashMap<(&'static str, &'static str), Vec<Figure>> {
    let mut runs: HashMap<(&'static str, &'static str), Vec<Figure>> = HashMap::new();
    for round in 0..a.rounds as usize {
        for case in cases {
            let mut order = case.servers();
            let k = round % order.len();
            order.rotate_left(k);
            for name in order {
                let Some(r) = running.get(name) else { continue };
                let mut plan = case.plan.clone();
                plan.addr = r.addr();
                let fig = match drive::run(&plan) {
                    Err(e) => Figure::Failed(format!("client: {e}")),
                    Ok(o) => match &o.failure {
                        Some(f) => {
                            eprintln!("[{}/{}] {} {name}: failed: {f}", round + 1, a.rounds, case.name);
                            Figure::Failed(f.tag())
                        }
                        None => {
                            eprintln!(
                                "[{}/{}] {} {name}: {:.0} msg/s, p50 {}, p99 {}",
                                round + 1,
                                a.rounds,
                                case.name,
                                o.msg_per_s(),
                                super::show_us(o.quantile_us(0.5)),
                                super::show_us(o.quantile_us(0.99))
                            );
                            Figure::Value(o.msg_per_s())
                        }
                    },
                };
                runs.entry((case.name, name)).or_default().push(fig);
            }
        }
    }
    runs
}

/// Server memory per idle websocket: a fresh server, 100 websockets opened and closed
/// (its first-connection costs), then `--idle` held open; (RSS after - RSS before) / n.
fn idle_memory(a: &Args, ctx: &Ctx, logs: &Path) -> Vec<String> {
    let n = a.idle as usize;
    let name = IDLE_CASE;
    let measure = |server: &str| -> (Figure, String) {
        let r = match start(ctx, server, logs) {
            Ok(r) => r,
            Err(why) if is_corral(server) => {
                return (Figure::Unavailable, format!("# {name} {server} unavailable: {why}"))
            }
            Err(why) => {
                return (Figure::Failed("not-started".into()), format!("# {name} {server} did not start: {why}"))
            }
        };
        if let Err((k, f)) = idle::open(r.addr(), "/ws", 100, START_LIMIT) {
            return (Figure::Failed(f.tag()), format!("# {name} {server}: warming failed after {k}: {f}"));
        }
        let before = r.rss();
        let held = idle::open(r.addr(), "/ws", n, Duration::from_secs(120));
        let after = r.rss();
        match held {
            Ok(socks) => {
                let per = after.saturating_sub(before) as f64 / n as f64;
                let note = format!(
                    "# {name} {server}: {n} idle websockets, RSS {:.1} -> {:.1} MiB ({per:.0} B each)",
                    before as f64 / (1 << 20) as f64,
                    after as f64 / (1 << 20) as f64
                );
                drop(socks);
                (Figure::Value(per), note)
            }
            Err((k, f)) => {
                let limit = open_files_limit(r.child.id());
                let why =
                    format!("# {name} {server}: stopped after {k} websockets: {f} (its open-files limit: {limit})");
                (Figure::Failed(format!("after-{k}")), why)
            }
        }
    };
    let (ours, note) = measure("corral-rust");
    let (theirs, peer_note) = measure("tungstenite");
    let bytes = |v: f64| format!("{v:.0}B/ws");
    let ratio = |x: &Figure, y: f64| if let Figure::Value(v) = x { Some(y / v.max(1.0)) } else { None };
    let bound =
        line(name, &show(&ours, bytes), "bound", &bytes(IDLE_BOUND as f64), ratio(&ours, IDLE_BOUND as f64), Some(1.0));
    let versus = match &theirs {
        Figure::Value(t) => ratio(&ours, *t),
        _ => None,
    };
    let reference = line(name, &show(&ours, bytes), "tungstenite", &show(&theirs, bytes), versus, None);
    vec![bound, reference, note, peer_note]
}

/// The soft `Max open files` of a process, from /proc.
fn open_files_limit(pid: u32) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    let row = text.lines().find(|l| l.starts_with("Max open files"));
    row.and_then(|l| l.split_whitespace().nth(3)).unwrap_or("unknown").to_string()
}

/// Builds or installs what the wanted servers need; says which versions run.
fn prepare(ctx: &Ctx, root: &Path, servers: &[&str]) -> String {
    let mut said = Vec::new();
    let has = |s: &str| servers.contains(&s);
    if has("granian-asgi") || has("uvicorn") {
        said.extend(python_peers(ctx));
    }
    if has("node-ws") || has("corral-fetch") || has("corral-threads") {
        said.extend(node_peers(ctx));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let build = |what: &str, args: &[&str]| {
        eprintln!("building {what} (cargo build --release {})", args.join(" "));
        let ok = Command::new(&cargo)
            .args(["build", "--release", "-q"])
            .args(args)
            .env("CARGO_TARGET_DIR", &ctx.target)
            .current_dir(root)
            .status();
        if !ok.is_ok_and(|s| s.success()) {
            println!("# cannot build {what}: its server will not start (see the cargo output above)");
        }
    };
    if has("corral-rust") {
        build("corral's example server", &["-p", "corral", "--example", "http_server"]);
    }
    if has("tungstenite") {
        build("the tokio-tungstenite peer", &["--manifest-path", "bench/ws/tungstenite/Cargo.toml"]);
        said.push("tokio-tungstenite (bench/ws/tungstenite/Cargo.lock)".into());
    }
    said.join(", ")
}

/// Creates bench/ws/.venv when missing and installs the pins it does not satisfy.
fn python_peers(ctx: &Ctx) -> Vec<String> {
    let py = ctx.peers_bin.join("python");
    let venv = ctx.peers_bin.parent().unwrap_or(&ctx.peers_bin).to_path_buf();
    if !py.is_file() {
        eprintln!("creating {} for the Python peers", venv.display());
        if !Command::new("python3").args(["-m", "venv"]).arg(&venv).status().is_ok_and(|s| s.success()) {
            println!("# python3 -m venv {} failed: Granian and uvicorn will not start", venv.display());
            return Vec::new();
        }
    }
    let req = ctx.apps.join("requirements.txt");
    let check = "import sys, importlib.metadata as m\n\
                 for l in open(sys.argv[1]):\n    l = l.split('#')[0].strip()\n    \
                 if not l: continue\n    n, v = l.split('==')\n    \
                 try:\n        ok = m.version(n) == v\n    except m.PackageNotFoundError:\n        ok = False\n    \
                 if not ok: print(l)";
    let missing = Command::new(&py).args(["-c", check]).arg(&req).output();
    let missing = missing.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
    if !missing.is_empty() {
        eprintln!("installing the pinned peers into {}: {}", venv.display(), missing.replace('\n', ", "));
        let ok = Command::new(&py).args(["-m", "pip", "install", "-q", "-r"]).arg(&req).status();
        if !ok.is_ok_and(|s| s.success()) {
            println!("# pip could not install {}: the peers that need it will not start", req.display());
        }
    }
    let pins = std::fs::read_to_string(&req).unwrap_or_default();
    pins.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// `npm ci` in bench/ws when node_modules is missing; the Node and `ws` versions.
fn node_peers(ctx: &Ctx) -> Vec<String> {
    let mut said = Vec::new();
    match Command::new("node").arg("--version").output() {
        Ok(o) => said.push(format!("node {}", String::from_utf8_lossy(&o.stdout).trim())),
        Err(e) => {
            println!("# no node on PATH ({e}): the Node servers will not start");
            return said;
        }
    }
    if !ctx.apps.join("node_modules").join("ws").is_dir() {
        eprintln!("npm ci in {}", ctx.apps.display());
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&ctx.apps)
            .status();
        if !ok.is_ok_and(|s| s.success()) {
            println!("# npm ci in {} failed: the ws peer will not start", ctx.apps.display());
        }
    }
    let pkg = std::fs::read_to_string(ctx.apps.join("node_modules/ws/package.json")).unwrap_or_default();
    let v =
        serde_json::from_str::<serde_json::Value>(&pkg).ok().and_then(|j| j["version"].as_str().map(str::to_string));
    said.push(format!("ws {}", v.as_deref().unwrap_or("missing")));
    said
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_judged_form() {
        let unit = |v: f64| format!("{v:.0}msg/s");
        let l =
            line("rust-echo", &show(&Figure::Value(2000.0), unit), "tungstenite", "1000msg/s", Some(2.0), Some(1.0));
        assert_eq!(l, "rust-echo corral=2000msg/s tungstenite=1000msg/s ratio=2.00 goal=1");
        let l = line("node-fetch-echo", &show(&Figure::Unavailable, unit), "ws", "5msg/s", None, Some(4.0));
        assert_eq!(l, "node-fetch-echo corral=unavailable ws=5msg/s ratio=- goal=4");
        assert_eq!(show(&Figure::Failed("closed".into()), unit), "failed(closed)");
    }

    #[test]
    fn a_stopped_server_s_reason_is_its_error_line() {
        let dir = std::env::temp_dir().join(format!("corral-ws-judge-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("x.log");
        std::fs::write(
            &log,
            "/a.js:96\n  throw missing()\nError: corral: no addon\n    at load (a.js:1)\n\nNode.js v20\n",
        )
        .unwrap();
        assert_eq!(reason(&log), "Error: corral: no addon");
        std::fs::write(&log, "Traceback:\nModuleNotFoundError: No module named 'corral'\n").unwrap();
        assert_eq!(reason(&log), "ModuleNotFoundError: No module named 'corral'");
        std::fs::write(&log, "address in use\n").unwrap();
        assert_eq!(reason(&log), "address in use");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn medians_and_failures() {
        use Figure::*;
        assert_eq!(median(&[Value(3.0), Value(1.0), Value(2.0)]), Value(2.0));
        assert_eq!(median(&[Value(3.0), Failed("closed".into())]), Failed("closed".into()));
        assert_eq!(median(&[]), Failed("not-run".into()));
    }

    #[test]
    fn the_cases_are_the_issue_comparisons() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            a: Args,
        }
        let cs = cases(&Cli::parse_from(["judge"]).a);
        let goals: Vec<(&str, &str, f64)> =
            cs.iter().flat_map(|c| c.peers.iter().map(move |p| (c.name, p.0, p.1))).collect();
        for want in [
            ("python-asgi-echo-64B", "granian-asgi", 2.0),
            ("python-asgi-echo-16KiB", "uvicorn", 3.0),
            ("python-broadcast", "granian-asgi", 2.0),
            ("node-fetch-echo", "node-ws", 4.0),
            ("node-threads-ws", "node-ws", 1.6),
            ("node-publish-1000", "node-ws", 4.0),
            ("rust-echo", "tungstenite", 1.0),
        ] {
            assert!(goals.contains(&want), "{want:?} in {goals:?}");
        }
        let publish = cs.iter().find(|c| c.name == "node-publish-1000").unwrap();
        assert_eq!((publish.plan.connections, publish.plan.senders, publish.plan.mode), (1000, 1, Mode::Broadcast));
        let echo = cs.iter().find(|c| c.name == "python-asgi-echo-16KiB").unwrap();
        assert_eq!((echo.plan.connections, echo.plan.size), (100, 16 << 10));
    }
}
