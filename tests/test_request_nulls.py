"""A JSON ``null`` in a request is a field not given, on every route and method.

Over a real web node (HTTP and WebSocket): an optional field sent as ``null`` takes
its default (``time_in_force`` GTC, ``post_only`` false, ``stp`` cancel_newest, an
unchanged offer field, ...), exactly as if it were left out; a required field sent
as ``null`` is ``INVALID_PARAM`` naming the field, and nothing changes.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.test_p2p_api_support import OFFER, Api, User, subscribed

pytest_plugins = ["tests.test_p2p_api_support"]

ORDER = {"market": "BTC-USD", "side": "buy", "type": "limit", "amount": "0.01", "price": "100"}
NULLS = {"time_in_force": None, "post_only": None, "stp": None, "client_order_id": None,
         "quote_amount": None}  # fmt: skip


def _same_order(a: dict[str, Any], b: dict[str, Any]) -> None:
    for key in ("market", "side", "type", "time_in_force", "post_only", "price", "amount",
                "client_order_id", "status"):  # fmt: skip
        assert a[key] == b[key], (key, a, b)


async def _admin(api: Api) -> User:
    await api.fund(await api.user(), "USD", "1")  # logs the admin in
    assert api.admin is not None
    return api.admin


async def test_null_optional_order_fields_are_defaults_over_http_and_websocket(api: Api) -> None:
    user = await api.user()
    await api.fund(user, "USD", "100")
    plain = await api.ok("POST", "/orders", user, ORDER)
    over_http = await api.ok("POST", "/orders", user, {**ORDER, **NULLS})
    _same_order(over_http, plain)
    assert (over_http["time_in_force"], over_http["post_only"]) == ("GTC", False)
    async with subscribed(api, [user], "orders") as (ws,):
        over_ws = await ws.ok("order.place", {**ORDER, **NULLS})
        _same_order(over_ws, plain)
        # amend and cancel name the order by one id: the other one null is not given
        amended = await ws.ok("order.amend", {"order_id": over_ws["id"], "client_order_id": None,
                                              "amount": "0.005"})  # fmt: skip
        assert amended["amount"] == "0.00500"
        canceled = await ws.ok("order.cancel", {"order_id": over_ws["id"], "client_order_id": None})
        assert canceled["status"] == "CANCELED"
        assert await ws.ok("orders.open", {"market": None}) == await ws.ok("orders.open", {})
        await ws.ok("subscribe", {"channel": "book", "markets": ["BTC-USD"], "depth": None})
    body = {"amount": "0.005", "order_id": None, "client_order_id": None}
    amended = await api.ok("PATCH", f"/orders/{plain['id']}", user, body)
    assert amended["amount"] == "0.00500"


async def test_a_null_required_field_is_invalid_param_naming_it(api: Api) -> None:
    user = await api.user()
    await api.fund(user, "USD", "100")
    before = await api.ok("GET", "/balances", user)
    for field in ("market", "side", "type"):
        message = await api.refused(400, "INVALID_PARAM", "POST", "/orders", user,
                                    {**ORDER, field: None})  # fmt: skip
        assert message == f"{field} is required"
    # amount and price are required by a limit order (the schema has them optional)
    message = await api.refused(400, "INVALID_PARAM", "POST", "/orders", user,
                                {**ORDER, "price": None})  # fmt: skip
    assert "price is required" in message
    transfer = {"transfer_id": uuid.uuid4().hex[:16], "asset": "USD", "amount": "1",
                "to_address": "hftx1nobody"}  # fmt: skip
    for field in transfer:
        message = await api.refused(400, "INVALID_PARAM", "POST", "/transfers", user,
                                    {**transfer, field: None})  # fmt: skip
        assert message == f"{field} is required"
    async with subscribed(api, [user], "balances") as (ws,):
        answer = await ws.rpc("withdrawals.create", {"withdrawal_id": "w1", "asset": "USD",
                                                      "amount": None, "address": "x"})  # fmt: skip
        assert (answer["status"], answer["error"]["code"]) == (400, "INVALID_PARAM")
        assert answer["error"]["message"] == "amount is required"
        answer = await ws.rpc("p2p.offer.create", {**OFFER, "payment_methods": None})
        assert answer["error"]["message"] == "payment_methods is required"
    assert await api.ok("GET", "/orders", user) == []
    assert await api.ok("GET", "/balances", user) == before


async def test_null_optional_fields_of_p2p_and_admin_bodies_are_not_given(api: Api) -> None:
    seller = await api.user()
    await api.fund(seller, "BTC", "2")
    offer = await api.ok("POST", "/p2p/offers", seller, {**OFFER, "request_id": None})
    edited = await api.ok("PATCH", f"/p2p/offers/{offer['id']}", seller,
                          {"status": None, "amount": "0.5", "price": None, "min_amount": None,
                           "max_amount": None, "payment_methods": None,
                           "payment_window": None, "request_id": None})  # fmt: skip
    assert edited["amount"] == "0.50000000"
    for key in ("status", "price", "min_amount", "max_amount", "payment_methods",
                "payment_window"):  # fmt: skip
        assert edited[key] == offer[key], key
    listed = await api.ok("GET", "/p2p/offers", None)
    assert [o["id"] for o in listed] == [offer["id"]]
    admin = await _admin(api)
    await api.ok("POST", "/admin/assets", admin, {"symbol": "NUL", "scale": 8})
    spec = {"id": "NUL-USD", "base": "NUL", "quote": "USD", "price_increment": "0.01",
            "size_increment": "0.001", "min_size": "0.001", "maker_fee_bps": 1,
            "taker_fee_bps": 2}  # fmt: skip
    created = await api.ok("POST", "/admin/markets", admin,
                           {**spec, "max_notional": None, "status": None})  # fmt: skip
    assert created["status"] == "TRADING"
    await api.ok("POST", "/admin/markets/NUL-USD/status", admin, {"status": "HALT"})
    again = await api.ok("POST", "/admin/markets", admin, {**spec, "status": None})
    assert again["status"] == "HALT"  # a re-sent spec with status null leaves it as it is
