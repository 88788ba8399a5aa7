"""Amending an open order (``order.amend`` / ``PATCH /orders/{id}``): the amount goes
down in place, the order keeps its time priority, the freed hold is released, and a
``REPLACED`` push reaches the owner. Bad amends change nothing.

Real web nodes, settler and Valkey (the e2e session exchange)."""

from __future__ import annotations

from typing import Any

import pytest

from client.errors import HftxError
from tests.test_e2e_support import (
    Exchange,
    Trader,
    User,
    Ws,
    balances,
    connect,
    fund,
    limit,
    new_market,
    new_user,
)

pytest_plugins = ["tests.test_e2e_support"]


async def funded(exchange: Exchange, market: str, amounts: dict[str, str]) -> User:
    user = await new_user(exchange)
    base = market.split("-")[0]
    await fund(exchange, user, {base if k == "BASE" else k: v for k, v in amounts.items()})
    return user


def ok(answer: dict[str, Any]) -> Any:
    assert answer["status"] == 200, answer
    return answer["result"]


def refused(answer: dict[str, Any], status: int, code: str) -> None:
    assert answer["status"] == status, answer
    assert answer["error"]["code"] == code, answer


async def test_an_amended_order_keeps_its_place_and_frees_its_hold(
    exchange: Exchange, sockets: list[Ws]
) -> None:
    market = await new_market(exchange)
    first = await funded(exchange, market, {"USD": "100"})
    second = await funded(exchange, market, {"USD": "100"})
    seller = await funded(exchange, market, {"BASE": "10"})
    ws1 = await connect(exchange, sockets, first)
    ws2 = await connect(exchange, sockets, second)
    ws3 = await connect(exchange, sockets, seller)
    ok(await ws1.request("subscribe", {"channel": "orders"}))
    early = ok(await ws1.request("order.place", limit(market, "buy", "3", "10.00")))
    late = ok(await ws2.request("order.place", limit(market, "buy", "3", "10.00")))
    assert (await balances(exchange, first))["USD"]["locked"] == "30.00000000"

    amended = ok(await ws1.request("order.amend", {"order_id": early["id"], "amount": "1"}))
    assert amended["id"] == early["id"]
    assert (amended["amount"], amended["remaining"], amended["status"]) == ("1.000", "1.000", "NEW")
    # read-your-writes: the freed hold is back at once
    usd = (await balances(exchange, first))["USD"]
    assert (usd["free"], usd["locked"]) == ("90.00000000", "10.00000000")
    push = await ws1.wait_push(lambda p: p.get("exec_type") == "REPLACED")
    assert push["order"]["id"] == early["id"] and push["order"]["amount"] == "1.000"

    # the amended order is still first at its price: it fills before the later one
    taken = ok(await ws3.request("order.place", limit(market, "sell", "2", "10.00",
                                                      time_in_force="IOC")))  # fmt: skip
    makers = [(f["maker_order_id"], f["size"]) for f in taken["fills"]]
    assert makers == [(early["id"], "1.000"), (late["id"], "1.000")]
    async with exchange.http("a") as http:
        book = (await http.get(f"/markets/{market}/book")).json()
    assert book["bids"] == [["10.00", "2.000"]]


async def test_amend_by_client_order_id_over_http_and_partially_filled(
    exchange: Exchange, sockets: list[Ws]
) -> None:
    market = await new_market(exchange)
    maker = await funded(exchange, market, {"BASE": "10"})
    taker = await funded(exchange, market, {"USD": "100"})
    ws = await connect(exchange, sockets, taker)
    async with exchange.http("a", maker.token) as http:
        r = await http.post("/orders", json=limit(market, "sell", "5", "2.00",
                                                  client_order_id="ask-1"))  # fmt: skip
        assert r.status_code == 200, r.text
        order_id = r.json()["id"]
        ok(await ws.request("order.place", limit(market, "buy", "2", "2.00")))
        # 2 of 5 filled: the new amount must stay above 2
        r = await http.patch("/orders/client:ask-1", json={"amount": "2"})
        assert (r.status_code, r.json()["error"]["code"]) == (400, "INVALID_PARAM")
        r = await http.patch("/orders/client:ask-1", json={"amount": "4"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["id"], body["amount"], body["filled"], body["remaining"]) == (
            order_id,
            "4.000",
            "2.000",
            "2.000",
        )
        assert body["status"] == "PARTIALLY_FILLED"
        base = market.split("-")[0]
        held = (await http.get("/balances")).json()
        assert {b["asset"]: b["locked"] for b in held}[base] == "2.00000000"
        r = await http.get(f"/orders/{order_id}")
        assert (r.json()["amount"], r.json()["remaining"]) == ("4.000", "2.000")


async def test_bad_amends_are_refused_and_change_nothing(
    exchange: Exchange, sockets: list[Ws]
) -> None:
    market = await new_market(exchange)
    owner = await funded(exchange, market, {"USD": "100"})
    other = await funded(exchange, market, {"USD": "100"})
    ws = await connect(exchange, sockets, owner)
    ws_other = await connect(exchange, sockets, other)
    order = ok(await ws.request("order.place", limit(market, "buy", "3", "1.00",
                                                     client_order_id="b-1")))  # fmt: skip
    before = await balances(exchange, owner)
    oid = order["id"]
    cases: list[tuple[Ws, dict[str, Any], int, str]] = [
        (ws, {"order_id": oid, "amount": "3"}, 400, "INVALID_PARAM"),  # not below
        (ws, {"order_id": oid, "amount": "5"}, 400, "INVALID_PARAM"),  # up
        (ws, {"order_id": oid, "amount": "0"}, 400, "INVALID_PARAM"),
        (ws, {"order_id": oid, "amount": "-1"}, 400, "INVALID_PARAM"),
        (ws, {"order_id": oid, "amount": "1.0005"}, 400, "BAD_PRECISION"),
        (ws, {"order_id": oid, "amount": 1.5}, 400, "INVALID_PARAM"),  # a JSON float
        (ws, {"order_id": oid}, 400, "INVALID_PARAM"),
        (ws, {"amount": "1"}, 400, "INVALID_PARAM"),
        (ws, {"order_id": oid, "client_order_id": "b-1", "amount": "1"}, 400, "INVALID_PARAM"),
        (ws, {"order_id": "nope", "amount": "1"}, 404, "UNKNOWN_ORDER"),
        (ws_other, {"order_id": oid, "amount": "1"}, 404, "UNKNOWN_ORDER"),
        (ws_other, {"client_order_id": "b-1", "amount": "1"}, 404, "UNKNOWN_ORDER"),
    ]
    for socket, params, status, code in cases:
        refused(await socket.request("order.amend", params), status, code)
    async with exchange.http("a", owner.token) as http:
        r = await http.patch(f"/orders/{oid}", json={"order_id": oid, "amount": "1"})
        assert (r.status_code, r.json()["error"]["code"]) == (400, "INVALID_PARAM")
        r = await http.patch(f"/orders/{oid}", content=b"[1]")
        assert (r.status_code, r.json()["error"]["code"]) == (400, "INVALID_PARAM")
    async with exchange.http("a") as anonymous:
        r = await anonymous.patch(f"/orders/{oid}", json={"amount": "1"})
        assert r.status_code == 401
    now = ok(await ws.request("order.get", {"order_id": oid}))
    assert (now["amount"], now["status"]) == ("3.000", "NEW")
    assert await balances(exchange, owner) == before

    ok(await ws.request("order.cancel", {"order_id": oid}))
    refused(await ws.request("order.amend", {"order_id": oid, "amount": "1"}), 404, "UNKNOWN_ORDER")


async def test_the_python_client_amends_over_http_and_websocket(
    exchange: Exchange, trader: Trader
) -> None:
    market = await new_market(exchange)
    client = await trader("a", {"USD": "100"})
    first = await client.create_order(market, "buy", "limit", "4", "1.00", client_order_id="c1")
    amended = await client.amend_order(first["id"], "3")
    assert (amended["amount"], amended["remaining"]) == ("3.000", "3.000")
    amended = await client.amend_order(None, "2", client_order_id="c1")
    assert amended["amount"] == "2.000"
    amended = await client.ws_amend_order(first["id"], "1.5")
    assert amended["amount"] == "1.500"
    amended = await client.ws_amend_order(None, "1", client_order_id="c1")
    assert amended["amount"] == "1.000"
    assert (await client.fetch_balance())["USD"]["locked"] == "1.00000000"
    with pytest.raises(HftxError) as refused:
        await client.amend_order(first["id"], "1")
    assert (refused.value.code, refused.value.status) == ("INVALID_PARAM", 400)


async def test_amend_is_a_partial_cancel_for_market_status(
    exchange: Exchange, sockets: list[Ws]
) -> None:
    market = await new_market(exchange, min_size="0.010")
    owner = await funded(exchange, market, {"USD": "100"})
    ws = await connect(exchange, sockets, owner)
    order = ok(await ws.request("order.place", limit(market, "buy", "0.050", "1.00")))
    # below min_size is allowed: what is left of a partly canceled order
    amended = ok(await ws.request("order.amend", {"order_id": order["id"], "amount": "0.005"}))
    assert amended["amount"] == "0.005"
    async with exchange.admin() as admin:
        for status in ("CANCEL_ONLY", "HALT"):
            r = await admin.post(f"/admin/markets/{market}/status", json={"status": status})
            assert r.status_code == 200, r.text
            answer = await ws.request("order.amend", {"order_id": order["id"], "amount": "0.004"})
            if status == "CANCEL_ONLY":
                assert ok(answer)["amount"] == "0.004"
            else:
                refused(answer, 400, "MARKET_NOT_TRADING")
    assert ok(await ws.request("order.get", {"order_id": order["id"]}))["amount"] == "0.004"
