"""Market metadata from ``GET /markets`` with its price and size grids (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from client.amounts import Grid, to_fraction


@dataclass(frozen=True)
class MarketSpec:
    """What a trading program needs to know about a market to build valid orders."""

    id: str
    base: str
    quote: str
    price: Grid
    size: Grid
    min_size: Fraction
    status: str = "TRADING"

    @classmethod
    def from_market(cls, market: Mapping[str, Any]) -> MarketSpec:
        """Build from one element of ``GET /markets``."""
        return cls(
            id=market["id"],
            base=market["base"],
            quote=market["quote"],
            price=Grid(market["price_increment"]),
            size=Grid(market["size_increment"]),
            min_size=to_fraction(market.get("min_size") or market["size_increment"]),
            status=market.get("status", "TRADING"),
        )

    @property
    def min_lots(self) -> int:
        """Smallest order size, in size increments."""
        return max(1, self.size.steps(self.min_size, "up"))
