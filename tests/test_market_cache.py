"""A node's copy of the market registry (up to ``engine.exchange.MARKET_CACHE_S`` old)
never refuses or cuts an order with parameters an admin changed a moment ago on
another node: ``min_size`` lowered, ``max_notional`` raised (the increments cannot
change on an existing market).

Two web nodes of the e2e exchange: the admin calls go through node a, the orders
through node b, whose copy of the market is warm.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.test_e2e_support import Exchange, fund, limit, new_market, new_user

pytest_plugins = ["tests.test_e2e_support"]


async def reconfigure(live: Exchange, market: str, **changes: Any) -> dict[str, Any]:
    """Resend the market's spec (as ``GET /markets/{id}`` shows it) with ``changes``."""
    async with live.admin() as admin:
        spec = (await admin.get(f"/markets/{market}")).json()
        r = await admin.post("/admin/markets", json={**spec, **changes})
        assert r.status_code == 200, r.text
        return dict(r.json())


def answered(r: httpx.Response) -> tuple[int, str]:
    body = r.json()
    return r.status_code, body["error"]["code"] if r.status_code != 200 else body["status"]


async def test_a_min_size_lowered_on_one_node_takes_orders_on_another_at_once(
    live: Exchange,
) -> None:
    market = await new_market(live, min_size="0.005")
    user = await new_user(live)
    await fund(live, user, {"USD": "100"})
    async with live.http("b", user.token) as b:
        for _ in range(3):  # each round: raised, seen on b, lowered on a, placed on b
            assert (await reconfigure(live, market, min_size="0.005"))["min_size"] == "0.005"
            below = await b.post("/orders", json=limit(market, "buy", "0.002", "1.00"))
            assert answered(below) == (400, "INVALID_PARAM"), below.text
            assert (await reconfigure(live, market, min_size="0.001"))["min_size"] == "0.001"
            placed = await b.post("/orders", json=limit(market, "buy", "0.002", "1.00"))
            assert answered(placed) == (200, "NEW"), placed.text


async def test_a_max_notional_raised_on_one_node_does_not_cut_a_market_buy_on_another(
    live: Exchange,
) -> None:
    """A market buy by amount gets a budget capped by ``max_notional``: the node's
    old limit would cut it to one of the two lots it asks for."""
    market = await new_market(live, max_notional="10")
    base = market.split("-")[0]
    seller, buyer = await new_user(live), await new_user(live)
    await fund(live, seller, {base: "2"})
    await fund(live, buyer, {"USD": "100"})
    async with live.http("b", seller.token) as sb, live.http("b", buyer.token) as bb:
        for _ in range(2):  # b's copy: max_notional 10 (each ask is 10 USD)
            r = await sb.post("/orders", json=limit(market, "sell", "1", "10.00"))
            assert answered(r) == (200, "NEW"), r.text
        assert (await reconfigure(live, market, max_notional="100"))["max_notional"] == (
            "100.00000000"
        )
        r = await bb.post("/orders", json={"market": market, "side": "buy", "type": "market",
                                           "amount": "2"})  # fmt: skip
        assert r.status_code == 200, r.text
        order = r.json()
        filled = (order["status"], order["filled"], order["cost"])
        assert filled == ("FILLED", "2.000", "20.00000000"), order
