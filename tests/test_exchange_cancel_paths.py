"""Cancels by order id, whether or not this facade placed the order: same answers."""

from __future__ import annotations

from typing import Any

import pytest

from engine import addresses
from engine.exchange import Exchange
from engine.seed import seed_defaults
from engine.types import EngineError, OrderRequest
from engine.units import parse_price, parse_size
from workers.settler import Settler

BTC = 10**8


@pytest.fixture
async def nodes(redis: Any) -> Any:
    """Two facades on one Redis, like two web nodes."""
    await seed_defaults(redis)
    a, b = await Exchange.connect(redis), await Exchange.connect(redis)
    for user, asset, amount in [("alice", "BTC", 2 * BTC), ("bob", "USD", 100_000 * BTC)]:
        address = await addresses.deposit_address(redis, user, asset)
        await a.deposit(f"dep-{user}", address, asset, amount)
    yield a, b
    await a.close()
    await b.close()


async def limit(ex: Exchange, side: str, amount: str, price: str) -> OrderRequest:
    m = await ex.market("BTC-USD")
    return OrderRequest("BTC-USD", side, "limit", parse_size(m, amount), parse_price(m, price))  # type: ignore[arg-type]


async def refusal(call: Any) -> str:
    with pytest.raises(EngineError) as err:
        await call
    return err.value.code


async def test_cancel_on_the_placing_node_and_on_another(nodes: Any) -> None:
    a, b = nodes
    first = (await a.place_order("alice", await limit(a, "sell", "0.1", "31000.00"))).order
    second = (await a.place_order("alice", await limit(a, "sell", "0.1", "32000.00"))).order
    assert (await a.cancel_order("alice", order_id=first.id)).status == "CANCELED"
    assert (await b.cancel_order("alice", order_id=second.id)).status == "CANCELED"
    for ex in (a, b):  # canceled already, or not the caller's
        assert await refusal(ex.cancel_order("alice", order_id=first.id)) == "UNKNOWN_ORDER"
    third = (await a.place_order("alice", await limit(a, "sell", "0.1", "33000.00"))).order
    for ex in (a, b):
        assert await refusal(ex.cancel_order("bob", order_id=third.id)) == "UNKNOWN_ORDER"
    assert (await a.get_order("alice", third.id)).status == "NEW"


async def test_on_a_halted_market_filled_orders_are_unknown_open_ones_not_trading(
    nodes: Any,
) -> None:
    a, b = nodes
    maker = (await a.place_order("alice", await limit(a, "sell", "0.1", "30000.00"))).order
    await b.place_order("bob", await limit(b, "buy", "0.1", "30000.00"))
    resting = (await a.place_order("alice", await limit(a, "sell", "0.1", "35000.00"))).order
    await Settler(a.redis, instance="tests", publish=False).drain()  # holds released
    await a.set_market_status("BTC-USD", "HALT")
    for ex in (a, b):
        assert await refusal(ex.cancel_order("alice", order_id=maker.id)) == "UNKNOWN_ORDER"
        code = await refusal(ex.cancel_order("alice", order_id=resting.id))
        assert code == "MARKET_NOT_TRADING"
