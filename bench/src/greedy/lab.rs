//! The lab's `greedy` section (issue 26): `make demo` runs the four greedy kinds of
//! [`super::judge`] against corral (the stealing model, fair shares per client on),
//! corral-fifo (fair shares off, as before them) and nginx, with and without the greedy
//! client, and reports issue 26's figures in place of a Jain's index per model.
//!
//! It is not in the model x scenario grid: one row per kind and server (`scenario:
//! "greedy"`, `model`: the server, `value`: the polite clients' p99 with the greedy
//! client over their p99 without it, `extra`: the labels `kind` and `server` and the
//! judge's figures), its own goals ([`goals`]), report section ([`markdown`]) and
//! charts ([`charts`]). The measurement is the judge's ([`super::judge::judge_kind`]);
//! this module only chooses its parameters and turns its verdicts into rows.
//!
//! Parameters: runs [`LONGER`] times the lab's `--duration` after its `--warmup` (250 ms
//! after 50 ms by default), the lab's `--rounds` but at most [`Params::max_rounds`] (5:
//! fewer would leave a min-max interval under 90% coverage), its `--workers` and
//! `--backend` for corral; light requests
//! spin `light_us` (30) microseconds inline on corral's I/O workers, so that those
//! workers rather than the load generator are the contended resource (nginx answers
//! hello to any path). Invariants: a server that cannot run a kind (nginx not here, or
//! the heavy kind on nginx) has a row whose error starts with `skipped:`; a failed one
//! has its error; every other row has every figure.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use corral::Model;
use serde::Serialize;

use super::judge::{self, Check, Compared, Round, Verdict, RATIO_MAX, SHARE_MAX, SPREAD_MAX};
use super::kinds::Kind;
use super::servers::Spec;
use crate::report::{self, Goal};
use crate::rounds::min_max;
use crate::scenario::{Row, Scenario, Settings};
use crate::svg::{self, Bar};

/// The section's parameters (stated in the report's settings).
#[derive(Clone, Debug, Serialize)]
pub struct Params {
    /// Rounds: the lab's `--rounds`, at most this many.
    pub max_rounds: usize,
    /// Polite clients, each from an address of its own.
    pub polite: usize,
    /// What a light request costs corral inline on its I/O worker, microseconds.
    pub light_us: u64,
    /// CPU time of a heavy request, microseconds.
    pub heavy_us: u64,
    pub nginx: PathBuf,
    /// The peers' nginx configuration, relative to the lab's working directory.
    pub nginx_conf: PathBuf,
}

impl Params {
    pub fn defaults() -> Params {
        Params {
            max_rounds: 5,
            polite: 32,
            light_us: 30,
            heavy_us: 2000,
            nginx: "/usr/sbin/nginx".into(),
            nginx_conf: "../shared/peers/nginx.conf".into(),
        }
    }
}

/// How much longer than a grid round a run is: a polite p99 needs thousands of replies
/// (8,000 in 250 ms here), more than the grid's short rounds hold, and here what varies
/// is within a run (the same server serves every round), so a longer run is what helps.
pub const LONGER: f64 = 2.5;

/// The measured time of one run, with or without the greedy client.
fn run_length(st: &Settings) -> Duration {
    Duration::from_millis(st.duration_ms).mul_f64(LONGER)
}

/// The rounds the section runs.
pub fn rounds(st: &Settings) -> usize {
    st.rounds.clamp(1, st.greedy.max_rounds)
}

/// corral with fair shares, corral-fifo, nginx.
fn specs(st: &Settings) -> Vec<Spec> {
    let corral = |fair| Spec::Corral { model: Model::Stealing, backend: st.backend.clone(), workers: st.workers, fair };
    vec![
        corral(true),
        corral(false),
        Spec::Nginx { binary: st.greedy.nginx.clone(), conf: st.greedy.nginx_conf.clone() },
    ]
}

/// The name of corral's row with fair shares on (`corral` on epoll).
fn corral_label(st: &Settings) -> String {
    specs(st)[0].label()
}

/// One kind against every server, its servers started fresh for it: a row per server.
pub fn run_kind(st: &Settings, kind: Kind) -> Vec<Row> {
    let p = judge::Params {
        seconds: run_length(st),
        warmup: Duration::from_millis(st.warmup_ms),
        rounds: rounds(st) as u32,
        polite: st.greedy.polite,
        light_us: st.greedy.light_us,
        heavy_us: st.greedy.heavy_us,
        threads: 1,
    };
    let specs = specs(st);
    let verdicts = match judge::log_dir("lab") {
        Ok(logs) => {
            let v = judge::judge_kind(&p, kind, &specs, &logs, &mut |_| ());
            let _ = std::fs::remove_dir_all(&logs);
            v
        }
        Err(why) => specs.iter().map(|_| Verdict::Failed(why.clone())).collect(),
    };
    specs.iter().zip(verdicts).map(|(s, v)| row(kind, s, v, &p)).collect()
}

/// A verdict as a report row.
fn row(kind: Kind, spec: &Spec, v: Verdict, p: &judge::Params) -> Row {
    let server = spec.label();
    let mut row = Row::new(Scenario::Greedy, &server, f64::NAN);
    row.extra.labels.insert("kind".into(), kind.name().into());
    row.extra.labels.insert("server".into(), server);
    let (median, rounds) = match v {
        Verdict::Figures { median, rounds } => (median, rounds),
        Verdict::NotApplicable(why) => {
            row.error = Some(format!("skipped: {why}"));
            return row;
        }
        Verdict::Failed(why) => {
            row.error = Some(why);
            return row;
        }
    };
    let of = |f: fn(&Round) -> f64| rounds.iter().map(f).collect::<Vec<f64>>();
    let range_us = |f: fn(&Round) -> f64| {
        let (lo, hi) = min_max(&of(f));
        [lo as u64, hi as u64]
    };
    row.value = median.ratio;
    row.values = of(|r| r.ratio);
    (row.low, row.high) = min_max(&row.values);
    row.rounds = rounds.len();
    row.rate = median.throughput;
    (row.p50_us, row.p99_us, row.p999_us) = (median.p50_with as u64, median.p99_with as u64, median.p999_with as u64);
    row.p50_range_us = range_us(|r| r.p50_with);
    row.p99_range_us = range_us(|r| r.p99_with);
    row.p999_range_us = range_us(|r| r.p999_with);
    // Every run's window is the plan's duration, so rate x window is its count.
    row.ok = of(|r| r.throughput).iter().map(|t| (t * p.seconds.as_secs_f64()).round() as u64).sum();
    row.errors = of(|r| r.errors).iter().sum::<f64>() as u64;
    let (without_low, without_high) = min_max(&of(|r| r.p99_without));
    let (share_low, share_high) = min_max(&of(|r| r.share));
    let (spread_low, spread_high) = min_max(&of(|r| r.spread));
    let light_us = if matches!(spec, Spec::Corral { .. }) { p.light_us as f64 } else { 0.0 };
    for (name, v) in [
        ("polite_p99_with_us", median.p99_with),
        ("polite_p99_without_us", median.p99_without),
        ("polite_p99_without_low_us", without_low),
        ("polite_p99_without_high_us", without_high),
        ("polite_p50_with_us", median.p50_with),
        ("polite_p50_without_us", median.p50_without),
        ("share", median.share),
        ("share_low", share_low),
        ("share_high", share_high),
        ("equal_share", median.equal_share),
        ("greedy_rate", median.greedy_rate),
        ("fair_rate", median.fair_rate),
        ("greedy_sent", median.greedy_sent),
        ("jain", median.jain),
        ("spread", median.spread),
        ("spread_low", spread_low),
        ("spread_high", spread_high),
        ("throughput", median.throughput),
        ("throughput_without", median.throughput_without),
        ("light_us", light_us),
    ] {
        row.extra.insert(name.into(), v);
    }
    row
}

/// A row's named figure; NaN when it has none.
fn figure(r: &Row, k: &str) -> f64 {
    r.extra.get(k).copied().unwrap_or(f64::NAN)
}

/// The section's row for `kind` on `server`, if it ran.
fn find<'a>(all: &'a [Row], kind: Kind, server: &str) -> Option<&'a Row> {
    all.iter().find(|r| {
        r.scenario == Scenario::Greedy.name() && r.extra.label("kind") == Some(kind.name()) && r.model == server
    })
}

/// The section's rows, kind by kind in the order.
fn rows(all: &[Row]) -> Vec<&Row> {
    let at = |r: &Row| Kind::ALL.iter().position(|k| r.extra.label("kind") == Some(k.name()));
    let mut rows: Vec<&Row> = all.iter().filter(|r| r.scenario == Scenario::Greedy.name()).collect();
    rows.sort_by_key(|r| at(r));
    rows
}

/// One line for the terminal.
pub fn line(r: &Row) -> String {
    let kind = r.extra.label("kind").unwrap_or("?");
    let head = format!("greedy    {kind:<11} {:<12}", r.model);
    match &r.error {
        Some(e) => format!("{head} {e}"),
        None => format!(
            "{head} polite p99 {:.0} -> {:.0} us ({:.2}x, rounds {:.2}-{:.2}), share {:.2}, spread {:.2}",
            figure(r, "polite_p99_without_us"),
            figure(r, "polite_p99_with_us"),
            r.value,
            r.low,
            r.high,
            figure(r, "share"),
            figure(r, "spread")
        ),
    }
}

/// Issue 26's goals, per kind, against corral's row with fair shares (reported, never
/// asserted): the polite p99 ratio at most 1.25 and at most nginx's, the greedy client
/// at most 1.1x its fair share, the workers' busy spread at most 1.2.
pub fn goals(all: &[Row], st: &Settings) -> Vec<Goal> {
    let corral = corral_label(st);
    let mut out = Vec::new();
    for kind in Kind::ALL {
        let Some(r) = find(all, kind, &corral).filter(|r| r.error.is_none()) else { continue };
        let nginx = find(all, kind, "nginx").filter(|n| n.error.is_none());
        let median =
            Round { ratio: r.value, share: figure(r, "share"), spread: figure(r, "spread"), ..Round::default() };
        let checks = judge::checks(&median, nginx.map(|n| n.value));
        out.extend(checks.into_iter().map(|c| goal(kind, &corral, r, nginx, c)));
    }
    out
}

/// A goal line. Its verdict reads the figure's interval over rounds (min-max), not its
/// median: a 250 ms run's polite p99 rests on its 80 slowest replies and moves ±30%
/// between rounds, so a median near a limit would fall on either side of it from one
/// `make demo` to the next. Against nginx, corral's interval is set against nginx's.
fn goal(kind: Kind, corral: &str, r: &Row, nginx: Option<&Row>, c: Check) -> Goal {
    let k = kind.name();
    let range = |lo: f64, hi: f64| format!("rounds {lo:.2}-{hi:.2}");
    let (goal, said, verdict) = match c.compared {
        Compared::Ratio => (
            format!("greedy {k}: {corral}'s polite p99 with the greedy client <= {RATIO_MAX}x without it"),
            format!(
                "{:.2}x ({:.0} vs {:.0} us; the median of the rounds' ratios, {})",
                c.figure,
                figure(r, "polite_p99_with_us"),
                figure(r, "polite_p99_without_us"),
                range(r.low, r.high)
            ),
            report::Verdict::at_most((r.low, r.high), (RATIO_MAX, RATIO_MAX)),
        ),
        Compared::RatioVsNginx => {
            let (n_low, n_high) = nginx.map_or((c.limit, c.limit), |n| (n.low, n.high));
            let verdict = report::Verdict::at_most((r.low, r.high), (n_low, n_high));
            (
                format!("greedy {k}: {corral}'s polite p99 ratio <= nginx's"),
                format!(
                    "{:.2}x ({}) vs nginx's {:.2}x ({})",
                    c.figure,
                    range(r.low, r.high),
                    c.limit,
                    range(n_low, n_high)
                ),
                verdict,
            )
        }
        Compared::Share => (
            format!("greedy {k}: the greedy client <= {SHARE_MAX}x its max-min fair share under {corral}"),
            format!(
                "{:.2} ({:.0} of a fair {:.0} per s; {})",
                c.figure,
                figure(r, "greedy_rate"),
                figure(r, "fair_rate"),
                range(figure(r, "share_low"), figure(r, "share_high"))
            ),
            report::Verdict::at_most((figure(r, "share_low"), figure(r, "share_high")), (SHARE_MAX, SHARE_MAX)),
        ),
        Compared::Spread => (
            format!("greedy {k}: {corral}'s busiest I/O worker <= {SPREAD_MAX}x the idlest's busy time"),
            format!("{:.2} ({})", c.figure, range(figure(r, "spread_low"), figure(r, "spread_high"))),
            report::Verdict::at_most((figure(r, "spread_low"), figure(r, "spread_high")), (SPREAD_MAX, SPREAD_MAX)),
        ),
    };
    Goal::judged(goal, said, verdict)
}

/// The report's section: the setup, the kinds in two sentences each, what the figures
/// mean, and a table (empty when the section did not run).
pub fn markdown(all: &[Row], st: &Settings) -> String {
    let rows = rows(all);
    if rows.is_empty() {
        return String::new();
    }
    let g = &st.greedy;
    let mut o = String::from("\n## Greedy clients\n\n");
    let _ = writeln!(
        o,
        "Issue 26's four greedy clients, each beside {} polite clients (one connection each from an address of \
         its own, one request in flight), and the same polite load alone: corral (the stealing model, fair shares \
         per client on), corral-fifo (fair shares off) and nginx, {} round(s) of {} ms (+{} ms warm-up) with and \
         {} ms without, back to back on the same server; figures are medians over rounds. A light request spins \
         {} us inline on corral's I/O workers so that they, not the load generator, are the contended resource \
         (nginx answers hello to any path); the generator shares the {} cores with the servers, alike for all \
         three, which is why nginx's own ratio is the anchor.\n",
        g.polite,
        rounds(st),
        run_length(st).as_millis(),
        st.warmup_ms,
        run_length(st).as_millis(),
        g.light_us,
        crate::cores()
    );
    for k in Kind::ALL {
        let _ = writeln!(o, "- **{} `{}`**: {}", k.letter(), k.name(), k.explain());
    }
    o.push_str(
        "\n**ratio**: the polite clients' p99 with the greedy client over their p99 without it, per round (goal: \
         at most 1.25, and at most nginx's). **share**: the greedy client's rate over its max-min fair share of \
         what all clients got, each polite client's demand being its rate alone (goal: at most 1.1; the heavy \
         kind counts CPU-pool replies). **C/n**: its rate over an equal split, which does not depend on the \
         demands measured. **Jain**: Jain's index over each client's rate over its fair share (1: all got the \
         same fraction). **spread**: the busiest worker's busy time over the idlest's in the with run (corral: \
         I/O workers' time not parked; nginx: its worker processes' CPU time; goal: at most 1.2).\n\n",
    );
    o.push_str(
        "| kind | server | polite p99 us, without -> with | ratio (rounds) | share | C/n | Jain | spread | req/s |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in rows {
        let kind = r.extra.label("kind").unwrap_or("?");
        if let Some(e) = &r.error {
            let _ = writeln!(o, "| {kind} | {} | {} | | | | | | |", r.model, e.replace('|', "/"));
            continue;
        }
        let _ = writeln!(
            o,
            "| {kind} | {} | {:.0} -> {:.0} | {:.2} ({:.2}-{:.2}) | {:.2} | {:.2} | {:.3} | {:.2} | {:.0} |",
            r.model,
            figure(r, "polite_p99_without_us"),
            figure(r, "polite_p99_with_us"),
            r.value,
            r.low,
            r.high,
            figure(r, "share"),
            figure(r, "equal_share"),
            figure(r, "jain"),
            figure(r, "spread"),
            figure(r, "throughput")
        );
    }
    o.push_str(
        "\nCharts: `greedy.svg` (polite p99 without and with), `greedy-share.svg` (the greedy client's share).\n",
    );
    o
}

/// `greedy.svg` (the polite clients' p99 without and with the greedy client, per kind
/// and server, log scale) and `greedy-share.svg` (the greedy client's share of its fair
/// share, log scale); error bars over rounds. Nothing when the section did not run.
pub fn charts(dir: &Path, all: &[Row], st: &Settings) -> io::Result<()> {
    if rows(all).is_empty() {
        return Ok(());
    }
    let servers: Vec<String> = specs(st).iter().map(Spec::label).collect();
    let cats: Vec<String> = Kind::ALL.iter().map(|k| k.name().to_string()).collect();
    let bars = |server: &str, bar: &dyn Fn(&Row) -> Bar| -> Vec<Bar> {
        let of = |k: Kind| find(all, k, server).filter(|r| r.error.is_none()).map_or(Bar::new(0.0, 0.0, 0.0), bar);
        Kind::ALL.into_iter().map(of).collect()
    };
    let mut p99 = Vec::new();
    for s in &servers {
        let without = |r: &Row| {
            Bar::new(
                figure(r, "polite_p99_without_us"),
                figure(r, "polite_p99_without_low_us"),
                figure(r, "polite_p99_without_high_us"),
            )
        };
        let with = |r: &Row| Bar::new(r.p99_us as f64, r.p99_range_us[0] as f64, r.p99_range_us[1] as f64);
        p99.push((format!("{s} without"), bars(s, &without)));
        p99.push((format!("{s} with"), bars(s, &with)));
    }
    let title = "greedy: the polite clients' p99 without and with the greedy client (us, log scale)";
    std::fs::write(dir.join("greedy.svg"), svg::grouped_bars(title, "microseconds", &cats, &p99, true))?;
    let share: Vec<(String, Vec<Bar>)> = servers
        .iter()
        .map(|s| {
            (
                s.clone(),
                bars(s, &|r: &Row| Bar::new(figure(r, "share"), figure(r, "share_low"), figure(r, "share_high"))),
            )
        })
        .collect();
    let title = "greedy: the greedy client's rate over its max-min fair share (goal <= 1.1, log scale)";
    std::fs::write(dir.join("greedy-share.svg"), svg::grouped_bars(title, "share", &cats, &share, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(ratios: &[f64]) -> Verdict {
        let rounds: Vec<Round> = ratios
            .iter()
            .map(|&ratio| Round {
                ratio,
                p99_with: 2000.0 * ratio,
                p99_without: 2000.0,
                share: ratio / 2.0,
                spread: 1.1,
                throughput: 1000.0,
                errors: 1.0,
                ..Round::default()
            })
            .collect();
        Verdict::Figures { median: rounds[1].clone(), rounds }
    }

    fn params() -> judge::Params {
        judge::Params {
            seconds: Duration::from_millis(250),
            warmup: Duration::ZERO,
            rounds: 3,
            polite: 32,
            light_us: 30,
            heavy_us: 2000,
            threads: 1,
        }
    }

    #[test]
    fn a_verdict_becomes_a_row_with_its_rounds_labels_and_figures() {
        let st = Settings::defaults();
        let specs = specs(&st);
        let r = row(Kind::Connections, &specs[0], verdict(&[1.1, 1.2, 1.6]), &params());
        // `corral`, or `corral-io_uring` where CORRAL_BACKEND says so (the io_uring matrix).
        let corral = specs[0].label();
        assert!(corral.starts_with("corral") && !corral.contains("fifo"), "{corral}");
        assert_eq!((r.model.as_str(), r.value, r.low, r.high, r.rounds), (corral.as_str(), 1.2, 1.1, 1.6, 3));
        assert_eq!((r.extra.label("kind"), r.extra.label("server")), (Some("connections"), Some(corral.as_str())));
        assert_eq!(
            (figure(&r, "polite_p99_with_us"), figure(&r, "share"), figure(&r, "light_us")),
            (2400.0, 0.6, 30.0)
        );
        assert_eq!((r.p99_range_us, r.ok, r.errors), ([2200, 3200], 750, 3));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!((json["extra"]["kind"].as_str(), json["extra"]["jain"].as_f64()), (Some("connections"), Some(0.0)));
        let n = row(Kind::Heavy, &specs[2], Verdict::NotApplicable("no CPU work".into()), &params());
        assert_eq!((n.model.as_str(), n.error.as_deref()), ("nginx", Some("skipped: no CPU work")));
        assert!(n.value.is_nan() && n.extra.label("kind") == Some("heavy"));
    }

    #[test]
    fn goals_compare_corral_with_the_limits_and_with_nginx() {
        let st = Settings::defaults();
        let specs = specs(&st);
        let corral = row(Kind::Pipelining, &specs[0], verdict(&[1.0, 1.1, 1.3]), &params());
        let nginx = row(Kind::Pipelining, &specs[2], verdict(&[1.0, 1.05, 1.1]), &params());
        let heavy = row(Kind::Heavy, &specs[0], verdict(&[1.0, 1.1, 1.3]), &params());
        let goals = goals(&[nginx, corral, heavy], &st);
        let said: Vec<report::Verdict> = goals.iter().map(|g| g.verdict).collect();
        use report::Verdict::{Met, NotMet, Undecided};
        // pipelining: rounds 1.0-1.3 straddle 1.25 and overlap nginx's 1.0-1.1, so the lab
        // cannot tell (though the median 1.1 is under 1.25); share 0.5-0.65 and spread 1.1
        // are met. heavy has no nginx row, so no comparison with it.
        assert_eq!(said, [Undecided, Undecided, Met, Met, Undecided, Met, Met]);
        assert_eq!(goals.iter().map(|g| g.met).collect::<Vec<_>>(), said.iter().map(|v| *v == Met).collect::<Vec<_>>());
        assert!(goals[1].goal.contains("<= nginx's") && goals[1].figure.contains("1.05x"), "{:?}", goals[1]);
        // Rounds wholly on one side decide.
        let corral = row(Kind::Pipelining, &specs[0], verdict(&[1.0, 1.05, 1.1]), &params());
        let nginx = row(Kind::Pipelining, &specs[2], verdict(&[1.2, 1.3, 1.4]), &params());
        let slow = row(Kind::SlowReader, &specs[0], verdict(&[1.3, 1.4, 1.5]), &params());
        let said: Vec<report::Verdict> = super::goals(&[nginx, corral, slow], &st).iter().map(|g| g.verdict).collect();
        assert_eq!(said[..2], [Met, Met]);
        assert_eq!(said[4], NotMet);
        assert!(goals.iter().all(|g| g.goal.starts_with("greedy ")));
    }
}
