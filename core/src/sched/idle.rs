//! Searching and parked threads (after tokio's `idle.rs` and Go's `nmspinning`).
//!
//! Invariants:
//! - `searching <= unparked <= threads`; both live in one atomic word so a notifier
//!   reads them together.
//! - A notification wakes a parked thread only if nobody is searching: a searcher will
//!   find the new work, and when it does it wakes one more (`searcher_found_work`), so
//!   threads ramp up one at a time instead of as a herd.
//! - At most half the threads search at once (`try_start_searching`).
//! - A thread about to park first leaves the searching count, then re-checks every
//!   queue (the caller's job) with a SeqCst fence between, so a push that raced with
//!   the park is seen by either the pusher (who then wakes someone) or the parker.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;

const SEARCH_BITS: usize = 16;
const SEARCH_MASK: usize = (1 << SEARCH_BITS) - 1;
const UNPARKED_ONE: usize = 1 << SEARCH_BITS;

pub(crate) struct Idle {
    /// `unparked << 16 | searching`.
    state: AtomicUsize,
    sleepers: Mutex<Vec<usize>>,
    threads: usize,
}

impl Idle {
    pub fn new(threads: usize) -> Idle {
        Idle {
            state: AtomicUsize::new(threads * UNPARKED_ONE),
            sleepers: Mutex::new(Vec::with_capacity(threads)),
            threads,
        }
    }

    /// Threads searching for work now.
    pub fn searching(&self) -> usize {
        self.state.load(SeqCst) & SEARCH_MASK
    }

    #[cfg(test)]
    pub fn unparked(&self) -> usize {
        self.state.load(SeqCst) >> SEARCH_BITS
    }

    /// New work exists: returns the parked thread to wake, if one should be woken.
    /// The returned thread counts as searching and unparked from now on.
    pub fn notify_one(&self) -> Option<usize> {
        let s = self.state.load(SeqCst);
        if s & SEARCH_MASK != 0 || (s >> SEARCH_BITS) >= self.threads {
            return None;
        }
        let mut sleepers = crate::sync::lock(&self.sleepers);
        // Re-check under the lock: a thread may have started searching meanwhile.
        let s = self.state.load(SeqCst);
        if s & SEARCH_MASK != 0 {
            return None;
        }
        let idx = sleepers.pop()?;
        self.state.fetch_add(UNPARKED_ONE + 1, SeqCst);
        Some(idx)
    }

    /// Wakes `idx` specifically if it is parked (e.g. to hand it work only it can do).
    /// Returns true if it was parked and now counts as unparked and searching.
    pub fn claim_parked(&self, idx: usize) -> bool {
        let mut sleepers = crate::sync::lock(&self.sleepers);
        if let Some(pos) = sleepers.iter().position(|&i| i == idx) {
            sleepers.swap_remove(pos);
            self.state.fetch_add(UNPARKED_ONE + 1, SeqCst);
            true
        } else {
            false
        }
    }

    /// Asks to search (steal from siblings). Refused when half the threads already do.
    pub fn try_start_searching(&self) -> bool {
        let mut s = self.state.load(SeqCst);
        loop {
            let searching = s & SEARCH_MASK;
            if 2 * searching >= self.threads {
                return false;
            }
            match self.state.compare_exchange_weak(s, s + 1, SeqCst, SeqCst) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    /// Stops searching; returns true if this was the last searcher (who, having found
    /// work, should wake one more thread).
    pub fn stop_searching(&self) -> bool {
        let prev = self.state.fetch_sub(1, SeqCst);
        prev & SEARCH_MASK == 1
    }

    /// Registers `idx` as parked. Returns true if it was the last searcher.
    pub fn park(&self, idx: usize, searching: bool) -> bool {
        let mut sleepers = crate::sync::lock(&self.sleepers);
        let dec = UNPARKED_ONE + usize::from(searching);
        let prev = self.state.fetch_sub(dec, SeqCst);
        sleepers.push(idx);
        searching && prev & SEARCH_MASK == 1
    }

    /// Called by a thread that woke up by itself (timeout, I/O event, or a re-check
    /// that found work). Returns false if a notifier already claimed it (and so already
    /// counted it unparked and searching).
    pub fn unpark_self(&self, idx: usize) -> bool {
        let mut sleepers = crate::sync::lock(&self.sleepers);
        if let Some(pos) = sleepers.iter().position(|&i| i == idx) {
            sleepers.swap_remove(pos);
            self.state.fetch_add(UNPARKED_ONE, SeqCst);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_one_only_when_nobody_searches() {
        let idle = Idle::new(4);
        for i in 0..4 {
            assert!(!idle.park(i, false));
        }
        assert_eq!(idle.unparked(), 0);
        let first = idle.notify_one().expect("a sleeper is woken");
        assert_eq!(idle.searching(), 1);
        // The woken thread is searching, so a second notification wakes nobody.
        assert_eq!(idle.notify_one(), None);
        assert!(idle.stop_searching(), "it was the last searcher");
        assert!(idle.notify_one().is_some());
        assert_ne!(Some(first), None);
    }

    #[test]
    fn at_most_half_search() {
        let idle = Idle::new(4);
        assert!(idle.try_start_searching());
        assert!(idle.try_start_searching());
        assert!(!idle.try_start_searching());
        idle.stop_searching();
        assert!(idle.try_start_searching());
    }

    #[test]
    fn self_unpark_after_claim_is_refused() {
        let idle = Idle::new(2);
        idle.park(1, false);
        assert!(idle.claim_parked(1));
        assert!(!idle.unpark_self(1), "already claimed by the notifier");
        assert_eq!(idle.unparked(), 2);
    }
}
