"""Fifth black-box acceptance pass over /work/shared/PROTOCOL.md and docs/protocol.md:
what the first four passes leave out.

- A market buy by ``quote_amount`` that empties the book ends ``EXPIRED``
  (``NO_LIQUIDITY``) with what it filled, as every market order that finds no more
  liquidity; one whose budget is spent ends ``FILLED``.
- ``POST /admin/markets`` with an existing market's id reconfigures it but never
  reopens a halted market unless ``status`` is given.

Raw ``Ws`` / ``httpx`` only; money compared as exact strings. Targets the e2e session
exchange, or a live one when ``HFTX_ACCEPT_URL`` is set.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from tests.test_e2e_support import (
    Exchange,
    User,
    Ws,
    connect,
    fund,
    limit,
    new_market,
    new_user,
)

pytest_plugins = ["tests.test_e2e_support"]

Msg = dict[str, Any]
D = Decimal


async def call(live: Exchange, user: User | None, method: str, path: str,
               **kwargs: Any) -> httpx.Response:  # fmt: skip
    async with live.http("a", user.token if user else None) as http:
        return await http.request(method, path, **kwargs)


async def ok(live: Exchange, user: User | None, method: str, path: str, **kwargs: Any) -> Any:
    r = await call(live, user, method, path, **kwargs)
    assert r.status_code == 200, (method, path, r.status_code, r.text)
    return r.json()


async def admin_call(live: Exchange, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with live.admin() as admin:
        return await admin.request(method, path, **kwargs)


def refused(r: httpx.Response, status: int, code: str) -> None:
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text


async def ws_ok(ws: Ws, method: str, params: Any = None) -> Any:
    answer = await ws.request(method, params)
    assert answer["status"] == 200, (method, answer)
    return answer["result"]


async def balance_rows(live: Exchange, user: User) -> dict[str, Msg]:
    return {b["asset"]: b for b in await ok(live, user, "GET", "/balances")}


# -- market buys by quote_amount ---------------------------------------------------------


async def test_a_quote_budget_market_buy_that_empties_the_book_expires_with_what_it_filled(
    live: Exchange, sockets: list[Ws]
) -> None:
    market = await new_market(live)
    base = market.split("-")[0]
    maker, taker = await new_user(live), await new_user(live)
    await fund(live, maker, {base: "5"})
    await fund(live, taker, {"USD": "1000"})
    mws, tws = await connect(live, sockets, maker), await connect(live, sockets, taker)
    await ws_ok(tws, "subscribe", {"channel": "orders"})
    await ws_ok(mws, "order.place", limit(market, "sell", "0.5", "10.00"))

    # a budget of 100 USD meets 5 USD of asks: it takes them all, then finds no more
    order = await ws_ok(tws, "order.place", {"market": market, "side": "buy",
                                             "type": "market", "quote_amount": "100"})  # fmt: skip
    assert (order["status"], order["amount"], order["filled"], order["remaining"]) == (
        "EXPIRED", "0.500", "0.500", "0.000",
    )  # fmt: skip
    assert (order["cost"], order["quote_amount"], len(order["fills"])) == (
        "5.00000000", "100.00000000", 1,
    )  # fmt: skip
    push = await tws.wait_push(
        lambda m: m.get("channel") == "orders" and m["order"]["id"] == order["id"]
        and m["exec_type"] == "EXPIRED"
    )  # fmt: skip
    assert push["reason"] == "NO_LIQUIDITY" and push["order"]["filled"] == "0.500"
    got = await ok(live, taker, "GET", f"/orders/{order['id']}")
    assert (got["status"], got["filled"], got["cost"]) == ("EXPIRED", "0.500", "5.00000000")
    usd = (await balance_rows(live, taker))["USD"]
    assert (usd["free"], usd["locked"]) == ("995.00000000", "0.00000000")  # budget released

    # a budget the book can absorb: spent to within one lot (0.01 USD) -> FILLED
    await ws_ok(mws, "order.place", limit(market, "sell", "1", "10.00"))
    spend = {"market": market, "side": "buy", "type": "market", "quote_amount": "2.505"}
    order = await ws_ok(tws, "order.place", spend)
    assert (order["status"], order["amount"], order["filled"], order["cost"]) == (
        "FILLED", "0.250", "0.250", "2.50000000",
    )  # fmt: skip
    push = await tws.wait_push(
        lambda m: m.get("channel") == "orders" and m["order"]["id"] == order["id"]
        and m["order"]["status"] == "FILLED"
    )  # fmt: skip
    assert push["exec_type"] == "TRADE"


# -- admin: markets --------------------------------------------------------------------


async def test_resending_a_markets_spec_reconfigures_it_but_never_reopens_it(
    live: Exchange,
) -> None:
    market = await new_market(live)
    base = market.split("-")[0]
    spec = {"id": market, "base": base, "quote": "USD", "price_increment": "0.01",
            "size_increment": "0.001", "min_size": "0.001", "maker_fee_bps": 10,
            "taker_fee_bps": 20}  # fmt: skip
    user = await new_user(live)
    await fund(live, user, {"USD": "100"})
    r = await admin_call(live, "POST", f"/admin/markets/{market}/status", json={"status": "HALT"})
    assert r.status_code == 200 and r.json()["status"] == "HALT", r.text

    # the same spec again (an ops script retried, a fee change): still halted
    r = await admin_call(live, "POST", "/admin/markets", json={**spec, "taker_fee_bps": 30})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["taker_fee_bps"]) == ("HALT", 30)
    shown = await ok(live, None, "GET", f"/markets/{market}")
    assert (shown["status"], shown["taker_fee_bps"]) == ("HALT", 30)
    refused(await call(live, user, "POST", "/orders", json=limit(market, "buy", "1", "1")),
            400, "MARKET_NOT_TRADING")  # fmt: skip

    # the grid cannot change; a status given is applied
    r = await admin_call(live, "POST", "/admin/markets", json={**spec, "price_increment": "0.1"})
    refused(r, 400, "INVALID_PARAM")
    r = await admin_call(live, "POST", "/admin/markets", json={**spec, "status": "CANCEL_ONLY"})
    assert r.status_code == 200 and r.json()["status"] == "CANCEL_ONLY", r.text
    r = await admin_call(live, "POST", "/admin/markets", json={**spec, "status": "TRADING"})
    assert r.status_code == 200 and r.json()["status"] == "TRADING", r.text
    placed = await ok(live, user, "POST", "/orders", json=limit(market, "buy", "1", "1"))
    assert placed["status"] == "NEW"

    # a new market without status starts TRADING
    fresh = {**spec, "id": f"{base}-USDT", "quote": "USDT"}
    r = await admin_call(live, "POST", "/admin/markets", json=fresh)
    assert r.status_code == 200 and r.json()["status"] == "TRADING", r.text
