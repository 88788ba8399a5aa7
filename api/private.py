"""Private pushes: Redis pub/sub ``hftx:u:<user>`` -> that user's sockets on this node.

The settler and the engine facade PUBLISH ready-made PROTOCOL.md pushes (``orders``,
``balances``, ``notifications``). The node SUBSCRIBEs to a user's channel when the
first of the user's sockets subscribes to a private channel and UNSUBSCRIBEs when
the last such socket unsubscribes or closes (sockets that only trade or watch
market data cost no pub/sub traffic), and forwards each message verbatim to the
sockets subscribed to its channel. The
``hftx:auth`` channel announces token revocations (``<user>:<version>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import redis.asyncio as aredis

from api.auth import AUTH_CHANNEL
from api.connection import CLOSE_AUTH, Connection
from api.session_orders import OPEN

log = logging.getLogger("hftx.private")

PREFIX = "hftx:u:"


def user_channel(user_id: str) -> str:
    return PREFIX + user_id


def notification_push(published: dict[str, Any]) -> dict[str, Any]:
    """A ``notifications`` push as PROTOCOL.md has it: pushes carry no ``id`` (a client
    tells answers from pushes by it), so the notification's own id travels as
    ``notification_id`` (the id ``GET /notifications`` lists)."""
    push = {k: v for k, v in published.items() if k != "id"}
    push["notification_id"] = published["id"]
    return push


class PrivateHub:
    def __init__(self, redis_url: str, on_revoked: Callable[[str, int], None]) -> None:
        self._client = aredis.Redis.from_url(redis_url, socket_keepalive=True)
        self._pubsub = self._client.pubsub()
        self._on_revoked = on_revoked
        self.conns: dict[str, set[Connection]] = {}  # authenticated sockets per user
        self.listeners: dict[str, set[Connection]] = {}  # ... with a private subscription
        self._subscribed: set[str] = set()
        self._lock = asyncio.Lock()
        self._confirm: dict[str, asyncio.Future[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self.messages = 0

    async def start(self) -> None:
        await self._pubsub.subscribe(AUTH_CHANNEL)
        self._task = asyncio.create_task(self._run(), name="private-pushes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        with contextlib.suppress(Exception):
            await self._client.aclose()

    def add(self, conn: Connection) -> None:
        """An authenticated socket (counted per user; closed when its token is revoked)."""
        user = conn.user_id
        assert user is not None
        self.conns.setdefault(user, set()).add(conn)

    async def listen(self, conn: Connection) -> None:
        """``conn`` subscribed to a private channel: receive its user's pushes."""
        user = conn.user_id
        assert user is not None
        self.listeners.setdefault(user, set()).add(conn)
        await self._sync(user)

    async def unlisten(self, conn: Connection) -> None:
        user = conn.user_id
        listeners = self.listeners.get(user or "")
        if user is None or listeners is None or conn not in listeners:
            return
        listeners.discard(conn)
        if not listeners:
            del self.listeners[user]
        await self._sync(user)

    async def remove(self, conn: Connection, user: str | None) -> None:
        """The socket closed."""
        if user is None:
            return
        conns = self.conns.get(user)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.conns[user]
        listeners = self.listeners.get(user)
        if listeners is not None and conn in listeners:
            listeners.discard(conn)
            if not listeners:
                del self.listeners[user]
            await self._sync(user)

    def count(self, user: str) -> int:
        return len(self.conns.get(user, ()))

    async def _sync(self, user: str) -> None:
        """Make the subscription to ``user``'s channel match whether it has sockets."""
        async with self._lock:
            want = user in self.listeners
            have = user in self._subscribed
            channel = user_channel(user)
            if want and not have:
                done = self._confirm[channel] = asyncio.get_running_loop().create_future()
                await self._pubsub.subscribe(channel)
                self._subscribed.add(user)
                try:
                    await asyncio.wait_for(done, timeout=2.0)
                except TimeoutError:
                    log.warning("no SUBSCRIBE confirmation for %s", channel)
                finally:
                    self._confirm.pop(channel, None)
            elif have and not want:
                self._subscribed.discard(user)
                with contextlib.suppress(Exception):
                    await self._pubsub.unsubscribe(channel)

    async def _run(self) -> None:
        delay = 0.05
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
                delay = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("pub/sub connection lost: %r", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if message is None:
                continue
            try:
                self._dispatch(message)
            except Exception:
                log.exception("bad private push")

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        channel = message.get("channel")
        if isinstance(channel, bytes):
            channel = channel.decode()
        if kind == "subscribe":
            done = self._confirm.get(channel or "")
            if done is not None and not done.done():
                done.set_result(None)
            return
        if kind != "message" or not isinstance(channel, str):
            return
        data = message["data"]
        if channel == AUTH_CHANNEL:
            user, _, version = (data.decode() if isinstance(data, bytes) else data).partition(":")
            self._on_revoked(user, int(version))
            for conn in list(self.conns.get(user, ())):
                if conn.principal is not None and conn.principal.token_version < int(version):
                    conn.close_soon(CLOSE_AUTH, "token revoked")
            return
        user = channel[len(PREFIX) :]
        conns = self.listeners.get(user)
        if not conns:
            return
        self.messages += 1
        push = orjson.loads(data)
        kind_of = push.get("channel")
        market = push.get("market")
        if kind_of == "notifications" and "id" in push:
            text = orjson.dumps(notification_push(push)).decode()
        else:
            text = data.decode() if isinstance(data, bytes) else data
        if kind_of == "orders":
            _forget_if_ended(self.conns.get(user, conns), push.get("order"))
        for conn in conns:
            if kind_of in conn.private:
                markets = conn.private[kind_of]
                if markets is None or market is None or market in markets:
                    conn.push(text)


def _forget_if_ended(conns: Iterable[Connection], order: Any) -> None:
    """An order that ended (filled, canceled anywhere, expired) leaves the cancel on
    disconnect tables of its owner's sockets: a market maker's filled quotes were kept
    up to the limit, and enough of them pushed a still resting quote out of it."""
    if isinstance(order, dict) and order.get("status") not in OPEN:
        for conn in conns:
            if conn.orders.enabled:
                conn.orders.ended([order])
