"""Fifth black-box acceptance pass over /work/shared/PROTOCOL.md and docs/protocol.md:
what the first four passes leave out.

- A market buy by ``quote_amount`` that empties the book ends ``EXPIRED``
  (``NO_LIQUIDITY``) with what it filled, as every market order that finds no more
  liquidity; one whose budget is spent ends ``FILLED``.
- ``POST /admin/markets`` with an existing market's id reconfigures it but never
  reopens a halted market unless ``status`` is given.
- Wallet idempotency keys: the same id with another body is refused and moves
  nothing; transfer ids are per user, withdrawal ids exchange-wide.
- Fixed precision on a market whose grid is not the seeded one (quote scale 2, base
  scale 3, price increment 10): every price, size, cost, fee and balance string in
  answers, pushes, market data and history.
- A FOK market buy by amount is all or nothing within its price protection; a quote
  budget buys whole lots, below ``min_size`` too.
- 405 answers name the allowed methods; OPTIONS of an unknown path is 404.
- A malformed ``auth`` is 400 (socket kept), a bad token 401 and close 4401.
- ``markets: []`` on the ``orders`` channel is refused; a post-only rejection carries
  the REJECTED order; a market's status change shows and holds on every node at once;
  a market without trades has ``last_trade_id`` 0.

Raw ``Ws`` / ``httpx`` only; money compared as exact strings. Targets the e2e session
exchange, or a live one when ``HFTX_ACCEPT_URL`` is set.
"""

from __future__ import annotations

import re
import uuid
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
    maker_and_taker,
    new_market,
    new_user,
    unique,
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
    _, taker, mws, tws = await maker_and_taker(live, sockets, {base: "5"}, {"USD": "1000"})
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


async def test_a_fok_market_buy_its_price_protection_cannot_cover_fills_nothing(
    live: Exchange,
) -> None:
    """The budget of a market buy by amount is the cost of the asks it would take
    when placed, plus 5 %; self-trade prevention (``cancel_oldest``) removes the
    buyer's own cheap ask first, so the rest costs more than that budget. A FOK is
    all or nothing: it must not come back half filled."""
    market = await new_market(live)
    base = market.split("-")[0]
    buyer, seller = await new_user(live), await new_user(live)
    await fund(live, buyer, {base: "1", "USD": "1000"})
    await fund(live, seller, {base: "2"})
    own = await ok(live, buyer, "POST", "/orders", json=limit(market, "sell", "1", "10.00"))
    await ok(live, seller, "POST", "/orders", json=limit(market, "sell", "1", "10.00"))
    await ok(live, seller, "POST", "/orders", json=limit(market, "sell", "1", "20.00"))
    fok = await ok(live, buyer, "POST", "/orders", json={
        "market": market, "side": "buy", "type": "market", "amount": "2",
        "time_in_force": "FOK", "stp": "cancel_oldest",
    })  # fmt: skip
    assert (fok["status"], fok["filled"], fok["cost"], fok["fills"]) == (
        "EXPIRED", "0.000", "0.00000000", [],
    )  # fmt: skip
    book = await ok(live, None, "GET", f"/markets/{market}/book")
    assert book["asks"] == [["10.00", "2.000"], ["20.00", "1.000"]]  # nothing taken
    assert (await ok(live, buyer, "GET", f"/orders/{own['id']}"))["status"] == "NEW"
    usd = (await balance_rows(live, buyer))["USD"]
    assert (usd["free"], usd["locked"]) == ("1000.00000000", "0.00000000")


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


# -- wallets: idempotency keys ---------------------------------------------------------


async def test_an_idempotency_key_with_another_body_is_refused_and_moves_nothing(
    live: Exchange,
) -> None:
    payer, payee, other = await new_user(live), await new_user(live), await new_user(live)
    await fund(live, payer, {"USD": "100"})
    await fund(live, other, {"USD": "10"})
    to = {a["asset"]: a["address"] for a in await ok(live, payee, "GET", "/addresses")}
    back = {a["asset"]: a["address"] for a in await ok(live, payer, "GET", "/addresses")}
    tid, wid = unique("t-"), unique("w-")
    transfer = {"transfer_id": tid, "asset": "USD", "amount": "1", "to_address": to["USD"]}
    first = await ok(live, payer, "POST", "/transfers", json=transfer)
    assert (first["amount"], first["replay"]) == ("1.00000000", False)
    same = await ok(live, payer, "POST", "/transfers", json={**transfer, "amount": "1.000"})
    assert same == {**first, "replay": True}  # trailing zeros: the same amount
    for change in ({"amount": "2"}, {"asset": "BTC", "to_address": to["BTC"]}):
        refused(await call(live, payer, "POST", "/transfers", json={**transfer, **change}),
                400, "INVALID_PARAM")  # fmt: skip
    withdrawal = {"withdrawal_id": wid, "asset": "USD", "amount": "5", "address": "ext1abc"}
    w = await ok(live, payer, "POST", "/withdrawals", json=withdrawal)
    assert (w["status"], w["replay"]) == ("PENDING", False)
    for change in ({"amount": "6"}, {"address": "ext1xyz"}):
        refused(await call(live, payer, "POST", "/withdrawals", json={**withdrawal, **change}),
                400, "INVALID_PARAM")  # fmt: skip
    usd = (await balance_rows(live, payer))["USD"]
    assert (usd["free"], usd["locked"]) == ("94.00000000", "5.00000000")
    assert [x["withdrawal_id"] for x in await ok(live, payer, "GET", "/withdrawals")] == [wid]

    # transfer ids are per user; withdrawal ids are the exchange's (admins act by them)
    mine = await ok(live, other, "POST", "/transfers",
                    json={**transfer, "amount": "0.5", "to_address": back["USD"]})  # fmt: skip
    assert (mine["transfer_id"], mine["replay"]) == (tid, False)
    refused(await call(live, other, "POST", "/withdrawals", json={**withdrawal, "amount": "1"}),
            400, "INVALID_PARAM")  # fmt: skip
    assert await ok(live, other, "GET", "/withdrawals") == []
    usd = (await balance_rows(live, other))["USD"]
    assert (usd["free"], usd["locked"]) == ("9.50000000", "0.00000000")


# -- fixed precision on an unusual grid --------------------------------------------------


def decimals(text: str) -> int:
    assert re.fullmatch(r"0|[1-9][0-9]*(\.[0-9]+)?|0\.[0-9]+", text), text
    return len(text.split(".")[1]) if "." in text else 0


async def test_every_string_has_the_grids_or_the_assets_decimals(
    live: Exchange, sockets: list[Ws]
) -> None:
    """Quote scale 2, base scale 3, price increment 10 (no decimals), size 0.1: prices
    show 0 decimals, sizes 1, costs and quote fees 2, base fees and balances 3."""
    quote, base = "Q" + uuid.uuid4().hex[:6].upper(), "B" + uuid.uuid4().hex[:6].upper()
    for symbol, scale in ((quote, 2), (base, 3)):
        r = await admin_call(live, "POST", "/admin/assets", json={"symbol": symbol, "scale": scale})
        assert r.status_code == 200, r.text
    market = f"{base}-{quote}"
    r = await admin_call(live, "POST", "/admin/markets", json={
        "id": market, "base": base, "quote": quote, "price_increment": "10",
        "size_increment": "0.1", "min_size": "0.1", "maker_fee_bps": 10, "taker_fee_bps": 20,
    })  # fmt: skip
    assert r.status_code == 200, r.text
    assert (r.json()["price_increment"], r.json()["max_notional"]) == ("10", "90071992547409.91")
    maker, taker, mws, tws = await maker_and_taker(live, sockets, {base: "10"}, {quote: "1000"})
    for ws in (mws, tws):
        await ws_ok(ws, "subscribe", {"channel": "orders"})
        await ws_ok(ws, "subscribe", {"channel": "balances"})
    await ws_ok(tws, "subscribe", {"channel": "trades", "markets": [market]})
    await ws_ok(mws, "order.place", limit(market, "sell", "0.3", "120"))
    await ws_ok(mws, "order.place", limit(market, "sell", "0.7", "130"))
    taken = await ws_ok(tws, "order.place", {"market": market, "side": "buy", "type": "market",
                                             "quote_amount": "50.01"})  # fmt: skip

    price_d, size_d, q_d, b_d = 0, 1, 2, 3

    def check_order(o: Msg) -> None:
        for key, want in (("amount", size_d), ("filled", size_d), ("remaining", size_d),
                          ("cost", q_d), ("price", price_d), ("average", price_d),
                          ("quote_amount", q_d)):  # fmt: skip
            if o.get(key) is not None:
                assert decimals(o[key]) == want, (key, o)

    check_order(taken)
    assert (taken["filled"], taken["cost"], taken["average"]) == ("0.4", "49.00", "122")
    assert [(f["price"], f["size"], f["fee"], f["fee_asset"]) for f in taken["fills"]] == [
        ("120", "0.3", "0.001", base), ("130", "0.1", "0.001", base),
    ]  # fmt: skip
    pushes = [await ws.wait_push(lambda m: m.get("channel") == "orders"
                                 and m["exec_type"] == "TRADE") for ws in (mws, tws)]  # fmt: skip
    for push in pushes:
        check_order(push["order"])
        assert decimals(push["last_price"]) == price_d and decimals(push["last_size"]) == size_d
        assert decimals(push["fee"]) == (q_d if push["fee_asset"] == quote else b_d), push
    maker_push = pushes[0]
    assert (maker_push["liquidity"], maker_push["fee"], maker_push["fee_asset"]) == (
        "maker", "0.04", quote,  # 10 bps of 36.00 = 0.036, rounded up to the cent
    )  # fmt: skip
    trade = await tws.wait_push(lambda m: m.get("channel") == "trades")
    assert (trade["price"], trade["size"]) == ("120", "0.3")
    for ws, asset, scale in ((tws, base, b_d), (mws, quote, q_d)):
        push = await ws.wait_push(lambda m, a=asset: m.get("channel") == "balances"
                                  and m["asset"] == a)  # fmt: skip
        assert all(decimals(push[k]) == scale for k in ("free", "locked", "total")), push
    rows = await balance_rows(live, taker)
    assert (rows[base]["total"], rows[quote]["total"]) == ("0.398", "951.00")
    assert (await balance_rows(live, maker))[quote]["total"] == "48.94"  # 49.00 - 0.04 - 0.02

    book = await ok(live, None, "GET", f"/markets/{market}/book")
    assert book["asks"] == [["130", "0.6"]] and book["bids"] == []
    ticker = await ok(live, None, "GET", f"/markets/{market}/ticker")
    assert (ticker["last"], ticker["best_ask"], ticker["best_ask_size"], ticker["volume_24h"]) == (
        "130", "130", "0.6", "0.4",
    )  # fmt: skip
    trades = await ok(live, None, "GET", f"/markets/{market}/trades")
    assert [(t["price"], t["size"]) for t in trades] == [("130", "0.1"), ("120", "0.3")]
    fills = await ok(live, taker, "GET", "/fills", params={"market": market})
    assert [(f["price"], f["size"], f["cost"], f["fee"]) for f in fills] == [
        ("130", "0.1", "13.00", "0.001"), ("120", "0.3", "36.00", "0.001"),
    ]  # fmt: skip
    candles = await ok(live, None, "GET", f"/markets/{market}/candles")
    assert [(c["open"], c["close"], c["volume"], c["quote_volume"]) for c in candles] == [
        ("120", "130", "0.4", "49.00"),
    ]  # fmt: skip
    history = await ok(live, taker, "GET", "/orders", params={"status": "closed"})
    assert history == [{k: v for k, v in taken.items() if k != "fills"}]
    assert D(taken["cost"]) == sum(D(f["cost"]) for f in fills)


# -- HTTP: methods ---------------------------------------------------------------------


async def test_every_405_names_the_allowed_methods_and_options_finds_no_unknown_route(
    live: Exchange,
) -> None:
    async with httpx.AsyncClient(base_url=live.url("a"), timeout=20) as http:
        for path in ("/api/v1/nope", "/api/v1/markets/BTC-USD/nope"):
            r = await http.options(path)
            refused(r, 404, "NOT_FOUND")  # not a 405: there is no such route
        for method, path, allowed in (
            ("OPTIONS", "/api/v1/time", {"GET", "HEAD"}),
            ("OPTIONS", "/api/v1/orders", {"GET", "HEAD", "POST", "DELETE"}),
            ("POST", "/healthz", {"GET", "HEAD"}),
            ("DELETE", "/readyz", {"GET", "HEAD"}),
        ):
            r = await http.request(method, path)
            refused(r, 405, "METHOD_NOT_ALLOWED")
            assert set(r.headers["allow"].split(", ")) == allowed, (method, path, r.headers)


# -- WebSocket: auth -------------------------------------------------------------------


async def test_a_malformed_auth_is_invalid_param_and_a_bad_token_closes_4401(
    live: Exchange, sockets: list[Ws]
) -> None:
    user = await new_user(live)
    ws = await Ws.connect(live.ws_url())
    sockets.append(ws)
    for params in ({}, {"token": 5}, {"token": user.token, "extra": 1}, [user.token]):
        answer = await ws.request("auth", params)
        assert (answer["status"], answer["error"]["code"]) == (400, "INVALID_PARAM"), params
    assert (await ws.request("auth", {"token": user.token}))["status"] == 200
    assert (await ws.request("ping"))["status"] == 200
    bad = await Ws.connect(live.ws_url())
    sockets.append(bad)
    answer = await bad.request("auth", {"token": "not.a.token"})
    assert (answer["status"], answer["error"]["code"]) == (401, "UNAUTHORIZED")
    assert (await bad.closed)[0] == 4401


# -- WebSocket: the orders channel's filter ------------------------------------------


async def test_an_empty_markets_filter_on_the_orders_channel_is_refused_and_changes_nothing(
    live: Exchange, sockets: list[Ws]
) -> None:
    """``markets: []`` is no filter to widen to every market (subscribe) nor a reason
    to end the channel (unsubscribe): it is refused and the subscription stays as it
    was."""
    first, second = await new_market(live), await new_market(live)
    user = await new_user(live)
    await fund(live, user, {"USD": "100"})
    ws = await connect(live, sockets, user)
    assert await ws_ok(ws, "subscribe", {"channel": "orders", "markets": [first]}) == {
        "channel": "orders", "markets": [first],
    }  # fmt: skip
    for method in ("subscribe", "unsubscribe"):
        answer = await ws.request(method, {"channel": "orders", "markets": []})
        assert (answer["status"], answer["error"]["code"]) == (400, "INVALID_PARAM"), answer
    other = await ws_ok(ws, "order.place", limit(second, "buy", "1", "1.00"))
    mine = await ws_ok(ws, "order.place", limit(first, "buy", "1", "1.00"))
    push = await ws.wait_push(lambda m: m.get("channel") == "orders")
    assert push["order"]["id"] == mine["id"]  # still subscribed, still only to `first`
    assert not [m for m in ws.pushes if m.get("channel") == "orders"
                and m["order"]["id"] == other["id"]]  # fmt: skip


# -- post-only rejections ------------------------------------------------------------


async def test_a_post_only_rejection_carries_the_rejected_order_whose_client_id_is_used(
    live: Exchange, sockets: list[Ws]
) -> None:
    """The engine records a post-only order that would take as ``REJECTED`` (its push,
    ``GET /orders/{id}``): the 400 says which order that is, and its
    ``client_order_id`` is used like any other order's."""
    market = await new_market(live)
    base = market.split("-")[0]
    maker, taker = await new_user(live), await new_user(live)
    await fund(live, maker, {base: "5"})
    await fund(live, taker, {"USD": "100"})
    await ok(live, maker, "POST", "/orders", json=limit(market, "sell", "1", "10.00"))
    r = await call(live, taker, "POST", "/orders",
                   json=limit(market, "buy", "1", "10.00", post_only=True,
                              client_order_id="po-http"))  # fmt: skip
    refused(r, 400, "POST_ONLY_WOULD_TAKE")
    rejected = r.json()["error"]["order"]
    assert (rejected["status"], rejected["client_order_id"], rejected["remaining"]) == (
        "REJECTED", "po-http", "0.000",
    )  # fmt: skip
    assert await ok(live, taker, "GET", f"/orders/{rejected['id']}") == rejected
    assert await ok(live, taker, "GET", "/orders/client:po-http") == rejected
    again = await call(live, taker, "POST", "/orders",
                       json=limit(market, "buy", "1", "9.00", post_only=True,
                                  client_order_id="po-http"))  # fmt: skip
    refused(again, 409, "DUPLICATE_CLIENT_ORDER_ID")
    assert again.json()["error"]["order"] == rejected

    ws = await connect(live, sockets, taker)
    answer = await ws.request("order.place", limit(market, "buy", "1", "10.00", post_only=True,
                                                   client_order_id="po-ws"))  # fmt: skip
    assert (answer["status"], answer["error"]["code"]) == (400, "POST_ONLY_WOULD_TAKE"), answer
    assert (answer["error"]["order"]["status"], answer["error"]["order"]["client_order_id"]) == (
        "REJECTED", "po-ws",
    )  # fmt: skip
    usd = (await balance_rows(live, taker))["USD"]
    assert (usd["free"], usd["locked"]) == ("100.00000000", "0.00000000")


# -- market status across nodes ------------------------------------------------------


async def test_a_market_reopened_on_one_node_takes_orders_on_another_at_once(
    live: Exchange,
) -> None:
    """Node b has just seen the market halted; once node a's admin call reopens it,
    node b must not refuse orders with a status it remembers from before."""
    market = await new_market(live)
    user = await new_user(live)
    await fund(live, user, {"USD": "100"})
    status = f"/admin/markets/{market}/status"
    for _ in range(3):  # each round: halted, seen halted on b, reopened on a, placed on b
        r = await admin_call(live, "POST", status, json={"status": "HALT"})
        assert r.status_code == 200, r.text
        async with live.http("b", user.token) as b:
            refused(await b.post("/orders", json=limit(market, "buy", "1", "1")),
                    400, "MARKET_NOT_TRADING")  # fmt: skip
            r = await admin_call(live, "POST", status, json={"status": "TRADING"})
            assert r.status_code == 200 and r.json()["status"] == "TRADING", r.text
            placed = await b.post("/orders", json=limit(market, "buy", "1", "1"))
            assert placed.status_code == 200 and placed.json()["status"] == "NEW", placed.text


async def test_a_status_change_on_one_node_shows_on_another_at_once(live: Exchange) -> None:
    """``GET /markets/{id}`` on node b right after node a's admin call shows the new
    status, as ``GET /markets`` does (no copy of the registry a second old)."""
    market = await new_market(live)
    status = f"/admin/markets/{market}/status"
    async with live.http("b") as b:
        for new in ("HALT", "CANCEL_ONLY", "TRADING", "HALT", "TRADING"):
            assert (await b.get(f"/markets/{market}")).status_code == 200  # b has a copy
            r = await admin_call(live, "POST", status, json={"status": new})
            assert r.status_code == 200, r.text
            shown = (await b.get(f"/markets/{market}")).json()
            listed = {m["id"]: m for m in (await b.get("/markets")).json()}[market]
            assert shown["status"] == listed["status"] == new, (new, shown, listed)


async def test_a_quote_budget_market_buy_buys_whole_lots_below_min_size_too(
    live: Exchange,
) -> None:
    market = await new_market(live, min_size="0.010")
    base = market.split("-")[0]
    maker, taker = await new_user(live), await new_user(live)
    await fund(live, maker, {base: "1"})
    await fund(live, taker, {"USD": "10"})
    await ok(live, maker, "POST", "/orders", json=limit(market, "sell", "1", "10.00"))
    refused(await call(live, taker, "POST", "/orders", json={
        "market": market, "side": "buy", "type": "market", "amount": "0.002"}),
        400, "INVALID_PARAM")  # fmt: skip
    small = {"market": market, "side": "buy", "type": "market", "quote_amount": "0.025"}
    order = await ok(live, taker, "POST", "/orders", json=small)
    assert (order["status"], order["filled"], order["cost"]) == ("FILLED", "0.002", "0.02000000")
    tiny = await ok(live, taker, "POST", "/orders", json={**small, "quote_amount": "0.009"})
    assert (tiny["status"], tiny["filled"], tiny["fills"]) == ("EXPIRED", "0.000", [])


async def test_a_market_without_trades_has_null_prices_and_trade_id_0(
    live: Exchange, sockets: list[Ws]
) -> None:
    market = await new_market(live)
    ticker = await ok(live, None, "GET", f"/markets/{market}/ticker")
    assert (ticker["last"], ticker["open_24h"], ticker["best_bid"], ticker["best_ask"]) == (
        None, None, None, None,
    )  # fmt: skip
    assert (ticker["last_trade_id"], ticker["volume_24h"]) == (0, "0.000")
    ws = await connect(live, sockets, await new_user(live))
    await ws_ok(ws, "subscribe", {"channel": "heartbeat", "markets": [market]})
    beat = await ws.wait_push(lambda m: m.get("channel") == "heartbeat")
    assert (beat["market"], beat["last_trade_id"]) == (market, 0)
