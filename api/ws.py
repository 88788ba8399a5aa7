"""The ``/ws`` endpoint (raw ASGI): handshake checks, the read loop, cleanup.

The Origin header, when present, must be the node's own origin or in the
allowlist (browsers always send it; non-browser clients usually do not and are
allowed). Frames are handled one after another per connection, so a client's
requests take effect in the order it sent them; answers and pushes share the
connection's bounded outbound queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers

from api.connection import CLOSE_AUTH, Connection
from api.errors import ApiError
from api.gateway import Session, error_answer
from api.session_orders import CANCEL_TIMEOUT_S

if TYPE_CHECKING:
    from api.node import Node

log = logging.getLogger("hftx.ws")

CLOSE_POLICY = 1008
CLOSE_TRY_LATER = 1013


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """No Origin (non-browser client), the node's own origin, or an allowlisted one."""
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    allow = {a.strip().rstrip("/").lower() for a in allowed}
    if "*" in allow or origin in allow:
        return True
    netloc = urlsplit(origin).netloc
    return bool(host) and netloc == (host or "").strip().lower()


class WebSocketEndpoint:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        node: Node = scope["app"].state.node
        headers = Headers(scope=scope)
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if not origin_allowed(headers.get("origin"), headers.get("host"), node.allowed_origins):
            node.metrics.ws_rejected("origin")
            await send({"type": "websocket.close", "code": CLOSE_POLICY})
            return
        if node.closing or len(node.connections) >= node.limits.ws_conns_total:
            node.metrics.ws_rejected("capacity")
            await send({"type": "websocket.accept"})  # so that the client sees the code
            await send({"type": "websocket.close", "code": CLOSE_TRY_LATER, "reason": "try later"})
            return
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        per_ip = node.connections_per_ip
        if per_ip.get(ip, 0) >= node.limits.ws_conns_per_ip:
            # one address may not take the node's sockets (sockets waiting for auth
            # come back every 10 s; accounts come 32 sockets each)
            node.metrics.ws_rejected("address")
            await send({"type": "websocket.accept"})
            reason = "too many connections from this address"
            await send({"type": "websocket.close", "code": CLOSE_TRY_LATER, "reason": reason})
            return
        per_ip[ip] = per_ip.get(ip, 0) + 1  # counted before any await: no race past the check
        try:
            await send({"type": "websocket.accept"})
        except BaseException:
            _uncount(per_ip, ip)
            raise
        conn = Connection(
            send,
            node.limits.ws_queue_msgs,
            node.limits.ws_queue_bytes,
            on_server_close=node.metrics.ws_server_closed,
        )
        session = Session(node, conn, ip)
        node.connections.add(conn)
        node.metrics.ws_open(1)
        conn.reader = asyncio.current_task()
        conn.start()
        timer = asyncio.get_running_loop().call_later(
            node.limits.ws_auth_timeout, _auth_deadline, conn
        )
        try:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    text = message.get("text")
                    if text is None:  # a binary frame: accepted when it is UTF-8 JSON
                        try:
                            text = (message.get("bytes") or b"").decode()
                        except UnicodeDecodeError:
                            conn.push(error_answer(None, ApiError("INVALID_PARAM", "not UTF-8")))
                            continue
                    if node.closing:  # shutting down: no new request (node.drain)
                        continue
                    conn.handling = True
                    try:
                        await session.handle(text)
                    finally:
                        conn.handling = False
                    if len(conn.queue) > conn.max_msgs // 2:
                        await conn.backpressure()
                elif kind == "websocket.disconnect":
                    break
        except asyncio.CancelledError:
            if not conn.closed:  # not our own abandon of a stuck socket: a real cancel
                raise
        except Exception as exc:  # the transport failed under us
            log.debug("ws %d: %r", conn.id, exc)
        finally:
            timer.cancel()
            user = conn.user_id
            conn.finish()
            if user is not None and conn.orders.enabled:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(CANCEL_TIMEOUT_S):
                        await conn.orders.cancel(node.ex, user)
            node.connections.discard(conn)
            _uncount(per_ip, ip)
            node.marketdata.remove(conn)
            node.metrics.ws_open(-1)
            try:
                await node.hub.remove(conn, user)
            except Exception as exc:
                log.warning("unsubscribe failed: %r", exc)


def _uncount(per_ip: dict[str, int], ip: str) -> None:
    if per_ip.get(ip, 0) > 1:
        per_ip[ip] -= 1
    else:
        per_ip.pop(ip, None)


def _auth_deadline(conn: Connection) -> None:
    if conn.principal is None and not conn.closed:
        conn.push(error_answer(None, ApiError("UNAUTHORIZED", "auth not received in time")))
        asyncio.get_running_loop().create_task(conn.close_after_flush(CLOSE_AUTH, "auth timeout"))
