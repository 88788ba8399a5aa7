"""One WebSocket connection: identity, subscriptions and a bounded outbound queue.

``push`` never blocks and never awaits: it appends to the queue that the writer
task drains. A consumer that lets the queue grow past its limit is closed with
4408 (slow consumer) instead of being waited on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from api.session_orders import SessionOrders
from api.tokens import Principal
from api.wsproto import Frame

log = logging.getLogger("hftx.ws")

Send = Callable[[dict[str, Any]], Awaitable[None]]

CLOSE_NORMAL = 1000
CLOSE_TOO_BIG = 1009
CLOSE_RESTART = 1012
CLOSE_AUTH = 4401
CLOSE_SLOW = 4408
CLOSE_FLOOD = 4429

CLOSE_SEND_TIMEOUT = 5.0

_ids = itertools.count(1)


class Connection:
    def __init__(
        self,
        send: Send,
        max_msgs: int,
        max_bytes: int,
        on_closed: Callable[[Connection], None] | None = None,
        on_server_close: Callable[[int], None] | None = None,
    ) -> None:
        self.id = next(_ids)
        self._send = send
        self.max_msgs = max_msgs
        self.max_bytes = max_bytes
        self.queue: deque[str | Frame] = deque()
        self.queued_bytes = 0
        self._wake = asyncio.Event()
        self.closed = False
        self.close_code: int | None = None
        self.principal: Principal | None = None
        self.refused_before_auth = 0  # requests refused (401, 400) before a successful auth
        # private channel -> market filter (None: every market)
        self.private: dict[str, frozenset[str] | None] = {}
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._on_closed = on_closed
        self._on_server_close = on_server_close  # told the code of a close we start
        self.expiry: asyncio.TimerHandle | None = None
        self.reader: asyncio.Task[Any] | None = None  # the task reading this socket
        self._drained: asyncio.Event | None = None
        self._busy = False  # a send is in progress (writer task or answer fast path)
        self.orders = SessionOrders()  # what this socket placed (cancel on disconnect)
        self.handling = False  # a request of this socket is being handled

    def __hash__(self) -> int:
        return self.id

    def __eq__(self, other: object) -> bool:
        return self is other

    @property
    def user_id(self) -> str | None:
        return self.principal.user_id if self.principal else None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name=f"ws-writer:{self.id}")

    def push(self, item: str | Frame) -> None:
        """Queue a message for the socket; drop the connection if it cannot keep up.

        ``item`` is a text, or a :class:`~api.wsproto.Frame` shared by the
        subscribers of a fan-out (framed once for all of them).
        """
        if self.closed:
            return
        size = len(item) if isinstance(item, str) else len(item.data)
        if len(self.queue) >= self.max_msgs or self.queued_bytes + size > self.max_bytes:
            self.close_soon(CLOSE_SLOW, "slow consumer")
            return
        self.queue.append(item)
        self.queued_bytes += size
        if len(self.queue) == 1:
            self._wake.set()

    async def answer(self, text: str) -> None:
        """Send an answer: at once when nothing is waiting (no writer wake-up), else queued.

        Answers keep their place relative to pushes: the fast path is only taken when
        the queue is empty and no send is in progress.
        """
        if self.closed:
            return
        if self.queue or self._busy:
            self.push(text)
            return
        self._busy = True
        try:
            await self._send({"type": "websocket.send", "text": text})
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the peer went away
            log.debug("ws %d: send failed: %r", self.id, exc)
            self.closed = True
        finally:
            self._busy = False
            if self.queue:
                self._wake.set()

    async def _write_loop(self) -> None:
        queue = self.queue
        send = self._send
        try:
            while True:
                if not queue or self._busy:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                item = queue.popleft()
                self._busy = True
                try:
                    if isinstance(item, str):
                        self.queued_bytes -= len(item)
                        await send({"type": "websocket.send", "text": item})
                    else:
                        self.queued_bytes -= len(item.data)
                        await send(item.message())
                finally:
                    self._busy = False
                if self._drained is not None and len(queue) <= self.max_msgs // 4:
                    self._drained.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the peer went away
            log.debug("ws %d: send failed: %r", self.id, exc)
            self.closed = True

    async def backpressure(self) -> None:
        """Before reading the next request: wait while the queue is over half full.

        A client pipelining requests faster than it reads the answers is slowed down
        (TCP pushes back) instead of being taken for a slow consumer; only pushes
        can overflow the queue.
        """
        while not self.closed and (
            len(self.queue) > self.max_msgs // 2 or self.queued_bytes > self.max_bytes // 2
        ):
            self._drained = asyncio.Event()
            await self._drained.wait()
        self._drained = None

    async def flush(self, timeout: float) -> None:
        """Wait until the queue is empty (or ``timeout``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.queue and not self.closed and loop.time() < deadline:
            await asyncio.sleep(0.01)

    def close_soon(self, code: int, reason: str = "") -> None:
        """Close without waiting: drop what is queued, send the close frame."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        if self._on_server_close is not None:
            self._on_server_close(code)
        if self._drained is not None:
            self._drained.set()
        self.queue.clear()
        self.queued_bytes = 0
        self._closer = asyncio.create_task(self._close(code, reason))

    async def close_after_flush(self, code: int, reason: str = "", timeout: float = 1.0) -> None:
        """Send what is queued (an error answer, a shutdown push), then close."""
        if self.closed:
            return
        await self.flush(timeout)
        self.close_soon(code, reason)
        if self._closer is not None:
            with contextlib.suppress(Exception):
                await self._closer

    async def _close(self, code: int, reason: str) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(BaseException):
                await self._writer
        try:
            # Flow control may hold the close frame while the peer does not read: give
            # it a few seconds, then abandon the socket (the read loop is cancelled).
            await asyncio.wait_for(
                self._send({"type": "websocket.close", "code": code, "reason": reason}),
                CLOSE_SEND_TIMEOUT,
            )
        except Exception:
            if self.reader is not None and not self.reader.done():
                self.reader.cancel()

    def finish(self) -> None:
        """The socket is gone: stop the writer, forget subscriptions."""
        self.closed = True
        if self._drained is not None:
            self._drained.set()
        if self.expiry is not None:
            self.expiry.cancel()
        if self._writer is not None and self._closer is None:
            self._writer.cancel()
        if self._on_closed is not None:
            callback, self._on_closed = self._on_closed, None
            callback(self)
