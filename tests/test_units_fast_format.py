"""The fast formatters (cached grid, divmod) against exact Decimal arithmetic, and the
order pushes of one crossing call."""

from __future__ import annotations

import gc
from dataclasses import replace
from decimal import ROUND_DOWN, Context, Decimal

from hypothesis import given
from hypothesis import strategies as st

from engine.pushes import order_pushes
from engine.types import Market, Order
from engine.units import format_amount, format_price, format_quote, format_size, grid

MARKET = Market(
    id="BTC-USD", base="BTC", quote="USD", base_scale=8, quote_scale=6, tick=10_000,
    lot=1_000, min_size=1_000, max_notional=2**53 - 1, maker_fee_bps=10, taker_fee_bps=20,
)  # fmt: skip


def reference(scale: int, units: int, places: int) -> str:
    """``units`` of ``scale`` cut (not rounded) to ``places`` decimals, by Decimal."""
    exact = Context(prec=100)
    value = (
        Decimal(abs(units))
        .scaleb(-scale, exact)
        .quantize(Decimal(1).scaleb(-places), ROUND_DOWN, exact)
    )
    return ("-" if units < 0 else "") + f"{value:.{places}f}"


@given(st.integers(0, 18), st.integers(-(10**30), 10**30), st.integers(0, 24))
def test_format_amount_is_exact(scale: int, units: int, places: int) -> None:
    assert format_amount(scale, units, places) == reference(scale, units, places)
    assert format_amount(scale, units) == reference(scale, units, scale)


@given(st.integers(-(10**20), 10**20))
def test_market_formatters_use_its_increments(units: int) -> None:
    assert format_price(MARKET, units) == reference(6, units, 2)  # tick 0.01
    assert format_size(MARKET, units) == reference(8, units, 5)  # lot 0.00001
    assert format_quote(MARKET, units) == reference(6, units, 6)
    assert grid(MARKET).base(units) == reference(8, units, 8)


def order(oid: str, user: str, side: str, amount: int, filled: int, status: str) -> Order:
    return Order(
        id=oid, user_id=user, market=MARKET.id, side=side, type="limit",  # type: ignore[arg-type]
        time_in_force="GTC", post_only=False, price=30_000_000_000, amount=amount,
        filled=filled, cost=filled * 300, status=status, created_ts=1, updated_ts=1,  # type: ignore[arg-type]
    )  # fmt: skip


TS = 1_700_000_000_000


def done(oid: str, filled: int) -> dict[str, object]:
    return {"e": "done", "id": oid, "reason": "FILLED", "msg": "", "filled": filled,
            "cost": filled * 300, "ts": TS}  # fmt: skip


def crossing_events() -> list[dict[str, object]]:
    """Taker 3 buys 5,000: maker 1 (2,000) in full, maker 2 (5,000, 1,000 filled before)
    in part, as the engine reports it (each trade carries the maker's filled and cost
    after it)."""
    trade = {"e": "trade", "price": 30_000_000_000, "side": "buy", "taker": "3", "ts": TS}
    return [
        {"e": "accepted", "id": "3", "ts": TS},
        {**trade, "tid": 7, "maker": "1", "size": 2_000, "quote": 600_000, "mfee": 600,
         "tfee": 4, "mfilled": 2_000, "mcost": 600_000},
        done("1", 2_000),
        {**trade, "tid": 8, "maker": "2", "size": 3_000, "quote": 900_000, "mfee": 900,
         "tfee": 6, "mfilled": 4_000, "mcost": 1_200_000},
        done("3", 5_000),
    ]  # fmt: skip


def test_pushes_of_a_taker_crossing_two_makers() -> None:
    """The taker is accepted, fills one maker in full and the other in part."""
    final = {
        "1": order("1", "m1", "sell", 2_000, 2_000, "FILLED"),
        "2": order("2", "m2", "sell", 5_000, 4_000, "PARTIALLY_FILLED"),  # 1,000 filled earlier
        "3": order("3", "t", "buy", 5_000, 5_000, "FILLED"),
    }
    pushes = order_pushes(MARKET, crossing_events(), final)
    seen = [(u, p["exec_type"], p["order"]["status"], p["order"]["filled"]) for u, p in pushes]
    assert seen == [
        ("t", "NEW", "NEW", "0.00000"),
        ("m1", "TRADE", "FILLED", "0.00002"),
        ("t", "TRADE", "PARTIALLY_FILLED", "0.00002"),
        ("m2", "TRADE", "PARTIALLY_FILLED", "0.00004"),
        ("t", "TRADE", "FILLED", "0.00005"),
    ]
    maker_fill = pushes[1][1]
    assert (maker_fill["liquidity"], maker_fill["fee"], maker_fill["fee_asset"]) == (
        "maker", "0.000600", "USD",
    )  # fmt: skip
    taker_fill = pushes[4][1]
    assert (taker_fill["fee"], taker_fill["fee_asset"], taker_fill["trade_id"]) == (
        "0.00000006", "BTC", 8,
    )  # fmt: skip
    assert pushes[4][1]["order"]["remaining"] == "0.00000"
    assert pushes[3][1]["order"]["remaining"] == "0.00001"


def test_maker_pushes_show_the_state_of_their_trade_even_if_read_later() -> None:
    """``final`` read after a later call that filled maker 2 in full: this call's pushes
    still show maker 2 as the trade left it (4,000 of 5,000, PARTIALLY_FILLED)."""
    final = {
        "1": order("1", "m1", "sell", 2_000, 2_000, "FILLED"),
        "2": order("2", "m2", "sell", 5_000, 5_000, "FILLED"),  # newer than the events
        "3": order("3", "t", "buy", 5_000, 5_000, "FILLED"),
    }
    pushes = order_pushes(MARKET, crossing_events(), final)
    m2 = [p["order"] for u, p in pushes if u == "m2"]
    assert [(o["status"], o["filled"], o["remaining"]) for o in m2] == [
        ("PARTIALLY_FILLED", "0.00004", "0.00001")
    ]


def test_a_maker_amended_after_its_trade_shows_the_amount_of_the_trade() -> None:
    """Maker 2 had 6,000 at the trade and was amended to 5,000 before ``final`` was
    read: its TRADE push shows the 6,000 of the trade (the event's ``mamount``).
    Events recorded before ``mamount`` existed show the amount read."""
    events = crossing_events()
    events[3] = {**events[3], "mamount": 6_000}
    final = {
        "1": order("1", "m1", "sell", 2_000, 2_000, "FILLED"),
        "2": order("2", "m2", "sell", 5_000, 4_000, "PARTIALLY_FILLED"),  # amended since
        "3": order("3", "t", "buy", 5_000, 5_000, "FILLED"),
    }

    def maker_2(evs: list[dict[str, object]]) -> list[tuple[str, str]]:
        pushes = order_pushes(MARKET, evs, final)
        return [(p["order"]["amount"], p["order"]["remaining"]) for u, p in pushes if u == "m2"]

    assert maker_2(events) == [("0.00006", "0.00002")]
    assert maker_2(crossing_events()) == [("0.00005", "0.00001")]


def test_formatting_keeps_no_stale_market_objects_alive() -> None:
    """A node rereads the registry every second and formats with the new Market
    objects: formatting must not keep the old ones alive (it kept up to 10,000)."""

    def live_markets() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if type(o) is Market and o.id == "MEM-TEST")

    before = live_markets()
    for i in range(3_000):
        fresh = replace(MARKET, id="MEM-TEST")  # equal values, a new object each reload
        assert format_price(fresh, (12_300 + i) * 10_000) == f"{123 + i // 100}.{i % 100:02d}"
    # the grid's key (the first one seen) and the last one seen, at most
    assert live_markets() - before <= 2
