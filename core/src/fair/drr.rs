//! Deficit round robin over clients (Shreedhar and Varghese, SIGCOMM '95).
//!
//! Items wait in one FIFO per client (a *flow*); the clients with items form a ring. A
//! visit to a client adds the quantum to its deficit and serves its items while the
//! deficit is positive, each item taking its cost from it. Over any stretch where
//! several clients have items waiting, each is served within one quantum (plus one
//! item) of the others, whatever it queued: a client with 200 connections ready or 64
//! heavy jobs queued gets what one with a single item gets. A client whose queue runs
//! dry leaves the ring and its deficit is forgotten (standard DRR: credit does not
//! accumulate while idle), so a client that comes back joins at the back of the ring.
//!
//! Two ways to take items, one per user:
//! - [`Drr::round`] hands out one round (each client's quantum) at once: an I/O worker
//!   releases a round into its stealable deque, where siblings may take part of it.
//! - [`Drr::pop`] hands out one item at a time with an estimated cost, and
//!   [`Drr::charge`] corrects it once the real cost is known: the CPU pool charges a
//!   job's run time, which is known only after it ran.
//!
//! Work-conserving: one client alone is served without rounds (a single client, like a
//! load test from one address, is never slowed by the bookkeeping), and a round where
//! every client is in debt is fast-forwarded rather than spun through.
//!
//! Invariants: every pushed item comes out exactly once; a flow is in the ring iff its
//! queue is not empty; `len` is the sum of the queues' lengths.

use std::collections::{HashMap, VecDeque};

/// Who a request comes from ([`crate::Request::client_key`]).
type ClientKey = u64;

struct Flow<T> {
    queue: VecDeque<T>,
    deficit: i64,
}

/// Deficit round robin over clients: items queue per client, and clients are served in
/// turn, each a quantum of cost per visit. Not synchronised: the owner locks it. The
/// engine uses it for its workers' run queues and its CPU pool; a front that queues
/// requests of its own (the Node front's heavy threads) uses it with
/// [`crate::Request::client_key`] so that those queues share per client too.
pub struct Drr<T> {
    flows: HashMap<ClientKey, Flow<T>>,
    /// Clients with items, in service order.
    ring: VecDeque<ClientKey>,
    quantum: i64,
    len: usize,
}

impl<T> Drr<T> {
    /// `quantum`: what one visit adds to a client's deficit, in the unit of the costs
    /// (turns for I/O workers, microseconds for the CPU pool); at least 1.
    pub fn new(quantum: u64) -> Drr<T> {
        Drr { flows: HashMap::new(), ring: VecDeque::new(), quantum: quantum.clamp(1, i64::MAX as u64) as i64, len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Clients with items waiting.
    #[cfg(test)]
    fn clients(&self) -> usize {
        self.ring.len()
    }

    /// Queues `item` behind `key`'s others; a client new to the ring joins at its back.
    pub fn push(&mut self, key: ClientKey, item: T) {
        if self.ring.len() == 1 && self.ring[0] != key {
            // Company arrives: what the client alone used was nobody else's, so it
            // owes nothing for it (work-conserving, and no penalty after the fact).
            let alone = self.flows.get_mut(&self.ring[0]).expect("a client in the ring has a flow");
            alone.deficit = alone.deficit.max(0);
        }
        let flow = self.flows.entry(key).or_insert_with(|| Flow { queue: VecDeque::new(), deficit: 0 });
        if flow.queue.is_empty() {
            self.ring.push_back(key);
        }
        flow.queue.push_back(item);
        self.len += 1;
    }

    /// Hands out one round: each client in the ring gets its quantum of items (one
    /// unit each), in ring order. A client alone gets up to `alone` items (at least
    /// its quantum): nobody else is waiting, but the caller may not yet know of others
    /// who are (an I/O worker between two polls), so it says how far to go.
    pub fn round(&mut self, alone: usize, mut out: impl FnMut(T)) {
        if self.ring.len() == 1 {
            let key = self.ring[0];
            let flow = self.flows.get_mut(&key).expect("a client in the ring has a flow");
            let n = flow.queue.len().min(alone.max(self.quantum as usize));
            flow.queue.drain(..n).for_each(&mut out);
            self.len -= n;
            if flow.queue.is_empty() {
                self.ring.clear();
                self.flows.remove(&key);
            }
            return;
        }
        for _ in 0..self.ring.len() {
            let key = self.ring.pop_front().expect("counted clients are in the ring");
            let flow = self.flows.get_mut(&key).expect("a client in the ring has a flow");
            flow.deficit = flow.deficit.max(0) + self.quantum;
            while flow.deficit > 0 {
                let Some(item) = flow.queue.pop_front() else { break };
                flow.deficit -= 1;
                self.len -= 1;
                out(item);
            }
            if flow.queue.is_empty() {
                self.flows.remove(&key);
            } else {
                self.ring.push_back(key);
            }
        }
    }

    /// The next item in DRR order and its client, its deficit charged `cost` (an
    /// estimate; see [`Drr::charge`]).
    pub fn pop(&mut self, cost: u64) -> Option<(ClientKey, T)> {
        if self.ring.len() > 1 && self.ring.iter().all(|k| self.flows[k].deficit <= 0) {
            self.fast_forward();
        }
        loop {
            let key = *self.ring.front()?;
            let flow = self.flows.get_mut(&key).expect("a client in the ring has a flow");
            if flow.deficit > 0 || self.ring.len() == 1 {
                let item = flow.queue.pop_front().expect("a client in the ring has items");
                flow.deficit -= cost.min(i64::MAX as u64) as i64;
                self.len -= 1;
                if flow.queue.is_empty() {
                    self.ring.pop_front();
                    self.flows.remove(&key);
                }
                return Some((key, item));
            }
            // Its turn at the front is over: the next visit brings a fresh quantum.
            flow.deficit += self.quantum;
            self.ring.rotate_left(1);
        }
    }

    /// Corrects a popped item's charge once its real cost is known: `extra` more (or,
    /// negative, less). A client that has left the ring meanwhile is not charged: its
    /// debt goes with its deficit, as DRR forgets an idle client's.
    pub fn charge(&mut self, key: ClientKey, extra: i64) {
        if let Some(flow) = self.flows.get_mut(&key) {
            flow.deficit = flow.deficit.saturating_sub(extra);
        }
    }

    /// Every client in the ring is in debt: give each the quanta that bring the least
    /// indebted one back to credit, at once, instead of spinning through empty visits.
    fn fast_forward(&mut self) {
        let q = self.quantum;
        let rounds = self.ring.iter().map(|k| (-self.flows[k].deficit) / q + 1).min().unwrap_or(0);
        for k in &self.ring {
            let flow = self.flows.get_mut(k).expect("a client in the ring has a flow");
            flow.deficit = flow.deficit.saturating_add(rounds.saturating_mul(q));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take_round(d: &mut Drr<(u64, u32)>) -> Vec<(u64, u32)> {
        let mut out = Vec::new();
        d.round(usize::MAX, |x| out.push(x));
        out
    }

    #[test]
    fn a_round_gives_each_client_its_quantum_whatever_it_queued() {
        let mut d = Drr::new(2);
        for i in 0..200 {
            d.push(99, (99, i));
        }
        for c in 0..32 {
            d.push(c, (c, 0));
        }
        let first = take_round(&mut d);
        // The greedy client (200 ready) gets 2, each polite one its 1.
        assert_eq!(first.iter().filter(|x| x.0 == 99).count(), 2);
        assert_eq!(first.len(), 34);
        assert_eq!(first[..2], [(99, 0), (99, 1)], "within a client, first in first out");
        assert_eq!(d.len(), 198);
        assert_eq!(d.clients(), 1);
        // Alone now: as much as the caller allows, in order.
        let mut some = Vec::new();
        d.round(10, |x| some.push(x));
        assert_eq!(some.len(), 10);
        assert_eq!(d.len(), 188);
        let rest = take_round(&mut d);
        assert_eq!(rest.len(), 188);
        assert!(rest.windows(2).all(|w| w[0].1 < w[1].1));
        assert!(d.is_empty() && d.clients() == 0);
    }

    #[test]
    fn pop_shares_by_cost_not_by_count() {
        // Client 1's items cost 4 each, client 2's cost 1: over a long run both get
        // the same total cost served.
        let mut d = Drr::new(4);
        for i in 0..1000 {
            d.push(1, i);
            d.push(2, i);
        }
        let mut served = [0i64; 3];
        for _ in 0..500 {
            let (k, _) = d.pop(1).unwrap();
            if k == 1 {
                d.charge(1, 3);
                served[1] += 4;
            } else {
                served[2] += 1;
            }
        }
        let (a, b) = (served[1], served[2]);
        assert!((a - b).abs() <= 8, "cost served: client 1 {a}, client 2 {b}");
    }

    #[test]
    fn a_client_alone_is_served_whatever_its_debt() {
        let mut d = Drr::new(1);
        d.push(1, 'a');
        d.push(1, 'b');
        assert_eq!(d.pop(1), Some((1, 'a')));
        d.charge(1, 1_000_000);
        assert_eq!(d.pop(1), Some((1, 'b')), "work-conserving: no one else wants the time");
        assert_eq!(d.pop(1), None);
    }

    #[test]
    fn what_a_client_used_alone_is_not_held_against_it() {
        let mut d = Drr::new(10);
        for i in 0..5 {
            d.push(1, i);
        }
        for _ in 0..3 {
            let (k, _) = d.pop(10).unwrap();
            d.charge(k, 1000);
        }
        d.push(2, 0);
        d.push(2, 1);
        // Client 1 took 3 items alone, at a cost of thousands: once client 2 arrives
        // they share from even, client 1 first (it is ahead in the ring).
        let order: Vec<u64> = std::iter::from_fn(|| d.pop(10).map(|x| x.0)).collect();
        assert_eq!(order, [1, 2, 1, 2]);
    }

    #[test]
    fn debts_are_fast_forwarded_not_spun() {
        let mut d = Drr::new(1);
        for i in 0..3 {
            d.push(1, i);
            d.push(2, i);
        }
        let (k, _) = d.pop(1).unwrap();
        d.charge(k, 1_000_000_000);
        // Client `k` owes a billion units: the other is served until the debt is paid
        // in quanta, which happens in one step, not a billion loops.
        let other = if k == 1 { 2 } else { 1 };
        for _ in 0..3 {
            assert_eq!(d.pop(1).unwrap().0, other);
        }
        assert_eq!(d.pop(1).unwrap().0, k);
    }

    #[test]
    fn every_item_comes_out_once_in_client_order() {
        let mut d = Drr::new(3);
        let mut want: HashMap<u64, Vec<u32>> = HashMap::new();
        let mut seed = 7u64;
        let mut got: HashMap<u64, Vec<u32>> = HashMap::new();
        for i in 0..2000u32 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let key = (seed >> 60) % 5;
            d.push(key, (key, i));
            want.entry(key).or_default().push(i);
            if seed & 3 == 0 {
                if let Some((k, (k2, x))) = d.pop((seed >> 20) % 4 + 1) {
                    assert_eq!(k, k2);
                    got.entry(k).or_default().push(x);
                }
            } else if seed & 31 == 1 {
                d.round(4, |(k, x)| got.entry(k).or_default().push(x));
            }
        }
        while let Some((k, (_, x))) = d.pop(1) {
            got.entry(k).or_default().push(x);
        }
        assert_eq!(got, want);
        assert_eq!(d.len(), 0);
        assert!(d.flows.is_empty() && d.ring.is_empty());
    }
}
