"""WSGI (PEP 3333) on corral: ``corral.wsgi.serve(app, host, port, **options)``.

corral's I/O workers read and frame each request and build its environ natively; the
app runs on the host thread, which takes requests in batches with one acquisition of
the GIL per batch (``wsgi.multithread`` is False: one thread runs the app; with
``threads=N`` N threads take one request each, for apps that block). Request
bodies arrive whole (up to ``max_frame``, chunked ones included), so ``wsgi.input`` is a
``BytesIO`` that ends at the body's end and ``wsgi.input_terminated`` is True. The
response is collected and sent with a Content-Length: a body the app streams is sent
once the iterable is exhausted (streaming replies need a streaming responder in
corral's core; see the README).
"""

from __future__ import annotations

import io
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


def _dispatcher(app: WSGIApp, base: Dict[str, Any]) -> Callable[[Any, Any], None]:
    bytes_io = io.BytesIO

    def dispatch(request: Any, responder: Any) -> None:
        environ = request.wsgi_environ(base, bytes_io)
        state: List[Any] = [None, None]  # status, headers
        chunks: List[bytes] = []

        def start_response(status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            # Headers are sent only once the whole reply is collected, so an error
            # reply may always replace them (PEP 3333: exc_info before headers are sent).
            if exc_info is None and state[0] is not None:
                raise AssertionError("start_response was already called (pass exc_info to replace the headers)")
            state[0], state[1] = status, headers
            return write

        def write(data: bytes) -> None:
            if state[0] is None:
                raise AssertionError("write() before start_response()")
            if not isinstance(data, (bytes, bytearray)):
                raise TypeError(f"write() takes bytes, not {type(data).__name__}")
            chunks.append(bytes(data))

        result = None
        try:
            result = app(environ, start_response)
            for chunk in result:
                if not isinstance(chunk, (bytes, bytearray)):
                    raise _Failed(f"the app yielded {type(chunk).__name__}, not bytes")
                if chunk:
                    chunks.append(bytes(chunk))
            if state[0] is None:
                raise _Failed("the app returned without calling start_response")
            code = _status(state[0])
            headers, length = _headers(state[1])
        except _Failed as e:
            log.error("WSGI app %r: %s (answered 500) for %s %s", app, e, environ.get("REQUEST_METHOD"), environ.get("RAW_URI"))
            responder.fail()
            return
        except BaseException:  # noqa: BLE001 - every failure becomes an error reply
            log.exception("WSGI app %r failed for %s %s (answered 500)", app, environ.get("REQUEST_METHOD"), environ.get("RAW_URI"))
            responder.fail()
            return
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except BaseException:  # noqa: BLE001
                    log.exception("WSGI app %r: the iterable's close() failed", app)
        body = b"".join(chunks)
        if length is not None and length < len(body):
            body = body[:length]  # never more than the app declared
        responder.respond_http(code, headers, body)

    return dispatch


def serve(
    app: WSGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    heavy: Union[Sequence[str], Dict[str, Any], None] = None,
    allow_public: bool = False,
    listener: Optional[socket.socket] = None,
    threads: int = 1,
    **options: Any,
) -> Server:
    """Serves a WSGI app (Flask, Django's ``get_wsgi_application()``, any PEP 3333
    callable). ``options`` are corral's engine options by name (``corral.options()``);
    ``listener``, a listening socket to serve instead of binding ``host``/``port``;
    ``threads``, how many threads run the app (1, the default: the host thread alone;
    more for apps that block, ``wsgi.multithread`` then True). Returns a Server: ``close(timeout)``, ``stats()``, a context manager."""
    if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 1024:
        raise ConfigError(f"threads = {threads!r} is out of range: use 1 to 1024")
    prefixes, min_bytes = _heavy_rule(heavy)
    opts = _options(allow_public=allow_public, **options)
    base: Dict[str, Any] = {
        "SCRIPT_NAME": "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": threads > 1,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    engine = _corral.Engine("serve", _addr(host, port), opts, _dispatcher(app, base), prefixes, min_bytes, listener)
    name, bound = engine.addresses()[0]
    base["SERVER_NAME"], base["SERVER_PORT"] = name, str(bound)
    engine.start()
    return Server(engine, threads=threads)
