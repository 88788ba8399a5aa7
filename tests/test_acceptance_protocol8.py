"""Eighth black-box acceptance pass over /work/shared/PROTOCOL.md and docs/protocol.md:
order queries and market-data edges — one order's object on every path, the fills of
both sides everywhere, subscribe and unsubscribe parameters at their edges, books of
several markets kept by the PROTOCOL.md rule through a random burst. What it found:

- ``unsubscribe`` naming a market that is not listed (``ZZZ-USD``) answered 200 while
  ``subscribe`` answers ``UNKNOWN_MARKET`` (docs: a ``market`` filter must name a listed
  market, on every route and on the ``orders`` channel); with a listed market beside
  it, that one was unsubscribed all the same.

Also pinned (no change needed): the same order object, field for field, on every path;
``fills`` of the place answer = ``GET /fills`` = ``TRADE`` pushes for maker and taker;
the subscribe choices docs/protocol.md now writes down (subscribing twice, unsubscribing
what was never subscribed, ``depth`` on ``unsubscribe``).

Raw ``httpx`` and ``Ws`` only; money compared as exact strings. Targets the e2e session
exchange, or a live one when ``HFTX_ACCEPT_URL`` is set.
"""

from __future__ import annotations

import asyncio
import random
import zlib
from decimal import Decimal
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from tests.test_e2e_support import (
    Exchange,
    User,
    Ws,
    connect,
    fund,
    limit,
    new_market,
    new_user,
    unique,
)

pytest_plugins = ["tests.test_e2e_support"]

ORDER_FIELDS = {
    "id", "client_order_id", "market", "side", "type", "time_in_force", "post_only",
    "price", "amount", "filled", "remaining", "cost", "average", "quote_amount", "status",
    "created_ts", "updated_ts",
}  # fmt: skip


async def call(live: Exchange, user: User | None, method: str, path: str, **kw: Any) -> Any:
    async with live.http("a", user.token if user else None) as http:
        return await http.request(method, path, **kw)


async def ok(live: Exchange, user: User | None, method: str, path: str, **kw: Any) -> Any:
    r = await call(live, user, method, path, **kw)
    assert r.status_code == 200, (method, path, r.status_code, r.text)
    return r.json()


def refused(r: httpx.Response, status: int, code: str) -> None:
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text


async def ws_ok(ws: Ws, method: str, params: Any = None) -> Any:
    answer = await ws.request(method, params)
    assert answer["status"] == 200, (method, params, answer)
    return answer["result"]


async def ws_refused(ws: Ws, method: str, params: Any, status: int, code: str) -> None:
    answer = await ws.request(method, params)
    assert (answer["status"], answer.get("error", {}).get("code")) == (status, code), answer


def crc(asks: list[list[str]], bids: list[list[str]]) -> int:
    def bare(s: str) -> str:
        return s.replace(".", "").lstrip("0")

    text = "".join(bare(p) + bare(s) for p, s in asks[:10] + bids[:10])
    return zlib.crc32(text.encode()) & 0xFFFFFFFF


def pushes(ws: Ws, channel: str, **match: Any) -> list[dict[str, Any]]:
    return [
        p
        for p in ws.pushes
        if p.get("channel") == channel and all(p.get(k) == v for k, v in match.items())
    ]


# -- unsubscribe names listed markets --------------------------------------------------


async def test_unsubscribe_naming_an_unlisted_market_is_refused_and_changes_nothing(
    live: Exchange, sockets: list[Ws]
) -> None:
    market = await new_market(live)
    user, other = await new_user(live), await new_user(live)
    await fund(live, user, {market.split("-")[0]: "10"})
    await fund(live, other, {"USD": "100"})
    ws = await connect(live, sockets, user)
    await ws_ok(ws, "subscribe", {"channel": "trades", "markets": [market]})
    await ws_ok(ws, "subscribe", {"channel": "orders", "markets": [market]})
    for channel in ("book", "trades", "ticker", "heartbeat", "orders"):
        for markets in (["ZZZ-USD"], [market, "ZZZ-USD"]):
            params = {"channel": channel, "markets": markets}
            await ws_refused(ws, "subscribe", params, 400, "UNKNOWN_MARKET")
            await ws_refused(ws, "unsubscribe", params, 400, "UNKNOWN_MARKET")
    # both subscriptions are still there: a trade is pushed on both channels
    await ws_ok(ws, "order.place", limit(market, "sell", "1", "10.00"))
    await ok(live, other, "POST", "/orders", json=limit(market, "buy", "0.5", "10.00"))
    await ws.wait_push(lambda p: p.get("channel") == "trades" and p["market"] == market)
    await ws.wait_push(lambda p: p.get("channel") == "orders" and p["exec_type"] == "TRADE")


async def test_markets_on_balances_and_notifications_are_ignored_by_unsubscribe_too(
    live: Exchange, sockets: list[Ws]
) -> None:
    """docs: ``markets`` is ignored on these channels. It was kept as a filter, so
    ``unsubscribe`` naming another market answered 200 and left the channel on."""
    one, two = await new_market(live), await new_market(live)
    user = await new_user(live)
    ws = await connect(live, sockets, user)
    for channel in ("balances", "notifications"):
        params = {"channel": channel, "markets": [one]}
        assert await ws_ok(ws, "subscribe", params) == {"channel": channel}
        params = {"channel": channel, "markets": [two, "ZZZ-USD"]}
        assert await ws_ok(ws, "unsubscribe", params) == {"channel": channel}
    await fund(live, user, {"USD": "1"})
    await asyncio.sleep(0.5)
    assert pushes(ws, "balances") == [], "balances was unsubscribed"
    # subscribed with markets, it is every balance (pushes name no market)
    assert await ws_ok(ws, "subscribe", {"channel": "balances", "markets": [one]}) == {
        "channel": "balances"
    }
    await fund(live, user, {"USD": "1"})
    push = await ws.wait_push(lambda p: p.get("channel") == "balances")
    assert (push["asset"], push["total"]) == ("USD", "2.00000000")


# -- subscribe parameters at their edges -------------------------------------------------


async def test_subscribe_parameters_at_their_edges(live: Exchange, sockets: list[Ws]) -> None:
    one, two = await new_market(live), await new_market(live)
    user = await new_user(live)
    await fund(live, user, {one.split("-")[0]: "10", "USD": "100"})
    ws = await connect(live, sockets, user)
    for depth in (1, 10, 50, 1000):
        result = await ws_ok(ws, "subscribe", {"channel": "book", "markets": [one], "depth": depth})
        assert result == {"channel": "book", "markets": [one], "depth": depth}
    for depth in (0, -1, 1001, 2**64 - 1, "10", 10.0, 1.5, True, [5]):
        await ws_refused(ws, "subscribe", {"channel": "book", "markets": [one], "depth": depth},
                         400, "INVALID_PARAM")  # fmt: skip
    for params in (
        {"channel": "candles", "markets": [one]},
        {"channel": "Book", "markets": [one]},
        {"channel": "book"},
        {"channel": "book", "markets": []},
        {"channel": "book", "markets": one},
        {"channel": "book", "markets": [one] * 51},
        {"channel": "trades", "markets": [one], "depth": 5},
    ):
        await ws_refused(ws, "subscribe", params, 400, "INVALID_PARAM")
    # several markets in one subscribe, one of them twice: one snapshot each, in order
    before = len(pushes(ws, "book"))
    result = await ws_ok(
        ws, "subscribe", {"channel": "book", "markets": [two, one, two], "depth": 5}
    )
    assert result == {"channel": "book", "markets": [two, one], "depth": 5}
    await ws.wait_push(lambda p: p.get("channel") == "book" and p["market"] == one
                       and len(pushes(ws, "book")) >= before + 2)  # fmt: skip
    assert [(p["type"], p["market"]) for p in pushes(ws, "book")[before:]] == [
        ("snapshot", two), ("snapshot", one)
    ]  # fmt: skip
    # subscribing twice is one subscription: a trade is pushed once
    for _ in range(2):
        await ws_ok(ws, "subscribe", {"channel": "trades", "markets": [one]})
    await ws_ok(ws, "subscribe", {"channel": "trades", "markets": [two, one]})
    await ws_ok(ws, "order.place", limit(one, "sell", "1", "10.00"))
    other = await new_user(live)
    await fund(live, other, {"USD": "100"})
    await ok(live, other, "POST", "/orders", json=limit(one, "buy", "0.2", "10.00"))
    await ok(live, other, "POST", "/orders", json=limit(one, "buy", "0.3", "10.00"))
    await ws.wait_push(lambda p: p.get("channel") == "trades" and p["trade_id"] == 2)
    await asyncio.sleep(0.3)
    assert [p["trade_id"] for p in pushes(ws, "trades")] == [1, 2]
    # unsubscribing what was never subscribed is a no-op success (Binance, Coinbase);
    # a book unsubscribe may repeat the subscribe's depth (clients resend their params)
    assert await ws_ok(ws, "unsubscribe", {"channel": "heartbeat", "markets": [two]}) == {
        "channel": "heartbeat", "markets": [two]
    }  # fmt: skip
    assert await ws_ok(ws, "unsubscribe", {"channel": "orders"}) == {"channel": "orders"}
    params = {"channel": "book", "markets": [one, two, one], "depth": 5}
    assert await ws_ok(ws, "unsubscribe", params) == {"channel": "book", "markets": [one, two]}
    assert await ws_ok(ws, "unsubscribe", {"channel": "book", "markets": [one]}) == {
        "channel": "book", "markets": [one]
    }  # fmt: skip
    count = len(pushes(ws, "book"))
    await ws_ok(ws, "order.place", limit(one, "sell", "1", "11.00"))
    await asyncio.sleep(0.3)
    assert len(pushes(ws, "book")) == count, "no book update after the unsubscribe"


# -- books through a random burst ------------------------------------------------------


class Book:
    """A client book kept by the PROTOCOL.md rule."""

    def __init__(self) -> None:
        self.seq = -1
        self.sides: dict[str, dict[str, str]] = {"asks": {}, "bids": {}}
        self.checked = 0

    def levels(self, side: str) -> list[list[str]]:
        order = sorted(self.sides[side].items(), key=lambda kv: Decimal(kv[0]))
        return [list(kv) for kv in (order if side == "asks" else order[::-1])]

    def apply(self, push: dict[str, Any], depth: int) -> None:
        if push["type"] == "snapshot":
            self.sides = {side: dict(map(tuple, push[side])) for side in ("asks", "bids")}
        else:
            if push["seq"] <= self.seq:
                return
            assert push["first_seq"] <= self.seq + 1, ("gap", push)
            for side in ("asks", "bids"):
                for price, size in push[side]:
                    if size == "0":
                        self.sides[side].pop(price, None)
                    else:
                        self.sides[side][price] = size
        self.seq = push["seq"]
        assert crc(self.levels("asks"), self.levels("bids")) == push["checksum"], push
        assert all(len(self.sides[side]) <= depth for side in ("asks", "bids"))
        self.checked += 1


async def test_books_of_two_markets_verify_at_every_depth_through_a_random_burst(
    live: Exchange, sockets: list[Ws]
) -> None:
    markets = [await new_market(live), await new_market(live)]
    users = [await new_user(live), await new_user(live)]
    for user in users:
        await fund(live, user, {**{m.split("-")[0]: "1000" for m in markets}, "USD": "100000"})
    traders = [await connect(live, sockets, user) for user in users]
    depths = (1, 3, 10, 50)
    watchers = {}
    for depth in depths:
        ws = await connect(live, sockets, users[0], node="b")
        await ws_ok(ws, "subscribe", {"channel": "book", "markets": markets, "depth": depth})
        watchers[depth] = ws
    market_data = await connect(live, sockets, users[1], node="b")
    await ws_ok(market_data, "subscribe", {"channel": "trades", "markets": markets})
    await ws_ok(market_data, "subscribe", {"channel": "heartbeat", "markets": markets})

    rnd = random.Random(20261126)
    resting: list[tuple[Ws, str]] = []
    for _ in range(240):
        market, ws = rnd.choice(markets), rnd.choice(traders)
        roll = rnd.random()
        if roll < 0.25 and resting:
            owner, order_id = resting.pop(rnd.randrange(len(resting)))
            await owner.request("order.cancel", {"order_id": order_id})  # may be filled
        elif roll < 0.32:
            side = rnd.choice(("buy", "sell"))
            size = f"{rnd.randint(1, 800) / 1000:.3f}"
            await ws_ok(ws, "order.place", {"market": market, "side": side, "type": "market",
                                            "amount": size})  # fmt: skip
        else:
            side = rnd.choice(("buy", "sell"))
            price = rnd.randint(9000, 10500) if side == "buy" else rnd.randint(9500, 11000)
            size = f"{rnd.randint(1, 2000) / 1000:.3f}"
            order = await ws_ok(ws, "order.place", limit(market, side, size, f"{price / 100:.2f}"))
            if order["status"] in ("NEW", "PARTIALLY_FILLED"):
                resting.append((ws, order["id"]))

    for market in markets:
        final = await ok(live, None, "GET", f"/markets/{market}/book", params={"depth": 1000})
        for depth, ws in watchers.items():
            await ws.wait_push(lambda p, m=market, s=final["seq"]: p.get("channel") == "book"
                               and p["market"] == m and p["seq"] >= s)  # fmt: skip
            book = Book()
            for push in pushes(ws, "book", market=market):
                book.apply(push, depth)
            assert book.seq == final["seq"]
            assert (book.levels("asks"), book.levels("bids")) == (
                final["asks"][:depth], final["bids"][:depth]
            ), (depth, market)  # fmt: skip
            assert book.checked > 20

        # trades pushes = GET /trades; ticker and heartbeat name the last trade
        trades = await ok(live, None, "GET", f"/markets/{market}/trades", params={"limit": 1000})
        assert trades, "the burst traded"
        last = trades[0]["trade_id"]
        await market_data.wait_push(lambda p, m=market, t=last: p.get("channel") == "trades"
                                    and p["market"] == m and p["trade_id"] == t)  # fmt: skip
        pushed = [
            {k: v for k, v in p.items() if k not in ("channel", "type", "market")}
            for p in pushes(market_data, "trades", market=market)
        ]
        assert pushed == trades[::-1]
        assert [t["trade_id"] for t in pushed] == list(range(1, last + 1))
        ticker = await ok(live, None, "GET", f"/markets/{market}/ticker")
        assert (ticker["last_trade_id"], ticker["last"]) == (last, trades[0]["price"])
        beat = await market_data.wait_push(
            lambda p, m=market, t=last: p.get("channel") == "heartbeat" and p["market"] == m
            and p["last_trade_id"] == t
        )  # fmt: skip
        assert beat["seq"] >= trades[0]["seq"]


# -- one order, every path ---------------------------------------------------------------


async def test_one_order_is_the_same_object_on_every_path(
    live: Exchange, sockets: list[Ws]
) -> None:
    market = await new_market(live)
    base = market.split("-")[0]
    maker, taker = await new_user(live), await new_user(live)
    await fund(live, maker, {base: "10"})
    await fund(live, taker, {"USD": "100"})
    mws, tws = await connect(live, sockets, maker), await connect(live, sockets, taker)
    for ws in (mws, tws):
        await ws_ok(ws, "subscribe", {"channel": "orders"})

    placed = await ws_ok(mws, "order.place", limit(market, "sell", "1", "10.00",
                                                   client_order_id="every.path"))  # fmt: skip
    assert placed.pop("fills") == []
    oid = placed["id"]
    assert set(placed) == ORDER_FIELDS
    assert (placed["average"], placed["cost"], placed["remaining"]) == (None, "0.00000000", "1.000")
    assert placed["created_ts"] == placed["updated_ts"]
    new_push = await mws.wait_push(
        lambda p: p.get("channel") == "orders" and p["exec_type"] == "NEW"
    )
    views = [
        new_push["order"],
        await ok(live, maker, "GET", f"/orders/{oid}"),
        await ok(live, maker, "GET", "/orders/client:every.path"),
        (await ok(live, maker, "GET", "/orders", params={"market": market}))[0],
        (await ws_ok(mws, "orders.open", {"market": market}))[0],
        await ws_ok(mws, "order.get", {"client_order_id": "every.path"}),
    ]
    async with live.http("b", maker.token) as http:
        views.append((await http.get(f"/orders/{oid}")).json())
    assert all(view == placed for view in views), views

    # two takers: a limit and a market buy; each fill the same on every path
    await asyncio.sleep(0.002)
    limit_buy = await ws_ok(tws, "order.place", limit(market, "buy", "0.4", "10.00"))
    buy = {"market": market, "side": "buy", "type": "market", "amount": "0.1"}
    market_buy = await ws_ok(tws, "order.place", buy)
    assert (market_buy["price"], market_buy["cost"], market_buy["average"]) == (
        None, "1.00000000", "10.00"
    )  # fmt: skip
    taker_fills = limit_buy["fills"] + market_buy["fills"]
    assert [f["trade_id"] for f in taker_fills] == [1, 2]
    assert all(f["maker_order_id"] == oid and f["liquidity"] == "taker" for f in taker_fills)
    assert [(f["size"], f["fee"], f["fee_asset"]) for f in taker_fills] == [
        ("0.400", "0.00080000", base), ("0.100", "0.00020000", base)
    ]  # fmt: skip

    await mws.wait_push(lambda p: p.get("channel") == "orders" and p.get("trade_id") == 2)
    trade_pushes = [p for p in pushes(mws, "orders") if p["exec_type"] == "TRADE"]
    maker_fills = await ok(live, maker, "GET", "/fills")
    assert [(p["trade_id"], p["last_size"], p["fee"], p["fee_asset"], p["liquidity"])
            for p in trade_pushes] == [
        (f["trade_id"], f["size"], f["fee"], f["fee_asset"], f["liquidity"])
        for f in maker_fills[::-1]
    ] == [(1, "0.400", "0.00400000", "USD", "maker"),
          (2, "0.100", "0.00100000", "USD", "maker")]  # fmt: skip
    assert all(f["maker_order_id"] == f["order_id"] == oid for f in maker_fills)
    got_taker = await ok(live, taker, "GET", "/fills")
    assert [
        {k: f[k] for k in ("trade_id", "price", "size", "fee", "fee_asset", "maker_order_id",
                           "liquidity")}
        for f in got_taker[::-1]
    ] == taker_fills  # fmt: skip
    assert [f["order_id"] for f in got_taker[::-1]] == [limit_buy["id"], market_buy["id"]]
    taker_trades = [p for p in pushes(tws, "orders") if p["exec_type"] == "TRADE"]
    assert [(p["trade_id"], p["fee"], p["liquidity"]) for p in taker_trades] == [
        (f["trade_id"], f["fee"], f["liquidity"]) for f in taker_fills
    ]

    partly = trade_pushes[-1]["order"]
    assert (partly["status"], partly["filled"], partly["remaining"], partly["cost"]) == (
        "PARTIALLY_FILLED", "0.500", "0.500", "5.00000000"
    )  # fmt: skip
    assert partly["created_ts"] == placed["created_ts"]
    assert trade_pushes[0]["order"]["updated_ts"] > placed["updated_ts"]
    assert await ok(live, maker, "GET", f"/orders/{oid}") == partly
    assert (await ws_ok(mws, "orders.open"))[0] == partly

    await asyncio.sleep(0.002)
    canceled = await ok(live, maker, "DELETE", "/orders/client:every.path")
    assert (canceled["status"], canceled["filled"], canceled["remaining"], canceled["average"]) == (
        "CANCELED", "0.500", "0.000", "10.00"
    )  # fmt: skip
    assert canceled["created_ts"] == placed["created_ts"]
    assert canceled["updated_ts"] > partly["updated_ts"]
    push = await mws.wait_push(
        lambda p: p.get("channel") == "orders" and p["exec_type"] == "CANCELED"
    )
    assert push["order"] == canceled
    assert await ok(live, maker, "GET", f"/orders/{oid}") == canceled
    closed = await ok(live, maker, "GET", "/orders", params={"status": "closed"})
    assert closed == [canceled]
    assert await ws_ok(mws, "orders.open") == []
    # finished: every cancel path says UNKNOWN_ORDER, as for an order of someone else
    refused(await call(live, maker, "DELETE", f"/orders/{oid}"), 404, "UNKNOWN_ORDER")
    await ws_refused(mws, "order.cancel", {"client_order_id": "every.path"}, 404, "UNKNOWN_ORDER")
    await ws_refused(tws, "order.cancel", {"order_id": limit_buy["id"]}, 404, "UNKNOWN_ORDER")
    assert await ws_ok(mws, "order.cancel_all", {"market": market}) == []
    assert await ok(live, maker, "DELETE", "/orders", params={"market": market}) == []


# -- a level above 2**53 minimal units -----------------------------------------------------


async def test_a_level_of_several_large_orders_is_pushed_with_its_exact_size(
    live: Exchange, sockets: list[Ws]
) -> None:
    """One order holds at most 2**53 - 1 minimal units, but a level adds up the orders
    of many users. Its book pushes and ticker said 90071992.54740992 where the level
    (and GET /book) held 90071992.54740993: the engine formatted a double."""
    base = "L" + unique()[:8].upper()
    async with live.admin() as admin:
        r = await admin.post("/admin/assets", json={"symbol": base, "scale": 8})
        assert r.status_code == 200, r.text
        spec = {"id": f"{base}-USD", "base": base, "quote": "USD", "price_increment": "1",
                "size_increment": "0.00000001", "min_size": "0.00000001", "maker_fee_bps": 10,
                "taker_fee_bps": 20}  # fmt: skip
        r = await admin.post("/admin/markets", json=spec)
        assert r.status_code == 200, r.text
    market = f"{base}-USD"
    largest = "90071992.54740991"  # 2**53 - 1 minimal units
    one, two = await new_user(live), await new_user(live)
    await fund(live, one, {base: largest})
    await fund(live, two, {base: "1"})
    watch = await connect(live, sockets, two, node="b")
    await ws_ok(watch, "subscribe", {"channel": "book", "markets": [market], "depth": 10})
    await ws_ok(watch, "subscribe", {"channel": "ticker", "markets": [market]})
    await ok(live, one, "POST", "/orders", json=limit(market, "sell", largest, "1"))
    await ok(live, two, "POST", "/orders", json=limit(market, "sell", "0.00000002", "1"))
    exact = [["1", "90071992.54740993"]]
    got = await ok(live, None, "GET", f"/markets/{market}/book")
    assert got["asks"] == exact
    await watch.wait_push(lambda p: p.get("channel") == "book" and p["seq"] >= got["seq"])
    book = Book()
    for push in pushes(watch, "book"):
        book.apply(push, 10)
    assert book.levels("asks") == exact
    ticker = await watch.wait_push(
        lambda p: p.get("channel") == "ticker" and p["seq"] >= got["seq"]
    )
    assert (ticker["best_ask"], ticker["best_ask_size"]) == ("1", "90071992.54740993")
    ticker = await ok(live, None, "GET", f"/markets/{market}/ticker")
    assert ticker["best_ask_size"] == "90071992.54740993"


# -- the latest trades of a market that mostly quotes --------------------------------------


async def pipelined(ws: Ws, method: str, params: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send every request before reading any answer (answered in the order sent)."""
    futures = []
    for p in params:
        ws.next_id += 1
        future = asyncio.get_running_loop().create_future()
        ws.answers[ws.next_id] = future
        futures.append(future)
        await ws.send({"id": ws.next_id, "method": method, "params": p})
    return list(await asyncio.wait_for(asyncio.gather(*futures), 120))


async def xrevrange_calls(redis: Any) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_xrevrange", {}).get("calls", 0))


async def test_the_latest_trades_of_a_market_that_mostly_quotes_read_a_bounded_stream(
    live: Exchange, sockets: list[Ws]
) -> None:
    """``GET /markets/{id}/trades`` read the market stream backwards until it had
    ``limit`` trades: on a market whose last minutes are orders that trade nothing
    (quotes), every request read all of them, up to the 10 minutes of engine calls the
    stream keeps (millions on a busy market), and so did a node loading its ticker.
    Counted here on the exchange's Redis: the stream reads (XREVRANGE) of one request."""
    if not live.redis_url:
        pytest.skip("counts the commands of the exchange's Redis")
    market = await new_market(live)
    base = market.split("-")[0]
    maker, taker = await new_user(live), await new_user(live)
    await fund(live, maker, {base: "1", "USD": "10"})
    await fund(live, taker, {"USD": "10"})
    await ok(live, maker, "POST", "/orders", json=limit(market, "sell", "0.001", "10.00"))
    await ok(live, taker, "POST", "/orders", json=limit(market, "buy", "0.001", "10.00"))
    # 3,000 engine calls that trade nothing: four quotes, each reduced lot by lot
    quoters = [await connect(live, sockets, maker) for _ in range(4)]
    for ws in quoters:
        quote = await ws_ok(ws, "order.place", limit(market, "buy", "1", "1.00"))
        amends = [
            {"order_id": quote["id"], "amount": f"{(999 - i) / 1000:.3f}"} for i in range(750)
        ]
        assert {a["status"] for a in await pipelined(ws, "order.amend", amends)} == {200}
    assert len(await ok(live, maker, "GET", "/fills", params={"market": market})) == 1  # drained

    redis = aioredis.from_url(live.redis_url)
    try:
        for expected in ([1], [2, 1]):
            if expected == [2, 1]:
                await ok(
                    live, maker, "POST", "/orders", json=limit(market, "sell", "0.001", "10.00")
                )
                await ok(
                    live, taker, "POST", "/orders", json=limit(market, "buy", "0.001", "10.00")
                )
            for limit_ in (1, 5):
                calls = await xrevrange_calls(redis)
                async with live.http("b") as http:
                    r = await http.get(f"/markets/{market}/trades", params={"limit": limit_})
                assert [t["trade_id"] for t in r.json()] == expected[:limit_], r.text
                assert await xrevrange_calls(redis) - calls <= 8, "the stream was read in full"
        # a node loading the market (its first ticker) reads a bounded part too, and
        # finds the last trade and the day's volume all the same
        for node in ("a", "b"):
            calls = await xrevrange_calls(redis)
            async with live.http(node) as http:
                ticker = (await http.get(f"/markets/{market}/ticker")).json()
            assert (ticker["last"], ticker["last_trade_id"], ticker["volume_24h"]) == (
                "10.00", 2, "0.002"
            )  # fmt: skip
            assert await xrevrange_calls(redis) - calls <= 4, "the stream was read in full"
    finally:
        await redis.aclose()


# -- query parameters of the GET routes ----------------------------------------------------


async def test_list_parameters_are_whole_numbers_in_range_and_filters_name_listed_markets(
    live: Exchange,
) -> None:
    market = await new_market(live)
    user = await new_user(live)
    bounded = [
        ("/orders", "limit", 1000), ("/orders?status=closed", "limit", 1000),
        ("/fills", "limit", 1000), (f"/markets/{market}/trades", "limit", 1000),
        (f"/markets/{market}/book", "depth", 1000), (f"/markets/{market}/candles", "limit", 1000),
        ("/notifications", "limit", 500), ("/p2p/offers", "limit", 200),
    ]  # fmt: skip
    for path, name, top in bounded:
        sep = "&" if "?" in path else "?"
        for good in ("1", str(top)):
            r = await call(live, user, "GET", f"{path}{sep}{name}={good}")
            assert r.status_code == 200, (path, good, r.text)
        for bad in ("0", "-1", str(top + 1), "x", "5.0", "1e2", "+5", " 5", "99999999999999999999"):
            r = await call(live, user, "GET", f"{path}{sep}{name}={bad}")
            refused(r, 400, "INVALID_PARAM")
        r = await call(live, user, "GET", f"{path}{sep}{name}=1&{name}=2")
        refused(r, 400, "INVALID_PARAM")  # repeated
    for path in ("/time", "/markets", f"/markets/{market}", f"/markets/{market}/ticker",
                 "/balances", "/addresses", "/withdrawals", "/assets", "/orders/1"):  # fmt: skip
        refused(await call(live, user, "GET", path, params={"x": "1"}), 400, "INVALID_PARAM")
    for method, path, params in (
        ("GET", "/fills", {"market": "ZZZ-USD"}),
        ("GET", "/orders", {"market": "ZZZ-USD"}),
        ("GET", "/orders", {"status": "closed", "market": "ZZZ-USD"}),
        ("GET", "/orders", {"status": "all", "market": "ZZZ-USD"}),
        ("DELETE", "/orders", {"market": "ZZZ-USD"}),
    ):
        refused(await call(live, user, method, path, params=params), 400, "UNKNOWN_MARKET")
    for path in (f"/markets/ZZZ-USD/{leaf}" for leaf in ("book", "trades", "ticker", "candles")):
        refused(await call(live, None, "GET", path), 400, "UNKNOWN_MARKET")
    for status in ("OPEN", "foo"):
        refused(await call(live, user, "GET", "/orders", params={"status": status}),
                400, "INVALID_PARAM")  # fmt: skip
