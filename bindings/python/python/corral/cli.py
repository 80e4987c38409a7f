"""``corral [options] module:app``: serve a WSGI or ASGI app from the command line.

    corral --host 127.0.0.1 --port 8000 myproject.wsgi:application
    python -m corral --interface wsgi app:create_app()

``module`` is imported relative to the current directory; ``module:factory()`` calls
the factory. Serves until SIGTERM or SIGINT, then drains for ``--graceful-timeout``
seconds and exits 0. Any engine option of ``corral.options()`` is taken as
``--set name=value`` (durations with a unit: ``--set idle_timeout=5s``).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import os
import signal
import sys
import threading
from typing import Any, Dict, List, Optional

from . import ConfigError, Error


def load(target: str) -> Any:
    """``module:attr`` or ``module:factory()``, imported relative to the current directory."""
    mod_name, sep, attr = target.partition(":")
    if not sep or not mod_name or not attr:
        raise SystemExit(f"corral: {target!r} is not module:app (or module:factory())")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    call = attr.endswith("()")
    if call:
        attr = attr[:-2]
    obj: Any = importlib.import_module(mod_name)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SystemExit(f"corral: module {mod_name!r} has no {attr!r}") from None
    return obj() if call else obj


def interface_of(app: Any) -> str:
    """``asgi`` for an ``async def (scope, receive, send)``, else ``wsgi``."""
    fn = app if inspect.isfunction(app) or inspect.ismethod(app) else getattr(app, "__call__", None)
    return "asgi" if inspect.iscoroutinefunction(fn) else "wsgi"


def options(pairs: List[str]) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for p in pairs:
        name, sep, value = p.partition("=")
        if not sep or not name:
            raise SystemExit(f"corral: --set takes NAME=VALUE, not {p!r}")
        out[name] = value
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="corral", description="Serve a WSGI or ASGI app on corral.")
    ap.add_argument("app", help="module:app or module:factory()")
    ap.add_argument("--interface", choices=["wsgi", "asgi"], help="detected from the app when omitted")
    ap.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    ap.add_argument("--port", type=int, default=8000, help="default 8000 (0: a free port)")
    ap.add_argument("--workers", type=int, default=1, help="worker processes (only 1 for now: the default)")
    ap.add_argument("--backlog", type=int, help="listen backlog (default 1024)")
    ap.add_argument("--allow-public", action="store_true", help="allow a wildcard host (0.0.0.0, ::)")
    ap.add_argument("--graceful-timeout", type=float, default=10.0, help="seconds to drain at shutdown")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="any engine option")
    a = ap.parse_args(argv)
    if a.workers != 1:
        print("corral: --workers above 1 (worker processes) is not supported yet; run one process per port", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = load(a.app)
    iface = a.interface or interface_of(app)
    from . import asgi, wsgi

    opts: Dict[str, Any] = options(a.set)
    if a.backlog is not None:
        opts["backlog"] = a.backlog
    try:
        if iface == "asgi":
            server = asgi.serve(app, a.host, a.port, allow_public=a.allow_public, **opts)
        else:
            server = wsgi.serve(app, a.host, a.port, allow_public=a.allow_public, **opts)
    except (Error, OSError) as e:
        kind = "configuration" if isinstance(e, ConfigError) else "cannot serve"
        print(f"corral: {kind}: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    host, port = server.address
    print(f"listening on http://{host}:{port}", flush=True)
    while not stop.wait(1.0):
        pass
    report = server.close(a.graceful_timeout)
    print(f"corral: stopped: {report}", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
