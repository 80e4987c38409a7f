//! The lab's report: the terminal table, `report.md`, `report.json` and the charts, with
//! the machine and every parameter, the "which model fits" summary, and the goals. Every
//! row is the median of its rounds with its interval ([`crate::rounds::interval`]), and
//! every verdict (best, alike, a goal of being the best) follows [`crate::rounds::ahead`].

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use corral::Model;

use crate::scenario::Target;
use serde::Serialize;

use crate::rounds;
use crate::scenario::{Row, Scenario, Settings};
use crate::svg::{self, Bar};

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
    /// How far the winner's median is ahead of the runner-up's, in percent.
    pub margin_percent: f64,
    /// Stealing's median against the best median (1: it is the best).
    pub stealing_of_best: Option<f64>,
    /// The models the lab cannot tell apart from the best (the winner first, then by
    /// median): those no model is ranked ahead of ([`Report::best_set`]).
    pub best: Vec<String>,
    pub summary: String,
}

/// A goal line's verdict. A goal read from rounds that vary a lot (the greedy section's)
/// is met or missed only when its interval says so, as models are ranked; otherwise the
/// lab cannot tell, and says `undecided` rather than whichever side its median fell on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Met,
    NotMet,
    Undecided,
}

impl Verdict {
    /// For a figure that should be at most `limit`, both given as intervals over rounds
    /// (low, high; a fixed limit is its own interval): met when the figure's whole interval
    /// lies at or under the limit's, not met when wholly above it, undecided when they
    /// overlap.
    pub fn at_most((low, high): (f64, f64), (limit_low, limit_high): (f64, f64)) -> Verdict {
        if high <= limit_low {
            Verdict::Met
        } else if low > limit_high {
            Verdict::NotMet
        } else {
            Verdict::Undecided
        }
    }

    /// How the terminal and `report.md` print it.
    pub fn mark(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::NotMet => "NOT met",
            Verdict::Undecided => "undecided",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Goal {
    pub goal: String,
    pub figure: String,
    /// Whether the verdict is `met` (false when `undecided`).
    pub met: bool,
    pub verdict: Verdict,
}

impl Goal {
    /// A goal read from a median (or a figure that rounds reproduce): met or not.
    pub fn new(goal: String, figure: String, met: bool) -> Goal {
        Goal::judged(goal, figure, if met { Verdict::Met } else { Verdict::NotMet })
    }

    pub fn judged(goal: String, figure: String, verdict: Verdict) -> Goal {
        Goal { goal, figure, met: verdict == Verdict::Met, verdict }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub command: String,
    /// How rows, intervals and verdicts are computed (rounds, median, interval, rule).
    pub statistics: String,
    pub machine: Machine,
    pub settings: Settings,
    pub server_limits: String,
    pub rows: Vec<Row>,
    pub fits: Vec<Fit>,
    pub goals: Vec<Goal>,
    /// The `backlog` scenario's verdict (its rows are in `rows`, one per backlog).
    pub backlog: Option<crate::backlog::Verdict>,
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
    let unit = shown_unit(s);
    let n = number(s, v);
    if unit.is_empty() {
        n
    } else {
        format!("{n} {unit}")
    }
}

/// An interval, its unit once: `221,002-233,410 req/s`.
pub fn format_range(s: Scenario, low: f64, high: f64) -> String {
    if low.is_nan() || high.is_nan() {
        return "n/a".into();
    }
    let unit = shown_unit(s);
    let r = format!("{}-{}", number(s, low), number(s, high));
    if unit.is_empty() {
        r
    } else {
        format!("{r} {unit}")
    }
}

fn shown_unit(s: Scenario) -> &'static str {
    match s.metric().unit {
        "bytes" => "KiB",
        u => u,
    }
}

fn number(s: Scenario, v: f64) -> String {
    match s.metric().unit {
        "req/s" | "conn/s" | "us" => thousands(v),
        "bytes" => format!("{:.1}", v / 1024.0),
        "cores" => format!("{v:.2}"),
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
            statistics: String::new(),
            rows,
            fits: Vec::new(),
            goals: Vec::new(),
            backlog: None,
        };
        r.statistics = r.statistics();
        for kind in crate::fleet::Kind::ALL {
            if let Some(n) = r.rows.iter().find(|x| x.model == kind.name()).and_then(|x| x.extra.get("processes")) {
                r.server_limits.push_str(&format!("; {}: {}", kind.name(), kind.describe(*n as usize)));
            }
        }
        r.fits = r.scenarios().into_iter().filter_map(|s| r.fit(s)).collect();
        r.goals = r.goals();
        r.backlog = crate::backlog::verdict(&r.rows, &r.settings);
        r
    }

    /// The statistics sentence: how many rounds of what length each scenario ran, what a
    /// figure and its interval are, and when one model is ranked ahead of another.
    fn statistics(&self) -> String {
        let st = &self.settings;
        let confidence = |n: usize| {
            let p = 100.0 * rounds::coverage(n, rounds::trimmed(n));
            format!("{}, which holds the true median of {n} rounds with probability {p:.1}%", interval_words(n))
        };
        let mut own = Vec::new();
        for s in self.scenarios() {
            let n = s.rounds(st);
            let length = s.round_length(st).1.as_millis();
            match s {
                Scenario::Idle => {
                    let window = rounds::idle_window_ms(st.idle_window_ms, n);
                    own.push(format!("idle {n}, each watching the idle server for {window} ms"));
                }
                _ if n != st.rounds || length != u128::from(st.duration_ms) => {
                    own.push(format!("{} {n} of {length} ms, its interval {}", s.name(), confidence(n)))
                }
                _ => {}
            }
        }
        let exceptions =
            if own.is_empty() { String::new() } else { format!(" (rounds of their own: {})", own.join("; ")) };
        format!(
            "each model ran {} round(s) per scenario of {} ms (+{} ms warm-up) on a fresh server{exceptions}, \
             interleaved (every model once per round, each round starting one model later); a figure is the \
             median over rounds and its interval the order-statistic confidence interval of that median: \
             {}; a model is ranked ahead of another only when their intervals do not overlap (and lie more \
             than 5% apart for rates and work done, 2% for idle memory, which rounds reproduce to the byte), \
             otherwise they are alike; `best` lists \
             the models no model is ranked ahead of; goals of being the best mean being in `best`, threshold \
             goals read the median",
            st.rounds,
            st.duration_ms,
            st.warmup_ms,
            confidence(st.rounds)
        )
    }

    /// The grid's scenarios that have rows.
    fn scenarios(&self) -> Vec<Scenario> {
        let ran = |s: &Scenario| s.grid() && self.rows.iter().any(|r| r.scenario == s.name());
        Scenario::ALL.into_iter().filter(ran).collect()
    }

    /// The models (and the fleet) that have rows in the grid, in the lab's order.
    fn models(&self) -> Vec<&'static str> {
        let grid = |r: &Row| Scenario::parse(&r.scenario).is_ok_and(Scenario::grid);
        let ran = |n: &&str| self.rows.iter().any(|r| r.model == *n && grid(r));
        Target::all().into_iter().map(Target::name).filter(ran).collect()
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

    /// The models the lab cannot tell apart from the best: those no model is ranked ahead
    /// of (the winner, whose median is best, first, then by median). Whichever of several
    /// alike models happens to draw the best median, the set is the same.
    pub fn best_set(&self, s: Scenario) -> Vec<&'static str> {
        self.ranked(s).into_iter().map(|(m, _)| m).filter(|m| self.ahead_of(s, m).is_none()).collect()
    }

    /// The best-ranked model whose interval lies wholly on the better side of `m`'s.
    fn ahead_of(&self, s: Scenario, m: &str) -> Option<&'static str> {
        let r = self.row(s, m)?;
        self.ranked(s).into_iter().map(|(o, _)| o).find(|o| self.row(s, o).is_some_and(|x| rounds::ahead(s, x, r)))
    }

    /// The models with a figure, best median first.
    fn ranked(&self, s: Scenario) -> Vec<(&'static str, f64)> {
        let mut ranked: Vec<(&'static str, f64)> =
            self.models().into_iter().filter_map(|m| Some((m, self.score(s, m)?))).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked
    }

    fn fit(&self, s: Scenario) -> Option<Fit> {
        let ranked = self.ranked(s);
        let (winner, _) = *ranked.first()?;
        let runner = ranked.get(1).copied();
        let margin = runner.map_or(0.0, |(_, sc)| if sc > 0.0 { (1.0 / sc - 1.0) * 100.0 } else { f64::INFINITY });
        let w = self.row(s, winner)?;
        let alike = self.best_set(s);
        let next = ranked.iter().find(|(m, _)| !alike.contains(m));
        let behind = next
            .map(|(m, sc)| match *sc {
                sc if sc >= 0.1 => format!("; next {m} at {:.0}% of the best", sc * 100.0),
                sc if sc > 0.0 => format!("; next {m}, {:.0}x worse", 1.0 / sc),
                _ => format!("; next {m}"),
            })
            .unwrap_or_default();
        let figure =
            format!("{}, {} over {} rounds", format_value(s, w.value), format_range(s, w.low, w.high), w.rounds);
        let summary = match runner {
            Some(_) if alike.len() > 1 => format!(
                "{}: {} alike, no model ranked ahead of them (best median {winner}, {figure}){behind}",
                s.workload(),
                join_names(&alike),
            ),
            Some((r, _)) => format!(
                "{}: {winner} ({figure}), ahead of every other; its median {:.0}% ahead of {r}",
                s.workload(),
                margin
            ),
            None => format!("{}: {winner} ({figure})", s.workload()),
        };
        Some(Fit {
            scenario: s.name().into(),
            workload: s.workload().into(),
            winner: winner.into(),
            runner_up: runner.map(|(m, _)| m.to_string()),
            margin_percent: margin,
            stealing_of_best: self.score(s, Model::Stealing.name()),
            best: alike.iter().map(|m| m.to_string()).collect(),
            summary,
        })
    }

    fn goals(&self) -> Vec<Goal> {
        let mut g = Vec::new();
        let st = Model::Stealing.name();
        for s in self.scenarios() {
            if let (Some(sc), Some(r)) = (self.score(s, st), self.row(s, st)) {
                if self.models().len() > 1 {
                    let best = self.best_set(s);
                    let winner = best.first().copied().unwrap_or("?");
                    let verdict = match self.ahead_of(s, st) {
                        _ if winner == st => "the best median".to_string(),
                        None => format!("alike with {winner}, the best median; no model ahead of it"),
                        Some(o) => format!("behind {o}: {o}'s interval lies wholly on the better side"),
                    };
                    g.push(Goal::new(
                        format!("{}: stealing best or alike with the best", s.name()),
                        format!(
                            "median {:.0}% of the best, {} ({}); {verdict}",
                            sc * 100.0,
                            format_value(s, r.value),
                            format_range(s, r.low, r.high)
                        ),
                        best.contains(&st),
                    ));
                }
            }
        }
        if let Some(r) = self.row(Scenario::Hol, st) {
            let ratio = r.extra.get("p99_vs_without_heavy").copied().unwrap_or(f64::NAN);
            g.push(Goal::new(
                "hol: light p99 under stealing at most 3x its p99 without the heavy client".into(),
                format!(
                    "{ratio:.2}x (the median of the rounds' ratios; light p99 {} with the heavy client and {} \
                     without, each the median of its rounds)",
                    format_value(Scenario::Hol, r.value),
                    format_value(Scenario::Hol, r.extra.get("p99_without_heavy_us").copied().unwrap_or(f64::NAN))
                ),
                ratio <= 3.0,
            ));
            if let Some(single) = self.row(Scenario::Hol, Model::Single.name()) {
                let better = single.value / r.value.max(1.0);
                g.push(Goal::new(
                    "hol: light p99 under stealing at least 10x better than single".into(),
                    format!(
                        "{better:.1}x (medians {} vs {}; worst stealing round {}, best single round {})",
                        format_value(Scenario::Hol, r.value),
                        format_value(Scenario::Hol, single.value),
                        format_value(Scenario::Hol, r.high),
                        format_value(Scenario::Hol, single.low)
                    ),
                    better >= 10.0,
                ));
            }
        }
        g.extend(crate::greedy::lab::goals(&self.rows, &self.settings));
        if let Some(r) = self.row(Scenario::Idle, st) {
            g.push(Goal::new(
                "idle: <= 4 KiB resident per idle connection (stealing)".into(),
                format!("{:.0} bytes (median; rounds {:.0}-{:.0})", r.value, r.low, r.high),
                r.value <= 4096.0,
            ));
            let cpu = r.extra.get("idle_cpu_percent").copied().unwrap_or(f64::NAN);
            g.push(Goal::new(
                "idle: CPU while idle under 1% of a core (stealing)".into(),
                format!("{cpu:.2}% (over all rounds' idle windows)"),
                cpu < 1.0,
            ));
        }
        if let (Some(r), Some(best)) = (self.row(Scenario::Keepalive, st), self.best(Scenario::Keepalive)) {
            let cap = r.extra.get("generator_capacity_per_s").copied().unwrap_or(0.0);
            g.push(Goal::new(
                "load generator can drive >= 1.5x the fastest model on keepalive".into(),
                format!(
                    "{:.1}x ({} req/s from its {:.2} us of CPU per request on {} cores, vs the best median {} req/s)",
                    cap / best.max(1.0),
                    thousands(cap),
                    r.extra.get("generator_cpu_us_per_request").copied().unwrap_or(f64::NAN),
                    self.machine.cores,
                    thousands(best)
                ),
                cap >= 1.5 * best,
            ));
        }
        g.extend(crate::synflood::goals(&self.rows));
        g
    }

    /// The headline table: two lines per scenario (the medians, then the intervals),
    /// one column per model; `*` marks the best and the models alike with it.
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
            let best = self.best_set(s);
            let label = format!("{} ({})", mt.label, if mt.higher_is_better { "higher" } else { "lower" });
            let _ = write!(o, "{:<10} {:<22}", s.name(), label);
            for &m in &models {
                let cell = match self.row(s, m) {
                    Some(r) if r.error.is_some() => "failed".into(),
                    Some(r) if best.contains(&m) => format!("*{}", format_value(s, r.value)),
                    Some(r) => format_value(s, r.value),
                    None => "-".into(),
                };
                let _ = write!(o, " {cell:>22}");
            }
            o.push('\n');
            let n = self.rows.iter().find(|r| r.scenario == s.name()).map_or(self.settings.rounds, |r| r.rounds);
            let _ = write!(o, "{:<10} {:<22}", "", format!("  {}", interval_label(n)));
            for &m in &models {
                let cell = match self.row(s, m) {
                    Some(r) if r.error.is_none() => format_range(s, r.low, r.high),
                    _ => String::new(),
                };
                let _ = write!(o, " {cell:>22}");
            }
            o.push('\n');
        }
        let _ = writeln!(
            o,
            "(median of the rounds, then its interval: {}; * the best median and every model no other is \
             ranked ahead of)",
            interval_words(self.settings.rounds)
        );
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
        let _ = writeln!(o, "Statistics: {}.\n", self.statistics);
        let _ = writeln!(o, "## Results\n");
        let _ = writeln!(
            o,
            "Each cell: the median of the rounds, then its interval ({}). **Bold**: the best median and \
             every model no other is ranked ahead of (no interval lies wholly on the better side of its own).\n",
            interval_words(self.settings.rounds)
        );
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
            let best = self.best_set(s);
            for &mm in &models {
                let cell = match self.row(s, mm) {
                    Some(r) if r.error.is_some() => "failed (see details)".into(),
                    Some(r) => {
                        let v = format_value(s, r.value);
                        let v = if best.contains(&mm) { format!("**{v}**") } else { v };
                        format!("{v} ({})", format_range(s, r.low, r.high))
                    }
                    None => "-".into(),
                };
                let _ = write!(o, " {cell} |");
            }
            o.push('\n');
        }
        let _ = writeln!(o, "\n## Which model fits\n");
        for f in &self.fits {
            let _ = writeln!(o, "- **{}** — {}", f.scenario, f.summary);
        }
        if let Some(v) = &self.backlog {
            o.push_str(&crate::backlog::markdown(&self.rows, v));
        }
        o.push_str(&crate::greedy::lab::markdown(&self.rows, &self.settings));
        let _ = writeln!(o, "\n## Goals\n\n| goal | figure | met |\n| --- | --- | --- |");
        for g in &self.goals {
            let mark = match g.verdict {
                Verdict::Met => "yes",
                Verdict::NotMet => "no",
                Verdict::Undecided => "undecided",
            };
            let _ = writeln!(o, "| {} | {} | {mark} |", g.goal, g.figure);
        }
        o.push_str(&crate::synflood::markdown(&self.rows));
        let _ = writeln!(o, "\n## Details\n");
        let _ = writeln!(
            o,
            "Medians over rounds (p99 with its smallest and largest round); ok and errors are totals; \
             `rounds` lists each round's headline figure in round order.\n"
        );
        let _ = writeln!(o, "| scenario | model | rate/s | p50 us | p99 us | p99.9 us | ok | errors | rounds | more |");
        let _ = writeln!(o, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |");
        for r in &self.rows {
            let labels = r.extra.labels.iter().map(|(k, v)| format!("{k}={v}"));
            let mut more: Vec<String> =
                labels.chain(r.extra.iter().map(|(k, v)| format!("{k}={}", short(*v)))).collect();
            if let Some(e) = &r.error {
                more.push(format!("failed: {}", e.replace('|', "/")));
            }
            let rounds: Vec<String> = r.values.iter().map(|v| short(*v)).collect();
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} ({}-{}) | {} | {} | {} | {} | {} |",
                r.scenario,
                r.model,
                thousands(r.rate),
                r.p50_us,
                r.p99_us,
                r.p99_range_us[0],
                r.p99_range_us[1],
                r.p999_us,
                r.ok,
                r.errors,
                rounds.join(", "),
                more.join(", ")
            );
        }
        let _ = writeln!(
            o,
            "\n## Parameters\n\n```json\n{}\n```",
            serde_json::to_string_pretty(&self.settings).unwrap_or_default()
        );
        let _ = writeln!(o, "\nCharts: `throughput.svg` (each model's median against the best median, per scenario) and `latency-<scenario>.svg` (p50/p99/p99.9 per model); error bars span the smallest to the largest round. The sections outside the grid have their own (`backlog.svg`, `greedy.svg`, `greedy-share.svg`, `synflood.svg`).");
        o
    }

    /// The model's score bar: its median against the best median, the error bar its
    /// interval on the same scale.
    fn score_bar(&self, s: Scenario, m: &str) -> Bar {
        match (self.row(s, m), self.best(s)) {
            (Some(r), Some(best)) if !r.value.is_nan() => {
                let (a, b) = (score(s, r.low, best), score(s, r.high, best));
                Bar::new(score(s, r.value, best), a.min(b), a.max(b))
            }
            _ => Bar::new(0.0, 0.0, 0.0),
        }
    }

    /// Writes report.md, report.json and the charts into `dir`.
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        let json = serde_json::to_string_pretty(self).map_err(io::Error::other)?;
        std::fs::write(dir.join("report.json"), json)?;
        let models = self.models();
        let scenarios = self.scenarios();
        let series: Vec<(String, Vec<Bar>)> = models
            .iter()
            .map(|&m| (m.to_string(), scenarios.iter().map(|&s| self.score_bar(s, m)).collect()))
            .collect();
        let cats: Vec<String> = scenarios.iter().map(|s| s.name().to_string()).collect();
        std::fs::write(
            dir.join("throughput.svg"),
            svg::grouped_bars("Each model against the best, per scenario (1 = best)", "score", &cats, &series, false),
        )?;
        crate::synflood::chart(dir, &self.rows)?;
        crate::greedy::lab::charts(dir, &self.rows, &self.settings)?;
        for s in scenarios.iter().filter(|s| **s != Scenario::Idle) {
            let series: Vec<(String, Vec<Bar>)> = models
                .iter()
                .filter_map(|&m| {
                    let r = self.row(*s, m)?;
                    let bar = |v: u64, [lo, hi]: [u64; 2]| Bar::new(v as f64, lo as f64, hi as f64);
                    Some((
                        m.to_string(),
                        vec![
                            bar(r.p50_us, r.p50_range_us),
                            bar(r.p99_us, r.p99_range_us),
                            bar(r.p999_us, r.p999_range_us),
                        ],
                    ))
                })
                .collect();
            let cats = vec!["p50".to_string(), "p99".to_string(), "p99.9".to_string()];
            let title = format!("{}: latency of the measured clients (us, log scale)", s.name());
            std::fs::write(
                dir.join(format!("latency-{}.svg", s.name())),
                svg::grouped_bars(&title, "microseconds", &cats, &series, true),
            )?;
        }
        if let Some(v) = &self.backlog {
            std::fs::write(dir.join("backlog.svg"), crate::backlog::chart(&self.rows, v))?;
        }
        Ok(())
    }
}

/// The interval of `n` rounds in words: "the smallest to the largest round", or, where
/// [`rounds::trimmed`] sets rounds aside, "the 3rd smallest to the 3rd largest round".
pub fn interval_words(n: usize) -> String {
    match rounds::trimmed(n) {
        0 => "the smallest to the largest round".into(),
        k => format!("the {} smallest to the {} largest round", ordinal(k + 1), ordinal(k + 1)),
    }
}

/// The table's label for the interval line: "min-max of rounds", "3rd-9th of 11 rounds".
fn interval_label(n: usize) -> String {
    match rounds::trimmed(n) {
        0 => "min-max of rounds".into(),
        k => format!("{}-{} of {n} rounds", ordinal(k + 1), ordinal(n - k)),
    }
}

fn ordinal(i: usize) -> String {
    let suffix = match (i % 10, i % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{i}{suffix}")
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
    fn a_verdict_reads_intervals_and_stays_undecided_where_they_overlap() {
        use Verdict::{Met, NotMet, Undecided};
        let limit = (1.25, 1.25);
        assert_eq!(Verdict::at_most((1.0, 1.25), limit), Met);
        assert_eq!(Verdict::at_most((1.3, 1.6), limit), NotMet);
        assert_eq!(Verdict::at_most((1.1, 1.3), limit), Undecided);
        // Against a measured limit (nginx's rounds): apart decides, overlap does not.
        assert_eq!(Verdict::at_most((1.0, 1.1), (1.2, 1.4)), Met);
        assert_eq!(Verdict::at_most((1.5, 1.6), (1.2, 1.4)), NotMet);
        assert_eq!(Verdict::at_most((1.0, 1.3), (1.2, 1.4)), Undecided);
    }

    #[test]
    fn scores_and_formats() {
        assert_eq!(score(Scenario::Keepalive, 50.0, 100.0), 0.5);
        assert_eq!(score(Scenario::Hol, 200.0, 100.0), 0.5);
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(format_value(Scenario::Idle, 2048.0), "2.0 KiB");
        assert_eq!(join_names(&["a", "b", "c"]), "a, b and c");
        assert_eq!(join_names(&["a"]), "a");
        assert_eq!(interval_label(11), "3rd-9th of 11 rounds");
        assert_eq!(interval_label(5), "min-max of rounds");
        assert_eq!(interval_words(9), "the 2nd smallest to the 2nd largest round");
        assert_eq!(
            [1, 2, 3, 4, 11, 12, 13, 21, 22, 111].map(ordinal).join(" "),
            "1st 2nd 3rd 4th 11th 12th 13th 21st 22nd 111th"
        );
    }
}
