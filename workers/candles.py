"""OHLCV candles (1m, 5m, 1h, 1d) from trades: pure aggregation plus the SQL merge.

Buckets start at multiples of the interval since the epoch (UTC). ``open`` and
``close`` are the prices of the lowest and highest trade id in the bucket, so
batches merge in any order to the same candle. The drain feeds only trades that
its INSERT ... ON CONFLICT DO NOTHING actually inserted, in the same transaction,
so each trade is counted exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

INTERVALS: dict[str, int] = {"1m": 60_000, "5m": 300_000, "1h": 3_600_000, "1d": 86_400_000}

# (market, trade_id, price, size, quote, ts)
TradeTick = tuple[str, int, int, int, int, int]


@dataclass(slots=True)
class Candle:
    market: str
    interval: str
    start: int  # ms
    open: int
    high: int
    low: int
    close: int
    volume: int  # base units
    quote_volume: int  # quote units
    trades: int
    first_tid: int
    last_tid: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.market, self.interval, self.start)

    def add(self, tid: int, price: int, size: int, quote: int) -> None:
        """Fold one trade of this bucket in."""
        if tid < self.first_tid:
            self.first_tid, self.open = tid, price
        if tid > self.last_tid:
            self.last_tid, self.close = tid, price
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        self.volume += size
        self.quote_volume += quote
        self.trades += 1

    def merge(self, other: Candle) -> Candle:
        """The candle of both trade sets (same key); mirrors :data:`UPSERT_SQL`."""
        first = self if self.first_tid <= other.first_tid else other
        last = self if self.last_tid >= other.last_tid else other
        return Candle(
            self.market,
            self.interval,
            self.start,
            first.open,
            max(self.high, other.high),
            min(self.low, other.low),
            last.close,
            self.volume + other.volume,
            self.quote_volume + other.quote_volume,
            self.trades + other.trades,
            first.first_tid,
            last.last_tid,
        )


def bucket_start(ts: int, interval_ms: int) -> int:
    return ts - ts % interval_ms


def aggregate(trades: Iterable[TradeTick], intervals: dict[str, int] = INTERVALS) -> list[Candle]:
    """Candles of ``trades`` for every interval, sorted by key (market, interval, start).

    Trades are folded into the smallest interval; the larger ones (multiples of
    it) are merged from those candles."""
    items = sorted(intervals.items(), key=lambda kv: kv[1])
    base_name, base_ms = items[0]
    base: dict[tuple[str, str, int], Candle] = {}
    for market, tid, price, size, quote, ts in trades:
        key = (market, base_name, ts - ts % base_ms)
        c = base.get(key)
        if c is None:
            base[key] = Candle(market, base_name, key[2], price, price, price, price, size,
                               quote, 1, tid, tid)  # fmt: skip
        else:
            c.add(tid, price, size, quote)
    out = dict(base)
    for name, ms in items[1:]:
        if ms % base_ms:
            raise ValueError(f"interval {name} is not a multiple of {base_name}")
        for c in base.values():
            key = (c.market, name, c.start - c.start % ms)
            rolled = Candle(c.market, name, key[2], c.open, c.high, c.low, c.close, c.volume,
                            c.quote_volume, c.trades, c.first_tid, c.last_tid)  # fmt: skip
            have = out.get(key)
            out[key] = rolled if have is None else have.merge(rolled)
    return [out[k] for k in sorted(out)]


UPSERT_SQL = """
INSERT INTO candles AS c (market, interval, start_ts, open, high, low, close, volume,
                          quote_volume, trades, first_tid, last_tid)
SELECT * FROM unnest(%s::text[], %s::text[], %s::int8[], %s::int8[], %s::int8[], %s::int8[],
                     %s::int8[], %s::numeric[], %s::numeric[], %s::int8[], %s::int8[], %s::int8[])
ON CONFLICT (market, interval, start_ts) DO UPDATE SET
    open = CASE WHEN EXCLUDED.first_tid < c.first_tid THEN EXCLUDED.open ELSE c.open END,
    first_tid = LEAST(c.first_tid, EXCLUDED.first_tid),
    close = CASE WHEN EXCLUDED.last_tid > c.last_tid THEN EXCLUDED.close ELSE c.close END,
    last_tid = GREATEST(c.last_tid, EXCLUDED.last_tid),
    high = GREATEST(c.high, EXCLUDED.high),
    low = LEAST(c.low, EXCLUDED.low),
    volume = c.volume + EXCLUDED.volume,
    quote_volume = c.quote_volume + EXCLUDED.quote_volume,
    trades = c.trades + EXCLUDED.trades
"""


def upsert_params(candles: list[Candle]) -> list[list[Any]]:
    """Column arrays for :data:`UPSERT_SQL` (candles must have distinct keys)."""
    cols: list[list[Any]] = [[] for _ in range(12)]
    for c in candles:
        for i, v in enumerate(
            (
                c.market,
                c.interval,
                c.start,
                c.open,
                c.high,
                c.low,
                c.close,
                c.volume,
                c.quote_volume,
                c.trades,
                c.first_tid,
                c.last_tid,
            )
        ):
            cols[i].append(v)
    return cols


async def upsert(conn: Any, candles: list[Candle]) -> None:
    """Merge ``candles`` into the table (inside the caller's transaction)."""
    if candles:
        await conn.execute(UPSERT_SQL, upsert_params(candles))
