"""Public market data of one web node: stream readers, L2 books, fan-out.

Per market with subscribers the node runs ONE reader task doing XREAD on the
market's event stream (no consumer group: every node sees every event). The
reader advances an in-memory :class:`~api.l2.L2Book` (initialised from
``ex.book`` together with its ``seq``) and turns each stream entry into pushes:
book updates per subscribed depth, trades, tickers. Each push is encoded ONCE and
the same string is handed to every subscriber's bounded queue (``push`` never
blocks; slow consumers are dropped by their connection).

Book updates carry ``first_seq`` = the last seq sent to that depth + 1 and ``seq`` =
the book's seq: one update per depth per batch of entries read together (possibly
with no level, when nothing visible at that depth changed), so a client's seq is
always current and never shows a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from api.l2 import L2Book, Level, checksum, side_diff, untouched
from api.wsproto import Frame
from engine.keys import market_stream
from engine.types import Market

log = logging.getLogger("hftx.marketdata")

LOAD_DEPTH = 5000  # levels per side read from the engine when (re)loading a book
TICKER_MIN_INTERVAL = 0.1  # seconds between two ticker pushes of one market
IDLE_STOP_S = 60.0  # a feed without subscribers stops after this long
CHECK_S = 5.0  # how often a feed checks that the engine did not go back in time
READ_COUNT = 1000
BLOCK_MS = 1000
DAY_MS = 86_400_000


class Subscriber(Protocol):
    def push(self, item: str | Frame) -> None: ...


def encode(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


def now_ms() -> int:
    return int(time.time() * 1000)


class VolumeWindow:
    """Base volume traded over the last 24 h, in one-minute buckets."""

    def __init__(self, span_ms: int = DAY_MS, bucket_ms: int = 60_000) -> None:
        self.span_ms = span_ms
        self.bucket_ms = bucket_ms
        self.buckets: dict[int, int] = {}

    def add(self, ts: int, size: int) -> None:
        start = ts - ts % self.bucket_ms
        self.buckets[start] = self.buckets.get(start, 0) + size

    def total(self, now: int) -> int:
        oldest = now - self.span_ms
        for start in [s for s in self.buckets if s + self.bucket_ms <= oldest]:
            del self.buckets[start]
        return sum(self.buckets.values())


@dataclass(slots=True)
class _Batch:
    """The state before a batch of entries, to diff against after it."""

    depth: int
    seq: int
    b0: list[int]
    a0: list[int]
    best: tuple[Level | None, Level | None]
    changed_b: set[int] = field(default_factory=set)
    changed_a: set[int] = field(default_factory=set)
    trades: list[Frame] = field(default_factory=list)
    ts: int = 0


@dataclass(slots=True)
class DepthGroup:
    """Subscribers of one market's book at one depth: they all get the same bytes."""

    depth: int
    sent: int  # seq of the last update sent to this group
    subs: set[Subscriber] = field(default_factory=set)


class MarketFeed:
    """The state of one market on this node; every transition is synchronous."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.book = L2Book(market)
        self.fmt = self.book.fmt
        self.groups: dict[int, DepthGroup] = {}
        self.book_subs: dict[Subscriber, int] = {}  # subscriber -> depth
        self.trades: set[Subscriber] = set()
        self.tickers: set[Subscriber] = set()
        self.heartbeats: set[Subscriber] = set()
        self.last_trade_id = 0
        self.last_price: int | None = None
        self.last_ts = 0
        self.volume = VolumeWindow()
        self.loaded = False
        self.needs_reload = False
        self.truncated = (False, False)
        self.stream_id = "0-0"
        self.last_used = time.monotonic()
        self._snapshots: dict[int, str] = {}
        self._snapshots_seq = -1
        self._ticker_sent = 0.0
        self._ticker_timer: asyncio.TimerHandle | None = None

    # -- loading -----------------------------------------------------------

    def load(
        self,
        seq: int,
        bids: Iterable[Level],
        asks: Iterable[Level],
        truncated: tuple[bool, bool] = (False, False),
    ) -> None:
        """(Re)load the book from an engine snapshot; subscribers get the difference."""
        if self.loaded and seq < self.book.seq:
            return
        depth = self._max_depth()
        old_bids = dict(self.book.bids.levels(depth))
        old_asks = dict(self.book.asks.levels(depth))
        b0, a0 = list(old_bids), list(old_asks)
        self.book.load(seq, bids, asks)
        self.truncated = truncated
        self.needs_reload = False
        if not self.loaded:
            self.loaded = True
            for group in self.groups.values():
                group.sent = seq
            return
        new_bids = dict(self.book.bids.levels(depth))
        new_asks = dict(self.book.asks.levels(depth))
        changed_b = {
            p for p in old_bids.keys() | new_bids.keys() if old_bids.get(p) != new_bids.get(p)
        }
        changed_a = {
            p for p in old_asks.keys() | new_asks.keys() if old_asks.get(p) != new_asks.get(p)
        }
        self._publish_book(b0, a0, changed_b, changed_a, seq, now_ms())
        self._ticker_changed()

    def reset(
        self,
        seq: int,
        bids: Iterable[Level],
        asks: Iterable[Level],
        truncated: tuple[bool, bool] = (False, False),
    ) -> None:
        """Start over from a snapshot older than our state; subscribers get snapshots."""
        self.book.load(seq, bids, asks)
        self.truncated = truncated
        self.needs_reload = False
        self.last_trade_id = 0
        for group in self.groups.values():
            group.sent = seq
            text = self.snapshot(group.depth)
            for sub in group.subs:
                sub.push(text)

    # -- events ------------------------------------------------------------

    def apply_entries(self, entries: Iterable[dict[Any, Any]]) -> None:
        """Apply stream entries (fields ``f``, ``l``, ``e``) read together.

        Subscribers get at most ONE book update per depth for the whole batch (the
        diff between the views before and after it), so fan-out costs per read,
        not per engine call, when the market is busy.
        """
        batch = self._begin()
        for fields in entries:
            first = int(fields.get(b"f") or fields.get("f") or 0)
            last = int(fields.get(b"l") or fields.get("l") or 0)
            if last <= self.book.seq:
                continue
            if first > self.book.seq + 1:
                log.warning(
                    "%s: gap %d..%d, reloading", self.market.id, self.book.seq + 1, first - 1
                )
                self.needs_reload = True
                break
            raw = fields.get(b"e") or fields.get("e") or b"[]"
            self._apply_events(batch, last, orjson.loads(raw))
        self._end(batch)

    def apply_entry(self, fields: dict[Any, Any]) -> None:
        self.apply_entries([fields])

    def apply(self, first: int, last: int, events: list[dict[str, Any]]) -> None:
        """Apply the events ``first..last`` of one engine call (contiguous with ``seq``)."""
        self.apply_entries([{"f": first, "l": last, "e": orjson.dumps(events)}])

    def _begin(self) -> _Batch:
        depth = self._max_depth()
        book = self.book
        return _Batch(depth, book.seq, book.bids.top(depth), book.asks.top(depth), book.best())

    def _apply_events(self, batch: _Batch, last: int, events: list[dict[str, Any]]) -> None:
        book = self.book
        for ev in events:
            kind = ev.get("e")
            if kind == "level":
                price, size = int(ev["price"]), int(ev["size"])
                if ev["side"] == "buy":
                    book.bids.set(price, size)
                    batch.changed_b.add(price)
                else:
                    book.asks.set(price, size)
                    batch.changed_a.add(price)
            elif kind == "trade":
                message = self._trade(ev)
                if message is not None and self.trades:
                    batch.trades.append(Frame(encode(message)))
            elif kind == "market":
                status = ev.get("status")
                if status in ("TRADING", "HALT", "CANCEL_ONLY"):
                    self.market = _with_status(self.market, status)
            batch.ts = ev.get("ts", batch.ts)
        book.seq = last

    def _end(self, batch: _Batch) -> None:
        book = self.book
        if book.seq == batch.seq:
            return
        self.last_ts = batch.ts or self.last_ts
        if self.groups:
            self._publish_book(
                batch.b0, batch.a0, batch.changed_b, batch.changed_a, book.seq, batch.ts or now_ms()
            )
        for text in batch.trades:
            for sub in self.trades:
                sub.push(text)
        if batch.trades or book.best() != batch.best:
            self._ticker_changed()
        if self.short_of(batch.depth):
            self.needs_reload = True

    def _trade(self, ev: dict[str, Any]) -> dict[str, Any] | None:
        tid = int(ev["tid"])
        if tid <= self.last_trade_id:
            return None
        self.last_trade_id = tid
        self.last_price = int(ev["price"])
        self.volume.add(int(ev["ts"]), int(ev["size"]))
        return {
            "channel": "trades",
            "type": "trade",
            "market": self.market.id,
            "trade_id": tid,
            "price": self.fmt.price(int(ev["price"])),
            "size": self.fmt.size(int(ev["size"])),
            "taker_side": ev["side"],
            "maker_order_id": str(ev["maker"]),
            "taker_order_id": str(ev["taker"]),
            "seq": int(ev["seq"]),
            "ts": int(ev["ts"]),
        }

    def _publish_book(
        self,
        b0: list[int],
        a0: list[int],
        changed_b: set[int],
        changed_a: set[int],
        seq: int,
        ts: int,
    ) -> None:
        book = self.book
        depth = self._max_depth()
        b1, a1 = book.bids.top(depth), book.asks.top(depth)
        wide_checksum: int | None = None
        for group in self.groups.values():
            d = group.depth
            if group.sent >= seq:
                continue
            ob, oa = b0[:d], a0[:d]
            db = (
                []
                if untouched(book.bids, ob, d, changed_b)
                else side_diff(book.bids, ob, b1[:d], changed_b)
            )
            da = (
                []
                if untouched(book.asks, oa, d, changed_a)
                else side_diff(book.asks, oa, a1[:d], changed_a)
            )
            if d >= 10:
                if wide_checksum is None:
                    wide_checksum = book.view_checksum(10)
                crc = wide_checksum
            else:
                crc = book.view_checksum(d)
            text = Frame(
                encode(
                    {
                        "channel": "book",
                        "type": "update",
                        "market": self.market.id,
                        "first_seq": group.sent + 1,
                        "seq": seq,
                        "bids": self.fmt.levels(db),
                        "asks": self.fmt.levels(da),
                        "checksum": crc,
                        "ts": ts,
                    }
                )
            )
            group.sent = seq
            for sub in group.subs:
                sub.push(text)

    # -- subscriptions -----------------------------------------------------

    def _max_depth(self) -> int:
        return max(self.groups, default=1)

    def subscribe_book(self, sub: Subscriber, depth: int) -> str:
        """Join ``depth``'s group; returns the snapshot to send right after the answer."""
        self.unsubscribe_book(sub)
        group = self.groups.get(depth)
        if group is None:
            group = self.groups[depth] = DepthGroup(depth, self.book.seq)
        group.subs.add(sub)
        self.book_subs[sub] = depth
        if self.short_of(depth):
            self.needs_reload = True
        return self.snapshot(depth)

    def short_of(self, depth: int) -> bool:
        """True when a side loaded truncated now shows fewer than ``depth`` levels."""
        bids_short = self.truncated[0] and len(self.book.bids) < depth
        return bids_short or (self.truncated[1] and len(self.book.asks) < depth)

    def unsubscribe_book(self, sub: Subscriber) -> bool:
        depth = self.book_subs.pop(sub, None)
        if depth is None:
            return False
        group = self.groups[depth]
        group.subs.discard(sub)
        if not group.subs:
            del self.groups[depth]
        return True

    def snapshot(self, depth: int) -> str:
        if self._snapshots_seq != self.book.seq:
            self._snapshots.clear()
            self._snapshots_seq = self.book.seq
        text = self._snapshots.get(depth)
        if text is None:
            bids, asks = self.book.view(depth)
            text = self._snapshots[depth] = encode(
                {
                    "channel": "book",
                    "type": "snapshot",
                    "market": self.market.id,
                    "seq": self.book.seq,
                    "bids": bids,
                    "asks": asks,
                    "checksum": checksum(bids, asks),
                    "ts": now_ms(),
                }
            )
        return text

    def remove(self, sub: Subscriber) -> None:
        self.unsubscribe_book(sub)
        self.trades.discard(sub)
        self.tickers.discard(sub)
        self.heartbeats.discard(sub)

    def has_subscribers(self) -> bool:
        return bool(self.book_subs or self.trades or self.tickers or self.heartbeats)

    # -- ticker and heartbeat ----------------------------------------------

    def ticker(self) -> dict[str, Any]:
        bid, ask = self.book.best()
        fmt = self.fmt
        return {
            "channel": "ticker",
            "type": "ticker",
            "market": self.market.id,
            "best_bid": fmt.price(bid[0]) if bid else None,
            "best_bid_size": fmt.size(bid[1]) if bid else None,
            "best_ask": fmt.price(ask[0]) if ask else None,
            "best_ask_size": fmt.size(ask[1]) if ask else None,
            "last": fmt.price(self.last_price) if self.last_price is not None else None,
            "last_trade_id": self.last_trade_id,
            "volume_24h": fmt.quantity(self.volume.total(now_ms())),
            "seq": self.book.seq,
            "ts": now_ms(),
        }

    def _ticker_changed(self) -> None:
        if not self.tickers or self._ticker_timer is not None:
            return
        wait = self._ticker_sent + TICKER_MIN_INTERVAL - time.monotonic()
        if wait <= 0:
            self.push_ticker()
        else:
            loop = asyncio.get_running_loop()
            self._ticker_timer = loop.call_later(wait, self.push_ticker)

    def push_ticker(self) -> None:
        self._ticker_timer = None
        self._ticker_sent = time.monotonic()
        if self.tickers:
            frame = Frame(encode(self.ticker()))
            for sub in self.tickers:
                sub.push(frame)

    def heartbeat(self) -> Frame:
        return Frame(
            encode(
                {
                    "channel": "heartbeat",
                    "type": "heartbeat",
                    "market": self.market.id,
                    "seq": self.book.seq,
                    "last_trade_id": self.last_trade_id,
                    "ts": now_ms(),
                }
            )
        )

    def close(self) -> None:
        if self._ticker_timer is not None:
            self._ticker_timer.cancel()
            self._ticker_timer = None


def _with_status(market: Market, status: Any) -> Market:
    from dataclasses import replace

    return replace(market, status=status)


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

    def __init__(self, ex: Any, redis: Any) -> None:
        self.ex = ex
        self.redis = redis
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
            recent = await self.ex.recent_trades(feed.market.id, 1)
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
        """Best effort: the last 24 h of trades still in the stream (bounded read)."""
        stream = market_stream(feed.market.id)
        since = now_ms() - DAY_MS
        cursor = "+"
        seen = 0
        while seen < 20_000:
            page = await self.redis.xrevrange(stream, max=cursor, min=f"{since}-0", count=1000)
            if not page:
                break
            for _entry_id, fields in page:
                for ev in orjson.loads(fields.get(b"e") or fields.get("e") or b"[]"):
                    if ev.get("e") == "trade" and int(ev["tid"]) <= feed.last_trade_id:
                        feed.volume.add(int(ev["ts"]), int(ev["size"]))
            seen += len(page)
            last_id = _text(page[-1][0])
            ms, _, sq = last_id.partition("-")
            if int(sq or 0) > 0:
                cursor = f"{ms}-{int(sq) - 1}"
            elif int(ms) > 0:
                cursor = f"{int(ms) - 1}-18446744073709551615"
            else:
                break
            if len(page) < 1000:
                break

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
