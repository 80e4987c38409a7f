"""WSGI (PEP 3333) on corral: ``corral.wsgi.serve(app, host, port, **options)``.

corral's I/O workers read and frame each request and build its environ natively; the
app runs on the host thread, which takes requests in batches with one acquisition of
the GIL per batch (with ``threads=N`` N threads take one request each, for apps that
block).

Request bodies: one that has arrived whole when its head is read and fits in
``body_window`` (64 KiB) is a ``BytesIO`` over the bytes. A larger or slower one
streams: ``wsgi.input`` is a ``corral.BodyReader`` (``read(n)``, ``read()``,
``readline``, ``readlines``, iteration, ``readinto``) whose reads wait for the network
with the GIL released, up to ``max_body`` (1 GiB) with memory bounded by the window.
Such a request runs on one of ``upload_threads`` threads of its own (8 by default), so
a slow upload never holds the host thread and the requests behind it; more uploads
than threads wait their turn (their clients are held back by flow control). With
``upload_threads=0`` they run on the host thread(s) like the rest, which then wait
while the body trickles in. ``wsgi.multithread`` is True unless both ``threads`` is 1
and ``upload_threads`` is 0. ``wsgi.input_terminated`` is True: reads end at the body's
end, chunked bodies included; ``CONTENT_LENGTH`` is as the client sent it. A body that
will not complete (over ``max_body``: 413; too slow: 408; malformed: 400; the client
left) raises ``corral.BodyError`` (an ``OSError``) from the read; the engine has
answered the client already.

Responses: a body of one chunk is sent with a Content-Length; a longer one is streamed
as the app yields it (with the app's Content-Length if it gave one, chunked
otherwise), and a stream whose client falls behind is parked until there is room, so
the host thread goes on with other requests meanwhile (on an upload thread, the thread
waits instead).
"""

from __future__ import annotations

import concurrent.futures
import io
import itertools
import logging
import socket
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from . import ConfigError, Server, _addr, _corral, _heavy_rule, _options

__all__ = ["serve"]

log = logging.getLogger("corral.wsgi")

WSGIApp = Callable[[Dict[str, Any], Callable[..., Callable[[bytes], None]]], Iterable[bytes]]

# Headers corral writes itself (framing and connection management).
_OURS = frozenset({"content-length", "connection", "transfer-encoding", "keep-alive", "date"})


class _Failed(Exception):
    """The app broke the protocol: the client gets a 500 and the log says why."""


def _status(status: Any) -> int:
    if not isinstance(status, str) or len(status) < 4 or status[3] != " " or not status[:3].isdigit():
        raise _Failed(f"the status must be a str like '200 OK', not {status!r}")
    code = int(status[:3])
    if code < 100:
        raise _Failed(f"the status code must be 100 to 999, not {code}")
    return code


def _headers(headers: Any) -> Tuple[List[Tuple[str, str]], Optional[int]]:
    if not isinstance(headers, list):
        raise _Failed(f"the headers must be a list of (name, value) tuples, not {type(headers).__name__}")
    out: List[Tuple[str, str]] = []
    length: Optional[int] = None
    for h in headers:
        if not (isinstance(h, tuple) and len(h) == 2 and isinstance(h[0], str) and isinstance(h[1], str)):
            raise _Failed(f"a header must be a (str, str) tuple, not {h!r}")
        name, value = h
        if any(c in name for c in ":\r\n ") or "\r" in value or "\n" in value:
            raise _Failed(f"header {name!r} has a character not allowed there")
        low = name.lower()
        if low == "content-length":
            try:
                length = int(value)
            except ValueError:
                raise _Failed(f"Content-Length {value!r} is not a number") from None
        if low not in _OURS:
            out.append((name, value))
    return out, length


class _Exchange:
    """One request's WSGI cycle: runs the app and sends what it returns, whole when
    the body is one chunk (with a Content-Length), streamed otherwise. A stream whose
    client is not keeping up is parked (``parked[key]``) and resumed by its
    ``writable`` event, so one slow client never holds the host thread."""

    __slots__ = ("app", "environ", "responder", "parked", "key", "status", "headers", "started", "result", "chunks", "access", "sent", "blocking")

    def __init__(
        self,
        app: WSGIApp,
        environ: Dict[str, Any],
        responder: Any,
        parked: Dict[int, "_Exchange"],
        key: int,
        access: Optional[Callable[..., None]],
    ) -> None:
        self.access = access
        self.sent = 0  # body bytes, for the access log
        self.app = app
        self.environ = environ
        self.responder = responder
        self.parked = parked
        self.key = key
        self.status: Any = None
        self.headers: Any = None
        self.started = False  # the head went out: exc_info can no longer replace it
        self.result: Any = None
        self.chunks: Any = None  # the iterator over the app's body
        # On a thread of its own (an upload): wait for room instead of parking.
        self.blocking = False

    def start_response(self, status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            if self.started:
                raise exc_info[1].with_traceback(exc_info[2])
        elif self.status is not None:
            raise AssertionError("start_response was already called (pass exc_info to replace the headers)")
        self.status, self.headers = status, headers
        return self.write

    def _head(self) -> Tuple[int, List[Tuple[str, str]], Optional[int]]:
        if self.status is None:
            raise _Failed("the app returned without calling start_response")
        code = _status(self.status)
        headers, length = _headers(self.headers)
        return code, headers, length

    def _start(self) -> None:
        code, headers, length = self._head()
        self.responder.start(code, headers, length)
        self.started = True

    def write(self, data: bytes) -> None:
        """PEP 3333's ``write``: the head goes out with the first chunk; this call
        blocks while the client is not keeping up (use a returned iterable instead)."""
        if self.status is None:
            raise AssertionError("write() before start_response()")
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"write() takes bytes, not {type(data).__name__}")
        if not data:
            return
        if not self.started:
            self._start()
        self.sent += len(data)
        if not self.responder.send(data):
            self.responder.wait_writable(_WRITE_WAIT)

    def run(self) -> None:
        try:
            self.result = self.app(self.environ, self.start_response)
            self.chunks = iter(self.result)
            if not self.started:
                first = self._next()
                if first is None:
                    return self._whole(b"")
                second = self._next()
                if second is None:
                    return self._whole(first)
                self._start()
                self.sent += len(first) + len(second)
                self.responder.send(first)
                if not self.responder.send(second):
                    if not self.blocking:
                        return self._park()
                    self.responder.wait_writable(_WRITE_WAIT)
        except BaseException as e:  # noqa: BLE001 - every failure becomes an error reply
            return self._failed(e)
        self.pump()

    def _next(self) -> Optional[bytes]:
        """The app's next non-empty chunk, or None at the end."""
        for chunk in self.chunks:
            if not isinstance(chunk, (bytes, bytearray)):
                raise _Failed(f"the app yielded {type(chunk).__name__}, not bytes")
            if chunk:
                return bytes(chunk)
        return None

    def _whole(self, body: bytes) -> None:
        code, headers, length = self._head()
        if length is not None and length < len(body):
            body = body[:length]  # never more than the app declared
        self.responder.respond_http(code, headers, body)
        self.sent += len(body)
        self._close()
        if self.access is not None:
            self.access(self.environ, code, self.sent)

    def pump(self) -> None:
        """Sends the rest of a streamed body until it ends or the client falls behind."""
        send = self.responder.send
        try:
            while True:
                chunk = self._next()
                if chunk is None:
                    break
                self.sent += len(chunk)
                if not send(chunk):
                    if not self.blocking:
                        return self._park()
                    self.responder.wait_writable(_WRITE_WAIT)
            self._close()
            self.responder.finish()
            if self.access is not None:
                self.access(self.environ, int(self.status[:3]), self.sent)
        except BrokenPipeError:
            log.debug("client left during %s %s", self.environ.get("REQUEST_METHOD"), self.environ.get("RAW_URI"))
            self._close()
        except BaseException as e:  # noqa: BLE001
            self._failed(e)

    def run_blocking(self) -> None:
        """``run`` on a thread of its own (an upload thread): waits where ``run`` parks."""
        self.blocking = True
        self.run()
        body = self.environ.get("wsgi.input")
        if isinstance(body, _corral.BodyReader):
            body.close()  # what the app left unread is discarded (or the connection closes)

    def _park(self) -> None:
        self.parked[self.key] = self
        self.responder.notify(self.key, "writable")

    def _failed(self, e: BaseException) -> None:
        what = (self.app, self.environ.get("REQUEST_METHOD"), self.environ.get("RAW_URI"))
        if isinstance(e, _Failed):
            log.error("WSGI app %r: %s for %s %s", self.app, e, what[1], what[2])
        elif isinstance(e, BrokenPipeError):
            log.debug("client left during %s %s", what[1], what[2])
        else:
            log.exception("WSGI app %r failed for %s %s", *what)
        self._close()
        # Not started: a 500. Started: the body is cut off (the connection closes).
        self.responder.abort()
        if self.access is not None:
            self.access(self.environ, int(self.status[:3]) if self.started else 500, self.sent)

    def _close(self) -> None:
        close = getattr(self.result, "close", None)
        self.result = None
        if close is not None:
            try:
                close()
            except BaseException:  # noqa: BLE001
                log.exception("WSGI app %r: the iterable's close() failed", self.app)


# How long write() waits for a client that does not read before it gives up.
_WRITE_WAIT = 60.0


_access_logger = logging.getLogger("corral.access")


def _access(environ: Dict[str, Any], status: int, sent: int) -> None:
    """One line per request, in the common log format's spirit."""
    _access_logger.info(
        '%s - "%s %s %s" %d %d',
        environ.get("REMOTE_ADDR", "-"),
        environ.get("REQUEST_METHOD"),
        environ.get("RAW_URI"),
        environ.get("SERVER_PROTOCOL"),
        status,
        sent,
    )


def _dispatcher(
    app: WSGIApp,
    base: Dict[str, Any],
    access_log: bool = False,
    uploads: Optional[concurrent.futures.Executor] = None,
) -> Tuple[Callable[[Any, Any], None], Callable[[int, str], None]]:
    """The host's two entry points: a new request, and the event of a parked stream.
    A request whose body streams goes to ``uploads`` when there is such a pool."""
    access = _access if access_log else None
    bytes_io = io.BytesIO
    parked: Dict[int, _Exchange] = {}
    keys = itertools.count(1)

    def dispatch(request: Any, responder: Any) -> None:
        streams = request.body_streams
        environ = request.wsgi_environ(base, bytes_io)
        x = _Exchange(app, environ, responder, parked, next(keys), access)
        if not streams:
            x.run()
        elif uploads is None:
            x.run_blocking()
        else:
            try:
                uploads.submit(x.run_blocking)
            except RuntimeError:  # shut down: the engine is closing
                environ["wsgi.input"].close()
                responder.fail()

    def on_event(key: int, _kind: str) -> None:
        x = parked.pop(key, None)
        if x is not None:
            x.pump()

    return dispatch, on_event


def serve(
    app: WSGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    heavy: Union[Sequence[str], Dict[str, Any], None] = None,
    allow_public: bool = False,
    listener: Optional[socket.socket] = None,
    threads: int = 1,
    upload_threads: int = 8,
    access_log: bool = False,
    listeners_from: Optional[str] = None,
    **options: Any,
) -> Server:
    """Serves a WSGI app (Flask, Django's ``get_wsgi_application()``, any PEP 3333
    callable). ``options`` are corral's engine options by name (``corral.options()``);
    ``listener``, a listening socket to serve instead of binding ``host``/``port``;
    ``threads``, how many threads run the app (1, the default: the host thread alone;
    more for apps that block); ``upload_threads``, how many threads run requests whose
    body streams (8; 0: they run with the rest, holding a host thread while the body
    arrives); ``access_log``, one
    line per request on the ``corral.access`` logger (at INFO); ``listeners_from``, the
    Unix socket path where a running server offers its listening sockets
    (``server.hand_over(path)``): a restart that loses no connection. Returns a Server: ``close(timeout)``, ``stats()``, a context manager."""
    if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 1024:
        raise ConfigError(f"threads = {threads!r} is out of range: use 1 to 1024")
    if not isinstance(upload_threads, int) or isinstance(upload_threads, bool) or not 0 <= upload_threads <= 1024:
        raise ConfigError(f"upload_threads = {upload_threads!r} is out of range: use 0 to 1024")
    prefixes, min_bytes = _heavy_rule(heavy)
    opts = _options(allow_public=allow_public, **options)
    base: Dict[str, Any] = {
        "SCRIPT_NAME": "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": threads > 1 or upload_threads > 0,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    uploads = (
        concurrent.futures.ThreadPoolExecutor(upload_threads, thread_name_prefix="corral-upload") if upload_threads else None
    )
    dispatch, on_event = _dispatcher(app, base, access_log, uploads)
    try:
        engine = _corral.Engine(
            "serve", _addr(host, port), opts, dispatch, prefixes, min_bytes, listener, listeners_from, streams_bodies=True
        )
    except BaseException:
        if uploads is not None:
            uploads.shutdown(wait=False)
        raise
    name, bound = engine.addresses()[0]
    base["SERVER_NAME"], base["SERVER_PORT"] = name, str(bound)
    engine.start()
    return Server(engine, threads=threads, on_event=on_event, pools=[uploads] if uploads is not None else [])
