"""Channel subscriptions: pushes delivered to an async iterator or an async callback.

Each subscription owns a bounded queue filled by the connection's reader (never
blocking it); a callback, if given, is run by a task of its own so that a slow
callback cannot stall the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from client.backoff import Backoff
from client.book import BookStatus, LocalBook
from client.codec import Json
from client.errors import HftxError

log = logging.getLogger(__name__)

PRIVATE_CHANNELS = frozenset({"orders", "balances", "notifications"})
PUBLIC_CHANNELS = frozenset({"book", "trades", "ticker"})

Callback = Callable[[Json], Awaitable[None]]
BOOK_TYPES = ("snapshot", "update")  # the book pushes a LocalBook applies
Key = tuple[str, str | None]


def push_key(push: Json) -> Key:
    """Routing key of a push: ``(channel, market)``, market None for private channels."""
    channel = str(push.get("channel", ""))
    return (channel, None) if channel in PRIVATE_CHANNELS else (channel, push.get("market"))


class Owner(Protocol):
    """What a subscription needs from the client that created it."""

    async def resubscribe(self, sub: Subscription) -> None: ...

    async def unsubscribe(self, sub: Subscription) -> None: ...


class Subscription:
    """One subscribed channel (for one market, or private).

    Iterate it with ``async for push in sub`` or pass ``callback``; iteration ends when
    the subscription or the client is closed. If the consumer falls more than
    ``maxsize`` pushes behind, new pushes are dropped and counted in ``dropped``.
    """

    def __init__(
        self,
        owner: Owner,
        channel: str,
        market: str | None = None,
        *,
        callback: Callback | None = None,
        maxsize: int = 10_000,
        params: Json | None = None,
    ) -> None:
        self.channel = channel
        self.market = market
        self.params: Json = {"channel": channel, **(params or {})}
        if market is not None:
            self.params["markets"] = [market]
        self.dropped = 0
        self.closed = False
        self._owner = owner
        self._queue: asyncio.Queue[Json | None] = asyncio.Queue(maxsize)
        self._callback = callback
        self._pump = asyncio.create_task(self._run_callback()) if callback else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.channel!r}, {self.market!r})"

    @property
    def key(self) -> Key:
        return (self.channel, self.market)

    def feed(self, push: Json) -> None:
        """Deliver one push (called by the connection's reader; never blocks)."""
        self._deliver(push)

    def reset(self) -> None:
        """Called on reconnect, before subscribing again."""

    async def close(self) -> None:
        """Unsubscribe and end iteration."""
        if not self.closed:
            await self._owner.unsubscribe(self)

    def end(self) -> None:
        """End iteration and stop the callback (the owner calls this on unsubscribe)."""
        if self.closed:
            return
        self.closed = True
        while True:
            try:
                self._queue.put_nowait(None)
                break
            except asyncio.QueueFull:
                self._queue.get_nowait()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Json:
        if self._callback is not None:
            raise TypeError("this subscription delivers to its callback")
        push = await self._queue.get()
        if push is None:
            self._queue.put_nowait(None)  # keep later iterations ending too
            raise StopAsyncIteration
        return push

    def _deliver(self, push: Json) -> None:
        if self.closed:
            return
        try:
            self._queue.put_nowait(push)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("%r: consumer too slow, %d pushes dropped", self, self.dropped)

    async def _run_callback(self) -> None:
        assert self._callback is not None
        while (push := await self._queue.get()) is not None:
            try:
                await self._callback(push)
            except Exception:
                log.exception("%r: callback failed", self)


class BookSubscription(Subscription):
    """A ``book`` subscription that keeps :attr:`book` in sync.

    Only pushes that were applied are delivered. On a gap or a checksum mismatch the
    book is cleared and the channel is subscribed again until a snapshot arrives.
    """

    resync_wait = 5.0

    def __init__(
        self,
        owner: Owner,
        market: str,
        depth: int = 50,
        *,
        callback: Callback | None = None,
        maxsize: int = 10_000,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(
            owner, "book", market, callback=callback, maxsize=maxsize, params={"depth": depth}
        )
        self.book = LocalBook(market, depth)
        self.resyncs = 0
        self._backoff = backoff or Backoff()
        self._ready = asyncio.Event()
        self._resync: asyncio.Task[None] | None = None

    async def wait_ready(self, timeout: float | None = None) -> LocalBook:
        """Wait until the book holds a snapshot; returns it."""
        async with asyncio.timeout(timeout):
            await self._ready.wait()
        return self.book

    def feed(self, push: Json) -> None:
        if push.get("type") not in BOOK_TYPES:
            return  # a push type added later: ignored (PROTOCOL.md), not a reason to resync
        try:
            status = self.book.apply(push)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("%r: bad book message (%s), resyncing", self, exc)
            self.book.reset()
            status = BookStatus.GAP
        if status is BookStatus.APPLIED:
            self._ready.set()
            self._deliver(push)
        elif status.needs_resubscribe:
            log.info("%r: %s, resubscribing", self, status.value)
            self._ready.clear()
            self._start_resync()

    def reset(self) -> None:
        self.book.reset()
        self._ready.clear()

    def end(self) -> None:
        super().end()
        if self._resync is not None:
            self._resync.cancel()

    def _start_resync(self) -> None:
        if self._resync is None or self._resync.done():
            self.resyncs += 1
            self._resync = asyncio.create_task(self._resync_loop())

    async def _resync_loop(self) -> None:
        attempt = 0
        while not self.closed and not self.book.ready:
            with contextlib.suppress(HftxError, TimeoutError):
                await self._owner.resubscribe(self)
                await self.wait_ready(self.resync_wait)
                return
            await asyncio.sleep(self._backoff.delay(attempt))
            attempt += 1
