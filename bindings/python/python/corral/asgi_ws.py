"""The ASGI websocket cycle (websocket spec 2.4, with the ``websocket.http.response``
extension) on corral: one ``WebSocketCycle`` per request that asks for a websocket.

The first ``receive()`` is ``websocket.connect``. The app answers with
``websocket.accept`` (subprotocol, headers: the engine sends the 101),
``websocket.close`` (HTTP 403), or ``websocket.http.response.start`` and ``.body``
(that HTTP response; ``more_body`` parts are joined). An app that returns without
any of them gets a 403, one that raises a 500.

Once accepted, the socket's events come from the engine's host queue, dispatched on the
loop in batches (``on_message``, ``on_drain``, ``on_close``). Messages wait in a queue
of ``MAX_QUEUE`` for the app's ``receive()``; when it is full the engine stops reading
the socket (TCP holds the client back) until the app has taken half of them.
``receive()`` gives them in order, then ``websocket.disconnect`` with the close code
(the client's, 1005 when it sent none, 1006 when the connection just ended) and reason.
``send()`` waits while the client is not keeping up (the engine said back-pressure)
and raises ``ClientDisconnected`` (an ``OSError``) once the socket is closed, by either
side. An app that raises after accepting has its socket closed with 1011; one that
returns, with 1000.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Deque, Dict, List, Optional, Tuple, Union

__all__ = ["ClientDisconnected", "WebSocketCycle", "MAX_QUEUE"]

#: Messages received and not yet taken by the app at which the engine stops reading the
#: socket (uvicorn's ``ws_max_queue``).
MAX_QUEUE = 32

# Where the cycle is.
CONNECTING = "connecting"  # no answer to the handshake yet
OPEN = "open"  # accepted
CLOSED = "closed"  # closed by either side (or the client left before an answer)
RESPONDED = "responded"  # denied with an HTTP response


class ClientDisconnected(OSError):
    """``send()`` on a websocket that is closed (by the client, or by the app's
    ``websocket.close``), or an accept after the client left."""


def _latin1(b: Union[bytes, str]) -> str:
    return b.decode("latin-1") if isinstance(b, (bytes, bytearray)) else str(b)


class WebSocketCycle:
    """One websocket request's ASGI cycle: ``receive``/``send`` for the app, and the
    handler whose ``on_*`` methods the engine calls on the loop."""

    def __init__(self, waits: Dict[Tuple[int, str], "asyncio.Future[None]"], key: int, responder: Any) -> None:
        self.waits = waits
        self.key = key
        self.responder = responder
        # Made on the loop; kept because asyncio.get_running_loop() makes a getpid()
        # system call each time (measured: a third of the loop's time on echo).
        self.loop = asyncio.get_running_loop()
        self.state = CONNECTING
        self.connected = False  # websocket.connect was given
        self.ws: Any = None  # the native WebSocket once accepted
        self.queue: Deque[Union[str, bytes]] = collections.deque()
        self.paused = False
        # The websocket.disconnect message, once the socket closed.
        self.disconnect: Optional[Dict[str, Any]] = None
        # A receive() waiting for a message, and a send() for the backlog to drain.
        self.waiter: Optional["asyncio.Future[None]"] = None
        self.drained: Optional["asyncio.Future[None]"] = None
        self.response: Optional[Dict[str, Any]] = None  # websocket.http.response.start
        self.body: List[bytes] = []
        self.status: Optional[int] = None  # for the access log

    # -- the engine's events (on the loop) --

    def on_message(self, ws: Any, data: Union[str, bytes]) -> None:
        self.queue.append(data)
        if len(self.queue) >= MAX_QUEUE and not self.paused:
            self.paused = True
            ws.pause()
        self._wake()

    def on_drain(self, _ws: Any) -> None:
        self._drained()

    def on_close(self, _ws: Any, code: int, reason: str) -> None:
        self.state = CLOSED
        self.disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
        self._wake()
        self._drained()

    def _wake(self) -> None:
        w, self.waiter = self.waiter, None
        if w is not None and not w.done():
            w.set_result(None)

    def _drained(self) -> None:
        d, self.drained = self.drained, None
        if d is not None and not d.done():
            d.set_result(None)

    def _gone(self, _fut: "asyncio.Future[None]") -> None:
        # The client left before the app answered the handshake.
        if self.state == CONNECTING and self.disconnect is None:
            self.disconnect = {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        self._wake()

    # -- the app's side --

    async def receive(self) -> Dict[str, Any]:
        if not self.connected:
            self.connected = True
            return {"type": "websocket.connect"}
        while True:
            if self.queue:
                data = self.queue.popleft()
                if self.paused and len(self.queue) <= MAX_QUEUE // 2:
                    self.paused = False
                    self.ws.resume()
                if isinstance(data, str):
                    return {"type": "websocket.receive", "text": data}
                return {"type": "websocket.receive", "bytes": data}
            if self.disconnect is not None:
                return self.disconnect
            if self.state == RESPONDED:
                return {"type": "websocket.disconnect", "code": 1006, "reason": ""}
            self.waiter = self.loop.create_future()
            if self.state == CONNECTING and (self.key, "gone") not in self.waits:
                # Waiting before an answer: hear if the client leaves meanwhile.
                gone = self.loop.create_future()
                gone.add_done_callback(self._gone)
                self.waits[(self.key, "gone")] = gone
                self.responder.notify(self.key, "gone")
            await self.waiter

    async def send(self, message: Dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "websocket.send":
            await self._send_data(message)
        elif kind == "websocket.accept":
            self._accept(message)
        elif kind == "websocket.close":
            self._close(message)
        elif kind == "websocket.http.response.start":
            if self.state != CONNECTING or self.response is not None:
                raise RuntimeError("websocket.http.response.start comes once, before any other answer to the handshake")
            self.response = message
        elif kind == "websocket.http.response.body":
            self._respond(message)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on a websocket connection")

    def _accept(self, message: Dict[str, Any]) -> None:
        if self.state != CONNECTING or self.response is not None:
            raise RuntimeError(f"websocket.accept after the handshake was answered (the socket is {self.state})")
        headers = [(_latin1(k), _latin1(v)) for k, v in message.get("headers") or ()]
        try:
            self.ws = self.responder.upgrade(self, message.get("subprotocol"), headers)
        except BrokenPipeError:
            self.state = CLOSED
            if self.disconnect is None:
                self.disconnect = {"type": "websocket.disconnect", "code": 1006, "reason": ""}
            raise ClientDisconnected("the client left before the websocket was accepted") from None
        self.state = OPEN
        self.status = 101
        self._wake()

    def _close(self, message: Dict[str, Any]) -> None:
        if self.state == CONNECTING and self.response is None:
            # Refused before accepting: HTTP 403 (the spec's answer).
            self.state = RESPONDED
            self.status = 403
            self.responder.respond_http(403, [], b"")
            self._wake()
        elif self.state == OPEN:
            self.state = CLOSED
            self.ws.close(int(message.get("code") or 1000), message.get("reason") or "")
        else:
            raise ClientDisconnected(f"websocket.close on a websocket that is {self.state}")

    def _respond(self, message: Dict[str, Any]) -> None:
        start = self.response
        if start is None or self.state != CONNECTING:
            raise RuntimeError("websocket.http.response.body needs websocket.http.response.start first")
        self.body.append(bytes(message.get("body", b"")))
        if message.get("more_body", False):
            return
        self.state = RESPONDED
        self.status = start.get("status")
        self.responder.respond_asgi(start.get("status"), start.get("headers", ()), b"".join(self.body))
        self.body = []
        self._wake()

    async def _send_data(self, message: Dict[str, Any]) -> None:
        if self.state == CONNECTING:
            raise RuntimeError("websocket.send before websocket.accept")
        # One send at a time past back-pressure: a send made while over it would be dropped.
        while self.drained is not None and self.state == OPEN:
            await asyncio.shield(self.drained)
        if self.state != OPEN:
            raise ClientDisconnected(f"the websocket is {self.state}: nothing more can be sent on it")
        data = message.get("bytes")
        if data is None:
            data = message.get("text")
            if data is None:
                raise RuntimeError("websocket.send needs bytes or text")
        elif not isinstance(data, bytes):
            data = bytes(data)
        sent = self.ws.send(data)
        if sent == 0:
            self.state = CLOSED
            if self.ws.is_open:
                # Over the back-pressure limit without having been told (another sender
                # on the socket): the message is lost, so the socket cannot go on.
                self.ws.close(1011, "")
            raise ClientDisconnected("the websocket closed: the message was not sent")
        if sent < 0 and self.state == OPEN:
            # Queued, but the client is not keeping up: return once it has caught up.
            fut = self.drained = self.loop.create_future()
            await asyncio.shield(fut)

    # -- the end of the app's call --

    def failed(self) -> None:
        """The app raised: a 500 before an answer, close 1011 after accepting."""
        if self.state == CONNECTING:
            self.state = RESPONDED
            self.status = 500
            self.responder.fail()
        elif self.state == OPEN:
            self.state = CLOSED
            self.ws.close(1011, "")

    def returned(self) -> bool:
        """The app returned: a 403 if it did not answer the handshake (False then), close
        1000 if the socket is still open."""
        if self.state == CONNECTING:
            self.state = RESPONDED
            self.status = 403
            self.responder.respond_http(403, [], b"")
            return False
        if self.state == OPEN:
            self.state = CLOSED
            self.ws.close(1000, "")
        return True
