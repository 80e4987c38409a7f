//! The body phase of a connection: a streamed request's body read off the socket and
//! handed to its [`Body`] reader, within the reader's window.
//!
//! The connection is in this phase from a streamed request's head (`Decoded::Head`) to
//! its body's end; the next request's head is decoded only after it, so pipelined
//! requests keep their order. Each step does one thing and lets the turn go round again
//! (collect and write replies, then come back):
//!
//! - the reply is written, or the reader dropped its `Body`: the rest of the body is
//!   *discarded*, up to [`DISCARD_LIMIT`] bytes; a body longer than that (or one whose
//!   client waits for `100 Continue` that was never sent) is not read: the connection
//!   closes after its replies;
//! - the reader asked for data and the client expects `100 Continue` (and every reply
//!   before this request is written): the interim reply goes out;
//! - the reader's window is full: stop (it wakes the connection when it takes data);
//! - else decode what is buffered, or read more.
//!
//! Slow bodies: while the window is open, each `body_timeout` period must bring at
//! least `min_body_rate` x `body_timeout` bytes (and at least one), else the request is
//! answered `408` (unless its handler already began to answer) and the connection
//! closes. A period in which the reader held the window full does not count; then the
//! handler's `reply_timeout` applies, counted from when the window filled (and, once
//! the body is in, from its end).

use std::sync::atomic::Ordering::*;
use std::sync::Arc;

use super::{Conn, Io, Out, Phase, Read};
use crate::frame::{body_reject, BodyDecoder, BodyError, BodyFraming, BodyStep, CONTINUE};
use crate::handler::{Body, BodyShared};
use crate::sync::lock;

/// The most body bytes read and dropped after an early reply (or an abandoned reader)
/// so the connection can go on to its next request; a longer rest closes it instead.
pub(crate) const DISCARD_LIMIT: u64 = 1 << 20;

/// A body being read (the connection's body phase).
pub(super) struct BodyIn {
    /// The request the body belongs to.
    seq: u64,
    decoder: BodyDecoder,
    /// The reader's side; `None` while the rest is being discarded.
    shared: Option<Arc<BodyShared>>,
    expect_continue: bool,
    continue_sent: bool,
    /// Discarding: how many more bytes may be dropped before the connection gives up.
    discard_left: u64,
    /// The reader's window was full at the last look.
    paused: bool,
    /// The slow-body period: when it began (engine ms) and the body bytes then.
    period_start: u64,
    period_bytes: u64,
}

/// What the turn does after a body step.
pub(super) enum BodyNext {
    /// Go round again (collect and write replies, then look at the body again).
    Again,
    /// Nothing to do until the socket or the reader says so.
    Idle,
    /// The read budget is spent: let other connections run.
    Yield,
    /// A read failed: close.
    Close,
}

impl Conn {
    /// Enters the body phase for the request about to be dispatched (sequence
    /// `io.next_seq`), and gives the reader its [`Body`].
    pub(super) fn start_body(self: &Arc<Self>, io: &mut Io, framing: BodyFraming, expect_continue: bool) -> Body {
        let limits = &self.engine.config.limits;
        let decoder = BodyDecoder::new(framing, limits.max_body, limits.max_header);
        let shared = BodyShared::new(Arc::downgrade(self), limits.body_window, decoder.length());
        self.engine.counters.bodies_streamed.fetch_add(1, Relaxed);
        io.body = Some(BodyIn {
            seq: io.next_seq,
            decoder,
            shared: Some(Arc::clone(&shared)),
            expect_continue,
            continue_sent: false,
            discard_left: 0,
            paused: false,
            period_start: self.engine.now_ms(),
            period_bytes: 0,
        });
        Body::new(shared)
    }

    /// One step of the body phase (see the module doc). `budget`: bytes the turn may
    /// still read.
    pub(super) fn body_step(self: &Arc<Self>, io: &mut Io, fd: std::os::fd::RawFd, budget: &mut usize) -> BodyNext {
        let Some(b) = io.body.as_mut() else { return BodyNext::Again };
        if let Some(shared) = &b.shared {
            let answered = io.done_seq > b.seq;
            if answered || shared.abandoned() {
                if answered {
                    shared.finish(Err(BodyError::Closed), Vec::new());
                }
                b.shared = None;
                let rest = b.decoder.length().map(|n| n - b.decoder.total());
                if (b.expect_continue && !b.continue_sent) || rest.is_some_and(|r| r > DISCARD_LIMIT) {
                    // Not worth reading (or never coming): close after the replies.
                    io.body = None;
                    io.advance(Phase::LastReplies);
                    return BodyNext::Again;
                }
                b.discard_left = DISCARD_LIMIT;
            }
        }
        if let Some(shared) = &b.shared {
            if b.expect_continue && !b.continue_sent && io.done_seq == b.seq && shared.asked() {
                b.continue_sent = true;
                io.wbuf.extend_from_slice(CONTINUE);
                self.backlog.fetch_add(CONTINUE.len(), SeqCst);
                return BodyNext::Again;
            }
        }
        let room = match &b.shared {
            Some(shared) => shared.room(),
            None => b.discard_left.min(super::READ_CHUNK as u64) as usize,
        };
        if room == 0 {
            if b.shared.is_none() {
                // Discarded as much as allowed: the connection closes after its replies.
                io.body = None;
                io.advance(Phase::LastReplies);
                return BodyNext::Again;
            }
            if !b.paused {
                // The reader holds the window: from now it has `reply_timeout` to take
                // some (the handler's deadline, checked while paused).
                b.paused = true;
                self.restart_reply_clock(b.seq);
            }
            return BodyNext::Idle;
        }
        if b.paused {
            // The reader held the window; the client was not slow meanwhile.
            b.paused = false;
            b.period_start = self.engine.now_ms();
            b.period_bytes = b.decoder.total();
        }
        // Stepped even with nothing buffered: a length body ends with its last byte.
        {
            match b.decoder.step(&io.rbuf[io.rpos..], room) {
                Ok(BodyStep::Data { used, data }) => {
                    let n = data.len();
                    match &b.shared {
                        // All that was read is body: the buffer itself goes, uncopied.
                        Some(shared) if io.rpos == 0 && data.start == 0 && used == io.rbuf.len() && n > 0 => {
                            shared.push_vec(std::mem::take(&mut io.rbuf))
                        }
                        Some(shared) => shared.push(&io.rbuf[io.rpos..][data]),
                        None => b.discard_left = b.discard_left.saturating_sub(n as u64),
                    }
                    self.engine.counters.body_bytes_in.fetch_add(n as u64, Relaxed);
                    io.rpos = if io.rbuf.is_empty() { 0 } else { io.rpos + used };
                    return BodyNext::Again;
                }
                Ok(BodyStep::Done { used, trailers }) => {
                    io.rpos += used;
                    // The handler's reply deadline counts from the body's end.
                    self.restart_reply_clock(b.seq);
                    if let Some(shared) = &b.shared {
                        shared.finish(Ok(()), trailers);
                    }
                    io.body = None;
                    return BodyNext::Again;
                }
                Err(e) => {
                    self.body_failed(io, e);
                    return BodyNext::Again;
                }
                Ok(BodyStep::NeedMore) => {}
            }
        }
        if !io.want_read {
            return BodyNext::Idle;
        }
        if *budget == 0 {
            return BodyNext::Yield;
        }
        match self.read_step(io, fd, room, budget) {
            Read::Data => BodyNext::Again,
            Read::Eof => {
                self.end_body(io, BodyError::Closed);
                self.peer_gone(false);
                BodyNext::Again
            }
            Read::Blocked => BodyNext::Idle,
            Read::Failed => BodyNext::Close,
        }
    }

    /// The body will not complete: tell its reader, answer in the handler's place if it
    /// has not begun to (413, 400, 408), and close after the replies.
    fn body_failed(&self, io: &mut Io, e: BodyError) {
        let c = &self.engine.counters;
        match e {
            BodyError::TooLarge { .. } => c.bodies_too_large.fetch_add(1, Relaxed),
            BodyError::TooSlow => c.bodies_too_slow.fetch_add(1, Relaxed),
            _ => c.rejected.fetch_add(1, Relaxed),
        };
        let Some(b) = io.body.as_ref() else { return };
        // Answered before the reader hears of it, so its own answer comes second (dropped).
        let r = body_reject(&e);
        let len = r.reply.len();
        let out = if r.reply.is_empty() { Out::Close } else { Out::Write { bytes: r.reply, close: true } };
        if lock(&self.replies).answer_if_pending(b.seq, out) {
            self.backlog.fetch_add(len, SeqCst);
        }
        self.end_body(io, e);
        io.advance(Phase::LastReplies);
    }

    /// Request `seq`'s `reply_timeout` (and its latency) counts from now: a streamed
    /// request's handler cannot be expected to answer before it has the body.
    fn restart_reply_clock(&self, seq: u64) {
        if let Some(meta) = lock(&self.replies).meta_mut(seq) {
            meta.since = std::time::Instant::now();
        }
    }

    /// Leaves the body phase, telling the reader why the body ends here.
    pub(super) fn end_body(&self, io: &mut Io, e: BodyError) {
        if let Some(b) = io.body.take() {
            if let Some(shared) = b.shared {
                shared.finish(Err(e), Vec::new());
            }
        }
    }

    /// The slow-body check, when the connection's deadline passed in the body phase:
    /// true if it handled the deadline (a new period began, or the body was cut).
    pub(super) fn body_deadline_passed(&self, io: &mut Io, now: u64) -> bool {
        let limits = &self.engine.config.limits;
        let Some(b) = io.body.as_mut() else { return false };
        if b.paused {
            return false;
        }
        let period = limits.body_timeout.as_millis() as u64;
        if now < b.period_start + period {
            return true;
        }
        let got = b.decoder.total() - b.period_bytes;
        let need = (limits.min_body_rate.saturating_mul(period) / 1000).max(1);
        if got < need {
            self.body_failed(io, BodyError::TooSlow);
        } else {
            b.period_start = now;
            b.period_bytes = b.decoder.total();
        }
        true
    }

    /// When the body phase's own deadline falls: the end of the slow-body period while
    /// the client is the one to send (`None` when the reader holds the window full:
    /// then the handler's deadlines apply).
    pub(super) fn body_deadline(&self, io: &Io) -> Option<u64> {
        let b = io.body.as_ref()?;
        (!b.paused).then(|| b.period_start + self.engine.config.limits.body_timeout.as_millis() as u64)
    }
}
