"""Random order flow (pure): the next order of the random trader."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from fractions import Fraction

from client.amounts import to_fraction
from client.markets import MarketSpec

MARKET_BUY_MARGIN = Fraction(110, 100)
"""A market buy by size holds its estimated cost plus 5 % (docs/protocol.md): its cost
is taken as the reference price plus 10 % when checking the funds."""


@dataclass(frozen=True)
class FlowParams:
    """Shape of the random flow.

    Sizes are ``1..max_size_multiple`` times the market's minimum size; ``market_pct``
    percent of orders are market orders; limit prices are drawn within
    ``max_offset_ticks`` of the reference, mostly on the passive side
    (``cross_pct`` percent of limit orders may cross it).
    """

    max_size_multiple: int = 5
    market_pct: int = 30
    max_offset_ticks: int = 20
    cross_pct: int = 20

    def check(self) -> None:
        if self.max_size_multiple < 1 or self.max_offset_ticks < 0:
            raise ValueError("max_size_multiple must be >= 1 and max_offset_ticks >= 0")
        if not (0 <= self.market_pct <= 100 and 0 <= self.cross_pct <= 100):
            raise ValueError("percentages must be within 0..100")


@dataclass(frozen=True)
class OrderIntent:
    side: str
    type: str
    amount: str
    price: str | None = None


def random_order(
    rng: random.Random, market: MarketSpec, reference_ticks: int, params: FlowParams
) -> OrderIntent:
    """Draw one order around a reference price given in ticks."""
    side = rng.choice(("buy", "sell"))
    lots = market.min_lots * rng.randint(1, params.max_size_multiple)
    amount = market.size.format(lots)
    if rng.randrange(100) < params.market_pct:
        return OrderIntent(side, "market", amount)
    offset = rng.randint(1, max(1, params.max_offset_ticks))
    if rng.randrange(100) < params.cross_pct:
        offset = -rng.randint(0, max(1, params.max_offset_ticks // 4))
    ticks = reference_ticks - offset if side == "buy" else reference_ticks + offset
    return OrderIntent(side, "limit", amount, market.price.format(max(1, ticks)))


def cost(intent: OrderIntent, market: MarketSpec, reference_ticks: int) -> tuple[str, Fraction]:
    """What the order holds: ``(asset, amount)``; a market buy's is an estimate."""
    amount = to_fraction(intent.amount)
    if intent.side == "sell":
        return market.base, amount
    if intent.price is not None:
        return market.quote, amount * to_fraction(intent.price)
    return market.quote, amount * market.price.step * reference_ticks * MARKET_BUY_MARGIN


def funded(
    intent: OrderIntent, market: MarketSpec, reference_ticks: int, free: dict[str, Fraction]
) -> OrderIntent | None:
    """``intent`` if the ``free`` balances pay for it, else the same order on the other
    side (a limit price mirrored around the reference) if they pay for that, else None."""
    side = "sell" if intent.side == "buy" else "buy"
    price = intent.price
    if price is not None:
        mirrored = 2 * reference_ticks - market.price.steps(price)
        price = market.price.format(max(1, mirrored))
    for candidate in (intent, replace(intent, side=side, price=price)):
        asset, needed = cost(candidate, market, reference_ticks)
        if needed <= free.get(asset, Fraction(0)):
            return candidate
    return None
