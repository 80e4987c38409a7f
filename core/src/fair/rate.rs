//! A request rate limit per client: the generic cell rate algorithm (GCRA), as nginx's
//! `limit_req` with `nodelay` behaves: a client may make `rate` requests per second on
//! average and up to `burst` more at once; a request beyond that is refused, and the
//! refusal says how long until one would be accepted.
//!
//! Per client the table keeps one number, the *theoretical arrival time* (TAT): when the
//! client's next request would be on schedule. A request at `now` is accepted when
//! `TAT - now <= burst * T` (T = 1/rate), and then moves the TAT on by T. A client whose
//! TAT is in the past has no debt and carries no state, so those entries are swept out
//! when a shard fills: the table holds only clients who are currently over their
//! average rate, at most [`MAX_CLIENTS`]. When that many are over it at once, a new
//! client is let through unrecorded (fail open: the limit exists to stop one client
//! from crowding out others, not to refuse everyone under a flood of addresses).
//!
//! Invariants: a shard's lock is held for one lookup; times are microseconds on the
//! engine's monotonic clock.

use std::collections::HashMap;
use std::sync::Mutex;

use super::ClientKey;
use crate::sync::lock;

const SHARDS: usize = 16;
/// Clients with a debt remembered at once, over all shards.
pub(crate) const MAX_CLIENTS: usize = 1 << 16;

pub(crate) struct RateLimit {
    /// Microseconds between requests at the average rate (T).
    interval_us: u64,
    /// How far ahead of schedule a client may be: `burst * T`.
    tolerance_us: u64,
    shards: Vec<Mutex<HashMap<ClientKey, u64>>>,
}

impl RateLimit {
    /// `rate`: requests per second on average (at least 1); `burst`: how many more may
    /// come at once.
    pub fn new(rate: u32, burst: u32) -> RateLimit {
        let interval_us = 1_000_000 / u64::from(rate.max(1));
        RateLimit {
            interval_us,
            tolerance_us: interval_us * u64::from(burst),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Accepts a request from `key` at `now_us`, or says how long until one would be
    /// accepted (at least one microsecond).
    pub fn check(&self, key: ClientKey, now_us: u64) -> Result<(), u64> {
        let mut shard = lock(&self.shards[(key as usize) % SHARDS]);
        let tat = shard.get(&key).copied().unwrap_or(now_us).max(now_us);
        let ahead = tat - now_us;
        if ahead > self.tolerance_us {
            return Err((ahead - self.tolerance_us).max(1));
        }
        let next = tat + self.interval_us;
        if shard.len() >= MAX_CLIENTS / SHARDS && !shard.contains_key(&key) {
            shard.retain(|_, t| *t > now_us);
            if shard.len() >= MAX_CLIENTS / SHARDS {
                return Ok(());
            }
        }
        shard.insert(key, next);
        Ok(())
    }

    /// Clients remembered (those ahead of their average rate, and some that were).
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_average_rate() {
        // 10 per second (T = 100 ms), burst 5: 6 at once, then one per 100 ms.
        let r = RateLimit::new(10, 5);
        let t0 = 1_000_000;
        for i in 0..6 {
            assert_eq!(r.check(1, t0), Ok(()), "request {i} of the burst");
        }
        let wait = r.check(1, t0).unwrap_err();
        assert_eq!(wait, 100_000, "the next one is due a whole interval later");
        assert_eq!(r.check(1, t0 + 99_999), Err(1));
        assert_eq!(r.check(1, t0 + 100_000), Ok(()));
        assert!(r.check(1, t0 + 100_000).is_err());
        // Another client is not touched by the first one's debt.
        assert_eq!(r.check(2, t0), Ok(()));
    }

    #[test]
    fn an_idle_client_recovers_its_whole_burst() {
        let r = RateLimit::new(100, 3);
        for _ in 0..4 {
            r.check(7, 0).unwrap();
        }
        assert!(r.check(7, 0).is_err());
        let later = 10_000_000;
        for _ in 0..4 {
            assert_eq!(r.check(7, later), Ok(()));
        }
        assert!(r.check(7, later).is_err());
    }

    #[test]
    fn the_table_stays_bounded_and_fails_open() {
        let r = RateLimit::new(1, 0);
        // Every client is a full second ahead of schedule after one request: all stay.
        for k in 0..(MAX_CLIENTS as u64 * 2) {
            assert_eq!(r.check(k, 0), Ok(()));
        }
        assert!(r.remembered() <= MAX_CLIENTS);
        // Once their debts are paid (a second on), the sweep makes room again.
        let fresh = MAX_CLIENTS as u64 * 3;
        r.check(fresh, 2_000_000).unwrap();
        assert!(r.check(fresh, 2_000_000).is_err(), "remembered after the sweep");
    }
}
