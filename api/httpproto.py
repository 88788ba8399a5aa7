"""uvicorn's httptools HTTP protocol plus a read deadline (slowloris).

uvicorn times out only idle keep-alive connections, after a response: a client that
connects and sends nothing, or sends its request line and headers a byte at a time,
or a declared body slower than the node's request timeout, keeps its connection (and
a file descriptor) for as long as it likes, so a few thousand such connections from
one host exhaust a node. Here each request must arrive in full (head and body)
within ``read_timeout`` seconds of the connection (first request) or of its first
byte (next requests on a keep-alive connection), else the connection is closed.
A WebSocket upgrade leaves the deadline behind (the socket has its ``auth`` timeout).

Nor does uvicorn (with httptools) bound the size of a request's head: one header
line of 90 MiB was buffered whole (the node grew by 150 MB for one connection).
A head (request line and headers) over ``MAX_HEAD`` bytes is answered 431 and the
connection closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD = 64 * 1024  # bytes of a request line and headers


def _head_too_large() -> bytes:
    body = orjson.dumps(
        {
            "error": {
                "code": "PAYLOAD_TOO_LARGE",
                "message": f"request headers larger than {MAX_HEAD} bytes",
            }
        }
    )
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n" + body
    )


HEAD_TOO_LARGE = _head_too_large()


class DeadlineHttpProtocol(HttpToolsProtocol):
    read_timeout: float = 15.0
    _deadline: asyncio.TimerHandle | None = None
    _head: int | None = 0  # bytes of the request head so far; None while in a body

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

    def data_received(self, data: bytes) -> None:
        if self._head is not None:
            self._head += len(data)
        super().data_received(data)
        if self._head is not None and self._head > MAX_HEAD and not self.transport.is_closing():
            self.transport.write(HEAD_TOO_LARGE)
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._head = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._head = 0  # what comes next is the next request's head
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()


def http_protocol(read_timeout: float) -> type[DeadlineHttpProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with this deadline."""
    return type("DeadlineHttpProtocol", (DeadlineHttpProtocol,), {"read_timeout": read_timeout})
