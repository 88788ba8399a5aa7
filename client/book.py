"""Local L2 order book kept in sync with the ``book`` channel (PROTOCOL.md).

Pure logic, no I/O. Levels are kept as the exact strings received and sorted by
their decimal value. The sync rule:

- a snapshot replaces the book and sets the local ``seq``;
- an update with ``seq <= local`` is stale and ignored;
- an update with ``first_seq > local + 1`` means messages were missed: the book is
  cleared and the caller must resubscribe;
- otherwise absolute sizes are applied (``"0"`` removes the level), ``seq`` is
  advanced and the checksum verified; on mismatch the book is cleared and the caller
  must resubscribe.
"""

from __future__ import annotations

import enum
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from itertools import islice
from typing import Any

from client.checksum import Level
from client.checksum import checksum as book_checksum


class BookStatus(enum.Enum):
    """Outcome of feeding one message to a :class:`LocalBook`."""

    APPLIED = "applied"
    STALE = "stale"
    NOT_READY = "not_ready"
    GAP = "gap"
    CHECKSUM_MISMATCH = "checksum_mismatch"

    @property
    def needs_resubscribe(self) -> bool:
        """True when the book was cleared and a fresh snapshot is required."""
        return self in (BookStatus.GAP, BookStatus.CHECKSUM_MISMATCH)


def _decimal(value: str, what: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"invalid {what} {value!r}") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"invalid {what} {value!r}")
    return number


def _level(entry: Any) -> Level:
    """Validate one ``[price, size]`` pair from the wire."""
    if not isinstance(entry, list | tuple) or len(entry) < 2:
        raise ValueError(f"invalid book level {entry!r}")
    price, size = entry[0], entry[1]
    if not isinstance(price, str) or not isinstance(size, str):
        raise ValueError(f"book prices and sizes must be strings: {entry!r}")
    return price, size


class _Side:
    """One side of the book: price → level, with prices kept sorted ascending."""

    def __init__(self, *, descending: bool) -> None:
        self.descending = descending
        self._levels: dict[Decimal, Level] = {}
        self._prices: list[Decimal] = []

    def __len__(self) -> int:
        return len(self._prices)

    def clear(self) -> None:
        self._levels.clear()
        self._prices.clear()

    def set(self, price: str, size: str) -> None:
        key = _decimal(price, "price")
        if _decimal(size, "size") == 0:
            if self._levels.pop(key, None) is not None:
                del self._prices[bisect_left(self._prices, key)]
            return
        if key not in self._levels:
            insort(self._prices, key)
        self._levels[key] = (price, size)

    def truncate(self, depth: int) -> None:
        """Keep only the best ``depth`` levels."""
        excess = len(self._prices) - depth
        if excess <= 0:
            return
        dropped = self._prices[:excess] if self.descending else self._prices[-excess:]
        for key in dropped:
            del self._levels[key]
        self._prices = self._prices[excess:] if self.descending else self._prices[:-excess]

    def best_first(self) -> Iterator[Level]:
        prices = reversed(self._prices) if self.descending else iter(self._prices)
        return (self._levels[key] for key in prices)


class LocalBook:
    """An L2 book for one market, fed with ``book`` pushes.

    ``depth`` (the subscribed depth) truncates the book after every message. hftx
    itself sends size ``"0"`` for a level leaving the window (docs/protocol.md, "Book
    sync"), so this only guards against a server that does not.
    """

    def __init__(self, market: str = "", depth: int | None = None) -> None:
        self.market = market
        self.depth = depth
        self.seq: int | None = None
        self._bids = _Side(descending=True)
        self._asks = _Side(descending=False)

    def __repr__(self) -> str:
        return (
            f"LocalBook(market={self.market!r}, seq={self.seq}, "
            f"bids={len(self._bids)}, asks={len(self._asks)})"
        )

    @property
    def ready(self) -> bool:
        """True once a snapshot has been applied (and no resync is pending)."""
        return self.seq is not None

    def reset(self) -> None:
        """Forget everything; updates are ignored until the next snapshot."""
        self.seq = None
        self._bids.clear()
        self._asks.clear()

    def apply(self, message: Mapping[str, Any]) -> BookStatus:
        """Feed one ``book`` push (``type`` ``snapshot`` or ``update``)."""
        kind = message.get("type")
        bids = message.get("bids") or []
        asks = message.get("asks") or []
        expected = message.get("checksum")
        if kind == "snapshot":
            return self.apply_snapshot(int(message["seq"]), bids, asks, expected)
        if kind == "update":
            seq = int(message["seq"])
            first_seq = int(message.get("first_seq", seq))
            return self.apply_update(first_seq, seq, bids, asks, expected)
        raise ValueError(f"unknown book message type {kind!r}")

    def apply_snapshot(
        self,
        seq: int,
        bids: Iterable[Any],
        asks: Iterable[Any],
        checksum: int | str | None = None,
    ) -> BookStatus:
        """Replace the book with a snapshot taken at ``seq``."""
        self.reset()
        self._apply_levels(bids, asks)
        self.seq = seq
        return self._verify(checksum)

    def apply_update(
        self,
        first_seq: int,
        seq: int,
        bids: Iterable[Any],
        asks: Iterable[Any],
        checksum: int | str | None = None,
    ) -> BookStatus:
        """Apply an update covering sequence numbers ``first_seq..seq``."""
        if self.seq is None:
            return BookStatus.NOT_READY
        if seq <= self.seq:
            return BookStatus.STALE
        if first_seq > self.seq + 1:
            self.reset()
            return BookStatus.GAP
        self._apply_levels(bids, asks)
        self.seq = seq
        return self._verify(checksum)

    def _apply_levels(self, bids: Iterable[Any], asks: Iterable[Any]) -> None:
        try:
            for side, entries in ((self._bids, bids), (self._asks, asks)):
                for entry in entries:
                    side.set(*_level(entry))
                if self.depth is not None:
                    side.truncate(self.depth)
        except ValueError:
            self.reset()
            raise

    def _verify(self, expected: int | str | None) -> BookStatus:
        if expected is not None and int(expected) != self.checksum():
            self.reset()
            return BookStatus.CHECKSUM_MISMATCH
        return BookStatus.APPLIED

    def bids(self, limit: int | None = None) -> list[Level]:
        """Bids, best (highest) first."""
        return list(islice(self._bids.best_first(), limit))

    def asks(self, limit: int | None = None) -> list[Level]:
        """Asks, best (lowest) first."""
        return list(islice(self._asks.best_first(), limit))

    def best_bid(self) -> Level | None:
        """The highest bid ``(price, size)``, or ``None`` when there is none."""
        return next(self._bids.best_first(), None)

    def best_ask(self) -> Level | None:
        """The lowest ask ``(price, size)``, or ``None`` when there is none."""
        return next(self._asks.best_first(), None)

    def checksum(self) -> int:
        """The PROTOCOL.md checksum of the current book."""
        return book_checksum(self._asks.best_first(), self._bids.best_first())
