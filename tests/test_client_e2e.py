"""``HftxClient`` against a real exchange (web nodes, Valkey, PostgreSQL, settler)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections.abc import Callable
from typing import Any

import pytest

from client import HftxClient, HftxError
from client.subscriptions import BookSubscription
from ops.processes import free_port
from tests.test_e2e_support import (
    FAST,
    PASSWORD,
    Exchange,
    LinkCutter,
    Trader,
    eventually,
    extra_node,
    fund,
    new_market,
    new_user,
    unique,
)

pytest_plugins = ["tests.test_e2e_support"]


async def test_http_orders_lifecycle(exchange: Exchange, trader: Trader) -> None:
    market = await new_market(exchange)
    base = market.split("-")[0]
    maker = await trader("a", {base: "10", "USD": "1000"})
    taker = await trader("b", {"USD": "1000"})
    assert market in {m["id"] for m in await taker.fetch_markets()}
    assert (await taker.fetch_market(market))["price_increment"] == "0.01"
    assert (await maker.fetch_balance())[base] == {
        "asset": base, "free": "10.00000000", "locked": "0.00000000", "total": "10.00000000"
    }  # fmt: skip

    ask = await maker.create_order(market, "sell", "limit", "2", "100", client_order_id="ask.1")
    assert (ask["status"], ask["client_order_id"], ask["remaining"]) == ("NEW", "ask.1", "2.000")
    assert (await maker.fetch_order(ask["id"]))["status"] == "NEW"
    assert (await maker.fetch_order_by_client_id("ask.1"))["id"] == ask["id"]
    assert [o["id"] for o in await maker.fetch_open_orders(market)] == [ask["id"]]

    with pytest.raises(HftxError) as refused:
        await taker.create_order(market, "buy", "limit", "1", "100", post_only=True)
    assert (refused.value.code, refused.value.status) == ("POST_ONLY_WOULD_TAKE", 400)
    with pytest.raises(HftxError) as duplicate:
        await maker.create_order(market, "sell", "limit", "1", "101", client_order_id="ask.1")
    assert duplicate.value.code == "DUPLICATE_CLIENT_ORDER_ID"
    assert duplicate.value.result["id"] == ask["id"]

    fok = await taker.create_order(market, "buy", "limit", "3", "100", time_in_force="FOK")
    assert (fok["status"], fok["filled"]) == ("EXPIRED", "0.000")
    ioc = await taker.create_order(market, "buy", "limit", "0.5", "100", time_in_force="IOC")
    assert (ioc["status"], ioc["filled"], len(ioc["fills"])) == ("FILLED", "0.500", 1)
    bought = await taker.create_order(market, "buy", "market", "0.25")
    assert (bought["status"], bought["fills"][0]["price"]) == ("FILLED", "100.00")
    assert (await maker.fetch_order(ask["id"]))["filled"] == "0.750"

    canceled = await maker.cancel_order(ask["id"])
    assert (canceled["status"], canceled["filled"]) == ("CANCELED", "0.750")
    with pytest.raises(HftxError) as unknown:
        await maker.cancel_order(ask["id"])
    assert (unknown.value.code, unknown.value.status) == ("UNKNOWN_ORDER", 404)
    for price in ("90", "91"):
        await maker.create_order(market, "buy", "limit", "1", price)
    all_canceled = await maker.cancel_all_orders(market)
    assert sorted(o["status"] for o in all_canceled) == ["CANCELED", "CANCELED"]
    assert await maker.fetch_open_orders() == []

    async def my_trades() -> list[dict[str, Any]]:
        fills = await taker.fetch_my_trades(market)
        return fills if len(fills) == 2 else []

    fills = await eventually(my_trades)
    assert sorted(f["size"] for f in fills) == ["0.250", "0.500"]
    public = [(t["trade_id"], t["size"]) for t in await taker.fetch_trades(market)]
    assert sorted(public) == [(1, "0.500"), (2, "0.250")]
    assert (await taker.fetch_ticker(market))["last"] == "100.00"
    assert (await taker.fetch_order_book(market, depth=5))["asks"] == []
    assert (await taker.fetch_time())["ts"] > 0

    async def candle() -> list[dict[str, Any]]:
        return await taker.fetch_candles(market, "1m", limit=5)

    assert sum(int(c["volume"].replace(".", "")) for c in await eventually(candle)) == 750
    assert {f["liquidity"] for f in fills} == {"taker"}
    assert {f["liquidity"] for f in await maker.fetch_my_trades(market)} == {"maker"}


async def test_ccxt_argument_order(exchange: Exchange, trader: Trader) -> None:
    """Code written for ccxt runs: ``create_order(symbol, type, side, amount, price)``
    and the ``symbol`` of ``fetch_order`` / ``cancel_order`` (they were refused
    INVALID_PARAM "side must be one of ..." and a TypeError)."""
    market = await new_market(exchange)
    client = await trader("a", {"USD": "100"})
    order = await client.create_order(market, "limit", "buy", "1", "10.00")
    assert (order["side"], order["type"], order["status"]) == ("buy", "limit", "NEW")
    assert (await client.fetch_order(order["id"], market))["id"] == order["id"]
    assert (await client.cancel_order(order["id"], market))["status"] == "CANCELED"
    bought = await client.ws_create_order(market, "market", "buy", quote_amount="5")
    assert (bought["side"], bought["type"]) == ("buy", "market")


async def test_subscribing_twice_is_a_value_error(exchange: Exchange, trader: Trader) -> None:
    """As client/README.md says: a second subscription to the same channel and market is
    refused locally; once the first is closed, subscribing again works."""
    market = await new_market(exchange)
    client = await trader("a")
    first = await client.subscribe_ticker(market)
    with pytest.raises(ValueError, match="already subscribed to ticker"):
        await client.subscribe_ticker(market)
    await first.close()
    again = await client.subscribe_ticker(market)
    async with asyncio.timeout(10):  # the current ticker comes first
        assert (await anext(aiter(again)))["channel"] == "ticker"


async def test_http_refusals_carry_the_protocol_code(exchange: Exchange, trader: Trader) -> None:
    market = await new_market(exchange)
    poor = await trader("a", {"USD": "1"})
    cases: list[tuple[dict[str, Any], str]] = [
        ({"market": market, "amount": "1", "price": "10"}, "INSUFFICIENT_FUNDS"),
        ({"market": market, "amount": "0.0001", "price": "0.1"}, "BAD_PRECISION"),
        ({"market": "NOPE-USD", "amount": "1", "price": "1"}, "UNKNOWN_MARKET"),
    ]
    for params, code in cases:
        with pytest.raises(HftxError) as refused:
            await poor.create_order(side="buy", type="limit", **params)
        assert (refused.value.code, refused.value.status) == (code, 400), params
    with pytest.raises(HftxError) as unknown:
        await poor.fetch_order_by_client_id("never-used")
    assert unknown.value.code == "UNKNOWN_ORDER"
    anonymous = HftxClient(exchange.url("a"))
    with pytest.raises(HftxError) as anon:
        await anonymous.fetch_balance()
    assert anon.value.code == "UNAUTHORIZED"
    await anonymous.close()
    assert (await poor.fetch_balance())["USD"]["free"] == "1.00000000"


async def test_http_wallets_transfer_and_withdrawals(exchange: Exchange, trader: Trader) -> None:
    alice = await trader("a", {"USD": "100"})
    bob = await trader("b")
    addresses = await bob.fetch_deposit_addresses()
    assert addresses == await bob.fetch_deposit_addresses()  # stable
    to = {a["asset"]: a["address"] for a in addresses}["USD"]
    transfer_id, withdrawal_id = unique("t-"), unique("w-")
    first = await alice.transfer("USD", "30", to, transfer_id=transfer_id)
    again = await alice.transfer("USD", "30", to, transfer_id=transfer_id)
    assert first["amount"] == "30.00000000" and again["replay"] is True

    async def credited() -> bool:
        return (await bob.fetch_balance()).get("USD", {}).get("total") == "30.00000000"

    await eventually(credited)
    assert (await alice.fetch_balance())["USD"]["total"] == "70.00000000"
    withdrawal = await alice.withdraw("USD", "20", "ext123", withdrawal_id=withdrawal_id)
    assert withdrawal["status"] == "PENDING"
    listed = await alice.fetch_withdrawals()
    assert [(w["withdrawal_id"], w["status"]) for w in listed] == [(withdrawal_id, "PENDING")]
    assert await bob.fetch_withdrawals() == []


async def test_ws_orders_and_private_pushes_reach_their_owner_only(
    exchange: Exchange, trader: Trader
) -> None:
    market = await new_market(exchange)
    base = market.split("-")[0]
    maker = await trader("a", {base: "5"})
    taker = await trader("b", {"USD": "1000"})
    pushes = {name: Recorder() for name in ("maker orders", "maker balances", "taker orders",
                                            "taker balances")}  # fmt: skip
    await maker.subscribe_orders(callback=pushes["maker orders"])
    await maker.subscribe_balances(callback=pushes["maker balances"])
    await taker.subscribe_orders(callback=pushes["taker orders"])
    await taker.subscribe_balances(callback=pushes["taker balances"])

    ask = await maker.ws_create_order(market, "sell", "limit", "1", "100", client_order_id="m.1")
    assert ask["status"] == "NEW"
    new = await pushes["maker orders"].wait(lambda p: p["exec_type"] == "NEW")
    assert new["order"]["id"] == ask["id"]
    held = await pushes["maker balances"].wait(lambda p: p["asset"] == base)
    assert (held["free"], held["locked"]) == ("4.00000000", "1.00000000")

    bought = await taker.ws_create_order(market, "buy", "limit", "0.4", "100")
    assert (bought["status"], bought["filled"]) == ("FILLED", "0.400")
    fill = await pushes["maker orders"].wait(lambda p: p["exec_type"] == "TRADE")
    assert (fill["order"]["id"], fill["liquidity"]) == (ask["id"], "maker")
    mine = await pushes["taker orders"].wait(lambda p: p["exec_type"] == "TRADE")
    assert (mine["order"]["id"], mine["liquidity"]) == (bought["id"], "taker")
    got = await pushes["taker balances"].wait(lambda p: p["asset"] == base)
    assert got["total"] == "0.39920000"  # 0.4 less the 20 bps taker fee, in base

    with pytest.raises(HftxError) as duplicate:
        await maker.ws_create_order(market, "sell", "limit", "1", "101", client_order_id="m.1")
    assert (duplicate.value.code, duplicate.value.status) == ("DUPLICATE_CLIENT_ORDER_ID", 409)
    assert duplicate.value.result["id"] == ask["id"]
    with pytest.raises(HftxError) as refused:
        await taker.ws_create_order(market, "buy", "limit", "0.1", "100", post_only=True)
    assert (refused.value.code, refused.value.status) == ("POST_ONLY_WOULD_TAKE", 400)
    canceled = await maker.ws_cancel_order(client_order_id="m.1")
    assert (canceled["id"], canceled["status"]) == (ask["id"], "CANCELED")
    gone = await pushes["maker orders"].wait(lambda p: p["exec_type"] == "CANCELED")
    assert gone["order"]["id"] == ask["id"]
    second = await maker.ws_create_order(market, "sell", "limit", "1", "120")
    assert [o["id"] for o in await maker.ws_fetch_open_orders(market)] == [second["id"]]
    assert [o["id"] for o in await maker.ws_cancel_all_orders(market)] == [second["id"]]
    await pushes["maker orders"].wait(
        lambda p: p["exec_type"] == "CANCELED" and p["order"]["id"] == second["id"]
    )
    assert (await maker.ws_fetch_balance())[base]["locked"] == "0.00000000"

    maker_ids, taker_ids = {ask["id"], second["id"]}, {bought["id"]}
    assert {p["order"]["id"] for p in pushes["maker orders"].pushes} == maker_ids
    taker_seen = {p["order"]["id"] for p in pushes["taker orders"].pushes}
    assert taker_seen >= taker_ids and taker_seen.isdisjoint(maker_ids)
    assert {p["asset"] for p in pushes["maker balances"].pushes} <= {base, "USD"}
    maker_totals = {p["total"] for p in pushes["maker balances"].pushes if p["asset"] == base}
    taker_totals = {p["total"] for p in pushes["taker balances"].pushes if p["asset"] == base}
    assert maker_totals.isdisjoint(taker_totals)  # no push crossed over


class Recorder:
    """An async callback that records pushes; ``wait`` for one that matches."""

    def __init__(self) -> None:
        self.pushes: list[dict[str, Any]] = []
        self._seen = asyncio.Event()

    async def __call__(self, push: dict[str, Any]) -> None:
        self.pushes.append(push)
        self._seen.set()

    async def wait(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for push in self.pushes:
                    if match(push):
                        return push
                self._seen.clear()
                await self._seen.wait()


async def random_flow(clients: list[HftxClient], market: str, count: int, seed: int) -> None:
    """``count`` random orders and cancels over the WebSocket, around 100.00."""
    rng = random.Random(seed)
    resting: list[tuple[HftxClient, str]] = []
    for _ in range(count):
        client = rng.choice(clients)
        if resting and rng.random() < 0.2:
            owner, order_id = resting.pop(rng.randrange(len(resting)))
            with contextlib.suppress(HftxError):  # filled meanwhile
                await owner.ws_cancel_order(order_id)
            continue
        side = rng.choice(("buy", "sell"))
        amount = f"{rng.randint(1, 2000) / 1000:.3f}"
        if rng.random() < 0.05:
            order = await client.ws_create_order(market, side, "market", amount)
        else:
            price = f"{rng.randint(9900, 10100) / 100:.2f}"
            tif = rng.choice(["GTC"] * 8 + ["IOC", "FOK"])
            order = await client.ws_create_order(
                market, side, "limit", amount, price, time_in_force=tif
            )
        if order["status"] in ("NEW", "PARTIALLY_FILLED"):
            resting.append((client, order["id"]))


async def book_matches(exchange: Exchange, sub: BookSubscription, depth: int) -> bool:
    """True when the client's local book equals ``GET /book`` at the same seq."""
    async with exchange.http("a") as http:
        truth = (await http.get(f"/markets/{sub.market}/book", params={"depth": depth})).json()
    local = sub.book
    if local.seq != truth["seq"]:
        return False
    assert [list(level) for level in local.bids()] == truth["bids"]
    assert [list(level) for level in local.asks()] == truth["asks"]
    assert local.checksum() == truth["checksum"]
    return True


async def test_book_subscription_stays_in_sync_under_random_flow(
    exchange: Exchange, trader: Trader
) -> None:
    market = await new_market(exchange)
    base = market.split("-")[0]
    funds = {base: "100000", "USD": "10000000"}
    flow = [await trader("a", funds), await trader("b", funds)]
    watcher = await trader("b")
    deep = await watcher.subscribe_book(market, depth=50)
    trades, ticker = Recorder(), Recorder()
    await watcher.subscribe_trades(market, callback=trades)
    await watcher.subscribe_ticker(market, callback=ticker)
    shallow_client = await trader("a")
    shallow = await shallow_client.subscribe_book(market, depth=5)
    assert (await deep.wait_ready(5)).seq is not None

    await random_flow(flow, market, 300, seed=11)

    await eventually(lambda: book_matches(exchange, deep, 50), timeout=15)
    await eventually(lambda: book_matches(exchange, shallow, 5), timeout=15)
    assert (deep.resyncs, shallow.resyncs, deep.dropped) == (0, 0, 0)
    last = (await watcher.fetch_trades(market, limit=1))[0]
    await trades.wait(lambda p: p["trade_id"] == last["trade_id"])
    ids = [p["trade_id"] for p in trades.pushes]
    assert ids == sorted(set(ids)) and {p["market"] for p in trades.pushes} == {market}
    truth = await watcher.fetch_ticker(market)
    seen = await ticker.wait(lambda p: p["last"] == truth["last"])
    assert seen["market"] == market
    await eventually(lambda: _has_heartbeat(watcher, market, last["trade_id"]))


async def _has_heartbeat(client: HftxClient, market: str, trade_id: int) -> bool:
    beat = client.heartbeats.get(market)
    return beat is not None and beat["last_trade_id"] == trade_id


async def test_client_reconnects_after_the_server_closes_4401(
    exchange: Exchange, trader: Trader
) -> None:
    """Logout revokes the token and the server closes the socket with 4401: the client
    logs in again, reconnects, resubscribes, and its book is in sync again."""
    market = await new_market(exchange)
    base = market.split("-")[0]
    flow = await trader("a", {base: "1000", "USD": "1000000"})
    watcher = await trader("b", {"USD": "100"})
    book = await watcher.subscribe_book(market, depth=10)
    orders = Recorder()
    await watcher.subscribe_orders(callback=orders)
    await book.wait_ready(5)
    await random_flow([flow], market, 40, seed=3)
    await eventually(lambda: book_matches(exchange, book, 10))
    opened = watcher.ws.sessions

    async with exchange.http("a", watcher.token) as http:
        assert (await http.post("/auth/logout")).status_code == 200
    await eventually(lambda: _reopened(watcher, opened), timeout=10)
    assert watcher.ws.close_code == 4401
    await random_flow([flow], market, 40, seed=4)
    await eventually(lambda: book_matches(exchange, book, 10))
    mine = await watcher.ws_create_order(market, "buy", "limit", "0.5", "1")
    pushed = await orders.wait(lambda p: p["order"]["id"] == mine["id"])
    assert pushed["exec_type"] == "NEW"


async def _reopened(client: HftxClient, opened: int) -> bool:
    return client.ws.sessions > opened and client.connected


async def test_client_reconnects_after_the_link_drops(
    exchange: Exchange, trader: Trader, caplog: pytest.LogCaptureFixture
) -> None:
    """The TCP link is cut (no close frame): the client reconnects, resubscribes and
    catches up with what happened meanwhile."""
    market = await new_market(exchange)
    base = market.split("-")[0]
    flow = await trader("a", {base: "1000", "USD": "1000000"})
    port = int(exchange.url("b").rsplit(":", 1)[1])
    async with LinkCutter(port) as link:
        watcher = HftxClient(
            exchange.url("b"), ws_endpoint=f"ws://127.0.0.1:{link.port}/ws", backoff=FAST
        )
        try:
            await watcher.login((await new_user(exchange)).email, PASSWORD)
            book = await watcher.subscribe_book(market, depth=10)
            await book.wait_ready(5)
            await random_flow([flow], market, 30, seed=5)
            await eventually(lambda: book_matches(exchange, book, 10))
            link.cut()
            await random_flow([flow], market, 30, seed=6)
            await eventually(lambda: book_matches(exchange, book, 10), timeout=15)
            assert link.accepted >= 2
            failures = [r for r in caplog.records if r.levelno >= 40]
            assert not failures, [r.getMessage() for r in failures]
        finally:
            await watcher.close()


async def test_login_authenticates_an_already_open_websocket(exchange: Exchange) -> None:
    user = await new_user(exchange)
    await fund(exchange, user, {"USD": "5"})
    async with HftxClient(exchange.url("a"), backoff=FAST) as client:
        await client.connect()  # anonymous
        with pytest.raises(HftxError) as anonymous:
            await client.ws_fetch_balance()
        assert anonymous.value.code == "UNAUTHORIZED"
        await client.login(user.email, PASSWORD)
        assert (await client.ws_fetch_balance())["USD"]["total"] == "5.00000000"
        orders = await client.subscribe_orders()
        assert orders.channel == "orders"


async def test_client_rides_through_a_node_restart(
    exchange: Exchange, trader: Trader, caplog: pytest.LogCaptureFixture
) -> None:
    """The node shuts down (status push, close 1012) and comes back on its port: the
    client retries meanwhile, then reconnects, resubscribes and resyncs its book."""
    market = await new_market(exchange)
    base = market.split("-")[0]
    flow = await trader("a", {base: "1000", "USD": "1000000"})
    port = free_port()
    watcher = await trader("b")
    watcher.ws.url = f"ws://127.0.0.1:{port}/ws"
    with extra_node(exchange, "restart-1", port=port, ready="/readyz") as (_, node):
        book = await watcher.subscribe_book(market, depth=10)
        await book.wait_ready(5)
        node.send_signal(signal.SIGTERM)
        await asyncio.to_thread(node.wait, 15)
    assert not watcher.connected and watcher.ws.close_code == 1012
    await random_flow([flow], market, 30, seed=8)
    with extra_node(exchange, "restart-2", port=port, ready="/readyz"):
        await eventually(lambda: book_matches(exchange, book, 10), timeout=15)
        assert book.book.seq is not None and watcher.connected
    failures = [r for r in caplog.records if r.name.startswith("client") and r.levelno >= 40]
    assert not failures, [r.getMessage() for r in failures]


async def test_rate_limited_then_flood_closed_client_reconnects(
    exchange: Exchange, trader: Trader
) -> None:
    """On the strict node (100 requests/s, burst 300, close after 50 refusals): the
    refusals are ``RATE_LIMITED`` (429), the 4429 close fails what was in flight as
    ``UNAVAILABLE``, and the client comes back after its backoff."""
    client = await trader("strict")
    await client.connect()
    opened = client.ws.sessions
    answers = await asyncio.gather(*(client.ws_ping() for _ in range(400)), return_exceptions=True)
    codes = {a.code for a in answers if isinstance(a, HftxError)}
    assert "RATE_LIMITED" in codes and codes <= {"RATE_LIMITED", "UNAVAILABLE"}, answers
    assert sum(1 for a in answers if not isinstance(a, BaseException)) >= 250
    await eventually(lambda: _reopened(client, opened), timeout=10)
    assert client.ws.close_code == 4429
    assert await client.ws_ping() is not None
