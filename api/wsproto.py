"""Pre-encoded WebSocket frames for fan-out (an optional uvicorn protocol).

Server-to-client frames are not masked, so the bytes of a text frame are the same
for every subscriber: a market-data push is framed once (:class:`Frame`) and
written as is to each socket. :class:`FanoutProtocol` is uvicorn's sans-I/O
WebSocket protocol plus one thing: a ``websocket.send`` message carrying
``hftx.frame`` (those bytes) is written directly, after the same flow-control and
state checks, skipping websockets' per-socket framing. Any other ASGI server
ignores the key and sends ``text`` as usual.

It also stops reading a socket while its outbound buffer is over the transport's
high-water mark: websockets answers each ping with a pong written at once, so a
client sending pings without reading made the node buffer pongs without bound
(100 MB in 8 s on one socket, before ``auth`` even).
"""

from __future__ import annotations

import struct
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

FRAME_KEY = "hftx.frame"


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final text frame (RFC 6455 section 5.2) around ``payload``."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class Frame:
    """A push: its text and its frame bytes, computed once for all subscribers."""

    __slots__ = ("data", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.data = text_frame(text.encode())

    def message(self) -> dict[str, Any]:
        return {"type": "websocket.send", "text": self.text, FRAME_KEY: self.data}


class FanoutProtocol(WebSocketsSansIOProtocol):
    def pause_writing(self) -> None:
        super().pause_writing()
        self.transport.pause_reading()  # what it sends could only add to what it does not read

    def resume_writing(self) -> None:
        super().resume_writing()
        if not self.read_paused:  # uvicorn's own pause (its queue to the app is full)
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.writable.is_set() and not self.transport.is_closing():
            self.transport.pause_reading()  # uvicorn's receive() may have resumed it

    async def send(self, message: Any) -> None:
        frame = message.get(FRAME_KEY) if message["type"] == "websocket.send" else None
        if (
            frame is None
            or not self.handshake_complete
            or self.initial_response is not None
            or self.conn.extensions  # compression negotiated: frames differ per socket
        ):
            await super().send(message)
            return
        if not self.writable.is_set():
            await self.writable.wait()
        if self.disconnected or self.close_sent or self.conn.state is not State.OPEN:
            raise ClientDisconnected()
        self.transport.write(frame)
