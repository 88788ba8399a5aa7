"""A market buy by ``quote_amount`` has no base amount: every view of the order over
its life (the place answer, its NEW / TRADE / EXPIRED pushes, ``GET /orders/{id}``
and the history from PostgreSQL) shows ``amount`` = what it filled so far,
``remaining`` 0 and the budget in ``quote_amount`` (Binance: origQty = executedQty
for a quoteOrderQty order)."""

from __future__ import annotations

from typing import Any

from tests.test_e2e_support import (
    Exchange,
    Ws,
    eventually,
    limit,
    maker_and_taker,
    new_market,
)

pytest_plugins = ["tests.test_e2e_support"]

FIELDS = ("status", "amount", "filled", "remaining", "cost", "quote_amount")


def view(order: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(order[f] for f in FIELDS)


async def test_a_quote_budget_market_buy_shows_the_same_order_everywhere(
    live: Exchange, sockets: list[Ws]
) -> None:
    market = await new_market(live)
    base = market.split("-")[0]
    _, taker, mws, tws = await maker_and_taker(live, sockets, {base: "5"}, {"USD": "1000"})
    assert (await tws.request("subscribe", {"channel": "orders"}))["status"] == 200
    for amount, price in (("0.3", "10.00"), ("0.2", "11.00")):
        assert (await mws.request("order.place", limit(market, "sell", amount, price)))[
            "status"
        ] == 200
    answer = await tws.request("order.place", {"market": market, "side": "buy", "type": "market",
                                               "quote_amount": "100"})  # fmt: skip
    assert answer["status"] == 200, answer
    placed = answer["result"]
    final = ("EXPIRED", "0.500", "0.500", "0.000", "5.20000000", "100.00000000")
    assert view(placed) == final

    await tws.wait_push(lambda m: m.get("channel") == "orders" and m["order"]["id"] == placed["id"]
                        and m["exec_type"] == "EXPIRED")  # fmt: skip
    pushes = [(m["exec_type"], view(m["order"])) for m in tws.pushes
              if m.get("channel") == "orders" and m["order"]["id"] == placed["id"]]  # fmt: skip
    assert pushes == [
        ("NEW", ("NEW", "0.000", "0.000", "0.000", "0.00000000", "100.00000000")),
        ("TRADE", ("PARTIALLY_FILLED", "0.300", "0.300", "0.000", "3.00000000", "100.00000000")),
        ("TRADE", ("PARTIALLY_FILLED", "0.500", "0.500", "0.000", "5.20000000", "100.00000000")),
        ("EXPIRED", final),
    ]
    async with live.http("a", taker.token) as http:
        got = (await http.get(f"/orders/{placed['id']}")).json()
        assert view(got) == final, got

        async def in_history() -> dict[str, Any] | None:
            page = (await http.get("/orders", params={"status": "closed", "market": market})).json()
            return next((o for o in page if o["id"] == placed["id"]), None)

        assert view(await eventually(in_history)) == final
