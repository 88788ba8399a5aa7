"""P2P over the real web node (``api.app.create_app``, real Valkey and PostgreSQL):
HTTP ``/api/v1/p2p/...`` and ``/api/v1/notifications`` end to end with real users and
tokens, every refusal as PROTOCOL.md error bodies, and the ``p2p.*`` WebSocket
methods with their ``notifications`` pushes."""

from __future__ import annotations

from tests.test_p2p_api_support import OFFER, Api, subscribed
from workers.settler import Settler

pytest_plugins = ["tests.test_p2p_api_support"]


async def test_a_buyer_and_a_seller_complete_a_trade_over_http(api: Api) -> None:
    seller, buyer = await api.user(), await api.user()
    await api.fund(seller, "BTC", "2")
    offer = await api.ok("POST", "/p2p/offers", seller, {**OFFER, "request_id": "o-1"})
    assert (offer["status"], offer["amount"], offer["price"]) == ("OPEN", "1.00000000", "30000.10")
    assert await api.ok("POST", "/p2p/offers", seller, {**OFFER, "request_id": "o-1"}) == offer
    listed = await api.ok("GET", "/p2p/offers?side=sell&asset=BTC&fiat=USD", None)  # public
    assert [o["id"] for o in listed] == [offer["id"]]
    assert (await api.ok("GET", f"/p2p/offers/{offer['id']}", None))["owner"] == seller.id
    rows = await api.ok("GET", "/balances", seller)
    assert [(b["free"], b["locked"]) for b in rows if b["asset"] == "BTC"] == [
        ("1.00000000", "1.00000000")
    ]

    trade = await api.ok("POST", f"/p2p/offers/{offer['id']}/take", buyer,
                         {"amount": "0.25", "price": "30000.10"})  # fmt: skip
    assert (trade["status"], trade["amount"], trade["fiat_amount"]) == (
        "PENDING", "0.25000000", "7500.03"
    )  # fmt: skip
    assert (trade["seller"], trade["buyer"]) == (seller.id, buyer.id)
    path = f"/p2p/trades/{trade['id']}"
    assert await api.node.redis.exists(f"arq:job:p2p-expire:{trade['id']}")  # expiry scheduled
    msg = await api.ok("POST", path + "/messages", buyer, {"body": "sending now"})
    assert (msg["n"], msg["from"], msg["role"]) == (1, buyer.id, "buyer")
    assert (await api.ok("POST", path + "/paid", buyer, {}))["status"] == "PAID"
    done = await api.ok("POST", path + "/release", seller, {"request_id": "rel-1"})
    assert done["status"] == "RELEASED"
    assert await api.ok("POST", path + "/release", seller, {"request_id": "rel-1"}) == done
    await Settler(api.node.redis, instance="tests", publish=False).drain()
    assert await api.free(buyer) == "0.25000000"
    assert await api.free(seller) == "1.00000000"
    assert [t["id"] for t in await api.ok("GET", "/p2p/trades", buyer)] == [trade["id"]]
    assert (await api.ok("GET", path, seller))["status"] == "RELEASED"
    assert [m["body"] for m in await api.ok("GET", path + "/messages", seller)] == ["sending now"]
    kinds = [n["kind"] for n in await api.ok("GET", "/notifications?limit=10", buyer)]
    assert kinds == ["p2p.trade_released", "p2p.trade_paid", "p2p.trade_opened"]
    closed = await api.ok("POST", f"/p2p/offers/{offer['id']}/close", seller, {})
    assert (closed["status"], closed["filled"]) == ("CLOSED", "0.25000000")
    assert await api.free(seller) == "1.75000000"


async def test_every_refusal_is_a_protocol_error(api: Api) -> None:
    seller, buyer, other = await api.user(), await api.user(), await api.user()
    await api.fund(seller, "BTC", "1")
    await api.refused(401, "UNAUTHORIZED", "POST", "/p2p/offers", None, OFFER)
    await api.refused(400, "INSUFFICIENT_FUNDS", "POST", "/p2p/offers", seller,
                      {**OFFER, "amount": "5"})  # fmt: skip
    await api.refused(400, "BAD_PRECISION", "POST", "/p2p/offers", seller,
                      {**OFFER, "price": "30000.001"})  # fmt: skip
    await api.refused(400, "INVALID_PARAM", "POST", "/p2p/offers", seller, {**OFFER, "amount": 1.0})
    await api.refused(400, "INVALID_PARAM", "POST", "/p2p/offers", seller, {**OFFER, "x": 1})
    await api.refused(400, "INVALID_PARAM", "POST", "/p2p/offers", seller,
                      {**OFFER, "min_amount": "0.6"})  # fmt: skip
    offer = await api.ok("POST", "/p2p/offers", seller, OFFER)
    take = f"/p2p/offers/{offer['id']}/take"
    await api.refused(400, "INVALID_PARAM", "POST", take, seller, {"amount": "0.1"})  # own offer
    await api.refused(400, "INVALID_PARAM", "POST", take, buyer, {"amount": "0.001"})  # < min
    await api.refused(400, "INVALID_PARAM", "POST", take, buyer, {"amount": "0.6"})  # > max
    await api.refused(400, "INVALID_PARAM", "POST", take, buyer, {"amount": "0.1", "price": "1"})
    await api.refused(404, "UNKNOWN_ORDER", "POST", "/p2p/offers/123/take", buyer, {"amount": "1"})
    await api.refused(404, "UNKNOWN_ORDER", "GET", "/p2p/offers/abc", None)
    await api.refused(404, "UNKNOWN_ORDER", "PATCH", f"/p2p/offers/{offer['id']}", buyer,
                      {"amount": "0.1"})  # fmt: skip
    trade = await api.ok("POST", take, buyer, {"amount": "0.1"})
    path = f"/p2p/trades/{trade['id']}"
    await api.refused(403, "FORBIDDEN", "POST", path + "/paid", seller, {})
    await api.refused(403, "FORBIDDEN", "POST", path + "/release", buyer, {})
    await api.refused(403, "FORBIDDEN", "POST", path + "/cancel", seller, {})
    await api.refused(404, "UNKNOWN_ORDER", "GET", path, other)
    await api.refused(404, "UNKNOWN_ORDER", "POST", path + "/paid", other, {})
    await api.refused(404, "UNKNOWN_ORDER", "GET", path + "/messages", other)
    await api.refused(400, "INVALID_PARAM", "POST", path + "/dispute", buyer, {"reason": "early"})
    await api.refused(403, "FORBIDDEN", "POST", f"/p2p/admin/trades/{trade['id']}/resolve",
                      buyer, {"resolution": "refund"})  # fmt: skip
    await api.refused(403, "FORBIDDEN", "GET", "/p2p/admin/disputes", buyer)
    assert (await api.ok("POST", path + "/cancel", buyer, {}))["status"] == "CANCELLED"
    await api.refused(400, "INVALID_PARAM", "POST", path + "/paid", buyer, {})
    await api.refused(400, "INVALID_PARAM", "POST", path + "/release", seller, {})
    await api.refused(400, "INVALID_PARAM", "POST", path + "/messages", buyer, {"body": "hi"})
    assert (await api.ok("GET", f"/p2p/offers/{offer['id']}", None))["amount"] == "1.00000000"


async def test_disputes_reach_the_admin_who_resolves_them(api: Api) -> None:
    seller, buyer = await api.user(), await api.user()
    await api.fund(seller, "BTC", "1")
    await api.fund(buyer, "BTC", "0.1")  # makes the admin account too
    assert api.admin is not None
    offer = await api.ok("POST", "/p2p/offers", seller, OFFER)
    trade = await api.ok("POST", f"/p2p/offers/{offer['id']}/take", buyer, {"amount": "0.5"})
    path = f"/p2p/trades/{trade['id']}"
    await api.ok("POST", path + "/paid", buyer, {})
    await api.ok("POST", path + "/messages", seller, {"body": "nothing arrived"})
    await api.refused(403, "FORBIDDEN", "GET", path + "/messages", api.admin)  # not disputed yet
    disputed = await api.ok("POST", path + "/dispute", buyer, {"reason": "I paid, see receipt"})
    assert disputed["dispute"]["by"] == buyer.id
    assert [t["id"] for t in await api.ok("GET", "/p2p/admin/disputes", api.admin)] == [trade["id"]]
    thread = await api.ok("GET", path + "/messages", api.admin)
    assert [m["body"] for m in thread] == ["nothing arrived"]
    assert (await api.ok("GET", path, api.admin))["status"] == "DISPUTED"
    resolved = await api.ok("POST", f"/p2p/admin/trades/{trade['id']}/resolve", api.admin,
                            {"resolution": "refund"})  # fmt: skip
    assert (resolved["status"], resolved["resolution"]) == ("REFUNDED", "refund")
    await Settler(api.node.redis, instance="tests", publish=False).drain()
    assert await api.free(buyer) == "0.10000000"
    assert (await api.ok("GET", f"/p2p/offers/{offer['id']}", None))["amount"] == "1.00000000"
    seller_notes = await api.ok("GET", "/notifications", seller)
    assert seller_notes[0]["kind"] == "p2p.dispute_resolved"


async def test_p2p_methods_and_notification_pushes_over_websocket(api: Api) -> None:
    seller, buyer = await api.user(), await api.user()
    async with subscribed(api, [seller, buyer], "notifications") as (s, b):
        offer = await b.ok("p2p.offer.create", {**OFFER, "side": "buy"})
        assert offer["side"] == "buy" and offer["locked"] == "0.00000000"
        refused = await s.rpc("p2p.offer.take", {"offer_id": offer["id"], "amount": "0.1"})
        assert (refused["status"], refused["error"]["code"]) == (400, "INSUFFICIENT_FUNDS")
        listed = await s.ok("p2p.offers.list", {"side": "buy"})
        assert [(o["id"], o["amount"]) for o in listed] == [(offer["id"], "1.00000000")]
        assert [o["id"] for o in await b.ok("p2p.offers.mine", {})] == [offer["id"]]
        wrong = await b.rpc("p2p.trade.resolve", {"trade_id": "1", "resolution": "refund"})
        assert (wrong["status"], wrong["error"]["code"]) == (403, "FORBIDDEN")
        unknown = await b.rpc("p2p.trade.get", {"trade_id": "1"})
        assert (unknown["status"], unknown["error"]["code"]) == (404, "UNKNOWN_ORDER")

        await api.fund(seller, "BTC", "1")  # now the seller can escrow
        trade = await s.ok("p2p.offer.take", {"offer_id": offer["id"], "amount": "0.1"})
        assert (trade["status"], trade["buyer"], trade["seller"]) == (
            "PENDING",
            buyer.id,
            seller.id,
        )
        push = await b.push("notifications")
        assert (push["kind"], push["ref"]) == ("p2p.trade_opened", trade["id"])
        assert set(push) == {"channel", "notification_id", "kind", "message", "ref", "ts"}
        assert (await b.ok("p2p.trade.paid", {"trade_id": trade["id"]}))["status"] == "PAID"
        assert (await s.push("notifications"))["kind"] == "p2p.trade_opened"
        assert (await s.push("notifications"))["kind"] == "p2p.trade_paid"
        await b.ok("p2p.message.post", {"trade_id": trade["id"], "body": "paid"})
        thread = await s.ok("p2p.messages.get", {"trade_id": trade["id"]})
        assert [m["body"] for m in thread] == ["paid"]
        done = await s.ok("p2p.trade.release", {"trade_id": trade["id"]})
        assert done["status"] == "RELEASED"
        kinds = [x["kind"] for x in await s.ok("notifications.get", {"limit": 3})]
        assert kinds == ["p2p.trade_released", "p2p.message", "p2p.trade_paid"]
        assert [t["id"] for t in await b.ok("p2p.trades.mine", {})] == [trade["id"]]
        assert (await b.push("notifications"))["kind"] == "p2p.trade_paid"


async def test_an_offer_listing_a_payment_method_twice_is_refused(api: Api) -> None:
    seller = await api.user()
    await api.fund(seller, "BTC", "2")
    for methods in (["bank", "bank"], ["SEPA", "Revolut", " sepa "]):
        message = await api.refused(400, "INVALID_PARAM", "POST", "/p2p/offers", seller,
                                    {**OFFER, "payment_methods": methods})  # fmt: skip
        assert "payment_methods" in message and "twice" in message
    assert await api.free(seller) == "2.00000000"  # nothing escrowed
    assert await api.ok("GET", "/p2p/offers/mine", seller) == []
    offer = await api.ok("POST", "/p2p/offers", seller, OFFER)
    path = f"/p2p/offers/{offer['id']}"
    await api.refused(400, "INVALID_PARAM", "PATCH", path, seller,
                      {"payment_methods": ["Wise", "WISE"], "amount": "0.5"})  # fmt: skip
    assert await api.ok("GET", path, None) == offer  # the refused edit changed nothing
    async with subscribed(api, [seller], "balances") as (ws,):
        answer = await ws.rpc("p2p.offer.create", {**OFFER, "payment_methods": ["x", "x"]})
        assert (answer["status"], answer["error"]["code"]) == (400, "INVALID_PARAM")
