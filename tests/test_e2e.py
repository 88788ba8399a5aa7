"""End to end over real web nodes (uvicorn processes), Valkey, PostgreSQL and the settler."""

from __future__ import annotations

import asyncio
import random
import signal
from typing import Any

from client.book import BookStatus, LocalBook
from tests.test_e2e_support import (
    PASSWORD,
    Exchange,
    Ws,
    balances,
    eventually,
    fund,
    limit,
    new_market,
    new_user,
    unique,
)

pytest_plugins = ["tests.test_e2e_support"]


async def seller_and_buyer(exchange: Exchange) -> tuple[str, str, Any, Any]:
    """A new market (and its base asset), a seller with 10 base, a buyer with 10,000 USD."""
    market = await new_market(exchange)
    base = market.split("-")[0]
    seller, buyer = await new_user(exchange), await new_user(exchange)
    await fund(exchange, seller, {base: "10"})
    await fund(exchange, buyer, {"USD": "10000"})
    return market, base, seller, buyer


async def test_signup_login_me_and_deposit(exchange: Exchange) -> None:
    user = await new_user(exchange)
    async with exchange.http("b") as http:
        again = await http.post(
            "/auth/signup", json={"email": user.email.upper(), "password": PASSWORD}
        )
        assert again.status_code == 400 and again.json()["error"] == {
            "code": "INVALID_PARAM", "message": "this email is already registered"
        }  # fmt: skip
        short = await http.post(
            "/auth/signup", json={"email": unique() + "@x.dev", "password": "short"}
        )
        assert short.status_code == 400 and short.json()["error"]["code"] == "INVALID_PARAM"
        wrong = await http.post(
            "/auth/login", json={"email": user.email, "password": "wrong-password"}
        )
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "UNAUTHORIZED"
        ok = await http.post(
            "/auth/login", json={"email": " " + user.email.upper(), "password": PASSWORD}
        )
        assert ok.status_code == 200
        body = ok.json()
        assert body["token_type"] == "bearer" and body["expires_in"] == 900
    async with exchange.http("b", user.token) as http:
        me = (await http.get("/me")).json()
        assert me == {"user_id": user.user_id, "role": "user", "email": user.email}
        addresses = (await http.get("/addresses")).json()
        assert {a["asset"] for a in addresses} >= {"USD"}
        assert addresses == (await http.get("/addresses")).json()  # stable
    await fund(exchange, user, {"USD": "1234.5"})
    assert (await balances(exchange, user))["USD"] == {
        "asset": "USD", "free": "1234.50000000", "locked": "0.00000000", "total": "1234.50000000",
    }  # fmt: skip


async def test_deposit_is_idempotent_by_id(exchange: Exchange) -> None:
    user = await new_user(exchange)
    async with exchange.http("a", user.token) as http:
        address = {a["asset"]: a["address"] for a in (await http.get("/addresses")).json()}["USD"]
    body = {"deposit_id": unique("d"), "address": address, "asset": "USD", "amount": "5"}
    ws = await Ws.connect(exchange.ws_url("a"), user.token)
    await ws.request("subscribe", {"channel": "balances"})
    async with exchange.admin() as admin:
        first = await admin.post("/admin/deposits", json=body)
        second = await admin.post("/admin/deposits", json=body)
        body["deposit_id"] = unique("d")
        body["amount"] = "1"
        assert (await admin.post("/admin/deposits", json=body)).status_code == 200
    assert first.json()["replay"] is False and second.json()["replay"] is True
    assert (await balances(exchange, user))["USD"]["total"] == "6.00000000"
    await ws.wait_push(lambda p: p.get("total") == "6.00000000")
    # one push per change: the replay changed nothing and pushed nothing
    totals = [p["total"] for p in ws.pushes if p.get("channel") == "balances"]
    assert totals == ["5.00000000", "6.00000000"]
    await ws.close()


async def test_trade_between_two_users_on_two_nodes(exchange: Exchange) -> None:
    market = await new_market(exchange)
    base = market.split("-")[0]
    alice, bob, carol = [await new_user(exchange) for _ in range(3)]
    await fund(exchange, alice, {base: "5"})
    await fund(exchange, bob, {"USD": "1000"})
    a1 = await Ws.connect(exchange.ws_url("a"), alice.token)
    a2 = await Ws.connect(exchange.ws_url("b"), alice.token)  # alice, not subscribed
    b1 = await Ws.connect(exchange.ws_url("b"), bob.token)
    c1 = await Ws.connect(exchange.ws_url("a"), carol.token)
    for ws in (a1, b1, c1):
        for channel in ("orders", "balances"):
            assert (await ws.request("subscribe", {"channel": channel}))["status"] == 200
    maker = await a1.request(
        "order.place", limit(market, "sell", "1", "100", client_order_id="ask-1")
    )
    assert maker["status"] == 200, maker
    assert maker["result"]["status"] == "NEW" and maker["result"]["client_order_id"] == "ask-1"
    held = await a1.wait_push(lambda m: m["channel"] == "balances" and m["asset"] == base)
    assert (held["free"], held["locked"], held["total"]) == (
        "4.00000000",
        "1.00000000",
        "5.00000000",
    )
    taker = await b1.request("order.place", limit(market, "buy", "0.4", "100.00"))
    assert taker["status"] == 200, taker
    order = taker["result"]
    assert (order["status"], order["filled"], order["cost"]) == ("FILLED", "0.400", "40.00000000")
    assert order["fills"] == [
        {"trade_id": 1, "price": "100.00", "size": "0.400", "fee": "0.00080000",
         "fee_asset": base, "maker_order_id": maker["result"]["id"], "liquidity": "taker"}
    ]  # fmt: skip

    push = await a1.wait_push(lambda m: m["channel"] == "orders" and m["exec_type"] == "TRADE")
    assert push["order"]["id"] == maker["result"]["id"]
    assert (push["liquidity"], push["last_size"], push["fee"]) == ("maker", "0.400", "0.04000000")
    mine = await b1.wait_push(lambda m: m["channel"] == "orders" and m["exec_type"] == "TRADE")
    assert mine["order"]["id"] == order["id"] and mine["liquidity"] == "taker"

    def usd(m: dict[str, Any]) -> bool:
        return m["channel"] == "balances" and m["asset"] == "USD" and m["total"] == "39.96000000"

    await a1.wait_push(usd)
    await b1.wait_push(lambda m: m["channel"] == "balances" and m["asset"] == base)
    assert (await balances(exchange, alice))[base] == {
        "asset": base, "free": "4.00000000", "locked": "0.60000000", "total": "4.60000000",
    }  # fmt: skip
    assert (await balances(exchange, bob))[base]["total"] == "0.39920000"
    await asyncio.sleep(0.3)
    assert c1.pushes == []  # nothing for carol
    assert a2.pushes == []  # alice's other socket did not subscribe
    assert all(m["channel"] != "orders" or m["order"]["id"] != order["id"] for m in a1.pushes)
    for ws in (a1, a2, b1, c1):
        await ws.close()


async def test_http_order_lifecycle_and_duplicate_client_order_id(exchange: Exchange) -> None:
    market = await new_market(exchange)
    user = await new_user(exchange)
    await fund(exchange, user, {"USD": "1000"})
    async with exchange.http("a", user.token) as http:
        r = await http.post("/orders", json=limit(market, "buy", "1", "10", client_order_id="c-1"))
        assert r.status_code == 200, r.text
        order = r.json()
        again = await http.post(
            "/orders", json=limit(market, "buy", "2", "11", client_order_id="c-1")
        )
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "DUPLICATE_CLIENT_ORDER_ID"
        assert again.json()["error"]["order"]["id"] == order["id"]
        assert [o["id"] for o in (await http.get("/orders", params={"market": market})).json()] == [
            order["id"]
        ]
        assert (await http.get(f"/orders/{order['id']}")).json()["status"] == "NEW"
        locked = {b["asset"]: b for b in (await http.get("/balances")).json()}["USD"]["locked"]
        assert locked == "10.00000000"
        r = await http.delete(f"/orders/{order['id']}")
        assert r.status_code == 200 and r.json()["status"] == "CANCELED"
        r = await http.delete(f"/orders/{order['id']}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "UNKNOWN_ORDER"
        for price in ("1", "2"):
            assert (
                await http.post("/orders", json=limit(market, "buy", "1", price))
            ).status_code == 200
        r = await http.delete("/orders", params={"market": market})
        assert r.status_code == 200 and {o["status"] for o in r.json()} == {"CANCELED"}
        assert (await http.get("/orders")).json() == []

        async def released() -> bool:
            usd = {b["asset"]: b for b in (await http.get("/balances")).json()}["USD"]
            return usd["locked"] == "0.00000000"

        await eventually(released)


async def test_public_market_data_over_http(exchange: Exchange) -> None:
    market, _base, seller, buyer = await seller_and_buyer(exchange)
    async with exchange.http("a", seller.token) as http:
        for price in ("101", "102", "103"):
            assert (
                await http.post("/orders", json=limit(market, "sell", "1", price))
            ).status_code == 200
    async with exchange.http("b", buyer.token) as http:
        assert (
            await http.post("/orders", json=limit(market, "buy", "0.5", "101"))
        ).status_code == 200
    async with exchange.http("b") as http:
        book = (await http.get(f"/markets/{market}/book", params={"depth": 2})).json()
        assert book["asks"] == [["101.00", "0.500"], ["102.00", "1.000"]] and book["bids"] == []
        local = LocalBook()
        assert local.apply({"type": "snapshot", **book}) is BookStatus.APPLIED
        trades = (await http.get(f"/markets/{market}/trades")).json()
        assert [(t["trade_id"], t["price"], t["size"], t["taker_side"]) for t in trades] == [
            (1, "101.00", "0.500", "buy")
        ]
        ticker = (await http.get(f"/markets/{market}/ticker")).json()
        assert (ticker["best_ask"], ticker["last"], ticker["volume_24h"]) == (
            "101.00",
            "101.00",
            "0.500",
        )
        markets = {m["id"]: m for m in (await http.get("/markets")).json()}
        assert markets[market]["price_increment"] == "0.01"
        assert (await http.get("/time")).json()["ts"] > 0
        assert (await http.get("/markets/NOPE-USD/book")).json()["error"][
            "code"
        ] == "UNKNOWN_MARKET"


async def test_ws_market_data_channels(exchange: Exchange) -> None:
    market, _base, seller, buyer = await seller_and_buyer(exchange)
    ws = await Ws.connect(exchange.ws_url("b"), buyer.token)
    for channel in ("trades", "ticker", "heartbeat"):
        answer = await ws.request("subscribe", {"channel": channel, "markets": [market]})
        assert answer["status"] == 200, answer
    await ws.wait_push(lambda m: m["channel"] == "ticker")
    hb = await ws.wait_push(lambda m: m["channel"] == "heartbeat", timeout=3)
    assert hb["market"] == market and hb["last_trade_id"] == 0
    async with exchange.http("a", seller.token) as http:
        await http.post("/orders", json=limit(market, "sell", "2", "50"))
    trade_taker = await ws.request("order.place", limit(market, "buy", "1.5", "50"))
    trade = await ws.wait_push(lambda m: m["channel"] == "trades")
    assert {k: trade[k] for k in ("market", "trade_id", "price", "size", "taker_side")} == {
        "market": market, "trade_id": 1, "price": "50.00", "size": "1.500", "taker_side": "buy"
    }  # fmt: skip
    assert trade["taker_order_id"] == trade_taker["result"]["id"] and trade["seq"] > 0
    ticker = await ws.wait_push(lambda m: m["channel"] == "ticker" and m["last"] == "50.00")
    assert ticker["best_ask"] == "50.00" and ticker["best_ask_size"] == "0.500"
    hb = await ws.wait_push(lambda m: m["channel"] == "heartbeat" and m["last_trade_id"] == 1, 3)
    assert hb["seq"] >= trade["seq"]
    answer = await ws.request("unsubscribe", {"channel": "heartbeat", "markets": [market]})
    assert answer["status"] == 200
    await ws.close()


async def test_book_sync_by_checksum_after_1000_random_orders(exchange: Exchange) -> None:
    market = await new_market(exchange)
    base = market.split("-")[0]
    traders = [await new_user(exchange) for _ in range(2)]
    for user in traders:
        await fund(exchange, user, {base: "100000", "USD": "10000000"})
    watchers = {}
    for node, depth in (("a", 10), ("b", 50), ("b", 3)):
        ws = await Ws.connect(exchange.ws_url(node), traders[0].token)
        answer = await ws.request(
            "subscribe", {"channel": "book", "markets": [market], "depth": depth}
        )
        assert answer["status"] == 200 and answer["result"]["depth"] == depth
        watchers[(node, depth)] = ws
    sockets = [
        await Ws.connect(exchange.ws_url(n), u.token) for n, u in zip("ab", traders, strict=True)
    ]
    rng = random.Random(7)
    open_ids: list[tuple[Ws, str]] = []
    for _ in range(1000):
        ws = rng.choice(sockets)
        if open_ids and rng.random() < 0.2:
            owner, order_id = open_ids.pop(rng.randrange(len(open_ids)))
            await owner.request("order.cancel", {"order_id": order_id})
            continue
        side = rng.choice(["buy", "sell"])
        price = f"{rng.randint(9900, 10100) / 100:.2f}"
        kind = "market" if rng.random() < 0.05 else "limit"
        params: dict[str, Any] = {"market": market, "side": side, "type": kind,
                                  "amount": f"{rng.randint(1, 3000) / 1000:.3f}"}  # fmt: skip
        if kind == "limit":
            params["price"] = price
            params["time_in_force"] = rng.choice(["GTC"] * 8 + ["IOC", "FOK"])
        answer = await ws.request("order.place", params)
        assert answer["status"] in (200, 400), answer
        if answer["status"] == 200 and answer["result"]["status"] in ("NEW", "PARTIALLY_FILLED"):
            open_ids.append((ws, answer["result"]["id"]))
    async with exchange.http("a") as http:

        async def synced() -> bool:
            for (_node, depth), ws in watchers.items():
                truth = (await http.get(f"/markets/{market}/book", params={"depth": depth})).json()
                local = LocalBook()
                for message in ws.pushes:
                    if message["channel"] == "book":
                        status = local.apply(message)
                        assert status in (BookStatus.APPLIED, BookStatus.STALE), (status, message)
                if local.seq != truth["seq"]:
                    last.append((depth, local.seq, truth["seq"]))
                    return False
                assert [list(x) for x in local.bids()] == truth["bids"]
                assert [list(x) for x in local.asks()] == truth["asks"]
                assert local.checksum() == truth["checksum"]
            return True

        last: list[Any] = []  # (depth, local seq, engine seq) when not caught up yet
        await eventually(synced, timeout=15)
    assert sum(1 for m in watchers[("b", 50)].pushes if m["type"] == "update") > 100
    for ws in [*watchers.values(), *sockets]:
        await ws.close()


async def test_reconnect_and_resubscribe_gets_a_fresh_snapshot(exchange: Exchange) -> None:
    market = await new_market(exchange)
    user = await new_user(exchange)
    await fund(exchange, user, {"USD": "1000"})
    ws = await Ws.connect(exchange.ws_url("a"), user.token)
    await ws.request("subscribe", {"channel": "book", "markets": [market], "depth": 5})
    first = await ws.wait_push(lambda m: m["type"] == "snapshot")
    await ws.close()
    async with exchange.http("b", user.token) as http:
        for price in ("1", "2", "3"):
            assert (
                await http.post("/orders", json=limit(market, "buy", "1", price))
            ).status_code == 200
    ws = await Ws.connect(exchange.ws_url("b"), user.token)
    await ws.request("subscribe", {"channel": "book", "markets": [market], "depth": 5})
    snap = await ws.wait_push(lambda m: m["type"] == "snapshot")
    assert snap["seq"] > first["seq"]
    assert snap["bids"] == [["3.00", "1.000"], ["2.00", "1.000"], ["1.00", "1.000"]]
    # subscribing again is how a client resyncs: a new snapshot at the current seq
    await ws.request("subscribe", {"channel": "book", "markets": [market], "depth": 2})
    again = await ws.wait_push(lambda m: m["type"] == "snapshot" and len(m["bids"]) == 2)
    assert again["seq"] == snap["seq"]
    await ws.close()


async def test_logout_revokes_tokens_on_every_node(exchange: Exchange) -> None:
    user = await new_user(exchange)
    ws = await Ws.connect(exchange.ws_url("b"), user.token)
    async with exchange.http("a", user.token) as http:
        refreshed = (await http.post("/auth/refresh")).json()["access_token"]
        assert (await http.post("/auth/logout")).status_code == 200
        assert (await http.get("/balances")).status_code == 401
    assert (await asyncio.wait_for(ws.closed, 5))[0] == 4401
    async with exchange.http("b", refreshed) as http:
        assert (await http.get("/balances")).status_code == 401
    fresh = await Ws.connect(exchange.ws_url("a"))
    answer = await fresh.request("auth", {"token": user.token})
    assert answer["status"] == 401
    assert (await asyncio.wait_for(fresh.closed, 5))[0] == 4401


async def test_transfer_and_withdrawal(exchange: Exchange) -> None:
    alice, bob = await new_user(exchange), await new_user(exchange)
    await fund(exchange, alice, {"USD": "100"})
    async with exchange.http("b", bob.token) as http:
        bob_usd = {a["asset"]: a["address"] for a in (await http.get("/addresses")).json()}["USD"]
    ws = await Ws.connect(exchange.ws_url("a"), alice.token)
    body = {"transfer_id": unique("t"), "asset": "USD", "amount": "30", "to_address": bob_usd}
    answer = await ws.request("transfers.create", body)
    assert answer["status"] == 200 and answer["result"]["amount"] == "30.00000000", answer
    replay = await ws.request("transfers.create", body)
    assert replay["status"] == 200 and replay["result"]["replay"] is True

    # the answer comes once the payee is credited: bob sees it at once
    assert (await balances(exchange, bob))["USD"]["total"] == "30.00000000"
    async with exchange.http("a", alice.token) as http:
        wid = unique("w")
        r = await http.post("/withdrawals", json={"withdrawal_id": wid, "asset": "USD",
                                                  "amount": "20", "address": "ext123"})  # fmt: skip
        assert r.status_code == 200 and r.json()["status"] == "PENDING", r.text
        assert (await balances(exchange, alice))["USD"]["locked"] == "20.00000000"
        async with exchange.admin() as admin:
            r = await admin.post(f"/admin/withdrawals/{wid}/complete")
            assert r.status_code == 200 and r.json()["status"] == "COMPLETED", r.text
        listed = (await http.get("/withdrawals")).json()
        assert [(w["withdrawal_id"], w["status"]) for w in listed] == [(wid, "COMPLETED")]
    assert (await balances(exchange, alice))["USD"]["total"] == "50.00000000"
    await ws.close()


async def test_admin_routes(exchange: Exchange) -> None:
    market = await new_market(exchange)
    async with exchange.admin("b") as admin:
        r = await admin.post(f"/admin/markets/{market}/status", json={"status": "HALT"})
        assert r.status_code == 200 and r.json()["status"] == "HALT"
        shown = (await admin.get(f"/markets/{market}")).json()  # a copy of a market object
        base = "C" + unique().upper()[:8]
        assert (
            await admin.post("/admin/assets", json={"symbol": base, "scale": 8})
        ).status_code == 200
        copy = await admin.post("/admin/markets", json={**shown, "id": f"{base}-USD", "base": base})
        assert copy.status_code == 200, copy.text
        assert copy.json() == {**shown, "id": f"{base}-USD", "base": base, "status": "HALT"}
        users = (await admin.get("/admin/users", params={"limit": 1000})).json()
        assert any(u["role"] == "admin" for u in users)
        assert all("password_hash" not in u for u in users)
    user = await new_user(exchange)
    await fund(exchange, user, {"USD": "10"})
    async with exchange.http("a", user.token) as http:
        r = await http.post("/orders", json=limit(market, "buy", "1", "1"))
        assert r.status_code == 400 and r.json()["error"]["code"] == "MARKET_NOT_TRADING"


async def test_health_ready_metrics(exchange: Exchange) -> None:
    async with exchange.http("a") as http:
        base = exchange.url("a")
        assert (await http.get(base + "/healthz")).json() == {"status": "ok"}
        ready = (await http.get(base + "/readyz")).json()
        assert ready["checks"] == {"redis": True, "functions": True, "postgres": True}
        metrics = (await http.get(base + "/metrics")).text
        assert "hftx_http_requests_total" in metrics and "hftx_ws_connections" in metrics
        # process-wide: the timed full garbage collections (ops.gc_policy), CPython's own
        assert "hftx_gc_full_collection_seconds_count" in metrics
        assert "python_gc_collections_total" in metrics and "process_cpu_seconds_total" in metrics
        assert (await http.get(base + "/")).status_code in (200, 404)


async def test_history_fills_orders_and_candles(exchange: Exchange) -> None:
    market, base, seller, buyer = await seller_and_buyer(exchange)
    async with exchange.http("a", seller.token) as http:
        maker = (await http.post("/orders", json=limit(market, "sell", "2", "20"))).json()
    async with exchange.http("b", buyer.token) as http:
        taker = (await http.post("/orders", json=limit(market, "buy", "2", "20"))).json()
        assert taker["status"] == "FILLED"
        # read-your-writes: history waits for the drain (a new market, too: api.catchup)
        (fill,) = (await http.get("/fills", params={"market": market})).json()
        assert (fill["order_id"], fill["side"], fill["liquidity"]) == (taker["id"], "buy", "taker")
        assert (fill["price"], fill["size"], fill["fee"], fill["fee_asset"]) == (
            "20.00", "2.000", "0.00400000", base
        )  # fmt: skip
        closed = (await http.get("/orders", params={"status": "closed"})).json()
        assert [o["id"] for o in closed] == [taker["id"]]
        assert (await http.get(f"/orders/{taker['id']}")).json()["status"] == "FILLED"
    async with exchange.http("a") as http:
        (candle,) = (await http.get(f"/markets/{market}/candles", params={"interval": "1m"})).json()
        assert (candle["open"], candle["close"], candle["volume"]) == ("20.00", "20.00", "2.000")
        bad = await http.get(f"/markets/{market}/candles", params={"interval": "7m"})
        assert bad.status_code == 400
    assert maker["status"] == "NEW"


async def test_all_orders_show_the_live_fill_of_an_open_order(exchange: Exchange) -> None:
    """PostgreSQL records an order's fills when it is done; ``status=all`` shows an
    open order as it is now (partly filled), not as it was recorded (NEW, nothing)."""
    market, _base, seller, buyer = await seller_and_buyer(exchange)
    async with exchange.http("a", seller.token) as http:
        maker = (await http.post("/orders", json=limit(market, "sell", "2", "20"))).json()
    async with exchange.http("b", buyer.token) as http:
        taker = (await http.post("/orders", json=limit(market, "buy", "0.5", "20"))).json()
        assert taker["status"] == "FILLED"
    async with exchange.http("a", seller.token) as http:
        (listed,) = (await http.get("/orders", params={"status": "all"})).json()
        assert (listed["id"], listed["status"], listed["filled"], listed["remaining"]) == (
            maker["id"], "PARTIALLY_FILLED", "0.500", "1.500"
        )  # fmt: skip


async def test_orders_looked_up_and_canceled_by_client_order_id(exchange: Exchange) -> None:
    """After an unknown outcome (5xx) a client finds its order by the id it chose:
    WS ``order.get {client_order_id}``, HTTP ``/orders/client:<id>`` (as Coinbase)."""
    market = await new_market(exchange)
    user, other = await new_user(exchange), await new_user(exchange)
    await fund(exchange, user, {"USD": "1000"})
    async with exchange.http("a", user.token) as http:
        placed = (
            await http.post("/orders", json=limit(market, "buy", "1", "10", client_order_id="k.1"))
        ).json()
        got = (await http.get("/orders/client:k.1")).json()
        assert (got["id"], got["client_order_id"], got["status"]) == (placed["id"], "k.1", "NEW")
        for path, code in (("/orders/client:nope", 404), ("/orders/client:bad id!", 400)):
            r = await http.get(path)
            assert r.status_code == code, r.text
    ws = await Ws.connect(exchange.ws_url("b"), user.token)
    answer = await ws.request("order.get", {"client_order_id": "k.1"})
    assert answer["status"] == 200 and answer["result"]["id"] == placed["id"]
    both = await ws.request("order.get", {"client_order_id": "k.1", "order_id": placed["id"]})
    assert both["status"] == 400 and both["error"]["code"] == "INVALID_PARAM"
    await ws.close()
    async with exchange.http("b", other.token) as http:  # another user's id: unknown
        r = await http.get("/orders/client:k.1")
        assert r.status_code == 404 and r.json()["error"]["code"] == "UNKNOWN_ORDER"
        assert (await http.delete("/orders/client:k.1")).status_code == 404
    async with exchange.http("a", user.token) as http:
        r = await http.delete("/orders/client:k.1")
        assert r.status_code == 200 and r.json()["status"] == "CANCELED"
        assert (await http.get("/orders/client:k.1")).json()["status"] == "CANCELED"


async def test_a_transfer_is_in_the_payees_balance_when_answered(exchange: Exchange) -> None:
    """The settler credits the payee (~10 ms after the debit); the answer waits for it."""
    alice, bob = await new_user(exchange), await new_user(exchange)
    await fund(exchange, alice, {"USD": "100"})
    async with exchange.http("b", bob.token) as bob_http:
        bob_usd = {a["asset"]: a["address"] for a in (await bob_http.get("/addresses")).json()}
        async with exchange.http("a", alice.token) as alice_http:
            for i in range(1, 6):
                body = {"transfer_id": unique("t"), "asset": "USD", "amount": "1",
                        "to_address": bob_usd["USD"]}  # fmt: skip
                assert (await alice_http.post("/transfers", json=body)).status_code == 200
                got = {b["asset"]: b for b in (await bob_http.get("/balances")).json()}
                assert got["USD"]["total"] == f"{i}.00000000"


async def test_balances_read_after_an_order_answer_include_its_fills(exchange: Exchange) -> None:
    """A fill moves balances in the settler, after the order is answered; a balance
    read waits for it (api.catchup). Here the settler is paused while the taker's
    order fills: the taker's read waits, and shows the fill once the settler runs."""
    market, base, seller, buyer = await seller_and_buyer(exchange)
    ws = await Ws.connect(exchange.ws_url("b"), buyer.token)
    async with exchange.http("a", seller.token) as http:
        maker = await http.post("/orders", json=limit(market, "sell", "0.1", "20"))
        assert maker.status_code == 200, maker.text
    settler = exchange.procs["settler"]
    settler.send_signal(signal.SIGSTOP)
    try:
        taker = await ws.request(
            "order.place", limit(market, "buy", "0.1", "20", time_in_force="IOC")
        )
        assert taker["result"]["status"] == "FILLED", taker
        read = asyncio.create_task(ws.request("balances.get"))
        await asyncio.sleep(0.3)
        assert not read.done()  # waiting for the settler
    finally:
        settler.send_signal(signal.SIGCONT)
    got = {b["asset"]: b for b in (await read)["result"]}
    assert got[base]["total"] == "0.09980000"  # 0.1 less the 20 bps taker fee


async def test_a_p2p_release_is_in_the_buyers_balance_when_answered(exchange: Exchange) -> None:
    """The buyer's credit of a release is the settler's work; the release answer waits
    for it (api.catchup). The settler is paused across the release to show the wait."""
    seller, buyer = await new_user(exchange), await new_user(exchange)
    await fund(exchange, seller, {"USD": "100"})
    offer = {"side": "sell", "asset": "USD", "fiat": "EUR", "price": "0.9", "amount": "10",
             "min_amount": "1", "max_amount": "10", "payment_methods": ["SEPA"],
             "payment_window": 15}  # fmt: skip
    async with exchange.http("a", seller.token) as sh, exchange.http("b", buyer.token) as bh:
        made = await sh.post("/p2p/offers", json=offer)
        assert made.status_code == 200, made.text
        take = await bh.post(f"/p2p/offers/{made.json()['id']}/take", json={"amount": "4"})
        assert take.status_code == 200, take.text
        path = f"/p2p/trades/{take.json()['id']}"
        assert (await bh.post(path + "/paid", json={})).status_code == 200
        settler = exchange.procs["settler"]
        settler.send_signal(signal.SIGSTOP)
        try:
            release = asyncio.create_task(sh.post(path + "/release", json={}))
            await asyncio.sleep(0.3)
            assert not release.done()  # waiting for the buyer's credit
        finally:
            settler.send_signal(signal.SIGCONT)
        answer = await release
        assert answer.status_code == 200 and answer.json()["status"] == "RELEASED", answer.text
        got = {b["asset"]: b for b in (await bh.get("/balances")).json()}
        assert got["USD"]["total"] == "4.00000000"


async def test_history_reads_wait_for_the_drain(exchange: Exchange) -> None:
    """Closed orders and fills come from PostgreSQL, which the drain fills after the
    engine answered; with the drain paused, the reads wait for it (api.catchup)."""
    market, _base, seller, buyer = await seller_and_buyer(exchange)
    async with exchange.http("a", seller.token) as http:
        maker = await http.post("/orders", json=limit(market, "sell", "1", "20"))
        assert maker.status_code == 200, maker.text
    drain = exchange.procs["drain"]
    async with exchange.http("b", buyer.token) as http:
        drain.send_signal(signal.SIGSTOP)
        try:
            taker = (await http.post("/orders", json=limit(market, "buy", "1", "20"))).json()
            assert taker["status"] == "FILLED"
            closed = asyncio.create_task(http.get("/orders", params={"status": "closed"}))
            fills = asyncio.create_task(http.get("/fills", params={"market": market}))
            await asyncio.sleep(0.3)
            assert not closed.done() and not fills.done()  # waiting for the drain
        finally:
            drain.send_signal(signal.SIGCONT)
        assert [o["id"] for o in (await closed).json()] == [taker["id"]]
        assert [f["order_id"] for f in (await fills).json()] == [taker["id"]]
