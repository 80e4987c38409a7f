//! The websocket phase of a connection: after a `101`, the client's bytes go through the
//! websocket decoder instead of the HTTP framer, and the upgrade request's reply slot
//! carries every frame the server sends (so the `101` goes first and frames keep the
//! order they were queued in, from any thread).
//!
//! The connection gets here in two steps. A request that asks for a websocket (a valid
//! [`Offer`]) is dispatched and the connection frames nothing more (`Io::upgrade_wait`)
//! until its handler decides: an ordinary reply and the connection goes on as HTTP;
//! [`Conn::upgrade`] and the next turn enters this phase and tells the handler `open`.
//!
//! Each step decodes what is buffered (messages, pings, the close frame), reads more,
//! and answers what the protocol asks (pong, the close reply) — within the turn's
//! budget, and not at all while the app paused reading or the client does not read
//! what is sent (`write_high_water`). The close handshake: a client's close is answered
//! and the connection closes once that is written; a server's close waits up to
//! `ws_ping_timeout` for the client's. Timers (keep-alive ping and its timeout, idle,
//! the close wait) are the connection's deadline while in this phase.
//!
//! [`Offer`]: crate::frame::ws::Offer

use std::sync::atomic::Ordering::*;
use std::sync::Arc;

use super::{Conn, Io, Phase, Read, RUNNING_CONN};
use crate::frame::ws::{
    accept_response, check, encode_close, encode_control, negotiate_deflate, Compression, Decoder, Event, Fail, Kind,
    Offer, OpCode,
};
use crate::frame::{Payload, Reply, ReplyCtx, Response};
use crate::handler::ws::{Accept, Message, WebSocket, WsHandler, WsShared, CLOSED, CLOSING, OPEN};
use crate::sync::lock;

/// A websocket being served (the connection's websocket phase).
pub(super) struct WsIn {
    shared: Arc<WsShared>,
    decoder: Decoder,
    /// When the client last sent a frame (engine ms): the keep-alive ping's clock.
    last_frame: u64,
    /// When the last data message went either way that this side saw: the idle clock.
    last_message: u64,
    /// A keep-alive ping is out, since then.
    ping_sent: Option<u64>,
    /// The server's close frame is out, since then.
    close_sent: Option<u64>,
}

/// What the turn does after a websocket step.
pub(super) enum WsNext {
    /// Go round again (collect and write, then come back).
    Again,
    /// Nothing to do until the socket, the app or a timer says so.
    Idle,
    /// The turn's budget is spent.
    Yield,
    /// Close the connection now.
    Close,
}

impl Conn {
    /// Accepts the upgrade of request `seq`: the `101` goes into its reply slot, and the
    /// connection enters the websocket phase at its next turn.
    pub(crate) fn upgrade(
        self: &Arc<Self>,
        seq: u64,
        offer: &Offer,
        accept: Accept,
        handler: Arc<dyn WsHandler>,
    ) -> WebSocket {
        let limits = &self.engine.config.limits;
        let deflate = (limits.ws_deflate && !accept.no_deflate && !offer.extensions.is_empty())
            .then(|| negotiate_deflate(&offer.extensions))
            .flatten();
        let compression = match &deflate {
            Some((d, _)) => Compression::Deflate { window_bits: d.server_max_window_bits },
            None => Compression::Off,
        };
        let reply = accept_response(
            &offer.key,
            accept.protocol.as_deref(),
            deflate.as_ref().map(|(_, answer)| answer.as_str()),
            &accept.headers,
        );
        let shared = Arc::new(WsShared::new(
            self,
            Arc::clone(&self.engine),
            seq,
            self.client(),
            accept.protocol,
            compression,
            handler,
        ));
        // The 101 is queued before the phase can begin, so nothing sent from `open` on
        // can overtake it.
        self.append(seq, reply);
        *lock(&self.upgraded) = Some((Arc::clone(&shared), deflate.map(|(d, _)| d)));
        self.engine.counters.ws.opened.fetch_add(1, Relaxed);
        self.wake_to_read();
        WebSocket(shared)
    }

    /// The websocket offer a request makes, if it asks for one: `Err` with the refusal
    /// to send for a malformed handshake (counted).
    pub(super) fn ws_offer(&self, payload: &Payload, rctx: &ReplyCtx) -> Result<Option<Arc<Offer>>, Vec<u8>> {
        let Payload::Http(req) = payload else { return Ok(None) };
        if !self.engine.config.limits.ws {
            return Ok(None);
        }
        match check(req) {
            None => Ok(None),
            Some(Ok(offer)) => Ok(Some(Arc::new(offer))),
            Some(Err(e)) => {
                self.engine.counters.ws.refused.fetch_add(1, Relaxed);
                let mut r = Response::new(e.status).header("content-type", "text/plain");
                if e.status == 426 {
                    r = r.header("sec-websocket-version", "13");
                }
                let ctx = ReplyCtx { close: true, ..*rctx };
                let body = format!("{}\n", e.message);
                Err(ctx.protocol.encode(Reply::Http(r.body(body)), &ctx).unwrap_or_default())
            }
        }
    }

    /// Bytes handed to the connection and not yet written.
    pub(crate) fn backlog(&self) -> usize {
        self.backlog.load(SeqCst)
    }

    /// Waiting for the handler's decision on an upgrade: `None` while it has not
    /// decided; `Some(true)` when it accepted (the websocket phase has begun and `open`
    /// was called: go round to write what it sent); `Some(false)` when it answered as
    /// HTTP (framing goes on).
    pub(super) fn upgrade_decided(&self, io: &mut Io) -> Option<bool> {
        let seq = io.upgrade_wait?;
        if let Some((shared, deflate)) = lock(&self.upgraded).take() {
            io.upgrade_wait = None;
            let now = self.engine.now_ms();
            let max = self.engine.config.limits.ws_max_message;
            io.ws = Some(Box::new(WsIn {
                decoder: Decoder::new(max, deflate),
                shared: Arc::clone(&shared),
                last_frame: now,
                last_message: now,
                ping_sent: None,
                close_sent: None,
            }));
            let ws = WebSocket(Arc::clone(&shared));
            RUNNING_CONN.with(|c| c.set(self.id));
            shared.call(|h| h.open(&ws));
            RUNNING_CONN.with(|c| c.set(0));
            return Some(true);
        }
        if io.done_seq > seq {
            io.upgrade_wait = None;
            return Some(false);
        }
        None
    }

    /// One step of the websocket phase (see the module doc).
    pub(super) fn ws_step(
        self: &Arc<Self>,
        io: &mut Io,
        fd: std::os::fd::RawFd,
        frames: &mut usize,
        bytes: &mut usize,
    ) -> WsNext {
        let now = self.engine.now_ms();
        let unwritten = self.unwritten(io);
        let Some(w) = io.ws.as_mut() else { return WsNext::Again };
        let state = w.shared.state.load(Acquire);
        if state == CLOSED {
            // The close is settled and the slot complete: the turn writes and closes.
            return WsNext::Idle;
        }
        if state == OPEN && self.engine.is_draining() {
            w.shared.start_close(1001, "server shutting down");
        }
        if w.shared.state.load(Acquire) == CLOSING && w.close_sent.is_none() {
            w.close_sent = Some(now);
        }
        if w.shared.paused.load(Acquire) || unwritten >= self.engine.config.limits.write_high_water {
            return WsNext::Idle;
        }
        if *frames == 0 || *bytes == 0 {
            return WsNext::Yield;
        }
        RUNNING_CONN.with(|c| c.set(self.id));
        let next = self.ws_decode(io, now, frames);
        RUNNING_CONN.with(|c| c.set(0));
        match next {
            Some(n) => n,
            None => self.ws_read(io, fd, bytes),
        }
    }

    /// Decodes what is buffered, delivering events; `None` when it needs more bytes.
    fn ws_decode(self: &Arc<Self>, io: &mut Io, now: u64, frames: &mut usize) -> Option<WsNext> {
        let mut delivered = false;
        loop {
            let w = io.ws.as_mut().expect("in the websocket phase");
            if w.shared.paused.load(Acquire) {
                return Some(WsNext::Again);
            }
            if *frames == 0 {
                return Some(if delivered { WsNext::Again } else { WsNext::Yield });
            }
            let rpos = io.rpos;
            match w.decoder.decode(&io.rbuf[rpos..]) {
                Ok((used, event)) => {
                    io.rpos += used;
                    let Some(event) = event else {
                        return if delivered { Some(WsNext::Again) } else { None };
                    };
                    w.last_frame = now;
                    *frames -= 1;
                    delivered = true;
                    if self.ws_event(io, now, event) {
                        return Some(WsNext::Again);
                    }
                }
                Err(fail) => {
                    self.ws_fail(io, fail);
                    return Some(WsNext::Again);
                }
            }
        }
    }

    /// Handles one decoded event; true when the socket is done (closed by it).
    fn ws_event(self: &Arc<Self>, io: &mut Io, now: u64, event: Event) -> bool {
        let w = io.ws.as_mut().expect("in the websocket phase");
        let shared = Arc::clone(&w.shared);
        let c = &self.engine.counters.ws;
        match event {
            Event::Message { kind, data } => {
                w.last_message = now;
                c.messages_in.fetch_add(1, Relaxed);
                c.bytes_in.fetch_add(data.len() as u64, Relaxed);
                if w.decoder.buffered() == 0 {
                    w.decoder.shrink();
                }
                if shared.state.load(Acquire) == OPEN {
                    let msg = match kind {
                        Kind::Binary => Message::Binary(data),
                        // The decoder checked it as it arrived.
                        Kind::Text => match String::from_utf8(data) {
                            Ok(s) => Message::Text(s),
                            Err(_) => {
                                self.ws_fail(io, Fail { code: 1007, reason: "invalid UTF-8 in a text message" });
                                return true;
                            }
                        },
                    };
                    let ws = WebSocket(Arc::clone(&shared));
                    shared.call(|h| h.message(&ws, msg));
                }
                false
            }
            Event::Ping(payload) => {
                let mut out = Vec::with_capacity(payload.len() + 2);
                encode_control(&mut out, OpCode::Pong, &payload);
                self.append(shared.seq, out);
                false
            }
            Event::Pong(_) => {
                w.ping_sent = None;
                false
            }
            Event::Close { code, reason } => {
                let answering = shared.state.swap(CLOSED, AcqRel) == OPEN;
                let mut out = Vec::new();
                if answering {
                    encode_close(&mut out, code.unwrap_or(1005), "");
                }
                self.finish_ws(io, out);
                shared.closed(code.unwrap_or(1005), &reason);
                true
            }
        }
    }

    /// The client broke the protocol: the close frame with the code says why, and the
    /// connection closes once it is written.
    fn ws_fail(self: &Arc<Self>, io: &mut Io, fail: Fail) {
        let Some(w) = io.ws.as_ref() else { return };
        let shared = Arc::clone(&w.shared);
        let was = shared.state.swap(CLOSED, AcqRel);
        let mut out = Vec::new();
        if was == OPEN {
            encode_close(&mut out, fail.code, fail.reason);
        }
        self.engine.counters.ws.failed.fetch_add(1, Relaxed);
        self.finish_ws(io, out);
        shared.closed(fail.code, fail.reason);
    }

    /// Ends the upgrade's reply slot with `last` (a close frame, or nothing): the
    /// connection writes it and closes.
    fn finish_ws(self: &Arc<Self>, io: &mut Io, last: Vec<u8>) {
        let Some(w) = io.ws.as_ref() else { return };
        let seq = w.shared.seq;
        self.complete(seq, Some(last), true, false);
        io.advance(Phase::LastReplies);
    }

    /// Reads more for the decoder.
    fn ws_read(self: &Arc<Self>, io: &mut Io, fd: std::os::fd::RawFd, bytes: &mut usize) -> WsNext {
        if !io.want_read {
            return WsNext::Idle;
        }
        match self.read_step(io, fd, super::READ_CHUNK, bytes) {
            Read::Data => WsNext::Again,
            Read::Eof => {
                self.ws_gone(io);
                WsNext::Close
            }
            Read::Blocked => WsNext::Idle,
            Read::Failed => WsNext::Close,
        }
    }

    /// The connection ends without a close handshake (EOF, a reset, a deadline, a forced
    /// close): the handler hears 1006, once.
    pub(super) fn ws_gone(&self, io: &mut Io) {
        if let Some(w) = io.ws.as_ref() {
            w.shared.closed(1006, "");
        } else if let Some((shared, _)) = lock(&self.upgraded).take() {
            shared.closed(1006, "");
        }
    }

    /// The websocket phase's timers fired (keep-alive ping, its timeout, idle, the
    /// close wait). False: close the connection now.
    pub(super) fn ws_timer(self: &Arc<Self>, io: &mut Io) -> bool {
        let now = self.engine.now_ms();
        let limits = &self.engine.config.limits;
        let timeout = limits.ws_ping_timeout.as_millis() as u64;
        let Some(w) = io.ws.as_mut() else { return true };
        let shared = Arc::clone(&w.shared);
        if w.close_sent.is_some_and(|t| now >= t + timeout) {
            self.ws_gone(io);
            return false;
        }
        if w.ping_sent.is_some_and(|t| now >= t + timeout) {
            self.ws_fail(io, Fail { code: 1011, reason: "keep-alive ping timeout" });
            return true;
        }
        let idle = limits.ws_idle_timeout.as_millis() as u64;
        let open = shared.state.load(Acquire) == OPEN;
        if idle > 0 && open && now >= w.last_message + idle {
            shared.start_close(1001, "idle timeout");
            w.close_sent = Some(now);
            return true;
        }
        let interval = limits.ws_ping_interval.as_millis() as u64;
        if interval > 0 && open && w.ping_sent.is_none() && now >= w.last_frame + interval {
            let mut out = Vec::with_capacity(2);
            encode_control(&mut out, OpCode::Ping, b"");
            self.append(shared.seq, out);
            w.ping_sent = Some(now);
        }
        true
    }

    /// The next time a websocket timer is due (engine ms).
    pub(super) fn ws_deadline(&self, io: &Io) -> Option<u64> {
        let w = io.ws.as_ref()?;
        let limits = &self.engine.config.limits;
        let timeout = limits.ws_ping_timeout.as_millis() as u64;
        let mut due = u64::MAX;
        if let Some(t) = w.close_sent {
            due = due.min(t + timeout);
        }
        if w.shared.state.load(Acquire) != OPEN {
            // Closing: only the wait for the client's close frame is timed.
            return Some(due);
        }
        match w.ping_sent {
            Some(t) => due = due.min(t + timeout),
            None if !limits.ws_ping_interval.is_zero() => {
                due = due.min(w.last_frame + limits.ws_ping_interval.as_millis() as u64)
            }
            None => {}
        }
        if !limits.ws_idle_timeout.is_zero() {
            due = due.min(w.last_message + limits.ws_idle_timeout.as_millis() as u64);
        }
        Some(due)
    }
}
