"""Paging through history over HTTP: ``limit`` items per page, ``X-Next-Cursor`` to
continue, passed back as ``cursor``; every item once, in order.

Real web nodes, settler, drain, Valkey and PostgreSQL (the e2e session exchange)."""

from __future__ import annotations

from typing import Any

from tests.test_e2e_support import Exchange, Trader, User, Ws, fund, limit, new_market, new_user

pytest_plugins = ["tests.test_e2e_support"]


async def pages(exchange: Exchange, user: User, path: str, **params: Any) -> list[list[Any]]:
    out: list[list[Any]] = []
    async with exchange.http("a", user.token) as http:
        for _ in range(20):
            r = await http.get(path, params=params)
            assert r.status_code == 200, r.text
            out.append(r.json())
            cursor = r.headers.get("x-next-cursor")
            if cursor is None:
                return out
            params = {**params, "cursor": cursor}
    raise AssertionError("no last page")


async def test_fills_and_closed_orders_page_through_everything_once(exchange: Exchange) -> None:
    market = await new_market(exchange)
    maker, taker = await new_user(exchange), await new_user(exchange)
    await fund(exchange, maker, {market.split("-")[0]: "1"})
    await fund(exchange, taker, {"USD": "100"})
    ws_maker = await Ws.connect(exchange.ws_url(), maker.token)
    ws_taker = await Ws.connect(exchange.ws_url(), taker.token)
    for i in range(5):
        price = f"{i + 1}.00"
        assert (await ws_maker.request("order.place", limit(market, "sell", "0.01", price)))[
            "status"
        ] == 200
        taken = await ws_taker.request(
            "order.place", limit(market, "buy", "0.01", price, time_in_force="IOC")
        )
        assert taken["result"]["status"] == "FILLED"
    await ws_maker.close()
    await ws_taker.close()

    whole = (await pages(exchange, taker, "/fills", limit=100))[0]
    assert [f["price"] for f in whole] == ["5.00", "4.00", "3.00", "2.00", "1.00"]
    paged = await pages(exchange, taker, "/fills", limit=2)
    assert [len(p) for p in paged] == [2, 2, 1]
    assert [f for p in paged for f in p] == whole

    closed = (await pages(exchange, maker, "/orders", status="closed"))[0]
    assert len(closed) == 5
    paged = await pages(exchange, maker, "/orders", status="closed", limit=3, market=market)
    assert [len(p) for p in paged] == [3, 2]
    assert [o["id"] for p in paged for o in p] == [o["id"] for o in closed]

    async with exchange.http("a", taker.token) as http:
        exact = await http.get("/fills", params={"limit": 5})
        assert "x-next-cursor" not in exact.headers  # no empty last page to fetch
        for path, params in (
            ("/fills", {"cursor": "nonsense"}),
            ("/orders", {"status": "all", "cursor": "1~2~3"}),
            ("/orders", {"cursor": "1~x"}),  # open orders are one page
            # crafted: PostgreSQL refuses a NUL in text (was a 500 INTERNAL)
            ("/fills", {"cursor": "1~X\x00~1"}),
            ("/orders", {"status": "closed", "cursor": "1~\x00"}),
            ("/fills", {"cursor": "\u0663~X~1"}),  # a non-ASCII digit
        ):
            r = await http.get(path, params=params)
            assert (r.status_code, r.json()["error"]["code"]) == (400, "INVALID_PARAM"), r.text


async def test_the_python_client_pages_fills_orders_and_candles(
    exchange: Exchange, trader: Trader
) -> None:
    market = await new_market(exchange)
    maker = await trader("a", {market.split("-")[0]: "1"})
    taker = await trader("a", {"USD": "100"})
    for i in range(3):
        await maker.create_order(market, "sell", "limit", "0.01", f"{i + 1}.00")
        await taker.create_order(market, "buy", "limit", "0.01", f"{i + 1}.00", time_in_force="IOC")
    fills = [f async for f in taker.iter_my_trades(market, page_size=2)]
    assert [f["price"] for f in fills] == ["3.00", "2.00", "1.00"]
    orders = [o async for o in maker.iter_closed_orders(page_size=1)]
    assert [o["price"] for o in orders] == ["3.00", "2.00", "1.00"]
    [candle] = await taker.fetch_candles(market, "1m")
    assert await taker.fetch_candles(market, "1m", start=candle["ts"]) == [candle]
    assert await taker.fetch_candles(market, "1m", end=candle["ts"]) == []
