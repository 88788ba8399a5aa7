"""In-memory L2 book of one market and the per-depth diffs sent to subscribers.

Pure logic, no I/O. Prices and sizes are integers (engine units); turning them
into wire strings is :class:`Formatter`'s job. Each side keeps its prices in a
list sorted best first (bids by descending price), so the top ``n`` levels are a
slice.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable

from client.checksum import CHECKSUM_DEPTH
from client.checksum import checksum as crc_checksum
from engine.types import Market
from engine.units import price_places, size_places

Level = tuple[int, int]  # (price, size)
WireLevel = list[str]


class Side:
    """One side: price -> size, and sort keys best first (``-price`` for bids)."""

    __slots__ = ("bids", "keys", "sizes")

    def __init__(self, bids: bool) -> None:
        self.bids = bids
        self.sizes: dict[int, int] = {}
        self.keys: list[int] = []

    def key(self, price: int) -> int:
        return -price if self.bids else price

    def set(self, price: int, size: int) -> None:
        if size <= 0:
            if self.sizes.pop(price, None) is not None:
                k = self.key(price)
                del self.keys[bisect_left(self.keys, k)]
            return
        if price not in self.sizes:
            insort(self.keys, self.key(price))
        self.sizes[price] = size

    def top(self, n: int) -> list[int]:
        """The best ``n`` prices, best first."""
        keys = self.keys[:n]
        return [-k for k in keys] if self.bids else keys

    def levels(self, n: int) -> list[Level]:
        return [(p, self.sizes[p]) for p in self.top(n)]

    def __len__(self) -> int:
        return len(self.keys)

    def clear(self) -> None:
        self.sizes.clear()
        self.keys.clear()

    def load(self, levels: Iterable[Level]) -> None:
        self.clear()
        for price, size in levels:
            if size > 0:
                self.sizes[price] = size
        self.keys = sorted(self.key(p) for p in self.sizes)


def side_diff(side: Side, old_top: list[int], new_top: list[int], changed: set[int]) -> list[Level]:
    """Levels a subscriber showing ``old_top`` must apply to show ``new_top``.

    Levels new to the view or whose size changed carry their size; levels that
    left the view carry 0 (removed or pushed beyond the subscribed depth).
    """
    old, new = set(old_top), set(new_top)
    out = [(p, side.sizes[p]) for p in new_top if p in changed or p not in old]
    out.extend((p, 0) for p in old_top if p not in new)
    return out


def untouched(side: Side, old_top: list[int], depth: int, changed: set[int]) -> bool:
    """True when no change in ``changed`` can alter the top ``depth`` of ``side``.

    That is the case when the view was full and every changed price is worse than
    its worst level (adding or removing deeper levels does not enter the view).
    """
    if not changed:
        return True
    if len(old_top) < depth:
        return False
    worst = side.key(old_top[-1])
    return all(side.key(p) > worst for p in changed)


class Formatter:
    """Integer units -> the market's wire decimal strings, fast (no Decimal)."""

    __slots__ = ("_pdiv", "_pfmt", "_pone", "_sdiv", "_sfmt", "_sone")

    def __init__(self, market: Market) -> None:
        pp, sp = price_places(market), size_places(market)
        self._pone, self._pdiv, self._pfmt = (
            10**market.quote_scale,
            10 ** (market.quote_scale - pp),
            pp,
        )
        self._sone, self._sdiv, self._sfmt = (
            10**market.base_scale,
            10 ** (market.base_scale - sp),
            sp,
        )

    @staticmethod
    def _fmt(units: int, one: int, div: int, places: int) -> str:
        whole, frac = divmod(units, one)
        if not places:
            return str(whole)
        return f"{whole}.{frac // div:0{places}d}"

    def price(self, units: int) -> str:
        return self._fmt(units, self._pone, self._pdiv, self._pfmt)

    def size(self, units: int) -> str:
        """A book level's size: ``"0"`` removes the level (PROTOCOL.md)."""
        if units == 0:
            return "0"
        return self._fmt(units, self._sone, self._sdiv, self._sfmt)

    def quantity(self, units: int) -> str:
        """A base quantity with the market's fixed precision, zero too (``"0.000"``)."""
        return self._fmt(units, self._sone, self._sdiv, self._sfmt)

    def levels(self, levels: Iterable[Level]) -> list[WireLevel]:
        return [[self.price(p), self.size(s)] for p, s in levels]


def checksum(bids: list[WireLevel], asks: list[WireLevel]) -> int:
    """PROTOCOL.md's CRC32 over the top 10 asks then the top 10 bids, best first."""
    return crc_checksum(
        asks=[(p, s) for p, s in asks[:CHECKSUM_DEPTH]],
        bids=[(p, s) for p, s in bids[:CHECKSUM_DEPTH]],
    )


class L2Book:
    """A market's aggregated book at ``seq``."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.fmt = Formatter(market)
        self.bids = Side(bids=True)
        self.asks = Side(bids=False)
        self.seq = 0

    def side(self, side: str) -> Side:
        return self.bids if side == "buy" else self.asks

    def load(self, seq: int, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        self.bids.load(bids)
        self.asks.load(asks)
        self.seq = seq

    def view(self, depth: int) -> tuple[list[WireLevel], list[WireLevel]]:
        return (
            self.fmt.levels(self.bids.levels(depth)),
            self.fmt.levels(self.asks.levels(depth)),
        )

    def view_checksum(self, depth: int) -> int:
        bids, asks = self.view(min(depth, CHECKSUM_DEPTH))
        return checksum(bids, asks)

    def best(self) -> tuple[Level | None, Level | None]:
        bid = self.bids.levels(1)
        ask = self.asks.levels(1)
        return (bid[0] if bid else None, ask[0] if ask else None)
