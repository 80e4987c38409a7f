"""``corral [options] module:app``: serve a WSGI or ASGI app from the command line.

    corral --host 127.0.0.1 --port 8000 myproject.wsgi:application
    python -m corral --interface wsgi app:create_app()

``module`` is imported relative to the current directory; ``module:factory()`` calls
the factory. Serves until SIGTERM or SIGINT, then drains for ``--graceful-timeout``
seconds and exits 0. With ``--workers N`` a supervisor binds once and runs N worker
processes; ``--max-requests`` replaces a worker after about that many requests (checked
four times a second): its replacement starts first, on the same socket, and the old one
drains once the new one serves, so no connection waits on an empty socket or is reset. Any engine option of ``corral.options()`` is taken as
``--set name=value`` (durations with a unit: ``--set idle_timeout=5s``). Websockets
take uvicorn's flags: ``--ws auto|none`` (none: upgrade requests are ordinary HTTP
requests), ``--ws-max-size``, ``--ws-ping-interval``, ``--ws-ping-timeout`` and
``--ws-per-message-deflate``, each an engine option (``ws``, ``ws_max_message``, ...).
TLS takes uvicorn's ``--ssl-certfile`` and ``--ssl-keyfile`` (PEM files: the engine
options ``tls_cert`` and ``tls_key``), ``--ssl-ca-certs`` and ``--ssl-cert-reqs``
(client certificates: ``tls_client_ca``, ``tls_client_auth``) and ``--ssl-ciphers``
(``tls_ciphers``, where the names map); ``--ssl-keyfile-password`` is refused
(encrypted keys are not read). SIGHUP reads the certificate files again (every worker's).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
from typing import Any, Dict, List, Optional

from . import ConfigError, Error, StateError


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


def ws_options(a: argparse.Namespace) -> Dict[str, Any]:
    """The engine options the websocket flags stand for (only those given)."""
    out: Dict[str, Any] = {}
    if a.ws == "none":
        out["ws"] = False
    for flag, name in [("ws_max_size", "ws_max_message"), ("ws_ping_interval", "ws_ping_interval"),
                       ("ws_ping_timeout", "ws_ping_timeout")]:
        if getattr(a, flag) is not None:
            out[name] = getattr(a, flag)
    if a.ws_per_message_deflate is not None:
        out["ws_deflate"] = a.ws_per_message_deflate == "true"
    return out


# uvicorn's TLS flags corral cannot honour, and why: refused, never ignored (a server
# that silently skipped what a flag asks would not be the server its user configured).
_SSL_REFUSED = {
    "ssl_keyfile_password": "encrypted private keys are not read: decrypt the key once "
                            "(openssl pkey -in key.pem -out plain.pem) and keep plain.pem readable by this user only",
}

# --ssl-cert-reqs takes ssl.CERT_NONE / CERT_OPTIONAL / CERT_REQUIRED's numbers, as uvicorn does.
_CERT_REQS = {"0": "none", "1": "optional", "2": "required"}

# uvicorn's default --ssl-ciphers: OpenSSL's "TLSv1" string, which asks for nothing
# narrower than what corral offers; it means corral's default list.
_UVICORN_CIPHERS = "TLSv1"


def _refuse(flag: str, why: str) -> None:
    print(f"corral: --{flag.replace('_', '-')}: {why}", file=sys.stderr)
    raise SystemExit(2)


def tls_options(a: argparse.Namespace) -> Dict[str, Any]:
    """The engine options of uvicorn's ``--ssl-*`` flags; raises SystemExit (status 2)
    for a flag corral cannot honour or a combination that means nothing."""
    for flag, why in _SSL_REFUSED.items():
        if getattr(a, flag) is not None:
            _refuse(flag, why)
    if (a.ssl_certfile is None) != (a.ssl_keyfile is None):
        print("corral: TLS needs both --ssl-certfile (the PEM certificate chain) and --ssl-keyfile (its key)", file=sys.stderr)
        raise SystemExit(2)
    out: Dict[str, Any] = {}
    if a.ssl_certfile is not None:
        out.update(tls_cert=a.ssl_certfile, tls_key=a.ssl_keyfile)
    if a.ssl_ca_certs is not None:
        out["tls_client_ca"] = a.ssl_ca_certs
    if a.ssl_cert_reqs is not None:
        reqs = _CERT_REQS.get(a.ssl_cert_reqs)
        if reqs is None:
            _refuse("ssl_cert_reqs", f"{a.ssl_cert_reqs!r} is not 0 (none), 1 (optional) or 2 (required)")
        if reqs != "none" and a.ssl_ca_certs is None:
            _refuse("ssl_cert_reqs", f"{a.ssl_cert_reqs} ({reqs}) needs --ssl-ca-certs: the PEM bundle of the CA "
                                     "certificates that issue the client certificates")
        if reqs == "none" and a.ssl_ca_certs is not None:
            _refuse("ssl_cert_reqs", "0 (none) asks for no client certificate, so --ssl-ca-certs would do nothing: "
                                     "use 1 (optional) or 2 (required), or leave out --ssl-ca-certs")
        if reqs != "none":
            out["tls_client_auth"] = reqs
    if a.ssl_ciphers is not None and a.ssl_ciphers != _UVICORN_CIPHERS:
        out["tls_ciphers"] = a.ssl_ciphers  # names that do not map are refused by the engine, listing those that do
    if out and a.ssl_certfile is None:
        flag = "--ssl-ca-certs" if a.ssl_ca_certs is not None else "--ssl-cert-reqs/--ssl-ciphers"
        print(f"corral: {flag} needs TLS: add --ssl-certfile and --ssl-keyfile", file=sys.stderr)
        raise SystemExit(2)
    return out



def reload_tls(server: Any) -> None:
    """SIGHUP: reads the certificate and key files again (new connections get them, open
    ones keep theirs); a file that cannot be used is logged and the old ones serve on."""
    log = logging.getLogger("corral")
    try:
        server.reload_tls()
    except Error as e:
        log.error("SIGHUP: TLS certificates not reloaded, the ones before serve on: %s", e)
        return
    log.info("SIGHUP: TLS certificates reloaded")


def scheme(a: argparse.Namespace) -> str:
    """``https`` when the server speaks TLS (by the flags or ``--set tls_cert=``)."""
    by_set = any(p.partition("=")[0] == "tls_cert" and p.partition("=")[2] for p in a.set)
    return "https" if a.ssl_certfile or by_set else "http"


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="corral", description="Serve a WSGI or ASGI app on corral.")
    ap.add_argument("app", help="module:app or module:factory()")
    ap.add_argument("--interface", choices=["wsgi", "asgi"], help="detected from the app when omitted")
    ap.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    ap.add_argument("--port", type=int, default=8000, help="default 8000 (0: a free port)")
    ap.add_argument("--workers", type=int, default=1, help="worker processes (default 1); above 1 a supervisor binds once")
    ap.add_argument("--threads", type=int, default=1, help="WSGI: threads running the app (default 1; more for apps that block)")
    ap.add_argument("--upload-threads", type=int, default=None, metavar="N",
                    help="WSGI: threads running requests whose body streams in (default 8; 0: the --threads run them)")
    ap.add_argument("--fd", type=int, help="serve this inherited listening socket instead of binding --host/--port")
    ap.add_argument("--backlog", type=int, help="listen backlog (default 1024)")
    ap.add_argument("--allow-public", action="store_true", help="allow a wildcard host (0.0.0.0, ::)")
    ap.add_argument("--graceful-timeout", type=float, default=10.0, help="seconds to drain at shutdown")
    ap.add_argument("--proxy-protocol", choices=["v1", "v2", "any"],
                    help="each connection starts with a PROXY header from a load balancer (HAProxy send-proxy, AWS NLB)")
    ap.add_argument("--proxy-trusted", metavar="CIDR,...", help="balancers trusted to send it (default loopback)")
    ap.add_argument("--listeners-from", metavar="PATH",
                    help="take the listening sockets a running corral offers at this Unix socket (a restart losing nothing)")
    ap.add_argument("--offer-listeners", metavar="PATH",
                    help="offer this server's listening sockets there; once a successor serves them, drain and exit 0")
    ap.add_argument("--access-log", action="store_true", help="log one line per request (logger corral.access)")
    ap.add_argument("--max-requests", type=int, default=0, metavar="N",
                    help="with --workers: replace a worker after about N requests (0: never)")
    ap.add_argument("--max-requests-jitter", type=int, default=0, metavar="N",
                    help="add 0..N at random to each worker's --max-requests, so they are not replaced together")
    ap.add_argument("--ws", choices=["auto", "none"], default="auto",
                    help="websockets: auto (an ASGI app gets websocket scopes) or none (upgrade requests are plain HTTP)")
    ap.add_argument("--ws-max-size", type=int, metavar="BYTES",
                    help="largest websocket message (default 16 MiB); a larger one closes the socket with 1009")
    ap.add_argument("--ws-ping-interval", type=float, metavar="SECONDS",
                    help="ping a websocket after this long without a frame from the client (default 20; 0: never)")
    ap.add_argument("--ws-ping-timeout", type=float, metavar="SECONDS",
                    help="time for the client to answer a ping or a close (default 20); past it the socket closes")
    ap.add_argument("--ws-per-message-deflate", choices=["true", "false"],
                    help="offer permessage-deflate to websocket clients that ask (default true)")
    ap.add_argument("--ssl-certfile", metavar="PATH", help="TLS: the PEM certificate chain, server certificate first")
    ap.add_argument("--ssl-keyfile", metavar="PATH", help="TLS: the PEM private key of --ssl-certfile (unencrypted)")
    ap.add_argument("--ssl-keyfile-password", metavar="VALUE", help="refused: encrypted keys are not read")
    ap.add_argument("--ssl-ca-certs", metavar="PATH",
                    help="TLS: ask clients for a certificate issued by these CAs (PEM bundle; required unless "
                         "--ssl-cert-reqs 1)")
    ap.add_argument("--ssl-cert-reqs", metavar="0|1|2",
                    help="client certificates: 0 none, 1 optional, 2 required (the default with --ssl-ca-certs)")
    ap.add_argument("--ssl-ciphers", metavar="SUITE:...",
                    help="TLS cipher suites by OpenSSL or IANA name, ':'-separated (uvicorn's TLSv1: corral's default)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="any engine option")
    a = ap.parse_args(argv)
    tls = tls_options(a)
    if not 1 <= a.workers <= 256:
        print(f"corral: --workers must be 1 to 256, not {a.workers}", file=sys.stderr)
        return 2
    if a.max_requests < 0 or a.max_requests_jitter < 0:
        print("corral: --max-requests and --max-requests-jitter must be 0 or more", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from . import _corral

    # Socket activation: the service manager's listener is served (named by --fd as
    # well, it is taken once). The variables are gone for the workers.
    activated = [fd for fd, _name in _corral.listen_fds()]
    if activated and a.fd is None:
        a.fd = activated[0]
    if len(activated) > 1:
        print(f"corral: socket activation passed {len(activated)} sockets; serving the first only", file=sys.stderr)
        for fd in activated[1:]:
            os.close(fd)
    if (a.listeners_from or a.offer_listeners) and (a.workers > 1 or a.max_requests):
        print("corral: --listeners-from/--offer-listeners hand one process's sockets to the next; "
              "leave out --workers and --max-requests", file=sys.stderr)
        return 2
    if a.workers > 1 or (a.max_requests and not _Supervisor.from_env().present):
        return supervise(a, argv if argv is not None else sys.argv[1:])
    app = load(a.app)
    iface = a.interface or interface_of(app)
    from . import asgi, wsgi

    opts: Dict[str, Any] = options(a.set)
    if a.backlog is not None:
        opts["backlog"] = a.backlog
    if a.listeners_from:
        opts["listeners_from"] = a.listeners_from
    if a.proxy_protocol:
        opts["proxy_protocol"] = a.proxy_protocol
    if a.proxy_trusted is not None:
        opts["proxy_trusted"] = a.proxy_trusted
    opts.update(ws_options(a))
    opts.update(tls)
    listener = socket.socket(fileno=a.fd) if a.fd is not None else None
    if not _Supervisor.from_env().present:
        opts.setdefault("sd_notify", True)  # READY=1 / STOPPING=1 (a supervisor's workers leave it to it)
    try:
        if iface == "asgi":
            if a.threads != 1 or a.upload_threads is not None:
                raise ConfigError("--threads and --upload-threads are for WSGI apps: an ASGI app runs on its event loop")
            server = asgi.serve(app, a.host, a.port, allow_public=a.allow_public, listener=listener, access_log=a.access_log, **opts)
        else:
            server = wsgi.serve(
                app, a.host, a.port, allow_public=a.allow_public, listener=listener, threads=a.threads, access_log=a.access_log,
                **({} if a.upload_threads is None else {"upload_threads": a.upload_threads}), **opts
            )
    except (Error, OSError) as e:
        kind = "configuration" if isinstance(e, ConfigError) else "cannot serve"
        print(f"corral: {kind}: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if scheme(a) == "https":
        signal.signal(signal.SIGHUP, lambda *_: reload_tls(server))
    host, port = server.address
    print(f"listening on {scheme(a)}://{host}:{port}", flush=True)
    sup = _Supervisor.from_env()
    sup.tell("ready")
    if a.offer_listeners:

        def offer() -> None:
            while not stop.is_set():
                try:
                    server.hand_over(a.offer_listeners, 3600.0)
                except StateError:
                    continue  # nobody came within the hour: offer again
                except (Error, OSError) as e:
                    logging.getLogger("corral").error("hand-over: %s", e)
                    return
                logging.getLogger("corral").info("a successor serves the listeners now; draining")
                stop.set()
                return

        threading.Thread(target=offer, name="corral-offer", daemon=True).start()
    limit = a.max_requests + random.randint(0, a.max_requests_jitter) if a.max_requests and sup.present else 0
    while not stop.wait(0.25 if limit else 1.0):
        if limit and server.stats()["replies"] >= limit:
            # Ask for a replacement and serve on until it is ready (the supervisor's
            # SIGTERM then drains this one): the socket is never without a worker.
            logging.getLogger("corral").info("served %d requests (--max-requests): asking to be replaced", limit)
            sup.tell("recycle")
            limit = 0
    report = server.close(a.graceful_timeout)
    print(f"corral: stopped: {report}", flush=True)
    if _Supervisor.from_env().present:
        logging.getLogger("corral").info("worker pid %d stopped: %s", os.getpid(), report)
    return 0


class _Supervisor:
    """The pipe to the supervisor (``CORRAL_SUPERVISOR_FD``), if this is one of its
    workers: one line per message, ``ready PID`` or ``recycle PID``."""

    def __init__(self, fd: Optional[int]) -> None:
        self.fd = fd

    @classmethod
    def from_env(cls) -> "_Supervisor":
        v = os.environ.get("CORRAL_SUPERVISOR_FD")
        return cls(int(v) if v and v.isdigit() else None)

    @property
    def present(self) -> bool:
        return self.fd is not None

    def tell(self, what: str) -> None:
        if self.fd is not None:
            try:
                os.write(self.fd, f"{what} {os.getpid()}\n".encode())
            except OSError:
                self.fd = None  # the supervisor is gone; serve on alone


def _without(argv: List[str], flags: List[str]) -> List[str]:
    """`argv` less each of `flags` and its value (`--flag V` or `--flag=V`)."""
    out: List[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in flags:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def _listeners(a: argparse.Namespace) -> List[socket.socket]:
    """One SO_REUSEPORT socket per worker on the same address: the kernel spreads new
    connections over them by a hash of the client's address and port."""
    family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    socks: List[socket.socket] = []
    port = a.port
    for _ in range(a.workers):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((a.host, port))
        port = s.getsockname()[1]  # the port the kernel chose for port 0, for the others
        s.listen(a.backlog or 1024)
        s.set_inheritable(True)
        socks.append(s)
    return socks


def supervise(a: argparse.Namespace, argv: List[str]) -> int:
    """Binds once and runs ``a.workers`` worker processes. Each worker serves its own
    SO_REUSEPORT socket, which the supervisor holds too: a worker that dies takes no
    queue with it (connections waiting there stay queued, nothing is reset) and its
    replacement serves the same socket. A worker that exits is logged and replaced;
    SIGTERM or SIGINT drains every worker within --graceful-timeout and exits 0."""
    log = logging.getLogger("corral")
    from . import _corral

    if a.fd is not None:
        # An inherited (or socket-activated) socket has no SO_REUSEPORT siblings: every
        # worker serves this one, and the supervisor holds it.
        shared = socket.socket(fileno=a.fd)
        shared.set_inheritable(True)
        socks = [shared] * a.workers
    elif a.host in ("0.0.0.0", "::") and not a.allow_public:
        print(f"corral: refusing to listen on {a.host}: a wildcard address accepts connections on every "
              "interface; name a specific address, or pass --allow-public to mean it", file=sys.stderr)
        return 2
    else:
        try:
            socks = _listeners(a)
        except OSError as e:
            print(f"corral: cannot serve: cannot listen on {a.host}:{a.port}: {e}", file=sys.stderr)
            return 2
    child_args = _without(argv, ["--workers", "--fd", "--host", "--port", "--backlog"])
    if len(set(map(id, socks))) == 1 and a.workers > 1:
        log.info("all %d workers serve one inherited socket", a.workers)
    # Workers tell the supervisor when they serve and when they want replacing.
    told_r, told_w = os.pipe()
    os.set_inheritable(told_w, True)
    env = dict(os.environ, CORRAL_SUPERVISOR_FD=str(told_w))
    env.pop("NOTIFY_SOCKET", None)  # the supervisor speaks for the group
    # The processes share the cores: unless told otherwise, each gets its share of I/O
    # workers and CPU threads instead of one of each per core.
    share = str(max(1, (os.cpu_count() or 1) // a.workers))
    given = set(options(a.set))
    for name in ("io_workers", "cpu_threads"):
        if name not in given:
            child_args = ["--set", f"{name}={share}", *child_args]
    stop = threading.Event()
    changed = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: (stop.set(), changed.set()))
    signal.signal(signal.SIGCHLD, lambda *_: changed.set())
    if scheme(a) == "https":
        # Each worker reads the certificate files again itself.
        signal.signal(signal.SIGHUP, lambda *_: [p.send_signal(signal.SIGHUP) for p in live() if p.poll() is None])

    def spawn(i: int) -> "subprocess.Popen[bytes]":
        fd = socks[i].fileno()
        cmd = [sys.executable, "-m", "corral", "--fd", str(fd), *child_args]
        p = subprocess.Popen(cmd, pass_fds=(fd, told_w), stdout=subprocess.DEVNULL, env=env)
        log.info("worker %d started (pid %d)", i, p.pid)
        return p

    workers = [spawn(i) for i in range(a.workers)]
    told_ready = False  # READY=1 once the first worker serves
    # Workers being replaced (--max-requests): new pid -> the old process, which gets
    # SIGTERM once the new one is ready.
    retiring: Dict[int, "subprocess.Popen[bytes]"] = {}

    def live() -> List["subprocess.Popen[bytes]"]:
        return workers + list(retiring.values())

    old: List["subprocess.Popen[bytes]"] = []
    messages: List[str] = []
    lock = threading.Lock()

    def listen() -> None:
        with os.fdopen(told_r, "r") as f:
            for line in f:
                with lock:
                    messages.append(line)
                changed.set()

    threading.Thread(target=listen, name="corral-supervisor-pipe", daemon=True).start()
    host, port = socks[0].getsockname()[:2]
    print(f"listening on {scheme(a)}://{host}:{port}", flush=True)
    while not stop.is_set():
        changed.wait()
        changed.clear()
        with lock:
            got, messages[:] = list(messages), []
        for line in got:
            what, _, pid_text = line.strip().partition(" ")
            pid = int(pid_text) if pid_text.isdigit() else -1
            if what == "recycle":
                for i, p in enumerate(workers):
                    if p.pid == pid and not stop.is_set():
                        log.info("worker %d (pid %d) reached --max-requests; starting its replacement", i, pid)
                        workers[i] = spawn(i)
                        retiring[workers[i].pid] = p
                        break
            elif what == "ready":
                if not told_ready:
                    told_ready = True
                    _corral.notify("READY=1")
                if pid in retiring:
                    p = retiring.pop(pid)
                    p.send_signal(signal.SIGTERM)
                    old.append(p)
        old[:] = [p for p in old if p.poll() is None]
        for i, p in enumerate(workers):
            if not stop.is_set() and p.poll() is not None:
                log.warning("worker %d (pid %d) exited with %s; starting another", i, p.pid, p.returncode)
                workers[i] = spawn(i)
                if p.pid in retiring:  # a replacement that died: the next one takes over
                    retiring[workers[i].pid] = retiring.pop(p.pid)
    _corral.notify("STOPPING=1")
    for p in workers + list(retiring.values()) + old:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in workers + list(retiring.values()) + old:
        try:
            p.wait(a.graceful_timeout + 5.0)
        except subprocess.TimeoutExpired:
            log.error("worker pid %d did not drain in time; killing it", p.pid)
            p.kill()
            p.wait()
    for s in socks:
        s.close()
    print("corral: stopped: every worker drained", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
