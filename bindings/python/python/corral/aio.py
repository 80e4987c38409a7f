"""asyncio on top of a handoff engine: ``corral.aio.start_server`` has the shape of
``asyncio.start_server``, but corral's threads accept and the loop only serves.

Moving an existing asyncio server's accept to corral is a two-line change::

    server = await asyncio.start_server(handle, "127.0.0.1", 8080)        # before
    server = await corral.aio.start_server(handle, "127.0.0.1", 8080)     # after
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Awaitable, Callable, Optional, Set

from . import Listener, listen

ClientConnected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Optional[Awaitable[None]]]

__all__ = ["Server", "start_server"]


class Server:
    """Like ``asyncio.Server``: ``async with``, ``serve_forever()``, ``close()``,
    ``wait_closed()``. The notify fd sits in the loop with ``add_reader``; each wake-up
    takes a batch of accepted sockets and hands them to ``connect_accepted_socket``."""

    def __init__(
        self, listener: Listener, client_connected_cb: ClientConnected, loop: asyncio.AbstractEventLoop, limit: int
    ) -> None:
        self._listener = listener
        self._cb = client_connected_cb
        self._loop = loop
        self._limit = limit
        self._serving = False
        self._closed = loop.create_future()
        self._tasks: Set["asyncio.Task[Any]"] = set()

    @property
    def listener(self) -> Listener:
        return self._listener

    @property
    def address(self) -> tuple:
        return self._listener.address

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        if self._serving or self._closed.done():
            return
        self._serving = True
        self._loop.add_reader(self._listener.fileno(), self._on_ready)
        # Connections that were queued before we started watching.
        self._on_ready()

    def _on_ready(self) -> None:
        for sock in self._listener.accept_many(64):
            task = self._loop.create_task(self._connect(sock))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _connect(self, sock: socket.socket) -> None:
        reader = asyncio.StreamReader(limit=self._limit, loop=self._loop)
        protocol = asyncio.StreamReaderProtocol(reader, self._cb, loop=self._loop)
        try:
            await self._loop.connect_accepted_socket(lambda: protocol, sock)
        except OSError:
            sock.close()

    def close(self) -> None:
        """Stops accepting and closes the engine (open connections stay open)."""
        if self._serving:
            self._loop.remove_reader(self._listener.fileno())
            self._serving = False
        if not self._listener.closed:
            self._listener.close(1.0)
        if not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    async def serve_forever(self) -> None:
        await self.start_serving()
        try:
            await asyncio.shield(self._closed)
        finally:
            self.close()

    async def __aenter__(self) -> "Server":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


async def start_server(
    client_connected_cb: ClientConnected,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    limit: int = 2**16,
    start_serving: bool = True,
    allow_public: bool = False,
    **options: Any,
) -> Server:
    """``asyncio.start_server`` with corral accepting on its own threads. ``options`` are
    the handoff engine's options by name (``acceptors``, ``backlog``, ``handoff_capacity``,
    ...; see ``corral.options()``)."""
    loop = asyncio.get_running_loop()
    listener = listen((host, port), allow_public=allow_public, **options)
    server = Server(listener, client_connected_cb, loop, limit)
    if start_serving:
        await server.start_serving()
    return server
