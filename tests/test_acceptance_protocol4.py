"""Fourth black-box acceptance pass over /work/shared/PROTOCOL.md and docs/protocol.md:
the areas the first three passes leave out, as a demanding client author drives them.

- P2P over the running exchange (two nodes, HTTP and the ``p2p.*`` WebSocket methods):
  sell offer -> take -> paid -> release, a buyer's cancel, disputes resolved by an
  admin; every wrong party or wrong state is refused with a protocol code and changes
  nothing (balances, trade and offer identical before and after); each move is pushed
  on ``notifications`` to both parties and stored in their ``GET /notifications``.
- Withdrawals: the hold (free down, locked up), admin complete / reject, idempotency by
  ``withdrawal_id``, states in ``GET /withdrawals``, a user cannot finish their own,
  malformed and mistyped (bad checksum) addresses.
- Tokens: refresh, logout, login again, re-``auth`` with a revoked token, an expired
  token refused by refresh; login lock-out; a flooded socket beside a healthy one; the
  per-user socket slots freed by a logout.
- Orders by ``client_order_id`` over WebSocket and HTTP, duplicates carrying the
  existing order, finished orders by id, ``orders.open`` with and without ``market``,
  candles of every interval (OHLCV against the public trades).

Raw ``Ws`` / ``httpx`` only; money compared as ``Decimal`` or exact strings. Targets
the e2e session exchange, or a live one when ``HFTX_ACCEPT_URL`` is set.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
import websockets

from api.tokens import Tokens
from tests.test_e2e_support import (
    ALLOWED_ORIGIN,
    PASSWORD,
    Exchange,
    User,
    Ws,
    connect,
    eventually,
    fund,
    limit,
    new_market,
    new_user,
    unique,
)

pytest_plugins = ["tests.test_e2e_support"]

Msg = dict[str, Any]
D = Decimal
NOTE_PUSH = {"channel", "notification_id", "kind", "message", "ref", "ts"}
NOTE_ROW = {"id", "kind", "message", "ref", "ts"}
TRADE_FIELDS = {
    "id", "offer_id", "offer_side", "seller", "buyer", "asset", "fiat", "price", "amount",
    "fiat_amount", "payment_methods", "status", "created_ts", "updated_ts", "expires_ts",
    "paid_ts", "dispute", "resolution",
}  # fmt: skip
OFFER_FIELDS = {
    "id", "owner", "side", "asset", "fiat", "price", "amount", "locked", "filled",
    "min_amount", "max_amount", "payment_methods", "payment_window", "status",
    "created_ts", "updated_ts",
}  # fmt: skip
WITHDRAWAL_ROW = {"withdrawal_id", "asset", "amount", "address", "status", "ts"}
SELL_OFFER = {
    "side": "sell", "asset": "BTC", "fiat": "EUR", "price": "30000.07", "amount": "1",
    "min_amount": "0.01", "max_amount": "0.5", "payment_methods": ["SEPA"],
    "payment_window": 30,
}  # fmt: skip


async def call(live: Exchange, user: User | None, method: str, path: str, node: str = "a",
               **kwargs: Any) -> httpx.Response:  # fmt: skip
    async with live.http(node, user.token if user else None) as http:
        return await http.request(method, path, **kwargs)


async def ok(live: Exchange, user: User | None, method: str, path: str, node: str = "a",
             **kwargs: Any) -> Any:  # fmt: skip
    r = await call(live, user, method, path, node, **kwargs)
    assert r.status_code == 200, (method, path, r.status_code, r.text)
    return r.json()


def refused(r: httpx.Response, status: int, code: str) -> Msg:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.json()["error"]["code"] == code, r.text
    assert isinstance(r.json()["error"]["message"], str)
    return dict(r.json()["error"])


async def ws_ok(ws: Ws, method: str, params: Any = None) -> Any:
    answer = await ws.request(method, params)
    assert answer["status"] == 200, (method, answer)
    return answer["result"]


def ws_refused(answer: Msg, status: int, code: str) -> None:
    assert (answer["status"], answer["error"]["code"]) == (status, code), answer
    assert isinstance(answer["error"]["message"], str)


async def balances(live: Exchange, user: User, node: str = "a") -> dict[str, tuple[D, D, D]]:
    rows = await ok(live, user, "GET", "/balances", node)
    out = {r["asset"]: (D(r["free"]), D(r["locked"]), D(r["total"])) for r in rows}
    for free, locked, total in out.values():
        assert free + locked == total, rows
    return out


def note_of(kind: str, ref: str) -> Any:
    return lambda m: m.get("channel") == "notifications" and m["kind"] == kind and m["ref"] == ref


async def notified(live: Exchange, ws: Ws, user: User, kind: str, ref: str) -> Msg:
    """The ``notifications`` push of ``kind`` about ``ref`` on ``ws``, and the same entry
    (same id, kind, message, ref, ts) in the user's stored inbox."""
    push = await ws.wait_push(note_of(kind, ref))
    assert set(push) == NOTE_PUSH, push
    assert isinstance(push["notification_id"], str) and isinstance(push["ts"], int)
    inbox = await ok(live, user, "GET", "/notifications", "b", params={"limit": 50})
    rows = [n for n in inbox if n["id"] == push["notification_id"]]
    assert rows == [{"id": push["notification_id"], "kind": kind, "message": push["message"],
                     "ref": ref, "ts": push["ts"]}], inbox  # fmt: skip
    return push


# -- P2P -------------------------------------------------------------------------------


async def p2p_pair(live: Exchange, sockets: list[Ws], btc: str = "2") -> tuple[User, User, Ws, Ws]:
    """A funded seller (socket on node a) and a buyer (socket on node b), both
    subscribed to ``notifications``."""
    seller, buyer = await new_user(live), await new_user(live)
    await fund(live, seller, {"BTC": btc})
    sws, bws = await connect(live, sockets, seller, "a"), await connect(live, sockets, buyer, "b")
    for ws in (sws, bws):
        assert await ws_ok(ws, "subscribe", {"channel": "notifications"}) == {
            "channel": "notifications"
        }
    return seller, buyer, sws, bws


async def test_p2p_sell_offer_take_paid_release_over_ws_and_http(
    live: Exchange, sockets: list[Ws]
) -> None:
    seller, buyer, sws, bws = await p2p_pair(live, sockets)
    offer = await ws_ok(sws, "p2p.offer.create", {**SELL_OFFER, "request_id": unique("o")})
    assert set(offer) == OFFER_FIELDS, offer
    assert (offer["owner"], offer["status"], offer["amount"], offer["locked"], offer["filled"]) == (
        seller.user_id, "OPEN", "1.00000000", "0.00000000", "0.00000000"
    )  # fmt: skip
    # the offer's amount left the seller's available balance into escrow
    assert (await balances(live, seller, "b"))["BTC"] == (D("1"), D("1"), D("2"))
    public = await ok(live, None, "GET", f"/p2p/offers/{offer['id']}", "b")
    assert public == offer

    trade = await ok(live, buyer, "POST", f"/p2p/offers/{offer['id']}/take", "b",
                     json={"amount": "0.123", "price": "30000.07"})  # fmt: skip
    assert set(trade) == TRADE_FIELDS, trade
    assert (trade["status"], trade["seller"], trade["buyer"], trade["offer_id"]) == (
        "PENDING", seller.user_id, buyer.user_id, offer["id"]
    )  # fmt: skip
    # 30000.07 x 0.123 = 3690.00861, rounded up to the cent
    assert (trade["amount"], trade["fiat_amount"], trade["offer_side"]) == (
        "0.12300000", "3690.01", "sell"
    )  # fmt: skip
    assert trade["paid_ts"] is None and trade["dispute"] is None and trade["resolution"] is None
    assert trade["expires_ts"] >= trade["created_ts"] + 30 * 60_000 - 1000
    tid = trade["id"]
    for ws, user in ((sws, seller), (bws, buyer)):
        await notified(live, ws, user, "p2p.trade_opened", tid)
    left = await ws_ok(bws, "p2p.offer.get", {"offer_id": offer["id"]})
    assert (left["amount"], left["locked"]) == ("0.87700000", "0.12300000")
    assert (await balances(live, seller))["BTC"] == (D("1"), D("1"), D("2"))  # escrow still

    paid = await ws_ok(bws, "p2p.trade.paid", {"trade_id": tid})
    assert paid["status"] == "PAID" and isinstance(paid["paid_ts"], int)
    for ws, user in ((sws, seller), (bws, buyer)):
        await notified(live, ws, user, "p2p.trade_paid", tid)
    released = await ok(live, seller, "POST", f"/p2p/trades/{tid}/release", json={})
    assert released["status"] == "RELEASED"
    # the release answers once the buyer is credited: both nodes show it at once
    for node in ("a", "b"):
        assert (await balances(live, buyer, node))["BTC"] == (D("0.123"), D("0"), D("0.123"))
        assert (await balances(live, seller, node))["BTC"] == (D("1"), D("0.877"), D("1.877"))
    for ws, user in ((sws, seller), (bws, buyer)):
        await notified(live, ws, user, "p2p.trade_released", tid)
    done = await ok(live, None, "GET", f"/p2p/offers/{offer['id']}")
    assert (done["amount"], done["locked"], done["filled"]) == (
        "0.87700000", "0.00000000", "0.12300000"
    )  # fmt: skip
    for user in (seller, buyer):
        kinds = [
            n["kind"] for n in await ok(live, user, "GET", "/notifications") if n["ref"] == tid
        ]
        assert kinds == ["p2p.trade_released", "p2p.trade_paid", "p2p.trade_opened"]
        mine = await ok(live, user, "GET", "/p2p/trades")
        assert [(t["id"], t["status"]) for t in mine] == [(tid, "RELEASED")]
    # the same answer on every route and method, for both parties
    assert await ws_ok(sws, "p2p.trade.get", {"trade_id": tid}) == await ok(
        live, buyer, "GET", f"/p2p/trades/{tid}", "b"
    )
    closed = await ws_ok(sws, "p2p.offer.close", {"offer_id": offer["id"]})
    assert (closed["status"], closed["amount"]) == ("CLOSED", "0.00000000")
    assert (await balances(live, seller))["BTC"] == (D("1.877"), D("0"), D("1.877"))
    listed = await ok(live, None, "GET", "/p2p/offers", params={"asset": "BTC", "fiat": "EUR"})
    assert offer["id"] not in [o["id"] for o in listed]  # a closed offer is not listed


async def _p2p_state(live: Exchange, users: list[User], tid: str, offer_id: str) -> Any:
    return (
        [await balances(live, u) for u in users],
        await ok(live, users[0], "GET", f"/p2p/trades/{tid}"),
        await ok(live, None, "GET", f"/p2p/offers/{offer_id}"),
    )


async def test_p2p_wrong_party_and_wrong_state_change_nothing(
    live: Exchange, sockets: list[Ws]
) -> None:
    seller, buyer, sws, bws = await p2p_pair(live, sockets)
    other = await new_user(live)
    await fund(live, other, {"BTC": "1"})
    ows = await connect(live, sockets, other, "b")
    offer = await ok(live, seller, "POST", "/p2p/offers", json=SELL_OFFER)
    trade = await ok(live, buyer, "POST", f"/p2p/offers/{offer['id']}/take", json={"amount": "0.2"})
    tid = trade["id"]
    users = [seller, buyer, other]
    path = f"/p2p/trades/{tid}"

    async def nothing_changes(attempts: list[tuple[Any, int, str]]) -> None:
        before = await _p2p_state(live, users, tid, offer["id"])
        for attempt, status, code in attempts:
            if isinstance(attempt, tuple):  # (ws, method, params)
                ws_refused(await attempt[0].request(attempt[1], attempt[2]), status, code)
            else:
                refused(await attempt, status, code)
        assert await _p2p_state(live, users, tid, offer["id"]) == before

    ref = {"trade_id": tid}
    # PENDING: the seller cannot mark paid or cancel, the buyer cannot release, nobody
    # disputes yet, a third user sees nothing, a user cannot resolve
    await nothing_changes([
        (call(live, seller, "POST", path + "/paid", json={}), 403, "FORBIDDEN"),
        ((sws, "p2p.trade.paid", ref), 403, "FORBIDDEN"),
        (call(live, seller, "POST", path + "/cancel", json={}), 403, "FORBIDDEN"),
        (call(live, buyer, "POST", path + "/release", "b", json={}), 403, "FORBIDDEN"),
        ((bws, "p2p.trade.release", ref), 403, "FORBIDDEN"),
        (call(live, buyer, "POST", path + "/dispute", json={"reason": "x"}), 400, "INVALID_PARAM"),
        (call(live, other, "POST", path + "/release", json={}), 404, "UNKNOWN_ORDER"),
        ((ows, "p2p.trade.cancel", ref), 404, "UNKNOWN_ORDER"),
        ((ows, "p2p.trade.get", ref), 404, "UNKNOWN_ORDER"),
        (call(live, other, "GET", path + "/messages"), 404, "UNKNOWN_ORDER"),
        (call(live, buyer, "POST", f"/p2p/admin/trades/{tid}/resolve",
              json={"resolution": "release"}), 403, "FORBIDDEN"),
        ((sws, "p2p.trade.resolve", {**ref, "resolution": "refund"}), 403, "FORBIDDEN"),
        (call(live, seller, "POST", f"/p2p/offers/{offer['id']}/take", json={"amount": "0.1"}),
         400, "INVALID_PARAM"),  # own offer
        (call(live, other, "POST", f"/p2p/offers/{offer['id']}/take", json={"amount": "0.9"}),
         400, "INVALID_PARAM"),  # above max_amount
        (call(live, other, "PATCH", f"/p2p/offers/{offer['id']}", json={"amount": "0"}),
         404, "UNKNOWN_ORDER"),  # not the owner
        (call(live, other, "POST", f"/p2p/offers/{offer['id']}/close", json={}),
         404, "UNKNOWN_ORDER"),
    ])  # fmt: skip
    async with live.admin() as admin:
        refused(await admin.post(f"/p2p/admin/trades/{tid}/resolve",
                                 json={"resolution": "refund"}), 400, "INVALID_PARAM")  # fmt: skip
        refused(await admin.get(path + "/messages"), 403, "FORBIDDEN")  # never disputed

    paid = await ws_ok(bws, "p2p.trade.paid", ref)
    assert paid["status"] == "PAID"
    # PAID: cancel is over (the buyer said they paid), paid again is a no-op success
    await nothing_changes([
        (call(live, buyer, "POST", path + "/cancel", json={}), 400, "INVALID_PARAM"),
        (call(live, seller, "POST", path + "/paid", json={}), 403, "FORBIDDEN"),
        (call(live, buyer, "POST", path + "/dispute", json={"reason": ""}), 400, "INVALID_PARAM"),
        ((ows, "p2p.trade.dispute", {**ref, "reason": "me too"}), 404, "UNKNOWN_ORDER"),
    ])  # fmt: skip
    assert await ws_ok(bws, "p2p.trade.paid", ref) == paid  # a no-op: the same trade
    assert (await ws_ok(sws, "p2p.trade.release", ref))["status"] == "RELEASED"
    # RELEASED is final: every other move is refused and changes nothing
    await nothing_changes([
        (call(live, buyer, "POST", path + "/cancel", json={}), 400, "INVALID_PARAM"),
        (call(live, buyer, "POST", path + "/paid", json={}), 400, "INVALID_PARAM"),
        ((sws, "p2p.trade.dispute", {**ref, "reason": "late"}), 400, "INVALID_PARAM"),
        (call(live, buyer, "POST", path + "/messages", json={"body": "hi"}), 400,
         "INVALID_PARAM"),
        (call(live, buyer, "POST", path + "/release", json={}), 403, "FORBIDDEN"),
    ])  # fmt: skip
    # the seller's release again is a no-op success: the buyer is not credited twice
    assert (await ok(live, seller, "POST", path + "/release", json={}))["status"] == "RELEASED"
    assert (await balances(live, buyer, "b"))["BTC"] == (D("0.2"), D("0"), D("0.2"))


async def test_p2p_buyer_cancel_gives_the_amount_back_to_the_offer(
    live: Exchange, sockets: list[Ws]
) -> None:
    seller, buyer, sws, bws = await p2p_pair(live, sockets)
    offer = await ok(live, seller, "POST", "/p2p/offers", json=SELL_OFFER)
    before = await balances(live, seller)
    trade = await ws_ok(bws, "p2p.offer.take", {"offer_id": offer["id"], "amount": "0.5"})
    tid = trade["id"]
    await notified(live, sws, seller, "p2p.trade_opened", tid)
    cancelled = await ok(live, buyer, "POST", f"/p2p/trades/{tid}/cancel", "b", json={})
    assert cancelled["status"] == "CANCELLED"
    for ws, user in ((sws, seller), (bws, buyer)):
        await notified(live, ws, user, "p2p.trade_cancelled", tid)
    again = await ok(live, None, "GET", f"/p2p/offers/{offer['id']}")
    assert (again["amount"], again["locked"], again["filled"]) == (
        "1.00000000", "0.00000000", "0.00000000"
    )  # fmt: skip
    assert await balances(live, seller) == before  # still all in the offer's escrow
    assert (await balances(live, buyer)).get("BTC", (0, 0, 0)) == (0, 0, 0)
    # a cancel of a cancelled trade is a no-op success, the seller's release is refused
    assert (await ws_ok(bws, "p2p.trade.cancel", {"trade_id": tid}))["status"] == "CANCELLED"
    ws_refused(await sws.request("p2p.trade.release", {"trade_id": tid}), 400, "INVALID_PARAM")
    # the offer can be taken again for its full amount
    retake = await ok(
        live, buyer, "POST", f"/p2p/offers/{offer['id']}/take", json={"amount": "0.5"}
    )
    assert retake["status"] == "PENDING" and retake["id"] != tid


async def test_p2p_disputes_resolved_by_an_admin_release_and_refund(
    live: Exchange, sockets: list[Ws]
) -> None:
    seller, buyer, sws, bws = await p2p_pair(live, sockets)
    offer = await ok(live, seller, "POST", "/p2p/offers", json=SELL_OFFER)
    one = await ok(live, buyer, "POST", f"/p2p/offers/{offer['id']}/take", json={"amount": "0.3"})
    two = await ok(live, buyer, "POST", f"/p2p/offers/{offer['id']}/take", json={"amount": "0.2"})
    for trade in (one, two):
        await ws_ok(bws, "p2p.trade.paid", {"trade_id": trade["id"]})
    d1 = await ws_ok(sws, "p2p.trade.dispute", {"trade_id": one["id"], "reason": "no money"})
    assert d1["status"] == "DISPUTED" and d1["dispute"]["by"] == seller.user_id
    assert d1["dispute"]["reason"] == "no money" and isinstance(d1["dispute"]["ts"], int)
    d2 = await ok(live, buyer, "POST", f"/p2p/trades/{two['id']}/dispute", "b",
                  json={"reason": "I paid"})  # fmt: skip
    assert d2["dispute"]["by"] == buyer.user_id
    for trade in (one, two):
        for ws, user in ((sws, seller), (bws, buyer)):
            await notified(live, ws, user, "p2p.trade_disputed", trade["id"])
    # in a dispute neither party can release or cancel any more; the buyer cannot resolve
    before = await _p2p_state(live, [seller, buyer], one["id"], offer["id"])
    refused(await call(live, seller, "POST", f"/p2p/trades/{one['id']}/release", json={}),
            400, "INVALID_PARAM")  # fmt: skip
    refused(await call(live, buyer, "POST", f"/p2p/trades/{one['id']}/cancel", json={}),
            400, "INVALID_PARAM")  # fmt: skip
    ws_refused(
        await bws.request("p2p.trade.resolve", {"trade_id": one["id"], "resolution": "release"}),
        403,
        "FORBIDDEN",
    )
    assert await _p2p_state(live, [seller, buyer], one["id"], offer["id"]) == before

    admin_ws = await connect(live, sockets, User("", "", live.admin_token), "b")
    listed = [t["id"] for t in await ws_ok(admin_ws, "p2p.disputes.list", {})]
    assert listed.index(one["id"]) < listed.index(two["id"])  # oldest first
    await ws_ok(admin_ws, "p2p.message.post", {"trade_id": one["id"], "body": "proof please"})
    thread = await ok(live, seller, "GET", f"/p2p/trades/{one['id']}/messages")
    assert [(m["role"], m["body"]) for m in thread] == [("admin", "proof please")]
    ws_refused(await admin_ws.request("p2p.trade.resolve", {"trade_id": one["id"],
                                                            "resolution": "keep"}),
               400, "INVALID_PARAM")  # fmt: skip
    released = await ws_ok(admin_ws, "p2p.trade.resolve",
                           {"trade_id": one["id"], "resolution": "release"})  # fmt: skip
    assert (released["status"], released["resolution"]) == ("RELEASED", "release")
    assert (await balances(live, buyer, "b"))["BTC"] == (D("0.3"), D("0"), D("0.3"))
    async with live.admin("a") as admin:
        refunded = await admin.post(f"/p2p/admin/trades/{two['id']}/resolve",
                                    json={"resolution": "refund"})  # fmt: skip
        assert refunded.status_code == 200, refunded.text
        assert (refunded.json()["status"], refunded.json()["resolution"]) == ("REFUNDED", "refund")
        # the other resolution of a resolved trade is refused; the same one is a no-op
        refused(await admin.post(f"/p2p/admin/trades/{two['id']}/resolve",
                                 json={"resolution": "release"}), 400, "INVALID_PARAM")  # fmt: skip
        same = await admin.post(f"/p2p/admin/trades/{two['id']}/resolve",
                                json={"resolution": "refund"})  # fmt: skip
        assert same.status_code == 200 and same.json()["status"] == "REFUNDED"
        left = [t["id"] for t in (await admin.get("/p2p/admin/disputes")).json()]
        assert one["id"] not in left and two["id"] not in left
    for trade in (one, two):
        for ws, user in ((sws, seller), (bws, buyer)):
            await notified(live, ws, user, "p2p.dispute_resolved", trade["id"])
    assert (await balances(live, buyer))["BTC"] == (D("0.3"), D("0"), D("0.3"))  # no refund gain
    state = await ok(live, None, "GET", f"/p2p/offers/{offer['id']}")
    assert (state["amount"], state["locked"], state["filled"]) == (
        "0.70000000", "0.00000000", "0.30000000"
    )  # fmt: skip
    assert (await balances(live, seller))["BTC"] == (D("1"), D("0.7"), D("1.7"))


async def test_an_admin_who_is_a_party_cannot_resolve_the_dispute(
    live: Exchange, sockets: list[Ws]
) -> None:
    seller, _, sws, _ = await p2p_pair(live, sockets)
    offer = await ok(live, seller, "POST", "/p2p/offers", json=SELL_OFFER)
    admin = User((await ok(live, User("", "", live.admin_token), "GET", "/me"))["user_id"], "",
                 live.admin_token)  # fmt: skip
    trade = await ok(live, admin, "POST", f"/p2p/offers/{offer['id']}/take", json={"amount": "0.1"})
    tid = trade["id"]
    await ok(live, admin, "POST", f"/p2p/trades/{tid}/paid", json={})
    await ws_ok(sws, "p2p.trade.dispute", {"trade_id": tid, "reason": "not received"})
    before = await _p2p_state(live, [seller, admin], tid, offer["id"])
    for resolution in ("release", "refund"):
        refused(await call(live, admin, "POST", f"/p2p/admin/trades/{tid}/resolve", "b",
                           json={"resolution": resolution}), 403, "FORBIDDEN")  # fmt: skip
    assert await _p2p_state(live, [seller, admin], tid, offer["id"]) == before
    assert before[1]["status"] == "DISPUTED"


async def test_notifications_page_back_with_before(live: Exchange, sockets: list[Ws]) -> None:
    seller, buyer, _, bws = await p2p_pair(live, sockets)
    offer = await ok(live, seller, "POST", "/p2p/offers", json=SELL_OFFER)
    trade = await ok(live, buyer, "POST", f"/p2p/offers/{offer['id']}/take", json={"amount": "0.1"})
    await ok(live, buyer, "POST", f"/p2p/trades/{trade['id']}/paid", json={})
    await ok(live, seller, "POST", f"/p2p/trades/{trade['id']}/release", json={})
    await notified(live, bws, buyer, "p2p.trade_released", trade["id"])
    inbox = await ok(live, buyer, "GET", "/notifications")
    assert [n["kind"] for n in inbox] == ["p2p.trade_released", "p2p.trade_paid",
                                          "p2p.trade_opened"]  # fmt: skip
    for n in inbox:
        assert set(n) == NOTE_ROW and n["ref"] == trade["id"]
    assert await ws_ok(bws, "notifications.get", {"limit": 50}) == inbox
    newest = await ok(live, buyer, "GET", "/notifications", params={"limit": 1})
    assert newest == inbox[:1]

    async def older() -> Any:  # the history lags the inbox by the drain (bounded)
        r = await call(live, buyer, "GET", "/notifications", params={"before": inbox[0]["id"]})
        return r.json() if r.status_code == 200 else None

    assert await eventually(older) == inbox[1:]
    end = await ok(live, buyer, "GET", "/notifications", params={"before": inbox[-1]["id"]})
    assert end == []
    # another user's notification id is not a cursor of yours
    refused(await call(live, seller, "GET", "/notifications", params={"before": inbox[0]["id"]}),
            400, "INVALID_PARAM")  # fmt: skip


# -- withdrawals -------------------------------------------------------------------------


async def test_withdrawals_hold_complete_reject_and_are_idempotent(
    live: Exchange, sockets: list[Ws]
) -> None:
    user, other = await new_user(live), await new_user(live)
    await fund(live, user, {"USD": "100"})
    ws = await connect(live, sockets, user, "b")
    assert await ws_ok(ws, "subscribe", {"channel": "balances"}) == {"channel": "balances"}
    w1 = {"withdrawal_id": unique("w1-"), "asset": "USD", "amount": "30", "address": "ext0abc"}
    first = await ok(live, user, "POST", "/withdrawals", json=w1)
    assert first == {**w1, "amount": "30.00000000", "status": "PENDING", "replay": False}
    assert (await balances(live, user, "b"))["USD"] == (D("70"), D("30"), D("100"))
    push = await ws.wait_push(lambda m: m["channel"] == "balances" and m["locked"] == "30.00000000")
    assert (push["asset"], push["free"], push["total"]) == ("USD", "70.00000000", "100.00000000")
    # a retry (over either interface) answers the same and holds nothing more
    assert await ok(live, user, "POST", "/withdrawals", "b", json=w1) == {**first, "replay": True}
    assert await ws_ok(ws, "withdrawals.create", w1) == {**first, "replay": True}
    assert (await balances(live, user))["USD"] == (D("70"), D("30"), D("100"))
    # the same id for another withdrawal, or by another user, is refused
    refused(await call(live, user, "POST", "/withdrawals", json={**w1, "amount": "31"}),
            400, "INVALID_PARAM")  # fmt: skip
    refused(await call(live, user, "POST", "/withdrawals", json={**w1, "address": "ext0abd"}),
            400, "INVALID_PARAM")  # fmt: skip
    await fund(live, other, {"USD": "50"})
    refused(await call(live, other, "POST", "/withdrawals", json=w1), 400, "INVALID_PARAM")
    assert (await balances(live, other))["USD"] == (D("50"), D("0"), D("50"))
    assert await ok(live, other, "GET", "/withdrawals") == []

    w2 = {**w1, "withdrawal_id": unique("w2-"), "amount": "20"}
    second = await ws_ok(ws, "withdrawals.create", w2)
    assert (second["status"], second["replay"]) == ("PENDING", False)
    refused(await call(live, user, "POST", "/withdrawals",
                       json={**w1, "withdrawal_id": unique("w3-"), "amount": "50.00000001"}),
            400, "INSUFFICIENT_FUNDS")  # fmt: skip
    assert (await balances(live, user))["USD"] == (D("50"), D("50"), D("100"))
    listed = await ok(live, user, "GET", "/withdrawals")
    for row in listed:
        assert set(row) == WITHDRAWAL_ROW and isinstance(row["ts"], int)
    assert [(w["withdrawal_id"], w["amount"], w["status"]) for w in listed] == [
        (w1["withdrawal_id"], "30.00000000", "PENDING"),
        (w2["withdrawal_id"], "20.00000000", "PENDING"),
    ]
    assert await ws_ok(ws, "withdrawals.get") == listed

    # a user cannot finish a withdrawal, not even their own
    for action in ("complete", "reject"):
        route = f"/admin/withdrawals/{w1['withdrawal_id']}/{action}"
        refused(await call(live, user, "POST", route), 403, "FORBIDDEN")
    assert await ok(live, user, "GET", "/withdrawals", "b") == listed
    assert (await balances(live, user))["USD"] == (D("50"), D("50"), D("100"))

    async with live.admin("b") as admin:
        done = await admin.post(f"/admin/withdrawals/{w1['withdrawal_id']}/complete")
        assert done.status_code == 200, done.text
        assert done.json() == {"withdrawal_id": w1["withdrawal_id"], "user_id": user.user_id,
                               "status": "COMPLETED", "replay": False}  # fmt: skip
        assert (await balances(live, user))["USD"] == (D("50"), D("20"), D("70"))
        again = await admin.post(f"/admin/withdrawals/{w1['withdrawal_id']}/complete")
        assert again.status_code == 200 and again.json() == {**done.json(), "replay": True}
        refused(await admin.post(f"/admin/withdrawals/{w1['withdrawal_id']}/reject"),
                400, "INVALID_PARAM")  # fmt: skip
        back = await admin.post(f"/admin/withdrawals/{w2['withdrawal_id']}/reject")
        assert back.status_code == 200 and back.json()["status"] == "REJECTED"
        assert (await balances(live, user))["USD"] == (D("70"), D("0"), D("70"))
        again = await admin.post(f"/admin/withdrawals/{w2['withdrawal_id']}/reject")
        assert again.status_code == 200 and again.json()["replay"] is True
        refused(await admin.post(f"/admin/withdrawals/{w2['withdrawal_id']}/complete"),
                400, "INVALID_PARAM")  # fmt: skip
        refused(await admin.post(f"/admin/withdrawals/{unique('nope')}/complete"),
                400, "INVALID_PARAM")  # fmt: skip
    assert (await balances(live, user, "b"))["USD"] == (D("70"), D("0"), D("70"))
    await ws.wait_push(lambda m: m["channel"] == "balances" and m["total"] == "70.00000000"
                       and m["locked"] == "0.00000000")  # fmt: skip
    states = [(w["withdrawal_id"], w["status"]) for w in await ws_ok(ws, "withdrawals.get")]
    assert states == [(w1["withdrawal_id"], "COMPLETED"), (w2["withdrawal_id"], "REJECTED")]
    # a retry of the request after it finished answers its final state, moving nothing
    assert await ok(live, user, "POST", "/withdrawals", json=w1) == {
        **first,
        "status": "COMPLETED",
        "replay": True,
    }
    assert (await balances(live, user))["USD"] == (D("70"), D("0"), D("70"))


def _mistype(address: str) -> str:
    """``address`` with one data character changed: its bech32 checksum no longer holds."""
    i = len(address) - 10
    return address[:i] + ("q" if address[i] != "q" else "p") + address[i + 1 :]


async def test_addresses_with_a_bad_checksum_are_refused(live: Exchange) -> None:
    user, payee = await new_user(live), await new_user(live)
    await fund(live, user, {"USD": "100"})
    own = {a["asset"]: a["address"] for a in await ok(live, user, "GET", "/addresses")}["USD"]
    payee_usd = {a["asset"]: a["address"] for a in await ok(live, payee, "GET", "/addresses")}[
        "USD"
    ]
    assert own.startswith("hftx1") and payee_usd.startswith("hftx1")
    before = await balances(live, user)

    def withdrawal(address: str) -> dict[str, str]:
        return {"withdrawal_id": unique("w"), "asset": "USD", "amount": "1", "address": address}

    for address in (own, _mistype(own), _mistype(payee_usd), own.upper(), "bad-address",
                    "x" * 101, ""):  # fmt: skip
        r = await call(live, user, "POST", "/withdrawals", json=withdrawal(address))
        refused(r, 400, "INVALID_PARAM")
    for address in (_mistype(payee_usd), payee_usd[:-1], "hftx1" + "q" * 38):
        body = {"transfer_id": unique("t"), "asset": "USD", "amount": "1", "to_address": address}
        refused(await call(live, user, "POST", "/transfers", json=body), 400, "INVALID_PARAM")
    async with live.admin() as admin:
        dep = {"deposit_id": unique("d"), "address": _mistype(own), "asset": "USD", "amount": "1"}
        refused(await admin.post("/admin/deposits", json=dep), 400, "INVALID_PARAM")
    assert await balances(live, user) == before
    assert await ok(live, user, "GET", "/withdrawals") == []
    assert (await balances(live, payee)).get("USD", (0, 0, 0)) == (0, 0, 0)


# -- tokens, logout, throttling, socket limits --------------------------------------------


def claims(token: str) -> Msg:
    payload = token.split(".")[1]
    return dict(orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def login(live: Exchange, email: str, password: str = PASSWORD, node: str = "a") -> Any:
    async with live.http(node) as http:
        return await http.post("/auth/login", json={"email": email, "password": password})


async def test_refresh_logout_and_login_again_on_both_nodes(
    live: Exchange, sockets: list[Ws]
) -> None:
    user = await new_user(live)
    t1 = user.token
    on_a = await connect(live, sockets, user, "a")
    on_b = await connect(live, sockets, user, "b")
    r = await call(live, user, "POST", "/auth/refresh", "b")
    assert r.status_code == 200 and set(r.json()) == {"access_token", "token_type", "expires_in"}
    t2 = r.json()["access_token"]
    assert r.json()["token_type"] == "bearer" and isinstance(r.json()["expires_in"], int)
    c1, c2 = claims(t1), claims(t2)
    assert (c2["sub"], c2["role"]) == (c1["sub"], c1["role"]) and c2["exp"] >= c1["exp"]
    me = await ok(live, User("", "", t1), "GET", "/me")
    assert me == await ok(live, User("", "", t2), "GET", "/me", "b")
    assert (me["user_id"], me["role"], me["email"]) == (user.user_id, "user", user.email)
    extended = await ws_ok(on_a, "auth", {"token": t2})
    assert extended == {"user_id": user.user_id, "role": "user", "expires_at": c2["exp"] * 1000}

    assert await ok(live, User("", "", t2), "POST", "/auth/logout", "b") == {}
    for ws in (on_a, on_b):  # every socket of the user, on every node
        assert (await asyncio.wait_for(ws.closed, 5))[0] == 4401
    for token in (t1, t2):
        for node in ("a", "b"):
            refused(await call(live, User("", "", token), "GET", "/balances", node), 401,
                    "UNAUTHORIZED")  # fmt: skip
            refused(await call(live, User("", "", token), "POST", "/auth/refresh", node), 401,
                    "UNAUTHORIZED")  # fmt: skip
    refused(await call(live, User("", "", t1), "POST", "/auth/logout"), 401, "UNAUTHORIZED")

    again = await login(live, user.email, node="b")
    assert again.status_code == 200, again.text
    t3 = again.json()["access_token"]
    for node in ("a", "b"):  # the new token works at once on every node
        assert (await ok(live, User("", "", t3), "GET", "/me", node))["user_id"] == user.user_id
    fresh = await connect(live, sockets, User(user.user_id, user.email, t3), "a")
    assert (await ws_ok(fresh, "ping"))["ts"] > 0
    # re-auth with a revoked token is a failed auth: 401, then the socket closes 4401
    ws_refused(await fresh.request("auth", {"token": t1}), 401, "UNAUTHORIZED")
    assert (await asyncio.wait_for(fresh.closed, 5))[0] == 4401
    other = await connect(live, sockets, User(user.user_id, user.email, t3), "b")
    assert (await ws_ok(other, "ping"))["ts"] > 0


async def test_an_expired_token_is_refused_everywhere_and_cannot_be_refreshed(
    live: Exchange,
) -> None:
    if not live.env:
        pytest.skip("needs the e2e exchange's signing key")
    user = await new_user(live)
    version = claims(user.token)["tv"]
    # exp is in whole seconds: a 1 s token may be valid for a few ms only on a busy machine
    short, _ = Tokens(live.env["HFTX_JWT_SECRET"], ttl=3).issue(user.user_id, "user", version)
    holder = User(user.user_id, user.email, short)
    assert (await ok(live, holder, "GET", "/me"))["user_id"] == user.user_id

    async def expired() -> bool:
        return (await call(live, holder, "GET", "/me")).status_code == 401

    await eventually(expired, timeout=10)
    refused(await call(live, holder, "POST", "/auth/refresh", "b"), 401, "UNAUTHORIZED")
    ws = await Ws.connect(live.ws_url("b"))
    ws_refused(await ws.request("auth", {"token": short}), 401, "UNAUTHORIZED")
    assert (await asyncio.wait_for(ws.closed, 5))[0] == 4401
    assert (await ok(live, user, "GET", "/me"))["user_id"] == user.user_id  # others unaffected


async def test_a_locked_login_refuses_even_the_right_password(live: Exchange) -> None:
    user, neighbour = await new_user(live), await new_user(live)
    codes = []
    for _ in range(5):
        codes.append((await login(live, user.email, "wrong-password")).status_code)
    assert codes == [401] * 5
    for password, node in (("wrong-password", "a"), (PASSWORD, "a"), (PASSWORD, "b")):
        r = await login(live, user.email.upper(), password, node)  # the same e-mail, any case
        refused(r, 429, "RATE_LIMITED")
        assert r.headers.get("retry-after") is not None
        assert "access_token" not in r.text
    # the lock is on that e-mail: a neighbour on the same address logs in, and the locked
    # user's tokens issued before keep working
    assert (await login(live, neighbour.email)).status_code == 200
    assert (await ok(live, user, "GET", "/me"))["user_id"] == user.user_id


async def test_a_flooded_socket_closes_4429_and_its_siblings_live_on(live: Exchange) -> None:
    if "strict" not in live.nodes:
        pytest.skip("needs the e2e exchange's strict node")
    user = await new_user(live, "strict")
    flooded = await Ws.connect(live.ws_url("strict"), user.token)
    sibling = await Ws.connect(live.ws_url("strict"), user.token)
    for i in range(600):
        await flooded.send({"id": i, "method": "ping"})
    assert (await asyncio.wait_for(flooded.closed, 10))[0] == 4429

    async def answers() -> bool:  # rate limited for a moment (the user's budget), not closed
        answer = await sibling.request("ping")
        if answer["status"] == 429:
            assert answer["error"]["code"] == "RATE_LIMITED"
            return False
        return answer["status"] == 200

    await eventually(answers, timeout=5)
    assert not sibling.closed.done()
    newcomer = await Ws.connect(live.ws_url("strict"), user.token)  # the closed one's slot
    assert (await newcomer.request("ping"))["status"] in (200, 429)
    for ws in (sibling, newcomer):
        await ws.close()


async def test_a_logout_frees_the_users_socket_slots(live: Exchange) -> None:
    if "strict" not in live.nodes:
        pytest.skip("needs the e2e exchange's strict node (3 sockets per user)")
    user = await new_user(live, "strict")
    url = live.ws_url("strict")
    full = [await Ws.connect(url, user.token) for _ in range(3)]
    waiting = await Ws.connect(url)
    ws_refused(await waiting.request("auth", {"token": user.token}), 429, "RATE_LIMITED")
    assert (await call(live, user, "POST", "/auth/logout", "strict")).status_code == 200
    for ws in full:
        assert (await asyncio.wait_for(ws.closed, 5))[0] == 4401
    token = (await login(live, user.email, node="strict")).json()["access_token"]
    assert (await waiting.request("auth", {"token": token}))["status"] == 200
    more = [await Ws.connect(url, token) for _ in range(2)]
    last = await Ws.connect(url)
    ws_refused(await last.request("auth", {"token": token}), 429, "RATE_LIMITED")
    for ws in (waiting, *more, last):
        await ws.close()


async def test_browser_origins_other_than_the_nodes_own_are_refused(live: Exchange) -> None:
    if not live.procs:
        pytest.skip("needs the e2e exchange's allowlist")
    url = live.ws_url("a")
    for origin in ("null", live.url("b"), "http://127.0.0.1", "https://allowed.example.evil"):
        with pytest.raises(websockets.InvalidStatus) as info:
            await websockets.connect(url, origin=origin)  # type: ignore[arg-type]
        assert info.value.response.status_code == 403, origin
    for origin in (live.url("a"), ALLOWED_ORIGIN, ALLOWED_ORIGIN.upper() + "/"):
        socket_ = await websockets.connect(url, origin=origin)  # type: ignore[arg-type]
        await socket_.close()


# -- orders by client_order_id, finished orders, open orders -------------------------------


def without_fills(placed: Msg) -> Msg:
    return {k: v for k, v in placed.items() if k != "fills"}


async def test_client_order_ids_over_ws_and_http_agree(live: Exchange, sockets: list[Ws]) -> None:
    m1, m2 = await new_market(live), await new_market(live)
    user, other = await new_user(live), await new_user(live)
    await fund(live, user, {"USD": "1000"})
    await fund(live, other, {"USD": "1000"})
    ws = await connect(live, sockets, user, "b")
    first = await ok(
        live, user, "POST", "/orders", json=limit(m1, "buy", "1", "10", client_order_id="c-1")
    )
    order = without_fills(first)
    held = await balances(live, user)
    assert held["USD"] == (D("990"), D("10"), D("1000"))
    # a retry with the same id, even for another market, places nothing and carries the order
    dup = await ws.request("order.place", limit(m2, "sell", "2", "50", client_order_id="c-1"))
    ws_refused(dup, 409, "DUPLICATE_CLIENT_ORDER_ID")
    assert dup["error"]["order"] == order and dup["result"] == order
    again = limit(m1, "buy", "1", "10", client_order_id="c-1")
    r = await call(live, user, "POST", "/orders", "b", json=again)
    assert refused(r, 409, "DUPLICATE_CLIENT_ORDER_ID")["order"] == order
    assert await balances(live, user) == held
    assert [o["id"] for o in await ws_ok(ws, "orders.open")] == [order["id"]]
    # the id is unique per user: another user may use it
    theirs = await ok(
        live, other, "POST", "/orders", json=limit(m1, "buy", "1", "9", client_order_id="c-1")
    )
    assert theirs["id"] != order["id"]
    views = [
        await ws_ok(ws, "order.get", {"client_order_id": "c-1"}),
        await ws_ok(ws, "order.get", {"order_id": order["id"]}),
        await ok(live, user, "GET", "/orders/client:c-1"),
        await ok(live, user, "GET", f"/orders/{order['id']}", "b"),
    ]
    assert views == [order] * 4

    for params in ({"client_order_id": "c-1", "order_id": order["id"]},
                   {"client_order_id": "bad id"}, {"client_order_id": "x" * 37}):  # fmt: skip
        ws_refused(await ws.request("order.cancel", params), 400, "INVALID_PARAM")
    canceled = await ws_ok(ws, "order.cancel", {"client_order_id": "c-1"})
    assert (canceled["id"], canceled["status"], canceled["remaining"]) == (
        order["id"], "CANCELED", "0.000"
    )  # fmt: skip
    assert (await balances(live, user))["USD"] == (D("1000"), D("0"), D("1000"))
    refused(await call(live, user, "DELETE", "/orders/client:c-1"), 404, "UNKNOWN_ORDER")
    ws_refused(await ws.request("order.cancel", {"order_id": order["id"]}), 404, "UNKNOWN_ORDER")
    # the other user's order of the same client id is untouched
    assert (await ok(live, other, "GET", "/orders/client:c-1"))["status"] == "NEW"
    # a finished order by id: the same everywhere; its client id stays taken (24 h)
    final = await ok(live, user, "GET", f"/orders/{order['id']}")
    assert final == canceled == await ws_ok(ws, "order.get", {"client_order_id": "c-1"})
    assert final["filled"] == "0.000" and final["updated_ts"] >= order["updated_ts"]
    dup = await ws.request("order.place", limit(m1, "buy", "1", "10", client_order_id="c-1"))
    ws_refused(dup, 409, "DUPLICATE_CLIENT_ORDER_ID")
    assert dup["error"]["order"] == final
    assert await ws_ok(ws, "orders.open") == []


async def test_a_filled_order_by_id_and_open_orders_per_market(
    live: Exchange, sockets: list[Ws]
) -> None:
    m1, m2 = await new_market(live), await new_market(live)
    b1 = m1.split("-")[0]
    maker, taker = await new_user(live), await new_user(live)
    await fund(live, maker, {b1: "5", "USD": "1000"})
    await fund(live, taker, {"USD": "1000"})
    mws = await connect(live, sockets, maker, "a")
    sell = await ws_ok(mws, "order.place", limit(m1, "sell", "1", "10", client_order_id="s-1"))
    for size in ("0.4", "0.6"):
        await ok(live, taker, "POST", "/orders", "b", json=limit(m1, "buy", size, "10"))
    done = await ok(live, maker, "GET", f"/orders/{sell['id']}", "b")
    assert {k: done[k] for k in ("status", "filled", "remaining", "cost", "average")} == {
        "status": "FILLED", "filled": "1.000", "remaining": "0.000", "cost": "10.00000000",
        "average": "10.00",
    }  # fmt: skip
    assert done == await ws_ok(mws, "order.get", {"client_order_id": "s-1"})
    assert done == await ok(live, maker, "GET", "/orders/client:s-1")
    closed = await ok(live, maker, "GET", "/orders", params={"status": "closed", "market": m1})
    assert closed == [done]
    refused(await call(live, maker, "DELETE", f"/orders/{sell['id']}"), 404, "UNKNOWN_ORDER")
    ws_refused(await mws.request("order.cancel", {"client_order_id": "s-1"}), 404, "UNKNOWN_ORDER")
    assert await ok(live, maker, "GET", f"/orders/{sell['id']}") == done  # unchanged

    placed = []
    for market, price in ((m2, "1"), (m1, "2"), (m2, "3"), (m1, "4")):
        placed.append(await ws_ok(mws, "order.place", limit(market, "buy", "1", price)))
    every = await ws_ok(mws, "orders.open")
    assert [o["id"] for o in every] == [o["id"] for o in placed]  # oldest first, both markets
    assert every == await ok(live, maker, "GET", "/orders", "b")
    for market in (m1, m2):
        mine = await ws_ok(mws, "orders.open", {"market": market})
        assert mine == [o for o in every if o["market"] == market]
        assert mine == await ok(live, maker, "GET", "/orders", params={"market": market})
    canceled = await ok(live, maker, "DELETE", "/orders", params={"market": m2})
    assert sorted(o["id"] for o in canceled) == sorted(o["id"] for o in every[::2])
    assert await ws_ok(mws, "orders.open") == [o for o in every if o["market"] == m1]
    assert await ws_ok(mws, "orders.open", {"market": m2}) == []


# -- candles --------------------------------------------------------------------------------

INTERVAL_MS = {"1m": 60_000, "5m": 300_000, "1h": 3_600_000, "1d": 86_400_000}


async def test_candles_of_every_interval_agree_with_the_trades(
    live: Exchange, sockets: list[Ws]
) -> None:
    market = await new_market(live)
    base = market.split("-")[0]
    maker, taker = await new_user(live), await new_user(live)
    for user in (maker, taker):
        await fund(live, user, {base: "10", "USD": "1000"})
    mws, tws = await connect(live, sockets, maker, "a"), await connect(live, sockets, taker, "b")
    for price in ("10", "12", "11.5"):
        await ws_ok(mws, "order.place", limit(market, "sell", "1", price))
    await ws_ok(tws, "order.place", limit(market, "buy", "2.5", "12"))  # 10, 11.50, 0.5 @ 12
    await ws_ok(mws, "order.place", limit(market, "buy", "1", "9.01"))
    await ws_ok(tws, "order.place", {"market": market, "side": "sell", "type": "market",
                                     "amount": "0.333"})  # fmt: skip
    await ws_ok(tws, "order.place", limit(market, "buy", "0.125", "12"))
    trades = await ok(live, None, "GET", f"/markets/{market}/trades", params={"limit": 100})
    trades.reverse()  # oldest first
    assert [(t["price"], t["size"]) for t in trades] == [
        ("10.00", "1.000"), ("11.50", "1.000"), ("12.00", "0.500"), ("9.01", "0.333"),
        ("12.00", "0.125"),
    ]  # fmt: skip
    for interval, ms in INTERVAL_MS.items():
        buckets: dict[int, list[Msg]] = {}
        for t in trades:
            buckets.setdefault(t["ts"] - t["ts"] % ms, []).append(t)
        expected = [
            {
                "ts": start,
                "open": group[0]["price"],
                "high": max((t["price"] for t in group), key=D),
                "low": min((t["price"] for t in group), key=D),
                "close": group[-1]["price"],
                "volume": f"{sum(D(t['size']) for t in group):.3f}",
                "quote_volume": f"{sum(D(t['size']) * D(t['price']) for t in group):.8f}",
                "trades": len(group),
            }
            for start, group in sorted(buckets.items())
        ]
        # candles wait for the drain: right after the trades they are complete
        got = await ok(live, None, "GET", f"/markets/{market}/candles", "b",
                       params={"interval": interval})  # fmt: skip
        assert got == expected, (interval, got, expected)
        last = await ok(live, None, "GET", f"/markets/{market}/candles",
                        params={"interval": interval, "limit": 1})  # fmt: skip
        assert last == expected[-1:]
    for bad in ({"interval": "2m"}, {"interval": "1m", "limit": 0},
                {"interval": "1m", "limit": 1001}, {"interval": "1M"},
                {"interval": "1m", "since": 0}):  # fmt: skip
        r = await call(live, None, "GET", f"/markets/{market}/candles", params=bad)
        refused(r, 400, "INVALID_PARAM")
    refused(await call(live, None, "GET", "/markets/NOPE-USD/candles", params={"interval": "1m"}),
            400, "UNKNOWN_MARKET")  # fmt: skip


# -- deposits and transfers: idempotency keys and addresses ---------------------------------


async def usd_address(live: Exchange, user: User, asset: str = "USD") -> str:
    return str({a["asset"]: a["address"] for a in await ok(live, user, "GET", "/addresses")}[asset])


async def test_a_deposit_id_credits_once_whatever_the_retry_says(live: Exchange) -> None:
    alice, bob = await new_user(live), await new_user(live)
    a_usd, b_usd = await usd_address(live, alice), await usd_address(live, bob)
    dep = {"deposit_id": unique("tx-"), "address": a_usd, "asset": "USD", "amount": "25"}
    async with live.admin() as admin:
        first = await admin.post("/admin/deposits", json=dep)
        assert first.status_code == 200, first.text
        assert first.json() == {**dep, "amount": "25.00000000", "user_id": alice.user_id,
                                "replay": False}  # fmt: skip
        again = await admin.post("/admin/deposits", json={**dep, "address": a_usd.upper()})
        assert again.status_code == 200 and again.json()["replay"] is True, again.text
        for changed in (
            {"amount": "26"},
            {"asset": "BTC", "address": await usd_address(live, alice, "BTC")},
        ):
            refused(await admin.post("/admin/deposits", json={**dep, **changed}), 400,
                    "INVALID_PARAM")  # fmt: skip
        # the same deposit id for another user's address is not a new deposit
        refused(await admin.post("/admin/deposits", json={**dep, "address": b_usd}), 400,
                "INVALID_PARAM")  # fmt: skip
    assert (await balances(live, alice))["USD"] == (D("25"), D("0"), D("25"))
    assert (await balances(live, bob)).get("USD", (0, 0, 0)) == (0, 0, 0)


async def test_transfers_refuse_wrong_addresses_and_reused_ids(
    live: Exchange, sockets: list[Ws]
) -> None:
    alice, bob = await new_user(live), await new_user(live)
    await fund(live, alice, {"USD": "100", "BTC": "1"})
    b_usd = await usd_address(live, bob)
    bws = await connect(live, sockets, bob, "b")
    await ws_ok(bws, "subscribe", {"channel": "balances"})
    t = {"transfer_id": unique("t"), "asset": "USD", "amount": "12.5", "to_address": b_usd}
    sent = await ok(live, alice, "POST", "/transfers", json=t)
    assert sent == {**t, "amount": "12.50000000", "status": "COMPLETED", "replay": False}
    push = await bws.wait_push(lambda m: m["channel"] == "balances" and m["asset"] == "USD")
    assert (push["free"], push["locked"], push["total"]) == ("12.50000000", "0.00000000",
                                                             "12.50000000")  # fmt: skip
    before = [await balances(live, u) for u in (alice, bob)]
    cases = [
        {**t, "amount": "1"},  # the same id, another amount
        {**t, "transfer_id": unique("t"), "to_address": await usd_address(live, alice)},  # own
        {**t, "transfer_id": unique("t"), "asset": "BTC"},  # a USD address for BTC
        {**t, "transfer_id": unique("t"), "to_address": _mistype(b_usd)},
        {**t, "transfer_id": unique("t"), "amount": "0"},
        {**t, "transfer_id": unique("t"), "amount": 1},
        {**t, "transfer_id": "bad id"},
    ]
    for body in cases:
        refused(await call(live, alice, "POST", "/transfers", json=body), 400, "INVALID_PARAM")
    refused(await call(live, alice, "POST", "/transfers",
                       json={**t, "transfer_id": unique("t"), "amount": "0.000000001"}),
            400, "BAD_PRECISION")  # fmt: skip
    refused(await call(live, alice, "POST", "/transfers",
                       json={**t, "transfer_id": unique("t"), "amount": "87.50000001"}),
            400, "INSUFFICIENT_FUNDS")  # fmt: skip
    assert await ok(live, alice, "POST", "/transfers", "b", json=t) == {**sent, "replay": True}
    assert [await balances(live, u) for u in (alice, bob)] == before


# -- P2P: buy offers, edits, request ids, messages ------------------------------------------


async def test_p2p_buy_offer_escrows_the_takers_asset_and_cancel_returns_it(
    live: Exchange, sockets: list[Ws]
) -> None:
    seller, buyer, sws, bws = await p2p_pair(live, sockets, btc="1")
    poor = await new_user(live)
    await fund(live, poor, {"BTC": "0.05"})
    offer = await ws_ok(bws, "p2p.offer.create", {**SELL_OFFER, "side": "buy", "price": "100"})
    assert (offer["side"], offer["amount"], offer["locked"]) == ("buy", "1.00000000", "0.00000000")
    assert (await balances(live, buyer)).get("BTC", (0, 0, 0)) == (0, 0, 0)  # escrows nothing
    before = await balances(live, poor)
    r = await call(live, poor, "POST", f"/p2p/offers/{offer['id']}/take", json={"amount": "0.1"})
    refused(r, 400, "INSUFFICIENT_FUNDS")
    assert await balances(live, poor) == before
    assert (await ok(live, None, "GET", f"/p2p/offers/{offer['id']}"))["amount"] == "1.00000000"

    first = await ws_ok(sws, "p2p.offer.take", {"offer_id": offer["id"], "amount": "0.4"})
    assert (first["seller"], first["buyer"], first["offer_side"]) == (
        seller.user_id, buyer.user_id, "buy"
    )  # fmt: skip
    assert first["fiat_amount"] == "40.00"
    assert (await balances(live, seller, "b"))["BTC"] == (D("0.6"), D("0.4"), D("1"))
    for ws, user in ((sws, seller), (bws, buyer)):
        await notified(live, ws, user, "p2p.trade_opened", first["id"])
    await ws_ok(bws, "p2p.trade.paid", {"trade_id": first["id"]})
    await ws_ok(sws, "p2p.trade.release", {"trade_id": first["id"]})
    assert (await balances(live, buyer, "b"))["BTC"] == (D("0.4"), D("0"), D("0.4"))
    assert (await balances(live, seller))["BTC"] == (D("0.6"), D("0"), D("0.6"))

    second = await ok(live, seller, "POST", f"/p2p/offers/{offer['id']}/take", "b",
                      json={"amount": "0.5"})  # fmt: skip
    assert (await balances(live, seller))["BTC"] == (D("0.1"), D("0.5"), D("0.6"))
    left = await ok(live, None, "GET", f"/p2p/offers/{offer['id']}")
    assert (left["amount"], left["locked"], left["filled"]) == (
        "0.10000000", "0.50000000", "0.40000000"
    )  # fmt: skip
    await ws_ok(bws, "p2p.trade.cancel", {"trade_id": second["id"]})
    for ws, user in ((sws, seller), (bws, buyer)):
        await notified(live, ws, user, "p2p.trade_cancelled", second["id"])
    # the seller's escrow back to available, the offer's amount back to trade
    assert (await balances(live, seller, "b"))["BTC"] == (D("0.6"), D("0"), D("0.6"))
    left = await ok(live, None, "GET", f"/p2p/offers/{offer['id']}")
    assert (left["amount"], left["locked"], left["filled"]) == (
        "0.60000000", "0.00000000", "0.40000000"
    )  # fmt: skip


async def test_p2p_offer_edits_move_the_escrow_and_trades_keep_their_terms(
    live: Exchange, sockets: list[Ws]
) -> None:
    seller, buyer, sws, _ = await p2p_pair(live, sockets, btc="2")
    offer = await ok(live, seller, "POST", "/p2p/offers", json=SELL_OFFER)
    oid = offer["id"]
    path = f"/p2p/offers/{oid}"
    raised = await ok(live, seller, "PATCH", path, json={"amount": "1.5"})
    assert raised["amount"] == "1.50000000"
    assert (await balances(live, seller))["BTC"] == (D("0.5"), D("1.5"), D("2"))
    refused(await call(live, seller, "PATCH", path, json={"amount": "2.5"}), 400,
            "INSUFFICIENT_FUNDS")  # fmt: skip
    assert (await balances(live, seller))["BTC"] == (D("0.5"), D("1.5"), D("2"))
    lowered = await ws_ok(sws, "p2p.offer.update", {"offer_id": oid, "amount": "0.8"})
    assert lowered["amount"] == "0.80000000"
    assert (await balances(live, seller))["BTC"] == (D("1.2"), D("0.8"), D("2"))

    paused = await ok(live, seller, "PATCH", path, json={"status": "PAUSED"})
    assert paused["status"] == "PAUSED"
    listed = await ok(live, None, "GET", "/p2p/offers", params={"asset": "BTC", "fiat": "EUR"})
    assert oid not in [o["id"] for o in listed]
    refused(await call(live, buyer, "POST", path + "/take", json={"amount": "0.1"}), 400,
            "INVALID_PARAM")  # fmt: skip
    await ok(live, seller, "PATCH", path, json={"status": "OPEN"})
    trade = await ok(live, buyer, "POST", path + "/take", json={"amount": "0.3",
                                                                "price": "30000.07"})  # fmt: skip
    await ok(live, seller, "PATCH", path, json={"price": "31000"})
    # the price a taker accepts is checked: the old one is refused, nothing moves
    before = await balances(live, seller)
    stale = {"amount": "0.1", "price": "30000.07"}
    refused(await call(live, buyer, "POST", path + "/take", json=stale), 400, "INVALID_PARAM")
    assert await balances(live, seller) == before
    kept = await ok(live, buyer, "GET", f"/p2p/trades/{trade['id']}")
    assert (kept["price"], kept["fiat_amount"]) == ("30000.07", "9000.03")  # its own terms

    closed = await ok(live, seller, "POST", path + "/close", json={})
    assert (closed["status"], closed["amount"], closed["locked"]) == (
        "CLOSED", "0.00000000", "0.30000000"
    )  # fmt: skip
    assert (await balances(live, seller))["BTC"] == (D("1.7"), D("0.3"), D("2"))
    refused(await call(live, seller, "PATCH", path, json={"status": "OPEN"}), 400,
            "INVALID_PARAM")  # fmt: skip
    await ok(live, buyer, "POST", f"/p2p/trades/{trade['id']}/cancel", json={})
    # the offer is closed: the cancelled trade's amount goes back to the seller's balance
    assert (await balances(live, seller, "b"))["BTC"] == (D("2"), D("0"), D("2"))
    final = await ok(live, None, "GET", path)
    assert (final["status"], final["amount"], final["locked"]) == (
        "CLOSED", "0.00000000", "0.00000000"
    )  # fmt: skip


async def test_p2p_request_ids_replay_once_and_refuse_another_request(
    live: Exchange, sockets: list[Ws]
) -> None:
    seller, buyer, sws, bws = await p2p_pair(live, sockets)
    offer = await ok(live, seller, "POST", "/p2p/offers", json=SELL_OFFER)
    take = {"amount": "0.2", "request_id": unique("rq")}
    trade = await ok(live, buyer, "POST", f"/p2p/offers/{offer['id']}/take", json=take)
    again = await ws_ok(bws, "p2p.offer.take", {"offer_id": offer["id"], **take})
    assert again == trade  # the same trade, not a second one
    assert (await ok(live, None, "GET", f"/p2p/offers/{offer['id']}"))["amount"] == "0.80000000"
    assert [t["id"] for t in await ok(live, buyer, "GET", "/p2p/trades")] == [trade["id"]]
    refused(await call(live, buyer, "POST", f"/p2p/offers/{offer['id']}/take",
                       json={**take, "amount": "0.3"}), 400, "INVALID_PARAM")  # fmt: skip
    refused(await call(live, buyer, "POST", f"/p2p/trades/{trade['id']}/paid",
                       json={"request_id": take["request_id"]}), 400, "INVALID_PARAM")  # fmt: skip
    assert (await ok(live, buyer, "GET", f"/p2p/trades/{trade['id']}"))["status"] == "PENDING"

    # messages: the other party is notified (pushed and stored), the author is not
    posted = await ws_ok(bws, "p2p.message.post", {"trade_id": trade["id"], "body": "IBAN?",
                                                   "request_id": "m-1"})  # fmt: skip
    assert (posted["n"], posted["from"], posted["role"], posted["body"]) == (
        1, buyer.user_id, "buyer", "IBAN?"
    )  # fmt: skip
    assert await ws_ok(bws, "p2p.message.post", {"trade_id": trade["id"], "body": "IBAN?",
                                                 "request_id": "m-1"}) == posted  # fmt: skip
    await notified(live, sws, seller, "p2p.message", trade["id"])
    thread = await ok(live, seller, "GET", f"/p2p/trades/{trade['id']}/messages", "b")
    assert [(m["n"], m["body"]) for m in thread] == [(1, "IBAN?")]
    reply = await ok(live, seller, "POST", f"/p2p/trades/{trade['id']}/messages",
                     json={"body": "DE89 3704"})  # fmt: skip
    assert (reply["n"], reply["role"]) == (2, "seller")
    await notified(live, bws, buyer, "p2p.message", trade["id"])
    kinds = [n["kind"] for n in await ok(live, buyer, "GET", "/notifications")]
    assert kinds.count("p2p.message") == 1  # the seller's reply only
    refused(await call(live, buyer, "POST", f"/p2p/trades/{trade['id']}/messages",
                       json={"body": "x" * 501}), 400, "INVALID_PARAM")  # fmt: skip


# -- races: what a client sends at once from two nodes ---------------------------------------


async def test_concurrent_moves_on_one_trade_exactly_one_wins(live: Exchange) -> None:
    for round_ in range(3):
        seller, buyer = await new_user(live), await new_user(live)
        await fund(live, seller, {"BTC": "1"})
        offer = await ok(live, seller, "POST", "/p2p/offers", json=SELL_OFFER)
        trade = await ok(live, buyer, "POST", f"/p2p/offers/{offer['id']}/take",
                         json={"amount": "0.5"})  # fmt: skip
        path = f"/p2p/trades/{trade['id']}"
        release, cancel = await asyncio.gather(
            call(live, seller, "POST", path + "/release", "a", json={}),
            call(live, buyer, "POST", path + "/cancel", "b", json={}),
        )
        codes = sorted((release.status_code, cancel.status_code))
        assert codes == [200, 400], (round_, release.text, cancel.text)
        loser = release if release.status_code == 400 else cancel
        assert loser.json()["error"]["code"] == "INVALID_PARAM"
        final = await ok(live, buyer, "GET", path)
        state = await ok(live, None, "GET", f"/p2p/offers/{offer['id']}")
        if release.status_code == 200:
            assert final["status"] == "RELEASED"
            assert (await balances(live, buyer))["BTC"] == (D("0.5"), D("0"), D("0.5"))
            assert (await balances(live, seller))["BTC"] == (D("0"), D("0.5"), D("0.5"))
            assert (state["amount"], state["filled"]) == ("0.50000000", "0.50000000")
        else:
            assert final["status"] == "CANCELLED"
            assert (await balances(live, buyer)).get("BTC", (0, 0, 0)) == (0, 0, 0)
            assert (await balances(live, seller))["BTC"] == (D("0"), D("1"), D("1"))
            assert (state["amount"], state["filled"]) == ("1.00000000", "0.00000000")


async def test_concurrent_takes_never_oversell_an_offer(live: Exchange) -> None:
    seller = await new_user(live)
    await fund(live, seller, {"BTC": "1"})
    offer = await ok(live, seller, "POST", "/p2p/offers", json=SELL_OFFER)
    buyers = [await new_user(live) for _ in range(5)]
    answers = await asyncio.gather(*(
        call(live, b, "POST", f"/p2p/offers/{offer['id']}/take", "ab"[i % 2],
             json={"amount": "0.3"})
        for i, b in enumerate(buyers)
    ))  # fmt: skip
    won = [r for r in answers if r.status_code == 200]
    assert len(won) == 3, [r.text for r in answers]  # 3 x 0.3 of 1
    for r in answers:
        if r.status_code != 200:
            refused(r, 400, "INVALID_PARAM")
    state = await ok(live, None, "GET", f"/p2p/offers/{offer['id']}")
    assert (state["amount"], state["locked"]) == ("0.10000000", "0.90000000")
    assert (await balances(live, seller))["BTC"] == (D("0"), D("1"), D("1"))


async def test_concurrent_withdrawals_hold_no_more_than_the_balance(live: Exchange) -> None:
    user = await new_user(live)
    await fund(live, user, {"USD": "100"})
    answers = await asyncio.gather(*(
        call(live, user, "POST", "/withdrawals", "ab"[i % 2],
             json={"withdrawal_id": unique("w"), "asset": "USD", "amount": "30",
                   "address": "ext9"})
        for i in range(5)
    ))  # fmt: skip
    assert sorted(r.status_code for r in answers) == [200, 200, 200, 400, 400]
    for r in answers:
        if r.status_code != 200:
            refused(r, 400, "INSUFFICIENT_FUNDS")
    assert (await balances(live, user))["USD"] == (D("10"), D("90"), D("100"))
    listed = await ok(live, user, "GET", "/withdrawals", "b")
    assert sorted(w["withdrawal_id"] for w in listed) == sorted(
        r.json()["withdrawal_id"] for r in answers if r.status_code == 200
    )


async def test_concurrent_retries_of_one_client_order_id_place_one_order(live: Exchange) -> None:
    market = await new_market(live)
    user = await new_user(live)
    await fund(live, user, {"USD": "1000"})
    ids = []
    for n in range(1, 4):
        order = limit(market, "buy", "1", "10", client_order_id=f"race-{n}")
        answers = await asyncio.gather(*(
            call(live, user, "POST", "/orders", "ab"[i % 2], json=order) for i in range(8)
        ))  # fmt: skip
        placed = [r.json() for r in answers if r.status_code == 200]
        assert len(placed) == 1, [r.text for r in answers]
        for r in answers:
            if r.status_code != 200:  # each carries the order, also while it is being placed
                dup = refused(r, 409, "DUPLICATE_CLIENT_ORDER_ID")
                assert dup["order"] == without_fills(placed[0]), dup
        ids.append(placed[0]["id"])
        assert [o["id"] for o in await ok(live, user, "GET", "/orders")] == ids
    assert (await balances(live, user))["USD"] == (D("970"), D("30"), D("1000"))


async def test_concurrent_retries_of_money_moves_act_once(live: Exchange) -> None:
    alice, bob = await new_user(live), await new_user(live)
    a_usd, b_usd = await usd_address(live, alice), await usd_address(live, bob)
    dep = {"deposit_id": unique("tx-"), "address": a_usd, "asset": "USD", "amount": "100"}
    async with live.admin("a") as admin_a, live.admin("b") as admin_b:
        answers = await asyncio.gather(*(
            (admin_a, admin_b)[i % 2].post("/admin/deposits", json=dep) for i in range(6)
        ))  # fmt: skip
    assert [r.status_code for r in answers] == [200] * 6
    assert sorted(r.json()["replay"] for r in answers) == [False] + [True] * 5
    assert (await balances(live, alice))["USD"] == (D("100"), D("0"), D("100"))

    t = {"transfer_id": unique("t"), "asset": "USD", "amount": "10", "to_address": b_usd}
    answers = await asyncio.gather(*(
        call(live, alice, "POST", "/transfers", "ab"[i % 2], json=t) for i in range(6)
    ))  # fmt: skip
    assert [r.status_code for r in answers] == [200] * 6, [r.text for r in answers]
    assert sorted(r.json()["replay"] for r in answers) == [False] + [True] * 5
    w = {"withdrawal_id": unique("w"), "asset": "USD", "amount": "20", "address": "ext7"}
    answers = await asyncio.gather(*(
        call(live, alice, "POST", "/withdrawals", "ab"[i % 2], json=w) for i in range(6)
    ))  # fmt: skip
    assert [r.status_code for r in answers] == [200] * 6, [r.text for r in answers]
    assert sorted(r.json()["replay"] for r in answers) == [False] + [True] * 5
    assert (await balances(live, alice))["USD"] == (D("70"), D("20"), D("90"))
    assert (await balances(live, bob))["USD"] == (D("10"), D("0"), D("10"))
    assert len(await ok(live, alice, "GET", "/withdrawals")) == 1


async def test_concurrent_cancels_of_one_order_release_once(live: Exchange) -> None:
    market = await new_market(live)
    user = await new_user(live)
    await fund(live, user, {"USD": "100"})
    order = await ok(live, user, "POST", "/orders",
                     json=limit(market, "buy", "2", "10", client_order_id="cx"))  # fmt: skip
    answers = await asyncio.gather(*(
        call(live, user, "DELETE",
             f"/orders/{order['id']}" if i % 2 else "/orders/client:cx", "ab"[i // 2 % 2])
        for i in range(6)
    ))  # fmt: skip
    assert sorted(r.status_code for r in answers) == [200] + [404] * 5, [r.text for r in answers]
    for r in answers:
        if r.status_code == 404:
            refused(r, 404, "UNKNOWN_ORDER")
        else:
            assert r.json()["status"] == "CANCELED"
    assert (await balances(live, user))["USD"] == (D("100"), D("0"), D("100"))
    assert (await ok(live, user, "GET", f"/orders/{order['id']}"))["status"] == "CANCELED"


# -- market status, tokens in URLs, wallet parameters ---------------------------------------


async def test_a_halted_market_keeps_its_orders_until_cancel_only(
    live: Exchange, sockets: list[Ws]
) -> None:
    market = await new_market(live)
    base = market.split("-")[0]
    user, other = await new_user(live), await new_user(live)
    await fund(live, user, {"USD": "100"})
    await fund(live, other, {base: "5"})
    ws = await connect(live, sockets, user, "b")
    order = await ws_ok(ws, "order.place", limit(market, "buy", "2", "10", client_order_id="h-1"))

    async def set_status(status: str) -> None:
        async with live.admin() as admin:
            r = await admin.post(f"/admin/markets/{market}/status", json={"status": status})
            assert r.status_code == 200 and r.json()["status"] == status, r.text

    await set_status("HALT")
    try:
        held = await balances(live, user)
        for attempt in (
            ws.request("order.cancel", {"order_id": order["id"]}),
            ws.request("order.cancel", {"client_order_id": "h-1"}),
            ws.request("order.place", limit(market, "buy", "1", "1")),
        ):
            ws_refused(await attempt, 400, "MARKET_NOT_TRADING")
        for method, path in (("DELETE", f"/orders/{order['id']}"),
                             ("DELETE", "/orders/client:h-1")):  # fmt: skip
            refused(await call(live, user, method, path), 400, "MARKET_NOT_TRADING")
        refused(await call(live, other, "POST", "/orders", json=limit(market, "sell", "1", "10")),
                400, "MARKET_NOT_TRADING")  # fmt: skip
        assert await balances(live, user) == held
        assert [o["id"] for o in await ws_ok(ws, "orders.open")] == [order["id"]]
        shown = await ok(live, None, "GET", "/markets")
        assert {m["id"]: m["status"] for m in shown}[market] == "HALT"
        await set_status("CANCEL_ONLY")
        refused(await call(live, user, "POST", "/orders", json=limit(market, "buy", "1", "1")),
                400, "MARKET_NOT_TRADING")  # fmt: skip
        canceled = await ok(live, user, "DELETE", "/orders/client:h-1", "b")
        assert canceled["status"] == "CANCELED"
        assert (await balances(live, user))["USD"] == (D("100"), D("0"), D("100"))
    finally:
        await set_status("TRADING")
    assert (await ws_ok(ws, "order.place", limit(market, "buy", "1", "1")))["status"] == "NEW"


async def test_tokens_in_urls_authenticate_nothing(live: Exchange) -> None:
    user = await new_user(live)
    async with httpx.AsyncClient(base_url=live.url()) as http:
        r = await http.get("/api/v1/balances", params={"access_token": user.token})
        assert r.status_code in (400, 401), r.text
        assert r.json()["error"]["code"] in ("INVALID_PARAM", "UNAUTHORIZED")
    socket_ = await websockets.connect(live.ws_url() + f"?token={user.token}")
    ws = Ws(socket_)
    ws_refused(await ws.request("balances.get"), 401, "UNAUTHORIZED")
    assert (await ws.request("auth", {"token": user.token}))["status"] == 200
    await ws.close()


async def test_withdrawal_parameters_are_strict(live: Exchange) -> None:
    user = await new_user(live)
    await fund(live, user, {"USD": "10"})
    ok_body = {"withdrawal_id": unique("w"), "asset": "USD", "amount": "1", "address": "ext1"}
    cases = [
        ({"amount": "0"}, "INVALID_PARAM"),
        ({"amount": "-1"}, "INVALID_PARAM"),
        ({"amount": 1}, "INVALID_PARAM"),
        ({"amount": "1e2"}, "INVALID_PARAM"),
        ({"amount": "0.000000001"}, "BAD_PRECISION"),
        ({"asset": "usd"}, "INVALID_PARAM"),
        ({"asset": "NOPE9"}, "INVALID_PARAM"),
        ({"withdrawal_id": "a b"}, "INVALID_PARAM"),
        ({"withdrawal_id": "w" * 37}, "INVALID_PARAM"),
        ({"memo": "x"}, "INVALID_PARAM"),
    ]
    for change, code in cases:
        body = {**ok_body, "withdrawal_id": unique("w"), **change}
        refused(await call(live, user, "POST", "/withdrawals", json=body), 400, code)
    missing = {k: v for k, v in ok_body.items() if k != "address"}
    refused(await call(live, user, "POST", "/withdrawals", json=missing), 400, "INVALID_PARAM")
    refused(await call(live, user, "GET", "/withdrawals", params={"status": "PENDING"}), 400,
            "INVALID_PARAM")  # fmt: skip
    assert await ok(live, user, "GET", "/withdrawals") == []
    assert (await balances(live, user))["USD"] == (D("10"), D("0"), D("10"))


async def test_p2p_listings_best_price_first_then_oldest(live: Exchange) -> None:
    fiat = "Q" + uuid.uuid4().hex[:2].upper().translate(str.maketrans("0123456789", "GHIJKLMNOP"))
    owners = [await new_user(live) for _ in range(3)]
    for owner in owners:
        await fund(live, owner, {"BTC": "3"})
    base = {**SELL_OFFER, "fiat": fiat, "min_amount": "0.3", "max_amount": "0.8"}
    made = {}
    for key, owner, side, price in (("s101", 0, "sell", "101"), ("s100a", 1, "sell", "100"),
                                    ("s100b", 2, "sell", "100"), ("b90", 0, "buy", "90"),
                                    ("b95", 1, "buy", "95"), ("b95b", 2, "buy", "95")):  # fmt: skip
        made[key] = await ok(live, owners[owner], "POST", "/p2p/offers",
                             json={**base, "side": side, "price": price})  # fmt: skip

    async def listed(**params: Any) -> list[str]:
        rows = await ok(live, None, "GET", "/p2p/offers", "b", params={"fiat": fiat, **params})
        names = {o["id"]: k for k, o in made.items()}
        return [names[o["id"]] for o in rows]

    assert await listed(side="sell") == ["s100a", "s100b", "s101"]
    assert await listed(side="buy") == ["b95", "b95b", "b90"]
    assert await listed(side="sell", limit=1) == ["s100a"]
    assert sorted(await listed()) == sorted(made)
    # an offer with less than min_amount left is not listed; taking the rest is refused
    taker = await new_user(live)
    await ok(live, taker, "POST", f"/p2p/offers/{made['s100a']['id']}/take",
             json={"amount": "0.8"})  # fmt: skip
    assert await listed(side="sell") == ["s100b", "s101"]
    r = await call(live, taker, "POST", f"/p2p/offers/{made['s100a']['id']}/take",
                   json={"amount": "0.2"})  # fmt: skip
    refused(r, 400, "INVALID_PARAM")
    # paused offers are not listed, and the listing shows them again when resumed
    await ok(live, owners[1], "PATCH", f"/p2p/offers/{made['b95']['id']}",
             json={"status": "PAUSED"})  # fmt: skip
    assert await listed(side="buy") == ["b95b", "b90"]
    await ok(live, owners[1], "PATCH", f"/p2p/offers/{made['b95']['id']}",
             json={"status": "OPEN"})  # fmt: skip
    assert await listed(side="buy") == ["b95", "b95b", "b90"]
    mine = await ok(live, owners[0], "GET", "/p2p/offers/mine")
    assert [o["id"] for o in mine] == [made["b90"]["id"], made["s101"]["id"]]  # newest first
    for bad in ({"side": "both"}, {"limit": 0}, {"limit": 201}, {"sort": "price"}):
        r = await call(live, None, "GET", "/p2p/offers", params={"fiat": fiat, **bad})
        refused(r, 400, "INVALID_PARAM")


async def test_unsubscribed_private_channels_push_nothing_more(
    live: Exchange, sockets: list[Ws]
) -> None:
    market = await new_market(live)
    user = await new_user(live)
    await fund(live, user, {"USD": "100", "BTC": "1"})
    quiet, sentinel = await connect(live, sockets, user, "a"), await connect(live, sockets, user)
    private = ("orders", "balances", "notifications")
    for ws in (quiet, sentinel):
        for channel in private:
            await ws_ok(ws, "subscribe", {"channel": channel})
    for channel in private:
        assert await ws_ok(quiet, "unsubscribe", {"channel": channel}) == {"channel": channel}
    mark = len(quiet.pushes)
    buyer = await new_user(live)
    offer = await ok(live, user, "POST", "/p2p/offers", json=SELL_OFFER)
    trade = await ok(live, buyer, "POST", f"/p2p/offers/{offer['id']}/take", "b",
                     json={"amount": "0.1"})  # fmt: skip
    placed = await ok(live, user, "POST", "/orders", "b", json=limit(market, "buy", "1", "1"))
    await sentinel.wait_push(note_of("p2p.trade_opened", trade["id"]))
    await sentinel.wait_push(lambda m: m["channel"] == "orders"
                             and m["order"]["id"] == placed["id"])  # fmt: skip
    await sentinel.wait_push(lambda m: m["channel"] == "balances" and m["asset"] == "USD")
    await ws_ok(quiet, "ping")  # the same node fanned out to both sockets before this answer
    assert quiet.pushes[mark:] == []
    # subscribing again resumes them
    await ws_ok(quiet, "subscribe", {"channel": "orders", "markets": [market]})
    again = await ok(live, user, "POST", "/orders", json=limit(market, "buy", "1", "2"))
    push = await quiet.wait_push(lambda m: m["channel"] == "orders")
    assert push["order"]["id"] == again["id"] and push["exec_type"] == "NEW"


async def test_list_limits_and_their_bounds(live: Exchange, sockets: list[Ws]) -> None:
    market = await new_market(live)
    base = market.split("-")[0]
    user, taker = await new_user(live), await new_user(live)
    await fund(live, user, {base: "1000"})
    await fund(live, taker, {"USD": "100000"})
    ws = await connect(live, sockets, user)
    ids = [
        (await ws_ok(ws, "order.place", limit(market, "sell", "1", f"{100 + i}")))["id"]
        for i in range(105)
    ]
    # open orders: every one without a limit (as orders.open), the oldest ``limit`` with one
    assert [o["id"] for o in await ok(live, user, "GET", "/orders")] == ids
    assert [o["id"] for o in await ws_ok(ws, "orders.open")] == ids
    assert [o["id"] for o in await ok(live, user, "GET", "/orders", params={"limit": 1000})] == ids
    assert [o["id"] for o in await ok(live, user, "GET", "/orders", params={"limit": 3})] == ids[:3]
    await ok(live, taker, "POST", "/orders", json=limit(market, "buy", "3", "102"))
    fills = await ok(live, user, "GET", "/fills", params={"limit": 2})
    assert [(f["order_id"], f["trade_id"]) for f in fills] == [(ids[2], 3), (ids[1], 2)]
    trades = await ok(live, None, "GET", f"/markets/{market}/trades", params={"limit": 2})
    assert [t["trade_id"] for t in trades] == [3, 2]
    closed = await ok(live, user, "GET", "/orders", params={"status": "closed", "limit": 2})
    assert [o["id"] for o in closed] == [ids[2], ids[1]]  # newest first
    everything = await ok(live, user, "GET", "/orders", params={"status": "all", "limit": 1000})
    assert sorted(o["id"] for o in everything) == sorted(ids)
    for path, params in (
        ("/orders", {"limit": 0}), ("/orders", {"limit": 1001}), ("/orders", {"limit": "x"}),
        ("/fills", {"limit": 0}), ("/fills", {"limit": 1001}),
        ("/notifications", {"limit": 0}), ("/notifications", {"limit": 501}),
        ("/notifications", {"before": "nope"}), ("/p2p/trades", {"limit": 0}),
        (f"/markets/{market}/trades", {"limit": 0}), (f"/markets/{market}/trades", {"limit": 1001}),
        (f"/markets/{market}/book", {"depth": 1001}),
    ):  # fmt: skip
        refused(await call(live, user, "GET", path, params=params), 400, "INVALID_PARAM")


async def test_signup_and_login_normalise_emails_and_check_passwords(live: Exchange) -> None:
    local = unique("n")
    email = f"{local}@accept4.hftx.dev"
    async with live.http("b") as http:
        for bad in ({"email": email, "password": "short7!"},
                    {"email": email, "password": "p" * 129},
                    {"email": f"{local}@localhost", "password": PASSWORD},
                    {"email": "x" * 250 + "@a.dev", "password": PASSWORD},
                    {"email": email, "password": PASSWORD, "role": "admin"},
                    {"email": email}):  # fmt: skip
            refused(await http.post("/auth/signup", json=bad), 400, "INVALID_PARAM")
        fancy = f"  {local.upper()}@ＡＣＣＥＰＴ4.hftx.dev "  # case, spaces, full-width letters
        r = await http.post("/auth/signup", json={"email": fancy, "password": "p" * 128})
        assert r.status_code == 201, r.text
        user_id = r.json()["user_id"]
        again = await http.post("/auth/signup", json={"email": email.upper(), "password": PASSWORD})
        assert refused(again, 400, "INVALID_PARAM")["message"] == "this email is already registered"
        token = await http.post("/auth/login", json={"email": email, "password": "p" * 128})
        assert token.status_code == 200, token.text
        me = await ok(live, User("", "", token.json()["access_token"]), "GET", "/me")
        assert me == {"user_id": user_id, "role": "user", "email": email}
        # every login failure is the same answer, a malformed e-mail included
        answers = [
            await http.post("/auth/login", json=body)
            for body in (
                {"email": email, "password": PASSWORD},
                {"email": f"nobody-{local}@accept4.hftx.dev", "password": PASSWORD},
                {"email": "not-an-email", "password": PASSWORD},
            )
        ]
        for r in answers:
            refused(r, 401, "UNAUTHORIZED")
        assert len({r.text for r in answers}) == 1


async def test_re_auth_on_one_socket_takes_one_slot(live: Exchange) -> None:
    if "strict" not in live.nodes:
        pytest.skip("needs the e2e exchange's strict node (3 sockets per user)")
    user = await new_user(live, "strict")
    url = live.ws_url("strict")
    first = await Ws.connect(url, user.token)
    fresh = (await call(live, user, "POST", "/auth/refresh", "strict")).json()["access_token"]
    for token in (user.token, fresh, user.token, fresh):
        assert (await first.request("auth", {"token": token}))["status"] == 200
    others = [await Ws.connect(url, fresh) for _ in range(2)]  # 3 sockets in all: allowed
    extra = await Ws.connect(url)
    ws_refused(await extra.request("auth", {"token": fresh}), 429, "RATE_LIMITED")
    # a failed auth closes its socket and takes no slot
    await others[1].close()
    bad = await Ws.connect(url)
    ws_refused(await bad.request("auth", {"token": "x.y.z"}), 401, "UNAUTHORIZED")
    assert (await asyncio.wait_for(bad.closed, 5))[0] == 4401

    async def slot_free() -> Ws | None:  # the closed socket's slot is given back when gone
        ws = await Ws.connect(url)
        if (await ws.request("auth", {"token": fresh}))["status"] == 200:
            return ws
        await ws.close()
        return None

    third = await eventually(slot_free, timeout=5)
    for ws in (first, others[0], extra, third):
        await ws.close()


async def test_p2p_trade_lists_cover_both_roles_newest_first(live: Exchange) -> None:
    alice, bob = await new_user(live), await new_user(live)
    await fund(live, alice, {"BTC": "1"})
    await fund(live, bob, {"BTC": "1"})
    a_offer = await ok(live, alice, "POST", "/p2p/offers", json=SELL_OFFER)
    b_offer = await ok(live, bob, "POST", "/p2p/offers", json=SELL_OFFER)
    t1 = await ok(live, bob, "POST", f"/p2p/offers/{a_offer['id']}/take", json={"amount": "0.1"})
    t2 = await ok(live, alice, "POST", f"/p2p/offers/{b_offer['id']}/take", json={"amount": "0.2"})
    t3 = await ok(live, bob, "POST", f"/p2p/offers/{a_offer['id']}/take", json={"amount": "0.3"})
    for user in (alice, bob):
        mine = await ok(live, user, "GET", "/p2p/trades", "b")
        assert [t["id"] for t in mine] == [t3["id"], t2["id"], t1["id"]]
        assert [
            t["id"] for t in await ok(live, user, "GET", "/p2p/trades", params={"limit": 1})
        ] == [t3["id"]]
    roles = {
        t["id"]: (t["seller"], t["buyer"]) for t in await ok(live, alice, "GET", "/p2p/trades")
    }
    assert roles[t2["id"]] == (bob.user_id, alice.user_id)
    assert roles[t1["id"]] == (alice.user_id, bob.user_id)
    await ok(live, alice, "POST", f"/p2p/offers/{a_offer['id']}/close", json={})
    mine = await ok(live, alice, "GET", "/p2p/offers/mine")
    assert [(o["id"], o["status"]) for o in mine] == [(a_offer["id"], "CLOSED")]
    # an admin reads any trade; its thread only once disputed
    async with live.admin("b") as admin:
        r = await admin.get(f"/p2p/trades/{t1['id']}")
        assert r.status_code == 200 and r.json() == await ok(
            live, bob, "GET", f"/p2p/trades/{t1['id']}"
        )


async def test_pipelined_requests_are_answered_in_the_order_sent(live: Exchange) -> None:
    market = await new_market(live)
    user = await new_user(live)
    await fund(live, user, {"USD": "1000"})
    socket_ = await websockets.connect(live.ws_url("b"), max_size=2**24)
    try:
        await socket_.send(orjson.dumps({"id": 0, "method": "auth",
                                         "params": {"token": user.token}}).decode())  # fmt: skip
        kinds = [
            ("order.place", limit(market, "buy", "1", "1", client_order_id="p-0")),
            ("balances.get", None), ("ping", None), ("orders.open", {"market": market}),
            ("order.place", limit(market, "buy", "1", "2", client_order_id="p-0")),  # 409
            ("order.cancel", {"client_order_id": "p-0"}), ("no.such", None),
            ("order.get", {"client_order_id": "p-0"}), ("withdrawals.get", None),
            ("p2p.offers.mine", {}), ("notifications.get", {"limit": 1}),
        ]  # fmt: skip
        sent = []
        for i in range(3):
            for n, (method, params) in enumerate(kinds):
                req_id = f"r{i}-{n}"
                frame: Msg = {"id": req_id, "method": method}
                if params is not None:
                    frame["params"] = params
                await socket_.send(orjson.dumps(frame).decode())
                sent.append(req_id)
        answers = []
        while len(answers) < len(sent) + 1:
            message = orjson.loads(await asyncio.wait_for(socket_.recv(), 10))
            if "status" in message:
                answers.append(message)
        assert [a["id"] for a in answers] == [0, *sent]
        statuses = [a["status"] for a in answers[1 : len(kinds) + 1]]
        assert statuses == [200, 200, 200, 200, 409, 200, 400, 200, 200, 200, 200]
        assert answers[4]["result"][0]["client_order_id"] == "p-0"  # open when asked
        assert answers[8]["result"]["status"] == "CANCELED"  # order.get after the cancel
    finally:
        await socket_.close()


async def test_subscriptions_survive_a_re_auth(live: Exchange, sockets: list[Ws]) -> None:
    market = await new_market(live)
    user = await new_user(live)
    await fund(live, user, {"USD": "100"})
    ws = await connect(live, sockets, user, "b")
    for channel in ("orders", "balances"):
        await ws_ok(ws, "subscribe", {"channel": channel})
    fresh = (await call(live, user, "POST", "/auth/refresh")).json()["access_token"]
    assert (await ws_ok(ws, "auth", {"token": fresh}))["user_id"] == user.user_id
    placed = await ok(live, user, "POST", "/orders", json=limit(market, "buy", "1", "5"))
    push = await ws.wait_push(lambda m: m["channel"] == "orders")
    assert push["order"]["id"] == placed["id"]
    usd = await ws.wait_push(lambda m: m["channel"] == "balances" and m["locked"] != "0.00000000")
    assert (usd["free"], usd["locked"]) == ("95.00000000", "5.00000000")
