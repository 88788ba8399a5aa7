"""Market-maker quoting logic (pure): where to quote and what to change.

Prices are computed in integer ticks and sizes in integer lots of the market, so every
quote is exactly on the grid; the reference price is an exact fraction.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from client.amounts import to_fraction
from client.markets import MarketSpec

BPS = 10_000


@dataclass(frozen=True)
class Quote:
    """One resting order the market maker wants: side, price and size as wire strings."""

    side: str
    price: str
    size: str


@dataclass(frozen=True)
class QuoteParams:
    """Shape of the quotes.

    Level ``i`` (from 0) sits ``spread_bps + i * step_bps`` basis points away from
    the reference on each side, at least one tick further out than level ``i - 1``.
    ``max_inventory`` bounds the base position: a side is quoted only as far as a full
    fill of it would keep ``|position| <= max_inventory``. A resting quote within
    ``requote_bps`` of its target price is left alone (see :func:`plan_requote`).
    """

    levels: int = 3
    spread_bps: int = 10
    step_bps: int = 10
    size: str = "0.01"
    max_inventory: str = "1"
    requote_bps: int = 2

    def check(self, market: MarketSpec) -> None:
        """Raise ValueError if these parameters cannot produce valid orders."""
        if min(self.levels, self.spread_bps, self.step_bps, self.requote_bps) < 0:
            raise ValueError("levels, spread_bps, step_bps and requote_bps must be >= 0")
        if self.spread_bps + self.levels * self.step_bps >= BPS:
            raise ValueError("quotes would reach a zero or negative price")
        lots = market.size.steps(self.size)  # raises if not on the size grid
        if lots <= 0 or to_fraction(self.size) < market.min_size:
            raise ValueError(f"size {self.size} is below the market minimum")
        if to_fraction(self.max_inventory) < 0:
            raise ValueError("max_inventory must be >= 0")


def reference_from_book(best_bid: str | None, best_ask: str | None) -> Fraction | None:
    """Mid price of the book, the one side present, or None for an empty book."""
    if best_bid is not None and best_ask is not None:
        return (to_fraction(best_bid) + to_fraction(best_ask)) / 2
    side = best_bid if best_bid is not None else best_ask
    return None if side is None else to_fraction(side)


def requote_tolerance(reference: Fraction, params: QuoteParams) -> Fraction:
    """Price distance within which a resting quote is kept."""
    return reference * params.requote_bps / BPS


def random_walk(ticks: int, max_step: int, rng: random.Random) -> int:
    """Move a reference (in ticks) by up to ``max_step`` ticks, staying >= 1 tick."""
    return max(1, ticks + rng.randint(-max_step, max_step))


def build_quotes(
    market: MarketSpec,
    params: QuoteParams,
    reference: Fraction,
    position: Fraction = Fraction(0),
) -> list[Quote]:
    """Bids (best first) then asks (best first) around ``reference``.

    ``position`` is the base inventory accumulated so far (positive: long).
    """
    params.check(market)
    if reference <= 0:
        return []
    ref = reference / market.price.step  # in ticks, possibly fractional
    lots = market.size.steps(params.size)
    size = market.size.format(lots)
    fill = market.size.step * lots
    limit = to_fraction(params.max_inventory)

    quotes: list[Quote] = []
    below = -(-ref.numerator // ref.denominator)  # ceil(ref): bids go strictly below
    exposure = position
    for level in range(params.levels):
        factor = Fraction(BPS - params.spread_bps - level * params.step_bps, BPS)
        ticks = min(_floor(ref * factor), below - 1)
        exposure += fill
        if ticks < 1 or exposure > limit:
            break
        quotes.append(Quote("buy", market.price.format(ticks), size))
        below = ticks

    above = _floor(ref)  # asks go strictly above
    exposure = position
    for level in range(params.levels):
        factor = Fraction(BPS + params.spread_bps + level * params.step_bps, BPS)
        ticks = max(-_floor(-ref * factor), above + 1)
        exposure -= fill
        if exposure < -limit:
            break
        quotes.append(Quote("sell", market.price.format(ticks), size))
        above = ticks
    return quotes


def _floor(value: Fraction) -> int:
    return value.numerator // value.denominator


def plan_requote(
    open_orders: Iterable[Mapping[str, Any]],
    desired: Iterable[Quote],
    tolerance: Fraction = Fraction(0),
) -> tuple[list[str], list[Quote]]:
    """What to cancel (order ids) and what to place to turn open orders into ``desired``.

    An open order is kept for a desired quote of the same side and remaining size
    whose price is at most ``tolerance`` away (the closest one wins), so small moves of
    the reference cause no churn while partially filled quotes are replaced.
    """
    unmatched = [
        (str(o["id"]), o["side"], to_fraction(o["price"]), to_fraction(_remaining(o)))
        for o in open_orders
    ]
    to_place: list[Quote] = []
    for quote in desired:
        price, size = to_fraction(quote.price), to_fraction(quote.size)
        candidates = [
            (abs(o_price - price), index)
            for index, (_, o_side, o_price, o_size) in enumerate(unmatched)
            if o_side == quote.side and o_size == size and abs(o_price - price) <= tolerance
        ]
        if candidates:
            del unmatched[min(candidates)[1]]
        else:
            to_place.append(quote)
    return [order_id for order_id, *_ in unmatched], to_place


def _remaining(order: Mapping[str, Any]) -> str:
    remaining = order.get("remaining")
    return str(order["amount"] if remaining is None else remaining)
