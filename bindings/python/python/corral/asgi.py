"""ASGI 3 (http spec 2.4 and lifespan) on corral: ``corral.asgi.serve(app, host, port)``.

corral's I/O workers read and frame each request and build its scope natively; the app
runs on an asyncio event loop: one corral owns, on a thread of its own (uvloop's when
installed), or the caller's (``loop=``, or ``await start(...)`` on it). Requests reach
the loop in batches: the loop watches one fd, and a wake-up drains every request
waiting. A request body that has arrived whole with its head and fits in
``body_window`` (64 KiB) comes in the first ``receive()`` with ``more_body`` False. A
larger or slower one streams: each ``receive()`` returns what has arrived (up to 64 KiB
a message) with ``more_body`` True, the last one False, and waits on the loop (never
blocking it) while nothing has; the engine reads the socket only while the app keeps
up (``body_window``), so an upload of any size costs about the window, up to
``max_body``. ``http.disconnect`` comes when the client leaves mid-body, when the body
will not complete (over ``max_body``, too slow, malformed: the engine has answered
413, 408 or 400 already), and after the body, once the client leaves or the response
is complete. An app may answer before reading the body: the unread rest is
discarded (a short one) or the connection closes after the response. A response whose
first body message ends it is sent whole (with a Content-Length); one with ``more_body``
is streamed, and ``send`` waits while the client is not keeping up; ``send`` after the
client left raises ``BrokenPipeError``. Lifespan: ``startup.failed`` stops ``serve``
with the app's message; an app that raises before ``startup.complete`` is taken as not
supporting lifespan (logged at info, served without it); ``state`` is copied into each
request's scope.

Websockets (websocket spec 2.4, with the ``websocket.http.response`` denial
extension): a request that asks for one (engine option ``ws``, on by default) gets a
``websocket`` scope; the cycle is ``corral.asgi_ws.WebSocketCycle`` (receive queue and
back-pressure both ways, ``ClientDisconnected`` on a send once closed). With ``ws``
off such a request reaches the app as ordinary HTTP.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import threading
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set, Tuple

from . import ConfigError, Error, Server, _addr, _corral, _live, _options
from .asgi_ws import ClientDisconnected, WebSocketCycle

__all__ = ["serve", "start", "LifespanFailed", "ClientDisconnected"]

log = logging.getLogger("corral.asgi")
_access_logger = logging.getLogger("corral.access")

ASGIApp = Callable[[Dict[str, Any], Callable[[], Awaitable[Dict[str, Any]]], Callable[[Dict[str, Any]], Awaitable[None]]], Awaitable[None]]

BATCH = 256

_WS_ASGI = {"version": "3.0", "spec_version": "2.4"}


class LifespanFailed(Error):
    """The app answered ``lifespan.startup.failed`` (its message is this error's)."""


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # type: ignore[import-not-found]

        return uvloop.new_event_loop()  # type: ignore[no-any-return]
    except ImportError:
        return asyncio.new_event_loop()


class _Cycle:
    """One request's ASGI cycle: receive/send for the app, one reply to corral. A
    response whose first body message ends it is sent whole (with a Content-Length);
    one with ``more_body`` is streamed, and ``send`` waits while the client is not
    keeping up."""

    __slots__ = ("waits", "key", "responder", "body", "body_sent", "start", "started", "finished", "waiter", "reader")

    def __init__(
        self, waits: Dict[Tuple[int, str], "asyncio.Future[None]"], key: int, responder: Any, body: bytes, reader: Any = None
    ) -> None:
        self.waits = waits
        # The streamed body (a BodyReader) until it is read to its end, fails, or the
        # response completes.
        self.reader = reader
        self.key = key
        self.responder = responder
        self.body = body
        self.body_sent = False
        # The http.response.start message, kept until the first body message: its
        # status and headers are checked and framed natively then.
        self.start: Optional[Dict[str, Any]] = None
        self.started = False
        self.finished = False
        # Made only when the app waits for the client to leave (most never do).
        self.waiter: Optional["asyncio.Future[None]"] = None

    def finish(self) -> None:
        self.finished = True
        self._drop_reader()
        if self.waiter is not None:
            self.waits.pop((self.key, "gone"), None)
            if not self.waiter.done():
                self.waiter.set_result(None)

    def _wait(self, kind: str) -> "asyncio.Future[None]":
        fut = asyncio.get_running_loop().create_future()
        self.waits[(self.key, kind)] = fut
        self.responder.notify(self.key, kind)
        return fut

    def _drop_reader(self) -> None:
        """Done with the streamed body: the engine discards what is left unread; a
        ``receive`` waiting for it wakes (and says ``http.disconnect``)."""
        reader, self.reader = self.reader, None
        if reader is not None:
            self.body_sent = True
            reader.close()
            fut = self.waits.pop((self.key, "body"), None)
            if fut is not None and not fut.done():
                fut.set_result(None)

    async def _receive_body(self) -> Dict[str, Any]:
        reader = self.reader
        while True:
            try:
                data = reader.try_read(65536)
            except OSError:
                # BodyError: the client left, or the engine refused the body (and
                # answered it); ValueError cannot come: the reader is open here.
                self._drop_reader()
                return {"type": "http.disconnect"}
            if data is not None:
                break
            fut = asyncio.get_running_loop().create_future()
            self.waits[(self.key, "body")] = fut
            reader.notify(self.key)
            await fut
            if self.reader is None:  # the response completed meanwhile
                return {"type": "http.disconnect"}
        more = bool(data) and not reader.at_end
        if not more:
            self._drop_reader()
        return {"type": "http.request", "body": data, "more_body": more}

    async def receive(self) -> Dict[str, Any]:
        if self.reader is not None:
            return await self._receive_body()
        if not self.body_sent:
            self.body_sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        # The body is all read: wait until the client leaves or the response is complete.
        if not self.finished:
            if self.waiter is None:
                self.waiter = self._wait("gone")
            await self.waiter
        return {"type": "http.disconnect"}

    async def send(self, message: Dict[str, Any]) -> None:
        if self.finished:
            raise OSError("the response is complete (or the client left): nothing more can be sent on it")
        kind = message.get("type")
        if kind == "http.response.body":
            start = self.start
            if start is None:
                raise RuntimeError("http.response.body before http.response.start")
            body = message.get("body", b"")
            more = message.get("more_body", False)
            responder = self.responder
            if not self.started:
                if not more:
                    # The whole response at once (most are): status, headers and body
                    # are checked and framed natively.
                    sent = responder.respond_asgi(start.get("status"), start.get("headers", ()), body)
                    self.finish()
                    if not sent:
                        raise BrokenPipeError("the client closed the connection")
                    return
                responder.start_asgi(start.get("status"), start.get("headers", ()))
                self.started = True
            try:
                if body and not responder.send(bytes(body)):
                    await self._wait("writable")
                if not more:
                    responder.finish()
                    self.finish()
            except OSError:
                self.finish()
                raise
        elif kind == "http.response.start":
            if self.start is not None:
                raise RuntimeError("http.response.start was already sent")
            self.start = message
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on an HTTP connection")

    @property
    def status(self) -> Optional[int]:
        """The status sent (for the access log), None before the response started."""
        return self.start.get("status") if self.start is not None else None


class ASGIServer(Server):
    """A serving engine running an ASGI app: on an event loop corral owns, on a thread
    of its own, or on the caller's loop (``loop=``, or ``await start(...)``)."""

    def __init__(
        self,
        engine: _corral.Engine,
        app: ASGIApp,
        base: Dict[str, Any],
        lifespan: str,
        access_log: bool = False,
        loop: Optional[asyncio.AbstractEventLoop] = None,
    ) -> None:
        super().__init__(engine, host=False)
        self._access = access_log
        self._app = app
        self._base = base
        self._state: Dict[str, Any] = {}
        self._lifespan_mode = lifespan
        self._lifespan: Optional["_Lifespan"] = None
        self._engine_fd = engine.host_fd()
        # Futures a cycle waits on, by (its key, "writable" | "gone").
        self._waits: Dict[Tuple[int, str], "asyncio.Future[None]"] = {}
        self._keys = itertools.count(1)
        # The tasks serving websockets, waited for at shutdown (`_settle`).
        self._ws_tasks: "Set[asyncio.Task[Any]]" = set()
        self._thread: Optional[threading.Thread] = None
        if loop is not None:
            self.loop = loop
        else:
            self.loop = _new_loop()
            self._thread = threading.Thread(target=self._run_loop, name="corral-asgi", daemon=True)
            self._thread.start()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            # Stopped by close(): let what is left unwind, then release the loop's fds.
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def _call(self, coro: Awaitable[Any], timeout: Optional[float] = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    async def _astart(self) -> None:
        """On the loop: the app's lifespan startup, then requests flow."""
        if self._lifespan_mode != "off":
            # Made on the loop, so its queues belong to it.
            self._lifespan = _Lifespan(self._app, self._state)
            await self._lifespan.startup()
        self.loop.add_reader(self._engine_fd, self._drain)
        self._engine.start()

    def _start(self) -> None:
        self._call(self._astart())

    def _drain(self) -> None:
        take = self._engine.take_requests
        loop = self.loop
        waits = self._waits
        # The tasks this wakes reply and send in the loop's next pass: corral's I/O
        # workers are woken once after it (the release is queued behind them), not
        # once per connection.
        _corral.hold_wakes()
        try:
            while True:
                events, batch = take(BATCH)
                for key in events:
                    fut = waits.pop(key, None)
                    if fut is not None and not fut.done():
                        fut.set_result(None)
                if not batch:
                    if not events:
                        break
                    continue
                for request, responder in batch:
                    loop.create_task(self._serve(request, responder))
        finally:
            loop.call_soon(_corral.release_wakes)

    async def _serve(self, request: Any, responder: Any) -> None:
        scope = request.asgi_scope(self._base)
        if self._state:
            scope["state"] = dict(self._state)
        offered = request.websocket
        if offered is not None:
            return await self._serve_ws(scope, offered, responder)
        cycle = _Cycle(self._waits, next(self._keys), responder, request.body, request.take_body())
        try:
            await self._app(scope, cycle.receive, cycle.send)
        except BaseException:  # noqa: BLE001 - every failure becomes an error reply
            log.exception("ASGI app %r failed for %s %s", self._app, scope["method"], scope["path"])
            if not cycle.finished:
                cycle.finish()
                # Not started: a 500. Started: the body is cut off (the connection closes).
                responder.abort()
                if not cycle.started:
                    cycle.start = {"status": 500}
        cycle._drop_reader()
        if not cycle.finished:
            log.error("ASGI app %r returned without completing the response to %s %s (answered 500)", self._app, scope["method"], scope["path"])
            cycle.finish()
            responder.abort()
            cycle.start = {"status": 500}
        if self._access:
            _access_logger.info(
                '%s - "%s %s HTTP/%s" %s',
                scope["client"][0],
                scope["method"],
                scope["raw_path"].decode("latin-1") + ("?" + scope["query_string"].decode("latin-1") if scope["query_string"] else ""),
                scope["http_version"],
                cycle.status,
            )

    async def _serve_ws(self, scope: Dict[str, Any], offered: List[str], responder: Any) -> None:
        del scope["method"]
        scheme = "wss" if scope["scheme"] == "https" else "ws"
        scope.update(type="websocket", asgi=_WS_ASGI, scheme=scheme, http_version="1.1", subprotocols=offered)
        # Over TLS the scope already has the tls extension: kept beside this one.
        scope.setdefault("extensions", {})["websocket.http.response"] = {}
        cycle = WebSocketCycle(self._waits, next(self._keys), responder)
        task = asyncio.current_task()
        if task is not None:
            self._ws_tasks.add(task)
        try:
            await self._app(scope, cycle.receive, cycle.send)
        except BaseException:  # noqa: BLE001 - a 500 before accepting, close 1011 after
            log.exception("ASGI app %r failed on the websocket %s", self._app, scope["path"])
            cycle.failed()
        else:
            if not cycle.returned():
                log.info("ASGI app %r returned without accepting the websocket %s (answered 403)", self._app, scope["path"])
        finally:
            self._ws_tasks.discard(task)  # type: ignore[arg-type]
        if self._access:
            query = scope["query_string"].decode("latin-1")
            path = scope["raw_path"].decode("latin-1") + ("?" + query if query else "")
            _access_logger.info('%s - "WebSocket %s" %s', scope["client"][0], path, cycle.status)

    def close(self, timeout: float = 5.0) -> Dict[str, Any]:
        """Stops accepting, lets in-flight requests finish for up to ``timeout``
        seconds, runs the lifespan shutdown, and returns the shutdown report. On the
        app's own loop's thread use ``await aclose()`` instead (this would wait for
        the loop it blocks)."""
        if self._thread is None and _on_loop(self.loop):
            raise Error("close() on the loop the app runs on would block it: use `await server.aclose()`")
        return super().close(timeout)

    async def aclose(self, timeout: float = 5.0) -> Dict[str, Any]:
        """``close`` for the loop the app runs on: the loop goes on serving the
        requests in flight while the engine drains."""
        loop = asyncio.get_running_loop()
        _live.discard(self)
        report = dict(await loop.run_in_executor(None, self._engine.close, timeout))
        await self._settle(timeout)
        if self._lifespan is not None:
            try:
                await self._lifespan.shutdown()
            except Exception:  # noqa: BLE001
                log.exception("ASGI lifespan shutdown failed")
        return report

    async def _settle(self, timeout: float) -> None:
        """On the loop, once the engine is closed: the last events (the websockets'
        closes) reach their cycles, and the websocket apps get up to ``timeout`` seconds
        to end on their ``websocket.disconnect``."""
        self._drain()
        self.loop.remove_reader(self._engine_fd)
        if self._ws_tasks:
            await asyncio.wait(set(self._ws_tasks), timeout=timeout)

    def _closed(self, timeout: float) -> None:
        if self.loop.is_running():
            try:
                self._call(self._settle(timeout), timeout + 1.0)
            except Exception:  # noqa: BLE001 - the loop stops next, cancelling what is left
                log.exception("settling the websockets at shutdown failed")
        if self._lifespan is not None and self.loop.is_running():
            try:
                self._call(self._lifespan.shutdown(), timeout)
            except Exception:  # noqa: BLE001
                log.exception("ASGI lifespan shutdown failed")
        if self._thread is None:
            return  # the caller's loop: it runs on
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)


class _Lifespan:
    """The lifespan protocol: one task running the app's lifespan scope."""

    def __init__(self, app: ASGIApp, state: Dict[str, Any]) -> None:
        self.app = app
        self.state = state
        self.events: "asyncio.Queue[Dict[str, Any]]" = asyncio.Queue()
        self.answers: "asyncio.Queue[Dict[str, Any]]" = asyncio.Queue()
        self.task: Optional["asyncio.Task[None]"] = None
        self.supported = True

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        try:
            await self.app(scope, self.events.get, self.answers.put)
        except BaseException as e:  # noqa: BLE001
            await self.answers.put({"type": "_raised", "error": e})
        else:
            # Returned without a word: lifespan is not supported either (or is over).
            await self.answers.put({"type": "_returned", "error": "it returned"})

    async def startup(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())
        await self.events.put({"type": "lifespan.startup"})
        answer = await self.answers.get()
        kind = answer.get("type")
        if kind == "lifespan.startup.complete":
            return
        if kind == "lifespan.startup.failed":
            raise LifespanFailed(f"the app's lifespan startup failed: {answer.get('message', '')}")
        self.supported = False
        log.info("the app does not support ASGI lifespan (%r); serving without it", answer.get("error", answer))

    async def shutdown(self) -> None:
        if not self.supported or self.task is None or self.task.done():
            return
        await self.events.put({"type": "lifespan.shutdown"})
        answer = await self.answers.get()
        if answer.get("type") == "lifespan.shutdown.failed":
            log.error("the app's lifespan shutdown failed: %s", answer.get("message", ""))


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _server(
    app: ASGIApp,
    host: str,
    port: int,
    lifespan: str,
    allow_public: bool,
    listener: Optional[socket.socket],
    access_log: bool,
    loop: Optional[asyncio.AbstractEventLoop],
    options: Dict[str, Any],
) -> ASGIServer:
    listeners_from = options.pop("listeners_from", None)
    if lifespan not in ("auto", "off"):
        raise ConfigError(f"lifespan must be 'auto' or 'off', not {lifespan!r}")
    opts = _options(allow_public=allow_public, **options)

    def unused(_request: Any, responder: Any) -> None:
        # Every request is light (no heavy rule): all of them are served on the loop.
        responder.fail()

    engine = _corral.Engine("serve", _addr(host, port), opts, unused, [], None, listener, listeners_from, streams_bodies=True)
    name, bound = engine.addresses()[0]
    base: Dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "scheme": "http",
        "root_path": "",
        "server": (name, bound),
    }
    return ASGIServer(engine, app, base, lifespan, access_log, loop)


def serve(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    lifespan: str = "auto",
    allow_public: bool = False,
    listener: Optional[socket.socket] = None,
    access_log: bool = False,
    loop: Optional[asyncio.AbstractEventLoop] = None,
    **options: Any,
) -> ASGIServer:
    """Serves an ASGI 3 app (FastAPI, Starlette, Django's ``get_asgi_application()``).
    With ``loop=None`` the app runs on an event loop corral owns, on its own thread
    (uvloop's when installed); with ``loop=`` on that running loop (call this from
    another thread; on the loop itself, ``await start(...)``). Returns once the app's
    lifespan startup is done. ``lifespan`` is "auto" (run it when the app supports
    it) or "off". ``options`` are corral's engine options by name
    (``corral.options()``); ``listener``, a listening socket to serve instead of
    binding ``host``/``port``; ``access_log``, one line per request on the
    ``corral.access`` logger (at INFO). Returns a server: ``close(timeout)``,
    ``stats()``, a context manager; its ``loop`` is the event loop the app runs on."""
    if loop is not None and _on_loop(loop):
        raise ConfigError("serve(loop=...) waits for the app's startup on that loop, so it cannot run on it: use `await corral.asgi.start(app, ...)` there")
    server = _server(app, host, port, lifespan, allow_public, listener, access_log, loop, options)
    try:
        server._start()
    except BaseException:
        server._close_quietly(1.0)
        raise
    return server


async def start(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    lifespan: str = "auto",
    allow_public: bool = False,
    listener: Optional[socket.socket] = None,
    access_log: bool = False,
    **options: Any,
) -> ASGIServer:
    """``serve`` on the running event loop: the app runs on it, and this returns once
    its lifespan startup is done. Close with ``await server.aclose()``."""
    loop = asyncio.get_running_loop()
    server = _server(app, host, port, lifespan, allow_public, listener, access_log, loop, options)
    try:
        await server._astart()
    except BaseException:
        await server.aclose(1.0)
        raise
    return server
