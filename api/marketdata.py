"""Public market data of one web node: the stream readers and heartbeats.

Per market with subscribers the node runs ONE reader task doing XREAD on the
market's event stream (no consumer group: every node sees every event). The reader
loads the market's :class:`~api.marketfeed.MarketFeed` from ``ex.book`` (reloads it
on a gap, starts it over when the engine went back in time), hands it the entries
read together, and stops when the feed has had no subscriber for a while. One task
pushes a heartbeat per second to the feeds' heartbeat subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from redis.exceptions import RedisError

from api import history
from api.db import BEST_EFFORT_S, Database
from api.errors import ApiError
from api.marketfeed import DAY_MS, MarketFeed, Subscriber, now_ms
from engine.keys import market_stream
from workers.streams import drained_through

log = logging.getLogger("hftx.marketdata")
T = TypeVar("T")

LOAD_DEPTH = 5000  # levels per side read from the engine when (re)loading a book
IDLE_STOP_S = 60.0  # a feed without subscribers stops after this long
CHECK_S = 5.0  # how often a feed checks that the engine did not go back in time
READ_COUNT = 1000
BLOCK_MS = 1000
SCAN_ENTRIES = 1000  # stream entries a read of the latest trades goes through at first
VOLUME_SCAN_ENTRIES = 20_000  # ... and a feed counting its 24 h volume, at most


async def stream_trades(
    ex: Any, redis: Any, market_id: str, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """The latest trades of ``market_id`` in its stream (newest first, at most
    ``limit``, wire format), and where the read stopped short of the stream's start
    (None when it did not): every trade older than those returned is then in history.

    The market stream holds every engine call of about 10 minutes, on a busy market
    mostly orders that trade nothing, so it is read backwards for at most
    :data:`SCAN_ENTRIES` entries, and further only while the drain has not recorded the
    entries before those (it normally trails the newest by milliseconds). Read the rest
    with ``ex.scan_trades(..., before=cut)`` when history cannot answer."""
    scan = await ex.scan_trades(market_id, limit, max_entries=SCAN_ENTRIES)
    if scan.cut is None:
        return list(scan.trades), None
    try:
        recorded = await drained_through(redis, market_stream(market_id), scan.cut)
    except (RedisError, OSError):
        recorded = False
    if recorded:
        return list(scan.trades), scan.cut
    more = await ex.scan_trades(market_id, limit - len(scan.trades), before=scan.cut)
    return [*scan.trades, *more.trades], None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entries(reply: Any) -> list[tuple[str, dict[Any, Any]]]:
    """XREAD replies as ``[(entry id, fields)]`` for RESP2 lists and RESP3 maps."""
    if not reply:
        return []
    streams = reply.items() if isinstance(reply, dict) else reply
    out: list[tuple[str, dict[Any, Any]]] = []
    for _name, entries in streams:
        nested = len(entries) == 1 and isinstance(entries[0], list) and entries[0]
        if nested and isinstance(entries[0][0], list | tuple):  # RESP3: [[(id, fields)]]
            entries = entries[0]
        for entry_id, fields in entries:
            out.append((_text(entry_id), fields))
    return out


class MarketData:
    """All feeds of this node; starts a reader on first use, stops idle ones."""

    def __init__(self, ex: Any, redis: Any, db: Database | None = None) -> None:
        self.ex = ex
        self.redis = redis
        self.db = db  # history of what the drain trimmed from the streams
        self.feeds: dict[str, MarketFeed] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._ready: dict[str, asyncio.Future[None]] = {}
        self._heartbeat_task: asyncio.Task[None] | None = None
        self.closing = False

    async def start(self) -> None:
        self._heartbeat_task = asyncio.create_task(self._heartbeats(), name="heartbeats")

    async def stop(self) -> None:
        self.closing = True
        tasks = list(self._tasks.values())
        if self._heartbeat_task is not None:
            tasks.append(self._heartbeat_task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        for feed in self.feeds.values():
            feed.close()

    async def feed(self, market_id: str) -> MarketFeed:
        """The loaded feed of ``market_id``; raises EngineError UNKNOWN_MARKET."""
        feed = self.feeds.get(market_id)
        if feed is not None and feed.loaded:
            feed.last_used = time.monotonic()
            return feed
        ready = self._ready.get(market_id)
        if ready is None:
            market = await self.ex.market(market_id)
            feed = self.feeds.get(market_id)
            ready = self._ready.get(market_id)
            if ready is None:
                ready = self._ready[market_id] = asyncio.get_running_loop().create_future()
                feed = self.feeds[market_id] = MarketFeed(market)
                self._tasks[market_id] = asyncio.create_task(
                    self._run(feed, ready), name=f"feed:{market_id}"
                )
        await asyncio.wait_for(asyncio.shield(ready), timeout=10)
        feed = self.feeds[market_id]
        feed.last_used = time.monotonic()
        return feed

    def remove(self, sub: Subscriber) -> None:
        for feed in self.feeds.values():
            feed.remove(sub)

    async def _load(self, feed: MarketFeed, first: bool) -> None:
        stream = market_stream(feed.market.id)
        if first:
            tail = await self.redis.xrevrange(stream, count=1)
            feed.stream_id = _text(tail[0][0]) if tail else "0-0"
            recent, cut = await stream_trades(self.ex, self.redis, feed.market.id, 1)
            if not recent:  # trades the drain trimmed from the stream (or not read) are history
                older = await self._history(history.trades, feed.market.id, limit=1)
                if older is None and cut is not None:  # no history: read the stream further
                    recent = (await self.ex.scan_trades(feed.market.id, 1, before=cut)).trades
                elif older:
                    feed.last_trade_id, feed.last_price = older[0].trade_id, older[0].price
            if recent:
                last = recent[0]
                feed.last_trade_id = int(last["trade_id"])
                feed.last_price = None
                with contextlib.suppress(Exception):
                    from engine.units import parse_price

                    feed.last_price = parse_price(feed.market, last["price"])
        snap = await self.ex.book(feed.market.id, LOAD_DEPTH)
        feed.load(
            snap.seq,
            snap.bids,
            snap.asks,
            (len(snap.bids) >= LOAD_DEPTH, len(snap.asks) >= LOAD_DEPTH),
        )
        if first:
            await self._load_volume(feed)

    async def _load_volume(self, feed: MarketFeed) -> None:
        """Best effort: the last 24 h of trades still in the stream (bounded read), and
        from history the older ones. The stream is read for :data:`SCAN_ENTRIES` entries
        when the drain has recorded the ones before (history counts them), else up to
        :data:`VOLUME_SCAN_ENTRIES` (and so when history does not answer)."""
        stream = market_stream(feed.market.id)
        since = now_ms() - DAY_MS
        cursor = "+"
        seen = 0
        oldest_tid = feed.last_trade_id + 1  # the trades below it are not counted yet

        async def count(upto: int) -> bool:
            """Count the trades of the next entries, up to ``upto`` read in all; whether
            entries of the last 24 h are left unread."""
            nonlocal cursor, seen, oldest_tid
            while seen < upto:
                page = await self.redis.xrevrange(stream, max=cursor, min=f"{since}-0", count=1000)
                if not page:
                    return False
                for _entry_id, fields in page:
                    for ev in orjson.loads(fields.get(b"e") or fields.get("e") or b"[]"):
                        tid = int(ev["tid"]) if ev.get("e") == "trade" else 0
                        if 0 < tid <= feed.last_trade_id:
                            feed.day.add(int(ev["ts"]), int(ev["size"]), int(ev["price"]), tid)
                            oldest_tid = min(oldest_tid, tid)
                seen += len(page)
                last_id = _text(page[-1][0])
                ms, _, sq = last_id.partition("-")
                if int(sq or 0) > 0:
                    cursor = f"{ms}-{int(sq) - 1}"
                elif int(ms) > 0:
                    cursor = f"{int(ms) - 1}-18446744073709551615"
                else:
                    return False
                if len(page) < 1000:
                    return False
            return True

        left = await count(SCAN_ENTRIES)
        if left and not await self._recorded(stream, cursor):
            left = await count(VOLUME_SCAN_ENTRIES)
        if oldest_tid > 1:
            minutes = await self._history(history.minutes_below, feed.market.id, since, oldest_tid)
            if minutes is None and left:  # no history: what the stream has
                await count(VOLUME_SCAN_ENTRIES)
            for r in minutes or ():
                feed.day.add_minute(r.start, r.first_tid, r.open, r.high, r.low, r.volume)

    async def _recorded(self, stream: str, below: str) -> bool:
        """Whether the drain has recorded every entry of ``stream`` up to ``below``."""
        try:
            return await drained_through(self.redis, stream, below)
        except (RedisError, OSError):
            return False

    async def _history(self, query: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T | None:
        """``query(conn, *args, **kw)`` on PostgreSQL; None if there is none or it is down
        (market data never fails with the history, and waits for it at most
        :data:`BEST_EFFORT_S`)."""
        if self.db is None:
            return None
        try:
            async with self.db.connection(BEST_EFFORT_S) as conn:
                return await query(conn, *args, **kw)
        except (ApiError, OSError) as exc:
            log.info("market data without history: %r", exc)
            return None

    async def _run(self, feed: MarketFeed, ready: asyncio.Future[None]) -> None:
        market_id = feed.market.id
        stream = market_stream(market_id)
        delay = 0.05
        checked = time.monotonic()
        try:
            while not self.closing:
                try:
                    if not feed.loaded or feed.needs_reload:
                        await self._load(feed, first=not feed.loaded)
                        if not ready.done():
                            ready.set_result(None)
                    reply = await self.redis.xread(
                        {stream: feed.stream_id}, count=READ_COUNT, block=BLOCK_MS
                    )
                    entries = _entries(reply)
                    if entries:
                        feed.stream_id = entries[-1][0]
                        feed.apply_entries(fields for _id, fields in entries)
                    delay = 0.05
                    if time.monotonic() - checked > CHECK_S:
                        checked = time.monotonic()
                        await self._check_rewind(feed)
                    if (
                        not feed.has_subscribers()
                        and time.monotonic() - feed.last_used > IDLE_STOP_S
                    ):
                        break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if not ready.done() and not feed.loaded and _is_engine_error(exc):
                        ready.set_exception(exc)
                        break
                    log.warning("%s: market feed error: %r", market_id, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
        finally:
            feed.close()
            if self.feeds.get(market_id) is feed:
                del self.feeds[market_id]
            self._tasks.pop(market_id, None)
            if self._ready.get(market_id) is ready:
                del self._ready[market_id]
            if not ready.done():
                ready.set_exception(ConnectionError("market feed stopped"))
            if not ready.cancelled():
                ready.exception()  # retrieved: no "never retrieved" warning

    async def _check_rewind(self, feed: MarketFeed) -> None:
        """Redis went back in time (restored, or flushed and rebuilt): start over.

        The engine's seq below ours means our book and stream cursor describe a
        history that no longer exists; reload from scratch and send every book
        subscriber a fresh snapshot.
        """
        probe = await self.ex.book(feed.market.id, 1)
        if probe.seq >= feed.book.seq:
            return
        log.warning("%s: engine seq %d < %d: reloading", feed.market.id, probe.seq, feed.book.seq)
        tail = await self.redis.xrevrange(market_stream(feed.market.id), count=1)
        feed.stream_id = _text(tail[0][0]) if tail else "0-0"
        snap = await self.ex.book(feed.market.id, LOAD_DEPTH)
        feed.reset(snap.seq, snap.bids, snap.asks,
                   (len(snap.bids) >= LOAD_DEPTH, len(snap.asks) >= LOAD_DEPTH))  # fmt: skip

    async def _heartbeats(self) -> None:
        tick = next_second(time.time())
        while True:
            await asyncio.sleep(max(0.0, tick - time.time()))
            if time.time() < tick:  # the loop's clock woke us a little early
                continue
            tick = next_second(time.time())
            for feed in list(self.feeds.values()):
                if feed.heartbeats and feed.loaded:
                    text = feed.heartbeat()
                    for sub in list(feed.heartbeats):
                        sub.push(text)


def next_second(now: float) -> float:
    """The first whole second of the wall clock strictly after ``now`` (heartbeat ticks:
    one per second, never two around a boundary the event loop woke up just before)."""
    return float(int(now) + 1)


def _is_engine_error(exc: Exception) -> bool:
    from engine.types import EngineError

    return isinstance(exc, EngineError)
