//! The lab's report: the terminal table, `report.md`, `report.json` and the charts, with
//! the machine and every parameter, the "which model fits" summary, and the goals.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use corral::Model;

use crate::scenario::Target;
use serde::Serialize;

use crate::scenario::{Row, Scenario, Settings};
use crate::svg;

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub kernel: String,
    pub cpu: String,
    pub memory_gib: f64,
    pub corral_version: String,
}

impl Machine {
    pub fn this() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let mem_kib: f64 = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        Machine {
            cores: crate::cores(),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            cpu,
            memory_gib: (mem_kib / (1024.0 * 1024.0) * 10.0).round() / 10.0,
            corral_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// Which model fits a workload, by how much.
#[derive(Clone, Debug, Serialize)]
pub struct Fit {
    pub scenario: String,
    pub workload: String,
    pub winner: String,
    pub runner_up: Option<String>,
    /// How far ahead of the runner-up the winner is, in percent.
    pub margin_percent: f64,
    /// Stealing's score against the best (1: it is the best).
    pub stealing_of_best: Option<f64>,
    pub summary: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Goal {
    pub goal: String,
    pub figure: String,
    pub met: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub command: String,
    pub machine: Machine,
    pub settings: Settings,
    pub server_limits: String,
    pub rows: Vec<Row>,
    pub fits: Vec<Fit>,
    pub goals: Vec<Goal>,
}

/// 1 for the best model of a scenario, less for the others (higher-is-better figures
/// divide by the best; lower-is-better ones divide the best).
fn score(s: Scenario, v: f64, best: f64) -> f64 {
    if s.metric().higher_is_better {
        if best > 0.0 {
            v / best
        } else {
            0.0
        }
    } else if v > 0.0 {
        best / v
    } else {
        1.0
    }
}

pub fn format_value(s: Scenario, v: f64) -> String {
    if v.is_nan() {
        return "n/a".into();
    }
    match s.metric().unit {
        "req/s" | "conn/s" => format!("{} {}", thousands(v), s.metric().unit),
        "us" => format!("{} us", thousands(v)),
        "bytes" => format!("{:.1} KiB", v / 1024.0),
        "cores" => format!("{v:.2} cores"),
        _ => format!("{v:.3}"),
    }
}

fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v);
    let (sign, digits) = s.split_at(if s.starts_with('-') { 1 } else { 0 });
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

impl Report {
    pub fn new(command: String, settings: Settings, rows: Vec<Row>) -> Report {
        let mut r = Report {
            command,
            machine: Machine::this(),
            settings,
            server_limits: "each model is `corral::Model` with its defaults, plus backlog 4096, \
                            max_connections_per_ip 0 and max_requests_per_connection 0 (every client is \
                            on loopback and connections live for the whole run); the server is a child \
                            process (`corral-bench serve`), the load generator runs in the parent on the \
                            same cores"
                .into(),
            rows,
            fits: Vec::new(),
            goals: Vec::new(),
        };
        for kind in crate::fleet::Kind::ALL {
            if let Some(n) = r.rows.iter().find(|x| x.model == kind.name()).and_then(|x| x.extra.get("processes")) {
                r.server_limits.push_str(&format!("; {}: {}", kind.name(), kind.describe(*n as usize)));
            }
        }
        r.fits = r.scenarios().into_iter().filter_map(|s| r.fit(s)).collect();
        r.goals = r.goals();
        r
    }

    fn scenarios(&self) -> Vec<Scenario> {
        Scenario::ALL.into_iter().filter(|s| self.rows.iter().any(|r| r.scenario == s.name())).collect()
    }

    /// The models (and the fleet) that have rows, in the lab's order.
    fn models(&self) -> Vec<&'static str> {
        Target::all().into_iter().map(Target::name).filter(|n| self.rows.iter().any(|r| r.model == *n)).collect()
    }

    pub fn row(&self, s: Scenario, m: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.scenario == s.name() && r.model == m)
    }

    fn best(&self, s: Scenario) -> Option<f64> {
        let vals = self.rows.iter().filter(|r| r.scenario == s.name() && !r.value.is_nan()).map(|r| r.value);
        if s.metric().higher_is_better {
            vals.reduce(f64::max)
        } else {
            vals.reduce(f64::min)
        }
    }

    /// The model's score in the scenario (1: best).
    pub fn score(&self, s: Scenario, m: &str) -> Option<f64> {
        let v = self.row(s, m)?.value;
        if v.is_nan() {
            return None;
        }
        Some(score(s, v, self.best(s)?))
    }

    fn fit(&self, s: Scenario) -> Option<Fit> {
        let mut ranked: Vec<(&'static str, f64)> =
            self.models().into_iter().filter_map(|m| Some((m, self.score(s, m)?))).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let (winner, _) = *ranked.first()?;
        let runner = ranked.get(1).copied();
        let margin = runner.map_or(0.0, |(_, sc)| if sc > 0.0 { (1.0 / sc - 1.0) * 100.0 } else { f64::INFINITY });
        let wv = self.row(s, winner)?.value;
        // Models within 5% of the best are alike at this run-to-run noise.
        let alike: Vec<&str> = ranked.iter().filter(|(_, sc)| *sc >= 0.95).map(|(m, _)| *m).collect();
        let next = ranked.iter().find(|(_, sc)| *sc < 0.95);
        let behind = next
            .map(|(m, sc)| match *sc {
                sc if sc >= 0.1 => format!("; next {m} at {:.0}% of the best", sc * 100.0),
                sc if sc > 0.0 => format!("; next {m}, {:.0}x worse", 1.0 / sc),
                _ => format!("; next {m}"),
            })
            .unwrap_or_default();
        let summary = match runner {
            Some(_) if alike.len() > 1 => format!(
                "{}: {} alike, within 5% (best {}, {}){behind}",
                s.workload(),
                join_names(&alike),
                winner,
                format_value(s, wv)
            ),
            Some((r, _)) => {
                format!("{}: {} ({}), {:.0}% ahead of {}", s.workload(), winner, format_value(s, wv), margin, r)
            }
            None => format!("{}: {} ({})", s.workload(), winner, format_value(s, wv)),
        };
        Some(Fit {
            scenario: s.name().into(),
            workload: s.workload().into(),
            winner: winner.into(),
            runner_up: runner.map(|(m, _)| m.to_string()),
            margin_percent: margin,
            stealing_of_best: self.score(s, Model::Stealing.name()),
            summary,
        })
    }

    fn goals(&self) -> Vec<Goal> {
        let mut g = Vec::new();
        let st = Model::Stealing.name();
        for s in self.scenarios() {
            if let Some(sc) = self.score(s, st) {
                if self.models().len() > 1 {
                    g.push(Goal {
                        goal: format!("{}: stealing best or within 5% of the best", s.name()),
                        figure: format!("{:.0}% of the best", sc * 100.0),
                        met: sc >= 0.95,
                    });
                }
            }
        }
        if let Some(r) = self.row(Scenario::Hol, st) {
            let ratio = r.extra.get("p99_vs_without_heavy").copied().unwrap_or(f64::NAN);
            g.push(Goal {
                goal: "hol: light p99 under stealing at most 3x its p99 without the heavy client".into(),
                figure: format!("{ratio:.2}x ({} us vs {} us)", r.value, r.extra["p99_without_heavy_us"]),
                met: ratio <= 3.0,
            });
            if let Some(single) = self.row(Scenario::Hol, Model::Single.name()) {
                let better = single.value / r.value.max(1.0);
                g.push(Goal {
                    goal: "hol: light p99 under stealing at least 10x better than single".into(),
                    figure: format!("{better:.1}x ({} us vs {} us)", r.value, single.value),
                    met: better >= 10.0,
                });
            }
        }
        if let Some(r) = self.row(Scenario::Greedy, st) {
            g.push(Goal {
                goal: "greedy: Jain's index >= 0.9 under stealing".into(),
                figure: format!("{:.3}", r.value),
                met: r.value >= 0.9,
            });
        }
        if let Some(r) = self.row(Scenario::Idle, st) {
            g.push(Goal {
                goal: "idle: <= 4 KiB resident per idle connection (stealing)".into(),
                figure: format!("{:.0} bytes", r.value),
                met: r.value <= 4096.0,
            });
            let cpu = r.extra.get("idle_cpu_percent").copied().unwrap_or(f64::NAN);
            g.push(Goal {
                goal: "idle: CPU while idle under 1% of a core (stealing)".into(),
                figure: format!("{cpu:.2}%"),
                met: cpu < 1.0,
            });
        }
        if let (Some(r), Some(best)) = (self.row(Scenario::Keepalive, st), self.best(Scenario::Keepalive)) {
            let cap = r.extra.get("generator_capacity_per_s").copied().unwrap_or(0.0);
            g.push(Goal {
                goal: "load generator can drive >= 1.5x the fastest model on keepalive".into(),
                figure: format!(
                    "{:.1}x ({} req/s from its {:.2} us of CPU per request on {} cores, vs {} req/s)",
                    cap / best.max(1.0),
                    thousands(cap),
                    r.extra.get("generator_cpu_us_per_request").copied().unwrap_or(f64::NAN),
                    self.machine.cores,
                    thousands(best)
                ),
                met: cap >= 1.5 * best,
            });
        }
        g
    }

    /// The headline table: one row per scenario, one column per model.
    pub fn table(&self) -> String {
        let models = self.models();
        let mut o = String::new();
        let _ = write!(o, "{:<10} {:<22}", "scenario", "figure");
        for m in &models {
            let _ = write!(o, " {m:>22}");
        }
        o.push('\n');
        for s in self.scenarios() {
            let mt = s.metric();
            let label = format!("{} ({})", mt.label, if mt.higher_is_better { "higher" } else { "lower" });
            let _ = write!(o, "{:<10} {:<22}", s.name(), label);
            for &m in &models {
                let cell = match (self.row(s, m), self.score(s, m)) {
                    (Some(r), _) if r.error.is_some() => "failed".into(),
                    (Some(r), Some(sc)) if sc >= 0.9999 => format!("*{}", format_value(s, r.value)),
                    (Some(r), _) => format_value(s, r.value),
                    _ => "-".into(),
                };
                let _ = write!(o, " {cell:>22}");
            }
            o.push('\n');
        }
        o.push_str("(* best)\n");
        o
    }

    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let m = &self.machine;
        let _ = writeln!(o, "# corral lab report\n");
        let _ = writeln!(o, "Command: `{}`\n", self.command);
        let _ = writeln!(
            o,
            "Machine: {} cores ({}), {} GiB, Linux {}; corral {}.\n",
            m.cores, m.cpu, m.memory_gib, m.kernel, m.corral_version
        );
        let _ = writeln!(o, "Server: {}.\n", self.server_limits);
        let _ = writeln!(o, "## Results\n");
        let models = self.models();
        let _ = write!(o, "| scenario | figure |");
        for mm in &models {
            let _ = write!(o, " {mm} |");
        }
        let _ = write!(o, "\n| --- | --- |");
        for _ in &models {
            o.push_str(" ---: |");
        }
        o.push('\n');
        for s in self.scenarios() {
            let mt = s.metric();
            let _ = write!(
                o,
                "| {} | {} ({} is better) |",
                s.name(),
                mt.label,
                if mt.higher_is_better { "higher" } else { "lower" }
            );
            for &mm in &models {
                let cell = match (self.row(s, mm), self.score(s, mm)) {
                    (Some(r), _) if r.error.is_some() => "failed (see details)".into(),
                    (Some(r), Some(sc)) if sc >= 0.9999 => format!("**{}**", format_value(s, r.value)),
                    (Some(r), _) => format_value(s, r.value),
                    _ => "-".into(),
                };
                let _ = write!(o, " {cell} |");
            }
            o.push('\n');
        }
        let _ = writeln!(o, "\n## Which model fits\n");
        for f in &self.fits {
            let _ = writeln!(o, "- **{}** — {}", f.scenario, f.summary);
        }
        let _ = writeln!(o, "\n## Goals\n\n| goal | figure | met |\n| --- | --- | --- |");
        for g in &self.goals {
            let _ = writeln!(o, "| {} | {} | {} |", g.goal, g.figure, if g.met { "yes" } else { "no" });
        }
        let _ = writeln!(o, "\n## Details\n");
        let _ = writeln!(o, "| scenario | model | rate/s | p50 us | p99 us | p99.9 us | ok | errors | more |");
        let _ = writeln!(o, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
        for r in &self.rows {
            let mut more: Vec<String> = r.extra.iter().map(|(k, v)| format!("{k}={}", short(*v))).collect();
            if let Some(e) = &r.error {
                more.push(format!("failed: {}", e.replace('|', "/")));
            }
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.scenario,
                r.model,
                thousands(r.rate),
                r.p50_us,
                r.p99_us,
                r.p999_us,
                r.ok,
                r.errors,
                more.join(", ")
            );
        }
        let _ = writeln!(
            o,
            "\n## Parameters\n\n```json\n{}\n```",
            serde_json::to_string_pretty(&self.settings).unwrap_or_default()
        );
        let _ = writeln!(o, "\nCharts: `throughput.svg` (each model's score against the best, per scenario) and `latency-<scenario>.svg` (p50/p99/p99.9 per model).");
        o
    }

    /// Writes report.md, report.json and the charts into `dir`.
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        let json = serde_json::to_string_pretty(self).map_err(io::Error::other)?;
        std::fs::write(dir.join("report.json"), json)?;
        let models = self.models();
        let scenarios = self.scenarios();
        let series: Vec<(String, Vec<f64>)> = models
            .iter()
            .map(|&m| (m.to_string(), scenarios.iter().map(|&s| self.score(s, m).unwrap_or(0.0)).collect()))
            .collect();
        let cats: Vec<String> = scenarios.iter().map(|s| s.name().to_string()).collect();
        std::fs::write(
            dir.join("throughput.svg"),
            svg::grouped_bars("Each model against the best, per scenario (1 = best)", "score", &cats, &series, false),
        )?;
        for s in scenarios.iter().filter(|s| **s != Scenario::Idle) {
            let series: Vec<(String, Vec<f64>)> = models
                .iter()
                .filter_map(|&m| {
                    let r = self.row(*s, m)?;
                    Some((m.to_string(), vec![r.p50_us as f64, r.p99_us as f64, r.p999_us as f64]))
                })
                .collect();
            let cats = vec!["p50".to_string(), "p99".to_string(), "p99.9".to_string()];
            let title = format!("{}: latency of the measured clients (us, log scale)", s.name());
            std::fs::write(
                dir.join(format!("latency-{}.svg", s.name())),
                svg::grouped_bars(&title, "microseconds", &cats, &series, true),
            )?;
        }
        Ok(())
    }
}

/// `a`, `a and b`, `a, b and c`.
fn join_names(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn short(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else if v.abs() >= 1000.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_and_formats() {
        assert_eq!(score(Scenario::Keepalive, 50.0, 100.0), 0.5);
        assert_eq!(score(Scenario::Hol, 200.0, 100.0), 0.5);
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(format_value(Scenario::Idle, 2048.0), "2.0 KiB");
        assert_eq!(join_names(&["a", "b", "c"]), "a, b and c");
        assert_eq!(join_names(&["a"]), "a");
    }
}
