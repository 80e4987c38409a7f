//! Hosting unchanged apps on JS worker threads (`corral.threads`): a handoff engine
//! accepts, and each thread *pulls* one connection at a time when its loop is free.
//!
//! Threads wait in slots. A slot is idle once its thread asked and found nothing; a
//! woken slot is busy until it asks again. When connections start waiting (the
//! engine's waker, on an acceptor thread) the two idle slots with the fewest open
//! connections are woken (two, because an idle slot's thread may since have become
//! busy in JS: the other takes the connection meanwhile); a thread that takes one
//! while more wait wakes the next idle slot. So a burst onto idle threads spreads
//! over all of them, and a thread busy in JS takes nothing. The
//! engine's own queue stays the only queue: while threads do not pull, its capacity
//! pauses the acceptors and the kernel backlog absorbs.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::*};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;

use crate::{err, fail, Accepted, Wake};

#[derive(Default)]
struct Slot {
    /// The attached thread's wake-up; none while no thread holds the slot.
    wake: Option<Arc<Wake>>,
    /// Which attachment holds the slot: a port of an earlier (dead) thread is stale.
    generation: u32,
    idle: bool,
    live: u64,
    taken: u64,
    restarts: u64,
}

pub struct Dispatch {
    pub id: u32,
    engine: Arc<corral_core::Engine>,
    slots: Mutex<Vec<Slot>>,
    /// Signalled on every take, for [`Dispatch::wait_taken`].
    taken: Condvar,
    closed: AtomicBool,
}

static NEXT: AtomicU32 = AtomicU32::new(1);
static REGISTRY: Mutex<Vec<(u32, Weak<Dispatch>)>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The idle slot with the fewest open connections, marked busy: the caller wakes it.
fn pick_idle(slots: &mut [Slot]) -> Option<Arc<Wake>> {
    let s = slots.iter_mut().filter(|s| s.idle && s.wake.is_some()).min_by_key(|s| s.live)?;
    s.idle = false;
    s.wake.clone()
}

fn wake(w: Option<Arc<Wake>>) {
    if let Some(w) = w {
        let _ = w.call((), ThreadsafeFunctionCallMode::NonBlocking);
    }
}

impl Dispatch {
    /// Dispatches the connections `engine` accepts over `threads` slots.
    pub fn new(engine: Arc<corral_core::Engine>, threads: usize) -> Result<Arc<Dispatch>> {
        let d = Arc::new(Dispatch {
            id: NEXT.fetch_add(1, Relaxed),
            engine,
            slots: Mutex::new((0..threads).map(|_| Slot::default()).collect()),
            taken: Condvar::new(),
            closed: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&d);
        d.engine
            .set_handoff_waker(move || {
                if let Some(d) = weak.upgrade() {
                    // Two: should the least-loaded be busy in JS (idle when it last
                    // asked), the other takes the connection meanwhile.
                    let (a, b) = {
                        let mut slots = lock(&d.slots);
                        (pick_idle(&mut slots), pick_idle(&mut slots))
                    };
                    wake(a);
                    wake(b);
                }
            })
            .map_err(err)?;
        let mut reg = lock(&REGISTRY);
        reg.retain(|(_, w)| w.strong_count() > 0);
        reg.push((d.id, Arc::downgrade(&d)));
        Ok(d)
    }

    fn find(id: u32) -> Option<Arc<Dispatch>> {
        lock(&REGISTRY).iter().find(|(i, _)| *i == id).and_then(|(_, w)| w.upgrade())
    }

    /// The thread in `slot` died or was replaced: its port goes stale and its
    /// connections (closed with it) no longer count.
    pub fn detach(&self, slot: usize) {
        if let Some(s) = lock(&self.slots).get_mut(slot) {
            s.wake = None;
            s.idle = false;
            s.live = 0;
            s.generation = s.generation.wrapping_add(1);
        }
    }

    /// Closing: stops accepting, then waits (until `timeout`) for the threads to take
    /// every connection already accepted, so none is closed unclaimed.
    pub fn hand_out_the_rest(&self, timeout: Duration) {
        if self.engine.stop_accepting().is_err() {
            return;
        }
        let deadline = Instant::now().checked_add(timeout);
        let mut slots = lock(&self.slots);
        while self.engine.waiting().unwrap_or(0) > 0 {
            // Threads that are idle may have missed nothing, but wake them all to be sure.
            for s in slots.iter_mut().filter(|s| s.idle) {
                s.idle = false;
                wake(s.wake.clone());
            }
            let left = deadline.map_or(Duration::from_secs(3600), |d| d.saturating_duration_since(Instant::now()));
            if left.is_zero() || slots.iter().all(|s| s.wake.is_none()) {
                return;
            }
            slots = self.taken.wait_timeout(slots, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// The engine closed: every waiting thread learns it from its next take.
    pub fn close(&self) {
        self.closed.store(true, Release);
        let waiting: Vec<_> = lock(&self.slots)
            .iter_mut()
            .filter(|s| s.idle)
            .filter_map(|s| {
                s.idle = false;
                s.wake.clone()
            })
            .collect();
        for w in waiting {
            wake(Some(w));
        }
    }

    pub fn stats(&self) -> Vec<ThreadSlotStats> {
        lock(&self.slots)
            .iter()
            .map(|s| ThreadSlotStats {
                connections: s.taken as f64,
                open: s.live as f64,
                restarts: s.restarts.saturating_sub(1) as f64,
            })
            .collect()
    }
}

/// One thread's share of the connections.
#[napi(object)]
pub struct ThreadSlotStats {
    /// Connections this slot's threads took.
    pub connections: f64,
    /// Connections its current thread holds open.
    pub open: f64,
    /// Times a thread in this slot was replaced.
    pub restarts: f64,
}

/// What `take` found.
#[napi(object)]
pub struct ThreadNext {
    pub conn: Option<Accepted>,
    /// The engine closed (or this thread was replaced): stop asking.
    pub closed: bool,
}

/// A worker thread's end of a `threads` engine.
#[napi]
pub struct ThreadPort {
    dispatch: Arc<Dispatch>,
    slot: usize,
    generation: u32,
}

#[napi]
impl ThreadPort {
    /// Takes `slot` of the engine with this id; `onWork` is called when a connection
    /// waits while this thread is idle.
    #[napi(factory)]
    pub fn attach(engine_id: u32, slot: u32, on_work: Function<(), ()>) -> Result<ThreadPort> {
        let dispatch = Dispatch::find(engine_id)
            .ok_or_else(|| fail("CORRAL_STATE", format!("no open engine with id {engine_id}")))?;
        let wake: Wake = on_work.build_threadsafe_function().weak::<true>().build()?;
        let slot = slot as usize;
        let generation = {
            let mut slots = lock(&dispatch.slots);
            let s = slots.get_mut(slot).ok_or_else(|| fail("CORRAL_INVALID_ARGUMENT", format!("no slot {slot}")))?;
            s.generation = s.generation.wrapping_add(1);
            s.wake = Some(Arc::new(wake));
            s.idle = false;
            s.live = 0;
            s.restarts += 1;
            s.generation
        };
        Ok(ThreadPort { dispatch, slot, generation })
    }

    /// One waiting connection, or none (then `onWork` is called when one comes).
    #[napi]
    pub fn take(&self) -> Result<ThreadNext> {
        let d = &self.dispatch;
        let (conn, next) = {
            let mut slots = lock(&d.slots);
            if d.closed.load(Acquire) || slots[self.slot].generation != self.generation {
                return Ok(ThreadNext { conn: None, closed: true });
            }
            let got = d.engine.take(1).map_err(err)?.pop();
            let me = &mut slots[self.slot];
            let Some(a) = got else {
                me.idle = true;
                return Ok(ThreadNext { conn: None, closed: false });
            };
            me.live += 1;
            me.taken += 1;
            d.taken.notify_all();
            // More wait: wake another idle thread rather than take them all here.
            let next = if d.engine.waiting().unwrap_or(0) > 0 { pick_idle(&mut slots) } else { None };
            (a, next)
        };
        wake(next);
        Ok(ThreadNext { conn: Some(conn.into()), closed: false })
    }

    /// A connection this thread took has closed.
    #[napi]
    pub fn released(&self) {
        let mut slots = lock(&self.dispatch.slots);
        let me = &mut slots[self.slot];
        if me.generation == self.generation {
            me.live = me.live.saturating_sub(1);
        }
    }
}
