//! The find-task steps over crossbeam-deque, after the crate's canonical loop: take a
//! batch from an injector into the local deque, or steal a batch from a sibling chosen
//! from a random start, retrying while any source answers `Steal::Retry`.

use std::cell::Cell;

use crossbeam_deque::{Injector, Steal, Stealer, Worker};

/// A cheap per-thread random start (xorshift), so thieves do not all hit sibling 0.
pub(crate) struct Rng(Cell<u64>);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(Cell::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1))
    }
    pub fn below(&self, n: usize) -> usize {
        let mut x = self.0.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.set(x);
        (x % n.max(1) as u64) as usize
    }
}

/// Moves a batch from `injector` into `local` and returns one task.
pub(crate) fn from_injector<T>(injector: &Injector<T>, local: &Worker<T>) -> Option<T> {
    loop {
        match injector.steal_batch_and_pop(local) {
            Steal::Success(t) => return Some(t),
            Steal::Empty => return None,
            Steal::Retry => continue,
        }
    }
}

/// What a steal pass took: the task to run now and how many tasks moved in all.
pub(crate) struct Stolen<T> {
    pub task: T,
    pub moved: usize,
}

/// A thread whose queues others may steal from: its deque, and an inbox of tasks sent
/// to it.
pub(crate) trait Sibling<T> {
    fn deque(&self) -> &Stealer<T>;
    fn inbox(&self) -> &Injector<T>;
}

impl<T> Sibling<T> for (&Stealer<T>, &Injector<T>) {
    fn deque(&self) -> &Stealer<T> {
        self.0
    }
    fn inbox(&self) -> &Injector<T> {
        self.1
    }
}

/// Steals half (at most 32) of one sibling's tasks, trying siblings from a random start.
/// `skip` is the caller's own index.
pub(crate) fn from_siblings<T, S: Sibling<T>>(
    siblings: &[S],
    skip: usize,
    local: &Worker<T>,
    rng: &Rng,
) -> Option<Stolen<T>> {
    let n = siblings.len();
    if n <= 1 {
        return None;
    }
    loop {
        let mut retry = false;
        let start = rng.below(n);
        for k in 0..n {
            let i = (start + k) % n;
            if i == skip {
                continue;
            }
            let before = local.len();
            // One source at a time: a second steal made eagerly would take tasks that
            // are then dropped with its result.
            for from_inbox in [false, true] {
                let sib = &siblings[i];
                let attempt = if from_inbox {
                    sib.inbox().steal_batch_and_pop(local)
                } else {
                    sib.deque().steal_batch_and_pop(local)
                };
                match attempt {
                    Steal::Success(task) => {
                        return Some(Stolen { task, moved: local.len() - before + 1 });
                    }
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
        }
        if !retry {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steals_half_from_a_sibling() {
        let a = Worker::new_fifo();
        for i in 0..10 {
            a.push(i);
        }
        let inbox_a = Injector::new();
        let inbox_b = Injector::new();
        let sa = a.stealer();
        let b: Worker<i32> = Worker::new_fifo();
        let sb = b.stealer();
        let sib = [(&sa, &inbox_a), (&sb, &inbox_b)];
        let got = from_siblings(&sib, 1, &b, &Rng::new(7)).expect("work is there");
        assert_eq!(got.task, 0, "oldest first");
        assert_eq!(got.moved, 5, "half of ten");
        assert_eq!(a.len(), 5);
    }

    #[test]
    fn stealing_from_the_deque_leaves_the_inbox_alone() {
        let a = Worker::new_fifo();
        a.push(1);
        let inbox_a = Injector::new();
        inbox_a.push(2);
        let inbox_b = Injector::new();
        let sa = a.stealer();
        let b: Worker<i32> = Worker::new_fifo();
        let sb = b.stealer();
        let sib = [(&sa, &inbox_a), (&sb, &inbox_b)];
        assert_eq!(from_siblings(&sib, 1, &b, &Rng::new(3)).map(|s| s.task), Some(1));
        assert_eq!(from_siblings(&sib, 1, &b, &Rng::new(3)).map(|s| s.task), Some(2), "not lost");
    }

    #[test]
    fn injector_batch() {
        let inj = Injector::new();
        for i in 0..100 {
            inj.push(i);
        }
        let w = Worker::new_fifo();
        assert_eq!(from_injector(&inj, &w), Some(0));
        assert!(!w.is_empty());
    }
}
