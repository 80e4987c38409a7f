"""corral: hand accept and heavy work to a multi-threaded, work-stealing engine.

Two ways to use it from a Python app whose own loop is single-threaded:

- handoff: ``corral.listen(...)`` accepts on corral's threads and gives you connected
  ``socket.socket`` objects (``accept()``, ``accept_many()``, or ``fileno()`` in your own
  loop; ``corral.aio.start_server`` does it for asyncio).
- serve: ``corral.serve(handler, ...)`` reads, frames and classifies requests on
  corral's threads and calls ``handler`` only to compute the reply. A request that asks
  for a websocket (``request.websocket`` is the list of subprotocols offered) is accepted
  by returning ``Upgrade(handler)``: ``handler``'s ``on_open``, ``on_message``,
  ``on_drain`` and ``on_close`` then run on the host as the socket's events come, with a
  ``WebSocket`` (send, close, subscribe, publish); ``Server.publish(topic, data)``
  reaches every subscriber, fanned out natively.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import inspect
import logging
import os
import socket
import threading
import weakref
from typing import Any, Awaitable, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from . import _corral
from ._options import Options
from ._corral import (
    BindError,
    BodyError,
    BodyReader,
    ConfigError,
    Error,
    PublicAddressError,
    Request,
    Responder,
    StateError,
    WebSocket,
    WrongModeError,
)

__version__: str = _corral.__version__

__all__ = [
    "Accepted",
    "metrics",
    "options",
    "Options",
    "BindError",
    "BodyError",
    "BodyReader",
    "ConfigError",
    "Error",
    "Executor",
    "Listener",
    "PublicAddressError",
    "Request",
    "Response",
    "Server",
    "StateError",
    "Upgrade",
    "WebSocket",
    "WrongModeError",
    "listen",
    "serve",
]

log = logging.getLogger("corral")

Address = Tuple[str, int]
Reply = Union[bytes, bytearray, memoryview, str, "Response", "Upgrade"]

# Every open engine, so that interpreter exit and fork() can settle them.
_live: "weakref.WeakSet[_EngineOwner]" = weakref.WeakSet()


def options() -> List[Dict[str, str]]:
    """The engine options every entry point takes by keyword: name, range (durations in
    seconds), default, doc, and which engines they apply to (serve, handoff or both)."""
    return [dict(o) for o in _corral.options_table()]


def metrics() -> List[Dict[str, str]]:
    """The metrics ``stats()`` reports (and the Prometheus text, as ``corral_<name>``,
    with ``_total`` for counters): name, kind, scope (engine, listener, worker), unit, help."""
    return [dict(m) for m in _corral.metrics_table()]


class Response:
    """An HTTP response: ``Response(200, body=b"hi", headers={"content-type": "text/plain"})``.

    corral writes content-length, connection and date itself.
    """

    __slots__ = ("status", "headers", "body")

    def __init__(
        self,
        status: int = 200,
        body: Union[bytes, bytearray, memoryview, str] = b"",
        headers: Union[Dict[str, str], Iterable[Tuple[str, str]], None] = None,
    ) -> None:
        self.status = int(status)
        self.body = body.encode() if isinstance(body, str) else bytes(body)
        if headers is None:
            self.headers: List[Tuple[str, str]] = []
        elif isinstance(headers, dict):
            self.headers = [(str(k), str(v)) for k, v in headers.items()]
        else:
            self.headers = [(str(k), str(v)) for k, v in headers]

    def __repr__(self) -> str:
        return f"Response({self.status}, {len(self.body)} bytes)"


class Upgrade:
    """A handler's answer to a request that asks for a websocket (``request.websocket``
    is not None): accept it with ``protocol`` (one of those offered, or None) and extra
    ``headers`` on the 101. ``handler`` has any of ``on_open(ws)``, ``on_message(ws,
    data)`` (data: str for text, bytes for binary), ``on_drain(ws)`` (a ``send`` that
    returned -1 may be followed by more now) and ``on_close(ws, code, reason)``. They
    run on the host thread (or loop) in each socket's order and must not block; one that
    raises is logged and its socket closed with 1011."""

    __slots__ = ("handler", "protocol", "headers")

    def __init__(self, handler: Any, protocol: Optional[str] = None, headers: Iterable[Tuple[str, str]] = ()) -> None:
        self.handler = handler
        self.protocol = protocol
        self.headers = [(str(k), str(v)) for k, v in headers]

    def __repr__(self) -> str:
        return f"Upgrade({self.handler!r}, protocol={self.protocol!r})"


def _options(**options: Any) -> Dict[str, Any]:
    return {k: v for k, v in options.items() if v is not None}


class _EngineOwner:
    """Owns a native engine; closes it on exit, forgets it in a forked child."""

    _engine: _corral.Engine

    def _own(self, engine: _corral.Engine) -> None:
        self._engine = engine
        _live.add(self)

    @property
    def addresses(self) -> List[Address]:
        """The listening addresses, with the ports the kernel chose for port 0."""
        return [tuple(a) for a in self._engine.addresses()]  # type: ignore[misc]

    @property
    def address(self) -> Address:
        """The first listening address."""
        return self.addresses[0]

    @property
    def closed(self) -> bool:
        return bool(self._engine.closed)

    def stats(self) -> Dict[str, Any]:
        """A snapshot of the engine's counters as a dict."""
        return dict(self._engine.stats())

    def prometheus(self) -> str:
        """The same snapshot as Prometheus text."""
        return str(self._engine.prometheus())

    def reload_tls(self) -> None:
        """Reads the TLS certificates and keys again from their files (``tls_cert``,
        ``tls_key``, ``tls_sni_certs``, ``tls_client_ca``): connections that start from
        now on use them, open ones keep theirs. A file that cannot be used raises
        ConfigError naming it, and the certificates before serve on. The ``corral``
        command calls it on SIGHUP."""
        self._engine.reload_tls()

    def hand_over(self, path: str, timeout: float = 30.0) -> None:
        """Offers the listening sockets at the Unix socket ``path`` and returns once a
        successor (``serve(..., listeners_from=path)``, in this process or another)
        serves them; then ``close()`` this one: it drains, and no connection waiting in
        the sockets' queues is lost. Raises (and serves on) if none came in ``timeout``."""
        self._engine.hand_over(str(path), timeout)

    def close(self, timeout: float = 5.0) -> Dict[str, Any]:
        """Stops accepting, lets in-flight work finish for up to ``timeout`` seconds,
        closes the rest, and returns the shutdown report. Raises StateError if closed."""
        _live.discard(self)
        report = dict(self._engine.close(timeout))
        self._closed(timeout)
        return report

    def _closed(self, timeout: float) -> None:
        pass

    def _close_quietly(self, timeout: float) -> None:
        if not self._engine.closed:
            try:
                self._engine.close(timeout)
            except Error:
                pass
            self._closed(timeout)


class Accepted(NamedTuple):
    """A connection taken from a handoff engine, and who its client is."""

    socket: socket.socket
    #: (host, port): with proxy_protocol, the client the PROXY header named.
    peer: Tuple[str, int]
    #: The PROXY header (version, source, destination, tlvs), or None.
    proxy: Optional[Dict[str, Any]]


class Listener(_EngineOwner):
    """A handoff engine: corral accepts, you serve. Use as a context manager."""

    def __init__(self, engine: _corral.Engine) -> None:
        self._own(engine)

    def fileno(self) -> int:
        """The notify fd: readable while accepted connections wait. Do not close it."""
        return int(self._engine.fileno())

    @staticmethod
    def _socket(fd: int) -> socket.socket:
        # The family comes from the fd itself: with PROXY the client's may differ.
        return socket.socket(fileno=fd)

    def accept_many(self, n: int = 64) -> List[socket.socket]:
        """Takes up to ``n`` accepted connections without waiting (possibly none). Each
        is a non-blocking ``socket.socket`` that you own."""
        return [a.socket for a in self.accept_many_clients(n)]

    def accept_many_clients(self, n: int = 64) -> List["Accepted"]:
        """Like ``accept_many``, with each socket's client: ``Accepted(socket, peer,
        proxy)``. ``peer`` is ``(host, port)``, with ``proxy_protocol`` the client its
        PROXY header named (already read off the socket); ``proxy`` is that header as a
        dict (version, source, destination, tlvs) or None."""
        return [
            Accepted(self._socket(fd), (host, port), proxy)
            for fd, _fam, host, port, proxy in self._engine.take(n)
        ]

    def accept(self, timeout: Optional[float] = None) -> socket.socket:
        """Waits for one connection (the GIL is released; Ctrl-C interrupts) and returns
        it as a blocking-mode ``socket.socket``. Raises TimeoutError after ``timeout``."""
        return self.accept_client(timeout).socket

    def accept_client(self, timeout: Optional[float] = None) -> "Accepted":
        """Like ``accept``, with the client: ``Accepted(socket, peer, proxy)``."""
        while True:
            got = self.accept_many_clients(1)
            if got:
                got[0].socket.setblocking(True)
                return got[0]
            if not self._engine.wait(timeout):
                raise TimeoutError("no connection arrived in time")

    def __enter__(self) -> "Listener":
        return self

    def __exit__(self, *exc: object) -> None:
        self._close_quietly(5.0)

    def __aiter__(self) -> "Listener":
        return self

    async def __anext__(self) -> socket.socket:
        """``async for sock in listener``: connections as they come, on the running loop."""
        loop = asyncio.get_running_loop()
        while True:
            if self.closed:
                raise StopAsyncIteration
            got = self.accept_many(1)
            if got:
                return got[0]
            ready = loop.create_future()
            fd = self.fileno()
            loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
            try:
                await ready
            finally:
                loop.remove_reader(fd)


def _addr(host: str, port: int) -> List[Address]:
    return [(host, int(port))]


def listen(
    address: Address = ("127.0.0.1", 0),
    *,
    allow_public: bool = False,
    **options: Any,
) -> Listener:
    """Starts a handoff engine on ``address`` and returns its Listener. ``options`` are
    engine options by name (``acceptors``, ``backlog``, ``handoff_capacity``, ...; the
    list, with ranges and defaults, is ``corral.options()``); one that does not apply to
    a handoff engine, or is unknown or out of range, raises ConfigError."""
    opts = _options(allow_public=allow_public, **options)
    engine = _corral.Engine("handoff", _addr(*address), opts)
    engine.start()
    return Listener(engine)


Handler = Callable[[Request], Union[Reply, Awaitable[Reply]]]


def _send(responder: Responder, reply: Any) -> None:
    if isinstance(reply, Response):
        responder.respond_http(reply.status, reply.headers, reply.body)
    elif isinstance(reply, str):
        responder.respond_bytes(reply.encode())
    elif isinstance(reply, (bytes, bytearray, memoryview)):
        responder.respond_bytes(bytes(reply))
    elif isinstance(reply, Upgrade):
        responder.upgrade(reply.handler, reply.protocol, reply.headers)
    elif reply is None:
        responder.close()
    else:
        raise TypeError(f"a handler must return bytes, str, Response, Upgrade or None, not {type(reply).__name__}")


def _failed(request: Request, responder: Responder, exc: BaseException) -> None:
    log.error("handler failed for %r", request, exc_info=(type(exc), exc, exc.__traceback__))
    if not responder.answered:
        responder.fail()


class Server(_EngineOwner):
    """A serving engine. Use as a context manager, or call ``close()``.

    Light requests reach the handler on one host thread, in batches: corral's I/O
    workers never wait for the GIL, and the host thread takes it once per batch. Heavy
    requests run on corral's CPU pool."""

    def __init__(
        self,
        engine: _corral.Engine,
        host: bool = True,
        threads: int = 1,
        on_event: Optional[Callable[[int, str], None]] = None,
        pools: Sequence[concurrent.futures.Executor] = (),
    ) -> None:
        self._own(engine)
        # Threads of the front's own (WSGI uploads): stopped once the engine is closed.
        self._pools = list(pools)
        # One host thread takes batches of up to 256; several (for apps that block) take
        # one request at a time, so none waits behind a blocked neighbour. `on_event`
        # hears the events responders asked for (a parked stream has room again).
        batch = 256 if threads == 1 else 1
        self._hosts = [
            threading.Thread(target=engine.run_host, args=(batch, on_event), name=f"corral-host-{i}", daemon=True)
            for i in range(threads if host else 0)
        ]
        for t in self._hosts:
            t.start()

    def _closed(self, timeout: float) -> None:
        # The engine is shut down: the host threads run what is still queued and return
        # (a handler stuck past the deadline is left behind, as corral's threads are).
        for t in self._hosts:
            if t is not threading.current_thread():
                t.join(timeout)
        # The engine closed every connection, so a body read waiting there has failed.
        for p in self._pools:
            p.shutdown(wait=False, cancel_futures=True)

    def publish(self, topic: str, data: Union[str, bytes]) -> int:
        """Sends ``data`` (str: text, bytes: binary) to every websocket subscribed to
        ``topic`` (``ws.subscribe``), encoded once and fanned out natively; returns how
        many sockets it was queued for."""
        return int(self._engine.publish(topic, data))

    def subscribers(self, topic: str) -> int:
        """Websockets subscribed to ``topic`` now."""
        return int(self._engine.subscribers(topic))

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self._close_quietly(5.0)


class _LoopServer(Server):
    """A serving engine whose async handler runs on an asyncio loop: the loop watches
    the engine's request queue (one fd) and takes light requests in batches, one task
    each; heavy ones run from the CPU pool through ``run_coroutine_threadsafe``."""

    def __init__(self, engine: _corral.Engine, handler: Handler, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(engine, host=False)
        self._handler = handler
        self._loop = loop
        self._fd = engine.host_fd()
        loop.call_soon_threadsafe(loop.add_reader, self._fd, self._drain)

    def _drain(self) -> None:
        take = self._engine.take_requests
        create = self._loop.create_task
        while True:
            _events, batch = take(256)
            if not batch:
                return
            for request, responder in batch:
                create(self._run(request, responder))

    async def _run(self, request: Request, responder: Responder) -> None:
        try:
            _send(responder, await self._handler(request))  # type: ignore[misc]
        except BaseException as exc:  # noqa: BLE001 - every failure becomes an error reply
            _failed(request, responder, exc)

    def _closed(self, timeout: float) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._loop.remove_reader, self._fd)


def _dispatcher(handler: Handler, loop: Optional[asyncio.AbstractEventLoop]) -> Callable[[Request, Responder], None]:
    is_async = inspect.iscoroutinefunction(handler)
    if is_async and loop is None:
        raise ConfigError("an async def handler needs loop=: the asyncio loop it runs on")

    def dispatch(request: Request, responder: Responder) -> None:
        # Runs on the host thread (light) or a CPU-pool thread (heavy), with the GIL.
        try:
            if is_async:
                assert loop is not None
                fut = asyncio.run_coroutine_threadsafe(handler(request), loop)  # type: ignore[arg-type]

                def done(f: "concurrent.futures.Future[Any]") -> None:
                    try:
                        _send(responder, f.result())
                    except BaseException as exc:  # noqa: BLE001 - every failure becomes an error reply
                        _failed(request, responder, exc)

                fut.add_done_callback(done)
            else:
                _send(responder, handler(request))
        except BaseException as exc:  # noqa: BLE001
            _failed(request, responder, exc)

    return dispatch


def _heavy_rule(heavy: Union[Sequence[str], Dict[str, Any], None]) -> Tuple[List[str], Optional[int]]:
    """The native cost rule: HTTP path prefixes, or {"path_prefixes": [...], "min_bytes": n}."""
    if isinstance(heavy, dict):
        unknown = set(heavy) - {"path_prefixes", "min_bytes"}
        if unknown:
            raise ConfigError(f"unknown heavy rule keys {sorted(unknown)}: use path_prefixes and min_bytes")
        return list(heavy.get("path_prefixes", [])), heavy.get("min_bytes")
    return list(heavy or []), None


def serve(
    handler: Handler,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    protocol: str = "http",
    heavy: Union[Sequence[str], Dict[str, Any], None] = None,
    loop: Optional[asyncio.AbstractEventLoop] = None,
    allow_public: bool = False,
    streams_bodies: bool = False,
    **options: Any,
) -> Server:
    """Starts a serving engine. ``handler(request)`` returns bytes, str, a Response, or
    None (close the connection); an ``async def`` handler runs on ``loop``.

    ``streams_bodies`` (HTTP): False (the default), every body comes whole in
    ``request.body``, at most ``max_frame`` bytes (413 above). True: a body that has not
    arrived whole with its head, or is over ``body_window``, reaches the handler at once
    with ``request.body_streams`` True and ``request.body`` empty; read it from
    ``request.take_body()``, a ``BodyReader`` (a binary file: ``read``, ``readline``,
    iteration) whose reads wait for the network with the GIL released, up to
    ``max_body``. A light handler runs on the host thread, which then waits with it:
    route uploads to the CPU pool (``heavy=["/upload"]``) or read them on a thread.

    ``options`` are engine options by name (``io_workers``, ``cpu_threads``,
    ``idle_timeout`` in seconds, ...; ``corral.options()`` lists them with their ranges
    and defaults). An unknown name, a wrong type or an out-of-range value raises
    ConfigError naming the option and its range.

    ``heavy`` classifies requests natively, without calling Python: a list of HTTP path
    prefixes, or ``{"path_prefixes": [...], "min_bytes": n}``. Heavy requests run on
    corral's CPU pool, light ones on its I/O workers.

    Websockets: a request that asks for one has ``request.websocket`` (the subprotocols
    offered); the handler accepts it by returning ``Upgrade(ws_handler, protocol)``, or
    answers it as any request. The socket's callbacks run on the host thread (with
    ``loop=``, on that loop).
    """
    prefixes, min_bytes = _heavy_rule(heavy)
    opts = _options(protocol=protocol, allow_public=allow_public, **options)
    engine = _corral.Engine(
        "serve", _addr(host, port), opts, _dispatcher(handler, loop), prefixes, min_bytes, streams_bodies=bool(streams_bodies)
    )
    if inspect.iscoroutinefunction(handler) and loop is not None:
        server: Server = _LoopServer(engine, handler, loop)
    else:
        server = Server(engine)
    engine.start()
    return server


class Executor(concurrent.futures.Executor):
    """A ``concurrent.futures.Executor`` on corral's work-stealing CPU pool: ``submit``,
    ``map``, ``shutdown``, and usable with ``loop.run_in_executor``. Jobs run on pool
    threads with the GIL; work that releases it (hashlib, zlib, numpy) runs in parallel."""

    def __init__(self, max_workers: Optional[int] = None) -> None:
        self._pool = _corral.Pool(max_workers if max_workers is not None else (os.cpu_count() or 1))
        self._lock = threading.Lock()
        self._shutdown = False
        self._pending: "set[concurrent.futures.Future[Any]]" = set()
        _executors.add(self)

    @property
    def max_workers(self) -> int:
        return int(self._pool.threads)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> "concurrent.futures.Future[Any]":
        future: "concurrent.futures.Future[Any]" = concurrent.futures.Future()

        def run() -> None:
            with self._lock:
                self._pending.discard(future)
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - the Future carries it
                future.set_exception(exc)
            else:
                future.set_result(result)

        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._pending.add(future)
            self._pool.submit(run)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            pending = list(self._pending) if cancel_futures else []
        for f in pending:
            f.cancel()
        self._pool.shutdown(wait)


_executors: "weakref.WeakSet[Executor]" = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    # corral's threads must not call into an interpreter that is finalizing.
    for owner in list(_live):
        owner._close_quietly(1.0)
    for ex in list(_executors):
        ex.shutdown(wait=True, cancel_futures=True)


def _forget_in_child() -> None:
    # The engine's threads were not copied by fork(): forget the engines here.
    for owner in list(_live):
        owner._engine._forget()
    _live.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


# `import corral` gives its submodules without a further import.
from . import aio, asgi, wsgi  # noqa: E402
