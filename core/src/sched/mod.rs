//! The scheduler's parts, shared by the I/O workers and the CPU pool.
//!
//! - [`idle`]: who is searching for work and who is parked; wakes one parked thread
//!   only when nobody is already searching, and caps searchers at half the threads.
//! - [`steal`]: the find-task steps over `crossbeam-deque` (injector batch, then
//!   siblings from a random start), retrying on `Steal::Retry`.
//!
//! Parking itself differs (I/O workers block in `epoll_wait`, CPU threads in
//! `thread::park`), so each owner does its own and reports through [`idle::Idle`].

pub(crate) mod idle;
pub(crate) mod steal;
