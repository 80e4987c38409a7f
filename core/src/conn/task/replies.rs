//! A connection's reply slots: one per dispatched request, numbered in request order,
//! filled by responders from any thread in any order, taken by the runner strictly in
//! order. A slot is filled at most once; a completion for a slot that is gone (already
//! answered, or the connection closed) is dropped.

use std::collections::VecDeque;

pub(crate) struct Slot<R, M> {
    /// The reply, once there is one.
    pub out: Option<R>,
    /// What the runner needs to know about the request (its start, its class).
    pub meta: M,
}

pub(crate) struct ReplySlots<R, M> {
    base: u64,
    slots: VecDeque<Slot<R, M>>,
    closed: bool,
}

/// What a completion did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Completed {
    /// Filled the oldest slot: the runner can write now.
    Head,
    /// Filled a later slot: it waits for the ones before it.
    Behind,
    /// Dropped: the slot was already filled, is gone, or the connection closed.
    Dropped,
}

impl<R, M> ReplySlots<R, M> {
    pub fn new() -> ReplySlots<R, M> {
        ReplySlots { base: 0, slots: VecDeque::new(), closed: false }
    }

    /// Opens the next slot; returns its sequence number.
    pub fn push(&mut self, out: Option<R>, meta: M) -> u64 {
        self.slots.push_back(Slot { out, meta });
        self.base + self.slots.len() as u64 - 1
    }

    pub fn complete(&mut self, seq: u64, out: R) -> Completed {
        if self.closed {
            return Completed::Dropped;
        }
        let Some(slot) = seq.checked_sub(self.base).and_then(|i| self.slots.get_mut(i as usize)) else {
            return Completed::Dropped;
        };
        if slot.out.is_some() {
            return Completed::Dropped;
        }
        slot.out = Some(out);
        if seq == self.base {
            Completed::Head
        } else {
            Completed::Behind
        }
    }

    /// Takes the oldest slot if its reply is there.
    pub fn pop_ready(&mut self) -> Option<(R, M)> {
        if !self.slots.front().is_some_and(|s| s.out.is_some()) {
            return None;
        }
        let s = self.slots.pop_front().expect("checked");
        self.base += 1;
        Some((s.out.expect("checked"), s.meta))
    }

    /// The oldest unanswered slot.
    pub fn oldest_pending(&self) -> Option<&Slot<R, M>> {
        self.slots.iter().find(|s| s.out.is_none())
    }

    /// Unanswered slots, oldest first.
    pub fn pending_mut(&mut self) -> impl Iterator<Item = &mut Slot<R, M>> {
        self.slots.iter_mut().filter(|s| s.out.is_none())
    }

    /// Closes for good; returns how many requests lose their reply.
    pub fn close(&mut self) -> usize {
        self.closed = true;
        let n = self.slots.len();
        self.slots.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_once_whatever_the_completion_order() {
        let mut r: ReplySlots<&str, ()> = ReplySlots::new();
        assert_eq!((r.push(None, ()), r.push(None, ()), r.push(Some("c"), ())), (0, 1, 2));
        assert_eq!(r.complete(1, "b"), Completed::Behind);
        assert_eq!(r.pop_ready(), None, "b waits for a");
        assert_eq!(r.complete(1, "again"), Completed::Dropped, "a slot is filled once");
        assert_eq!(r.complete(0, "a"), Completed::Head);
        let got: Vec<_> = std::iter::from_fn(|| r.pop_ready().map(|(o, _)| o)).collect();
        assert_eq!(got, ["a", "b", "c"]);
        assert_eq!(r.complete(0, "late"), Completed::Dropped, "answered and gone");
        r.push(None, ());
        assert_eq!(r.close(), 1);
        assert_eq!(r.complete(3, "after close"), Completed::Dropped);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::conn::task::state::TaskState;
    use crate::sync::model::{lock, Mutex};
    use loom::sync::atomic::{AtomicUsize, Ordering::*};
    use loom::sync::Arc;

    /// Two responders complete a connection's requests from two threads, in either
    /// order, while the runner collects: every reply is written exactly once, in
    /// request order, and the one that becomes writable last is not left behind (its
    /// completer queues the task, or the running runner is told to look again).
    #[test]
    fn replies_from_any_thread_come_out_once_in_order() {
        loom::model(|| {
            let slots = Arc::new(Mutex::new(ReplySlots::<u64, ()>::new()));
            {
                let mut s = lock(&slots);
                s.push(None, ());
                s.push(None, ());
            }
            let state = Arc::new(TaskState::new(false, 0));
            let queued = Arc::new(AtomicUsize::new(0));
            let responders: Vec<_> = [1u64, 0]
                .into_iter()
                .map(|seq| {
                    let (slots, state, queued) = (Arc::clone(&slots), Arc::clone(&state), Arc::clone(&queued));
                    loom::thread::spawn(move || {
                        let done = lock(&slots).complete(seq, seq);
                        if done == Completed::Head && state.try_schedule() {
                            queued.fetch_add(1, AcqRel);
                        }
                    })
                })
                .collect();
            let mut written = Vec::new();
            let run = |written: &mut Vec<u64>| {
                state.start();
                loop {
                    while let Some((out, ())) = lock(&slots).pop_ready() {
                        written.push(out);
                    }
                    if state.try_idle() {
                        break;
                    }
                }
            };
            // The runner serves the task each time it is queued, while responders run.
            while queued.load(Acquire) > 0 {
                queued.fetch_sub(1, AcqRel);
                run(&mut written);
            }
            for r in responders {
                r.join().unwrap();
            }
            while queued.load(Acquire) > 0 {
                queued.fetch_sub(1, AcqRel);
                run(&mut written);
            }
            assert_eq!(written, vec![0, 1], "each reply once, in request order");
        });
    }
}
