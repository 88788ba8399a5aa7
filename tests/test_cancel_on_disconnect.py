"""Cancel on disconnect (``session.cancel_on_disconnect``): a socket's resting orders
go when it closes; the user's other orders stay. Real web nodes and Valkey."""

from __future__ import annotations

import asyncio
from typing import Any

from api.session_orders import SessionOrders
from client import HftxClient, HftxError
from tests.test_e2e_support import (
    FAST,
    PASSWORD,
    Exchange,
    LinkCutter,
    User,
    Ws,
    balances,
    fund,
    limit,
    new_market,
    new_user,
)

pytest_plugins = ["tests.test_e2e_support"]


def ok(answer: dict[str, Any]) -> Any:
    assert answer["status"] == 200, answer
    return answer["result"]


async def open_ids(exchange: Exchange, user: User) -> set[str]:
    async with exchange.http("b", user.token) as http:
        return {o["id"] for o in (await http.get("/orders")).json()}


async def until_open(exchange: Exchange, user: User, expected: set[str]) -> None:
    for _ in range(100):  # the node cancels right after the close, asynchronously
        if await open_ids(exchange, user) == expected:
            return
        await asyncio.sleep(0.05)
    assert await open_ids(exchange, user) == expected


async def test_a_closed_socket_cancels_only_its_own_resting_orders(exchange: Exchange) -> None:
    market = await new_market(exchange)
    user = await new_user(exchange)
    await fund(exchange, user, {"USD": "100", market.split("-")[0]: "1"})
    bot = await Ws.connect(exchange.ws_url("a"), user.token)
    other = await Ws.connect(exchange.ws_url("a"), user.token)
    assert ok(await bot.request("session.cancel_on_disconnect", {"enabled": True})) == {
        "enabled": True
    }
    quotes = [ok(await bot.request("order.place", limit(market, side, "0.01", price)))["id"]
              for side, price in (("buy", "1.00"), ("sell", "9.00"))]  # fmt: skip
    # an order of the bot that does not rest, one it cancels itself, one that fills
    ok(await bot.request("order.place", limit(market, "buy", "0.01", "1.00", time_in_force="IOC")))
    gone = ok(await bot.request("order.place", limit(market, "buy", "0.01", "2.00")))["id"]
    ok(await bot.request("order.cancel", {"order_id": gone}))
    kept = ok(await other.request("order.place", limit(market, "buy", "0.01", "1.50")))["id"]
    async with exchange.http("a", user.token) as http:
        r = await http.post("/orders", json=limit(market, "sell", "0.01", "8.00"))
        by_http = r.json()["id"]
    assert await open_ids(exchange, user) == {*quotes, kept, by_http}
    await bot.close()
    await until_open(exchange, user, {kept, by_http})
    usd = (await balances(exchange, user))["USD"]
    assert usd["locked"] == "0.01500000"  # only the other socket's buy holds USD
    await other.close()


async def test_without_it_or_turned_off_orders_outlive_the_socket(exchange: Exchange) -> None:
    market = await new_market(exchange)
    user = await new_user(exchange)
    await fund(exchange, user, {"USD": "100"})
    plain = await Ws.connect(exchange.ws_url("a"), user.token)
    first = ok(await plain.request("order.place", limit(market, "buy", "0.01", "1.00")))["id"]
    await plain.close()
    toggled = await Ws.connect(exchange.ws_url("b"), user.token)
    ok(await toggled.request("session.cancel_on_disconnect", {"enabled": True}))
    second = ok(await toggled.request("order.place", limit(market, "buy", "0.01", "1.00")))["id"]
    ok(await toggled.request("session.cancel_on_disconnect", {"enabled": False}))
    for bad in ({}, {"enabled": "yes"}, {"enabled": True, "scope": "account"}):
        answer = await toggled.request("session.cancel_on_disconnect", bad)
        assert (answer["status"], answer["error"]["code"]) == (400, "INVALID_PARAM")
    await toggled.close()
    await asyncio.sleep(0.3)
    assert await open_ids(exchange, user) == {first, second}


async def test_session_orders_are_bounded_and_skip_orders_that_cannot_rest() -> None:
    class Ex:
        def __init__(self) -> None:
            self.calls: list[tuple[str, str, list[str]]] = []

        async def cancel_orders(self, user: str, market: str, ids: list[str]) -> list[str]:
            self.calls.append((user, market, ids))
            if market == "HALTED-USD":
                raise RuntimeError("MARKET_NOT_TRADING")
            return ids[:1]

    orders = SessionOrders(limit=3)
    orders.placed({"id": "before", "market": "A-USD", "status": "NEW"})
    assert orders.by_market() == {}  # nothing is kept while it is off
    orders.enabled = True
    for i, (market, status) in enumerate(
        [("A-USD", "NEW"), ("A-USD", "FILLED"), ("B-USD", "PARTIALLY_FILLED"),
         ("HALTED-USD", "NEW"), ("A-USD", "NEW"), ("A-USD", "EXPIRED")]
    ):  # fmt: skip
        orders.placed({"id": f"o{i}", "market": market, "status": status})
    assert orders.by_market() == {"B-USD": ["o2"], "HALTED-USD": ["o3"], "A-USD": ["o4"]}
    ex = Ex()
    orders.enabled = False
    assert await orders.cancel(ex, "u1") == 0  # turned off again: nothing canceled
    orders.enabled = True
    assert await orders.cancel(ex, "u1") == 2  # the halted market is logged and skipped
    assert sorted(c[1] for c in ex.calls) == ["A-USD", "B-USD", "HALTED-USD"]


async def test_the_client_asks_again_on_every_new_socket(exchange: Exchange) -> None:
    market = await new_market(exchange)
    user = await new_user(exchange)
    await fund(exchange, user, {"USD": "100"})
    port = int(exchange.url("a").rsplit(":", 1)[1])
    async with LinkCutter(port) as link:
        client = HftxClient(
            exchange.url("a"), ws_endpoint=f"ws://127.0.0.1:{link.port}/ws", backoff=FAST
        )
        try:
            await client.login(user.email, PASSWORD)
            assert await client.ws_cancel_on_disconnect() == {"enabled": True}
            first = await client.ws_create_order(market, "buy", "limit", "0.01", "1.00")
            link.cut()  # the node sees its socket drop: the order goes
            await until_open(exchange, user, set())
            second = None
            for _ in range(100):  # until the client has reconnected
                try:
                    second = await client.ws_create_order(market, "buy", "limit", "0.01", "1.00")
                    break
                except HftxError as exc:
                    assert exc.code == "UNAVAILABLE", exc
                    await asyncio.sleep(0.05)
            assert second is not None
            assert link.accepted >= 2 and second["id"] != first["id"]
            assert await open_ids(exchange, user) == {second["id"]}
        finally:
            await client.close()  # the new socket had it asked again: this one goes too
    await until_open(exchange, user, set())


async def test_orders_the_socket_cancels_are_forgotten_and_push_out_no_quote() -> None:
    """A market maker cancels most of what it places: each canceled order was kept up
    to the limit, and enough of them pushed a still resting quote out of it (then not
    canceled at the close)."""

    class Ex:
        def __init__(self) -> None:
            self.canceled: list[str] = []

        async def cancel_orders(self, user: str, market: str, ids: list[str]) -> list[str]:
            self.canceled.extend(ids)
            return ids

    orders = SessionOrders(limit=5)
    orders.enabled = True
    orders.placed({"id": "quote", "market": "A-USD", "status": "NEW"})
    for i in range(100):
        orders.placed({"id": f"o{i}", "market": "A-USD", "status": "NEW"})
        orders.ended([{"id": f"o{i}", "market": "A-USD", "status": "CANCELED"}])
        assert len(orders) == 1
    orders.ended([{"id": "quote", "market": "A-USD", "status": "NEW"}])  # still open: kept
    ex = Ex()
    assert await orders.cancel(ex, "u1") == 1
    assert ex.canceled == ["quote"]
