//! A worker's runnable connections: the stealable FIFO deque the loop runs from and
//! siblings steal from, and, with `fair_share`, the clients' queues that feed it.
//!
//! With fair shares a connection made runnable on this worker (by its readiness, a
//! wake-up from another thread, or the end of a turn that used its budget) waits in its
//! client's queue; when the deque runs dry, one round of deficit round robin
//! ([`crate::fair::drr`]) moves each waiting client's quantum of connections into it.
//! So a client with 200 ready connections gets [`IO_QUANTUM`] turns per round, as one
//! with a single connection does, and the polite clients' requests wait behind a few
//! of its turns rather than all of them. A client alone gets everything at once.
//! Siblings steal from the released round (whole rounds keep their shares: a thief
//! takes some of each client's turns, never a client's queue ahead of the others).
//!
//! Invariants: a connection is in at most one of the two (its task state lets one
//! scheduler queue it); the deque is empty whenever a round is released.

use std::sync::Arc;

use crossbeam_deque::{Steal, Worker};

use crate::conn::Conn;
use crate::fair::drr::Drr;
use crate::sched::steal;
use crate::worker::Task;

/// Turns per client per round: one turn serves one request of a polite connection, or
/// one of a pipelining one (a turn yields once more input is buffered).
pub(crate) const IO_QUANTUM: u64 = 1;

pub(crate) struct RunQueue {
    pub local: Worker<Task>,
    fair: Option<Drr<Arc<Conn>>>,
}

impl RunQueue {
    /// `fair`: share by client (`fair_share`); otherwise a plain FIFO deque.
    pub fn new(local: Worker<Task>, fair: bool) -> RunQueue {
        RunQueue { local, fair: fair.then(|| Drr::new(IO_QUANTUM)) }
    }

    /// Queues a runnable connection.
    pub fn push(&mut self, conn: Arc<Conn>) {
        match &mut self.fair {
            Some(f) => f.push(conn.client_key(), conn),
            None => self.local.push(Task::Conn(conn)),
        }
    }

    /// The next task: from the deque, or, when it is dry, from the next round. A
    /// client alone in the round gets up to `alone` turns: as many as the worker will
    /// run before it polls again (others may be ready and not yet seen).
    pub fn pop(&mut self, alone: usize) -> Option<Task> {
        if let Some(t) = self.local.pop() {
            return Some(t);
        }
        let RunQueue { local, fair } = self;
        let fair = fair.as_mut().filter(|f| !f.is_empty())?;
        fair.round(alone, |c| local.push(Task::Conn(c)));
        local.pop()
    }

    /// Takes what other threads sent (`inbox`). Without fair shares, a batch moves to
    /// the deque and one task comes back. With them, woken connections join their
    /// clients' queues (for the next round) and only a new connection comes back, to
    /// be registered; `None` once the inbox is empty.
    pub fn take_inbox(&mut self, inbox: &crossbeam_deque::Injector<Task>) -> Option<Task> {
        if self.fair.is_none() {
            return steal::from_injector(inbox, &self.local);
        }
        loop {
            match inbox.steal() {
                Steal::Success(Task::Conn(c)) => self.push(c),
                Steal::Success(new) => return Some(new),
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    /// Whether fair shares are on (the clients' queues exist).
    pub fn is_fair(&self) -> bool {
        self.fair.is_some()
    }

    /// Connections wait their round in the clients' queues.
    pub fn waiting(&self) -> bool {
        self.fair.as_ref().is_some_and(|f| !f.is_empty())
    }

    /// Runnable tasks, in the deque and waiting their round.
    pub fn len(&self) -> usize {
        self.local.len() + self.fair.as_ref().map_or(0, Drr::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
