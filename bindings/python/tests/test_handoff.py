"""Handoff: corral accepts, Python serves (blocking API)."""

from __future__ import annotations

import errno
import os
import signal
import socket
import threading

import pytest

import corral
from corral import _corral


def test_accept_gives_a_connected_socket_the_caller_owns(deadline):
    with corral.listen(("127.0.0.1", 0), acceptors=2) as listener:
        client = socket.create_connection(listener.address, timeout=deadline)
        sock = listener.accept(timeout=deadline)
        assert isinstance(sock, socket.socket)
        assert sock.getpeername() == client.getsockname()
        assert not sock.get_inheritable(), "close-on-exec"
        sock.sendall(b"ping")
        assert client.recv(4) == b"ping"
        sock.close()
        client.close()
        st = listener.stats()
        assert st["accepts"] == 1
        assert st["listeners"][0]["listen_queue_max"] > 0


def test_accept_many_and_fileno(deadline):
    import select

    with corral.listen(("127.0.0.1", 0)) as listener:
        clients = [socket.create_connection(listener.address, timeout=deadline) for _ in range(5)]
        got = []
        while len(got) < 5:
            r, _, _ = select.select([listener.fileno()], [], [], deadline)
            assert r, "the notify fd turns readable"
            got += listener.accept_many(16)
        assert listener.accept_many(16) == []
        r, _, _ = select.select([listener.fileno()], [], [], 0)
        assert not r, "drained: the notify fd is reset"
        assert sorted(s.getpeername() for s in got) == sorted(c.getsockname() for c in clients)
        for s in got + clients:
            s.close()


def test_accept_times_out():
    with corral.listen(("127.0.0.1", 0)) as listener:
        with pytest.raises(TimeoutError):
            listener.accept(timeout=0.05)


def test_ctrl_c_interrupts_a_blocking_accept():
    with corral.listen(("127.0.0.1", 0)) as listener:
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                listener.accept()
        finally:
            timer.cancel()


def test_errors_map_to_python_classes():
    with pytest.raises(corral.PublicAddressError) as e:
        corral.listen(("0.0.0.0", 0))
    assert isinstance(e.value, ValueError) and "allow_public" in str(e.value)
    with pytest.raises(corral.ConfigError, match="acceptors"):
        corral.listen(("127.0.0.1", 0), acceptors=0)
    with pytest.raises(ValueError, match="unknown option"):
        _corral.Engine("handoff", [("127.0.0.1", 0)], {"nope": 1})
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    with pytest.raises(corral.BindError) as b:
        corral.listen(taken.getsockname())
    assert isinstance(b.value, OSError) and b.value.errno == errno.EADDRINUSE
    taken.close()


def test_close_reports_and_twice_is_a_state_error(deadline):
    listener = corral.listen(("127.0.0.1", 0))
    client = socket.create_connection(listener.address, timeout=deadline)
    assert listener._engine.wait(deadline)
    report = listener.close(1.0)
    assert report["handoff_unclaimed"] == 1
    assert listener.closed
    with pytest.raises(corral.StateError):
        listener.close()
    with pytest.raises(corral.StateError):
        listener.accept_many()
    client.close()


def test_wrong_mode_is_reported():
    s = corral.serve(lambda r: b"x")
    with pytest.raises(corral.WrongModeError):
        s._engine.take(1)
    s.close()


def test_with_proxy_protocol_the_client_comes_beside_the_socket_and_the_header_is_read(deadline):
    with corral.listen(("127.0.0.1", 0), proxy_protocol="v1") as listener:
        client = socket.create_connection(listener.address, timeout=deadline)
        client.sendall(b"PROXY TCP6 2001:db8::7 2001:db8::1 4242 443\r\nhello")
        a = listener.accept_client(timeout=deadline)
        assert a.peer == ("2001:db8::7", 4242), "the client the balancer saw"
        assert a.proxy == {"version": 1, "source": ("2001:db8::7", 4242), "destination": ("2001:db8::1", 443), "tlvs": []}
        assert a.socket.family == socket.AF_INET, "the socket's own family (an IPv4 balancer)"
        assert a.socket.recv(5) == b"hello", "only the client's own bytes are left to read"
        a.socket.close()
        client.close()
    with corral.listen(("127.0.0.1", 0)) as plain:
        client = socket.create_connection(plain.address, timeout=deadline)
        a = plain.accept_client(timeout=deadline)
        assert (a.peer, a.proxy) == (client.getsockname(), None)
        a.socket.close()
        client.close()
