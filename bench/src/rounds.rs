//! Rounds: the lab runs each model several times per scenario, interleaved, and this
//! module owns what those samples add up to and when one model may be ranked ahead of
//! another.
//!
//! - A row's figure is the **median** of its rounds and its interval is the
//!   **order-statistic confidence interval** of that median: the k-th smallest to the
//!   k-th largest round, k as large as still holds the true median with probability
//!   ≥ 90% whatever the distribution ([`trimmed`], [`coverage`]). With 11 rounds it sets
//!   the two smallest and the two largest aside (93.5%); with 5 it is min–max (93.8%).
//!   What varies on a 2-core machine shared with the load generator is each fresh
//!   server's placement of its threads on the cores (a 1 s round spreads as much as a
//!   100 ms one), so many short rounds beat a few long ones, and one or two rounds that
//!   drew a bad placement do not stretch the interval. A bootstrap interval from a
//!   handful of samples would claim more than the data hold; order statistics can be
//!   checked by eye against the rounds the row lists.
//! - **Ranking**: a model is ahead of another only when their intervals do not overlap.
//!   For two models with the same distribution that happens with probability under 1%
//!   (11 rounds trimmed by 2, or 5 untrimmed), so a ranking is seldom noise; the price is
//!   that differences smaller than a round's spread are reported as alike. A figure that
//!   rounds reproduce to the byte (idle memory) has a resolution instead: intervals
//!   closer than it are alike too ([`crate::scenario::Metric::resolution`]).
//! - Details of a row (rate, latencies, the scenario's extras) are medians over rounds
//!   too, each on its own; counts (`ok`, `errors`, the generator's late sends) are
//!   totals, and the generator's latest send is the worst round's. An idle server's CPU is
//!   pooled (total CPU over total window) instead of taking a median of mostly-zero
//!   samples: a few milliseconds over 2 s, where one wake-up more or less is a large
//!   share of a short window.

use std::collections::{BTreeMap, BTreeSet};

use crate::scenario::{Row, Scenario};

/// The median of `v` (the mean of the two middle values for an even count); NaN when empty.
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The smallest and the largest of `v`, NaNs left out; NaN for both when none is left.
pub fn min_max(v: &[f64]) -> (f64, f64) {
    let mut it = v.iter().copied().filter(|x| !x.is_nan());
    let Some(first) = it.next() else { return (f64::NAN, f64::NAN) };
    it.fold((first, first), |(lo, hi), x| (lo.min(x), hi.max(x)))
}

/// The least probability with which a row's interval holds the true median.
pub const CONFIDENCE: f64 = 0.9;

/// The probability that the k-th smallest to the k-th largest of `n` samples (k =
/// `trim` + 1) holds the distribution's median: 1 − 2·P(Binomial(n, ½) ≤ trim).
pub fn coverage(n: usize, trim: usize) -> f64 {
    if n == 0 || 2 * trim >= n {
        return 0.0;
    }
    let mut term = 1.0; // C(n, 0)
    let mut tail = 0.0;
    for i in 0..=trim {
        if i > 0 {
            term = term * (n - i + 1) as f64 / i as f64;
        }
        tail += term;
    }
    (1.0 - 2.0 * tail / 2f64.powi(n as i32)).max(0.0)
}

/// How many rounds the interval sets aside at each end: the most that still leaves a
/// coverage of at least [`CONFIDENCE`] (0 up to 7 rounds, 1 for 8 to 10, 2 for 11 or 12).
pub fn trimmed(n: usize) -> usize {
    (1..n).take_while(|&k| coverage(n, k) >= CONFIDENCE).last().unwrap_or(0)
}

/// A row's interval from its rounds' figures: the `trimmed`-th smallest to the
/// `trimmed`-th largest (NaNs left out); NaN for both when none is left.
pub fn interval(v: &[f64]) -> (f64, f64) {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    s.sort_by(f64::total_cmp);
    let k = trimmed(s.len());
    (s[k], s[s.len() - 1 - k])
}

/// Extras that pool over rounds: (the figure, its numerator, its denominator, scale).
const POOLED: [(&str, &str, &str, f64); 1] = [("idle_cpu_percent", "idle_cpu_seconds", "idle_window_seconds", 100.0)];

/// Extras that are counts (totals over rounds) or worst cases (the largest round), not
/// figures to take a median of: the generator's own late sends are rare events that
/// most rounds have none of.
const TOTALS: [&str; 1] = ["generator_late_sends"];
const MAXIMA: [&str; 1] = ["generator_late_max_us"];

/// One row from a model's rounds in one scenario (in round order). A round that failed
/// makes the row failed: its error names the round, and the rounds before it are kept
/// in `values` only.
pub fn combine(samples: Vec<Row>) -> Row {
    let planned = samples.len();
    let Some(first) = samples.first() else { panic!("combine needs at least one round") };
    let mut row = first.clone();
    if let Some((i, failed)) = samples.iter().enumerate().find(|(_, r)| r.error.is_some()) {
        row = failed.clone();
        let done: Vec<f64> = samples[..i].iter().map(|r| r.value).collect();
        row.error = Some(format!("round {} failed: {}", i + 1, failed.error.as_deref().unwrap_or("")));
        row.value = f64::NAN;
        row.low = f64::NAN;
        row.high = f64::NAN;
        row.rounds = done.len();
        row.values = done;
        return row;
    }
    let values: Vec<f64> = samples.iter().map(|r| r.value).collect();
    let of = |f: &dyn Fn(&Row) -> f64| median(&samples.iter().map(f).collect::<Vec<_>>());
    let range_us = |f: &dyn Fn(&Row) -> u64| {
        let (lo, hi) = min_max(&samples.iter().map(|r| f(r) as f64).collect::<Vec<_>>());
        [lo as u64, hi as u64]
    };
    row.value = median(&values);
    (row.low, row.high) = interval(&values);
    row.rate = of(&|r| r.rate);
    row.p50_us = of(&|r| r.p50_us as f64).round() as u64;
    row.p99_us = of(&|r| r.p99_us as f64).round() as u64;
    row.p999_us = of(&|r| r.p999_us as f64).round() as u64;
    row.p50_range_us = range_us(&|r| r.p50_us);
    row.p99_range_us = range_us(&|r| r.p99_us);
    row.p999_range_us = range_us(&|r| r.p999_us);
    row.ok = samples.iter().map(|r| r.ok).sum();
    row.errors = samples.iter().map(|r| r.errors).sum();
    let keys: BTreeSet<&String> = samples.iter().flat_map(|r| r.extra.keys()).collect();
    let mut extra = BTreeMap::new();
    for k in keys {
        let v: Vec<f64> = samples.iter().filter_map(|r| r.extra.get(k).copied()).collect();
        let combined = if TOTALS.contains(&k.as_str()) {
            v.iter().sum()
        } else if MAXIMA.contains(&k.as_str()) {
            min_max(&v).1
        } else {
            median(&v)
        };
        extra.insert(k.clone(), combined);
    }
    for (name, num, den, scale) in POOLED {
        let sum = |k: &str| samples.iter().filter_map(|r| r.extra.get(k)).sum::<f64>();
        if extra.contains_key(name) && extra.contains_key(num) && extra.contains_key(den) {
            extra.insert(name.to_string(), scale * sum(num) / sum(den).max(1e-9));
            extra.insert(num.to_string(), sum(num));
            extra.insert(den.to_string(), sum(den));
        }
    }
    row.extra.figures = extra;
    row.rounds = planned;
    row.values = values;
    row
}

/// Whether `a`'s interval lies wholly on the better side of `b`'s, by more than the
/// figure's resolution (the lab's only ground for ranking `a` ahead of `b`). Failed rows
/// are never ahead; any row with a figure is ahead of a failed one.
pub fn ahead(s: Scenario, a: &Row, b: &Row) -> bool {
    if a.value.is_nan() {
        return false;
    }
    if b.value.is_nan() {
        return true;
    }
    let m = s.metric();
    if m.higher_is_better {
        a.low > b.high * (1.0 + m.resolution)
    } else {
        a.high * (1.0 + m.resolution) < b.low
    }
}

/// How long each round watches an idle server: the `--idle-window` shared among the
/// rounds (at least 100 ms each; the CPU figure pools them again).
pub fn idle_window_ms(total_ms: u64, rounds: usize) -> u64 {
    (total_ms / rounds.max(1) as u64).max(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Neither is ahead of the other.
    fn alike(s: Scenario, a: &Row, b: &Row) -> bool {
        !ahead(s, a, b) && !ahead(s, b, a)
    }

    fn sample(value: f64, p99: u64, extra: &[(&str, f64)]) -> Row {
        let mut r = Row::new(Scenario::Keepalive, "pool", value);
        r.p99_us = p99;
        r.ok = 10;
        for (k, v) in extra {
            r.extra.insert(k.to_string(), *v);
        }
        r
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
    }

    #[test]
    fn rounds_add_up_to_a_median_an_interval_and_totals() {
        let (late, worst) = ("generator_late_sends", "generator_late_max_us");
        let rows = vec![
            sample(100.0, 50, &[("jain", 0.5), (late, 0.0), (worst, 0.0)]),
            sample(300.0, 10, &[("jain", 0.9), (late, 2.0), (worst, 1500.0)]),
            sample(200.0, 30, &[("jain", 0.7), (late, 1.0), (worst, 4000.0)]),
        ];
        let r = combine(rows);
        assert_eq!((r.value, r.low, r.high, r.rounds), (200.0, 100.0, 300.0, 3));
        assert_eq!(r.values, vec![100.0, 300.0, 200.0]);
        assert_eq!(r.p99_us, 30);
        assert_eq!(r.p99_range_us, [10, 50]);
        assert_eq!(r.ok, 30);
        assert_eq!(r.extra["jain"], 0.7);
        // Counts add up and worst cases stay the worst, where a median would say 1 and 1500.
        assert_eq!((r.extra["generator_late_sends"], r.extra["generator_late_max_us"]), (3.0, 4000.0));
        assert!(r.error.is_none());
    }

    #[test]
    fn the_interval_trims_rounds_while_it_keeps_ninety_percent() {
        assert!((coverage(5, 0) - 0.9375).abs() < 1e-12);
        assert!((coverage(11, 2) - (1.0 - 2.0 * 67.0 / 2048.0)).abs() < 1e-12);
        assert_eq!(coverage(1, 0), 0.0);
        assert_eq!([1, 3, 5, 7, 8, 9, 10, 11, 12, 13].map(trimmed), [0, 0, 0, 0, 1, 1, 1, 2, 2, 3]);
        // Eleven rounds: two bad placements at either end do not stretch the interval.
        let v = [100.0, 50.0, 101.0, 99.0, 160.0, 98.0, 102.0, 97.0, 103.0, 40.0, 150.0];
        assert_eq!(interval(&v), (97.0, 103.0));
        assert_eq!(interval(&[3.0, 1.0, 2.0]), (1.0, 3.0));
        assert!(interval(&[f64::NAN]).0.is_nan());
        let r = combine(v.iter().map(|&x| sample(x, 0, &[])).collect());
        assert_eq!((r.value, r.low, r.high, r.rounds), (100.0, 97.0, 103.0, 11));
    }

    #[test]
    fn idle_cpu_pools_over_rounds() {
        let idle = |cpu: f64| {
            sample(
                1.0,
                0,
                &[("idle_cpu_percent", cpu * 100.0 / 0.4), ("idle_cpu_seconds", cpu), ("idle_window_seconds", 0.4)],
            )
        };
        // 10 ms of CPU in one of five 400 ms windows: 0.5% of a core, not a median of 0.
        let r = combine(vec![idle(0.0), idle(0.01), idle(0.0), idle(0.0), idle(0.0)]);
        assert!((r.extra["idle_cpu_percent"] - 0.5).abs() < 1e-9, "{:?}", r.extra);
        assert!((r.extra["idle_window_seconds"] - 2.0).abs() < 1e-9);
    }

    #[test]
    fn a_failed_round_fails_the_row_and_says_which() {
        let mut bad = sample(f64::NAN, 0, &[]);
        bad.error = Some("refused".into());
        let r = combine(vec![sample(1.0, 0, &[]), bad]);
        assert!(r.value.is_nan());
        assert_eq!(r.error.as_deref(), Some("round 2 failed: refused"));
        assert_eq!((r.rounds, r.values.clone()), (1, vec![1.0]));
    }

    #[test]
    fn only_intervals_apart_rank() {
        let row = |lo: f64, mid: f64, hi: f64| {
            let mut r = sample(mid, 0, &[]);
            (r.low, r.high) = (lo, hi);
            r
        };
        let (a, b, c) = (row(90.0, 100.0, 110.0), row(105.0, 120.0, 130.0), row(116.0, 120.0, 125.0));
        // Throughput: c's interval lies above a's by more than 5%; b overlaps a; an
        // interval above a's by less than 5% is alike too (the lab's resolution for rates).
        assert!(ahead(Scenario::Keepalive, &c, &a) && !ahead(Scenario::Keepalive, &a, &c));
        assert!(alike(Scenario::Keepalive, &a, &b));
        assert!(alike(Scenario::Keepalive, &a, &row(112.0, 115.0, 120.0)));
        // Latency (lower is better): a is ahead of c.
        assert!(ahead(Scenario::Hol, &a, &c));
        let failed = row(f64::NAN, f64::NAN, f64::NAN);
        assert!(ahead(Scenario::Hol, &a, &failed) && !ahead(Scenario::Hol, &failed, &a));
        // Idle memory: rounds agree to the byte; 2 bytes a connection apart is alike.
        let (m1, m2, m3) = (row(929.0, 930.0, 930.0), row(931.8, 931.8, 931.8), row(4600.0, 4614.0, 4614.0));
        assert!(alike(Scenario::Idle, &m1, &m2) && ahead(Scenario::Idle, &m1, &m3));
        assert_eq!(idle_window_ms(2000, 5), 400);
        assert_eq!(idle_window_ms(200, 5), 100);
    }
}
