//! The fairness arithmetic of `greedy judge`, as pure functions: the max-min fair share
//! (water-filling), Jain's index over demand-normalised shares, and the spread of the
//! workers' busy time.
//!
//! Max-min fairness: a client that asks for less than an equal split gets all it asks
//! for; what it leaves is split equally among the others, again and again, until the
//! capacity is gone or every demand is met. No client can get more without taking from
//! one that has less. A client with an unbounded demand (the greedy one) gets the final
//! "water level". Invariants: no client is given more than its demand, the shares add up
//! to min(capacity, total demand), and every unmet demand gets the same share.

/// Each client's max-min fair share of `capacity`, in the order of `demands`
/// (`f64::INFINITY`: takes all it is given). Negative or NaN demands count as 0.
pub fn max_min(capacity: f64, demands: &[f64]) -> Vec<f64> {
    let clean = |d: f64| if d.is_nan() { 0.0 } else { d.max(0.0) };
    let mut order: Vec<usize> = (0..demands.len()).collect();
    order.sort_by(|&a, &b| clean(demands[a]).total_cmp(&clean(demands[b])));
    let mut left = if capacity.is_nan() { 0.0 } else { capacity.max(0.0) };
    let mut share = vec![0.0; demands.len()];
    // Smallest demand first: once one client's demand is under the equal split of what
    // is left, every client after it (larger demands) is still in the running.
    for (k, &i) in order.iter().enumerate() {
        let equal = left / (demands.len() - k) as f64;
        share[i] = clean(demands[i]).min(equal);
        left -= share[i];
    }
    share
}

/// Jain's index over `got[i] / fair[i]`: 1 when every client got the same fraction of its
/// fair share, 1/n when one got everything. Clients with no fair share (nothing asked)
/// are left out; NaN when none is left.
pub fn normalised_jain(got: &[f64], fair: &[f64]) -> f64 {
    let x: Vec<f64> = got.iter().zip(fair).filter(|(_, &f)| f > 0.0).map(|(&g, &f)| g / f).collect();
    if x.is_empty() {
        return f64::NAN;
    }
    crate::metrics::jain(&x)
}

/// The busiest worker's time over the idlest's: 1 when the load is spread evenly.
/// Infinite when a worker did nothing while another worked; NaN with no workers.
pub fn spread(busy: &[f64]) -> f64 {
    let max = busy.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = busy.iter().copied().fold(f64::INFINITY, f64::min);
    if busy.is_empty() || max.is_nan() || max <= 0.0 {
        f64::NAN
    } else if min <= 0.0 {
        f64::INFINITY
    } else {
        max / min
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INF: f64 = f64::INFINITY;

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9)
    }

    #[test]
    fn water_filling_meets_small_demands_and_levels_the_rest() {
        // 10 over [2, 8, unbounded]: 2 is met, the other two split the 8 left.
        assert!(close(&max_min(10.0, &[2.0, 8.0, INF]), &[2.0, 4.0, 4.0]));
        // Small demands all met: the unbounded client gets the rest.
        assert!(close(&max_min(10.0, &[1.0, 1.0, INF]), &[1.0, 1.0, 8.0]));
        // Everyone backlogged beyond an equal split: an equal split, whatever the order.
        assert!(close(&max_min(9.0, &[INF, 5.0, 4.0]), &[3.0, 3.0, 3.0]));
        // Less asked than there is: every demand met, capacity left over.
        assert!(close(&max_min(10.0, &[1.0, 2.0]), &[1.0, 2.0]));
        assert!(close(&max_min(0.0, &[1.0, INF]), &[0.0, 0.0]));
        assert!(close(&max_min(4.0, &[f64::NAN, -1.0, INF]), &[0.0, 0.0, 4.0]));
        assert!(max_min(5.0, &[]).is_empty());
    }

    #[test]
    fn water_filling_keeps_its_invariants() {
        let demands = [0.5, 3.0, 7.0, 1.25, INF, 2.0, 9.0];
        for capacity in [0.0, 1.0, 4.0, 10.0, 22.75, 100.0] {
            let share = max_min(capacity, &demands);
            let total: f64 = share.iter().sum();
            let asked: f64 = demands.iter().sum();
            assert!((total - capacity.min(asked)).abs() < 1e-9, "capacity {capacity}: {share:?}");
            assert!(share.iter().zip(&demands).all(|(s, d)| *s <= *d + 1e-12));
            // Every unmet demand is at the same level, and no met one is above it.
            let level = share[4];
            for (s, d) in share.iter().zip(&demands) {
                if *s < *d - 1e-9 {
                    assert!((s - level).abs() < 1e-9, "capacity {capacity}: unmet {s} vs level {level}");
                } else {
                    assert!(*s <= level + 1e-9);
                }
            }
        }
    }

    #[test]
    fn jain_over_fair_shares() {
        // Everyone got exactly its fair share, however unequal the shares are.
        assert_eq!(normalised_jain(&[1.0, 4.0, 10.0], &[1.0, 4.0, 10.0]), 1.0);
        // Everyone got the same fraction of it.
        assert!((normalised_jain(&[0.5, 2.0], &[1.0, 4.0]) - 1.0).abs() < 1e-12);
        // One of four took twice its share and the others none: (2)^2 / (4 * 4) = 0.25.
        assert!((normalised_jain(&[2.0, 0.0, 0.0, 0.0], &[1.0; 4]) - 0.25).abs() < 1e-12);
        // A client with no fair share is not counted.
        assert_eq!(normalised_jain(&[3.0, 3.0, 9.0], &[3.0, 3.0, 0.0]), 1.0);
        assert!(normalised_jain(&[1.0], &[0.0]).is_nan());
    }

    #[test]
    fn spread_of_busy_time() {
        assert_eq!(spread(&[2.0, 2.0]), 1.0);
        assert_eq!(spread(&[1.0, 3.0, 1.5]), 3.0);
        assert_eq!(spread(&[0.0, 1.0]), INF);
        assert!(spread(&[0.0, 0.0]).is_nan());
        assert!(spread(&[]).is_nan());
    }
}
