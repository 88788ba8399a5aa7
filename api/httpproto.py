"""uvicorn's httptools HTTP protocol plus a read deadline (slowloris).

uvicorn times out only idle keep-alive connections, after a response: a client that
connects and sends nothing, or sends its request line and headers a byte at a time,
or a declared body slower than the node's request timeout, keeps its connection (and
a file descriptor) for as long as it likes, so a few thousand such connections from
one host exhaust a node. Here each request must arrive in full (head and body)
within ``read_timeout`` seconds of the connection (first request) or of its first
byte (next requests on a keep-alive connection), else the connection is closed.
A WebSocket upgrade leaves the deadline behind (the socket has its ``auth`` timeout).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class DeadlineHttpProtocol(HttpToolsProtocol):
    read_timeout: float = 15.0
    _deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.read_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()


def http_protocol(read_timeout: float) -> type[DeadlineHttpProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with this deadline."""
    return type("DeadlineHttpProtocol", (DeadlineHttpProtocol,), {"read_timeout": read_timeout})
