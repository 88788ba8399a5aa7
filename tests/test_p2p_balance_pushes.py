"""P2P balance pushes over the real web node: every P2P call that moves a user's
balance (offer escrow, edit, close, a seller taking a buy offer, a cancel or an
expiry giving escrow back to free, a release) is followed by that user's private
``balances`` push, once; the buyer's credit of a release comes from the settler."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from engine.p2p import P2P
from tests.test_p2p_api_support import OFFER, Api, Socket, subscribed
from workers.settler import Settler

pytest_plugins = ["tests.test_p2p_api_support"]


def _btc(push: dict[str, str]) -> tuple[str, str, str]:
    assert push["channel"] == "balances" and push["asset"] == "BTC", push
    assert set(push) == {"channel", "asset", "free", "locked", "total"}
    return push["free"], push["locked"], push["total"]


async def test_every_p2p_balance_change_is_pushed_over_websocket(api: Api) -> None:
    seller, buyer = await api.user(), await api.user()
    async with subscribed(api, [seller, buyer], "balances") as (s, b):
        await api.fund(seller, "BTC", "2")
        assert _btc(await s.push("balances")) == ("2.00000000", "0.00000000", "2.00000000")

        offer = await s.ok("p2p.offer.create", OFFER)  # 1 BTC into escrow
        assert _btc(await s.push("balances")) == ("1.00000000", "1.00000000", "2.00000000")
        await s.ok("p2p.offer.update", {"offer_id": offer["id"], "amount": "0.8"})
        assert _btc(await s.push("balances")) == ("1.20000000", "0.80000000", "2.00000000")

        # a cancelled trade of an open sell offer: the escrow returns to the offer, the
        # balance does not move (no push: the next one is the release's)
        trade = await b.ok("p2p.offer.take", {"offer_id": offer["id"], "amount": "0.25"})
        await b.ok("p2p.trade.cancel", {"trade_id": trade["id"]})

        trade = await b.ok("p2p.offer.take", {"offer_id": offer["id"], "amount": "0.25"})
        await b.ok("p2p.trade.paid", {"trade_id": trade["id"]})
        await s.ok("p2p.trade.release", {"trade_id": trade["id"]})
        assert _btc(await s.push("balances")) == ("1.20000000", "0.55000000", "1.75000000")
        await Settler(api.node.redis, instance="tests").drain()  # credits the buyer
        assert _btc(await b.push("balances")) == ("0.25000000", "0.00000000", "0.25000000")

        # the seller takes the buyer's buy offer: escrowed from the seller's free
        wanted = await b.ok("p2p.offer.create", {**OFFER, "side": "buy"})
        taken = await s.ok("p2p.offer.take", {"offer_id": wanted["id"], "amount": "0.5"})
        assert _btc(await s.push("balances")) == ("0.70000000", "1.05000000", "1.75000000")
        # its payment window passes: the expiry (the worker's job) gives the escrow back
        result = await P2P(api.node.redis).expire_trade(
            taken["id"], now=int(taken["expires_ts"]) + 1
        )
        assert result.outcome == "expired"
        assert _btc(await s.push("balances")) == ("1.20000000", "0.55000000", "1.75000000")

        closed = await s.ok("p2p.offer.close", {"offer_id": offer["id"]})
        assert closed["status"] == "CLOSED"
        assert _btc(await s.push("balances")) == ("1.75000000", "0.00000000", "1.75000000")
        assert not [p for p in b.pushes + s.pushes if p.get("channel") == "balances"]
        # a refused call pushes nothing and changes nothing
        refused = await s.rpc("p2p.offer.create", {**OFFER, "amount": "5"})
        assert refused["error"]["code"] == "INSUFFICIENT_FUNDS"
        assert await api.free(seller) == "1.75000000"


async def _balances(sock: Socket, quiet_s: float = 0.3) -> list[tuple[str, str, str]]:
    """The ``balances`` pushes the socket got until now and for ``quiet_s`` more (the
    node forwards pub/sub messages within milliseconds), taken off its backlog."""
    loop = asyncio.get_running_loop()
    until = loop.time() + quiet_s
    while (left := until - loop.time()) > 0:
        try:
            sock.pushes.append(orjson.loads(await asyncio.wait_for(sock.ws.recv(), left)))
        except TimeoutError:
            break
    got = [p for p in sock.pushes if p.get("channel") == "balances"]
    sock.pushes[:] = [p for p in sock.pushes if p.get("channel") != "balances"]
    return [_btc(p) for p in got]


async def test_a_release_or_a_cancel_pushes_each_balance_change_once(api: Api) -> None:
    """Counted on the sockets: the request's own push, the settler's credit of the
    buyer, and nothing more when the trade's expiry job runs at its deadline anyway
    (the worker's ``p2p_expire``) or a finished move is repeated (a no-op success); a
    cancel whose escrow goes back to an open sell offer moves no balance: no push."""
    desk = P2P(api.node.redis)
    settler = Settler(api.node.redis, instance="tests")
    seller, buyer = await api.user(), await api.user()

    async def expiry_job_runs(trade: dict[str, Any]) -> None:
        result = await desk.expire_trade(trade["id"], now=int(trade["expires_ts"]) + 1)
        assert result.outcome == "not_pending"

    async with subscribed(api, [seller, buyer], "balances") as (s, b):
        await api.fund(seller, "BTC", "2")
        offer = await s.ok("p2p.offer.create", OFFER)  # 1 BTC into escrow
        assert await _balances(s) == [("2.00000000", "0.00000000", "2.00000000"),
                                      ("1.00000000", "1.00000000", "2.00000000")]  # fmt: skip

        trade = await b.ok("p2p.offer.take", {"offer_id": offer["id"], "amount": "0.25"})
        await b.ok("p2p.trade.cancel", {"trade_id": trade["id"]})
        await b.ok("p2p.trade.cancel", {"trade_id": trade["id"]})  # already: a no-op
        await expiry_job_runs(trade)
        assert await _balances(s) == [] and await _balances(b) == []

        trade = await b.ok("p2p.offer.take", {"offer_id": offer["id"], "amount": "0.25"})
        await b.ok("p2p.trade.paid", {"trade_id": trade["id"]})
        await s.ok("p2p.trade.release", {"trade_id": trade["id"], "request_id": "r-1"})
        await s.ok("p2p.trade.release", {"trade_id": trade["id"], "request_id": "r-1"})
        await s.ok("p2p.trade.release", {"trade_id": trade["id"]})
        await expiry_job_runs(trade)
        await settler.drain()  # credits the buyer
        assert await _balances(s) == [("1.00000000", "0.75000000", "1.75000000")]
        assert await _balances(b) == [("0.25000000", "0.00000000", "0.25000000")]

        # a buy offer: the seller escrows from free at the take, gets it back at a cancel
        wanted = await b.ok("p2p.offer.create", {**OFFER, "side": "buy"})
        taken = await s.ok("p2p.offer.take", {"offer_id": wanted["id"], "amount": "0.5"})
        await b.ok("p2p.trade.cancel", {"trade_id": taken["id"]})
        await expiry_job_runs(taken)
        assert await _balances(s) == [("0.50000000", "1.25000000", "1.75000000"),
                                      ("1.00000000", "0.75000000", "1.75000000")]  # fmt: skip
        taken = await s.ok("p2p.offer.take", {"offer_id": wanted["id"], "amount": "0.5"})
        await b.ok("p2p.trade.paid", {"trade_id": taken["id"]})
        await s.ok("p2p.trade.release", {"trade_id": taken["id"]})
        await expiry_job_runs(taken)
        await settler.drain()
        assert await _balances(s) == [("0.50000000", "1.25000000", "1.75000000"),
                                      ("0.50000000", "0.75000000", "1.25000000")]  # fmt: skip
        assert await _balances(b) == [("0.75000000", "0.00000000", "0.75000000")]
