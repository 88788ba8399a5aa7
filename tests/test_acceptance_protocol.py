"""Black-box acceptance of /work/shared/PROTOCOL.md: the running exchange, driven only
through its public HTTP and WebSocket interfaces, field sets checked exactly.

Runs against the e2e session exchange (``tests.test_e2e_support``), or against an
exchange already running when ``HFTX_ACCEPT_URL`` is set (``HFTX_ACCEPT_ADMIN_EMAIL``
and ``HFTX_ACCEPT_ADMIN_PASSWORD`` name its admin; its rate limits must be raised as
the e2e fixture does). Every test isolates itself with fresh users and markets.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import zlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest

from api.tokens import Tokens
from ops.processes import free_port
from tests.test_e2e_support import (
    PASSWORD,
    Exchange,
    Ws,
    _spawn,
    acceptance_target,
    eventually,
    fund,
    limit,
    new_market,
    new_user,
    unique,
)

pytest_plugins = ["tests.test_e2e_support"]

ORDER_FIELDS = {
    "id",
    "client_order_id",
    "market",
    "side",
    "type",
    "time_in_force",
    "post_only",
    "price",
    "amount",
    "filled",
    "remaining",
    "cost",
    "average",
    "status",
    "created_ts",
    "updated_ts",
}
ORDER_ADDITIONS = {"quote_amount"}  # docs/protocol.md
FILL_FIELDS = {"trade_id", "price", "size", "fee", "fee_asset", "maker_order_id", "liquidity"}
TRADE_PUSH = {
    "channel",
    "type",
    "market",
    "trade_id",
    "price",
    "size",
    "taker_side",
    "maker_order_id",
    "taker_order_id",
    "seq",
    "ts",
}
TICKER_PUSH = {
    "channel",
    "type",
    "market",
    "best_bid",
    "best_bid_size",
    "best_ask",
    "best_ask_size",
    "last",
    "last_trade_id",
    "volume_24h",
    "open_24h",
    "high_24h",
    "low_24h",
    "seq",
    "ts",
}
HEARTBEAT_PUSH = {"channel", "type", "market", "seq", "last_trade_id", "ts"}
SNAPSHOT_PUSH = {"channel", "type", "market", "seq", "bids", "asks", "checksum", "ts"}
UPDATE_PUSH = SNAPSHOT_PUSH | {"first_seq"}
ORDERS_PUSH = {"channel", "type", "market", "exec_type", "order", "ts"}
TRADE_EXTRAS = {"trade_id", "last_price", "last_size", "liquidity", "fee", "fee_asset"}
BALANCE_FIELDS = {"asset", "free", "locked", "total"}
SIDES = ("asks", "bids")
MARKET_FIELDS = {
    "id",
    "base",
    "quote",
    "price_increment",
    "size_increment",
    "min_size",
    "status",
    "maker_fee_bps",
    "taker_fee_bps",
}


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Exchange:
    """The exchange under test: ``HFTX_ACCEPT_URL`` or the e2e session exchange."""
    return acceptance_target(request)


# -- helpers -------------------------------------------------------------------------


def checksum(asks: list[list[str]], bids: list[list[str]]) -> int:
    """PROTOCOL.md's rule, written independently of the node's and the client's code."""
    text = ""
    for price, size in [*asks[:10], *bids[:10]]:
        text += price.replace(".", "").lstrip("0") + size.replace(".", "").lstrip("0")
    return zlib.crc32(text.encode()) & 0xFFFFFFFF


def best_first(levels: dict[str, str], descending: bool) -> list[list[str]]:
    """A local book side as wire levels, best first (prices compared as decimals)."""
    ordered = sorted(levels.items(), key=lambda kv: Decimal(kv[0]), reverse=descending)
    return [[price, size] for price, size in ordered]


def push_of(channel: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    """A matcher of pushes of ``channel`` whose ``fields`` have the given values."""

    def match(m: dict[str, Any]) -> bool:
        return m.get("channel") == channel and all(m.get(k) == v for k, v in fields.items())

    return match


def book_update_after(seq: int) -> Callable[[dict[str, Any]], bool]:
    def match(m: dict[str, Any]) -> bool:
        return m.get("channel") == "book" and m.get("type") == "update" and m["seq"] > seq

    return match


def assert_order(order: dict[str, Any]) -> None:
    """The order object's exact field set and value types."""
    assert set(order) >= ORDER_FIELDS and set(order) - ORDER_FIELDS <= ORDER_ADDITIONS, order
    assert isinstance(order["id"], str) and order["id"].isdigit()
    for key in ("amount", "filled", "remaining", "cost"):
        assert isinstance(order[key], str), (key, order)
    for key in ("price", "average", "client_order_id"):
        assert order[key] is None or isinstance(order[key], str), (key, order)
    assert isinstance(order["post_only"], bool)
    assert order["side"] in ("buy", "sell") and order["type"] in ("limit", "market")
    assert order["time_in_force"] in ("GTC", "IOC", "FOK")
    assert order["status"] in (
        "NEW",
        "PARTIALLY_FILLED",
        "FILLED",
        "CANCELED",
        "REJECTED",
        "EXPIRED",
    )
    assert isinstance(order["created_ts"], int) and isinstance(order["updated_ts"], int)
    assert order["updated_ts"] >= order["created_ts"] > 1_600_000_000_000


def assert_placed(result: dict[str, Any]) -> None:
    """An ``order.place`` / ``POST /orders`` result: the order object plus ``fills``."""
    assert_order({k: v for k, v in result.items() if k != "fills"})
    assert isinstance(result["fills"], list)
    for f in result["fills"]:
        assert set(f) == FILL_FIELDS, f
        assert isinstance(f["trade_id"], int) and f["liquidity"] in ("maker", "taker")


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["error"]["code"] == code and isinstance(body["error"]["message"], str), body
    return dict(body["error"])


def assert_ws_error(answer: dict[str, Any], status: int, code: str) -> None:
    assert answer["status"] == status and answer["error"]["code"] == code, answer
    assert isinstance(answer["error"]["message"], str)


async def place(ws: Ws, params: dict[str, Any]) -> dict[str, Any]:
    answer = await ws.request("order.place", params)
    assert answer["status"] == 200, answer
    assert set(answer) == {"id", "status", "result"}
    assert_placed(answer["result"])
    return dict(answer["result"])


async def traders(target: Exchange, market: str, base_amount: str = "100", usd: str = "100000"):
    """Two funded users with an authenticated socket each (subscribed to nothing)."""
    base = market.split("-")[0]
    maker, taker = await new_user(target), await new_user(target)
    await fund(target, maker, {base: base_amount, "USD": usd})
    await fund(target, taker, {base: base_amount, "USD": usd})
    return (
        maker,
        taker,
        await Ws.connect(target.ws_url(), maker.token),
        await Ws.connect(target.ws_url("b"), taker.token),
    )


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


# -- authentication ------------------------------------------------------------------


async def test_signup_and_login_answer_exactly_the_protocol_fields(target: Exchange) -> None:
    email = f"{unique('acc')}@accept.hftx.dev"
    async with target.http() as http:
        r = await http.post("/auth/signup", json={"email": email, "password": PASSWORD})
        assert r.status_code == 201 and set(r.json()) == {"user_id"}, r.text
        user_id = r.json()["user_id"]
        assert isinstance(user_id, str)
        r = await http.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200 and set(r.json()) == {
            "access_token",
            "token_type",
            "expires_in",
        }, r.text
        body = r.json()
        assert body["token_type"] == "bearer" and isinstance(body["expires_in"], int)
        claims = jwt_claims(body["access_token"])
        assert claims["sub"] == user_id and claims["role"] == "user"
        assert isinstance(claims["exp"], int)
        assert_error(
            await http.post("/auth/login", json={"email": email, "password": "wrong-pass"}),
            401,
            "UNAUTHORIZED",
        )
        assert_error(await http.get("/balances"), 401, "UNAUTHORIZED")
        bad = {"Authorization": "Bearer not.a.token"}
        assert_error(await http.get("/orders", headers=bad), 401, "UNAUTHORIZED")
    async with target.admin() as admin:
        admin_claims = jwt_claims(str(admin.headers["Authorization"]).split()[1])
        assert admin_claims["role"] == "admin"


async def test_admin_routes_answer_403_forbidden_to_users(target: Exchange) -> None:
    user = await new_user(target)
    async with target.http("a", user.token) as http:
        calls = [
            http.post(
                "/admin/deposits",
                json={"deposit_id": "d1", "address": "x", "asset": "USD", "amount": "1"},
            ),
            http.post("/admin/withdrawals/w1/complete"),
            http.post("/admin/withdrawals/w1/reject"),
            http.post("/admin/assets", json={"symbol": "ZZZ", "scale": 8}),
            http.post("/admin/markets", json={"id": "ZZZ-USD"}),
            http.post("/admin/markets/BTC-USD/status", json={"status": "HALT"}),
            http.get("/admin/users"),
        ]
        for answer in await asyncio.gather(*calls):
            assert_error(answer, 403, "FORBIDDEN")
    async with target.http("a") as anonymous:
        assert_error(await anonymous.get("/admin/users"), 401, "UNAUTHORIZED")
    async with httpx.AsyncClient(base_url=target.url()) as root:
        ws = await Ws.connect(target.ws_url(), user.token)
        # the market is untouched by the refused status change
        markets = {m["id"]: m for m in (await root.get("/api/v1/markets")).json()}
        assert markets["BTC-USD"]["status"] == "TRADING"
        await ws.close()


# -- WebSocket envelope --------------------------------------------------------------


async def test_ws_envelope_ids_and_answers(target: Exchange) -> None:
    user = await new_user(target)
    ws = await Ws.connect(target.ws_url())
    early = await ws.request("ping")
    assert_ws_error(early, 401, "UNAUTHORIZED")
    auth = await ws.request("auth", {"token": user.token}, id="auth-1")
    assert auth["id"] == "auth-1" and auth["status"] == 200
    assert auth["result"]["user_id"] == user.user_id and auth["result"]["role"] == "user"
    expires_at = auth["result"]["expires_at"]  # a timestamp: integer milliseconds
    assert isinstance(expires_at, int) and expires_at == jwt_claims(user.token)["exp"] * 1000
    answer = await ws.request("ping", id=7)
    assert set(answer) == {"id", "status", "result"} and answer["id"] == 7
    assert isinstance(answer["result"]["ts"], int)
    longest = "x" * 36
    answer = await ws.request("ping", id=longest)
    assert answer["id"] == longest and answer["status"] == 200
    answer = await ws.request("ping", {}, id=0)
    assert answer["id"] == 0 and answer["status"] == 200
    for bad_id in ("y" * 37, "", 1.5, True, None, [1], {"a": 1}):
        await ws.send({"id": bad_id, "method": "ping"})
    answers = await eventually(lambda: _settled(ws.unmatched, 7), timeout=5)
    for a in answers:
        assert a["id"] is None and a["status"] == 400 and a["error"]["code"] == "INVALID_PARAM"
    assert_ws_error(await ws.request("no.such.method"), 400, "INVALID_PARAM")
    assert_ws_error(await ws.request("ping", {"extra": 1}), 400, "INVALID_PARAM")
    await ws.send("not json")
    answer = await eventually(lambda: _settled(ws.unmatched, 8), timeout=5)
    assert answer[-1]["id"] is None and answer[-1]["error"]["code"] == "INVALID_PARAM"
    assert (await ws.request("ping"))["status"] == 200  # the socket survived all of it
    await ws.close()


async def _settled(items: list[dict[str, Any]], count: int) -> list[dict[str, Any]] | None:
    return list(items) if len(items) >= count else None


async def test_failed_auth_closes_4401_and_oversized_frame_1009(target: Exchange) -> None:
    ws = await Ws.connect(target.ws_url())
    answer = await ws.request("auth", {"token": "forged"})
    assert_ws_error(answer, 401, "UNAUTHORIZED")
    assert (await asyncio.wait_for(ws.closed, 5))[0] == 4401
    user = await new_user(target)
    ws = await Ws.connect(target.ws_url(), user.token)
    await ws.send({"id": 1, "method": "ping", "params": {"pad": "x" * 70_000}})
    assert (await asyncio.wait_for(ws.closed, 5))[0] == 1009
    ws = await Ws.connect(target.ws_url())
    for _ in range(5):
        await ws.send({"id": 1, "method": "ping"})
    assert (await asyncio.wait_for(ws.closed, 5))[0] == 4401


async def test_a_socket_closes_4401_when_its_token_expires_unless_reauthed(
    target: Exchange,
) -> None:
    if not target.env:
        pytest.skip("needs the e2e exchange's signing key")
    user = await new_user(target)
    short, _ = Tokens(target.env["HFTX_JWT_SECRET"], ttl=2).issue(user.user_id, "user", 0)
    expiring = await Ws.connect(target.ws_url(), short)
    extended = await Ws.connect(target.ws_url(), short)
    answer = await extended.request("auth", {"token": user.token})
    assert answer["status"] == 200 and answer["result"]["expires_at"] > (time.time() + 60) * 1000
    assert (await asyncio.wait_for(expiring.closed, 6))[0] == 4401
    assert (await extended.request("ping"))["status"] == 200
    await extended.close()


# -- orders over WebSocket -----------------------------------------------------------


async def test_order_lifecycle_over_ws_with_private_pushes(target: Exchange) -> None:
    market = await new_market(target)
    user = await new_user(target)
    await fund(target, user, {"USD": "1000"})
    ws = await Ws.connect(target.ws_url(), user.token)
    for channel in ("orders", "balances"):
        answer = await ws.request("subscribe", {"channel": channel})
        assert answer["status"] == 200 and answer["result"]["channel"] == channel
    order = await place(ws, limit(market, "buy", "2", "10.5", client_order_id="A.b:c-1_"))
    assert {
        k: order[k]
        for k in (
            "client_order_id",
            "market",
            "side",
            "type",
            "time_in_force",
            "post_only",
            "price",
            "amount",
            "filled",
            "remaining",
            "cost",
            "average",
            "status",
            "fills",
        )
    } == {
        "client_order_id": "A.b:c-1_",
        "market": market,
        "side": "buy",
        "type": "limit",
        "time_in_force": "GTC",
        "post_only": False,
        "price": "10.50",
        "amount": "2.000",
        "filled": "0.000",
        "remaining": "2.000",
        "cost": "0.00000000",
        "average": None,
        "status": "NEW",
        "fills": [],
    }
    push = await ws.wait_push(lambda m: m["channel"] == "orders")
    assert set(push) == ORDERS_PUSH and "id" not in push
    assert push["type"] == "update" and push["exec_type"] == "NEW" and push["market"] == market
    assert_order(push["order"])
    assert push["order"]["id"] == order["id"] and push["order"]["status"] == "NEW"
    usd = await ws.wait_push(lambda m: m["channel"] == "balances" and m["asset"] == "USD")
    assert set(usd) == {"channel", *BALANCE_FIELDS}
    assert (usd["free"], usd["locked"], usd["total"]) == (
        "979.00000000",
        "21.00000000",
        "1000.00000000",
    )
    balances = await ws.request("balances.get")
    assert balances["status"] == 200
    for b in balances["result"]:
        assert set(b) == BALANCE_FIELDS
    assert {b["asset"]: b["locked"] for b in balances["result"]}["USD"] == "21.00000000"

    dup = await ws.request(
        "order.place", limit(market, "buy", "1", "9", client_order_id="A.b:c-1_")
    )
    assert_ws_error(dup, 409, "DUPLICATE_CLIENT_ORDER_ID")
    assert dup["error"]["order"]["id"] == order["id"]

    second = await place(ws, limit(market, "buy", "1", "9"))
    assert second["client_order_id"] is None
    assert int(second["id"]) > int(order["id"])
    opened = await ws.request("orders.open")
    assert [o["id"] for o in opened["result"]] == [order["id"], second["id"]]
    for o in opened["result"]:
        assert_order(o)
    filtered = await ws.request("orders.open", {"market": market})
    assert [o["id"] for o in filtered["result"]] == [order["id"], second["id"]]
    assert (await ws.request("orders.open", {"market": "BTC-USD"}))["result"] == []

    canceled = await ws.request("order.cancel", {"client_order_id": "A.b:c-1_"})
    assert canceled["status"] == 200
    assert_order(canceled["result"])
    assert canceled["result"]["id"] == order["id"] and canceled["result"]["status"] == "CANCELED"
    push = await ws.wait_push(lambda m: m["channel"] == "orders" and m["exec_type"] == "CANCELED")
    assert push["order"]["id"] == order["id"] and push["order"]["status"] == "CANCELED"
    assert_ws_error(
        await ws.request("order.cancel", {"order_id": order["id"]}), 404, "UNKNOWN_ORDER"
    )
    assert_ws_error(
        await ws.request("order.cancel", {"client_order_id": "never-used"}), 404, "UNKNOWN_ORDER"
    )
    assert_ws_error(await ws.request("order.cancel", {}), 400, "INVALID_PARAM")
    by_id = await ws.request("order.cancel", {"order_id": second["id"]})
    assert by_id["status"] == 200 and by_id["result"]["status"] == "CANCELED"

    await place(ws, limit(market, "buy", "1", "1"))
    await place(ws, limit(market, "buy", "1", "2"))
    other = await ws.request("order.cancel_all", {"market": "BTC-USD"})
    assert other["status"] == 200 and other["result"] == []
    all_of_market = await ws.request("order.cancel_all", {"market": market})
    assert {o["status"] for o in all_of_market["result"]} == {"CANCELED"}
    assert len(all_of_market["result"]) == 2
    await place(ws, limit(market, "buy", "1", "3"))
    everything = await ws.request("order.cancel_all")
    assert [o["price"] for o in everything["result"]] == ["3.00"]
    assert (await ws.request("orders.open"))["result"] == []

    async def released() -> bool:
        result = (await ws.request("balances.get"))["result"]
        return {b["asset"]: b for b in result}["USD"]["locked"] == "0.00000000"

    await eventually(released)
    final = await ws.wait_push(
        lambda m: m["channel"] == "balances" and m["asset"] == "USD" and m["locked"] == "0.00000000"
    )
    assert final["free"] == final["total"] == "1000.00000000"
    await ws.close()


async def test_a_trade_pushes_fills_trades_ticker_orders_and_balances(target: Exchange) -> None:
    market = await new_market(target)
    base = market.split("-")[0]
    maker, _, mws, tws = await traders(target, market)
    watcher = await Ws.connect(target.ws_url("b"), maker.token)
    for channel in ("trades", "ticker"):
        answer = await watcher.request("subscribe", {"channel": channel, "markets": [market]})
        assert answer["status"] == 200
        assert answer["result"] == {"channel": channel, "markets": [market]}
    first_ticker = await watcher.wait_push(lambda m: m["channel"] == "ticker")
    assert set(first_ticker) == TICKER_PUSH and first_ticker["type"] == "ticker"
    assert first_ticker["last"] is None and first_ticker["best_bid"] is None
    assert first_ticker["volume_24h"] == "0.000"  # a size: the market's precision, zero too
    for ws in (mws, tws):
        assert (await ws.request("subscribe", {"channel": "orders"}))["status"] == 200
        assert (await ws.request("subscribe", {"channel": "balances"}))["status"] == 200

    resting = await place(mws, limit(market, "sell", "0.4", "100", client_order_id="m1"))
    resting2 = await place(mws, limit(market, "sell", "1", "101"))
    taken = await place(tws, limit(market, "buy", "1.2", "101", client_order_id="t1"))
    assert taken["status"] == "FILLED"
    assert (taken["filled"], taken["remaining"], taken["cost"], taken["average"]) == (
        "1.200",
        "0.000",
        "120.80000000",
        "100.66",
    )
    assert taken["fills"] == [
        {
            "trade_id": 1,
            "price": "100.00",
            "size": "0.400",
            "fee": "0.00080000",
            "fee_asset": base,
            "maker_order_id": resting["id"],
            "liquidity": "taker",
        },
        {
            "trade_id": 2,
            "price": "101.00",
            "size": "0.800",
            "fee": "0.00160000",
            "fee_asset": base,
            "maker_order_id": resting2["id"],
            "liquidity": "taker",
        },
    ]

    trades = [await watcher.wait_push(push_of("trades", trade_id=i)) for i in (1, 2)]
    expected = [("100.00", "0.400", resting["id"]), ("101.00", "0.800", resting2["id"])]
    for t, (price, size, maker_id) in zip(trades, expected, strict=True):
        assert set(t) == TRADE_PUSH, t
        assert (t["type"], t["market"], t["price"], t["size"], t["taker_side"]) == (
            "trade",
            market,
            price,
            size,
            "buy",
        )
        assert t["maker_order_id"] == maker_id and t["taker_order_id"] == taken["id"]
    assert trades[1]["seq"] > trades[0]["seq"] and trades[1]["ts"] >= trades[0]["ts"]

    ticker = await watcher.wait_push(lambda m: m["channel"] == "ticker" and m["last"] == "101.00")
    assert set(ticker) == TICKER_PUSH
    assert (ticker["best_ask"], ticker["best_ask_size"], ticker["best_bid"]) == (
        "101.00",
        "0.200",
        None,
    )
    assert ticker["volume_24h"] == "1.200" and ticker["last_trade_id"] == 2
    assert (ticker["open_24h"], ticker["high_24h"], ticker["low_24h"]) == (
        "100.00",
        "101.00",
        "100.00",
    )

    fill = await mws.wait_push(
        lambda m: m["channel"] == "orders" and m["exec_type"] == "TRADE" and m["trade_id"] == 1
    )
    assert set(fill) == ORDERS_PUSH | TRADE_EXTRAS, fill
    assert (fill["last_price"], fill["last_size"], fill["liquidity"]) == (
        "100.00",
        "0.400",
        "maker",
    )
    assert (fill["fee"], fill["fee_asset"]) == ("0.04000000", "USD")  # 10 bps of 40, in quote
    assert fill["order"]["id"] == resting["id"] and fill["order"]["status"] == "FILLED"
    assert_order(fill["order"])
    taker_fills = [await tws.wait_push(push_of("orders", trade_id=i)) for i in (1, 2)]
    assert [f["liquidity"] for f in taker_fills] == ["taker", "taker"]
    assert [f["fee"] for f in taker_fills] == ["0.00080000", "0.00160000"]
    assert taker_fills[1]["order"]["filled"] == "1.200"

    # the maker: sold 0.4 @ 100 (fee 0.04) and 0.8 @ 101 (fee 0.0808 -> rounded up)
    async def maker_settled() -> bool:
        result = {b["asset"]: b for b in (await mws.request("balances.get"))["result"]}
        return result["USD"]["total"] == "100120.67920000"

    await eventually(maker_settled)
    await mws.wait_push(
        lambda m: (
            m["channel"] == "balances" and m["asset"] == "USD" and m["total"] == "100120.67920000"
        )
    )
    async with target.http("a") as http:
        book = (await http.get(f"/markets/{market}/book", params={"depth": 5})).json()
        assert book["asks"] == [["101.00", "0.200"]] and book["bids"] == []
        public = (await http.get(f"/markets/{market}/trades", params={"limit": 10})).json()
        assert [t["trade_id"] for t in public] == [2, 1]
        assert set(public[0]) >= TRADE_PUSH - {"channel", "type", "market"}
    for ws in (mws, tws, watcher):
        await ws.close()


# -- time in force, post-only, market orders, self-trade prevention --------------------


async def test_ioc_fok_post_only(target: Exchange) -> None:
    market = await new_market(target)
    _, _, mws, tws = await traders(target, market)
    await place(mws, limit(market, "sell", "1", "50"))
    fok = await place(tws, limit(market, "buy", "2", "50", time_in_force="FOK"))
    assert (fok["status"], fok["filled"], fok["fills"], fok["time_in_force"]) == (
        "EXPIRED",
        "0.000",
        [],
        "FOK",
    )
    ioc = await place(tws, limit(market, "buy", "0.4", "49", time_in_force="IOC"))
    assert (ioc["status"], ioc["filled"]) == ("EXPIRED", "0.000")
    partial = await place(tws, limit(market, "buy", "0.6", "50", time_in_force="IOC"))
    assert (partial["status"], partial["filled"]) == ("FILLED", "0.600")
    rest = await place(tws, limit(market, "buy", "1", "50", time_in_force="IOC"))
    # remaining is the quantity still open (FIX's LeavesQty): 0 once the order is done
    assert (rest["status"], rest["filled"], rest["remaining"]) == ("EXPIRED", "0.400", "0.000")
    fok_ok = await place(mws, limit(market, "sell", "1", "60"))
    full = await place(tws, limit(market, "buy", "1", "60", time_in_force="FOK"))
    assert full["status"] == "FILLED" and full["fills"][0]["maker_order_id"] == fok_ok["id"]

    await place(mws, limit(market, "sell", "1", "70"))

    async def nothing_locked() -> list[dict[str, Any]] | None:
        result: list[dict[str, Any]] = (await tws.request("balances.get"))["result"]
        return result if {Decimal(b["locked"]) for b in result} == {0} else None  # any scale

    before = await eventually(nothing_locked)
    would = await tws.request("order.place", limit(market, "buy", "1", "70", post_only=True))
    assert_ws_error(would, 400, "POST_ONLY_WOULD_TAKE")
    assert (await tws.request("orders.open"))["result"] == []
    assert (await tws.request("balances.get"))["result"] == before
    maker_only = await place(tws, limit(market, "buy", "1", "69.99", post_only=True))
    assert maker_only["post_only"] is True and maker_only["status"] == "NEW"
    for ws in (mws, tws):
        await ws.close()


async def test_market_orders_by_amount_and_by_quote_amount(target: Exchange) -> None:
    market = await new_market(target)
    base = market.split("-")[0]
    _, _, mws, tws = await traders(target, market)
    await place(mws, limit(market, "sell", "1", "10"))
    await place(mws, limit(market, "sell", "1", "20"))
    by_amount = await place(
        tws, {"market": market, "side": "buy", "type": "market", "amount": "1.5"}
    )
    assert (by_amount["type"], by_amount["price"], by_amount["status"]) == (
        "market",
        None,
        "FILLED",
    )
    assert (by_amount["filled"], by_amount["cost"], by_amount["average"]) == (
        "1.500",
        "20.00000000",
        "13.33",
    )
    assert by_amount["time_in_force"] == "IOC"
    assert by_amount["quote_amount"] is None  # the engine's internal budget is not shown
    by_quote = await place(
        tws, {"market": market, "side": "buy", "type": "market", "quote_amount": "5"}
    )
    assert (by_quote["filled"], by_quote["cost"], by_quote["status"]) == (
        "0.250",
        "5.00000000",
        "FILLED",
    )
    assert by_quote["fills"][0]["fee_asset"] == base
    assert by_quote["quote_amount"] == "5.00000000"
    fok = await place(
        tws,
        {"market": market, "side": "buy", "type": "market", "amount": "0.25",
         "time_in_force": "FOK"},
    )  # fmt: skip
    assert (fok["time_in_force"], fok["status"], fok["filled"]) == ("FOK", "FILLED", "0.250")
    sell = await place(mws, limit(market, "buy", "2", "5"))
    market_sell = await place(
        tws, {"market": market, "side": "sell", "type": "market", "amount": "3"}
    )
    assert (market_sell["filled"], market_sell["status"]) == ("2.000", "EXPIRED")
    assert market_sell["fills"][0]["maker_order_id"] == sell["id"]
    assert market_sell["fills"][0]["fee_asset"] == "USD"
    refused = await tws.request(
        "order.place",
        {
            "market": market,
            "side": "buy",
            "type": "market",
            "amount": "1",
            "price": "10",
        },
    )
    assert_ws_error(refused, 400, "INVALID_PARAM")
    for ws in (mws, tws):
        await ws.close()


@pytest.mark.parametrize(
    ("stp", "incoming", "resting"),
    [
        ("cancel_newest", "CANCELED", "NEW"),
        ("cancel_oldest", "NEW", "CANCELED"),
        ("cancel_both", "CANCELED", "CANCELED"),
    ],
)
async def test_self_trade_prevention(
    target: Exchange, stp: str, incoming: str, resting: str
) -> None:
    market = await new_market(target)
    base = market.split("-")[0]
    user = await new_user(target)
    await fund(target, user, {base: "10", "USD": "1000"})
    ws = await Ws.connect(target.ws_url(), user.token)
    old = await place(ws, limit(market, "sell", "1", "10"))
    new = await place(ws, limit(market, "buy", "1", "10", stp=stp))
    assert new["fills"] == [] and new["status"] == incoming
    async with target.http("a", user.token) as http:
        assert (await http.get(f"/orders/{old['id']}")).json()["status"] == resting
    await ws.close()


# -- book ------------------------------------------------------------------------------


async def test_book_snapshot_updates_and_checksums(target: Exchange) -> None:
    market = await new_market(target)
    maker, _, mws, tws = await traders(target, market)
    for price in ("100", "101", "100.5"):
        await place(mws, limit(market, "sell", "1.5", price))
    for price in ("99", "98.25", "0.01"):
        await place(tws, limit(market, "buy", "0.125", price))
    watcher = await Ws.connect(target.ws_url("b"), maker.token)
    answer = await watcher.request(
        "subscribe", {"channel": "book", "markets": [market], "depth": 50}
    )
    assert answer["status"] == 200
    assert answer["result"] == {"channel": "book", "markets": [market], "depth": 50}
    snap = await watcher.wait_push(lambda m: m["channel"] == "book")
    assert set(snap) == SNAPSHOT_PUSH and snap["type"] == "snapshot" and snap["market"] == market
    assert snap["asks"] == [["100.00", "1.500"], ["100.50", "1.500"], ["101.00", "1.500"]]
    assert snap["bids"] == [["99.00", "0.125"], ["98.25", "0.125"], ["0.01", "0.125"]]
    assert snap["checksum"] == checksum(snap["asks"], snap["bids"])
    book: dict[str, dict[str, str]] = {side: {p: s for p, s in snap[side]} for side in SIDES}
    seq = snap["seq"]

    ids = [(await place(mws, limit(market, "sell", "0.5", f"{102 + i}")))["id"] for i in range(12)]
    await place(tws, limit(market, "buy", "2", "100.50"))  # takes 100.00 and part of 100.50
    await mws.request("order.cancel", {"order_id": ids[0]})
    await place(tws, limit(market, "buy", "0.001", "99"))
    async with target.http("a") as http:
        final = (await http.get(f"/markets/{market}/book", params={"depth": 50})).json()

    while seq < final["seq"]:
        update = await watcher.wait_push(book_update_after(seq))
        assert set(update) == UPDATE_PUSH and update["market"] == market
        assert update["first_seq"] == seq + 1 and update["seq"] >= update["first_seq"]
        for side in ("asks", "bids"):
            for price, size in update[side]:
                if size == "0":
                    book[side].pop(price)
                else:
                    book[side][price] = size
        seq = update["seq"]
        asks, bids = best_first(book["asks"], False), best_first(book["bids"], True)
        assert update["checksum"] == checksum(asks, bids), update
    assert (best_first(book["asks"], False), best_first(book["bids"], True)) == (
        final["asks"],
        final["bids"],
    )
    assert final["asks"][0] == ["100.50", "1.000"] and final["bids"][0] == ["99.00", "0.126"]
    assert final["checksum"] == checksum(final["asks"], final["bids"])
    assert len(final["asks"]) == 13  # the checksum covered only 10 of them

    shallow = await watcher.request(
        "subscribe", {"channel": "book", "markets": [market], "depth": 2}
    )
    assert shallow["status"] == 200
    snap2 = await watcher.wait_push(
        lambda m: m["channel"] == "book" and m["type"] == "snapshot" and len(m["asks"]) == 2
    )
    assert snap2["checksum"] == checksum(snap2["asks"], snap2["bids"])
    async with target.http("a") as http:
        depth1 = (await http.get(f"/markets/{market}/book", params={"depth": 1})).json()
        assert (depth1["asks"], depth1["bids"]) == ([["100.50", "1.000"]], [["99.00", "0.126"]])
        assert_error(
            await http.get(f"/markets/{market}/book", params={"depth": 0}), 400, "INVALID_PARAM"
        )
    unsub = await watcher.request("unsubscribe", {"channel": "book", "markets": [market]})
    assert unsub["status"] == 200 and unsub["result"]["channel"] == "book"
    for ws in (mws, tws, watcher):
        await ws.close()


async def test_heartbeat_only_when_subscribed_once_a_second(target: Exchange) -> None:
    market = await new_market(target)
    user = await new_user(target)
    ws = await Ws.connect(target.ws_url(), user.token)
    await asyncio.sleep(1.2)
    assert ws.pushes == []
    answer = await ws.request("subscribe", {"channel": "heartbeat", "markets": [market]})
    assert answer["status"] == 200
    first = await ws.wait_push(lambda m: m["channel"] == "heartbeat", timeout=3)
    second = await ws.wait_push(lambda m: m["channel"] == "heartbeat" and m["ts"] > first["ts"], 3)
    for hb in (first, second):
        assert set(hb) == HEARTBEAT_PUSH and hb["type"] == "heartbeat" and hb["market"] == market
        assert hb["last_trade_id"] == 0 and isinstance(hb["seq"], int)
    assert 500 <= second["ts"] - first["ts"] <= 2000
    await ws.close()


# -- HTTP ------------------------------------------------------------------------------


async def test_every_error_code_over_http_with_its_status(target: Exchange) -> None:
    market = await new_market(target)
    user = await new_user(target)
    await fund(target, user, {"USD": "100"})
    async with target.http("a", user.token) as http:
        cases = [
            (limit(market, "buy", 1, "10"), "INVALID_PARAM"),
            (limit(market, "buy", "1", 10.5), "INVALID_PARAM"),
            (limit(market, "buy", "-1", "10"), "INVALID_PARAM"),
            (limit(market, "buy", "1", "10", time_in_force="GTD"), "INVALID_PARAM"),
            (limit(market, "buy", "1", "10", client_order_id="bad id"), "INVALID_PARAM"),
            (limit(market, "buy", "1", "10", stp="cancel_all"), "INVALID_PARAM"),
            (limit(market, "buy", "1", "10", surprise=1), "INVALID_PARAM"),
            (limit(market, "buy", "1.0001", "10"), "BAD_PRECISION"),
            (limit(market, "buy", "1", "10.001"), "BAD_PRECISION"),
            (limit("NOPE-USD", "buy", "1", "10"), "UNKNOWN_MARKET"),
            (limit(market, "buy", "100", "10"), "INSUFFICIENT_FUNDS"),
            (limit(market, "sell", "1", "10"), "INSUFFICIENT_FUNDS"),
        ]
        for body, code in cases:
            assert_error(await http.post("/orders", json=body), 400, code)
        assert_error(await http.get("/orders/123"), 404, "UNKNOWN_ORDER")
        assert_error(await http.delete("/orders/123"), 404, "UNKNOWN_ORDER")
        assert_error(await http.get("/orders/not-a-number"), 404, "UNKNOWN_ORDER")
        usd = {b["asset"]: b for b in (await http.get("/balances")).json()}["USD"]
        assert (usd["free"], usd["locked"]) == ("100.00000000", "0.00000000")
        r = await http.post("/orders", json=limit(market, "buy", "1", "10", client_order_id="d"))
        assert r.status_code == 200
        dup = assert_error(
            await http.post("/orders", json=limit(market, "buy", "2", "9", client_order_id="d")),
            409,
            "DUPLICATE_CLIENT_ORDER_ID",
        )
        assert dup["order"] == {**{k: v for k, v in r.json().items() if k != "fills"}}
    async with target.admin() as admin:
        r = await admin.post(f"/admin/markets/{market}/status", json={"status": "HALT"})
        assert r.status_code == 200 and r.json()["status"] == "HALT"
        assert set(r.json()) >= MARKET_FIELDS
    async with target.http("a", user.token) as http:
        assert_error(
            await http.post("/orders", json=limit(market, "buy", "1", "5")),
            400,
            "MARKET_NOT_TRADING",
        )
    async with target.admin() as admin:
        r = await admin.post(f"/admin/markets/{market}/status", json={"status": "CANCEL_ONLY"})
        assert r.json()["status"] == "CANCEL_ONLY"
    async with target.http("a", user.token) as http:
        assert_error(
            await http.post("/orders", json=limit(market, "buy", "1", "5")),
            400,
            "MARKET_NOT_TRADING",
        )
        assert (await http.delete("/orders", params={"market": market})).status_code == 200
    async with target.admin() as admin:
        assert_error(
            await admin.post(f"/admin/markets/{market}/status", json={"status": "OPEN"}),
            400,
            "INVALID_PARAM",
        )
    async with target.http("a") as anonymous:
        email = f"{unique('rl')}@accept.hftx.dev"
        await anonymous.post("/auth/signup", json={"email": email, "password": PASSWORD})
        codes = [
            (
                await anonymous.post("/auth/login", json={"email": email, "password": "wrongpass1"})
            ).status_code
            for _ in range(7)
        ]
        assert codes[:5] == [401] * 5 and codes[-1] == 429
        r = await anonymous.post("/auth/login", json={"email": email, "password": "wrongpass1"})
        assert_error(r, 429, "RATE_LIMITED")


async def test_http_orders_history_and_market_data_routes(target: Exchange) -> None:
    market = await new_market(target)
    base = market.split("-")[0]
    maker, taker = await new_user(target), await new_user(target)
    await fund(target, maker, {base: "10"})
    await fund(target, taker, {"USD": "1000"})
    async with target.http("a", maker.token) as mh, target.http("b", taker.token) as th:
        r = await mh.post("/orders", json=limit(market, "sell", "2", "20", client_order_id="s1"))
        assert r.status_code == 200
        assert_placed(r.json())
        sell = r.json()
        r = await th.post("/orders", json=limit(market, "buy", "0.5", "20"))
        assert r.status_code == 200 and r.json()["fills"][0]["maker_order_id"] == sell["id"]
        buy = r.json()
        rest = await th.post("/orders", json=limit(market, "buy", "1", "19"))
        opened = await th.get("/orders", params={"status": "open", "market": market})
        assert opened.status_code == 200 and [o["id"] for o in opened.json()] == [rest.json()["id"]]
        for o in opened.json():
            assert_order(o)
        assert (await th.get("/orders", params={"market": "BTC-USD"})).json() == []
        one = await mh.get(f"/orders/{sell['id']}")
        assert one.status_code == 200
        assert_order(one.json())
        assert (one.json()["status"], one.json()["filled"]) == ("PARTIALLY_FILLED", "0.500")
        assert_error(await th.get(f"/orders/{sell['id']}"), 404, "UNKNOWN_ORDER")

        async def fills_written() -> list[dict[str, Any]]:
            rows = (await th.get("/fills", params={"market": market})).json()
            return rows if rows else []

        fills = await eventually(fills_written)
        assert fills[0]["order_id"] == buy["id"] and fills[0]["price"] == "20.00"
        assert fills[0]["size"] == "0.500" and fills[0]["liquidity"] == "taker"
        cancel = await th.delete(f"/orders/{rest.json()['id']}")
        assert cancel.status_code == 200 and cancel.json()["status"] == "CANCELED"
        assert_order(cancel.json())
        all_canceled = await mh.delete("/orders", params={"market": market})
        assert [o["id"] for o in all_canceled.json()] == [sell["id"]]
        assert all_canceled.json()[0]["status"] == "CANCELED"
        assert (await mh.delete("/orders")).json() == []

        async def closed_in_history() -> bool:
            rows = (await mh.get("/orders", params={"status": "closed", "market": market})).json()
            return [o["id"] for o in rows] == [sell["id"]]

        await eventually(closed_in_history)
        assert_error(await mh.get("/orders", params={"status": "bogus"}), 400, "INVALID_PARAM")
    async with target.http("b") as public:
        ticker = (await public.get(f"/markets/{market}/ticker")).json()
        assert set(ticker) >= TICKER_PUSH - {"channel", "type"}
        assert (ticker["last"], ticker["best_bid"], ticker["best_ask"]) == ("20.00", None, None)
        assert ticker["volume_24h"] == "0.500"
        trades = (await public.get(f"/markets/{market}/trades", params={"limit": 1})).json()
        assert [t["trade_id"] for t in trades] == [1]

        async def candle() -> list[dict[str, Any]]:
            return list(
                (
                    await public.get(
                        f"/markets/{market}/candles", params={"interval": "1m", "limit": 5}
                    )
                ).json()
            )

        candles = await eventually(candle)
        assert (candles[0]["open"], candles[0]["volume"]) == ("20.00", "0.500")
        assert_error(
            await public.get(f"/markets/{market}/candles", params={"interval": "2m"}),
            400,
            "INVALID_PARAM",
        )
        assert_error(await public.get("/markets/NOPE-USD/ticker"), 400, "UNKNOWN_MARKET")
        assert_error(await public.get("/markets/NOPE-USD/trades"), 400, "UNKNOWN_MARKET")
        markets = (await public.get("/markets")).json()
        for m in markets:
            assert set(m) >= MARKET_FIELDS and m["status"] in ("TRADING", "HALT", "CANCEL_ONLY")
            assert isinstance(m["maker_fee_bps"], int)
        assert isinstance((await public.get("/time")).json()["ts"], int)
    async with httpx.AsyncClient(base_url=target.url()) as ops:
        assert (await ops.get("/healthz")).status_code == 200
        assert (await ops.get("/readyz")).status_code == 200
        assert (await ops.get("/metrics")).status_code == 200


async def test_unknown_routes_404_and_other_methods_405(target: Exchange) -> None:
    async with target.http("a") as http:
        assert_error(await http.get("/nope"), 404, "NOT_FOUND")
        r = await http.put("/orders")
        assert_error(r, 405, "METHOD_NOT_ALLOWED")
        assert set(r.headers["allow"].split(", ")) >= {"GET", "POST", "DELETE"}
        assert_error(await http.delete("/time"), 405, "METHOD_NOT_ALLOWED")
        assert_error(await http.post("/orders/1"), 405, "METHOD_NOT_ALLOWED")


async def test_wallets_and_admin_money_routes(target: Exchange) -> None:
    alice, bob = await new_user(target), await new_user(target)
    async with target.http("a", alice.token) as ah, target.http("a", bob.token) as bh:
        a_addr = (await ah.get("/addresses")).json()
        for row in a_addr:
            assert set(row) == {"asset", "address"}
        assert a_addr == (await ah.get("/addresses")).json()
        a_usd = {r["asset"]: r["address"] for r in a_addr}["USD"]
        b_usd = {r["asset"]: r["address"] for r in (await bh.get("/addresses")).json()}["USD"]
        assert a_usd != b_usd
        async with target.admin() as admin:
            dep = {"deposit_id": unique("dep"), "address": a_usd, "asset": "USD", "amount": "50"}
            first = await admin.post("/admin/deposits", json=dep)
            again = await admin.post("/admin/deposits", json=dep)
            assert first.status_code == again.status_code == 200
            assert first.json()["user_id"] == alice.user_id
            assert_error(
                await admin.post(
                    "/admin/deposits", json={**dep, "deposit_id": unique("d"), "amount": 1.5}
                ),
                400,
                "INVALID_PARAM",
            )
        t = {"transfer_id": unique("t"), "asset": "USD", "amount": "20", "to_address": b_usd}
        r1, r2 = await ah.post("/transfers", json=t), await ah.post("/transfers", json=t)
        assert r1.status_code == r2.status_code == 200
        assert_error(
            await ah.post("/transfers", json={**t, "transfer_id": unique("t"), "amount": "31"}),
            400,
            "INSUFFICIENT_FUNDS",
        )

        async def bob_has(total: str) -> bool:
            rows = {b["asset"]: b["total"] for b in (await bh.get("/balances")).json()}
            return rows.get("USD") == total  # no row until the settler credits him

        await eventually(lambda: bob_has("20.00000000"))
        w = {"withdrawal_id": unique("w"), "asset": "USD", "amount": "10", "address": "ext1"}
        assert (await ah.post("/withdrawals", json=w)).status_code == 200
        w2 = {**w, "withdrawal_id": unique("w"), "amount": "5"}
        assert (await ah.post("/withdrawals", json=w2)).status_code == 200
        usd = {b["asset"]: b for b in (await ah.get("/balances")).json()}["USD"]
        assert (usd["free"], usd["locked"], usd["total"]) == (
            "15.00000000",
            "15.00000000",
            "30.00000000",
        )
        listed = (await ah.get("/withdrawals")).json()
        assert [x["withdrawal_id"] for x in listed] == [w["withdrawal_id"], w2["withdrawal_id"]]
        assert {x["status"] for x in listed} == {"PENDING"}
        async with target.admin() as admin:
            done = await admin.post(f"/admin/withdrawals/{w['withdrawal_id']}/complete")
            assert done.status_code == 200 and done.json()["status"] == "COMPLETED"
            back = await admin.post(f"/admin/withdrawals/{w2['withdrawal_id']}/reject")
            assert back.status_code == 200 and back.json()["status"] == "REJECTED"
            users = (await admin.get("/admin/users", params={"limit": 1000})).json()
            assert any(u["user_id"] == alice.user_id for u in users)
            assert set(users[0]) == {"user_id", "email", "role", "created_ts"}
            ids = [int(u["user_id"]) for u in users]
            assert ids == sorted(ids)  # by id: numerically, paging with after= sees them all
            paged: list[int] = []
            while len(paged) < len(ids):
                after = paged[-1] if paged else 0
                page = (
                    await admin.get("/admin/users", params={"limit": 50, "after": after})
                ).json()
                assert page, paged
                paged += [int(u["user_id"]) for u in page]
            assert paged[: len(ids)] == ids

        async def settled() -> bool:
            b = {x["asset"]: x for x in (await ah.get("/balances")).json()}["USD"]
            return (b["free"], b["locked"], b["total"]) == (
                "20.00000000",
                "0.00000000",
                "20.00000000",
            )

        await eventually(settled)
        statuses = [x["status"] for x in (await ah.get("/withdrawals")).json()]
        assert statuses == ["COMPLETED", "REJECTED"]


async def test_admin_creates_assets_and_markets(target: Exchange) -> None:
    symbol = "A" + unique().upper()[:7]
    async with target.admin() as admin:
        assert_error(
            await admin.post("/admin/assets", json={"symbol": "a", "scale": 8}),
            400,
            "INVALID_PARAM",
        )
        assert_error(
            await admin.post("/admin/assets", json={"symbol": "ABCDEFGHIJK", "scale": 8}),
            400,
            "INVALID_PARAM",
        )
        r = await admin.post("/admin/assets", json={"symbol": symbol, "scale": 6})
        assert r.status_code == 200
        spec = {
            "id": f"{symbol}-USD",
            "base": symbol,
            "quote": "USD",
            "price_increment": "0.5",
            "size_increment": "0.01",
            "min_size": "0.1",
            "maker_fee_bps": 0,
            "taker_fee_bps": 5,
            "max_notional": "1000000",
        }
        r = await admin.post("/admin/markets", json=spec)
        assert r.status_code == 200, r.text
        made = r.json()
        assert set(made) >= MARKET_FIELDS and made["status"] == "TRADING"
        assert (made["price_increment"], made["size_increment"], made["min_size"]) == (
            "0.5",
            "0.01",
            "0.10",
        )
        assert_error(
            await admin.post("/admin/markets", json={**spec, "id": "NOPE-USD", "base": "NOPE"}),
            400,
            "INVALID_PARAM",
        )
    async with target.http("b") as public:
        ids = [m["id"] for m in (await public.get("/markets")).json()]
        assert f"{symbol}-USD" in ids
    user = await new_user(target)
    await fund(target, user, {"USD": "100"})
    ws = await Ws.connect(target.ws_url(), user.token)
    assert_ws_error(
        await ws.request("order.place", limit(f"{symbol}-USD", "buy", "0.05", "1")),
        400,
        "INVALID_PARAM",
    )
    ok = await place(ws, limit(f"{symbol}-USD", "buy", "0.1", "1.5"))
    assert (ok["price"], ok["amount"]) == ("1.5", "0.10")
    await ws.close()


async def test_websocket_errors_carry_the_http_statuses(target: Exchange) -> None:
    market = await new_market(target)
    user = await new_user(target)
    await fund(target, user, {"USD": "10"})
    ws = await Ws.connect(target.ws_url(), user.token)
    cases = [
        (limit(market, "buy", "1", "1.001"), 400, "BAD_PRECISION"),
        (limit("NOPE-USD", "buy", "1", "1"), 400, "UNKNOWN_MARKET"),
        (limit(market, "buy", "100", "1"), 400, "INSUFFICIENT_FUNDS"),
        ({**limit(market, "buy", "1", "1"), "amount": 1}, 400, "INVALID_PARAM"),
    ]
    for params, status, code in cases:
        assert_ws_error(await ws.request("order.place", params), status, code)
    assert_ws_error(await ws.request("subscribe", {"channel": "book"}), 400, "INVALID_PARAM")
    assert_ws_error(
        await ws.request("subscribe", {"channel": "nope", "markets": [market]}),
        400,
        "INVALID_PARAM",
    )
    assert_ws_error(
        await ws.request("subscribe", {"channel": "book", "markets": ["NOPE-USD"]}),
        400,
        "UNKNOWN_MARKET",
    )
    other = await new_user(target)
    assert_ws_error(await ws.request("auth", {"token": other.token}), 403, "FORBIDDEN")
    assert (await ws.request("ping"))["status"] == 200
    await ws.close()


async def test_notifications_channel_pushes_carry_no_request_id(target: Exchange) -> None:
    seller, buyer = await new_user(target), await new_user(target)
    await fund(target, seller, {"USD": "100"})
    sws = await Ws.connect(target.ws_url(), seller.token)
    answer = await sws.request("subscribe", {"channel": "notifications"})
    assert answer["status"] == 200 and answer["result"] == {"channel": "notifications"}
    async with target.http("a", seller.token) as sh, target.http("b", buyer.token) as bh:
        offer = await sh.post(
            "/p2p/offers",
            json={
                "side": "sell",
                "asset": "USD",
                "fiat": "EUR",
                "price": "0.9",
                "amount": "10",
                "min_amount": "1",
                "max_amount": "10",
                "payment_methods": ["SEPA"],
                "payment_window": 15,
            },
        )
        assert offer.status_code == 200, offer.text
        take = await bh.post(f"/p2p/offers/{offer.json()['id']}/take", json={"amount": "2"})
        assert take.status_code == 200, take.text
    note = await sws.wait_push(lambda m: m.get("channel") == "notifications")
    assert set(note) == {"channel", "notification_id", "kind", "message", "ref", "ts"}, note
    assert note["kind"] == "p2p.trade_opened" and note["ref"] == take.json()["id"]
    assert isinstance(note["ts"], int) and isinstance(note["message"], str)
    async with target.http("a", seller.token) as sh:
        inbox = (await sh.get("/notifications")).json()
    assert inbox[0]["id"] == note["notification_id"] and inbox[0]["kind"] == note["kind"]
    await sws.close()


# -- 5xx: outcome unknown ----------------------------------------------------------------


class StallingProxy:
    """A TCP proxy to Redis that can stop forwarding: a Redis that hangs (not refuses)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                await self.flowing.wait()
                dst.write(data)
                await dst.drain()
        finally:
            dst.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_a_request_stuck_on_redis_answers_503_and_is_found_by_client_order_id(
    target: Exchange,
) -> None:
    if not target.procs:
        pytest.skip("needs the e2e exchange (it starts a node of its own)")
    market = await new_market(target)
    user = await new_user(target)
    await fund(target, user, {"USD": "100"})
    redis = httpx.URL(target.redis_url.replace("redis://", "http://"))
    proxy = StallingProxy(redis.host, redis.port or 6379)
    env = {**target.env, "REDIS_URL": f"redis://127.0.0.1:{await proxy.start()}/0",
           "HFTX_REQUEST_TIMEOUT": "1"}  # fmt: skip
    port = free_port()
    proc = _spawn("stalled", ["-m", "api", "--port", str(port)], env, target.logs)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as node:

            async def ready() -> bool:
                assert proc.poll() is None, target.log_tail("stalled")
                with contextlib.suppress(httpx.HTTPError):
                    return (await node.get("/readyz")).status_code == 200
                return False

            await eventually(ready, timeout=60)
            ws = await Ws.connect(base.replace("http", "ws") + "/ws", user.token)
            proxy.flowing.clear()  # Redis hangs from now on
            started = time.monotonic()
            order = limit(market, "buy", "1", "10", client_order_id="stalled-1")
            answer = await ws.request("order.place", order, timeout=10)
            assert_ws_error(answer, 503, "UNAVAILABLE")
            bearer = {"Authorization": f"Bearer {user.token}"}
            r = await node.post(
                "/api/v1/orders", json={**order, "client_order_id": "stalled-2"}, headers=bearer
            )
            assert_error(r, 503, "UNAVAILABLE")
            assert time.monotonic() - started < 8
            proxy.flowing.set()
            # outcome unknown: look the orders up by client_order_id, then retry safely
            async with target.http("a", user.token) as http:
                for cid in ("stalled-1", "stalled-2"):
                    retry = await http.post("/orders", json={**order, "client_order_id": cid})
                    assert retry.status_code in (200, 409), retry.text
                opened = (await http.get("/orders", params={"market": market})).json()
                assert sorted(o["client_order_id"] for o in opened) == ["stalled-1", "stalled-2"]
            await ws.close()
    finally:
        proxy.flowing.set()
        proxy.close()
        proc.kill()
        proc.wait(10)
