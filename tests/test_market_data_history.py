"""Public market data of a market whose stream has been trimmed.

The drain trims a market stream to what it has committed (keeping the last 10
minutes), so an hour after its last trade a quiet market's stream holds none of its
trades. The ticker's ``last`` and ``volume_24h`` and ``GET .../trades`` must still
show them: what the stream no longer has comes from PostgreSQL.

Real web nodes, settler, drain, Valkey and PostgreSQL (the e2e session exchange).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import redis.asyncio as aredis

from tests.test_e2e_support import Exchange, Ws, extra_node, fund, limit, new_market, new_user
from workers import streams

pytest_plugins = ["tests.test_e2e_support"]


async def trade(exchange: Exchange, market: str, size: str, price: str) -> None:
    maker, taker = await new_user(exchange), await new_user(exchange)
    await fund(exchange, maker, {market.split("-")[0]: size})
    await fund(exchange, taker, {"USD": "1000"})
    for user, side, tif in ((maker, "sell", "GTC"), (taker, "buy", "IOC")):
        ws = await Ws.connect(exchange.ws_url("a"), user.token)
        answer = await ws.request(
            "order.place", limit(market, side, size, price, time_in_force=tif)
        )
        assert answer["status"] == 200, answer
        await ws.close()
    async with exchange.http("a", taker.token) as http:  # waits until the drain has it
        assert len((await http.get("/fills", params={"market": market})).json()) == 1


async def trim_everything_committed(exchange: Exchange, market: str) -> None:
    """What the drain does to a quiet market's stream once its entries are older than
    the retention: everything acknowledged by the drain and applied by the settler goes
    (but the last entry, here an order placed and canceled after the trades)."""
    user = await new_user(exchange)
    await fund(exchange, user, {"USD": "1"})
    ws = await Ws.connect(exchange.ws_url("a"), user.token)
    placed = await ws.request("order.place", limit(market, "buy", "0.001", "0.01"))
    await ws.request("order.cancel", {"order_id": placed["result"]["id"]})
    await ws.close()
    redis = aredis.Redis.from_url(exchange.env["REDIS_URL"])
    stream = f"{{m:{market}}}:ev"
    try:
        for _ in range(200):  # the drain and the settler are milliseconds behind
            await streams.trim(redis, stream, ("drain",), 0, (":stl",))
            if not await _trades_in(redis, stream):
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the stream was not trimmed")
    finally:
        await redis.aclose()


async def _trades_in(redis: Any, stream: str) -> bool:
    return any(b'"trade"' in fields[b"e"] for _, fields in await redis.xrange(stream))


async def test_ticker_and_trades_of_a_trimmed_stream_come_from_history(
    exchange: Exchange,
) -> None:
    market = await new_market(exchange)
    await trade(exchange, market, "0.5", "10.00")
    await trade(exchange, market, "0.25", "11.00")
    await trim_everything_committed(exchange, market)
    # node b has not looked at this market yet: it loads it from the trimmed stream
    async with exchange.http("b") as http:
        ticker = (await http.get(f"/markets/{market}/ticker")).json()
        assert (ticker["last"], ticker["last_trade_id"]) == ("11.00", 2)
        assert ticker["volume_24h"] == "0.750"
        assert (ticker["open_24h"], ticker["high_24h"], ticker["low_24h"]) == (
            "10.00",
            "11.00",
            "10.00",
        )
        trades = (await http.get(f"/markets/{market}/trades")).json()
    assert [(t["trade_id"], t["price"], t["size"]) for t in trades] == [
        (2, "11.00", "0.250"),
        (1, "10.00", "0.500"),
    ]
    assert {t["taker_side"] for t in trades} == {"buy"}
    ws = await Ws.connect(exchange.ws_url("b"))
    user = await new_user(exchange, "b")
    assert (await ws.request("auth", {"token": user.token}))["status"] == 200
    await ws.request("subscribe", {"channel": "heartbeat", "markets": [market]})
    beat = await ws.wait_push(lambda m: m.get("channel") == "heartbeat")
    assert beat["last_trade_id"] == 2
    await ws.close()


async def test_trades_join_the_stream_and_history_without_gaps_or_repeats(
    exchange: Exchange,
) -> None:
    market = await new_market(exchange)
    await trade(exchange, market, "0.001", "1.00")
    await trade(exchange, market, "0.002", "2.00")
    await trim_everything_committed(exchange, market)
    await trade(exchange, market, "0.003", "3.00")  # in the stream again
    async with exchange.http("a") as http:
        trades = (await http.get(f"/markets/{market}/trades")).json()
        assert [t["trade_id"] for t in trades] == [3, 2, 1]
        assert [t["size"] for t in trades] == ["0.003", "0.002", "0.001"]
        two = (await http.get(f"/markets/{market}/trades", params={"limit": 2})).json()
        assert [t["trade_id"] for t in two] == [3, 2]
    async with exchange.http("b") as http:  # a fresh feed: stream + history, once each
        ticker = (await http.get(f"/markets/{market}/ticker")).json()
    assert (ticker["last"], ticker["last_trade_id"], ticker["volume_24h"]) == ("3.00", 3, "0.006")
    assert (ticker["open_24h"], ticker["high_24h"], ticker["low_24h"]) == ("1.00", "3.00", "1.00")


async def test_candles_between_start_and_end(exchange: Exchange) -> None:
    market = await new_market(exchange)
    await trade(exchange, market, "0.004", "4.00")
    async with exchange.http("a") as http:
        url = f"/markets/{market}/candles"
        [candle] = (await http.get(url)).json()
        minute = candle["ts"]
        assert (await http.get(url, params={"start": minute})).json() == [candle]
        assert (await http.get(url, params={"start": minute + 1})).json() == []
        assert (await http.get(url, params={"end": minute})).json() == []
        assert (await http.get(url, params={"start": 0, "end": minute + 1})).json() == [candle]
        for bad in ({"start": "-1"}, {"end": "soon"}, {"start": "1.5"}):
            r = await http.get(url, params=bad)
            assert (r.status_code, r.json()["error"]["code"]) == (400, "INVALID_PARAM")


async def test_market_data_does_not_wait_for_a_postgresql_that_is_down(
    exchange: Exchange,
) -> None:
    """History only completes market data: while PostgreSQL is down a node answers from
    the stream at once (it waited the pool's 2 s timeout on every GET .../trades, and
    on the first ticker or book subscription of each market)."""
    from ops.processes import free_port

    trimmed = await new_market(exchange)
    await trade(exchange, trimmed, "0.5", "10.00")
    await trade(exchange, trimmed, "0.25", "11.00")
    await trim_everything_committed(exchange, trimmed)
    young = await new_market(exchange)  # its first trade is still in the stream
    await trade(exchange, young, "0.5", "10.00")
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    with extra_node(exchange, "nopg-md", DATABASE_URL=dead, HFTX_ADMIN_EMAIL="") as (base, _):
        async with httpx.AsyncClient(base_url=base + "/api/v1", timeout=30) as http:
            for market, what in (
                (trimmed, "ticker"),
                (trimmed, "trades"),
                (young, "ticker"),
                (young, "trades"),
            ):
                started = time.monotonic()
                r = await http.get(f"/markets/{market}/{what}")
                took = time.monotonic() - started
                assert r.status_code == 200, r.text
                assert took < 1.5, (market, what, took)
            r = await http.get(f"/markets/{young}/trades")
            assert [t["trade_id"] for t in r.json()] == [1]
            r = await http.get(f"/markets/{trimmed}/trades")
            assert r.json() == []  # what the stream has
