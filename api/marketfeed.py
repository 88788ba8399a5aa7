"""One market's public feed on a web node: its L2 book, subscribers and pushes.

A :class:`MarketFeed` advances an in-memory :class:`~api.l2.L2Book` (initialised
from ``ex.book`` together with its ``seq``) and turns each stream entry into pushes:
book updates per subscribed depth, trades, tickers. Every transition is synchronous;
the reader of :mod:`api.marketdata` feeds it. Each push is encoded ONCE and the same
string is handed to every subscriber's bounded queue (``push`` never blocks; slow
consumers are dropped by their connection).

Book updates carry ``first_seq`` = the last seq sent to that depth + 1 and ``seq`` =
the book's seq: one update per depth per batch of entries read together (possibly
with no level, when nothing visible at that depth changed), so a client's seq is
always current and never shows a gap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from api.l2 import L2Book, Level, checksum, side_diff, untouched
from api.wsproto import Frame
from engine.types import Market

log = logging.getLogger("hftx.marketdata")

TICKER_MIN_INTERVAL = 0.1  # seconds between two ticker pushes of one market
DAY_MS = 86_400_000


class Subscriber(Protocol):
    def push(self, item: str | Frame) -> None: ...


def encode(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class Minute:
    """Trades of one bucket: the first one's id and price, the range, the base volume."""

    first_tid: int
    open: int
    high: int
    low: int
    volume: int

    def take(self, first_tid: int, open_: int, high: int, low: int, volume: int) -> None:
        """Add trades (one, or a minute's worth summed elsewhere) to this bucket."""
        if first_tid < self.first_tid:
            self.first_tid, self.open = first_tid, open_
        if high > self.high:
            self.high = high
        if low < self.low:
            self.low = low
        self.volume += volume


class DayWindow:
    """The last 24 h of trades in one-minute buckets: base volume and price range
    (open = the price of the oldest trade still in the window, by trade id)."""

    def __init__(self, span_ms: int = DAY_MS, bucket_ms: int = 60_000) -> None:
        self.span_ms = span_ms
        self.bucket_ms = bucket_ms
        self.buckets: dict[int, Minute] = {}

    def add(self, ts: int, size: int, price: int, tid: int) -> None:
        """One trade (in any order; every trade a node fans out passes here)."""
        self.add_minute(ts - ts % self.bucket_ms, tid, price, price, price, size)

    def add_minute(
        self, start: int, first_tid: int, open_: int, high: int, low: int, volume: int
    ) -> None:
        """Trades of the bucket starting at ``start`` (summed elsewhere: history)."""
        m = self.buckets.get(start)
        if m is None:
            self.buckets[start] = Minute(first_tid, open_, high, low, volume)
            if len(self.buckets) > self.span_ms // self.bucket_ms + 2:
                # nobody asked for the ticker for a while (only it trimmed): forget
                # what no later ticker can count, so that a feed kept by book or
                # trades subscribers holds one day, not one bucket per minute forever
                self._current(max(self.buckets))
        else:
            m.take(first_tid, open_, high, low, volume)

    def _current(self, now: int) -> list[Minute]:
        oldest = now - self.span_ms
        for start in [s for s in self.buckets if s + self.bucket_ms <= oldest]:
            del self.buckets[start]
        return list(self.buckets.values())

    def total(self, now: int) -> int:
        return sum(m.volume for m in self._current(now))

    def price_range(self, now: int) -> tuple[int, int, int] | None:
        """(open, high, low) over the window, None without trades."""
        minutes = self._current(now)
        if not minutes:
            return None
        first = min(minutes, key=lambda m: m.first_tid)
        return first.open, max(m.high for m in minutes), min(m.low for m in minutes)


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
        self.day = DayWindow()
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
        self.day.add(int(ev["ts"]), int(ev["size"]), self.last_price, tid)
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
        now = now_ms()
        day = self.day.price_range(now)
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
            "volume_24h": fmt.quantity(self.day.total(now)),
            "open_24h": fmt.price(day[0]) if day else None,
            "high_24h": fmt.price(day[1]) if day else None,
            "low_24h": fmt.price(day[2]) if day else None,
            "seq": self.book.seq,
            "ts": now,
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
