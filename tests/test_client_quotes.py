"""Market-maker quoting logic (client/bots/quotes.py) and market grids."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.amounts import Grid, to_fraction
from client.bots.quotes import (
    Quote,
    QuoteParams,
    build_quotes,
    plan_requote,
    random_walk,
    reference_from_book,
    requote_tolerance,
)
from client.markets import MarketSpec


def market(tick: str = "0.01", lot: str = "0.0001", min_size: str = "0.001") -> MarketSpec:
    return MarketSpec.from_market(
        {"id": "BTC-USD", "base": "BTC", "quote": "USD", "price_increment": tick,
         "size_increment": lot, "min_size": min_size, "status": "TRADING"}
    )  # fmt: skip


def sides(quotes: list[Quote]) -> tuple[list[Quote], list[Quote]]:
    return [q for q in quotes if q.side == "buy"], [q for q in quotes if q.side == "sell"]


def test_hand_computed_levels() -> None:
    params = QuoteParams(levels=2, spread_bps=10, step_bps=10, size="0.0100", max_inventory="5")
    quotes = build_quotes(market(), params, Fraction(100))
    assert quotes == [
        Quote("buy", "99.90", "0.0100"),
        Quote("buy", "99.80", "0.0100"),
        Quote("sell", "100.10", "0.0100"),
        Quote("sell", "100.20", "0.0100"),
    ]


def test_fractional_reference_rounds_away_from_mid() -> None:
    # mid of 100.01 / 100.02 is 100.015; 10 bps is ~0.10
    ref = reference_from_book("100.01", "100.02")
    assert ref == Fraction(100015, 1000)
    quotes = build_quotes(market(), QuoteParams(levels=1, size="0.01"), ref)
    assert quotes == [Quote("buy", "99.91", "0.0100"), Quote("sell", "100.12", "0.0100")]


def test_levels_never_collapse_on_a_coarse_tick() -> None:
    quotes = build_quotes(
        market(tick="1"), QuoteParams(levels=3, spread_bps=1, step_bps=1), Fraction(50)
    )
    bids, asks = sides(quotes)
    assert [q.price for q in bids] == ["49", "48", "47"]
    assert [q.price for q in asks] == ["51", "52", "53"]


def test_no_bid_at_or_below_one_tick_reference() -> None:
    bids, asks = sides(build_quotes(market(tick="1"), QuoteParams(spread_bps=0), Fraction(1)))
    assert bids == [] and [q.price for q in asks] == ["2", "3", "4"]


def test_bids_stop_above_zero() -> None:
    quotes = build_quotes(market(tick="1"), QuoteParams(levels=5), Fraction(3))
    bids, asks = sides(quotes)
    assert [q.price for q in bids] == ["2", "1"]
    assert len(asks) == 5


def test_long_inventory_stops_bids() -> None:
    params = QuoteParams(levels=3, size="0.5", max_inventory="1")
    bids, asks = sides(build_quotes(market(), params, Fraction(100), position=Fraction(1)))
    assert bids == []
    assert len(asks) == 3
    bids, _ = sides(build_quotes(market(), params, Fraction(100), position=Fraction(0)))
    assert len(bids) == 2  # 0 + 2 * 0.5 <= 1, a third would make 1.5


def test_short_inventory_stops_asks() -> None:
    params = QuoteParams(levels=3, size="0.5", max_inventory="1")
    bids, asks = sides(build_quotes(market(), params, Fraction(100), position=Fraction(-3, 4)))
    assert asks == []
    assert len(bids) == 3


@pytest.mark.parametrize(
    ("params", "spec"),
    [
        (QuoteParams(size="0.00015"), market()),  # not a multiple of the lot
        (QuoteParams(size="0.0005"), market()),  # below min_size
        (QuoteParams(spread_bps=9000, step_bps=1000, levels=1), market()),
        (QuoteParams(levels=-1), market()),
        (QuoteParams(max_inventory="-1"), market()),
    ],
)
def test_invalid_params_raise(params: QuoteParams, spec: MarketSpec) -> None:
    with pytest.raises(ValueError):
        build_quotes(spec, params, Fraction(100))


def test_reference_from_book() -> None:
    assert reference_from_book(None, None) is None
    assert reference_from_book("10.5", None) == Fraction(21, 2)
    assert reference_from_book(None, "11") == 11


def test_random_walk_is_bounded() -> None:
    rng = random.Random(1)
    ticks = 5
    for _ in range(1000):
        new = random_walk(ticks, 3, rng)
        assert new >= 1 and abs(new - ticks) <= 3
        ticks = new


def test_plan_requote_keeps_matches_replaces_partials() -> None:
    desired = [Quote("buy", "99.90", "0.0100"), Quote("sell", "100.10", "0.0100")]
    open_orders = [
        {"id": "1", "side": "buy", "price": "99.9", "amount": "0.01", "remaining": "0.01"},
        {"id": "2", "side": "sell", "price": "100.10", "amount": "0.01", "remaining": "0.004"},
        {"id": "3", "side": "buy", "price": "99.80", "amount": "0.01", "remaining": "0.01"},
    ]
    cancel, place = plan_requote(open_orders, desired)
    assert cancel == ["2", "3"]
    assert place == [Quote("sell", "100.10", "0.0100")]
    assert plan_requote([], desired) == ([], desired)
    assert plan_requote(open_orders[:1], desired[:1]) == ([], [])


def test_plan_requote_duplicates() -> None:
    desired = [Quote("buy", "1.00", "1"), Quote("buy", "1.00", "1")]
    open_orders = [{"id": "7", "side": "buy", "price": "1", "amount": "1", "remaining": "1"}]
    assert plan_requote(open_orders, desired) == ([], [desired[1]])


def test_plan_requote_tolerance_avoids_churn() -> None:
    open_orders = [
        {"id": "a", "side": "buy", "price": "99.88", "amount": "1", "remaining": "1"},
        {"id": "b", "side": "buy", "price": "99.92", "amount": "1", "remaining": "1"},
        {"id": "c", "side": "sell", "price": "100.12", "amount": "1", "remaining": "0.5"},
    ]
    desired = [Quote("buy", "99.91", "1"), Quote("sell", "100.11", "1")]
    cancel, place = plan_requote(open_orders, desired, Fraction(2, 100))
    assert cancel == ["a", "c"]  # "b" is the closest bid; "c" is partially filled
    assert place == [Quote("sell", "100.11", "1")]
    assert plan_requote(open_orders, desired) == (["a", "b", "c"], desired)


def test_requote_tolerance() -> None:
    params = QuoteParams(requote_bps=2)
    assert requote_tolerance(Fraction(30000), params) == 6
    with pytest.raises(ValueError):
        QuoteParams(requote_bps=-1).check(market())


def test_grid_formats_with_increment_decimals() -> None:
    assert Grid("0.01").format(3000010) == "30000.10"
    assert Grid("0.00000001").format(1) == "0.00000001"
    assert Grid("5").format(3) == "15"
    assert Grid("0.5").align("10.74") == "10.5"
    assert Grid("0.5").align("10.74", "up") == "11.0"
    with pytest.raises(ValueError):
        Grid("0.01").steps("1.001")
    with pytest.raises(TypeError):
        Grid("0.01").steps(1.5)  # type: ignore[arg-type]


ticks = st.sampled_from(["0.01", "0.5", "1", "0.00001", "25"])
lots = st.sampled_from(["0.0001", "0.01", "1"])


@settings(max_examples=300, deadline=None)
@given(
    tick=ticks,
    lot=lots,
    reference=st.fractions(min_value=Fraction(1, 1000), max_value=10**6, max_denominator=10**6),
    levels=st.integers(0, 6),
    spread_bps=st.integers(0, 500),
    step_bps=st.integers(0, 200),
    size_lots=st.integers(1, 50),
    max_inventory_lots=st.integers(0, 400),
    position_lots=st.integers(-400, 400),
)
def test_quotes_are_on_grid_ordered_and_within_inventory(
    tick, lot, reference, levels, spread_bps, step_bps, size_lots, max_inventory_lots, position_lots
) -> None:
    spec = market(tick=tick, lot=lot, min_size=lot)
    size = spec.size.format(size_lots)
    params = QuoteParams(levels, spread_bps, step_bps, size, spec.size.format(max_inventory_lots))
    position = spec.size.step * position_lots
    bids, asks = sides(build_quotes(spec, params, reference, position))

    for q in bids + asks:
        assert spec.price.format(spec.price.steps(q.price)) == q.price  # exact, on the tick
        assert spec.size.steps(q.size) == size_lots
        assert to_fraction(q.price) > 0
    bid_prices = [to_fraction(q.price) for q in bids]
    ask_prices = [to_fraction(q.price) for q in asks]
    assert all(p < reference for p in bid_prices)
    assert all(p > reference for p in ask_prices)
    assert bid_prices == sorted(set(bid_prices), reverse=True)
    assert ask_prices == sorted(set(ask_prices))
    assert len(bids) <= levels and len(asks) <= levels

    fill = spec.size.step * size_lots
    limit = spec.size.step * max_inventory_lots
    assert position + fill * len(bids) <= limit or not bids
    assert position - fill * len(asks) >= -limit or not asks
    # A side stops early only for inventory (or, for bids, at the zero price floor).
    if len(asks) < levels:
        assert position - fill * (len(asks) + 1) < -limit
    if len(bids) < levels and position + fill * (len(bids) + 1) <= limit:
        next_factor = Fraction(10_000 - spread_bps - len(bids) * step_bps, 10_000)
        at_floor = bool(bids) and spec.price.steps(bids[-1].price) == 1
        below_one_tick = reference / spec.price.step * next_factor < 1
        assert at_floor or below_one_tick or reference <= spec.price.step
