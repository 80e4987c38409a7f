//! A connection's reply slots: one per dispatched request, numbered in request order,
//! filled by responders from any thread in any order, taken by the runner strictly in
//! order. A reply is whole (one `complete`) or streamed (`append`ed parts, then a
//! `complete` that ends it); the runner takes the oldest slot's parts as they come and
//! moves on to the next slot once that one is complete. A slot is completed at most
//! once; anything for a slot that is complete, gone, or whose connection closed is
//! dropped.

use std::collections::VecDeque;

pub(crate) struct Slot<R, M> {
    /// Output not yet taken by the runner, oldest first.
    parts: VecDeque<R>,
    /// The reply is complete: nothing more will be added.
    pub done: bool,
    /// Parts of a streamed reply have come: it is under way, so no deadline reply can
    /// replace it any more.
    pub streaming: bool,
    /// What the runner needs to know about the request (its start, its class).
    pub meta: M,
}

impl<R, M> Slot<R, M> {
    /// Completes the slot in the handler's place (a deadline reply).
    pub fn fill(&mut self, out: R) {
        self.parts.push_back(out);
        self.done = true;
    }
}

pub(crate) struct ReplySlots<R, M> {
    base: u64,
    slots: VecDeque<Slot<R, M>>,
    closed: bool,
}

/// What a completion or a part did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Completed {
    /// Went to the oldest slot: the runner can write now.
    Head,
    /// Went to a later slot: it waits for the ones before it.
    Behind,
    /// Dropped: the slot is complete, gone, or the connection closed.
    Dropped,
}

/// What the runner takes from the oldest slot.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ready<R, M> {
    /// A part of a reply still under way.
    Part(R),
    /// The reply's last output; the slot is gone and the next one is the oldest.
    Last(R, M),
}

impl<R, M> ReplySlots<R, M> {
    pub fn new() -> ReplySlots<R, M> {
        ReplySlots { base: 0, slots: VecDeque::new(), closed: false }
    }

    /// Opens the next slot (already complete with `out`, if given); returns its
    /// sequence number.
    pub fn push(&mut self, out: Option<R>, meta: M) -> u64 {
        let done = out.is_some();
        self.slots.push_back(Slot { parts: out.into_iter().collect(), done, streaming: false, meta });
        self.base + self.slots.len() as u64 - 1
    }

    fn open(&mut self, seq: u64) -> Option<&mut Slot<R, M>> {
        if self.closed {
            return None;
        }
        let slot = seq.checked_sub(self.base).and_then(|i| self.slots.get_mut(i as usize))?;
        (!slot.done).then_some(slot)
    }

    fn position(&self, seq: u64) -> Completed {
        if seq == self.base {
            Completed::Head
        } else {
            Completed::Behind
        }
    }

    /// The reply's last output: the slot is complete.
    pub fn complete(&mut self, seq: u64, out: R) -> Completed {
        let Some(slot) = self.open(seq) else { return Completed::Dropped };
        slot.fill(out);
        self.position(seq)
    }

    /// A part of a streamed reply; more follow, then a `complete`.
    pub fn append(&mut self, seq: u64, part: R) -> Completed {
        let Some(slot) = self.open(seq) else { return Completed::Dropped };
        slot.parts.push_back(part);
        slot.streaming = true;
        self.position(seq)
    }

    /// What the runner keeps about request `seq`, while its slot is open.
    pub fn meta_mut(&mut self, seq: u64) -> Option<&mut M> {
        self.open(seq).map(|s| &mut s.meta)
    }

    /// Completes slot `seq` in the handler's place if its handler has not begun to
    /// answer (neither complete nor streaming): true if it did.
    pub fn answer_if_pending(&mut self, seq: u64, out: R) -> bool {
        match self.open(seq) {
            Some(slot) if !slot.streaming => {
                slot.fill(out);
                true
            }
            _ => false,
        }
    }

    /// Takes the oldest slot's next output, if there is one.
    pub fn pop_ready(&mut self) -> Option<Ready<R, M>> {
        let head = self.slots.front_mut()?;
        let out = head.parts.pop_front()?;
        if !(head.done && head.parts.is_empty()) {
            return Some(Ready::Part(out));
        }
        let s = self.slots.pop_front().expect("checked");
        self.base += 1;
        Some(Ready::Last(out, s.meta))
    }

    /// The oldest request still waiting for its handler to answer (not complete, and
    /// not streaming).
    pub fn oldest_pending(&self) -> Option<&Slot<R, M>> {
        self.slots.iter().find(|s| !s.done && !s.streaming)
    }

    /// Requests still waiting for their handlers, oldest first.
    pub fn pending_mut(&mut self) -> impl Iterator<Item = &mut Slot<R, M>> {
        self.slots.iter_mut().filter(|s| !s.done && !s.streaming)
    }

    /// Closes for good; returns how many requests lose (some of) their reply.
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

    fn drain(r: &mut ReplySlots<&'static str, ()>) -> Vec<&'static str> {
        std::iter::from_fn(|| {
            r.pop_ready().map(|x| match x {
                Ready::Part(o) | Ready::Last(o, ()) => o,
            })
        })
        .collect()
    }

    #[test]
    fn in_order_once_whatever_the_completion_order() {
        let mut r: ReplySlots<&str, ()> = ReplySlots::new();
        assert_eq!((r.push(None, ()), r.push(None, ()), r.push(Some("c"), ())), (0, 1, 2));
        assert_eq!(r.complete(1, "b"), Completed::Behind);
        assert_eq!(r.pop_ready(), None, "b waits for a");
        assert_eq!(r.complete(1, "again"), Completed::Dropped, "a slot is filled once");
        assert_eq!(r.complete(0, "a"), Completed::Head);
        assert_eq!(drain(&mut r), ["a", "b", "c"]);
        assert_eq!(r.complete(0, "late"), Completed::Dropped, "answered and gone");
        r.push(None, ());
        assert_eq!(r.close(), 1);
        assert_eq!(r.complete(3, "after close"), Completed::Dropped);
    }

    #[test]
    fn a_streamed_reply_goes_out_part_by_part_and_holds_back_the_next() {
        let mut r: ReplySlots<&str, ()> = ReplySlots::new();
        r.push(None, ());
        r.push(None, ());
        assert_eq!(r.complete(1, "next"), Completed::Behind);
        assert_eq!(r.append(0, "head"), Completed::Head);
        assert!(r.oldest_pending().is_none(), "a stream under way waits for no deadline; 1 is complete");
        assert_eq!(r.pop_ready(), Some(Ready::Part("head")));
        assert_eq!(r.pop_ready(), None, "the next reply waits for the stream to end");
        r.append(0, "p1");
        r.append(0, "p2");
        assert_eq!(r.complete(0, "end"), Completed::Head);
        assert_eq!(r.append(0, "late"), Completed::Dropped, "nothing after the end");
        assert_eq!(drain(&mut r), ["p1", "p2", "end", "next"]);
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
                    while let Some(Ready::Last(out, ()) | Ready::Part(out)) = lock(&slots).pop_ready() {
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
