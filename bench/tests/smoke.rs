//! Smoke runs of the lab binary: every scenario with every model for a moment, the soak
//! at a small size, and `serve`. They check that the commands work end to end and
//! that the report files are written and well-formed, never the figures.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_corral-bench");

fn scratch(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("corral-bench-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn well_formed_svg(path: &Path) {
    let s = std::fs::read_to_string(path).unwrap();
    assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"), "{} is not one svg element", path.display());
    assert_eq!(s.matches("<svg").count(), 1);
    assert_eq!(s.matches("<text").count(), s.matches("</text>").count(), "{}: unclosed text", path.display());
    assert!(s.contains("<rect x="), "{} has no bars", path.display());
}

#[test]
fn every_scenario_and_model_runs_and_the_report_is_written() {
    let out = scratch("run");
    // The grid's scenarios, and greedy and backlog (their rows are checked apart);
    // synflood has its own test below.
    let scenarios = ["keepalive", "connect", "heavy", "hol", "skew", "idle"];
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--rounds", "2", "--duration", "100ms", "--warmup", "20ms", "--connections", "8"])
        .args(["--idle-connections", "40", "--idle-window", "100ms", "--hol-rate", "400", "--backlog-burst", "100"])
        .arg("--scenario")
        .arg(format!("{},greedy,backlog", scenarios.join(",")))
        .arg("--out")
        .arg(&out);
    let nginx = nginx();
    match &nginx {
        Ok(conf) => {
            cmd.arg("--nginx-conf").arg(conf);
        }
        Err(why) => println!("greedy without nginx: {why}"),
    }
    let status = cmd.stdout(Stdio::null()).status().unwrap();
    assert!(status.success(), "corral-bench run failed: {status}");
    let report = json(&out.join("report.json"));
    let rows = report["rows"].as_array().expect("rows");
    // The five models and the fleets (processes behind HAProxy or nftables DNAT: `make
    // sysdeps` installs both).
    let models = ["single", "thread-per-connection", "pool", "reuseport", "stealing", "fleet-haproxy", "fleet-dnat"];
    let grid = rows.iter().filter(|r| r["scenario"] != "backlog" && r["scenario"] != "greedy").count();
    assert_eq!(grid, scenarios.len() * models.len());
    backlog_rows(&report, rows);
    greedy_rows(&report, rows, nginx.is_ok());
    for s in scenarios {
        for m in models {
            let row = rows.iter().find(|r| r["scenario"] == s && r["model"] == m);
            let row = row.unwrap_or_else(|| panic!("no row for {s} with {m}"));
            assert!(row["error"].is_null(), "{s} with {m} failed: {}", row["error"]);
            assert!(row["value"].is_number(), "{s} with {m} has no figure");
            // The median of two interleaved rounds, and their interval.
            assert_eq!(row["rounds"], 2, "{s} with {m}");
            let values: Vec<f64> = row["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            assert_eq!(values.len(), 2, "{s} with {m}: one figure per round");
            let (v, low, high) =
                (row["value"].as_f64().unwrap(), row["low"].as_f64().unwrap(), row["high"].as_f64().unwrap());
            assert!(low <= v && v <= high, "{s} with {m}: {low} <= {v} <= {high}");
            assert_eq!(
                low,
                values.iter().copied().fold(f64::INFINITY, f64::min),
                "{s} with {m}: low is the least round"
            );
            assert_eq!(high, values.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        }
    }
    for fleet in ["fleet-haproxy", "fleet-dnat"] {
        let row = rows.iter().find(|r| r["model"] == fleet).unwrap();
        assert!(row["extra"]["processes"].as_f64().unwrap() >= 1.0, "{fleet} says how many processes");
        assert!(row["extra"]["balancer_cpu_fraction"].is_number(), "and what its balancer cost");
    }
    let limits = report["server_limits"].as_str().unwrap();
    assert!(limits.contains("HAProxy") && limits.contains("DNAT"), "the report says how the fleets are set up");
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
    assert_eq!(report["settings"]["duration_ms"], 100);
    assert_eq!(report["settings"]["rounds"], 2, "the report says how many rounds");
    assert!(report["statistics"].as_str().unwrap().contains("2 round"));
    let fits = report["fits"].as_array().unwrap();
    assert_eq!(fits.len(), scenarios.len());
    for f in fits {
        let best: Vec<&str> = f["best"].as_array().expect("best").iter().map(|m| m.as_str().unwrap()).collect();
        assert_eq!(best.first(), f["winner"].as_str().as_ref(), "best starts with the winner: {f}");
        assert!(best.iter().all(|m| models.contains(m)), "{f}");
    }
    for g in
        report["goals"].as_array().unwrap().iter().filter(|g| g["goal"].as_str().unwrap().contains("stealing best"))
    {
        assert!(g["goal"].as_str().unwrap().ends_with("best or alike with the best"), "{g}");
        let scenario = g["goal"].as_str().unwrap().split(':').next().unwrap();
        let fit = fits.iter().find(|f| f["scenario"] == scenario).unwrap();
        let in_best = fit["best"].as_array().unwrap().iter().any(|m| m == "stealing");
        assert_eq!(g["met"], in_best, "the goal follows the same rule as `best`: {g}");
    }
    assert!(!report["goals"].as_array().unwrap().is_empty());
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for needle in [
        "# corral lab report",
        "| scenario | figure |",
        "Each cell: the median of the rounds",
        "## Which model fits",
        "## Goals",
        "## Parameters",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}");
    }
    well_formed_svg(&out.join("throughput.svg"));
    for s in scenarios.iter().filter(|s| **s != "idle") {
        well_formed_svg(&out.join(format!("latency-{s}.svg")));
    }
    assert!(md.contains("## Listen backlog") && md.contains("Verdict: a burst of 100 connects"), "backlog section");
    well_formed_svg(&out.join("backlog.svg"));
    assert!(md.contains("## Greedy clients") && md.contains("| kind | server |"), "greedy section");
    assert!(GREEDY_KINDS.iter().all(|k| md.contains(&format!("`{k}`**: "))), "every kind is explained");
    well_formed_svg(&out.join("greedy.svg"));
    well_formed_svg(&out.join("greedy-share.svg"));
    let _ = std::fs::remove_dir_all(&out);
}

/// The `backlog` scenario (a burst of 100 connects here): one row per backlog against
/// the stealing model, outside the grid, with sane fields and a verdict.
fn backlog_rows(report: &serde_json::Value, rows: &[serde_json::Value]) {
    let rows: Vec<&serde_json::Value> = rows.iter().filter(|r| r["scenario"] == "backlog").collect();
    let backlogs: Vec<f64> = rows.iter().map(|r| r["extra"]["backlog"].as_f64().expect("extra.backlog")).collect();
    assert!(backlogs.len() >= 3 && backlogs.contains(&16.0) && backlogs.contains(&1024.0), "{backlogs:?}");
    for r in &rows {
        let b = r["extra"]["backlog"].as_f64().unwrap();
        assert!(r["error"].is_null(), "backlog {b} failed: {}", r["error"]);
        assert_eq!(r["model"], "stealing");
        assert_eq!(r["rounds"], 2, "backlog {b}: --rounds 2");
        let x = &r["extra"];
        let success = x["success"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&success), "backlog {b}: success {success}");
        assert_eq!(x["burst"], 100.0);
        let effective = x["effective_backlog"].as_f64().unwrap();
        assert!(effective >= 1.0 && effective <= b, "backlog {b} takes effect as {effective}: at most what was asked");
        assert!(x["listeners"].as_f64().unwrap() >= 1.0);
        for k in ["syn_retrans", "listen_overflows", "retransmitted_or_failed", "rounds_held"] {
            assert!(x[k].as_f64().is_some_and(|v| v >= 0.0), "backlog {b}: {k} = {}", x[k]);
        }
        assert!(r["p50_us"].as_u64().unwrap() <= r["p99_us"].as_u64().unwrap());
        // A connection that never connected counts as the 1.5 s deadline, never more.
        assert!(r["p99_us"].as_u64().unwrap() <= 1_500_000, "{r}");
        assert_eq!(r["ok"].as_u64().unwrap() + r["errors"].as_u64().unwrap(), 200, "every connect of 2 rounds counted");
    }
    let v = &report["backlog"];
    assert_eq!(v["burst"], 100);
    assert_eq!(v["default_backlog"], 1024);
    assert!(v["summary"].as_str().unwrap().contains("corral's default (1024)"), "{v}");
    // The rows are not the grid's: no fit, and no "best" goal, names the scenario.
    let named = |k: &str| report[k].as_array().unwrap().iter().any(|f| f.to_string().contains("backlog:"));
    assert!(!named("fits") && !named("goals"));
}

/// nginx and the peers' configuration, if both are here; otherwise why not.
fn nginx() -> Result<PathBuf, String> {
    let conf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/peers/nginx.conf");
    if !Path::new("/usr/sbin/nginx").is_file() {
        return Err("/usr/sbin/nginx is not installed".into());
    }
    if !conf.is_file() {
        return Err(format!("no {}", conf.display()));
    }
    Ok(conf)
}

const GREEDY_KINDS: [&str; 4] = ["pipelining", "connections", "heavy", "slow-reader"];

/// The `greedy` section: a row per kind and server outside the grid, labelled in
/// `extra`, with every figure where the server ran the kind and `skipped:` where it
/// could not; goal lines per kind for corral.
fn greedy_rows(report: &serde_json::Value, rows: &[serde_json::Value], nginx: bool) {
    let rows: Vec<&serde_json::Value> = rows.iter().filter(|r| r["scenario"] == "greedy").collect();
    assert_eq!(rows.len(), GREEDY_KINDS.len() * 3, "a row per kind and server: {rows:?}");
    // The corral rows say their backend unless it is epoll (CORRAL_BACKEND, as the lab
    // takes it: the io_uring matrix of `make test` sets it).
    let backend = corral::Backend::from_env().name();
    let suffix = if backend == "epoll" { String::new() } else { format!("-{backend}") };
    let (fair, fifo) = (format!("corral{suffix}"), format!("corral-fifo{suffix}"));
    for kind in GREEDY_KINDS {
        for server in [fair.as_str(), fifo.as_str(), "nginx"] {
            let r = rows.iter().find(|r| r["extra"]["kind"] == kind && r["extra"]["server"] == server);
            let r = r.unwrap_or_else(|| panic!("no greedy row for {kind} on {server}"));
            assert_eq!(r["model"], server);
            if server == "nginx" && (kind == "heavy" || !nginx) {
                assert!(r["error"].as_str().unwrap().starts_with("skipped: "), "{r}");
                continue;
            }
            assert!(r["error"].is_null(), "{kind} on {server} failed: {}", r["error"]);
            assert_eq!(r["rounds"], 2, "{kind} on {server}: --rounds 2");
            let x = &r["extra"];
            let num = |k: &str| x[k].as_f64().unwrap_or_else(|| panic!("{kind} on {server}: no {k}: {r}"));
            assert!(r["value"].as_f64().is_some_and(|v| v > 0.0), "the polite p99 ratio: {r}");
            for k in ["polite_p99_with_us", "polite_p99_without_us", "throughput", "jain"] {
                assert!(num(k) > 0.0, "{kind} on {server}: {k} = {}", x[k]);
            }
            // A slow reader that the server stops serving gets nothing: a share of 0 is a
            // figure.
            assert!(num("share") >= 0.0 && num("equal_share") >= 0.0, "{r}");
            // An nginx worker that took no connection may use no CPU in a short window,
            // and the spread is then unbounded (null in JSON); so may corral's
            // with the heavy kind, whose I/O workers only frame a few hundred requests
            // (one can stay idle for a whole short run).
            let unbounded_ok = server == "nginx" || kind == "heavy";
            assert!(x["spread"].is_number() || (unbounded_ok && x["spread"].is_null()), "{r}");
        }
    }
    let goals: Vec<&serde_json::Value> = report["goals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["goal"].as_str().unwrap().starts_with("greedy "))
        .collect();
    for kind in GREEDY_KINDS {
        let of_kind = goals.iter().filter(|g| g["goal"].as_str().unwrap().starts_with(&format!("greedy {kind}:")));
        // ratio, share and spread, and the ratio against nginx's where nginx has one.
        let against_nginx = nginx && kind != "heavy";
        assert_eq!(of_kind.count(), 3 + against_nginx as usize, "{kind}: {goals:?}");
    }
    assert!(goals.iter().all(|g| g["met"].is_boolean() && !g["figure"].as_str().unwrap().is_empty()));
    // A greedy goal reads its rounds' interval: met, not met, or undecided when the rounds
    // fall on both sides of the limit; `met` is true only for met.
    for g in &goals {
        let verdict = g["verdict"].as_str().unwrap_or_else(|| panic!("no verdict: {g}"));
        assert!(["met", "not_met", "undecided"].contains(&verdict), "{g}");
        assert_eq!(g["met"], verdict == "met", "{g}");
    }
    let named = |k: &str| report[k].as_array().unwrap().iter().any(|f| f["scenario"] == "greedy");
    assert!(!named("fits"), "greedy is not in the grid's verdicts");
}

#[test]
fn a_short_synflood_gives_a_row_per_cookie_setting_and_cleans_up_its_namespaces() {
    let out = scratch("synflood");
    let mut child = Command::new(BIN)
        .args(["run", "--scenario", "synflood", "--model", "stealing", "--rounds", "1", "--duration", "60ms", "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let status = child.wait().unwrap();
    assert!(status.success(), "corral-bench run --scenario synflood failed: {status}");
    let namespaces = Command::new("ip").args(["netns", "list"]).output().map(|o| o.stdout).unwrap_or_default();
    let left = String::from_utf8_lossy(&namespaces).lines().any(|l| l.starts_with(&format!("corral_syn_{pid}_")));
    assert!(!left, "the lab left a namespace behind: {}", String::from_utf8_lossy(&namespaces));
    let report = json(&out.join("report.json"));
    let rows: Vec<&serde_json::Value> =
        report["rows"].as_array().unwrap().iter().filter(|r| r["scenario"] == "synflood").collect();
    assert_eq!(rows.len(), 2, "stealing with cookies on and off: {rows:?}");
    if let Some(why) = rows[0]["error"].as_str().filter(|e| e.starts_with("skipped")) {
        println!("synflood {why}");
        return;
    }
    let mut cookies = Vec::new();
    for r in &rows {
        assert!(r["error"].is_null(), "{r}");
        assert_eq!(r["model"], "stealing");
        let x = |k: &str| r["extra"][k].as_f64().unwrap_or_else(|| panic!("no {k}: {r}"));
        cookies.push(x("syncookies"));
        assert!((0.0..=1.0).contains(&x("legit_success")), "{r}");
        assert_eq!(x("legit_success"), r["value"].as_f64().unwrap());
        assert!(x("syn_rate") > 0.0 && x("syn_sent") > 0.0, "the flooder sent SYNs: {r}");
        assert!(x("legit_attempts") >= 1.0 && x("no_flood_p99_us") > 0.0, "{r}");
        assert!(x("p99_vs_no_flood") > 0.0, "{r}");
    }
    cookies.sort_by(f64::total_cmp);
    assert_eq!(cookies, [0.0, 1.0]);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## SYN flood") && md.contains("| model | syncookies |"), "report.md has the section");
    well_formed_svg(&out.join("synflood.svg"));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_small_soak_loses_misroutes_and_duplicates_nothing() {
    let out = scratch("soak");
    let status = Command::new(BIN)
        .args(["soak", "--requests", "20000", "--connections", "50", "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "corral-bench soak failed: {status}");
    let r = json(&out.join("soak.json"));
    assert!(r["sent"].as_u64().unwrap() >= 20_000);
    for k in ["lost", "misrouted", "duplicated", "unexpected_status"] {
        assert_eq!(r[k], 0, "{k}: {r}");
    }
    let sent = r["sent"].as_u64().unwrap();
    let accounted = ["answered", "refused", "unread_at_shutdown"].iter().map(|k| r[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(accounted, sent, "every request sent is answered, refused, or was never read: {r}");
    assert_eq!(r["per_kind"].as_array().unwrap().len(), 6);
    assert!(std::fs::read_to_string(out.join("soak.md")).unwrap().contains("| sent |"));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn serve_runs_one_model_for_outside_tools_until_stdin_closes() {
    let mut child = Command::new(BIN)
        .args(["serve", "--model", "pool", "--workers", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr: SocketAddr = first.strip_prefix("listening on http://").expect("prints its address").parse().unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /work?us=100 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("spun 100 us\n"), "{reply}");
    drop(child.stdin.take());
    let report = lines.map(Result::unwrap).find(|l| l.starts_with("report ")).expect("a stop report");
    let r: serde_json::Value = serde_json::from_str(&report["report ".len()..]).unwrap();
    assert_eq!(r["requests_framed"], 1);
    assert_eq!(r["clean"], true);
    assert!(child.wait().unwrap().success());
    let bad = Command::new(BIN).args(["serve", "--model", "nope"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("model"), "names what is wrong");
}
